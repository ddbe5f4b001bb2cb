"""ParallelExecutionManager: run a set of steps in parallel, without a workflow file (SPEC 7)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from tempeh_tui.definition.loader import load_workflow
from tempeh_tui.definition.models import Step
from tempeh_tui.engine.engine import WorkflowEngine
from tempeh_tui.engine.executor import Executor
from tempeh_tui.engine.host_load import HostLoad
from tempeh_tui.engine.results import RunResult

__all__ = ["ParallelExecutionManager"]


class ParallelExecutionManager:
    """Runs steps (models or dicts, with `needs` between them if any) under the same scheduler
    as workflows: concurrency, resource pools, host load limits, retries."""

    def __init__(self, executor: Executor | None = None, *, host_load: HostLoad | None = None):
        self._engine = WorkflowEngine(executor, host_load=host_load)

    async def execute_parallel(
        self,
        steps: Iterable[Step | Mapping[str, Any]],
        *,
        max_concurrency: int = 5,
        resource_limits: Mapping[str, float] | None = None,
        resources: Mapping[str, int] | None = None,
        name: str = "parallel",
    ) -> RunResult:
        workflow = load_workflow(  # a bad step is a WorkflowError naming it, as from a file
            {
                "name": name,
                "steps": [
                    s.model_dump(by_alias=True, exclude_unset=True)
                    if isinstance(s, Step)
                    else dict(s)
                    for s in steps
                ],
                "max_concurrency": max_concurrency,
                "resource_limits": dict(resource_limits or {}),
                "resources": dict(resources or {}),
                "on_failure": "continue",
            }
        )
        return await self._engine.execute_workflow(workflow, enable_checkpointing=False)
