"""The SQLite schema, as a list of migrations numbered by `PRAGMA user_version`.

Migration N takes a store from version N-1 to N; a store newer than the last migration is
refused (a later tempeh wrote it). `application_id` marks the file as tempeh's, so a foreign
SQLite file is refused rather than written into.

Columns written by later issues are here from version 1: the run's lease (`holder_*`,
`heartbeat`: one driver per run) and each attempt's process group and its start time (`pgid`,
`process_started`: on resume, kill what a dead engine left only if it is still that process).
A step is *in doubt* when its unit is `running` and its last attempt has no `ended_at`.

Version 2: when a lease was taken (`leased_at`), and `log_units`, where each unit's capped log
stands (see `log_cap`); a version 1 store's lines all count as their unit's head.

Version 3: the rollback history (SPEC 5.3): `rollbacks`, one row per rollback of a run (its plan,
who asked and when, how it ended), and `rollback_actions`, one row per unit it compensated.

Version 4: operator decisions (SPEC 5.2, 6): `decisions`, one row per question a run asked (a
failure under `on_failure: pause`, or an approval gate), with its answer, who gave it and when.

Version 5: a `retry` may change the unit's environment and params for its next run (SPEC 5.2):
`decisions.env` and `decisions.params`, JSON objects, NULL when the answer changed nothing.

Version 6: the units an operator toggled off before the run (plan, pick, apply: SPEC 6 `run --plan
PLAN [--only a,b] [--skip c]`): `runs.not_selected`, a JSON object of unit → why, so that a
resume never runs them.

Version 7: `runs.on_failure`, the failure policy the run was started with (its file's, or the one
`run --on-failure` or the API gave), so that a resume keeps it.

Version 8: `definitions`, where each new run's definition is stored (its `runs.definition` is
'{}'; readers take the `definitions` row where there is one). SQLite rewrites a whole row, overflow
pages included, when an update changes its size: with the definition in it, each status change,
lease taken and lease released of a 1,000-step run wrote ~0.8 MB to the WAL (and an auto-checkpoint
behind it), ~3% of such a run's time. Older runs keep theirs where it is: a tempeh started before
the migration still reads it there.
"""

from __future__ import annotations

__all__ = ["APPLICATION_ID", "MIGRATIONS", "SCHEMA_VERSION"]

APPLICATION_ID = 0x74656D70  # "temp"

_V1 = """
CREATE TABLE runs (
    id              TEXT PRIMARY KEY,
    workflow        TEXT NOT NULL,
    status          TEXT NOT NULL,
    definition      TEXT NOT NULL,              -- JSON: what resume runs, not the file
    definition_hash TEXT NOT NULL,
    params          TEXT NOT NULL DEFAULT '{}', -- JSON
    source          TEXT,
    created_at      REAL NOT NULL,              -- orders `tempeh runs`
    started_at      REAL,
    ended_at        REAL,
    max_concurrency INTEGER,
    message         TEXT,
    holder_pid      INTEGER,                    -- the lease: who drives the run
    holder_host     TEXT,
    holder_started  REAL,                       -- the holder's process start time
    heartbeat       REAL
);
CREATE INDEX runs_by_age ON runs (created_at);
CREATE INDEX runs_by_workflow ON runs (workflow);

CREATE TABLE units (
    run_id      TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    name        TEXT NOT NULL,                  -- a step, or a fan-out instance `step[item]`
    position    INTEGER,                        -- its place in the plan: the order `show` keeps
    status      TEXT NOT NULL DEFAULT 'pending',
    attempts    INTEGER NOT NULL DEFAULT 0,
    exit_code   INTEGER,
    error_class TEXT,
    severity    TEXT,
    outputs     TEXT NOT NULL DEFAULT '{}',     -- JSON
    started_at  REAL,
    ended_at    REAL,
    cached      INTEGER NOT NULL DEFAULT 0,
    cache_key   TEXT,
    reason      TEXT,
    pid         INTEGER,
    PRIMARY KEY (run_id, name)
) WITHOUT ROWID;
CREATE INDEX units_by_cache_key ON units (cache_key) WHERE cache_key IS NOT NULL;

CREATE TABLE attempts (
    run_id          TEXT NOT NULL,
    step            TEXT NOT NULL,
    attempt         INTEGER NOT NULL,
    iteration       INTEGER NOT NULL DEFAULT 1,
    started_at      REAL,
    ended_at        REAL,
    exit_code       INTEGER,
    error_class     TEXT,
    delay_after     REAL,
    pid             INTEGER,
    pgid            INTEGER,
    process_started REAL,
    PRIMARY KEY (run_id, step, attempt),
    FOREIGN KEY (run_id, step) REFERENCES units (run_id, name) ON DELETE CASCADE
) WITHOUT ROWID;

CREATE TABLE logs (
    run_id  TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    seq     INTEGER NOT NULL,                   -- the run's event sequence number
    ts      REAL NOT NULL,
    step    TEXT NOT NULL,                      -- '' for the run's own lines
    attempt INTEGER NOT NULL,
    stream  TEXT NOT NULL,                      -- stdout | stderr | tempeh
    line    TEXT NOT NULL,
    PRIMARY KEY (run_id, seq)
) WITHOUT ROWID;
CREATE INDEX logs_by_step ON logs (run_id, step, seq);

CREATE TABLE events (
    run_id TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    seq    INTEGER NOT NULL,
    ts     REAL NOT NULL,
    type   TEXT NOT NULL,
    step   TEXT,
    data   TEXT NOT NULL,                       -- JSON: the event's own fields
    PRIMARY KEY (run_id, seq)
) WITHOUT ROWID;
"""

