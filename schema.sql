-- The full current schema of rockit-edge: what a fresh database gets.
-- Keep in step with migrations/ (a test compares the two).

-- Instance metadata and the durable task queue.

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
    ended              TEXT,
    org_id             INTEGER REFERENCES orgs (id) ON DELETE CASCADE,
    -- What the task has durably done (dltar: bytes and validator), so a retry resumes.
    checkpoint         TEXT
);

CREATE INDEX tasks_runnable ON tasks (status, run_after);
-- Creation order, and a creation window read in another order: the name, type, status and app
-- name make the window's read a covering one (migration 013, src/store/tasks.rs window_sql).
CREATE INDEX tasks_by_org ON tasks (org_id, created, name, type, status, app_name);
-- A page of an organization's tasks in creation or name order walks one of these indexes. A walk
-- checks a creation window (and a type or status walk the other of the two) on the index entry,
-- reading a table row only for a match (migration 014).
CREATE INDEX tasks_by_org_id ON tasks (org_id, id);
CREATE INDEX tasks_by_org_name ON tasks (org_id, name, created);
-- Filtered pages: a group (three tasks) is found directly; a type or status page walks its own
-- slice in name order instead of skipping past every other task of the organization.
CREATE INDEX tasks_by_org_group ON tasks (org_id, grp);
CREATE INDEX tasks_by_org_type ON tasks (org_id, type, name, created, status);
CREATE INDEX tasks_by_org_status ON tasks (org_id, status, name, created, type);

-- Exact task counts per organization, type and status (issue 9: a page of tasks at a million
-- tasks within 2x of the same page at a thousand). `count(*)` over an organization's tasks grows
-- with its history (17-29 ms at 10^6); the `total` of an unfiltered, type- or status-filtered
-- list is a sum of at most a few dozen of these rows instead. Triggers keep them in the same
-- transaction as every insert, delete and status change, so they never drift from the table.
CREATE TABLE task_counts (
    org_id INTEGER NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    type   TEXT NOT NULL,
    status TEXT NOT NULL,
    n      INTEGER NOT NULL,
    PRIMARY KEY (org_id, type, status)
) WITHOUT ROWID;

-- Instance-wide tasks (no organization) are never listed, so they are not counted.
CREATE TRIGGER task_counts_added AFTER INSERT ON tasks WHEN NEW.org_id IS NOT NULL BEGIN
    INSERT INTO task_counts (org_id, type, status, n) VALUES (NEW.org_id, NEW.type, NEW.status, 1)
        ON CONFLICT (org_id, type, status) DO UPDATE SET n = n + 1;
END;

CREATE TRIGGER task_counts_removed AFTER DELETE ON tasks WHEN OLD.org_id IS NOT NULL BEGIN
    UPDATE task_counts SET n = n - 1 WHERE org_id = OLD.org_id AND type = OLD.type AND status = OLD.status;
END;

-- Progress and checkpoint updates (the frequent ones) change none of the key columns: no work.
CREATE TRIGGER task_counts_changed AFTER UPDATE OF org_id, type, status ON tasks
    WHEN OLD.org_id IS NOT NEW.org_id OR OLD.type IS NOT NEW.type OR OLD.status IS NOT NEW.status BEGIN
    UPDATE task_counts SET n = n - 1 WHERE org_id = OLD.org_id AND type = OLD.type AND status = OLD.status;
    INSERT INTO task_counts (org_id, type, status, n) SELECT NEW.org_id, NEW.type, NEW.status, 1
        WHERE NEW.org_id IS NOT NULL
        ON CONFLICT (org_id, type, status) DO UPDATE SET n = n + 1;
END;

-- Identity and access.

CREATE TABLE orgs (
    id         INTEGER PRIMARY KEY,
    name       TEXT NOT NULL UNIQUE,
    label      TEXT NOT NULL DEFAULT '',
    public_key TEXT,
    created    TEXT NOT NULL,
    updated    TEXT NOT NULL
);

