"""What the store promises about its own file: a damaged one is refused and left untouched, an
older one is brought up to date, and a run reads back exactly as it was created."""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from tempeh_tui.events import EventBus, RunStatus, StepOutput
from tempeh_tui.store import LogCap, RunRecord, SqliteStore, Store, StoreError
from tempeh_tui.store.schema import APPLICATION_ID, MIGRATIONS, SCHEMA_VERSION
from tests.store.support import start_run

pytestmark = pytest.mark.anyio


def _page_count(path: Path) -> tuple[int, int]:
    with sqlite3.connect(path) as db:
        size, count = (db.execute(f"PRAGMA {p}").fetchone()[0] for p in ("page_size", "page_count"))
    db.close()
    return size, count


async def test_a_damaged_store_is_refused_by_name_and_left_byte_for_byte(tmp_path: Path) -> None:
    good = tmp_path / "tempeh.db"
    async with SqliteStore(good) as store:
        bus = await start_run(store, "run-1")
        for i in range(3000):
            bus.emit(StepOutput, step="build", stream="stdout", line=f"line {i}")
    size, count = _page_count(good)
    damaged = bytearray(good.read_bytes())
    page = count // 2  # somewhere in the log lines' pages: a b-tree page with a broken header
    damaged[(page - 1) * size : page * size] = b"\x0d" + b"\xff" * (size - 1)
    copy = tmp_path / "damaged.db"
    copy.write_bytes(damaged)

    with pytest.raises(StoreError) as refused:
        await SqliteStore(copy).open()

    message = str(refused.value)
    assert message.startswith(f"{copy} is damaged (quick_check: ")
    assert "restore it from a backup" in message
    assert copy.read_bytes() == damaged
    assert sorted(os.listdir(tmp_path)) == ["damaged.db", "tempeh.db"]  # no -wal, no -shm


async def test_a_run_reads_back_exactly_as_it_was_created(store: Store) -> None:
    definition: dict[str, Any] = {
        "name": "shop-release",
        "version": 3,
        "params": {"zone": {"default": "eu-1"}, "ratio": {"default": 0.1}},
        "steps": [
            {"name": "build", "run": "make VERSION={{ params.version }}", "timeout": 1e-7},
            {"name": "déploiement", "needs": ["build"], "env": {"Ω": "✓"}, "retry": None},
        ],
        "big": 2**53 + 1,
        "flags": [True, False, None],
        "a": "after z: key order is kept",
    }
    params = {"version": "1.4.2", "count": 7, "when": "2024-05-01T00:00:00+00:00"}
    await store.create_run(
        RunRecord(
            id="run-1",
            workflow="shop-release",
            status=RunStatus.RUNNING,
            definition=definition,
            definition_hash="sha256:abc",
            params=params,
        )
    )

    run = await store.get_run("run-1")

    assert run.definition == definition
    assert json.dumps(run.definition) == json.dumps(definition)  # the same keys, in order
    assert json.dumps(run.params) == json.dumps(params)
    assert run.definition_hash == "sha256:abc"


def _version_1_store(path: Path) -> None:
    """A store as tempeh wrote it before leases and log caps: a run with five lines."""
    with sqlite3.connect(path) as db:
        db.executescript(MIGRATIONS[0])
        db.executescript(f"PRAGMA user_version = 1; PRAGMA application_id = {APPLICATION_ID};")
        db.execute(
            "INSERT INTO runs (id, workflow, status, definition, definition_hash, created_at)"
            " VALUES ('old-run', 'shop', 'interrupted', ?, '', 1.0)",
            ('{"name": "shop", "steps": []}',),
        )
        db.executemany(
            "INSERT INTO logs VALUES ('old-run', ?, 1.0, 'build', 1, 'stdout', ?)",
            [(seq, f"line {seq}") for seq in range(1, 6)],
        )
    db.close()


async def test_an_older_store_is_migrated_and_its_logs_count_towards_the_cap(
    tmp_path: Path,
) -> None:
    path = tmp_path / "tempeh.db"
    _version_1_store(path)

    async with SqliteStore(path, log_cap=LogCap(head=3, tail=2)) as store:
        await store.acquire_lease("old-run")
        assert await store.last_seq("old-run") == 5
        bus = EventBus("old-run", first_seq=await store.last_seq("old-run"))
        bus.subscribe(store.record)
        for seq in range(6, 10):
            bus.emit(StepOutput, step="build", stream="stdout", line=f"line {seq}")
        await store.flush()
        lines = [r.line for r in await store.read_logs("old-run")]
        run = await store.get_run("old-run")

    assert lines == [*(f"line {i}" for i in range(1, 6)), "… 2 lines omitted …", "line 8", "line 9"]
    assert run.lease is not None
    assert run.definition == {"name": "shop", "steps": []}
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 8
        # where a tempeh started before the migration (still running) reads it
        assert db.execute("SELECT definition FROM runs").fetchall() == [
            ('{"name": "shop", "steps": []}',)
        ]
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    db.close()


async def test_the_definition_lives_apart_from_the_row_status_changes_rewrite(
    tmp_path: Path,
) -> None:
    """SQLite rewrites a whole row when an update changes its size: a 1,000-step definition in
    `runs` put ~0.8 MB in the WAL at every status change and lease (schema version 8)."""
    definition = {"name": "big", "steps": [{"name": f"s{i}", "run": "true"} for i in range(1000)]}
    path = tmp_path / "tempeh.db"
    async with SqliteStore(path) as store:
        await start_run(store, "big-run", "big", definition=definition)
        async with store.lease("big-run"):
            await store.heartbeat("big-run")
        assert (await store.get_run("big-run")).definition == definition
        assert (await store.list_runs())[0].definition == definition
        assert (await store.get_run("big")).definition == definition  # by a prefix of its id
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT definition FROM runs").fetchall() == [("{}",)]
        stored = db.execute("SELECT definition FROM definitions WHERE run_id = 'big-run'")
        assert json.loads(stored.fetchone()[0]) == definition
        # a run deleted by hand (the sqlite3 shell: no foreign keys) leaves its definition
        db.execute("DELETE FROM runs")
    db.close()
    async with SqliteStore(path) as store:  # a new run with that id is stored all the same
        await start_run(store, "big-run", "small", definition={"name": "small", "steps": []})
        assert (await store.get_run("big-run")).definition == {"name": "small", "steps": []}
