"""Engine tests run on anyio's pytest plugin, on asyncio (the backend tempeh runs on)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tempeh_tui.store.sqlite import SqliteStore


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    store = SqliteStore(tmp_path / "t.db")
    await store.open()
    try:
        yield store
    finally:
        await store.close()
