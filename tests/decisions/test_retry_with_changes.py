"""Retry with changed env and params (SPEC 5.2, 8): only the retried step's next run sees them,
they reach its process through environment variables, and the run's history keeps them."""

from __future__ import annotations

import functools
import sqlite3
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import pytest

from tempeh_tui.definition import parse_workflow
from tempeh_tui.engine.decisions import RetryValuesRefused
from tempeh_tui.engine.engine import WorkflowEngine
from tempeh_tui.engine.fake_executor import FakeCall, FakeExecutor, FakeOutcome
from tempeh_tui.engine.resume import ResumePlan
from tempeh_tui.events import DecisionAnswered, RunStatus
from tempeh_tui.store.base import DecisionRecord
from tempeh_tui.store.memory import MemoryStore
from tempeh_tui.store.schema import APPLICATION_ID, MIGRATIONS
from tempeh_tui.store.sqlite import SqliteStore

from .support import ENVIRON, RUN_ID, no_wait, run_and_answer, waiting_question

pytestmark = pytest.mark.anyio

RELEASE = """
    name: release
    on_failure: pause
    params:
      version: {default: "1.0"}
      tier: {default: small, choices: [small, large]}
    env:
      APP_VERSION: "v{{ params.version }}"
    secrets: [DB_PASSWORD]
    steps:
      - name: migrate
        run: migrate --to "{{ params.version }}" --tier {{ params.tier }}
        env: {LOG: info}
        rollback: migrate --down-from {{ params.version }}
      - name: deploy
        needs: [migrate]
        run: deploy {{ params.version }}
      - name: smoke
        needs: [deploy]
        run: smoke
"""

WITH_SECRET = {**ENVIRON, "DB_PASSWORD": "hunter2-hunter2"}


def calls(fake: FakeExecutor, name: str) -> list[FakeCall]:
    return [c for c in fake.calls if c.name == name]


def retry_with(
    env: dict[str, str] | None = None, params: dict[str, str] | None = None
) -> Callable[[WorkflowEngine, DecisionRecord], Any]:
    async def answer(engine: WorkflowEngine, question: DecisionRecord) -> None:
        await engine.decide(RUN_ID, question.unit, "retry", by="tester", env=env, params=params)

    return answer


async def test_the_retried_step_alone_runs_with_the_changed_values(tmp_path: Path) -> None:
    fake = FakeExecutor({"migrate": [FakeOutcome(exit_code=1), FakeOutcome()]})
    async with SqliteStore(tmp_path / "tempeh.db") as store:
        run = await run_and_answer(
            RELEASE,
            fake,
            store,
            retry_with(params={"version": "1.0.1", "tier": "large"}, env={"LOG": "debug"}),
            environ=WITH_SECRET,
            wait_for_decision=True,
        )
        record = await store.get_run(RUN_ID)
    assert run.result.status is RunStatus.SUCCEEDED
    first, second = calls(fake, "migrate")
    assert first.command == second.command  # values are never part of the command
    assert second.command == 'migrate --to "${TEMPEH_X1}" --tier "${TEMPEH_X2}"'
    assert (first.env["TEMPEH_X1"], first.env["TEMPEH_X2"]) == ("1.0", "small")
    assert (second.env["TEMPEH_X1"], second.env["TEMPEH_X2"]) == ("1.0.1", "large")
    assert first.env["TEMPEH_PARAM_VERSION"] == "1.0"
    assert second.env["TEMPEH_PARAM_VERSION"] == "1.0.1"
    assert (first.env["LOG"], second.env["LOG"]) == ("info", "debug")  # over the step's env
    assert second.env["APP_VERSION"] == "v1.0.1"  # the workflow env, rendered again
    assert second.env["DB_PASSWORD"] == "hunter2-hunter2"
    (deploy,) = calls(fake, "deploy")  # the dependent keeps the run's values
    assert deploy.env["TEMPEH_X1"] == "1.0"
    assert deploy.env["TEMPEH_PARAM_VERSION"] == "1.0"
    assert deploy.env["APP_VERSION"] == "v1.0"
    assert "LOG" not in deploy.env
    # the run's history says who changed what
    (question,) = record.decisions
    assert (question.answer, question.answered_by) == ("retry", "tester")
    assert question.params == {"version": "1.0.1", "tier": "large"}
    assert question.env == {"LOG": "debug"}
    assert question.to_json()["params"] == {"version": "1.0.1", "tier": "large"}
    assert record.params["version"] == "1.0"  # the run's own values are unchanged
    (answered,) = [e for e in run.events if isinstance(e, DecisionAnswered)]
    assert (answered.env, answered.params) == ({"LOG": "debug"}, question.params)


