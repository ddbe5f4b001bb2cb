"""`show` presents a run as an operator reads it (`RunRecord.as_shown`), the stored states
left as they are for resume."""

from __future__ import annotations

from tempeh_tui.events import RunStatus, StepStatus
from tempeh_tui.store.base import RunRecord, StepRecord

DEFINITION = {
    "steps": [
        {"name": "slow", "needs": []},
        {"name": "quick", "needs": []},
        {"name": "deploy", "needs": ["quick"]},
        {"name": "after", "needs": ["deploy"]},
    ]
}


def run(status: RunStatus, **steps: StepStatus) -> RunRecord:
    return RunRecord(
        id="r1",
        workflow="w",
        status=status,
        definition=DEFINITION,
        definition_hash="",
        max_concurrency=1,
        steps=tuple(StepRecord(name=n, status=s) for n, s in steps.items()),
    )


def test_a_pending_unit_whose_needs_ended_waits_for_a_free_slot() -> None:
    shown = run(
        RunStatus.RUNNING,
        slow=StepStatus.RUNNING,
        quick=StepStatus.SUCCEEDED,
        deploy=StepStatus.PENDING,
        after=StepStatus.WAITING,
    ).as_shown()
    states = {s.name: (s.status, s.reason) for s in shown.steps}
    assert states["deploy"] == (StepStatus.WAITING, "waiting for a free slot (max_concurrency 1)")
    assert states["after"][0] is StepStatus.WAITING  # for its needs, as the engine said


def test_a_run_nobody_drives_shows_nothing_running_or_waiting() -> None:
    shown = run(
        RunStatus.INTERRUPTED,
        slow=StepStatus.RUNNING,
        quick=StepStatus.SUCCEEDED,
        deploy=StepStatus.WAITING,
        after=StepStatus.PENDING,
    ).as_shown()
    states = {s.name: s.status for s in shown.steps}
    assert states == {
        "slow": StepStatus.INTERRUPTED,
        "quick": StepStatus.SUCCEEDED,
        "deploy": StepStatus.PENDING,
        "after": StepStatus.PENDING,
    }


def test_an_attempt_whose_end_was_never_recorded_is_not_shown_running() -> None:
    from tempeh_tui.cli.history import _attempt_lines
    from tempeh_tui.store.base import AttemptRecord

    killed = AttemptRecord(attempt=1, started_at=1.0)  # its engine died with it
    again = AttemptRecord(attempt=2, started_at=5.0, ended_at=6.0, exit_code=0)
    done = StepRecord(name="migrate", status=StepStatus.SUCCEEDED, attempt_history=(killed, again))
    assert _attempt_lines(done) == [
        "migrate attempt 1: stopped with its engine, its end not recorded",
        "migrate attempt 2: exit 0",
    ]
    going = StepRecord(name="migrate", status=StepStatus.RUNNING, attempt_history=(killed,))
    assert _attempt_lines(going) == ["migrate attempt 1: running"]
