"""The `tempeh` command itself: help, version, usage errors, and a fast start."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tempeh_tui.cli import main
from tests.cli.process import run_tempeh

COMMANDS = ["validate", "plan", "graph"]


def test_help_lists_every_command() -> None:
    result = run_tempeh("--help")

    assert result.returncode == 0
    assert result.stdout.startswith("usage: tempeh")
    for command in COMMANDS:
        assert command in result.stdout


def test_version_prints_the_package_version() -> None:
    import tempeh_tui

    result = run_tempeh("--version")

    assert result.returncode == 0
    assert result.stdout.strip() == f"tempeh {tempeh_tui.__version__}"


def test_an_unknown_command_is_a_usage_error() -> None:
    result = run_tempeh("deploy-everything")

    assert result.returncode == 2
    assert "invalid choice" in result.stderr
    assert "Traceback" not in result.stderr


def test_an_unknown_flag_is_a_usage_error() -> None:
    result = run_tempeh("validate", "--strict", "x.yaml")

    assert result.returncode == 2
    assert "--strict" in result.stderr
    assert "Traceback" not in result.stderr


def test_python_dash_m_runs_the_same_command() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "tempeh_tui", "--version"],
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    )

    assert result.returncode == 0
    assert result.stdout.startswith("tempeh ")


def test_no_command_shows_help_on_stderr_and_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2

    assert "usage: tempeh" in capsys.readouterr().err


@pytest.mark.parametrize("command", COMMANDS)
def test_each_command_has_its_own_help(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main([command, "--help"])

    assert exited.value.code == 0
    assert f"usage: tempeh {command}" in capsys.readouterr().out


@pytest.mark.parametrize("command", ["plan", "graph"])
def test_commands_that_read_one_file_refuse_none(
    command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main([command])

    assert exited.value.code == 2
    assert "FILE" in capsys.readouterr().err
