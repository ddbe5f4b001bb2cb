"""The checkpoint journal: a `checkpoint` survives a crash of its process before any write, and
the next process to open the store (or take the run's lease) replays it, once."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from tempeh_tui.events import StepFinished, StepOutput, StepStarted, StepStatus
from tempeh_tui.store import SqliteStore
from tempeh_tui.store.journal import Journal, journal_folder, read_journal
from tempeh_tui.store.projection import encoded_fields
from tests.store.support import start_run, step_rows

pytestmark = pytest.mark.anyio

# A driver that journals some events, flushes part of them to SQLite first, and is killed
# (SIGKILL, by itself) before it writes the rest: no close, no flush.
DRIVER = """
import os, signal, sys, anyio
from tempeh_tui.events import StepFinished, StepOutput, StepStarted, StepStatus
from tempeh_tui.store import SqliteStore
from tests.store.support import start_run

async def main(path: str, tear: bool) -> None:
    store = SqliteStore(path)
    await store.open()
    bus = await start_run(store, "run-1")
    await store.acquire_lease("run-1")
    bus.emit(StepStarted, step="build", attempt=1)
    await store.flush()  # in SQLite
    bus.emit(StepOutput, step="build", stream="stdout", line="built")
    bus.emit(StepFinished, step="build", status=StepStatus.SUCCEEDED, attempts=1,
             outputs={"artifact": "app-1.4.2.tar"})
    bus.emit(StepStarted, step="deploy", attempt=1)
    store.checkpoint()  # journaled only
    if tear:  # a line cut short: the process died in the middle of writing it
        folder = store._journal_files.folder
        with open(folder / "run-1.jsonl", "r+b") as journal:  # where the next line would go
            journal.seek(journal.read().index(b"\\0"))
            journal.write(b'["run-1", 99, 1.0, "step_fin')
    os.kill(os.getpid(), signal.SIGKILL)

