//! Accounts of an organization: people (`user`, with a password) and machines (`machine`, with
//! API keys). Every query is scoped by `org_id`.

use rusqlite::{params, Connection, OptionalExtension, Row};

use crate::domain::kinds::AccountKind;

use super::{list_page, now_rfc3339, Listed, Page, StoreError, StoreResult};

/// API sort field → SQL column for the list; the first entry (the name) breaks ties.
pub const SORT: super::SortColumns = &[
    ("username", "u.username"),
    ("type", "u.type"),
    ("email", "u.email"),
    ("created", "u.created"),
    ("updated", "u.updated"),
    ("lastLogin", "u.last_login"),
];

#[derive(Clone, Debug)]
pub struct User {
    pub id: i64,
    pub org_id: i64,
    pub username: String,
    pub kind: AccountKind,
    pub email: Option<String>,
    pub firstname: Option<String>,
    pub surname: Option<String>,
    pub title: Option<String>,
    pub label: Option<String>,
    pub password_hash: Option<String>,
    pub created: String,
    pub updated: String,
    pub last_login: Option<String>,
    pub roles: Vec<String>,
}

/// Profile fields as written; `None` leaves a field as it is, `Some(None)` clears it.
#[derive(Clone, Debug, Default)]
pub struct Profile {
    pub email: Option<Option<String>>,
    pub firstname: Option<Option<String>>,
    pub surname: Option<Option<String>>,
    pub title: Option<Option<String>>,
    pub label: Option<Option<String>>,
}

const SELECT: &str = "SELECT u.id, u.org_id, u.username, u.type, u.email, u.firstname, u.surname, u.title, u.label,
        u.password_hash, u.created, u.updated, u.last_login,
        (SELECT group_concat(name, ',') FROM (SELECT r.name FROM user_roles ur JOIN roles r ON r.id = ur.role_id
                                          WHERE ur.user_id = u.id ORDER BY r.name))
        FROM users u";

fn from_row(row: &Row) -> rusqlite::Result<User> {
    let roles: Option<String> = row.get(13)?;
    Ok(User {
        id: row.get(0)?,
        org_id: row.get(1)?,
        username: row.get(2)?,
        kind: row.get(3)?,
        email: row.get(4)?,
        firstname: row.get(5)?,
        surname: row.get(6)?,
        title: row.get(7)?,
        label: row.get(8)?,
        password_hash: row.get(9)?,
        created: row.get(10)?,
        updated: row.get(11)?,
        last_login: row.get(12)?,
        roles: roles.map(|r| r.split(',').map(str::to_string).collect()).unwrap_or_default(),
    })
}

pub struct NewUser<'a> {
    pub org_id: i64,
    pub username: &'a str,
    pub kind: AccountKind,
    pub profile: Profile,
    pub password_hash: Option<String>,
}

pub fn insert(conn: &Connection, user: &NewUser) -> StoreResult<i64> {
    let now = now_rfc3339();
    let p = &user.profile;
    let flat = |v: &Option<Option<String>>| v.clone().flatten();
    conn.execute(
        "INSERT INTO users (org_id, username, type, email, firstname, surname, title, label, password_hash, created, updated)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?10)",
        params![
            user.org_id, user.username, user.kind, flat(&p.email), flat(&p.firstname), flat(&p.surname),
            flat(&p.title), flat(&p.label), user.password_hash, now
        ],
    )?;
    Ok(conn.last_insert_rowid())
}

pub fn by_name(conn: &Connection, org_id: i64, username: &str) -> StoreResult<Option<User>> {
    let sql = format!("{SELECT} WHERE u.org_id = ?1 AND u.username = ?2");
    Ok(conn.query_row(&sql, params![org_id, username], from_row).optional()?)
}

pub fn by_id(conn: &Connection, org_id: i64, id: i64) -> StoreResult<Option<User>> {
    let sql = format!("{SELECT} WHERE u.org_id = ?1 AND u.id = ?2");
    Ok(conn.query_row(&sql, params![org_id, id], from_row).optional()?)
}

