"""The engine against references measured in the same run (issue 3's targets).

    .venv/bin/python bench/engine.py [--repeat 3]

Prints medians and ratios:
- `tempeh run --headless` as a whole process vs `make -j8` on 1,000 independent `true` steps at
  concurrency 8 (target ≤ 1.5×) and on a chain of 200 (≤ 2.5×), store and log capture on;
- the engine alone through the API, interpreter start excluded (≤ 1.2× and ≤ 2×);
- 10,000 no-op Python steps through the API as a whole process vs a bare anyio loop (≤ 0.6 s),
  and the same with checkpointing off (issue 4: checkpointing costs ≤ 10% on these benchmarks);
- `tempeh --help` (< 150 ms);
- where a whole process's time goes before its first step: a one-step `tempeh run` against
  `python -c pass` and against importing only the libraries tempeh's run path needs (asyncio,
  anyio, sqlite3, yaml, and pydantic with one model: pydantic imports most of itself lazily, when
  the first model class is made).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PYTHON = sys.executable
TEMPEH = [PYTHON, "-m", "tempeh_tui"]


def median_time(action: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        action()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


# Children run as an installed tool normally does: with bytecode caches (this workplace sets
# PYTHONDONTWRITEBYTECODE, which makes every start compile tempeh again).
CHILD_ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def shell(args: list[str], **kw: object) -> None:
    kw.setdefault("env", CHILD_ENV)
    subprocess.run(args, check=True, stdout=subprocess.DEVNULL, **kw)  # type: ignore[call-overload]


def write_makefile(path: Path, n: int, chain: bool) -> None:
    lines = ["all: " + " ".join(f"t{i}" for i in range(n))]
    for i in range(n):
        need = f" t{i - 1}" if chain and i else ""
        lines.append(f"t{i}:{need}\n\t@bash -c true")
    path.write_text("\n".join(lines) + "\n")


def write_workflow(path: Path, n: int, chain: bool) -> None:
    steps = []
    for i in range(n):
        need = f", needs: [t{i - 1}]" if chain and i else ""
        steps.append(f'  - {{name: t{i}, run: "true"{need}}}')
    path.write_text("name: bench\nmax_concurrency: 8\nsteps:\n" + "\n".join(steps) + "\n")


ENGINE_ALONE = textwrap.dedent(
    """
    import sys, time, anyio
    from tempeh_tui.definition import load_workflow
    from tempeh_tui.engine.engine import WorkflowEngine
    from tempeh_tui.store.sqlite import SqliteStore

    async def main(path, db, checkpoint):
        workflow = load_workflow(path)
        store = SqliteStore(db)
        await store.open()
        try:
            engine = WorkflowEngine(store=store)
            start = time.perf_counter()
            result = await engine.execute_workflow(workflow, enable_checkpointing=checkpoint)
            took = time.perf_counter() - start
        finally:
            await store.close()
        assert result.succeeded, result.message
        print(took)

    anyio.run(main, sys.argv[1], sys.argv[2], sys.argv[3] == "1")
    """
)

TEN_K = textwrap.dedent(
    """
    import sys, anyio
    sys.path.insert(0, sys.argv[1])
    from tempeh_tui.definition import load_workflow
    from tempeh_tui.engine.engine import WorkflowEngine
    from tempeh_tui.store.sqlite import SqliteStore

    async def main():
        steps = [{"name": f"s{i}", "python": "bench_noop:noop"} for i in range(10_000)]
        workflow = load_workflow({"name": "tenk", "max_concurrency": 8, "steps": steps})
        store = SqliteStore(sys.argv[2])
        await store.open()
        try:
            engine = WorkflowEngine(store=store)
            checkpoint = sys.argv[3] == "1"
            result = await engine.execute_workflow(workflow, enable_checkpointing=checkpoint)
        finally:
            await store.close()
        assert result.succeeded

    anyio.run(main)
    """
)

LIBRARIES_ONLY = textwrap.dedent(
    """
    import asyncio, sqlite3
    import anyio, pydantic, yaml

    class Model(pydantic.BaseModel):
        x: int
    """
)

BARE_ANYIO = textwrap.dedent(
    """
    import anyio

    async def noop():
        return None

    async def main():
        limiter = anyio.CapacityLimiter(8)
        async def one():
            async with limiter:
                await noop()
        async with anyio.create_task_group() as tg:
            for _ in range(10_000):
                tg.start_soon(one)

    anyio.run(main)
    """
)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=3)
    repeat = parser.parse_args().repeat
    rows: list[tuple[str, float, float, str]] = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        env = {**CHILD_ENV, "TEMPEH_DB": str(work / "cli.db")}
        for label, n, chain, whole, alone in (
            ("1,000 independent", 1000, False, 1.5, 1.2),
            ("chain of 200", 200, True, 2.5, 2.0),
        ):
            makefile, flow = work / f"Makefile.{n}", work / f"flow{n}.yaml"
            write_makefile(makefile, n, chain)
            write_workflow(flow, n, chain)
            make_args = ["make", "-s", "-j8", "-f", str(makefile)]
            run_args = [*TEMPEH, "run", str(flow), "--headless"]
            make = median_time(lambda: shell(make_args), repeat)  # noqa: B023
            run = median_time(lambda: shell(run_args, env=env, cwd=ROOT), repeat)  # noqa: B023
            rows.append((f"tempeh run, {label}", run, make, f"≤ {whole}×"))
            alone_times: list[float] = []
            bare_times: list[float] = []
            for i in range(repeat):
                for checkpoint, bucket in (("1", alone_times), ("0", bare_times)):
                    out = subprocess.run(
                        [
                            *(PYTHON, "-c", ENGINE_ALONE, str(flow)),
                            str(work / f"{n}-{i}-{checkpoint}.db"),  # a fresh store each time
                            checkpoint,
                        ],
                        check=True,
                        capture_output=True,
                        text=True,
                        cwd=ROOT,
                        env=CHILD_ENV,
                    )
                    bucket.append(float(out.stdout))
            rows.append(
                (f"engine via API, {label}", statistics.median(alone_times), make, f"≤ {alone}×")
            )
            rows.append(
                (
                    f"  same, checkpointing off, {label}",
                    statistics.median(bare_times),
                    make,
                    "(for issue 4: ≤ 10% cost)",
                )
            )
        (work / "bench_noop.py").write_text("async def noop(ctx):\n    return None\n")
        bare = median_time(lambda: shell([PYTHON, "-c", BARE_ANYIO]), repeat)
        stores = iter(range(1_000_000))

        def ten_k_steps(checkpoint: str) -> None:  # a fresh store each time
            db = work / f"tenk-{next(stores)}.db"
            shell([PYTHON, "-c", TEN_K, str(work), str(db), checkpoint], cwd=ROOT)

        ten_k = {c: median_time(lambda: ten_k_steps(c), repeat) for c in ("1", "0")}  # noqa: B023
        rows.append(("10,000 no-op Python steps (process)", ten_k["1"], bare, "≤ 0.6 s"))
        rows.append(
            (
                "  same, checkpointing off",
                ten_k["0"],
                bare,
                f"(checkpointing costs {ten_k['1'] / ten_k['0'] - 1:.0%}; issue 4: ≤ 10%)",
            )
        )
        helptime = median_time(lambda: shell([*TEMPEH, "--help"], cwd=ROOT), max(repeat, 5))
        python = median_time(lambda: shell([PYTHON, "-c", "pass"]), max(repeat, 5))
        rows.append(("tempeh --help (process)", helptime, python, "< 150 ms"))
        one = work / "one.yaml"
        one.write_text('name: one\nsteps:\n  - {name: a, run: "true"}\n')
        run_one = median_time(
            lambda: shell([*TEMPEH, "run", str(one), "--headless"], env=env, cwd=ROOT),
            max(repeat, 5),
        )
        libraries = median_time(lambda: shell([PYTHON, "-c", LIBRARIES_ONLY]), max(repeat, 5))
        rows.append(("tempeh run, 1 step (process)", run_one, python, "(start-up: vs python)"))
        rows.append(("  its libraries' imports alone", libraries, python, "(vs python)"))
    width = max(len(r[0]) for r in rows)
    print(f"{'measure':<{width}}  {'seconds':>8}  {'reference':>9}  {'ratio':>6}  target")
    for label, value, reference, target in rows:
        ratio = value / reference
        print(f"{label:<{width}}  {value:8.3f}  {reference:9.3f}  {ratio:6.2f}  {target}")
    print(json.dumps({r[0]: round(r[1], 4) for r in rows}))


if __name__ == "__main__":
    main()
