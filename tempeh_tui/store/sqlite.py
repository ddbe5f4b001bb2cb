"""The default store: one SQLite file in WAL mode, written in batches, read by anyone.

Two connections: the write side (`sqlite_writer`: plain sqlite3 on a thread of its own, one hop a
transaction; leases and `gc` in `sqlite_upkeep`) and a read-only aiosqlite one, so readers never
wait behind a flush and a flush never waits behind readers. Other processes (`tempeh logs
--follow`, `tempeh watch`) read the same file while a run writes it."""

from __future__ import annotations

import dataclasses
import sqlite3
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from itertools import groupby
from pathlib import Path
from typing import Any, TypeVar

import aiosqlite
import anyio

from tempeh_tui.events import Event
from tempeh_tui.store.base import (
    CachedResult,
    DecisionRecord,
    LogRecord,
    PruneResult,
    RunNotFound,
    RunRecord,
    StepRecord,
    StoreError,
)
from tempeh_tui.store.buffer import EventBuffer
from tempeh_tui.store.decisions import decision_from_row, sqlite_answer, sqlite_ask
from tempeh_tui.store.journal import Journal, journal_folder
from tempeh_tui.store.lease import LEASE_COLUMNS, LeaseKeeper
from tempeh_tui.store.log_cap import DEFAULT_LOG_CAP, LogCap
from tempeh_tui.store.paths import prepare_store_file
from tempeh_tui.store.projection import encoded_fields
from tempeh_tui.store.pruning import check_rules
from tempeh_tui.store.rows import (
    RUN_COLUMNS,
    action_from_row,
    attempt_from_row,
    cached_from_row,
    log_from_row,
    rollback_from_row,
    run_from_row,
    step_from_row,
)
from tempeh_tui.store.sqlite_upkeep import (
    PruneRules,
    prune,
    recover_journals,
    release_lease,
    renew_lease,
    take_lease,
)
from tempeh_tui.store.sqlite_writer import Writer, apply_events, insert_run

__all__ = ["SqliteStore"]

_RUNS = (
    "SELECT "
    + ", ".join(f"runs.{c}" for c in (*RUN_COLUMNS, *LEASE_COLUMNS) if c != "definition")
    + ", coalesce(definitions.definition, runs.definition) AS definition"
    " FROM runs LEFT JOIN definitions ON definitions.run_id = runs.id"
)
"""Runs as `run_from_row` reads them: the definition from its own table where it has a row
there (schema version 8), else from the run's row (a run stored before)."""

T = TypeVar("T")
R = TypeVar("R")


