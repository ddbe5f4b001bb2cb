"""Cache hits in a plan (SPEC 6): which cached steps a run would not run again, and why.

A step's cache key is its rendered `key` plus the content hash of its `files` (`cache_key`,
the one the run computes). A key that reads only what is known before the run (params, env,
workflow, item) is rendered now and looked up in the store; a key that reads other steps or
the run's id is known only at run time, and the plan says so.
"""

from __future__ import annotations

import dataclasses

from tempeh_tui.definition.expressions import ExpressionError, parse_template, render_template
from tempeh_tui.engine.cache import cache_key, workflow_dir
from tempeh_tui.graph.plan import PLAN_TIME_NAMES, Plan, PlannedUnit, expression_context
from tempeh_tui.store.base import Store

__all__ = ["plan_cache_hits"]

_KNOWN_BEFORE_THE_RUN = PLAN_TIME_NAMES | {"iteration", "outputs"}
"""A cache key is rendered before the step's first iteration, with no outputs of its own."""


async def plan_cache_hits(plan: Plan, store: Store | None) -> Plan:
    """`plan` with each cached unit's key, and `cached` where the store holds a succeeded run
    with that key (None: no store, so no hits)."""
    wf = plan.workflow
    root = workflow_dir(wf)
    units = dict(plan.units)
    for name, planned in plan.units.items():
        step = plan.graph.units[name].step
        if step.cache is None or planned.decision in ("skip", "not selected"):
            continue
        late = parse_template(step.cache.key).names - _KNOWN_BEFORE_THE_RUN
        if late:
            units[name] = _at_run_time(planned, f"cache key reads {', '.join(sorted(late))}")
            continue
        try:
            context = {
                **expression_context(wf, plan.params, plan.graph.units[name]),
                "iteration": 1,
                "outputs": {},
            }
            key = cache_key(render_template(step.cache.key, context), root, step.cache.files)
        except (ExpressionError, OSError) as exc:
            units[name] = _at_run_time(planned, f"cache key cannot be computed now ({exc})")
            continue
        hit = await store.find_cached(wf.name, name, key) if store is not None else None
        if hit is None:
            units[name] = dataclasses.replace(planned, cache="miss", cache_key=key)
        elif planned.decision == "run":
            units[name] = dataclasses.replace(
                planned,
                decision="cached",
                reason=f"cache hit: key {key} succeeded in run {hit.run_id}",
                cache="hit",
                cache_key=key,
                cached_from=hit.run_id,
            )
        else:  # its `when` is decided at run time; if it runs, it is a cache hit
            units[name] = dataclasses.replace(
                planned, cache="hit", cache_key=key, cached_from=hit.run_id
            )
    return dataclasses.replace(plan, units=units)


def _at_run_time(planned: PlannedUnit, because: str) -> PlannedUnit:
    why = f"{because}: decided at run time"
    if planned.decision == "at run time" and planned.reason:
        why = f"{planned.reason}; {why}"
    return dataclasses.replace(planned, decision="at run time", reason=why, cache="at run time")
