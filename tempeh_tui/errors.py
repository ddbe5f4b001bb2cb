"""Every error tempeh raises on purpose derives from `TempehError`.

Messages are built from the fields, so code can read the fields and people can read the text.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

__all__ = ["Problem", "TempehError", "WorkflowError"]


class TempehError(Exception):
    """The root of tempeh's own errors: anything else escaping is a bug."""


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with a workflow, and where it is.

    `source` is the file name (or `<dict>` for a workflow given as data); `line` and `col` are
    1-based and present when the problem has a place in a file; `path` names the place in the
    document (`steps[2].needs[0]`) when there is no file position.
    """

    message: str
    source: str = "<workflow>"
    line: int | None = None
    col: int | None = None
    path: str | None = None

    def __str__(self) -> str:
        if self.line is not None:
            return f"{self.source}:{self.line}:{self.col or 1}: {self.message}"
        if self.path:
            return f"{self.source}: {self.path}: {self.message}"
        return f"{self.source}: {self.message}"

    def sort_key(self) -> tuple[str, int, int, str]:
        return (self.source, self.line or 0, self.col or 0, self.message)


class WorkflowError(TempehError):
    """A workflow could not be read or is not valid; carries every problem found, in file order."""

    def __init__(self, problems: Iterable[Problem]) -> None:
        unique = {(p.sort_key(), p.path): p for p in problems}
        self.problems: tuple[Problem, ...] = tuple(sorted(unique.values(), key=Problem.sort_key))
        super().__init__("\n".join(str(p) for p in self.problems))

    @classmethod
    def single(
        cls, message: str, source: str, line: int | None = None, col: int | None = None
    ) -> WorkflowError:
        return cls([Problem(message, source, line, col)])
