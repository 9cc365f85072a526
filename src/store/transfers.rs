//! Rows of organization transfers (issue 13): an organization read whole for an export, written
//! whole by a commit; the one-time download of an export and the staged imports.

use rusqlite::{params, Connection, OptionalExtension};
use serde_json::Value;

use super::{now_rfc3339, StoreError, StoreResult};
use crate::bundle::document::{
    ApiKeyRow, AppRow, BuildRow, DeploymentRow, OrgDocument, OrgRow, PatchRow, RoleRow, SubscriptionRow, UserRow,
};
use crate::store::tasks::{self as task_rows, Task};

fn json(text: String) -> Value {
    serde_json::from_str(&text).unwrap_or(Value::Null)
}

fn b64(bytes: Option<Vec<u8>>) -> Option<String> {
    bytes.map(|b| crate::auth::b64_encode(&b))
}

fn bytes(text: &Option<String>) -> StoreResult<Option<Vec<u8>>> {
    text.as_deref()
        .map(|t| crate::auth::b64_decode_any(t).ok_or_else(|| StoreError::Corrupt("a secret is not base64".into())))
        .transpose()
}

/// The organization `org_id` whole, secrets as this box sealed them (base64). One read
/// transaction (the caller's), so the rows agree with each other.
pub fn snapshot(conn: &Connection, org_id: i64) -> StoreResult<Option<OrgDocument>> {
    let org = conn
        .query_row("SELECT name, label, public_key, created FROM orgs WHERE id = ?1", [org_id], |r| {
            Ok(OrgRow { name: r.get(0)?, label: r.get(1)?, public_key: r.get(2)?, created: r.get(3)? })
        })
        .optional()?;
    let Some(org) = org else { return Ok(None) };
    let roles = conn
        .prepare(
            "SELECT name, label, permissions, builtin, created, updated FROM roles WHERE org_id = ?1 ORDER BY name",
        )?
        .query_map([org_id], |r| {
            Ok(RoleRow {
                name: r.get(0)?,
                label: r.get(1)?,
                permissions: json(r.get(2)?),
                builtin: r.get(3)?,
                created: r.get(4)?,
                updated: r.get(5)?,
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    let mut users = conn
        .prepare(
            "SELECT u.username, u.type, u.email, u.firstname, u.surname, u.title, u.label, u.password_hash, u.created,
                    u.updated, u.last_login,
                    (SELECT json_group_array(name) FROM (SELECT r.name FROM user_roles ur JOIN roles r ON r.id = ur.role_id
                     WHERE ur.user_id = u.id ORDER BY r.name))
             FROM users u WHERE u.org_id = ?1 ORDER BY u.username",
        )?
        .query_map([org_id], |r| {
            Ok(UserRow {
                username: r.get(0)?,
                kind: r.get(1)?,
                email: r.get(2)?,
                firstname: r.get(3)?,
                surname: r.get(4)?,
                title: r.get(5)?,
                label: r.get(6)?,
                password_hash: r.get(7)?,
                created: r.get(8)?,
                updated: r.get(9)?,
                last_login: r.get(10)?,
                roles: serde_json::from_value(json(r.get(11)?)).unwrap_or_default(),
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    users.sort_by(|a, b| a.username.cmp(&b.username));
    let api_keys = conn
        .prepare(
            "SELECT k.id, u.username, k.key_hash, k.created, k.last_used FROM api_keys k JOIN users u ON u.id = k.user_id
             WHERE k.org_id = ?1 ORDER BY k.id",
        )?
        .query_map([org_id], |r| {
            Ok(ApiKeyRow {
                id: r.get(0)?,
                username: r.get(1)?,
                key_hash: crate::auth::b64_encode(&r.get::<_, Vec<u8>>(2)?),
                created: r.get(3)?,
                last_used: r.get(4)?,
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    let deployments = conn
        .prepare(
            "SELECT name, label, origin_prefix, origin_type, origin, origin_secret, download_auth_type,
                    download_auth_key, created, updated FROM deployments WHERE org_id = ?1 ORDER BY name",
        )?
        .query_map([org_id], |r| {
            Ok(DeploymentRow {
                name: r.get(0)?,
                label: r.get(1)?,
                origin_prefix: r.get(2)?,
                origin_type: r.get(3)?,
                origin: json(r.get(4)?),
                origin_secret: b64(r.get(5)?),
                download_auth_type: r.get(6)?,
                download_auth_key: b64(r.get(7)?),
                created: r.get(8)?,
                updated: r.get(9)?,
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    let mut apps = Vec::new();
    let rows = conn
        .prepare(
            "SELECT id, name, label, max_builds, i_cur_build, dxf_name, last_build, deployment_names, created, updated
             FROM apps WHERE org_id = ?1 ORDER BY name",
        )?
        .query_map([org_id], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                AppRow {
                    name: r.get(1)?,
                    label: r.get(2)?,
                    max_builds: r.get(3)?,
                    i_cur_build: r.get(4)?,
                    dxf_name: r.get(5)?,
                    last_build: r.get(6)?,
                    deployments: serde_json::from_value(json(r.get(7)?)).unwrap_or_default(),
                    builds: Vec::new(),
                    patches: Vec::new(),
                    created: r.get(8)?,
                    updated: r.get(9)?,
                },
            ))
        })?
        .collect::<Result<Vec<_>, _>>()?;
    for (app_id, mut app) in rows {
        app.builds = conn
            .prepare("SELECT build_id, name, size_bytes, created FROM builds WHERE app_id = ?1 ORDER BY build_id")?
            .query_map([app_id], |r| {
                Ok(BuildRow { build_id: r.get(0)?, name: r.get(1)?, size_bytes: r.get(2)?, created: r.get(3)? })
            })?
            .collect::<Result<Vec<_>, _>>()?;
        app.patches = conn
            .prepare(
                "SELECT from_build_id, to_build_id, size_bytes FROM patches WHERE app_id = ?1
                 ORDER BY to_build_id, from_build_id",
            )?
            .query_map([app_id], |r| {
                Ok(PatchRow { from_build_id: r.get(0)?, to_build_id: r.get(1)?, size_bytes: r.get(2)? })
            })?
            .collect::<Result<Vec<_>, _>>()?;
        apps.push(app);
    }
    let subscriptions = conn
        .prepare(
            "SELECT name, type, url, events, secret, created, updated FROM subscriptions WHERE org_id = ?1 ORDER BY name",
        )?
        .query_map([org_id], |r| {
            Ok(SubscriptionRow {
                name: r.get(0)?,
                kind: r.get(1)?,
                url: r.get(2)?,
                events: json(r.get(3)?),
                secret: crate::auth::b64_encode(&r.get::<_, Vec<u8>>(4)?),
                created: r.get(5)?,
                updated: r.get(6)?,
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Some(OrgDocument {
        org,
        roles,
        users,
        api_keys,
        deployments,
        apps,
        subscriptions,
        include_builds: false,
        exported: String::new(),
        exported_by: String::new(),
    }))
}

/// The app ids of an organization by name (the export copies their build files).
pub fn app_ids(conn: &Connection, org_id: i64) -> StoreResult<Vec<(String, i64)>> {
    Ok(conn
        .prepare("SELECT name, id FROM apps WHERE org_id = ?1 ORDER BY name")?
        .query_map([org_id], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<Vec<_>, _>>()?)
}

/// The organization's apps an import holds (their build files change while it runs).
pub fn importing_apps(conn: &Connection, org_id: i64) -> StoreResult<Vec<String>> {
    Ok(conn
        .prepare("SELECT name FROM apps WHERE org_id = ?1 AND import_group IS NOT NULL ORDER BY name")?
        .query_map([org_id], |r| r.get(0))?
        .collect::<Result<Vec<String>, _>>()?)
}

/// Whether a bundle may land on the organization of this name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Landing {
    /// No organization has the name.
    Free,
    /// One has, with no apps, deployments or subscriptions: its accounts and roles are replaced.
    Empty(i64),
    /// One has, in use: an import is refused.
    Taken,
}

pub fn landing(conn: &Connection, org_name: &str) -> StoreResult<Landing> {
    let found: Option<(i64, i64)> = conn
        .query_row(
            "SELECT o.id, (SELECT count(*) FROM apps WHERE org_id = o.id)
                        + (SELECT count(*) FROM deployments WHERE org_id = o.id)
                        + (SELECT count(*) FROM subscriptions WHERE org_id = o.id)
             FROM orgs o WHERE o.name = ?1",
            [org_name],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    Ok(match found {
        None => Landing::Free,
        Some((id, 0)) => Landing::Empty(id),
        Some(_) => Landing::Taken,
    })
}

/// Writes the organization row of a commit; the caller has made the name free. Its id is what
/// the secrets are sealed to before [`insert_contents`].
pub fn insert_org_row(conn: &Connection, o: &OrgRow) -> StoreResult<i64> {
    conn.execute(
        "INSERT INTO orgs (name, label, public_key, created, updated) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![o.name, o.label, o.public_key, o.created, now_rfc3339()],
    )?;
    Ok(conn.last_insert_rowid())
}

/// Writes everything of `doc` below its organization (secrets sealed for their final place,
/// base64) and answers each app's new id. Runs in the transaction of the commit.
pub fn insert_contents(conn: &Connection, org_id: i64, doc: &OrgDocument) -> StoreResult<Vec<(String, i64)>> {
    let mut role_ids = std::collections::HashMap::new();
    for r in &doc.roles {
        conn.execute(
            "INSERT INTO roles (org_id, name, label, permissions, builtin, created, updated)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![org_id, r.name, r.label, r.permissions.to_string(), r.builtin, r.created, r.updated],
        )?;
        role_ids.insert(r.name.as_str(), conn.last_insert_rowid());
    }
    let mut user_ids = std::collections::HashMap::new();
    for u in &doc.users {
        conn.execute(
            "INSERT INTO users (org_id, username, type, email, firstname, surname, title, label, password_hash,
                                created, updated, last_login)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
            params![
                org_id,
                u.username,
                u.kind,
                u.email,
                u.firstname,
                u.surname,
                u.title,
                u.label,
                u.password_hash,
                u.created,
                u.updated,
                u.last_login
            ],
        )?;
        let user_id = conn.last_insert_rowid();
        user_ids.insert(u.username.as_str(), user_id);
        for role in &u.roles {
            let role_id = role_ids
                .get(role.as_str())
                .ok_or_else(|| StoreError::Corrupt(format!("user {} holds the unknown role {role}", u.username)))?;
            conn.execute("INSERT INTO user_roles (user_id, role_id) VALUES (?1, ?2)", params![user_id, role_id])?;
        }
    }
    for k in &doc.api_keys {
        let user_id = user_ids
            .get(k.username.as_str())
            .ok_or_else(|| StoreError::Corrupt(format!("API key {} of the unknown user {}", k.id, k.username)))?;
        let hash = bytes(&Some(k.key_hash.clone()))?;
        conn.execute(
            "INSERT INTO api_keys (id, org_id, user_id, key_hash, created, last_used) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![k.id, org_id, user_id, hash, k.created, k.last_used],
        )?;
    }
    let mut deployment_ids = std::collections::HashMap::new();
    for d in &doc.deployments {
        conn.execute(
            "INSERT INTO deployments (org_id, name, label, origin_prefix, origin_type, origin, origin_secret,
                                      download_auth_type, download_auth_key, created, updated)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
            params![
                org_id,
                d.name,
                d.label,
                d.origin_prefix,
                d.origin_type,
                d.origin.to_string(),
                bytes(&d.origin_secret)?,
                d.download_auth_type,
                bytes(&d.download_auth_key)?,
                d.created,
                d.updated
            ],
        )?;
        deployment_ids.insert(d.name.as_str(), conn.last_insert_rowid());
    }
    let mut app_ids = Vec::new();
    for a in &doc.apps {
        conn.execute(
            "INSERT INTO apps (org_id, name, label, max_builds, i_cur_build, dxf_name, last_build, created, updated)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            params![
                org_id,
                a.name,
                a.label,
                a.max_builds,
                a.i_cur_build,
                a.dxf_name,
                a.last_build,
                a.created,
                a.updated
            ],
        )?;
        let app_id = conn.last_insert_rowid();
        for name in &a.deployments {
            let id = deployment_ids
                .get(name.as_str())
                .ok_or_else(|| StoreError::Corrupt(format!("app {} lists the unknown deployment {name}", a.name)))?;
            conn.execute("INSERT INTO app_deployments (app_id, deployment_id) VALUES (?1, ?2)", params![app_id, id])?;
        }
        for b in &a.builds {
            conn.execute(
                "INSERT INTO builds (app_id, build_id, name, size_bytes, created) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![app_id, b.build_id, b.name, b.size_bytes, b.created],
            )?;
        }
        for p in &a.patches {
            conn.execute(
                "INSERT INTO patches (app_id, from_build_id, to_build_id, size_bytes) VALUES (?1, ?2, ?3, ?4)",
                params![app_id, p.from_build_id, p.to_build_id, p.size_bytes],
            )?;
        }
        app_ids.push((a.name.clone(), app_id));
    }
    for s in &doc.subscriptions {
        conn.execute(
            "INSERT INTO subscriptions (org_id, name, type, url, events, secret, created, updated)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![
                org_id,
                s.name,
                s.kind,
                s.url,
                s.events.to_string(),
                bytes(&Some(s.secret.clone()))?,
                s.created,
                s.updated
            ],
        )?;
    }
    Ok(app_ids)
}

// The one-time download of an export.

pub fn insert_export(conn: &Connection, task_id: i64, token_hash: &[u8], expires: &str) -> StoreResult<()> {
    conn.execute(
        "INSERT INTO org_exports (task_id, token_hash, expires) VALUES (?1, ?2, ?3)",
        params![task_id, token_hash, expires],
    )?;
    Ok(())
}

/// The export task a download capability opens, while it is unexpired and unused.
pub fn export_by_hash(conn: &Connection, token_hash: &[u8]) -> StoreResult<Option<Task>> {
    let task_id: Option<i64> = conn
        .query_row(
            "SELECT task_id FROM org_exports WHERE token_hash = ?1 AND expires > ?2",
            params![token_hash, now_rfc3339()],
            |r| r.get(0),
        )
        .optional()?;
    match task_id {
        Some(id) => task_rows::get_by_id(conn, id),
        None => Ok(None),
    }
}

/// The whole bundle went out: the capability is used up. `false`: another download was first.
pub fn finish_export(conn: &Connection, task_id: i64) -> StoreResult<bool> {
    Ok(conn.execute("DELETE FROM org_exports WHERE task_id = ?1", [task_id])? == 1)
}

/// Forgets downloads that expired unused; answers their tasks' names (their files go too).
pub fn remove_expired_exports(conn: &Connection) -> StoreResult<Vec<String>> {
    let names = conn
        .prepare("SELECT t.name FROM org_exports e JOIN tasks t ON t.id = e.task_id WHERE e.expires <= ?1")?
        .query_map([now_rfc3339()], |r| r.get(0))?
        .collect::<Result<Vec<String>, _>>()?;
    conn.execute("DELETE FROM org_exports WHERE expires <= ?1", [now_rfc3339()])?;
    Ok(names)
}

/// The tasks whose bundles are still to be fetched (or still being written).
pub fn pending_export_names(conn: &Connection) -> StoreResult<Vec<String>> {
    Ok(conn
        .prepare("SELECT t.name FROM org_exports e JOIN tasks t ON t.id = e.task_id")?
        .query_map([], |r| r.get(0))?
        .collect::<Result<Vec<String>, _>>()?)
}

/// The export task's sealed passphrase is needed only while it runs.
pub fn forget_passphrase(conn: &Connection, task_id: i64) -> StoreResult<()> {
    conn.execute("UPDATE tasks SET input = json_remove(input, '$.passphrase') WHERE id = ?1", [task_id])?;
    Ok(())
}

// Imports.

/// A staged (or waiting) import as stored.
#[derive(Clone, Debug)]
pub struct Import {
    pub id: i64,
    pub name: String,
    /// `waiting` (for its upload), `staged` or `committed`.
    pub status: String,
    /// Sealed under this box's key; only while waiting.
    pub passphrase: Option<Vec<u8>>,
    pub expires: String,
    pub max_bytes: u64,
    pub org_name: Option<String>,
    /// The staged [`OrgDocument`] as JSON, secrets sealed under this box's key.
    pub document: Option<String>,
    pub report: Option<Value>,
    pub created: String,
    pub staged: Option<String>,
    pub committed: Option<String>,
}

const IMPORT_COLUMNS: &str =
    "id, name, status, passphrase, expires, max_bytes, org_name, document, report, created, staged, committed";

fn import_row(r: &rusqlite::Row) -> rusqlite::Result<Import> {
    Ok(Import {
        id: r.get(0)?,
        name: r.get(1)?,
        status: r.get(2)?,
        passphrase: r.get(3)?,
        expires: r.get(4)?,
        max_bytes: r.get::<_, i64>(5)?.max(0) as u64,
        org_name: r.get(6)?,
        document: r.get(7)?,
        report: r.get::<_, Option<String>>(8)?.map(json),
        created: r.get(9)?,
        staged: r.get(10)?,
        committed: r.get(11)?,
    })
}

pub fn insert_import(
    conn: &Connection,
    token_hash: &[u8],
    sealed_passphrase: &[u8],
    expires: &str,
    max_bytes: u64,
) -> StoreResult<Import> {
    let name = format!("import-{}", crate::auth::hex(&crate::auth::random_bytes::<8>()));
    conn.execute(
        "INSERT INTO org_imports (name, status, token_hash, passphrase, expires, max_bytes, created)
         VALUES (?1, 'waiting', ?2, ?3, ?4, ?5, ?6)",
        params![name, token_hash, sealed_passphrase, expires, max_bytes as i64, now_rfc3339()],
    )?;
    import_by_name(conn, &name)?.ok_or_else(|| StoreError::Corrupt("inserted import vanished".into()))
}

pub fn import_by_name(conn: &Connection, name: &str) -> StoreResult<Option<Import>> {
    let sql = format!("SELECT {IMPORT_COLUMNS} FROM org_imports WHERE name = ?1");
    Ok(conn.query_row(&sql, [name], import_row).optional()?)
}

/// The import an upload capability opens, while it waits and is unexpired.
pub fn import_by_hash(conn: &Connection, token_hash: &[u8]) -> StoreResult<Option<Import>> {
    let sql = format!(
        "SELECT {IMPORT_COLUMNS} FROM org_imports WHERE token_hash = ?1 AND status = 'waiting' AND expires > ?2"
    );
    Ok(conn.query_row(&sql, params![token_hash, now_rfc3339()], import_row).optional()?)
}

/// The upload was verified and unpacked: the capability and the passphrase are gone, the
/// document waits for the commit. `false`: the import no longer waits (expired meanwhile).
pub fn stage_import(conn: &Connection, id: i64, org_name: &str, document: &str, report: &Value) -> StoreResult<bool> {
    Ok(conn.execute(
        "UPDATE org_imports SET status = 'staged', token_hash = NULL, passphrase = NULL, org_name = ?2,
                document = ?3, report = ?4, staged = ?5
         WHERE id = ?1 AND status = 'waiting' AND expires > ?5",
        params![id, org_name, document, report.to_string(), now_rfc3339()],
    )? == 1)
}

/// The commit applied the import; its document is not needed any more.
pub fn mark_committed(conn: &Connection, id: i64) -> StoreResult<bool> {
    Ok(conn.execute(
        "UPDATE org_imports SET status = 'committed', document = NULL, committed = ?2 WHERE id = ?1 AND status = 'staged'",
        params![id, now_rfc3339()],
    )? == 1)
}

/// Discards an import that was not committed. `false`: none such (unknown or committed).
pub fn delete_import(conn: &Connection, id: i64) -> StoreResult<bool> {
    Ok(conn.execute("DELETE FROM org_imports WHERE id = ?1 AND status != 'committed'", [id])? == 1)
}
