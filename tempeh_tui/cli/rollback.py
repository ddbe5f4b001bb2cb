"""`tempeh rollback RUN`: show what a rollback would undo, and with `--yes`, undo it.

Exit codes (SPEC 6): 0 the rollback completed (or `--plan` printed it), 2 invalid input or no
`--yes`, 4 a compensation failed, 130 interrupted (`tempeh rollback RUN` continues it).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import sys
import time
from collections.abc import AsyncIterator, Callable

import anyio
import anyio.abc

from tempeh_tui.cli.headless import HeadlessView, choose_view, json_notice
from tempeh_tui.engine.process_groups import signal_group
from tempeh_tui.engine.rollback import RollbackManager, RollbackPlan, RollbackResult
from tempeh_tui.engine.unit_runner import scratch_folders
from tempeh_tui.errors import TempehError
from tempeh_tui.events import RunStatus
from tempeh_tui.store import RunLocked, RunRecord, Store, open_existing_store
from tempeh_tui.store.lease import driven_elsewhere

__all__ = ["print_plan", "rollback"]

EXIT_OK = 0
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


_LATE = (signal.SIGINT, signal.SIGTERM)


def rollback(args: argparse.Namespace) -> int:
    before = {signum: signal.getsignal(signum) for signum in _LATE}
    try:
        code: int = anyio.run(_rollback, args)
    finally:
        for signum, handler in before.items():
            signal.signal(signum, handler)
    return code


def _steps(text: str | None) -> list[str] | None:
    if text is None:
        return None
    names = [name.strip() for name in text.split(",") if name.strip()]
    if not names:
        raise TempehError(f"--steps {text!r} names no step; expected a,b (or no --steps)")
    return names


async def _rollback(args: argparse.Namespace) -> int:
    # SIGINT/SIGTERM are watched (once the rollback starts) until the store is closed: one
    # after the rollback has ended must not kill tempeh while it finishes writing
    code = EXIT_INTERRUPTED
    async with anyio.create_task_group() as watching:
        try:
            code = await _plan_and_roll_back(args, watching)
        finally:
            watching.cancel_scope.cancel()
    return code


async def _plan_and_roll_back(args: argparse.Namespace, watching: anyio.abc.TaskGroup) -> int:
    async with open_existing_store(args.db) as store:
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
            return await _execute(store, manager, plan, view.tick, watching)
        finally:
            view.close()


def _refuse_if_driven(run: RunRecord) -> None:
    """Another live process drives the run (its own rollback, or the run itself): refused at
    once, naming it. (`execute_rollback` would refuse too, once it asks for the lease.)"""
    now = time.time()
    if run.lease is not None and driven_elsewhere(run.lease, now):
        raise RunLocked(run.id, run.lease, now)


async def _execute(
    store: Store,
    manager: RollbackManager,
    plan: RollbackPlan,
    tick: Callable[[], None],
    watching: anyio.abc.TaskGroup,
) -> int:
    """A signal while compensations run stops them: the rollback is recorded `interrupted`,
    exit 130, and `tempeh rollback RUN` continues it. One after it has ended changes nothing:
    tempeh finishes and exits with the rollback's code."""
    started = time.time()
    result: RollbackResult | None = None
    work = anyio.CancelScope()
    running: set[int] = set()  # the compensations' process groups
    await watching.start(_watch_signals, work, running, lambda: result is not None)
    watching.start_soon(_tick, tick)
    with work:
        result = await manager.execute_rollback(plan, process_groups=running)
    if result is None:  # stopped: unless it had ended (recorded) just before
        result = await _ended_since(store, plan.run_id, started)
    if result is not None and result.status is RunStatus.ROLLED_BACK and plan.requested is None:
        # The run is undone for good (and never resumed): the scratch folder a dead engine
        # left, whose `$TEMPEH_OUTPUT` files the compensations of its in-doubt steps read,
        # has served. No live engine has one: this process holds no other, and the run's
        # driver was refused above if alive.
        for folder in scratch_folders(plan.run_id):
            shutil.rmtree(folder, ignore_errors=True)
    return result.exit_code if result is not None else EXIT_INTERRUPTED


async def _ended_since(store: Store, run_id: str, since: float) -> RollbackResult | None:
    """The rollback this process ran, if it had ended (recorded) before a signal stopped it."""
    ours = [r for r in (await store.get_run(run_id)).rollbacks if (r.planned_at or 0) >= since]
    last = ours[-1] if ours else None
    if last is None or last.status not in (RunStatus.ROLLED_BACK, RunStatus.ROLLBACK_FAILED):
        return None
    return RollbackResult(run_id, last.id, last.status, {}, last.message, since, time.time())


async def _tick(tick: Callable[[], None]) -> None:
    while True:
        await anyio.sleep(0.25)
        tick()


async def _watch_signals(
    work: anyio.CancelScope,
    running: set[int],
    ended: Callable[[], bool],
    *,
    task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """The first SIGINT/SIGTERM stops the rollback (its compensations are terminated, then
    killed after their grace); a second one kills them at once and exits 130. Once this ends,
    all is written: a signal changes nothing until `rollback` returns (it restores them)."""
    try:
        with anyio.open_signal_receiver(*_LATE) as signals:
            task_status.started()
            await _answer_signals(signals, work, running, ended)
    finally:  # (asyncio put the default actions back: a late SIGTERM would kill tempeh)
        for signum in _LATE:
            signal.signal(signum, signal.SIG_IGN)


async def _answer_signals(
    signals: AsyncIterator[int],
    work: anyio.CancelScope,
    running: set[int],
    ended: Callable[[], bool],
) -> None:
    async for signum in signals:
        name = signal.Signals(signum).name
        if ended():
            print(f"tempeh: {name}: the rollback has ended; finishing", file=sys.stderr)
        elif not work.cancel_called:
            print(f"tempeh: {name}: stopping the rollback", file=sys.stderr)
            work.cancel()
        else:
            print(f"tempeh: {name} again: killing the compensations", file=sys.stderr)
            for group in list(running):
                signal_group(group, signal.SIGKILL)
            sys.stderr.flush()
            os._exit(EXIT_INTERRUPTED)


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