_V2 = """
ALTER TABLE runs ADD COLUMN leased_at REAL;     -- when the holder took the lease

CREATE TABLE log_units (                        -- the log cap: where each unit's log stands
    run_id     TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    step       TEXT NOT NULL,
    lines      INTEGER NOT NULL DEFAULT 0,      -- lines printed, omitted ones included
    omitted    INTEGER NOT NULL DEFAULT 0,
    tail       INTEGER NOT NULL DEFAULT 0,      -- tail lines stored now
    tail_start INTEGER,                         -- seq of the first line after the head
    PRIMARY KEY (run_id, step)
) WITHOUT ROWID;
INSERT INTO log_units (run_id, step, lines)
    SELECT run_id, step, count(*) FROM logs GROUP BY run_id, step;
"""

_V3 = """
CREATE TABLE rollbacks (
    run_id       TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    id           TEXT NOT NULL,
    planned_at   REAL,
    requested_by TEXT,                          -- user@host (pid N)
    plan         TEXT NOT NULL DEFAULT '{}',    -- JSON: RollbackPlan.to_json()
    status       TEXT NOT NULL DEFAULT 'running',   -- running | rolled_back | rollback_failed | ...
    ended_at     REAL,
    message      TEXT,
    PRIMARY KEY (run_id, id)
) WITHOUT ROWID;

CREATE TABLE rollback_actions (
    run_id      TEXT NOT NULL,
    rollback_id TEXT NOT NULL,
    unit        TEXT NOT NULL,
    command     TEXT,                           -- as rendered, secrets masked
    started_at  REAL,
    ended_at    REAL,
    status      TEXT NOT NULL DEFAULT 'rolling_back',
    exit_code   INTEGER,
    reason      TEXT,
    PRIMARY KEY (run_id, rollback_id, unit),
    FOREIGN KEY (run_id, rollback_id) REFERENCES rollbacks (run_id, id) ON DELETE CASCADE
) WITHOUT ROWID;
"""

_V4 = """
CREATE TABLE decisions (
    id          INTEGER PRIMARY KEY,
    run_id      TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    unit        TEXT NOT NULL,
    kind        TEXT NOT NULL,                  -- failure | approval
    asked_at    REAL NOT NULL,
    summary     TEXT NOT NULL,                  -- the failure, or the rendered confirm text
    input_hash  TEXT,                           -- an approval: the rendered command and inputs
    answer      TEXT,                           -- NULL while it waits
    answered_by TEXT,                           -- user@host (pid N)
    answered_at REAL
);
CREATE INDEX decisions_by_run ON decisions (run_id, unit);
"""

_V5 = """
ALTER TABLE decisions ADD COLUMN env TEXT;      -- JSON: a retry's changed environment
ALTER TABLE decisions ADD COLUMN params TEXT;   -- JSON: a retry's changed params
"""

_V6 = """
ALTER TABLE runs ADD COLUMN not_selected TEXT NOT NULL DEFAULT '{}';  -- JSON: unit -> why
"""

_V7 = """
ALTER TABLE runs ADD COLUMN on_failure TEXT;    -- pause / continue / abort / rollback
"""

_V8 = """
CREATE TABLE definitions (                      -- JSON: what resume runs, written once
    run_id     TEXT PRIMARY KEY NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    definition TEXT NOT NULL
);
"""

MIGRATIONS: tuple[str, ...] = (_V1, _V2, _V3, _V4, _V5, _V6, _V7, _V8)
"""MIGRATIONS[n] takes a store from version n to n + 1. Append; never edit a released one."""

SCHEMA_VERSION = len(MIGRATIONS)
