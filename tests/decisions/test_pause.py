"""on_failure: pause (SPEC 5.2): independent branches go on while the failed step waits for its
operator; each of the four decisions, given through the store as `tempeh decide` gives it."""

from __future__ import annotations

import pytest

from tempeh_tui.engine.decisions import Decision
from tempeh_tui.engine.engine import WorkflowEngine
from tempeh_tui.engine.fake_executor import FakeExecutor, FakeOutcome
from tempeh_tui.events import DecisionRequested, RunStatus, StepStatus
from tempeh_tui.store.base import DecisionRecord
from tempeh_tui.store.memory import MemoryStore

from .support import RUN_ID, run_and_answer, through_the_store

pytestmark = pytest.mark.anyio

PAUSING = """
    name: pausing
    on_failure: pause
    steps:
      - name: setup
        run: echo setup
        rollback: echo undo setup
      - name: migrate
        needs: [setup]
        run: echo migrate
      - name: deploy
        needs: [migrate]
        run: echo deploy
      - name: docs
        run: echo docs
"""

FAILS_ONCE = {"migrate": [FakeOutcome(exit_code=1), FakeOutcome(outputs={"v": "2"})]}
ALWAYS_FAILS = {"migrate": [FakeOutcome(exit_code=1)]}


async def test_retry_runs_the_step_again_with_its_attempts_numbered_on() -> None:
    store = MemoryStore()
    fake = FakeExecutor(FAILS_ONCE)
    run = await run_and_answer(
        PAUSING, fake, store, through_the_store(store, "retry"), wait_for_decision=True
    )
    assert run.result.status is RunStatus.SUCCEEDED
    assert run.result["migrate"].attempts == 2
    assert [c.attempt for c in fake.calls if c.name == "migrate"] == [1, 2]
    assert "deploy" in fake.names()
    # while it waited, the run was paused and the independent branch had gone on
    assert run.seen_while_waiting[0].status is RunStatus.PAUSED
    assert {s.name: s.status for s in run.seen_while_waiting[0].steps}["docs"] is (
        StepStatus.SUCCEEDED
    )
    record = await store.get_run(RUN_ID)
    assert record.status is RunStatus.SUCCEEDED
    (question,) = record.decisions
    assert (question.unit, question.kind, question.answer) == ("migrate", "failure", "retry")
    assert question.answered_by == "tester@host (pid 1)"
    assert question.answered_at is not None
    # the failed attempt was closed when it failed, not left `running` behind the retry
    first, second = {s.name: s for s in record.steps}["migrate"].attempt_history
    assert (first.attempt, first.exit_code, first.error_class) == (1, 1, "unknown")
    assert first.ended_at is not None
    assert first.ended_at <= question.answered_at
    assert second.attempt == 2
    assert second.ended_at is not None
    assert "exit code 1" in question.summary


async def test_skip_lets_dependents_run_as_if_it_had_succeeded_with_no_outputs() -> None:
    store = MemoryStore()
    fake = FakeExecutor(ALWAYS_FAILS)
    run = await run_and_answer(
        PAUSING, fake, store, through_the_store(store, "skip"), wait_for_decision=True
    )
    assert run.result.status is RunStatus.SUCCEEDED
    assert run.result["migrate"].status is StepStatus.SKIPPED
    assert run.result["migrate"].outputs == {}
    assert run.result["deploy"].status is StepStatus.SUCCEEDED
    assert fake.names().count("migrate") == 1


async def test_rollback_stops_starting_and_rolls_back_what_succeeded() -> None:
    store = MemoryStore()
    fake = FakeExecutor(ALWAYS_FAILS)
    run = await run_and_answer(
        PAUSING, fake, store, through_the_store(store, "rollback"), wait_for_decision=True
    )
    assert run.result.status is RunStatus.ROLLED_BACK
    assert run.result.exit_code == 3
    assert "deploy" not in fake.names()
    record = await store.get_run(RUN_ID)
    (rollback,) = record.rollbacks
    assert [a.unit for a in rollback.actions] == ["setup"]
    assert {s.name: s.status for s in record.steps}["setup"] is StepStatus.ROLLED_BACK


async def test_abort_ends_the_run_failed() -> None:
    store = MemoryStore()
    fake = FakeExecutor(ALWAYS_FAILS)
    run = await run_and_answer(
        PAUSING, fake, store, through_the_store(store, "abort"), wait_for_decision=True
    )
    assert run.result.status is RunStatus.FAILED
    assert run.result.exit_code == 1
    assert run.result["migrate"].status is StepStatus.FAILED
    assert run.result["deploy"].status is not StepStatus.SUCCEEDED
    assert "deploy" not in fake.names()
    assert run.result["deploy"].status is StepStatus.SKIPPED  # its need failed (SPEC 3)
    notes = [line.line for line in await store.read_logs(run.result.run_id)]
    assert any("aborting (decided by tester@host (pid 1))" in note for note in notes), notes


async def test_the_engine_decide_api_takes_the_same_path() -> None:
    store = MemoryStore()
    fake = FakeExecutor(FAILS_ONCE)

    async def decide(engine: WorkflowEngine, question: DecisionRecord) -> None:
        await engine.decide(question.run_id, "migrate", Decision.RETRY, by="app")

    run = await run_and_answer(PAUSING, fake, store, decide, wait_for_decision=True)
    assert run.result.status is RunStatus.SUCCEEDED
    (question,) = (await store.get_run(RUN_ID)).decisions
    assert (question.answer, question.answered_by) == ("retry", "app")


async def test_retrying_until_it_works_asks_each_time() -> None:
    store = MemoryStore()
    script = {"migrate": [FakeOutcome(exit_code=1), FakeOutcome(exit_code=1), FakeOutcome()]}
    fake = FakeExecutor(script)
    run = await run_and_answer(
        PAUSING, fake, store, through_the_store(store, "retry"), wait_for_decision=True, times=2
    )
    assert run.result.status is RunStatus.SUCCEEDED
    assert run.result["migrate"].attempts == 3
    assert len(run.seen_while_waiting) == 2


async def test_headless_with_nobody_to_ask_pause_acts_as_abort() -> None:
    store = MemoryStore()
    fake = FakeExecutor(ALWAYS_FAILS)
    run = await run_and_answer(PAUSING, fake, store, None)
    assert run.result.status is RunStatus.FAILED
    assert "deploy" not in fake.names()
    notes = [line.line for line in await store.read_logs(RUN_ID)]
    assert any("--wait-for-decision" in note for note in notes), notes  # says how to wait
    assert not [e for e in run.events if isinstance(e, DecisionRequested)]
    assert (await store.get_run(RUN_ID)).decisions == ()


async def test_nobody_deciding_in_time_ends_the_run_paused_with_exit_5() -> None:
    store = MemoryStore()
    fake = FakeExecutor(ALWAYS_FAILS)
    run = await run_and_answer(
        PAUSING, fake, store, None, wait_for_decision=True, decision_timeout=0.3
    )
    assert run.result.status is RunStatus.PAUSED
    assert run.result.exit_code == 5
    assert "no decision for 'migrate' within 0.3s" in (run.result.message or "")
    record = await store.get_run(RUN_ID)
    assert record.status is RunStatus.PAUSED
    (question,) = record.decisions
    assert question.answer == "timed out"
