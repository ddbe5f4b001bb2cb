"""Read a step's `$TEMPEH_OUTPUT` file: `KEY=VALUE` lines and GitHub Actions' heredoc form.

```
version=1.4.2
notes<<EOF
first line
second line
EOF
```
Later keys win. Blank lines are ignored; anything else that is not one of the two forms is an
error naming its line, so a typo never silently drops an output.
"""

from __future__ import annotations

import re

from tempeh_tui.errors import TempehError

__all__ = ["OutputFileError", "is_output_key", "parse_outputs"]

_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]*")


class OutputFileError(TempehError):
    """The output file is not made of `KEY=VALUE` lines and `KEY<<DELIMITER` blocks."""

    def __init__(self, line: int | None, problem: str) -> None:
        self.line = line
        self.problem = problem
        where = f"line {line}: " if line is not None else ""
        super().__init__(f"{where}{problem}")


def is_output_key(key: str) -> bool:
    """Whether `key` may name an output (`[A-Za-z_][A-Za-z0-9_.-]*`)."""
    return _KEY.fullmatch(key) is not None


def parse_outputs(text: str) -> dict[str, str]:
    """The outputs `text` sets, in the order first set; raises `OutputFileError` on a bad line."""
    outputs: dict[str, str] = {}
    lines = [line.removesuffix("\r") for line in text.split("\n")]
    index = 0
    while index < len(lines):
        line, number = lines[index], index + 1
        index += 1
        if not line.strip():
            continue
        equals, heredoc = line.find("="), line.find("<<")
        if equals >= 0 and (heredoc < 0 or equals < heredoc):
            key, value = line[:equals], line[equals + 1 :]
        elif heredoc >= 0:
            key, delimiter = line[:heredoc], line[heredoc + 2 :]
            if not delimiter:
                raise OutputFileError(number, f"'{key}<<' needs a delimiter after '<<'")
            try:
                end = lines.index(delimiter, index)
            except ValueError:
                raise OutputFileError(
                    number, f"'{key}<<{delimiter}' is not closed by a line '{delimiter}'"
                ) from None
            value = "\n".join(lines[index:end])
            index = end + 1
        else:
            raise OutputFileError(number, f"expected KEY=VALUE or KEY<<DELIMITER, got {line!r}")
        if not is_output_key(key):
            raise OutputFileError(
                number, f"{key!r} is not a valid output name ([A-Za-z_][A-Za-z0-9_.-]*)"
            )
        outputs[key] = value
    return outputs
