"""A store in dicts, for tests of the engine and the views: the SQLite store's behaviour
(the same projection, the same rows, the same records) without a file.
"""

from __future__ import annotations

import itertools
from typing import Any

from tempeh_tui.events import Event
from tempeh_tui.store.base import (
    CachedResult,
    LogRecord,
    RunNotFound,
    RunRecord,
    StoreError,
)
from tempeh_tui.store.buffer import EventBuffer
from tempeh_tui.store.projection import Patch, project
from tempeh_tui.store.rows import (
    attempt_from_row,
    cached_from_row,
    log_from_row,
    new_attempt_row,
    new_unit_row,
    placeholder_run_row,
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


class MemoryStore(EventBuffer):
    """Everything a `SqliteStore` keeps, kept in this process until it ends."""

    def __init__(self) -> None:
        super().__init__()
        self._runs: dict[str, Row] = {}  # in creation order: list_runs' tie-break
        self._units: dict[tuple[str, str], Row] = {}
        self._attempts: dict[tuple[str, str, int], Row] = {}
        self._logs: dict[tuple[str, int], Row] = {}
        self.events: dict[tuple[str, int], Row] = {}
        """Every event but output lines, as the `events` table keeps them."""

    async def open(self) -> None:
        pass

    async def close(self) -> None:
        await self.flush()

    async def create_run(self, run: RunRecord) -> None:
        if run.id in self._runs:
            raise StoreError(f"run '{run.id}' already exists")
        self._runs[run.id] = run_row(run)

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
        for seq, log in logs.items():
            self._logs[seq] = dict(zip(_LOG_COLUMNS, log, strict=True))
        for seq, event in events.items():
            self.events[seq] = dict(zip(_EVENT_COLUMNS, event, strict=True))

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
        return run_from_row(row, steps)

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
