"""What a run's events leave in the store, read back through the `Store` protocol.

Every test runs against both stores (the `store` fixture): MemoryStore must behave as SQLite does.
"""

from __future__ import annotations

import pytest

from tempeh_tui.events import (
    ConcurrencyChanged,
    RunFinished,
    RunStarted,
    RunStatus,
    StepFinished,
    StepOutput,
    StepRetrying,
    StepSpawned,
    StepStarted,
    StepStatus,
    StepStatusChanged,
)
from tempeh_tui.store import RunNotFound, Store, StoreError
from tests.store.support import start_run, step_rows

pytestmark = pytest.mark.anyio


async def test_a_runs_events_are_what_get_run_reports(store: Store) -> None:
    bus = await start_run(store, "run-1")
    begun = bus.emit(RunStarted, workflow="shop-release", units=("build", "test"))
    bus.emit(StepStatusChanged, step="test", status=StepStatus.WAITING, reason="needs build")
    started = bus.emit(StepStarted, step="build", attempt=1, pid=4242)
    bus.emit(StepOutput, step="build", stream="stdout", line="compiling")
    finished = bus.emit(
        StepFinished,
        step="build",
        status=StepStatus.SUCCEEDED,
        attempts=1,
        exit_code=0,
        outputs={"artifact": "shop-1.4.2.tar.gz", "note": "ünïcode"},
    )
    bus.emit(ConcurrencyChanged, max_concurrency=6)
    end = bus.emit(RunFinished, status=RunStatus.FAILED, message="test failed")
    await store.flush()

    run = await store.get_run("run-1")

    assert (run.status, run.message, run.max_concurrency) == (RunStatus.FAILED, "test failed", 6)
    assert (run.started_at, run.ended_at) == (begun.ts, end.ts)
    assert run.params == {"version": "1.4.2", "note": "déjà vu"}
    assert run.definition["name"] == "shop-release"
    assert [s.name for s in run.steps] == ["build", "test"]  # plan order
    build, test = run.steps
    assert build.status is StepStatus.SUCCEEDED
    assert (build.attempts, build.exit_code, build.error_class) == (1, 0, None)
    assert build.outputs == {"artifact": "shop-1.4.2.tar.gz", "note": "ünïcode"}
    assert (build.started_at, build.ended_at) == (started.ts, finished.ts)
    assert build.attempt_history[0].pid == 4242
    assert (test.status, test.reason, test.attempts) == (StepStatus.WAITING, "needs build", 0)


async def test_every_attempt_keeps_its_class_exit_code_and_delay(store: Store) -> None:
    bus = await start_run(store, "run-1")
    bus.emit(RunStarted, workflow="shop-release", units=("migrate",))
    first = bus.emit(StepStarted, step="migrate", attempt=1, pid=100)
    bus.emit(
        StepRetrying,
        step="migrate",
        attempt=1,
        next_attempt=2,
        error_class="transient",
        exit_code=75,
        delay=1.5,
    )
    await store.flush()  # the attempts span flushes, as they would in a real run
    bus.emit(StepStarted, step="migrate", attempt=2, pid=101)
    bus.emit(
        StepRetrying,
        step="migrate",
        attempt=2,
        next_attempt=3,
        error_class="timeout",
        exit_code=None,
        delay=3.0,
    )
    bus.emit(StepStarted, step="migrate", attempt=3, pid=102)
    last = bus.emit(
        StepFinished,
        step="migrate",
        status=StepStatus.FAILED,
        attempts=3,
        exit_code=2,
        error_class="permanent",
        severity="critical",
    )
    await store.flush()

    (migrate,) = (await store.get_run("run-1")).steps

    assert migrate.status is StepStatus.FAILED
    assert (migrate.attempts, migrate.exit_code, migrate.error_class) == (3, 2, "permanent")
    assert migrate.severity == "critical"
    assert migrate.started_at == first.ts  # the first attempt's start, not the last one's
    history = [
        (a.attempt, a.exit_code, a.error_class, a.delay_after, a.pid)
        for a in migrate.attempt_history
    ]
    assert history == [
        (1, 75, "transient", 1.5, 100),
        (2, None, "timeout", 3.0, 101),
        (3, 2, "permanent", None, 102),
    ]
    assert all(a.ended_at is not None for a in migrate.attempt_history)
    assert migrate.attempt_history[-1].ended_at == last.ts


