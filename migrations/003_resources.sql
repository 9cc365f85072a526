-- The organization's resources: publish targets (deployments), apps with their builds and
-- patches, and event subscriptions. Secrets are stored sealed (AES-256-GCM), never in clear.

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
