"""Engine tests run on anyio's pytest plugin, on asyncio (the backend tempeh runs on)."""

from __future__ import annotations

import pytest


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
