"""`env` in expressions (SPEC 1.1) is what the step's process sees: the environment tempeh
started with (secrets left out), the workflow's `env` over it, the step's over both."""

from __future__ import annotations

import pytest

from tempeh_tui.engine.fake_executor import FakeExecutor
from tempeh_tui.events import StepStatus

from .engine_support import run_yaml

pytestmark = pytest.mark.anyio

FLOW = """
    name: envs
    env: {STAGE: "{{ env.CI_STAGE }}-x", SHARED: workflow}
    secrets: [TOKEN]
    steps:
      - name: on-ci
        when: "env.CI == 'true'"
        run: echo ci
      - name: off-ci
        when: "env.CI != 'true'"
        run: echo local
      - name: layered
        env: {SHARED: step}
        when: "env.SHARED == 'step' and env.STAGE == 'prod-x' and env.HOME == '/home/op'"
        run: echo layered
      - name: secret-hidden
        when: "'TOKEN' not in env"
        run: echo hidden
"""


async def test_expressions_read_the_process_environment_under_the_declared_env() -> None:
    fake = FakeExecutor()
    environ = {
        "CI": "true",
        "CI_STAGE": "prod",
        "HOME": "/home/op",
        "SHARED": "process",
        "TOKEN": "s3cr3t-value",
    }
    run = await run_yaml(FLOW, fake, environ=environ)
    statuses = {name: unit.status for name, unit in run.result.units.items()}
    assert statuses == {
        "on-ci": StepStatus.SUCCEEDED,
        "off-ci": StepStatus.SKIPPED,
        "layered": StepStatus.SUCCEEDED,
        "secret-hidden": StepStatus.SUCCEEDED,
    }


async def test_an_unset_variable_reads_as_empty_so_a_when_on_it_is_false() -> None:
    """`when: "env.CI == 'true'"` where CI is unset failed the step (as the README promised
    it would read: false), and under `pause` headless, aborted the run."""
    from tempeh_tui.engine.engine import WorkflowEngine

    fake = FakeExecutor()
    result = await WorkflowEngine(fake, environ={"PATH": "/usr/bin"}).execute_workflow(
        {"name": "w", "steps": [{"name": "a", "when": "env.CI == 'true'", "run": "echo ci"}]},
        enable_checkpointing=False,
    )
    assert result.succeeded
    assert result["a"].status is StepStatus.SKIPPED
