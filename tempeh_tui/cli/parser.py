"""The command line (SPEC section 6): arguments only; handlers live beside this module."""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Iterable
from typing import Any

__all__ = ["build_parser"]

WAIT_OPTION = "--wait-for-decision"
FOREVER = "forever"
_DURATION = re.compile(r"(?:\d+(?:\.\d+)?|(?:\d+(?:\.\d+)?(?:ms|s|m|h|d))+)")
"""What `parse_duration` reads: `30`, `1.5`, `500ms`, `1m30s`."""


class _Parser(argparse.ArgumentParser):
    """argparse, except that `--wait-for-decision` takes the next word as its TIMEOUT only if
    that word is a duration: `run --wait-for-decision FILE` leaves FILE to be the file."""

    def parse_known_args(
        self, args: Iterable[str] | None = None, namespace: Any = None
    ) -> tuple[Any, list[str]]:
        given = list(sys.argv[1:] if args is None else args)
        return super().parse_known_args(_bare_wait_option(given), namespace)


def _bare_wait_option(args: list[str]) -> list[str]:
    """`--wait-for-decision` (or a prefix argparse would take for it) not followed by a
    duration becomes `--wait-for-decision=forever`, so it cannot swallow a positional."""
    out: list[str] = []
    for position, word in enumerate(args):
        if word == "--":
            return out + args[position:]
        following = args[position + 1] if position + 1 < len(args) else None
        takes_value = following is not None and (
            following == FOREVER or _DURATION.fullmatch(following) is not None
        )
        if len(word) >= len("--wait") and WAIT_OPTION.startswith(word) and not takes_value:
            out.append(f"{WAIT_OPTION}={FOREVER}")
        else:
            out.append(word)
    return out


def _handler(module: str, function: str) -> Any:
    """Import a command's module only when that command runs."""

    def call(args: argparse.Namespace) -> int:
        import importlib

        result: int = getattr(importlib.import_module(module), function)(args)
        return result

    return call


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 1, got {text!r}")
    return value


def _wait_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        WAIT_OPTION,
        nargs="?",
        const=FOREVER,
        default=None,
        metavar="TIMEOUT",
        help="when a step needs its operator (on_failure: pause, an approval gate), wait for "
        "`tempeh decide`/`tempeh approve` from another terminal, for TIMEOUT (e.g. 30m; "
        "default: forever); exit 5 if nobody answers in time. The word after it is taken as "
        "TIMEOUT only if it is a duration, so it may come before FILE",
    )


def _selection_options(p: argparse.ArgumentParser) -> None:
    """Plan, pick, apply: `--only` and `--skip` toggle steps off before a run starts."""
    p.add_argument(
        "--only",
        action="append",
        default=[],
        metavar="A,B",
        help="run only these steps (a fan-out step: all its instances; or one instance such as "
        "'deploy[eu-1]') and everything they need; the others end skipped, not selected "
        "(repeatable)",
    )
    p.add_argument(
        "--skip",
        action="append",
        default=[],
        metavar="C",
        help="toggle these steps off, with everything that depends on them (their subtree); "
        "they end skipped, not selected, and do not fail the run (repeatable; A,B for several)",
    )


def _driving_options(p: argparse.ArgumentParser) -> None:
    """The options of every command that drives a run (`run`, `resume`)."""
    p.add_argument("--headless", action="store_true", help="no application (the default for now)")
    p.add_argument("--max-concurrency", type=_positive, metavar="N", help="steps at once")
    p.add_argument(
        "--on-failure",
        choices=["pause", "rollback", "continue", "abort"],
        help="what a step failing for good does (default: the workflow's on_failure)",
    )
    p.add_argument(
        "--approve", action="append", default=[], metavar="STEP", help="approve this gate"
    )
    p.add_argument("--json", action="store_true", help="one JSON event per line")
    _wait_option(p)


