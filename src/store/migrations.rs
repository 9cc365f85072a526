//! Schema versions, keyed on `PRAGMA user_version`.
//!
//! A fresh database gets `schema.sql` whole; an older one gets the missing migrations in order,
//! after a consistent copy of the old file is kept next to it. A database newer than this binary
//! is refused.

use std::path::{Path, PathBuf};

use rusqlite::Connection;

use super::{StoreError, StoreResult};

/// The full current schema, what a fresh database gets.
pub const SCHEMA: &str = include_str!("../../schema.sql");

/// Every migration in order; migration `i` (0-based) takes `user_version` from `i` to `i + 1`.
pub const MIGRATIONS: &[(&str, &str)] = &[
    ("001_foundation", include_str!("../../migrations/001_foundation.sql")),
    ("002_identity", include_str!("../../migrations/002_identity.sql")),
    ("003_resources", include_str!("../../migrations/003_resources.sql")),
    ("004_builds", include_str!("../../migrations/004_builds.sql")),
    ("005_sessions_and_audit", include_str!("../../migrations/005_sessions_and_audit.sql")),
    ("006_task_counts", include_str!("../../migrations/006_task_counts.sql")),
    ("007_s3_publish", include_str!("../../migrations/007_s3_publish.sql")),
    ("008_commit", include_str!("../../migrations/008_commit.sql")),
    ("009_webhooks", include_str!("../../migrations/009_webhooks.sql")),
    ("010_traces", include_str!("../../migrations/010_traces.sql")),
    ("011_export", include_str!("../../migrations/011_export.sql")),
    ("012_task_window_counts", include_str!("../../migrations/012_task_window_counts.sql")),
    ("013_task_window_cover", include_str!("../../migrations/013_task_window_cover.sql")),
    ("014_task_walk_cover", include_str!("../../migrations/014_task_walk_cover.sql")),
    ("015_task_app_created", include_str!("../../migrations/015_task_app_created.sql")),
    ("016_task_days", include_str!("../../migrations/016_task_days.sql")),
];

/// The schema version this binary writes.
pub fn latest_version() -> i64 {
    MIGRATIONS.len() as i64
}

pub fn current_version(conn: &Connection) -> StoreResult<i64> {
    Ok(conn.pragma_query_value(None, "user_version", |row| row.get(0))?)
}

/// What `migrate --check` reports.
#[derive(Debug, PartialEq, Eq)]
pub struct Plan {
    pub current: i64,
    pub latest: i64,
}

impl Plan {
    pub fn pending(&self) -> &'static [(&'static str, &'static str)] {
        let from = (self.current.max(0) as usize).min(MIGRATIONS.len());
        &MIGRATIONS[from..]
    }
}

/// Reads the database's version and refuses one that is newer than this binary.
pub fn plan(conn: &Connection) -> StoreResult<Plan> {
    let plan = Plan { current: current_version(conn)?, latest: latest_version() };
    if plan.current > plan.latest {
        return Err(StoreError::Schema(format!(
            "the database has schema version {}, which is newer than this binary supports ({}); \
             run a newer rockit-edge or restore a backup taken before the upgrade",
            plan.current, plan.latest
        )));
    }
    Ok(plan)
}

/// Brings the database at `path` (open as `conn`) to the latest schema.
pub fn migrate(conn: &mut Connection, path: &Path) -> StoreResult<Plan> {
    let plan = plan(conn)?;
    if plan.current == plan.latest {
        return Ok(plan);
    }
    if plan.current == 0 && is_empty(conn)? {
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        tx.execute_batch(SCHEMA)?;
        tx.pragma_update(None, "user_version", plan.latest)?;
        tx.commit()?;
        log::info!("created database schema version {}", plan.latest);
        return Ok(plan);
    }
    let copy = keep_copy(conn, path, plan.current)?;
    log::info!("kept a copy of the schema-{} database at {}", plan.current, copy.display());
    apply_pending(conn, &plan)?;
    Ok(plan)
}

/// Applies each pending migration in its own transaction, bumping `user_version` with it.
pub fn apply_pending(conn: &mut Connection, plan: &Plan) -> StoreResult<()> {
    for (offset, (name, sql)) in plan.pending().iter().enumerate() {
        let version = plan.current + offset as i64 + 1;
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        tx.execute_batch(sql).map_err(|e| StoreError::Schema(format!("migration {name} failed: {e}")))?;
        tx.pragma_update(None, "user_version", version)?;
        tx.commit()?;
        log::info!("applied migration {name} (schema version {version})");
    }
    Ok(())
}

fn is_empty(conn: &Connection) -> StoreResult<bool> {
    let n: i64 = conn.query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get(0))?;
    Ok(n == 0)
}

