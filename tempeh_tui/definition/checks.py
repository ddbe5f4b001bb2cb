"""Checks across values of a workflow: names, needs, cycles, resources, expressions.

Each check reports every problem it finds with the document path of the culprit; the loader
turns paths into file positions. The checks run on whatever steps validated on their own, so one
bad step does not hide the problems of the others.
"""

from __future__ import annotations

import graphlib
from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING

from tempeh_tui.definition.expressions import (
    CONTEXT_NAMES,
    ExpressionError,
    References,
    jinja_globals,
    parse_expression,
    parse_template,
)
from tempeh_tui.definition.models import Step, Workflow
from tempeh_tui.definition.shell_template import parse_shell_template
from tempeh_tui.definition.suggest import did_you_mean
from tempeh_tui.definition.yaml_reader import DocPath, SourceMap
from tempeh_tui.errors import Problem

if TYPE_CHECKING:
    import networkx as nx

__all__ = ["Finding", "WorkflowParts", "check_parts", "check_workflow", "instance_name"]


@dataclass(frozen=True)
class Finding:
    """A problem at a document path (`key` if the problem is the key itself)."""

    message: str
    path: DocPath
    key: bool = False
    at: tuple[str, int] | None = None
    """The value's text and the offset in it the problem is at (see `SourceMap.problem`)."""


@dataclass
class WorkflowParts:
    """What validated of a workflow: steps by index, and the header values the checks need."""

    steps: list[tuple[int, Step]]
    resources: Mapping[str, int] | None = field(default_factory=dict)
    params: Collection[str] = ()
    env: Mapping[str, object] = field(default_factory=dict)
    """The workflow's `env` (values as given: a salvaged one may hold anything)."""
    invalid_step_names: Collection[str] = ()
    dropped: Mapping[int, frozenset[str]] = field(default_factory=dict)
    """Keys left out of a step because their values were wrong (they count as given: a
    problem of their own is reported, not what their absence would cause)."""


def instance_name(step: str, item: object, index: int) -> str:
    """The name of one fan-out instance: `deploy[eu-1]` (mappings go by position: `deploy[0]`)."""
    label = (
        str(index)
        if isinstance(item, dict)
        else str(item).lower()
        if isinstance(item, bool)
        else str(item)
    )
    return f"{step}[{label}]"


def check_workflow(workflow: Workflow, source_map: SourceMap | None) -> list[Problem]:
    """Every cross-value problem of a workflow that validated field by field."""
    parts = WorkflowParts(
        steps=list(enumerate(workflow.steps)),
        resources=workflow.resources,
        params=workflow.params.keys(),
        env=workflow.env,
    )
    return to_problems(check_parts(parts), source_map)


def to_problems(findings: Sequence[Finding], source_map: SourceMap | None) -> list[Problem]:
    smap = source_map or SourceMap("<workflow>")
    return [smap.problem(f.message, f.path, key=f.key, at=f.at) for f in findings]


def check_parts(parts: WorkflowParts) -> list[Finding]:
    findings: list[Finding] = []
    names = _check_names(parts, findings)
    known = set(names) | set(parts.invalid_step_names)
    instances = {
        instance_name(step.name, item, i): step.name
        for _, step in parts.steps
        if step.for_each
        for i, item in enumerate(step.for_each)
    }
    _check_shape(parts, findings)
    graph = _check_needs(parts, known, instances, findings)
    _check_cycles(parts, graph, findings)
    _check_resources(parts, findings)
    _check_expressions(parts, graph, known, findings)
    _check_workflow_env(parts, findings)
    _check_param_env_names(parts, findings)
    return findings


def _check_names(parts: WorkflowParts, findings: list[Finding]) -> dict[str, int]:
    first: dict[str, int] = {}
    for index, step in parts.steps:
        if step.name in first:
            findings.append(
                Finding(
                    f"duplicate step name '{step.name}' (also step {first[step.name] + 1}); "
                    "step names must be unique",
                    ("steps", index, "name"),
                )
            )
        else:
            first[step.name] = index
        if step.for_each:
            seen: set[str] = set()
            for i, item in enumerate(step.for_each):
                label = instance_name(step.name, item, i)
                if label in seen:
                    findings.append(
                        Finding(
                            f"step '{step.name}': for_each item {item!r} appears twice",
                            ("steps", index, "for_each", i),
                        )
                    )
                seen.add(label)
    return first


