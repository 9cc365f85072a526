//! The webhook outbox (migration 009): one row per (event, subscription), inserted in the
//! transaction of the task change it reports, then sent by the delivery worker
//! (`tasks::webhooks`), which records every attempt here.

use rusqlite::{params, Connection, OptionalExtension, Row};
use serde_json::Value;

use super::{now_rfc3339, StoreResult};
use crate::domain::webhooks::{self, EventFacts, TaskEvent};

/// Records `event` of the task for every subscription of its organization that wants it. Runs in
/// the caller's transaction; a task outside any organization (`hello`) has no subscribers.
pub fn record(conn: &Connection, task_id: i64, event: TaskEvent) -> StoreResult<usize> {
    let Some((org_id, facts)) = event_facts(conn, task_id, event)? else { return Ok(0) };
    let mut stmt = conn.prepare_cached("SELECT id, type, events FROM subscriptions WHERE org_id = ?1 ORDER BY id")?;
    let subscribers = stmt
        .query_map([org_id], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?, r.get::<_, String>(2)?)))?
        .collect::<Result<Vec<_>, _>>()?;
    let now = now_rfc3339();
    let mut recorded = 0;
    for (subscription_id, kind, events) in subscribers {
        let events: Value = serde_json::from_str(&events).unwrap_or(Value::Null);
        if !webhooks::wants(&events, &facts.task_type, event) {
            continue;
        }
        let body = match kind.as_str() {
            "slack" => webhooks::slack_body(&facts, event),
            _ => webhooks::webhook_body(&facts, event, &now),
        };
        let jti = crate::auth::hex(&crate::auth::random_bytes::<16>());
        conn.prepare_cached(
            "INSERT INTO webhook_deliveries
               (subscription_id, app_key, jti, task_name, task_type, event, body, created, next_attempt)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?8)",
        )?
        .execute(params![
            subscription_id,
            facts.app_name.as_deref().unwrap_or(""),
            jti,
            facts.task_name,
            facts.task_type,
            event.as_str(),
            body,
            now
        ])?;
        recorded += 1;
    }
    if recorded > 0 {
        set_recorded(true);
    }
    Ok(recorded)
}

