"""LocalExecutor.run_shell, for real: processes, pipes, signals and process groups."""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import anyio
import anyio.lowlevel
import pytest

from tempeh_tui.engine.local_executor import LocalExecutor
from tempeh_tui.engine.shell_process import MAX_LINE_BYTES, MAX_OUTPUT_FILE_BYTES, Mailbox

from .support import BASE_ENV, Recorder, alive, read_pids, shell

pytestmark = pytest.mark.anyio


@pytest.fixture
def executor() -> LocalExecutor:
    return LocalExecutor()


@pytest.fixture
def leftovers() -> Iterator[list[int]]:
    """Process groups a test leaves running on purpose; killed afterwards."""
    groups: list[int] = []
    yield groups
    for group in groups:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(group, signal.SIGKILL)


async def test_output_streams_arrive_line_by_line_in_order(
    executor: LocalExecutor, tmp_path: Path
) -> None:
    recorder = Recorder()
    command = "echo one; echo err-one >&2; echo two; echo err-two >&2; echo three"
    result = await executor.run_shell(shell(command, tmp_path), recorder)

    assert result.ok
    assert recorder.stream("stdout") == ["one", "two", "three"]
    assert recorder.stream("stderr") == ["err-one", "err-two"]
    assert recorder.threads == {threading.get_ident()}  # the observer runs on the loop thread


async def test_spawned_is_reported_once_before_any_output(
    executor: LocalExecutor, tmp_path: Path
) -> None:
    recorder = Recorder()
    result = await executor.run_shell(shell("echo $$", tmp_path), recorder)

    assert result.ok
    assert recorder.pids == [int(recorder.stream("stdout")[0])]


async def test_a_line_written_in_pieces_arrives_whole(
    executor: LocalExecutor, tmp_path: Path
) -> None:
    recorder = Recorder()
    command = r"printf 'hel'; sleep 0.2; printf 'lo\n'; printf '\xc3'; sleep 0.2; printf '\xa9\n'"
    await executor.run_shell(shell(command, tmp_path), recorder)

    assert recorder.stream("stdout") == ["hello", "é"]


async def test_crlf_invalid_utf8_and_an_unterminated_last_line(
    executor: LocalExecutor, tmp_path: Path
) -> None:
    recorder = Recorder()
    await executor.run_shell(shell(r"printf 'dos\r\nbad \xff\n\nlast'", tmp_path), recorder)

    assert recorder.stream("stdout") == ["dos", "bad \ufffd", "", "last"]


async def test_an_endless_line_is_cut_into_pieces(executor: LocalExecutor, tmp_path: Path) -> None:
    recorder = Recorder()
    command = "head -c 150000 /dev/zero | tr '\\0' x; echo; echo after"
    await executor.run_shell(shell(command, tmp_path), recorder)

    lines = recorder.stream("stdout")
    assert [len(line) for line in lines[:-1]] == [
        MAX_LINE_BYTES,
        MAX_LINE_BYTES,
        150000 - 2 * MAX_LINE_BYTES,
    ]
    assert lines[-1] == "after"


async def test_twenty_thousand_lines_arrive_complete_and_in_order(
    executor: LocalExecutor, tmp_path: Path
) -> None:
    recorder = Recorder()
    result = await executor.run_shell(shell("seq 1 20000; echo end >&2", tmp_path), recorder)

    assert result.ok
    assert recorder.stream("stdout") == [str(n) for n in range(1, 20001)]
    assert recorder.stream("stderr") == ["end"]


async def test_exit_codes_and_signals_are_reported(executor: LocalExecutor, tmp_path: Path) -> None:
    failed = await executor.run_shell(shell("exit 3", tmp_path), Recorder())
    killed = await executor.run_shell(shell("kill -KILL $$", tmp_path), Recorder())

    assert (failed.exit_code, failed.signal, failed.ok) == (3, None, False)
    assert (killed.exit_code, killed.signal, killed.ok) == (None, signal.SIGKILL, False)


