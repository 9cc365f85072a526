//! The error envelope of API.md §1.2 for the failures every endpoint shares.

mod common;

use common::{send, send_raw, Server};
use serde_json::json;

#[test]
fn an_unknown_route_is_a_json_404() {
    let server = Server::start();
    let reply = send("GET", &server.url("/no/such/route"), &[], None);
    reply.assert_error(404, "not-found");
    assert_eq!(reply.body["resource"], "route");
    assert!(reply.content_type.unwrap().starts_with("application/json"));
}

#[test]
fn a_known_route_with_the_wrong_method_is_a_json_405_with_allow() {
    let server = Server::start();
    let reply = send_raw("DELETE", &server.url("/srv/v1/ping"), &[], None);
    reply.assert_error(405, "method-not-allowed");
    assert_eq!(reply.allow.as_deref(), Some("POST"));
    let reply = send_raw("POST", &server.url("/healthz"), &[], None);
    reply.assert_error(405, "method-not-allowed");
    assert_eq!(reply.allow.as_deref(), Some("GET, HEAD"));
    let reply = send_raw("PUT", &server.url("/be/v1/users"), &[], None);
    assert_eq!(reply.allow.as_deref(), Some("POST, GET, PATCH, HEAD"));
}

#[test]
fn every_get_route_answers_head_without_a_body() {
    let server = Server::start();
    let token = server.admin_token();
    let reply = send_raw("HEAD", &server.url("/healthz"), &[], None);
    assert_eq!((reply.status, reply.body.clone()), (200, serde_json::Value::Null));
    let reply = send_raw("HEAD", &server.url("/srv/v1/versions"), &[("x-rockit-admin-token", token.as_str())], None);
    assert_eq!(reply.status, 200);
    assert!(reply.content_type.unwrap().starts_with("application/json"));
    assert_eq!(send_raw("HEAD", &server.url("/srv/v1/versions"), &[], None).status, 401);
    assert_eq!(send_raw("HEAD", &server.url("/openapi.json"), &[], None).status, 200);
}

#[test]
fn malformed_json_is_invalid_json() {
    let server = Server::start();
    let token = server.admin_token();
    let headers = [("x-rockit-admin-token", token.as_str())];
    for body in [&b"{\"message\": "[..], b"[1,2]", b"\"text\"", b"{'single': 1}"] {
        let reply = send_raw("POST", &server.url("/srv/v1/hello"), &headers, Some(("application/json", body)));
        reply.assert_error(400, "invalid-json");
    }
}

#[test]
fn a_body_that_is_not_json_is_unsupported_media_type() {
    let server = Server::start();
    let token = server.admin_token();
    let headers = [("x-rockit-admin-token", token.as_str())];
    let reply = send_raw("POST", &server.url("/srv/v1/hello"), &headers, Some(("text/plain", b"message=hi")));
    reply.assert_error(415, "unsupported-media-type");
    let reply = send_raw(
        "POST",
        &server.url("/srv/v1/hello"),
        &headers,
        Some(("application/x-www-form-urlencoded", b"message=hi&maintenance=false")),
    );
    reply.assert_error(415, "unsupported-media-type");
}

#[test]
fn a_body_over_the_limit_is_payload_too_large() {
    let server = Server::start_with(&[("ROCKIT_EDGE_JSON_LIMIT", "2048")]);
    let token = server.admin_token();
    let big = json!({"message": "x".repeat(4096), "maintenance": false}).to_string();
    let reply = send_raw(
        "POST",
        &server.url("/srv/v1/hello"),
        &[("x-rockit-admin-token", token.as_str())],
        Some(("application/json", big.as_bytes())),
    );
    reply.assert_error(413, "payload-too-large");
}

#[test]
fn a_json_body_with_a_charset_is_accepted() {
    let server = Server::start();
    let token = server.admin_token();
    let reply = send_raw(
        "POST",
        &server.url("/srv/v1/ping"),
        &[("x-rockit-admin-token", token.as_str())],
        Some(("application/json; charset=utf-8", br#"{"message":"utf8"}"#)),
    );
    assert_eq!(reply.assert_ok()["message"], "utf8");
}

#[test]
fn a_wrong_type_names_the_parameter() {
    let server = Server::start();
    let reply = server.admin("POST", "/srv/v1/ping", Some(json!({"message": 42})));
    reply.assert_error(400, "invalid-param");
    assert_eq!(reply.body["param"], "message");
}

#[test]
fn a_malformed_request_is_a_400_logged_as_a_warning_not_an_error() {
    use std::io::{Read, Write};
    let server = Server::start();
    let addr = server.base.trim_start_matches("http://").to_string();
    let mut stream = std::net::TcpStream::connect(&addr).unwrap();
    stream.set_read_timeout(Some(std::time::Duration::from_secs(30))).unwrap();
    stream.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n").unwrap();
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    let line = common::eventually(std::time::Duration::from_secs(30), || {
        server.log().lines().find(|l| l.contains("request parse error")).map(str::to_string)
    });
    assert!(line.contains("WARN"), "{line}");
}
