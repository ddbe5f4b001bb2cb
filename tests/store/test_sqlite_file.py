"""The SQLite file itself: durable, versioned, private, shared with readers, never foreign."""

from __future__ import annotations

import sqlite3
import stat
from pathlib import Path

import anyio
import anyio.lowlevel
import pytest

from tempeh_tui.events import RunStarted, StepFinished, StepOutput, StepStarted, StepStatus
from tempeh_tui.store import SqliteStore, StoreError
from tempeh_tui.store.schema import APPLICATION_ID, SCHEMA_VERSION
from tests.store.processes import WATCHER, Client
from tests.store.support import start_run, step_rows

pytestmark = pytest.mark.anyio


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _pragma(path: Path, name: str) -> object:
    with sqlite3.connect(path) as db:
        value = db.execute(f"PRAGMA {name}").fetchone()[0]
    db.close()
    return value


async def test_what_was_flushed_is_there_after_reopening(tmp_path: Path) -> None:
    path = tmp_path / "tempeh.db"
    async with SqliteStore(path) as store:
        bus = await start_run(store, "run-1")
        bus.emit(RunStarted, workflow="shop-release", units=("build",))
        bus.emit(StepStarted, step="build", attempt=1)
        for i in range(1000):
            bus.emit(StepOutput, step="build", stream="stdout", line=f"line {i}")
        await store.flush()
        bus.emit(StepFinished, step="build", status=StepStatus.SUCCEEDED, attempts=1)
        # not flushed: closing the store flushes it

    async with SqliteStore(path) as again:
        run = await again.get_run("run-1")
        lines = await again.read_logs("run-1")

    assert step_rows(run)["build"].status is StepStatus.SUCCEEDED
    assert [r.line for r in lines] == [f"line {i}" for i in range(1000)]
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    db.close()


async def test_the_store_is_created_private_in_private_folders(tmp_path: Path) -> None:
    path = tmp_path / "state" / "tempeh" / "tempeh.db"
    before = _mode(tmp_path)

    async with SqliteStore(path) as store:
        bus = await start_run(store, "run-1")
        bus.emit(StepOutput, step="build", stream="stdout", line="secret-free")
        await store.flush()
        wal = path.with_name(path.name + "-wal")
        assert wal.exists()
        assert _mode(wal) == 0o600

    assert _mode(path) == 0o600
    assert _mode(path.parent) == _mode(path.parent.parent) == 0o700
    assert _mode(tmp_path) == before  # folders that existed keep their mode


async def test_the_schema_is_versioned_and_marked_as_tempehs(sqlite_store: SqliteStore) -> None:
    path = sqlite_store.path

    assert _pragma(path, "user_version") == SCHEMA_VERSION >= 1
    assert _pragma(path, "application_id") == APPLICATION_ID
    assert _pragma(path, "journal_mode") == "wal"


async def test_a_store_from_a_newer_tempeh_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "tempeh.db"
    async with SqliteStore(path):
        pass
    with sqlite3.connect(path) as db:
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    db.close()

    with pytest.raises(StoreError, match="use a newer tempeh"):
        await SqliteStore(path).open()


@pytest.mark.parametrize(
    ("content", "complaint"),
    [
        (b"name: not a database\n" * 10, "not a usable tempeh store"),
        (None, "an SQLite database, but not a tempeh store"),
    ],
)
async def test_a_foreign_file_is_refused_and_left_as_it_was(
    tmp_path: Path, content: bytes | None, complaint: str
) -> None:
    path = tmp_path / "other.db"
    if content is None:
        with sqlite3.connect(path) as db:
            db.execute("CREATE TABLE invoices (id INTEGER)")
        db.close()
    else:
        path.write_bytes(content)
    before = path.read_bytes()

    with pytest.raises(StoreError, match=complaint):
        await SqliteStore(path).open()

    assert path.read_bytes() == before


async def test_stores_opening_a_new_file_at_once_all_get_the_same_schema(tmp_path: Path) -> None:
    path = tmp_path / "tempeh.db"
    stores = [SqliteStore(path) for _ in range(12)]

    async with anyio.create_task_group() as group:
        for store in stores:
            group.start_soon(store.open)
    for store in stores:
        await store.close()

    assert _pragma(path, "user_version") == SCHEMA_VERSION


async def test_a_reader_is_never_locked_out_while_a_run_writes(tmp_path: Path) -> None:
    path = tmp_path / "tempeh.db"
    reads = 0
    async with SqliteStore(path) as writer, SqliteStore(path) as reader:
        bus = await start_run(writer, "run-1")
        bus.emit(RunStarted, workflow="shop-release", units=("build",))
        await writer.flush()

        async def keep_reading() -> None:
            nonlocal reads
            while True:
                await reader.get_run("run-1")
                await reader.read_logs("run-1", "build", limit=100)
                reads += 1
                await anyio.lowlevel.checkpoint()

        async with anyio.create_task_group() as group:
            group.start_soon(keep_reading)
            for batch in range(50):
                for i in range(100):
                    bus.emit(StepOutput, step="build", stream="stdout", line=f"{batch}.{i}")
                bus.emit(StepStarted, step="build", attempt=batch + 1)
                await writer.flush()
            group.cancel_scope.cancel()

        assert len(await reader.read_logs("run-1")) == 5000
    assert reads > 0


async def test_a_watching_process_never_meets_a_locked_store_while_a_run_writes(
    tmp_path: Path,
) -> None:
    path = tmp_path / "tempeh.db"
    stop = tmp_path / "stop"
    async with SqliteStore(path) as writer:
        bus = await start_run(writer, "run-1")
        bus.emit(RunStarted, workflow="shop-release", units=("build",))
        await writer.flush()
        with Client(WATCHER, path, "run-1", stop) as watcher:
            assert watcher.read() == "ready"
            async with writer.lease("run-1", heartbeat_every=0.01):
                for batch in range(100):  # 100 commits of 50 lines, as fast as they go
                    for i in range(50):
                        bus.emit(StepOutput, step="build", stream="stdout", line=f"{batch}.{i}")
                    bus.emit(StepStarted, step="build", attempt=batch + 1)
                    await writer.flush()
                    await writer.prune_runs(keep=1)  # gc at the same time: nothing to remove
                    await anyio.lowlevel.checkpoint()
            stop.touch()
            out, err = watcher.finish()

    assert watcher.process.returncode == 0, err
    reads, lines, steps = map(int, out.split())
    assert reads > 10
    assert (lines, steps) == (5000, 1)


async def test_two_processes_writing_at_once_wait_for_each_other(tmp_path: Path) -> None:
    path = tmp_path / "tempeh.db"
    async with SqliteStore(path) as first, SqliteStore(path) as second:

        async def write(store: SqliteStore, run_id: str) -> None:
            bus = await start_run(store, run_id)
            for i in range(2000):
                bus.emit(StepOutput, step="build", stream="stdout", line=str(i))
                if i % 100 == 0:
                    await store.flush()
            await store.flush()

        async with anyio.create_task_group() as group:
            group.start_soon(write, first, "run-a")
            group.start_soon(write, second, "run-b")

        assert len(await first.read_logs("run-b")) == len(await second.read_logs("run-a")) == 2000


async def test_a_closed_store_says_so(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "tempeh.db")

    with pytest.raises(StoreError, match="not open"):
        await store.list_runs()
