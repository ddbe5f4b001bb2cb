"""The `tempeh` command: the composition root, the one place that knows every layer.

Only argparse is imported up front; each command imports what it needs when it runs, so that
`tempeh --help` stays fast.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from typing import Any

__all__ = ["main"]

EXIT_OK = 0
EXIT_INVALID = 2


def main(argv: Sequence[str] | None = None) -> int:
    from tempeh_tui.cli.parser import build_parser

    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)  # a usage error: help goes where errors go
        return EXIT_INVALID
    from tempeh_tui.errors import TempehError, WorkflowError

    try:
        code: int = _unwrapped(args.handler, args)
    except WorkflowError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return EXIT_INVALID
    except TempehError as exc:
        print(f"tempeh: {exc}", file=sys.stderr)
        return EXIT_INVALID
    except BrokenPipeError:  # `tempeh plan x | head`
        return EXIT_OK
    return code


def _unwrapped(handler: Callable[[Any], int], args: Any) -> int:
    """Call a handler; an error raised inside a task group comes out as itself, not a group."""
    try:
        return handler(args)
    except BaseExceptionGroup as group:
        leaves = list(_leaves(group))
        if len(leaves) == 1:
            raise leaves[0] from group
        raise


def _leaves(group: BaseExceptionGroup[BaseException]) -> Iterator[BaseException]:
    for exc in group.exceptions:
        if isinstance(exc, BaseExceptionGroup):
            yield from _leaves(exc)
        else:
            yield exc


EXIT_INTERRUPTED = 130


def run() -> None:
    """Console-script entry point."""
    for name in ("stdout", "stderr"):  # started with it closed (`>&-`): write nowhere
        if getattr(sys, name) is None:
            setattr(sys, name, open(os.devnull, "w"))  # noqa: SIM115 - for the process
    try:
        code = main()
    except KeyboardInterrupt:  # Ctrl-C outside a run (which handles its own): no traceback
        print("tempeh: interrupted", file=sys.stderr)
        code = EXIT_INTERRUPTED
    import signal

    for signum in (signal.SIGINT, signal.SIGTERM):  # the command is done: exit with its code
        signal.signal(signum, signal.SIG_IGN)
    _exit(code)


def _exit(code: int) -> None:
    """Exit with `code` without tearing the interpreter down: by now everything tempeh writes
    is durable (the store is closed; WAL and journal), and the teardown of every module and
    object took longer than many runs' steps (~50 ms on a 2-core host). It also exits when a
    library's thread was left running: a store whose close was cut short (Ctrl-C) leaves
    aiosqlite's thread, which is not a daemon, and Python would wait for it for ever.
    Functions registered with `atexit` (a Python step's, say) still run."""
    import atexit

    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(code)
