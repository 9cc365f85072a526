-- Session control (issue 14): what an administrator needs to tell a lost laptop's session from
-- the others — when it last refreshed and from which client address it logged in.
ALTER TABLE sessions ADD COLUMN refreshed TEXT;
ALTER TABLE sessions ADD COLUMN client TEXT;

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
