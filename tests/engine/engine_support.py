"""Running workflows through the engine with a fake executor and a clock that does not wait."""

from __future__ import annotations

import textwrap
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from random import Random
from typing import Any

import anyio

from tempeh_tui.definition import parse_workflow
from tempeh_tui.engine.engine import WorkflowEngine
from tempeh_tui.engine.executor import Executor
from tempeh_tui.engine.host_load import HostLoad
from tempeh_tui.engine.results import RunResult
from tempeh_tui.events import Event, StepFinished, StepStarted


@dataclass
class Recorded:
    """A run's result, every event it published, and the backoff delays it asked for."""

    result: RunResult
    events: list[Event]
    delays: list[float] = field(default_factory=list)

    def of(self, kind: type[Event]) -> list[Any]:
        return [e for e in self.events if isinstance(e, kind)]

    def started(self) -> list[str]:
        """Unit names in the order they started (first attempt only)."""
        return [e.step for e in self.of(StepStarted) if e.attempt == 1]

    def index(self, kind: type[Event], step: str) -> int:
        """Position of the first event of `kind` for `step`."""
        for i, event in enumerate(self.events):
            if isinstance(event, kind) and event.step == step:
                return i
        raise AssertionError(f"no {kind.__name__} for {step}")

    def overlapping(self, a: str, b: str) -> bool:
        """Whether units a and b were running at the same time."""
        return self.index(StepStarted, a) < self.index(StepFinished, b) and self.index(
            StepStarted, b
        ) < self.index(StepFinished, a)


async def run_yaml(
    text: str,
    executor: Executor,
    *,
    params: Mapping[str, Any] | None = None,
    host_load: HostLoad | None = None,
    environ: Mapping[str, str] | None = None,
    **options: Any,
) -> Recorded:
    workflow = parse_workflow(textwrap.dedent(text), "test.yaml")
    delays: list[float] = []

    async def no_wait(seconds: float) -> None:
        delays.append(seconds)

    engine = WorkflowEngine(
        executor,
        sleep=no_wait,
        rng=Random(7),
        host_load=host_load,
        environ=environ if environ is not None else {"PATH": "/usr/bin:/bin"},
    )
    events: list[Event] = []
    engine.subscribe(events.append)
    result = await engine.execute_workflow(
        workflow, params=params, enable_checkpointing=False, **options
    )
    return Recorded(result, events, delays)


async def stop_when(
    start: Callable[[], Coroutine[Any, Any, object]], ready: Callable[[], bool]
) -> None:
    """Run `start()` until `ready()` holds, then cancel it, as a caller's cancel scope (or
    Ctrl-C) does: the run is recorded interrupted. Fails if `ready()` does not hold within 5 s."""
    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(start)
            while not ready():  # noqa: ASYNC110 - what is waited for has no event
                await anyio.sleep(0.01)
            tg.cancel_scope.cancel()
