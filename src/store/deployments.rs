//! Deployments (publish targets) of an organization. Secrets arrive here already sealed.

use rusqlite::{params, Connection, OptionalExtension, Row};
use serde_json::Value;

use super::{list_page, now_rfc3339, Listed, Page, StoreResult};

/// API sort field → SQL column for the list; the first entry (the name) breaks ties.
pub const SORT: super::SortColumns = &[
    ("name", "d.name"),
    ("label", "d.label"),
    ("status", "d.status"),
    ("created", "d.created"),
    ("updated", "d.updated"),
];

#[derive(Clone, Debug)]
pub struct Deployment {
    pub id: i64,
    pub name: String,
    pub label: String,
    pub origin_prefix: String,
    /// Clear origin fields (never the secret).
    pub origin: Value,
    pub origin_secret: Option<Vec<u8>>,
    pub download_auth_type: Option<String>,
    pub download_auth_key: Option<Vec<u8>>,
    pub status: String,
    pub message: Option<String>,
    pub created: String,
    pub updated: String,
}

/// What is written on create and update.
pub struct DeploymentWrite {
    pub label: String,
    pub origin_prefix: String,
    pub origin_type: String,
    pub origin: Value,
    pub origin_secret: Option<Vec<u8>>,
    pub download_auth_type: Option<String>,
    pub download_auth_key: Option<Vec<u8>>,
}

const SELECT: &str = "SELECT d.id, d.name, d.label, d.origin_prefix, d.origin, d.origin_secret, d.download_auth_type,
        d.download_auth_key, d.status, d.message, d.created, d.updated FROM deployments d";

fn from_row(row: &Row) -> rusqlite::Result<Deployment> {
    let origin: String = row.get(4)?;
    Ok(Deployment {
        id: row.get(0)?,
        name: row.get(1)?,
        label: row.get(2)?,
        origin_prefix: row.get(3)?,
        origin: serde_json::from_str(&origin).unwrap_or(Value::Null),
        origin_secret: row.get(5)?,
        download_auth_type: row.get(6)?,
        download_auth_key: row.get(7)?,
        status: row.get(8)?,
        message: row.get(9)?,
        created: row.get(10)?,
        updated: row.get(11)?,
    })
}

pub fn insert(conn: &Connection, org_id: i64, name: &str, w: &DeploymentWrite) -> StoreResult<i64> {
    let now = now_rfc3339();
    conn.execute(
        "INSERT INTO deployments (org_id, name, label, origin_prefix, origin_type, origin, origin_secret,
                                  download_auth_type, download_auth_key, created, updated)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?10)",
        params![
            org_id,
            name,
            w.label,
            w.origin_prefix,
            w.origin_type,
            w.origin.to_string(),
            w.origin_secret,
            w.download_auth_type,
            w.download_auth_key,
            now
        ],
    )?;
    Ok(conn.last_insert_rowid())
}

pub fn update(conn: &Connection, id: i64, w: &DeploymentWrite) -> StoreResult<()> {
    conn.execute(
        "UPDATE deployments SET label = ?2, origin_prefix = ?3, origin_type = ?4, origin = ?5, origin_secret = ?6,
                download_auth_type = ?7, download_auth_key = ?8, updated = ?9 WHERE id = ?1",
        params![
            id,
            w.label,
            w.origin_prefix,
            w.origin_type,
            w.origin.to_string(),
            w.origin_secret,
            w.download_auth_type,
            w.download_auth_key,
            now_rfc3339()
        ],
    )?;
    Ok(())
}

pub fn by_name(conn: &Connection, org_id: i64, name: &str) -> StoreResult<Option<Deployment>> {
    Ok(conn
        .query_row(&format!("{SELECT} WHERE d.org_id = ?1 AND d.name = ?2"), params![org_id, name], from_row)
        .optional()?)
}

/// Every deployment of the organization, by name.
pub fn all_of_org(conn: &Connection, org_id: i64) -> StoreResult<Vec<Deployment>> {
    let sql = format!("{SELECT} WHERE d.org_id = ?1 ORDER BY d.name");
    Ok(conn.prepare(&sql)?.query_map([org_id], from_row)?.collect::<Result<_, _>>()?)
}

pub fn list(
    conn: &Connection,
    org_id: i64,
    name: Option<&str>,
    status: Option<&str>,
    page: &Page,
) -> StoreResult<Listed<Deployment>> {
    let cond =
        "WHERE d.org_id = ?1 AND (?2 IS NULL OR instr(lower(d.name), lower(?2)) > 0) AND (?3 IS NULL OR d.status = ?3)";
    list_page(conn, SELECT, "deployments d", cond, params![org_id, name, status], page, from_row)
}

/// Names of the apps that list this deployment explicitly.
pub fn listed_by_apps(conn: &Connection, deployment_id: i64) -> StoreResult<Vec<String>> {
    Ok(conn
        .prepare("SELECT a.name FROM app_deployments ad JOIN apps a ON a.id = ad.app_id WHERE ad.deployment_id = ?1 ORDER BY a.name")?
        .query_map([deployment_id], |r| r.get(0))?
        .collect::<Result<_, _>>()?)
}

pub fn delete(conn: &Connection, id: i64) -> StoreResult<()> {
    conn.execute("DELETE FROM deployments WHERE id = ?1", [id])?;
    Ok(())
}

/// Ids of the named deployments of the organization; `Err(name)` for the first unknown one.
pub fn ids_by_names(conn: &Connection, org_id: i64, names: &[String]) -> StoreResult<Result<Vec<i64>, String>> {
    let mut ids = Vec::new();
    for name in names {
        match conn
            .query_row("SELECT id FROM deployments WHERE org_id = ?1 AND name = ?2", params![org_id, name], |r| {
                r.get(0)
            })
            .optional()?
        {
            Some(id) => {
                if !ids.contains(&id) {
                    ids.push(id)
                }
            }
            None => return Ok(Err(name.clone())),
        }
    }
    Ok(Ok(ids))
}