CREATE TABLE users (
    id            INTEGER PRIMARY KEY,
    org_id        INTEGER NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    username      TEXT NOT NULL,
    type          TEXT NOT NULL CHECK (type IN ('user', 'machine')),
    email         TEXT,
    firstname     TEXT,
    surname       TEXT,
    title         TEXT,
    label         TEXT,
    password_hash TEXT,
    created       TEXT NOT NULL,
    updated       TEXT NOT NULL,
    last_login    TEXT,
    UNIQUE (org_id, username)
);

CREATE INDEX users_by_username ON users (username);

CREATE TABLE roles (
    id          INTEGER PRIMARY KEY,
    org_id      INTEGER NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    name        TEXT NOT NULL,
    label       TEXT NOT NULL DEFAULT '',
    permissions TEXT NOT NULL DEFAULT '{}',
    builtin     INTEGER NOT NULL DEFAULT 0,
    created     TEXT NOT NULL,
    updated     TEXT NOT NULL,
    UNIQUE (org_id, name)
);

CREATE TABLE user_roles (
    user_id INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role_id INTEGER NOT NULL REFERENCES roles (id) ON DELETE CASCADE,
    PRIMARY KEY (user_id, role_id)
) WITHOUT ROWID;

CREATE INDEX user_roles_by_role ON user_roles (role_id);

-- One row per login. Only the SHA-256 of the current refresh token's secret is kept; any other
-- validly signed refresh token of the session is a retired one, and presenting it revokes the row.
CREATE TABLE sessions (
    id           TEXT PRIMARY KEY,
    org_id       INTEGER NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    user_id      INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    refresh_hash BLOB NOT NULL,
    generation   INTEGER NOT NULL DEFAULT 0,
    created      TEXT NOT NULL,
    expires      INTEGER NOT NULL,
    revoked      TEXT,
    -- When the session last swapped its refresh token, and the client address of its login.
    refreshed    TEXT,
    client       TEXT
);

CREATE INDEX sessions_by_user ON sessions (user_id);
CREATE INDEX sessions_by_expiry ON sessions (expires);

-- The audit trail of security events: who (principal) did what (event) to what (target) from
-- where (client). org_id NULL is a box-wide event seen by admin-token holders only.
CREATE TABLE audit (
    id        INTEGER PRIMARY KEY,
    at        TEXT NOT NULL,
    org_id    INTEGER REFERENCES orgs (id) ON DELETE CASCADE,
    event     TEXT NOT NULL,
    principal TEXT,
    client    TEXT,
    target    TEXT
);

CREATE INDEX audit_by_org ON audit (org_id, at);
CREATE INDEX audit_by_time ON audit (at);

CREATE TABLE api_keys (
    id        TEXT PRIMARY KEY,
    org_id    INTEGER NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    user_id   INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    key_hash  BLOB NOT NULL UNIQUE,
    created   TEXT NOT NULL,
    last_used TEXT
);

CREATE INDEX api_keys_by_user ON api_keys (user_id);

-- Deployments, apps with builds and patches, subscriptions (secrets sealed).

CREATE TABLE deployments (
    id                 INTEGER PRIMARY KEY,
    org_id             INTEGER NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    name               TEXT NOT NULL,
    label              TEXT NOT NULL DEFAULT '',
    origin_prefix      TEXT NOT NULL DEFAULT '',
    origin_type        TEXT NOT NULL CHECK (origin_type IN ('fs', 's3')),
    origin             TEXT NOT NULL,
    origin_secret      BLOB,
    download_auth_type TEXT CHECK (download_auth_type IN ('akamai', 'gcore')),
    download_auth_key  BLOB,
    status             TEXT NOT NULL DEFAULT 'ok' CHECK (status IN ('ok', 'error')),
    message            TEXT,
    created            TEXT NOT NULL,
    updated            TEXT NOT NULL,
    UNIQUE (org_id, name)
);

