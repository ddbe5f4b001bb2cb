"""The store: a run's memory (SPEC 4). SQLite by default, in memory for tests."""

from __future__ import annotations

from tempeh_tui.store.base import HEARTBEAT_INTERVAL as HEARTBEAT_INTERVAL
from tempeh_tui.store.base import LEASE_TIMEOUT as LEASE_TIMEOUT
from tempeh_tui.store.base import AttemptRecord as AttemptRecord
from tempeh_tui.store.base import CachedResult as CachedResult
from tempeh_tui.store.base import LeaseLost as LeaseLost
from tempeh_tui.store.base import LogRecord as LogRecord
from tempeh_tui.store.base import PruneResult as PruneResult
from tempeh_tui.store.base import RunLease as RunLease
from tempeh_tui.store.base import RunLocked as RunLocked
from tempeh_tui.store.base import RunNotFound as RunNotFound
from tempeh_tui.store.base import RunRecord as RunRecord
from tempeh_tui.store.base import StepRecord as StepRecord
from tempeh_tui.store.base import Store as Store
from tempeh_tui.store.base import StoreError as StoreError
from tempeh_tui.store.lease import same_process as same_process
from tempeh_tui.store.log_cap import LogCap as LogCap
from tempeh_tui.store.memory import MemoryStore as MemoryStore
from tempeh_tui.store.paths import default_store_path as default_store_path
from tempeh_tui.store.sqlite import SqliteStore as SqliteStore

__all__ = [
    "HEARTBEAT_INTERVAL",
    "LEASE_TIMEOUT",
    "AttemptRecord",
    "CachedResult",
    "LeaseLost",
    "LogCap",
    "LogRecord",
    "MemoryStore",
    "PruneResult",
    "RunLease",
    "RunLocked",
    "RunNotFound",
    "RunRecord",
    "SqliteStore",
    "StepRecord",
    "Store",
    "StoreError",
    "default_store_path",
    "open_existing_store",
    "open_store",
    "same_process",
]


def open_store(db: str | None = None) -> SqliteStore:
    """The store `--db` names (or the default one, SPEC 4), to use as
    `async with open_store(args.db) as store:`."""
    return SqliteStore(default_store_path(db))


def open_existing_store(db: str | None = None) -> SqliteStore:
    """`open_store`, for a command that only reads or answers a run: a store that is not
    there is an error (StoreError), not created (a `--db` with a typo would leave one)."""
    path = default_store_path(db)
    if not path.exists():
        raise StoreError(f"no store at {path}: nothing has run with it (check --db or TEMPEH_DB)")
    return SqliteStore(path)
