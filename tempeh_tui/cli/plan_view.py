"""A plan, printed for people with Rich: a table of waves, then the path, fan-outs and hints."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table
from rich.text import Text

from tempeh_tui.cli.console import report_console
from tempeh_tui.definition.durations import format_duration
from tempeh_tui.graph.plan import Plan

__all__ = ["print_plan"]

_DECISION_STYLE = {
    "run": "green",
    "skip": "yellow",
    "at run time": "cyan",
    "cached": "blue",
    "not selected": "dim",
}


def print_plan(plan: Plan, console: Console | None = None) -> None:
    console = console or report_console()
    wf = plan.workflow
    units = plan.units
    console.print(
        Text.assemble(
            ("Plan ", "bold"),
            (wf.name, "bold cyan"),
            f"  {len(wf.steps)} steps, {len(units)} units, {len(plan.groups)} waves, "
            f"max_concurrency {wf.max_concurrency}, on_failure {wf.on_failure.value}",
        )
    )
    if plan.params:
        shown = "  ".join(f"{k}={'' if v is None else v}" for k, v in plan.params.items())
        console.print(Text(f"params: {shown}"))

    table = Table(show_edge=False, pad_edge=False, header_style="bold")
    table.add_column("wave", no_wrap=True)
    table.add_column("step", no_wrap=True, min_width=min(40, max(map(len, units), default=4) + 2))
    table.add_column("needs", ratio=2)
    table.add_column("claims")
    table.add_column("decision", ratio=1)
    table.add_column("undo", no_wrap=True)
    critical = set(plan.critical_path)
    for number, group in enumerate(plan.groups, start=1):
        for i, name in enumerate(group):
            unit = units[name]
            claims = ", ".join(f"{k}:{v}" for k, v in unit.resources.items())
            if unit.exclusive:
                claims = ", ".join(filter(None, ["exclusive", claims]))
            decision = Text(unit.decision, style=_DECISION_STYLE[unit.decision])
            if unit.decision == "not selected" and unit.reason:
                decision = Text(unit.reason, style=_DECISION_STYLE[unit.decision])
            elif unit.reason:
                decision.append(f" ({unit.reason})", style="dim")
            if unit.cache == "miss":
                decision.append(" (cache miss)", style="dim")
            elif unit.cache == "hit" and unit.decision != "cached":
                decision.append(
                    f" (if it runs: cache hit from run {unit.cached_from})", style="dim"
                )
            label = Text(name, style="bold" if name in critical else "")
            if name in critical:
                label.append(" *", style="magenta")
            table.add_row(
                str(number) if i == 0 else "",
                label,
                Text(", ".join(_collapse(plan, unit.needs))),
                Text(claims),
                decision,
                "↺" if unit.rollback else "",
                end_section=i == len(group) - 1,
            )
    console.print(table)

    seconds = format_duration(plan.critical_seconds)
    length = f"~{seconds}" if plan.critical_estimated else f"{len(plan.critical_path)} steps"
    console.print(
        Text.assemble(("critical path", "magenta"), f" (*, {length}): "),
        Text(" → ".join(plan.critical_path)),
    )
    for step, names in plan.graph.instances.items():
        limit = wf.step(step).max_parallel
        at_most = f", at most {limit} at once" if limit else ""
        console.print(Text(f"fan-out {step}: {len(names)} instances{at_most}"))
    if plan.hints:
        console.print(Text("hints:", style="bold"))
        for hint in plan.hints:
            console.print(Text(f"  • {hint}"))


def _collapse(plan: Plan, names: list[str]) -> list[str]:
    """Needs as written: all instances of a fan-out become `step[*]`."""
    out: list[str] = []
    for name in names:
        step = plan.units[name].step
        instances = plan.graph.instances.get(step)
        if instances is None:
            out.append(name)
        elif set(instances) <= set(names):
            if f"{step}[*]" not in out:
                out.append(f"{step}[*]")
        else:
            out.append(name)
    return out
