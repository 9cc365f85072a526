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

INSERT INTO task_counts (org_id, type, status, n)
    SELECT org_id, type, status, count(*) FROM tasks WHERE org_id IS NOT NULL GROUP BY org_id, type, status;

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
