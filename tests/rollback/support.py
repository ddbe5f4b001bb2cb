"""Runs to roll back: real workflow files executed by the engine into a real SQLite store.

Each step's compensation appends its unit's name to a ledger file, so a test can count how
often each one ran (and in which order).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from tempeh_tui.engine.engine import WorkflowEngine
from tempeh_tui.engine.fake_executor import FakeExecutor
from tempeh_tui.engine.results import RunResult
from tempeh_tui.store import SqliteStore

__all__ = ["compensated", "ledger_step", "run_workflow", "write_workflow"]


def ledger_step(
    name: str,
    ledger: Path,
    *,
    needs: Sequence[str] = (),
    rollback: bool = True,
    run: str = "true",
    undo: str | None = None,
    verify: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """A step whose rollback appends its unit's name ($TEMPEH_STEP) to the ledger."""
    step: dict[str, Any] = {"name": name, "run": run, **extra}
    if needs:
        step["needs"] = list(needs)
    if rollback:
        spec: dict[str, Any] = {"run": undo or f'echo "$TEMPEH_STEP" >> "{ledger}"'}
        if verify is not None:
            spec["verify"] = verify
        step["rollback"] = spec
    return step


def write_workflow(tmp_path: Path, steps: list[dict[str, Any]], **top: Any) -> Path:
    """The workflow as a YAML file (JSON is YAML) in `tmp_path`: steps run in that directory."""
    path = tmp_path / "flow.yaml"
    path.write_text(json.dumps({"name": "undo-me", "steps": steps, **top}, indent=1))
    return path


async def run_workflow(
    db: Path,
    flow: Path,
    *,
    fake: bool = True,
    params: Mapping[str, Any] | None = None,
    executor: FakeExecutor | None = None,
) -> RunResult:
    """Execute `flow` into the store at `db` (a fake executor unless `fake` is false)."""
    async with SqliteStore(db) as store:
        engine = WorkflowEngine(executor or (FakeExecutor() if fake else None), store)
        return await engine.execute_workflow(flow, params=params, on_failure="continue")


def compensated(ledger: Path) -> list[str]:
    """The ledger's lines: the units whose compensation ran, in order."""
    return ledger.read_text().split() if ledger.exists() else []
