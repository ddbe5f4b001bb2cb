"""Driving a run that waits for its operator, and answering it the way another terminal would."""

from __future__ import annotations

import textwrap
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import anyio
import anyio.lowlevel

from tempeh_tui.definition import parse_workflow
from tempeh_tui.engine.engine import WorkflowEngine
from tempeh_tui.engine.executor import Executor
from tempeh_tui.engine.results import RunResult
from tempeh_tui.events import Event, RunStatus
from tempeh_tui.store.base import DecisionRecord, RunRecord, Store

RUN_ID = "20261125-000000-dec1"
ENVIRON = {"PATH": "/usr/bin:/bin"}


@dataclass
class Answered:
    result: RunResult
    events: list[Event]
    seen_while_waiting: list[RunRecord] = field(default_factory=list)


async def waiting_question(store: Store, run_id: str, within: float = 10) -> DecisionRecord:
    """The first question of the run that waits, once the store has one."""
    with anyio.fail_after(within):
        while True:
            waiting = [d for d in await store.decisions(run_id) if d.waiting]
            if waiting:
                return waiting[0]
            await anyio.sleep(0.02)


async def run_and_answer(
    text: str,
    executor: Executor,
    store: Store,
    answer: Callable[[WorkflowEngine, DecisionRecord], Awaitable[Any]] | None,
    *,
    environ: Mapping[str, str] = ENVIRON,
    times: int = 1,
    **options: Any,
) -> Answered:
    """Run `text`; whenever it waits (up to `times` times), `answer` the question."""
    engine = WorkflowEngine(executor, store, environ=environ, sleep=no_wait)
    events: list[Event] = []
    engine.subscribe(events.append)
    workflow = parse_workflow(textwrap.dedent(text), "test.yaml")
    out: dict[str, RunResult] = {}
    seen: list[RunRecord] = []

    async def drive() -> None:
        out["result"] = await engine.execute_workflow(workflow, run_id=RUN_ID, **options)

    async with anyio.create_task_group() as tg:
        tg.start_soon(drive)
        if answer is not None:
            for _ in range(times):
                question = await waiting_question(store, RUN_ID)
                seen.append(await store.get_run(RUN_ID))
                await answer(engine, question)  # in the store at once: no wait
    return Answered(out["result"], events, seen)


def through_the_store(store: Store, value: str, kind: str = "failure") -> Callable[..., Any]:
    """Answer as `tempeh decide` does: write the answer into the store, nothing else."""

    async def answer(_engine: WorkflowEngine, question: DecisionRecord) -> None:
        found = await store.answer_decision(
            question.run_id, question.unit, kind, value, "tester@host (pid 1)"
        )
        assert found is not None

    return answer


async def no_wait(_seconds: float) -> None:
    await anyio.lowlevel.checkpoint()


PAUSED = RunStatus.PAUSED
