//! Test fixture: the real `rockit-edge` binary on 127.0.0.1 with a temporary state directory,
//! spoken to over HTTP. Shared by every integration test file.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

pub const BIN: &str = env!("CARGO_BIN_EXE_rockit-edge");

/// A running server. Killed on drop if still running.
pub struct Server {
    child: Option<Child>,
    pub base: String,
    pub state_dir: PathBuf,
    /// Keeps the temporary directory alive as long as the server (and its restarts) need it.
    pub home: std::sync::Arc<tempfile::TempDir>,
    pub stdout: Vec<String>,
    env: Vec<(String, String)>,
}

/// An HTTP answer: status, headers we look at, and the JSON body (Null if none).
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub body: Value,
    pub retry_after: Option<String>,
    pub content_type: Option<String>,
    /// The `Allow` header (405 answers).
    pub allow: Option<String>,
}

impl Reply {
    /// The `error` code of a failure envelope.
    pub fn error(&self) -> &str {
        self.body["error"].as_str().unwrap_or("")
    }

    #[track_caller]
    pub fn assert_error(&self, status: u16, code: &str) -> &Self {
        assert_eq!((self.status, self.error()), (status, code), "unexpected reply: {:?}", self.body);
        assert_eq!(self.body["status"], "failed", "{:?}", self.body);
        assert!(self.body["message"].is_string(), "{:?}", self.body);
        self
    }

    #[track_caller]
    pub fn assert_ok(&self) -> &Value {
        assert_eq!(self.status, 200, "unexpected reply: {:?}", self.body);
        assert_eq!(self.body["status"], "success", "{:?}", self.body);
        &self.body
    }
}

impl Server {
    pub fn start() -> Server {
        Server::start_with(&[])
    }

    pub fn start_with(env: &[(&str, &str)]) -> Server {
        let home = std::sync::Arc::new(tempfile::tempdir().expect("temp dir"));
        let env = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Server::spawn(home, env)
    }

    /// Starts again on the same state directory with the same settings.
    pub fn restart(mut self) -> Server {
        self.stop();
        let home = self.home.clone();
        let env = std::mem::take(&mut self.env);
        drop(self);
        Server::spawn(home, env)
    }

    fn spawn(home: std::sync::Arc<tempfile::TempDir>, env: Vec<(String, String)>) -> Server {
        let state_dir = home.path().join("state");
        let log = std::fs::OpenOptions::new().create(true).append(true).open(home.path().join("server.log")).unwrap();
        let mut child = command(&state_dir, &env)
            .args(["serve", "--listen", "127.0.0.1:0"])
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .spawn()
            .expect("spawn rockit-edge");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut lines = Vec::new();
        let base = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) => {
                    let found = line.split_whitespace().find(|w| w.starts_with("http://")).map(str::to_string);
                    lines.push(line);
                    if let Some(url) = found {
                        break url;
                    }
                }
                Err(_) => {
                    let log = std::fs::read_to_string(home.path().join("server.log")).unwrap_or_default();
                    panic!("server did not announce its address; stdout {lines:?}; log:\n{log}");
                }
            }
        };
        // Collect the first-steps text printed right after the address.
        while let Ok(line) = rx.recv_timeout(Duration::from_millis(200)) {
            lines.push(line);
        }
        Server { child: Some(child), base, state_dir, home, stdout: lines, env }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub fn pid(&self) -> i32 {
        self.child.as_ref().expect("running").id() as i32
    }

    /// Runs a CLI command against this server's state directory and settings.
    pub fn cli(&self, args: &[&str]) -> Output {
        command(&self.state_dir, &self.env).args(args).output().expect("run rockit-edge")
    }

    /// A fresh admin token from the CLI.
    pub fn admin_token(&self) -> String {
        let out = self.cli(&["admin-token", "--name", "tests"]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.home.path().join("server.log")).unwrap_or_default()
    }

    pub fn database(&self) -> PathBuf {
        self.state_dir.join("rockit-edge.db")
    }

    /// SIGTERM and wait for the exit.
    pub fn stop(&mut self) -> Option<ExitStatus> {
        let mut child = self.child.take()?;
        terminate(child.id() as i32);
        Some(wait_with_deadline(&mut child, Duration::from_secs(60)))
    }

    /// SIGKILL, as a crash or power cut would.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn admin(&self, method: &str, path: &str, body: Option<Value>) -> Reply {
        let token = self.admin_token();
        send(method, &self.url(path), &[("x-rockit-admin-token", &token)], body)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A `rockit-edge` command with a clean environment: only the settings the test chose.