/// Every person account with this username, across organizations (for user+password login).
pub fn people_named(conn: &Connection, username: &str) -> StoreResult<Vec<(User, String, String)>> {
    let sql = format!(
        "{SELECT} JOIN orgs o ON o.id = u.org_id WHERE u.username = ?1 AND u.type = 'user' AND u.password_hash IS NOT NULL ORDER BY o.name"
    );
    let users: Vec<User> = conn.prepare(&sql)?.query_map([username], from_row)?.collect::<Result<_, _>>()?;
    users
        .into_iter()
        .map(|u| {
            let (name, label): (String, String) =
                conn.query_row("SELECT name, label FROM orgs WHERE id = ?1", [u.org_id], |r| {
                    Ok((r.get(0)?, r.get(1)?))
                })?;
            Ok((u, name, label))
        })
        .collect()
}

pub struct UserFilter<'a> {
    pub username: Option<&'a str>,
    pub kind: Option<&'a str>,
    pub role: Option<&'a str>,
}

pub fn list(conn: &Connection, org_id: i64, filter: &UserFilter, page: &Page) -> StoreResult<Listed<User>> {
    let cond = "WHERE u.org_id = ?1 AND (?2 IS NULL OR instr(lower(u.username), lower(?2)) > 0) AND (?3 IS NULL OR u.type = ?3)
                AND (?4 IS NULL OR EXISTS (SELECT 1 FROM user_roles ur JOIN roles r ON r.id = ur.role_id
                                           WHERE ur.user_id = u.id AND r.name = ?4))";
    list_page(conn, SELECT, "users u", cond, params![org_id, filter.username, filter.kind, filter.role], page, from_row)
}

pub fn update_profile(conn: &Connection, user_id: i64, profile: &Profile) -> StoreResult<()> {
    let fields = [
        ("email", &profile.email),
        ("firstname", &profile.firstname),
        ("surname", &profile.surname),
        ("title", &profile.title),
        ("label", &profile.label),
    ];
    for (column, value) in fields {
        if let Some(value) = value {
            // Column names come from the fixed list above, never from input.
            conn.execute(&format!("UPDATE users SET {column} = ?2 WHERE id = ?1"), params![user_id, value])?;
        }
    }
    touch(conn, user_id)
}

pub fn set_password_hash(conn: &Connection, user_id: i64, hash: &str) -> StoreResult<()> {
    conn.execute("UPDATE users SET password_hash = ?2 WHERE id = ?1", params![user_id, hash])?;
    touch(conn, user_id)
}

/// Replaces the password hash only if it is still `old` (a rehash must not undo a reset).
pub fn rehash_password(conn: &Connection, user_id: i64, old: &str, new: &str) -> StoreResult<()> {
    conn.execute(
        "UPDATE users SET password_hash = ?3 WHERE id = ?1 AND password_hash = ?2",
        params![user_id, old, new],
    )?;
    Ok(())
}

pub fn set_last_login(conn: &Connection, user_id: i64) -> StoreResult<()> {
    conn.execute("UPDATE users SET last_login = ?2 WHERE id = ?1", params![user_id, now_rfc3339()])?;
    Ok(())
}

fn touch(conn: &Connection, user_id: i64) -> StoreResult<()> {
    conn.execute("UPDATE users SET updated = ?2 WHERE id = ?1", params![user_id, now_rfc3339()])?;
    Ok(())
}

/// Replaces the user's roles with `role_ids` (all of the user's organization).
pub fn set_roles(conn: &Connection, user_id: i64, role_ids: &[i64]) -> StoreResult<()> {
    conn.execute("DELETE FROM user_roles WHERE user_id = ?1", [user_id])?;
    let mut insert = conn.prepare("INSERT INTO user_roles (user_id, role_id) VALUES (?1, ?2)")?;
    for role_id in role_ids {
        insert.execute(params![user_id, role_id])?;
    }
    touch(conn, user_id)
}

pub fn delete(conn: &Connection, org_id: i64, user_id: i64) -> StoreResult<()> {
    let n = conn.execute("DELETE FROM users WHERE org_id = ?1 AND id = ?2", params![org_id, user_id])?;
    if n == 0 {
        return Err(StoreError::Corrupt("user vanished during delete".into()));
    }
    Ok(())
}
