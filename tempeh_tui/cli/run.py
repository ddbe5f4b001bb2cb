"""`tempeh run` and `tempeh resume`: drive a run with the default store and a headless view.

The first SIGINT/SIGTERM stops starting steps, terminates the running ones (their whole process
groups), records the run as `interrupted` and exits 130; a second one kills them and exits at
once.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import signal
import sys
from collections.abc import Awaitable, Callable, Iterator
from typing import TextIO

import anyio
import anyio.abc

from tempeh_tui.cli.headless import HeadlessView, choose_view, json_notice
from tempeh_tui.cli.selection import what_to_run
from tempeh_tui.definition.durations import parse_duration
from tempeh_tui.engine.engine import WorkflowEngine
from tempeh_tui.engine.python_output import send_strays
from tempeh_tui.engine.results import RunResult
from tempeh_tui.engine.resume import ResumePlan
from tempeh_tui.errors import TempehError
from tempeh_tui.store import open_store

__all__ = ["resume", "run"]

EXIT_INTERRUPTED = 130
Start = Callable[[WorkflowEngine], Awaitable[RunResult]]


def run(args: argparse.Namespace) -> int:
    workflow, params, selection = what_to_run(args)
    wait, timeout = _waiting(args)

    def start(engine: WorkflowEngine) -> Awaitable[RunResult]:
        return engine.execute_workflow(
            workflow,
            params=params,
            max_concurrency=args.max_concurrency,
            on_failure=args.on_failure,
            approve=args.approve,
            approve_all=args.yes,
            wait_for_decision=wait,
            decision_timeout=timeout,
            select=selection,
        )

    return _drive(args, start)


def resume(args: argparse.Namespace) -> int:
    view_json = bool(args.json)
    wait, timeout = _waiting(args)

    def start(engine: WorkflowEngine) -> Awaitable[RunResult]:
        return engine.resume(
            args.run,
            confirm_in_doubt=args.yes,
            max_concurrency=args.max_concurrency,
            approve=args.approve,
            approve_all=args.yes,
            explain=lambda plan: _explain(plan, as_json=view_json),
            on_failure=args.on_failure,
            wait_for_decision=wait,
            decision_timeout=timeout,
        )

    return _drive(args, start)


def _waiting(args: argparse.Namespace) -> tuple[bool, float | None]:
    """`--wait-for-decision [TIMEOUT]`: whether to wait, and for how long (None: forever)."""
    given: str | None = args.wait_for_decision
    if given is None:
        return False, None
    if given == "forever":
        return True, None
    try:
        return True, parse_duration(given)
    except ValueError as exc:
        raise TempehError(f"--wait-for-decision: {exc}") from exc


def _drive(args: argparse.Namespace, start: Start) -> int:
    with _stdout_for_tempeh_only():
        code: int = anyio.run(_run, args, start)
    return code


def _kept_apart(stdout: TextIO) -> int | None:
    """A copy of `stdout`'s descriptor, once that descriptor is a copy of stderr's."""
    try:
        fd = stdout.fileno()
        stdout.flush()
        kept = os.dup(fd)
    except (AttributeError, OSError, ValueError):
        return None
    try:
        os.dup2(2, fd)
    except OSError:
        os.close(kept)
        return None
    return kept


@contextlib.contextmanager
def _stdout_for_tempeh_only() -> Iterator[None]:
    """Keep stdout for tempeh's own report (`--json`: one event per line), whatever the run's
    Python steps start. They run in this process, so a `subprocess.run(...)` in one inherits
    its file descriptor 1, and so does anything that writes to it directly: within, fd 1 is a
    copy of fd 2 (that output reaches the operator on stderr), and `sys.stdout` writes to a
    copy of the original fd 1. Shell steps have pipes of their own; what Python code prints
    goes to its step's log, or to stderr when printed outside a step's context (a thread a
    step started): see `python_output`."""
    old = sys.stdout
    kept = _kept_apart(old)
    if kept is None:  # no real stdout, or no stderr to send the rest to
        yield
        return
    fd = old.fileno()
    new = open(kept, "w", encoding=old.encoding, errors=old.errors)  # noqa: SIM115 - closed below
    if isinstance(old, io.TextIOWrapper):
        new.reconfigure(line_buffering=old.line_buffering, write_through=old.write_through)
    sys.stdout = new
    send_strays("stdout", sys.stderr)
    try:
        yield
    finally:
        send_strays("stdout", None)
        with contextlib.suppress(OSError, ValueError):
            new.flush()
        os.dup2(kept, fd)
        sys.stdout = old
        new.close()


async def _run(args: argparse.Namespace, start: Start) -> int:
    store = open_store(args.db)
    engine = WorkflowEngine(store=store)
    view: HeadlessView = choose_view(json_lines=args.json)
    engine.subscribe(view.handle)
    before_start = anyio.Event()  # set by a Ctrl-C that comes before the run is started
    async with anyio.create_task_group() as signals:
        # Ctrl-C stays ours until the store is closed: one that came while it closed used to
        # cancel the close half-way and leave its reader's thread behind, and the process
        # hung at exit waiting for it.
        await signals.start(_watch_signals, engine, before_start)  # listening from here on
        try:
            await store.open()  # a big store's check can take a while: Ctrl-C still counts
            if before_start.is_set():
                return EXIT_INTERRUPTED
            async with anyio.create_task_group() as ticking:
                ticking.start_soon(_tick, view.tick)
                result = await start(engine)  # from here on, `engine.interrupt` stops it
                ticking.cancel_scope.cancel()
        finally:
            with anyio.CancelScope(shield=True):
                view.close()
                await store.close()
            signals.cancel_scope.cancel()
    return result.exit_code


def _explain(plan: ResumePlan, *, as_json: bool) -> None:
    """Before a resume acts: per unit, reuse / re-run / in doubt, and why (SPEC 4)."""
    if as_json:
        units = [{"name": d.name, "decision": d.action, "why": d.why} for d in plan.decisions]
        print(json_notice("resume_plan", plan.run.id, units=units), flush=True)
        return
    width = max((len(d.name) for d in plan.decisions), default=4)
    print(f"resuming run {plan.run.id} ({plan.workflow.name}, was {plan.run.status.value}):")
    for decision in plan.decisions:
        print(f"  {decision.name:<{width}}  {decision.action:<12}  {decision.why}")
    counts = ", ".join(f"{n} {action}" for action, n in plan.counts().items())
    print(f"  ({counts})", flush=True)


async def _tick(tick: Callable[[], None]) -> None:
    while True:
        await anyio.sleep(0.25)
        tick()


async def _watch_signals(
    engine: WorkflowEngine,
    before_start: anyio.Event,
    *,
    task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
) -> None:
    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        task_status.started()
        count = 0
        async for signum in signals:
            count += 1
            if count == 1:
                name = signal.Signals(signum).name
                if engine.interrupt(f"interrupted by {name}"):
                    doing = "stopping; running steps are terminated"
                elif not engine.has_run:
                    before_start.set()
                    doing = "stopping before the run starts"
                else:
                    doing = "nothing left to stop; finishing"
                print(f"tempeh: {name}: {doing} (again to exit at once)", file=sys.stderr)
            else:
                engine.kill_now()
                print(
                    "tempeh: killed; `tempeh resume` picks the run up from its last checkpoint",
                    file=sys.stderr,
                )
                os._exit(EXIT_INTERRUPTED)
