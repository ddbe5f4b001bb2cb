"""The SQLite store's transactions besides event batches: a run's lease, replaying the journals
of dead drivers, and removing old runs.

Each runs on the writer's thread. A lease is read, judged and written in one `BEGIN IMMEDIATE`
transaction: whichever process gets SQLite's write lock first decides, and every other one then
sees its lease. Pruning deletes run by run, each in a transaction of its own that checks again
that no live process drives the run, so a run being written meanwhile is left alone and a busy
engine never waits long behind `gc`.
"""

from __future__ import annotations

import contextlib
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tempeh_tui.store.base import LeaseLost, PruneResult, RunLease, RunNotFound
from tempeh_tui.store.journal import recover
from tempeh_tui.store.lease import (
    LEASE_COLUMNS,
    judge,
    lease_from_row,
    lease_values,
    renew,
    take,
)
from tempeh_tui.store.log_cap import LogCap
from tempeh_tui.store.pruning import RunActivity, is_driven, select_runs
from tempeh_tui.store.sqlite_writer import immediate, write_changes

__all__ = [
    "PruneRules",
    "prune",
    "recover_journals",
    "release_lease",
    "renew_lease",
    "take_lease",
]

_READ_LEASE = f"SELECT {', '.join(LEASE_COLUMNS)} FROM runs WHERE id = ?"
_WRITE_LEASE = f"UPDATE runs SET {', '.join(c + ' = ?' for c in LEASE_COLUMNS)} WHERE id = ?"

_VACUUM_PAGES = 2000
_INCREMENTAL = 2

_LAST_ACTIVE = """
max(created_at, coalesce(started_at, 0), coalesce(ended_at, 0), coalesce(heartbeat, 0),
    coalesce((SELECT ts FROM events WHERE events.run_id = runs.id ORDER BY seq DESC LIMIT 1), 0),
    coalesce((SELECT ts FROM logs WHERE logs.run_id = runs.id ORDER BY seq DESC LIMIT 1), 0))
"""
_ACTIVITY = (
    f"SELECT id, workflow, status, {', '.join(LEASE_COLUMNS)}, {_LAST_ACTIVE} AS last_active"
    " FROM runs"
)


def _lease_change(
    db: sqlite3.Connection, run_id: str, change: Callable[[RunLease | None], RunLease | None]
) -> RunLease | None:
    """Read the run's lease, let `change` judge it (or raise), write what it returns."""
    with immediate(db):
        row = db.execute(_READ_LEASE, (run_id,)).fetchone()
        if row is None:
            raise RunNotFound(run_id)
        before = lease_from_row(row)
        after = change(before)
        if after != before:
            db.execute(_WRITE_LEASE, (*lease_values(after), run_id))
    return before


def take_lease(db: sqlite3.Connection, job: tuple[str, Path, LogCap]) -> bool:
    """Acquire; True if this process did not hold the lease already. Raises RunLocked.
    A lease taken from a dead driver comes with what its journal holds (see `journal`)."""
    run_id, folder, cap = job
    taken: list[bool] = []

    def acquire(before: RunLease | None) -> RunLease:
        lease, new = take(run_id, before, time.time())
        taken.append(new)
        return lease

    _lease_change(db, run_id, acquire)
    if taken[0]:
        recover(
            db,
            folder,
            orphaned=lambda db, run_id: True,  # this process drives it now, nobody else
            apply=lambda db, events: write_changes(db, events, cap),
            run_id=run_id,
        )
    return taken[0]


def renew_lease(db: sqlite3.Connection, run_id: str) -> None:
    _lease_change(db, run_id, lambda before: renew(run_id, before, time.time()))


def release_lease(db: sqlite3.Connection, run_id: str) -> None:
    def release(before: RunLease | None) -> RunLease | None:
        try:
            renew(run_id, before, time.time())
        except LeaseLost:
            return before  # not ours (any more): leave it to its holder
        return None

    with contextlib.suppress(RunNotFound):  # removed meanwhile: nothing to release
        _lease_change(db, run_id, release)


def recover_journals(db: sqlite3.Connection, job: tuple[Path, LogCap]) -> list[str]:
    """Replay what dead drivers journaled but never wrote here (see `journal`); the runs."""
    folder, cap = job

    def orphaned(db: sqlite3.Connection, run_id: str) -> bool | None:
        row = db.execute(_READ_LEASE, (run_id,)).fetchone()
        if row is None:
            return None  # removed meanwhile: the journal goes with it
        return judge(lease_from_row(row), time.time()) in ("free", "dead")

    return recover(
        db, folder, orphaned=orphaned, apply=lambda db, events: write_changes(db, events, cap)
    )


@dataclass(frozen=True)
class PruneRules:
    keep: int | None
    older_than: float | None
    dry_run: bool = False


def _activity(row: sqlite3.Row) -> RunActivity:
    return RunActivity(
        id=row["id"],
        workflow=row["workflow"],
        status=row["status"],
        last_active=row["last_active"],
        lease=lease_from_row(row),
    )


def prune(db: sqlite3.Connection, rules: PruneRules) -> PruneResult:
    now = time.time()
    db.execute("BEGIN")  # one snapshot to choose from; each removal checks again
    try:
        rows = db.execute(_ACTIVITY + " ORDER BY created_at DESC, rowid DESC").fetchall()
    finally:
        db.execute("COMMIT")
    selected = select_runs(map(_activity, rows), rules.keep, rules.older_than, now)
    removed: list[str] = []
    kept: list[str] = []
    for candidate in selected:
        if is_driven(candidate, now):
            kept.append(candidate.id)
        elif rules.dry_run or _remove(db, candidate.id):
            removed.append(candidate.id)
        else:
            kept.append(candidate.id)
    if removed and not rules.dry_run:
        _give_space_back(db)
    return PruneResult(removed=tuple(removed), kept_active=tuple(kept), dry_run=rules.dry_run)


def _remove(db: sqlite3.Connection, run_id: str) -> bool:
    """Delete the run (its units, attempts, logs and events go with it: ON DELETE CASCADE),
    unless a process has started driving it since it was chosen."""
    with immediate(db):
        row = db.execute(_ACTIVITY + " WHERE id = ?", (run_id,)).fetchone()
        if row is None:
            return False
        if is_driven(_activity(row), time.time()):
            return False
        db.execute("DELETE FROM runs WHERE id = ?", (run_id,))
    return True


def _give_space_back(db: sqlite3.Connection) -> None:
    """Return freed pages to the file system (stores made with `auto_vacuum = INCREMENTAL`)
    and empty the WAL, waiting a moment at most for readers: a busy store is left for later."""
    if db.execute("PRAGMA auto_vacuum").fetchone()[0] == _INCREMENTAL:
        free = db.execute("PRAGMA freelist_count").fetchone()[0]
        while free:
            # A few thousand pages a transaction, so a run's flushes get in between. Through
            # `executescript`: `execute` steps a pragma once, and this one frees a page a step.
            db.executescript(f"PRAGMA incremental_vacuum({_VACUUM_PAGES});")
            free, before = db.execute("PRAGMA freelist_count").fetchone()[0], free
            if free >= before:
                break
    timeout = db.execute("PRAGMA busy_timeout").fetchone()[0]
    db.execute("PRAGMA busy_timeout = 1000")
    try:
        with contextlib.suppress(sqlite3.OperationalError):  # busy: the next checkpoint will do
            db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
    finally:
        db.execute(f"PRAGMA busy_timeout = {int(timeout)}")
