"""The SQLite store's write side: plain `sqlite3` on a thread of its own, one hop a transaction.

A flush is one `BEGIN IMMEDIATE ... COMMIT` with one `executemany` per table and column set,
done in a single hop to the writer's thread. Measured here, for a flush of one event: through
aiosqlite, where every statement is a hop of its own (~70 µs), 850 µs; in one hop through
`anyio.to_thread` 440 µs (its hop alone ~200 µs); in one hop to a dedicated thread 250 µs, of
which the SQL is ~100. The engine flushes before it spawns a step, so this is on its path.
`BEGIN IMMEDIATE` because a WAL transaction that reads and then writes fails with "database is
locked" at once, whatever the busy timeout.

Opening also happens here: refuse a foreign or damaged file (`PRAGMA quick_check`) before
writing a byte, switch to WAL, and bring the schema up to date (`PRAGMA user_version`, see
`schema`). Log lines are capped per unit as they are written (see `log_cap`).
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import astuple
from pathlib import Path
from typing import Any, TypeVar

import anyio

from tempeh_tui.events import Event
from tempeh_tui.store.base import RunRecord, StoreError
from tempeh_tui.store.log_cap import MARKER_STREAM, LogCap, LogRow, UnitLog, plan_lines
from tempeh_tui.store.projection import Patch, Signature, project
from tempeh_tui.store.rows import RUN_COLUMNS, run_row
from tempeh_tui.store.schema import APPLICATION_ID, MIGRATIONS, SCHEMA_VERSION

__all__ = ["Writer", "apply_events", "immediate", "insert_run", "write_changes"]

R = TypeVar("R")

_INSERT_RUN = (
    f"INSERT INTO runs ({', '.join(RUN_COLUMNS)}) VALUES ({', '.join('?' * len(RUN_COLUMNS))})"
)
_INSERT_PLACEHOLDER_RUN = (
    "INSERT OR IGNORE INTO runs (id, workflow, status, definition, definition_hash, created_at)"
    " VALUES (?, ?, 'running', '{}', '', ?)"
)


class Writer:
    """The connection that writes the store, and the one thread that uses it."""

    def __init__(self, path: Path, busy_timeout: float) -> None:
        self.path = path
        self.busy_timeout = busy_timeout
        self._thread: ThreadPoolExecutor | None = None
        self._db: sqlite3.Connection | None = None

    async def open(self) -> None:
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="tempeh-store")
        try:
            self._db = await self._in_thread(_connect, self.path, self.busy_timeout)
        except BaseException:
            self._thread.shutdown()
            self._thread = None
            raise

    async def close(self) -> None:
        thread, db = self._thread, self._db
        self._thread = self._db = None
        if thread is None:
            return
        try:
            if db is not None:
                await self._in_thread(db.close, thread=thread)
        finally:
            thread.shutdown()

    async def run(self, action: Callable[[sqlite3.Connection, Any], R], argument: Any) -> R:
        """`action(connection, argument)` on the writer's thread."""
        if self._db is None:
            raise StoreError(f"the store {self.path} is not open")
        return await self._in_thread(action, self._db, argument)

    async def _in_thread(
        self, function: Callable[..., R], *args: Any, thread: ThreadPoolExecutor | None = None
    ) -> R:
        """Waited for even if cancelled: once begun, a transaction completes or rolls back."""
        loop = asyncio.get_running_loop()  # the store is asyncio's: aiosqlite is too
        with anyio.CancelScope(shield=True):
            result = await loop.run_in_executor(thread or self._thread, function, *args)
        return result


def _connect(path: Path, busy_timeout: float) -> sqlite3.Connection:
    """A connection that may write `path`, once the file is known to be a current tempeh store."""
    db = sqlite3.connect(path, timeout=busy_timeout, isolation_level=None, check_same_thread=False)
    db.row_factory = sqlite3.Row
    try:
        empty = _refuse_foreign(db, path)
        _refuse_damaged(db, path)
        if empty:  # only a new file can take it, and only before WAL writes its first page
            db.execute("PRAGMA auto_vacuum = INCREMENTAL")  # lets `gc` give space back
        _use_wal(db, path, busy_timeout)
        db.execute("PRAGMA synchronous = NORMAL")
        db.execute("PRAGMA foreign_keys = ON")
        _migrate(db, path)
    except sqlite3.DatabaseError as exc:
        db.close()
        raise StoreError(f"{path} is not a usable tempeh store: {exc}") from exc
    except BaseException:
        db.close()
        raise
    return db


def insert_run(db: sqlite3.Connection, run: RunRecord) -> None:
    """The run's row, and its definition in a row of its own (see `schema`, version 8)."""
    row = run_row(run)
    definition, row["definition"] = row["definition"], "{}"
    with immediate(db):
        try:
            db.execute(_INSERT_RUN, tuple(row.values()))
        except sqlite3.IntegrityError as exc:
            raise StoreError(f"run '{run.id}' already exists") from exc
        # (OR REPLACE: a row left by a run deleted outside tempeh, without foreign keys)
        db.execute("INSERT OR REPLACE INTO definitions VALUES (?, ?)", (run.id, definition))