/// A consistent copy of the database before it is changed, in `<state>/backups/`.
fn keep_copy(conn: &Connection, path: &Path, version: i64) -> StoreResult<PathBuf> {
    let dir = path.parent().unwrap_or(Path::new(".")).join("backups");
    std::fs::create_dir_all(&dir).map_err(|e| StoreError::Io(format!("cannot create {}: {e}", dir.display())))?;
    let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%SZ");
    let copy = dir.join(format!("rockit-edge.db.schema-{version}.{stamp}"));
    conn.execute("VACUUM INTO ?1", [copy.to_string_lossy()])?;
    Ok(copy)
}

/// A comparable description of a schema: tables with their columns, keys and indexes.
/// Used to prove that migrating the oldest schema yields exactly `schema.sql`.
pub fn fingerprint(conn: &Connection) -> StoreResult<Vec<String>> {
    let mut out = Vec::new();
    let mut objects = conn.prepare(
        "SELECT type, name, tbl_name, sql FROM sqlite_master WHERE name NOT LIKE 'sqlite_%' ORDER BY type, name",
    )?;
    let rows: Vec<(String, String, String, Option<String>)> =
        objects.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?.collect::<Result<_, _>>()?;
    for (kind, name, table, sql) in rows {
        match kind.as_str() {
            "table" => {
                out.push(format!("table {name}"));
                let pragmas = [
                    format!("SELECT cid, name, type, \"notnull\", dflt_value, pk, hidden FROM pragma_table_xinfo('{name}')"),
                    format!("SELECT \"table\", \"from\", \"to\", on_update, on_delete FROM pragma_foreign_key_list('{name}')"),
                ];
                for query in pragmas {
                    let mut stmt = conn.prepare(&query)?;
                    let cols = stmt.column_count();
                    let lines: Vec<String> = stmt
                        .query_map([], |r| {
                            (0..cols)
                                .map(|i| r.get::<_, rusqlite::types::Value>(i).map(|v| format!("{v:?}")))
                                .collect::<Result<Vec<_>, _>>()
                                .map(|v| format!("  {}", v.join(" ")))
                        })?
                        .collect::<Result<_, _>>()?;
                    let mut lines = lines;
                    lines.sort();
                    out.extend(lines);
                }
                // CHECK constraints only live in the CREATE text: compare it with whitespace folded.
                if let Some(sql) = sql {
                    out.push(format!("  checks {}", checks_of(&sql)));
                }
            }
            _ => {
                let sql = sql.map(|s| s.split_whitespace().collect::<Vec<_>>().join(" ")).unwrap_or_default();
                out.push(format!("{kind} {name} on {table}: {sql}"));
            }
        }
    }
    Ok(out)
}

fn checks_of(sql: &str) -> String {
    let folded: String = sql.split_whitespace().collect::<Vec<_>>().join(" ");
    folded
        .match_indices("CHECK (")
        .map(|(i, _)| {
            let rest = &folded[i..];
            let mut depth = 0;
            let end = rest
                .char_indices()
                .find_map(|(j, c)| {
                    match c {
                        '(' => depth += 1,
                        ')' => {
                            depth -= 1;
                            if depth == 0 {
                                return Some(j + 1);
                            }
                        }
                        _ => {}
                    }
                    None
                })
                .unwrap_or(rest.len());
            rest[..end].to_string()
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// Two organizations, ids 1 and 2: the seed of tests that check one organization's rows stay its own.
#[cfg(test)]
pub(crate) const TWO_ORGS: &str =
    "INSERT INTO orgs (id, name, created, updated) VALUES (1, 'a', 'x', 'x'), (2, 'b', 'x', 'x');";

/// A fresh in-memory database for unit tests: the whole schema, foreign keys on, then `seed`.
#[cfg(test)]
pub(crate) fn test_database(seed: &str) -> rusqlite::Connection {
    let conn = rusqlite::Connection::open_in_memory().unwrap();
    conn.execute_batch(SCHEMA).unwrap();
    conn.execute_batch("PRAGMA foreign_keys = ON").unwrap();
    conn.execute_batch(seed).unwrap();
    conn
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrating_the_first_schema_yields_exactly_schema_sql() {
        let mut migrated = Connection::open_in_memory().unwrap();
        apply_pending(&mut migrated, &Plan { current: 0, latest: latest_version() }).unwrap();
        let fresh = Connection::open_in_memory().unwrap();
        fresh.execute_batch(SCHEMA).unwrap();
        assert_eq!(fingerprint(&migrated).unwrap(), fingerprint(&fresh).unwrap());
        assert_eq!(current_version(&migrated).unwrap(), latest_version());
    }

    #[test]
    fn a_newer_database_is_refused() {
        let conn = Connection::open_in_memory().unwrap();
        conn.pragma_update(None, "user_version", latest_version() + 1).unwrap();
        let err = plan(&conn).unwrap_err().to_string();
        assert!(err.contains("newer"), "{err}");
    }
}
