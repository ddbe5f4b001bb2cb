"""Events: the typed stream a run publishes, and the states it speaks of."""

from tempeh_tui.events.bus import EventBus as EventBus
from tempeh_tui.events.states import RunStatus as RunStatus
from tempeh_tui.events.states import StepStatus as StepStatus
from tempeh_tui.events.types import ConcurrencyChanged as ConcurrencyChanged
from tempeh_tui.events.types import DecisionAnswered as DecisionAnswered
from tempeh_tui.events.types import DecisionRequested as DecisionRequested
from tempeh_tui.events.types import Event as Event
from tempeh_tui.events.types import RollbackFinished as RollbackFinished
from tempeh_tui.events.types import RollbackPlanned as RollbackPlanned
from tempeh_tui.events.types import RollbackStepFinished as RollbackStepFinished
from tempeh_tui.events.types import RollbackStepStarted as RollbackStepStarted
from tempeh_tui.events.types import RunFinished as RunFinished
from tempeh_tui.events.types import RunStarted as RunStarted
from tempeh_tui.events.types import StepFinished as StepFinished
from tempeh_tui.events.types import StepOutput as StepOutput
from tempeh_tui.events.types import StepRetrying as StepRetrying
from tempeh_tui.events.types import StepSpawned as StepSpawned
from tempeh_tui.events.types import StepStarted as StepStarted
from tempeh_tui.events.types import StepStatusChanged as StepStatusChanged

__all__ = [
    "ConcurrencyChanged",
    "DecisionAnswered",
    "DecisionRequested",
    "Event",
    "EventBus",
    "RollbackFinished",
    "RollbackPlanned",
    "RollbackStepFinished",
    "RollbackStepStarted",
    "RunFinished",
    "RunStarted",
    "RunStatus",
    "StepFinished",
    "StepOutput",
    "StepRetrying",
    "StepSpawned",
    "StepStarted",
    "StepStatus",
    "StepStatusChanged",
]
