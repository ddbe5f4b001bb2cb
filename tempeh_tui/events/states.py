"""Run and step states (SPEC section 2): the words every layer uses for where things stand."""

from __future__ import annotations

from enum import StrEnum

__all__ = ["TERMINAL_STEP_STATES", "RunStatus", "StepStatus"]


class StepStatus(StrEnum):
    PENDING = "pending"
    WAITING = "waiting"
    AWAITING_CONFIRMATION = "awaiting_confirmation"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    SKIPPED = "skipped"
    CANCELLED = "cancelled"
    INTERRUPTED = "interrupted"
    ROLLING_BACK = "rolling_back"
    ROLLED_BACK = "rolled_back"
    ROLLBACK_FAILED = "rollback_failed"

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL_STEP_STATES

    @property
    def counts_as_done(self) -> bool:
        """Dependents may run: the step succeeded or was skipped on purpose."""
        return self in (StepStatus.SUCCEEDED, StepStatus.SKIPPED)


TERMINAL_STEP_STATES = frozenset(
    {
        StepStatus.SUCCEEDED,
        StepStatus.FAILED,
        StepStatus.SKIPPED,
        StepStatus.CANCELLED,
        StepStatus.INTERRUPTED,
        StepStatus.ROLLED_BACK,
        StepStatus.ROLLBACK_FAILED,
    }
)


class RunStatus(StrEnum):
    RUNNING = "running"
    PAUSED = "paused"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    ROLLED_BACK = "rolled_back"
    ROLLBACK_FAILED = "rollback_failed"
    CANCELLED = "cancelled"
    INTERRUPTED = "interrupted"

    @property
    def is_terminal(self) -> bool:
        return self not in (RunStatus.RUNNING, RunStatus.PAUSED)
