"""`tempeh gc`: old runs go with everything of theirs; the newest of each workflow and every
run a live process drives stay."""

from __future__ import annotations

import json
import os
import sqlite3
import time
from pathlib import Path

import anyio
import pytest

from tempeh_tui.cli import main
from tempeh_tui.events import (
    Event,
    RunFinished,
    RunStarted,
    RunStatus,
    StepFinished,
    StepOutput,
    StepSpawned,
    StepStarted,
    StepStatus,
)
from tempeh_tui.store import LogCap, RunNotFound, SqliteStore, Store
from tests.store.support import start_run

DAY = 86_400.0
_TABLES = ("runs", "definitions", "units", "attempts", "logs", "events", "log_units")


async def _past_run(
    store: Store,
    run_id: str,
    days_ago: float,
    *,
    workflow: str = "shop",
    status: RunStatus | None = RunStatus.SUCCEEDED,
    lines: int = 3,
) -> None:
    """A run whose every event happened `days_ago` days ago (None status: it never ended)."""
    at = time.time() - days_ago * DAY
    await start_run(store, run_id, workflow, started_at=at)
    events: list[Event] = [
        RunStarted(run_id=run_id, seq=1, ts=at, workflow=workflow, units=("build",)),
        StepStarted(run_id=run_id, seq=2, ts=at, step="build", attempt=1),
        StepSpawned(
            run_id=run_id, seq=3, ts=at, step="build", attempt=1, pid=99, process_started=at
        ),
    ]
    events += [
        StepOutput(run_id=run_id, seq=4 + i, ts=at, step="build", stream="stdout", line=str(i))
        for i in range(lines)
    ]
    if status is not None:
        events += [
            StepFinished(
                run_id=run_id, seq=lines + 4, ts=at, step="build", status=StepStatus.SUCCEEDED
            ),
            RunFinished(run_id=run_id, seq=lines + 5, ts=at, status=status),
        ]
    for event in events:
        store.record(event)
    await store.flush()


async def _ids(store: Store) -> list[str]:
    return [run.id for run in await store.list_runs(limit=100)]


def _rows_of(path: Path, run_id: str) -> dict[str, int]:
    with sqlite3.connect(path) as db:
        counts = {
            table: db.execute(
                f"SELECT count(*) FROM {table} WHERE {'id' if table == 'runs' else 'run_id'} = ?",
                (run_id,),
            ).fetchone()[0]
            for table in _TABLES
        }
    db.close()
    return counts


@pytest.mark.anyio
async def test_runs_idle_longer_than_the_age_go_with_all_they_had(store: Store) -> None:
    for run_id, days in [("r40", 40), ("r35", 35), ("r10", 10), ("r0", 0)]:
        await _past_run(store, run_id, days)

    result = await store.prune_runs(older_than=30 * DAY)

    assert result.removed == ("r35", "r40")  # newest first
    assert await _ids(store) == ["r0", "r10"]
    with pytest.raises(RunNotFound):
        await store.get_run("r40")
    assert await store.read_logs("r40") == []
    assert len(await store.read_logs("r10")) == 3
    if isinstance(store, SqliteStore):
        assert set(_rows_of(store.path, "r40").values()) == {0}
        assert all(_rows_of(store.path, "r10").values())


@pytest.mark.anyio
async def test_keep_counts_the_newest_runs_of_each_workflow(store: Store) -> None:
    for number in range(4):
        await _past_run(store, f"shop-{number}", days_ago=10 - number, workflow="shop")
    for number in range(2):
        await _past_run(store, f"blog-{number}", days_ago=20 - number, workflow="blog")

    result = await store.prune_runs(keep=2)

    assert result.removed == ("shop-1", "shop-0")
    assert sorted(await _ids(store)) == ["blog-0", "blog-1", "shop-2", "shop-3"]


@pytest.mark.anyio
async def test_with_both_rules_a_run_goes_only_if_both_say_so(store: Store) -> None:
    for number, days in enumerate([50, 40, 5, 1]):
        await _past_run(store, f"r{number}", days)

    result = await store.prune_runs(keep=1, older_than=30 * DAY)

    assert result.removed == ("r1", "r0")  # r2 is beyond the newest one but not old enough


@pytest.mark.anyio
async def test_a_dry_run_removes_nothing(store: Store) -> None:
    await _past_run(store, "old", 90)

    result = await store.prune_runs(older_than=30 * DAY, dry_run=True)

    assert (result.removed, result.dry_run) == (("old",), True)
    assert await _ids(store) == ["old"]


