"""The store's contract: what a run's memory holds and how the engine and the views reach it.

The engine writes by publishing events: the store subscribes (`record`, synchronous and cheap)
and makes them durable in batches (`flush`, one transaction for everything recorded since the
last one). Readers get plain records. Implementations: `SqliteStore` (the default, WAL) and
`MemoryStore` (tests).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Any, Protocol

from tempeh_tui.errors import TempehError
from tempeh_tui.events import Event, RunStatus, StepStatus
from tempeh_tui.events.types import iso_time

__all__ = [
    "HEARTBEAT_INTERVAL",
    "LEASE_TIMEOUT",
    "AttemptRecord",
    "CachedResult",
    "DecisionRecord",
    "LeaseLost",
    "LogRecord",
    "PruneResult",
    "RollbackActionRecord",
    "RollbackRecord",
    "RunLease",
    "RunLocked",
    "RunNotFound",
    "RunRecord",
    "StepRecord",
    "Store",
    "StoreError",
    "describe_changes",
]

LEASE_TIMEOUT = 30.0
"""A lease whose heartbeat is older than this (seconds) is dead, whoever holds it (SPEC 4)."""
HEARTBEAT_INTERVAL = 5.0
"""How often `Store.lease` renews the heartbeat of the lease it holds."""


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
class RunLease:
    """Who drives a run: one process, on one host, since `since` (SPEC 4)."""

    pid: int
    host: str
    process_started: float
    """The holder's process start time: tells it from a later process reusing its pid."""
    since: float
    heartbeat: float

    def to_json(self) -> dict[str, Any]:
        return {
            "pid": self.pid,
            "host": self.host,
            "process_started": _iso(self.process_started),
            "since": _iso(self.since),
            "heartbeat": _iso(self.heartbeat),
        }


class RunLocked(StoreError):
    """Another process, alive, drives the run: it may be watched, not driven, from here."""

    def __init__(self, run_id: str, holder: RunLease, now: float) -> None:
        self.run_id = run_id
        self.holder = holder
        beat = max(0, round(now - holder.heartbeat))
        super().__init__(
            f"run {run_id} is driven by pid {holder.pid} on host {holder.host} since "
            f"{iso_time(holder.since)}; heartbeat {beat} s ago"
        )


class LeaseLost(StoreError):
    """This process held the run's lease and no longer does: its heartbeat came too late
    and another process took the run over (or the lease was released)."""

    def __init__(self, run_id: str, holder: RunLease | None) -> None:
        self.run_id = run_id
        self.holder = holder
        now = (
            f"it is held by pid {holder.pid} on host {holder.host} since {iso_time(holder.since)}"
            if holder is not None
            else "nobody holds it now"
        )
        super().__init__(f"run {run_id}: this process lost its lease ({now}); stop driving it")


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
    pgid: int | None = None
    """The process group of the attempt's process (`StepSpawned`): what a resume kills."""
    process_started: float | None = None
    """That process's start time as the OS reported it, to tell it from a reused pid."""

    def to_json(self) -> dict[str, Any]:
        return {
            "attempt": self.attempt,
            "started_at": _iso(self.started_at),
            "ended_at": _iso(self.ended_at),
            "exit_code": self.exit_code,
            "error_class": self.error_class,
            "delay_after": self.delay_after,
            "pid": self.pid,
            "pgid": self.pgid,
            "process_started": _iso(self.process_started),
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
    cache_key: str | None = None
    pid: int | None = None
    """The pid of the unit's latest process, if it started one."""

    @property
    def in_doubt(self) -> bool:
        """Nothing says whether its latest attempt's effect is in place: it was `running` when
        its engine died, and the attempt's end was never recorded; or it was stopped while it
        ran (`interrupted` by Ctrl-C or SIGTERM: killed, so no exit code of its own, and no
        backoff begun). A unit stopped in the backoff before its next attempt, or before it
        began, had nothing running."""
        history = self.attempt_history
        if self.status is StepStatus.INTERRUPTED:
            return (
                bool(history)
                and history[-1].attempt >= self.attempts
                and history[-1].exit_code is None
                and history[-1].delay_after is None
            )
        if self.status is not StepStatus.RUNNING:
            return False
        return not (
            history and history[-1].ended_at is not None and history[-1].attempt >= self.attempts
        )

    @property
    def tries_used(self) -> int:
        """How many of its `retry.attempts` a unit stopped before it had failed for good
        (running or interrupted, in an attempt or in the backoff before the next) has used:
        its latest attempts that failed and were retried. A resume goes on with the rest;
        a unit that failed for good, or never started, starts afresh."""
        if self.status not in (StepStatus.RUNNING, StepStatus.INTERRUPTED):
            return 0
        history = list(self.attempt_history)
        if history and history[-1].delay_after is None:
            history.pop()  # what the stop cut short, or what was running: not a try used up
        used = 0
        for attempt in reversed(history):
            if attempt.delay_after is None:
                break  # not retried: it ended an earlier chain
            used += 1
        return used

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
            "cache_key": self.cache_key,
            "reason": self.reason,
            "pid": self.pid,
            "attempt_history": [a.to_json() for a in self.attempt_history],
        }


