//! Request bodies are typed: each attack of issue 10 is refused at the boundary with a 400 that
//! names the parameter, and PATCH tells an absent field from `null`.

mod common;

use common::{assert_param, send_raw, Server, Session};
use serde_json::{json, Value};

fn raw(session: &Session, method: &str, path: &str, body: &str) -> common::Reply {
    let auth = format!("Bearer {}", session.access);
    send_raw(
        method,
        &format!("{}{}", session.base, path),
        &[("Authorization", auth.as_str())],
        Some(("application/json", body.as_bytes())),
    )
}

#[test]
fn a_duplicate_key_is_refused_instead_of_the_last_one_winning() {
    let server = Server::start();
    let admin = server.org_admin("acme");
    let reply = raw(&admin, "POST", "/be/v1/apps", r#"{"name":"a1","name":"b1","label":"x"}"#);
    reply.assert_error(400, "invalid-json");
    let nested = r#"{"name":"r1","permissions":{"apps":2,"apps":15}}"#;
    raw(&admin, "POST", "/be/v1/roles", nested).assert_error(400, "invalid-json");
    assert_eq!(admin.call("GET", "/be/v1/apps", None).assert_ok()["total"], 0, "no app was created");
}

#[test]
fn a_number_sent_as_a_string_is_a_wrong_type() {
    let server = Server::start();
    let admin = server.org_admin("acme");
    let reply = admin.call("POST", "/be/v1/apps", Some(json!({"name": "game", "label": "G", "maxBuilds": "5"})));
    assert_param(&reply, 400, "invalid-param", "maxBuilds");
    let reply = admin.call("POST", "/be/v1/apps", Some(json!({"name": "game", "label": "G", "maxBuilds": 5.5})));
    assert_param(&reply, 400, "invalid-param", "maxBuilds");
    let reply = server.admin("POST", "/srv/v1/maintenance", Some(json!({"enabled": "true"})));
    assert_param(&reply, 400, "invalid-param", "enabled");
}

#[test]
fn an_unknown_field_is_refused_by_name() {
    let server = Server::start();
    let admin = server.org_admin("acme");
    let reply = admin.call("POST", "/be/v1/apps", Some(json!({"name": "game", "label": "G", "maxbuilds": 3})));
    assert_param(&reply, 400, "invalid-param", "maxbuilds");
    let dir = tempfile::tempdir().unwrap();
    let origin = json!({"type": "fs", "path": dir.path().join("cdn"), "bucket": "b"});
    let reply = admin.call("POST", "/be/v1/deployments", Some(json!({"name": "cdn", "origin": origin})));
    assert_param(&reply, 400, "invalid-param", "origin.bucket");
}

#[test]
fn every_text_field_has_a_maximum_length() {
    let server = Server::start();
    let admin = server.org_admin("acme");
    let long = |n: usize| "x".repeat(n);
    let cases = [
        ("/be/v1/apps", json!({"name": "game", "label": long(201)}), "label"),
        ("/be/v1/roles", json!({"name": "r1", "label": long(201), "permissions": {}}), "label"),
        (
            "/be/v1/users",
            json!({"username": "bob", "email": "b@x.io", "firstname": long(101), "surname": "B"}),
            "firstname",
        ),
        (
            "/be/v1/users",
            json!({"username": "bob", "email": format!("{}@x.io", long(250)), "firstname": "B", "surname": "B"}),
            "email",
        ),
        (
            "/be/v1/subscriptions",
            json!({"name": "ci", "type": "webhook", "url": format!("https://x.io/{}", long(2048))}),
            "url",
        ),
    ];
    for (path, body, param) in cases {
        assert_param(&admin.call("POST", path, Some(body)), 400, "invalid-param", param);
    }
    let reply = server.admin("POST", "/srv/v1/ping", Some(json!({"message": long(1001)})));
    assert_param(&reply, 400, "invalid-param", "message");
    // At the limit is fine.
    admin.call("POST", "/be/v1/apps", Some(json!({"name": "game", "label": long(200)}))).assert_ok();
}

#[test]
fn null_clears_a_profile_field_while_an_absent_one_stays() {
    let server = Server::start();
    let admin = server.org_admin("acme");
    let body = json!({"username": "bob", "email": "b@x.io", "firstname": "Bob", "surname": "B", "title": "Dr"});
    admin.call("POST", "/be/v1/users", Some(body)).assert_ok();
    let reply = admin.call("PATCH", "/be/v1/users", Some(json!({"username": "bob", "title": null})));
    let user = &reply.assert_ok()["user"];
    assert_eq!(user["title"], Value::Null, "{user}");
    assert_eq!(user["firstname"], "Bob", "an absent field stays");
}

#[test]
fn null_removes_a_deployments_download_auth_and_cannot_remove_its_origin() {
    let server = Server::start();
    let admin = server.org_admin("acme");
    let dir = tempfile::tempdir().unwrap();
    let origin = json!({"type": "fs", "path": dir.path().join("cdn")});
    let body = json!({"name": "cdn", "origin": origin, "downloadAuth": {"type": "gcore", "key": "k1"}});
    admin.call("POST", "/be/v1/deployments", Some(body)).assert_ok();
    let reply = admin.call("PATCH", "/be/v1/deployments", Some(json!({"name": "cdn", "origin": null})));
    assert_param(&reply, 400, "invalid-param", "origin");
    let reply = admin.call("PATCH", "/be/v1/deployments", Some(json!({"name": "cdn", "label": "Edge"})));
    assert_eq!(reply.assert_ok()["deployment"]["downloadAuth"]["type"], "gcore", "absent: kept");
    let reply = admin.call("PATCH", "/be/v1/deployments", Some(json!({"name": "cdn", "downloadAuth": null})));
    assert_eq!(reply.assert_ok()["deployment"]["downloadAuth"], Value::Null, "null: removed");
}

#[test]
fn null_for_a_required_field_is_a_missing_parameter() {
    let server = Server::start();
    let admin = server.org_admin("acme");
    let reply = admin.call("POST", "/be/v1/apps", Some(json!({"name": "game", "label": null})));
    assert_param(&reply, 400, "missing-param", "label");
}