pub fn command(state_dir: &Path, env: &[(String, String)]) -> Command {
    let mut cmd = Command::new(BIN);
    for (key, _) in std::env::vars() {
        if key.starts_with("ROCKIT_EDGE_") || key == "NOTIFY_SOCKET" {
            cmd.env_remove(key);
        }
    }
    cmd.env("ROCKIT_EDGE_STATE_DIR", state_dir).env("RUST_BACKTRACE", "0").env_remove("RUST_LOG");
    // Tests hash many passwords; the production default (600 000) is tested where it matters.
    cmd.env("ROCKIT_EDGE_PBKDF2_ITERATIONS", "1000");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}

pub fn terminate(pid: i32) {
    let status = Command::new("kill").args(["-TERM", &pid.to_string()]).status().expect("kill");
    assert!(status.success());
}

pub fn wait_with_deadline(child: &mut Child, limit: Duration) -> ExitStatus {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("process did not exit within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn agent() -> ureq::Agent {
    ureq::AgentBuilder::new().timeout(Duration::from_secs(60)).build()
}

/// Sends a request with a JSON body (if any) and reads the JSON answer, whatever its status.
pub fn send(method: &str, url: &str, headers: &[(&str, &str)], body: Option<Value>) -> Reply {
    match body {
        Some(body) => send_raw(method, url, headers, Some(("application/json", body.to_string().as_bytes()))),
        None => send_raw(method, url, headers, None),
    }
}

/// Sends a request with an exact body and content type.
pub fn send_raw(method: &str, url: &str, headers: &[(&str, &str)], body: Option<(&str, &[u8])>) -> Reply {
    let mut req = agent().request(method, url);
    for (k, v) in headers {
        req = req.set(k, v);
    }
    let result = match body {
        Some((content_type, bytes)) => req.set("Content-Type", content_type).send_bytes(bytes),
        None => req.call(),
    };
    let resp = match result {
        Ok(resp) => resp,
        Err(ureq::Error::Status(_, resp)) => resp,
        Err(e) => panic!("{method} {url}: {e}"),
    };
    let status = resp.status();
    let retry_after = resp.header("retry-after").map(str::to_string);
    let content_type = resp.header("content-type").map(str::to_string);
    let allow = resp.header("allow").map(str::to_string);
    let text = resp.into_string().unwrap_or_default();
    let body = serde_json::from_str(&text).unwrap_or(Value::Null);
    Reply { status, body, retry_after, content_type, allow }
}

/// Polls `f` until it answers `Some`, for at most `limit`.
pub fn eventually<T>(limit: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(value) = f() {
            return value;
        }
        assert!(Instant::now() < deadline, "condition not reached within {limit:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A logged-in organization user.
#[derive(Clone, Debug)]
pub struct Session {
    pub base: String,
    pub access: String,
    pub refresh: String,
    pub id: String,
    pub org: String,
    pub username: String,
}

impl Session {
    /// A request with the access token.
    pub fn call(&self, method: &str, path: &str, body: Option<Value>) -> Reply {
        let auth = format!("Bearer {}", self.access);
        send(method, &format!("{}{}", self.base, path), &[("Authorization", &auth)], body)
    }
}

/// A machine account's API key triple.
#[derive(Clone, Debug)]
pub struct Machine {
    pub base: String,
    pub org: String,
    pub username: String,
    pub key: String,
    pub key_id: String,
}

impl Machine {
    pub fn call(&self, method: &str, path: &str, body: Option<Value>) -> Reply {
        let headers = [
            ("x-rockit-orgname", self.org.as_str()),
            ("x-rockit-username", self.username.as_str()),
            ("x-rockit-api-key", self.key.as_str()),
        ];
        send(method, &format!("{}{}", self.base, path), &headers, body)
    }
}

impl Server {
    /// Creates an organization through the admin API; answers the first administrator's password.
    pub fn create_org(&self, name: &str) -> String {
        let reply = self.admin(
            "POST",
            "/adm/v1/orgs",
            Some(serde_json::json!({"name": name, "label": format!("{name} label")})),
        );
        let body = reply.assert_ok();
        assert_eq!(body["admin"]["username"], "admin");
        body["admin"]["initialPassword"].as_str().unwrap().to_string()
    }

    /// Logs in with the username+password+orgName shortcut.
    pub fn login(&self, org: &str, username: &str, password: &str) -> Session {
        let reply = send(
            "POST",
            &self.url("/be/v1/login"),
            &[],
            Some(serde_json::json!({"username": username, "password": password, "orgName": org})),
        );
        let body = reply.assert_ok();
        Session {
            base: self.base.clone(),
            access: body["session"]["access"]["token"].as_str().unwrap().to_string(),
            refresh: body["session"]["refresh"]["token"].as_str().unwrap().to_string(),
            id: body["session"]["id"].as_str().unwrap().to_string(),
            org: org.to_string(),
            username: username.to_string(),
        }
    }

    /// A new organization and its administrator's session.
    pub fn org_admin(&self, org: &str) -> Session {
        let password = self.create_org(org);
        self.login(org, "admin", &password)
    }
}

/// Password used for accounts the tests create.
pub const PASSWORD: &str = "a-long-enough-password";

impl Session {
    /// Creates a role with the given permissions (as this session) and answers its name.
    pub fn create_role(&self, name: &str, permissions: Value) -> String {
        self.call("POST", "/be/v1/roles", Some(serde_json::json!({"name": name, "permissions": permissions})))
            .assert_ok();
        name.to_string()
    }

    /// Creates a person with the given roles and logs it in.
    pub fn create_user(&self, server: &Server, username: &str, roles: &[&str]) -> Session {
        let body = serde_json::json!({
            "username": username, "email": format!("{username}@example.com"), "firstname": "Test",
            "surname": "User", "roles": roles, "password": PASSWORD,
        });
        self.call("POST", "/be/v1/users", Some(body)).assert_ok();
        server.login(&self.org, username, PASSWORD)
    }

    /// Creates a machine account with the given roles; answers its key triple.
    pub fn create_machine(&self, username: &str, roles: &[&str]) -> Machine {
        let body = serde_json::json!({"username": username, "type": "machine", "label": "bot", "roles": roles});
        let reply = self.call("POST", "/be/v1/users", Some(body));
        let body = reply.assert_ok();
        Machine {
            base: self.base.clone(),
            org: self.org.clone(),
            username: username.to_string(),
            key: body["apiKey"].as_str().unwrap().to_string(),
            key_id: body["apiKeyId"].as_str().unwrap().to_string(),
        }
    }
}

/// Every resource with its maximum bits (API.md §3): what `Administrators` grants.
pub const MAXIMA: [(&str, u8); 12] = [
    ("apps", 15),
    ("beUsers", 15),
    ("bundles", 15),
    ("consumption", 2),
    ("dependencies", 15),
    ("deployments", 15),
    ("keys", 15),
    ("roles", 15),
    ("sources", 15),
    ("subscriptions", 15),
    ("tasks", 31),
    ("trainings", 6),
];

/// A failure with this status and code that names `param`.
#[track_caller]
pub fn assert_param(reply: &Reply, status: u16, code: &str, param: &str) {
    reply.assert_error(status, code);
    assert_eq!(reply.body["param"], param, "{:?}", reply.body);
}

/// An RFC 3339 UTC timestamp with milliseconds: 2026-04-22T10:11:12.345Z (API.md §1.5).
#[track_caller]
pub fn assert_timestamp(value: &Value) {
    let s = value.as_str().unwrap_or_else(|| panic!("not a timestamp: {value}"));
    assert!(s.len() == 24 && s.ends_with('Z') && &s[10..11] == "T" && &s[19..20] == ".", "not RFC 3339 with ms: {s}");
}

/// A static file server in front of `root` on 127.0.0.1 (one request per connection): answers
/// `Range: bytes=a-b` with 206 when `ranges` is true, as a CDN in front of a bucket does, else
/// always the whole file with 200; a missing file is a 404. Answers the base URL.
pub fn serve_directory(root: PathBuf, ranges: bool) -> String {
    use std::io::Write;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut line = String::new();
            if reader.read_line(&mut line).is_err() {
                continue;
            }
            let path = line.split_whitespace().nth(1).unwrap_or("/").to_string();
            let mut range = None;
            loop {
                let mut header = String::new();
                if reader.read_line(&mut header).unwrap_or(0) == 0 || header == "\r\n" {
                    break;
                }
                if let Some(v) = header.to_ascii_lowercase().strip_prefix("range: bytes=") {
                    let (a, b) = v.trim().split_once('-').unwrap();
                    range = Some((a.parse::<usize>().unwrap(), b.parse::<usize>().unwrap()));
                }
            }
            let Ok(body) = std::fs::read(root.join(path.trim_start_matches('/'))) else {
                let _ = stream.write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
                continue;
            };
            let (status, part) = match range {
                Some((a, b)) if ranges => ("206 Partial Content", &body[a..=b]),
                _ => ("200 OK", &body[..]),
            };
            let head = format!("HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", part.len());
            let _ = stream.write_all(head.as_bytes()).and_then(|_| stream.write_all(part));
        }
    });
    base
}

