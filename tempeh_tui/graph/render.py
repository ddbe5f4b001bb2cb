"""The step graph as Mermaid, Graphviz dot, or plain text."""

from __future__ import annotations

import json
from typing import Literal

import networkx as nx

from tempeh_tui.graph.build import WorkflowGraph

__all__ = ["GraphFormat", "render_graph"]

GraphFormat = Literal["mermaid", "dot", "text"]


def render_graph(wg: WorkflowGraph, fmt: GraphFormat) -> str:
    return {"mermaid": _mermaid, "dot": _dot, "text": _text}[fmt](wg)


def _label(wg: WorkflowGraph, name: str) -> str:
    step = wg.workflow.step(name)
    notes = []
    if step.for_each is not None:
        notes.append(f"x{len(step.for_each)}")
    if step.confirm is not None:
        notes.append("approval")
    if step.when is not None:
        notes.append("when")
    if step.until is not None:
        notes.append("loop")
    return f"{name} ({', '.join(notes)})" if notes else name


def _ordered_edges(wg: WorkflowGraph) -> list[tuple[str, str]]:
    order = {s.name: i for i, s in enumerate(wg.workflow.steps)}
    g = wg.step_graph()
    return sorted(g.edges, key=lambda e: (order[e[1]], order[e[0]]))


def _mermaid(wg: WorkflowGraph) -> str:
    ids = {s.name: f"s{i}" for i, s in enumerate(wg.workflow.steps)}
    lines = ["flowchart TD"]
    for step in wg.workflow.steps:
        text = _mermaid_text(_label(wg, step.name))
        shape = ('{{"', '"}}') if step.confirm is not None else ('["', '"]')
        lines.append(f"    {ids[step.name]}{shape[0]}{text}{shape[1]}")
    lines.extend(f"    {ids[a]} --> {ids[b]}" for a, b in _ordered_edges(wg))
    return "\n".join(lines) + "\n"


def _mermaid_text(text: str) -> str:
    """A label as Mermaid shows it as written: `#` and `"` as entities (Mermaid reads `#35;`
    as one), `<` `>` `&` too (it reads labels as HTML), a line break as `<br>`."""
    entities = {"#": "#35;", '"': "#quot;", "<": "#lt;", ">": "#gt;", "&": "#amp;"}
    escaped = "".join(entities.get(ch, ch) for ch in text)
    return "<br>".join(escaped.splitlines()) if "\n" in escaped else escaped


def _dot(wg: WorkflowGraph) -> str:
    name = json.dumps(wg.workflow.name)
    lines = [f"digraph {name} {{", "    rankdir=LR;", "    node [shape=box];"]
    for step in wg.workflow.steps:
        attrs = [f"label={json.dumps(_label(wg, step.name), ensure_ascii=False)}"]
        if step.confirm is not None:
            attrs.append("shape=hexagon")
        lines.append(f"    {json.dumps(step.name)} [{', '.join(attrs)}];")
    lines.extend(f"    {json.dumps(a)} -> {json.dumps(b)};" for a, b in _ordered_edges(wg))
    lines.append("}")
    return "\n".join(lines) + "\n"


def _text(wg: WorkflowGraph) -> str:
    g = wg.step_graph()
    order = {s.name: i for i, s in enumerate(wg.workflow.steps)}
    lines = [wg.workflow.name]
    for number, generation in enumerate(nx.topological_generations(g), start=1):
        lines.append(f"  wave {number}")
        for name in sorted(generation, key=order.__getitem__):
            needs = sorted(g.predecessors(name), key=order.__getitem__)
            after = f"  ← {', '.join(needs)}" if needs else ""
            lines.append(f"    {_label(wg, name)}{after}")
    return "\n".join(lines) + "\n"
