"""`--wait-for-decision [TIMEOUT]` anywhere on the line: the word after it is its TIMEOUT only
when it is a duration, so it never swallows the workflow file."""

from __future__ import annotations

import pytest

from tempeh_tui.cli.parser import build_parser


@pytest.mark.parametrize(
    ("argv", "file", "wait"),
    [
        (["run", "--wait-for-decision", "sample.yaml"], "sample.yaml", "forever"),
        (["run", "--wait-for-decision", "30s", "sample.yaml"], "sample.yaml", "30s"),
        (["run", "sample.yaml", "--wait-for-decision"], "sample.yaml", "forever"),
        (["run", "sample.yaml", "--wait-for-decision", "1m30s"], "sample.yaml", "1m30s"),
        (["run", "--wait-for-decision", "90", "sample.yaml"], "sample.yaml", "90"),
        (["run", "--wait-for-decision=2h", "sample.yaml"], "sample.yaml", "2h"),
        (["run", "--wait", "sample.yaml"], "sample.yaml", "forever"),
        (["run", "--wait-for-decision", "--yes", "sample.yaml"], "sample.yaml", "forever"),
        (["run", "sample.yaml"], "sample.yaml", None),
    ],
)
def test_the_timeout_is_taken_only_when_it_is_a_duration(
    argv: list[str], file: str, wait: str | None
) -> None:
    args = build_parser().parse_args(argv)
    assert args.file == file
    assert args.wait_for_decision == wait


def test_resume_takes_the_run_id_after_a_bare_wait_option() -> None:
    args = build_parser().parse_args(["resume", "--wait-for-decision", "20261125-1200"])
    assert (args.run, args.wait_for_decision) == ("20261125-1200", "forever")


def test_after_a_double_dash_nothing_is_read_as_the_option() -> None:
    args = build_parser().parse_args(["run", "--", "--wait"])
    assert (args.file, args.wait_for_decision) == ("--wait", None)
