"""Helpers of the store tests: a run made and driven through events, as the engine would."""

from __future__ import annotations

from typing import Any

from tempeh_tui.events import EventBus, RunStatus
from tempeh_tui.store import RunRecord, Store


async def start_run(
    store: Store,
    run_id: str,
    workflow: str = "shop-release",
    started_at: float | None = None,
    definition: dict[str, Any] | None = None,
) -> EventBus:
    """Create the run in `store` and return a bus whose every event the store records."""
    await store.create_run(
        RunRecord(
            id=run_id,
            workflow=workflow,
            status=RunStatus.RUNNING,
            definition=definition
            or {"name": workflow, "steps": [{"name": "build", "run": "make"}]},
            definition_hash="sha256:test",
            params={"version": "1.4.2", "note": "déjà vu"},
            source="deploy.yaml",
            started_at=started_at,
        )
    )
    bus = EventBus(run_id)
    bus.subscribe(store.record)
    return bus


def step_rows(run: Any) -> dict[str, Any]:
    """A run's steps by name."""
    return {step.name: step for step in run.steps}
