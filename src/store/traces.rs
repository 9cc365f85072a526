//! Start-up read traces of launchers (FastStart): stored per app and build, newest kept, and the
//! commit that makes a trace-ordered image the build's published one.

use rusqlite::{params, Connection};

use super::{now_rfc3339, StoreResult};

/// Traces kept per build: enough launchers to cover their differences, few enough that a
/// misbehaving launcher cannot grow the database without bound (older ones go first).
pub const KEPT_PER_BUILD: i64 = 16;

/// Stores a trace (its reads as JSON) of build `build_id` and drops the build's traces beyond the
/// newest [`KEPT_PER_BUILD`]. Answers how many traces the build has now.
pub fn insert(conn: &Connection, app_id: i64, build_id: i64, reads_json: &str) -> StoreResult<i64> {
    conn.execute(
        "INSERT INTO traces (app_id, build_id, reads, created) VALUES (?1, ?2, ?3, ?4)",
        params![app_id, build_id, reads_json, now_rfc3339()],
    )?;
    conn.execute(
        "DELETE FROM traces WHERE app_id = ?1 AND build_id = ?2 AND id NOT IN
             (SELECT id FROM traces WHERE app_id = ?1 AND build_id = ?2 ORDER BY id DESC LIMIT ?3)",
        params![app_id, build_id, KEPT_PER_BUILD],
    )?;
    Ok(conn.query_row(
        "SELECT count(*) FROM traces WHERE app_id = ?1 AND build_id = ?2",
        params![app_id, build_id],
        |r| r.get(0),
    )?)
}

/// The newest trace id of a build, if it has traces: processTraces uses the traces up to it, so
/// a retried task orders the image the same way whatever arrived meanwhile.
pub fn newest(conn: &Connection, app_id: i64, build_id: i64) -> StoreResult<Option<i64>> {
    Ok(conn.query_row(
        "SELECT max(id) FROM traces WHERE app_id = ?1 AND build_id = ?2",
        params![app_id, build_id],
        |r| r.get(0),
    )?)
}

/// The reads (JSON) of a build's traces up to id `upto`, oldest first.
pub fn reads(conn: &Connection, app_id: i64, build_id: i64, upto: i64) -> StoreResult<Vec<String>> {
    let mut stmt =
        conn.prepare_cached("SELECT reads FROM traces WHERE app_id = ?1 AND build_id = ?2 AND id <= ?3 ORDER BY id")?;
    let rows = stmt.query_map(params![app_id, build_id, upto], |r| r.get(0))?.collect::<Result<Vec<String>, _>>()?;
    Ok(rows)
}

/// The traces of builds that left the app.
pub fn forget_build(conn: &Connection, app_id: i64, build_id: i64) -> StoreResult<()> {
    conn.execute("DELETE FROM traces WHERE app_id = ?1 AND build_id = ?2", params![app_id, build_id])?;
    Ok(())
}

/// The trace-ordered image of the app's current build is published: it becomes the app's
/// `dxfName` (and the build's size), and the app is free for the next import. A build that is no
/// longer current (impossible while the task holds the app, kept safe anyway) changes nothing.
pub fn commit_startup_image(
    conn: &Connection,
    app_id: i64,
    build_id: i64,
    dxf_name: &str,
    size_bytes: i64,
) -> StoreResult<()> {
    let now = now_rfc3339();
    let current = conn.execute(
        "UPDATE apps SET dxf_name = ?3, updated = ?4 WHERE id = ?1 AND i_cur_build = ?2",
        params![app_id, build_id, dxf_name, now],
    )?;
    if current > 0 {
        conn.execute(
            "UPDATE builds SET size_bytes = ?3, dxf_name = ?4 WHERE app_id = ?1 AND build_id = ?2",
            params![app_id, build_id, size_bytes, dxf_name],
        )?;
    }
    conn.execute(
        "UPDATE apps SET import_group = NULL, processing = 0, exporting = 0, updated = ?2 WHERE id = ?1",
        params![app_id, now],
    )?;
    Ok(())
}