async def test_a_running_step_shows_its_open_attempt(store: Store) -> None:
    bus = await start_run(store, "run-1")
    bus.emit(RunStarted, workflow="shop-release", units=("deploy",))
    bus.emit(StepStarted, step="deploy", attempt=1, pid=7)
    await store.flush()

    run = await store.get_run("run-1")
    (deploy,) = run.steps

    assert run.status is RunStatus.RUNNING
    assert run.ended_at is None
    assert deploy.status is StepStatus.RUNNING
    assert deploy.attempt_history[0].ended_at is None  # in doubt if the engine dies now


async def test_loop_iterations_stay_in_their_attempt(store: Store) -> None:
    bus = await start_run(store, "run-1")
    first = bus.emit(StepStarted, step="smoke", attempt=1, iteration=1, pid=1)
    bus.emit(StepStarted, step="smoke", attempt=1, iteration=2, pid=2)
    bus.emit(StepStarted, step="smoke", attempt=1, iteration=3, pid=3)
    await store.flush()

    (smoke,) = (await store.get_run("run-1")).steps

    (attempt,) = smoke.attempt_history
    assert (attempt.iteration, attempt.pid, attempt.started_at) == (3, 3, first.ts)


async def test_a_spawned_process_is_recorded_with_its_group_and_start_time(store: Store) -> None:
    bus = await start_run(store, "run-1")
    bus.emit(StepStarted, step="deploy", attempt=1)
    await store.flush()  # durable before the spawn, as the engine does it
    bus.emit(StepSpawned, step="deploy", attempt=1, pid=31337, process_started=1_714_550_400.25)
    await store.flush()

    (deploy,) = (await store.get_run("run-1")).steps

    assert (deploy.status, deploy.pid) == (StepStatus.RUNNING, 31337)
    (attempt,) = deploy.attempt_history
    assert (attempt.pid, attempt.pgid, attempt.process_started) == (31337, 31337, 1_714_550_400.25)
    assert attempt.ended_at is None  # in doubt if the engine dies now: kill group 31337 first
    assert attempt.to_json()["process_started"] == "2024-05-01T08:00:00.250+00:00"


async def test_the_next_iteration_forgets_the_previous_process(store: Store) -> None:
    bus = await start_run(store, "run-1")
    bus.emit(StepStarted, step="smoke", attempt=1, iteration=1)
    bus.emit(StepSpawned, step="smoke", attempt=1, pid=500, process_started=10.0)
    await store.flush()
    bus.emit(StepStarted, step="smoke", attempt=1, iteration=2)
    await store.flush()

    (attempt,) = (await store.get_run("run-1")).steps[0].attempt_history

    assert (attempt.iteration, attempt.pgid, attempt.process_started) == (2, None, None)


async def test_a_resumed_run_numbers_on_from_the_last_stored_event(store: Store) -> None:
    bus = await start_run(store, "run-1")
    assert await store.last_seq("run-1") == 0
    bus.emit(StepStarted, step="build", attempt=1)
    bus.emit(StepOutput, step="build", stream="stdout", line="the last thing stored")
    await store.flush()
    bus.emit(StepOutput, step="build", stream="stdout", line="pending: never stored")

    assert await store.last_seq("run-1") == 2
    with pytest.raises(RunNotFound):
        await store.last_seq("nope")


async def test_a_cached_step_is_succeeded_with_the_earlier_outputs(store: Store) -> None:
    bus = await start_run(store, "run-1")
    bus.emit(
        StepFinished,
        step="build",
        status=StepStatus.SUCCEEDED,
        outputs={"artifact": "a.tgz"},
        cached=True,
        cache_key="v1",
    )
    await store.flush()

    (build,) = (await store.get_run("run-1")).steps

    assert build.status is StepStatus.SUCCEEDED
    assert (build.cached, build.cache_key) == (True, "v1")
    assert (build.attempts, build.attempt_history, build.outputs) == (0, (), {"artifact": "a.tgz"})


