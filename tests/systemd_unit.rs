//! The shipped systemd unit: valid for systemd, hardened, and in step with the server's behaviour.

mod common;

use std::os::unix::net::UnixDatagram;
use std::process::Command;
use std::time::Duration;

const UNIT: &str = include_str!("../systemd/rockit-edge.service");

fn setting(key: &str) -> Vec<&'static str> {
    UNIT.lines().filter_map(|l| l.trim().strip_prefix(key).and_then(|r| r.strip_prefix('='))).collect()
}

#[test]
fn the_unit_is_a_hardened_notify_service() {
    for (key, value) in [
        ("Type", "notify"),
        ("DynamicUser", "yes"),
        ("StateDirectory", "rockit-edge rockit-edge-origins"),
        ("ProtectSystem", "strict"),
        ("NoNewPrivileges", "yes"),
        ("PrivateTmp", "yes"),
        ("Restart", "on-failure"),
        ("ProtectHome", "yes"),
        ("CapabilityBoundingSet", ""),
    ] {
        assert_eq!(setting(key), vec![value], "{key}");
    }
    // Hashing threads set their own scheduling policy; a filter denying @resources would silently
    // leave them competing with requests.
    assert!(setting("SystemCallFilter").iter().all(|f| !f.contains("@resources")), "@resources must stay allowed");
    let stop: u64 = setting("TimeoutStopSec")[0].trim_end_matches('s').parse().unwrap();
    assert!(stop > 30 + 5, "TimeoutStopSec must exceed the 30 s drain plus the 5 s worker grace");
}

#[test]
fn systemd_analyze_finds_nothing_wrong_with_the_unit() {
    let Ok(version) = Command::new("systemd-analyze").arg("--version").output() else {
        eprintln!("systemd-analyze is not installed; only the static checks ran");
        return;
    };
    assert!(version.status.success());
    let dir = tempfile::tempdir().unwrap();
    let unit = dir.path().join("rockit-edge.service");
    std::fs::write(&unit, UNIT.replace("/usr/local/bin/rockit-edge", common::BIN)).unwrap();
    let out = Command::new("systemd-analyze").arg("verify").arg(&unit).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let complaints: Vec<&str> = stderr.lines().filter(|l| l.contains("rockit-edge.service")).collect();
    assert!(out.status.success() && complaints.is_empty(), "{stderr}");
}

#[test]
fn ready_is_sent_to_systemd_once_the_socket_is_bound() {
    let dir = tempfile::tempdir().unwrap();
    let socket_path = dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).unwrap();
    socket.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let server = common::Server::start_with(&[("NOTIFY_SOCKET", socket_path.to_str().unwrap())]);
    let mut buf = [0u8; 128];
    let n = socket.recv(&mut buf).expect("READY=1 within a minute");
    assert_eq!(&buf[..n], b"READY=1");
    // READY means the socket answers.
    common::send("GET", &server.url("/healthz"), &[], None).assert_ok();
}
