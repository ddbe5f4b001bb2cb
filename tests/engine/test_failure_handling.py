"""What failures do: classes, retries with backoff, timeouts, skips, continue and abort."""

from __future__ import annotations

import pytest

from tempeh_tui.engine.fake_executor import FakeExecutor, FakeOutcome
from tempeh_tui.events import RunFinished, RunStatus, StepRetrying, StepStatus
from tests.engine.engine_support import run_yaml

pytestmark = pytest.mark.anyio

FAIL = FakeOutcome(exit_code=1)
TEMPFAIL = FakeOutcome(exit_code=75)
OK = FakeOutcome()


async def test_a_transient_failure_is_retried_with_exponential_backoff() -> None:
    fake = FakeExecutor({"fetch": [TEMPFAIL, TEMPFAIL, OK]})
    run = await run_yaml(
        """
        name: w
        steps:
          - name: fetch
            run: "true"
            retry: {attempts: 4, delay: 1s, jitter: false}
        """,
        fake,
    )
    assert run.result["fetch"].status is StepStatus.SUCCEEDED
    assert run.result["fetch"].attempts == 3
    assert run.delays == [1.0, 2.0]
    retries = run.of(StepRetrying)
    assert [(r.attempt, r.error_class, r.delay) for r in retries] == [
        (1, "transient", 1.0),
        (2, "transient", 2.0),
    ]


async def test_backoff_is_capped_fixed_and_jittered_as_asked() -> None:
    fake = FakeExecutor({"a": [FAIL], "b": [FAIL], "c": [FAIL]})
    run = await run_yaml(
        """
        name: w
        on_failure: continue
        steps:
          - {name: a, run: "true", retry: {attempts: 4, delay: 10s, max_delay: 15s, jitter: false}}
          - {name: b, run: "true", retry: {attempts: 3, delay: 2s, backoff: fixed, jitter: false}}
          - {name: c, run: "true", retry: {attempts: 2, delay: 4s}}
        """,
        fake,
        max_concurrency=1,
    )
    by_step: dict[str | None, list[float]] = {}
    for retry in run.of(StepRetrying):
        by_step.setdefault(retry.step, []).append(retry.delay)
    assert by_step["a"] == [10.0, 15.0, 15.0]
    assert by_step["b"] == [2.0, 2.0]
    (jittered,) = by_step["c"]
    assert 2.0 <= jittered <= 4.0


async def test_a_permanent_failure_is_never_retried() -> None:
    fake = FakeExecutor({"deploy": [FakeOutcome(exit_code=127)]})
    run = await run_yaml(
        """
        name: w
        steps:
          - {name: deploy, run: "true", retry: {attempts: 5}}
        """,
        fake,
    )
    deploy = run.result["deploy"]
    assert (deploy.status, deploy.attempts, deploy.error_class) == (
        StepStatus.FAILED,
        1,
        "permanent",
    )
    assert run.result.exit_code == 1


async def test_workflow_error_rules_come_before_the_built_ins() -> None:
    fake = FakeExecutor({"a": [FakeOutcome(exit_code=2)], "b": [FakeOutcome(exit_code=75)]})
    run = await run_yaml(
        """
        name: w
        on_failure: continue
        errors:
          - {exit_codes: [2], class: transient, severity: low}
          - {exit_codes: [75], class: permanent, severity: critical}
        steps:
          - {name: a, run: "true", retry: {attempts: 2}}
          - {name: b, run: "true", retry: {attempts: 2}}
        """,
        fake,
    )
    assert run.result["a"].attempts == 2
    assert run.result["a"].error_class == "transient"
    assert (run.result["b"].attempts, run.result["b"].severity) == (1, "critical")


