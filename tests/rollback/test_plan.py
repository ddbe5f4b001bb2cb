"""Rollback plans: reverse dependency order, parallel groups, partial plans and their reasons."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tempeh_tui.engine.fake_executor import FakeExecutor, FakeOutcome
from tempeh_tui.engine.rollback import RollbackManager, RollbackPlan, RollbackRefused
from tempeh_tui.store import SqliteStore

from .support import ledger_step, run_workflow, write_workflow

pytestmark = pytest.mark.anyio


async def plan_for(
    tmp_path: Path,
    steps: list[dict[str, Any]],
    requested: list[str] | str | None = None,
    executor: FakeExecutor | None = None,
) -> RollbackPlan:
    db = tmp_path / "t.db"
    result = await run_workflow(db, write_workflow(tmp_path, steps), executor=executor)
    async with SqliteStore(db) as store:
        return await RollbackManager(store).plan_rollback(result.run_id, requested)


async def test_a_chain_is_rolled_back_last_step_first(tmp_path: Path) -> None:
    ledger = tmp_path / "ledger"
    plan = await plan_for(
        tmp_path,
        [
            ledger_step("build", ledger),
            ledger_step("migrate", ledger, needs=["build"]),
            ledger_step("deploy", ledger, needs=["migrate"]),
        ],
    )

    assert plan.order == ("deploy", "migrate", "build")
    assert plan.groups == (("deploy",), ("migrate",), ("build",))
    assert set(plan.why.values()) == {"requested"}


async def test_a_diamond_rolls_back_its_two_branches_together_then_the_root(
    tmp_path: Path,
) -> None:
    ledger = tmp_path / "ledger"
    plan = await plan_for(
        tmp_path,
        [
            ledger_step("root", ledger),
            ledger_step("left", ledger, needs=["root"]),
            ledger_step("right", ledger, needs=["root"]),
            ledger_step("join", ledger, needs=["left", "right"]),
        ],
    )

    assert plan.groups[0] == ("join",)
    assert set(plan.groups[1]) == {"left", "right"}
    assert plan.groups[2] == ("root",)
    assert plan.order[0] == "join"
    assert plan.order[-1] == "root"


async def test_fan_out_instances_roll_back_before_what_they_needed(tmp_path: Path) -> None:
    ledger = tmp_path / "ledger"
    plan = await plan_for(
        tmp_path,
        [
            ledger_step("prepare", ledger),
            ledger_step("deploy", ledger, needs=["prepare"], for_each=["eu-1", "us-1"]),
            ledger_step("smoke", ledger, needs=["deploy"]),
        ],
    )

    assert plan.groups == (("smoke",), ("deploy[us-1]", "deploy[eu-1]"), ("prepare",))
    assert plan.unit("prepare").after == ("smoke", "deploy[us-1]", "deploy[eu-1]")


async def test_a_unit_waits_for_dependents_reached_through_a_step_without_rollback(
    tmp_path: Path,
) -> None:
    ledger = tmp_path / "ledger"
    plan = await plan_for(
        tmp_path,
        [
            ledger_step("db", ledger),
            ledger_step("notify", ledger, needs=["db"], rollback=False),
            ledger_step("app", ledger, needs=["notify"]),
        ],
    )

    assert plan.groups == (("app",), ("db",))
    assert plan.nothing_to_undo == ("notify",)


async def test_partial_rollback_adds_dependents_and_says_why(tmp_path: Path) -> None:
    ledger = tmp_path / "ledger"
    plan = await plan_for(
        tmp_path,
        [
            ledger_step("config", ledger),
            ledger_step("migrate", ledger, needs=["config"]),
            ledger_step("deploy", ledger, needs=["migrate"]),
            ledger_step("announce", ledger, needs=["deploy"]),
            ledger_step("docs", ledger),
        ],
        ["migrate"],
    )

    assert plan.order == ("announce", "deploy", "migrate")
    assert plan.why == {
        "announce": "added: it needs deploy, which is rolled back",
        "deploy": "added: it needs migrate, which is rolled back",
        "migrate": "requested",
    }
    assert plan.requested == ("migrate",)


async def test_a_fan_out_step_name_means_all_its_instances(tmp_path: Path) -> None:
    ledger = tmp_path / "ledger"
    plan = await plan_for(
        tmp_path,
        [
            ledger_step("prepare", ledger),
            ledger_step("deploy", ledger, needs=["prepare"], for_each=["a", "b"]),
            ledger_step("smoke", ledger, needs=["deploy"]),
        ],
        "deploy",  # one name, as in `plan_rollback(run_id, failed_step)`
    )

    assert set(plan.order) == {"deploy[a]", "deploy[b]", "smoke"}
    assert plan.why["smoke"] == "added: it needs deploy[a], which is rolled back"


async def test_steps_without_a_rollback_are_listed_as_nothing_to_undo(tmp_path: Path) -> None:
    ledger = tmp_path / "ledger"
    plan = await plan_for(
        tmp_path,
        [
            ledger_step("lint", ledger, rollback=False),
            ledger_step("deploy", ledger, needs=["lint"]),
        ],
    )

    assert plan.order == ("deploy",)
    assert plan.nothing_to_undo == ("lint",)
    assert plan.to_json()["nothing_to_undo"] == ["lint"]


async def test_an_unknown_step_is_refused_with_a_suggestion(tmp_path: Path) -> None:
    ledger = tmp_path / "ledger"
    with pytest.raises(RollbackRefused, match=r"no step 'migrte' \(did you mean 'migrate'\?\)"):
        await plan_for(tmp_path, [ledger_step("migrate", ledger)], ["migrte"])


async def test_a_step_that_never_ran_is_refused(tmp_path: Path) -> None:
    ledger = tmp_path / "ledger"
    executor = FakeExecutor({"build": [FakeOutcome(exit_code=2)]})
    with pytest.raises(RollbackRefused, match=r"'deploy' did not succeed \(skipped\)"):
        await plan_for(
            tmp_path,
            [ledger_step("build", ledger), ledger_step("deploy", ledger, needs=["build"])],
            ["deploy"],
            executor=executor,
        )


async def test_naming_the_failed_step_rolls_back_what_the_run_did(tmp_path: Path) -> None:
    ledger = tmp_path / "ledger"
    executor = FakeExecutor({"check": [FakeOutcome(exit_code=2)]})
    plan = await plan_for(
        tmp_path,
        [
            ledger_step("build", ledger),
            ledger_step("deploy", ledger, needs=["build"]),
            ledger_step("check", ledger, needs=["deploy"]),
        ],
        "check",
        executor=executor,
    )

    assert plan.order == ("deploy", "build")
    assert plan.why["deploy"] == "requested: the run is rolled back after check failed"


async def test_a_step_added_through_one_with_nothing_to_undo_says_so(tmp_path: Path) -> None:
    """`m` has no rollback: `z` is added because it needs `m`, which needs `a`. The reason
    used to say that `m` is rolled back, while the same plan listed it as nothing to undo."""
    ledger = tmp_path / "ledger"
    plan = await plan_for(
        tmp_path,
        [
            ledger_step("a", ledger),
            ledger_step("m", ledger, needs=["a"], rollback=False),
            ledger_step("z", ledger, needs=["m"]),
        ],
        ["a"],
    )

    assert plan.why == {"z": "added: it needs m, which needs a (rolled back)", "a": "requested"}
    assert plan.nothing_to_undo == ("m",)


@pytest.mark.parametrize(
    ("middle", "fails"),
    [
        ({"continue_on_error": True}, True),  # failed, tolerated
        ({"when": "false"}, False),  # skipped
    ],
)
async def test_partial_rollback_adds_dependents_reached_through_a_step_that_did_nothing(
    tmp_path: Path, middle: dict[str, Any], fails: bool
) -> None:
    """`app` needs `notify`, which needs `db`; `notify` failed (tolerated) or was skipped.
    Rolling back `db` must take `app` along: it left `app`, built on `db`, in place."""
    ledger = tmp_path / "ledger"
    plan = await plan_for(
        tmp_path,
        [
            ledger_step("db", ledger),
            ledger_step("notify", ledger, needs=["db"], rollback=False, **middle),
            ledger_step("app", ledger, needs=["notify"]),
        ],
        ["db"],
        FakeExecutor({"notify": [FakeOutcome(exit_code=1)]} if fails else {}),
    )

    assert plan.order == ("app", "db")
    assert plan.why == {
        "app": "added: it needs notify, which needs db (rolled back)",
        "db": "requested",
    }
