"""A step the operator skipped stays skipped when the run is resumed (SPEC 4, 5.2): the resume
says who skipped it and when, and its dependents still count it as done."""

from __future__ import annotations

import textwrap
from pathlib import Path

import anyio
import pytest

from tempeh_tui.definition import parse_workflow
from tempeh_tui.engine.decisions import DecisionDesk
from tempeh_tui.engine.engine import WorkflowEngine
from tempeh_tui.engine.fake_executor import FakeExecutor, FakeOutcome
from tempeh_tui.engine.resume import ResumePlan
from tempeh_tui.events import RunStatus, StepStatus
from tempeh_tui.store.base import DecisionRecord
from tempeh_tui.store.sqlite import SqliteStore

from .support import ENVIRON, RUN_ID, no_wait, run_and_answer, waiting_question

pytestmark = pytest.mark.anyio

RELEASE = """
    name: release
    on_failure: pause
    steps:
      - name: migrate
        run: echo migrate
      - name: deploy
        needs: [migrate]
        run: echo deploy
      - name: smoke
        needs: [deploy]
        run: echo smoke
      - name: optional
        when: "params.never == 'yes'"
        run: echo optional
    params:
      never: {default: "no"}
"""


async def resume(store: SqliteStore) -> tuple[FakeExecutor, ResumePlan, RunStatus]:
    fake = FakeExecutor()
    plans: list[ResumePlan] = []
    engine = WorkflowEngine(fake, store, environ=ENVIRON, sleep=no_wait)
    result = await engine.resume(RUN_ID, explain=plans.append)
    return fake, plans[0], result.status


async def answered_then_dead(
    store: SqliteStore, text: str, failing: str, answer: str, by: str
) -> None:
    """Run `text` until `failing` fails and asks; answer through the store; the engine dies
    before it reads the answer (its desk never looks at the store again)."""
    deaf = DecisionDesk(store, wait=True, poll=3600)
    fake = FakeExecutor({failing: [FakeOutcome(exit_code=1)]})
    engine = WorkflowEngine(fake, store, environ=ENVIRON, sleep=no_wait, decisions=deaf)
    workflow = parse_workflow(textwrap.dedent(text), "release.yaml")
    async with anyio.create_task_group() as tg:
        tg.start_soon(lambda: engine.execute_workflow(workflow, run_id=RUN_ID))
        question = await waiting_question(store, RUN_ID)
        assert question.unit == failing
        found = await store.answer_decision(RUN_ID, failing, "failure", answer, by)
        assert found is not None
        tg.cancel_scope.cancel()


async def test_a_skipped_step_is_reused_as_skipped_by_the_operator(tmp_path: Path) -> None:
    async with SqliteStore(tmp_path / "tempeh.db") as store:
        fake = FakeExecutor(
            {"migrate": [FakeOutcome(exit_code=1)], "smoke": [FakeOutcome(exit_code=1)]}
        )

        answers = iter(["skip", "abort"])

        async def answer(engine: WorkflowEngine, question: DecisionRecord) -> None:
            await engine.decide(RUN_ID, question.unit, next(answers), by="tester@host (pid 1)")

        first = await run_and_answer(RELEASE, fake, store, answer, times=2, wait_for_decision=True)
        assert first.result.status is RunStatus.FAILED
        assert first.result["migrate"].status is StepStatus.SKIPPED
        assert first.result["deploy"].status is StepStatus.SUCCEEDED

        again, plan, status = await resume(store)

        assert status is RunStatus.SUCCEEDED
        assert again.names() == ["smoke"]  # migrate is not run again, deploy is reused
        why = {d.name: (d.action, d.why) for d in plan.decisions}
        action, reason = why["migrate"]
        assert action == "reuse"
        assert reason.startswith("skipped by the operator (tester@host (pid 1), 20")
        assert why["optional"][0] == "decide again"  # a skip by `when` is judged afresh
        record = await store.get_run(RUN_ID)
        steps = {s.name: s for s in record.steps}
        assert steps["migrate"].status is StepStatus.SKIPPED
        assert "skipped by the operator" in (steps["migrate"].reason or "")
        assert steps["optional"].status is StepStatus.SKIPPED


async def test_a_skip_the_dead_engine_never_acted_on_still_counts(tmp_path: Path) -> None:
    async with SqliteStore(tmp_path / "tempeh.db") as store:
        await answered_then_dead(store, RELEASE, "migrate", "skip", "tester@host (pid 1)")
        stored = {s.name: s.status for s in (await store.get_run(RUN_ID)).steps}
        assert stored["migrate"] is StepStatus.FAILED

        again, plan, status = await resume(store)

        assert status is RunStatus.SUCCEEDED
        assert again.names() == ["deploy", "smoke"]
        why = {d.name: d.why for d in plan.decisions}
        assert why["migrate"].startswith("skipped by the operator (tester@host (pid 1), ")
        steps = {s.name: s for s in (await store.get_run(RUN_ID)).steps}
        assert steps["migrate"].status is StepStatus.SKIPPED
        assert steps["migrate"].outputs == {}


async def test_a_step_retried_then_aborted_runs_again_on_resume(tmp_path: Path) -> None:
    async with SqliteStore(tmp_path / "tempeh.db") as store:
        fake = FakeExecutor({"migrate": [FakeOutcome(exit_code=1)]})
        answers = iter(["retry", "abort"])

        async def answer(engine: WorkflowEngine, question: DecisionRecord) -> None:
            await engine.decide(RUN_ID, question.unit, next(answers), by="tester")

        first = await run_and_answer(RELEASE, fake, store, answer, times=2, wait_for_decision=True)
        assert first.result.status is RunStatus.FAILED

        again, plan, status = await resume(store)

        assert status is RunStatus.SUCCEEDED
        assert again.names() == ["migrate", "deploy", "smoke"]
        assert {d.name: d.action for d in plan.decisions}["migrate"] == "re-run"


ROLLS_BACK = """
    name: release
    on_failure: pause
    steps:
      - name: migrate
        run: echo migrate
        rollback: echo unmigrate
      - name: deploy
        needs: [migrate]
        run: echo deploy
      - name: smoke
        needs: [deploy]
        run: echo smoke
"""


@pytest.mark.parametrize(
    ("answer", "ends", "migrate_ends"),
    [
        ("rollback", RunStatus.ROLLED_BACK, StepStatus.ROLLED_BACK),
        ("abort", RunStatus.FAILED, StepStatus.SUCCEEDED),
    ],
)
async def test_a_rollback_or_abort_the_dead_engine_never_acted_on_is_acted_on(
    tmp_path: Path, answer: str, ends: RunStatus, migrate_ends: StepStatus
) -> None:
    """The answer is stored before the engine acts on it (SPEC 4); the engine died first.
    Resume used to run the failed step again, and go on deploying."""
    async with SqliteStore(tmp_path / "tempeh.db") as store:
        await answered_then_dead(store, ROLLS_BACK, "deploy", answer, "tester")

        again, plan, status = await resume(store)

        assert status is ends
        assert not {"deploy", "smoke"} & set(again.names())
        decided = {d.name: (d.action, d.why) for d in plan.decisions}["deploy"]
        assert decided[0] == "as decided"
        assert f"its operator answered {answer} (tester, " in decided[1]
        steps = {s.name: s.status for s in (await store.get_run(RUN_ID)).steps}
        assert steps["deploy"] is StepStatus.FAILED
        assert steps["migrate"] is migrate_ends
