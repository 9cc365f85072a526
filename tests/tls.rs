//! Built-in TLS: HTTPS with HSTS, and a certificate swapped on SIGHUP without dropping the
//! connections that are open. Certificates are made with the `openssl` command-line tool.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};

/// A self-signed certificate for 127.0.0.1 written to `cert` and `key` (PEM).
fn make_certificate(cert: &Path, key: &Path) {
    let status = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1"])
        .args(["-subj", "/CN=rockit-edge test", "-addext", "subjectAltName=IP:127.0.0.1"])
        // A server certificate, not a CA: webpki refuses a CA certificate as the end entity.
        .args(["-addext", "basicConstraints=critical,CA:FALSE", "-addext", "extendedKeyUsage=serverAuth"])
        .arg("-keyout")
        .arg(key)
        .arg("-out")
        .arg(cert)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("the openssl command-line tool");
    assert!(status.success());
}

/// A server process killed when the test ends, passed or failed.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `serve` with TLS on a temporary state directory; answers the process and its address.
fn start_tls(home: &Path, cert: &Path, key: &Path) -> (Running, String) {
    start_tls_with(home, cert, key, &[])
}

/// [`start_tls`] with more settings.
fn start_tls_with(home: &Path, cert: &Path, key: &Path, settings: &[(&str, &str)]) -> (Running, String) {
    let mut env = vec![
        ("ROCKIT_EDGE_TLS_CERT".to_string(), cert.to_string_lossy().into_owned()),
        ("ROCKIT_EDGE_TLS_KEY".to_string(), key.to_string_lossy().into_owned()),
    ];
    env.extend(settings.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    let mut child = common::command(&home.join("state"), &env)
        .args(["serve", "--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut first).unwrap();
    let base = first.split_whitespace().find(|w| w.starts_with("https://")).unwrap_or_else(|| panic!("{first:?}"));
    (Running(child), base.trim_start_matches("https://").to_string())
}

/// A TLS connection to `addr` that trusts only `cert`; `None` if the handshake fails.
fn connect(addr: &str, cert: &Path) -> Option<rustls::StreamOwned<rustls::ClientConnection, TcpStream>> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(CertificateDer::from_pem_file(cert).unwrap()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = ServerName::try_from("127.0.0.1").unwrap();
    let connection = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
    let socket = TcpStream::connect(addr).unwrap();
    socket.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut stream = rustls::StreamOwned::new(connection, socket);
    while stream.conn.is_handshaking() {
        if let Err(e) = stream.conn.complete_io(&mut stream.sock) {
            eprintln!("handshake failed: {e}");
            return None;
        }
    }
    Some(stream)
}

/// Sends `GET /healthz` and answers the head of the response (status line and headers).
fn healthz(stream: &mut impl ReadWrite) -> String {
    stream.write_all(b"GET /healthz HTTP/1.1\r\nHost: edge\r\n\r\n").unwrap();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_lowercase();
            let length: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            if buf.len() >= end + 4 + length {
                return head;
            }
        }
        let n = stream.read(&mut chunk).unwrap();
        assert!(n > 0, "connection closed");
        buf.extend_from_slice(&chunk[..n]);
    }
}

trait ReadWrite: Read + Write {}
impl<T: Read + Write> ReadWrite for T {}

#[test]
fn tls_serves_https_with_hsts_and_swaps_the_certificate_on_sighup_without_dropping_connections() {
    let home = tempfile::tempdir().unwrap();
    let (cert, key) = (home.path().join("cert.pem"), home.path().join("key.pem"));
    make_certificate(&cert, &key);
    let (server, addr) = start_tls(home.path(), &cert, &key);

    let mut open = connect(&addr, &cert).expect("handshake with the first certificate");
    let head = healthz(&mut open);
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert!(head.contains("strict-transport-security: max-age="), "HSTS with TLS: {head}");

    let (new_cert, new_key) = (home.path().join("new-cert.pem"), home.path().join("new-key.pem"));
    make_certificate(&new_cert, &new_key);
    std::fs::copy(&new_key, &key).unwrap();
    std::fs::copy(&new_cert, &cert).unwrap();
    // SAFETY: signals our own child process.
    assert_eq!(unsafe { libc::kill(server.0.id() as i32, libc::SIGHUP) }, 0);
    let mut fresh = common::eventually(Duration::from_secs(30), || connect(&addr, &new_cert));
    assert!(healthz(&mut fresh).starts_with("http/1.1 200"));
    // The connection made before the swap still works.
    assert!(healthz(&mut open).starts_with("http/1.1 200"));
}

#[test]
fn plain_http_sends_no_hsts_and_a_certificate_without_its_key_is_refused() {
    let server = common::Server::start();
    let mut plain = TcpStream::connect(server.base.trim_start_matches("http://")).unwrap();
    plain.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let head = healthz(&mut plain);
    assert!(head.starts_with("http/1.1 200") && !head.contains("strict-transport-security"), "{head}");
    // `systemctl reload` sends SIGHUP: without TLS there is nothing to reload, and no reason to stop.
    // SAFETY: signals our own child process.
    assert_eq!(unsafe { libc::kill(server.pid(), libc::SIGHUP) }, 0);
    assert!(healthz(&mut plain).starts_with("http/1.1 200"), "still serving after SIGHUP");

    let home = tempfile::tempdir().unwrap();
    let cert = home.path().join("cert.pem");
    make_certificate(&cert, &home.path().join("key.pem"));
    let env = vec![("ROCKIT_EDGE_TLS_CERT".to_string(), cert.to_string_lossy().into_owned())];
    let out = common::command(&home.path().join("state"), &env).args(["serve"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("tls_key"));
}

#[test]
fn over_tls_a_malformed_request_after_a_good_one_gets_the_json_envelope_with_hsts() {
    let home = tempfile::tempdir().unwrap();
    let (cert, key) = (home.path().join("cert.pem"), home.path().join("key.pem"));
    make_certificate(&cert, &key);
    let (_server, addr) = start_tls(home.path(), &cert, &key);
    let mut stream = connect(&addr, &cert).expect("handshake");
    // Pipelined, so the guard behind TLS must keep the good request's answer first.
    stream
        .write_all(
            b"GET /healthz HTTP/1.1\r\nHost: edge\r\n\r\nGET /healthz HTTP/1.1\r\nHost: edge\r\nBad Header\r\n\r\n",
        )
        .unwrap();
    let mut bytes = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        match stream.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => bytes.extend_from_slice(&chunk[..n]),
            // A peer that closes without close_notify: the answers before it still count.
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
            Err(e) => panic!("{e}"),
        }
    }
    let answers = common::raw_answers(&bytes);
    assert_eq!(answers.iter().map(|a| a.status).collect::<Vec<_>>(), vec![200, 400], "{answers:?}");
    let refusal = &answers[1];
    assert_eq!(refusal.json()["error"], "malformed-request");
    assert_eq!(refusal.json()["status"], "failed");
    assert_eq!(refusal.header("content-type"), Some("application/json"));
    assert!(refusal.header("strict-transport-security").is_some_and(|v| v.starts_with("max-age=")), "{refusal:?}");
}

#[test]
fn over_tls_connections_beyond_the_per_address_cap_are_refused_too() {
    let home = tempfile::tempdir().unwrap();
    let (cert, key) = (home.path().join("cert.pem"), home.path().join("key.pem"));
    make_certificate(&cert, &key);
    let (_server, addr) = start_tls_with(home.path(), &cert, &key, &[("ROCKIT_EDGE_MAX_CONNECTIONS_PER_PEER", "2")]);
    let mut held: Vec<_> = (0..2).map(|_| connect(&addr, &cert).expect("handshake")).collect();
    for stream in &mut held {
        assert!(healthz(stream).starts_with("http/1.1 200"));
    }
    let mut third = connect(&addr, &cert).expect("handshake");
    let refused = healthz(&mut third);
    assert!(refused.starts_with("http/1.1 503"), "a third connection is one too many: {refused}");
    assert!(refused.contains("strict-transport-security"), "{refused}");
    // Once one is closed, its place can be taken again.
    drop(held.pop());
    drop(third);
    common::eventually(Duration::from_secs(30), || {
        let mut again = connect(&addr, &cert)?;
        Some(healthz(&mut again)).filter(|head| head.starts_with("http/1.1 200")).map(|_| ())
    });
}