CREATE TABLE apps (
    id               INTEGER PRIMARY KEY,
    org_id           INTEGER NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    name             TEXT NOT NULL,
    label            TEXT NOT NULL DEFAULT '',
    max_builds       INTEGER NOT NULL DEFAULT 5 CHECK (max_builds BETWEEN 1 AND 100),
    i_cur_build      INTEGER NOT NULL DEFAULT 0,
    processing       INTEGER NOT NULL DEFAULT 0,
    exporting        INTEGER NOT NULL DEFAULT 0,
    status           TEXT NOT NULL DEFAULT 'ok',
    error            TEXT,
    dxf_name         TEXT,
    deployment_names TEXT NOT NULL DEFAULT '[]',
    build_list       TEXT NOT NULL DEFAULT '[]',
    patch_list       TEXT NOT NULL DEFAULT '[]',
    size_bytes       INTEGER NOT NULL DEFAULT 0,
    created          TEXT NOT NULL,
    updated          TEXT NOT NULL,
    -- The group of the import holding the app (one import per app at a time), if any.
    import_group     TEXT,
    -- The last build number an import took; never reused, not even a failed import's.
    last_build       INTEGER NOT NULL DEFAULT 0,
    UNIQUE (org_id, name)
);

-- The deployments an app publishes to; none listed means all of the organization's.
CREATE TABLE app_deployments (
    app_id        INTEGER NOT NULL REFERENCES apps (id) ON DELETE CASCADE,
    deployment_id INTEGER NOT NULL REFERENCES deployments (id) ON DELETE CASCADE,
    PRIMARY KEY (app_id, deployment_id)
) WITHOUT ROWID;

CREATE INDEX app_deployments_by_deployment ON app_deployments (deployment_id);

CREATE TABLE builds (
    id         INTEGER PRIMARY KEY,
    app_id     INTEGER NOT NULL REFERENCES apps (id) ON DELETE CASCADE,
    build_id   INTEGER NOT NULL,
    name       TEXT,
    size_bytes INTEGER NOT NULL DEFAULT 0,
    created    TEXT NOT NULL,
    UNIQUE (app_id, build_id)
);

CREATE TABLE patches (
    app_id        INTEGER NOT NULL REFERENCES apps (id) ON DELETE CASCADE,
    from_build_id INTEGER NOT NULL,
    to_build_id   INTEGER NOT NULL,
    size_bytes    INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (app_id, from_build_id, to_build_id)
) WITHOUT ROWID;

-- An app row carries its deployments, builds, patches and size, kept current by the triggers
-- below, so a page of apps is one plain read (a list is the hottest call of the API).
CREATE TRIGGER app_deployments_added AFTER INSERT ON app_deployments BEGIN
    UPDATE apps SET deployment_names = (
        SELECT json_group_array(name) FROM (
            SELECT d.name FROM app_deployments ad JOIN deployments d ON d.id = ad.deployment_id
            WHERE ad.app_id = NEW.app_id ORDER BY d.name))
    WHERE id = NEW.app_id;
END;

CREATE TRIGGER app_deployments_removed AFTER DELETE ON app_deployments BEGIN
    UPDATE apps SET deployment_names = (
        SELECT json_group_array(name) FROM (
            SELECT d.name FROM app_deployments ad JOIN deployments d ON d.id = ad.deployment_id
            WHERE ad.app_id = OLD.app_id ORDER BY d.name))
    WHERE id = OLD.app_id;
END;

CREATE TRIGGER builds_added AFTER INSERT ON builds BEGIN
    UPDATE apps SET build_list = (
        SELECT json_group_array(json_array(build_id, name, size_bytes, created)) FROM (
            SELECT build_id, name, size_bytes, created FROM builds WHERE app_id = NEW.app_id ORDER BY build_id)),
        size_bytes = (SELECT coalesce(sum(size_bytes), 0) FROM builds WHERE app_id = NEW.app_id)
                   + (SELECT coalesce(sum(size_bytes), 0) FROM patches WHERE app_id = NEW.app_id)
    WHERE id = NEW.app_id;
END;

CREATE TRIGGER builds_removed AFTER DELETE ON builds BEGIN
    UPDATE apps SET build_list = (
        SELECT json_group_array(json_array(build_id, name, size_bytes, created)) FROM (
            SELECT build_id, name, size_bytes, created FROM builds WHERE app_id = OLD.app_id ORDER BY build_id)),
        size_bytes = (SELECT coalesce(sum(size_bytes), 0) FROM builds WHERE app_id = OLD.app_id)
                   + (SELECT coalesce(sum(size_bytes), 0) FROM patches WHERE app_id = OLD.app_id)
    WHERE id = OLD.app_id;
