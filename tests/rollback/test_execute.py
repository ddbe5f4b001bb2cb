"""Running rollbacks for real: bash compensations, a ledger of what ran, the store's history."""

from __future__ import annotations

from pathlib import Path

import pytest

from tempeh_tui.engine.engine import WorkflowEngine
from tempeh_tui.engine.executor import ExecResult, ExecutionObserver, ShellRequest
from tempeh_tui.engine.fake_executor import FakeExecutor, FakeOutcome
from tempeh_tui.engine.rollback import RollbackManager, RollbackStale
from tempeh_tui.events import Event, EventBus, RunStatus, StepStatus, StepStatusChanged
from tempeh_tui.store import MemoryStore, SqliteStore

from .support import compensated, ledger_step, run_workflow, write_workflow

pytestmark = pytest.mark.anyio


def chain(ledger: Path) -> list[dict[str, object]]:
    return [
        ledger_step("build", ledger),
        ledger_step("migrate", ledger, needs=["build"]),
        ledger_step("deploy", ledger, needs=["migrate"]),
    ]


async def test_a_full_rollback_undoes_every_step_in_reverse_order(tmp_path: Path) -> None:
    db, ledger = tmp_path / "t.db", tmp_path / "ledger"
    run = await run_workflow(db, write_workflow(tmp_path, chain(ledger)), fake=False)

    async with SqliteStore(db) as store:
        manager = RollbackManager(store)
        result = await manager.execute_rollback(await manager.plan_rollback(run.run_id))
        stored = await store.get_run(run.run_id)

    assert result.status is RunStatus.ROLLED_BACK
    assert result.exit_code == 0
    assert compensated(ledger) == ["deploy", "migrate", "build"]
    assert stored.status is RunStatus.ROLLED_BACK
    assert {s.name: s.status for s in stored.steps} == dict.fromkeys(
        ["build", "migrate", "deploy"], StepStatus.ROLLED_BACK
    )


async def test_rolling_back_twice_compensates_nothing_twice(tmp_path: Path) -> None:
    db, ledger = tmp_path / "t.db", tmp_path / "ledger"
    run = await run_workflow(db, write_workflow(tmp_path, chain(ledger)), fake=False)

    async with SqliteStore(db) as store:
        manager = RollbackManager(store)
        first = await manager.plan_rollback(run.run_id)
        await manager.execute_rollback(first)
        again = await manager.plan_rollback(run.run_id)
        second = await manager.execute_rollback(again)
        stale = await manager.execute_rollback(first)  # an old plan: its units are skipped
        history = await manager.history(run.run_id)

    assert again.empty
    assert again.already_rolled_back == ("build", "migrate", "deploy")
    assert second.status is RunStatus.ROLLED_BACK
    assert stale.status is RunStatus.ROLLED_BACK
    assert sorted(compensated(ledger)) == ["build", "deploy", "migrate"]
    assert [len(h.actions) for h in history] == [3, 0, 0]


async def test_a_failing_compensation_fails_the_rollback_and_spares_what_it_needed(
    tmp_path: Path,
) -> None:
    db, ledger = tmp_path / "t.db", tmp_path / "ledger"
    steps = [
        ledger_step("build", ledger),
        ledger_step("migrate", ledger, needs=["build"], undo="echo cannot undo >&2; exit 3"),
        ledger_step("deploy", ledger, needs=["migrate"]),
        ledger_step("docs", ledger),
    ]
    run = await run_workflow(db, write_workflow(tmp_path, steps), fake=False)

    async with SqliteStore(db) as store:
        manager = RollbackManager(store)
        result = await manager.execute_rollback(await manager.plan_rollback(run.run_id))
        stored = await store.get_run(run.run_id)
        logs = [r.line for r in await store.read_logs(run.run_id, "migrate")]

    assert result.status is RunStatus.ROLLBACK_FAILED
    assert result.exit_code == 4
    assert sorted(compensated(ledger)) == ["deploy", "docs"]
    states = {s.name: s.status for s in stored.steps}
    assert states["migrate"] is StepStatus.ROLLBACK_FAILED
    assert states["build"] is StepStatus.SUCCEEDED  # what migrate needed stays in place
    assert stored.status is RunStatus.ROLLBACK_FAILED
    assert "cannot undo" in logs
    action = next(a for a in stored.rollbacks[0].actions if a.unit == "migrate")
    assert action.exit_code == 3
    assert action.status is StepStatus.ROLLBACK_FAILED


