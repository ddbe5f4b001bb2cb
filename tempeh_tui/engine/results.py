"""What a run produced: per unit, and for the whole run."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tempeh_tui.events import RunStatus, StepStatus

__all__ = ["RunResult", "UnitResult", "exit_code_for"]


@dataclass(frozen=True)
class UnitResult:
    """How one unit (a step, or one fan-out instance) ended."""

    name: str
    status: StepStatus
    attempts: int = 0
    exit_code: int | None = None
    error_class: str | None = None
    severity: str | None = None
    outputs: dict[str, str] = field(default_factory=dict)
    started_at: float | None = None
    ended_at: float | None = None
    cached: bool = False
    cache_key: str | None = None
    reason: str | None = None
    blocked: bool = False
    """Skipped because something it needs failed: its dependents cannot run either."""
    tolerated: bool = False
    """Failed, but `continue_on_error` lets dependents run and the run succeed."""
    awaited_decision_in_vain: bool = False
    """Failed because nobody answered its question in time (`--wait-for-decision T`)."""
    refused: tuple[str, str] | None = None
    """Its approval gate was refused with `abort` or `rollback` (the answer, who gave it):
    the run stops so, whatever its `on_failure`."""

    @property
    def counts_as_done(self) -> bool:
        """Whether units that need this one may run."""
        if self.blocked:
            return False
        return self.status.counts_as_done or self.tolerated

    @property
    def duration(self) -> float | None:
        if self.started_at is None or self.ended_at is None:
            return None
        return self.ended_at - self.started_at

    def view(self) -> dict[str, Any]:
        """What expressions see as `steps['name']`."""
        return {
            "status": self.status.value,
            "outputs": dict(self.outputs),
            "attempts": self.attempts,
        }


@dataclass(frozen=True)
class RunResult:
    run_id: str
    workflow: str
    status: RunStatus
    units: dict[str, UnitResult]
    message: str | None = None
    started_at: float | None = None
    ended_at: float | None = None
    rollback_on_request: bool = False
    """This finished the rollback an operator asked for (`tempeh rollback`) of a run that had
    not failed: its exit code is the rollback command's (0 when it completed), not 3 (SPEC 6:
    "failed and rolled back")."""

    @property
    def exit_code(self) -> int:
        if self.rollback_on_request and self.status is RunStatus.ROLLED_BACK:
            return 0
        return exit_code_for(self.status)

    @property
    def succeeded(self) -> bool:
        return self.status is RunStatus.SUCCEEDED

    def __getitem__(self, name: str) -> UnitResult:
        return self.units[name]


def exit_code_for(status: RunStatus) -> int:
    """SPEC 6: 0 succeeded, 1 failed, 3 rolled back, 4 rollback failed, 5 nobody decided
    in time (the run is left `paused`), 130 interrupted."""
    return {
        RunStatus.SUCCEEDED: 0,
        RunStatus.FAILED: 1,
        RunStatus.CANCELLED: 1,
        RunStatus.ROLLED_BACK: 3,
        RunStatus.ROLLBACK_FAILED: 4,
        RunStatus.INTERRUPTED: 130,
        RunStatus.PAUSED: 5,
        RunStatus.RUNNING: 1,
    }[status]
