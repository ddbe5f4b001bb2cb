"""`tempeh decide` as an operator uses it from another terminal: a retry with changed env and
params (`-e`, `-p`) for that run of the step only, and a rollback that shows its plan and waits
for a yes (SPEC 5.2, 5.3)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.cli.process import ROOT

from .processes import WAITING, answer, finish, query, tempeh, wait_for

RELEASE = """\
name: release
on_failure: pause
params:
  version: {default: "1.0"}
steps:
  - name: migrate
    run: printf '%s|%s\\n' "{{ params.version }}" "${LEVEL:-}" >> OUT; test "${LEVEL:-}" = debug
  - name: deploy
    needs: [migrate]
    run: printf 'deploy %s|%s\\n' "{{ params.version }}" "${LEVEL:-}" >> OUT
"""

UNDO = """\
name: undo
on_failure: pause
steps:
  - name: setup
    run: echo setup
    rollback: echo undone >> OUT
  - name: migrate
    needs: [setup]
    run: exit 1
"""


def write(tmp_path: Path, text: str) -> tuple[Path, Path]:
    out = tmp_path / "out.txt"
    path = tmp_path / "wf.yaml"
    path.write_text(text.replace("OUT", str(out)))
    return path, out


def test_a_retry_changes_env_and_params_for_that_run_of_the_step_only(tmp_path: Path) -> None:
    db = tmp_path / "tempeh.db"
    marker = tmp_path / "pwned"
    workflow, out = write(tmp_path, RELEASE)
    run = tempeh("run", "--wait-for-decision", str(workflow), db=db)  # the option before FILE
    ((run_id, *_),) = wait_for(db, WAITING, run)
    refused = {
        ("retry", "-e", "TEMPEH_STEP=x"): "TEMPEH_* variables are tempeh's own",
        ("retry", "-p", "versoin=2"): "has no param 'versoin' (did you mean 'version'?)",
        ("retry", "-e", "LEVEL"): "-e LEVEL: expected NAME=VALUE",
        ("skip", "-e", "LEVEL=debug"): "go with retry only, not with skip",
    }
    for words, why in refused.items():
        wrong = answer("decide", str(run_id), "migrate", *words, db=db)
        assert (wrong.returncode, why in wrong.stderr) == (2, True), wrong.stderr
    assert query(db, WAITING)  # nothing was stored: it still waits
    injected = f"$(touch {marker})"
    done = answer(
        "decide", str(run_id), "migrate", "retry", "-e", "LEVEL=debug", "-p", f"version={injected}",
        db=db,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert f"migrate: retry with params version={injected}; env LEVEL=debug" in done.stdout
    assert finish(run) == 0
    assert out.read_text().splitlines() == ["1.0|", f"{injected}|debug", "deploy 1.0|"]
    assert not marker.exists()  # the value reached bash as data, never as code
    shown = answer("show", str(run_id), db=db)
    assert "decisions:" in shown.stdout
    assert f"migrate failure: retry with params version={injected}; env LEVEL=debug" in (
        " ".join(shown.stdout.split())
    )
    (decision,) = json.loads(answer("show", str(run_id), "--json", db=db).stdout)["decisions"]
    assert (decision["answer"], decision["env"]) == ("retry", {"LEVEL": "debug"})
    assert decision["params"] == {"version": injected}


def test_a_rollback_decision_shows_the_plan_and_needs_yes(tmp_path: Path) -> None:
    db = tmp_path / "tempeh.db"
    workflow, out = write(tmp_path, UNDO)
    run = tempeh("run", str(workflow), "--wait-for-decision", db=db)
    ((run_id, *_),) = wait_for(db, WAITING, run)
    plan = answer("rollback", str(run_id), "--plan", db=db)
    assert plan.returncode == 0, plan.stderr
    assert "setup" in plan.stdout
    unconfirmed = answer("decide", str(run_id), "migrate", "rollback", db=db)
    assert unconfirmed.returncode == 2
    assert plan.stdout in unconfirmed.stdout  # the same rendering as `rollback --plan`
    assert "add --yes" in unconfirmed.stderr
    assert query(db, WAITING)  # not answered: the run still waits
    assert not out.exists()
    confirmed = answer("decide", str(run_id), "migrate", "rollback", "--yes", db=db)
    assert confirmed.returncode == 0, confirmed.stderr
    assert plan.stdout in confirmed.stdout
    assert finish(run) == 3  # failed, rolled back cleanly
    assert out.read_text() == "undone\n"


def on_a_terminal(*args: str, reply: str, db: Path) -> subprocess.CompletedProcess[str]:
    """`tempeh ARGS` with its stdin a terminal on which the operator types `reply`."""
    master, slave = os.openpty()
    try:
        process = subprocess.Popen(
            [sys.executable, "-m", "tempeh_tui", *args, "--db", str(db)],
            stdin=slave,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=ROOT,
        )
        os.close(slave)
        os.write(master, reply.encode())
        stdout, stderr = process.communicate(timeout=60)
    finally:
        os.close(master)
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


def test_on_a_terminal_a_rollback_decision_asks_y_or_n(tmp_path: Path) -> None:
    db = tmp_path / "tempeh.db"
    workflow, out = write(tmp_path, UNDO)
    run = tempeh("run", str(workflow), "--wait-for-decision", db=db)
    ((run_id, *_),) = wait_for(db, WAITING, run)
    declined = on_a_terminal("decide", str(run_id), "migrate", "rollback", reply="n\n", db=db)
    assert declined.returncode == 2
    assert "Roll back run" in declined.stdout
    assert "[y/N]" in declined.stdout
    assert "nothing decided" in declined.stderr
    assert query(db, WAITING)
    agreed = on_a_terminal("decide", str(run_id), "migrate", "rollback", reply="y\n", db=db)
    assert agreed.returncode == 0, agreed.stderr
    assert finish(run) == 3
    assert out.read_text() == "undone\n"
    ((by,),) = query(db, "SELECT answered_by FROM decisions WHERE answer = 'rollback'")
    assert "@" in str(by)
