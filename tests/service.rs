//! The service endpoints of API.md §4 and maintenance mode, over HTTP against the real server.

mod common;

use std::time::Duration;

use common::{send, Server};
use serde_json::json;

#[test]
fn ping_answers_pong_with_time_and_version() {
    let server = Server::start();
    let body = server.admin("POST", "/srv/v1/ping", None);
    let body = body.assert_ok();
    assert_eq!(body["message"], "pong");
    assert_eq!(body["version"], env!("CARGO_PKG_VERSION"));
    let now = chrono::Utc::now().timestamp();
    assert!((body["time"].as_i64().unwrap() - now).abs() < 60);
}

#[test]
fn ping_echoes_an_optional_message() {
    let server = Server::start();
    let reply = server.admin("POST", "/srv/v1/ping", Some(json!({"message": "are you there"})));
    assert_eq!(reply.assert_ok()["message"], "are you there");
}

#[test]
fn hello_runs_a_task_through_the_queue_and_returns_its_output() {
    let server = Server::start();
    let reply = server.admin("POST", "/srv/v1/hello", Some(json!({"message": "hi", "maintenance": false})));
    let task = &reply.assert_ok()["task"];
    assert_eq!(task["type"], "hello");
    assert_eq!(task["status"], "done");
    assert_eq!(task["attempts"], 1);
    assert_eq!(task["output"]["message"], "hi");
    assert!(task["output"]["worker"].as_str().unwrap().starts_with("task-worker-"));
    // The task is durable: it can be fetched again by name.
    let name = task["name"].as_str().unwrap();
    let fetched = server.admin("GET", &format!("/srv/v1/tasks/{name}"), None);
    assert_eq!(fetched.assert_ok()["task"]["status"], "done");
}

#[test]
fn hello_needs_both_message_and_maintenance() {
    let server = Server::start();
    let reply = server.admin("POST", "/srv/v1/hello", Some(json!({"maintenance": false})));
    reply.assert_error(400, "missing-param");
    assert_eq!(reply.body["param"], "message");
    let reply = server.admin("POST", "/srv/v1/hello", Some(json!({"message": "hi"})));
    reply.assert_error(400, "missing-param");
    assert_eq!(reply.body["param"], "maintenance");
    let reply = server.admin("POST", "/srv/v1/hello", Some(json!({"message": "hi", "maintenance": "no"})));
    reply.assert_error(400, "invalid-param");
    assert_eq!(reply.body["param"], "maintenance");
}

#[test]
fn an_unknown_task_is_not_found() {
    let server = Server::start();
    let reply = server.admin("GET", "/srv/v1/tasks/hello-000000000000", None);
    reply.assert_error(404, "not-found");
    assert_eq!(reply.body["resource"], "task");
}

#[test]
fn versions_report_the_engine_once_a_test_task_has_run() {
    let server = Server::start();
    let before = server.admin("GET", "/srv/v1/versions", None);
    let versions = &before.assert_ok()["versions"];
    assert_eq!(versions["edge"], env!("CARGO_PKG_VERSION"));
    assert_eq!(versions["api"], "2026-04-22");
    assert!(versions["schema"].as_i64().unwrap() >= 1);
    assert!(versions["engine"].is_null());
    server.admin("POST", "/srv/v1/hello", Some(json!({"message": "x", "maintenance": false}))).assert_ok();
    let after = server.admin("GET", "/srv/v1/versions", None);
    assert!(after.assert_ok()["versions"]["engine"].as_str().unwrap().starts_with("rockit-edge-builtin/"));
}

#[test]
fn the_2025_admin_aliases_answer_like_the_srv_endpoints() {
    let server = Server::start();
    assert_eq!(server.admin("POST", "/adm/v1/ping", None).assert_ok()["message"], "pong");
    let reply = server.admin("POST", "/adm/v1/hello", Some(json!({"message": "old", "maintenance": false})));
    assert_eq!(reply.assert_ok()["task"]["output"]["message"], "old");
}

