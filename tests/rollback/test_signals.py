"""SIGINT/SIGTERM while a run rolls itself back (`on_failure: rollback`): the first stops the
rollback (its compensations terminated, the run `interrupted`, exit 130), a second kills them at
once; `tempeh resume` continues the rollback (SPEC 4, 5.4)."""

from __future__ import annotations

import json
import signal
import textwrap
import time
from pathlib import Path

import psutil
import pytest

from tests.cli.process import start_tempeh


def _wait_for(path: Path, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists() or not path.read_text().strip():
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.02)


@pytest.mark.parametrize(("signals", "ignores_term"), [(1, False), (2, True)])
def test_a_signal_during_an_automatic_rollback_stops_it_and_resume_continues_it(
    tmp_path: Path, signals: int, ignores_term: bool
) -> None:
    db, pidfile, ledger = tmp_path / "t.db", tmp_path / "undo.pid", tmp_path / "ledger"
    trap = "trap '' TERM; " if ignores_term else ""
    undo = (
        f'if [ -f "{pidfile}" ]; then echo "undone a" >> "{ledger}"; '
        f'else {trap}echo $$ > "{pidfile}"; while true; do sleep 0.1; done; fi'
    )
    flow = tmp_path / "flow.yaml"
    flow.write_text(
        textwrap.dedent(
            f"""
            name: selfundo
            on_failure: rollback
            steps:
              - name: a
                run: "true"
                rollback: {json.dumps(undo)}
              - {{name: b, needs: [a], run: "exit 1"}}
            """
        )
    )
    run = start_tempeh("run", str(flow), "--headless", "--json", db=db)
    _wait_for(pidfile)
    compensation = int(pidfile.read_text())
    for _ in range(signals):
        run.send_signal(signal.SIGTERM)
        time.sleep(0.5)
    out, err = run.communicate(timeout=20)  # not the 10 s grace: the second signal kills
    assert run.returncode == 130, out + err
    assert not psutil.pid_exists(compensation) or (
        psutil.Process(compensation).status() == psutil.STATUS_ZOMBIE
    )
    run_id = json.loads(out.splitlines()[0])["run_id"]
    shown = json.loads(start_tempeh("show", run_id, "--json", db=db).communicate(timeout=30)[0])
    assert shown["status"] == "interrupted"
    assert [r["status"] for r in shown["rollbacks"]] == ["interrupted"]

    resumed = start_tempeh("resume", run_id, "--headless", db=db)
    out, err = resumed.communicate(timeout=60)
    assert resumed.returncode == 3, out + err  # failed, and rolled back
    assert ledger.read_text() == "undone a\n"


def test_an_interrupt_while_the_rollback_waits_for_running_steps_leaves_it_undone(
    tmp_path: Path,
) -> None:
    import asyncio

    import anyio

    from tempeh_tui.engine.engine import WorkflowEngine
    from tempeh_tui.events import RunStatus, StepFinished
    from tempeh_tui.store.sqlite import SqliteStore

    ledger = tmp_path / "ledger"
    flow = {
        "name": "waits",
        "on_failure": "rollback",
        "steps": [
            {"name": "a", "run": "true", "rollback": f"echo undone >> {ledger}"},
            {"name": "b", "needs": ["a"], "run": "exit 1"},
            {"name": "slow", "run": "sleep 20"},  # running when b fails: the rollback waits
        ],
    }

    async def main() -> RunStatus:
        async with SqliteStore(tmp_path / "t.db") as store:
            engine = WorkflowEngine(store=store)

            def on_event(event: object) -> None:
                if isinstance(event, StepFinished) and event.step == "b":
                    # the operator's Ctrl-C, while the rollback waits for `slow`
                    loop = asyncio.get_running_loop()
                    loop.call_later(0.5, engine.interrupt, "interrupted by SIGINT")

            engine.subscribe(on_event)
            with anyio.fail_after(15):  # not slow's 20 s, nor the 30 s the rollback waits
                result = await engine.execute_workflow(flow)
            return result.status

    assert anyio.run(main) is RunStatus.INTERRUPTED
    assert not ledger.exists()  # nothing compensated: resume or rollback decide later


@pytest.mark.parametrize("delay", [0.0, 0.002, 0.004, 0.008])
def test_a_sigterm_as_tempeh_rollback_ends_never_contradicts_what_it_recorded(
    tmp_path: Path, delay: float
) -> None:
    """SIGTERM a few ms after the last compensation: tempeh used to die of it (exit -15, its
    --json cut off), or exit 130 for a rollback it had recorded complete. Now: exit 0 with
    the run rolled back, or 130 with the rollback recorded interrupted."""
    db, ledger = tmp_path / "t.db", tmp_path / "ledger"
    flow = tmp_path / "flow.yaml"
    flow.write_text(
        f"name: late\nsteps:\n  - {{name: a, run: 'true', rollback: 'echo u >> {ledger}'}}\n"
    )
    run = start_tempeh("run", str(flow), "--json", db=db)
    out, _ = run.communicate(timeout=60)
    run_id = json.loads(out.splitlines()[0])["run_id"]

    rollback = start_tempeh("rollback", run_id, "--yes", "--json", db=db)
    assert rollback.stdout is not None
    for line in rollback.stdout:
        if json.loads(line)["type"] == "rollback_step_finished":
            time.sleep(delay)
            rollback.send_signal(signal.SIGTERM)
            break
    rollback.communicate(timeout=60)

    shown = start_tempeh("show", run_id, "--json", db=db)
    status = json.loads(shown.communicate(timeout=30)[0])["status"]
    assert (rollback.returncode, status) in ((0, "rolled_back"), (130, "interrupted"))
