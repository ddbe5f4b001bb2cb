"""`tempeh decide` and `tempeh approve` as real processes, answering a real
`tempeh run --wait-for-decision` through the store; and an approval that outlives a kill -9."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from .processes import WAITING, answer, finish, query, tempeh, wait_for

FLAKY = """\
name: flaky
on_failure: pause
steps:
  - name: migrate
    run: test -f {marker} || {{ touch {marker}; exit 1; }}
  - name: deploy
    needs: [migrate]
    run: echo deployed
"""

GATE = """\
name: gate
steps:
  - name: deploy
    confirm: "Deploy to production?"
    run: test -f {marker} || {{ touch {marker}; sleep 60; }}
  - name: after
    needs: [deploy]
    run: echo done
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "wf.yaml"
    path.write_text(text.format(marker=tmp_path / "marker"))
    return path


def test_tempeh_decide_retry_answers_a_waiting_run(tmp_path: Path) -> None:
    db = tmp_path / "tempeh.db"
    run = tempeh("run", str(write(tmp_path, FLAKY)), "--wait-for-decision", db=db)
    ((run_id, unit, kind, summary),) = wait_for(db, WAITING, run)
    assert (unit, kind) == ("migrate", "failure")
    assert "exit code 1" in str(summary)
    shown = answer("show", str(run_id), db=db)
    assert "paused" in shown.stdout
    assert "waiting for a decision: migrate" in shown.stdout
    wrong = answer("decide", str(run_id), "deploy", "retry", db=db)
    assert wrong.returncode == 2
    assert "not waiting" in wrong.stderr
    not_a_gate = answer("approve", str(run_id), "migrate", db=db)
    assert not_a_gate.returncode == 2
    done = answer("decide", str(run_id), "migrate", "retry", db=db)
    assert done.returncode == 0, done.stderr
    assert finish(run) == 0
    ((answered, by),) = query(db, "SELECT answer, answered_by FROM decisions")
    assert answered == "retry"
    assert "@" in str(by)
    assert "pid" in str(by)


def test_a_decision_nobody_gives_in_time_exits_5(tmp_path: Path) -> None:
    db = tmp_path / "tempeh.db"
    run = tempeh("run", str(write(tmp_path, FLAKY)), "--wait-for-decision", "1s", db=db)
    assert finish(run) == 5
    ((status,),) = query(db, "SELECT status FROM runs")
    assert status == "paused"


def test_tempeh_approve_lets_a_waiting_gate_run(tmp_path: Path) -> None:
    db = tmp_path / "tempeh.db"
    (tmp_path / "marker").touch()  # the step runs at once
    run = tempeh("run", str(write(tmp_path, GATE)), "--wait-for-decision", db=db)
    ((run_id, unit, kind, summary),) = wait_for(db, WAITING, run)
    assert (unit, kind, summary) == ("deploy", "approval", "Deploy to production?")
    # a gate is approved or refused (skip/abort/rollback); `retry` means nothing to it
    assert answer("decide", str(run_id), "deploy", "retry", db=db).returncode == 2
    typo = answer("decide", str(run_id), "deplyo", "skip", db=db)
    assert typo.returncode == 2
    assert f"run {run_id} has no step 'deplyo'; its steps: after, deploy" in typo.stderr
    done = answer("approve", str(run_id), "deploy", db=db)
    assert done.returncode == 0, done.stderr
    assert finish(run) == 0
    assert answer("approve", str(run_id), "deploy", db=db).returncode == 2


@pytest.mark.timeout(120)
def test_an_approval_survives_a_crash_and_is_not_asked_again(tmp_path: Path) -> None:
    db = tmp_path / "tempeh.db"
    run = tempeh("run", str(write(tmp_path, GATE)), "--wait-for-decision", db=db)
    ((run_id, *_),) = wait_for(db, WAITING, run)
    assert answer("approve", str(run_id), "deploy", db=db).returncode == 0
    wait_for(db, "SELECT 1 FROM units WHERE name = 'deploy' AND pid IS NOT NULL", run)
    run.send_signal(signal.SIGKILL)
    run.communicate()
    resumed = tempeh("resume", str(run_id), "--wait-for-decision", "5s", db=db)
    assert finish(resumed) == 0
    rows = query(db, "SELECT kind, answer FROM decisions")
    assert rows == [("approval", "yes")]
    ((status,),) = query(db, "SELECT status FROM runs")
    assert status == "succeeded"
