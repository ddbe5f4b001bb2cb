"""A store in dicts, for tests of the engine and the views: the SQLite store's behaviour
(the same projection, the same rows, the same records) without a file.
"""

from __future__ import annotations

import dataclasses
import itertools
import time
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any

from tempeh_tui.events import Event
from tempeh_tui.store.base import (
    CachedResult,
    DecisionRecord,
    LeaseLost,
    LogRecord,
    PruneResult,
    RunLease,
    RunNotFound,
    RunRecord,
    StoreError,
)
from tempeh_tui.store.buffer import EventBuffer
from tempeh_tui.store.decisions import SUPERSEDED, SUPERSEDED_BY, answer_row, pick_waiting
from tempeh_tui.store.lease import (
    LEASE_COLUMNS,
    LeaseKeeper,
    lease_from_row,
    lease_values,
    renew,
    take,
)
from tempeh_tui.store.log_cap import (
    DEFAULT_LOG_CAP,
    MARKER_STREAM,
    LogCap,
    LogRow,
    UnitLog,
    plan_lines,
)
from tempeh_tui.store.projection import Patch, project
from tempeh_tui.store.pruning import RunActivity, is_driven, select_runs
from tempeh_tui.store.rows import (
    action_from_row,
    action_order,
    attempt_from_row,
    cached_from_row,
    log_from_row,
    new_action_row,
    new_attempt_row,
    new_rollback_row,
    new_unit_row,
    placeholder_run_row,
    rollback_from_row,
    run_from_row,
    run_row,
    step_from_row,
    unit_matches,
    unit_order,
)

__all__ = ["MemoryStore"]

Row = dict[str, Any]
_LOG_COLUMNS = ("run_id", "seq", "ts", "step", "attempt", "stream", "line")
_EVENT_COLUMNS = ("run_id", "seq", "ts", "type", "step", "data")


