"""Decision tests run on anyio's pytest plugin, on asyncio (aiosqlite speaks asyncio only)."""

from __future__ import annotations

import pytest


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
