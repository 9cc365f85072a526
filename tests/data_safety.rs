//! Data safety of the state directory: what a clean stop leaves on disk, what a start refuses,
//! backups, restores and scheduled copies.

mod common;

use common::{command, Server};

/// Starts `serve` on `state_dir` expecting it to refuse: its exit code and stderr. A server that
/// starts instead is killed after a generous deadline and fails the test.
fn refused_start(state_dir: &std::path::Path) -> (Option<i32>, String) {
    use std::io::Read;
    let mut child = command(state_dir, &[])
        .args(["serve", "--listen", "127.0.0.1:0"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let status = common::wait_with_deadline(&mut child, std::time::Duration::from_secs(30));
    let mut stderr = String::new();
    child.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
    (status.code(), stderr)
}

fn count_orgs(db: &std::path::Path) -> i64 {
    let conn = rusqlite::Connection::open(db).unwrap();
    conn.query_row("SELECT count(*) FROM orgs", [], |r| r.get(0)).unwrap()
}

#[test]
fn after_a_clean_stop_the_database_file_alone_holds_all_data() {
    let mut server = Server::start();
    server.create_org("acme");
    server.create_org("globex");
    assert_eq!(server.stop().and_then(|s| s.code()), Some(0));
    let wal = server.state_dir.join("rockit-edge.db-wal");
    let wal_len = std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0);
    assert_eq!(wal_len, 0, "the write-ahead log was checkpointed into the database");
    // A copy of the one file, without its log, is a complete database.
    let elsewhere = tempfile::tempdir().unwrap();
    let copy = elsewhere.path().join("rockit-edge.db");
    std::fs::copy(server.database(), &copy).unwrap();
    assert_eq!(count_orgs(&copy), 2);
}

#[test]
fn a_state_directory_with_secrets_but_no_database_is_refused() {
    let mut server = Server::start();
    server.create_org("acme");
    server.stop();
    for file in ["rockit-edge.db", "rockit-edge.db-wal", "rockit-edge.db-shm"] {
        let _ = std::fs::remove_file(server.state_dir.join(file));
    }
    let (code, stderr) = refused_start(&server.state_dir);
    assert_eq!(code, Some(1));
    assert!(stderr.contains("no initialised database"), "{stderr}");
    assert!(!server.database().exists(), "no empty database was created beside the secrets");
}

#[test]
fn a_state_directory_with_secrets_and_an_empty_database_file_is_refused() {
    let mut server = Server::start();
    server.stop();
    for file in ["rockit-edge.db-wal", "rockit-edge.db-shm"] {
        let _ = std::fs::remove_file(server.state_dir.join(file));
    }
    std::fs::write(server.database(), b"").unwrap();
    let (code, stderr) = refused_start(&server.state_dir);
    assert_eq!(code, Some(1));
    assert!(stderr.contains("no initialised database"), "{stderr}");
}

fn mode(path: &std::path::Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn a_backup_is_readable_by_its_owner_only() {
    let server = Server::start();
    let out_file = server.home.path().join("copy.db");
    let out = server.cli(&["backup", "--out", out_file.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(mode(&out_file), 0o600, "a backup holds password hashes and sealed secrets");
}

#[test]
fn restore_replaces_the_database_and_keeps_the_replaced_one_aside() {
    let mut server = Server::start();
    server.create_org("acme");
    let out_file = server.home.path().join("before-globex.db");
    assert!(server.cli(&["backup", "--out", out_file.to_str().unwrap()]).status.success());
    server.create_org("globex");
    server.stop();

    let out = server.cli(&["restore", "--from", out_file.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(count_orgs(&server.database()), 1, "the backup's data is back");
    assert_eq!(mode(&server.database()), 0o600);
    let aside: Vec<_> = std::fs::read_dir(server.state_dir.join("backups"))
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with("replaced-"))
        .collect();
    assert_eq!(aside.len(), 1, "the replaced database is kept");
    assert_eq!(count_orgs(&aside[0].path().join("rockit-edge.db")), 2);

    let server = server.restart();
    let orgs = server.admin("GET", "/adm/v1/orgs", None);
    let names: Vec<&str> =
        orgs.assert_ok()["orgs"].as_array().unwrap().iter().map(|o| o["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["acme"]);
}

#[test]
fn restore_is_refused_while_the_server_runs() {
    let server = Server::start();
    let out_file = server.home.path().join("copy.db");
    assert!(server.cli(&["backup", "--out", out_file.to_str().unwrap()]).status.success());
    let out = server.cli(&["restore", "--from", out_file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("stop it first"));
}

#[test]
fn restore_refuses_a_damaged_file_and_a_newer_schema_and_leaves_the_database_alone() {
    let mut server = Server::start();
    server.create_org("acme");
    let newer = server.home.path().join("newer.db");
    assert!(server.cli(&["backup", "--out", newer.to_str().unwrap()]).status.success());
    server.stop();
    let conn = rusqlite::Connection::open(&newer).unwrap();
    conn.pragma_update(None, "user_version", 9999).unwrap();
    drop(conn);
    let garbage = server.home.path().join("garbage.db");
    std::fs::write(&garbage, vec![0x5a; 8192]).unwrap();

    for (file, why) in [(&garbage, "cannot be restored"), (&newer, "newer")] {
        let out = server.cli(&["restore", "--from", file.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(1));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(why), "{stderr}");
    }
    assert_eq!(count_orgs(&server.database()), 1, "the database was not touched");
    assert!(!server.state_dir.join("backups").exists(), "nothing was moved aside");
}

#[test]
fn scheduled_backups_keep_only_the_newest_copies() {
    let mut server = Server::start_with(&[("ROCKIT_EDGE_BACKUP_INTERVAL", "300ms"), ("ROCKIT_EDGE_BACKUP_KEEP", "2")]);
    server.create_org("acme");
    let dir = server.state_dir.join("backups");
    let mut seen = std::collections::BTreeSet::new();
    let copies = |dir: &std::path::Path| -> Vec<std::path::PathBuf> {
        let entries = std::fs::read_dir(dir).map(|d| d.filter_map(Result::ok).map(|e| e.path()).collect());
        entries
            .unwrap_or_else(|_| Vec::new())
            .into_iter()
            .filter(|p| p.extension().is_some_and(|x| x == "db"))
            .collect()
    };
    common::eventually(std::time::Duration::from_secs(60), || {
        let now = copies(&dir);
        seen.extend(now.iter().cloned());
        (seen.len() >= 4 && now.len() == 2).then_some(())
    });
    // Stopped, so no copy is pruned while it is being checked.
    server.kill();
    for copy in copies(&dir) {
        assert_eq!(mode(&copy), 0o600);
        let conn = rusqlite::Connection::open(&copy).unwrap();
        let check: String = conn.query_row("PRAGMA integrity_check", [], |r| r.get(0)).unwrap();
        assert_eq!(check, "ok");
    }
}

/// Reads one HTTP/1.1 answer with a `Content-Length` body; `None` if the connection closed first.
fn read_answer(stream: &mut std::net::TcpStream) -> Option<String> {
    use std::io::Read;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_string();
            let length = head
                .lines()
                .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().to_string()))
                .and_then(|v| v.parse::<usize>().ok())
                .unwrap_or(0);
            if buf.len() >= end + 4 + length {
                return Some(head);
            }
        }
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

#[test]
fn sigterm_answers_requests_that_just_reached_idle_keep_alive_connections() {
    use std::io::Write;
    let mut server = Server::start();
    let addr = server.base.trim_start_matches("http://").to_string();
    let request = b"GET /healthz HTTP/1.1\r\nHost: edge\r\n\r\n";
    let mut connections: Vec<std::net::TcpStream> = (0..40)
        .map(|_| {
            let mut stream = std::net::TcpStream::connect(&addr).unwrap();
            stream.set_read_timeout(Some(std::time::Duration::from_secs(60))).unwrap();
            stream.write_all(request).unwrap();
            let head = read_answer(&mut stream).expect("first answer");
            assert!(head.starts_with("HTTP/1.1 200"), "{head}");
            stream
        })
        .collect();
    // Every connection is idle and kept alive; a request goes out on each, and the stop follows
    // within microseconds, before the server can have read them all.
    for stream in &mut connections {
        stream.write_all(request).unwrap();
    }
    // SAFETY: signals our own child process.
    assert_eq!(unsafe { libc::kill(server.pid(), libc::SIGTERM) }, 0);
    let unanswered = connections
        .iter_mut()
        .map(read_answer)
        .filter(|answer| answer.as_ref().is_none_or(|head| !head.starts_with("HTTP/1.1 200")))
        .count();
    assert_eq!(unanswered, 0, "every request that reached the server got its answer");
    assert_eq!(server.stop().and_then(|s| s.code()), Some(0));
}

#[test]
fn a_scheduled_backup_that_is_overdue_at_start_is_taken_at_once() {
    let mut server = Server::start_with(&[("ROCKIT_EDGE_BACKUP_INTERVAL", "1h")]);
    server.stop();
    // The newest scheduled copy is two hours old: restarts must not keep postponing the next.
    let dir = server.state_dir.join("backups");
    std::fs::create_dir_all(&dir).unwrap();
    let old = std::fs::File::create(dir.join("rockit-edge-20260101T000000.000Z.db")).unwrap();
    old.set_modified(std::time::SystemTime::now() - std::time::Duration::from_secs(7200)).unwrap();
    drop(old);
    let server = server.restart();
    common::eventually(std::time::Duration::from_secs(30), || {
        let copies = std::fs::read_dir(&dir)
            .ok()?
            .filter_map(Result::ok)
            .filter(|e| e.file_name().to_string_lossy().ends_with(".db"))
            .count();
        (copies >= 2).then_some(())
    });
    drop(server);
}
