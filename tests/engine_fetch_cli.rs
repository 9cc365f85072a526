//! `rockit-edge fetch`, the reference client's command line, against a depot directory and
//! against an HTTP server in front of it (with and without Range support).

mod engine_support;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;

use engine_support::*;
use rockit_edge::engine::{layout, ChunkStore, Engine, EngineOptions, Hooks};

const BIN: &str = env!("CARGO_BIN_EXE_rockit-edge");

/// Imports builds 1 and 2 of the test game and publishes both images and the patch 1 → 2.
fn published_depot(dir: &Path) -> (PathBuf, String) {
    let store = ChunkStore::open(dir.join("chunks")).unwrap();
    let engine = Engine::start(EngineOptions { threads: 2, ..EngineOptions::default() }).unwrap();
    let hooks = Hooks::default();
    let root = dir.join("depot");
    let m1 = engine.import_tar(&tar_of(&game_v1())[..], None, &store, &hooks).unwrap();
    let m2 = engine.import_tar(&tar_of(&game_v2())[..], None, &store, &hooks).unwrap();
    engine.write_image(&m1, &store, &layout::build_dir(&root, "acme", "game", 1), &hooks).unwrap();
    let image = engine.write_image(&m2, &store, &layout::build_dir(&root, "acme", "game", 2), &hooks).unwrap();
    engine.write_patch(&m1, &m2, &image, &store, &layout::patch_dir(&root, "acme", "game", 2, 1), &hooks).unwrap();
    (root, image.dxf_name)
}

fn fetch(from: &str, build: u32, extra: &[&str], dest: &Path) -> std::process::Output {
    Command::new(BIN)
        .args(["fetch", "--from", from, "--org", "acme", "--app", "game", "--build", &build.to_string(), "--dest"])
        .arg(dest)
        .args(extra)
        .output()
        .unwrap()
}

#[track_caller]
fn assert_success(out: &std::process::Output) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "stdout: {stdout}\nstderr: {}", String::from_utf8_lossy(&out.stderr));
    stdout
}

/// A minimal static file server: GET with an optional `Range: bytes=a-b`, answered 206 when
/// `ranges` is true, else always the whole file with 200.
fn serve(root: PathBuf, ranges: bool) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            let path = line.split_whitespace().nth(1).unwrap_or("/").to_string();
            let mut range = None;
            loop {
                let mut header = String::new();
                if reader.read_line(&mut header).unwrap() == 0 || header == "\r\n" {
                    break;
                }
                if let Some(v) = header.to_ascii_lowercase().strip_prefix("range: bytes=") {
                    let (a, b) = v.trim().split_once('-').unwrap();
                    range = Some((a.parse::<usize>().unwrap(), b.parse::<usize>().unwrap()));
                }
            }
            let Ok(body) = std::fs::read(root.join(path.trim_start_matches('/'))) else {
                let _ = stream.write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
                continue;
            };
            let (status, part) = match range {
                Some((a, b)) if ranges => ("206 Partial Content", &body[a..=b]),
                _ => ("200 OK", &body[..]),
            };
            let head = format!("HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", part.len());
            let _ = stream.write_all(head.as_bytes()).and_then(|_| stream.write_all(part));
        }
    });
    base
}

#[test]
fn fetch_rebuilds_a_build_from_a_depot_directory_and_updates_it_with_the_patch() {
    let dir = tempfile::tempdir().unwrap();
    let (root, _) = published_depot(dir.path());
    let tree = dir.path().join("tree");
    let out = assert_success(&fetch(root.to_str().unwrap(), 1, &[], &tree));
    assert!(out.contains("bytes fetched"), "{out}");
    assert_same_tree(&read_tree(&tree), &game_v1());

    let out = assert_success(&fetch(root.to_str().unwrap(), 2, &["--update-from", "1"], &tree));
    assert!(out.contains("kept"), "{out}");
    assert_same_tree(&read_tree(&tree), &game_v2());
}

#[test]
fn fetch_works_over_http_with_range_requests() {
    let dir = tempfile::tempdir().unwrap();
    let (root, dxf_name) = published_depot(dir.path());
    let base = serve(root.clone(), true);
    let tree = dir.path().join("tree");
    let first = dir.path().join("v1");
    assert_success(&fetch(&base, 1, &["--dxf-name", &find_dxf(&root, 1)], &first));
    assert_same_tree(&read_tree(&first), &game_v1());
    assert_success(&fetch(&base, 2, &["--dxf-name", &dxf_name], &tree));
    assert_same_tree(&read_tree(&tree), &game_v2());
    assert_success(&fetch(&base, 2, &["--update-from", "1"], &first));
    assert_same_tree(&read_tree(&first), &game_v2());
}

#[test]
fn fetch_over_http_fails_clearly_when_the_server_ignores_ranges_or_the_name_is_missing() {
    let dir = tempfile::tempdir().unwrap();
    let (root, dxf_name) = published_depot(dir.path());
    let base = serve(root, false);
    let out = fetch(&base, 2, &["--dxf-name", &dxf_name], &dir.path().join("a"));
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("ignores Range"), "{}", String::from_utf8_lossy(&out.stderr));
    let out = fetch(&base, 2, &[], &dir.path().join("b"));
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("give the dxfName"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn fetch_refuses_to_rebuild_into_a_non_empty_directory() {
    let dir = tempfile::tempdir().unwrap();
    let (root, _) = published_depot(dir.path());
    let tree = dir.path().join("tree");
    std::fs::create_dir_all(&tree).unwrap();
    std::fs::write(tree.join("keep.txt"), b"mine").unwrap();
    let out = fetch(root.to_str().unwrap(), 1, &[], &tree);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("is not empty"));
    assert_eq!(std::fs::read(tree.join("keep.txt")).unwrap(), b"mine");
}

fn find_dxf(root: &Path, build: u32) -> String {
    let dir = layout::build_dir(root, "acme", "game", build);
    std::fs::read_dir(dir).unwrap().next().unwrap().unwrap().file_name().to_string_lossy().into_owned()
}
