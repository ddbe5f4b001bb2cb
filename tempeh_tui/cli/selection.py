"""What `tempeh run` runs: a workflow FILE, or a saved (and possibly edited) plan, narrowed by
`--only` and `--skip` (SPEC 6: plan, pick, apply).

A saved plan is the JSON `tempeh plan FILE --out PLAN` writes. It runs "exactly": the workflow
is read again from the file it was planned from and refused if its definition changed since
(its fingerprint), and it runs with the params it was planned with. An operator edits it by
removing units from `groups`, or by setting a unit's `"selected": false` (or its `"decision"`
to `"skip"` or `"not selected"`); those units are not run, and only those.
"""

from __future__ import annotations

import argparse
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tempeh_tui.definition import load_workflow
from tempeh_tui.definition.models import Workflow
from tempeh_tui.definition.params import parse_param_assignments, resolve_params
from tempeh_tui.engine.secrets import known_secrets, secrets_masked
from tempeh_tui.errors import TempehError
from tempeh_tui.graph.build import build_graph
from tempeh_tui.graph.selection import Selection, not_selected

__all__ = ["PlanRefused", "SavedPlan", "load_saved_plan", "option_names", "what_to_run"]


class PlanRefused(TempehError):
    """A saved plan that cannot be run as it is: unreadable, or its workflow changed."""

    def __init__(self, plan: Path, why: str) -> None:
        self.plan = plan
        self.why = why
        super().__init__(f"{plan}: {why}")


@dataclass(frozen=True)
class SavedPlan:
    path: Path
    workflow: Workflow
    params: dict[str, Any]
    units: frozenset[str] | None
    """The units it still selects; None: all of them (nothing was toggled off)."""

    def selection(self, only: list[str], skip: list[str]) -> Selection:
        return Selection(only=only, skip=skip, units=self.units, plan=str(self.path))


def what_to_run(args: argparse.Namespace) -> tuple[Workflow, dict[str, Any], Selection]:
    """The workflow, params and selection `tempeh run` was asked for; raises TempehError
    (exit 2) for a bad combination, an unknown step or a plan that cannot run as saved."""
    only, skip = option_names("--only", args.only), option_names("--skip", args.skip)
    if args.plan is not None:
        if args.file is not None:
            raise TempehError("give a workflow FILE or --plan PLAN, not both")
        if args.params:
            raise TempehError(
                "-p: a saved plan runs with the params it was planned with; to change them, "
                "plan again (`tempeh plan FILE -p NAME=VALUE --out PLAN`)"
            )
        saved = load_saved_plan(Path(args.plan))
        workflow, params, selection = saved.workflow, saved.params, saved.selection(only, skip)
    elif args.file is None:
        raise TempehError("run: give a workflow FILE, or --plan PLAN (see `tempeh run --help`)")
    else:
        workflow = load_workflow(Path(args.file))
        params = parse_param_assignments(args.params)
        selection = Selection(only=only, skip=skip)
    with secrets_masked(secrets_here(workflow)):  # a secret given as a param is not echoed
        resolve_params(workflow, params)  # refuse bad params before anything opens
    not_selected(build_graph(workflow), selection)  # and unknown steps
    return workflow, params, selection


def secrets_here(workflow: Workflow) -> dict[str, str]:
    """The workflow's secrets as this process's environment has them."""
    names = [*workflow.secrets, *(n for step in workflow.steps for n in step.secrets)]
    return known_secrets(names, os.environ)


def option_names(option: str, given: list[str]) -> list[str]:
    """`--only a,b --only c` → `[a, b, c]`."""
    names = [name.strip() for value in given for name in value.split(",")]
    if given and not any(names):
        raise TempehError(f"{option}: expected step names, e.g. {option} build,deploy")
    return [name for name in names if name]


def load_saved_plan(path: Path) -> SavedPlan:
    """Read a saved plan, reload its workflow and check that it is the one planned."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise PlanRefused(path, f"cannot read the plan: {exc.strerror or exc}") from None
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise PlanRefused(path, f"not a saved plan (not JSON: {exc})") from None
    if not isinstance(data, dict):
        raise PlanRefused(path, "not a saved plan (expected a JSON object)")
    for key in ("definition_sha256", "groups", "params"):
        if key not in data:
            raise PlanRefused(
                path, f"not a saved plan (no '{key}'); save one with `tempeh plan FILE --out PLAN`"
            )
    file = data.get("file") or data.get("source")
    if not isinstance(file, str) or file.startswith("<"):
        raise PlanRefused(path, "the plan does not say which workflow file it was planned from")
    if not Path(file).is_file():
        raise PlanRefused(path, f"the workflow it was planned from, {file}, is not there")
    workflow = load_workflow(Path(file))  # a WorkflowError names the file's problems
    planned, now = data["definition_sha256"], workflow.fingerprint()
    if planned != now:
        raise PlanRefused(
            path,
            f"the workflow {file} changed since it was planned (definition {str(planned)[:12]} "
            f"then, {now[:12]} now); run exactly what you reviewed: plan it again with "
            f"`tempeh plan {file} --out {path}`",
        )
    params = data["params"]
    if not isinstance(params, dict):
        raise PlanRefused(path, "'params' is not an object")
    return SavedPlan(path, workflow, params, _selected_units(path, data, workflow, params))


def _selected_units(
    path: Path, data: dict[str, Any], workflow: Workflow, params: dict[str, Any]
) -> frozenset[str] | None:
    """The units the plan still selects: in its groups, and not toggled off in `steps`. A
    `skip` the plan made itself (a `when` false at plan time) is the run's to decide again."""
    groups = data["groups"]
    if not isinstance(groups, list) or not all(
        isinstance(group, list) and all(isinstance(name, str) for name in group) for group in groups
    ):
        raise PlanRefused(path, "'groups' is not a list of lists of unit names")
    entries = {
        entry["name"]: entry
        for entry in data.get("steps") or ()
        if isinstance(entry, dict) and isinstance(entry.get("name"), str)
    }
    from tempeh_tui.graph.plan import build_plan

    fresh = build_plan(workflow, params).units
    selected: set[str] = set()
    for name in (name for group in groups for name in group):
        entry = entries.get(name, {})
        decision = entry.get("decision")
        if not isinstance(entry.get("selected", True), bool):  # "no" would read as selected
            raise PlanRefused(
                path, f"unit '{name}': 'selected' is {entry['selected']!r}; expected true or false"
            )
        if entry.get("selected") is False or decision == "not selected":
            continue
        if decision == "skip" and (name not in fresh or fresh[name].decision != "skip"):
            continue
        selected.add(name)
    return None if selected == fresh.keys() else frozenset(selected)