def apply_events(
    db: sqlite3.Connection, batch: tuple[list[Event], Sequence[str | None], LogCap]
) -> None:
    """Write what a batch of events changes in one transaction (see `write_changes`)."""
    events, encoded, cap = batch
    with immediate(db):
        write_changes(db, events, cap, encoded)


def write_changes(
    db: sqlite3.Connection,
    events: Iterable[Event],
    cap: LogCap,
    encoded: Sequence[str | None] = (),
) -> None:
    """Write what `events` change, inside the caller's transaction: parents before children
    (foreign keys are checked row by row), log lines capped per unit. `encoded`: the events'
    fields as JSON where known already (see `project`)."""
    changes = project(events, encoded)
    if changes.new_runs:
        db.executemany(
            _INSERT_PLACEHOLDER_RUN,
            [(run_id, wf, ts) for run_id, (wf, ts) in changes.new_runs.items()],
        )
    _update(db, "runs", ("id",), changes.runs)
    _upsert(db, "units", ("run_id", "name"), changes.units, changes.units)
    _upsert(db, "attempts", ("run_id", "step", "attempt"), changes.attempts, changes.new_attempts)
    _upsert(db, "rollbacks", ("run_id", "id"), changes.rollbacks, changes.rollbacks)
    keys = ("run_id", "rollback_id", "unit")
    _upsert(db, "rollback_actions", keys, changes.actions, changes.actions)
    if changes.logs:
        _write_logs(db, cap, changes.logs)
    if changes.events:
        db.executemany("INSERT INTO events VALUES (?, ?, ?, ?, ?, ?)", changes.events)


_DROP_OLDEST_TAIL_LINES = (
    "DELETE FROM logs WHERE run_id = ? AND seq IN ("
    " SELECT seq FROM logs INDEXED BY logs_by_step"
    " WHERE run_id = ? AND step = ? AND seq > ? ORDER BY seq LIMIT ?)"
)


def _write_logs(db: sqlite3.Connection, cap: LogCap, rows: list[LogRow]) -> None:
    """Store a batch's log lines within each unit's cap: per unit one read of where its log
    stands, then one statement per kind of change for the whole batch."""
    by_unit: dict[tuple[str, str], list[LogRow]] = {}
    for row in rows:
        by_unit.setdefault((row[0], row[3]), []).append(row)
    inserts: list[LogRow] = []
    drops: list[tuple[str, str, str, int | None, int]] = []
    markers: list[tuple[str, str, str, int]] = []
    states: list[tuple[Any, ...]] = []
    for (run_id, step), lines in by_unit.items():
        found = db.execute(
            "SELECT lines, omitted, tail, tail_start FROM log_units WHERE run_id = ? AND step = ?",
            (run_id, step),
        ).fetchone()
        plan = plan_lines(cap, UnitLog(*found) if found else UnitLog(), lines)
        inserts.extend(plan.insert)
        if plan.drop:
            drops.append((run_id, run_id, step, plan.state.tail_start, plan.drop))
        if plan.marker is not None:
            seq, text = plan.marker
            markers.append((MARKER_STREAM, text, run_id, seq))
        states.append((run_id, step, *astuple(plan.state)))
    if drops:
        db.executemany(_DROP_OLDEST_TAIL_LINES, drops)
    if markers:
        db.executemany("UPDATE logs SET stream = ?, line = ? WHERE run_id = ? AND seq = ?", markers)
    db.executemany("INSERT INTO logs VALUES (?, ?, ?, ?, ?, ?, ?)", inserts)
    db.executemany("INSERT OR REPLACE INTO log_units VALUES (?, ?, ?, ?, ?, ?)", states)


def _update(
    db: sqlite3.Connection, table: str, key_columns: Sequence[str], patches: Mapping[Any, Patch]
) -> None:
    """One `UPDATE ... executemany` per distinct set of changed columns (a fill-only column
    is `COALESCE`d: written only where the row has no value yet)."""
    where = " AND ".join(f"{column} = ?" for column in key_columns)
    for (columns, fills), rows in _grouped(patches, keys_first=False).items():
        db.executemany(f"UPDATE {table} SET {_assignments(columns, fills)} WHERE {where}", rows)