thread_local! {
    /// Set by [`record`] on the writer thread; the writer takes it after each batch and rings
    /// the outbox bell once the batch committed, so the delivery worker wakes at once.
    static RECORDED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Whether deliveries were recorded on this thread since the last call.
pub(super) fn take_recorded() -> bool {
    RECORDED.with(|flag| flag.replace(false))
}

/// Sets the flag [`take_recorded`] answers (the writer restores it around a rolled-back job).
pub(super) fn set_recorded(recorded: bool) {
    RECORDED.with(|flag| flag.set(recorded));
}

/// The task's organization and what its event reports; `None` outside an organization.
fn event_facts(conn: &Connection, task_id: i64, event: TaskEvent) -> StoreResult<Option<(i64, EventFacts)>> {
    // Build tasks carry the build's name in their input and the image's `dxfName` in mkraw's
    // output or deploy's input; other task types have neither.
    let sql = "SELECT t.org_id, o.name, t.type, t.name, t.app_name, t.build_id,
                      json_extract(t.input, '$.buildName'),
                      coalesce(json_extract(t.output, '$.dxfName'), json_extract(t.input, '$.image.dxfName')),
                      t.exception
               FROM tasks t JOIN orgs o ON o.id = t.org_id WHERE t.id = ?1";
    let row = conn
        .prepare_cached(sql)?
        .query_row([task_id], |r| {
            let exception: Option<String> = r.get(8)?;
            Ok((
                r.get::<_, i64>(0)?,
                EventFacts {
                    org_name: r.get(1)?,
                    task_type: r.get(2)?,
                    task_name: r.get(3)?,
                    app_name: r.get(4)?,
                    build_id: r.get(5)?,
                    build_name: r.get(6)?,
                    dxf_name: r.get(7)?,
                    // Only a final failure reports its exception; a retried task's earlier one is stale.
                    exception: exception
                        .filter(|_| event == TaskEvent::Error)
                        .and_then(|text| serde_json::from_str(&text).ok()),
                },
            ))
        })
        .optional()?;
    Ok(row)
}

/// A delivery the worker may attempt now, with what it needs to sign and send it.
#[derive(Clone, Debug)]
pub struct DueDelivery {
    pub id: i64,
    pub org_id: i64,
    pub subscription: String,
    pub kind: String,
    pub url: String,
    pub sealed_secret: Vec<u8>,
    pub jti: String,
    pub body: String,
    pub attempts: i64,
    pub created: String,
}

/// Pending deliveries whose next attempt is due, oldest first, at most `limit`. Only the oldest
/// pending delivery of each (subscription, app) is ever due: a later event of an app waits until
/// the earlier one is delivered or given up, so a receiver sees each app's events in order.
pub fn due(conn: &Connection, now: &str, limit: i64) -> StoreResult<Vec<DueDelivery>> {
    let mut stmt = conn.prepare_cached(
        "SELECT d.id, s.org_id, s.name, s.type, s.url, s.secret, d.jti, d.body, d.attempts, d.created
         FROM webhook_deliveries d JOIN subscriptions s ON s.id = d.subscription_id
         WHERE d.status = 'pending' AND d.next_attempt <= ?1
           AND NOT EXISTS (SELECT 1 FROM webhook_deliveries e
                           WHERE e.subscription_id = d.subscription_id AND e.app_key = d.app_key
                             AND e.status = 'pending' AND e.id < d.id)
         ORDER BY d.id LIMIT ?2",
    )?;
    let rows = stmt
        .query_map(params![now, limit], |r| {
            Ok(DueDelivery {
                id: r.get(0)?,
                org_id: r.get(1)?,
                subscription: r.get(2)?,
                kind: r.get(3)?,
                url: r.get(4)?,
                sealed_secret: r.get(5)?,
                jti: r.get(6)?,
                body: r.get(7)?,
                attempts: r.get(8)?,
                created: r.get(9)?,
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

/// How one attempt ended.
#[derive(Clone, Debug)]
pub enum Attempt {
    /// The receiver answered 2xx in time.
    Delivered { http_status: u16 },
    /// It did not; try again at `retry_at`, or give up (`None`).
    Failed { http_status: Option<u16>, error: String, retry_at: Option<String> },
}

/// Records an attempt of delivery `id`.
pub fn record_attempt(conn: &Connection, id: i64, attempt: &Attempt) -> StoreResult<()> {
    let now = now_rfc3339();
    match attempt {
        Attempt::Delivered { http_status } => conn.execute(
            "UPDATE webhook_deliveries SET status = 'delivered', attempts = attempts + 1, last_status = ?2,
                 last_error = NULL, last_attempt = ?3, finished = ?3 WHERE id = ?1",
            params![id, http_status, now],
        )?,
        Attempt::Failed { http_status, error, retry_at: Some(at) } => conn.execute(
            "UPDATE webhook_deliveries SET attempts = attempts + 1, last_status = ?2, last_error = ?3,
                 last_attempt = ?4, next_attempt = ?5 WHERE id = ?1",
            params![id, http_status, error, now, at],
        )?,
        Attempt::Failed { http_status, error, retry_at: None } => conn.execute(
            "UPDATE webhook_deliveries SET status = 'failed', attempts = attempts + 1, last_status = ?2,
                 last_error = ?3, last_attempt = ?4, finished = ?4 WHERE id = ?1",
            params![id, http_status, error, now],
        )?,
    };
    Ok(())
}

/// One delivery as `GET /be/v1/subscriptions/{name}` shows it.
#[derive(Clone, Debug)]
pub struct Delivery {
    pub id: String,
    pub task_name: String,
    pub task_type: String,
    pub event: String,
    pub app_name: Option<String>,
    pub status: String,
    pub attempts: i64,
    pub last_status: Option<i64>,
    pub last_error: Option<String>,
    pub created: String,
    pub last_attempt: Option<String>,
    pub next_attempt: Option<String>,
    pub finished: Option<String>,
}

fn delivery_from_row(r: &Row) -> rusqlite::Result<Delivery> {
    let status: String = r.get(5)?;
    let next_attempt: String = r.get(10)?;
    let app_key: String = r.get(4)?;
    Ok(Delivery {
        id: r.get(0)?,
        task_name: r.get(1)?,
        task_type: r.get(2)?,
        event: r.get(3)?,
        app_name: Some(app_key).filter(|a| !a.is_empty()),
        next_attempt: (status == "pending").then_some(next_attempt),
        status,
        attempts: r.get(6)?,
        last_status: r.get(7)?,
        last_error: r.get(8)?,
        created: r.get(9)?,
        last_attempt: r.get(11)?,
        finished: r.get(12)?,
    })
}

/// The newest `limit` deliveries of a subscription, newest first.
pub fn recent(conn: &Connection, subscription_id: i64, limit: i64) -> StoreResult<Vec<Delivery>> {
    let mut stmt = conn.prepare_cached(
        "SELECT jti, task_name, task_type, event, app_key, status, attempts, last_status, last_error, created,
                next_attempt, last_attempt, finished
         FROM webhook_deliveries WHERE subscription_id = ?1 ORDER BY id DESC LIMIT ?2",
    )?;
    let rows = stmt.query_map(params![subscription_id, limit], delivery_from_row)?.collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

/// Removes deliveries that were delivered or given up before `finished_before`; answers how many.
pub fn remove_finished_before(conn: &Connection, finished_before: &str) -> StoreResult<usize> {
    Ok(conn.execute(
        "DELETE FROM webhook_deliveries WHERE status IN ('delivered', 'failed') AND finished < ?1",
        [finished_before],
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn database() -> Connection {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(super::super::migrations::SCHEMA).unwrap();
        conn.execute_batch(
            "INSERT INTO orgs (id, name, created, updated) VALUES (1, 'acme', 'x', 'x');
             INSERT INTO subscriptions (id, org_id, name, type, url, events, secret, created, updated)
                 VALUES (1, 1, 'ci', 'webhook', 'http://h/', '[]', x'00', 'x', 'x');",
        )
        .unwrap();
        conn
    }

    fn task(conn: &Connection, name: &str, app: &str) -> i64 {
        conn.execute(
            "INSERT INTO tasks (name, type, org_id, app_name, created, run_after) VALUES (?1, 'dltar', 1, ?2, 'x', 'x')",
            params![name, app],
        )
        .unwrap();
        conn.last_insert_rowid()
    }

    fn due_tasks(conn: &Connection) -> Vec<String> {
        due(conn, "9999", 100)
            .unwrap()
            .iter()
            .map(|d| serde_json::from_str::<Value>(&d.body).unwrap()["taskName"].as_str().unwrap().to_string())
            .collect()
    }

    #[test]
    fn an_event_exists_exactly_when_its_task_change_commits() {
        let mut conn = database();
        let new = crate::store::tasks::NewTask {
            kind: "dltar".into(),
            group: None,
            app_name: Some("game".into()),
            build_id: Some(1),
            input: serde_json::json!({}),
            max_attempts: 1,
            run_in_maintenance: false,
        };
        let rolled_back = conn.transaction().unwrap();
        crate::store::builds::insert_task(&rolled_back, 1, &new).unwrap();
        assert_eq!(due(&rolled_back, "9999", 10).unwrap().len(), 1, "written with the task");
        rolled_back.rollback().unwrap();
        assert!(due(&conn, "9999", 10).unwrap().is_empty(), "gone with the task's rollback");

        let committed = conn.transaction().unwrap();
        crate::store::builds::insert_task(&committed, 1, &new).unwrap();
        committed.commit().unwrap();
        assert_eq!(due(&conn, "9999", 10).unwrap().len(), 1);
    }

    #[test]
    fn only_the_oldest_pending_delivery_of_an_app_is_due() {
        let conn = database();
        for (name, app) in [("a1", "game"), ("a2", "game"), ("b1", "other")] {
            let id = task(&conn, name, app);
            assert_eq!(record(&conn, id, TaskEvent::Submit).unwrap(), 1);
        }
        assert_eq!(due_tasks(&conn), ["a1", "b1"], "a2 waits for a1; the other app does not");
        let first = due(&conn, "9999", 1).unwrap()[0].id;
        let failed =
            Attempt::Failed { http_status: Some(500), error: "HTTP 500".into(), retry_at: Some("9000".into()) };
        record_attempt(&conn, first, &failed).unwrap();
        assert_eq!(due_tasks(&conn), ["a1", "b1"], "a retried delivery still holds its app's later ones back");
        record_attempt(&conn, first, &Attempt::Failed { http_status: None, error: "gone".into(), retry_at: None })
            .unwrap();
        assert_eq!(due_tasks(&conn), ["a2", "b1"], "given up: the next event of the app goes out");
    }
}
