"""Step caching (SPEC 1 `cache`): a key is the rendered `key` plus the content hash of `files`."""

from __future__ import annotations

import glob
import hashlib
import os
from collections.abc import Iterable
from pathlib import Path

from tempeh_tui.definition.models import Workflow

__all__ = ["cache_key", "cached_files", "workflow_dir"]


def cached_files(root: Path, patterns: Iterable[str]) -> list[Path]:
    """The files `patterns` name under `root`, sorted, each once. `**` matches any depth (as in
    `.gitignore`): `migrations/**` is every file below `migrations`, and a pattern that names
    a directory means every file in it."""
    found: set[Path] = set()
    for pattern in patterns:
        for match in glob.glob(pattern, root_dir=root, recursive=True):
            path = root / match
            if path.is_dir():
                for folder, _, names in os.walk(path):
                    found.update(Path(folder, name) for name in names)
            elif path.is_file():
                found.add(path)
    return sorted(found)


def cache_key(rendered_key: str, root: Path, patterns: Iterable[str]) -> str:
    """`KEY#HASH`: the rendered key, and a hash of the names and contents of its files, so
    changing any of them (or adding or removing one) makes another key."""
    digest = hashlib.sha256(rendered_key.encode())
    for path in cached_files(root, patterns):
        digest.update(str(path.relative_to(root)).encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return f"{rendered_key}#{digest.hexdigest()[:16]}"


def workflow_dir(wf: Workflow) -> Path:
    """Where steps run and `cache.files` are found: the workflow file's directory (or the
    current one for a workflow given as a dict)."""
    smap = wf.source_map
    if smap is not None and not smap.source.startswith("<"):
        return Path(smap.source).resolve().parent
    return Path(os.getcwd())
