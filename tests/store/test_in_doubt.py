"""Which units nothing says the effect of: a resume's probe (or `--yes`) and a rollback
treat them as maybe done."""

from __future__ import annotations

from tempeh_tui.events import StepStatus
from tempeh_tui.store.base import AttemptRecord, StepRecord


def _stopped(*history: AttemptRecord) -> StepRecord:
    return StepRecord("a", StepStatus.INTERRUPTED, len(history), attempt_history=history)


def test_a_step_stopped_while_its_attempt_ran_is_in_doubt() -> None:
    assert _stopped(AttemptRecord(1, 1.0, 2.0, error_class="cancelled")).in_doubt


def test_a_step_stopped_in_the_backoff_after_a_timeout_is_not() -> None:
    """A timed-out attempt has no exit code either; it had ended, and its retry waited."""
    timed_out = AttemptRecord(1, 1.0, 2.0, error_class="timeout", delay_after=30.0)
    assert not _stopped(timed_out).in_doubt


def test_a_step_stopped_after_its_attempt_failed_or_before_it_began_is_not() -> None:
    assert not _stopped(AttemptRecord(1, 1.0, 2.0, exit_code=1, delay_after=5.0)).in_doubt
    assert not _stopped().in_doubt
    assert not StepRecord(
        "a", StepStatus.FAILED, 1, attempt_history=(AttemptRecord(1, 1.0),)
    ).in_doubt
