"""`tempeh decide` and `tempeh approve`: answer a run waiting for its operator, through the store.

The run (started with `--wait-for-decision`) polls the store for the answer; who answered and
when is recorded with it. Exit 2 when the step waits for no such question.
"""

from __future__ import annotations

import argparse
import sys

import anyio

from tempeh_tui.engine.decisions import (
    APPROVE,
    Decision,
    DecisionDesk,
    NothingWaits,
    QuestionKind,
)
from tempeh_tui.store import open_store

__all__ = ["approve", "decide"]

EXIT_NOTHING_WAITS = 2


def decide(args: argparse.Namespace) -> int:
    value = Decision(args.decision).value
    return anyio.run(_answer, args.db, args.run, args.step, QuestionKind.FAILURE, value)


def approve(args: argparse.Namespace) -> int:
    return anyio.run(_answer, args.db, args.run, args.step, QuestionKind.APPROVAL, APPROVE)


async def _answer(db: str | None, run_id: str, step: str, kind: QuestionKind, value: str) -> int:
    async with open_store(db) as store:
        run = await store.get_run(run_id)
        try:
            answered = await DecisionDesk(store).answer(run.id, step, kind, value)
        except NothingWaits as exc:
            other = [d for d in run.waiting_for if d.kind != kind.value]
            hint = ""
            if other:
                names = ", ".join(f"{d.unit} ({d.kind})" for d in other)
                hint = f"; waiting: {names}"
            print(f"tempeh: {exc}{hint}", file=sys.stderr)
            return EXIT_NOTHING_WAITS
    print(f"{run.id} {answered.unit}: {value} (answered by {answered.answered_by})")
    return 0