async def test_a_later_retry_without_changes_goes_back_to_the_runs_values() -> None:
    fake = FakeExecutor({"migrate": [FakeOutcome(exit_code=1)] * 2 + [FakeOutcome()]})
    answers = iter([{"params": {"version": "2.0"}}, {}])

    async def answer(engine: WorkflowEngine, question: DecisionRecord) -> None:
        changes = next(answers)
        await engine.decide(
            RUN_ID, "migrate", "retry", env=changes.get("env"), params=changes.get("params")
        )

    run = await run_and_answer(
        RELEASE, fake, MemoryStore(), answer, environ=WITH_SECRET, times=2, wait_for_decision=True
    )
    assert run.result.status is RunStatus.SUCCEEDED
    versions = [c.env["TEMPEH_PARAM_VERSION"] for c in calls(fake, "migrate")]
    assert versions == ["1.0", "2.0", "1.0"]


@pytest.mark.parametrize(
    ("decision", "changes", "refused"),
    [
        ("retry", {"env": {"DB_PASSWORD": "x"}}, "a secret cannot be changed"),
        ("retry", {"env": {"TEMPEH_OUTPUT": "/etc/passwd"}}, "TEMPEH_* variables"),
        ("retry", {"env": {"NOT-A-NAME": "x"}}, "not an environment variable name"),
        ("retry", {"params": {"verison": "2"}}, "has no param 'verison' (did you mean 'version'"),
        ("retry", {"params": {"tier": "huge"}}, "'huge' is not one of small, large"),
        ("retry", {"params": {"version": "a\0b"}}, "NUL byte"),
        ("retry", {"env": {"LOG": "debug hunter2-hunter2"}}, "holds secret DB_PASSWORD"),
        ("retry", {"params": {"version": "a[$(touch PWNED)]"}}, "in an array subscript"),
        ("skip", {"env": {"LOG": "debug"}}, "go with retry only, not with skip"),
    ],
)
async def test_what_a_retry_may_not_change_is_refused_and_the_step_still_waits(
    decision: str, changes: dict[str, dict[str, str]], refused: str
) -> None:
    store = MemoryStore()
    fake = FakeExecutor({"migrate": [FakeOutcome(exit_code=1), FakeOutcome()]})
    problems: list[str] = []

    async def answer(engine: WorkflowEngine, question: DecisionRecord) -> None:
        with pytest.raises(RetryValuesRefused) as caught:
            await engine.decide(
                RUN_ID, "migrate", decision, env=changes.get("env"), params=changes.get("params")
            )
        problems.append(str(caught.value))
        assert [d.waiting for d in await store.decisions(RUN_ID)] == [True]
        await engine.decide(RUN_ID, "migrate", "retry")

    run = await run_and_answer(
        RELEASE, fake, store, answer, environ=WITH_SECRET, wait_for_decision=True
    )
    assert run.result.status is RunStatus.SUCCEEDED
    assert refused in problems[0]
    assert [c.env["TEMPEH_PARAM_VERSION"] for c in calls(fake, "migrate")] == ["1.0", "1.0"]


async def test_a_rollback_undoes_the_step_with_the_values_it_ran_with(tmp_path: Path) -> None:
    fake = FakeExecutor(
        {"migrate": [FakeOutcome(exit_code=1), FakeOutcome()], "deploy": [FakeOutcome(exit_code=1)]}
    )
    answers = iter([("retry", {"params": {"version": "1.0.1"}}), ("rollback", {})])

    async def answer(engine: WorkflowEngine, question: DecisionRecord) -> None:
        decision, changes = next(answers)
        await engine.decide(
            RUN_ID, question.unit, decision, env=changes.get("env"), params=changes.get("params")
        )

    async with SqliteStore(tmp_path / "tempeh.db") as store:
        run = await run_and_answer(
            RELEASE, fake, store, answer, environ=WITH_SECRET, times=2, wait_for_decision=True
        )
    assert run.result.status is RunStatus.ROLLED_BACK
    (undo,) = [c for c in calls(fake, "migrate") if c.command.startswith("migrate --down")]
    assert undo.env["TEMPEH_X1"] == "1.0.1"


