//! Running the server: first start, the CLI commands, shutdown, crash recovery, backups, logs and
//! the OpenAPI document.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use common::{command, send, Server};
use serde_json::json;

#[test]
fn a_fresh_start_creates_a_private_state_directory_and_prints_first_steps() {
    let server = Server::start();
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&server.state_dir), 0o700);
    assert_eq!(mode(&server.state_dir.join("secrets.json")), 0o600);
    assert!(server.database().is_file());
    let stdout = server.stdout.join("\n");
    assert!(stdout.contains("admin-token"), "{stdout}");
    assert!(stdout.contains("/srv/v1/ping"), "{stdout}");
    // A restart on the same directory is not a first start.
    let server = server.restart();
    assert!(!server.stdout.join("\n").contains("First steps"));
}

#[test]
fn sigterm_drains_a_request_in_flight_and_exits_zero() {
    let mut server = Server::start();
    // Hold the write lock so /readyz stays in flight for about two seconds.
    let blocker = rusqlite::Connection::open(server.database()).unwrap();
    blocker.execute_batch("BEGIN EXCLUSIVE; INSERT INTO meta (key, value) VALUES ('drain', 'x');").unwrap();
    let url = server.url("/readyz");
    let in_flight = std::thread::spawn(move || send("GET", &url, &[], None));
    std::thread::sleep(Duration::from_millis(300));
    let status = server.stop().unwrap();
    let reply = in_flight.join().unwrap();
    assert_eq!(reply.status, 503, "the request in flight got its answer: {:?}", reply.body);
    assert_eq!(status.code(), Some(0));
    drop(blocker);
}

#[test]
fn a_task_interrupted_by_a_crash_is_resumed_at_start() {
    let mut server = Server::start();
    let reply = server.admin("POST", "/srv/v1/hello", Some(json!({"message": "again", "maintenance": false})));
    let name = reply.assert_ok()["task"]["name"].as_str().unwrap().to_string();
    server.kill();
    // Put the task back in the state a crash in the middle of its run leaves behind.
    let db = rusqlite::Connection::open(server.database()).unwrap();
    db.execute("UPDATE tasks SET status = 'running', output = NULL, ended = NULL WHERE name = ?1", [&name]).unwrap();
    drop(db);
    let server = server.restart();
    let task = common::eventually(Duration::from_secs(30), || {
        let reply = server.admin("GET", &format!("/srv/v1/tasks/{name}"), None);
        let task = reply.body["task"].clone();
        (task["status"] == "done").then_some(task)
    });
    assert_eq!(task["attempts"], 2, "the resumed run counts as a second attempt");
    assert_eq!(task["output"]["message"], "again");
}

#[test]
fn a_database_newer_than_the_binary_is_refused_with_a_clear_message() {
    let mut server = Server::start();
    server.stop();
    let db = rusqlite::Connection::open(server.database()).unwrap();
    db.pragma_update(None, "user_version", 9999).unwrap();
    drop(db);
    let out = command(&server.state_dir, &[]).args(["serve", "--listen", "127.0.0.1:0"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("newer"), "{stderr}");
    let check = server.cli(&["migrate", "--check"]);
    assert_eq!(check.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&check.stderr).contains("newer"));
}