END;

CREATE TRIGGER builds_changed AFTER UPDATE ON builds BEGIN
    UPDATE apps SET build_list = (
        SELECT json_group_array(json_array(build_id, name, size_bytes, created)) FROM (
            SELECT build_id, name, size_bytes, created FROM builds WHERE app_id = NEW.app_id ORDER BY build_id)),
        size_bytes = (SELECT coalesce(sum(size_bytes), 0) FROM builds WHERE app_id = NEW.app_id)
                   + (SELECT coalesce(sum(size_bytes), 0) FROM patches WHERE app_id = NEW.app_id)
    WHERE id = NEW.app_id;
END;

CREATE TRIGGER patches_added AFTER INSERT ON patches BEGIN
    UPDATE apps SET patch_list = (
        SELECT json_group_array(json_array(from_build_id, to_build_id, size_bytes)) FROM (
            SELECT from_build_id, to_build_id, size_bytes FROM patches WHERE app_id = NEW.app_id
            ORDER BY to_build_id, from_build_id)),
        size_bytes = (SELECT coalesce(sum(size_bytes), 0) FROM builds WHERE app_id = NEW.app_id)
                   + (SELECT coalesce(sum(size_bytes), 0) FROM patches WHERE app_id = NEW.app_id)
    WHERE id = NEW.app_id;
END;

CREATE TRIGGER patches_removed AFTER DELETE ON patches BEGIN
    UPDATE apps SET patch_list = (
        SELECT json_group_array(json_array(from_build_id, to_build_id, size_bytes)) FROM (
            SELECT from_build_id, to_build_id, size_bytes FROM patches WHERE app_id = OLD.app_id
            ORDER BY to_build_id, from_build_id)),
        size_bytes = (SELECT coalesce(sum(size_bytes), 0) FROM builds WHERE app_id = OLD.app_id)
                   + (SELECT coalesce(sum(size_bytes), 0) FROM patches WHERE app_id = OLD.app_id)
    WHERE id = OLD.app_id;
END;

-- One-time upload URLs of imports in upload mode. Only the SHA-256 of the 256-bit capability
-- is kept, so a copy of the database does not let anyone upload a build.
CREATE TABLE uploads (
    task_id    INTEGER PRIMARY KEY REFERENCES tasks (id) ON DELETE CASCADE,
    token_hash BLOB NOT NULL UNIQUE,
    expires    TEXT NOT NULL,
    max_bytes  INTEGER NOT NULL
);

CREATE TABLE subscriptions (
    id      INTEGER PRIMARY KEY,
    org_id  INTEGER NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    name    TEXT NOT NULL,
    type    TEXT NOT NULL CHECK (type IN ('webhook', 'slack')),
    url     TEXT NOT NULL,
    events  TEXT NOT NULL DEFAULT '[]',
    secret  BLOB NOT NULL,
    created TEXT NOT NULL,
    updated TEXT NOT NULL,
    UNIQUE (org_id, name)
);

-- Migration 007_s3_publish.
-- Multipart uploads to S3 origins in progress (issue 11): the upload id and the ETag of every
-- part the endpoint has stored, so a publish interrupted by a crash resumes without sending
-- those parts again. `target` is `endpoint/bucket`; rows go when the upload completes.
CREATE TABLE s3_uploads (
    id          INTEGER PRIMARY KEY,
    target      TEXT NOT NULL,
    object_key  TEXT NOT NULL,
    upload_id   TEXT NOT NULL,
    size_bytes  INTEGER NOT NULL,
    part_size   INTEGER NOT NULL,
    created     TEXT NOT NULL,
    UNIQUE (target, object_key)
);

CREATE TABLE s3_upload_parts (
    upload      INTEGER NOT NULL REFERENCES s3_uploads (id) ON DELETE CASCADE,
    part_number INTEGER NOT NULL,
    etag        TEXT NOT NULL,
    PRIMARY KEY (upload, part_number)
) WITHOUT ROWID;
-- 008_commit: the DxF image name of every retained build, so any of them can go live again.
ALTER TABLE builds ADD COLUMN dxf_name TEXT;
-- 011_export: organization transfers (issue 13).
-- The download URL of an export task. Only the SHA-256 of the 256-bit capability is kept; the
-- row goes once the whole bundle was sent.
CREATE TABLE org_exports (
    task_id    INTEGER PRIMARY KEY REFERENCES tasks (id) ON DELETE CASCADE,
    token_hash BLOB NOT NULL UNIQUE,
    expires    TEXT NOT NULL
);

