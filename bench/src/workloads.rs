//! The workloads: each virtual user holds one keep-alive connection and, where needed, its own
//! session; refresh chains the token it gets back (refresh tokens are single-use).

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::http::Conn;
use crate::servers::Account;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Rockit,
    PocketBase,
    Floor,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Workload {
    Login,
    Refresh,
    List,
    Create,
}

impl Workload {
    pub fn name(self) -> &'static str {
        match self {
            Workload::Login => "login",
            Workload::Refresh => "refresh",
            Workload::List => "list",
            Workload::Create => "create",
        }
    }
}

/// What one workload run measured.
#[derive(Default, Debug)]
pub struct Stats {
    pub ok: u64,
    pub errors: u64,
    pub first_error: Option<String>,
    pub latencies_us: Vec<u32>,
    pub elapsed: Duration,
    /// When the recorded part began (after the warm-up): lets a caller place the window on a
    /// timeline next to other events.
    pub recorded_from: Option<Instant>,
}

impl Stats {
    /// Counts one measured request: its latency when it succeeded, else the error (the first
    /// one kept for the report).
    pub fn record(&mut self, outcome: Result<(), String>, took: Duration) {
        match outcome {
            Ok(()) => {
                self.ok += 1;
                self.latencies_us.push(took.as_micros().min(u32::MAX as u128) as u32);
            }
            Err(e) => {
                self.errors += 1;
                self.first_error.get_or_insert(e);
            }
        }
    }

