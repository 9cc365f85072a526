-- Organization transfers (issue 13): the one-time download of an export, and staged imports.

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
