"""Resume: reuse what succeeded, run again what did not, and ask about what is in doubt."""

from __future__ import annotations

import sqlite3
import textwrap
from functools import partial
from pathlib import Path

import anyio
import pytest

from tempeh_tui.definition import parse_workflow
from tempeh_tui.definition.models import Workflow
from tempeh_tui.engine.engine import WorkflowEngine
from tempeh_tui.engine.fake_executor import FakeExecutor, FakeOutcome
from tempeh_tui.engine.resume import InDoubt, ResumePlan, plan_resume
from tempeh_tui.errors import WorkflowError
from tempeh_tui.events import Event, RunStatus, StepRetrying, StepStarted, StepStatus
from tempeh_tui.store.base import DecisionRecord, RunRecord, StepRecord, StoreError
from tempeh_tui.store.sqlite import SqliteStore
from tests.engine.engine_support import stop_when

pytestmark = pytest.mark.anyio

CHAIN = """
name: chain
steps:
  - {name: build, run: "make build"}
  - {name: migrate, needs: [build], run: "migrate up", CHECK}
  - {name: deploy, needs: [migrate], run: "deploy"}
"""


def chain(check: str = "") -> Workflow:
    text = CHAIN.replace(", CHECK", f", {check}" if check else "")
    return parse_workflow(textwrap.dedent(text), "chain.yaml")


async def crash_while(
    store: SqliteStore, workflow: Workflow, unit: str, on_failure: str | None = None
) -> str:
    """Run until `unit` is running, then stop dead, as a killed engine would: the engine has
    a store of its own on the same file, which writes nothing more of the run from then on
    (as after `kill -9`; a cancelled engine would record the run `interrupted`)."""
    fake = FakeExecutor({unit: [FakeOutcome(duration=60)]})
    run_ids: list[str] = []
    async with SqliteStore(store.path) as own:
        engine = WorkflowEngine(fake, own)
        engine.subscribe(lambda e: run_ids.append(e.run_id))
        with anyio.move_on_after(5) as scope:
            async with anyio.create_task_group() as tg:
                tg.start_soon(partial(engine.execute_workflow, workflow, on_failure=on_failure))
                while unit not in fake.names():  # noqa: ASYNC110 - the fake has no event to wait on
                    await anyio.sleep(0.01)
                await own.flush()
                own.fence(run_ids[0])
                tg.cancel_scope.cancel()
        assert not scope.cancelled_caught
    return run_ids[0]


async def test_a_failed_run_resumes_without_running_what_succeeded(store: SqliteStore) -> None:
    first = FakeExecutor({"migrate": [FakeOutcome(exit_code=1)]})
    failed = await WorkflowEngine(first, store).execute_workflow(chain())
    assert failed.status is RunStatus.FAILED

    built = {s.name: s for s in (await store.get_run(failed.run_id)).steps}["build"]
    again = FakeExecutor()
    plans: list[ResumePlan] = []
    await anyio.sleep(0.05)  # a resume later: what it reuses keeps its own times
    resumed = await WorkflowEngine(again, store).resume(failed.run_id, explain=plans.append)

    assert resumed.status is RunStatus.SUCCEEDED
    assert again.names() == ["migrate", "deploy"]
    reused = {s.name: s for s in (await store.get_run(failed.run_id)).steps}["build"]
    assert (reused.started_at, reused.ended_at) == (built.started_at, built.ended_at)
    decisions = {d.name: (d.action, d.why) for d in plans[0].decisions}
    assert decisions["build"] == ("reuse", "succeeded")
    assert decisions["migrate"] == ("re-run", "ended failed")
    assert decisions["deploy"][0] == "decide again"  # skipped: its need had failed
    assert [c.attempt for c in again.calls] == [2, 1]  # attempt numbers go on
    stored = await store.get_run(failed.run_id)
    assert stored.status is RunStatus.SUCCEEDED


async def test_an_idempotent_step_in_doubt_runs_again(store: SqliteStore) -> None:
    run_id = await crash_while(store, chain(), "migrate")
    before = await store.get_run(run_id)
    assert {s.name: s.status for s in before.steps}["migrate"] is StepStatus.RUNNING

    again = FakeExecutor()
    plans: list[ResumePlan] = []
    result = await WorkflowEngine(again, store).resume(run_id, explain=plans.append)

    assert result.succeeded
    assert again.names() == ["migrate", "deploy"]
    migrate = next(d for d in plans[0].decisions if d.name == "migrate")
    assert migrate.action == "in doubt"


