"""Files that are not reasonable workflows are refused at once, with one clear problem.

Never another exception, never a hang, never a huge allocation: each must be answered fast.
"""

from __future__ import annotations

import os
import random
import threading
import time
from pathlib import Path

import pytest

from tempeh_tui.definition import load_workflow
from tempeh_tui.definition.yaml_reader import MAX_FILE_BYTES
from tempeh_tui.errors import Problem, WorkflowError


def refused(path: Path) -> Problem:
    """The one problem `load_workflow(path)` reports; it must come within two seconds."""
    started = time.perf_counter()
    with pytest.raises(WorkflowError) as caught:
        load_workflow(path)
    elapsed = time.perf_counter() - started
    assert elapsed < 2.0, f"took {elapsed:.2f}s"
    problems = caught.value.problems
    assert len(problems) == 1, "\n".join(str(p) for p in problems)
    assert problems[0].source == str(path)
    return problems[0]


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "hostile.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_an_alias_bomb_is_refused_before_it_expands(tmp_path: Path) -> None:
    lines = ["a: &a [x, x, x, x, x, x, x, x, x]"]
    for previous, name in zip("abcdefgh", "bcdefghi", strict=True):
        lines.append(f"{name}: &{name} [" + ", ".join([f"*{previous}"] * 9) + "]")
    lines.append("name: bomb")
    problem = refused(write(tmp_path, "\n".join(lines) + "\n"))
    assert "aliases expand to more than" in problem.message
    assert "alias bomb" in problem.message
    assert problem.line is not None
    assert problem.line <= 9


def test_block_nesting_deeper_than_64_levels_is_refused(tmp_path: Path) -> None:
    text = "name: deep\nsteps:\n" + "".join(
        "  " * depth + f"k{depth}:\n" for depth in range(1, 200)
    )
    problem = refused(write(tmp_path, text + "  " * 200 + "end\n"))
    assert problem.message == "nesting deeper than 64 levels"
    assert problem.line == 66  # level n starts on line n + 1


@pytest.mark.parametrize("depth", [65, 1_000, 100_000])
def test_flow_nesting_deeper_than_64_levels_is_refused(tmp_path: Path, depth: int) -> None:
    problem = refused(write(tmp_path, "[" * depth + "]" * depth + "\n"))
    assert problem.message == "nesting deeper than 64 levels"
    assert problem.line == 1


def nested_for_each(tmp_path: Path, lists: int) -> Path:
    """A workflow nested 3 + `lists` levels deep: root, steps, a step, then for_each's lists."""
    opening, closing = "[" * lists, "]" * lists
    text = f"name: deep\nsteps:\n  - name: a\n    run: echo\n    for_each: {opening}x{closing}\n"
    return write(tmp_path, text)


def test_nesting_of_exactly_64_levels_is_read(tmp_path: Path) -> None:
    with pytest.raises(WorkflowError) as caught:  # read; only the nested items are invalid
        load_workflow(nested_for_each(tmp_path, 61))
    [problem] = caught.value.problems
    assert "items must be text, numbers, booleans or mappings" in problem.message


def test_nesting_of_65_levels_is_refused(tmp_path: Path) -> None:
    problem = refused(nested_for_each(tmp_path, 62))
    assert problem.message == "nesting deeper than 64 levels"
    assert (problem.line, problem.col) == (5, 76)


def test_a_file_over_10_mb_is_refused_without_being_read(tmp_path: Path) -> None:
    path = tmp_path / "huge.yaml"
    with path.open("wb") as file:
        file.truncate(MAX_FILE_BYTES + 1)  # sparse: no time or disk spent
    problem = refused(path)
    assert "limited to 10 MB" in problem.message
    assert "10.0 MB" in problem.message


def test_an_endless_device_is_refused_after_10_mb() -> None:
    problem = refused(Path("/dev/zero"))
    assert "over 10 MB" in problem.message


def test_binary_garbage_is_refused_as_binary(tmp_path: Path) -> None:
    garbage = random.Random(2024).randbytes(4096)
    path = tmp_path / "garbage.yaml"
    path.write_bytes(garbage[:100] + b"\0" + garbage[100:])
    problem = refused(path)
    assert "binary data" in problem.message
    assert "expected a YAML text file" in problem.message