async def test_a_rule_can_classify_by_output() -> None:
    # the line that says why comes well before the end of what the step printed
    said = ["ERROR: Connection reset", *(f"cleanup {i}" for i in range(200))]
    fake = FakeExecutor({"a": [FakeOutcome(exit_code=1, lines=said), OK]})
    run = await run_yaml(
        """
        name: w
        errors:
          - {output: "(?i)connection reset", class: transient}
        steps:
          - {name: a, run: "true", retry: {attempts: 2, classes: [transient]}}
        """,
        fake,
    )
    assert run.result["a"].status is StepStatus.SUCCEEDED
    assert run.result["a"].attempts == 2


async def test_an_output_rule_for_timed_out_does_not_catch_tempehs_own_timeouts() -> None:
    """SPEC 1's example rule matches "timed out" in what a step prints; a step tempeh stopped
    at its `timeout` still is a `timeout` (SPEC 5.1), which is what `classes` retry on."""
    fake = FakeExecutor(
        {
            "slow": [FakeOutcome(duration=5), OK],
            "curl": [FakeOutcome(exit_code=28, lines=["curl: Operation timed out"]), OK],
        }
    )
    run = await run_yaml(
        """
        name: w
        on_failure: continue
        errors:
          - {output: "(?i)connection (refused|reset)|timed out", class: transient}
        steps:
          - {name: slow, run: "true", timeout: 50ms, retry: {attempts: 2, classes: [timeout]}}
          - {name: curl, run: "true", retry: {attempts: 2, classes: [transient]}}
        """,
        fake,
    )
    retried = {e.step: e.error_class for e in run.of(StepRetrying)}
    assert retried == {"slow": "timeout", "curl": "transient"}
    assert run.result["slow"].status is StepStatus.SUCCEEDED
    assert run.result["curl"].status is StepStatus.SUCCEEDED


async def test_a_timeout_is_classified_as_timeout() -> None:
    fake = FakeExecutor({"slow": [FakeOutcome(duration=5)]})
    run = await run_yaml(
        """
        name: w
        steps:
          - {name: slow, run: "true", timeout: 50ms}
        """,
        fake,
    )
    assert run.result["slow"].error_class == "timeout"


async def test_dependents_of_a_failed_step_are_skipped_and_independent_branches_finish() -> None:
    fake = FakeExecutor({"build": [FAIL]})
    run = await run_yaml(
        """
        name: w
        on_failure: continue
        steps:
          - {name: build, run: "true"}
          - {name: deploy, needs: [build], run: "true"}
          - {name: notify, needs: [deploy], run: "true"}
          - {name: docs, run: "true"}
        """,
        fake,
    )
    r = run.result
    assert r.status is RunStatus.FAILED
    assert r["deploy"].status is StepStatus.SKIPPED
    assert r["deploy"].reason == "needs 'build', which ended failed"
    assert r["notify"].status is StepStatus.SKIPPED
    assert r["docs"].status is StepStatus.SUCCEEDED
    assert "deploy" not in fake.names()


async def test_abort_cancels_running_steps_and_starts_nothing_more() -> None:
    fake = FakeExecutor(
        {"broken": [FakeOutcome(exit_code=1, duration=0.05)], "long": [FakeOutcome(duration=30)]}
    )
    run = await run_yaml(
        """
        name: w
        on_failure: abort
        max_concurrency: 2
        steps:
          - {name: broken, run: "true"}
          - {name: long, run: "true"}
          - {name: queued, run: "true"}
          - {name: later, needs: [broken], run: "true"}
          - {name: last, needs: [later], run: "true"}
        """,
        fake,
    )
    r = run.result
    assert r.status is RunStatus.FAILED
    assert r["long"].status is StepStatus.CANCELLED
    assert r["queued"].status is StepStatus.CANCELLED  # never started: the run stopped
    # its need failed: skipped with the reason (SPEC 3), whatever the policy
    assert r["later"].status is StepStatus.SKIPPED
    assert r["later"].reason == "needs 'broken', which ended failed"
    assert r["last"].status is StepStatus.SKIPPED  # and so are its dependents (SPEC 1)
    assert r["last"].reason == "needs 'later', which was skipped"
    assert {"later", "last", "queued"}.isdisjoint(fake.names())