async def test_a_failing_verify_fails_the_rollback(tmp_path: Path) -> None:
    db, ledger = tmp_path / "t.db", tmp_path / "ledger"
    steps = [ledger_step("deploy", ledger, verify="test -f never-there")]
    run = await run_workflow(db, write_workflow(tmp_path, steps), fake=False)

    async with SqliteStore(db) as store:
        manager = RollbackManager(store)
        result = await manager.execute_rollback(await manager.plan_rollback(run.run_id))
        stored = await store.get_run(run.run_id)

    assert result.status is RunStatus.ROLLBACK_FAILED
    assert compensated(ledger) == ["deploy"]
    assert stored.steps[0].status is StepStatus.ROLLBACK_FAILED
    assert stored.steps[0].reason == "rollback.verify failed: exit code 1"


async def test_a_failed_compensation_is_tried_again_by_the_next_rollback(tmp_path: Path) -> None:
    db, ledger, flag = tmp_path / "t.db", tmp_path / "ledger", tmp_path / "fixed"
    undo = f'test -f "{flag}" && echo "$TEMPEH_STEP" >> "{ledger}"'
    run = await run_workflow(
        db, write_workflow(tmp_path, [ledger_step("deploy", ledger, undo=undo)]), fake=False
    )

    async with SqliteStore(db) as store:
        manager = RollbackManager(store)
        failed = await manager.execute_rollback(await manager.plan_rollback(run.run_id))
        flag.touch()
        retry = await manager.plan_rollback(run.run_id)
        done = await manager.execute_rollback(retry)

    assert failed.status is RunStatus.ROLLBACK_FAILED
    assert "its rollback failed before" in retry.why["deploy"]
    assert done.status is RunStatus.ROLLED_BACK
    assert compensated(ledger) == ["deploy"]


async def test_compensations_see_the_units_outputs_item_and_params(tmp_path: Path) -> None:
    db, ledger = tmp_path / "t.db", tmp_path / "ledger"
    steps = [
        {
            "name": "deploy",
            "for_each": ["eu", "us"],
            "run": 'echo "previous=old-$TEMPEH_ITEM" >> "$TEMPEH_OUTPUT"',
            "rollback": (
                'echo "{{ item }} back to {{ outputs.previous }} of {{ params.version }}; '
                '$(touch pwned)" >> ' + f'"{ledger}"'
            ),
        }
    ]
    flow = write_workflow(tmp_path, steps, params={"version": {"default": "1.2"}})
    run = await run_workflow(db, flow, fake=False)

    async with SqliteStore(db) as store:
        manager = RollbackManager(store)
        await manager.execute_rollback(await manager.plan_rollback(run.run_id))

    lines = sorted(ledger.read_text().splitlines())
    assert lines == ["eu back to old-eu of 1.2; ", "us back to old-us of 1.2; "]


async def test_independent_compensations_run_in_parallel_within_the_limit(tmp_path: Path) -> None:
    db, ledger = tmp_path / "t.db", tmp_path / "ledger"
    steps = [ledger_step(f"s{i}", ledger) for i in range(6)]
    run = await run_workflow(db, write_workflow(tmp_path, steps))
    executor = FakeExecutor(default=FakeOutcome(duration=0.05))

    async with SqliteStore(db) as store:
        manager = RollbackManager(store, executor)
        plan = await manager.plan_rollback(run.run_id)
        result = await manager.execute_rollback(plan, max_concurrency=3)

    assert len(plan.groups) == 1
    assert result.status is RunStatus.ROLLED_BACK
    assert executor.max_running == 3
    assert [c.env["TEMPEH_STEP"] for c in executor.calls] == list(plan.order)


async def test_a_plan_made_before_the_run_changed_is_refused(tmp_path: Path) -> None:
    db, ledger = tmp_path / "t.db", tmp_path / "ledger"
    run = await run_workflow(db, write_workflow(tmp_path, chain(ledger)))

    async with SqliteStore(db) as store:
        manager = RollbackManager(store, FakeExecutor())
        partial = await manager.plan_rollback(run.run_id, ["deploy"])
        await manager.validate(partial)
        store.record(
            _status_change(
                run.run_id, "migrate", StepStatus.FAILED, await store.last_seq(run.run_id)
            )
        )
        await store.flush()
        with pytest.raises(RollbackStale, match="changed since the rollback plan was made"):
            await manager.validate(partial)


def _status_change(run_id: str, step: str, status: StepStatus, seq: int) -> StepStatusChanged:
    return StepStatusChanged(run_id=run_id, step=step, status=status, seq=seq + 1, ts=1.0)