def _version_4_store(path: Path) -> None:
    """A store as tempeh wrote it before a retry could change values: one answered question."""
    with sqlite3.connect(path) as db:
        for script in MIGRATIONS[:4]:
            db.executescript(script)
        db.executescript(f"PRAGMA user_version = 4; PRAGMA application_id = {APPLICATION_ID};")
        db.execute(
            "INSERT INTO runs (id, workflow, status, definition, definition_hash, created_at)"
            " VALUES ('old-run', 'shop', 'failed', '{}', '', 1.0)"
        )
        db.execute(
            "INSERT INTO decisions (run_id, unit, kind, asked_at, summary, answer, answered_by,"
            " answered_at) VALUES ('old-run', 'migrate', 'failure', 1.0, 'exit code 1',"
            " 'retry', 'alice', 2.0)"
        )
    db.close()


async def test_a_version_4_store_is_migrated_and_its_decisions_changed_nothing(
    tmp_path: Path,
) -> None:
    path = tmp_path / "tempeh.db"
    _version_4_store(path)
    async with SqliteStore(path) as store:
        (old,) = (await store.get_run("old-run")).decisions
        asked = await store.ask_decision(
            DecisionRecord("old-run", "deploy", "failure", asked_at=3.0, summary="exit code 2")
        )
        answered = await store.answer_decision(
            "old-run", "deploy", "failure", "retry", "bob", env={"LOG": "debug"}
        )
        again = await store.decisions("old-run")
    assert (old.answer, old.env, old.params) == ("retry", {}, {})
    assert answered is not None
    assert answered.id == asked
    assert (again[1].env, again[1].params) == ({"LOG": "debug"}, {})
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS) == 8
    db.close()


async def test_a_retried_run_cut_short_by_a_crash_resumes_with_the_same_values(
    tmp_path: Path,
) -> None:
    fake = FakeExecutor({"migrate": [FakeOutcome(exit_code=1), FakeOutcome(duration=60)]})
    async with SqliteStore(tmp_path / "tempeh.db") as store:
        async with SqliteStore(store.path) as own:  # the engine that dies, and its store
            engine = WorkflowEngine(fake, own, environ=WITH_SECRET, sleep=no_wait)
            workflow = parse_workflow(textwrap.dedent(RELEASE), "release.yaml")
            async with anyio.create_task_group() as tg:
                tg.start_soon(
                    functools.partial(
                        engine.execute_workflow, workflow, run_id=RUN_ID, wait_for_decision=True
                    )
                )
                await waiting_question(own, RUN_ID)
                await engine.decide(RUN_ID, "migrate", "retry", params={"version": "1.0.1"})
                with anyio.fail_after(10):
                    while len(calls(fake, "migrate")) < 2:  # noqa: ASYNC110 - nothing to wait on
                        await anyio.sleep(0.01)
                await own.flush()
                own.fence(RUN_ID)  # it dies during the retried run: it writes nothing more
                tg.cancel_scope.cancel()

        again = FakeExecutor()
        plans: list[ResumePlan] = []
        resumed = await WorkflowEngine(again, store, environ=WITH_SECRET).resume(
            RUN_ID, explain=plans.append
        )
    assert resumed.status is RunStatus.SUCCEEDED
    why = {d.name: (d.action, d.why) for d in plans[0].decisions}
    assert why["migrate"][0] == "in doubt"
    assert why["migrate"][1].endswith("with the values of its last retry: params version=1.0.1")
    assert "last retry" not in why["deploy"][1]
    assert [(c.name, c.env["TEMPEH_PARAM_VERSION"]) for c in again.calls] == [
        ("migrate", "1.0.1"),
        ("deploy", "1.0"),
        ("smoke", "1.0"),
    ]
