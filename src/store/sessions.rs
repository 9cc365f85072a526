//! Login sessions. A session holds only the SHA-256 of its current refresh token's secret.

use rusqlite::{params, Connection, OptionalExtension};

use super::{now_rfc3339, StoreResult};

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

pub fn insert(conn: &Connection, session: &Session) -> StoreResult<()> {
    conn.execute(
        "INSERT INTO sessions (id, org_id, user_id, refresh_hash, generation, created, expires) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![session.id, session.org_id, session.user_id, session.refresh_hash, session.generation, now_rfc3339(), session.expires],
    )?;
    Ok(())
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
        "UPDATE sessions SET refresh_hash = ?2, generation = ?3, expires = ?4 WHERE id = ?1",
        params![id, new_hash, generation, expires],
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
