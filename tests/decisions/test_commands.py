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


REFUSED_WHILE_DEAD = """\
name: refused
steps:
  - name: stage
    run: until grep -qx long {ledger}; do sleep 0.05; done; echo staged >> {ledger}
    rollback: echo unstaged >> {ledger}
  - name: ship
    needs: [stage]
    confirm: "Ship it?"
    run: echo shipped >> {ledger}
  - name: long
    run: echo long >> {ledger}; sleep 60; echo long-done >> {ledger}
    rollback: echo unlong >> {ledger}
"""


@pytest.mark.timeout(120)
@pytest.mark.parametrize(
    ("answer_", "exit_code", "ledger_after"),
    [
        ("rollback", 3, ["long", "staged", "unlong", "unstaged"]),
        ("abort", 1, ["long", "staged"]),
    ],
)
def test_a_gate_refused_while_its_engine_is_dead_is_acted_on_by_resume(
    tmp_path: Path, answer_: str, exit_code: int, ledger_after: list[str]
) -> None:
    """kill -9 while the gate waits; `decide RUN GATE rollback|abort` is stored; resume used
    to ask the gate again (and pause), ignoring the answer. A rollback also undoes `long`,
    which the dead engine left running (in doubt), after stopping what it left."""
    db, ledger = tmp_path / "tempeh.db", tmp_path / "ledger"
    flow = tmp_path / "wf.yaml"
    flow.write_text(REFUSED_WHILE_DEAD.format(ledger=ledger))
    run = tempeh("run", str(flow), "--wait-for-decision", db=db)
    ((run_id, unit, kind, _),) = wait_for(db, WAITING, run)
    assert (unit, kind) == ("ship", "approval")
    run.send_signal(signal.SIGKILL)
    run.communicate()

    refused = answer("decide", str(run_id), "ship", answer_, "--yes", db=db)
    assert refused.returncode == 0, refused.stderr
    resumed = tempeh("resume", str(run_id), "--wait-for-decision", "5s", db=db)

    assert finish(resumed) == exit_code
    assert sorted(ledger.read_text().split()) == ledger_after  # ship never ran, long stopped
    states = {
        str(name): str(status) for name, status in query(db, "SELECT name, status FROM units")
    }
    assert states["ship"] in ("failed", "cancelled")
    assert not query(db, "SELECT unit FROM decisions WHERE answer IS NULL")


@pytest.mark.timeout(120)
def test_a_gate_asked_again_after_a_crash_closes_the_question_it_left_open(
    tmp_path: Path,
) -> None:
    """The dead engine's question stayed open for ever beside the new one."""
    db = tmp_path / "tempeh.db"
    run = tempeh("run", str(write(tmp_path, GATE)), "--wait-for-decision", db=db)
    ((run_id, *_),) = wait_for(db, WAITING, run)
    run.send_signal(signal.SIGKILL)
    run.communicate()

    resumed = tempeh("resume", str(run_id), "--wait-for-decision", "1s", db=db)

    assert finish(resumed) == 5  # nobody answered the new question either
    rows = query(db, "SELECT kind, answer, answered_by FROM decisions ORDER BY id")
    assert [tuple(row[:2]) for row in rows] == [
        ("approval", "withdrawn"),
        ("approval", "timed out"),
    ]
    assert rows[0][2] == "a new question"
