//! Instance-wide key/value facts (maintenance mode, engine id) that must survive a restart.

use rusqlite::{Connection, OptionalExtension};

use super::StoreResult;

/// A read that touches the database file, for readiness checks.
pub fn probe(conn: &Connection) -> StoreResult<i64> {
    Ok(conn.prepare_cached("SELECT count(*) FROM meta")?.query_row([], |r| r.get(0))?)
}

pub fn get(conn: &Connection, key: &str) -> StoreResult<Option<String>> {
    Ok(conn.query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0)).optional()?)
}

pub fn set(conn: &Connection, key: &str, value: &str) -> StoreResult<()> {
    conn.execute(
        "INSERT INTO meta (key, value) VALUES (?1, ?2) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        [key, value],
    )?;
    Ok(())
}

/// Key of the maintenance state (JSON).
pub const MAINTENANCE: &str = "maintenance";
/// Key of the id of the engine that last ran a task.
pub const ENGINE: &str = "engine";