@dataclass(frozen=True)
class RollbackActionRecord:
    """One unit a rollback compensated (or is compensating), and how that ended."""

    unit: str
    status: StepStatus
    """`rolling_back` (still, or the process died), `rolled_back` or `rollback_failed`."""
    command: str | None = None
    started_at: float | None = None
    ended_at: float | None = None
    exit_code: int | None = None
    reason: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "unit": self.unit,
            "status": self.status.value,
            "command": self.command,
            "started_at": _iso(self.started_at),
            "ended_at": _iso(self.ended_at),
            "exit_code": self.exit_code,
            "reason": self.reason,
        }


@dataclass(frozen=True)
class RollbackRecord:
    """One rollback of a run: its plan, who asked and when, each action and how it ended."""

    id: str
    status: RunStatus
    """`running` while it runs (or if its process died), then as the run ended."""
    plan: dict[str, Any] = field(default_factory=dict)
    requested_by: str | None = None
    planned_at: float | None = None
    ended_at: float | None = None
    message: str | None = None
    actions: tuple[RollbackActionRecord, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "status": self.status.value,
            "requested_by": self.requested_by,
            "planned_at": _iso(self.planned_at),
            "ended_at": _iso(self.ended_at),
            "message": self.message,
            "plan": self.plan,
            "actions": [a.to_json() for a in self.actions],
        }


def describe_changes(env: Mapping[str, str], params: Mapping[str, str]) -> str:
    """`params version=2; env LOG=debug`: a retry's changed values, for people."""
    parts = []
    for label, values in (("params", params), ("env", env)):
        if values:
            parts.append(label + " " + " ".join(f"{k}={v}" for k, v in values.items()))
    return "; ".join(parts)


@dataclass(frozen=True)
class DecisionRecord:
    """A question a run put to its operator (SPEC 5.2: a failure; 1: an approval gate), and
    its answer once one came: who answered, and when."""

    run_id: str
    unit: str
    kind: str
    """`failure` (answers: retry, skip, rollback, abort) or `approval` (answers: yes, or
    skip, rollback, abort: a refusal)."""
    asked_at: float
    summary: str
    """The failure's summary, or the rendered confirm text."""
    input_hash: str | None = None
    """An approval's hash of the rendered command and inputs: changed inputs void it."""
    answer: str | None = None
    """None while it waits; `timed out` or `withdrawn` when the run stopped waiting."""
    answered_by: str | None = None
    answered_at: float | None = None
    id: int = 0
    env: dict[str, str] = field(default_factory=dict)
    """A `retry`'s changed environment variables for the unit's next run (SPEC 5.2)."""
    params: dict[str, str] = field(default_factory=dict)
    """A `retry`'s changed params for the unit's next run: only that unit sees them."""

    @property
    def waiting(self) -> bool:
        return self.answer is None

    @property
    def changes(self) -> str:
        """What a retry changed, for people ('' if nothing)."""
        return describe_changes(self.env, self.params)

    def to_json(self) -> dict[str, Any]:
        return {
            "unit": self.unit,
            "kind": self.kind,
            "asked_at": _iso(self.asked_at),
            "summary": self.summary,
            "input_hash": self.input_hash,
            "answer": self.answer,
            "answered_by": self.answered_by,
            "answered_at": _iso(self.answered_at),
            "env": self.env,
            "params": self.params,
        }


_ENDED_WELL = frozenset({StepStatus.SUCCEEDED, StepStatus.SKIPPED})
_STOPPED_WITH_THE_RUN = {
    StepStatus.RUNNING: (StepStatus.INTERRUPTED, "was running when its run's process died"),
    StepStatus.WAITING: (StepStatus.PENDING, None),
    StepStatus.AWAITING_CONFIRMATION: (StepStatus.PENDING, None),
}


