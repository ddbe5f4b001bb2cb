"""An `Executor` that plays a script instead of running anything, for engine tests.

    executor = FakeExecutor({"deploy": [FakeOutcome(exit_code=75), FakeOutcome()]})

fails `deploy`'s first attempt with 75 and succeeds after; steps not in the script succeed.
Each outcome takes `duration` seconds of (anyio) time, so tests can watch concurrency.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

import anyio

from tempeh_tui.engine.executor import ExecResult, ExecutionObserver, PythonRequest, ShellRequest

__all__ = ["FAKE_PID_BASE", "FakeCall", "FakeExecutor", "FakeOutcome"]

FAKE_PID_BASE = 2**22 + 1
"""Fake pids start above Linux's highest possible pid, so killing one can never hit a process."""


@dataclass(frozen=True)
class FakeOutcome:
    """How one attempt of a step ends; `lines` are printed on stdout first."""

    exit_code: int | None = 0
    outputs: Mapping[str, str] = field(default_factory=dict)
    lines: Sequence[str] = ()
    duration: float = 0.0
    timed_out: bool = False
    error: str | None = None


@dataclass(frozen=True)
class FakeCall:
    """One call the executor received, in start order (`order` counts from 0)."""

    name: str
    attempt: int
    kind: Literal["shell", "python"]
    order: int
    request: ShellRequest | PythonRequest

    @property
    def command(self) -> str:
        """The shell command, or the python target."""
        if isinstance(self.request, ShellRequest):
            return self.request.command
        return self.request.target

    @property
    def env(self) -> Mapping[str, str]:
        """The process environment, or the python context's `env`."""
        if isinstance(self.request, ShellRequest):
            return self.request.env
        env: Mapping[str, str] = getattr(self.request.context, "env", {})
        return env


class FakeExecutor:
    """Plays `script[name]` one outcome per call (the last repeats); `default` otherwise.

    The name is `TEMPEH_STEP` from a shell request's environment (its command when absent) or
    the context's `step` for a python request. `calls` records every call; `running` and
    `max_running` count calls in progress, now and at the peak.
    """

    def __init__(
        self,
        script: Mapping[str, Sequence[FakeOutcome]] | None = None,
        default: FakeOutcome | None = None,
    ) -> None:
        self.script = {name: list(outcomes) for name, outcomes in (script or {}).items()}
        self.default = default or FakeOutcome()
        self.calls: list[FakeCall] = []
        self.running = 0
        self.max_running = 0
        self._played: dict[str, int] = {}

    def names(self) -> list[str]:
        """The names called, in start order."""
        return [call.name for call in self.calls]

    async def run_shell(self, request: ShellRequest, observer: ExecutionObserver) -> ExecResult:
        name = request.env.get("TEMPEH_STEP", request.command)
        attempt = int(request.env.get("TEMPEH_ATTEMPT", "1"))
        call = self._record(name, attempt, "shell", request)
        observer.spawned(FAKE_PID_BASE + call.order)
        return await self._play(name, request.timeout, observer)

    async def call_python(self, request: PythonRequest, observer: ExecutionObserver) -> ExecResult:
        name = str(getattr(request.context, "step", request.target))
        attempt = int(getattr(request.context, "attempt", 1))
        self._record(name, attempt, "python", request)
        return await self._play(name, request.timeout, observer)

    def _record(
        self,
        name: str,
        attempt: int,
        kind: Literal["shell", "python"],
        request: ShellRequest | PythonRequest,
    ) -> FakeCall:
        call = FakeCall(name, attempt, kind, len(self.calls), request)
        self.calls.append(call)
        return call

    def _next(self, name: str) -> FakeOutcome:
        outcomes = self.script.get(name)
        if not outcomes:
            return self.default
        played = self._played.get(name, 0)
        self._played[name] = played + 1
        return outcomes[min(played, len(outcomes) - 1)]

    async def _play(
        self, name: str, time_limit: float | None, observer: ExecutionObserver
    ) -> ExecResult:
        outcome = self._next(name)
        self.running += 1
        self.max_running = max(self.max_running, self.running)
        try:
            for line in outcome.lines:
                observer.output("stdout", line)
            if time_limit is not None and outcome.duration > time_limit:
                await anyio.sleep(time_limit)
                return ExecResult(
                    exit_code=None,
                    signal=15,
                    timed_out=True,
                    error=f"timed out after {time_limit:g}s",
                    duration=time_limit,
                )
            await anyio.sleep(outcome.duration)
        finally:
            self.running -= 1
        return ExecResult(
            exit_code=outcome.exit_code,
            timed_out=outcome.timed_out,
            outputs=dict(outcome.outputs),
            error=outcome.error,
            duration=outcome.duration,
        )
