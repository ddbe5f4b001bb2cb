"""The `tempeh` command: the composition root, the one place that knows every layer.

Only argparse is imported up front; each command imports what it needs when it runs, so that
`tempeh --help` stays fast.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

__all__ = ["main"]

EXIT_OK = 0
EXIT_INVALID = 2


def main(argv: Sequence[str] | None = None) -> int:
    from tempeh_tui.cli.parser import build_parser

    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return EXIT_INVALID
    from tempeh_tui.errors import TempehError, WorkflowError

    try:
        code: int = args.handler(args)
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


def run() -> None:
    """Console-script entry point."""
    sys.exit(main())
