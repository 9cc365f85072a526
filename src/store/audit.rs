//! The audit trail: security events, each written in the transaction of the change it records
//! where there is one.

use rusqlite::{params, Connection, Row};

use super::{list_page, now_rfc3339, Listed, Page, StoreResult};

/// API sort field → SQL column; the first entry breaks ties. `created` sorts by the row id: the
/// single writer assigns ids in the order it records events, so that is creation order without
/// the ties of equal timestamps.
pub const SORT: super::SortColumns = &[("created", "a.id"), ("event", "a.event"), ("username", "a.principal")];

pub const LOGIN_SUCCEEDED: &str = "login.succeeded";
pub const LOGIN_FAILED: &str = "login.failed";
pub const SESSION_REVOKED: &str = "session.revoked";
pub const APIKEY_CREATED: &str = "apikey.created";
pub const APIKEY_DELETED: &str = "apikey.deleted";
pub const ORG_CREATED: &str = "org.created";
pub const ORG_DELETED: &str = "org.deleted";
// Issue 14's remaining gaps: who changed rights, accounts, credentials and the box's switches.
pub const ROLE_CREATED: &str = "role.created";
pub const ROLE_CHANGED: &str = "role.changed";
pub const ROLE_DELETED: &str = "role.deleted";
pub const USER_CREATED: &str = "user.created";
pub const USER_DELETED: &str = "user.deleted";
pub const USER_ROLES_CHANGED: &str = "user.roles.changed";
pub const CREDENTIALS_RESET: &str = "credentials.reset";
pub const MAINTENANCE_ON: &str = "maintenance.on";
pub const MAINTENANCE_OFF: &str = "maintenance.off";
pub const ADMIN_TOKENS_REVOKED: &str = "admintoken.revoked";
// Organization transfers (issue 13): a bundle holds every password hash and secret of the org.
pub const ORG_EXPORTED: &str = "org.exported";
pub const ORG_IMPORTED: &str = "org.imported";

/// Who acted, for events recorded deep in the identity layer.
#[derive(Clone, Debug)]
pub struct Actor {
    pub principal: String,
    pub client: String,
}

/// One event to record. `org_id` `None`: a box-wide (admin-level) event.
pub struct Event<'a> {
    pub org_id: Option<i64>,
    pub event: &'a str,
    pub principal: Option<&'a str>,
    pub client: Option<&'a str>,
    pub target: Option<&'a str>,
}

/// A recorded event.
#[derive(Clone, Debug)]
pub struct Entry {
    pub id: i64,
    pub at: String,
    pub event: String,
    pub principal: Option<String>,
    pub client: Option<String>,
    pub target: Option<String>,
}

/// What a list may be narrowed to.
#[derive(Default)]
pub struct Filter {
    pub event: Option<String>,
    /// Part of the principal's name.
    pub username: Option<String>,
    /// Only events after this RFC 3339 time (compared as stored: UTC, fixed format).
    pub created_after: Option<String>,
}

/// Records an event of an organization member (`principal`, its username) acting from `client`.
pub fn record_member(
    conn: &Connection,
    org_id: i64,
    event: &str,
    principal: &str,
    client: &str,
    target: &str,
) -> StoreResult<()> {
    record(
        conn,
        &Event { org_id: Some(org_id), event, principal: Some(principal), client: Some(client), target: Some(target) },
    )
}

pub fn record(conn: &Connection, event: &Event) -> StoreResult<()> {
    conn.prepare_cached(
        "INSERT INTO audit (at, org_id, event, principal, client, target) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![now_rfc3339(), event.org_id, event.event, event.principal, event.client, event.target])?;
    Ok(())
}

fn from_row(row: &Row) -> rusqlite::Result<Entry> {
    Ok(Entry {
        id: row.get(0)?,
        at: row.get(1)?,
        event: row.get(2)?,
        principal: row.get(3)?,
        client: row.get(4)?,
        target: row.get(5)?,
    })
}

/// Events of one organization, or the box-wide ones (`org_id` `None`).
pub fn list(conn: &Connection, org_id: Option<i64>, filter: &Filter, page: &Page) -> StoreResult<Listed<Entry>> {
    let select = "SELECT a.id, a.at, a.event, a.principal, a.client, a.target FROM audit a";
    let cond = "WHERE a.org_id IS ?1 AND (?2 IS NULL OR a.event = ?2) \
         AND (?3 IS NULL OR instr(lower(a.principal), lower(?3)) > 0) AND (?4 IS NULL OR a.at > ?4)";
    let args = params![org_id, filter.event, filter.username, filter.created_after];
    list_page(conn, select, "audit a", cond, args, page, from_row)
}

/// Removes events older than `cutoff` (RFC 3339): the retention.
pub fn remove_before(conn: &Connection, cutoff: &str) -> StoreResult<usize> {
    Ok(conn.execute("DELETE FROM audit WHERE at < ?1", [cutoff])?)
}
