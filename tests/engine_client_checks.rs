//! The reference client trusts nothing it downloads: damaged or hostile published data is
//! refused before it can write outside the tree or allocate without bound.

mod engine_support;

use std::path::{Path, PathBuf};

use engine_support::*;
use rockit_edge::engine::client::{Client, DirOrigin};
use rockit_edge::engine::{layout, ChunkStore, Engine, EngineOptions, Hooks};
use serde_json::Value;

/// Publishes build 1 of the test game; returns the depot root and the image directory.
fn published(dir: &Path) -> (PathBuf, PathBuf) {
    let store = ChunkStore::open(dir.join("chunks")).unwrap();
    let engine = Engine::start(EngineOptions { threads: 1, ..EngineOptions::default() }).unwrap();
    let root = dir.join("depot");
    let m = engine.import_tar(&tar_of(&game_v1())[..], None, &store, &Hooks::default()).unwrap();
    let image = engine.write_image(&m, &store, &layout::build_dir(&root, "o", "a", 1), &Hooks::default()).unwrap();
    (root, image.dir)
}

/// Rewrites the published index through `edit`.
fn tamper(image_dir: &Path, edit: impl FnOnce(&mut Value)) {
    let path = image_dir.join("index.zst");
    let mut index: Value =
        serde_json::from_slice(&zstd::decode_all(&std::fs::read(&path).unwrap()[..]).unwrap()).unwrap();
    edit(&mut index);
    std::fs::write(&path, zstd::encode_all(&serde_json::to_vec(&index).unwrap()[..], 3).unwrap()).unwrap();
}

fn rebuild_error(root: &Path, dest: &Path) -> String {
    let origin = DirOrigin { root: root.to_path_buf() };
    Client::new(&origin, "o", "a").rebuild(1, None, dest).unwrap_err().to_string()
}

#[test]
fn an_index_naming_a_path_outside_the_tree_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (root, image_dir) = published(dir.path());
    tamper(&image_dir, |index| index["files"][3]["path"] = "../escaped".into());
    let err = rebuild_error(&root, &dir.path().join("tree"));
    assert!(err.contains("unsafe path"), "{err}");
    assert!(!dir.path().join("escaped").exists());
}

#[test]
fn an_index_with_oversized_chunks_is_refused_before_fetching() {
    let dir = tempfile::tempdir().unwrap();
    let (root, image_dir) = published(dir.path());
    tamper(&image_dir, |index| index["chunks"][0]["storedLen"] = (1u64 << 31).into());
    let err = rebuild_error(&root, &dir.path().join("tree"));
    assert!(err.contains("exceed the format's limits"), "{err}");
}

#[test]
fn a_chunk_whose_bytes_do_not_match_its_id_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (root, image_dir) = published(dir.path());
    let pack = image_dir.join("pack-00000");
    let mut bytes = std::fs::read(&pack).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&pack, bytes).unwrap();
    let err = rebuild_error(&root, &dir.path().join("tree"));
    assert!(err.contains("does not match its id") || err.contains("does not decode"), "{err}");
}

#[test]
fn a_link_leaving_the_tree_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (root, image_dir) = published(dir.path());
    tamper(&image_dir, |index| {
        let files = index["files"].as_array_mut().unwrap();
        let link = files.iter_mut().find(|f| f["kind"] == "symlink").unwrap();
        link["target"] = "../../etc/passwd".into();
    });
    let err = rebuild_error(&root, &dir.path().join("tree"));
    assert!(err.contains("leaves the tree"), "{err}");
}
