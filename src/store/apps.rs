//! Apps with their builds, patches and publish targets. Every query is scoped by `org_id`.

use rusqlite::{params, Connection, OptionalExtension, Row};

use super::{list_page, now_rfc3339, Listed, Page, StoreResult};

/// API sort field → SQL column for the list; the first entry (the name) breaks ties.
pub const SORT: super::SortColumns = &[
    ("name", "a.name"),
    ("label", "a.label"),
    ("status", "a.status"),
    ("iCurBuild", "a.i_cur_build"),
    ("created", "a.created"),
    ("updated", "a.updated"),
];

#[derive(Clone, Debug)]
pub struct App {
    pub id: i64,
    pub name: String,
    pub label: String,
    pub max_builds: i64,
    pub i_cur_build: i64,
    pub processing: bool,
    pub exporting: bool,
    pub size_bytes: i64,
    pub status: String,
    pub error: Option<String>,
    pub dxf_name: Option<String>,
    pub deployments: Vec<String>,
    pub builds: Vec<Build>,
    pub patches: Vec<Patch>,
    pub created: String,
    pub updated: String,
}

#[derive(Clone, Debug)]
pub struct Build {
    pub build_id: i64,
    pub name: Option<String>,
    pub size_bytes: i64,
    pub created: String,
}

#[derive(Clone, Debug)]
pub struct Patch {
    pub from_build_id: i64,
    pub to_build_id: i64,
    pub size_bytes: i64,
}

/// Deployments, builds, patches and size are kept on the app row by triggers (schema.sql), so a
/// page of apps is a plain single-table read.
const SELECT: &str = "SELECT a.id, a.name, a.label, a.max_builds, a.i_cur_build, a.processing, a.exporting, a.size_bytes,
        a.status, a.error, a.dxf_name, a.created, a.updated, a.deployment_names, a.build_list, a.patch_list FROM apps a";

/// Reads a JSON array column kept by the triggers straight into typed rows (no `Value` tree:
/// this runs for every app of every list page).
fn json_column<T: serde::de::DeserializeOwned>(row: &Row, idx: usize) -> rusqlite::Result<Vec<T>> {
    let text = row.get_ref(idx)?.as_str()?;
    // Most apps have no builds, patches or explicit deployments yet.
    if text == "[]" {
        return Ok(Vec::new());
    }
    serde_json::from_str(text)
        .map_err(|e| rusqlite::Error::FromSqlConversionFailure(idx, rusqlite::types::Type::Text, Box::new(e)))
}

fn from_row(row: &Row) -> rusqlite::Result<App> {
    Ok(App {
        id: row.get(0)?,
        name: row.get(1)?,
        label: row.get(2)?,
        max_builds: row.get(3)?,
        i_cur_build: row.get(4)?,
        processing: row.get(5)?,
        exporting: row.get(6)?,
        size_bytes: row.get(7)?,
        status: row.get(8)?,
        error: row.get(9)?,
        dxf_name: row.get(10)?,
        created: row.get(11)?,
        updated: row.get(12)?,
        deployments: json_column(row, 13)?,
        builds: json_column::<(i64, Option<String>, i64, Option<String>)>(row, 14)?
            .into_iter()
            .map(|(build_id, name, size_bytes, created)| Build {
                build_id,
                name,
                size_bytes,
                created: created.unwrap_or_default(),
            })
            .collect(),
        patches: json_column::<(i64, i64, i64)>(row, 15)?
            .into_iter()
            .map(|(from_build_id, to_build_id, size_bytes)| Patch { from_build_id, to_build_id, size_bytes })
            .collect(),
    })
}

pub fn insert(conn: &Connection, org_id: i64, name: &str, label: &str, max_builds: i64) -> StoreResult<i64> {
    let now = now_rfc3339();
    conn.prepare_cached(
        "INSERT INTO apps (org_id, name, label, max_builds, created, updated) VALUES (?1, ?2, ?3, ?4, ?5, ?5)",
    )?
    .execute(params![org_id, name, label, max_builds, now])?;
    Ok(conn.last_insert_rowid())
}

pub fn by_name(conn: &Connection, org_id: i64, name: &str) -> StoreResult<Option<App>> {
    let sql = format!("{SELECT} WHERE a.org_id = ?1 AND a.name = ?2");
    Ok(conn.prepare_cached(&sql)?.query_row(params![org_id, name], from_row).optional()?)
}

/// The apps of the organization that publish to deployment `name`: those listing it, and those
/// listing none (which publish to every deployment of the organization).
pub fn publishing_to(conn: &Connection, org_id: i64, name: &str) -> StoreResult<Vec<App>> {
    let sql = format!(
        "{SELECT} WHERE a.org_id = ?1 AND (a.deployment_names = '[]'
             OR EXISTS (SELECT 1 FROM json_each(a.deployment_names) WHERE value = ?2)) ORDER BY a.name"
    );
    Ok(conn.prepare(&sql)?.query_map(params![org_id, name], from_row)?.collect::<Result<_, _>>()?)
}

