"""What a workflow graph says before anything runs: order, critical path, redundant needs."""

from __future__ import annotations

import graphlib
from dataclasses import dataclass
from typing import Any

from tempeh_tui.graph.build import WorkflowGraph

__all__ = [
    "CriticalPath",
    "RedundantNeed",
    "critical_path",
    "parallel_groups",
    "priorities",
    "redundant_needs",
]


def parallel_groups(wg: WorkflowGraph) -> list[list[str]]:
    """Units in waves: each wave needs only units of earlier waves (critical path first within)."""
    rank = priorities(wg)
    order = wg.order
    return [
        sorted(generation, key=lambda n: (-rank[n], order[n]))
        for generation in _nx().topological_generations(wg.graph)
    ]


def priorities(wg: WorkflowGraph) -> dict[str, float]:
    """For each unit, the longest estimated time from its start to the end of the run.

    A scheduler that starts the highest first keeps the critical path moving.
    """
    order = graphlib.TopologicalSorter({name: wg.needs(name) for name in wg.units})
    rank: dict[str, float] = {}
    for name in reversed(list(order.static_order())):
        after = max((rank[s] for s in wg.dependents(name)), default=0.0)
        rank[name] = wg.units[name].estimate + after
    return rank


@dataclass(frozen=True)
class CriticalPath:
    units: list[str]
    seconds: float
    estimated: bool
    """True when every unit on it declared an `estimate`; else the path counts steps."""


def critical_path(wg: WorkflowGraph) -> CriticalPath:
    """The chain of units that bounds the run's duration."""
    rank = priorities(wg)
    if not rank:
        return CriticalPath([], 0.0, False)
    order = wg.order
    current = min(
        (n for n in wg.graph if wg.graph.in_degree(n) == 0), key=lambda n: (-rank[n], order[n])
    )
    path = [current]
    while True:
        nexts = list(wg.graph.successors(current))
        if not nexts:
            break
        current = min(nexts, key=lambda n: (-rank[n], order[n]))
        path.append(current)
    estimated = all(wg.units[n].step.estimate is not None for n in path)
    return CriticalPath(path, rank[path[0]], estimated)


@dataclass(frozen=True)
class RedundantNeed:
    """`step` needs `need` directly, but also through `via` (so the direct need adds nothing)."""

    step: str
    need: str
    via: list[str]

    def __str__(self) -> str:
        return f"needs {self.need}→{self.step} is implied by {'→'.join(self.via)}"


def redundant_needs(wg: WorkflowGraph) -> list[RedundantNeed]:
    """Needs, as written, that a longer chain already implies (transitive reduction drops them).

    Judged on the units, not the steps: a need on `deploy[eu-1]` is not implied by a chain that
    starts at `deploy[eu-2]`.
    """
    nx = _nx()
    reduced = nx.transitive_reduction(wg.graph)
    found = []
    for step in wg.workflow.steps:
        targets = wg.instances.get(step.name, (step.name,))
        for need in step.needs:
            sources = wg.instances.get(need, (need,))
            if any(reduced.has_edge(s, t) for s in sources for t in targets):
                continue
            found.append(RedundantNeed(step.name, need, _chain(wg, need, sources[0], targets[0])))
    return found


def _chain(wg: WorkflowGraph, need: str, source: str, target: str) -> list[str]:
    """The shortest chain from `source` to `target` other than the direct need, in step names."""
    g = wg.graph
    nx = _nx()
    chains = (
        nx.shortest_path(g, source, via)
        for via in wg.needs(target)
        if via != source and nx.has_path(g, source, via)
    )
    path = min(chains, key=len)
    return [need, *(wg.step_of(unit) for unit in path[1:]), wg.step_of(target)]


def _nx() -> Any:
    """networkx, imported when an analysis asks for it (running a workflow needs none)."""
    import networkx

    return networkx
