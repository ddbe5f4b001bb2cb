"""Events turned into row changes: the one place that says what each event does to the store.

`project(events)` folds a batch of events into the net change per row (a step that changed
state five times in a batch is written once), in the column encoding both stores keep (JSON text,
status strings, 0/1 flags). `SqliteStore` applies the result with one `executemany` per table
and column set; `MemoryStore` applies it to dicts. Pure: no I/O, no clock.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from json import encoder as json_encoder
from typing import Any

from tempeh_tui.events import (
    ConcurrencyChanged,
    DecisionAnswered,
    DecisionRequested,
    Event,
    RollbackFinished,
    RollbackPlanned,
    RollbackStepFinished,
    RollbackStepStarted,
    RunFinished,
    RunStarted,
    StepFinished,
    StepOutput,
    StepRetrying,
    StepSpawned,
    StepStarted,
    StepStatus,
    StepStatusChanged,
)

__all__ = ["Changes", "Patch", "dumps", "encoded_fields", "event_fields", "project", "quote"]

_COMMON_FIELDS = frozenset({"seq", "ts", "run_id", "step", "type"})
_ROLLBACK_STATES = frozenset({StepStatus.ROLLED_BACK, StepStatus.ROLLBACK_FAILED})

RunKey = str
UnitKey = tuple[str, str]
AttemptKey = tuple[str, str, int]
RollbackKey = tuple[str, str]
ActionKey = tuple[str, str, str]
Signature = tuple[tuple[str, ...], frozenset[str]]
"""A patch's columns, in order, and those of them that are only filled (see `Patch`)."""
_NO_FILL: frozenset[str] = frozenset()


_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))
_EVENT_FIELDS: dict[type[Event], tuple[str, ...]] = {}


def _not_json(value: Any) -> Any:
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


# What `_ENCODER.encode` makes for a container, made once rather than on every call (3.3 ->
# 2.2 µs for an event's fields); without circular-reference checks, which need a `markers`
# dict per call (the writer's thread encodes too): nothing stored refers to itself.
_make_c_encoder = getattr(json_encoder, "c_make_encoder", None)
_C_ENCODE: Callable[[Any, int], tuple[str, ...]] | None = (
    _make_c_encoder(
        None, _not_json, json_encoder.encode_basestring, None, ":", ",", False, False, True
    )
    if _make_c_encoder is not None
    else None
)
quote = json_encoder.encode_basestring
"""A string as a JSON string, as `dumps` writes it."""


def dumps(value: Any) -> str:
    """JSON as the store keeps it: compact, and readable in any language (no \\u escapes)."""
    if _C_ENCODE is not None:
        return "".join(_C_ENCODE(value, 0))
    return _ENCODER.encode(value)


def event_fields(event: Event) -> dict[str, Any]:
    """The event's own fields (not those the `events` table has columns for)."""
    names = _EVENT_FIELDS.get(type(event))
    if names is None:
        names = tuple(f.name for f in dataclasses.fields(event) if f.name not in _COMMON_FIELDS)
        _EVENT_FIELDS[type(event)] = names
    return {name: getattr(event, name) for name in names}


@dataclass
class Patch:
    """The columns to change on one row. A `fill`ed column is written only if the row has no
    value there yet (a step's first start time survives its retries and a resume)."""

    values: dict[str, Any] = field(default_factory=dict)
    fill_only: set[str] = field(default_factory=set)

    def set(self, column: str, value: Any) -> None:
        self.values[column] = value
        if self.fill_only:
            self.fill_only.discard(column)

    def set_all(self, values: dict[str, Any]) -> None:
        """`set` each column of `values` (one call for the many a step's start changes)."""
        self.values.update(values)
        if self.fill_only:
            self.fill_only.difference_update(values)

    def fill(self, column: str, value: Any) -> None:
        if column not in self.values:
            self.values[column] = value
            self.fill_only.add(column)
        elif self.values[column] is None:  # set to empty earlier in this batch: fill it now
            self.values[column] = value

    @property
    def signature(self) -> Signature:
        """Which columns, and how: patches with one signature share one SQL statement. In the
        order they were first set, not sorted: patches made by the same events agree anyway."""
        fill = self.fill_only
        return tuple(self.values), frozenset(fill) if fill else _NO_FILL

    def apply_to(self, row: dict[str, Any]) -> None:
        for column, value in self.values.items():
            if column not in self.fill_only or row.get(column) is None:
                row[column] = value