async def test_the_check_probe_decides_a_step_in_doubt(store: SqliteStore) -> None:
    run_id = await crash_while(store, chain("check: 'migrate status'"), "migrate")

    again = FakeExecutor()  # every command succeeds, the probe included
    result = await WorkflowEngine(again, store).resume(run_id)

    assert result.succeeded
    assert [c.command for c in again.calls] == ["migrate status", "deploy"]
    assert "check probe" in (result["migrate"].reason or "")


async def test_a_probe_that_says_no_runs_the_step_again(store: SqliteStore) -> None:
    run_id = await crash_while(store, chain("check: 'migrate status'"), "migrate")

    again = FakeExecutor({"migrate": [FakeOutcome(exit_code=1), FakeOutcome()]})
    result = await WorkflowEngine(again, store).resume(run_id)

    assert result.succeeded
    assert [c.command for c in again.calls] == ["migrate status", "migrate up", "deploy"]


async def test_a_probe_that_cannot_be_rendered_fails_its_step_and_runs_nothing(
    store: SqliteStore,
) -> None:
    """No answer from the probe: the step is not run again blind (it may have had its effect),
    and the engine does not crash (every resume raised, and the run could never finish)."""
    probe = "check: 'migrate status {{ steps.build.outputs.sha }}'"
    run_id = await crash_while(store, chain(probe), "migrate")

    again = FakeExecutor()
    result = await WorkflowEngine(again, store).resume(run_id, on_failure="continue")

    assert again.calls == []
    assert result["migrate"].status is StepStatus.FAILED
    assert (result["migrate"].reason or "").startswith("check: ")
    assert "has no attribute 'sha'" in (result["migrate"].reason or "")


async def test_a_step_in_doubt_that_is_not_idempotent_needs_a_yes(store: SqliteStore) -> None:
    run_id = await crash_while(store, chain("idempotent: false"), "migrate")

    refused = FakeExecutor()
    with pytest.raises(InDoubt, match="migrate"):
        await WorkflowEngine(refused, store).resume(run_id)
    assert refused.calls == []
    # nobody drives it after the refusal: it reads `interrupted` (it read `running`)
    stored = await store.get_run(run_id)
    assert (stored.status, stored.lease) == (RunStatus.INTERRUPTED, None)
    assert "resume with --yes" in (stored.message or "")

    confirmed = FakeExecutor()
    result = await WorkflowEngine(confirmed, store).resume(run_id, confirm_in_doubt=True)
    assert result.succeeded
    assert confirmed.names() == ["migrate", "deploy"]


async def test_a_step_stopped_in_its_retry_backoff_is_not_in_doubt(store: SqliteStore) -> None:
    workflow = chain("idempotent: false, retry: {attempts: 3, delay: 60s, jitter: false}")
    fake = FakeExecutor({"migrate": [FakeOutcome(exit_code=75)]})  # transient: retried
    retrying = anyio.Event()
    run_ids: list[str] = []

    def watch(event: Event) -> None:
        run_ids.append(event.run_id)
        if isinstance(event, StepRetrying):
            retrying.set()

    async with SqliteStore(store.path) as own:  # the engine that dies, and its store
        engine = WorkflowEngine(fake, own)
        engine.subscribe(watch)
        with anyio.fail_after(5):
            async with anyio.create_task_group() as tg:
                tg.start_soon(engine.execute_workflow, workflow)
                await retrying.wait()  # attempt 1 ended; it sleeps 60 s before attempt 2
                await own.flush()
                own.fence(run_ids[0])  # and dies there, as a killed engine would
                tg.cancel_scope.cancel()
    before = {s.name: s for s in (await store.get_run(run_ids[0])).steps}
    assert before["migrate"].status is StepStatus.RUNNING

    again = FakeExecutor()
    plans: list[ResumePlan] = []
    result = await WorkflowEngine(again, store).resume(run_ids[0], explain=plans.append)

    assert result.succeeded  # no InDoubt, no --yes needed: nothing of it was running
    migrate = next(d for d in plans[0].decisions if d.name == "migrate")
    assert (migrate.action, migrate.confirm) == ("re-run", False)
    assert "waiting to retry: attempt 1 had ended (transient, exit 75)" in migrate.why
    assert [(c.name, c.attempt) for c in again.calls][:1] == [("migrate", 2)]