def _as_shown(step: StepRecord) -> StepRecord:
    shown = _STOPPED_WITH_THE_RUN.get(step.status)
    if shown is None:
        return step
    status, reason = shown
    return dataclasses.replace(step, status=status, reason=reason)


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
    not_selected: dict[str, str] = field(default_factory=dict)
    """Units toggled off before the run started (plan, pick, apply), each with why: they end
    `skipped` and a resume never runs them."""
    on_failure: str | None = None
    """The failure policy it was started with (its file's, or the one given for the run); a
    resume keeps it. None in a store older than that."""
    steps: tuple[StepRecord, ...] = ()
    """Filled by `get_run`; empty in `list_runs`."""
    lease: RunLease | None = None
    """Who drives the run now, as the store last heard (alive or not: see `Store.lease`)."""
    rollbacks: tuple[RollbackRecord, ...] = ()
    """The rollback history, oldest first; filled by `get_run`, empty in `list_runs`."""
    decisions: tuple[DecisionRecord, ...] = ()
    """The questions put to the operator, oldest first; filled by `get_run`."""

    @property
    def waiting_for(self) -> tuple[DecisionRecord, ...]:
        """The questions that wait for an answer now."""
        return tuple(d for d in self.decisions if d.waiting)

    def as_shown(self) -> RunRecord:
        """The run as `show` presents it. While it runs, a `pending` unit whose needs have
        ended waits for a free slot. Once nobody drives an unfinished run (its process
        died), its steps that were running are `interrupted` and those that waited `pending`,
        and a rollback that was going on is `interrupted`: nothing runs or waits there any
        more. The stored states stay as they are: they tell a resume which steps are in
        doubt."""
        if self.status is RunStatus.RUNNING:
            return dataclasses.replace(self, steps=self._waiting_for_slots())
        if self.status is not RunStatus.INTERRUPTED:
            return self
        steps = tuple(_as_shown(step) for step in self.steps)
        rollbacks = tuple(
            dataclasses.replace(
                r, status=RunStatus.INTERRUPTED, message="its process stopped before it ended"
            )
            if r.status is RunStatus.RUNNING
            else r
            for r in self.rollbacks
        )
        return dataclasses.replace(self, steps=steps, rollbacks=rollbacks)

    def _waiting_for_slots(self) -> tuple[StepRecord, ...]:
        """A `pending` unit whose needs have all ended well waits for a free slot (SPEC 2:
        `waiting`): the engine says so of needs, resources and host load as it goes, not of
        slots (that would be an event for every queued unit of a large run)."""
        defined = {
            d.get("name"): d.get("needs") or ()
            for d in self.definition.get("steps", ())
            if isinstance(d, dict)
        }
        status = {step.name: step.status for step in self.steps}

        def ended_well(need: str) -> bool:
            if need in status:
                return status[need] in _ENDED_WELL
            instances = [s for name, s in status.items() if name.startswith(need + "[")]
            return bool(instances) and all(s in _ENDED_WELL for s in instances)

        why = f"waiting for a free slot (max_concurrency {self.max_concurrency})"
        return tuple(
            dataclasses.replace(step, status=StepStatus.WAITING, reason=why)
            if step.status is StepStatus.PENDING
            and all(ended_well(n) for n in defined.get(step.name.split("[", 1)[0], ["?"]))
            else step
            for step in self.steps
        )

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
            "not_selected": self.not_selected,
            "on_failure": self.on_failure,
            "lease": self.lease.to_json() if self.lease is not None else None,
        }
        if with_steps:
            out["steps"] = [s.to_json() for s in self.steps]
            out["rollbacks"] = [r.to_json() for r in self.rollbacks]
            out["decisions"] = [d.to_json() for d in self.decisions]
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


@dataclass(frozen=True)
class PruneResult:
    """What `Store.prune_runs` removed (or, in a dry run, would remove)."""

    removed: tuple[str, ...] = ()
    """Run ids, newest first."""
    kept_active: tuple[str, ...] = ()
    """Runs the rules selected but that a live process still drives: never removed."""
    dry_run: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "removed": list(self.removed),
            "count": len(self.removed),
            "kept_active": list(self.kept_active),
            "dry_run": self.dry_run,
        }