async def test_rolling_back_keeps_what_the_step_did(store: Store) -> None:
    bus = await start_run(store, "run-1")
    bus.emit(StepStarted, step="migrate", attempt=1)
    done = bus.emit(
        StepFinished,
        step="migrate",
        status=StepStatus.SUCCEEDED,
        attempts=1,
        exit_code=0,
        outputs={"schema": "42"},
    )
    await store.flush()
    bus.emit(StepStatusChanged, step="migrate", status=StepStatus.ROLLING_BACK)
    bus.emit(StepFinished, step="migrate", status=StepStatus.ROLLED_BACK, reason="smoke failed")
    await store.flush()

    (migrate,) = (await store.get_run("run-1")).steps

    assert (migrate.status, migrate.reason) == (StepStatus.ROLLED_BACK, "smoke failed")
    assert (migrate.attempts, migrate.exit_code, migrate.outputs) == (1, 0, {"schema": "42"})
    assert migrate.ended_at == done.ts


async def test_a_resumed_run_keeps_its_first_start_and_attempt_counts(store: Store) -> None:
    bus = await start_run(store, "run-1")
    first = bus.emit(RunStarted, workflow="shop-release", units=("deploy",))
    bus.emit(StepStarted, step="deploy", attempt=1)
    bus.emit(RunFinished, status=RunStatus.INTERRUPTED, message="SIGTERM")
    await store.flush()
    bus.emit(RunStarted, workflow="shop-release", units=("deploy",), resumed=True)
    bus.emit(StepStarted, step="deploy", attempt=2)
    await store.flush()

    run = await store.get_run("run-1")

    assert (run.status, run.started_at, run.ended_at, run.message) == (
        RunStatus.RUNNING,
        first.ts,
        None,
        None,
    )
    assert [a.attempt for a in run.steps[0].attempt_history] == [1, 2]


async def test_units_the_plan_did_not_list_come_after_in_name_order(store: Store) -> None:
    bus = await start_run(store, "run-1")
    bus.emit(RunStarted, workflow="shop-release", units=("validate", "build"))
    for name in ("zeta[2]", "build", "alpha[1]"):
        bus.emit(StepStarted, step=name, attempt=1)
    await store.flush()

    run = await store.get_run("run-1")

    assert [s.name for s in run.steps] == ["validate", "build", "alpha[1]", "zeta[2]"]


async def test_log_lines_come_back_in_order_per_run_and_per_step(store: Store) -> None:
    bus = await start_run(store, "run-1")
    for i in range(3):
        for unit in ("deploy[eu-1]", "deploy[us-1]", "deploy-db", "smoke"):
            bus.emit(StepOutput, step=unit, stream="stdout", line=f"{unit} {i}")
    bus.emit(StepOutput, step="smoke", stream="stderr", line="warning: slow", attempt=2)
    await store.flush()

    everything = await store.read_logs("run-1")
    smoke = await store.read_logs("run-1", "smoke")
    deploy = await store.read_logs("run-1", "deploy")
    one = await store.read_logs("run-1", "deploy[us-1]")

    assert [r.seq for r in everything] == sorted(r.seq for r in everything)
    assert len(everything) == 13
    assert [r.line for r in smoke] == ["smoke 0", "smoke 1", "smoke 2", "warning: slow"]
    assert (smoke[-1].stream, smoke[-1].attempt) == ("stderr", 2)
    assert {r.step for r in deploy} == {"deploy[eu-1]", "deploy[us-1]"}  # not deploy-db
    assert [r.line for r in one] == ["deploy[us-1] 0", "deploy[us-1] 1", "deploy[us-1] 2"]


