//! Roles of an organization and what they grant. Every query is scoped by `org_id`.

use rusqlite::{params, Connection, OptionalExtension, Row};

use super::{list_page, now_rfc3339, Listed, Page, StoreResult};
use crate::domain::permissions::Permissions;

/// API sort field → SQL column for the list; the first entry (the name) breaks ties.
pub const SORT: super::SortColumns =
    &[("name", "r.name"), ("label", "r.label"), ("created", "r.created"), ("updated", "r.updated")];

/// Name of the built-in role with every permission.
pub const ADMINISTRATORS: &str = "Administrators";

#[derive(Clone, Debug)]
pub struct Role {
    pub id: i64,
    pub name: String,
    pub label: String,
    pub permissions: Permissions,
    pub builtin: bool,
    pub users: i64,
    pub created: String,
    pub updated: String,
}

const SELECT: &str = "SELECT r.id, r.name, r.label, r.permissions, r.builtin,
        (SELECT count(*) FROM user_roles ur WHERE ur.role_id = r.id), r.created, r.updated FROM roles r";

fn from_row(row: &Row) -> rusqlite::Result<Role> {
    let permissions: String = row.get(3)?;
    Ok(Role {
        id: row.get(0)?,
        name: row.get(1)?,
        label: row.get(2)?,
        permissions: Permissions::from_stored(&permissions),
        builtin: row.get(4)?,
        users: row.get(5)?,
        created: row.get(6)?,
        updated: row.get(7)?,
    })
}

pub fn insert(
    conn: &Connection,
    org_id: i64,
    name: &str,
    label: &str,
    permissions: &Permissions,
    builtin: bool,
) -> StoreResult<i64> {
    let now = now_rfc3339();
    conn.execute(
        "INSERT INTO roles (org_id, name, label, permissions, builtin, created, updated) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6)",
        params![org_id, name, label, permissions.to_json().to_string(), builtin, now],
    )?;
    Ok(conn.last_insert_rowid())
}

pub fn by_name(conn: &Connection, org_id: i64, name: &str) -> StoreResult<Option<Role>> {
    let sql = format!("{SELECT} WHERE r.org_id = ?1 AND r.name = ?2");
    Ok(conn.query_row(&sql, params![org_id, name], from_row).optional()?)
}

pub fn list(conn: &Connection, org_id: i64, name_filter: Option<&str>, page: &Page) -> StoreResult<Listed<Role>> {
    let cond = "WHERE r.org_id = ?1 AND (?2 IS NULL OR instr(lower(r.name), lower(?2)) > 0)";
    list_page(conn, SELECT, "roles r", cond, params![org_id, name_filter], page, from_row)
}

pub fn update(
    conn: &Connection,
    role_id: i64,
    label: Option<&str>,
    permissions: Option<&Permissions>,
) -> StoreResult<()> {
    if let Some(label) = label {
        conn.execute("UPDATE roles SET label = ?2 WHERE id = ?1", params![role_id, label])?;
    }
    if let Some(permissions) = permissions {
        conn.execute(
            "UPDATE roles SET permissions = ?2 WHERE id = ?1",
            params![role_id, permissions.to_json().to_string()],
        )?;
    }
    conn.execute("UPDATE roles SET updated = ?2 WHERE id = ?1", params![role_id, now_rfc3339()])?;
    Ok(())
}

pub fn delete(conn: &Connection, role_id: i64) -> StoreResult<()> {
    conn.execute("DELETE FROM roles WHERE id = ?1", [role_id])?;
    Ok(())
}

/// The union of the permissions of every role the user holds.
pub fn permissions_of(conn: &Connection, user_id: i64) -> StoreResult<Permissions> {
    let mut stmt = conn.prepare_cached(
        "SELECT r.permissions FROM user_roles ur JOIN roles r ON r.id = ur.role_id WHERE ur.user_id = ?1",
    )?;
    let all = stmt
        .query_map([user_id], |r| r.get::<_, String>(0))?
        .try_fold(Permissions::default(), |acc, text| text.map(|t| acc.union(&Permissions::from_stored(&t))))?;
    Ok(all)
}

/// How many accounts hold the organization's `Administrators` role.
/// How many accounts hold the role.
pub fn holders(conn: &Connection, role_id: i64) -> StoreResult<i64> {
    Ok(conn.prepare_cached("SELECT count(*) FROM user_roles WHERE role_id = ?1")?.query_row([role_id], |r| r.get(0))?)
}

pub fn administrators_count(conn: &Connection, org_id: i64) -> StoreResult<i64> {
    Ok(conn.query_row(
        "SELECT count(*) FROM user_roles ur JOIN roles r ON r.id = ur.role_id WHERE r.org_id = ?1 AND r.builtin = 1",
        [org_id],
        |r| r.get(0),
    )?)
}

/// Id of the organization's `Administrators` role.
pub fn administrators_id(conn: &Connection, org_id: i64) -> StoreResult<i64> {
    Ok(conn.query_row("SELECT id FROM roles WHERE org_id = ?1 AND builtin = 1", [org_id], |r| r.get(0))?)
}

/// Whether the user holds the organization's `Administrators` role.
pub fn is_administrator(conn: &Connection, user_id: i64) -> StoreResult<bool> {
    Ok(conn
        .query_row(
            "SELECT 1 FROM user_roles ur JOIN roles r ON r.id = ur.role_id WHERE ur.user_id = ?1 AND r.builtin = 1",
            [user_id],
            |_| Ok(()),
        )
        .optional()?
        .is_some())
}
