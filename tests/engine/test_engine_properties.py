"""Properties of any run: order respects needs, failures stop their dependents. Plus the seed."""

from __future__ import annotations

import anyio
from hypothesis import given, settings
from hypothesis import strategies as st

from tempeh_tui.engine.engine import WorkflowEngine
from tempeh_tui.engine.fake_executor import FakeExecutor, FakeOutcome
from tempeh_tui.events import Event, StepFinished, StepStarted, StepStatus

SEED_EXAMPLE = {
    "name": "production-deployment",
    "description": "Deploy to production environment",
    "steps": [
        {"name": "validate-config", "command": "validate", "dependencies": []},
        {
            "name": "deploy-database",
            "command": "deploy",
            "dependencies": ["validate-config"],
            "parallel": True,
        },
        {
            "name": "deploy-application",
            "command": "deploy",
            "dependencies": ["deploy-database"],
            "parallel": False,
        },
    ],
}


@st.composite
def dags_with_failures(draw: st.DrawFn) -> tuple[dict[str, object], set[str]]:
    n = draw(st.integers(min_value=1, max_value=14))
    steps = []
    for i in range(n):
        needs = draw(st.sets(st.integers(min_value=0, max_value=i - 1), max_size=3)) if i else set()
        steps.append({"name": f"s{i}", "run": "true", "needs": [f"s{j}" for j in sorted(needs)]})
    failing = draw(st.sets(st.sampled_from([s["name"] for s in steps]), max_size=n // 2))
    workflow = {
        "name": "random",
        "on_failure": "continue",
        "max_concurrency": draw(st.integers(min_value=1, max_value=4)),
        "steps": draw(st.permutations(steps)),
    }
    return workflow, {str(f) for f in failing}


@settings(max_examples=40, deadline=None)
@given(dags_with_failures())
def test_no_unit_starts_before_its_needs_and_no_dependent_of_a_failure_starts(
    case: tuple[dict[str, object], set[str]],
) -> None:
    workflow, failing = case
    fake = FakeExecutor({name: [FakeOutcome(exit_code=1)] for name in failing})
    events: list[Event] = []
    engine = WorkflowEngine(fake)
    engine.subscribe(events.append)
    result = anyio.run(lambda: engine.execute_workflow(workflow, enable_checkpointing=False))
    needs = {
        str(s["name"]): list(s["needs"])
        for s in workflow["steps"]  # type: ignore[attr-defined]
    }
    finished: dict[str, StepStatus] = {}
    for event in events:
        if isinstance(event, StepFinished) and event.step:
            finished[event.step] = event.status
        if isinstance(event, StepStarted) and event.step:
            for need in needs[event.step]:
                assert finished.get(need) is StepStatus.SUCCEEDED, (event.step, need)
    for name, status in finished.items():
        if any(result[need].status is not StepStatus.SUCCEEDED for need in needs[name]):
            assert status is StepStatus.SKIPPED
            assert name not in fake.names()
        elif name in failing:
            assert status is StepStatus.FAILED
        else:
            assert status is StepStatus.SUCCEEDED
    assert set(finished) == set(needs)


def test_the_seed_example_dict_runs_through_the_api() -> None:
    fake = FakeExecutor(default=FakeOutcome(duration=0.01))
    engine = WorkflowEngine(fake)
    result = anyio.run(
        lambda: engine.execute_workflow(
            SEED_EXAMPLE, max_concurrency=3, enable_checkpointing=False, auto_rollback=True
        )
    )
    assert result.succeeded
    assert fake.names() == ["validate-config", "deploy-database", "deploy-application"]
    assert [c.command for c in fake.calls] == ["validate", "deploy", "deploy"]
