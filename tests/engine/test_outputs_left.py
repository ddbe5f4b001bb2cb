"""What an attempt its engine never saw end wrote to `$TEMPEH_OUTPUT`, read back from that
engine's scratch folder (a resume's check probe, and a rollback, use it)."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tempeh_tui.engine.outputs import OutputFileError
from tempeh_tui.engine.unit_runner import (
    output_file_of,
    outputs_left,
    scratch_folders,
    scratch_prefix,
)


@pytest.fixture
def folder() -> Iterator[Path]:
    run_id = f"test-{os.getpid()}-{id(object())}"
    path = Path(tempfile.mkdtemp(prefix=scratch_prefix(run_id)))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _run_id(folder: Path) -> str:
    return folder.name.split("-", 1)[1].rsplit("-", 1)[0]


def _write(folder: Path, unit: str, attempt: int, iteration: int, text: str) -> None:
    Path(output_file_of(str(folder), unit, attempt, iteration)).write_text(text)


def test_a_loops_iterations_are_merged_in_order_a_later_value_winning(folder: Path) -> None:
    """As in a run: what iteration 1 wrote stands unless a later one wrote it again (only
    the newest iteration's file was read: `url`, written once, was lost)."""
    _write(folder, "s", 1, 1, "url=http://127.0.0.1:8765\nhealthy=false\n")
    _write(folder, "s", 1, 2, "healthy=true\n")
    _write(folder, "s", 1, 10, "phase=10\n")

    left = outputs_left(_run_id(folder), "s", 1)

    assert left == {"url": "http://127.0.0.1:8765", "healthy": "true", "phase": "10"}


def test_another_step_whose_name_extends_this_ones_is_not_read(folder: Path) -> None:
    """`db` and `db.1` are both valid names: `db.1.*.out` matched `db.1`'s files too."""
    _write(folder, "db.1", 1, 1, "password_hint=from-db.1\n")

    assert outputs_left(_run_id(folder), "db", 1) == {}
    assert outputs_left(_run_id(folder), "db.1", 1) == {"password_hint": "from-db.1"}


def test_a_file_cut_short_is_an_error_not_nothing(folder: Path) -> None:
    _write(folder, "a", 1, 1, "v=42\ncert<<END\n-----BEGIN\n")  # the crash came mid-write

    with pytest.raises(OutputFileError):
        outputs_left(_run_id(folder), "a", 1)


def test_a_run_whose_id_goes_on_after_this_ones_keeps_its_folder_to_itself() -> None:
    """`tempeh-rel-*` matched `tempeh-rel-eu-*` too: resuming `rel` removed the folder of the
    live run `rel-eu`, whose step then failed."""
    run_id = f"rel{os.getpid()}"
    mine = tempfile.mkdtemp(prefix=scratch_prefix(run_id))
    theirs = tempfile.mkdtemp(prefix=scratch_prefix(f"{run_id}-eu"))
    try:
        assert scratch_folders(run_id) == [mine]
        assert scratch_folders(f"{run_id}-eu") == [theirs]
    finally:
        shutil.rmtree(mine)
        shutil.rmtree(theirs)
