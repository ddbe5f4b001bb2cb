"""`tempeh validate FILE... [--json]`: ok per good file, FILE:LINE:COL per problem, exit 2."""

from __future__ import annotations

import json
import re
import textwrap
from pathlib import Path

import pytest

from tempeh_tui.cli import main
from tests.cli.process import SAMPLES, run_tempeh

PROBLEM_LINE = re.compile(r"^(?P<file>.+):(?P<line>\d+):(?P<col>\d+): (?P<message>.+)$")

GOOD = """\
name: good
steps:
  - name: build
    run: make
"""

BAD = """\
name: bad
steps:
  - name: build
    run: make
    timout: 5m
  - name: deploy
    needs: [biuld]
    run: ./deploy.sh
    timeout: soon
"""


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def test_every_sample_workflow_validates() -> None:
    samples = sorted(SAMPLES.glob("*.yaml"))
    assert len(samples) >= 4

    result = run_tempeh("validate", *samples)

    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [f"{sample}: ok" for sample in samples]
    assert result.stderr == ""


def test_a_bad_file_exits_2_with_one_positioned_line_per_problem(tmp_path: Path) -> None:
    bad = write(tmp_path, "bad.yaml", BAD)

    result = run_tempeh("validate", bad)

    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 3, lines
    matches = [PROBLEM_LINE.match(line) for line in lines]
    assert all(m and m["file"] == str(bad) for m in matches), lines
    by_line = {int(m["line"]): m["message"] for m in matches if m}
    assert "timout" in by_line[5]
    assert "timeout" in by_line[5], "the close match is suggested"
    assert "biuld" in by_line[7]
    assert "build" in by_line[7].replace("biuld", "")
    assert "soon" in by_line[9]
    assert "Traceback" not in result.stderr + result.stdout


def test_a_bad_file_among_good_ones_fails_the_command_but_the_good_ones_say_ok(
    tmp_path: Path,
) -> None:
    first = write(tmp_path, "first.yaml", GOOD)
    bad = write(tmp_path, "bad.yaml", BAD)
    last = write(tmp_path, "last.yaml", GOOD)

    result = run_tempeh("validate", first, bad, last)

    assert result.returncode == 2
    assert result.stdout.splitlines() == [f"{first}: ok", f"{last}: ok"]
    assert all(line.startswith(f"{bad}:") for line in result.stderr.splitlines())
    assert "Traceback" not in result.stderr


def test_a_missing_file_exits_2_with_a_clear_line_and_no_traceback(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.yaml"

    result = run_tempeh("validate", missing)

    assert result.returncode == 2
    assert result.stderr.splitlines() == [f"{missing}: no such file"]
    assert "Traceback" not in result.stdout + result.stderr


def test_validate_json_reports_each_file_and_its_problems(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = write(tmp_path, "good.yaml", GOOD)
    bad = write(tmp_path, "bad.yaml", BAD)

    code = main(["validate", "--json", str(good), str(bad)])

    out, err = capsys.readouterr()
    assert code == 2
    assert err == ""
    report = json.loads(out)
    assert [(r["file"], r["ok"]) for r in report] == [(str(good), True), (str(bad), False)]
    assert report[0]["problems"] == []
    assert [(p["line"], p["col"]) for p in report[1]["problems"]] == [(5, 5), (7, 13), (9, 14)]
    assert all(p["message"] for p in report[1]["problems"])


def test_validate_json_on_good_files_exits_0(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = write(tmp_path, "good.yaml", GOOD)

    code = main(["validate", "--json", str(good)])

    assert code == 0
    assert json.loads(capsys.readouterr().out) == [{"file": str(good), "ok": True, "problems": []}]


def test_validate_a_directory_says_so(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["validate", str(tmp_path)])

    assert code == 2
    assert "directory" in capsys.readouterr().err
