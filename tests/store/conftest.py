"""Fixtures of the store tests: both stores, opened on real files (SQLite) or in memory."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tempeh_tui.store import MemoryStore, SqliteStore, Store


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # aiosqlite speaks asyncio only


@pytest.fixture(params=["sqlite", "memory"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    """Each behaviour of the contract, once per store, used through the `Store` protocol."""
    opened: Store = (
        SqliteStore(tmp_path / "tempeh.db") if request.param == "sqlite" else MemoryStore()
    )
    await opened.open()
    try:
        yield opened
    finally:
        await opened.close()


@pytest.fixture
async def sqlite_store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    async with SqliteStore(tmp_path / "tempeh.db") as opened:
        yield opened