def build_parser() -> argparse.ArgumentParser:
    db_help = "the SQLite store (default: $TEMPEH_DB, else $XDG_STATE_HOME/tempeh/tempeh.db)"
    common = _Parser(add_help=False)
    # before or after the command: `tempeh --db P runs` and `tempeh runs --db P`
    common.add_argument("--db", metavar="PATH", default=argparse.SUPPRESS, help=db_help)
    params = _Parser(add_help=False)
    params.add_argument(
        "-p",
        "--param",
        dest="params",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="set a workflow param (repeatable)",
    )

    parser = _Parser(
        prog="tempeh",
        description="Run multi-step deployment workflows as a DAG: in parallel, retried, "
        "checkpointed, rolled back.",
        epilog="Exit codes: 0 ok, 1 run failed, 2 invalid input, 3 failed and rolled back, "
        "4 rollback failed, 5 decision timed out, 130 interrupted.",
    )
    from tempeh_tui import __version__

    parser.add_argument("--version", action="version", version=f"tempeh {__version__}")
    parser.add_argument("--db", metavar="PATH", help=db_help)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser(
        "validate",
        parents=[common],
        help="check workflow files",
        description="Check workflow files; print 'ok' per good file and FILE:LINE:COL: problem "
        "per problem. Exit 2 if any file has a problem.",
    )
    p.add_argument("files", nargs="+", metavar="FILE")
    p.add_argument("--json", action="store_true", help="print the results as JSON")
    p.set_defaults(handler=_handler("tempeh_tui.cli.definition", "validate"))

    p = sub.add_parser(
        "plan",
        parents=[common, params],
        help="dry run: waves, critical path, claims, decisions",
        description="Show what a run would do: parallel groups, critical path, resource claims, "
        "fan-out expansions, conditions decided at plan time and optimization hints.",
    )
    p.add_argument("file", metavar="FILE")
    p.add_argument("--json", action="store_true", help="print the plan as JSON")
    p.add_argument(
        "--out",
        metavar="PLAN",
        help="also save the plan (JSON) to this file, for `tempeh run --plan PLAN`",
    )
    _selection_options(p)
    p.set_defaults(handler=_handler("tempeh_tui.cli.definition", "plan"))

    p = sub.add_parser(
        "run",
        parents=[common, params],
        help="run a workflow",
        description="Run a workflow, checkpointed to the store. Headless for now: a live view "
        "on a terminal, plain lines otherwise, JSON lines with --json. With --plan, run exactly "
        "a plan saved by `tempeh plan FILE --out PLAN` (and possibly edited: units removed from "
        'its groups, or set to "selected": false, are not run), with the workflow file and '
        "params it was planned with; refused (exit 2) if the workflow changed since.",
    )
    p.add_argument("file", metavar="FILE", nargs="?", help="the workflow (or give --plan)")
    p.add_argument(
        "--plan",
        metavar="PLAN",
        help="run a saved plan (from `tempeh plan FILE --out PLAN`) instead of FILE",
    )
    _selection_options(p)
    p.add_argument("--yes", action="store_true", help="approve every approval gate")
    _driving_options(p)
    p.set_defaults(handler=_handler("tempeh_tui.cli.run", "run"))

    p = sub.add_parser(
        "resume",
        parents=[common],
        help="continue a run from its last checkpoint",
        description="Continue a run with the definition and params stored with it. Before "
        "acting, lists per step: reuse, re-run or in doubt, and why.",
    )
    p.add_argument("run", metavar="RUN", help="a run id (or a unique prefix)")
    p.add_argument(
        "--yes",
        action="store_true",
        help="re-run in-doubt steps that are not idempotent; approve every approval gate",
    )
    _driving_options(p)
    p.set_defaults(handler=_handler("tempeh_tui.cli.run", "resume"))

    p = sub.add_parser(
        "graph",
        parents=[common],
        help="print the dependency graph",
        description="Print a workflow's dependency graph: as text (the default), Mermaid or DOT.",
    )
    p.add_argument("file", metavar="FILE")
    p.add_argument(
        "--format", choices=["mermaid", "dot", "text"], default="text", help="default: text"
    )
    p.set_defaults(handler=_handler("tempeh_tui.cli.definition", "graph"))

    p = sub.add_parser(
        "runs",
        parents=[common],
        help="the history of runs, newest first",
        description="List the stored runs, newest first.",
    )
    p.add_argument("--json", action="store_true", help="print a list of run objects")
    p.add_argument(
        "--limit", type=_positive, default=20, metavar="N", help="at most N runs (default 20)"
    )
    p.set_defaults(handler=_handler("tempeh_tui.cli.history", "runs"))

    p = sub.add_parser(
        "show",
        parents=[common],
        help="one run: its steps, attempts and outputs",
        description="Show one stored run: its steps with status, attempts, exit code, error "
        "class, duration and outputs. RUN may be any unique prefix of a run id.",
    )
    p.add_argument("run", metavar="RUN")
    p.add_argument("--json", action="store_true", help="print the run as JSON")
    p.set_defaults(handler=_handler("tempeh_tui.cli.history", "show"))

    p = sub.add_parser(
        "logs",
        parents=[common],
        help="a run's stored log lines",
        description="Print a run's stored log lines in order, each prefixed with its step when "
        "showing the whole run. STEP selects one step (with all its fan-out instances) or one "
        "instance such as 'deploy[eu-1]'.",
    )
    p.add_argument("run", metavar="RUN")
    p.add_argument("step", metavar="STEP", nargs="?")
    p.add_argument(
        "-f", "--follow", action="store_true", help="keep printing new lines until the run ends"
    )
    p.set_defaults(handler=_handler("tempeh_tui.cli.history", "logs"))

    p = sub.add_parser(
        "gc",
        parents=[common],
        help="remove old runs with their logs",
        description="Remove old runs with their steps, attempts, logs and events. A run goes if "
        "nothing happened in it for --older-than and it is not among the newest --keep runs of "
        "its workflow (given both, a run must meet both; given neither: --older-than 30d). A run "
        "that a live process drives (running or paused, its lease held) is never removed.",
    )
    p.add_argument(
        "--keep",
        type=int,
        metavar="N",
        help="keep the newest N runs of each workflow (counted per workflow name)",
    )
    p.add_argument(
        "--older-than",
        metavar="AGE",
        help="remove runs idle for longer than AGE, e.g. 30d, 12h, 90m (default: 30d when "
        "--keep is not given)",
    )
    p.add_argument("--dry-run", action="store_true", help="only say what would be removed")
    p.add_argument("--json", action="store_true", help="print what was removed as JSON")
    p.set_defaults(handler=_handler("tempeh_tui.cli.history", "gc"))

    p = sub.add_parser(
        "rollback",
        parents=[common],
        help="roll a run back, all of it or some steps",
        description="Undo what a run did: each succeeded step's `rollback`, in reverse "
        "dependency order, independent ones in parallel. Prints the plan first; runs it only "
        "with --yes. --steps rolls back those steps and the succeeded steps that depend on "
        "them. Exit 0 when the rollback completed, 4 when a rollback failed.",
    )
    p.add_argument("run", metavar="RUN", help="a run id (or a unique prefix)")
    p.add_argument(
        "--steps",
        metavar="A,B",
        help="roll back only these steps (a fan-out step: all its instances) and their dependents",
    )
    p.add_argument("--plan", action="store_true", help="only print the plan")
    p.add_argument("--yes", action="store_true", help="run the plan without asking")
    p.add_argument("--headless", action="store_true", help="no application (the default for now)")
    p.add_argument("--json", action="store_true", help="the plan as JSON; one JSON event per line")
    p.set_defaults(handler=_handler("tempeh_tui.cli.rollback", "rollback"))

    p = sub.add_parser(
        "decide",
        parents=[common],
        help="answer a run waiting for a decision on a failed step",
        description="Answer a step that failed under on_failure: pause in a run started with "
        "--wait-for-decision: retry it (with -e/-p: with changed env or params for that run "
        "of the step only), skip it (its dependents run), roll the run back (prints the "
        "rollback plan; needs --yes, or a y on a terminal), or abort. skip, rollback and abort "
        "also refuse an approval gate that waits (tempeh approve says yes). Who answered, when, "
        "and what a retry changed go into the run's history (tempeh show). Exit 2 if that step "
        "waits for no decision, the answer is refused or a rollback is not confirmed.",
    )
    p.add_argument("run", metavar="RUN", help="a run id (or a unique prefix)")
    p.add_argument("step", metavar="STEP")
    p.add_argument("decision", choices=["retry", "skip", "rollback", "abort"])
    p.add_argument(
        "-e",
        "--env",
        dest="env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="retry only: set this environment variable for the step's next run, over the "
        "workflow's and the step's env (repeatable; not a secret, not TEMPEH_*: the answer is "
        "stored and shown in clear)",
    )
    p.add_argument(
        "-p",
        "--param",
        dest="params",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="retry only: change this workflow param for the step's next run; other steps "
        "keep the run's value (repeatable)",
    )
    p.add_argument(
        "--yes",
        action="store_true",
        help="rollback only: roll back as the printed plan says without asking",
    )
    p.set_defaults(handler=_handler("tempeh_tui.cli.decide", "decide"))

    p = sub.add_parser(
        "approve",
        parents=[common],
        help="approve a run's waiting approval gate",
        description="Approve a step's approval gate (`confirm`) that a run started with "
        "--wait-for-decision waits on; who and when is recorded. To say no: tempeh decide RUN "
        "STEP skip|abort|rollback. Exit 2 if that step waits for no approval.",
    )
    p.add_argument("run", metavar="RUN", help="a run id (or a unique prefix)")
    p.add_argument("step", metavar="STEP")
    p.set_defaults(handler=_handler("tempeh_tui.cli.decide", "approve"))
    return parser