async def test_the_environment_is_exactly_the_one_given(
    executor: LocalExecutor, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TEMPEH_TEST_LEAK", "from the engine's own environment")
    recorder = Recorder()
    await executor.run_shell(shell("env", tmp_path, env={"TEMPEH_STEP": "s"}), recorder)

    names = {line.split("=", 1)[0] for line in recorder.stream("stdout")}
    assert names - {"PWD", "SHLVL", "_"} == {*BASE_ENV, "TEMPEH_STEP"}  # bash adds those three


async def test_the_command_runs_in_the_given_directory_with_no_stdin(
    executor: LocalExecutor, tmp_path: Path
) -> None:
    recorder = Recorder()
    await executor.run_shell(shell("pwd; cat; echo read-nothing", tmp_path), recorder)

    assert recorder.stream("stdout") == [str(tmp_path), "read-nothing"]


async def test_a_timeout_terminates_the_whole_process_tree(
    executor: LocalExecutor, tmp_path: Path
) -> None:
    pids = tmp_path / "pids"
    command = (
        "echo $$ >> pids; (sleep 100 & echo $! >> pids; wait) & sleep 100 & echo $! >> pids; wait"
    )
    started = time.monotonic()
    result = await executor.run_shell(shell(command, tmp_path, timeout=0.5, grace=5), Recorder())

    assert result.timed_out
    assert not result.ok
    assert result.error == "timed out after 0.5s"
    assert time.monotonic() - started < 4  # SIGTERM was enough: no wait for the grace period
    assert len(read_pids(pids)) == 3
    assert not [pid for pid in read_pids(pids) if alive(pid)]


async def test_a_command_ignoring_sigterm_is_killed_after_the_grace_period(
    executor: LocalExecutor, tmp_path: Path
) -> None:
    command = "trap '' TERM; echo ready; while :; do sleep 0.05; done"
    started = time.monotonic()
    result = await executor.run_shell(shell(command, tmp_path, timeout=0.3, grace=0.5), Recorder())

    assert result.timed_out
    assert (result.exit_code, result.signal) == (None, signal.SIGKILL)
    assert 0.7 < time.monotonic() - started < 5


async def test_a_descendant_ignoring_sigterm_is_killed_after_the_main_process_exits(
    executor: LocalExecutor, tmp_path: Path
) -> None:
    # the child says where it is once it ignores SIGTERM; the timeout leaves a loaded machine
    # a whole second to get there
    command = "(trap '' TERM; echo $BASHPID > pid; sleep 100) & wait"
    started = time.monotonic()
    result = await executor.run_shell(shell(command, tmp_path, timeout=1.0, grace=0.7), Recorder())

    assert result.timed_out
    assert result.signal == signal.SIGTERM  # the main process obeyed
    assert 1.6 < time.monotonic() - started < 6  # its child was given the grace period
    pid = read_pids(tmp_path / "pid")[0]
    assert not alive(pid)


@pytest.mark.parametrize("stop", ["timeout", "cancel"])
async def test_jobs_a_script_put_in_groups_of_their_own_are_stopped_with_it(
    executor: LocalExecutor, tmp_path: Path, stop: str
) -> None:
    # `set -m`: each job gets a process group of its own, in the step's session
    command = "set -m; (echo $BASHPID >> pids; sleep 100) & sleep 100 & echo $! >> pids; wait"
    request = shell(command, tmp_path, timeout=1.0 if stop == "timeout" else None, grace=2)
    with anyio.move_on_after(1.0 if stop == "cancel" else 30):
        result = await executor.run_shell(request, Recorder())
        assert result.timed_out
    pids = read_pids(tmp_path / "pids")
    assert len(pids) == 2
    assert not [pid for pid in pids if alive(pid)]


async def test_cancelling_the_caller_kills_the_group_and_lets_the_cancellation_through(
    executor: LocalExecutor, tmp_path: Path
) -> None:
    recorder = Recorder()
    command = "echo $$ >> pids; sleep 100 & echo $! >> pids; echo started; wait"
    with anyio.move_on_after(0.5) as scope:
        await executor.run_shell(shell(command, tmp_path, grace=5), recorder)
        pytest.fail("run_shell returned instead of being cancelled")

    assert scope.cancelled_caught
    assert recorder.stream("stdout") == ["started"]
    assert len(read_pids(tmp_path / "pids")) == 2
    assert not [pid for pid in read_pids(tmp_path / "pids") if alive(pid)]


async def test_a_background_child_holding_the_output_does_not_hold_the_step(
    executor: LocalExecutor, tmp_path: Path, leftovers: list[int]
) -> None:
    recorder = Recorder()
    command = "sleep 30 & (while :; do echo spam; sleep 0.01; done) & echo done"
    started = time.monotonic()
    result = await executor.run_shell(shell(command, tmp_path), recorder)
    leftovers.extend(recorder.pids)

    assert time.monotonic() - started < 2
    assert result.ok
    assert "done" in recorder.stream("stdout")


async def test_outputs_are_read_from_the_output_file(
    executor: LocalExecutor, tmp_path: Path
) -> None:
    output_file = tmp_path / "out"
    command = """
        echo "version=1.4.2" >> "$TEMPEH_OUTPUT"
        printf 'notes<<EOF\\nfirst\\n\\nthird\\nEOF\\n' >> "$TEMPEH_OUTPUT"
    """
    request = shell(
        command, tmp_path, env={"TEMPEH_OUTPUT": str(output_file)}, output_file=output_file
    )
    result = await executor.run_shell(request, Recorder())

    assert result.ok
    assert result.outputs == {"version": "1.4.2", "notes": "first\n\nthird"}


async def test_a_missing_output_file_means_no_outputs(
    executor: LocalExecutor, tmp_path: Path
) -> None:
    request = shell("true", tmp_path, output_file=tmp_path / "never-written")
    result = await executor.run_shell(request, Recorder())

    assert result.ok
    assert result.outputs == {}


async def test_a_malformed_output_file_fails_the_step_and_says_where(
    executor: LocalExecutor, tmp_path: Path
) -> None:
    output_file = tmp_path / "out"
    command = f"printf 'ok=1\\nno equals sign\\n' > {output_file}"
    result = await executor.run_shell(shell(command, tmp_path, output_file=output_file), Recorder())

    assert result.exit_code == 0
    assert not result.ok
    assert result.error is not None
    assert "line 2" in result.error
    assert str(output_file) in result.error


async def test_a_missing_working_directory_is_a_failed_result_not_an_exception(
    executor: LocalExecutor, tmp_path: Path
) -> None:
    missing = tmp_path / "nowhere"
    result = await executor.run_shell(shell("true", missing), Recorder())

    assert result.exit_code == 127
    assert not result.ok
    assert (
        result.error
        == f"cannot start the step: working directory '{missing}': No such file or directory"
    )


async def test_an_environment_value_with_a_nul_byte_is_a_failed_result(
    executor: LocalExecutor, tmp_path: Path
) -> None:
    result = await executor.run_shell(shell("true", tmp_path, env={"X": "a\0b"}), Recorder())

    assert result.exit_code == 126
    assert result.error is not None
    assert result.error.startswith("cannot start the step:")


async def test_an_observer_that_raises_stops_the_step_and_the_error_surfaces(
    executor: LocalExecutor, tmp_path: Path
) -> None:
    class Broken(Recorder):
        def output(self, stream: str, line: str) -> None:
            raise LookupError("observer bug")

    recorder = Broken()
    started = time.monotonic()
    with pytest.raises(LookupError, match="observer bug"):
        await executor.run_shell(shell("echo hi; sleep 100", tmp_path), recorder)
    assert time.monotonic() - started < 4
    assert not alive(recorder.pids[0])


async def test_steps_run_concurrently(executor: LocalExecutor, tmp_path: Path) -> None:
    started = time.monotonic()
    async with anyio.create_task_group() as group:
        for _ in range(6):
            group.start_soon(executor.run_shell, shell("sleep 0.5", tmp_path), Recorder())

    assert time.monotonic() - started < 2.5


async def test_the_pid_and_output_arrive_while_the_step_still_runs(
    executor: LocalExecutor, tmp_path: Path
) -> None:
    quiet, chatty = Recorder(), Recorder()
    async with anyio.create_task_group() as group:
        group.start_soon(executor.run_shell, shell("sleep 1", tmp_path), quiet)
        group.start_soon(
            executor.run_shell, shell("echo first; sleep 1; echo last", tmp_path), chatty
        )
        await anyio.sleep(0.5)
        assert len(quiet.pids) == 1
        assert len(chatty.pids) == 1
        assert chatty.stream("stdout") == ["first"]
    assert chatty.stream("stdout") == ["first", "last"]


async def test_steps_leave_no_file_descriptors_behind(
    executor: LocalExecutor, tmp_path: Path
) -> None:
    await executor.run_shell(shell("true", tmp_path), Recorder())  # warm up
    before = len(os.listdir("/proc/self/fd"))
    for command in ("echo hi", "exit 1", "sleep 5"):
        with anyio.move_on_after(0.2):
            await executor.run_shell(shell(command, tmp_path, timeout=0.1, grace=1), Recorder())
    await executor.run_shell(shell("true", tmp_path / "missing"), Recorder())

    assert len(os.listdir("/proc/self/fd")) == before


async def test_a_flood_of_output_reaches_the_loop_in_bounded_batches(
    executor: LocalExecutor, tmp_path: Path
) -> None:
    ticks = 0
    per_tick: dict[int, int] = {}

    class Counter(Recorder):
        def output(self, stream: str, line: str) -> None:
            per_tick[ticks] = per_tick.get(ticks, 0) + 1

    async def tick() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await anyio.lowlevel.checkpoint()

    async with anyio.create_task_group() as group:
        group.start_soon(tick)
        await executor.run_shell(shell("seq 1 300000", tmp_path), Counter())
        group.cancel_scope.cancel()

    assert sum(per_tick.values()) == 300000
    assert max(per_tick.values()) <= Mailbox.DELIVERY_LINES


async def test_an_output_file_that_cannot_be_read_fails_the_step(
    executor: LocalExecutor, tmp_path: Path
) -> None:
    request = shell(
        'mkdir "$TEMPEH_OUTPUT"',
        tmp_path,
        env={"TEMPEH_OUTPUT": str(tmp_path / "out")},
        output_file=tmp_path / "out",
    )
    result = await executor.run_shell(request, Recorder())

    assert not result.ok
    assert result.error is not None
    assert "cannot be read: Is a directory" in result.error


async def test_an_oversized_output_file_fails_the_step(
    executor: LocalExecutor, tmp_path: Path
) -> None:
    output_file = tmp_path / "out"
    command = f"head -c {MAX_OUTPUT_FILE_BYTES + 1} /dev/zero | tr '\\0' a > {output_file}"
    result = await executor.run_shell(shell(command, tmp_path, output_file=output_file), Recorder())

    assert not result.ok
    assert result.error is not None
    assert f"the limit is {MAX_OUTPUT_FILE_BYTES}" in result.error
