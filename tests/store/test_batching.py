"""Writes in batches: one transaction per flush, shared by concurrent flushes, made in the
background by `autoflush`, and kept for the next try when a write fails."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import anyio
import pytest
from anyio import wait_all_tasks_blocked

from tempeh_tui.events import EventBus, RunFinished, RunStatus, StepOutput, StepStarted
from tempeh_tui.store import MemoryStore, SqliteStore, StoreError
from tests.store.support import start_run

pytestmark = pytest.mark.anyio


async def test_ten_thousand_log_lines_flush_in_one_transaction_well_under_a_second(
    sqlite_store: SqliteStore,
) -> None:
    bus = await start_run(sqlite_store, "run-1")
    commits = sqlite_store.commits
    for i in range(10_000):
        bus.emit(StepOutput, step="build", stream="stdout", line=f"line {i} of the build")

    began = time.perf_counter()
    await sqlite_store.flush()
    took = time.perf_counter() - began

    assert sqlite_store.commits == commits + 1
    assert took < 0.5, f"flushing 10,000 lines took {took:.3f}s"
    assert len(await sqlite_store.read_logs("run-1")) == 10_000


async def test_a_flush_with_nothing_new_writes_nothing(sqlite_store: SqliteStore) -> None:
    bus = await start_run(sqlite_store, "run-1")
    bus.emit(StepStarted, step="build", attempt=1)
    await sqlite_store.flush()
    commits = sqlite_store.commits

    await sqlite_store.flush()
    await sqlite_store.flush()

    assert sqlite_store.commits == commits


async def test_flushes_that_arrive_during_a_write_share_the_next_commit(
    sqlite_store: SqliteStore,
) -> None:
    bus = await start_run(sqlite_store, "run-1")
    bus.emit(StepStarted, step="build", attempt=1)
    commits = sqlite_store.commits

    async def record_and_flush(step: str) -> None:
        bus.emit(StepStarted, step=step, attempt=1)
        await sqlite_store.flush()

    async with anyio.create_task_group() as group:
        group.start_soon(sqlite_store.flush)
        await wait_all_tasks_blocked()  # it is writing: SQLite's thread has the first event
        for number in range(8):
            group.start_soon(record_and_flush, f"test-{number}")

    assert sqlite_store.commits == commits + 2
    assert sqlite_store.pending == 0
    assert len((await sqlite_store.get_run("run-1")).steps) == 9


async def test_autoflush_writes_while_the_run_goes_on_and_once_more_at_the_end(
    tmp_path: Path,
) -> None:
    path = tmp_path / "tempeh.db"
    async with SqliteStore(path) as store, SqliteStore(path) as watcher:
        bus = await start_run(store, "run-1")
        async with store.autoflush(interval=0.01):
            bus.emit(StepOutput, step="build", stream="stdout", line="first")
            # Nobody calls flush; another connection polls until the line is there.
            with anyio.fail_after(5):
                while not await watcher.read_logs("run-1"):  # noqa: ASYNC110
                    await anyio.sleep(0.01)
            bus.emit(RunFinished, status=RunStatus.SUCCEEDED)

        assert store.pending == 0
        assert (await watcher.get_run("run-1")).status is RunStatus.SUCCEEDED


async def test_autoflush_checkpoints_a_cancelled_run(sqlite_store: SqliteStore) -> None:
    bus = await start_run(sqlite_store, "run-1")

    with anyio.move_on_after(0.05):
        async with sqlite_store.autoflush(interval=60):
            bus.emit(StepStarted, step="build", attempt=1)
            await anyio.sleep_forever()

    assert sqlite_store.pending == 0


async def test_an_error_in_an_autoflushed_block_comes_out_as_itself(
    sqlite_store: SqliteStore,
) -> None:
    bus = await start_run(sqlite_store, "run-1")

    async def fail_mid_run() -> None:
        async with sqlite_store.autoflush():
            bus.emit(StepStarted, step="build", attempt=1)
            raise KeyError("boom")

    with pytest.raises(KeyError, match="boom"):
        await fail_mid_run()

    assert sqlite_store.pending == 0


async def test_autoflush_refuses_a_nonsense_interval() -> None:
    with pytest.raises(ValueError, match="positive"):
        async with MemoryStore().autoflush(interval=0):
            pass


async def test_a_failed_write_keeps_its_events_for_the_next_flush(tmp_path: Path) -> None:
    path = tmp_path / "tempeh.db"
    async with SqliteStore(path, busy_timeout=0.05) as store:
        bus = await start_run(store, "run-1")
        for i in range(10):
            bus.emit(StepOutput, step="build", stream="stdout", line=str(i))
        other = sqlite3.connect(path, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")  # another process holds the write lock too long

        with pytest.raises(StoreError, match="locked"):
            await store.flush()
        assert store.pending == 10

        other.execute("ROLLBACK")
        other.close()
        await store.flush()

        assert store.pending == 0
        assert len(await store.read_logs("run-1")) == 10


async def test_an_autoflush_that_cannot_write_stops_the_block_with_the_store_error(
    tmp_path: Path,
) -> None:
    path = tmp_path / "tempeh.db"
    async with SqliteStore(path, busy_timeout=0.05) as store:
        bus = await start_run(store, "run-1")
        other = sqlite3.connect(path, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")

        async def run_forever() -> None:
            async with store.autoflush(interval=0.01):
                bus.emit(StepStarted, step="build", attempt=1)
                await anyio.sleep_forever()

        try:
            with pytest.raises(StoreError, match="locked"):
                await run_forever()
        finally:
            other.execute("ROLLBACK")
            other.close()


async def test_memory_store_records_every_event_but_output_as_an_event_row() -> None:
    async with MemoryStore() as store:
        bus = EventBus("run-1")
        bus.subscribe(store.record)
        bus.emit(StepStarted, step="build", attempt=1)
        bus.emit(StepOutput, step="build", stream="stdout", line="x")
        await store.flush()

        assert [row["type"] for row in store.events.values()] == ["step_started"]