async def test_a_stored_definition_that_does_not_match_its_hash_is_refused(
    store: SqliteStore, tmp_path: Path
) -> None:
    failed = await WorkflowEngine(
        FakeExecutor({"build": [FakeOutcome(exit_code=1)]}), store
    ).execute_workflow(chain())
    with sqlite3.connect(tmp_path / "t.db") as db:
        db.execute(
            "UPDATE definitions SET definition = replace(definition, 'make build', 'rm -rf /') "
            "WHERE run_id = ?",
            (failed.run_id,),
        )
    before = await store.get_run(failed.run_id)
    with pytest.raises(StoreError, match="does not match its hash"):
        await WorkflowEngine(FakeExecutor(), store).resume(failed.run_id)
    refused = await store.get_run(failed.run_id)  # what it came to stands
    assert (refused.status, refused.ended_at) == (RunStatus.FAILED, before.ended_at)


async def test_a_resume_refused_for_its_definition_leaves_the_run_interrupted(
    store: SqliteStore, tmp_path: Path
) -> None:
    """The refusal came after the resume took the lease: the run was left `running`, with
    nobody driving it, for `runs` and `show` to report as live."""
    run_id = await crash_while(store, chain(), "migrate")
    with sqlite3.connect(tmp_path / "t.db") as db:
        db.execute("DELETE FROM definitions WHERE run_id = ?", (run_id,))
    db.close()

    with pytest.raises(StoreError, match="does not load"):
        await WorkflowEngine(FakeExecutor(), store).resume(run_id)

    record = await store.get_run(run_id)
    assert record.status is RunStatus.INTERRUPTED
    assert record.lease is None
    assert "does not load" in (record.message or "")


async def test_resuming_a_finished_run_reuses_everything(store: SqliteStore) -> None:
    done = await WorkflowEngine(FakeExecutor(), store).execute_workflow(chain())
    again = FakeExecutor()
    result = await WorkflowEngine(again, store).resume(done.run_id)
    assert result.succeeded
    assert again.calls == []


async def test_resume_keeps_the_failure_policy_the_run_was_started_with(
    store: SqliteStore,
) -> None:
    """`run --on-failure rollback` of a file that says `pause`: its resume used to pause
    (with nobody to ask: abort) and leave the deployment half done."""
    run_id = await crash_while(store, chain(), "migrate", on_failure="rollback")
    assert (await store.get_run(run_id)).on_failure == "rollback"

    again = FakeExecutor({"migrate": [FakeOutcome(exit_code=1)]})
    result = await WorkflowEngine(again, store).resume(run_id)

    assert result.status is RunStatus.ROLLED_BACK


async def test_a_run_its_caller_cancels_is_recorded_interrupted_and_resumes(
    store: SqliteStore,
) -> None:
    """A library caller's cancel scope (or a subscriber's exception) used to leave the run
    `running` in the store for ever, its step too."""
    fake = FakeExecutor({"migrate": [FakeOutcome(duration=60)]})
    engine = WorkflowEngine(fake, store)
    run_ids: list[str] = []
    engine.subscribe(lambda e: run_ids.append(e.run_id))
    await stop_when(partial(engine.execute_workflow, chain()), lambda: "migrate" in fake.names())

    stored = await store.get_run(run_ids[0])
    assert stored.status is RunStatus.INTERRUPTED
    assert stored.message == "stopped by its caller (cancelled); `tempeh resume` continues it"
    assert stored.ended_at is not None
    steps = {s.name: s.status for s in stored.steps}
    assert steps == {
        "build": StepStatus.SUCCEEDED,
        "migrate": StepStatus.INTERRUPTED,
        "deploy": StepStatus.WAITING,
    }
    again = FakeExecutor()
    assert (await WorkflowEngine(again, store).resume(run_ids[0])).succeeded
    assert again.names() == ["migrate", "deploy"]


