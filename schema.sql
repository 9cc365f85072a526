-- Foundation: instance metadata and the durable task queue.

CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
) WITHOUT ROWID;

CREATE TABLE tasks (
    id                 INTEGER PRIMARY KEY,
    name               TEXT NOT NULL UNIQUE,
    type               TEXT NOT NULL,
    status             TEXT NOT NULL DEFAULT 'submitted'
                       CHECK (status IN ('submitted', 'running', 'done', 'failed', 'expired')),
    grp                TEXT,
    app_name           TEXT,
    build_id           INTEGER,
    input              TEXT NOT NULL DEFAULT '{}',
    output             TEXT,
    progress_done      INTEGER NOT NULL DEFAULT 0,
    progress_total     INTEGER NOT NULL DEFAULT 0,
    warnings           TEXT NOT NULL DEFAULT '[]',
    exception          TEXT,
    attempts           INTEGER NOT NULL DEFAULT 0,
    max_attempts       INTEGER NOT NULL DEFAULT 3,
    run_in_maintenance INTEGER NOT NULL DEFAULT 0,
    run_after          TEXT NOT NULL,
    created            TEXT NOT NULL,
    started            TEXT,
    ended              TEXT
);

CREATE INDEX tasks_runnable ON tasks (status, run_after);
