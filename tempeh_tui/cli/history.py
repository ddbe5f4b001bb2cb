"""`tempeh runs`, `show`, `logs` and `gc`: what the store remembers, for people and for scripts."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Iterable
from datetime import datetime
from typing import Any

import anyio
from rich.console import Console
from rich.table import Table
from rich.text import Text

from tempeh_tui.cli.console import report_console
from tempeh_tui.definition.durations import format_duration, parse_duration
from tempeh_tui.events import RunStatus, StepStatus
from tempeh_tui.store import (
    LogRecord,
    PruneResult,
    RunRecord,
    StepRecord,
    default_store_path,
    open_existing_store,
    open_store,
)
from tempeh_tui.store.base import DecisionRecord, RollbackRecord
from tempeh_tui.store.rows import unit_matches

__all__ = ["gc", "logs", "runs", "show"]

GC_DEFAULT_AGE = "30d"
"""What `tempeh gc` removes when given no rule: runs nothing happened in for 30 days."""
EXIT_USAGE = 2

FOLLOW_INTERVAL = 0.2
"""How often `logs --follow` asks the store for new lines."""

_STATUS_STYLE = {
    "running": "cyan",
    "paused": "yellow",
    "waiting": "dim",
    "pending": "dim",
    "awaiting_confirmation": "yellow",
    "succeeded": "green",
    "failed": "red",
    "skipped": "yellow",
    "cancelled": "magenta",
    "interrupted": "magenta",
    "rolling_back": "cyan",
    "rolled_back": "blue",
    "rollback_failed": "red",
}


def runs(args: argparse.Namespace) -> int:
    found = anyio.run(_list_runs, args.db, args.limit) if _store_exists(args.db) else []
    if args.json:
        _print_json([run.to_json(with_steps=False) for run in found])
        return 0
    console = report_console()
    if not found:
        console.print("no runs yet")
        return 0
    table = Table(show_edge=False, pad_edge=False, header_style="bold")
    # a run id is never cut: it is what the operator copies into the next command
    table.add_column("run", no_wrap=True, min_width=max(len(run.id) for run in found))
    for column in ("workflow", "status", "started", "duration"):
        table.add_column(column, no_wrap=True)
    for run in found:
        table.add_row(
            Text(run.id),
            Text(run.workflow),
            _status(run.status.value),
            _local_time(run.started_at),
            _duration(run.started_at, run.ended_at, running=not run.status.is_terminal),
        )
    console.print(table)
    return 0


def show(args: argparse.Namespace) -> int:
    run = anyio.run(_get_run, args.db, args.run).as_shown()
    if args.json:
        _print_json(run.to_json())
    else:
        _print_run(run, report_console())
    return 0


def logs(args: argparse.Namespace) -> int:
    try:
        return anyio.run(_logs, args)
    except KeyboardInterrupt:  # the usual way to stop `--follow`
        return 130


def gc(args: argparse.Namespace) -> int:
    keep: int | None = args.keep
    age: str | None = args.older_than
    if keep is None and age is None:
        age = GC_DEFAULT_AGE
    if keep is not None and keep < 0:
        print(f"tempeh gc: --keep must be 0 or more, not {keep}", file=sys.stderr)
        return EXIT_USAGE
    try:
        older_than = parse_duration(age) if age is not None else None
    except ValueError as exc:
        print(f"tempeh gc: --older-than: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if _store_exists(args.db):
        result = anyio.run(_prune, args.db, keep, older_than, args.dry_run)
    else:  # nothing has run with it: nothing to remove, and no store made to say so
        result = PruneResult(dry_run=args.dry_run)
    if args.json:
        _print_json(result.to_json())
        return 0
    rules = [f"older than {age}"] if age is not None else []
    if keep is not None:
        rules.append(f"beyond the newest {keep} of each workflow")
    _print_pruned(result, " and ".join(rules))
    return 0


async def _prune(
    db: str | None, keep: int | None, older_than: float | None, dry_run: bool
) -> PruneResult:
    async with open_store(db) as store:
        return await store.prune_runs(keep=keep, older_than=older_than, dry_run=dry_run)


def _print_pruned(result: PruneResult, rules: str) -> None:
    count = len(result.removed)
    verb = "would remove" if result.dry_run else "removed"
    if count:
        print(f"{verb} {count} {_runs(count)} ({rules}):")
        print("".join(f"  {run_id}\n" for run_id in result.removed), end="")
    else:
        print(f"nothing to remove ({rules})")
    if result.kept_active:
        kept = len(result.kept_active)
        print(f"kept {kept} {_runs(kept)} that a live process drives:")
        print("".join(f"  {run_id}\n" for run_id in result.kept_active), end="")


def _runs(count: int) -> str:
    return "run" if count == 1 else "runs"


async def _list_runs(db: str | None, limit: int) -> list[RunRecord]:
    async with open_store(db) as store:
        return await store.list_runs(limit)


def _store_exists(db: str | None) -> bool:
    """Reading creates no store: a `--db` with a typo would otherwise leave an empty one."""
    return default_store_path(db).exists()


async def _get_run(db: str | None, run_id: str) -> RunRecord:
    async with open_existing_store(db) as store:
        return await store.get_run(run_id)


async def _logs(args: argparse.Namespace) -> int:
    async with open_existing_store(args.db) as store:
        run = await store.get_run(args.run)
        step: str | None = args.step
        if step is not None and not any(unit_matches(s.name, step) for s in run.steps):
            names = ", ".join(s.name for s in run.steps) or "none"
            print(f"tempeh: run {run.id} has no step '{step}' (steps: {names})", file=sys.stderr)
            return 2
        seq = _write_lines(await store.read_logs(run.id, step), step)
        while args.follow and _more_may_come(run):
            await anyio.sleep(FOLLOW_INTERVAL)
            seq = _write_lines(await store.read_logs(run.id, step, after_seq=seq), step, seq)
            run = await store.get_run(run.id)
        if args.follow:  # what was committed together with the run's end
            _write_lines(await store.read_logs(run.id, step, after_seq=seq), step, seq)
    return 0


def _more_may_come(run: RunRecord) -> bool:
    """Whether a run may still log: it has not ended, and a process drives it (a paused run
    nobody drives waits for a `tempeh resume`, which shows its own output)."""
    return not run.status.is_terminal and (run.status is RunStatus.RUNNING or run.lease is not None)


def _write_lines(lines: Iterable[LogRecord], step: str | None, seq: int = 0) -> int:
    """Print stored lines, each with its unit's name unless that is the one asked for; returns
    the last sequence number printed."""
    out = []
    for record in lines:
        prefix = "" if record.step == step else f"{record.step or 'tempeh'} | "
        out.append(f"{prefix}{record.line}\n")
        seq = record.seq
    if out:
        sys.stdout.write("".join(out))
        sys.stdout.flush()
    return seq


def _print_run(run: RunRecord, console: Console) -> None:
    took = _duration(run.started_at, run.ended_at, running=not run.status.is_terminal)
    console.print(
        Text.assemble(
            ("Run ", "bold"),
            (run.id, "bold cyan"),
            "  ",
            (run.workflow, "bold"),
            "  ",
            _status(run.status.value),
        )
    )
    facts = [f"started {_local_time(run.started_at)}"]
    if run.ended_at is not None:
        facts.append(f"ended {_local_time(run.ended_at)}")
    if took:
        facts.append(f"took {took}" if run.status.is_terminal else f"running for {took}")
    if run.max_concurrency is not None:
        facts.append(f"max_concurrency {run.max_concurrency}")
    console.print(Text("  ".join(facts)))
    if run.params:
        console.print(Text("params: " + "  ".join(f"{k}={v}" for k, v in run.params.items())))
    if run.message:
        console.print(Text(run.message))
    if run.source:
        console.print(Text(f"from {run.source}", style="dim"))
    for question in run.waiting_for:
        answer = (
            f"tempeh approve {run.id} {question.unit}"
            if question.kind == "approval"
            else f"tempeh decide {run.id} {question.unit} retry|skip|rollback|abort"
        )
        console.print(
            Text.assemble(
                (
                    f"waiting for {'approval' if question.kind == 'approval' else 'a decision'}: ",
                    "bold yellow",
                ),
                f"{question.unit}: {question.summary}  ",
                (f"(answer: {answer})", "dim"),
            )
        )

    table = Table(show_edge=False, pad_edge=False, header_style="bold")
    table.add_column("step", no_wrap=True)
    table.add_column("status")
    table.add_column("attempts", justify="right")
    table.add_column("exit", justify="right")
    table.add_column("class")
    table.add_column("duration", justify="right", no_wrap=True)
    table.add_column("outputs", ratio=1)
    for step in run.steps:
        status = _status(step.status.value)
        if step.cached:
            status.append(" (cached)", style="dim")
        if step.reason:
            status.append(f" ({step.reason})", style="dim")
        table.add_row(
            Text(step.name),
            status,
            str(step.attempts) if step.attempts else "",
            "" if step.exit_code is None else str(step.exit_code),
            Text(step.error_class or ""),
            _duration(step.started_at, step.ended_at, running=not step.status.is_terminal),
            Text("  ".join(f"{k}={v}" for k, v in step.outputs.items())),
        )
    console.print(table)
    retried = [step for step in run.steps if len(step.attempt_history) > 1]
    if retried:
        console.print(Text("attempts:", style="bold"))
        for step in retried:
            for line in _attempt_lines(step):
                console.print(Text(f"  {line}"))
    answered = [d for d in run.decisions if not d.waiting]
    if answered:
        console.print(Text("decisions:", style="bold"))
        for question in answered:
            console.print(Text(f"  {_decision_line(question)}"))
    if run.rollbacks:
        console.print(Text("rollbacks:", style="bold"))
        for rollback in run.rollbacks:
            for line in _rollback_lines(rollback):
                console.print(Text(f"  {line}"))


def _rollback_lines(rollback: RollbackRecord) -> list[str]:
    """One rollback: when, who, how it ended; then each compensation and its result."""
    asked = rollback.plan.get("requested")
    scope = "all" if asked is None else ", ".join(asked)
    lines = [
        f"{rollback.id} ({scope}) planned {_local_time(rollback.planned_at)} by "
        f"{rollback.requested_by or 'unknown'}: {rollback.status.value}"
        + (f" ({rollback.message})" if rollback.message else "")
    ]
    for action in rollback.actions:
        what = f"  {action.unit}: {action.status.value}"
        if action.exit_code not in (None, 0):
            what += f", exit {action.exit_code}"
        if action.reason:
            what += f" ({action.reason})"
        lines.append(what)
    nothing = rollback.plan.get("nothing_to_undo") or []
    if nothing:
        lines.append(f"  nothing to undo: {', '.join(nothing)}")
    return lines


def _decision_line(question: DecisionRecord) -> str:
    """`migrate failure: retry with params version=2 (by alice@host (pid 7), 2026-...)`"""
    what = question.answer or ""
    if question.changes:
        what += f" with {question.changes}"
    when = _local_time(question.answered_at)
    return f"{question.unit} {question.kind}: {what} (by {question.answered_by}, {when})"


def _attempt_lines(step: StepRecord) -> list[str]:
    lines = []
    last = step.attempt_history[-1] if step.attempt_history else None
    for attempt in step.attempt_history:
        what = [f"{step.name} attempt {attempt.attempt}:"]
        if attempt.exit_code is not None:
            what.append(f"exit {attempt.exit_code}")
        if attempt.error_class:
            what.append(attempt.error_class)
        if attempt.delay_after is not None:
            what.append(f"retried after {_seconds(attempt.delay_after)}")
        elif attempt.ended_at is None and attempt is last and step.status is StepStatus.RUNNING:
            what.append("running")
        elif attempt.ended_at is None:  # its process went with the engine that drove it
            what.append("stopped with its engine, its end not recorded")
        lines.append(" ".join(what))
    return lines


def _status(status: str) -> Text:
    return Text(status, style=_STATUS_STYLE.get(status, ""))


def _local_time(ts: float | None) -> str:
    if ts is None:
        return ""
    return datetime.fromtimestamp(ts).astimezone().strftime("%Y-%m-%d %H:%M:%S")


def _duration(start: float | None, end: float | None, *, running: bool) -> str:
    if start is None:
        return ""
    if end is None:
        if not running:
            return ""
        end = time.time()
    return _seconds(max(0.0, end - start))


def _seconds(seconds: float) -> str:
    """500ms, 2.4s, 1m3s: tenths of a second matter only for the short ones."""
    return format_duration(round(seconds, 1) if 1 <= seconds < 60 else seconds)


def _print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False) + "\n")
