"""`tempeh run`: execute a workflow with the default store and a headless view.

The first SIGINT/SIGTERM stops starting steps, terminates the running ones (their whole process
groups), records the run as `interrupted` and exits 130; a second one exits at once.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from pathlib import Path

import anyio

from tempeh_tui.cli.headless import choose_view
from tempeh_tui.definition import load_workflow
from tempeh_tui.definition.params import parse_param_assignments
from tempeh_tui.engine.engine import WorkflowEngine
from tempeh_tui.store import open_store

__all__ = ["run"]

EXIT_INTERRUPTED = 130


def run(args: argparse.Namespace) -> int:
    workflow = load_workflow(Path(args.file))
    params = parse_param_assignments(args.params)
    code: int = anyio.run(_run, args, workflow, params)
    return code


async def _run(args: argparse.Namespace, workflow: object, params: dict[str, str]) -> int:
    from tempeh_tui.definition.models import Workflow

    assert isinstance(workflow, Workflow)
    store = open_store(args.db)
    await store.open()
    engine = WorkflowEngine(store=store)
    view = choose_view(json_lines=args.json)
    engine.subscribe(view.handle)
    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(_watch_signals, engine)
            tg.start_soon(_tick, view.tick)
            result = await engine.execute_workflow(
                workflow,
                params=params,
                max_concurrency=args.max_concurrency,
                on_failure=args.on_failure,
                approve=args.approve,
                approve_all=args.yes,
            )
            tg.cancel_scope.cancel()
    finally:
        view.close()
        await store.close()
    return result.exit_code


async def _tick(tick: object) -> None:
    assert callable(tick)
    while True:
        await anyio.sleep(0.25)
        tick()


async def _watch_signals(engine: WorkflowEngine) -> None:
    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        count = 0
        async for signum in signals:
            count += 1
            if count == 1:
                name = signal.Signals(signum).name
                print(
                    f"tempeh: {name}: stopping; running steps are terminated "
                    "(again to exit at once)",
                    file=sys.stderr,
                )
                engine.interrupt(f"interrupted by {name}")
            else:
                engine.kill_now()
                print("tempeh: killed; the run stays marked running until resumed", file=sys.stderr)
                os._exit(EXIT_INTERRUPTED)