-- An import: waiting for its upload (capability hash and the passphrase, sealed under this box's
-- key), staged (the verified organization document, secrets sealed under this box's key, and
-- the dry-run report), or committed.
CREATE TABLE org_imports (
    id         INTEGER PRIMARY KEY,
    name       TEXT NOT NULL UNIQUE,
    status     TEXT NOT NULL CHECK (status IN ('waiting', 'staged', 'committed')),
    token_hash BLOB UNIQUE,
    passphrase BLOB,
    expires    TEXT NOT NULL,
    max_bytes  INTEGER NOT NULL,
    org_name   TEXT,
    document   TEXT,
    report     TEXT,
    created    TEXT NOT NULL,
    staged     TEXT,
    committed  TEXT
);
-- 010_traces
-- Start-up read traces that launchers send for a build (FastStart, issue 11): one row per
-- trace, its reads as JSON in first-access order. processTraces merges the traces of the app's
-- current build into the order of a new image; a build's traces go when the build is evicted.
CREATE TABLE traces (
    id       INTEGER PRIMARY KEY,
    app_id   INTEGER NOT NULL REFERENCES apps (id) ON DELETE CASCADE,
    build_id INTEGER NOT NULL,
    reads    TEXT NOT NULL,
    created  TEXT NOT NULL
);

CREATE INDEX traces_of_build ON traces (app_id, build_id, id);
-- 009_webhooks: the webhook and Slack delivery outbox.
-- Webhook and Slack deliveries (issue 11): a transactional outbox. A row is written in the same
-- transaction as the task change it reports, so an event is delivered exactly when the change
-- committed; the delivery worker sends, retries with backoff and records the outcome here.
CREATE TABLE webhook_deliveries (
    id              INTEGER PRIMARY KEY,
    subscription_id INTEGER NOT NULL REFERENCES subscriptions (id) ON DELETE CASCADE,
    -- The app the event is about ('' for none): one subscription gets one app's events in order.
    app_key         TEXT NOT NULL,
    -- The JWT id: the same on every attempt, so a receiver can drop a repeated delivery.
    jti             TEXT NOT NULL UNIQUE,
    task_name       TEXT NOT NULL,
    task_type       TEXT NOT NULL,
    event           TEXT NOT NULL,
    body            TEXT NOT NULL,
    status          TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    last_status     INTEGER,
    last_error      TEXT,
    created         TEXT NOT NULL,
    next_attempt    TEXT NOT NULL,
    last_attempt    TEXT,
    finished        TEXT
);

CREATE INDEX webhook_deliveries_due ON webhook_deliveries (status, next_attempt);
CREATE INDEX webhook_deliveries_in_order ON webhook_deliveries (subscription_id, app_key, status, id);
CREATE INDEX webhook_deliveries_finished ON webhook_deliveries (finished);
-- 012_task_window_counts: exact task totals for the appName and createdAfter/createdBefore lists,
-- and indexes for task pages in creation and app-name order.
-- `task_counts` (006) answers the unfiltered, type and status totals; a name part or a creation
-- window counted its matches, linear in them (a broad window at 10^6 tasks: tens of ms). These
-- counters answer them from a bounded number of rows instead, kept by triggers in the same
-- transaction as every insert, delete (the retention setting included) and change of a counted
-- column, so they never drift from the table. Instance-wide tasks (no organization) are never
-- listed, so they are not counted.
--
-- Creation-time buckets: `bucket` is the first `span` characters of the stored creation time
-- (RFC 3339 UTC, fixed width): 4 a year, 7 a month, 10 a day, 13 an hour. A window's total sums
-- the whole hours, days, months and years it covers (at most 23 + 30 + 11 rows a side per type
-- and status, plus the years) and counts only the tasks of its two boundary hours.
CREATE TABLE task_time_counts (
    org_id INTEGER NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    span   INTEGER NOT NULL,
    bucket TEXT NOT NULL,
    type   TEXT NOT NULL,
    status TEXT NOT NULL,
    n      INTEGER NOT NULL,
    PRIMARY KEY (org_id, span, bucket, type, status)
) WITHOUT ROWID;

