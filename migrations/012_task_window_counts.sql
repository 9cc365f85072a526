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

INSERT INTO task_time_counts (org_id, span, bucket, type, status, n)
    SELECT t.org_id, s.column1, substr(t.created, 1, s.column1), t.type, t.status, count(*)
    FROM tasks t, (VALUES (4), (7), (10), (13)) s WHERE t.org_id IS NOT NULL
    GROUP BY 1, 2, 3, 4, 5;

INSERT INTO task_app_counts (org_id, span, app_name, bucket, type, status, n)
    SELECT t.org_id, s.column1, t.app_name, substr(t.created, 1, s.column1), t.type, t.status, count(*)
    FROM tasks t, (VALUES (0), (4), (7), (10), (13)) s WHERE t.org_id IS NOT NULL AND t.app_name IS NOT NULL
    GROUP BY 1, 2, 3, 4, 5, 6;

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
CREATE INDEX tasks_by_org_type_created ON tasks (org_id, type, created);
CREATE INDEX tasks_by_org_status_created ON tasks (org_id, status, created);
CREATE INDEX tasks_by_org_app ON tasks (org_id, app_name, name);
