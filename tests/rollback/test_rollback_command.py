"""`tempeh rollback RUN`: the plan first, `--yes` to act, exit codes, and `show` remembering it."""

from __future__ import annotations

import json
import os
import sqlite3
import time
from pathlib import Path

import anyio
import pytest

from tempeh_tui.cli import main
from tempeh_tui.store.lease import process_start_time

from .support import compensated, ledger_step, run_workflow, write_workflow


def make_run(tmp_path: Path, *, failing_undo: bool = False) -> tuple[str, str, Path]:
    """A finished run of lint → migrate → deploy (lint has no rollback); (db, run id, ledger)."""
    db, ledger = tmp_path / "t.db", tmp_path / "ledger"
    undo = "echo no way back >&2; exit 9" if failing_undo else None
    steps = [
        ledger_step("lint", ledger, rollback=False),
        ledger_step("migrate", ledger, needs=["lint"]),
        ledger_step("deploy", ledger, needs=["migrate"], undo=undo),
    ]
    result = anyio.run(run_workflow, db, write_workflow(tmp_path, steps))
    return str(db), result.run_id, ledger


def driven_by_another_process(db: str, run_id: str) -> int:
    """Give the run's lease to a live process that is not this one, as another `tempeh`
    driving it would hold it; returns that process's pid."""
    driver = os.getppid()
    with sqlite3.connect(db) as conn:
        conn.execute(
            "UPDATE runs SET holder_pid = ?, holder_host = ?, holder_started = ?, leased_at = ?,"
            " heartbeat = ? WHERE id = ?",
            (
                driver,
                os.uname().nodename,
                process_start_time(driver),
                time.time(),
                time.time(),
                run_id,
            ),
        )
    conn.close()
    return driver