#[test]
fn healthz_and_readyz_need_no_token() {
    let server = Server::start();
    send("GET", &server.url("/healthz"), &[], None).assert_ok();
    send("GET", &server.url("/readyz"), &[], None).assert_ok();
}

#[test]
fn readyz_answers_503_while_the_database_cannot_be_written() {
    let server = Server::start();
    let blocker = rusqlite::Connection::open(server.database()).unwrap();
    blocker.execute_batch("BEGIN EXCLUSIVE; INSERT INTO meta (key, value) VALUES ('test-lock', 'x');").unwrap();
    let reply = send("GET", &server.url("/readyz"), &[], None);
    reply.assert_error(503, "unavailable");
    assert!(reply.retry_after.is_some());
    // healthz does not touch the database and stays green.
    send("GET", &server.url("/healthz"), &[], None).assert_ok();
    blocker.execute_batch("ROLLBACK").unwrap();
    common::eventually(Duration::from_secs(20), || {
        (send("GET", &server.url("/readyz"), &[], None).status == 200).then_some(())
    });
}

#[test]
fn maintenance_mode_gates_adm_and_be_but_not_srv_or_health() {
    let server = Server::start();
    let reply = server.admin(
        "POST",
        "/srv/v1/maintenance",
        Some(json!({"enabled": true, "message": "upgrading", "retryAfter": 120})),
    );
    assert_eq!(reply.assert_ok()["maintenance"]["enabled"], true);

    for path in ["/adm/v1/ping", "/be/v1/login", "/adm/v1/anything"] {
        let reply = server.admin("POST", path, None);
        reply.assert_error(503, "maintenance");
        assert_eq!(reply.retry_after.as_deref(), Some("120"));
        assert_eq!(reply.body["retryAfter"], "120", "the compat body carries retryAfter as a string");
        assert_eq!(reply.body["message"], "upgrading");
    }
    server.admin("POST", "/srv/v1/ping", None).assert_ok();
    send("GET", &server.url("/healthz"), &[], None).assert_ok();
    send("GET", &server.url("/readyz"), &[], None).assert_ok();

    server.admin("POST", "/srv/v1/maintenance", Some(json!({"enabled": false}))).assert_ok();
    server.admin("POST", "/adm/v1/ping", None).assert_ok();
}

#[test]
fn maintenance_mode_survives_a_restart() {
    let server = Server::start();
    server.admin("POST", "/srv/v1/maintenance", Some(json!({"enabled": true}))).assert_ok();
    let server = server.restart();
    let reply = server.admin("POST", "/adm/v1/ping", None);
    reply.assert_error(503, "maintenance");
    assert_eq!(reply.body["retryAfter"], "900");
    assert_eq!(server.admin("GET", "/srv/v1/maintenance", None).assert_ok()["maintenance"]["enabled"], true);
}

#[test]
fn hello_runs_in_maintenance_mode_only_when_asked_to() {
    let server = Server::start();
    server.admin("POST", "/srv/v1/maintenance", Some(json!({"enabled": true}))).assert_ok();
    server
        .admin("POST", "/srv/v1/hello", Some(json!({"message": "m", "maintenance": false})))
        .assert_error(503, "maintenance");
    let reply = server.admin("POST", "/srv/v1/hello", Some(json!({"message": "m", "maintenance": true})));
    assert_eq!(reply.assert_ok()["task"]["status"], "done");
}

#[test]
fn maintenance_settings_are_validated() {
    let server = Server::start();
    let reply = server.admin("POST", "/srv/v1/maintenance", Some(json!({"message": "x"})));
    reply.assert_error(400, "missing-param");
    assert_eq!(reply.body["param"], "enabled");
    let reply = server.admin("POST", "/srv/v1/maintenance", Some(json!({"enabled": true, "retryAfter": 0})));
    reply.assert_error(400, "invalid-param");
    assert_eq!(reply.body["param"], "retryAfter");
}
