//! API keys of machine accounts: only the SHA-256 of each key is stored.

use rusqlite::{params, Connection, OptionalExtension, Row};

use super::{list_page, now_rfc3339, Listed, Page, StoreResult};

/// API sort field → SQL column for the list; the first entry (the name) breaks ties.
pub const SORT: super::SortColumns =
    &[("apiKeyId", "k.id"), ("username", "u.username"), ("created", "k.created"), ("lastUsed", "k.last_used")];

#[derive(Clone, Debug)]
pub struct ApiKey {
    pub id: String,
    pub user_id: i64,
    pub username: String,
    pub created: String,
    pub last_used: Option<String>,
}

const SELECT: &str =
    "SELECT k.id, k.user_id, u.username, k.created, k.last_used FROM api_keys k JOIN users u ON u.id = k.user_id";

fn from_row(row: &Row) -> rusqlite::Result<ApiKey> {
    Ok(ApiKey {
        id: row.get(0)?,
        user_id: row.get(1)?,
        username: row.get(2)?,
        created: row.get(3)?,
        last_used: row.get(4)?,
    })
}

pub fn insert(conn: &Connection, id: &str, org_id: i64, user_id: i64, key_hash: &[u8]) -> StoreResult<String> {
    let now = now_rfc3339();
    conn.execute(
        "INSERT INTO api_keys (id, org_id, user_id, key_hash, created) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![id, org_id, user_id, key_hash, now],
    )?;
    Ok(now)
}

/// The account an API key belongs to, if the key, the organization and the username all match.
pub fn owner(
    conn: &Connection,
    org_name: &str,
    username: &str,
    key_hash: &[u8],
) -> StoreResult<Option<(String, i64, i64)>> {
    Ok(conn
        .prepare_cached(
            "SELECT k.id, u.id, o.id FROM api_keys k JOIN users u ON u.id = k.user_id JOIN orgs o ON o.id = k.org_id
             WHERE k.key_hash = ?1 AND o.name = ?2 AND u.username = ?3",
        )?
        .query_row(params![key_hash, org_name, username], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .optional()?)
}

pub fn by_id(conn: &Connection, org_id: i64, id: &str) -> StoreResult<Option<ApiKey>> {
    let sql = format!("{SELECT} WHERE k.org_id = ?1 AND k.id = ?2");
    Ok(conn.query_row(&sql, params![org_id, id], from_row).optional()?)
}

/// Keys of the organization, optionally only of users whose name contains `username`, or only
/// of one user (`owner`).
pub fn list(
    conn: &Connection,
    org_id: i64,
    owner: Option<i64>,
    username: Option<&str>,
    page: &Page,
) -> StoreResult<Listed<ApiKey>> {
    let cond =
        "WHERE k.org_id = ?1 AND (?2 IS NULL OR k.user_id = ?2) AND (?3 IS NULL OR instr(lower(u.username), lower(?3)) > 0)";
    let from = "api_keys k JOIN users u ON u.id = k.user_id";
    list_page(conn, SELECT, from, cond, params![org_id, owner, username], page, from_row)
}

pub fn delete(conn: &Connection, org_id: i64, id: &str) -> StoreResult<bool> {
    Ok(conn.execute("DELETE FROM api_keys WHERE org_id = ?1 AND id = ?2", params![org_id, id])? > 0)
}

pub fn delete_all_of_user(conn: &Connection, user_id: i64) -> StoreResult<()> {
    conn.execute("DELETE FROM api_keys WHERE user_id = ?1", [user_id])?;
    Ok(())
}

pub fn touch(conn: &Connection, id: &str) -> StoreResult<()> {
    conn.execute("UPDATE api_keys SET last_used = ?2 WHERE id = ?1", params![id, now_rfc3339()])?;
    Ok(())
}