_SHAPE_KEYS = ("run", "python", "confirm", "until", "max_iterations", "max_parallel", "for_each")
"""The keys `_check_shape` asks about (only these: a 10,000-step file has 26 fields a step)."""


def _check_shape(parts: WorkflowParts, findings: list[Finding]) -> None:
    """What a step must have together: one action; until with max_iterations; and so on."""
    for index, step in parts.steps:
        dropped = parts.dropped.get(index, frozenset())
        given = {k for k in _SHAPE_KEYS if getattr(step, k) is not None} | dropped
        path = ("steps", index)

        def problem(message: str) -> None:
            findings.append(Finding(f"step '{step.name}': {message}", path))  # noqa: B023

        actions = [k for k in ("run", "python", "confirm") if k in given]
        if not actions:
            problem("nothing to do: give one of run (or command), python, confirm")
        elif len(actions) > 1 and set(actions) != {"run", "confirm"}:
            both = " and ".join(actions)
            problem(f"has both {both}; give only one (a confirm step may also have run)")
        if "until" in given and "max_iterations" not in given:
            problem("until needs max_iterations (the most times to run the step)")
        if "max_iterations" in given and "until" not in given:
            problem("max_iterations is only used with until")
        if "max_parallel" in given and "for_each" not in given:
            problem("max_parallel is only used with for_each")
        if "interval" in step.model_fields_set and "until" not in given:
            problem("interval is only used with until")


def _check_needs(
    parts: WorkflowParts, known: set[str], instances: Mapping[str, str], findings: list[Finding]
) -> _NeedGraph:
    """Check `needs` and return the step-level dependency graph."""
    graph = _NeedGraph({step.name: {} for _, step in parts.steps})
    for index, step in parts.steps:
        seen: set[str] = set()
        for i, need in enumerate(step.needs):
            path = ("steps", index, "needs", i)
            target = instances.get(need, need)
            if need in seen:
                findings.append(Finding(f"step '{step.name}' needs '{need}' twice", path))
            seen.add(need)
            if target == step.name:
                findings.append(Finding(f"step '{step.name}' needs itself", path))
            elif target not in known:
                hint = did_you_mean(need, known | set(instances)) or _the_steps(known, step.name)
                findings.append(
                    Finding(f"step '{step.name}' needs unknown step '{need}'{hint}", path)
                )
            else:
                graph.needs[step.name].setdefault(target, i)
    return graph


@dataclass
class _NeedGraph:
    """Which step needs which (by the index of the entry in its `needs`).

    networkx is imported only when a question needs it (a cycle to spell out, ancestors to
    check): validating an ordinary workflow before a run should not pay for the import.
    """

    needs: dict[str, dict[str, int]]

    def has_cycle(self) -> bool:
        try:
            graphlib.TopologicalSorter(self.needs).prepare()
        except graphlib.CycleError:
            return True
        return False

    @cached_property
    def nx(self) -> nx.DiGraph:
        import networkx

        graph = networkx.DiGraph()
        graph.add_nodes_from(self.needs)
        for step, needs in self.needs.items():
            for need, index in needs.items():
                graph.add_edge(need, step, index=index)
        return graph

    def ancestors(self, name: str) -> set[str]:
        import networkx

        return set(networkx.ancestors(self.nx, name))


def _check_cycles(parts: WorkflowParts, needs: _NeedGraph, findings: list[Finding]) -> None:
    if not needs.has_cycle():
        return
    import networkx

    graph = needs.nx
    index_of = {step.name: index for index, step in parts.steps}
    for component in networkx.strongly_connected_components(graph):
        if len(component) < 2:
            continue
        cycle = networkx.find_cycle(graph.subgraph(component))
        names = [edge[0] for edge in cycle]
        # start the story at the step that comes first in the file
        start = min(range(len(names)), key=lambda k: index_of.get(names[k], 0))
        names = names[start:] + names[:start]
        # edges point need -> step, so the cycle in "needs" order is reversed
        names = [names[0], *reversed(names[1:])]
        spelled = " → ".join([*names, names[0]])
        first = names[0]
        need_index = graph.edges[names[1], first]["index"]
        findings.append(
            Finding(
                f"dependency cycle: {spelled} (each step needs the next)",
                ("steps", index_of[first], "needs", need_index),
            )
        )


