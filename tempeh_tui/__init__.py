"""tempeh: run multi-step deployment workflows as a DAG.

Public names are imported on first use, so that `import tempeh_tui` (and `tempeh --help`) stays
fast: the CLI should not pay for pydantic, networkx and Jinja2 before it needs them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    "load_workflow": "tempeh_tui.definition.loader",
    "parse_workflow": "tempeh_tui.definition.loader",
    "Workflow": "tempeh_tui.definition.models",
    "Step": "tempeh_tui.definition.models",
    "TempehError": "tempeh_tui.errors",
    "WorkflowError": "tempeh_tui.errors",
    "Problem": "tempeh_tui.errors",
    "build_plan": "tempeh_tui.graph.plan",
    "WorkflowEngine": "tempeh_tui.engine.engine",
    "ParallelExecutionManager": "tempeh_tui.engine.parallel",
    "ErrorRecovery": "tempeh_tui.engine.recovery",
    "RollbackManager": "tempeh_tui.engine.rollback",
    "RollbackPlan": "tempeh_tui.engine.rollback_plan",
    "RunResult": "tempeh_tui.engine.results",
    "Plan": "tempeh_tui.graph.plan",
    "Selection": "tempeh_tui.graph.selection",
}

__all__ = [
    "ErrorRecovery",
    "ParallelExecutionManager",
    "Plan",
    "Problem",
    "RollbackManager",
    "RollbackPlan",
    "RunResult",
    "Selection",
    "Step",
    "TempehError",
    "Workflow",
    "WorkflowEngine",
    "WorkflowError",
    "__version__",
    "build_plan",
    "load_workflow",
    "parse_workflow",
]

if TYPE_CHECKING:
    from tempeh_tui.definition.loader import load_workflow as load_workflow
    from tempeh_tui.definition.loader import parse_workflow as parse_workflow
    from tempeh_tui.definition.models import Step as Step
    from tempeh_tui.definition.models import Workflow as Workflow
    from tempeh_tui.engine.engine import WorkflowEngine as WorkflowEngine
    from tempeh_tui.engine.parallel import ParallelExecutionManager as ParallelExecutionManager
    from tempeh_tui.engine.recovery import ErrorRecovery as ErrorRecovery
    from tempeh_tui.engine.results import RunResult as RunResult
    from tempeh_tui.engine.rollback import RollbackManager as RollbackManager
    from tempeh_tui.engine.rollback_plan import RollbackPlan as RollbackPlan
    from tempeh_tui.errors import Problem as Problem
    from tempeh_tui.errors import TempehError as TempehError
    from tempeh_tui.errors import WorkflowError as WorkflowError
    from tempeh_tui.graph.plan import Plan as Plan
    from tempeh_tui.graph.plan import build_plan as build_plan
    from tempeh_tui.graph.selection import Selection as Selection


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'tempeh_tui' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