    pub fn throughput(&self) -> f64 {
        self.ok as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    pub fn percentile_ms(&self, p: f64) -> f64 {
        if self.latencies_us.is_empty() {
            return f64::NAN;
        }
        let mut sorted = self.latencies_us.clone();
        sorted.sort_unstable();
        let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
        sorted[i] as f64 / 1000.0
    }

    fn merge(&mut self, other: Stats) {
        self.ok += other.ok;
        self.errors += other.errors;
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
        self.latencies_us.extend(other.latencies_us);
    }
}

pub async fn rockit_login(host: &str, account: &Account) -> Result<Value, String> {
    let body = json!({"username": account.username, "password": account.password, "orgName": account.org}).to_string();
    let answer = crate::http::once(host, "POST", "/be/v1/login", &[], Some(body)).await?;
    if answer.status != 200 {
        return Err(format!("login answered {}", answer.status));
    }
    Ok(answer.json())
}

/// Per virtual user: its connection, the tokens it holds, a counter for unique names.
struct User {
    conn: Conn,
    access: String,
    refresh: String,
    id: usize,
    n: u64,
}

fn login_request(kind: Kind, account: &Account) -> (&'static str, String, String) {
    match kind {
        Kind::Rockit => (
            "POST",
            "/be/v1/login".into(),
            json!({"username": account.username, "password": account.password, "orgName": account.org}).to_string(),
        ),
        _ => (
            "POST",
            "/api/collections/users/auth-with-password".into(),
            json!({"identity": account.username, "password": account.password}).to_string(),
        ),
    }
}

async fn setup(kind: Kind, host: &str, account: &Account, id: usize, needs_session: bool) -> Result<User, String> {
    let mut conn = Conn::open(host).await?;
    let (mut access, mut refresh) = (String::new(), String::new());
    if needs_session && kind != Kind::Floor {
        let (method, path, body) = login_request(kind, account);
        let answer = conn.send(method, &path, &[], Some(body)).await?;
        if answer.status != 200 {
            return Err(format!("setup login answered {}", answer.status));
        }
        let v = answer.json();
        match kind {
            Kind::Rockit => {
                access = v["session"]["access"]["token"].as_str().unwrap_or_default().into();
                refresh = v["session"]["refresh"]["token"].as_str().unwrap_or_default().into();
            }
            _ => access = v["token"].as_str().unwrap_or_default().into(),
        }
    }
    Ok(User { conn, access, refresh, id, n: 0 })
}

/// One request of the workload; `Ok(())` only for a 2xx answer.
async fn step(kind: Kind, work: Workload, user: &mut User, account: &Account) -> Result<(), String> {
    let answer = match (kind, work) {
        (Kind::Floor, _) => user.conn.send("GET", "/", &[], None).await?,
        (_, Workload::Login) => {
            let (method, path, body) = login_request(kind, account);
            user.conn.send(method, &path, &[], Some(body)).await?
        }
        (Kind::Rockit, Workload::Refresh) => {
            let auth = format!("Bearer {}", user.refresh);
            let answer =
                user.conn.send("POST", "/be/v1/refresh", &[("authorization", &auth)], Some("{}".into())).await?;
            if answer.status == 200 {
                let v = answer.json();
                user.refresh = v["session"]["refresh"]["token"].as_str().unwrap_or_default().into();
            }
            answer
        }
        (_, Workload::Refresh) => {
            let answer = user
                .conn
                .send("POST", "/api/collections/users/auth-refresh", &[("authorization", &user.access)], None)
                .await?;
            if answer.status == 200 {
                user.access = answer.json()["token"].as_str().unwrap_or_default().into();
            }
            answer
        }
        (Kind::Rockit, Workload::List) => {
            let auth = format!("Bearer {}", user.access);
            user.conn.send("GET", "/be/v1/apps?limit=10", &[("authorization", &auth)], None).await?
        }
        (_, Workload::List) => {
            user.conn
                .send("GET", "/api/collections/apps/records?perPage=10", &[("authorization", &user.access)], None)
                .await?
        }
        (Kind::Rockit, Workload::Create) => {
            user.n += 1;
            let auth = format!("Bearer {}", user.access);
            let body = json!({"name": format!("b{}_{}", user.id, user.n), "label": "bench"}).to_string();
            user.conn.send("POST", "/be/v1/apps", &[("authorization", &auth)], Some(body)).await?
        }
        (_, Workload::Create) => {
            user.n += 1;
            let body = json!({"name": format!("b{}_{}", user.id, user.n), "label": "bench"}).to_string();
            user.conn
                .send("POST", "/api/collections/apps/records", &[("authorization", &user.access)], Some(body))
                .await?
        }
    };
    if (200..300).contains(&answer.status) {
        Ok(())
    } else {
        Err(format!(
            "HTTP {}: {}",
            answer.status,
            String::from_utf8_lossy(&answer.body).chars().take(200).collect::<String>()
        ))
    }
}

/// One `GET /be/v1/apps?limit=10` page with `auth` (a `Bearer …` header value): the list
/// workload's request on a connection of the caller's; `Ok` only for a 2xx answer.
pub async fn list_page(conn: &mut Conn, auth: &str) -> Result<(), String> {
    let answer = conn.send("GET", "/be/v1/apps?limit=10", &[("authorization", auth)], None).await?;
    if (200..300).contains(&answer.status) {
        Ok(())
    } else {
        Err(format!(
            "HTTP {}: {}",
            answer.status,
            String::from_utf8_lossy(&answer.body).chars().take(200).collect::<String>()
        ))
    }
}

/// Runs `users` virtual users for `warmup` (not recorded) and then `duration`. The clock starts
/// once every virtual user has its connection and session: the logins for the sessions cost
/// PBKDF2 time that must not leak into the measured window.
pub async fn run(
    kind: Kind,
    host: &str,
    account: Arc<Account>,
    work: Workload,
    users: usize,
    warmup: Duration,
    duration: Duration,
) -> Stats {
    let ready = Arc::new(tokio::sync::Barrier::new(users + 1));
    let (start_tx, start_rx) = tokio::sync::watch::channel(None::<Instant>);
    let mut tasks = Vec::new();
    for id in 0..users {
        let (host, account, ready, mut start_rx) = (host.to_string(), account.clone(), ready.clone(), start_rx.clone());
        tasks.push(tokio::spawn(async move {
            let mut stats = Stats::default();
            let user = setup(kind, &host, &account, id, work != Workload::Login).await;
            ready.wait().await;
            let mut user = match user {
                Ok(user) => user,
                Err(e) => {
                    stats.errors += 1;
                    stats.first_error = Some(e);
                    return stats;
                }
            };
            let start = loop {
                if let Some(start) = *start_rx.borrow_and_update() {
                    break start;
                }
                if start_rx.changed().await.is_err() {
                    return stats;
                }
            };
            let record_from = start + warmup;
            let end = record_from + duration;
            while Instant::now() < end {
                let t = Instant::now();
                let outcome = step(kind, work, &mut user, &account).await;
                let took = t.elapsed();
                if outcome.is_err() {
                    // A broken connection would fail every later step; start a new one. This
                    // matters in the warm-up too: a connection set up early can sit idle past the
                    // server's keep-alive timeout while slower users log in (on a loaded machine
                    // under the login flood), and the server rightly closes it.
                    if let Ok(conn) = Conn::open(&host).await {
                        user.conn = conn;
                    }
                }
                if t < record_from {
                    continue;
                }
                stats.record(outcome, took);
            }
            stats
        }));
    }
    ready.wait().await;
    let start = Instant::now();
    let _ = start_tx.send(Some(start));
    let mut total = Stats::default();
    for task in tasks {
        if let Ok(stats) = task.await {
            total.merge(stats);
        }
    }
    total.elapsed = duration;
    total.recorded_from = Some(start + warmup);
    total
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A server whose first connection is closed without an answer (as a keep-alive timeout
    /// closes an idle connection) and whose later connections answer every request with 200.
    async fn closes_the_first_connection() -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let host = listener.local_addr().unwrap().to_string();
        tokio::spawn(async move {
            let mut first = true;
            while let Ok((mut stream, _)) = listener.accept().await {
                if std::mem::take(&mut first) {
                    // Closed once the driver is past its setup, like an idle keep-alive expiring.
                    tokio::spawn(async move {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        drop(stream);
                    });
                    continue;
                }
                tokio::spawn(async move {
                    let mut buf = [0u8; 4096];
                    while let Ok(n) = stream.read(&mut buf).await {
                        if n == 0 || stream.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n").await.is_err() {
                            break;
                        }
                    }
                });
            }
        });
        host
    }

    #[tokio::test]
    async fn a_connection_closed_before_the_start_is_replaced_in_the_warm_up() {
        let host = closes_the_first_connection().await;
        tokio::time::sleep(Duration::from_millis(10)).await;
        let account = Arc::new(Account { org: "o".into(), username: "u".into(), password: "p".into() });
        // The first virtual user's connection dies before the start; the warm-up must absorb it.
        let stats =
            run(Kind::Floor, &host, account, Workload::List, 1, Duration::from_millis(300), Duration::from_millis(300))
                .await;
        assert_eq!(stats.errors, 0, "{:?}", stats.first_error);
        assert!(stats.ok > 0);
    }
}
