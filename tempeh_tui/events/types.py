"""The event types: the one vocabulary between the engine, the store and the views.

Events are small frozen dataclasses (not pydantic models: a step printing 100k lines a second
makes 100k of them). `seq` and `ts` are given by the `EventBus` when the event is published.
`to_json()` is the `--json` line format of SPEC section 6.
"""

from __future__ import annotations

import dataclasses
import enum
import typing
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, ClassVar

from tempeh_tui.events.states import RunStatus, StepStatus

__all__ = [
    "EVENT_TYPES",
    "ConcurrencyChanged",
    "DecisionAnswered",
    "DecisionRequested",
    "Event",
    "RollbackFinished",
    "RollbackPlanned",
    "RollbackStepFinished",
    "RollbackStepStarted",
    "RunFinished",
    "RunStarted",
    "StepFinished",
    "StepOutput",
    "StepRetrying",
    "StepSpawned",
    "StepStarted",
    "StepStatusChanged",
    "event_from_fields",
    "iso_time",
]


def iso_time(ts: float) -> str:
    """ISO 8601 with a time zone (SPEC 6), to the millisecond."""
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds")


_TIMES = frozenset({"ended_at", "process_started"})
"""Fields other than `ts` that hold a time (seconds since the epoch): ISO 8601 in JSON."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Event:
    type: ClassVar[str] = "event"

    run_id: str
    step: str | None = None
    seq: int = 0
    ts: float = 0.0

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "seq": self.seq,
            "ts": iso_time(self.ts),
            "run_id": self.run_id,
            "step": self.step,
            "type": self.type,
        }
        for f in dataclasses.fields(self):
            if f.name not in out:
                value = getattr(self, f.name)
                out[f.name] = iso_time(value) if f.name in _TIMES and value is not None else value
        return out


@dataclass(frozen=True, slots=True, kw_only=True)
class RunStarted(Event):
    """A run began (or resumed): what it runs, with which params and limits."""

    type: ClassVar[str] = "run_started"
    workflow: str
    params: dict[str, Any] = field(default_factory=dict)
    units: tuple[str, ...] = ()
    max_concurrency: int = 4
    resumed: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class RunFinished(Event):
    type: ClassVar[str] = "run_finished"
    status: RunStatus
    message: str | None = None
    counts: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True, kw_only=True)
class StepStatusChanged(Event):
    """A unit moved to a non-terminal state (`waiting`, `awaiting_confirmation`, ...), or
    failed and waits for its operator (`failed`): then `attempt` is the attempt that ended,
    with its `exit_code` and `error_class`."""

    type: ClassVar[str] = "step_status"
    status: StepStatus
    reason: str | None = None
    attempt: int | None = None
    exit_code: int | None = None
    error_class: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class StepStarted(Event):
    """An attempt (or a loop iteration) began running."""

    type: ClassVar[str] = "step_started"
    attempt: int
    iteration: int = 1
    command: str | None = None
    pid: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class StepSpawned(Event):
    """An attempt's process started: its pid is its process group id (SPEC 5.4).

    `process_started` (seconds since the epoch, as the OS reports it) tells a live process
    from a later one that reuses the pid, when a resumed run kills what a dead engine left.
    """

    type: ClassVar[str] = "step_spawned"
    attempt: int
    pid: int
    process_started: float | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class StepOutput(Event):
    """One line a step printed (secrets already masked)."""

    type: ClassVar[str] = "step_output"
    stream: str  # "stdout" | "stderr" | "tempeh" (the engine's own notes about the step)
    line: str
    attempt: int = 1


@dataclass(frozen=True, slots=True, kw_only=True)
class StepRetrying(Event):
    """An attempt failed with a class worth retrying; the next one starts after `delay`."""

    type: ClassVar[str] = "step_retrying"
    attempt: int
    next_attempt: int
    error_class: str
    exit_code: int | None
    delay: float


@dataclass(frozen=True, slots=True, kw_only=True)
class StepFinished(Event):
    """A unit reached a terminal state."""

    type: ClassVar[str] = "step_finished"
    status: StepStatus
    attempts: int = 0
    exit_code: int | None = None
    error_class: str | None = None
    severity: str | None = None
    outputs: dict[str, str] = field(default_factory=dict)
    duration: float | None = None
    cached: bool = False
    cache_key: str | None = None
    """The rendered cache key (with the files' hash) of a succeeded step that has `cache`."""
    reason: str | None = None
    ended_at: float | None = None
    """When the unit ended: about now, or, for a unit a resume reuses, in an earlier process
    (its stored end time stays)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ConcurrencyChanged(Event):
    type: ClassVar[str] = "concurrency_changed"
    max_concurrency: int


@dataclass(frozen=True, slots=True, kw_only=True)
class RollbackPlanned(Event):
    """A rollback of the run begins: its plan (as `RollbackPlan.to_json()`), who asked, when."""

    type: ClassVar[str] = "rollback_planned"
    rollback_id: str
    plan: dict[str, Any] = field(default_factory=dict)
    requested_by: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class RollbackStepStarted(Event):
    """A unit's compensation began: the unit is `rolling_back`."""

    type: ClassVar[str] = "rollback_step_started"
    rollback_id: str
    command: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class RollbackStepFinished(Event):
    """A unit's compensation ended: `rolled_back` or `rollback_failed`."""

    type: ClassVar[str] = "rollback_step_finished"
    rollback_id: str
    status: StepStatus
    exit_code: int | None = None
    reason: str | None = None
    duration: float | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class RollbackFinished(Event):
    """A rollback ended; the run is now `rolled_back`, `rollback_failed` (or `interrupted`)."""

    type: ClassVar[str] = "rollback_finished"
    rollback_id: str
    status: RunStatus
    message: str | None = None
    counts: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True, kw_only=True)