def test_latin_1_text_is_refused_with_the_position_of_the_bad_byte(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes("name: cafe\ndescription: Café\n".encode("latin-1"))
    problem = refused(path)
    assert (problem.line, problem.col) == (2, 17)
    assert "not UTF-8 text (byte 0xe9)" in problem.message
    assert "save the file as UTF-8" in problem.message


def test_a_utf_8_byte_order_mark_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "bom.yaml"
    path.write_bytes("\ufeffname: bom\nsteps:\n  - {name: a, run: echo}\n".encode())
    assert load_workflow(path).name == "bom"


@pytest.mark.parametrize("text", ["", "\n\n", "# only a comment\n", "---\n"])
def test_an_empty_file_says_what_a_workflow_needs(tmp_path: Path, text: str) -> None:
    problem = refused(write(tmp_path, text))
    assert (problem.line, problem.col) == (1, 1)
    assert "the file is empty" in problem.message
    assert "name and steps" in problem.message


def test_a_list_at_the_root_is_refused(tmp_path: Path) -> None:
    problem = refused(write(tmp_path, "- name: a\n  run: echo\n"))
    assert (problem.line, problem.col) == (1, 1)
    assert "expected a mapping (name:, steps:, ...) at the top level, found a list" in str(problem)


def test_a_bare_word_at_the_root_is_refused(tmp_path: Path) -> None:
    problem = refused(write(tmp_path, "hello\n"))
    assert "at the top level, found the text 'hello'" in problem.message


def test_a_directory_is_refused(tmp_path: Path) -> None:
    problem = refused(tmp_path)
    assert problem.message == "is a directory; expected a YAML workflow file"


def test_a_missing_path_is_refused(tmp_path: Path) -> None:
    problem = refused(tmp_path / "nope.yaml")
    assert problem.message == "no such file"
    assert str(problem) == f"{tmp_path / 'nope.yaml'}: no such file"


def test_a_second_yaml_document_is_refused(tmp_path: Path) -> None:
    problem = refused(
        write(tmp_path, "name: one\nsteps:\n  - {name: a, run: echo}\n---\nname: two\n")
    )
    assert (problem.line, problem.col) == (4, 1)
    assert "found a second one" in problem.message


@pytest.mark.parametrize(
    "value",
    [
        "!!python/object/apply:os.system ['touch PWNED']",
        "!!python/name:os.system",
        "!!python/object/new:subprocess.Popen {args: [touch, PWNED]}",
        "!Ref other",
    ],
)
def test_python_and_custom_tags_are_refused_and_never_built(tmp_path: Path, value: str) -> None:
    path = write(tmp_path, f"name: tagged\nsteps:\n  - name: a\n    run: {value}\n")
    problem = refused(path)
    assert (problem.line, problem.col) == (4, 10)
    assert "unsupported YAML tag" in problem.message
    assert value.split(maxsplit=1)[0] in problem.message
    assert not (tmp_path / "PWNED").exists()
    assert not Path("PWNED").exists()


@pytest.mark.parametrize(
    "text",
    ['name: t\nsteps:\n\t- {name: a, run: "true"}\n', "name: t\nsteps:\n  - name: a\n\trun: x\n"],
)
def test_a_tab_in_the_indentation_is_named(text: str) -> None:
    from tempeh_tui.definition.yaml_reader import read_yaml_text

    with pytest.raises(WorkflowError) as caught:
        read_yaml_text(text, "tabs.yaml")
    (problem,) = caught.value.problems
    assert (problem.line, problem.col) in {(3, 1), (4, 1)}
    assert "a tab character; YAML indents with spaces only" in problem.message


def test_a_named_pipe_nobody_writes_to_is_read_as_empty_not_waited_for(tmp_path: Path) -> None:
    """Opening a FIFO without a writer blocked for ever (`tempeh validate fifo` hung)."""
    fifo = tmp_path / "flow.yaml"
    os.mkfifo(fifo)
    done = threading.Event()
    problems: list[Problem] = []

    def load() -> None:
        try:
            load_workflow(fifo)
        except WorkflowError as exc:
            problems.extend(exc.problems)
        finally:
            done.set()

    threading.Thread(target=load, daemon=True).start()
    assert done.wait(10), "loading a named pipe with no writer never returned"
    assert [p.message for p in problems] == [
        "the file is empty; expected a workflow with name and steps"
    ]


def test_a_pipe_with_a_writer_is_read(tmp_path: Path) -> None:
    """`tempeh run <(envsubst < flow.yaml)`: the workflow comes through a pipe."""
    read, write = os.pipe()
    with os.fdopen(write, "w") as out:
        out.write("name: piped\nsteps:\n  - {name: a, run: 'true'}\n")
    try:
        assert load_workflow(f"/proc/self/fd/{read}").name == "piped"
    finally:
        os.close(read)
