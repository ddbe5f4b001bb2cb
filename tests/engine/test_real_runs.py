"""Whole runs with real processes: outputs between steps, injection, secrets, environment."""

from __future__ import annotations

import base64
import os
import textwrap
from pathlib import Path

import pytest

from tempeh_tui.definition import parse_workflow
from tempeh_tui.engine.engine import WorkflowEngine
from tempeh_tui.engine.local_executor import LocalExecutor
from tempeh_tui.engine.results import RunResult
from tempeh_tui.events import Event, StepOutput, StepStatus

pytestmark = pytest.mark.anyio


async def run_real(
    tmp_path: Path, text: str, *, environ: dict[str, str] | None = None, **options: object
) -> tuple[RunResult, list[str]]:
    path = tmp_path / "flow.yaml"
    path.write_text(textwrap.dedent(text))
    workflow = parse_workflow(path.read_text(), str(path))
    engine = WorkflowEngine(
        LocalExecutor(), environ={"PATH": os.environ["PATH"], **(environ or {})}
    )
    events: list[Event] = []
    engine.subscribe(events.append)
    result = await engine.execute_workflow(
        workflow,
        enable_checkpointing=False,
        **options,  # type: ignore[arg-type]
    )
    lines = [f"{e.step}: {e.line}" for e in events if isinstance(e, StepOutput)]
    return result, lines


async def test_outputs_flow_to_later_steps_as_data(tmp_path: Path) -> None:
    result, lines = await run_real(
        tmp_path,
        """
        name: w
        steps:
          - name: build
            run: |
              echo "version=1.2.3" >> "$TEMPEH_OUTPUT"
              printf 'notes<<EOF\\nline one\\nline two\\nEOF\\n' >> "$TEMPEH_OUTPUT"
          - name: deploy
            needs: [build]
            run: |
              echo "deploying {{ steps['build'].outputs.version }}"
              echo {{ steps['build'].outputs.notes }}
        """,
    )
    assert result.succeeded, lines
    assert result["build"].outputs == {"version": "1.2.3", "notes": "line one\nline two"}
    assert "deploy: deploying 1.2.3" in lines
    assert lines[-2:] == ["deploy: line one", "deploy: line two"]  # one argument, newline kept


async def test_a_hostile_param_is_printed_never_run(tmp_path: Path) -> None:
    hostile = '$(touch PWNED); `touch PWNED2`; echo "$(touch PWNED3)"'
    result, lines = await run_real(
        tmp_path,
        """
        name: w
        params: {msg: {default: x}}
        steps:
          - name: say
            run: echo {{ params.msg }} && echo "{{ params.msg }}"
        """,
        params={"msg": hostile},
    )
    assert result.succeeded
    assert lines == [f"say: {hostile}", f"say: {hostile}"]
    assert not any(name.startswith("PWNED") for name in os.listdir(tmp_path))


async def test_every_step_gets_the_tempeh_variables_and_params(tmp_path: Path) -> None:
    result, lines = await run_real(
        tmp_path,
        """
        name: w
        params: {release-tag: {default: v1}, app.region: {default: eu-1}}
        env: {APP: shop}
        steps:
          - name: show
            env: {STAGE: "{{ params['release-tag'] }}-stage"}
            run: >-
              echo "$TEMPEH_STEP $TEMPEH_ATTEMPT $TEMPEH_PARAM_RELEASE_TAG $APP $STAGE
              ${#TEMPEH_RUN_ID} $TEMPEH_PARAM_APP_REGION"
        """,
    )
    assert result.succeeded
    assert lines == ["show: show 1 v1 shop v1-stage 20 eu-1"]


async def test_secrets_are_masked_in_every_form_even_split_across_writes(tmp_path: Path) -> None:
    secret = "hunter2-very-secret"
    b64 = base64.b64encode(secret.encode()).decode()
    result, lines = await run_real(
        tmp_path,
        f"""
        name: w
        secrets: [API_TOKEN]
        steps:
          - name: leak
            run: |
              echo "plain $API_TOKEN"
              echo "b64 {b64}"
              printf 'split hunter2-'; sleep 0.05; printf 'very-secret\\n'
              echo "token=$API_TOKEN" >> "$TEMPEH_OUTPUT"
          - name: other
            run: echo "other sees [$API_TOKEN]"
            secrets: []
        """,
        environ={"API_TOKEN": secret},
    )
    assert result.succeeded
    assert not any(secret in line or b64 in line for line in lines)
    assert "leak: plain ***" in lines
    assert "leak: split ***" in lines
    assert result["leak"].outputs == {"token": "***"}