async def test_continue_on_error_lets_dependents_run_and_the_run_succeed() -> None:
    fake = FakeExecutor({"notify": [FAIL]})
    run = await run_yaml(
        """
        name: w
        steps:
          - {name: notify, run: "true", continue_on_error: true}
          - {name: after, needs: [notify], run: "true"}
        """,
        fake,
    )
    assert run.result.succeeded
    assert run.result["notify"].status is StepStatus.FAILED
    assert run.result["after"].status is StepStatus.SUCCEEDED


async def test_a_false_when_skips_the_step_but_its_dependents_run() -> None:
    fake = FakeExecutor()
    run = await run_yaml(
        """
        name: w
        params: {env: {default: staging}}
        steps:
          - {name: prod-only, run: "true", when: "params.env == 'production'"}
          - name: report
            needs: [prod-only]
            run: "true"
            when: "steps['prod-only'].status == 'skipped'"
        """,
        fake,
    )
    assert run.result["prod-only"].status is StepStatus.SKIPPED
    assert run.result["report"].status is StepStatus.SUCCEEDED
    assert fake.names() == ["report"]


async def test_until_runs_again_until_the_condition_holds() -> None:
    no, yes = FakeOutcome(outputs={"healthy": "false"}), FakeOutcome(outputs={"healthy": "true"})
    fake = FakeExecutor({"smoke": [no, no, yes]})
    run = await run_yaml(
        """
        name: w
        steps:
          - name: smoke
            run: "true"
            until: "outputs.healthy == 'true'"
            max_iterations: 5
            interval: 2s
        """,
        fake,
    )
    assert run.result["smoke"].status is StepStatus.SUCCEEDED
    assert len(fake.calls) == 3
    assert run.delays == [2.0, 2.0]
    assert [c.env["TEMPEH_ITERATION"] for c in fake.calls] == ["1", "2", "3"]
    # iterations are not attempts: only a retry starts another one
    assert [c.env["TEMPEH_ATTEMPT"] for c in fake.calls] == ["1", "1", "1"]
    assert run.result["smoke"].attempts == 1


async def test_until_reading_an_output_not_written_yet_runs_again() -> None:
    # SPEC 1's own example: the output appears only once the service is healthy
    fake = FakeExecutor({"smoke": [FakeOutcome(), FakeOutcome(outputs={"healthy": "true"})]})
    run = await run_yaml(
        """
        name: w
        steps:
          - {name: smoke, run: "true", until: "outputs.healthy == 'true'", max_iterations: 3}
        """,
        fake,
    )
    assert run.result["smoke"].status is StepStatus.SUCCEEDED
    assert len(fake.calls) == 2


async def test_a_retried_iteration_numbers_attempts_on_and_later_iterations_keep_it() -> None:
    no, yes = FakeOutcome(outputs={"healthy": "false"}), FakeOutcome(outputs={"healthy": "true"})
    fake = FakeExecutor({"smoke": [no, FakeOutcome(exit_code=75), no, yes]})
    run = await run_yaml(
        """
        name: w
        steps:
          - name: smoke
            run: "true"
            retry: {attempts: 2, backoff: fixed, delay: 1s}
            until: "outputs.healthy == 'true'"
            max_iterations: 5
        """,
        fake,
    )
    assert run.result["smoke"].status is StepStatus.SUCCEEDED
    calls = [(c.env["TEMPEH_ITERATION"], c.env["TEMPEH_ATTEMPT"]) for c in fake.calls]
    assert calls == [("1", "1"), ("2", "1"), ("2", "2"), ("3", "2")]
    assert run.result["smoke"].attempts == 2