@dataclass
class Changes:
    """The net effect of a batch of events, row by row, in the order rows must be written:
    runs first (placeholders for runs nobody created), then units, then their attempts."""

    new_runs: dict[RunKey, tuple[str, float]] = field(default_factory=dict)
    """Every run the batch touches: its workflow name (if the batch says it) and first event
    time, for a placeholder row if no `create_run` made one (writes never fail for that)."""
    runs: dict[RunKey, Patch] = field(default_factory=dict)
    units: dict[UnitKey, Patch] = field(default_factory=dict)
    """Every unit the batch touches (an empty patch only makes sure the row exists)."""
    new_attempts: dict[AttemptKey, None] = field(default_factory=dict)
    attempts: dict[AttemptKey, Patch] = field(default_factory=dict)
    rollbacks: dict[RollbackKey, Patch] = field(default_factory=dict)
    """(run_id, rollback_id): every rollback the batch touches (the row is made if missing)."""
    actions: dict[ActionKey, Patch] = field(default_factory=dict)
    """(run_id, rollback_id, unit): a rollback's compensation of one unit."""
    logs: list[tuple[str, int, float, str, int, str, str]] = field(default_factory=list)
    """(run_id, seq, ts, step, attempt, stream, line)"""
    events: list[tuple[str, int, float, str, str | None, str]] = field(default_factory=list)
    """(run_id, seq, ts, type, step, data): every event but output lines, which are `logs`."""

    # (`get`, then make one: `setdefault(key, Patch())` would make a Patch every time)
    def run(self, run_id: str) -> Patch:
        patch = self.runs.get(run_id)
        if patch is None:
            patch = self.runs[run_id] = Patch()
        return patch

    def unit(self, run_id: str, name: str) -> Patch:
        patch = self.units.get((run_id, name))
        if patch is None:
            patch = self.units[run_id, name] = Patch()
        return patch

    def attempt(self, run_id: str, name: str, attempt: int) -> Patch:
        """An attempt's patch; it changes the row only if a `StepStarted` created it."""
        self.unit(run_id, name)
        patch = self.attempts.get((run_id, name, attempt))
        if patch is None:
            patch = self.attempts[run_id, name, attempt] = Patch()
        return patch

    def rollback(self, run_id: str, rollback_id: str) -> Patch:
        return self.rollbacks.setdefault((run_id, rollback_id), Patch())

    def action(self, run_id: str, rollback_id: str, unit: str) -> Patch:
        """A compensation's patch; its rollback's row and its unit's row are made if missing."""
        self.rollback(run_id, rollback_id)
        self.unit(run_id, unit)
        return self.actions.setdefault((run_id, rollback_id, unit), Patch())


def encoded_fields(event: Event) -> str:
    """The event's own fields as the `events` table and the journal keep them (JSON)."""
    return dumps(event_fields(event))


def project(events: Iterable[Event], encoded: Sequence[str | None] = ()) -> Changes:
    """Fold `events`, in order, into the changes they make to the store's rows. `encoded`:
    the events' `encoded_fields` where known already (the journal made them), else None."""
    changes = Changes()
    new_runs = changes.new_runs
    for index, event in enumerate(events):
        if event.run_id not in new_runs:
            new_runs[event.run_id] = ("", event.ts)
        if isinstance(event, StepOutput):
            changes.logs.append(
                (
                    event.run_id,
                    event.seq,
                    event.ts,
                    event.step or "",
                    event.attempt,
                    event.stream,
                    event.line,
                )
            )
            continue
        _project_one(changes, event)
        data = encoded[index] if index < len(encoded) else None
        if data is None:
            data = dumps(event_fields(event))
        changes.events.append((event.run_id, event.seq, event.ts, event.type, event.step, data))
    return changes


