"""Approval gates (`confirm`) not approved in advance: with --wait-for-decision the run waits for
`tempeh approve`; the approval is stored, tied to the rendered command and inputs."""

from __future__ import annotations

import sqlite3
import textwrap
from pathlib import Path

import anyio
import pytest

from tempeh_tui.definition import parse_workflow
from tempeh_tui.engine.decisions import approval_hash
from tempeh_tui.engine.engine import WorkflowEngine
from tempeh_tui.engine.fake_executor import FakeExecutor, FakeOutcome
from tempeh_tui.events import DecisionRequested, Event, RunStatus, StepStatus
from tempeh_tui.store.memory import MemoryStore
from tempeh_tui.store.sqlite import SqliteStore

from .support import ENVIRON, RUN_ID, run_and_answer, through_the_store, waiting_question

pytestmark = pytest.mark.anyio

BUILD = {"build": [FakeOutcome(outputs={"version": "7"})]}

GATED = """
    name: gated
    steps:
      - name: build
        run: echo build
      - name: deploy
        needs: [build]
        confirm: "Deploy version {{ steps.build.outputs.version }}?"
        run: echo deploying {{ steps.build.outputs.version }}
"""


async def test_a_gate_waits_for_approval_and_records_who_approved() -> None:
    store = MemoryStore()
    fake = FakeExecutor(BUILD)
    run = await run_and_answer(
        GATED,
        fake,
        store,
        through_the_store(store, "yes", kind="approval"),
        wait_for_decision=True,
    )
    assert run.result.status is RunStatus.SUCCEEDED
    assert fake.names() == ["build", "deploy"]
    assert run.seen_while_waiting[0].status is RunStatus.PAUSED
    waiting = {s.name: s.status for s in run.seen_while_waiting[0].steps}
    assert waiting["deploy"] is StepStatus.AWAITING_CONFIRMATION
    (question,) = (await store.get_run(RUN_ID)).decisions
    assert (question.kind, question.summary, question.answer) == (
        "approval",
        "Deploy version 7?",
        "yes",
    )
    assert question.input_hash
    assert question.answered_by == "tester@host (pid 1)"


async def test_without_waiting_an_unapproved_gate_fails_as_before() -> None:
    store = MemoryStore()
    fake = FakeExecutor(BUILD)
    run = await run_and_answer(GATED, fake, store, None, environ=ENVIRON)
    assert run.result.status is RunStatus.FAILED
    assert "--approve deploy" in (run.result["deploy"].reason or "")
    assert fake.names() == ["build"]


async def test_nobody_approving_in_time_ends_the_run_paused_with_exit_5() -> None:
    store = MemoryStore()
    run = await run_and_answer(
        GATED,
        FakeExecutor(BUILD),
        store,
        None,
        wait_for_decision=True,
        decision_timeout=0.3,
    )
    assert run.result.status is RunStatus.PAUSED
    assert run.result.exit_code == 5
    (question,) = (await store.get_run(RUN_ID)).decisions
    assert question.answer == "timed out"


async def _approved_then_failed(db: Path) -> None:
    """Run 1: the gate is approved for TARGET=prod, then the step fails."""
    async with SqliteStore(db) as store:
        fake = FakeExecutor({**BUILD, "deploy": [FakeOutcome(exit_code=1)]})
        run = await run_and_answer(
            GATED,
            fake,
            store,
            through_the_store(store, "yes", kind="approval"),
            wait_for_decision=True,
            on_failure="abort",
        )
        assert run.result.status is RunStatus.FAILED


async def test_a_resumed_run_with_the_same_inputs_is_not_asked_again(tmp_path: Path) -> None:
    db = tmp_path / "tempeh.db"
    await _approved_then_failed(db)
    async with SqliteStore(db) as store:
        engine = WorkflowEngine(FakeExecutor(BUILD), store, environ=ENVIRON)
        events: list[Event] = []
        engine.subscribe(events.append)
        result = await engine.resume(RUN_ID, wait_for_decision=True, decision_timeout=2)
        assert result.status is RunStatus.SUCCEEDED
        assert not [e for e in events if isinstance(e, DecisionRequested)]
        assert len((await store.get_run(RUN_ID)).decisions) == 1


