"""A dry run: what would run, in which waves, on which path, with which claims and decisions."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from tempeh_tui.definition.expressions import (
    EnvironmentView,
    ExpressionError,
    evaluate,
    parse_expression,
    render_template,
)
from tempeh_tui.definition.models import Workflow
from tempeh_tui.definition.params import resolve_params
from tempeh_tui.definition.yaml_reader import SourceMap
from tempeh_tui.errors import WorkflowError
from tempeh_tui.graph.analysis import critical_path, parallel_groups, redundant_needs
from tempeh_tui.graph.build import Unit, WorkflowGraph, build_graph
from tempeh_tui.graph.selection import Selection, not_selected

__all__ = ["Decision", "Plan", "PlannedUnit", "build_plan", "expression_context"]

Decision = Literal["run", "skip", "at run time", "cached", "not selected"]
"""What a run will do with a unit: run it; skip it (its `when` is false); decide when it gets
there; reuse a cached result; nothing (toggled off: plan, pick, apply)."""

PLAN_TIME_NAMES = frozenset({"params", "workflow", "env", "item"})
"""Names whose values are known before the run starts: a `when` reading only these is decided."""


@dataclass(frozen=True)
class PlannedUnit:
    name: str
    step: str
    group: int
    needs: list[str]
    kind: str
    item: Any = None
    resources: dict[str, int] = field(default_factory=dict)
    exclusive: bool = False
    when: str | None = None
    decision: Decision = "run"
    reason: str | None = None
    rollback: bool = False
    estimate: float | None = None
    cache: Literal["hit", "miss", "at run time"] | None = None
    """A step with `cache`: whether its key has a succeeded run in the store (see
    `engine.plan_cache`); None where nobody looked (no `cache`, or the plan did not ask)."""
    cache_key: str | None = None
    cached_from: str | None = None
    """The run whose result a cache hit reuses."""

    @property
    def selected(self) -> bool:
        return self.decision != "not selected"


@dataclass(frozen=True)
class Plan:
    """Everything `tempeh plan` shows; `to_json()` is the `--json` / `--out` form."""

    workflow: Workflow
    params: dict[str, Any]
    graph: WorkflowGraph
    groups: list[list[str]]
    units: dict[str, PlannedUnit]
    critical_path: list[str]
    critical_seconds: float
    critical_estimated: bool
    hints: list[str]

    def to_json(self) -> dict[str, Any]:
        wf = self.workflow
        smap = wf.source_map
        return {
            "workflow": wf.name,
            "source": smap.source if smap else None,
            "file": str(Path(smap.source).resolve()) if smap and _is_file(smap.source) else None,
            "definition_sha256": wf.fingerprint(),
            "params": self.params,
            "max_concurrency": wf.max_concurrency,
            "resources": wf.resources,
            "on_failure": wf.on_failure.value,
            "groups": self.groups,
            "critical_path": self.critical_path,
            "critical_path_seconds": self.critical_seconds,
            "critical_path_estimated": self.critical_estimated,
            "expansions": {k: list(v) for k, v in self.graph.instances.items()},
            "steps": [_unit_json(u) for u in self.units.values()],
            "rollbacks_available": [s.name for s in wf.steps if s.rollback is not None],
            "hints": self.hints,
        }


def _unit_json(unit: PlannedUnit) -> dict[str, Any]:
    return {
        "name": unit.name,
        "step": unit.step,
        "group": unit.group,
        "needs": unit.needs,
        "kind": unit.kind,
        "item": unit.item,
        "resources": unit.resources,
        "exclusive": unit.exclusive,
        "when": unit.when,
        "decision": unit.decision,
        "reason": unit.reason,
        "selected": unit.selected,
        "cache": unit.cache,
        "cache_key": unit.cache_key,
        "cached_from": unit.cached_from,
        "rollback": unit.rollback,
        "estimate": unit.estimate,
    }


def _is_file(source: str) -> bool:
    """A workflow read from a file, not from a dict or a string (`<workflow>`)."""
    return not source.startswith("<")


def expression_context(
    workflow: Workflow, params: Mapping[str, Any], unit: Unit | None = None
) -> dict[str, Any]:
    """What an expression can read before the run starts (SPEC 1.1): params, env, workflow, item.
    `env` is this process's environment (secrets left out) with the workflow's and the
    step's `env` over it, as the run will see it."""
    secret = {*workflow.secrets, *(n for s in workflow.steps for n in s.secrets)}
    env = EnvironmentView({k: v for k, v in os.environ.items() if k not in secret})
    base = {"params": dict(params), "workflow": {"name": workflow.name}}
    for name, value in workflow.env.items():
        env[name] = render_template(value, {**base, "env": env})
    if unit is not None:
        for name, value in unit.step.env.items():
            env[name] = render_template(value, {**base, "env": env, "item": unit.item})
    context: dict[str, Any] = {**base, "env": env}
    if unit is not None and unit.is_instance:
        context["item"] = unit.item
    return context