@pytest.mark.anyio
async def test_a_run_this_process_drives_is_never_removed(store: Store) -> None:
    await _past_run(store, "driven", 90, status=None)
    await _past_run(store, "done", 90)
    await store.acquire_lease("driven")

    result = await store.prune_runs(keep=0)

    assert (result.removed, result.kept_active) == (("done",), ("driven",))
    assert await _ids(store) == ["driven"]


def _forge_lease(path: Path, run_id: str, pid: int, heartbeat: float) -> None:
    with sqlite3.connect(path) as db:
        db.execute(
            "UPDATE runs SET holder_pid = ?, holder_host = ?, holder_started = 1.0,"
            " leased_at = ?, heartbeat = ? WHERE id = ?",
            (pid, os.uname().nodename, heartbeat, heartbeat, run_id),
        )
    db.close()


@pytest.mark.anyio
async def test_a_running_run_whose_driver_died_is_removed_like_any_other(
    sqlite_store: SqliteStore,
) -> None:
    await _past_run(sqlite_store, "crashed", 60, status=None)  # its holder's pid is gone
    _forge_lease(sqlite_store.path, "crashed", 999_999_999, time.time())
    await _past_run(sqlite_store, "silent", 60, status=None)  # no heartbeat for 60 days
    _forge_lease(sqlite_store.path, "silent", os.getppid(), time.time() - 60 * DAY)
    await _past_run(sqlite_store, "unleased", 60, status=None)  # nobody ever held it
    await start_run(sqlite_store, "just-started")  # nobody holds it yet, but it is new

    result = await sqlite_store.prune_runs(keep=0)

    assert set(result.removed) == {"crashed", "silent", "unleased"}
    assert result.kept_active == ("just-started",)


@pytest.mark.anyio
async def test_prune_needs_a_rule(store: Store) -> None:
    with pytest.raises(ValueError, match="say which runs to remove"):
        await store.prune_runs()
    with pytest.raises(ValueError, match="keep must be 0 or more"):
        await store.prune_runs(keep=-1)


@pytest.mark.anyio
async def test_removing_runs_gives_their_space_back(tmp_path: Path) -> None:
    path = tmp_path / "tempeh.db"
    async with SqliteStore(path, log_cap=LogCap(head=100_000)) as store:
        await _past_run(store, "big", 90, lines=20_000)
        await _past_run(store, "small", 1)
    before = path.stat().st_size

    async with SqliteStore(path) as store:
        await store.prune_runs(older_than=30 * DAY)

    assert path.stat().st_size < before / 4
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    db.close()


# -- the command ---------------------------------------------------------------------------


@pytest.fixture
def db(tmp_path: Path) -> str:
    async def seed(path: Path) -> None:
        async with SqliteStore(path) as store:
            for run_id, days, workflow in [
                ("shop-old", 45, "shop"),
                ("shop-mid", 20, "shop"),
                ("shop-new", 2, "shop"),
                ("blog-old", 60, "blog"),
            ]:
                await _past_run(store, run_id, days, workflow=workflow)

    path = tmp_path / "tempeh.db"
    anyio.run(seed, path, backend="asyncio")
    return str(path)


def test_gc_without_rules_removes_runs_idle_for_thirty_days(
    db: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["gc", "--db", db]) == 0

    out = capsys.readouterr().out
    assert out.splitlines() == ["removed 2 runs (older than 30d):", "  shop-old", "  blog-old"]
    assert main(["gc", "--db", db]) == 0
    assert capsys.readouterr().out == "nothing to remove (older than 30d)\n"


def test_gc_json_lists_what_it_removed(db: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["gc", "--keep", "1", "--older-than", "10d", "--json", "--db", db]) == 0

    assert json.loads(capsys.readouterr().out) == {
        "removed": ["shop-mid", "shop-old"],
        "count": 2,
        "kept_active": [],
        "dry_run": False,
    }


def test_gc_dry_run_says_what_it_would_remove(db: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["gc", "--keep", "0", "--dry-run", "--db", db]) == 0

    assert capsys.readouterr().out.startswith("would remove 4 runs (beyond the newest 0 of")
    assert main(["runs", "--json", "--db", db]) == 0
    assert len(json.loads(capsys.readouterr().out)) == 4


@pytest.mark.parametrize(
    ("args", "complaint"),
    [
        (["--older-than", "soon"], "--older-than: 'soon' is not a duration"),
        (["--keep", "-1"], "--keep must be 0 or more"),
    ],
)
def test_gc_refuses_rules_it_cannot_read(
    db: str, capsys: pytest.CaptureFixture[str], args: list[str], complaint: str
) -> None:
    assert main(["gc", *args, "--db", db]) == 2

    captured = capsys.readouterr()
    assert complaint in captured.err
    assert captured.out == ""
