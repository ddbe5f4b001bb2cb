"""Step caching (SPEC 1 `cache`): the same rendered key and the same files' contents reuse an
earlier success; changing, adding or removing a file under `files` runs the step again."""

from __future__ import annotations

from pathlib import Path

import pytest

from tempeh_tui.definition import load_workflow
from tempeh_tui.engine.cache import cached_files
from tempeh_tui.engine.engine import WorkflowEngine
from tempeh_tui.events import StepStatus
from tempeh_tui.store import SqliteStore

pytestmark = pytest.mark.anyio

FLOW = """
name: cached
params:
  version: {default: "1.4.2"}
steps:
  - name: migrate
    run: echo ran >> ledger
    cache:
      key: "{{ params.version }}"
      files: ["migrations/**"]
"""


async def _run(tmp_path: Path, **params: str) -> tuple[StepStatus, bool]:
    workflow = load_workflow(tmp_path / "flow.yaml")
    async with SqliteStore(tmp_path / "tempeh.db") as store:
        result = await WorkflowEngine(store=store).execute_workflow(workflow, params=params)
    unit = result["migrate"]
    return unit.status, unit.cached


def _ledger(tmp_path: Path) -> int:
    return len((tmp_path / "ledger").read_text().splitlines())


async def test_a_cached_step_runs_again_only_when_its_key_or_files_change(tmp_path: Path) -> None:
    (tmp_path / "flow.yaml").write_text(FLOW)
    migrations = tmp_path / "migrations"
    (migrations / "v1").mkdir(parents=True)
    (migrations / "001.sql").write_text("create table t (id int);\n")
    (migrations / "v1" / "002.sql").write_text("alter table t add name text;\n")

    assert await _run(tmp_path) == (StepStatus.SUCCEEDED, False)
    assert await _run(tmp_path) == (StepStatus.SUCCEEDED, True)
    assert _ledger(tmp_path) == 1

    (migrations / "v1" / "002.sql").write_text("alter table t add title text;\n")  # deep file
    assert await _run(tmp_path) == (StepStatus.SUCCEEDED, False)
    (migrations / "v1" / "003.sql").write_text("drop table t;\n")  # a new file
    assert await _run(tmp_path) == (StepStatus.SUCCEEDED, False)
    assert await _run(tmp_path) == (StepStatus.SUCCEEDED, True)
    assert await _run(tmp_path, version="1.5.0") == (StepStatus.SUCCEEDED, False)  # the key
    assert _ledger(tmp_path) == 4


def test_double_star_means_every_file_below_and_a_folder_means_its_files(tmp_path: Path) -> None:
    for name in ("a/x.sql", "a/b/y.sql", "a/b/c/z.sql", "other.txt"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(name)
    every = [tmp_path / n for n in ("a/b/c/z.sql", "a/b/y.sql", "a/x.sql")]
    assert cached_files(tmp_path, ["a/**"]) == every
    assert cached_files(tmp_path, ["a"]) == every
    assert cached_files(tmp_path, ["a/**/*.sql", "a/x.sql"]) == every  # each file once
    assert cached_files(tmp_path, ["*.txt"]) == [tmp_path / "other.txt"]
    assert cached_files(tmp_path, ["missing/**"]) == []


async def test_rolling_back_a_cache_hit_leaves_the_earlier_runs_work_in_place(
    tmp_path: Path,
) -> None:
    """A cache hit did nothing in its run: its rollback undid the work of the run it was
    cached from, and the next run, a cache hit again, found nothing in place."""
    (tmp_path / "flow.yaml").write_text(
        """
name: cached
params: {fail: {default: "no"}}
steps:
  - name: install
    run: echo installed > state
    rollback: rm -f state
    cache: {key: v1}
  - name: after
    needs: [install]
    run: test "{{ params.fail }}" != yes
"""
    )
    workflow = load_workflow(tmp_path / "flow.yaml")
    async with SqliteStore(tmp_path / "tempeh.db") as store:
        engine = WorkflowEngine(store=store)
        assert (await engine.execute_workflow(workflow)).succeeded
        failed = await engine.execute_workflow(
            workflow, params={"fail": "yes"}, on_failure="rollback"
        )
        assert failed.status.value == "rolled_back"
        assert failed["install"].cached
    assert (tmp_path / "state").read_text() == "installed\n"


def test_links_and_pipes_under_cache_files_are_names_never_followed_or_opened(
    tmp_path: Path,
) -> None:
    """A dangling link or a link loop crashed the run (and `plan`); a named pipe hung it."""
    import os

    from tempeh_tui.engine.cache import cache_key

    src = tmp_path / "src"
    src.mkdir()
    (src / "a.txt").write_text("a")
    (src / "dangling").symlink_to("/nonexistent")
    (src / "loop").symlink_to("..")
    os.mkfifo(src / "fifo")
    names = [p.name for p in cached_files(tmp_path, ["src/**"])]
    assert names == ["a.txt", "dangling", "fifo", "loop"]
    first = cache_key("k", tmp_path, ["src/**"])
    assert cache_key("k", tmp_path, ["src/**"]) == first
    (src / "dangling").unlink()
    (src / "dangling").symlink_to("/elsewhere")
    assert cache_key("k", tmp_path, ["src/**"]) != first


@pytest.mark.parametrize("pattern", ["/etc/passwd", "../elsewhere/**", "~/x"])
def test_a_cache_pattern_outside_the_workflows_directory_is_refused(pattern: str) -> None:
    """An absolute one crashed `plan` and `run` with a traceback."""
    from tempeh_tui.errors import WorkflowError

    step = {"name": "b", "run": "true", "cache": {"key": "k", "files": [pattern]}}
    with pytest.raises(WorkflowError, match="leaves the workflow's directory"):
        load_workflow({"name": "w", "steps": [step]})
