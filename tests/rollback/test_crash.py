"""kill -9 during `tempeh rollback`, then `tempeh rollback RUN --yes` again (or `tempeh resume
RUN`): each compensation ran exactly once (a ledger file counts them), nothing is deployed
again, and the history shows both rollbacks."""

from __future__ import annotations

import json
import signal
import time
from collections import Counter
from functools import partial
from pathlib import Path

import anyio
import pytest

from tempeh_tui.engine.fake_executor import FakeExecutor, FakeOutcome
from tempeh_tui.engine.unit_runner import scratch_folders
from tests.cli.process import start_tempeh

from .support import compensated, ledger_step, run_workflow, write_workflow

tempeh = start_tempeh


def wait_for_lines(ledger: Path, count: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while len(compensated(ledger)) < count:
        assert time.monotonic() < deadline, f"the ledger never reached {count} lines"
        time.sleep(0.01)


@pytest.mark.parametrize(
    ("kill_after", "again"),
    [(1, "rollback"), (3, "rollback"), (1, "resume"), (3, "resume")],
)
def test_kill_9_during_a_rollback_then_again_compensates_each_step_once(
    tmp_path: Path, kill_after: int, again: str
) -> None:
    db, ledger, deploys = tmp_path / "t.db", tmp_path / "ledger", tmp_path / "deploys"
    undo = f'sleep 0.3; echo "$TEMPEH_STEP" >> "{ledger}"; sleep 0.2'
    verify = f'grep -qx "$TEMPEH_STEP" "{ledger}"'
    deploy = f'echo "$TEMPEH_STEP" >> "{deploys}"'  # the run itself uses a fake executor
    steps = [
        ledger_step(
            f"s{i}", ledger, needs=[f"s{i - 1}"] if i else [], undo=undo, verify=verify, run=deploy
        )
        for i in range(5)
    ]
    run = anyio.run(run_workflow, db, write_workflow(tmp_path, steps))

    first = tempeh("rollback", run.run_id, "--yes", "--json", db=db)
    wait_for_lines(ledger, kill_after)
    first.send_signal(signal.SIGKILL)
    first.communicate()
    assert first.returncode == -signal.SIGKILL

    if again == "rollback":
        second = tempeh("rollback", run.run_id, "--yes", db=db)
    else:  # resuming the run continues its rollback (SPEC 4), it deploys nothing again
        second = tempeh("resume", run.run_id, db=db)
    out, err = second.communicate(timeout=60)
    # the run had succeeded: finishing the rollback its operator asked for is a success either
    # way (SPEC 6: 0, "for rollback: the rollback completed"), not 3 ("failed and rolled back")
    assert second.returncode == 0, out + err

    assert Counter(compensated(ledger)) == {f"s{i}": 1 for i in range(5)}
    assert compensated(ledger) == ["s4", "s3", "s2", "s1", "s0"]
    assert not deploys.exists()
    show = tempeh("show", run.run_id, "--json", db=db)
    shown = json.loads(show.communicate(timeout=30)[0])
    assert shown["status"] == "rolled_back"
    assert {s["status"] for s in shown["steps"]} == {"rolled_back"}
    interrupted, finished = shown["rollbacks"]
    assert interrupted["status"] == "interrupted"
    assert finished["status"] == "rolled_back"
    # killed during the sleep after its echo: that unit was in doubt, its verify said "done"
    in_doubt = f"s{5 - kill_after}"
    assert finished["plan"]["order"] == [f"s{i}" for i in range(5 - kill_after, -1, -1)]
    assert [u["unit"] for u in finished["plan"]["units"] if u["in_doubt"]] == [in_doubt]
    action = finished["actions"][0]
    assert (action["unit"], action["reason"]) == (in_doubt, "rollback.verify says it is undone")

    # rolled back: resuming it now would deploy what the rollback took away
    refused = tempeh("resume", run.run_id, db=db)
    out, err = refused.communicate(timeout=30)
    assert refused.returncode == 2, out + err
    assert f"run {run.run_id} was rolled_back: nothing to resume" in err
    assert not deploys.exists()


def test_kill_9_in_the_middle_of_a_compensation_runs_it_again_once(tmp_path: Path) -> None:
    """The compensation killed half-way (its process too, as a leftover) did not finish: its
    verify says so, and it runs again, once."""
    db, ledger = tmp_path / "t.db", tmp_path / "ledger"
    undo = f'sleep "$NAP"; echo "$TEMPEH_STEP" >> "{ledger}"'
    verify = f'grep -qx "$TEMPEH_STEP" "{ledger}"'
    naps = ["0.1", "2.5", "0.1"]  # s1's outlives the start of the second `tempeh rollback`
    steps = [
        ledger_step(
            f"s{i}",
            ledger,
            needs=[f"s{i - 1}"] if i else [],
            undo=undo,
            verify=verify,
            env={"NAP": nap},
        )
        for i, nap in enumerate(naps)
    ]
    run = anyio.run(run_workflow, db, write_workflow(tmp_path, steps))

    first = tempeh("rollback", run.run_id, "--yes", "--json", db=db)
    wait_for_lines(ledger, 1)
    time.sleep(0.3)  # s1's compensation is sleeping
    first.send_signal(signal.SIGKILL)
    first.communicate()

    second = tempeh("rollback", run.run_id, "--yes", db=db)
    out, err = second.communicate(timeout=60)
    assert second.returncode == 0, out + err
    # s1's first compensation, had it survived the kill, would have written by now

    assert compensated(ledger) == ["s2", "s1", "s0"]
    assert "rollback.verify says no" in out, out


def test_rolling_back_a_run_whose_engine_died_stops_and_undoes_what_it_left_running(
    tmp_path: Path,
) -> None:
    """`tempeh rollback` of a run killed while a step ran: that step is in doubt (it may have
    done its work), so its processes are stopped first and it is compensated too. Before, the
    plan left it out, its process went on, and it deployed after the rollback was done."""
    db, effects, started = tmp_path / "t.db", tmp_path / "effects", tmp_path / "started"
    flow = tmp_path / "orphan.yaml"
    flow.write_text(
        f"""
name: orphan
steps:
  - name: a
    run: echo "did a" >> {effects}
    rollback: echo "undo a" >> {effects}
  - name: slow
    run: echo v=7 >> "$TEMPEH_OUTPUT"; touch {started}; sleep 3; echo "did slow" >> {effects}
    rollback: echo "undo slow {{{{ outputs.v }}}}" >> {effects}
  - name: later
    needs: [slow]
    run: echo "did later" >> {effects}
"""
    )
    run = tempeh("run", str(flow), "--json", db=db)
    assert run.stdout is not None
    run_id = json.loads(run.stdout.readline())["run_id"]
    deadline = time.monotonic() + 30
    while not (started.exists() and "did a" in _text(effects)):
        assert time.monotonic() < deadline
        time.sleep(0.02)
    run.send_signal(signal.SIGKILL)
    run.communicate()
    assert scratch_folders(run_id)  # the dead engine's: its steps' $TEMPEH_OUTPUT files

    rollback = tempeh("rollback", run_id, "--yes", "--json", db=db)
    out, err = rollback.communicate(timeout=60)
    assert rollback.returncode == 0, out + err
    assert not scratch_folders(run_id)  # read, then removed: the run is undone for good
    plan = next(e for e in map(json.loads, out.splitlines()) if e["type"] == "rollback_plan")
    why = {u["unit"]: u["why"] for u in plan["units"]}
    assert "in doubt: it was running when its engine stopped" in why["slow"]
    time.sleep(3.5)  # what `slow` would have done by now, had it been left running
    # its compensation has what it wrote to $TEMPEH_OUTPUT before its engine died (it was
    # never recorded: `{{ outputs.v }}` failed to render, and the run could not be undone)
    assert sorted(_text(effects).splitlines()) == ["did a", "undo a", "undo slow 7"]

    show = tempeh("show", run_id, "--json", db=db)
    shown = json.loads(show.communicate(timeout=30)[0])
    assert shown["status"] == "rolled_back"
    assert shown["ended_at"] is not None
    assert {s["name"]: s["status"] for s in shown["steps"]} == {
        "a": "rolled_back",
        "slow": "rolled_back",
        "later": "cancelled",  # never to run: a rolled-back run is not resumed
    }


def _text(path: Path) -> str:
    return path.read_text() if path.exists() else ""


def test_resume_of_a_killed_rollback_of_a_run_that_tolerated_a_failure_exits_0(
    tmp_path: Path,
) -> None:
    """A step that failed with `continue_on_error` did not fail the run: finishing the
    rollback its operator asked for is a success (it exited 3, "failed and rolled back")."""
    db, ledger = tmp_path / "t.db", tmp_path / "ledger"
    undo = f'echo "$TEMPEH_STEP" >> "{ledger}"; sleep 0.5'
    verify = f'grep -qx "$TEMPEH_STEP" "{ledger}"'  # a compensation in doubt is not run twice
    steps = [
        ledger_step("a", ledger, undo=undo, verify=verify),
        ledger_step("flaky", ledger, rollback=False, continue_on_error=True),
        ledger_step("b", ledger, needs=["a"], undo=undo, verify=verify),
    ]
    fake = FakeExecutor({"flaky": [FakeOutcome(exit_code=1)]})
    run = anyio.run(partial(run_workflow, db, write_workflow(tmp_path, steps), executor=fake))
    assert run.succeeded

    first = tempeh("rollback", run.run_id, "--yes", "--json", db=db)
    wait_for_lines(ledger, 1)
    first.send_signal(signal.SIGKILL)
    first.communicate()
    second = tempeh("resume", run.run_id, db=db)
    out, err = second.communicate(timeout=60)
    assert second.returncode == 0, out + err
    assert Counter(compensated(ledger)) == {"a": 1, "b": 1}


def _wait_for(path: Path, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.02)


def _killed_while_in_doubt(
    tmp_path: Path, check: str, rollback: str = "", stop: int = signal.SIGKILL
) -> tuple[Path, str]:
    """A run killed (-9, or stopped by Ctrl-C) while `a` ran, after `a` wrote `v=42` to
    `$TEMPEH_OUTPUT`."""
    db, started = tmp_path / "t.db", tmp_path / "started"
    flow = tmp_path / "doubt.yaml"
    flow.write_text(
        f"""
name: doubt
steps:
  - name: a
    run: echo v=42 >> "$TEMPEH_OUTPUT"; touch {started}; sleep 30
    check: '{check}'
{rollback}  - name: b
    needs: [a]
    run: echo "b saw $V" >> {tmp_path / "effects"}
    env: {{V: "{{{{ steps['a'].outputs.v }}}}"}}
"""
    )
    return db, _stop_once(flow, db, started, stop)


def _stop_once(flow: Path, db: Path, started: Path, stop: int = signal.SIGKILL) -> str:
    """`tempeh run flow`, stopped (kill -9, or Ctrl-C) once `started` exists; the run's id."""
    run = tempeh("run", str(flow), "--json", db=db)
    assert run.stdout is not None
    run_id: str = json.loads(run.stdout.readline())["run_id"]
    _wait_for(started)
    run.send_signal(stop)
    run.communicate(timeout=30)
    assert run.returncode == (-signal.SIGKILL if stop == signal.SIGKILL else 130)
    return run_id


@pytest.mark.parametrize("stop", [signal.SIGKILL, signal.SIGINT])
def test_a_step_its_probe_finds_done_keeps_what_it_wrote_before_its_engine_died(
    tmp_path: Path, stop: int
) -> None:
    """The probe says `a`'s effect is in place: `a` succeeded, with the outputs its attempt
    wrote before the crash (or Ctrl-C). Before, it had none (the dead engine's scratch folder
    was removed before the probe ran; a stopped one removed its own), and `b`, which reads
    one, failed."""
    db, run_id = _killed_while_in_doubt(tmp_path, check="true", stop=stop)

    resume = tempeh("resume", run_id, "--yes", "--headless", db=db)
    out, err = resume.communicate(timeout=60)

    assert resume.returncode == 0, out + err
    assert _text(tmp_path / "effects") == "b saw 42\n"
    shown = json.loads(tempeh("show", run_id, "--json", db=db).communicate(timeout=30)[0])
    assert next(s for s in shown["steps"] if s["name"] == "a")["outputs"] == {"v": "42"}
    assert not scratch_folders(run_id)  # the run is over: its engines' folders have served


def test_a_rollback_after_a_second_crash_still_has_the_in_doubt_steps_outputs(
    tmp_path: Path,
) -> None:
    """Killed again while the resume's probe ran: `a` is still in doubt, and its compensation
    still reads what `a` wrote before the first crash (the first resume had removed it)."""
    probing, effects = tmp_path / "probing", tmp_path / "effects"
    db, run_id = _killed_while_in_doubt(
        tmp_path,
        check=f"touch {probing}; sleep 30",
        rollback=f'    rollback: echo "undo a {{{{ outputs.v }}}}" >> {effects}\n',
    )
    resume = tempeh("resume", run_id, "--yes", "--headless", db=db)
    _wait_for(probing)
    resume.send_signal(signal.SIGKILL)
    resume.communicate()

    rollback = tempeh("rollback", run_id, "--yes", "--headless", db=db)
    out, err = rollback.communicate(timeout=60)

    assert rollback.returncode == 0, out + err
    assert _text(effects) == "undo a 42\n"


def test_a_step_ctrl_c_stopped_half_way_is_undone_with_what_it_wrote(tmp_path: Path) -> None:
    """Stopped while it ran, it may have acted, as after a crash: `tempeh rollback` said
    "nothing to roll back" (only a dead engine's running steps counted as in doubt)."""
    effects = tmp_path / "effects"
    db, run_id = _killed_while_in_doubt(
        tmp_path,
        check="false",
        rollback=f'    rollback: echo "undo a {{{{ outputs.v }}}}" >> {effects}\n',
        stop=signal.SIGINT,
    )

    rollback = tempeh("rollback", run_id, "--yes", "--headless", db=db)
    out, err = rollback.communicate(timeout=60)

    assert rollback.returncode == 0, out + err
    assert _text(effects) == "undo a 42\n"
    assert not scratch_folders(run_id)


def test_a_loop_its_probe_finds_done_runs_again_if_its_until_is_not_met(tmp_path: Path) -> None:
    """The probe says the effect is in place, but the loop's own condition, on what it
    wrote before the crash, is false: the step was accepted, with `healthy=false`."""
    db, started, again = tmp_path / "t.db", tmp_path / "started", tmp_path / "again"
    flow = tmp_path / "loop.yaml"
    flow.write_text(
        f"""
name: loop
steps:
  - name: s
    run: >-
      if test -f {again}; then echo healthy=true >> "$TEMPEH_OUTPUT"; exit 0; fi;
      touch {again}; echo healthy=false >> "$TEMPEH_OUTPUT"; touch {started}; sleep 30
    until: "outputs.healthy == 'true'"
    max_iterations: 3
    check: 'true'
"""
    )
    run_id = _stop_once(flow, db, started)

    resume = tempeh("resume", run_id, "--yes", "--headless", db=db)
    out, err = resume.communicate(timeout=60)

    assert resume.returncode == 0, out + err
    assert "its `until` is not met on what it wrote" in out + err
    shown = json.loads(tempeh("show", run_id, "--json", db=db).communicate(timeout=30)[0])
    assert shown["steps"][0]["outputs"] == {"healthy": "true"}
