"""Several questions open at once: answering one leaves the run `paused` while another still
waits (SPEC 2, 5.2); it is `running` again only once none waits."""

from __future__ import annotations

import contextlib
import textwrap
from collections.abc import Callable
from pathlib import Path

import anyio
import pytest

from tempeh_tui.definition import parse_workflow
from tempeh_tui.engine.engine import WorkflowEngine
from tempeh_tui.engine.fake_executor import FakeExecutor, FakeOutcome
from tempeh_tui.engine.results import RunResult
from tempeh_tui.events import RunStatus, StepStatus
from tempeh_tui.store.base import RunNotFound, RunRecord
from tempeh_tui.store.sqlite import SqliteStore

from .support import ENVIRON, RUN_ID, no_wait

pytestmark = pytest.mark.anyio

TWO_BRANCHES = """
    name: two-branches
    on_failure: pause
    steps:
      - name: left
        run: echo left
      - name: right
        run: echo right
      - name: after-left
        needs: [left]
        run: echo after left
"""

FAILURE_AND_GATE = """
    name: failure-and-gate
    on_failure: pause
    steps:
      - name: left
        run: echo left
      - name: gate
        confirm: "Go on?"
        run: echo gate
      - name: after-gate
        needs: [gate]
        run: echo after gate
"""


async def until(
    store: SqliteStore, holds: Callable[[RunRecord], bool], within: float = 10
) -> RunRecord:
    """The run as stored, once `holds` is true of it."""
    with anyio.fail_after(within):
        while True:
            with contextlib.suppress(RunNotFound):  # not created yet
                record = await store.get_run(RUN_ID)
                if holds(record):
                    return record
            await anyio.sleep(0.02)


def waits_for(*units: str) -> Callable[[RunRecord], bool]:
    return lambda run: {d.unit for d in run.waiting_for} == set(units)


def step_is(name: str, status: StepStatus) -> Callable[[RunRecord], bool]:
    return lambda run: {s.name: s.status for s in run.steps}.get(name) is status


async def test_two_failed_branches_keep_the_run_paused_until_both_are_answered(
    tmp_path: Path,
) -> None:
    fake = FakeExecutor(
        {
            "left": [FakeOutcome(exit_code=1), FakeOutcome()],
            "right": [FakeOutcome(exit_code=1)],
        }
    )
    async with SqliteStore(tmp_path / "tempeh.db") as store:
        engine = WorkflowEngine(fake, store, environ=ENVIRON, sleep=no_wait)
        out: dict[str, RunResult] = {}

        async def drive() -> None:
            workflow = parse_workflow(textwrap.dedent(TWO_BRANCHES), "two.yaml")
            out["result"] = await engine.execute_workflow(
                workflow, run_id=RUN_ID, wait_for_decision=True
            )

        async with anyio.create_task_group() as tg:
            tg.start_soon(drive)
            both = await until(store, waits_for("left", "right"))
            assert both.status is RunStatus.PAUSED
            await engine.decide(RUN_ID, "left", "retry", by="tester")
            # left ran again, and its dependent after it; right still waits
            one = await until(store, step_is("after-left", StepStatus.SUCCEEDED))
            assert [d.unit for d in one.waiting_for] == ["right"]
            assert one.status is RunStatus.PAUSED
            await engine.decide(RUN_ID, "right", "skip", by="tester")
        assert out["result"].status is RunStatus.SUCCEEDED
        assert (await store.get_run(RUN_ID)).status is RunStatus.SUCCEEDED


@pytest.mark.parametrize("first", ["gate", "left"])
async def test_a_failure_and_an_approval_keep_the_run_paused_until_both_are_answered(
    tmp_path: Path, first: str
) -> None:
    fake = FakeExecutor({"left": [FakeOutcome(exit_code=1), FakeOutcome()]})
    async with SqliteStore(tmp_path / "tempeh.db") as store:
        engine = WorkflowEngine(fake, store, environ=ENVIRON, sleep=no_wait)
        out: dict[str, RunResult] = {}

        async def drive() -> None:
            workflow = parse_workflow(textwrap.dedent(FAILURE_AND_GATE), "gate.yaml")
            out["result"] = await engine.execute_workflow(
                workflow, run_id=RUN_ID, wait_for_decision=True
            )

        async def answer(unit: str) -> None:
            if unit == "gate":
                await engine.approve(RUN_ID, "gate", by="tester")
            else:
                await engine.decide(RUN_ID, "left", "retry", by="tester")

        second = "left" if first == "gate" else "gate"
        done = {"gate": "after-gate", "left": "left"}
        async with anyio.create_task_group() as tg:
            tg.start_soon(drive)
            both = await until(store, waits_for("left", "gate"))
            assert both.status is RunStatus.PAUSED
            await answer(first)
            one = await until(store, step_is(done[first], StepStatus.SUCCEEDED))
            assert [d.unit for d in one.waiting_for] == [second]
            assert one.status is RunStatus.PAUSED
            await answer(second)
            await until(store, lambda run: run.status is not RunStatus.PAUSED)
        assert out["result"].status is RunStatus.SUCCEEDED
        assert (await store.get_run(RUN_ID)).status is RunStatus.SUCCEEDED
