"""Where the store is (SPEC 4): `--db`, else `$TEMPEH_DB`, else the XDG state folder."""

from __future__ import annotations

from pathlib import Path

import pytest

from tempeh_tui.store import default_store_path, open_store


@pytest.fixture(autouse=True)
def _no_store_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("TEMPEH_DB", raising=False)
    monkeypatch.delenv("XDG_STATE_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))


def test_db_given_on_the_command_line_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEMPEH_DB", "/elsewhere/env.db")

    assert default_store_path("~/runs.db") == Path.home() / "runs.db"


def test_tempeh_db_comes_next(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEMPEH_DB", "/elsewhere/env.db")
    monkeypatch.setenv("XDG_STATE_HOME", "/state")

    assert default_store_path(None) == Path("/elsewhere/env.db")


def test_then_the_xdg_state_folder(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", "/state")

    assert default_store_path(None) == Path("/state/tempeh/tempeh.db")


@pytest.mark.parametrize("state", [None, "", "relative/state"])
def test_else_the_state_folder_in_home(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, state: str | None
) -> None:
    if state is not None:
        monkeypatch.setenv("XDG_STATE_HOME", state)  # empty or relative: invalid, ignored

    expected = tmp_path / "home" / ".local" / "state" / "tempeh" / "tempeh.db"
    assert default_store_path(None) == expected


def test_open_store_uses_that_path_and_creates_nothing_until_opened(tmp_path: Path) -> None:
    store = open_store(None)

    assert store.path == tmp_path / "home" / ".local" / "state" / "tempeh" / "tempeh.db"
    assert not (tmp_path / "home").exists()
