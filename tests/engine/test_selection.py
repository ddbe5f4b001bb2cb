"""`execute_workflow(select=...)`: units toggled off before the run, kept off by resume."""

from __future__ import annotations

import textwrap

import pytest

from tempeh_tui.definition import parse_workflow
from tempeh_tui.definition.models import Workflow
from tempeh_tui.engine.engine import WorkflowEngine
from tempeh_tui.engine.fake_executor import FakeExecutor, FakeOutcome
from tempeh_tui.engine.resume import ResumePlan
from tempeh_tui.events import RunStatus, StepStatus
from tempeh_tui.graph import Selection
from tempeh_tui.store.sqlite import SqliteStore
from tests.engine.engine_support import stop_when

pytestmark = pytest.mark.anyio

RELEASE = """
name: release
steps:
  - {name: build, run: build}
  - {name: migrate, needs: [build], run: migrate}
  - {name: deploy, needs: [migrate], run: deploy}
  - {name: docs, run: docs}
  - {name: publish, needs: [docs], run: publish}
"""


@pytest.fixture
def release() -> Workflow:
    return parse_workflow(textwrap.dedent(RELEASE), "release.yaml")


async def test_toggled_off_units_are_skipped_not_failed_and_recorded_with_the_run(
    release: Workflow, store: SqliteStore
) -> None:
    fake = FakeExecutor()

    result = await WorkflowEngine(fake, store).execute_workflow(
        release, select=Selection(skip=["docs"])
    )

    assert result.status is RunStatus.SUCCEEDED
    assert fake.names() == ["build", "migrate", "deploy"]
    assert result["publish"].status is StepStatus.SKIPPED
    assert result["publish"].reason == (
        "not selected in the plan (needs 'docs', which is not selected)"
    )
    stored = await store.get_run(result.run_id)
    assert stored.not_selected == {
        "docs": "not selected in the plan (skip docs)",
        "publish": "not selected in the plan (needs 'docs', which is not selected)",
    }


async def test_a_unit_left_out_of_a_plan_counts_as_done_for_what_still_runs(
    release: Workflow, store: SqliteStore
) -> None:
    fake = FakeExecutor()
    kept = frozenset({"build", "deploy", "docs", "publish"})

    result = await WorkflowEngine(fake, store).execute_workflow(
        release, select=Selection(units=kept, plan="p.json")
    )

    assert result.succeeded
    assert set(fake.names()) == kept
    assert result["migrate"].reason == "not selected in the plan (p.json)"


async def test_a_unit_left_out_keeps_its_place_in_the_order(
    release: Workflow, store: SqliteStore
) -> None:
    # build → migrate (left out) → deploy: deploy still waits for build, and a failed build
    # still keeps deploy from running
    kept = frozenset({"build", "deploy"})
    slow = FakeExecutor({"build": [FakeOutcome(duration=0.2)]})
    result = await WorkflowEngine(slow, store).execute_workflow(
        release, select=Selection(units=kept, plan="p.json")
    )
    assert result.succeeded
    assert slow.names() == ["build", "deploy"]  # in order: deploy began after build ended
    assert result["deploy"].started_at is not None
    assert result["build"].ended_at is not None
    assert result["deploy"].started_at >= result["build"].ended_at

    failing = FakeExecutor({"build": [FakeOutcome(exit_code=1)]})
    failed = await WorkflowEngine(failing, store).execute_workflow(
        release, select=Selection(units=kept, plan="p.json"), on_failure="continue"
    )
    assert failing.names() == ["build"]
    assert failed["deploy"].status is StepStatus.SKIPPED
    assert failed["migrate"].reason == "needs 'build', which ended failed"


async def test_resume_never_runs_what_was_toggled_off(
    release: Workflow, store: SqliteStore
) -> None:
    first = FakeExecutor({"migrate": [FakeOutcome(exit_code=1)]})
    failed = await WorkflowEngine(first, store).execute_workflow(
        release, select=Selection(only=["deploy"])
    )
    assert failed.status is RunStatus.FAILED

    again = FakeExecutor()
    plans: list[ResumePlan] = []
    resumed = await WorkflowEngine(again, store).resume(failed.run_id, explain=plans.append)

    assert resumed.succeeded
    assert again.names() == ["migrate", "deploy"]
    decisions = {d.name: d.action for d in plans[0].decisions}
    assert decisions["docs"] == decisions["publish"] == "not selected"
    assert resumed["docs"].status is StepStatus.SKIPPED


async def test_resume_after_a_crash_keeps_toggled_off_units_off(
    release: Workflow, store: SqliteStore
) -> None:
    fake = FakeExecutor({"migrate": [FakeOutcome(duration=60)]})
    engine = WorkflowEngine(fake, store)
    run_ids: list[str] = []
    engine.subscribe(lambda e: run_ids.append(e.run_id))
    await stop_when(
        lambda: engine.execute_workflow(release, select=Selection(skip=["docs"])),
        lambda: "migrate" in fake.names(),
    )

    again = FakeExecutor()
    resumed = await WorkflowEngine(again, store).resume(run_ids[0])

    assert resumed.succeeded
    assert again.names() == ["migrate", "deploy"]
    assert resumed["publish"].status is StepStatus.SKIPPED
