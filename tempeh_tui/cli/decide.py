"""`tempeh decide` and `tempeh approve`: answer a run waiting for its operator, through the store.

The run (started with `--wait-for-decision`) polls the store for the answer; who answered and
when is recorded with it, and so are the env and params a `retry` changes for the step's next
run (`-e KEY=VALUE`, `-p NAME=VALUE`). A `rollback` prints the rollback plan first and is stored
only once confirmed (`--yes`, or `y` on a terminal). Exit 2 when the step waits for no such
question, the answer is refused, or a rollback is not confirmed.
"""

from __future__ import annotations

import argparse
import functools
import sys

import anyio

from tempeh_tui.definition.params import parse_param_assignments
from tempeh_tui.engine.decisions import (
    APPROVE,
    Decision,
    DecisionDesk,
    NothingWaits,
    QuestionKind,
    RetryValues,
    answered_question,
)
from tempeh_tui.events import StepStatus
from tempeh_tui.store import open_existing_store
from tempeh_tui.store.base import RunRecord, Store
from tempeh_tui.store.decisions import pick_waiting

__all__ = ["approve", "decide"]

EXIT_NOTHING_WAITS = 2
EXIT_NOT_CONFIRMED = 2


def decide(args: argparse.Namespace) -> int:
    value = Decision(args.decision).value
    changes = RetryValues(
        parse_param_assignments(args.env, flag="-e"), parse_param_assignments(args.params)
    )
    answer = functools.partial(_answer, changes=changes, confirmed=bool(args.yes))
    return anyio.run(answer, args.db, args.run, args.step, QuestionKind.FAILURE, value)


def approve(args: argparse.Namespace) -> int:
    return anyio.run(_answer, args.db, args.run, args.step, QuestionKind.APPROVAL, APPROVE)


async def _answer(
    db: str | None,
    run_id: str,
    step: str,
    kind: QuestionKind,
    value: str,
    *,
    changes: RetryValues | None = None,
    confirmed: bool = False,
) -> int:
    async with open_existing_store(db) as store:
        run = await store.get_run(run_id)
        kind = answered_question(run.decisions, step, kind, value, changes)
        if pick_waiting(run.decisions, step, kind.value) is None:
            return _nothing_waits(run, NothingWaits(run.id, step, kind), kind)
        if value == Decision.ROLLBACK and not await _rollback_confirmed(store, run, confirmed):
            return EXIT_NOT_CONFIRMED
        try:
            answered = await DecisionDesk(store).answer(run.id, step, kind, value, changes=changes)
        except NothingWaits as exc:  # answered meanwhile, by someone else
            return _nothing_waits(run, exc, kind)
    what = value if not answered.changes else f"{value} with {answered.changes}"
    print(f"{run.id} {answered.unit}: {what} (answered by {answered.answered_by})")
    return 0


def _nothing_waits(run: RunRecord, exc: NothingWaits, kind: QuestionKind) -> int:
    units = {s.name for s in run.steps}
    if exc.step not in units and not any(u.startswith(f"{exc.step}[") for u in units):
        known = ", ".join(sorted(units))
        print(f"tempeh: run {run.id} has no step '{exc.step}'; its steps: {known}", file=sys.stderr)
        return EXIT_NOTHING_WAITS
    other = [d for d in run.waiting_for if d.kind != kind.value]
    hint = ""
    if other:
        names = ", ".join(f"{d.unit} ({d.kind})" for d in other)
        hint = f"; waiting: {names}"
    print(f"tempeh: {exc}{hint}", file=sys.stderr)
    return EXIT_NOTHING_WAITS


async def _rollback_confirmed(store: Store, run: RunRecord, confirmed: bool) -> bool:
    """SPEC 5.3: the plan is shown before it runs and needs confirmation (`--yes` headless)."""
    from tempeh_tui.cli.rollback import print_plan
    from tempeh_tui.engine.rollback import RollbackManager

    plan = await RollbackManager(store).plan_rollback(run.id)
    print_plan(plan, as_json=False)
    running = [s.name for s in run.steps if s.status is StepStatus.RUNNING]
    if running:
        print(
            f"still running: {', '.join(running)}; the run lets them finish first, and those "
            "that succeed (and have a rollback) are undone too",
            flush=True,
        )
    if confirmed:
        return True
    if sys.stdin.isatty():
        reply = await anyio.to_thread.run_sync(_ask, f"Roll back run {run.id} as planned? [y/N] ")
        if reply.strip().lower() in ("y", "yes"):
            return True
        print("tempeh decide: nothing decided; the run still waits", file=sys.stderr)
        return False
    print(
        f"tempeh decide: nothing decided; add --yes to roll back run {run.id} as planned above "
        "(the run still waits)",
        file=sys.stderr,
    )
    return False


def _ask(prompt: str) -> str:
    try:
        return input(prompt)
    except EOFError:
        return ""