-- The same per app name, plus span 0 (bucket ''): the app's whole history. A name-part filter
-- sums the rows of the apps whose name matches (a handful), never the tasks; with a window, the
-- buckets above for just those apps. Tasks without an app never match a name part: not counted.
CREATE TABLE task_app_counts (
    org_id   INTEGER NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    span     INTEGER NOT NULL,
    app_name TEXT NOT NULL,
    bucket   TEXT NOT NULL,
    type     TEXT NOT NULL,
    status   TEXT NOT NULL,
    n        INTEGER NOT NULL,
    PRIMARY KEY (org_id, span, app_name, bucket, type, status)
) WITHOUT ROWID;

CREATE TRIGGER task_window_counts_added AFTER INSERT ON tasks WHEN NEW.org_id IS NOT NULL BEGIN
    INSERT INTO task_time_counts (org_id, span, bucket, type, status, n)
        SELECT NEW.org_id, s.column1, substr(NEW.created, 1, s.column1), NEW.type, NEW.status, 1
        FROM (VALUES (4), (7), (10), (13)) s WHERE true
        ON CONFLICT (org_id, span, bucket, type, status) DO UPDATE SET n = n + 1;
    INSERT INTO task_app_counts (org_id, span, app_name, bucket, type, status, n)
        SELECT NEW.org_id, s.column1, NEW.app_name, substr(NEW.created, 1, s.column1), NEW.type, NEW.status, 1
        FROM (VALUES (0), (4), (7), (10), (13)) s WHERE NEW.app_name IS NOT NULL
        ON CONFLICT (org_id, span, app_name, bucket, type, status) DO UPDATE SET n = n + 1;
END;

-- A row that reaches zero goes, so the counters hold what the retained history holds, no more.
-- A bucket's length is its span, so of the span x bucket pairs below only the four (five) real
-- ones exist; written as two IN lists, each is a primary-key lookup (a row-value IN is not).
CREATE TRIGGER task_window_counts_removed AFTER DELETE ON tasks WHEN OLD.org_id IS NOT NULL BEGIN
    UPDATE task_time_counts SET n = n - 1
        WHERE org_id = OLD.org_id AND type = OLD.type AND status = OLD.status
        AND span IN (4, 7, 10, 13) AND bucket IN (substr(OLD.created, 1, 4), substr(OLD.created, 1, 7),
                                                   substr(OLD.created, 1, 10), substr(OLD.created, 1, 13));
    DELETE FROM task_time_counts
        WHERE org_id = OLD.org_id AND type = OLD.type AND status = OLD.status AND n <= 0
        AND span IN (4, 7, 10, 13) AND bucket IN (substr(OLD.created, 1, 4), substr(OLD.created, 1, 7),
                                                   substr(OLD.created, 1, 10), substr(OLD.created, 1, 13));
    UPDATE task_app_counts SET n = n - 1
        WHERE org_id = OLD.org_id AND app_name = OLD.app_name AND type = OLD.type AND status = OLD.status
        AND span IN (0, 4, 7, 10, 13) AND bucket IN ('', substr(OLD.created, 1, 4), substr(OLD.created, 1, 7),
                                                         substr(OLD.created, 1, 10), substr(OLD.created, 1, 13));
    DELETE FROM task_app_counts
        WHERE org_id = OLD.org_id AND app_name = OLD.app_name AND type = OLD.type AND status = OLD.status
        AND n <= 0
        AND span IN (0, 4, 7, 10, 13) AND bucket IN ('', substr(OLD.created, 1, 4), substr(OLD.created, 1, 7),
                                                         substr(OLD.created, 1, 10), substr(OLD.created, 1, 13));
END;

