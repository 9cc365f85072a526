//! Starting the three servers on loopback with fresh data directories, seeding equivalent data,
//! and reading their memory from /proc.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::http::once;

/// A server under test.
pub struct Running {
    pub name: &'static str,
    pub child: Child,
    pub host: String,
    pub startup: Duration,
    pub binary: PathBuf,
}

impl Running {
    /// Resident memory now and at its peak, in KiB (VmRSS, VmHWM).
    pub fn memory_kib(&self) -> (u64, u64) {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap_or_default();
        let field = |name: &str| {
            status
                .lines()
                .find(|l| l.starts_with(name))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
                .unwrap_or(0)
        };
        (field("VmRSS:"), field("VmHWM:"))
    }

    pub fn stop(&mut self) {
        let _ = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A free loopback port (bound and released; the servers bind it right after).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("a free port")
}

async fn wait_healthy(host: &str, path: &str, started: Instant, child: &mut Child) -> Result<Duration, String> {
    let deadline = started + Duration::from_secs(60);
    while Instant::now() < deadline {
        if let Ok(answer) = once(host, "GET", path, &[], None).await {
            if answer.status == 200 {
                return Ok(started.elapsed());
            }
        }
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!("exited early with {status}"));
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    Err("did not become healthy within 60 s".into())
}

fn spawn(cmd: &mut Command) -> Result<Child, String> {
    cmd.stdout(Stdio::piped()).stderr(Stdio::null()).spawn().map_err(|e| format!("cannot start {cmd:?}: {e}"))
}

/// Drains a child's stdout so it never blocks on a full pipe.
fn drain(child: &mut Child) {
    if let Some(out) = child.stdout.take() {
        std::thread::spawn(move || for _ in BufReader::new(out).lines() {});
    }
}

pub async fn start_floor(bin: &Path) -> Result<Running, String> {
    let host = format!("127.0.0.1:{}", free_port());
    let started = Instant::now();
    let mut child = spawn(Command::new(bin).arg(&host))?;
    drain(&mut child);
    let startup = wait_healthy(&host, "/", started, &mut child).await?;
    Ok(Running { name: "floor", child, host, startup, binary: bin.to_path_buf() })
}

/// The account the workloads log in with.
pub struct Account {
    pub org: String,
    pub username: String,
    pub password: String,
}

pub async fn start_rockit(bin: &Path, dir: &Path) -> Result<(Running, Account), String> {
    let host = format!("127.0.0.1:{}", free_port());
    let state = dir.join("rockit-state");
    let started = Instant::now();
    let mut child = spawn(
        Command::new(bin)
            .args(["serve", "--listen", &host, "--state-dir"])
            .arg(&state)
            .env_remove("ROCKIT_EDGE_CONFIG"),
    )?;
    drain(&mut child);
    let startup = wait_healthy(&host, "/healthz", started, &mut child).await?;
    let token = Command::new(bin)
        .args(["admin-token", "--name", "bench", "--state-dir"])
        .arg(&state)
        .output()
        .map_err(|e| e.to_string())?;
    let token = String::from_utf8_lossy(&token.stdout).trim().to_string();
    let org = once(
        &host,
        "POST",
        "/adm/v1/orgs",
        &[("x-rockit-admin-token", &token)],
        Some(json!({"name": "bench"}).to_string()),
    )
    .await?;
    if org.status != 200 {
        return Err(format!("creating the org answered {}", org.status));
    }
    let account = Account {
        org: "bench".into(),
        username: "admin".into(),
        password: org.json()["admin"]["initialPassword"].as_str().unwrap_or_default().to_string(),
    };
    let login = crate::workloads::rockit_login(&host, &account).await?;
    let access = login["session"]["access"]["token"].as_str().unwrap_or_default().to_string();
    let auth = format!("Bearer {access}");
    for i in 0..20 {
        let body = json!({"name": format!("seed_app_{i:02}"), "label": format!("Seed app {i}")}).to_string();
        let answer = once(&host, "POST", "/be/v1/apps", &[("authorization", &auth)], Some(body)).await?;
        if answer.status != 200 {
            return Err(format!("seeding apps answered {}", answer.status));
        }
    }
    Ok((Running { name: "rockit-edge", child, host, startup, binary: bin.to_path_buf() }, account))
}

/// Stops `server` and starts it again on the same state directory (a new port): a fresh
/// process, so the next measurement starts without the heap an earlier one left behind.
pub async fn restart_rockit(server: &mut Running, dir: &Path) -> Result<(), String> {
    server.stop();
    let host = format!("127.0.0.1:{}", free_port());
    let started = Instant::now();
    let mut child = spawn(
        Command::new(&server.binary)
            .args(["serve", "--listen", &host, "--state-dir"])
            .arg(dir.join("rockit-state"))
            .env_remove("ROCKIT_EDGE_CONFIG"),
    )?;
    drain(&mut child);
    server.startup = wait_healthy(&host, "/healthz", started, &mut child).await?;
    server.child = child;
    server.host = host;
    Ok(())
}

pub async fn start_pocketbase(bin: &Path, dir: &Path) -> Result<(Running, Account), String> {
    let data = dir.join("pb_data");
    let (email, password) = ("bench@example.com", "bench-password-123");
    let upsert = Command::new(bin)
        .args(["superuser", "upsert", email, password, "--dir"])
        .arg(&data)
        .output()
        .map_err(|e| format!("cannot run pocketbase: {e}"))?;
    if !upsert.status.success() {
        return Err(format!("superuser upsert failed: {}", String::from_utf8_lossy(&upsert.stderr)));
    }
    let host = format!("127.0.0.1:{}", free_port());
    let started = Instant::now();
    let mut child = spawn(Command::new(bin).args(["serve", "--http", &host, "--dir"]).arg(&data))?;
    drain(&mut child);
    let startup = wait_healthy(&host, "/api/health", started, &mut child).await?;
    let su = once(
        &host,
        "POST",
        "/api/collections/_superusers/auth-with-password",
        &[],
        Some(json!({"identity": email, "password": password}).to_string()),
    )
    .await?;
    let su_token = su.json()["token"].as_str().ok_or("no superuser token")?.to_string();
    let headers = [("authorization", su_token.as_str())];
    let rule = "@request.auth.id != \"\"";
    let collection = json!({
        "name": "apps", "type": "base",
        "fields": [{"name": "name", "type": "text"}, {"name": "label", "type": "text"}],
        "listRule": rule, "viewRule": rule, "createRule": rule,
    });
    let created = once(&host, "POST", "/api/collections", &headers, Some(collection.to_string())).await?;
    if created.status != 200 {
        return Err(format!(
            "creating the apps collection answered {}: {}",
            created.status,
            String::from_utf8_lossy(&created.body)
        ));
    }
    let user = json!({"email": "user@example.com", "password": password, "passwordConfirm": password});
    let made = once(&host, "POST", "/api/collections/users/records", &headers, Some(user.to_string())).await?;
    if made.status != 200 {
        return Err(format!("creating the user answered {}: {}", made.status, String::from_utf8_lossy(&made.body)));
    }
    for i in 0..20 {
        let body = json!({"name": format!("seed_app_{i:02}"), "label": format!("Seed app {i}")}).to_string();
        let answer = once(&host, "POST", "/api/collections/apps/records", &headers, Some(body)).await?;
        if answer.status != 200 {
            return Err(format!("seeding records answered {}", answer.status));
        }
    }
    let account = Account { org: String::new(), username: "user@example.com".into(), password: password.into() };
    Ok((Running { name: "PocketBase", child, host, startup, binary: bin.to_path_buf() }, account))
}
