"""Run the installed `tempeh` console script for real, as a user's shell would."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

__all__ = ["ROOT", "SAMPLES", "run_tempeh", "start_tempeh"]

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "sample_workflows"


def _command() -> list[str]:
    script = Path(sys.executable).with_name("tempeh")
    return [str(script)] if script.exists() else [sys.executable, "-m", "tempeh_tui"]


def run_tempeh(*args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """`tempeh ARGS...` with its exit code, stdout and stderr (never raises on a non-zero exit)."""
    env = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1"}
    return subprocess.run(
        [*_command(), *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=30,
        check=False,
    )


def start_tempeh(*args: str, db: Path) -> subprocess.Popen[str]:
    """`python -m tempeh_tui ARGS... --db DB` started, with its stdout and stderr piped."""
    return subprocess.Popen(
        [sys.executable, "-m", "tempeh_tui", *args, "--db", str(db)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
