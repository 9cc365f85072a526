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
        ("StateDirectory", "rockit-edge"),
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

/// The directives systemd knows in each section that this unit may use (systemd.unit(5),
/// systemd.service(5), systemd.exec(5), systemd.kill(5), systemd.resource-control(5)).
const KNOWN: &[(&str, &[&str])] = &[
    ("Unit", &["Description", "Documentation", "After", "Before", "Wants", "Requires"]),
    (
        "Service",
        &[
            "Type",
            "NotifyAccess",
            "ExecStart",
            "ExecReload",
            "Environment",
            "EnvironmentFile",
            "Restart",
            "RestartSec",
            "KillSignal",
            "TimeoutStopSec",
            "DynamicUser",
            "StateDirectory",
            "StateDirectoryMode",
            "ConfigurationDirectory",
            "UMask",
            "ProtectSystem",
            "ProtectHome",
            "PrivateTmp",
            "PrivateDevices",
            "NoNewPrivileges",
            "CapabilityBoundingSet",
            "AmbientCapabilities",
            "RestrictSUIDSGID",
            "LockPersonality",
            "MemoryDenyWriteExecute",
            "RestrictRealtime",
            "RestrictNamespaces",
            "RemoveIPC",
            "ProtectKernelTunables",
            "ProtectKernelModules",
            "ProtectKernelLogs",
            "ProtectControlGroups",
            "ProtectClock",
            "ProtectHostname",
            "ProtectProc",
            "ProcSubset",
            "RestrictAddressFamilies",
            "SystemCallArchitectures",
            "SystemCallFilter",
            "SystemCallErrorNumber",
            "LimitNOFILE",
            "ReadWritePaths",
        ],
    ),
    ("Install", &["WantedBy"]),
];

/// Without systemd-analyze, the same kind of mistakes it reports: an unknown section or
/// directive (a typo systemd would ignore with only a warning), a line that is no `Key=value`,
/// a boolean that is no boolean, a relative ExecStart.
fn static_complaints(unit: &str) -> Vec<String> {
    let mut section = None;
    let mut complaints = Vec::new();
    for line in unit.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')) {
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = KNOWN.iter().find(|(s, _)| *s == name);
            if section.is_none() {
                complaints.push(format!("unknown section [{name}]"));
            }
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            complaints.push(format!("not a Key=value line: {line}"));
            continue;
        };
        match section {
            Some((name, keys)) if !keys.contains(&key) => complaints.push(format!("[{name}] has no directive {key}")),
            None => complaints.push(format!("{key} outside any section")),
            _ => {}
        }
        let boolean = ["DynamicUser", "NoNewPrivileges", "PrivateTmp", "PrivateDevices", "RestrictSUIDSGID"];
        if boolean.contains(&key) && !["yes", "no", "true", "false"].contains(&value) {
            complaints.push(format!("{key}={value} is not a boolean"));
        }
        if key == "ExecStart" && !value.starts_with('/') {
            complaints.push(format!("ExecStart must be an absolute path: {value}"));
        }
    }
    complaints
}

#[test]
fn every_line_of_the_unit_is_a_directive_systemd_knows() {
    let complaints = static_complaints(UNIT);
    assert!(complaints.is_empty(), "{complaints:#?}");
}

#[test]
fn the_static_check_catches_a_misspelt_directive() {
    // The check above must be able to fail: a unit with a typo is caught.
    let typo = UNIT.replace("ProtectHome=yes", "ProtectHomes=yes").replace("PrivateTmp=yes", "PrivateTmp=sure");
    let complaints = static_complaints(&typo);
    assert_eq!(complaints, vec!["[Service] has no directive ProtectHomes", "PrivateTmp=sure is not a boolean"]);
}

#[test]
fn systemd_analyze_finds_nothing_wrong_with_the_unit() {
    let Ok(version) = Command::new("systemd-analyze").arg("--version").output() else {
        // Not installed (containers, CI images): the static check stands in, so this test still
        // checks something rather than passing empty-handed.
        let complaints = static_complaints(UNIT);
        assert!(complaints.is_empty(), "{complaints:#?}");
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
