//! Login sessions. A session holds only the SHA-256 of its current refresh token's secret.

use rusqlite::{params, Connection, OptionalExtension, Row};

use super::{list_page, now_rfc3339, Listed, Page, StoreResult};

/// API sort field → SQL column for the list; the first entry (the id) breaks ties.
pub const SORT: super::SortColumns = &[
    ("sessionId", "s.id"),
    ("username", "u.username"),
    ("created", "s.created"),
    ("refreshed", "s.refreshed"),
    ("expires", "s.expires"),
];

#[derive(Clone, Debug)]
pub struct Session {
    pub id: String,
    pub org_id: i64,
    pub user_id: i64,
    pub refresh_hash: Vec<u8>,
    pub generation: i64,
    pub expires: i64,
    pub revoked: bool,
}

/// What the sessions list shows of a live session: never its refresh hash.
#[derive(Clone, Debug)]
pub struct SessionInfo {
    pub id: String,
    pub user_id: i64,
    pub username: String,
    pub created: String,
    pub refreshed: Option<String>,
    pub client: Option<String>,
    pub expires: i64,
}

const INFO_SELECT: &str = "SELECT s.id, s.user_id, u.username, s.created, s.refreshed, s.client, s.expires \
     FROM sessions s JOIN users u ON u.id = s.user_id";

fn info_from_row(row: &Row) -> rusqlite::Result<SessionInfo> {
    Ok(SessionInfo {
        id: row.get(0)?,
        user_id: row.get(1)?,
        username: row.get(2)?,
        created: row.get(3)?,
        refreshed: row.get(4)?,
        client: row.get(5)?,
        expires: row.get(6)?,
    })
}

/// Opens a session; `client` is the address the login came from, if known.
pub fn insert(conn: &Connection, session: &Session, client: Option<&str>) -> StoreResult<()> {
    conn.execute(
        "INSERT INTO sessions (id, org_id, user_id, refresh_hash, generation, created, expires, client) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        params![session.id, session.org_id, session.user_id, session.refresh_hash, session.generation, now_rfc3339(), session.expires, client],
    )?;
    Ok(())
}

/// A live (neither revoked nor expired) session of the organization.
pub fn live_by_id(conn: &Connection, org_id: i64, id: &str, now: i64) -> StoreResult<Option<SessionInfo>> {
    let sql = format!("{INFO_SELECT} WHERE s.org_id = ?1 AND s.id = ?2 AND s.revoked IS NULL AND s.expires >= ?3");
    Ok(conn.query_row(&sql, params![org_id, id, now], info_from_row).optional()?)
}

/// Live sessions of the organization, optionally only of one user (`owner`) or of users whose
/// name contains `username`.
pub fn list_live(
    conn: &Connection,
    org_id: i64,
    owner: Option<i64>,
    username: Option<&str>,
    now: i64,
    page: &Page,
) -> StoreResult<Listed<SessionInfo>> {
    let cond = "WHERE s.org_id = ?1 AND s.revoked IS NULL AND s.expires >= ?2 AND (?3 IS NULL OR s.user_id = ?3) \
         AND (?4 IS NULL OR instr(lower(u.username), lower(?4)) > 0)";
    let from = "sessions s JOIN users u ON u.id = s.user_id";
    list_page(conn, INFO_SELECT, from, cond, params![org_id, now, owner, username], page, info_from_row)
}

pub fn get(conn: &Connection, id: &str) -> StoreResult<Option<Session>> {
    Ok(conn
        .prepare_cached("SELECT id, org_id, user_id, refresh_hash, generation, expires, revoked IS NOT NULL FROM sessions WHERE id = ?1")?
        .query_row([id], |r| {
            Ok(Session {
                id: r.get(0)?,
                org_id: r.get(1)?,
                user_id: r.get(2)?,
                refresh_hash: r.get(3)?,
                generation: r.get(4)?,
                expires: r.get(5)?,
                revoked: r.get(6)?,
            })
        })
        .optional()?)
}

/// Moves the session to its next refresh token.
pub fn rotate(conn: &Connection, id: &str, new_hash: &[u8], generation: i64, expires: i64) -> StoreResult<()> {
    conn.execute(
        "UPDATE sessions SET refresh_hash = ?2, generation = ?3, expires = ?4, refreshed = ?5 WHERE id = ?1",
        params![id, new_hash, generation, expires, now_rfc3339()],
    )?;
    Ok(())
}

pub fn revoke(conn: &Connection, id: &str) -> StoreResult<()> {
    conn.execute("UPDATE sessions SET revoked = ?2 WHERE id = ?1 AND revoked IS NULL", params![id, now_rfc3339()])?;
    Ok(())
}

pub fn revoke_all_of_user(conn: &Connection, user_id: i64) -> StoreResult<()> {
    conn.execute(
        "UPDATE sessions SET revoked = ?2 WHERE user_id = ?1 AND revoked IS NULL",
        params![user_id, now_rfc3339()],
    )?;
    Ok(())
}

/// Revokes every live session of the user except `keep` (the one that changed the password).
pub fn revoke_all_of_user_but(conn: &Connection, user_id: i64, keep: Option<&str>) -> StoreResult<()> {
    conn.execute(
        "UPDATE sessions SET revoked = ?3 WHERE user_id = ?1 AND revoked IS NULL AND id IS NOT ?2",
        params![user_id, keep, now_rfc3339()],
    )?;
    Ok(())
}

/// Deletes sessions whose refresh token has expired: every token of theirs is expired too.
pub fn delete_expired(conn: &Connection, now: i64) -> StoreResult<usize> {
    Ok(conn.execute("DELETE FROM sessions WHERE expires < ?1", [now])?)
}
