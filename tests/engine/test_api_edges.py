"""The Python API (SPEC 7) takes what a user naturally writes, and refuses nonsense clearly."""

from __future__ import annotations

import pytest

from tempeh_tui import ErrorRecovery, ParallelExecutionManager, WorkflowEngine, WorkflowError
from tempeh_tui.definition.models import ErrorClass
from tempeh_tui.engine.executor import ExecResult
from tempeh_tui.engine.fake_executor import FakeExecutor
from tempeh_tui.events import StepStatus

pytestmark = pytest.mark.anyio

GATED = {
    "name": "gated",
    "steps": [
        {"name": "gate", "confirm": "Ship?"},
        {"name": "ship", "needs": ["gate"], "run": "x"},
    ],
}


async def test_one_step_to_approve_may_be_given_as_a_string() -> None:
    engine = WorkflowEngine(FakeExecutor())
    result = await engine.execute_workflow(GATED, approve="gate", enable_checkpointing=False)
    assert result["ship"].status is StepStatus.SUCCEEDED


@pytest.mark.parametrize("limit", [0, -3, True])
async def test_a_concurrency_limit_below_one_is_refused(limit: int) -> None:
    engine = WorkflowEngine(FakeExecutor())
    with pytest.raises(ValueError, match="max_concurrency must be a whole number of at least 1"):
        await engine.execute_workflow(GATED, max_concurrency=limit, enable_checkpointing=False)


def test_error_rules_may_be_given_as_a_workflow_says_them() -> None:
    recovery = ErrorRecovery([{"exit_codes": [3], "class": "permanent", "severity": "critical"}])
    found = recovery.classify(ExecResult(exit_code=3))
    assert (found.error_class, found.severity.value) == (ErrorClass.PERMANENT, "critical")


async def test_a_bad_parallel_step_list_is_a_workflow_error() -> None:
    manager = ParallelExecutionManager(executor=FakeExecutor())
    with pytest.raises(WorkflowError, match="steps"):
        await manager.execute_parallel([])
    with pytest.raises(WorkflowError, match="unknown key 'comand'"):
        await manager.execute_parallel([{"name": "a", "comand": "true"}])
