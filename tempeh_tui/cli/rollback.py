"""`tempeh rollback RUN`: show what a rollback would undo, and with `--yes`, undo it.

Exit codes (SPEC 6): 0 the rollback completed (or `--plan` printed it), 2 invalid input or no
`--yes`, 4 a compensation failed, 130 interrupted (`tempeh rollback RUN` continues it).
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import time
from collections.abc import Callable

import anyio

from tempeh_tui.cli.headless import HeadlessView, choose_view, json_notice
from tempeh_tui.engine.rollback import RollbackManager, RollbackPlan, RollbackResult
from tempeh_tui.store import RunLocked, RunRecord, open_store
from tempeh_tui.store.lease import judge

__all__ = ["print_plan", "rollback"]

EXIT_OK = 0
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


def rollback(args: argparse.Namespace) -> int:
    code: int = anyio.run(_rollback, args)
    return code


def _steps(text: str | None) -> list[str] | None:
    if text is None:
        return None
    return [name.strip() for name in text.split(",") if name.strip()]


async def _rollback(args: argparse.Namespace) -> int:
    async with open_store(args.db) as store:
        if not args.plan:  # before a plan that would call its running compensations in doubt
            _refuse_if_driven(await store.get_run(args.run))
        manager = RollbackManager(store)
        plan = await manager.plan_rollback(args.run, _steps(args.steps))
        print_plan(plan, as_json=bool(args.json), full=bool(args.plan))
        if args.plan:
            return EXIT_OK
        if not args.yes:
            print(
                f"tempeh rollback: nothing done; add --yes to roll back run {plan.run_id} "
                "as planned above",
                file=sys.stderr,
            )
            return EXIT_USAGE
        if plan.empty and not any(s.in_doubt for s in (await store.get_run(plan.run_id)).steps):
            return EXIT_OK  # nothing to undo, nothing left running: the run stays as it is
        view: HeadlessView = choose_view(json_lines=bool(args.json))
        manager.subscribe(view.handle)
        try:
            return await _execute(manager, plan, view.tick)
        finally:
            view.close()


def _refuse_if_driven(run: RunRecord) -> None:
    """Another live process drives the run (its own rollback, or the run itself): refused at
    once, naming it. (`execute_rollback` would refuse too, once it asks for the lease.)"""
    now = time.time()
    if run.lease is not None and judge(run.lease, now) == "alive":
        raise RunLocked(run.id, run.lease, now)


async def _execute(manager: RollbackManager, plan: RollbackPlan, tick: Callable[[], None]) -> int:
    result: RollbackResult | None = None
    async with anyio.create_task_group() as tg:
        tg.start_soon(_tick, tick)
        tg.start_soon(_stop_on_signal, tg.cancel_scope)
        result = await manager.execute_rollback(plan)
        tg.cancel_scope.cancel()
    return result.exit_code if result is not None else EXIT_INTERRUPTED


async def _tick(tick: Callable[[], None]) -> None:
    while True:
        await anyio.sleep(0.25)
        tick()


async def _stop_on_signal(scope: anyio.CancelScope) -> None:
    """SIGINT/SIGTERM: compensations are terminated and the rollback recorded as interrupted;
    `tempeh rollback RUN` continues it (never compensating a unit twice)."""
    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async for signum in signals:
            name = signal.Signals(signum).name
            print(f"tempeh: {name}: stopping the rollback", file=sys.stderr)
            scope.cancel()
            return


def print_plan(plan: RollbackPlan, *, as_json: bool, full: bool = True) -> None:
    """The plan: a Rich table (order/group, unit, why), then what has nothing to undo; or
    JSON (the whole object with `--plan`, one `{"type": "rollback_plan", ...}` line before the
    events otherwise)."""
    if as_json:
        data = plan.to_json()
        if full:
            sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False) + "\n")
        else:
            fields = {k: v for k, v in data.items() if k != "run_id"}
            print(json_notice("rollback_plan", plan.run_id, **fields), flush=True)
        return
    from rich.table import Table
    from rich.text import Text

    from tempeh_tui.cli.console import report_console

    console = report_console()
    scope = "all of it" if plan.requested is None else ", ".join(plan.requested)
    console.print(
        Text.assemble(
            ("Rollback plan for run ", "bold"),
            (plan.run_id, "bold cyan"),
            f"  {plan.workflow}  ({scope})",
        )
    )
    if plan.units:
        table = Table(show_edge=False, pad_edge=False, header_style="bold")
        table.add_column("#", justify="right", no_wrap=True)
        table.add_column("group", justify="right", no_wrap=True)
        table.add_column("unit", no_wrap=True)
        table.add_column("why", ratio=1)
        for position, unit in enumerate(plan.units, start=1):
            table.add_row(str(position), str(unit.group + 1), Text(unit.name), Text(unit.why))
        console.print(table)
    else:
        console.print("nothing to roll back")
    if plan.nothing_to_undo:
        console.print(Text("nothing to undo (no rollback): " + ", ".join(plan.nothing_to_undo)))
    if plan.already_rolled_back:
        console.print(Text("already rolled back: " + ", ".join(plan.already_rolled_back)))
    sys.stdout.flush()