async def test_a_secret_that_spans_lines_is_masked_line_by_line(tmp_path: Path) -> None:
    """A key in PEM form, or a value read from a file with its trailing newline: output is
    masked a line at a time, so no line ever held the whole value (each line leaked)."""
    key = "\n".join(["-----BEGIN KEY-----", "b3BlbnNzaC1rZXktdjEAAAAABG5v", "-----END-----"])
    result, lines = await run_real(
        tmp_path,
        """
        name: w
        secrets: [KEY, TOKEN]
        steps:
          - name: leak
            run: |
              printf '%s\\n' "$KEY"
              echo "token [$TOKEN]"
              printf 'key<<EOF\\n%s\\nEOF\\n' "$KEY" >> "$TEMPEH_OUTPUT"
        """,
        environ={"KEY": key, "TOKEN": "from-a-file\n"},
    )
    assert result.succeeded, lines
    assert lines == ["leak: ***"] * 3 + ["leak: token [***", "leak: ]"]
    assert result["leak"].outputs == {"key": "***"}


async def test_a_secret_base64_encoded_behind_other_bytes_is_masked(tmp_path: Path) -> None:
    secret = "hunter2-very-secret"
    shifted = base64.b64encode(b"ab" + secret.encode()).decode()
    basic = base64.b64encode(b"user:" + secret.encode()).decode()
    result, lines = await run_real(
        tmp_path,
        """
        name: w
        secrets: [API_TOKEN]
        steps:
          - name: leak
            run: |
              printf 'ab%s' "$API_TOKEN" | base64
              echo "Authorization: Basic $(printf 'user:%s' "$API_TOKEN" | base64 -w0)"
        """,
        environ={"API_TOKEN": secret},
    )
    assert result.succeeded
    assert lines == ["leak: YWJ***", "leak: Authorization: Basic dXNlcjp***"]
    assert not any(shifted[4:] in line or basic[8:] in line for line in lines)


async def test_a_long_secret_in_base64_wrapped_by_the_base64_command_is_masked_on_each_line(
    tmp_path: Path,
) -> None:
    secret = "sk_live_51Hx9f2Kq8LmN0pQrStUvWxYz0123456789abcdefGHIJKLmnopQRSTuvwx"
    result, lines = await run_real(
        tmp_path,
        """
        name: w
        secrets: [API_TOKEN]
        steps:
          - name: leak
            run: printf '{"user":"deploy","key":"%s","ttl":3600}' "$API_TOKEN" | base64
        """,
        environ={"API_TOKEN": secret},
    )
    assert result.succeeded
    assert len(lines) == 2  # wrapped at 76 columns, the secret's characters on both lines
    assert lines[0].endswith("***")
    assert lines[1].startswith("leak: ***")
    for before in range(3):  # the secret's own characters, wherever it starts: none shows
        own = base64.b64encode(bytes(before) + secret.encode()).decode()[3:-3]
        pieces = {own[i : i + 12] for i in range(len(own) - 11)}
        assert not any(piece in line for piece in pieces for line in lines)


async def test_a_missing_secret_stops_the_run_before_anything_starts(tmp_path: Path) -> None:
    from tempeh_tui.engine.secrets import MissingSecret

    with pytest.raises(MissingSecret, match="API_TOKEN"):
        await run_real(
            tmp_path, "name: w\nsecrets: [API_TOKEN]\nsteps:\n  - {name: a, run: 'true'}\n"
        )


def write_module(path: Path, text: str) -> None:
    path.write_text(textwrap.dedent(text))