async def test_both_stores_keep_the_same_rollback_history(tmp_path: Path) -> None:
    ledger = tmp_path / "ledger"
    flow = write_workflow(tmp_path, chain(ledger))
    histories = []
    for store in (SqliteStore(tmp_path / "t.db"), MemoryStore()):
        async with store:
            run = await WorkflowEngine(FakeExecutor(), store).execute_workflow(flow)
            manager = RollbackManager(store, FakeExecutor())
            await manager.execute_rollback(await manager.plan_rollback(run.run_id, ["migrate"]))
            record = await store.get_run(run.run_id)
            histories.append(
                (
                    record.status,
                    [(s.name, s.status) for s in record.steps],
                    [
                        (h.status, h.plan["order"], [(a.unit, a.status) for a in h.actions])
                        for h in record.rollbacks
                    ],
                )
            )

    assert histories[0] == histories[1]
    assert histories[0][2] == [
        (
            RunStatus.ROLLED_BACK,
            ["deploy", "migrate"],
            [("deploy", StepStatus.ROLLED_BACK), ("migrate", StepStatus.ROLLED_BACK)],
        )
    ]


async def test_a_rollback_can_publish_on_the_runs_own_bus(tmp_path: Path) -> None:
    ledger = tmp_path / "ledger"
    flow = write_workflow(tmp_path, chain(ledger))
    async with MemoryStore() as store:
        run = await WorkflowEngine(FakeExecutor(), store).execute_workflow(flow)
        bus = EventBus(run.run_id, first_seq=await store.last_seq(run.run_id))
        seen: list[Event] = []
        bus.subscribe(seen.append)
        bus.subscribe(store.record)
        manager = RollbackManager(store, FakeExecutor())
        result = await manager.execute_rollback(
            await manager.plan_rollback(run.run_id, ["deploy"]), bus=bus
        )
        stored = await store.get_run(run.run_id)

    assert result.completed
    assert [e.type for e in seen if e.type.startswith("rollback")] == [
        "rollback_planned",
        "rollback_step_started",
        "rollback_step_finished",
        "rollback_finished",
    ]
    assert stored.status is RunStatus.ROLLED_BACK
    assert [s.status for s in stored.steps] == [
        StepStatus.SUCCEEDED,
        StepStatus.SUCCEEDED,
        StepStatus.ROLLED_BACK,
    ]


class _Overlaps(FakeExecutor):
    """Remembers which units' commands were running at the same time."""

    def __init__(self, script: dict[str, list[FakeOutcome]]) -> None:
        super().__init__(script)
        self._now: set[str] = set()
        self.together: list[frozenset[str]] = []

    async def run_shell(self, request: ShellRequest, observer: ExecutionObserver) -> ExecResult:
        name = request.env.get("TEMPEH_STEP", "")
        self._now.add(name)
        self.together.append(frozenset(self._now))
        try:
            return await super().run_shell(request, observer)
        finally:
            self._now.discard(name)


async def test_compensations_run_under_the_runs_resource_pools_and_exclusive(
    tmp_path: Path,
) -> None:
    """SPEC 5.3: independent rollbacks run in parallel under the same limits. Two
    down-migrations of a one-slot database used to run at once, beside an exclusive step's."""
    slow = FakeOutcome(duration=0.05)
    fake = _Overlaps({name: [FakeOutcome(), slow] for name in ("m1", "m2", "solo", "free")})
    fake.script["bad"] = [FakeOutcome(exit_code=1)]
    steps = [
        ledger_step("m1", tmp_path / "l", resources={"db": 1}),
        ledger_step("m2", tmp_path / "l", resources={"db": 1}),
        ledger_step("solo", tmp_path / "l", exclusive=True),
        ledger_step("free", tmp_path / "l"),
        {"name": "bad", "needs": ["m1", "m2", "solo", "free"], "run": "false"},
    ]
    flow = write_workflow(tmp_path, steps, resources={"db": 1}, on_failure="rollback")
    async with SqliteStore(tmp_path / "t.db") as store:
        result = await WorkflowEngine(fake, store).execute_workflow(flow)

    assert result.status is RunStatus.ROLLED_BACK
    undone = [c.name for c in fake.calls if c.command.startswith("echo")]
    assert sorted(undone) == ["free", "m1", "m2", "solo"]
    assert not any({"m1", "m2"} <= running for running in fake.together)
    assert not any("solo" in running and len(running) > 1 for running in fake.together)
    assert any({"m1", "free"} <= r or {"m2", "free"} <= r for r in fake.together)


async def test_a_partial_rollback_says_what_it_left_in_place(tmp_path: Path) -> None:
    """The run reads `rolled_back` after a partial rollback too (SPEC 2 has no partial
    state): its message says which units are still in place."""
    db, ledger = tmp_path / "t.db", tmp_path / "ledger"
    run = await run_workflow(db, write_workflow(tmp_path, chain(ledger)))
    async with SqliteStore(db) as store:
        manager = RollbackManager(store)
        result = await manager.execute_rollback(await manager.plan_rollback(run.run_id, ["deploy"]))
        stored = await store.get_run(run.run_id)

    expected = "rolled back 1 unit(s); a partial rollback: still in place: build, migrate"
    assert result.message == stored.message == expected
