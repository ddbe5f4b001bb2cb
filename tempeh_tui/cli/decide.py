"""`tempeh decide` and `tempeh approve`: answer a run waiting for its operator, through the store.

The run (started with `--wait-for-decision`) polls the store for the answer; who answered and
when is recorded with it, and so are the env and params a `retry` changes for the step's next
run (`-e KEY=VALUE`, `-p NAME=VALUE`). Exit 2 when the step waits for no such question or the
answer is refused.
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
)
from tempeh_tui.store import open_store
from tempeh_tui.store.base import RunRecord
from tempeh_tui.store.decisions import pick_waiting

__all__ = ["approve", "decide"]

EXIT_NOTHING_WAITS = 2


def decide(args: argparse.Namespace) -> int:
    value = Decision(args.decision).value
    changes = RetryValues(
        parse_param_assignments(args.env, flag="-e"), parse_param_assignments(args.params)
    )
    answer = functools.partial(_answer, changes=changes)
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
) -> int:
    async with open_store(db) as store:
        run = await store.get_run(run_id)
        if pick_waiting(run.decisions, step, kind.value) is None:
            return _nothing_waits(run, NothingWaits(run.id, step, kind), kind)
        try:
            answered = await DecisionDesk(store).answer(run.id, step, kind, value, changes=changes)
        except NothingWaits as exc:  # answered meanwhile, by someone else
            return _nothing_waits(run, exc, kind)
    what = value if not answered.changes else f"{value} with {answered.changes}"
    print(f"{run.id} {answered.unit}: {what} (answered by {answered.answered_by})")
    return 0


def _nothing_waits(run: RunRecord, exc: NothingWaits, kind: QuestionKind) -> int:
    other = [d for d in run.waiting_for if d.kind != kind.value]
    hint = ""
    if other:
        names = ", ".join(f"{d.unit} ({d.kind})" for d in other)
        hint = f"; waiting: {names}"
    print(f"tempeh: {exc}{hint}", file=sys.stderr)
    return EXIT_NOTHING_WAITS