async def _interrupted_while_migrate_runs(store: SqliteStore, check: str) -> str:
    fake = FakeExecutor({"migrate": [FakeOutcome(duration=60)]})
    engine = WorkflowEngine(fake, store)
    run_ids: list[str] = []
    engine.subscribe(lambda e: run_ids.append(e.run_id))
    workflow = chain(check)
    await stop_when(partial(engine.execute_workflow, workflow), lambda: "migrate" in fake.names())
    assert (await store.get_run(run_ids[0])).status is RunStatus.INTERRUPTED
    return run_ids[0]


async def test_an_interrupted_step_that_is_not_idempotent_runs_again_only_after_a_yes(
    store: SqliteStore,
) -> None:
    """SPEC 1: an interrupted attempt of an `idempotent: false` step is not re-run without
    confirmation. Ctrl-C (or a caller's cancel) stopped it half-way, as a crash might have:
    resume ran it again without asking."""
    run_id = await _interrupted_while_migrate_runs(store, "idempotent: false")

    plan = plan_resume(await store.get_run(run_id), chain("idempotent: false"))
    assert plan.needing_confirmation() == ["migrate"]
    again = FakeExecutor()
    with pytest.raises(InDoubt, match="migrate"):
        await WorkflowEngine(again, store).resume(run_id)
    assert again.names() == []

    assert (await WorkflowEngine(again, store).resume(run_id, confirm_in_doubt=True)).succeeded
    assert again.names() == ["migrate", "deploy"]


async def test_an_interrupted_step_with_a_check_probe_is_decided_by_it(
    store: SqliteStore,
) -> None:
    run_id = await _interrupted_while_migrate_runs(store, 'check: "test -e done"')

    again = FakeExecutor({"migrate": [FakeOutcome(exit_code=0)]})  # the probe: in place
    assert (await WorkflowEngine(again, store).resume(run_id)).succeeded
    assert again.names() == ["migrate", "deploy"]  # the probe (under the step's name), then
    assert again.calls[0].command == "test -e done"  # deploy: migrate did not run again


async def test_a_subscriber_that_raises_costs_no_checkpoint(store: SqliteStore) -> None:
    """The store hears each event before the run's other subscribers: a view's bug stops
    the run (its error reaches the caller), and the store has every event up to it."""
    engine = WorkflowEngine(FakeExecutor(), store)
    run_ids: list[str] = []

    def buggy(event: Event) -> None:
        run_ids.append(event.run_id)
        if isinstance(event, StepStarted) and event.step == "migrate":
            raise RuntimeError("a view's bug")

    engine.subscribe(buggy)
    with pytest.raises(RuntimeError, match="a view's bug"):
        await engine.execute_workflow(chain())

    stored = await store.get_run(run_ids[0])
    assert stored.status is RunStatus.INTERRUPTED
    assert "RuntimeError: a view's bug" in (stored.message or "")
    assert {s.name: s.status for s in stored.steps}["build"] is StepStatus.SUCCEEDED


async def test_waiting_for_a_runs_events_ends_when_the_run_is_refused(store: SqliteStore) -> None:
    """`async for event in engine.events()` waits for the run's `run_finished`; a run refused
    before it starts (here: a required param missing) has none, and the loop waited for
    ever."""
    engine = WorkflowEngine(FakeExecutor(), store)
    seen: list[Event] = []

    async def listen() -> None:
        seen.extend([event async for event in engine.events()])

    wants = parse_workflow("name: p\nparams: {v: {required: true}}\nsteps: [{name: a, run: x}]")
    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(listen)
            await anyio.wait_all_tasks_blocked()
            with pytest.raises(WorkflowError):
                await engine.execute_workflow(wants)
    assert seen == []


