"""A step that prints faster than the store writes is paced: what waits to be written stays
bounded (memory too), and every line still reaches the store."""

from __future__ import annotations

import anyio
import pytest

from tempeh_tui.engine.engine import WorkflowEngine
from tempeh_tui.store import buffer
from tempeh_tui.store.sqlite import SqliteStore

pytestmark = pytest.mark.anyio


async def test_a_flood_of_output_never_leaves_more_than_a_bounded_backlog(
    store: SqliteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(buffer, "HIGH_WATER", 2_000)
    slow_write = store._write

    async def slower(batch: list[object]) -> None:  # a store that writes slowly
        await anyio.sleep(0.02)
        await slow_write(batch)  # type: ignore[arg-type]

    monkeypatch.setattr(store, "_write", slower)
    peak = 0

    async def watch() -> None:
        nonlocal peak
        while True:
            peak = max(peak, store.pending)
            await anyio.sleep(0.001)

    flow = {"name": "flood", "steps": [{"name": "many", "run": "seq 1 150000"}]}
    async with anyio.create_task_group() as tg:
        tg.start_soon(watch)
        result = await WorkflowEngine(store=store).execute_workflow(flow)
        tg.cancel_scope.cancel()

    assert result.succeeded
    # the high-water mark, plus what the reader had handed over and read when it stopped
    # (a mailbox's worth and a pipe read's worth, ~10,000 lines each): not 150,000
    assert peak < 2_000 + 2 * 10_000 + 8_000, peak
    lines = await store.read_logs(result.run_id, "many")
    assert lines[0].line == "1"
    assert lines[-1].line == "150000"
