-- The build pipeline (issue 9).

-- What a task has durably done so far (bytes downloaded and their validator, for dltar), so a
-- retry or a restart after a crash resumes instead of starting over.
ALTER TABLE tasks ADD COLUMN checkpoint TEXT;

-- A page of an organization's tasks in creation or name order is a walk of one of these
-- indexes: it costs the same at a thousand tasks as at a million (no sort step).
CREATE INDEX tasks_by_org_id ON tasks (org_id, id);
CREATE INDEX tasks_by_org_name ON tasks (org_id, name);

-- Filtered pages: a group (three tasks) is found directly; a type or status page walks its own
-- slice in name order instead of skipping past every other task of the organization.
CREATE INDEX tasks_by_org_group ON tasks (org_id, grp);
CREATE INDEX tasks_by_org_type ON tasks (org_id, type, name);
CREATE INDEX tasks_by_org_status ON tasks (org_id, status, name);

-- One import per app at a time: the group of the import holding the app, if any.
ALTER TABLE apps ADD COLUMN import_group TEXT;

-- The last build number an import of the app took. Numbers are never reused, not even a failed
-- import's (its files may still be on disk), and they survive the removal of old tasks.
ALTER TABLE apps ADD COLUMN last_build INTEGER NOT NULL DEFAULT 0;
UPDATE apps SET last_build = i_cur_build;

-- One-time upload URLs of imports in upload mode. Only the SHA-256 of the 256-bit capability
-- is kept, so a copy of the database does not let anyone upload a build.
CREATE TABLE uploads (
    task_id    INTEGER PRIMARY KEY REFERENCES tasks (id) ON DELETE CASCADE,
    token_hash BLOB NOT NULL UNIQUE,
    expires    TEXT NOT NULL,
    max_bytes  INTEGER NOT NULL
);
