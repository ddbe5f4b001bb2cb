"""What a rollback will undo, in which order, and why (SPEC 5.3): pure, from a stored run.

The plan lists the units to compensate in reverse dependency order: a unit is rolled back only
after every planned unit that needed it, directly or through other units. A partial rollback
takes some steps and adds the succeeded units that depend on them, each with the reason.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from tempeh_tui.definition.models import Workflow
from tempeh_tui.definition.suggest import did_you_mean
from tempeh_tui.errors import TempehError
from tempeh_tui.events import StepStatus
from tempeh_tui.graph.build import WorkflowGraph, build_graph
from tempeh_tui.store.base import RunRecord
from tempeh_tui.store.lease import driven_elsewhere

__all__ = [
    "COMPENSABLE",
    "PlannedUnit",
    "RollbackPlan",
    "RollbackRefused",
    "build_rollback_plan",
    "run_basis",
]

COMPENSABLE = frozenset({StepStatus.SUCCEEDED, StepStatus.ROLLING_BACK, StepStatus.ROLLBACK_FAILED})
"""States of a unit whose effect may still be in place: what a rollback compensates.
`rolling_back`: its compensation was running when a process died (in doubt);
`rollback_failed`: its compensation failed before and is tried again."""


class RollbackRefused(TempehError):
    """A rollback that cannot be planned or run as asked: nothing has been done."""


@dataclass(frozen=True)
class PlannedUnit:
    """One unit to compensate: where it runs in the plan and why it is there."""

    name: str
    step: str
    group: int
    """Its parallel group: 0 first; a group starts once what it waits for has been undone."""
    why: str
    after: tuple[str, ...] = ()
    """Planned units that needed it (directly or not): they are rolled back first."""
    in_doubt: bool = False
    """Its compensation was running when a process died: `rollback.verify` (if any) decides
    whether to run it again."""

    def to_json(self) -> dict[str, Any]:
        return {
            "unit": self.name,
            "step": self.step,
            "group": self.group,
            "why": self.why,
            "after": list(self.after),
            "in_doubt": self.in_doubt,
        }


@dataclass(frozen=True)
class RollbackPlan:
    """What a rollback of run `run_id` undoes, in order, and what it leaves alone."""

    run_id: str
    workflow: str
    units: tuple[PlannedUnit, ...]
    """The units to compensate, in the order they start."""
    nothing_to_undo: tuple[str, ...] = ()
    """Succeeded units (among those concerned) that have no `rollback`."""
    already_rolled_back: tuple[str, ...] = ()
    """Units concerned that an earlier rollback undid: never compensated twice."""
    requested: tuple[str, ...] | None = None
    """The steps asked for (None: the whole run)."""
    max_concurrency: int = 4
    basis: str = ""
    """A fingerprint of the run's state when the plan was made (see `run_basis`)."""

    @property
    def order(self) -> tuple[str, ...]:
        """The unit names, in the order they start."""
        return tuple(u.name for u in self.units)

    @property
    def groups(self) -> tuple[tuple[str, ...], ...]:
        """The parallel groups, first to last."""
        count = max((u.group for u in self.units), default=-1) + 1
        return tuple(tuple(u.name for u in self.units if u.group == g) for g in range(count))

    @property
    def why(self) -> dict[str, str]:
        """Per unit: "requested", or "added: it needs X, which is rolled back"."""
        return {u.name: u.why for u in self.units}

    def unit(self, name: str) -> PlannedUnit:
        return next(u for u in self.units if u.name == name)

    @property
    def empty(self) -> bool:
        return not self.units

    def to_json(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "workflow": self.workflow,
            "requested": list(self.requested) if self.requested is not None else None,
            "order": list(self.order),
            "groups": [list(g) for g in self.groups],
            "units": [u.to_json() for u in self.units],
            "nothing_to_undo": list(self.nothing_to_undo),
            "already_rolled_back": list(self.already_rolled_back),
            "max_concurrency": self.max_concurrency,
        }