async def test_reading_logs_after_a_sequence_number_gives_only_newer_lines(store: Store) -> None:
    bus = await start_run(store, "run-1")
    for i in range(10):
        bus.emit(StepOutput, step="build", stream="stdout", line=str(i))
    await store.flush()

    first = await store.read_logs("run-1", limit=4)
    rest = await store.read_logs("run-1", "build", after_seq=first[-1].seq)

    assert [r.line for r in first] == ["0", "1", "2", "3"]
    assert [r.line for r in rest] == [str(i) for i in range(4, 10)]
    assert await store.read_logs("other-run") == []


async def test_runs_are_listed_newest_first_without_steps(store: Store) -> None:
    for number, started in enumerate([100.0, 300.0, 200.0, None]):
        bus = await start_run(store, f"run-{number}", started_at=started)
        bus.emit(StepStarted, step="build", attempt=1)
    await store.flush()

    newest = await store.list_runs()
    two = await store.list_runs(limit=2)

    assert [r.id for r in newest] == ["run-3", "run-1", "run-2", "run-0"]  # run-3: not started
    assert [r.id for r in two] == ["run-3", "run-1"]
    assert all(r.steps == () for r in newest)


async def test_a_run_is_found_by_a_unique_prefix_of_its_id(store: Store) -> None:
    for run_id in ("a1b2c3", "a1ffff", "b7", "b7e"):
        await start_run(store, run_id)

    assert (await store.get_run("a1b")).id == "a1b2c3"
    assert (await store.get_run("b7")).id == "b7"  # an exact id wins over longer ones

    with pytest.raises(RunNotFound, match="2 runs start with it") as ambiguous:
        await store.get_run("a1")
    assert ambiguous.value.candidates == 2
    with pytest.raises(RunNotFound, match="no such run"):
        await store.get_run("zz")
    with pytest.raises(RunNotFound):
        await store.get_run("")


async def test_a_cache_hit_is_the_newest_success_of_that_workflow_and_key(store: Store) -> None:
    for run_id, workflow, status, key, artifact in [
        ("r1", "shop", StepStatus.SUCCEEDED, "k1", "old"),
        ("r2", "shop", StepStatus.SUCCEEDED, "k1", "new"),
        ("r3", "shop", StepStatus.FAILED, "k1", "broken"),
        ("r4", "blog", StepStatus.SUCCEEDED, "k1", "other workflow"),
        ("r5", "shop", StepStatus.SUCCEEDED, "k2", "other key"),
    ]:
        bus = await start_run(store, run_id, workflow)
        bus.emit(
            StepFinished,
            step="build",
            status=status,
            attempts=1,
            cache_key=key,
            outputs={"artifact": artifact},
        )
        await store.flush()

    hit = await store.find_cached("shop", "build", "k1")

    assert hit is not None
    assert (hit.run_id, hit.step, hit.outputs) == ("r2", "build", {"artifact": "new"})
    assert await store.find_cached("shop", "build", "k3") is None
    assert await store.find_cached("shop", "test", "k1") is None
    assert await store.find_cached("nope", "build", "k1") is None


async def test_a_run_cannot_be_created_twice(store: Store) -> None:
    await start_run(store, "run-1")

    with pytest.raises(StoreError, match="already exists"):
        await start_run(store, "run-1")


async def test_events_of_a_run_nobody_created_are_kept(store: Store) -> None:
    from tempeh_tui.events import EventBus

    bus = EventBus("stray")
    bus.subscribe(store.record)
    bus.emit(RunStarted, workflow="adhoc", units=("x",))
    bus.emit(StepOutput, step="x", stream="stdout", line="kept")
    await store.flush()

    run = await store.get_run("stray")

    assert (run.workflow, run.status, run.definition) == ("adhoc", RunStatus.RUNNING, {})
    assert [r.line for r in await store.read_logs("stray")] == ["kept"]


async def test_nothing_is_readable_before_a_flush_and_all_of_it_after(store: Store) -> None:
    bus = await start_run(store, "run-1")
    bus.emit(StepStarted, step="build", attempt=1)

    assert (await store.get_run("run-1")).steps == ()

    await store.flush()

    assert step_rows(await store.get_run("run-1"))["build"].status is StepStatus.RUNNING
