"""An operator at a real terminal: tempeh in tmux, driven with send-keys, read with capture-pane."""

from __future__ import annotations

import shlex
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


class Terminal:
    """One tmux session of 120x30, running a shell in the project."""

    def __init__(self) -> None:
        self.name = f"tempeh-{uuid.uuid4().hex[:8]}"
        subprocess.run(
            [
                "tmux",
                "new-session",
                "-d",
                "-s",
                self.name,
                "-x",
                "120",
                "-y",
                "30",
                "-c",
                str(ROOT),
                "bash --norc --noprofile",
            ],
            check=True,
        )

    def type(self, *keys: str) -> None:
        subprocess.run(["tmux", "send-keys", "-t", self.name, *keys], check=True)

    def screen(self) -> str:
        return subprocess.run(
            ["tmux", "capture-pane", "-p", "-t", self.name],
            check=True,
            capture_output=True,
            text=True,
        ).stdout

    def wait_for(self, text: str, timeout: float = 30) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            screen = self.screen()
            if text in screen:
                return screen
            time.sleep(0.1)
        raise AssertionError(f"{text!r} never appeared; the screen shows:\n{self.screen()}")

    def close(self) -> None:
        subprocess.run(["tmux", "kill-session", "-t", self.name], check=False)


@pytest.fixture
def terminal() -> Iterator[Terminal]:
    term = Terminal()
    try:
        yield term
    finally:
        term.close()


def tempeh_command(*args: str) -> str:
    return shlex.join([sys.executable, "-m", "tempeh_tui", *args])


def test_a_run_at_a_terminal_shows_a_live_view_and_ends_succeeded(
    terminal: Terminal, tmp_path: Path
) -> None:
    flow = tmp_path / "flow.yaml"
    flow.write_text(
        textwrap.dedent(
            """
            name: terminal-demo
            steps:
              - {name: build, run: "sleep 0.3; echo built"}
              - {name: test, needs: [build], run: "sleep 0.3; echo tested"}
              - {name: ship, needs: [test], run: "echo shipped"}
            """
        )
    )
    terminal.type(tempeh_command("run", str(flow), "--db", str(tmp_path / "t.db")), "Enter")
    terminal.type("echo EXIT=$?", "Enter")
    screen = terminal.wait_for("EXIT=0")
    assert "terminal-demo" in screen
    assert "✓ 3 succeeded" in screen
    assert "run succeeded" in screen


def test_ctrl_c_interrupts_a_run_and_it_resumes(terminal: Terminal, tmp_path: Path) -> None:
    marker, db = tmp_path / "once", tmp_path / "t.db"
    flow = tmp_path / "flow.yaml"
    flow.write_text(
        textwrap.dedent(
            f"""
            name: long-demo
            steps:
              - name: wait
                run: test -f {marker} || {{ touch {marker}; sleep 300; }}
              - {{name: after, needs: [wait], run: "echo after"}}
            """
        )
    )
    terminal.type(tempeh_command("run", str(flow), "--db", str(db)), "Enter")
    terminal.wait_for("▶")  # the step is running
    terminal.type("C-c")
    terminal.type("echo EXIT=$?", "Enter")
    screen = terminal.wait_for("EXIT=130")
    assert "interrupted" in screen

    run_id = (
        subprocess.run(
            [sys.executable, "-m", "tempeh_tui", "runs", "--json", "--db", str(db)],
            check=True,
            capture_output=True,
            text=True,
            cwd=ROOT,
        )
        .stdout.split('"id": "')[1]
        .split('"')[0]
    )
    terminal.type("clear", "Enter")
    terminal.type(tempeh_command("resume", run_id, "--db", str(db)), "Enter")
    terminal.type("echo EXIT=$?", "Enter")
    screen = terminal.wait_for("EXIT=0")
    assert "run succeeded" in screen
