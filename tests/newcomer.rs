//! What a newcomer runs into in the first minutes: the banner, a busy port, host names, usage
//! errors, and the README.

mod common;

use std::io::{BufRead, BufReader};
use std::process::Stdio;

use common::{command, Server};

#[test]
fn the_first_steps_name_the_binary_that_is_running() {
    let server = Server::start();
    let stdout = server.stdout.join("\n");
    let binary = std::fs::canonicalize(common::BIN).unwrap();
    let step = format!("{} admin-token", binary.display());
    assert!(stdout.contains(&step), "the banner says how to run this very binary: {stdout}");
}

#[test]
fn a_start_that_cannot_listen_leaves_no_state_directory_behind() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let home = tempfile::tempdir().unwrap();
    let state_dir = home.path().join("state");
    let out = command(&state_dir, &[]).args(["serve", "--listen", &addr]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot listen"));
    assert!(!state_dir.exists(), "the port is bound before the state directory is created");
}

#[test]
fn listen_accepts_a_host_name() {
    let home = tempfile::tempdir().unwrap();
    let mut child = command(&home.path().join("state"), &[])
        .args(["serve", "--listen", "localhost:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut first).unwrap();
    let _ = child.kill();
    let _ = child.wait();
    assert!(first.contains("listening on http://"), "{first:?}");
}

#[test]
fn admin_token_with_a_malformed_ttl_is_bad_usage() {
    let server = Server::start();
    // A bare number: units are never guessed.
    let out = server.cli(&["admin-token", "--name", "ops", "--ttl", "30"]);
    assert_eq!(out.status.code(), Some(2), "as the README promises for malformed input");
    assert!(String::from_utf8_lossy(&out.stderr).contains("--ttl"));
}

#[test]
fn a_backup_into_a_missing_directory_says_so_without_naming_a_temporary_file() {
    let server = Server::start();
    let out_file = server.home.path().join("missing").join("copy.db");
    let out = server.cli(&["backup", "--out", out_file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("does not exist"), "{stderr}");
    assert!(!stderr.contains("partial"), "{stderr}");
}

#[test]
fn the_readme_points_only_at_what_a_clone_contains() {
    let readme = include_str!("../README.md");
    assert!(!readme.contains("../"), "README.md links outside the repository");
}
