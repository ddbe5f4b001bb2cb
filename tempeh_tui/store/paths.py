"""Where the store lives (SPEC 4) and how its file is created (SPEC 5.4: 0600 in a 0700 folder)."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["default_store_path", "prepare_store_file"]


def default_store_path(db: str | None = None) -> Path:
    """`--db PATH`, else `$TEMPEH_DB`, else `$XDG_STATE_HOME/tempeh/tempeh.db`, else
    `~/.local/state/tempeh/tempeh.db`. Only resolves: `prepare_store_file` creates."""
    if db:
        return Path(db).expanduser()
    if env_db := os.environ.get("TEMPEH_DB"):
        return Path(env_db).expanduser()
    state = os.environ.get("XDG_STATE_HOME")
    # The XDG spec says a relative $XDG_STATE_HOME is invalid and must be ignored.
    base = Path(state) if state and os.path.isabs(state) else Path.home() / ".local" / "state"
    return base / "tempeh" / "tempeh.db"


def prepare_store_file(path: Path) -> None:
    """Create the store's missing folders 0700 and the file itself 0600, before SQLite opens it.

    Existing folders and files keep their modes: `--db /tmp/x.db` must not change `/tmp`. The
    `-wal` and `-shm` files SQLite creates later take the database file's mode.
    """
    missing: list[Path] = []
    folder = path.parent
    while not folder.exists():
        missing.append(folder)
        folder = folder.parent
    for folder in reversed(missing):
        folder.mkdir(mode=0o700, exist_ok=True)
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    except FileExistsError:
        return
    os.close(fd)
