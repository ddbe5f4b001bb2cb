"""The store: a run's memory (SPEC 4). SQLite by default, in memory for tests."""

from __future__ import annotations

from tempeh_tui.store.base import AttemptRecord as AttemptRecord
from tempeh_tui.store.base import CachedResult as CachedResult
from tempeh_tui.store.base import LogRecord as LogRecord
from tempeh_tui.store.base import RunNotFound as RunNotFound
from tempeh_tui.store.base import RunRecord as RunRecord
from tempeh_tui.store.base import StepRecord as StepRecord
from tempeh_tui.store.base import Store as Store
from tempeh_tui.store.base import StoreError as StoreError
from tempeh_tui.store.memory import MemoryStore as MemoryStore
from tempeh_tui.store.paths import default_store_path as default_store_path
from tempeh_tui.store.sqlite import SqliteStore as SqliteStore

__all__ = [
    "AttemptRecord",
    "CachedResult",
    "LogRecord",
    "MemoryStore",
    "RunNotFound",
    "RunRecord",
    "SqliteStore",
    "StepRecord",
    "Store",
    "StoreError",
    "default_store_path",
    "open_store",
]


def open_store(db: str | None = None) -> SqliteStore:
    """The store `--db` names (or the default one, SPEC 4), to use as
    `async with open_store(args.db) as store:`."""
    return SqliteStore(default_store_path(db))