class MemoryStore(EventBuffer, LeaseKeeper):
    """Everything a `SqliteStore` keeps, kept in this process until it ends."""

    def __init__(self, *, log_cap: LogCap = DEFAULT_LOG_CAP) -> None:
        super().__init__()
        self.log_cap = log_cap
        self._runs: dict[str, Row] = {}  # in creation order: list_runs' tie-break
        self._units: dict[tuple[str, str], Row] = {}
        self._attempts: dict[tuple[str, str, int], Row] = {}
        self._logs: dict[tuple[str, int], Row] = {}
        self._log_units: dict[tuple[str, str], UnitLog] = {}
        self._rollbacks: dict[tuple[str, str], Row] = {}
        self._decisions: dict[tuple[str, int], DecisionRecord] = {}
        self._actions: dict[tuple[str, str, str], Row] = {}
        self._log_tails: dict[tuple[str, str], deque[int]] = {}
        """Each unit's stored tail lines' sequence numbers, oldest first."""
        self.events: dict[tuple[str, int], Row] = {}
        """Every event but output lines, as the `events` table keeps them."""

    async def open(self) -> None:
        pass

    async def close(self) -> None:
        await self.flush()

    async def create_run(self, run: RunRecord) -> None:
        if run.id in self._runs:
            raise StoreError(f"run '{run.id}' already exists")
        self._runs[run.id] = {**run_row(run), **dict.fromkeys(LEASE_COLUMNS)}

    async def _write(self, batch: list[Event]) -> None:
        changes = project(batch)
        logs = {(row[0], row[1]): row for row in changes.logs}
        events = {(row[0], row[1]): row for row in changes.events}
        clash = (logs.keys() & self._logs.keys()) | (events.keys() & self.events.keys())
        if clash or len(logs) < len(changes.logs) or len(events) < len(changes.events):
            raise StoreError("two events with one sequence number in a run")  # as SQLite would
        for run_id, (workflow, ts) in changes.new_runs.items():
            self._runs.setdefault(run_id, placeholder_run_row(run_id, workflow, ts))
        _patch(self._runs, changes.runs)
        for unit in changes.units:
            self._units.setdefault(unit, new_unit_row(*unit))
        _patch(self._units, changes.units)
        for attempt in changes.new_attempts:
            self._attempts.setdefault(attempt, new_attempt_row(*attempt))
        _patch(self._attempts, changes.attempts)
        for rollback in changes.rollbacks:
            self._rollbacks.setdefault(rollback, new_rollback_row(*rollback))
        _patch(self._rollbacks, changes.rollbacks)
        for action in changes.actions:
            self._actions.setdefault(action, new_action_row(*action))
        _patch(self._actions, changes.actions)
        self._write_logs(changes.logs)
        for seq, event in events.items():
            self.events[seq] = dict(zip(_EVENT_COLUMNS, event, strict=True))

    def _write_logs(self, rows: list[LogRow]) -> None:
        """The log cap, as `SqliteStore` applies it (see `log_cap`)."""
        by_unit: dict[tuple[str, str], list[LogRow]] = {}
        for row in rows:
            by_unit.setdefault((row[0], row[3]), []).append(row)
        for unit, lines in by_unit.items():
            run_id = unit[0]
            plan = plan_lines(self.log_cap, self._log_units.get(unit, UnitLog()), lines)
            tail = self._log_tails.setdefault(unit, deque())
            start = plan.state.tail_start
            while tail and start is not None and tail[0] <= start:
                tail.popleft()  # the line that became the marker
            for _ in range(plan.drop):
                del self._logs[(run_id, tail.popleft())]
            if plan.marker is not None:
                seq, text = plan.marker
                self._logs[(run_id, seq)].update(stream=MARKER_STREAM, line=text)
            for row in plan.insert:
                self._logs[(run_id, row[1])] = dict(zip(_LOG_COLUMNS, row, strict=True))
            tail.extend(row[1] for row in plan.insert[len(plan.insert) - plan.tail_inserted :])
            self._log_units[unit] = plan.state

    async def last_seq(self, run_id: str) -> int:
        if run_id not in self._runs:
            raise RunNotFound(run_id)
        seqs = [seq for run, seq in itertools.chain(self._logs, self.events) if run == run_id]
        return max(seqs, default=0)

    # -- the lease (one process: the rules as SqliteStore applies them) ------------------

    def _lease_change(
        self, run_id: str, change: Callable[[RunLease | None], RunLease | None]
    ) -> RunLease | None:
        row = self._runs.get(run_id)
        if row is None:
            raise RunNotFound(run_id)
        before = lease_from_row(row)
        row.update(zip(LEASE_COLUMNS, lease_values(change(before)), strict=True))
        return before

    async def _take_lease(self, run_id: str) -> bool:
        taken: list[bool] = []

        def acquire(before: RunLease | None) -> RunLease:
            lease, new = take(run_id, before, time.time())
            taken.append(new)
            return lease

        self._lease_change(run_id, acquire)
        return taken[0]

    async def heartbeat(self, run_id: str) -> None:
        self._lease_change(run_id, lambda before: renew(run_id, before, time.time()))

    async def release_lease(self, run_id: str) -> None:
        def release(before: RunLease | None) -> RunLease | None:
            try:
                renew(run_id, before, time.time())
            except LeaseLost:
                return before
            return None

        if run_id in self._runs:
            self._lease_change(run_id, release)

    async def prune_runs(
        self, *, keep: int | None = None, older_than: float | None = None, dry_run: bool = False
    ) -> PruneResult:
        now = time.time()
        newest = sorted(
            enumerate(self._runs.values()), key=lambda i_row: (i_row[1]["created_at"], i_row[0])
        )
        activity = [self._activity(row) for _, row in reversed(newest)]
        removed: list[str] = []
        kept: list[str] = []
        for run in select_runs(activity, keep, older_than, now):
            if is_driven(run, now):
                kept.append(run.id)
                continue
            removed.append(run.id)
            if not dry_run:
                self._remove(run.id)
        return PruneResult(removed=tuple(removed), kept_active=tuple(kept), dry_run=dry_run)

    def _activity(self, row: Row) -> RunActivity:
        run_id = row["id"]
        times = [row[c] for c in ("created_at", "started_at", "ended_at", "heartbeat")]
        times += [
            r["ts"]
            for (run, _), r in itertools.chain(self._logs.items(), self.events.items())
            if run == run_id
        ]
        return RunActivity(
            id=run_id,
            workflow=row["workflow"],
            status=row["status"],
            last_active=max(t for t in times if t is not None),
            lease=lease_from_row(row),
        )

    def _remove(self, run_id: str) -> None:
        del self._runs[run_id]
        tables: tuple[dict[Any, Any], ...] = (
            self._units,
            self._attempts,
            self._logs,
            self.events,
            self._log_units,
            self._log_tails,
            self._rollbacks,
            self._actions,
            self._decisions,
        )
        for rows in tables:
            for key in [k for k in rows if k[0] == run_id]:
                del rows[key]

    async def ask_decision(self, question: DecisionRecord) -> int:
        for key, open_ in list(self._decisions.items()):  # asked anew: the old one is closed
            if open_.waiting and (open_.run_id, open_.unit, open_.kind) == (
                question.run_id,
                question.unit,
                question.kind,
            ):
                self._decisions[key] = dataclasses.replace(
                    open_, **answer_row(SUPERSEDED, SUPERSEDED_BY)
                )
        number = len(self._decisions) + 1 + max((k[1] for k in self._decisions), default=0)
        self._decisions[(question.run_id, number)] = dataclasses.replace(question, id=number)
        return number

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
        found = pick_waiting(await self.decisions(run_id), unit, kind)
        if found is None:
            return None
        answered = dataclasses.replace(found, **answer_row(answer, answered_by, env, params))
        self._decisions[(run_id, found.id)] = answered
        return answered

    async def decisions(self, run_id: str) -> list[DecisionRecord]:
        return [d for (run, _), d in sorted(self._decisions.items()) if run == run_id]

    async def list_runs(self, limit: int = 20) -> list[RunRecord]:
        newest = sorted(
            enumerate(self._runs.values()), key=lambda i_row: (i_row[1]["created_at"], i_row[0])
        )
        return [run_from_row(row) for _, row in itertools.islice(reversed(newest), limit)]

    async def get_run(self, run_id: str) -> RunRecord:
        row = self._find_run(run_id)
        units = sorted((u for k, u in self._units.items() if k[0] == row["id"]), key=unit_order)
        steps = [
            step_from_row(
                unit,
                [
                    attempt_from_row(a)
                    for k, a in sorted(self._attempts.items())
                    if k[:2] == (row["id"], unit["name"])
                ],
            )
            for unit in units
        ]
        rollbacks = sorted(
            (r for k, r in self._rollbacks.items() if k[0] == row["id"]),
            key=lambda r: (r["planned_at"] or 0.0, r["id"]),
        )
        past = [
            rollback_from_row(
                r,
                [
                    action_from_row(a)
                    for a in sorted(
                        (a for k, a in self._actions.items() if k[:2] == (row["id"], r["id"])),
                        key=action_order,
                    )
                ],
            )
            for r in rollbacks
        ]
        asked = tuple(await self.decisions(row["id"]))
        return dataclasses.replace(run_from_row(row, steps, past), decisions=asked)

    def _find_run(self, run_id: str) -> Row:
        if run_id in self._runs:
            return self._runs[run_id]
        matches = [row for key, row in self._runs.items() if run_id and key.startswith(run_id)]
        if len(matches) != 1:
            raise RunNotFound(run_id, candidates=len(matches))
        return matches[0]

    async def read_logs(
        self, run_id: str, step: str | None = None, after_seq: int = 0, limit: int | None = None
    ) -> list[LogRecord]:
        rows = (
            row
            for (run, seq), row in sorted(self._logs.items())
            if run == run_id
            and seq > after_seq
            and (step is None or unit_matches(row["step"], step))
        )
        return [log_from_row(row) for row in itertools.islice(rows, limit)]

    async def find_cached(self, workflow: str, step: str, key: str) -> CachedResult | None:
        hits = [
            unit
            for (run_id, name), unit in self._units.items()
            if name == step
            and unit["cache_key"] == key
            and unit["status"] == "succeeded"
            and self._runs[run_id]["workflow"] == workflow
        ]
        if not hits:
            return None
        return cached_from_row(max(hits, key=lambda unit: unit["ended_at"] or 0.0))


def _patch(rows: dict[Any, Row], patches: dict[Any, Patch]) -> None:
    """Apply patches to the rows that exist (an UPDATE of a missing row changes nothing)."""
    for key, patch in patches.items():
        row = rows.get(key)
        if row is not None:
            patch.apply_to(row)
