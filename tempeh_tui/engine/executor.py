"""The one seam between the engine and the outside world: running a step's action.

Like httpx's transports: the engine hands an `Executor` a request and gets a result back;
`LocalExecutor` runs real processes and Python callables, `FakeExecutor` plays a script, so
every engine behaviour (ordering, limits, retries, timeouts) is testable without a process.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

__all__ = [
    "DEFAULT_GRACE",
    "ExecResult",
    "ExecutionObserver",
    "Executor",
    "PythonRequest",
    "ShellRequest",
]

DEFAULT_GRACE = 10.0
"""Seconds between SIGTERM and SIGKILL when a step is timed out or cancelled (SPEC 5.4)."""


@dataclass(frozen=True)
class ShellRequest:
    """Run `command` with `bash -c` in its own process group."""

    command: str
    """Already rendered: template values are `${TEMPEH_X1}` references into `env`."""
    env: Mapping[str, str]
    """The whole environment of the process (the engine builds it; nothing is inherited)."""
    cwd: str
    timeout: float | None = None
    grace: float = DEFAULT_GRACE
    output_file: str | None = None
    """The file named by $TEMPEH_OUTPUT: the executor parses it after the process exits."""
    pace: Callable[[], bool] | None = None
    """Called by the thread that reads the output, between batches of lines: True if there is
    room for more, else False after waiting a moment; the reader asks again (and the step
    waits on its full pipe) until there is room, or the step is stopped or times out. So
    memory stays bounded however fast a step prints."""


@dataclass(frozen=True)
class PythonRequest:
    """Call `target` (`package.module:function`), sync or async, with `context`."""

    target: str
    context: Any
    """A `StepContext`; passed as the callable's only argument."""
    timeout: float | None = None
    search_path: tuple[str, ...] = ()
    """Directories to import the module from (the workflow file's directory)."""


@dataclass(frozen=True)
class ExecResult:
    """How an action ended. `exit_code` 0 is success; a Python step that raised has 1."""

    exit_code: int | None
    """None when the process was killed by a signal."""
    signal: int | None = None
    timed_out: bool = False
    cancelled: bool = False
    outputs: Mapping[str, str] = field(default_factory=dict)
    error: str | None = None
    """A one-line reason when there is no exit code to tell it (spawn failure, exception), or
    why an action that exited 0 still failed (a malformed $TEMPEH_OUTPUT file)."""
    traceback: str | None = None
    duration: float = 0.0

    @property
    def ok(self) -> bool:
        return (
            self.exit_code == 0 and self.error is None and not self.timed_out and not self.cancelled
        )

    def describe(self) -> str:
        """How it ended, in a few words: `timed out`, `exit code 3`, the error..."""
        if self.timed_out:
            return "timed out"
        if self.cancelled:
            return "cancelled"
        if self.error:
            return self.error
        if self.signal is not None:
            return f"killed by signal {self.signal}"
        return f"exit code {self.exit_code}"


class ExecutionObserver(Protocol):
    """What the executor reports while an action runs. Called on the event loop's thread."""

    def output(self, stream: str, line: str) -> None:
        """One line of output (`stream` is "stdout" or "stderr"), without its newline."""

    def spawned(self, pid: int, started: float | None = None) -> None:
        """The process started; `pid` is also its process group id. `started`: when, as the
        OS reports it (`process_start_time`), if the executor has read it already."""


class Executor(Protocol):
    """Runs actions. If the calling task is cancelled, the executor stops the action first
    (the whole process group: SIGTERM, then SIGKILL after the grace period) and then lets the
    cancellation through."""

    async def run_shell(self, request: ShellRequest, observer: ExecutionObserver) -> ExecResult: ...

    async def call_python(
        self, request: PythonRequest, observer: ExecutionObserver
    ) -> ExecResult: ...
