"""Rows as both stores keep them, and the records readers get back from them.

A row is a mapping of column name to SQLite value (`sqlite3.Row` or a plain dict), so the
conversion to records is written once for `SqliteStore` and `MemoryStore`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Sequence
from typing import Any, Protocol

from tempeh_tui.events import RunStatus, StepStatus
from tempeh_tui.store.base import (
    AttemptRecord,
    CachedResult,
    LogRecord,
    RollbackActionRecord,
    RollbackRecord,
    RunRecord,
    StepRecord,
)
from tempeh_tui.store.lease import LEASE_COLUMNS, judge, lease_from_row
from tempeh_tui.store.projection import dumps

__all__ = [
    "RUN_COLUMNS",
    "action_from_row",
    "action_order",
    "attempt_from_row",
    "cached_from_row",
    "log_from_row",
    "new_action_row",
    "new_attempt_row",
    "new_rollback_row",
    "new_unit_row",
    "placeholder_run_row",
    "rollback_from_row",
    "run_from_row",
    "run_row",
    "step_from_row",
    "unit_matches",
    "unit_order",
]


class Row(Protocol):
    """A row by column name: a `sqlite3.Row` or a `MemoryStore` dict."""

    def __getitem__(self, column: str, /) -> Any: ...


RUN_COLUMNS = (
    "id",
    "workflow",
    "status",
    "definition",
    "definition_hash",
    "params",
    "source",
    "created_at",
    "started_at",
    "ended_at",
    "max_concurrency",
    "message",
    "not_selected",
    "on_failure",
)


def run_row(run: RunRecord) -> dict[str, Any]:
    """The row `create_run` stores; `created_at` orders `list_runs` even before a run starts."""
    return {
        "id": run.id,
        "workflow": run.workflow,
        "status": run.status.value,
        "definition": dumps(run.definition),
        "definition_hash": run.definition_hash,
        "params": dumps(run.params),
        "source": run.source,
        "created_at": run.started_at if run.started_at is not None else time.time(),
        "started_at": run.started_at,
        "ended_at": run.ended_at,
        "max_concurrency": run.max_concurrency,
        "message": run.message,
        "not_selected": dumps(run.not_selected),
        "on_failure": run.on_failure,
    }


def placeholder_run_row(run_id: str, workflow: str, ts: float) -> dict[str, Any]:
    """The row of a run that events name but `create_run` never stored: its history is kept,
    but with no definition it cannot be resumed."""
    return {
        **dict.fromkeys(RUN_COLUMNS + LEASE_COLUMNS),
        "id": run_id,
        "workflow": workflow,
        "status": RunStatus.RUNNING.value,
        "definition": "{}",
        "definition_hash": "",
        "params": "{}",
        "not_selected": "{}",
        "created_at": ts,
    }


def new_unit_row(run_id: str, name: str) -> dict[str, Any]:
    """A unit's row before anything happened to it (the schema's defaults)."""
    return {
        "run_id": run_id,
        "name": name,
        "position": None,
        "status": StepStatus.PENDING.value,
        "attempts": 0,
        "exit_code": None,
        "error_class": None,
        "severity": None,
        "outputs": "{}",
        "started_at": None,
        "ended_at": None,
        "cached": 0,
        "cache_key": None,
        "reason": None,
        "pid": None,
    }


def new_attempt_row(run_id: str, step: str, attempt: int) -> dict[str, Any]:
    return {
        "run_id": run_id,
        "step": step,
        "attempt": attempt,
        "iteration": 1,
        "started_at": None,
        "ended_at": None,
        "exit_code": None,
        "error_class": None,
        "delay_after": None,
        "pid": None,
        "pgid": None,
        "process_started": None,
    }


def new_rollback_row(run_id: str, rollback_id: str) -> dict[str, Any]:
    return {
        "run_id": run_id,
        "id": rollback_id,
        "planned_at": None,
        "requested_by": None,
        "plan": "{}",
        "status": "running",
        "ended_at": None,
        "message": None,
    }


def new_action_row(run_id: str, rollback_id: str, unit: str) -> dict[str, Any]:
    return {
        "run_id": run_id,
        "rollback_id": rollback_id,
        "unit": unit,
        "command": None,
        "started_at": None,
        "ended_at": None,
        "status": StepStatus.ROLLING_BACK.value,
        "exit_code": None,
        "reason": None,
    }


def action_from_row(row: Row) -> RollbackActionRecord:
    return RollbackActionRecord(
        unit=row["unit"],
        status=StepStatus(row["status"]),
        command=row["command"],
        started_at=row["started_at"],
        ended_at=row["ended_at"],
        exit_code=row["exit_code"],
        reason=row["reason"],
    )


def action_order(row: Row) -> tuple[float, str]:
    """Compensations in the order they started (the SQL twin: `ORDER BY started_at, unit`)."""
    return (row["started_at"] or 0.0, row["unit"])


def rollback_from_row(row: Row, actions: Iterable[RollbackActionRecord] = ()) -> RollbackRecord:
    return RollbackRecord(
        id=row["id"],
        status=RunStatus(row["status"]),
        plan=json.loads(row["plan"]),
        requested_by=row["requested_by"],
        planned_at=row["planned_at"],
        ended_at=row["ended_at"],
        message=row["message"],
        actions=tuple(actions),
    )


def unit_order(row: Row) -> tuple[bool, int, str]:
    """Units in plan order (`RunStarted.units`), then those it did not list, by name; the
    SQL twin is `ORDER BY position IS NULL, position, name`."""
    return (row["position"] is None, row["position"] or 0, row["name"])


_DRIVEN = frozenset({RunStatus.RUNNING, RunStatus.PAUSED})
UNLEASED_GRACE = 10.0
"""Seconds a new run may be `running` without a lease: the time between its creation and
its driver taking the lease."""


def run_from_row(
    row: Row, steps: Sequence[StepRecord] = (), rollbacks: Sequence[RollbackRecord] = ()
) -> RunRecord:
    status, message, lease = RunStatus(row["status"]), row["message"], lease_from_row(row)
    now = time.time()
    if status in _DRIVEN and lease is not None and judge(lease, now) == "dead":
        # SPEC 2: `interrupted` - the process died (kill -9, a crash): nobody drives it now
        status = RunStatus.INTERRUPTED
        message = (
            f"the process that drove it (pid {lease.pid} on {lease.host}) died; "
            "`tempeh resume` continues it"
        )
    elif (
        status is RunStatus.RUNNING
        and lease is None
        and now - (row["created_at"] or 0) > UNLEASED_GRACE
    ):
        # a process that let the run go unfinished (a resume refused after it took the
        # lease): nobody drives it. (A paused run without a driver waits for an operator.)
        status = RunStatus.INTERRUPTED
        message = (
            "nobody drives it: its last process stopped before it ended; "
            "`tempeh resume` continues it"
        )
    return RunRecord(
        id=row["id"],
        workflow=row["workflow"],
        status=status,
        definition=json.loads(row["definition"]),
        definition_hash=row["definition_hash"],
        params=json.loads(row["params"]),
        source=row["source"],
        started_at=row["started_at"],
        ended_at=row["ended_at"],
        max_concurrency=row["max_concurrency"],
        message=message,
        not_selected=json.loads(row["not_selected"]),
        on_failure=row["on_failure"],
        steps=tuple(steps),
        lease=lease,
        rollbacks=tuple(rollbacks),
    )


def step_from_row(row: Row, attempts: Iterable[AttemptRecord] = ()) -> StepRecord:
    return StepRecord(
        name=row["name"],
        status=StepStatus(row["status"]),
        attempts=row["attempts"],
        exit_code=row["exit_code"],
        error_class=row["error_class"],
        severity=row["severity"],
        outputs=json.loads(row["outputs"]),
        started_at=row["started_at"],
        ended_at=row["ended_at"],
        cached=bool(row["cached"]),
        reason=row["reason"],
        attempt_history=tuple(attempts),
        cache_key=row["cache_key"],
        pid=row["pid"],
    )


def attempt_from_row(row: Row) -> AttemptRecord:
    return AttemptRecord(
        attempt=row["attempt"],
        started_at=row["started_at"] or 0.0,
        ended_at=row["ended_at"],
        exit_code=row["exit_code"],
        error_class=row["error_class"],
        delay_after=row["delay_after"],
        pid=row["pid"],
        iteration=row["iteration"],
        pgid=row["pgid"],
        process_started=row["process_started"],
    )


def log_from_row(row: Row) -> LogRecord:
    return LogRecord(
        seq=row["seq"],
        ts=row["ts"],
        step=row["step"],
        attempt=row["attempt"],
        stream=row["stream"],
        line=row["line"],
    )


def cached_from_row(unit: Row) -> CachedResult:
    outputs = json.loads(unit["outputs"])
    return CachedResult(run_id=unit["run_id"], step=unit["name"], outputs=outputs)


def unit_matches(unit: str, step: str) -> bool:
    """`logs RUN deploy` shows the step and every fan-out instance of it (`deploy[eu-1]`)."""
    return unit == step or unit.startswith(step + "[")
