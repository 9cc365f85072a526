//! Operator control over admin tokens: rotating the secret, revoking tokens by name, lifetimes.

mod common;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use common::{send, Server};
use serde_json::Value;

fn ping_with(server: &Server, token: &str) -> common::Reply {
    send("POST", &server.url("/srv/v1/ping"), &[("x-rockit-admin-token", token)], None)
}

fn token(server: &Server, args: &[&str]) -> String {
    let out = server.cli(&[&["admin-token"], args].concat());
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

fn claims(token: &str) -> Value {
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(token.split('.').nth(1).unwrap()).unwrap()).unwrap()
}

#[test]
fn a_rotated_admin_secret_applies_to_the_running_server_at_once() {
    let server = Server::start();
    let old = server.admin_token();
    ping_with(&server, &old).assert_ok();
    let before = server.cli(&["admin-secret"]);
    let rotated = server.cli(&["admin-secret", "--rotate"]);
    assert!(rotated.status.success(), "{}", String::from_utf8_lossy(&rotated.stderr));
    assert_ne!(rotated.stdout, before.stdout, "a new secret");
    assert_eq!(rotated.stdout, server.cli(&["admin-secret"]).stdout, "the new secret is the one kept");
    ping_with(&server, &old).assert_error(401, "token-invalid");
    ping_with(&server, &server.admin_token()).assert_ok();
}

#[test]
fn rotation_is_refused_when_the_secret_comes_from_the_settings() {
    let secret = base64::engine::general_purpose::STANDARD.encode(b"configured-admin-secret-of-32-bytes!!");
    let server = Server::start_with(&[("ROCKIT_EDGE_ADMIN_SECRET", &secret)]);
    let out = server.cli(&["admin-secret", "--rotate"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("admin_secret setting"));
}

#[test]
fn revoked_admin_tokens_are_refused_and_tokens_issued_later_work() {
    let server = Server::start();
    let ops = token(&server, &["--name", "ops"]);
    let ci = token(&server, &["--name", "ci"]);
    let out = server.cli(&["admin-token", "--name", "ops", "--revoke"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    ping_with(&server, &ops).assert_error(401, "token-revoked");
    ping_with(&server, &ci).assert_ok();
    ping_with(&server, &token(&server, &["--name", "ops"])).assert_ok();
    // The revocation survives a restart.
    let server = server.restart();
    ping_with(&server, &ops).assert_error(401, "token-revoked");
}

#[test]
fn admin_tokens_expire_by_default_and_never_only_when_asked() {
    let server = Server::start();
    let now = chrono::Utc::now().timestamp();
    let default = claims(&token(&server, &["--name", "ops"]));
    let exp = default["exp"].as_i64().expect("a default lifetime");
    assert!((exp - now - 30 * 86_400).abs() < 120, "30 days by default: {default}");
    let forever = claims(&token(&server, &["--name", "jenkins", "--ttl", "never"]));
    assert!(forever.get("exp").is_none(), "{forever}");

    let short = Server::start_with(&[("ROCKIT_EDGE_ADMIN_TOKEN_TTL", "1h")]);
    let exp = claims(&token(&short, &["--name", "ops"]))["exp"].as_i64().unwrap();
    assert!((exp - now - 3600).abs() < 120, "the admin_token_ttl setting is the default");
}