async def test_changed_inputs_void_an_old_approval(tmp_path: Path) -> None:
    db = tmp_path / "tempeh.db"
    await _approved_then_failed(db)
    # The stored approval was given for version 6: the deploy about to run is version 7's.
    old = approval_hash("Deploy version 6?", 'echo deploying "${TEMPEH_X1}"', {"TEMPEH_X1": "6"})
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE decisions SET input_hash = ?", (old,))
    conn.close()
    async with SqliteStore(db) as store:
        engine = WorkflowEngine(FakeExecutor(BUILD), store, environ=ENVIRON)
        out = {}

        async def resume() -> None:
            out["result"] = await engine.resume(RUN_ID, wait_for_decision=True)

        async with anyio.create_task_group() as tg:
            tg.start_soon(resume)
            question = await waiting_question(store, RUN_ID)
            assert question.summary == "Deploy version 7?"
            await engine.approve(RUN_ID, "deploy", by="tester")
        assert out["result"].status is RunStatus.SUCCEEDED
        first, second = (await store.get_run(RUN_ID)).decisions
        assert first.input_hash == old != second.input_hash
        assert (second.answer, second.answered_by) == ("yes", "tester")


def test_an_approval_is_tied_to_the_rendered_command_and_its_values() -> None:
    one = approval_hash("Deploy?", "deploy", {"TEMPEH_X1": "7"})
    assert one == approval_hash("Deploy?", "deploy", {"TEMPEH_X1": "7"})
    assert one != approval_hash("Deploy?", "deploy", {"TEMPEH_X1": "8"})
    assert one != approval_hash("Deploy?", "deploy --force", {"TEMPEH_X1": "7"})


def test_the_workflow_parses() -> None:
    parse_workflow(textwrap.dedent(GATED), "gated.yaml")


async def test_an_approval_given_the_moment_its_question_is_announced_is_taken(
    tmp_path: Path,
) -> None:
    """The app answers from its event handler: the question must be stored by then. And
    `async for event in engine.events()` ends with the run's `run_finished` (SPEC 7)."""
    store = SqliteStore(tmp_path / "tempeh.db")
    await store.open()
    engine = WorkflowEngine(FakeExecutor(BUILD), store, environ=ENVIRON)
    workflow = parse_workflow(textwrap.dedent(GATED), "gated.yaml")
    seen: list[str] = []
    answered: list[str] = []

    async def operator() -> None:
        async for event in engine.events():
            seen.append(event.type)
            if isinstance(event, DecisionRequested):
                answered.append((await engine.approve(event.run_id, "deploy", by="app")).unit)

    async with anyio.create_task_group() as tg:
        tg.start_soon(operator)
        await anyio.wait_all_tasks_blocked()  # the operator listens before the run starts
        with anyio.fail_after(10):
            result = await engine.execute_workflow(workflow, run_id=RUN_ID, wait_for_decision=True)
    assert result.status is RunStatus.SUCCEEDED
    assert answered == ["deploy"]
    assert seen[-1] == "run_finished"  # the loop ended by itself, with the run
    (question,) = (await store.get_run(RUN_ID)).decisions
    assert (question.answer, question.answered_by) == ("yes", "app")
    await store.close()


async def test_a_gate_waiting_for_its_answer_holds_no_slot_and_no_resource() -> None:
    """SPEC 3: a step starts when a slot and its resources allow; a gate that waits for its
    approval is not running. It used to hold both, and with them the rest of the run."""
    store = MemoryStore()
    fake = FakeExecutor()

    async def once_the_other_step_ran(engine: WorkflowEngine, question: object) -> None:
        with anyio.fail_after(5):
            while True:
                steps = {s.name: s.status for s in (await store.get_run(RUN_ID)).steps}
                if steps["other"] is StepStatus.SUCCEEDED:
                    break
                await anyio.sleep(0.01)
        assert steps["gate"] is StepStatus.AWAITING_CONFIRMATION
        await engine.approve(RUN_ID, "gate", by="tester")

    run = await run_and_answer(
        """
        name: one-slot
        max_concurrency: 1
        resources: {db: 1}
        steps:
          - {name: gate, confirm: "Migrate?", resources: {db: 1}, run: echo migrate}
          - {name: other, resources: {db: 1}, run: echo other}
        """,
        fake,
        store,
        once_the_other_step_ran,
        wait_for_decision=True,
    )
    assert run.result.status is RunStatus.SUCCEEDED
    assert fake.names() == ["other", "gate"]