-- A change of any counted column moves the task from its old rows to its new ones; progress and
-- checkpoint updates (the frequent ones) change none of them: no work.
CREATE TRIGGER task_window_counts_changed AFTER UPDATE OF org_id, type, status, app_name, created ON tasks
    WHEN OLD.org_id IS NOT NEW.org_id OR OLD.type IS NOT NEW.type OR OLD.status IS NOT NEW.status
        OR OLD.app_name IS NOT NEW.app_name OR OLD.created IS NOT NEW.created BEGIN
    UPDATE task_time_counts SET n = n - 1
        WHERE org_id = OLD.org_id AND type = OLD.type AND status = OLD.status
        AND span IN (4, 7, 10, 13) AND bucket IN (substr(OLD.created, 1, 4), substr(OLD.created, 1, 7),
                                                   substr(OLD.created, 1, 10), substr(OLD.created, 1, 13));
    DELETE FROM task_time_counts
        WHERE org_id = OLD.org_id AND type = OLD.type AND status = OLD.status AND n <= 0
        AND span IN (4, 7, 10, 13) AND bucket IN (substr(OLD.created, 1, 4), substr(OLD.created, 1, 7),
                                                   substr(OLD.created, 1, 10), substr(OLD.created, 1, 13));
    UPDATE task_app_counts SET n = n - 1
        WHERE org_id = OLD.org_id AND app_name = OLD.app_name AND type = OLD.type AND status = OLD.status
        AND span IN (0, 4, 7, 10, 13) AND bucket IN ('', substr(OLD.created, 1, 4), substr(OLD.created, 1, 7),
                                                         substr(OLD.created, 1, 10), substr(OLD.created, 1, 13));
    DELETE FROM task_app_counts
        WHERE org_id = OLD.org_id AND app_name = OLD.app_name AND type = OLD.type AND status = OLD.status
        AND n <= 0
        AND span IN (0, 4, 7, 10, 13) AND bucket IN ('', substr(OLD.created, 1, 4), substr(OLD.created, 1, 7),
                                                         substr(OLD.created, 1, 10), substr(OLD.created, 1, 13));
    INSERT INTO task_time_counts (org_id, span, bucket, type, status, n)
        SELECT NEW.org_id, s.column1, substr(NEW.created, 1, s.column1), NEW.type, NEW.status, 1
        FROM (VALUES (4), (7), (10), (13)) s WHERE NEW.org_id IS NOT NULL
        ON CONFLICT (org_id, span, bucket, type, status) DO UPDATE SET n = n + 1;
    INSERT INTO task_app_counts (org_id, span, app_name, bucket, type, status, n)
        SELECT NEW.org_id, s.column1, NEW.app_name, substr(NEW.created, 1, s.column1), NEW.type, NEW.status, 1
        FROM (VALUES (0), (4), (7), (10), (13)) s WHERE NEW.org_id IS NOT NULL AND NEW.app_name IS NOT NULL
        ON CONFLICT (org_id, span, app_name, bucket, type, status) DO UPDATE SET n = n + 1;
END;

-- A page in creation order with a type or status filter walks its slice in that order, and one
-- in app-name order the apps' tasks, instead of sorting every match (src/store/tasks.rs, SORT).
CREATE INDEX tasks_by_org_type_created ON tasks (org_id, type, created, name, status, app_name);
CREATE INDEX tasks_by_org_status_created ON tasks (org_id, status, created, name, type, app_name);
CREATE INDEX tasks_by_org_app ON tasks (org_id, app_name, name, created);
-- An app's tasks in creation order (order[]=appName&order[]=created; a group of the grouped
-- reads, src/store/task_groups.rs; migration 015).
CREATE INDEX tasks_by_org_app_created ON tasks (org_id, app_name, created, name, type, status);
-- A window of a few days in name, type, status or app-name order walks each day in that order
-- (src/store/task_days.rs, migration 016).
CREATE INDEX tasks_by_org_day_name ON tasks (org_id, substr(created, 1, 10), name, created, type, status, app_name);
CREATE INDEX tasks_by_org_day_type ON tasks (org_id, substr(created, 1, 10), type, name, created, status, app_name);
CREATE INDEX tasks_by_org_day_status ON tasks (org_id, substr(created, 1, 10), status, name, created, type, app_name);
CREATE INDEX tasks_by_org_day_app ON tasks (org_id, substr(created, 1, 10), app_name, name, created, type, status);
