//! Faults and abuse over the network: slow clients, floods of connections, mixed credentials.
//! Everything runs on loopback; a second loopback address (127.0.0.2) plays the attacker so the
//! per-address cap can be told apart from the honest client on 127.0.0.1.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use common::{send, Server};

/// A connection to `server` whose source address is `from`.
fn connect_from(from: [u8; 4], server: SocketAddr) -> TcpStream {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket.bind(&SocketAddr::from((from, 0)).into()).unwrap();
    socket.connect(&server.into()).unwrap();
    let stream: TcpStream = socket.into();
    stream.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    stream
}

/// The status line of the server's answer, or `None` if it closed without one (or never answered).
fn status_line(stream: &mut TcpStream) -> Option<String> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 1024];
    while !buf.windows(2).any(|w| w == b"\r\n") {
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    let text = String::from_utf8_lossy(&buf).to_string();
    text.lines().next().map(str::to_string)
}

#[test]
fn a_slow_body_flood_is_cut_off_while_health_and_lists_keep_answering() {
    let server = Server::start_with(&[
        ("ROCKIT_EDGE_BODY_TIMEOUT", "2s"),
        ("ROCKIT_EDGE_REQUEST_HEAD_TIMEOUT", "2s"),
        ("ROCKIT_EDGE_MAX_CONNECTIONS_PER_PEER", "20"),
    ]);
    let session = server.org_admin("acme");
    let addr: SocketAddr = server.base.trim_start_matches("http://").parse().unwrap();

    // 60 logins that announce a 1000-byte body and send one byte of it.
    let started = Instant::now();
    let mut flood: Vec<TcpStream> = (0..60)
        .map(|_| {
            let mut stream = connect_from([127, 0, 0, 2], addr);
            let head = "POST /be/v1/login HTTP/1.1\r\nHost: edge\r\nContent-Type: application/json\r\n\
                        Content-Length: 1000\r\n\r\n{";
            stream.write_all(head.as_bytes()).unwrap();
            stream
        })
        .collect();

    // Meanwhile the honest client on 127.0.0.1 is served.
    for _ in 0..5 {
        assert_eq!(send("GET", &server.url("/healthz"), &[], None).status, 200);
        session.call("GET", "/be/v1/apps", None).assert_ok();
    }

    // Every flood connection gets an answer: beyond the cap at once (503), the others once their
    // body deadline passes (400) — none is left hanging.
    let answers: Vec<Option<String>> = flood.iter_mut().map(status_line).collect();
    let refused = answers.iter().filter(|a| a.as_deref().is_some_and(|l| l.contains(" 503 "))).count();
    let cut_off = answers.iter().filter(|a| a.as_deref().is_some_and(|l| l.contains(" 400 "))).count();
    assert_eq!(refused + cut_off, 60, "every slow connection was answered: {answers:?}");
    assert!(refused >= 30, "connections beyond the per-address cap are refused ({refused} were)");
    assert!(started.elapsed() < Duration::from_secs(40), "the flood was cut off in bounded time");
    assert_eq!(send("GET", &server.url("/healthz"), &[], None).status, 200);
}

#[test]
fn connections_beyond_the_per_address_cap_are_refused_and_freed_places_are_reused() {
    let server = Server::start_with(&[("ROCKIT_EDGE_MAX_CONNECTIONS_PER_PEER", "3")]);
    let addr: SocketAddr = server.base.trim_start_matches("http://").parse().unwrap();
    let request = b"GET /healthz HTTP/1.1\r\nHost: edge\r\n\r\n";
    let mut held: Vec<TcpStream> = (0..3).map(|_| connect_from([127, 0, 0, 3], addr)).collect();
    for stream in &mut held {
        stream.write_all(request).unwrap();
        assert!(status_line(stream).unwrap().contains(" 200 "));
    }
    let mut fourth = connect_from([127, 0, 0, 3], addr);
    fourth.write_all(request).unwrap();
    assert!(status_line(&mut fourth).unwrap().contains(" 503 "), "a fourth connection is one too many");
    // Another address is not affected.
    assert_eq!(send("GET", &server.url("/healthz"), &[], None).status, 200);
    // Once one connection is closed, its place can be taken again.
    drop(held.pop());
    drop(fourth);
    common::eventually(Duration::from_secs(30), || {
        let mut again = connect_from([127, 0, 0, 3], addr);
        again.write_all(request).ok()?;
        status_line(&mut again).filter(|l| l.contains(" 200 ")).map(|_| ())
    });
}

/// The shortcut login for `acme` as a trusted proxy on 127.0.0.1 reports it for `client`.
fn login_from(server: &Server, client: &str, username: &str, password: &str) -> common::Reply {
    let body = serde_json::json!({"username": username, "password": password, "orgName": "acme"});
    send("POST", &server.url("/be/v1/login"), &[("X-Forwarded-For", client)], Some(body))
}

#[test]
fn guessing_an_accounts_password_does_not_lock_its_owner_out() {
    let server =
        Server::start_with(&[("ROCKIT_EDGE_LOGIN_MAX_FAILURES", "3"), ("ROCKIT_EDGE_TRUSTED_PROXIES", "127.0.0.1")]);
    let password = server.create_org("acme");
    for _ in 0..3 {
        login_from(&server, "10.6.6.6", "admin", "not-the-password").assert_error(401, "invalid-credentials");
    }
    // The guessing address is refused, for this account and for any other.
    login_from(&server, "10.6.6.6", "admin", "not-the-password").assert_error(429, "rate-limited");
    login_from(&server, "10.6.6.6", "someone", "not-the-password").assert_error(429, "rate-limited");
    // The owner, elsewhere, is only slowed down: a typo is answered as one, the password works.
    login_from(&server, "10.1.1.1", "admin", "a-typo-in-the-password").assert_error(401, "invalid-credentials");
    login_from(&server, "10.1.1.1", "admin", &password).assert_ok();
}