def _check_resources(parts: WorkflowParts, findings: list[Finding]) -> None:
    pools = parts.resources
    if pools is None:
        return
    for index, step in parts.steps:
        for pool, amount in step.resources.items():
            path = ("steps", index, "resources", pool)
            if pool not in pools:
                if pools:
                    hint = did_you_mean(pool, pools) or f" (pools: {', '.join(sorted(pools))})"
                else:
                    hint = " (declare it under the workflow's resources:)"
                findings.append(
                    Finding(
                        f"step '{step.name}' claims unknown resource pool '{pool}'{hint}",
                        path,
                        key=True,
                    )
                )
            elif amount > pools[pool]:
                findings.append(
                    Finding(
                        f"step '{step.name}' claims {amount} of '{pool}', more than its capacity "
                        f"{pools[pool]}: it could never start",
                        path,
                    )
                )


def _step_texts(step: Step) -> Iterator[tuple[str, tuple[str, ...], str]]:
    """(kind, path within the step, text) for every templated string of a step."""
    for key, command in step.shell_commands().items():
        yield "shell", tuple(key.split(".")), command
    if step.when is not None:
        yield "expression", ("when",), step.when
    if step.until is not None:
        yield "expression", ("until",), step.until
    if step.confirm is not None:
        yield "template", ("confirm",), step.confirm
    for name, value in step.env.items():
        yield "template", ("env", name), value
    if step.cache is not None:
        yield "template", ("cache", "key"), step.cache.key


def _check_expressions(
    parts: WorkflowParts, graph: _NeedGraph, known: set[str], findings: list[Finding]
) -> None:
    cache: dict[str, set[str]] = {}
    params = set(parts.params)
    for index, step in parts.steps:
        for kind, rel, text in _step_texts(step):
            path: DocPath = ("steps", index, *rel)
            where = f"step '{step.name}': {'.'.join(rel)}"
            if kind == "shell":
                found = _shell_problems(
                    step, index, rel, text, parts=parts, graph=graph, known=known, cache=cache
                )
                findings.extend(found)
                continue
            try:
                refs = parse_expression(text) if kind == "expression" else parse_template(text)
            except ExpressionError as exc:
                findings.append(Finding(f"{where}: {exc}", path))
                continue
            findings.extend(
                Finding(f"{where}: {message}", path)
                for message in _reference_problems(
                    step,
                    given=parts.dropped.get(index, frozenset()),
                    field_name=str(rel[0]),
                    refs=refs,
                    params=params,
                    known=known,
                    graph=graph,
                    ancestors_cache=cache,
                )
            )


def _shell_problems(
    step: Step,
    index: int,
    rel: tuple[str, ...],
    text: str,
    *,
    parts: WorkflowParts,
    graph: _NeedGraph,
    known: set[str],
    cache: dict[str, set[str]],
) -> Iterator[Finding]:
    """A shell command's problems, each at its `{{ }}` (a line inside a `run: |` block)."""
    path: DocPath = ("steps", index, *rel)
    where = f"step '{step.name}': {'.'.join(rel)}"
    try:
        template = parse_shell_template(text)
    except ExpressionError as exc:
        yield Finding(f"{where}: {exc}", path, at=_at(text, exc.offset))
        return
    seen: set[str] = set()
    for expr, offset in zip(template.expressions, template.offsets, strict=True):
        for message in _reference_problems(
            step,
            given=parts.dropped.get(index, frozenset()),
            field_name=str(rel[0]),
            refs=parse_expression(expr),
            params=set(parts.params),
            known=known,
            graph=graph,
            ancestors_cache=cache,
        ):
            if message not in seen:  # the same unknown name twice: said once, where first
                seen.add(message)
                yield Finding(f"{where}: {message}", path, at=(text, offset))


def _at(text: str, offset: int | None) -> tuple[str, int] | None:
    return (text, offset) if offset is not None else None