async def test_until_that_never_holds_fails_after_max_iterations() -> None:
    fake = FakeExecutor(default=FakeOutcome(outputs={"healthy": "false"}))
    run = await run_yaml(
        """
        name: w
        steps:
          - {name: smoke, run: "true", until: "outputs.healthy == 'true'", max_iterations: 3}
        """,
        fake,
    )
    assert run.result["smoke"].status is StepStatus.FAILED
    assert "still false after 3 iterations" in (run.result["smoke"].reason or "")
    assert len(fake.calls) == 3


async def test_a_failed_verify_fails_the_step() -> None:
    fake = FakeExecutor({"deploy": [OK, FAIL]})
    run = await run_yaml(
        """
        name: w
        steps:
          - {name: deploy, run: "true", verify: "check"}
        """,
        fake,
    )
    assert run.result["deploy"].status is StepStatus.FAILED
    assert "verify failed" in (run.result["deploy"].reason or "")


async def test_an_approval_gate_without_an_answer_fails_headless_and_says_how_to_approve() -> None:
    fake = FakeExecutor()
    run = await run_yaml(
        """
        name: w
        steps:
          - {name: gate, confirm: "Ship it?"}
          - {name: ship, needs: [gate], run: "true"}
        """,
        fake,
    )
    assert run.result["gate"].status is StepStatus.FAILED
    assert "--approve gate" in (run.result["gate"].reason or "")
    approved = await run_yaml(
        """
        name: w
        steps:
          - {name: gate, confirm: "Ship it?"}
          - {name: ship, needs: [gate], run: "true"}
        """,
        FakeExecutor(),
        approve=["gate"],
    )
    assert approved.result.succeeded


ROLLBACK_CHAIN = """
name: w
on_failure: rollback
steps:
  - {name: db, run: "migrate up", rollback: "migrate down"}
  - {name: app, needs: [db], run: "deploy app", rollback: "undeploy app"}
  - {name: smoke, needs: [app], run: "smoke"}
"""


async def test_on_failure_rollback_compensates_in_reverse_order_and_ends_rolled_back() -> None:
    fake = FakeExecutor({"smoke": [FAIL]})
    run = await run_yaml(ROLLBACK_CHAIN, fake)

    assert run.result.status is RunStatus.ROLLED_BACK
    assert run.result.exit_code == 3
    assert [c.command for c in fake.calls] == [
        "migrate up",
        "deploy app",
        "smoke",
        "undeploy app",
        "migrate down",
    ]
    # the run's last word is what it came to, rollback included (its counts too: they
    # used to say 2 succeeded, as before the rollback, while `show` said rolled_back)
    last = run.events[-1]
    assert isinstance(last, RunFinished)
    assert (last.status, last.counts) == (RunStatus.ROLLED_BACK, {"rolled_back": 2, "failed": 1})
    # the result says what the steps came to, as the store does
    states = {name: unit.status for name, unit in run.result.units.items()}
    assert states == {
        "db": StepStatus.ROLLED_BACK,
        "app": StepStatus.ROLLED_BACK,
        "smoke": StepStatus.FAILED,
    }
    assert sum(isinstance(e, RunFinished) for e in run.events) == 1


async def test_a_failing_compensation_ends_rollback_failed_with_exit_4() -> None:
    fake = FakeExecutor({"smoke": [FAIL], "app": [OK, FAIL]})
    run = await run_yaml(ROLLBACK_CHAIN, fake)

    assert run.result.status is RunStatus.ROLLBACK_FAILED
    assert run.result.exit_code == 4
    assert "migrate down" not in [c.command for c in fake.calls]  # it needed app: left alone


async def test_the_api_auto_rollback_flag_rolls_back_too() -> None:
    fake = FakeExecutor({"smoke": [FAIL]})
    run = await run_yaml(
        ROLLBACK_CHAIN.replace("on_failure: rollback", ""), fake, auto_rollback=True
    )
    assert run.result.status is RunStatus.ROLLED_BACK
