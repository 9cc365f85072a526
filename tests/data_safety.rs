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
