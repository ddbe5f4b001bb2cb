"""`tempeh runs`, `show` and `logs`: the store read back on the command line (SPEC 6)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import anyio
import pytest

from tempeh_tui.cli import main
from tempeh_tui.events import (
    EventBus,
    RunFinished,
    RunStarted,
    RunStatus,
    StepFinished,
    StepOutput,
    StepRetrying,
    StepStarted,
    StepStatus,
)
from tempeh_tui.store import SqliteStore
from tests.cli.process import run_tempeh
from tests.store.support import start_run

OLDER = "20240501-a1b2"
NEWER = "20240502-c3d4"


async def _seed(path: Path) -> None:
    async with SqliteStore(path) as store:
        bus = await start_run(store, OLDER, "shop-release", started_at=1_714_550_400.0)
        bus.emit(RunStarted, workflow="shop-release", units=("build", "deploy[eu]", "deploy[us]"))
        bus.emit(StepStarted, step="build", attempt=1)
        bus.emit(StepOutput, step="build", stream="stdout", line="compiling")
        bus.emit(
            StepRetrying,
            step="build",
            attempt=1,
            next_attempt=2,
            error_class="transient",
            exit_code=75,
            delay=2.0,
        )
        bus.emit(StepStarted, step="build", attempt=2)
        bus.emit(StepOutput, step="build", stream="stdout", line="compiled")
        bus.emit(StepFinished, step="build", status=StepStatus.SUCCEEDED, attempts=2, exit_code=0)
        for region in ("eu", "us"):
            unit = f"deploy[{region}]"
            bus.emit(StepStarted, step=unit, attempt=1)
            bus.emit(StepOutput, step=unit, stream="stdout", line=f"deploying to {region}")
            bus.emit(
                StepFinished,
                step=unit,
                status=StepStatus.SUCCEEDED,
                attempts=1,
                exit_code=0,
                outputs={"url": f"https://{region}.shop.example"},
            )
        bus.emit(RunFinished, status=RunStatus.SUCCEEDED)

        bus = await start_run(store, NEWER, "shop-release", started_at=1_714_636_800.0)
        bus.emit(RunStarted, workflow="shop-release", units=("migrate",))
        bus.emit(StepStarted, step="migrate", attempt=1)
        bus.emit(StepOutput, step="migrate", stream="stderr", line="no such table: orders")
        bus.emit(
            StepFinished,
            step="migrate",
            status=StepStatus.FAILED,
            attempts=1,
            exit_code=2,
            error_class="permanent",
        )
        bus.emit(RunFinished, status=RunStatus.FAILED, message="migrate failed")


@pytest.fixture
def db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("COLUMNS", "200")
    path = tmp_path / "tempeh.db"
    anyio.run(_seed, path, backend="asyncio")
    return str(path)


def _json(capsys: pytest.CaptureFixture[str], *args: str) -> object:
    assert main(list(args)) == 0
    return json.loads(capsys.readouterr().out)


def test_runs_lists_the_history_newest_first(db: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["runs", "--db", db]) == 0
    out = capsys.readouterr().out

    assert out.index(NEWER) < out.index(OLDER)
    assert "failed" in out
    assert "succeeded" in out
    assert "shop-release" in out


def test_runs_json_is_a_list_of_runs_without_steps(
    db: str, capsys: pytest.CaptureFixture[str]
) -> None:
    runs = _json(capsys, "runs", "--json", "--db", db)

    assert isinstance(runs, list)
    assert [r["id"] for r in runs] == [NEWER, OLDER]
    assert all("steps" not in r for r in runs)
    started = datetime.fromisoformat(runs[0]["started_at"])
    assert started.utcoffset() is not None  # a time zone, always
    assert started.timestamp() == 1_714_636_800.0
    assert _json(capsys, "runs", "--json", "--limit", "1", "--db", db) == runs[:1]


def test_show_json_has_every_step_with_its_outcome(
    db: str, capsys: pytest.CaptureFixture[str]
) -> None:
    run = _json(capsys, "show", "20240501", "--json", "--db", db)

    assert isinstance(run, dict)
    assert (run["id"], run["workflow"], run["status"]) == (OLDER, "shop-release", "succeeded")
    assert run["started_at"].endswith("+00:00")
    assert run["ended_at"].endswith("+00:00")
    build, eu, us = run["steps"]
    assert {k: build[k] for k in ("name", "status", "attempts", "exit_code", "error_class")} == {
        "name": "build",
        "status": "succeeded",
        "attempts": 2,
        "exit_code": 0,
        "error_class": None,
    }
    assert build["started_at"]
    assert build["ended_at"]
    retried = build["attempt_history"][0]
    assert (retried["exit_code"], retried["error_class"], retried["delay_after"]) == (
        75,
        "transient",
        2.0,
    )
    assert (eu["name"], eu["outputs"]) == ("deploy[eu]", {"url": "https://eu.shop.example"})
    assert us["name"] == "deploy[us]"
    assert run["rollbacks"] == []


def test_show_prints_the_run_and_a_table_of_its_steps(
    db: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["show", NEWER, "--db", db]) == 0
    out = capsys.readouterr().out

    assert NEWER in out
    assert "migrate failed" in out
    (row,) = [line for line in out.splitlines() if line.startswith("migrate ") and "│" in line]
    assert "failed" in row
    assert "permanent" in row
    assert " 2 " in row

    assert main(["show", OLDER, "--db", db]) == 0
    out = capsys.readouterr().out
    assert "url=https://eu.shop.example" in out
    assert "build attempt 1: exit 75 transient retried after 2s" in out


@pytest.mark.parametrize(
    ("run_id", "complaint"),
    [("nope", "run 'nope': no such run"), ("2024050", "2 runs start with it")],
)
def test_an_unknown_or_ambiguous_run_is_a_clear_error(
    db: str, capsys: pytest.CaptureFixture[str], run_id: str, complaint: str
) -> None:
    for command in (["show", run_id], ["logs", run_id]):
        assert main([*command, "--db", db]) == 2
        captured = capsys.readouterr()
        assert complaint in captured.err
        assert captured.out == ""


def test_logs_of_a_run_name_the_step_of_each_line(
    db: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["logs", OLDER, "--db", db]) == 0

    assert capsys.readouterr().out.splitlines() == [
        "build | compiling",
        "build | compiled",
        "deploy[eu] | deploying to eu",
        "deploy[us] | deploying to us",
    ]


def test_logs_of_a_step_are_its_lines_and_its_instances(
    db: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["logs", OLDER, "build", "--db", db]) == 0
    assert capsys.readouterr().out.splitlines() == ["compiling", "compiled"]

    assert main(["logs", OLDER, "deploy", "--db", db]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "deploy[eu] | deploying to eu",
        "deploy[us] | deploying to us",
    ]


def test_logs_of_a_step_the_run_does_not_have_is_an_error(
    db: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["logs", OLDER, "buidl", "--db", db]) == 2

    assert "has no step 'buidl'" in capsys.readouterr().err


def test_the_store_comes_from_tempeh_db_without_db(
    db: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TEMPEH_DB", db)

    runs = _json(capsys, "runs", "--json")

    assert isinstance(runs, list)
    assert len(runs) == 2


def test_show_json_as_a_real_process(db: str) -> None:
    result = run_tempeh("show", NEWER, "--json", "--db", db)

    assert result.returncode == 0, result.stderr
    run = json.loads(result.stdout)
    assert (run["status"], run["steps"][0]["error_class"]) == ("failed", "permanent")


async def _write_while_followed(path: Path, run_id: str) -> None:
    async with SqliteStore(path) as store:
        bus = EventBus(run_id, first_seq=1_000)
        bus.subscribe(store.record)
        bus.emit(RunStarted, workflow="live", units=("tail",))
        for i in range(5):
            bus.emit(StepOutput, step="tail", stream="stdout", line=f"live {i}")
            await store.flush()
            await anyio.sleep(0.1)
        bus.emit(StepOutput, step="tail", stream="stdout", line="last words")
        bus.emit(RunFinished, status=RunStatus.SUCCEEDED)


def test_logs_follow_prints_lines_as_they_come_until_the_run_ends(tmp_path: Path) -> None:
    path = tmp_path / "tempeh.db"

    async def begin() -> None:
        async with SqliteStore(path) as store:
            bus = await start_run(store, "live-run", "live")
            bus.emit(StepOutput, step="tail", stream="stdout", line="before")

    anyio.run(begin, backend="asyncio")
    script = Path(sys.executable).with_name("tempeh")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "tempeh_tui"]
    with subprocess.Popen(
        [*command, "logs", "live-run", "--follow", "--db", str(path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "NO_COLOR": "1"},
    ) as follower:
        anyio.run(_write_while_followed, path, "live-run", backend="asyncio")
        out, err = follower.communicate(timeout=20)

    assert follower.returncode == 0, err
    lines = [f"tail | live {i}" for i in range(5)]
    assert out.splitlines() == ["tail | before", *lines, "tail | last words"]


@pytest.mark.parametrize("columns", [None, "40"])
def test_piped_reports_cut_nothing_a_script_reads(db: str, columns: str | None) -> None:
    """Not on a terminal, Rich assumed 80 columns (or COLUMNS) and cut run ids to
    `20240502-c…`, which `tempeh show` then refused."""
    env = {k: v for k, v in os.environ.items() if k != "COLUMNS"}
    if columns is not None:
        env["COLUMNS"] = columns

    def piped(*args: str) -> str:
        command = [sys.executable, "-m", "tempeh_tui", *args, "--db", db]
        return subprocess.run(
            command, capture_output=True, text=True, env=env, timeout=30, check=True
        ).stdout

    rows = [line.split()[0] for line in piped("runs").splitlines()[2:]]
    assert rows == [NEWER, OLDER]
    shown = piped("show", rows[0])
    assert all("…" not in line for line in shown.splitlines())


def test_reading_a_store_that_is_not_there_creates_none(tmp_path: Path) -> None:
    """`tempeh runs --db typo.db` used to create an empty store there."""
    missing = tmp_path / "typo.db"

    listed = run_tempeh("runs", "--db", missing)
    shown = run_tempeh("show", "20240502", "--db", missing)
    logs = run_tempeh("logs", "20240502", "--db", missing)

    assert (listed.returncode, listed.stdout.strip()) == (0, "no runs yet")
    for refused in (shown, logs):
        assert refused.returncode == 2
        assert f"no store at {missing}: nothing has run with it" in refused.stderr
    assert not missing.exists()