async def test_whatever_a_python_step_raises_fails_that_step_with_its_traceback_in_its_log(
    tmp_path: Path,
) -> None:
    write_module(
        tmp_path / "raisers.py",
        """
        class Boom(BaseException):
            pass

        def base(ctx):
            raise Boom("boom")

        def interrupt(ctx):
            raise KeyboardInterrupt()

        async def interrupt_async(ctx):
            raise KeyboardInterrupt()
        """,
    )
    write_module(tmp_path / "broken.py", "import no_such_module_here\n\ndef f(ctx):\n    pass\n")
    result, lines = await run_real(
        tmp_path,
        """
        name: w
        on_failure: continue
        steps:
          - {name: base, python: "raisers:base"}
          - {name: interrupt, python: "raisers:interrupt"}
          - {name: interrupt-async, python: "raisers:interrupt_async"}
          - {name: broken, python: "broken:f"}
          - {name: after, needs: [base], run: "true"}
        """,
    )
    assert {n: u.status for n, u in result.units.items()} == {
        "base": StepStatus.FAILED,
        "interrupt": StepStatus.FAILED,
        "interrupt-async": StepStatus.FAILED,
        "broken": StepStatus.FAILED,
        "after": StepStatus.SKIPPED,
    }
    assert result["base"].reason is not None
    assert result["base"].reason.startswith("Boom: boom")
    assert f'base:   File "{tmp_path / "raisers.py"}", line 6, in base' in lines
    # an error importing the module starts at its own line, not in the import machinery
    broken = [line for line in lines if line.startswith("broken: ")]
    assert broken[:3] == [
        "broken: Traceback (most recent call last):",
        f'broken:   File "{tmp_path / "broken.py"}", line 1, in <module>',
        "broken:     import no_such_module_here",
    ]


async def test_a_python_steps_outputs_are_the_text_a_process_would_see(tmp_path: Path) -> None:
    write_module(
        tmp_path / "values.py",
        """
        def f(ctx):
            return {"none": None, "flag": True, "count": 3, "meta": {"version": "1.0"}}
        """,
    )
    result, _ = await run_real(tmp_path, "name: w\nsteps:\n  - {name: v, python: 'values:f'}\n")
    assert result["v"].outputs == {
        "none": "",
        "flag": "true",
        "count": "3",
        "meta": '{"version": "1.0"}',
    }


async def test_a_fan_in_python_step_sees_steps_as_expressions_do_and_tempehs_variables(
    tmp_path: Path,
) -> None:
    write_module(
        tmp_path / "fan.py",
        """
        def gather(ctx):
            deploy = ctx.steps["deploy"]  # the fan-out step as a whole, as steps['deploy']
            urls = ",".join(v["url"] for v in deploy["outputs"].values())
            return {"urls": urls, "step": ctx.env["TEMPEH_STEP"], "run": ctx.env["TEMPEH_RUN_ID"]}
        """,
    )
    result, lines = await run_real(
        tmp_path,
        """
        name: w
        steps:
          - name: deploy
            for_each: [eu-1, us-1]
            run: echo "url=http://{{ item }}" >> "$TEMPEH_OUTPUT"
          - {name: gather, needs: [deploy], python: "fan:gather"}
        """,
    )
    assert result.succeeded, lines
    assert result["gather"].outputs == {
        "urls": "http://eu-1,http://us-1",
        "step": "gather",
        "run": result.run_id,
    }


async def test_fan_out_items_that_make_the_same_file_name_keep_their_own_outputs(
    tmp_path: Path,
) -> None:
    """`eu/1` and `eu_1` shared one `$TEMPEH_OUTPUT` file (both became `d_eu_1_`): one
    instance ended with the other's outputs."""
    result, lines = await run_real(
        tmp_path,
        """
        name: w
        steps:
          - name: d
            for_each: [eu/1, eu_1]
            run: echo "region={{ item }}" >> "$TEMPEH_OUTPUT"
        """,
    )
    assert result.succeeded, lines
    assert result["d[eu/1]"].outputs == {"region": "eu/1"}
    assert result["d[eu_1]"].outputs == {"region": "eu_1"}


async def test_a_python_step_gets_its_context_and_returns_outputs(tmp_path: Path) -> None:
    write_module(
        tmp_path / "release_tools.py",
        """
        def tag(ctx):
            ctx.log(f"tagging {ctx.params['version']} after {ctx.steps['build']['status']}")
            return {"tag": "v" + ctx.params["version"]}
        """,
    )
    result, lines = await run_real(
        tmp_path,
        """
        name: w
        params: {version: "2.0"}
        steps:
          - {name: build, run: "true"}
          - {name: tag, needs: [build], python: "release_tools:tag"}
          - {name: show, needs: [tag], run: "echo {{ steps['tag'].outputs.tag }}"}
        """,
    )
    assert result.succeeded, lines
    assert "tag: tagging 2.0 after succeeded" in lines
    assert "show: v2.0" in lines