def run_basis(run: RunRecord) -> str:
    """A fingerprint of what a plan depends on: the definition and every unit's state, where
    what rollbacks did since counts as nothing new (their units are skipped, never undone
    twice): any other change makes a plan stale."""
    undone = COMPENSABLE | {StepStatus.ROLLED_BACK}
    states = sorted(
        (s.name, (StepStatus.SUCCEEDED if s.status in undone else s.status).value)
        for s in run.steps
    )
    state = [run.definition_hash, states]
    return hashlib.sha256(json.dumps(state).encode()).hexdigest()[:16]


def build_rollback_plan(
    run: RunRecord, workflow: Workflow, steps: Iterable[str] | None = None
) -> RollbackPlan:
    """The plan to undo the whole run (`steps` None) or `steps` and what depends on them.

    A name is a unit (`deploy[eu-1]`) or a step (a fan-out step means all its instances).
    Raises RollbackRefused for unknown names and for units that never ran or did not succeed.
    A unit that failed may be named: the run is then rolled back as a whole (the form
    `plan_rollback(run_id, failed_step)` of SPEC 7).
    """
    wg = build_graph(workflow)
    # a unit its dead engine left running may have done its work: it is undone like one
    # that succeeded (its processes are stopped first: `execute_rollback`)
    doubtful = {s.name for s in run.steps if s.in_doubt}
    driven = driven_elsewhere(run.lease)
    status = {s.name: StepStatus.SUCCEEDED if s.in_doubt else s.status for s in run.steps}
    requested = None if steps is None else _names(steps)
    reasons: dict[str, str] = {}
    if requested is not None:
        units = _resolve(run.id, wg, requested)
        failed = [u for u in units if status.get(u) is StepStatus.FAILED]
        if failed:
            requested, units = None, []
            concerned = _all_succeeded(wg, status)
            for name in concerned:
                reasons[name] = f"requested: the run is rolled back after {failed[0]} failed"
        else:
            _refuse_unsucceeded(run.id, units, status)
            concerned = _with_dependents(wg, units, status, reasons)
    else:
        concerned = _all_succeeded(wg, status)
        reasons = dict.fromkeys(concerned, "requested")
    # A cache hit did nothing in this run: what it stands for was done by an earlier run,
    # which other runs reuse too. Undoing it here undid that run's work, while the cache
    # still offered it as in place.
    cached = {s.name for s in run.steps if s.cached}
    planned = [
        n
        for n in concerned
        if status.get(n) in COMPENSABLE and wg.units[n].step.rollback and n not in cached
    ]
    nothing = [
        n
        for n in concerned
        if status.get(n) is StepStatus.SUCCEEDED
        and (wg.units[n].step.rollback is None or n in cached)
    ]
    done = [n for n in concerned if status.get(n) is StepStatus.ROLLED_BACK]
    after = _after(wg, planned)
    group = _groups(wg, planned, after)
    order = sorted(planned, key=lambda n: (group[n], -wg.order[n]))
    return RollbackPlan(
        run_id=run.id,
        workflow=workflow.name,
        units=tuple(
            PlannedUnit(
                name=n,
                step=wg.units[n].step.name,
                group=group[n],
                why=_why(reasons[n], status[n], n in doubtful, driven),
                after=tuple(sorted(after[n], key=lambda a: -wg.order[a])),
                in_doubt=status[n] is StepStatus.ROLLING_BACK,
            )
            for n in order
        ),
        nothing_to_undo=tuple(nothing),
        already_rolled_back=tuple(done),
        requested=requested,
        max_concurrency=run.max_concurrency or workflow.max_concurrency,
        basis=run_basis(run),
    )


def _names(steps: Iterable[str]) -> tuple[str, ...]:
    if isinstance(steps, str):  # one name, not its letters
        steps = [steps]
    return tuple(dict.fromkeys(s.strip() for s in steps if s.strip()))