def _upsert(
    db: sqlite3.Connection,
    table: str,
    key_columns: Sequence[str],
    patches: Mapping[Any, Patch],
    new: Collection[Any],
) -> None:
    """Like `_update`, but the rows of the keys in `new` are made if missing, in the same
    statement (an upsert: one B-tree search a row, where `INSERT OR IGNORE` and then `UPDATE`
    made two). A key in `new` without a patch only makes sure its row exists."""
    if not new:
        _update(db, table, key_columns, patches)
        return
    keys = ", ".join(key_columns)
    bare = [key for key in new if key not in patches or not patches[key].values]
    if bare:
        marks = ", ".join("?" * len(key_columns))
        db.executemany(f"INSERT OR IGNORE INTO {table} ({keys}) VALUES ({marks})", bare)
    _update(db, table, key_columns, {k: p for k, p in patches.items() if k not in new})
    made = {k: p for k, p in patches.items() if k in new}
    for (columns, fills), rows in _grouped(made, keys_first=True).items():
        marks = ", ".join("?" * (len(key_columns) + len(columns)))
        sets = ", ".join(
            f"{c} = COALESCE({table}.{c}, excluded.{c})" if c in fills else f"{c} = excluded.{c}"
            for c in columns
        )
        db.executemany(
            f"INSERT INTO {table} ({keys}, {', '.join(columns)}) VALUES ({marks})"
            f" ON CONFLICT ({keys}) DO UPDATE SET {sets}",
            rows,
        )


def _grouped(
    patches: Mapping[Any, Patch], *, keys_first: bool
) -> dict[Signature, list[tuple[Any, ...]]]:
    """The rows of the patches that change something, by signature: each a key's columns
    and its values in signature order (the order they were set in, see Patch.signature)."""
    groups: dict[Signature, list[tuple[Any, ...]]] = {}
    for key, patch in patches.items():
        if patch.values:
            keys = key if isinstance(key, tuple) else (key,)
            values = tuple(patch.values.values())
            groups.setdefault(patch.signature, []).append(
                (*keys, *values) if keys_first else (*values, *keys)
            )
    return groups


def _assignments(columns: Sequence[str], fills: Collection[str]) -> str:
    return ", ".join(
        f"{column} = COALESCE({column}, ?)" if column in fills else f"{column} = ?"
        for column in columns
    )


@contextmanager
def immediate(db: sqlite3.Connection) -> Iterator[None]:
    """A write transaction that takes the write lock first (waiting up to the busy timeout)."""
    db.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


def _refuse_foreign(db: sqlite3.Connection, path: Path) -> bool:
    """Never write into a file that is not ours: another program's database stays as it was.
    Returns whether the file is still empty (a new store)."""
    db.execute("BEGIN")  # one snapshot: another process may be creating the schema right now
    try:
        app_id = db.execute("PRAGMA application_id").fetchone()[0]
        tables = db.execute("SELECT name FROM sqlite_schema LIMIT 1").fetchall()
    finally:
        db.execute("COMMIT")
    if app_id not in (0, APPLICATION_ID):
        raise StoreError(f"{path} is not a tempeh store (application_id {app_id:#x})")
    if app_id == 0 and tables:
        raise StoreError(f"{path} is an SQLite database, but not a tempeh store")
    return not tables


def _refuse_damaged(db: sqlite3.Connection, path: Path) -> None:
    """`PRAGMA quick_check` (page structure, not indexes against tables: it reads the file
    once, ~0.2 s for 140 MB here). A damaged store is left exactly as it is, for recovery."""
    try:
        problems = [row[0] for row in db.execute("PRAGMA quick_check(3)")]
    except sqlite3.DatabaseError as exc:
        problems = [str(exc)]
    if problems != ["ok"]:
        problems = [" ".join(p.replace("*** in database main ***", "").split()) for p in problems]
        raise StoreError(
            f"{path} is damaged (quick_check: {'; '.join(problems)}); tempeh leaves it as it "
            f"is: restore it from a backup, or move it aside to start a new store"
        )


def _use_wal(db: sqlite3.Connection, path: Path, busy_timeout: float) -> None:
    """Switch the file to WAL (once: the mode is kept in the file).

    The switch needs the file to itself, and SQLite answers "locked" at once, without waiting,
    while another connection is switching too: so wait here, up to the busy timeout.
    """
    deadline = time.monotonic() + busy_timeout
    while True:
        try:
            mode = db.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            break
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.005)
    if str(mode).lower() != "wal":
        raise StoreError(f"{path}: cannot use WAL journaling here (got {mode})")


def _migrate(db: sqlite3.Connection, path: Path) -> None:
    if db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION:
        return
    with immediate(db):
        version = db.execute("PRAGMA user_version").fetchone()[0]  # another process may have won
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"{path} has schema version {version}; this tempeh knows up to "
                f"{SCHEMA_VERSION}: use a newer tempeh"
            )
        for script in MIGRATIONS[version:]:
            for statement in _statements(script):
                db.execute(statement)
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        db.execute(f"PRAGMA application_id = {APPLICATION_ID}")


def _statements(script: str) -> Iterable[str]:
    """Split a migration into statements (`executescript` would commit our transaction)."""
    statement = ""
    for line in script.splitlines(keepends=True):
        statement += line
        if sqlite3.complete_statement(statement):
            yield statement.strip()
            statement = ""
    if statement.strip():
        raise ValueError(f"incomplete SQL statement in a migration: {statement.strip()[:60]}")
