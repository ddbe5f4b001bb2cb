"""The bundled local deployment, for real: a release, a SQLite database, a service on 127.0.0.1."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "sample_workflows" / "local-service"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def deployment(tmp_path: Path) -> Iterator[tuple[Path, int]]:
    root, port = tmp_path / "service", free_port()
    try:
        yield root, port
    finally:
        subprocess.run([SAMPLE / "scripts" / "service.sh", "stop", str(root)], check=False)


def deploy(root: Path, port: int, db: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "tempeh_tui",
            "run",
            str(SAMPLE / "deploy.yaml"),
            "--headless",
            "--db",
            str(db),
            "-p",
            f"root={root}",
            "-p",
            f"port={port}",
            *extra,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def health(port: int) -> dict[str, str]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5) as response:
        body: dict[str, str] = json.load(response)
    return body


def test_the_sample_deploys_a_service_that_answers_on_loopback(
    deployment: tuple[Path, int], tmp_path: Path
) -> None:
    root, port = deployment
    done = deploy(root, port, tmp_path / "t.db", "-p", "version=1.1.0")
    assert done.returncode == 0, done.stdout[-3000:]
    assert health(port) == {"status": "ok", "version": "1.1.0", "schema": "1.1.0"}
    assert (root / "current").resolve() == (root / "releases" / "1.1.0").resolve()

    upgraded = deploy(root, port, tmp_path / "t.db", "-p", "version=1.2.0")
    assert upgraded.returncode == 0, upgraded.stdout[-3000:]
    assert health(port)["version"] == "1.2.0"


def test_an_injected_failure_fails_the_run_and_undoes_what_was_done(
    deployment: tuple[Path, int], tmp_path: Path
) -> None:
    root, port = deployment
    done = deploy(root, port, tmp_path / "t.db", "-p", "fail_at=switch")
    assert done.returncode == 3, done.stdout[-3000:]  # failed, rolled back cleanly
    assert "injected failure at switch" in done.stdout
    assert not (root / "current").exists()
    assert not (root / "releases" / "1.1.0").exists()  # build-release was compensated


def test_a_failed_health_check_rolls_back_to_the_release_that_served_before(
    deployment: tuple[Path, int], tmp_path: Path
) -> None:
    root, port = deployment
    db = tmp_path / "t.db"
    assert deploy(root, port, db, "-p", "version=1.1.0").returncode == 0

    failed = deploy(root, port, db, "-p", "version=1.2.0", "-p", "fail_at=health")

    assert failed.returncode == 3, failed.stdout[-3000:]  # failed, and rolled back cleanly
    assert health(port) == {"status": "ok", "version": "1.1.0", "schema": "1.1.0"}
    assert (root / "current").resolve() == (root / "releases" / "1.1.0").resolve()
    assert not (root / "releases" / "1.2.0").exists()