/// The app's id, if it exists (a cheaper check than loading it).
pub fn id_by_name(conn: &Connection, org_id: i64, name: &str) -> StoreResult<Option<i64>> {
    Ok(conn
        .prepare_cached("SELECT id FROM apps WHERE org_id = ?1 AND name = ?2")?
        .query_row(params![org_id, name], |r| r.get(0))
        .optional()?)
}

pub fn list(
    conn: &Connection,
    org_id: i64,
    name: Option<&str>,
    status: Option<&str>,
    page: &Page,
) -> StoreResult<Listed<App>> {
    let cond =
        "WHERE a.org_id = ?1 AND (?2 IS NULL OR instr(lower(a.name), lower(?2)) > 0) AND (?3 IS NULL OR a.status = ?3)";
    list_page(conn, SELECT, "apps a", cond, params![org_id, name, status], page, from_row)
}

pub fn update(conn: &Connection, id: i64, label: Option<&str>, max_builds: Option<i64>) -> StoreResult<()> {
    if let Some(label) = label {
        conn.execute("UPDATE apps SET label = ?2 WHERE id = ?1", params![id, label])?;
    }
    if let Some(max) = max_builds {
        conn.execute("UPDATE apps SET max_builds = ?2 WHERE id = ?1", params![id, max])?;
    }
    conn.execute("UPDATE apps SET updated = ?2 WHERE id = ?1", params![id, now_rfc3339()])?;
    Ok(())
}

/// Replaces the app's explicit deployments (empty: all of the organization's).
pub fn set_deployments(conn: &Connection, app_id: i64, deployment_ids: &[i64]) -> StoreResult<()> {
    conn.prepare_cached("DELETE FROM app_deployments WHERE app_id = ?1")?.execute([app_id])?;
    let mut insert = conn.prepare_cached("INSERT INTO app_deployments (app_id, deployment_id) VALUES (?1, ?2)")?;
    for id in deployment_ids {
        insert.execute(params![app_id, id])?;
    }
    Ok(())
}

pub fn delete(conn: &Connection, id: i64) -> StoreResult<()> {
    conn.execute("DELETE FROM apps WHERE id = ?1", [id])?;
    Ok(())
}

/// How many apps the organization has.
pub fn count_of_org(conn: &Connection, org_id: i64) -> StoreResult<i64> {
    Ok(conn.query_row("SELECT count(*) FROM apps WHERE org_id = ?1", [org_id], |r| r.get(0))?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn db() -> Connection {
        let conn = Connection::open_in_memory().unwrap();
        conn.pragma_update(None, "foreign_keys", "ON").unwrap();
        conn.execute_batch(crate::store::migrations::SCHEMA).unwrap();
        conn.execute_batch(
            "INSERT INTO orgs (id, name, created, updated) VALUES (1, 'acme', 'now', 'now');
             INSERT INTO deployments (id, org_id, name, origin_type, origin, created, updated)
                 VALUES (1, 1, 'eu', 'fs', '{}', 'now', 'now'), (2, 1, 'asia', 'fs', '{}', 'now', 'now');",
        )
        .unwrap();
        conn
    }

    #[test]
    fn the_app_row_follows_its_deployments_builds_and_patches() {
        let conn = db();
        let id = insert(&conn, 1, "game", "Game", 5).unwrap();
        set_deployments(&conn, id, &[1, 2]).unwrap();
        conn.execute_batch(&format!(
            "INSERT INTO builds (app_id, build_id, name, size_bytes, created) VALUES ({id}, 2, 'b2', 200, 't2'), ({id}, 1, 'b1', 100, 't1');
             INSERT INTO patches (app_id, from_build_id, to_build_id, size_bytes) VALUES ({id}, 1, 2, 7);"
        ))
        .unwrap();
        let app = by_name(&conn, 1, "game").unwrap().unwrap();
        assert_eq!(app.deployments, vec!["asia", "eu"]);
        assert_eq!(app.builds.iter().map(|b| b.build_id).collect::<Vec<_>>(), vec![1, 2]);
        assert_eq!((app.patches[0].from_build_id, app.patches[0].to_build_id), (1, 2));
        assert_eq!(app.size_bytes, 307);

        conn.execute("DELETE FROM builds WHERE build_id = 1", []).unwrap();
        conn.execute("UPDATE builds SET size_bytes = 250 WHERE build_id = 2", []).unwrap();
        conn.execute("DELETE FROM deployments WHERE id = 1", []).unwrap();
        conn.execute("DELETE FROM patches", []).unwrap();
        let app = by_name(&conn, 1, "game").unwrap().unwrap();
        assert_eq!(app.deployments, vec!["asia"], "a deleted deployment leaves the app row too");
        assert_eq!(app.builds.len(), 1);
        assert!(app.patches.is_empty());
        assert_eq!(app.size_bytes, 250);
    }
}
