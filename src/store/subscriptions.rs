//! Event subscriptions (webhooks, Slack) of an organization. The signing secret arrives sealed.

use rusqlite::{params, Connection, OptionalExtension, Row};
use serde_json::Value;

use super::{list_page, now_rfc3339, Listed, Page, StoreResult};

/// API sort field → SQL column for the list; the first entry (the name) breaks ties.
pub const SORT: super::SortColumns = &[("name", "s.name"), ("type", "s.type"), ("created", "s.created")];

#[derive(Clone, Debug)]
pub struct Subscription {
    pub id: i64,
    pub name: String,
    pub kind: String,
    pub url: String,
    pub events: Value,
    pub secret: Vec<u8>,
    pub created: String,
    pub updated: String,
}

const SELECT: &str =
    "SELECT s.id, s.name, s.type, s.url, s.events, s.secret, s.created, s.updated FROM subscriptions s";

fn from_row(row: &Row) -> rusqlite::Result<Subscription> {
    let events: String = row.get(4)?;
    Ok(Subscription {
        id: row.get(0)?,
        name: row.get(1)?,
        kind: row.get(2)?,
        url: row.get(3)?,
        events: serde_json::from_str(&events).unwrap_or(Value::Array(Vec::new())),
        secret: row.get(5)?,
        created: row.get(6)?,
        updated: row.get(7)?,
    })
}

pub struct NewSubscription<'a> {
    pub name: &'a str,
    pub kind: &'a str,
    pub url: &'a str,
    pub events: &'a Value,
    pub sealed_secret: &'a [u8],
}

pub fn insert(conn: &Connection, org_id: i64, s: &NewSubscription) -> StoreResult<i64> {
    let now = now_rfc3339();
    conn.execute(
        "INSERT INTO subscriptions (org_id, name, type, url, events, secret, created, updated) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7)",
        params![org_id, s.name, s.kind, s.url, s.events.to_string(), s.sealed_secret, now],
    )?;
    Ok(conn.last_insert_rowid())
}

pub fn by_name(conn: &Connection, org_id: i64, name: &str) -> StoreResult<Option<Subscription>> {
    Ok(conn
        .query_row(&format!("{SELECT} WHERE s.org_id = ?1 AND s.name = ?2"), params![org_id, name], from_row)
        .optional()?)
}

pub fn list(
    conn: &Connection,
    org_id: i64,
    name: Option<&str>,
    kind: Option<&str>,
    page: &Page,
) -> StoreResult<Listed<Subscription>> {
    let cond =
        "WHERE s.org_id = ?1 AND (?2 IS NULL OR instr(lower(s.name), lower(?2)) > 0) AND (?3 IS NULL OR s.type = ?3)";
    list_page(conn, SELECT, "subscriptions s", cond, params![org_id, name, kind], page, from_row)
}

pub fn delete(conn: &Connection, org_id: i64, name: &str) -> StoreResult<bool> {
    Ok(conn.execute("DELETE FROM subscriptions WHERE org_id = ?1 AND name = ?2", params![org_id, name])? > 0)
}
