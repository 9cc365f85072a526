//! Organizations.

use rusqlite::{params, Connection, OptionalExtension, Row};

use super::{list_page, now_rfc3339, Listed, Page, StoreResult};

/// API sort field → SQL column for the list; the first entry (the name) breaks ties.
pub const SORT: super::SortColumns =
    &[("name", "o.name"), ("label", "o.label"), ("created", "o.created"), ("updated", "o.updated")];

#[derive(Clone, Debug)]
pub struct Org {
    pub id: i64,
    pub name: String,
    pub label: String,
    pub public_key: Option<String>,
    pub created: String,
    pub updated: String,
    pub users: i64,
    pub apps: i64,
}

const SELECT: &str = "SELECT o.id, o.name, o.label, o.public_key, o.created, o.updated,
        (SELECT count(*) FROM users u WHERE u.org_id = o.id), (SELECT count(*) FROM apps a WHERE a.org_id = o.id)
        FROM orgs o";

fn from_row(row: &Row) -> rusqlite::Result<Org> {
    Ok(Org {
        id: row.get(0)?,
        name: row.get(1)?,
        label: row.get(2)?,
        public_key: row.get(3)?,
        created: row.get(4)?,
        updated: row.get(5)?,
        users: row.get(6)?,
        apps: row.get(7)?,
    })
}

pub fn insert(conn: &Connection, name: &str, label: &str, public_key: Option<&str>) -> StoreResult<i64> {
    let now = now_rfc3339();
    conn.execute(
        "INSERT INTO orgs (name, label, public_key, created, updated) VALUES (?1, ?2, ?3, ?4, ?4)",
        params![name, label, public_key, now],
    )?;
    Ok(conn.last_insert_rowid())
}

pub fn exists(conn: &Connection, name: &str) -> StoreResult<bool> {
    Ok(conn.query_row("SELECT 1 FROM orgs WHERE name = ?1", [name], |_| Ok(())).optional()?.is_some())
}

pub fn by_name(conn: &Connection, name: &str) -> StoreResult<Option<Org>> {
    Ok(conn.query_row(&format!("{SELECT} WHERE o.name = ?1"), [name], from_row).optional()?)
}

pub fn by_id(conn: &Connection, id: i64) -> StoreResult<Option<Org>> {
    Ok(conn.query_row(&format!("{SELECT} WHERE o.id = ?1"), [id], from_row).optional()?)
}

/// Deletes the organization; every row that belongs to it goes with it (ON DELETE CASCADE).
pub fn delete(conn: &Connection, id: i64) -> StoreResult<bool> {
    Ok(conn.execute("DELETE FROM orgs WHERE id = ?1", [id])? > 0)
}

pub fn list(conn: &Connection, name_filter: Option<&str>, page: &Page) -> StoreResult<Listed<Org>> {
    let cond = "WHERE (?1 IS NULL OR instr(lower(o.name), lower(?1)) > 0)";
    list_page(conn, SELECT, "orgs o", cond, params![name_filter], page, from_row)
}