def test_plan_prints_order_groups_reasons_and_what_has_nothing_to_undo(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db, run_id, ledger = make_run(tmp_path)

    assert main(["rollback", run_id, "--plan", "--db", db]) == 0

    out = capsys.readouterr().out
    assert f"Rollback plan for run {run_id}" in out
    rows = [line.replace("│", " ").split() for line in out.splitlines() if "requested" in line]
    assert rows == [["1", "1", "deploy", "requested"], ["2", "2", "migrate", "requested"]]
    assert "nothing to undo (no rollback): lint" in out
    assert compensated(ledger) == []


def test_plan_as_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db, run_id, _ = make_run(tmp_path)

    assert main(["rollback", run_id, "--steps", "deploy", "--plan", "--json", "--db", db]) == 0

    plan = json.loads(capsys.readouterr().out)
    assert plan["run_id"] == run_id
    assert plan["groups"] == [["deploy"]]
    assert plan["units"][0]["why"] == "requested"
    assert plan["requested"] == ["deploy"]


def test_without_yes_nothing_is_done_and_the_exit_code_is_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db, run_id, ledger = make_run(tmp_path)

    assert main(["rollback", run_id, "--db", db]) == 2

    captured = capsys.readouterr()
    assert "deploy" in captured.out
    assert "add --yes" in captured.err
    assert compensated(ledger) == []


def test_an_unknown_step_is_invalid_input(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db, run_id, _ = make_run(tmp_path)

    assert main(["rollback", run_id, "--steps", "deplyo", "--plan", "--db", db]) == 2
    assert "did you mean 'deploy'" in capsys.readouterr().err


def test_yes_rolls_back_and_show_lists_the_history(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db, run_id, ledger = make_run(tmp_path)

    assert main(["rollback", run_id, "--yes", "--db", db]) == 0
    out = capsys.readouterr().out
    assert "[deploy] rolling back" in out
    assert "rolled_back" in out

    assert main(["show", run_id, "--json", "--db", db]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["status"] == "rolled_back"
    assert {s["name"]: s["status"] for s in shown["steps"]} == {
        "lint": "succeeded",
        "migrate": "rolled_back",
        "deploy": "rolled_back",
    }
    [history] = shown["rollbacks"]
    assert history["status"] == "rolled_back"
    assert history["requested_by"]
    assert history["planned_at"].endswith("+00:00")
    assert history["plan"]["order"] == ["deploy", "migrate"]
    assert history["plan"]["nothing_to_undo"] == ["lint"]
    assert [(a["unit"], a["status"], a["exit_code"]) for a in history["actions"]] == [
        ("deploy", "rolled_back", 0),
        ("migrate", "rolled_back", 0),
    ]
    assert compensated(ledger) == ["deploy", "migrate"]

    assert main(["show", run_id, "--db", db]) == 0
    text = capsys.readouterr().out
    assert "rollbacks:" in text
    assert "deploy: rolled_back" in text


def test_a_failing_compensation_exits_4(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db, run_id, ledger = make_run(tmp_path, failing_undo=True)

    assert main(["rollback", run_id, "--yes", "--json", "--db", db]) == 4

    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    for line in lines:  # every line has the event shape of SPEC 6, the plan too
        assert {"seq", "ts", "run_id", "step", "type"} <= set(line), line
        assert line["run_id"] == run_id
    assert (lines[0]["type"], lines[0]["seq"]) == ("rollback_plan", 0)
    assert [u["unit"] for u in lines[0]["units"]] == ["deploy", "migrate"]
    finished = [e for e in lines if e["type"] == "rollback_step_finished"]
    assert [(e["step"], e["status"]) for e in finished] == [("deploy", "rollback_failed")]
    assert lines[-1]["type"] == "rollback_finished"
    assert lines[-1]["status"] == "rollback_failed"
    assert compensated(ledger) == []  # migrate stays: what needed it could not be undone


def test_a_run_another_live_process_drives_is_refused_before_any_plan(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db, run_id, ledger = make_run(tmp_path)
    driver = driven_by_another_process(db, run_id)

    assert main(["rollback", run_id, "--yes", "--db", db]) == 2

    captured = capsys.readouterr()
    assert f"run {run_id} is driven by pid {driver}" in captured.err
    assert "in doubt" not in captured.out + captured.err
    assert "deploy" not in captured.out  # no plan printed first
    assert compensated(ledger) == []


def test_a_rollback_with_nothing_to_undo_leaves_the_run_as_it_was(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """No step has a rollback: there is nothing to do, and the run used to become
    `rolled_back`, its message replaced by "nothing to roll back"."""
    db = tmp_path / "t.db"
    steps = [ledger_step("lint", tmp_path / "ledger", rollback=False)]
    run_id = anyio.run(run_workflow, db, write_workflow(tmp_path, steps)).run_id

    assert main(["rollback", run_id, "--yes", "--db", str(db)]) == 0

    assert "nothing to roll back" in capsys.readouterr().out
    assert main(["show", run_id, "--json", "--db", str(db)]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert (shown["status"], shown["message"], shown["rollbacks"]) == ("succeeded", None, [])


@pytest.mark.parametrize(
    ("command", "code"),
    [
        (["rollback", "r1", "--plan"], 2),
        (["decide", "r1", "deploy", "skip"], 2),
        (["approve", "r1", "deploy"], 2),
        (["gc", "--dry-run"], 0),
        (["gc"], 0),
    ],
)
def test_a_command_given_a_store_that_is_not_there_makes_none(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], command: list[str], code: int
) -> None:
    """A `--db` with a typo left an empty store behind (`runs`, `show`, `logs` made none)."""
    db = tmp_path / "typo.db"
    assert main([*command, "--db", str(db)]) == code
    assert not db.exists()
    if code:
        assert f"no store at {db}" in capsys.readouterr().err


@pytest.mark.parametrize("steps", ["", ",", " , "])
def test_steps_that_name_no_step_are_a_usage_error(tmp_path: Path, steps: str) -> None:
    """It printed "nothing to roll back" and exited 0."""
    db, run_id, _ = make_run(tmp_path)
    assert main(["rollback", run_id, "--steps", steps, "--plan", "--db", db]) == 2


def test_a_plan_shown_while_its_run_goes_on_says_a_running_step_is_running(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """It said the step's engine had stopped, of an engine that was driving the run."""
    db, run_id, _ = make_run(tmp_path)
    driven_by_another_process(db, run_id)
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE runs SET status = 'running' WHERE id = ?", (run_id,))
        conn.execute(
            "UPDATE units SET status = 'running', ended_at = NULL WHERE run_id = ? AND name = ?",
            (run_id, "deploy"),
        )
        conn.execute(
            "UPDATE attempts SET ended_at = NULL WHERE run_id = ? AND step = ?", (run_id, "deploy")
        )
    conn.close()

    assert main(["rollback", run_id, "--plan", "--json", "--db", db]) == 0
    plan = json.loads(capsys.readouterr().out)
    why = {u["unit"]: u["why"] for u in plan["units"]}
    assert "running now" in why["deploy"]
    assert "engine stopped" not in why["deploy"]
