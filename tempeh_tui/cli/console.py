"""The console the reports (`runs`, `show`, `plan`, `rollback --plan`) print their tables on."""

from __future__ import annotations

import sys

from rich.console import Console

__all__ = ["report_console"]

UNCUT_WIDTH = 10_000
"""Piped or redirected, a table is as wide as its content."""


def report_console() -> Console:
    """The terminal's width on one. Piped or redirected, as wide as the content: Rich would
    assume 80 columns, and cut the run ids and states that scripts and `grep` read."""
    if sys.stdout.isatty():
        return Console(highlight=False)
    return Console(highlight=False, width=UNCUT_WIDTH)
