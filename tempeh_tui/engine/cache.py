"""Step caching (SPEC 1 `cache`): a key is the rendered `key` plus the content hash of `files`."""

from __future__ import annotations

import glob
import hashlib
import os
import stat
from collections.abc import Iterable
from pathlib import Path

from tempeh_tui.definition.models import Workflow

__all__ = ["cache_key", "cached_files", "workflow_dir"]


def cached_files(root: Path, patterns: Iterable[str]) -> list[Path]:
    """The files `patterns` name under `root`, sorted, each once. `**` matches any depth (as in
    `.gitignore`): `migrations/**` is every file below `migrations`, and a pattern that names
    a directory means every file in it. A symbolic link is an entry of its own (never
    followed: a dangling one, or a loop, is just a name), and so is a named pipe or a device
    (never opened)."""
    found: set[Path] = set()
    for pattern in patterns:
        for match in glob.glob(pattern, root_dir=root, recursive=True):
            parts = Path(match).parts
            if any((root.joinpath(*parts[:k])).is_symlink() for k in range(1, len(parts))):
                continue  # reached through a link (`**` follows them): the link is the entry
            path = root / match
            if path.is_dir() and not path.is_symlink():
                for folder, folders, names in os.walk(path):
                    found.update(Path(folder, name) for name in names)
                    # a link to a folder is listed as a folder by os.walk: keep it as a name
                    found.update(Path(folder, d) for d in folders if Path(folder, d).is_symlink())
            elif path.is_symlink() or path.exists():
                found.add(path)
    return sorted(found)


def cache_key(rendered_key: str, root: Path, patterns: Iterable[str]) -> str:
    """`KEY#HASH`: the rendered key, and a hash of the names and contents of its files, so
    changing any of them (or adding or removing one) makes another key. A symbolic link
    counts by where it points, anything else that is no regular file by its kind."""
    digest = hashlib.sha256(rendered_key.encode())
    for path in cached_files(root, patterns):
        digest.update(str(path.relative_to(root)).encode() + b"\0")
        mode = path.lstat().st_mode
        if stat.S_ISLNK(mode):
            content = b"link:" + os.fsencode(os.readlink(path))
        elif stat.S_ISREG(mode):
            content = path.read_bytes()
        else:
            content = f"kind:{stat.S_IFMT(mode)}".encode()
        digest.update(hashlib.sha256(content).digest())
    return f"{rendered_key}#{digest.hexdigest()[:16]}"


def workflow_dir(wf: Workflow) -> Path:
    """Where steps run and `cache.files` are found: the workflow file's directory (or the
    current one for a workflow given as a dict)."""
    smap = wf.source_map
    if smap is not None and not smap.source.startswith("<"):
        return Path(smap.source).resolve().parent
    return Path(os.getcwd())
