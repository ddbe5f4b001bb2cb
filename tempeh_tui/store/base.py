"""The store's contract: what a run's memory holds and how the engine and the views reach it.

The engine writes by publishing events: the store subscribes (`record`, synchronous and cheap)
and makes them durable in batches (`flush`, one transaction for everything recorded since the
last one). Readers get plain records. Implementations: `SqliteStore` (the default, WAL) and
`MemoryStore` (tests).
"""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Any, Protocol

from tempeh_tui.errors import TempehError
from tempeh_tui.events import Event, RunStatus, StepStatus
from tempeh_tui.events.types import iso_time

__all__ = [
    "AttemptRecord",
    "CachedResult",
    "LogRecord",
    "RunNotFound",
    "RunRecord",
    "StepRecord",
    "Store",
    "StoreError",
]


class StoreError(TempehError):
    """The store cannot be opened or used (damaged, foreign, locked, ...)."""


class RunNotFound(StoreError):
    def __init__(self, run_id: str, candidates: int = 0) -> None:
        self.run_id = run_id
        self.candidates = candidates
        why = f"{candidates} runs start with it" if candidates > 1 else "no such run"
        super().__init__(f"run '{run_id}': {why} (see `tempeh runs`)")


def _iso(ts: float | None) -> str | None:
    return iso_time(ts) if ts is not None else None


@dataclass(frozen=True)
class AttemptRecord:
    attempt: int
    started_at: float
    ended_at: float | None = None
    exit_code: int | None = None
    error_class: str | None = None
    delay_after: float | None = None
    """The backoff delay before the next attempt, if one was made."""
    pid: int | None = None
    iteration: int = 1
    """The latest loop iteration (`until`) this attempt ran."""

    def to_json(self) -> dict[str, Any]:
        return {
            "attempt": self.attempt,
            "started_at": _iso(self.started_at),
            "ended_at": _iso(self.ended_at),
            "exit_code": self.exit_code,
            "error_class": self.error_class,
            "delay_after": self.delay_after,
            "pid": self.pid,
            "iteration": self.iteration,
        }


@dataclass(frozen=True)
class StepRecord:
    """One unit of a run (a step, or one fan-out instance) as the store last saw it."""

    name: str
    status: StepStatus
    attempts: int = 0
    exit_code: int | None = None
    error_class: str | None = None
    severity: str | None = None
    outputs: dict[str, str] = field(default_factory=dict)
    started_at: float | None = None
    ended_at: float | None = None
    cached: bool = False
    reason: str | None = None
    attempt_history: tuple[AttemptRecord, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "status": self.status.value,
            "attempts": self.attempts,
            "exit_code": self.exit_code,
            "error_class": self.error_class,
            "severity": self.severity,
            "outputs": self.outputs,
            "started_at": _iso(self.started_at),
            "ended_at": _iso(self.ended_at),
            "cached": self.cached,
            "reason": self.reason,
            "attempt_history": [a.to_json() for a in self.attempt_history],
        }


@dataclass(frozen=True)
class RunRecord:
    """A run: what it ran (the definition as stored) and how it stands."""

    id: str
    workflow: str
    status: RunStatus
    definition: dict[str, Any]
    """`Workflow.model_dump(mode="json", by_alias=True)`: what resume runs, not the file."""
    definition_hash: str
    params: dict[str, Any] = field(default_factory=dict)
    source: str | None = None
    started_at: float | None = None
    ended_at: float | None = None
    max_concurrency: int | None = None
    message: str | None = None
    steps: tuple[StepRecord, ...] = ()
    """Filled by `get_run`; empty in `list_runs`."""

    def to_json(self, *, with_steps: bool = True) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id,
            "workflow": self.workflow,
            "status": self.status.value,
            "started_at": _iso(self.started_at),
            "ended_at": _iso(self.ended_at),
            "params": self.params,
            "source": self.source,
            "message": self.message,
        }
        if with_steps:
            out["steps"] = [s.to_json() for s in self.steps]
            out["rollbacks"] = []  # rollback history: filled once rollbacks exist (issue 5)
        return out


@dataclass(frozen=True)
class LogRecord:
    seq: int
    ts: float
    step: str
    attempt: int
    stream: str
    line: str


@dataclass(frozen=True)
class CachedResult:
    """A succeeded attempt of an earlier run with the same cache key."""

    run_id: str
    step: str
    outputs: dict[str, str]


class Store(Protocol):
    async def open(self) -> None: ...

    async def close(self) -> None: ...

    async def create_run(self, run: RunRecord) -> None:
        """Store a new run (its definition and params); durable when this returns."""

    def record(self, event: Event) -> None:
        """Take an event (a bus subscriber): buffer it; `flush` makes it durable."""

    async def flush(self) -> None:
        """Make every event recorded so far durable, in one transaction."""

    def autoflush(self, interval: float = 0.05) -> AbstractAsyncContextManager[None]:
        """`async with store.autoflush():` flushes every `interval` seconds while the block
        runs, and once more (shielded from cancellation) when it ends."""
        ...

    async def list_runs(self, limit: int = 20) -> list[RunRecord]:
        """Newest first, without steps."""
        ...

    async def get_run(self, run_id: str) -> RunRecord:
        """One run with its steps; `run_id` may be a unique prefix. Raises RunNotFound."""
        ...

    async def read_logs(
        self, run_id: str, step: str | None = None, after_seq: int = 0, limit: int | None = None
    ) -> list[LogRecord]:
        """Stored log lines in order (of one step or unit, or of the whole run)."""
        ...

    async def find_cached(self, workflow: str, step: str, key: str) -> CachedResult | None:
        """The newest succeeded attempt of `step` in `workflow` whose cache key was `key`."""
        ...