def build_plan(
    workflow: Workflow, params: Mapping[str, Any] | None = None, select: Selection | None = None
) -> Plan:
    """Plan a run of `workflow` with `params` (raise WorkflowError if a param is missing),
    with the units `select` toggles off marked `not selected` (SelectionError if it names an
    unknown step)."""
    values = resolve_params(workflow, params or {})
    wg = build_graph(workflow)
    off = not_selected(wg, select)
    groups = parallel_groups(wg)
    group_of = {name: i for i, group in enumerate(groups) for name in group}
    smap = workflow.source_map or SourceMap("<workflow>")
    index_of = {s.name: i for i, s in enumerate(workflow.steps)}
    problems = []
    units: dict[str, PlannedUnit] = {}
    for unit in wg:
        step = unit.step
        decision: Decision = "run"
        reason = None
        if unit.name in off:
            decision, reason = "not selected", off[unit.name]
        elif step.when is not None:
            refs = parse_expression(step.when)
            if refs.names <= PLAN_TIME_NAMES:
                try:
                    result = evaluate(step.when, expression_context(workflow, values, unit))
                except ExpressionError as exc:
                    problems.append(
                        smap.problem(
                            f"step '{step.name}': when: {exc}",
                            ("steps", index_of[step.name], "when"),
                        )
                    )
                    continue
                decision = "run" if result else "skip"
                reason = f"when is {'true' if result else 'false'} at plan time"
            else:
                decision = "at run time"
                reason = "when reads " + ", ".join(sorted(refs.names - PLAN_TIME_NAMES))
        units[unit.name] = PlannedUnit(
            name=unit.name,
            step=step.name,
            group=group_of[unit.name] + 1,
            needs=list(wg.needs(unit.name)),
            kind=step.kind,
            item=unit.item,
            resources=dict(step.resources),
            exclusive=step.exclusive,
            when=step.when,
            decision=decision,
            reason=reason,
            rollback=step.rollback is not None,
            estimate=step.estimate,
        )
    if problems:
        raise WorkflowError(problems)
    path = critical_path(wg)
    return Plan(
        workflow=workflow,
        params=values,
        graph=wg,
        groups=groups,
        units=units,
        critical_path=path.units,
        critical_seconds=path.seconds,
        critical_estimated=path.estimated,
        hints=_hints(wg, groups, {n for n, u in units.items() if u.decision in _NOT_RUN}),
    )


_NOT_RUN = frozenset({"skip", "not selected"})


def _hints(wg: WorkflowGraph, groups: list[list[str]], skipped: set[str]) -> list[str]:
    """Optimization hints; units skipped at plan time hold no claims and exclude nothing."""
    wf = wg.workflow
    hints = [str(r) + f": '{r.step}' can drop '{r.need}' from needs" for r in redundant_needs(wg)]
    running = [[n for n in group if n not in skipped] for group in groups]
    widest = max(running, key=len) if running else []
    if len(widest) > wf.max_concurrency:
        hints.append(
            f"{len(widest)} steps could run at once (group {running.index(widest) + 1}) but "
            f"max_concurrency is {wf.max_concurrency}"
        )
    hints.extend(
        f"'{s.name}' is exclusive: it runs alone, with nothing beside it"
        for s in wf.steps
        if s.exclusive and not set(wg.instances.get(s.name, (s.name,))) <= skipped
    )
    for pool, capacity in wf.resources.items():
        for number, group in enumerate(groups, start=1):
            claimed = sum(
                wg.units[n].step.resources.get(pool, 0) for n in group if n not in skipped
            )
            if claimed > capacity:
                hints.append(
                    f"group {number} claims {claimed} of '{pool}' (capacity {capacity}): "
                    "those steps will take turns"
                )
    return hints