def _reference_problems(
    step: Step,
    *,
    given: frozenset[str],
    field_name: str,
    refs: References,
    params: set[str],
    known: set[str],
    graph: _NeedGraph,
    ancestors_cache: dict[str, set[str]],
) -> Iterator[str]:
    unknown = refs.names - CONTEXT_NAMES
    for name in sorted(unknown - jinja_globals() if unknown else unknown):
        yield f"unknown name '{name}'{did_you_mean(name, CONTEXT_NAMES)}; expressions can read " + (
            ", ".join(sorted(CONTEXT_NAMES))
        )
    if "item" in refs.names and step.for_each is None and "for_each" not in given:
        yield "'item' is only defined in a step with for_each"
    if "iteration" in refs.names and step.until is None and "until" not in given:
        yield "'iteration' is only defined in a step with until"
    if "outputs" in refs.names and field_name in {"when", "confirm"}:
        yield "'outputs' (this step's) is not known before the step runs; use it in until or verify"
    for param in sorted(refs.params - params):
        hint = did_you_mean(param, params) or (
            f" (declared: {', '.join(sorted(params))})" if params else " (no params are declared)"
        )
        yield f"unknown param '{param}'{hint}"
    for other in sorted(refs.steps):
        if other not in known:
            yield f"unknown step '{other}'{did_you_mean(other, known)}"
        elif other == step.name:
            yield "a step cannot read its own status; use 'outputs' for its own outputs"
        elif step.name in graph.needs:
            if step.name not in ancestors_cache:
                ancestors_cache[step.name] = graph.ancestors(step.name)
            if other not in ancestors_cache[step.name]:
                yield (
                    f"reads steps['{other}'] but does not need '{other}' (directly or through "
                    "other steps), so it could run first; add it to needs"
                )


_WORKFLOW_ENV_NAMES = frozenset({"params", "env", "run", "workflow"})
"""What the workflow's `env` is rendered with: it is made once, before any step runs."""


def _check_workflow_env(parts: WorkflowParts, findings: list[Finding]) -> None:
    params = set(parts.params)
    for name, value in parts.env.items():
        if not isinstance(value, str):
            continue
        where, path = f"env.{name}", ("env", name)
        try:
            refs = parse_template(value)
        except ExpressionError as exc:
            findings.append(Finding(f"{where}: {exc}", path))
            continue
        unknown = refs.names - _WORKFLOW_ENV_NAMES - jinja_globals()
        findings.extend(
            Finding(
                f"{where}: '{other}' is not known when the workflow's env is made, before any "
                f"step runs; it can read {', '.join(sorted(_WORKFLOW_ENV_NAMES))} (a step's "
                "own env can read more)",
                path,
            )
            for other in sorted(unknown)
        )
        for param in sorted(refs.params - params):
            hint = did_you_mean(param, params) or (
                f" (declared: {', '.join(sorted(params))})"
                if params
                else " (no params are declared)"
            )
            findings.append(Finding(f"{where}: unknown param '{param}'{hint}", path))


def _check_param_env_names(parts: WorkflowParts, findings: list[Finding]) -> None:
    seen: dict[str, str] = {}
    for name in parts.params:
        env_name = param_env_name(name)
        if env_name in seen:
            findings.append(
                Finding(
                    f"params '{seen[env_name]}' and '{name}' both become ${env_name}; rename one",
                    ("params", name),
                    key=True,
                )
            )
        seen[env_name] = name


def param_env_name(name: str) -> str:
    """TEMPEH_PARAM_<NAME>: upper case, any character but A-Z and 0-9 as `_` (SPEC 1)."""
    return "TEMPEH_PARAM_" + "".join(
        c if c.isascii() and c.isalnum() else "_" for c in name.upper()
    )


def _the_steps(known: Collection[str], asking: str, shown: int = 8) -> str:
    """` (steps: a, b, c)`: what a step may need, when no name is close to what it asked."""
    names = sorted(name for name in known if name != asking)
    if not names:
        return " (it is the only step)"
    more = f", and {len(names) - shown} more" if len(names) > shown else ""
    return f" (steps: {', '.join(names[:shown])}{more})"