class SqliteStore(EventBuffer, LeaseKeeper):
    """`async with SqliteStore(path) as store:`; see `Store` for what each method promises.

    `log_cap`: how many of each unit's log lines are kept (its head and tail, see `log_cap`).
    """

    def __init__(
        self, path: str | Path, *, busy_timeout: float = 30.0, log_cap: LogCap = DEFAULT_LOG_CAP
    ) -> None:
        super().__init__()
        self.path = Path(path)
        self.busy_timeout = busy_timeout
        self.log_cap = log_cap
        self._writer = Writer(self.path, busy_timeout)
        self._journal_files = Journal(journal_folder(self.path))
        # id(event) -> (event, its fields as JSON): encoded once for the journal and the write
        self._encoded: dict[int, tuple[Event, str]] = {}
        self._reader: aiosqlite.Connection | None = None
        self._read_lock = anyio.Lock()  # a reader's snapshot spans several statements

    # -- opening and closing -------------------------------------------------------------

    async def open(self) -> None:
        """Create or open the file, check it is ours, bring its schema up to date.

        Shielded, like `close`: a connection abandoned half-way leaves its thread behind.
        """
        if self._reader is not None:
            return
        with anyio.CancelScope(shield=True):
            try:
                prepare_store_file(self.path)
            except OSError as exc:
                raise StoreError(f"cannot create the store {self.path}: {exc.strerror}") from exc
            try:
                await self._writer.open()
            except sqlite3.Error as exc:
                raise StoreError(f"cannot open the store {self.path}: {exc}") from exc
            try:
                await self._in_writer(
                    recover_journals,
                    (self._journal_files.folder, self.log_cap),
                    "replay the journal of a run whose driver died",
                )
                self._reader = await _open_reader(self.path, self.busy_timeout)
            except BaseException:
                await self._writer.close()
                raise

    async def close(self) -> None:
        """Flush what is pending, then close both connections (also if the flush fails)."""
        if self._reader is None:
            return
        with anyio.CancelScope(shield=True):
            try:
                await self.flush()
            finally:
                reader, self._reader = self._reader, None
                self._journal_files.close(remove=self.pending == 0)
                await self._writer.close()
                await reader.close()

    # -- writing -------------------------------------------------------------------------

    async def create_run(self, run: RunRecord) -> None:
        async with self._write_lock:
            await self._in_writer(insert_run, run)

    async def _write(self, batch: list[Event]) -> None:
        # Called by `flush`, which holds the write lock. Projected on the writer's thread:
        # a big batch does not hold up the event loop (and the app's screen) meanwhile.
        known = self._encoded
        encoded = [
            entry[1] if (entry := known.pop(id(event), None)) and entry[0] is event else None
            for event in batch
        ]
        await self._in_writer(apply_events, (batch, encoded, self.log_cap))

    def _journal(self, events: list[Event]) -> None:
        fields = [encoded_fields(event) for event in events]
        try:
            self._journal_files.append(events, fields)
        except OSError as exc:
            raise StoreError(
                f"cannot write the journal in {self._journal_files.folder}: {exc.strerror}"
            ) from exc
        for event, data in zip(events, fields, strict=True):  # the write reuses them
            self._encoded[id(event)] = (event, data)

    def _journal_caught_up(self) -> None:
        self._journal_files.clear()

    async def _in_writer(
        self,
        action: Callable[[sqlite3.Connection, T], R],
        value: T,
        doing: str = "save the run's progress",
    ) -> R:
        try:
            return await self._writer.run(action, value)
        except sqlite3.Error as exc:
            raise StoreError(f"{self.path}: could not {doing}: {exc}") from exc

    # -- operator decisions --------------------------------------------------------------

    async def ask_decision(self, question: DecisionRecord) -> int:
        return await self._in_writer(sqlite_ask, question, "store a question for the operator")

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
        request = (run_id, unit, kind, answer, answered_by, env or {}, params or {})
        return await self._in_writer(sqlite_answer, request, "store the answer")

    async def decisions(self, run_id: str) -> list[DecisionRecord]:
        async with self._using() as db:
            rows = await db.execute_fetchall(
                "SELECT * FROM decisions WHERE run_id = ? ORDER BY id", (run_id,)
            )
        return [decision_from_row(row) for row in rows]

    # -- the lease, and removing old runs ------------------------------------------------

    async def _take_lease(self, run_id: str) -> bool:
        job = (run_id, self._journal_files.folder, self.log_cap)
        return await self._in_writer(take_lease, job, f"take the lease of run {run_id}")

    async def heartbeat(self, run_id: str) -> None:
        await self._in_writer(renew_lease, run_id, f"renew the lease of run {run_id}")

    async def release_lease(self, run_id: str) -> None:
        await self._in_writer(release_lease, run_id, f"release the lease of run {run_id}")

    async def prune_runs(
        self, *, keep: int | None = None, older_than: float | None = None, dry_run: bool = False
    ) -> PruneResult:
        check_rules(keep, older_than)
        rules = PruneRules(keep, older_than, dry_run)
        return await self._in_writer(prune, rules, "remove old runs")

    # -- reading -------------------------------------------------------------------------

    @asynccontextmanager
    async def _using(self) -> AsyncIterator[aiosqlite.Connection]:
        """The read connection, to one caller at a time; SQLite errors become StoreErrors.

        Shielded: a statement cancelled half-way would leave the connection in a transaction
        (aiosqlite runs it anyway, after the caller has stopped waiting for it).
        """
        async with self._read_lock:
            if self._reader is None:
                raise StoreError(f"the store {self.path} is not open")
            try:
                with anyio.CancelScope(shield=True):
                    yield self._reader
            except sqlite3.Error as exc:
                raise StoreError(f"{self.path}: {exc}") from exc

    async def list_runs(self, limit: int = 20) -> list[RunRecord]:
        async with self._using() as db:
            rows = await db.execute_fetchall(
                f"{_RUNS} ORDER BY runs.created_at DESC, runs.rowid DESC LIMIT ?", (limit,)
            )
        return [run_from_row(row) for row in rows]

    async def get_run(self, run_id: str) -> RunRecord:
        async with self._using() as db, _snapshot(db):
            row = await self._find_run(db, run_id)
            units = await db.execute_fetchall(
                "SELECT * FROM units WHERE run_id = ? ORDER BY position IS NULL, position, name",
                (row["id"],),
            )
            attempts = await db.execute_fetchall(
                "SELECT * FROM attempts WHERE run_id = ? ORDER BY step, attempt", (row["id"],)
            )
            rollbacks = await db.execute_fetchall(
                "SELECT * FROM rollbacks WHERE run_id = ? ORDER BY planned_at, id", (row["id"],)
            )
            actions = await db.execute_fetchall(
                "SELECT * FROM rollback_actions WHERE run_id = ?"
                " ORDER BY rollback_id, started_at, unit",
                (row["id"],),
            )
            asked = await db.execute_fetchall(
                "SELECT * FROM decisions WHERE run_id = ? ORDER BY id", (row["id"],)
            )
        history = {
            step: [attempt_from_row(a) for a in rows]
            for step, rows in groupby(attempts, key=lambda a: str(a["step"]))
        }
        steps: list[StepRecord] = [step_from_row(u, history.get(u["name"], ())) for u in units]
        done = {
            rollback_id: [action_from_row(a) for a in rows]
            for rollback_id, rows in groupby(actions, key=lambda a: str(a["rollback_id"]))
        }
        past = [rollback_from_row(r, done.get(r["id"], ())) for r in rollbacks]
        record = run_from_row(row, steps, past)
        return dataclasses.replace(record, decisions=tuple(decision_from_row(d) for d in asked))

    async def _find_run(self, db: aiosqlite.Connection, run_id: str) -> sqlite3.Row:
        exact = list(await db.execute_fetchall(f"{_RUNS} WHERE runs.id = ?", (run_id,)))
        if exact:
            return exact[0]
        if not run_id:
            raise RunNotFound(run_id)
        prefixed = " WHERE substr(runs.id, 1, ?) = ?"
        matches = list(
            await db.execute_fetchall(f"{_RUNS}{prefixed} LIMIT 2", (len(run_id), run_id))
        )
        if len(matches) == 1:
            return matches[0]
        if not matches:
            raise RunNotFound(run_id)
        count = list(
            await db.execute_fetchall(f"SELECT count(*) FROM runs{prefixed}", (len(run_id), run_id))
        )
        raise RunNotFound(run_id, candidates=count[0][0])

    async def read_logs(
        self, run_id: str, step: str | None = None, after_seq: int = 0, limit: int | None = None
    ) -> list[LogRecord]:
        """`run_id` is the full id. `step` selects a unit, or a step and all its instances."""
        if step is None:
            sql = "SELECT * FROM logs WHERE run_id = ? AND seq > ?"
            args: list[Any] = [run_id, after_seq]
        else:
            # `deploy` and `deploy[...]` ('\\' follows '['): two ranges of the step index, which
            # the planner would pass over for the primary key's order without being told.
            sql = (
                "SELECT * FROM logs INDEXED BY logs_by_step WHERE run_id = ?"
                " AND (step = ? OR (step >= ? AND step < ?)) AND seq > ?"
            )
            args = [run_id, step, step + "[", step + "\\", after_seq]
        sql += " ORDER BY seq LIMIT ?"
        args.append(-1 if limit is None else limit)
        async with self._using() as db:
            rows = await db.execute_fetchall(sql, args)
        return [log_from_row(row) for row in rows]

    async def last_seq(self, run_id: str) -> int:
        async with self._using() as db, _snapshot(db):
            found = list(await db.execute_fetchall("SELECT 1 FROM runs WHERE id = ?", (run_id,)))
            if not found:
                raise RunNotFound(run_id)
            rows = await db.execute_fetchall(
                "SELECT max((SELECT coalesce(max(seq), 0) FROM events WHERE run_id = ?),"
                " (SELECT coalesce(max(seq), 0) FROM logs WHERE run_id = ?))",
                (run_id, run_id),
            )
        return int(next(iter(rows))[0])

    async def find_cached(self, workflow: str, step: str, key: str) -> CachedResult | None:
        """The newest succeeded unit with this cache key, whether it ran or was a cache hit
        itself (its outputs are the same, and it outlives the run that first computed them)."""
        async with self._using() as db:
            rows = list(
                await db.execute_fetchall(
                    "SELECT units.* FROM units"
                    " JOIN runs ON runs.id = units.run_id"
                    " WHERE units.cache_key = ? AND units.name = ? AND runs.workflow = ?"
                    " AND units.status = 'succeeded'"
                    " ORDER BY units.ended_at DESC LIMIT 1",
                    (key, step, workflow),
                )
            )
        if not rows:
            return None
        return cached_from_row(rows[0])


async def _open_reader(path: Path, busy_timeout: float) -> aiosqlite.Connection:
    reader = await aiosqlite.connect(path, timeout=busy_timeout, isolation_level=None)
    try:
        reader.row_factory = sqlite3.Row
        await reader.execute("PRAGMA query_only = ON")
    except BaseException:
        await reader.close()
        raise
    return reader


@asynccontextmanager
async def _snapshot(db: aiosqlite.Connection) -> AsyncIterator[None]:
    """A read transaction: several queries see one committed state."""
    await db.execute("BEGIN")
    try:
        yield
    finally:
        if db.in_transaction:
            await db.execute("COMMIT")
