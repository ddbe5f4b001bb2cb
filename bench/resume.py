"""Resume of a finished 10,000-step run (issue 4: decides everything in under 1 s).

    .venv/bin/python bench/resume.py

Runs a 10,000-step workflow of no-op Python steps once (not timed), then times
`WorkflowEngine.resume` on it, which must load the stored definition, check its hash, decide
"reuse" for every unit and finish, reporting how long the decisions took and the whole resume.
The reference is the time `load_workflow` takes for the same 10,000 steps, in the same process.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import anyio

from tempeh_tui.definition import load_workflow
from tempeh_tui.engine.engine import WorkflowEngine
from tempeh_tui.engine.resume import ResumePlan
from tempeh_tui.store.sqlite import SqliteStore

STEPS = 10_000


async def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        await anyio.Path(tmp, "bench_noop.py").write_text("async def noop(ctx):\n    return None\n")
        sys.path.insert(0, tmp)
        steps = [{"name": f"s{i}", "python": "bench_noop:noop"} for i in range(STEPS)]
        started = time.perf_counter()
        workflow = load_workflow({"name": "tenk", "max_concurrency": 8, "steps": steps})
        load = time.perf_counter() - started
        store = SqliteStore(Path(tmp, "t.db"))
        await store.open()
        try:
            done = await WorkflowEngine(store=store).execute_workflow(workflow)
            assert done.succeeded
            decided: list[float] = []
            started = time.perf_counter()

            def explain(plan: ResumePlan) -> None:
                decided.append(time.perf_counter() - started)
                assert plan.counts() == {"reuse": STEPS}

            resumed = await WorkflowEngine(store=store).resume(done.run_id, explain=explain)
            whole = time.perf_counter() - started
        finally:
            await store.close()
        assert resumed.succeeded
    print(f"load_workflow of {STEPS:,} steps (reference)  {load:6.3f} s")
    print(f"resume: every unit decided after              {decided[0]:6.3f} s  (target < 1 s)")
    print(f"resume: whole, the run finished again          {whole:6.3f} s")


if __name__ == "__main__":
    anyio.run(main)
