"""The workflow as a graph: fan-out expansion, waves, critical path, plans, rendering."""

from tempeh_tui.graph.build import Unit as Unit
from tempeh_tui.graph.build import WorkflowGraph as WorkflowGraph
from tempeh_tui.graph.build import build_graph as build_graph
from tempeh_tui.graph.plan import Plan as Plan
from tempeh_tui.graph.plan import build_plan as build_plan
from tempeh_tui.graph.selection import Selection as Selection
from tempeh_tui.graph.selection import SelectionError as SelectionError

__all__ = [
    "Plan",
    "Selection",
    "SelectionError",
    "Unit",
    "WorkflowGraph",
    "build_graph",
    "build_plan",
]
