//! `rockit-edge fetch`, the reference client's command line, against a depot directory and
//! against an HTTP server in front of it (with and without Range support).

mod common;
mod engine_support;

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
    let base = common::serve_directory(root.clone(), true);
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
    let base = common::serve_directory(root, false);
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
