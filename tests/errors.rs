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

/// Requests no client library would send, each on its own connection: what they must get back.
fn protocol_errors() -> Vec<(&'static str, Vec<u8>, u16, &'static str)> {
    let huge_header = format!("GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n", "a".repeat(140 * 1024));
    let many_headers = format!(
        "GET /healthz HTTP/1.1\r\nHost: x\r\n{}\r\n",
        (0..100).map(|i| format!("X-{i}: v\r\n")).collect::<String>()
    );
    vec![
        ("a malformed request line", b"GARBAGE\r\n\r\n".to_vec(), 400, "malformed-request"),
        ("an invalid method", b"G@T /healthz HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(), 400, "malformed-request"),
        ("an unknown version", b"GET /healthz HTTP/3.0\r\nHost: x\r\n\r\n".to_vec(), 400, "malformed-request"),
        (
            "a header without colon",
            b"GET /healthz HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n".to_vec(),
            400,
            "malformed-request",
        ),
        ("a header over 128 KiB", huge_header.into_bytes(), 431, "request-head-too-large"),
        ("over 96 headers", many_headers.into_bytes(), 431, "request-head-too-large"),
    ]
}

#[test]
fn protocol_errors_are_answered_with_the_json_envelope_and_logged_as_warnings_not_errors() {
    let server = Server::start();
    let addr = server.base.trim_start_matches("http://").to_string();
    let cases = protocol_errors();
    for (case, request, status, code) in &cases {
        let answers = common::raw_answers(&common::raw_exchange(&addr, request.clone()));
        assert_eq!(answers.len(), 1, "{case}: {answers:?}");
        let answer = &answers[0];
        assert_eq!((answer.status, answer.json()["error"].as_str()), (*status, Some(*code)), "{case}: {answer:?}");
        assert_eq!(answer.json()["status"], "failed", "{case}");
        assert!(answer.json()["message"].as_str().is_some_and(|m| !m.is_empty()), "{case}");
        assert_eq!(answer.header("content-type"), Some("application/json"), "{case}");
        assert_eq!(answer.header("connection"), Some("close"), "{case}");
    }
    let refusals = common::eventually(std::time::Duration::from_secs(30), || {
        let log = server.log();
        let lines: Vec<String> = log
            .lines()
            .filter(|l| l.contains("refused a malformed request from 127.0.0.1"))
            .map(str::to_string)
            .collect();
        (lines.len() == cases.len()).then_some(lines)
    });
    assert!(refusals.iter().all(|l| l.contains("WARN")), "{refusals:?}");
    let log = server.log();
    assert!(!log.lines().any(|l| l.contains("ERROR")), "a client's malformed request is no server error:\n{log}");
}

#[test]
fn requests_before_a_malformed_one_on_the_same_connection_are_answered_first_in_order() {
    use std::io::{Read, Write};
    let server = Server::start();
    let addr = server.base.trim_start_matches("http://").to_string();
    // Pipelined: two good requests and a bad one in one write.
    let good = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
    let bad = b"GET /healthz HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n";
    let answers = common::raw_answers(&common::raw_exchange(&addr, [&good[..], good, bad].concat()));
    let statuses: Vec<u16> = answers.iter().map(|a| a.status).collect();
    assert_eq!(statuses, vec![200, 200, 400], "{answers:?}");
    assert_eq!(answers[2].json()["error"], "malformed-request");

    // Kept alive: a good request answered, then a bad one on the same connection.
    let mut stream = std::net::TcpStream::connect(&addr).unwrap();
    stream.set_read_timeout(Some(std::time::Duration::from_secs(30))).unwrap();
    stream.write_all(good).unwrap();
    let mut first = Vec::new();
    let mut chunk = [0u8; 4096];
    while common::raw_answers(&first).first().is_none_or(|a| a.body.is_empty()) {
        let n = stream.read(&mut chunk).unwrap();
        assert!(n > 0, "closed before the first answer");
        first.extend_from_slice(&chunk[..n]);
    }
    assert_eq!(common::raw_answers(&first)[0].status, 200);
    stream.write_all(bad).unwrap();
    let mut rest = Vec::new();
    stream.read_to_end(&mut rest).unwrap();
    let answers = common::raw_answers(&rest);
    assert_eq!(answers.len(), 1, "{answers:?}");
    assert_eq!((answers[0].status, answers[0].json()["error"].clone()), (400, json!("malformed-request")));
}
