"""Plan, pick, apply: which units a run runs, and why each other one is toggled off (SPEC 6, 8).

A unit toggled off ends `skipped` ("not selected in the plan") before anything starts, and
counts as done for the units still selected, as a step whose `when` is false does: the
operator who keeps a step but toggles off what it needs has done that part another way.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from tempeh_tui.definition.suggest import did_you_mean
from tempeh_tui.errors import TempehError
from tempeh_tui.graph.build import WorkflowGraph

__all__ = ["NOT_SELECTED", "Selection", "SelectionError", "not_selected"]

NOT_SELECTED = "not selected in the plan"
"""How the reason of every unit toggled off begins."""


class SelectionError(TempehError):
    """A selection names a step (or a fan-out instance) the workflow does not have."""

    def __init__(self, where: str, name: str, workflow: str, candidates: Iterable[str]) -> None:
        self.where = where
        self.name = name
        self.workflow = workflow
        super().__init__(
            f"{where}: workflow '{workflow}' has no step '{name}'{did_you_mean(name, candidates)}"
        )


@dataclass(frozen=True)
class Selection:
    """What to run of a workflow; every other unit is toggled off.

    - `units`: the units a saved (and possibly edited) plan still selects; None: every unit.
      Toggling a unit off this way toggles off that unit alone.
    - `only`: steps to run (a step name means all its fan-out instances; `deploy[eu-1]` one
      of them), with everything they need, directly or not.
    - `skip`: steps to toggle off, with everything that depends on them (their subtree).
    - `plan`: where `units` came from (a file name), for the reason.

    They narrow one another: a unit runs only if all three keep it.
    """

    only: Sequence[str] = ()
    skip: Sequence[str] = ()
    units: frozenset[str] | None = None
    plan: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "only", tuple(self.only))
        object.__setattr__(self, "skip", tuple(self.skip))
        if self.units is not None:
            object.__setattr__(self, "units", frozenset(self.units))

    @property
    def everything(self) -> bool:
        """Nothing is toggled off."""
        return not self.only and not self.skip and self.units is None


def not_selected(wg: WorkflowGraph, selection: Selection | None) -> dict[str, str]:
    """The units `selection` toggles off, in file order, each with why. Raises
    SelectionError for a name the workflow does not have."""
    if selection is None or selection.everything:
        return {}
    off: dict[str, str] = {}
    if selection.units is not None:
        where = f"the plan {selection.plan}" if selection.plan else "the plan"
        unknown = sorted(selection.units - wg.units.keys())
        if unknown:
            raise SelectionError(where, unknown[0], wg.workflow.name, wg.units)
        why = f"{NOT_SELECTED} ({selection.plan})" if selection.plan else NOT_SELECTED
        off.update((name, why) for name in wg.units if name not in selection.units)
    if selection.only:
        keep = set(_units(wg, "--only", selection.only))
        stack = list(keep)
        while stack:
            for need in wg.needs(stack.pop()):
                if need not in keep:
                    keep.add(need)
                    stack.append(need)
        why = f"{NOT_SELECTED} (only {', '.join(selection.only)} and what they need)"
        for name in wg.units:
            if name not in keep:
                off.setdefault(name, why)
    if selection.skip:
        subtree: dict[str, str] = {}
        for given in selection.skip:
            for name in _units(wg, "--skip", (given,)):
                subtree.setdefault(name, f"{NOT_SELECTED} (skip {given})")
        below: set[str] = set()
        stack = list(subtree)
        while stack:
            for dependent in wg.dependents(stack.pop()):
                if dependent not in subtree and dependent not in below:
                    below.add(dependent)
                    stack.append(dependent)
        for name in below:  # named after its first need that is off, as a blocked step is
            need = next(n for n in wg.needs(name) if n in subtree or n in below)
            subtree[name] = f"{NOT_SELECTED} (needs '{need}', which is not selected)"
        for name, why in subtree.items():
            off.setdefault(name, why)
    return {name: off[name] for name in wg.units if name in off}


def _units(wg: WorkflowGraph, where: str, names: Iterable[str]) -> list[str]:
    """Units by step name (all of a fan-out's instances) or by unit name."""
    out: list[str] = []
    for name in names:
        if name in wg.instances:
            out.extend(wg.instances[name])
        elif name in wg.units:
            out.append(name)
        else:
            steps = [s.name for s in wg.workflow.steps]
            raise SelectionError(where, name, wg.workflow.name, [*steps, *wg.units])
    return out
