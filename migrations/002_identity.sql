-- Identity and access: organizations, accounts, roles, sessions, API keys.

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
    revoked      TEXT
);

CREATE INDEX sessions_by_user ON sessions (user_id);
CREATE INDEX sessions_by_expiry ON sessions (expires);

CREATE TABLE api_keys (
    id        TEXT PRIMARY KEY,
    org_id    INTEGER NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    user_id   INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    key_hash  BLOB NOT NULL UNIQUE,
    created   TEXT NOT NULL,
    last_used TEXT
);

CREATE INDEX api_keys_by_user ON api_keys (user_id);

-- Tasks of an organization go with it; instance tasks (hello, prune) have none.
ALTER TABLE tasks ADD COLUMN org_id INTEGER REFERENCES orgs (id) ON DELETE CASCADE;
CREATE INDEX tasks_by_org ON tasks (org_id, created);