anyio.run(main, sys.argv[1], sys.argv[2] == "tear")
"""


def _crash_driver(db: Path, *, tear: bool = False) -> None:
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run(
        [sys.executable, "-c", DRIVER, str(db), "tear" if tear else "clean"],
        check=False,
        cwd=root,
        env={**os.environ, "PYTHONPATH": str(root)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == -signal.SIGKILL, done.stderr


def _sqlite_units(db: Path) -> dict[str, str]:
    with sqlite3.connect(db) as conn:
        return dict(conn.execute("SELECT name, status FROM units WHERE run_id = 'run-1'"))


@pytest.mark.parametrize("tear", [False, True], ids=["whole", "torn-last-line"])
async def test_what_a_killed_driver_journaled_is_in_the_store_once_it_is_opened_again(
    tmp_path: Path, tear: bool
) -> None:
    db = tmp_path / "tempeh.db"
    _crash_driver(db, tear=tear)
    journal = journal_folder(db) / "run-1.jsonl"
    assert [e.type for e in read_journal(journal)] == [
        "step_output",
        "step_finished",
        "step_started",
    ]
    assert _sqlite_units(db) == {"build": "running"}  # what SQLite alone has

    async with SqliteStore(db) as store:
        run = await store.get_run("run-1")
        steps = step_rows(run)
        assert steps["build"].status is StepStatus.SUCCEEDED
        assert steps["build"].outputs == {"artifact": "app-1.4.2.tar"}
        assert steps["deploy"].status is StepStatus.RUNNING
        assert [line.line for line in await store.read_logs("run-1")] == ["built"]
        assert await store.last_seq("run-1") == 4
    assert not journal.exists()

    async with SqliteStore(db) as store:  # replayed once: nothing doubles
        assert [line.line for line in await store.read_logs("run-1")] == ["built"]
        assert await store.last_seq("run-1") == 4


async def test_a_live_drivers_journal_is_left_to_it(tmp_path: Path) -> None:
    db = tmp_path / "tempeh.db"
    async with SqliteStore(db) as driver:
        bus = await start_run(driver, "run-1")
        await driver.acquire_lease("run-1")
        bus.emit(StepStarted, step="build", attempt=1)
        driver.checkpoint()

        async with SqliteStore(db) as reader:  # its lease is alive: not the reader's to replay
            assert step_rows(await reader.get_run("run-1")) == {}
        assert (journal_folder(db) / "run-1.jsonl").exists()

        bus.emit(StepFinished, step="build", status=StepStatus.SUCCEEDED, attempts=1)
        await driver.flush()
        journal = journal_folder(db) / "run-1.jsonl"
        assert read_journal(journal) == []  # caught up: emptied

        bus.emit(StepOutput, step="build", stream="stdout", line="after")
        driver.checkpoint()  # written from the start again, the older lines not read
        assert [e.type for e in read_journal(journal)] == ["step_output"]
        await driver.flush()
        assert journal.exists()  # journaled since the last catch-up: emptied, kept
        bus.emit(StepOutput, step="build", stream="stdout", line="not journaled")
        await driver.flush()  # nothing journaled since the last catch-up: the file goes
        assert not journal.exists()
        bus.emit(StepOutput, step="build", stream="stdout", line="later")
        driver.checkpoint()  # the next checkpoint makes it again
        assert len(read_journal(journal)) == 1
    assert not (journal_folder(db) / "run-1.jsonl").exists()  # closed with nothing pending
    async with SqliteStore(db) as store:
        assert step_rows(await store.get_run("run-1"))["build"].status is StepStatus.SUCCEEDED


async def test_taking_a_dead_drivers_lease_replays_its_journal(tmp_path: Path) -> None:
    """A store opened before the driver died replays when it takes the run over."""
    db = tmp_path / "tempeh.db"
    async with SqliteStore(db) as store:
        # (opened first, so opening replayed nothing)
        _crash_driver(db)
        assert step_rows(await store.get_run("run-1"))["build"].status is StepStatus.RUNNING
        async with store.lease("run-1"):
            steps = step_rows(await store.get_run("run-1"))
        assert steps["build"].status is StepStatus.SUCCEEDED
        assert steps["deploy"].status is StepStatus.RUNNING


async def test_journal_files_are_private(tmp_path: Path) -> None:
    db = tmp_path / "tempeh.db"
    async with SqliteStore(db) as store:
        bus = await start_run(store, "run-1")
        bus.emit(StepOutput, step="build", stream="stdout", line="secret-ish")
        store.checkpoint()
        folder = journal_folder(db)
        assert folder.stat().st_mode & 0o777 == 0o700
        assert (folder / "run-1.jsonl").stat().st_mode & 0o777 == 0o600


def test_a_journal_grows_past_its_first_reservation_and_reopens_at_its_end(
    tmp_path: Path,
) -> None:
    """The file is reserved ahead and mapped: appending more than the first reservation (64 KiB)
    grows it, and a journal closed with events pending is appended to where it ended."""
    folder = tmp_path / "t.db.journal"
    line = "x" * 200
    first = [
        StepOutput(run_id="run-1", seq=seq, ts=1.0, step="build", stream="stdout", line=line)
        for seq in range(1, 1001)  # ~250 KiB of lines
    ]
    journal = Journal(folder)
    for start in range(0, len(first), 100):
        batch = first[start : start + 100]
        journal.append(batch, [encoded_fields(event) for event in batch])
    journal.close(remove=False)  # pending: left for a replay
    path = folder / "run-1.jsonl"
    assert path.stat().st_size == len(path.read_bytes().rstrip(b"\0"))  # no zeros left at its end

    more = StepOutput(run_id="run-1", seq=1001, ts=2.0, step="build", stream="stdout", line="end")
    again = Journal(folder)
    again.append([more], [encoded_fields(more)])
    read = read_journal(path)
    assert [event.seq for event in read] == list(range(1, 1002))
    assert read[0] == first[0]
    assert read[-1] == more
    again.close(remove=True)
    assert not path.exists()
