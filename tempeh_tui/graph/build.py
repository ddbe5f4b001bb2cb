"""A workflow as a graph of runnable units: steps, with `for_each` fanned out into instances."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any

from tempeh_tui.definition.checks import instance_name
from tempeh_tui.definition.models import Step, Workflow

if TYPE_CHECKING:
    import networkx as nx

__all__ = ["DEFAULT_ESTIMATE", "Unit", "WorkflowGraph", "build_graph"]

DEFAULT_ESTIMATE = 1.0
"""Seconds assumed for a step that declares no `estimate`: the critical path then counts steps."""


@dataclass(frozen=True)
class Unit:
    """One runnable unit: a step, or one instance of a fan-out step (`deploy[eu-1]`)."""

    name: str
    step: Step
    item: Any = None
    index: int | None = None

    @property
    def is_instance(self) -> bool:
        return self.index is not None

    @property
    def estimate(self) -> float:
        return self.step.estimate if self.step.estimate is not None else DEFAULT_ESTIMATE


@dataclass(frozen=True)
class WorkflowGraph:
    """Units and their dependencies. Edges point from a need to the unit that needs it."""

    workflow: Workflow
    units: dict[str, Unit]
    instances: dict[str, tuple[str, ...]]
    """Fan-out steps and the names of their instances, in item order."""
    _needs: dict[str, tuple[str, ...]]
    _dependents: dict[str, tuple[str, ...]]

    def unit(self, name: str) -> Unit:
        return self.units[name]

    def needs(self, name: str) -> tuple[str, ...]:
        """The units `name` needs, in file order."""
        return self._needs[name]

    def dependents(self, name: str) -> tuple[str, ...]:
        """The units that need `name`, in file order."""
        return self._dependents[name]

    @cached_property
    def graph(self) -> nx.DiGraph:
        """The same graph for networkx's algorithms (built on first use: a run needs none)."""
        import networkx

        graph = networkx.DiGraph()
        graph.add_nodes_from(self.units)
        graph.add_edges_from((need, name) for name in self.units for need in self._needs[name])
        return graph

    @cached_property
    def order(self) -> dict[str, int]:
        """File order of the units (instances in item order), for stable output."""
        return {name: i for i, name in enumerate(self.units)}

    def step_graph(self) -> nx.DiGraph:
        """The dependency graph between steps (fan-outs not expanded)."""
        import networkx

        g = networkx.DiGraph()
        for step in self.workflow.steps:
            g.add_node(step.name)
            for need in step.needs:
                g.add_edge(self.step_of(need), step.name)
        return g

    def step_of(self, name: str) -> str:
        """The step a unit or a `needs` entry belongs to (`deploy[eu-1]` → `deploy`)."""
        unit = self.units.get(name)
        return unit.step.name if unit is not None else name

    def __iter__(self) -> Iterator[Unit]:
        return iter(self.units.values())


def build_graph(workflow: Workflow) -> WorkflowGraph:
    """Expand fan-outs and connect every unit to what it needs (a fan-in waits for all)."""
    units: dict[str, Unit] = {}
    instances: dict[str, tuple[str, ...]] = {}
    for step in workflow.steps:
        if step.for_each is None:
            units[step.name] = Unit(step.name, step)
            continue
        names = []
        for index, item in enumerate(step.for_each):
            name = instance_name(step.name, item, index)
            units[name] = Unit(name, step, item, index)
            names.append(name)
        instances[step.name] = tuple(names)
    needs: dict[str, list[str]] = {name: [] for name in units}
    dependents: dict[str, list[str]] = {name: [] for name in units}
    for unit in units.values():
        seen = needs[unit.name]
        for need in unit.step.needs:
            for source in instances.get(need, (need,)):
                if source not in seen:
                    seen.append(source)
                    dependents[source].append(unit.name)
    order = {name: i for i, name in enumerate(units)}
    return WorkflowGraph(
        workflow,
        units,
        instances,
        {n: tuple(sorted(v, key=order.__getitem__)) for n, v in needs.items()},
        {n: tuple(sorted(v, key=order.__getitem__)) for n, v in dependents.items()},
    )