class DecisionRequested(Event):
    """A unit waits for its operator (SPEC 5.2): the run is `paused` while any question waits."""

    type: ClassVar[str] = "decision_requested"
    kind: str  # "failure" (retry | skip | rollback | abort) or "approval" (yes)
    question: str
    choices: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class DecisionAnswered(Event):
    """A question was answered (or the run stopped waiting: `timed out`, `withdrawn`)."""

    type: ClassVar[str] = "decision_answered"
    kind: str
    answer: str
    answered_by: str | None = None
    still_waiting: int = 0
    """Questions of the run that still wait: the run stays `paused` while there are any."""
    env: dict[str, str] = field(default_factory=dict)
    """A retry's changed environment for the unit's next run (secrets masked)."""
    params: dict[str, str] = field(default_factory=dict)
    """A retry's changed params for the unit's next run."""


EVENT_TYPES: dict[str, type[Event]] = {
    cls.type: cls
    for cls in (
        RunStarted,
        DecisionRequested,
        DecisionAnswered,
        RunFinished,
        StepStatusChanged,
        StepStarted,
        StepSpawned,
        StepOutput,
        StepRetrying,
        StepFinished,
        ConcurrencyChanged,
        RollbackPlanned,
        RollbackStepStarted,
        RollbackStepFinished,
        RollbackFinished,
    )
}


_CONVERSIONS: dict[type[Event], dict[str, Any]] = {}


def _conversions(cls: type[Event]) -> dict[str, Any]:
    """Per field of `cls`, what turns its JSON form back into the field's type (enums,
    tuples); fields JSON keeps exactly are left out."""
    found = _CONVERSIONS.get(cls)
    if found is None:
        found = {}
        for name, hint in typing.get_type_hints(cls).items():
            if isinstance(hint, type) and issubclass(hint, enum.Enum):
                found[name] = hint
            elif typing.get_origin(hint) is tuple:
                found[name] = tuple
        _CONVERSIONS[cls] = found
    return found


def event_from_fields(
    type_name: str, data: dict[str, Any], *, run_id: str, step: str | None, seq: int, ts: float
) -> Event:
    """An event again, from the fields its JSON form keeps (the store's `events` rows and its
    journal): the inverse of writing `type` and the event's own fields as JSON.
    Raises KeyError for an unknown type and TypeError for fields the type does not have."""
    cls = EVENT_TYPES[type_name]
    for name, convert in _conversions(cls).items():
        if name in data and data[name] is not None:
            data[name] = convert(data[name])
    return cls(run_id=run_id, step=step, seq=seq, ts=ts, **data)
