"""`python -m tempeh_tui` is `tempeh`."""

from tempeh_tui.cli import run

run()