def _resolve(run_id: str, wg: WorkflowGraph, names: Iterable[str]) -> list[str]:
    units: list[str] = []
    for name in names:
        if name in wg.units:
            units.append(name)
        elif name in wg.instances:
            units.extend(wg.instances[name])
        else:
            known = [*wg.units, *wg.instances]
            raise RollbackRefused(f"run {run_id} has no step '{name}'{did_you_mean(name, known)}")
    return list(dict.fromkeys(units))


def _refuse_unsucceeded(run_id: str, units: list[str], status: dict[str, StepStatus]) -> None:
    for name in units:
        state = status.get(name, StepStatus.PENDING)
        if state not in COMPENSABLE and state is not StepStatus.ROLLED_BACK:
            raise RollbackRefused(
                f"run {run_id}: step '{name}' did not succeed ({state.value}): "
                "it has nothing to roll back"
            )


def _all_succeeded(wg: WorkflowGraph, status: dict[str, StepStatus]) -> list[str]:
    undoable = COMPENSABLE | {StepStatus.ROLLED_BACK}
    return [n for n in wg.units if status.get(n) in undoable]


def _with_dependents(
    wg: WorkflowGraph, units: list[str], status: dict[str, StepStatus], reasons: dict[str, str]
) -> list[str]:
    """The requested units and, transitively, the units that need them and did something:
    also through a unit that did nothing to undo (it failed with `continue_on_error`, or was
    skipped), which would leave what was built on a requested unit in place."""
    undoable = COMPENSABLE | {StepStatus.ROLLED_BACK}
    origin = {name: name for name in units}  # the requested unit each reached one leads back to
    chosen = set(units)
    reasons.update(dict.fromkeys(units, "requested"))
    for name in _topological(wg):
        if name in origin:
            continue
        need = next((n for n in wg.needs(name) if n in origin), None)
        if need is None:
            continue
        origin[name] = origin[need]
        if status.get(name) not in undoable:
            continue  # nothing of its own to undo; what needs it may have
        chosen.add(name)
        if need == origin[need] or (need in chosen and wg.units[need].step.rollback is not None):
            reasons[name] = f"added: it needs {need}, which is rolled back"
        else:  # `need` has nothing to undo itself: say what it leads back to
            reasons[name] = f"added: it needs {need}, which needs {origin[need]} (rolled back)"
    return [n for n in wg.units if n in chosen]


def _after(wg: WorkflowGraph, planned: list[str]) -> dict[str, set[str]]:
    """Per planned unit, the planned units that needed it, directly or through others."""
    import networkx

    members = set(planned)
    return {n: networkx.descendants(wg.graph, n) & members for n in planned}


def _groups(wg: WorkflowGraph, planned: list[str], after: dict[str, set[str]]) -> dict[str, int]:
    """Group 0 waits for nothing; any other starts after the groups of what needed it."""
    members = set(planned)
    group: dict[str, int] = {}
    for name in reversed(_topological(wg)):  # what needed a unit comes first
        if name in members:
            group[name] = 1 + max((group[a] for a in after[name]), default=-1)
    return group


def _topological(wg: WorkflowGraph) -> list[str]:
    """Units with what they need first; ties in file order."""
    import networkx

    return list(networkx.lexicographical_topological_sort(wg.graph, key=wg.order.__getitem__))


def _why(reason: str, status: StepStatus, doubtful: bool, driven: bool) -> str:
    if doubtful and driven:  # a plan shown while the run goes on
        return f"{reason}; running now (it may act before the rollback, which waits for it)"
    if doubtful:
        return f"{reason}; in doubt: it was running when its engine stopped (it may have acted)"
    if status is StepStatus.ROLLING_BACK:
        return f"{reason}; in doubt: its rollback was running when a process stopped"
    if status is StepStatus.ROLLBACK_FAILED:
        return f"{reason}; its rollback failed before: trying again"
    return reason
