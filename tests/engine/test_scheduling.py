"""When units start: needs, slots, pools, exclusive, max_parallel, host load, priorities."""

from __future__ import annotations

import anyio
import pytest

from tempeh_tui.engine.executor import ExecResult, ExecutionObserver, ShellRequest
from tempeh_tui.engine.fake_executor import FakeExecutor, FakeOutcome
from tempeh_tui.engine.parallel import ParallelExecutionManager
from tempeh_tui.events import RunStatus, StepStatus, StepStatusChanged
from tests.engine.engine_support import run_yaml

pytestmark = pytest.mark.anyio

SLOW = FakeOutcome(duration=0.05)


async def test_a_step_starts_when_its_own_needs_finish_not_when_its_wave_does() -> None:
    fake = FakeExecutor({"slow": [FakeOutcome(duration=0.3)], "quick": [FakeOutcome()]})
    run = await run_yaml(
        """
        name: w
        steps:
          - {name: quick, run: "true"}
          - {name: slow, run: "true"}
          - {name: after-quick, needs: [quick], run: "true"}
        """,
        fake,
    )
    assert run.result.status is RunStatus.SUCCEEDED
    assert run.overlapping("after-quick", "slow")


async def test_no_more_steps_run_at_once_than_max_concurrency() -> None:
    fake = FakeExecutor(default=SLOW)
    steps = "\n".join(f"  - {{name: s{i}, run: 'true'}}" for i in range(10))
    run = await run_yaml(f"name: w\nmax_concurrency: 3\nsteps:\n{steps}\n", fake)
    assert run.result.succeeded
    assert fake.max_running == 3


async def test_the_api_can_lower_the_concurrency_of_the_file() -> None:
    fake = FakeExecutor(default=SLOW)
    steps = "\n".join(f"  - {{name: s{i}, run: 'true'}}" for i in range(6))
    await run_yaml(f"name: w\nmax_concurrency: 4\nsteps:\n{steps}\n", fake, max_concurrency=1)
    assert fake.max_running == 1


async def test_a_resource_pool_is_never_claimed_beyond_its_capacity() -> None:
    fake = FakeExecutor(default=SLOW)
    run = await run_yaml(
        """
        name: w
        resources: {db: 1}
        steps:
          - {name: m1, run: "true", resources: {db: 1}}
          - {name: m2, run: "true", resources: {db: 1}}
          - {name: m3, run: "true", resources: {db: 1}}
          - {name: free, run: "true"}
        """,
        fake,
    )
    assert not run.overlapping("m1", "m2")
    assert not run.overlapping("m2", "m3")
    assert not run.overlapping("m1", "m3")
    assert run.overlapping("m1", "free")
    waiting = [e for e in run.of(StepStatusChanged) if e.status is StepStatus.WAITING]
    assert any("resource 'db'" in (e.reason or "") for e in waiting)


async def test_a_bigger_claim_first_in_line_is_not_passed_by_smaller_ones() -> None:
    """`big` needs both units of `db` and comes first (critical path); what the small steps
    free is kept for it. It waited behind every small claim (each freed unit went to the
    next small step), however long the line."""
    smalls = "\n".join(
        f'          - {{name: s{i}, run: "true", resources: {{db: 1}}}}' for i in range(6)
    )
    fake = FakeExecutor(default=FakeOutcome(duration=0.05))
    run = await run_yaml(
        f"""
        name: w
        resources: {{db: 2}}
        max_concurrency: 10
        steps:
          - {{name: pre, run: "true", estimate: 10ms}}
          - {{name: big, needs: [pre], run: "true", estimate: 10s, resources: {{db: 2}}}}
{smalls}
        """,
        fake,
    )
    assert run.result.succeeded
    started = [c.name for c in fake.calls]
    # the two small steps that took the pool before `big` was ready, then `big`
    assert started.index("big") <= 3, started
    waiting = [e for e in run.of(StepStatusChanged) if e.status is StepStatus.WAITING]
    assert any("kept for 'big'" in (e.reason or "") for e in waiting)


async def test_a_kept_claim_is_counted_against_what_the_pool_holds_now() -> None:
    """`big` needs 3 of 4 units while claims of 1 come and go: each unit freed went to the
    next claim of 1 (they could run beside `big`, one day), and `big` waited for them all."""
    fake = FakeExecutor(default=FakeOutcome(duration=0.05))
    run = await run_yaml(
        """
        name: w
        resources: {p: 4}
        max_concurrency: 20
        steps:
          - {name: pre, run: "true", estimate: 10ms}
          - {name: big, needs: [pre], run: "true", estimate: 10s, resources: {p: 3}}
          - {name: small, run: "true", for_each: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12],
             resources: {p: 1}}
        """,
        fake,
    )
    assert run.result.succeeded
    started = [c.name for c in fake.calls]
    assert started.index("big") <= 6, started


async def test_a_claim_held_back_by_something_else_keeps_nothing_of_a_pool() -> None:
    """`a[2]` waits for `max_parallel`, not for the pool: `d` takes the free unit (the whole
    pool sat idle, kept for a unit that could not have used it)."""
    fake = FakeExecutor(default=FakeOutcome(duration=0.1))
    run = await run_yaml(
        """
        name: w
        resources: {db: 3}
        steps:
          - {name: a, run: "true", for_each: [1, 2], max_parallel: 1, estimate: 10s,
             resources: {db: 2}}
          - {name: d, run: "true", estimate: 1s, resources: {db: 1}}
        """,
        fake,
    )
    assert run.overlapping("a[1]", "d")
    waiting = [e for e in run.of(StepStatusChanged) if e.status is StepStatus.WAITING]
    assert not any("kept for" in (e.reason or "") for e in waiting)


