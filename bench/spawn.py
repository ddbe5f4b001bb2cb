"""How close LocalExecutor's spawning comes to `make -j8`, the floor for running processes.

Two workloads, each `bash -c true`: 1,000 independent commands at concurrency 8, and a chain of
200 where each waits for the one before. make runs an equivalent generated Makefile in the same
run; the figures are medians of `--runs` rounds, interleaved so load on the machine hits both.
"cpu/step" is this process's own CPU time per step (children excluded): the executor's cost,
steadier than wall time on a busy machine.

    .venv/bin/python bench/spawn.py [--runs 3] [--independent 1000] [--chain 200]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import anyio

from tempeh_tui.engine.executor import ShellRequest
from tempeh_tui.engine.local_executor import LocalExecutor

CONCURRENCY = 8


class _Discard:
    """An observer that drops everything (there is nothing to see from `true`)."""

    def output(self, stream: str, line: str) -> None:
        pass

    def spawned(self, pid: int, started: float | None = None) -> None:
        pass


def _write_makefile(directory: Path, count: int, *, chain: bool) -> Path:
    """Targets t0..tN, each running `bash -c true`; in a chain each needs the one before."""
    lines = [".PHONY: all " + " ".join(f"t{i}" for i in range(count)), f"all: t{count - 1}"]
    if not chain:
        lines[1] = "all: " + " ".join(f"t{i}" for i in range(count))
    for i in range(count):
        needs = f" t{i - 1}" if chain and i else ""
        lines += [f"t{i}:{needs}", "\t@bash -c true"]
    path = directory / ("chain.mk" if chain else "independent.mk")
    path.write_text("\n".join(lines) + "\n")
    return path


def _own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _make(makefile: Path) -> float:
    started = time.perf_counter()
    subprocess.run(["make", "-s", f"-j{CONCURRENCY}", "-f", str(makefile)], check=True)
    return time.perf_counter() - started


async def _run(executor: LocalExecutor, request: ShellRequest) -> None:
    result = await executor.run_shell(request, _Discard())
    if not result.ok:
        raise RuntimeError(f"bash -c true failed: {result}")


async def _independent(executor: LocalExecutor, request: ShellRequest, count: int) -> float:
    limiter = anyio.CapacityLimiter(CONCURRENCY)

    async def one() -> None:
        async with limiter:
            await _run(executor, request)

    started = time.perf_counter()
    async with anyio.create_task_group() as group:
        for _ in range(count):
            group.start_soon(one)
    return time.perf_counter() - started


async def _chain(executor: LocalExecutor, request: ShellRequest, count: int) -> float:
    started = time.perf_counter()
    for _ in range(count):
        await _run(executor, request)
    return time.perf_counter() - started


async def _main(runs: int, independent: int, chain: int) -> None:
    executor = LocalExecutor()
    with tempfile.TemporaryDirectory(prefix="tempeh-bench-") as tmp:
        directory = Path(tmp)
        # The environment make's children get too: this one's (a step sees it plus its own).
        # Measured here, `LANG=C.UTF-8` alone costs bash ~250 µs per start (its locale).
        request = ShellRequest("true", dict(os.environ), tmp)
        workloads: list[tuple[str, Path, Callable[[], Awaitable[float]]]] = [
            (
                f"{independent} independent, {CONCURRENCY} at a time",
                _write_makefile(directory, independent, chain=False),
                lambda: _independent(executor, request, independent),
            ),
            (
                f"chain of {chain}",
                _write_makefile(directory, chain, chain=True),
                lambda: _chain(executor, request, chain),
            ),
        ]
        await _independent(executor, request, 50)  # warm up: worker threads, imports
        for (name, makefile, ours), steps in zip(workloads, (independent, chain), strict=True):
            make_times, our_times, our_cpu = [], [], []
            for _ in range(runs):
                make_times.append(_make(makefile))
                cpu = _own_cpu()
                our_times.append(await ours())
                our_cpu.append(_own_cpu() - cpu)
            make_s, ours_s = statistics.median(make_times), statistics.median(our_times)
            cpu_us = statistics.median(our_cpu) / steps * 1e6
            print(
                f"{name:32} make -j{CONCURRENCY} {make_s:6.3f} s   LocalExecutor {ours_s:6.3f} s"
                f"   ratio {ours_s / make_s:4.2f}x   cpu/step {cpu_us:4.0f} µs"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--independent", type=int, default=1000)
    parser.add_argument("--chain", type=int, default=200)
    args = parser.parse_args()
    anyio.run(_main, args.runs, args.independent, args.chain)


if __name__ == "__main__":
    main()
