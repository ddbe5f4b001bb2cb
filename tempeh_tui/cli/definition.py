"""`tempeh validate`, `plan` and `graph`: the commands that read a workflow and run nothing."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tempeh_tui.definition import load_workflow
from tempeh_tui.definition.params import parse_param_assignments
from tempeh_tui.errors import WorkflowError

if TYPE_CHECKING:
    from tempeh_tui.graph import Plan

__all__ = ["graph", "plan", "validate"]


def _print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False) + "\n")


def validate(args: argparse.Namespace) -> int:
    results = []
    for file in args.files:
        try:
            load_workflow(Path(file))
        except WorkflowError as exc:
            results.append((file, exc.problems))
        else:
            results.append((file, ()))
    if args.json:
        _print_json(
            [
                {
                    "file": file,
                    "ok": not problems,
                    "problems": [
                        {"line": p.line, "col": p.col, "path": p.path, "message": p.message}
                        for p in problems
                    ],
                }
                for file, problems in results
            ]
        )
    else:
        for file, problems in results:
            if problems:
                for problem in problems:
                    print(problem, file=sys.stderr)
            else:
                print(f"{file}: ok")
    return 2 if any(problems for _, problems in results) else 0


def plan(args: argparse.Namespace) -> int:
    from tempeh_tui.cli.selection import option_names, secrets_here
    from tempeh_tui.engine.secrets import refuse_secret_params, secrets_masked
    from tempeh_tui.graph import Selection, build_plan

    workflow = load_workflow(Path(args.file))
    selection = Selection(
        only=option_names("--only", args.only), skip=option_names("--skip", args.skip)
    )
    secrets = secrets_here(workflow)
    with secrets_masked(secrets):  # a plan is printed and saved: no secret in it, nor echoed
        params = parse_param_assignments(args.params)
        refuse_secret_params(params, secrets)
        result = build_plan(workflow, params, selection)
    if any(step.cache is not None for step in workflow.steps):
        result = _with_cache_hits(result, args.db)
    data = result.to_json()
    if args.out:
        text = json.dumps(data, indent=2, ensure_ascii=False) + "\n"
        try:
            Path(args.out).write_text(text, encoding="utf-8")
        except OSError as exc:
            print(
                f"tempeh: cannot save the plan to {args.out}: {exc.strerror or exc}",
                file=sys.stderr,
            )
            return 2
    if args.json:
        _print_json(data)
    else:
        from tempeh_tui.cli.plan_view import print_plan

        print_plan(result)
        if args.out:
            print(f"plan saved to {args.out}")
    return 0


def _with_cache_hits(result: Plan, db: str | None) -> Plan:
    """The plan with the cache hits the store holds (SPEC 6). A store that does not exist yet
    has none: it is not created for a dry run."""
    import anyio

    from tempeh_tui.engine.plan_cache import plan_cache_hits
    from tempeh_tui.store import SqliteStore, StoreError, default_store_path

    path = default_store_path(db)
    if not path.exists():
        return anyio.run(plan_cache_hits, result, None)

    async def look_up() -> Plan:
        async with SqliteStore(path) as store:
            return await plan_cache_hits(result, store)

    try:
        return anyio.run(look_up)
    except StoreError as exc:  # a dry run still plans; it only cannot tell the hits
        print(f"tempeh: cache hits not shown: {exc}", file=sys.stderr)
        return anyio.run(plan_cache_hits, result, None)


def graph(args: argparse.Namespace) -> int:
    from tempeh_tui.graph import build_graph
    from tempeh_tui.graph.render import render_graph

    workflow = load_workflow(Path(args.file))
    sys.stdout.write(render_graph(build_graph(workflow), args.format))
    return 0