async def test_an_exclusive_step_runs_with_nothing_beside_it() -> None:
    fake = FakeExecutor(default=SLOW)
    run = await run_yaml(
        """
        name: w
        steps:
          - {name: a, run: "true"}
          - {name: b, run: "true"}
          - {name: alone, run: "true", parallel: false}
          - {name: c, run: "true"}
        """,
        fake,
    )
    for other in ("a", "b", "c"):
        assert not run.overlapping("alone", other)
    assert run.overlapping("a", "b")


async def test_fan_out_instances_respect_max_parallel_and_fan_in_waits_for_all() -> None:
    fake = FakeExecutor(default=SLOW)
    run = await run_yaml(
        """
        name: w
        steps:
          - name: deploy
            for_each: [r1, r2, r3, r4]
            max_parallel: 2
            run: echo {{ item }}
          - {name: smoke, needs: [deploy], run: "true"}
        """,
        fake,
    )
    assert fake.max_running == 2
    assert run.started().index("smoke") == 4  # after all four instances
    env = next(c.env for c in fake.calls if c.name == "deploy[r3]")
    assert env["TEMPEH_ITEM"] == "r3"


async def test_ready_steps_start_critical_path_first() -> None:
    fake = FakeExecutor()
    run = await run_yaml(
        """
        name: w
        max_concurrency: 1
        steps:
          - {name: short, run: "true", estimate: 1s}
          - {name: long-head, run: "true", estimate: 1s}
          - {name: long-tail, needs: [long-head], run: "true", estimate: 10s}
        """,
        fake,
    )
    assert run.started() == ["long-head", "long-tail", "short"]


class Overloaded:
    """A host that is busy for its first `busy` samples."""

    def __init__(self, busy: int) -> None:
        self.samples = 0
        self.busy = busy

    def sample(self) -> tuple[float, float]:
        self.samples += 1
        return (99.0, 50.0) if self.samples <= self.busy else (10.0, 50.0)


async def test_no_step_starts_while_host_load_is_above_the_limits() -> None:
    fake = FakeExecutor()
    host = Overloaded(busy=2)
    run = await run_yaml(
        """
        name: w
        resource_limits: {cpu: 80}
        steps:
          - {name: a, run: "true"}
          - {name: b, run: "true"}
          - {name: c, needs: [a, b], run: "true"}
        """,
        fake,
        host_load=host,
    )
    assert run.result.succeeded
    assert host.samples >= 3
    changes = run.of(StepStatusChanged)
    waits = [(e.step, e.reason) for e in changes if e.status is StepStatus.WAITING]
    # SPEC 2: `waiting` for needs, resources or host load; every held step says so
    assert waits == [
        ("c", "waiting for its needs: a, b"),
        ("a", "waiting: host CPU 99% > 80%"),
        ("b", "waiting: host CPU 99% > 80%"),
    ]


async def test_parallel_execution_manager_runs_plain_step_dicts() -> None:
    fake = FakeExecutor(default=SLOW)
    manager = ParallelExecutionManager(fake)
    result = await manager.execute_parallel(
        [{"name": f"s{i}", "run": "true"} for i in range(6)], max_concurrency=2
    )
    assert result.succeeded
    assert sorted(result.units) == [f"s{i}" for i in range(6)]
    assert fake.max_running == 2


async def test_the_engine_publishes_its_events_as_an_async_stream() -> None:
    from tempeh_tui.definition import parse_workflow
    from tempeh_tui.engine.engine import WorkflowEngine
    from tempeh_tui.events import Event, RunFinished

    engine = WorkflowEngine(FakeExecutor())
    workflow = parse_workflow("name: w\nsteps:\n  - {name: a, run: 'true'}\n")
    seen: list[Event] = []
    async with engine.events() as events:
        result = await engine.execute_workflow(workflow, enable_checkpointing=False)
        async for event in events:
            seen.append(event)
            if isinstance(event, RunFinished):
                break
    assert result.succeeded
    assert [e.type for e in seen] == [
        "run_started",
        "step_started",
        "step_spawned",
        "step_finished",
        "run_finished",
    ]


class _BrokenExecutor(FakeExecutor):
    """Fails as a bug would (raises) for one step; plays the script for the others."""

    def __init__(self, broken: str, script: dict[str, list[FakeOutcome]]) -> None:
        super().__init__(script)
        self.broken = broken
        self.cancelled: list[str] = []

    async def run_shell(self, request: ShellRequest, observer: ExecutionObserver) -> ExecResult:
        name = request.env.get("TEMPEH_STEP", request.command)
        if name == self.broken:
            await anyio.sleep(0.05)
            raise RuntimeError("an executor bug")
        try:
            return await super().run_shell(request, observer)
        except anyio.get_cancelled_exc_class():
            self.cancelled.append(name)
            raise


async def test_a_bug_in_a_unit_stops_the_run_raised_and_its_running_units_are_cancelled() -> None:
    fake = _BrokenExecutor("bad", {"long": [FakeOutcome(duration=30)]})
    with anyio.fail_after(10), pytest.raises((RuntimeError, BaseExceptionGroup)) as raised:
        await run_yaml(
            """
            name: w
            steps:
              - {name: long, run: "true"}
              - {name: bad, run: "true"}
              - {name: never, needs: [bad], run: "true"}
            """,
            fake,
        )
    errors = (
        list(raised.value.exceptions)
        if isinstance(raised.value, BaseExceptionGroup)
        else [raised.value]
    )
    assert any("an executor bug" in str(error) for error in errors)
    assert fake.cancelled == ["long"]  # not left running, nor waited for 30 s
    assert "never" not in fake.names()
