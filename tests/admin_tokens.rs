//! Admin tokens (API.md §2.1): every way a token can be wrong, and tokens made by other tools.

mod common;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use common::{send, Server};
use ring::hmac;
use serde_json::{json, Value};

/// Builds an HS256-style token by hand, independent of the server's own code.
fn hand_made(header: &Value, claims: &Value, secret: &[u8]) -> String {
    let input =
        format!("{}.{}", URL_SAFE_NO_PAD.encode(header.to_string()), URL_SAFE_NO_PAD.encode(claims.to_string()));
    let tag = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, secret), input.as_bytes());
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(tag.as_ref()))
}

fn admin_secret(server: &Server) -> Vec<u8> {
    let out = server.cli(&["admin-secret"]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    base64::engine::general_purpose::STANDARD.decode(text.trim()).expect("admin-secret prints standard base64")
}

fn ping_with(server: &Server, token: &str) -> common::Reply {
    send("POST", &server.url("/srv/v1/ping"), &[("x-rockit-admin-token", token)], None)
}

#[test]
fn a_request_without_a_token_is_token_missing() {
    let server = Server::start();
    send("POST", &server.url("/srv/v1/ping"), &[], None).assert_error(401, "token-missing");
    ping_with(&server, "  ").assert_error(401, "token-missing");
}

#[test]
fn a_token_made_by_any_hs256_tool_from_the_base64_secret_is_accepted() {
    let server = Server::start();
    let secret = admin_secret(&server);
    let token = hand_made(&json!({"alg": "HS256", "typ": "JWT"}), &json!({"username": "jenkins"}), &secret);
    ping_with(&server, &token).assert_ok();
}

#[test]
fn bad_tokens_are_token_invalid() {
    let server = Server::start();
    let secret = admin_secret(&server);
    let claims = json!({"username": "mallory"});
    let cases = vec![
        ("garbage", "not-a-token".to_string()),
        ("two segments", "abc.def".to_string()),
        (
            "alg none",
            format!("{}.{}.", URL_SAFE_NO_PAD.encode(r#"{"alg":"none"}"#), URL_SAFE_NO_PAD.encode(claims.to_string())),
        ),
        ("HS512 header", hand_made(&json!({"alg": "HS512"}), &claims, &secret)),
        ("RS256 header", hand_made(&json!({"alg": "RS256"}), &claims, &secret)),
        ("wrong key", hand_made(&json!({"alg": "HS256"}), &claims, b"not-the-admin-secret-not-the-admin")),
        ("foreign kid", hand_made(&json!({"alg": "HS256", "kid": "adm-000000000000"}), &claims, &secret)),
        ("no username", hand_made(&json!({"alg": "HS256"}), &json!({"sub": "x"}), &secret)),
        (
            "not yet valid",
            hand_made(
                &json!({"alg": "HS256"}),
                &json!({"username": "a", "nbf": chrono::Utc::now().timestamp() + 3600}),
                &secret,
            ),
        ),
    ];
    for (what, token) in cases {
        let reply = ping_with(&server, &token);
        assert_eq!((reply.status, reply.error()), (401, "token-invalid"), "{what}: {:?}", reply.body);
    }
}

#[test]
fn a_tampered_token_is_token_invalid() {
    let server = Server::start();
    let token = server.admin_token();
    let parts: Vec<&str> = token.split('.').collect();
    let forged = format!("{}.{}.{}", parts[0], URL_SAFE_NO_PAD.encode(r#"{"username":"root"}"#), parts[2]);
    ping_with(&server, &forged).assert_error(401, "token-invalid");
}

#[test]
fn an_expired_token_is_token_expired_beyond_the_leeway() {
    let server = Server::start();
    let secret = admin_secret(&server);
    let now = chrono::Utc::now().timestamp();
    let old = hand_made(&json!({"alg": "HS256"}), &json!({"username": "a", "exp": now - 120}), &secret);
    ping_with(&server, &old).assert_error(401, "token-expired");
    let within_leeway = hand_made(&json!({"alg": "HS256"}), &json!({"username": "a", "exp": now - 10}), &secret);
    ping_with(&server, &within_leeway).assert_ok();
}

#[test]
fn the_cli_token_with_a_ttl_carries_an_expiry() {
    let server = Server::start();
    let out = server.cli(&["admin-token", "--name", "ci", "--ttl", "15m"]);
    assert!(out.status.success());
    let token = String::from_utf8(out.stdout).unwrap();
    let payload = token.trim().split('.').nth(1).unwrap();
    let claims: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
    let exp = claims["exp"].as_i64().expect("exp claim");
    assert!((exp - chrono::Utc::now().timestamp() - 900).abs() < 60);
    ping_with(&server, token.trim()).assert_ok();
    let bad = server.cli(&["admin-token", "--name", "ci", "--ttl", "soon"]);
    assert_eq!(bad.status.code(), Some(2), "a malformed --ttl is bad usage");
}

#[test]
fn secrets_survive_a_restart_so_issued_tokens_keep_working() {
    let server = Server::start();
    let token = server.admin_token();
    let server = server.restart();
    ping_with(&server, &token).assert_ok();
}

#[test]
fn a_configured_admin_secret_replaces_the_generated_one() {
    let secret = b"configured-admin-secret-of-32-bytes!!";
    let encoded = base64::engine::general_purpose::STANDARD.encode(secret);
    let server = Server::start_with(&[("ROCKIT_EDGE_ADMIN_SECRET", &encoded)]);
    let token = hand_made(&json!({"alg": "HS256"}), &json!({"username": "ops"}), secret);
    ping_with(&server, &token).assert_ok();
    assert_eq!(admin_secret(&server), secret.to_vec());
}
