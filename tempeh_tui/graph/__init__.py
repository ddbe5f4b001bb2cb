"""The workflow as a graph: fan-out expansion, waves, critical path, plans, rendering."""

from typing import TYPE_CHECKING

from tempeh_tui.graph.build import Unit as Unit
from tempeh_tui.graph.build import WorkflowGraph as WorkflowGraph
from tempeh_tui.graph.build import build_graph as build_graph
from tempeh_tui.graph.selection import Selection as Selection
from tempeh_tui.graph.selection import SelectionError as SelectionError

if TYPE_CHECKING:
    from tempeh_tui.graph.plan import Plan as Plan
    from tempeh_tui.graph.plan import build_plan as build_plan

__all__ = [
    "Plan",
    "Selection",
    "SelectionError",
    "Unit",
    "WorkflowGraph",
    "build_graph",
    "build_plan",
]


def __getattr__(name: str) -> object:
    """Plans are imported when asked for: `tempeh run` never needs them (~5 ms)."""
    if name in ("Plan", "build_plan"):
        from tempeh_tui.graph import plan

        return getattr(plan, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