@pytest.mark.parametrize("left_as", [StepStatus.PENDING, StepStatus.WAITING])
def test_a_refused_gate_counts_though_its_dead_engine_never_recorded_it_waiting(
    left_as: StepStatus,
) -> None:
    """The question is stored before the unit's `awaiting_confirmation`; an engine killed
    between the two left the gate `pending`, and resume asked it again, ignoring the `no`."""
    workflow = parse_workflow(
        "name: g\nsteps:\n  - {name: ship, confirm: 'Ship?', run: deploy}\n", "g.yaml"
    )
    refusal = DecisionRecord(
        "r1", "ship", "approval", 10.0, "Ship?", answer="abort", answered_by="op", id=1
    )
    run = RunRecord(
        "r1",
        "g",
        RunStatus.RUNNING,
        {},
        "",
        steps=(StepRecord("ship", left_as),),
        decisions=(refusal,),
    )

    plan = plan_resume(run, workflow)

    assert [(d.name, d.action) for d in plan.decisions] == [("ship", "as decided")]
    assert plan.operator_stop() == refusal
    assert plan.reused()["ship"].status is StepStatus.FAILED


@pytest.mark.parametrize("stopped", ["in the backoff", "in an attempt"])
async def test_a_unit_stopped_in_its_retries_goes_on_with_the_tries_it_has_left(
    store: SqliteStore, stopped: str
) -> None:
    """`retry: {attempts: 3}`, stopped after two failed attempts (waiting for the third, or in
    it): a resume makes the third and last. It started the budget again: five in all."""
    workflow = parse_workflow(
        "name: w\nsteps:\n  - name: a\n    run: deploy\n"
        "    retry: {attempts: 3, delay: 1m, backoff: fixed}\n",
        "w.yaml",
    )
    fail, hang = FakeOutcome(exit_code=1), FakeOutcome(duration=60)
    first = FakeExecutor({"a": [fail, fail, hang]})
    waits: list[float] = []

    async def sleep(seconds: float) -> None:  # the second backoff lasts, if it is the stop
        waits.append(seconds)
        await anyio.sleep(60 if stopped == "in the backoff" and len(waits) == 2 else 0)

    engine = WorkflowEngine(first, store, sleep=sleep)
    retries: list[StepRetrying] = []
    engine.subscribe(lambda e: retries.append(e) if isinstance(e, StepRetrying) else None)
    wanted = 2 if stopped == "in the backoff" else 3
    await stop_when(
        partial(engine.execute_workflow, workflow),
        lambda: len(retries) >= 2 and len(first.calls) >= wanted,
    )
    (run,) = await store.list_runs()
    assert (await store.get_run(run.id)).steps[0].tries_used == 2

    again = FakeExecutor({"a": [fail]})
    plans: list[ResumePlan] = []
    result = await WorkflowEngine(again, store, sleep=sleep).resume(run.id, explain=plans.append)

    assert "2 of its 3 tries used, 1 left" in plans[0].decisions[0].why

    assert [c.attempt for c in again.calls] == [3 if stopped == "in the backoff" else 4]
    assert result["a"].status is StepStatus.FAILED  # its last try: no fresh budget


async def test_a_loop_stopped_in_its_retries_starts_again_with_its_whole_budget(
    store: SqliteStore,
) -> None:
    """An `until` loop resumes at its first iteration, and its attempts cannot tell an
    earlier iteration's retries from this one's: it gets all its tries (it got too few)."""
    workflow = parse_workflow(
        "name: w\nsteps:\n  - name: a\n    run: deploy\n    until: \"outputs.done == 'yes'\"\n"
        "    max_iterations: 3\n    retry: {attempts: 3, delay: 1m, backoff: fixed}\n",
        "w.yaml",
    )
    fail = FakeOutcome(exit_code=1)
    first = FakeExecutor({"a": [fail, fail]})
    waits: list[float] = []
    first_run = True

    async def sleep(seconds: float) -> None:  # its second backoff lasts: the run stops in it
        waits.append(seconds)
        await anyio.sleep(60 if first_run and len(waits) == 2 else 0)

    retries: list[StepRetrying] = []
    engine = WorkflowEngine(first, store, sleep=sleep)
    engine.subscribe(lambda e: retries.append(e) if isinstance(e, StepRetrying) else None)
    await stop_when(partial(engine.execute_workflow, workflow), lambda: len(retries) >= 2)
    (run,) = await store.list_runs()

    done = FakeOutcome(outputs={"done": "yes"})
    again = FakeExecutor({"a": [fail, fail, done]})
    first_run = False
    result = await WorkflowEngine(again, store, sleep=sleep).resume(run.id)

    assert len(again.calls) == 3
    assert result["a"].status is StepStatus.SUCCEEDED