def _project_one(changes: Changes, event: Event) -> None:
    hot = _HOT.get(type(event))  # most of a run's events: one lookup, not a dozen isinstance
    if hot is not None and event.step is not None:
        hot(changes, event, event.step)
        return
    if isinstance(event, RunStarted):
        changes.new_runs[event.run_id] = (event.workflow, changes.new_runs[event.run_id][1])
        run = changes.run(event.run_id)
        run.set("status", "running")
        run.fill("started_at", event.ts)  # a resumed run keeps its first start
        run.set("ended_at", None)
        run.set("message", None)
        run.set("max_concurrency", event.max_concurrency)
        for position, name in enumerate(event.units):
            changes.unit(event.run_id, name).fill("position", position)
    elif isinstance(event, RunFinished):
        run = changes.run(event.run_id)
        run.set("status", event.status.value)
        run.set("ended_at", event.ts)
        run.set("message", event.message)
    elif isinstance(event, DecisionRequested):
        changes.run(event.run_id).set("status", "paused")
    elif isinstance(event, DecisionAnswered):
        changes.run(event.run_id).set("status", "paused" if event.still_waiting else "running")
    elif isinstance(event, ConcurrencyChanged):
        changes.run(event.run_id).set("max_concurrency", event.max_concurrency)
    elif isinstance(event, RollbackPlanned):
        rollback = changes.rollback(event.run_id, event.rollback_id)
        rollback.fill("planned_at", event.ts)
        rollback.set("requested_by", event.requested_by)
        rollback.set("plan", dumps(event.plan))
        rollback.set("status", "running")
        changes.run(event.run_id).set("status", "running")  # driven again, by its rollback
    elif isinstance(event, RollbackFinished):
        rollback = changes.rollback(event.run_id, event.rollback_id)
        rollback.set("status", event.status.value)
        rollback.set("ended_at", event.ts)
        rollback.set("message", event.message)
        run = changes.run(event.run_id)
        run.set("status", event.status.value)
        run.set("message", event.message)
        run.fill("ended_at", event.ts)  # a run whose engine died had no end
    elif event.step is None:
        return  # a step event without a step: nothing to project (kept in `events`)
    elif isinstance(event, StepStatusChanged):
        unit = changes.unit(event.run_id, event.step)
        unit.set("status", event.status.value)
        unit.set("reason", event.reason)
        if event.attempt:  # a failure that waits for a decision: its attempt has ended
            unit.set("exit_code", event.exit_code)
            unit.set("error_class", event.error_class)
            attempt = changes.attempt(event.run_id, event.step, event.attempt)
            attempt.fill("ended_at", event.ts)
            attempt.set("exit_code", event.exit_code)
            attempt.set("error_class", event.error_class)
    elif isinstance(event, StepStarted):
        _step_started(changes, event, event.step)
    elif isinstance(event, StepSpawned):
        _step_spawned(changes, event, event.step)
    elif isinstance(event, StepRetrying):
        unit = changes.unit(event.run_id, event.step)
        unit.set("exit_code", event.exit_code)
        unit.set("error_class", event.error_class)
        attempt = changes.attempt(event.run_id, event.step, event.attempt)
        attempt.fill("ended_at", event.ts)
        attempt.set("exit_code", event.exit_code)
        attempt.set("error_class", event.error_class)
        attempt.set("delay_after", event.delay)
    elif isinstance(event, StepFinished):
        _step_finished(changes, event, event.step)
    elif isinstance(event, RollbackStepStarted):
        unit = changes.unit(event.run_id, event.step)
        unit.set("status", StepStatus.ROLLING_BACK.value)
        action = changes.action(event.run_id, event.rollback_id, event.step)
        action.fill("started_at", event.ts)
        action.set("command", event.command)
        action.set("status", StepStatus.ROLLING_BACK.value)
    elif isinstance(event, RollbackStepFinished):
        unit = changes.unit(event.run_id, event.step)
        unit.set("status", event.status.value)
        unit.set("reason", event.reason)
        action = changes.action(event.run_id, event.rollback_id, event.step)
        action.fill("started_at", event.ts)
        action.set("ended_at", event.ts)
        action.set("status", event.status.value)
        action.set("exit_code", event.exit_code)
        action.set("reason", event.reason)


def _step_started(changes: Changes, event: StepStarted, name: str) -> None:
    unit = changes.unit(event.run_id, name)
    unit.set_all(
        {
            "status": StepStatus.RUNNING.value,
            "attempts": event.attempt,
            "ended_at": None,
            "exit_code": None,
            "error_class": None,
            "severity": None,
            "reason": None,
            "pid": event.pid,
        }
    )
    unit.fill("started_at", event.ts)
    key = (event.run_id, name, event.attempt)
    changes.new_attempts[key] = None
    attempt = changes.attempt(*key)
    attempt.fill("started_at", event.ts)  # a loop's later iterations stay in the same attempt
    attempt.set_all(
        {
            "iteration": event.iteration,
            "pid": event.pid,
            # all a batch's earlier events may have said of this attempt
            "ended_at": None,
            "exit_code": None,
            "error_class": None,
            "delay_after": None,
            "pgid": None,
            "process_started": None,  # an earlier iteration's process is not this one's
        }
    )


def _step_spawned(changes: Changes, event: StepSpawned, name: str) -> None:
    """The attempt's process exists: its pid is its process group (SPEC 5.4), and its start
    time tells it from a later process with the same pid when a resume kills leftovers."""
    changes.unit(event.run_id, name).set("pid", event.pid)
    attempt = changes.attempt(event.run_id, name, event.attempt)  # made by its StepStarted
    attempt.set("pid", event.pid)
    attempt.set("pgid", event.pid)
    attempt.set("process_started", event.process_started)


def _step_finished(changes: Changes, event: StepFinished, name: str) -> None:
    unit = changes.unit(event.run_id, name)
    unit.set("status", event.status.value)
    unit.set("reason", event.reason)
    if event.status in _ROLLBACK_STATES:
        return  # what the step did (its times, exit code, outputs) stays; rollbacks: issue 5
    if event.attempts > 0:
        unit.set("attempts", event.attempts)
    unit.set_all(
        {
            "ended_at": event.ts if event.ended_at is None else event.ended_at,
            "exit_code": event.exit_code,
            "error_class": event.error_class,
            "severity": event.severity,
            "outputs": dumps(event.outputs) if event.outputs else "{}",
            "cached": int(event.cached),
            "cache_key": event.cache_key,
        }
    )
    if event.attempts > 0 and not event.cached:
        # A retried attempt was closed by StepRetrying already; these only fill what is missing.
        attempt = changes.attempt(event.run_id, name, event.attempts)
        attempt.fill("ended_at", event.ts)
        attempt.fill("exit_code", event.exit_code)
        attempt.fill("error_class", event.error_class)


_HOT: dict[type[Event], Callable[[Changes, Any, str], None]] = {
    StepStarted: _step_started,
    StepSpawned: _step_spawned,
    StepFinished: _step_finished,
}
