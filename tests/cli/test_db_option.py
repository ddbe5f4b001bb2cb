"""`--db PATH` is taken before or after the command (SPEC 6: every command reads the store)."""

from __future__ import annotations

import pytest

from tempeh_tui.cli.parser import build_parser


@pytest.mark.parametrize(
    "argv",
    [
        ["--db", "/tmp/x.db", "runs"],
        ["runs", "--db", "/tmp/x.db"],
        ["--db", "/tmp/y.db", "runs", "--db", "/tmp/x.db"],  # the command's own wins
        ["--db", "/tmp/x.db", "show", "RUN"],
        ["--db", "/tmp/x.db", "run", "flow.yaml"],
    ],
)
def test_db_before_or_after_the_command(argv: list[str]) -> None:
    assert build_parser().parse_args(argv).db == "/tmp/x.db"


def test_without_db_the_default_store_is_used() -> None:
    assert build_parser().parse_args(["runs"]).db is None