REFUSABLE = """
    name: refusable
    on_failure: continue
    steps:
      - {name: migrate, run: echo migrate, rollback: echo unmigrate}
      - name: gate
        needs: [migrate]
        confirm: "Deploy to production?"
        run: echo deploy
      - {name: after, needs: [gate], run: echo after}
      - {name: slow, run: echo slow}
"""


@pytest.mark.parametrize(
    ("answer", "ends", "gate_ends", "ran"),
    [
        ("skip", RunStatus.SUCCEEDED, StepStatus.SKIPPED, ["migrate", "slow", "after"]),
        ("abort", RunStatus.FAILED, StepStatus.FAILED, ["migrate", "slow"]),
        ("rollback", RunStatus.ROLLED_BACK, StepStatus.FAILED, ["migrate", "slow", "unmigrate"]),
    ],
)
async def test_an_approval_gate_can_be_refused(
    answer: str, ends: RunStatus, gate_ends: StepStatus, ran: list[str]
) -> None:
    """`tempeh decide RUN GATE skip|abort|rollback` says no to a waiting gate; before, only
    `approve` was taken, and the only way out was to signal the driving process. An abort or
    a rollback stops the run whatever its on_failure (here: continue)."""
    store = MemoryStore()
    fake = FakeExecutor()

    async def refuse(engine: WorkflowEngine, question: object) -> None:
        await engine.decide(RUN_ID, "gate", answer, by="tester")

    run = await run_and_answer(REFUSABLE, fake, store, refuse, wait_for_decision=True)

    assert run.result.status is ends
    assert sorted(c.command.split()[1] for c in fake.calls) == sorted(ran)
    gate = run.result["gate"]
    assert gate.status is gate_ends
    assert gate.reason == f"refused by tester ({answer}): Deploy to production?"
    (question,) = (await store.get_run(RUN_ID)).decisions
    assert (question.kind, question.answer) == ("approval", answer)


async def test_a_gate_approved_in_advance_does_not_start_once_the_run_has_stopped() -> None:
    """`a` makes both the gate and `bad` ready; `bad`'s `when` fails, which aborts the run
    before the gate could start. A gate that awaited nothing (approved in advance) used to
    miss the stop and run anyway."""
    store = MemoryStore()
    fake = FakeExecutor({"a": [FakeOutcome(outputs={"x": "1"})]})
    run = await run_and_answer(
        """
        name: stopped
        on_failure: abort
        steps:
          - {name: a, run: echo a}
          - {name: g, needs: [a], confirm: "Go?", run: echo g}
          - {name: bad, needs: [a], when: "steps['a'].outputs.missing == 1", run: echo bad}
        """,
        fake,
        store,
        None,
        approve=["g"],
    )
    assert run.result.status is RunStatus.FAILED
    assert fake.names() == ["a"]
    assert run.result["g"].status is StepStatus.CANCELLED


async def test_an_approved_gate_waiting_for_a_slot_no_longer_awaits_confirmation() -> None:
    store = MemoryStore()
    fake = FakeExecutor({"long": [FakeOutcome(duration=0.3)]})
    seen: list[StepStatus] = []

    async def approve_then_look(engine: WorkflowEngine, question: object) -> None:
        await engine.approve(RUN_ID, "g", by="tester")
        with anyio.fail_after(5):
            while not seen:
                gate = {s.name: s for s in (await store.get_run(RUN_ID)).steps}["g"]
                if gate.status is not StepStatus.AWAITING_CONFIRMATION:
                    seen.append(gate.status)
                await anyio.sleep(0.01)

    run = await run_and_answer(
        """
        name: one-slot
        max_concurrency: 1
        steps:
          - {name: long, run: sleep 1}
          - {name: g, confirm: "Go?", run: echo g}
        """,
        fake,
        store,
        approve_then_look,
        wait_for_decision=True,
    )
    assert run.result.status is RunStatus.SUCCEEDED
    assert seen == [StepStatus.WAITING]  # approved, waiting for the slot `long` holds