#[test]
fn migrate_check_reports_an_up_to_date_database() {
    let mut server = Server::start();
    let out = server.cli(&["migrate", "--check"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("0 pending"));
    server.stop();
    let out = server.cli(&["migrate"]);
    assert!(out.status.success());
}

#[test]
fn an_older_database_is_migrated_at_start_after_keeping_a_copy() {
    let mut server = Server::start();
    server.stop();
    // Pretend the database predates the newest migration by rewinding its version to 0 with
    // only the first migration's tables: the oldest schema a real installation could have.
    std::fs::remove_file(server.database()).unwrap();
    let _ = std::fs::remove_file(server.state_dir.join("rockit-edge.db-wal"));
    let _ = std::fs::remove_file(server.state_dir.join("rockit-edge.db-shm"));
    let db = rusqlite::Connection::open(server.database()).unwrap();
    db.execute_batch(include_str!("../migrations/001_foundation.sql")).unwrap();
    db.pragma_update(None, "user_version", 1).unwrap();
    db.execute("INSERT INTO meta (key, value) VALUES ('kept', 'yes')", []).unwrap();
    drop(db);
    let server = server.restart();
    server.admin("POST", "/srv/v1/ping", None).assert_ok();
    let db = rusqlite::Connection::open(server.database()).unwrap();
    let kept: String = db.query_row("SELECT value FROM meta WHERE key = 'kept'", [], |r| r.get(0)).unwrap();
    assert_eq!(kept, "yes");
    let version: i64 = db.pragma_query_value(None, "user_version", |r| r.get(0)).unwrap();
    let reported = server.admin("GET", "/srv/v1/versions", None).body["versions"]["schema"].as_i64().unwrap();
    assert_eq!(version, reported);
    if version > 1 {
        let copies = std::fs::read_dir(server.state_dir.join("backups")).unwrap().count();
        assert!(copies >= 1, "a copy of the old database is kept");
    }
}

#[test]
fn a_second_server_on_the_same_state_directory_is_refused() {
    let server = Server::start();
    let out = command(&server.state_dir, &[]).args(["serve", "--listen", "127.0.0.1:0"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("another rockit-edge"));
}

#[test]
fn a_backup_taken_under_concurrent_writes_passes_the_integrity_check() {
    let server = Server::start();
    let token = server.admin_token();
    let base = server.base.clone();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writers: Vec<_> = (0..4)
        .map(|i| {
            let (base, token, stop) = (base.clone(), token.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut n = 0;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let reply = send(
                        "POST",
                        &format!("{base}/srv/v1/hello"),
                        &[("x-rockit-admin-token", &token)],
                        Some(json!({"message": format!("w{i}-{n}"), "maintenance": false})),
                    );
                    assert_eq!(reply.status, 200);
                    n += 1;
                }
                n
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    let out_file = server.home.path().join("copy.db");
    let out = server.cli(&["backup", "--out", out_file.to_str().unwrap()]);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let written: i32 = writers.into_iter().map(|w| w.join().unwrap()).sum();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(written > 0);
    let copy = rusqlite::Connection::open(&out_file).unwrap();
    let check: String = copy.query_row("PRAGMA integrity_check", [], |r| r.get(0)).unwrap();
    assert_eq!(check, "ok");
    let tasks: i64 = copy.query_row("SELECT count(*) FROM tasks", [], |r| r.get(0)).unwrap();
    assert!(tasks > 0);
    // Backups never overwrite.
    let again = server.cli(&["backup", "--out", out_file.to_str().unwrap()]);
    assert_eq!(again.status.code(), Some(1));
}

#[test]
fn healthcheck_exits_zero_for_a_running_server_and_one_otherwise() {
    let mut server = Server::start();
    let url = server.url("/readyz");
    let out = server.cli(&["healthcheck", "--url", &url]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    server.stop();
    let out = server.cli(&["healthcheck", "--url", &url]);
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn an_unknown_setting_stops_the_start_with_exit_code_two() {
    let dir = tempfile::tempdir().unwrap();
    let env = vec![("ROCKIT_EDGE_ACESS_TTL".to_string(), "2s".to_string())];
    let out = command(&dir.path().join("state"), &env).args(["serve"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown setting `acess_ttl`"));
    let config = dir.path().join("edge.toml");
    std::fs::write(&config, "listen = \"127.0.0.1:0\"\nlisten_port = 1\n").unwrap();
    let out =
        command(&dir.path().join("state"), &[]).args(["serve", "--config", config.to_str().unwrap()]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown setting `listen_port`"));
}

#[test]
fn version_prints_the_version_and_schema() {
    let dir = tempfile::tempdir().unwrap();
    let out = command(dir.path(), &[]).arg("version").output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains(env!("CARGO_PKG_VERSION")) && text.contains("schema"), "{text}");
}

#[test]
fn admin_token_without_a_state_directory_says_what_is_missing() {
    let dir = tempfile::tempdir().unwrap();
    let out = command(&dir.path().join("nowhere"), &[]).args(["admin-token", "--name", "x"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no secrets"));
}

#[test]
fn the_access_log_has_one_line_per_request_and_never_a_token() {
    let server = Server::start();
    let token = server.admin_token();
    send("POST", &server.url("/srv/v1/ping"), &[("x-rockit-admin-token", &token)], None).assert_ok();
    send("GET", &server.url("/srv/v1/tasks/hello-abc"), &[("x-rockit-admin-token", &token)], None);
    let log = common::eventually(Duration::from_secs(10), || {
        let log = server.log();
        log.contains("GET /srv/v1/tasks/{taskName} 404").then_some(log)
    });
    assert!(log.contains("POST /srv/v1/ping 200"), "{log}");
    assert!(!log.contains(&token), "a token leaked into the log");
    assert!(!log.contains("hello-abc"), "the raw path leaked into the log");
}

#[test]
fn the_openapi_document_lists_exactly_the_routes_the_server_has() {
    let server = Server::start();
    let doc = send("GET", &server.url("/openapi.json"), &[], None).body;
    assert_eq!(doc["openapi"], "3.1.0");
    let paths = doc["paths"].as_object().unwrap();
    assert!(paths.len() >= 10);
    for (path, operations) in paths {
        let concrete = path.replace('{', "x").replace('}', "");
        for (method, _) in operations.as_object().unwrap() {
            let reply = send(&method.to_uppercase(), &server.url(&concrete), &[], Some(json!({})));
            // Every documented operation is routed: no 404 for the route, no 405 for the method.
            assert_ne!(reply.status, 405, "{method} {path} is documented but not routed");
            assert!(
                !(reply.status == 404 && reply.body["resource"] == "route"),
                "{method} {path} is documented but not routed"
            );
        }
        // And a method it does not document is not routed either.
        let documented: Vec<String> = operations.as_object().unwrap().keys().map(|m| m.to_uppercase()).collect();
        if let Some(other) =
            ["PUT", "PATCH", "DELETE", "GET", "POST"].iter().find(|m| !documented.contains(&m.to_string()))
        {
            let reply = send(other, &server.url(&concrete), &[], None);
            assert_eq!(reply.status, 405, "{other} {path} is routed but not documented");
        }
    }
    // The document and the router come from one table, so agreeing with each other proves
    // little; both must also match the contract's list of operations, written out here.
    let documented: std::collections::BTreeSet<String> = paths
        .iter()
        .flat_map(|(path, ops)| ops.as_object().unwrap().keys().map(move |m| format!("{} {path}", m.to_uppercase())))
        .collect();
    let contract: std::collections::BTreeSet<String> = CONTRACT.iter().map(|s| s.to_string()).collect();
    assert_eq!(documented, contract, "operations of /openapi.json vs the contract");
    for scheme in ["adminToken", "bearer", "beauthToken", "orgName", "username", "apiKey"] {
        assert!(doc["components"]["securitySchemes"][scheme]["type"].is_string(), "security scheme {scheme}");
    }
}

/// Every operation of API.md, as `METHOD path`.
const CONTRACT: &[&str] = &[
    "GET /healthz",
    "GET /readyz",
    "GET /openapi.json",
    "GET /srv/v1/versions",
    "POST /srv/v1/ping",
    "POST /srv/v1/hello",
    "GET /srv/v1/maintenance",
    "POST /srv/v1/maintenance",
    "GET /srv/v1/tasks/{taskName}",
    "POST /adm/v1/ping",
    "POST /adm/v1/hello",
    "POST /adm/v1/orgs",
    "GET /adm/v1/orgs",
    "DELETE /adm/v1/orgs/{orgName}",
    "POST /be/v1/orgs",
    "DELETE /be/v1/orgs/{orgName}",
    "GET /metrics",
    "GET /adm/v1/audit",
    "GET /be/v1/audit",
    "POST /be/v1/login",
    "POST /be/v1/refresh",
    "POST /be/v1/logout",
    "POST /be/v1/users",
    "GET /be/v1/users",
    "PATCH /be/v1/users",
    "GET /be/v1/users/{username}",
    "DELETE /be/v1/users/{username}",
    "POST /be/v1/apikeys",
    "GET /be/v1/apikeys",
    "DELETE /be/v1/apikeys/{apiKeyId}",
    "GET /be/v1/sessions",
    "DELETE /be/v1/sessions/{sessionId}",
    "GET /be/v1/roles",
    "POST /be/v1/roles",
    "PATCH /be/v1/roles",
    "GET /be/v1/roles/{roleName}",
    "DELETE /be/v1/roles/{roleName}",
    "POST /be/v1/deployments",
    "GET /be/v1/deployments",
    "PATCH /be/v1/deployments",
    "GET /be/v1/deployments/{name}",
    "DELETE /be/v1/deployments/{name}",
    "POST /be/v1/apps",
    "GET /be/v1/apps",
    "PATCH /be/v1/apps",
    "GET /be/v1/apps/{appName}",
    "DELETE /be/v1/apps/{appName}",
    "POST /be/v1/subscriptions",
    "GET /be/v1/subscriptions",
    "GET /be/v1/subscriptions/{subscriptionName}",
    "DELETE /be/v1/subscriptions/{subscriptionName}",
    "POST /be/v1/builds",
    // The one-time upload URL POST /be/v1/builds hands out in upload mode (§8).
    "PUT /be/v1/uploads/{uploadToken}",
    "GET /be/v1/tasks",
    "GET /be/v1/tasks/{taskName}",
    "PATCH /be/v1/tasks",
    "POST /be/v1/trigger",
    // Organization transfers (issue 13): the compat paths and the one-time URLs they hand out.
    "POST /be/v1/export",
    "GET /be/v1/exports/{downloadToken}",
    "POST /be/v1/import",
    "PUT /be/v1/imports/{uploadToken}",
    "POST /adm/v1/commit",
    "GET /adm/v1/imports/{importId}",
    "DELETE /adm/v1/imports/{importId}",
    // Go live and roll back (issue 11, [design]).
    "POST /be/v1/commit",
    // The caller's own permissions, for a console after a reload ([design]).
    "GET /be/v1/me",
    "POST /be/v1/traces",
];