async def test_an_output_with_code_in_brackets_never_reaches_a_step_through_its_env(
    tmp_path: Path,
) -> None:
    pwned = tmp_path / "PWNED"
    result, _ = await run_real(
        tmp_path,
        f"""
        name: w
        steps:
          - name: a
            run: echo 'v=a[$(touch {pwned})]' >> "$TEMPEH_OUTPUT"
          - name: b
            needs: [a]
            env: {{N: "{{{{ steps['a'].outputs.v }}}}"}}
            run: echo $(( N + 1 ))
        """,
    )
    assert result["b"].status is StepStatus.FAILED
    assert "env N: its value holds a '$' or '`' in an array subscript" in (result["b"].reason or "")
    assert not pwned.exists()


async def test_a_module_beside_the_workflow_that_python_did_not_import_is_named(
    tmp_path: Path,
) -> None:
    # the standard library's `platform` is imported already: the workflow's own is not used
    write_module(tmp_path / "platform.py", "def deploy(ctx):\n    return {'ran': 'mine'}\n")
    result, _ = await run_real(
        tmp_path, "name: w\nsteps:\n  - {name: a, python: 'platform:deploy'}\n"
    )
    assert result["a"].status is StepStatus.FAILED
    reason = result["a"].reason or ""
    assert f"module 'platform' beside the workflow ({tmp_path / 'platform.py'})" in reason
    assert "rename the workflow's module" in reason


async def test_a_retry_waits_for_the_sync_call_its_timeout_left_running(tmp_path: Path) -> None:
    ledger = tmp_path / "ledger"
    write_module(
        tmp_path / "slowpoke.py",
        f"""
        import time

        def f(ctx):
            with open({str(ledger)!r}, "a") as out:
                out.write(f"start {{ctx.attempt}}\\n")
            if ctx.attempt == 1:
                time.sleep(0.8)  # past its timeout: the thread runs on, unseen
            with open({str(ledger)!r}, "a") as out:
                out.write(f"end {{ctx.attempt}}\\n")
        """,
    )
    result, lines = await run_real(
        tmp_path,
        """
        name: w
        steps:
          - name: a
            python: "slowpoke:f"
            timeout: 200ms
            retry: {attempts: 2, delay: 10ms, jitter: false}
        """,
    )
    assert result.succeeded, lines
    assert ledger.read_text().split("\n")[:4] == ["start 1", "end 1", "start 2", "end 2"]
    assert any("waiting for the step's previous call to return" in line for line in lines)


async def test_a_cache_key_or_verify_that_cannot_be_rendered_fails_its_step_not_the_engine(
    tmp_path: Path,
) -> None:
    """A missing output is an ordinary mistake: it fails the step that reads it, with the
    expression's error, like a `run` that cannot be rendered (it raised out of the engine)."""
    result, _ = await run_real(
        tmp_path,
        """
        name: w
        on_failure: continue
        steps:
          - {name: build, run: echo built}
          - name: cached
            needs: [build]
            run: echo deploy
            cache: {key: "{{ steps.build.outputs.sha }}"}
          - name: verified
            needs: [build]
            run: echo v=1 >> "$TEMPEH_OUTPUT"
            verify: test -n {{ steps.build.outputs.sha }}
          - name: refused
            run: echo 'v=a[$(id)]' >> "$TEMPEH_OUTPUT"
            verify: test -n {{ outputs.v }}
          - {name: other, run: echo other}
        """,
    )
    assert result["other"].status is StepStatus.SUCCEEDED
    expected = {"cached": "cache key: ", "verified": "verify: ", "refused": "verify: "}
    for name, part in expected.items():
        unit = result[name]
        assert unit.status is StepStatus.FAILED, name
        assert unit.error_class == "permanent"
        assert (unit.reason or "").startswith(part), unit.reason
    assert "has no attribute 'sha'" in (result["cached"].reason or "")


def test_the_punctuation_lines_of_a_secret_that_spans_lines_are_not_masked() -> None:
    """`---` in a YAML secret is structure: masking it hid every such line of every log."""
    from tempeh_tui.engine.secrets import Masker

    masker = Masker(["apiVersion: v1\n---\n  token: abcdefgh12345\n-----"])
    assert masker.mask("---") == "---"
    assert masker.mask("-------") == "-------"
    assert masker.mask("token: abcdefgh12345") == "***"