class Store(Protocol):
    async def open(self) -> None: ...

    async def close(self) -> None: ...

    async def create_run(self, run: RunRecord) -> None:
        """Store a new run (its definition and params); durable when this returns."""

    def record(self, event: Event) -> None:
        """Take an event (a bus subscriber): buffer it; `flush` makes it durable."""

    async def flush(self) -> None:
        """Make every event recorded so far durable, in one transaction."""

    def checkpoint(self) -> None:
        """Make every event recorded so far survive a crash of this process before returning,
        without waiting for a transaction (a store may journal them; the engine calls this
        before each action a resume must know about)."""

    def wait_for_room(self) -> bool:
        """Called from a thread that reads a step's output: True if the store keeps up with
        its events, else False after waiting a moment (the reader waits, the step with it)."""

    def autoflush(self, interval: float = 0.05) -> AbstractAsyncContextManager[None]:
        """`async with store.autoflush():` flushes every `interval` seconds while the block
        runs, and once more (shielded from cancellation) when it ends."""
        ...

    async def list_runs(self, limit: int = 20) -> list[RunRecord]:
        """Newest first, without steps."""
        ...

    async def get_run(self, run_id: str) -> RunRecord:
        """One run with its steps and rollback history; `run_id` may be a unique prefix.
        Raises RunNotFound."""
        ...

    async def read_logs(
        self, run_id: str, step: str | None = None, after_seq: int = 0, limit: int | None = None
    ) -> list[LogRecord]:
        """Stored log lines in order (of one step or unit, or of the whole run)."""
        ...

    async def find_cached(self, workflow: str, step: str, key: str) -> CachedResult | None:
        """The newest succeeded attempt of `step` in `workflow` whose cache key was `key`."""
        ...

    async def last_seq(self, run_id: str) -> int:
        """The highest event sequence number stored for the run (log lines included; 0 if
        none), so a resumed run numbers on from there. Events still pending are not counted.
        `run_id` is the full id; raises RunNotFound."""
        ...

    # -- one driver per run (SPEC 4) -----------------------------------------------------

    async def acquire_lease(self, run_id: str) -> None:
        """Make this process the run's driver, atomically across processes. Taking a lease
        this process holds already only renews it; a dead holder's lease (its pid gone or
        reused on this host, or its heartbeat older than LEASE_TIMEOUT) is taken over.
        Raises RunLocked (naming the holder) if a live process holds it, RunNotFound if
        there is no such run (`run_id` is the full id)."""

    async def heartbeat(self, run_id: str) -> None:
        """Renew the lease this process holds. Raises LeaseLost if it holds it no more."""

    async def hold_lease(self, run_id: str) -> None:
        """Before acting: confirm the lease `lease()` holds, if not confirmed lately (a
        driver that was stopped a while). Raises LeaseLost if another process took it over."""

    async def release_lease(self, run_id: str) -> None:
        """Give the lease up, if this process holds it (someone else's is left alone)."""

    def lease(
        self, run_id: str, *, heartbeat_every: float = HEARTBEAT_INTERVAL
    ) -> AbstractAsyncContextManager[None]:
        """`async with store.lease(run_id):` acquire, renew in the background, release on
        the way out (also on error or cancellation). A lease the process held already is
        renewed but not released at the end (its first taker releases it). If the lease is
        lost meanwhile, the block is cancelled and LeaseLost raised."""
        ...

    # -- operator decisions (SPEC 5.2, 6) -------------------------------------------------

    async def ask_decision(self, question: DecisionRecord) -> int:
        """Store a question (durable when this returns); returns its id."""
        ...

    async def answer_decision(
        self,
        run_id: str,
        unit: str,
        kind: str,
        answer: str,
        answered_by: str,
        *,
        env: Mapping[str, str] | None = None,
        params: Mapping[str, str] | None = None,
    ) -> DecisionRecord | None:
        """Answer the newest waiting question of `kind` for `unit` (a unit's name, or a step's:
        then any of its instances), with a retry's changed `env` and `params` if any; None if
        none waits. `run_id` is the full id."""
        ...

    async def decisions(self, run_id: str) -> list[DecisionRecord]:
        """Every question the run asked, oldest first, answered or not."""
        ...

    # -- housekeeping --------------------------------------------------------------------

    async def prune_runs(
        self, *, keep: int | None = None, older_than: float | None = None, dry_run: bool = False
    ) -> PruneResult:
        """Remove runs with their units, attempts, logs and events: those older than
        `older_than` seconds (since anything last happened in them) and beyond the newest
        `keep` of their workflow; with both, a run must be both to go. Never a run a live
        process drives. Raises ValueError if neither rule is given."""
        ...