/// One HTTP/1.1 answer read off a raw connection (tests that write bytes no client would send).
#[derive(Debug)]
pub struct RawAnswer {
    pub status: u16,
    /// Header names in lower case.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl RawAnswer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
}

/// The answers in `bytes`, in order; each must carry `content-length` (ours do).
pub fn raw_answers(mut bytes: &[u8]) -> Vec<RawAnswer> {
    let mut answers = Vec::new();
    while let Some(end) = bytes.windows(4).position(|w| w == b"\r\n\r\n") {
        let head = String::from_utf8_lossy(&bytes[..end]).into_owned();
        let mut lines = head.split("\r\n");
        let status = lines.next().and_then(|l| l.split(' ').nth(1)).and_then(|s| s.parse().ok()).expect("status line");
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
            .collect();
        let length: usize =
            headers.iter().find(|(n, _)| n == "content-length").and_then(|(_, v)| v.parse().ok()).unwrap_or(0);
        let body = bytes[end + 4..(end + 4 + length).min(bytes.len())].to_vec();
        bytes = &bytes[(end + 4 + length).min(bytes.len())..];
        answers.push(RawAnswer { status, headers, body });
    }
    answers
}

/// Writes `request` to a new plain connection (from another thread, so a server that stops
/// reading cannot block the test) and reads until the server closes it.
pub fn raw_exchange(addr: &str, request: Vec<u8>) -> Vec<u8> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut writer = stream.try_clone().unwrap();
    let sending = std::thread::spawn(move || {
        // The server may close before reading it all: what it answered is what counts.
        let _ = writer.write_all(&request);
    });
    let mut answer = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    loop {
        match stream.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => answer.extend_from_slice(&chunk[..n]),
            // A reset after the answer (unread request bytes) ends the exchange like a close.
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset && !answer.is_empty() => break,
            Err(e) => panic!("reading the answer: {e} (so far {:?})", String::from_utf8_lossy(&answer)),
        }
    }
    let _ = sending.join();
    answer
}
