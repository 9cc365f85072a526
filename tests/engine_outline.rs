//! The manifest an import returns with its chunk lists on disk (`Outline`, what the server's
//! mkraw uses so that its memory does not grow with the build) stands for exactly the manifest
//! it replaced: the same `manifest.zst` bytes, the same image, the same patches to it, and no
//! chunk list in memory.

mod engine_support;

use engine_support::*;
use rockit_edge::engine::manifest::EntryKind;
use rockit_edge::engine::{ChunkStore, Engine, EngineOptions, FileChunks, Hooks};
use tar::EntryType;

/// Multi-chunk files (one a hard link to another, one a copy), single-chunk and empty files, a
/// directory and a symlink, not in path order.
fn build_tar() -> Vec<u8> {
    let big = noise(7, 700_000);
    let text = text(8, 300_000);
    let entry = |path, kind, data| RawEntry { path, kind, data, link: None };
    raw_tar(&[
        entry("z/", EntryType::Directory, b""),
        entry("z/big.pak", EntryType::Regular, &big),
        entry("a/text.txt", EntryType::Regular, &text),
        entry("a/copy.pak", EntryType::Regular, &big),
        entry("small.cfg", EntryType::Regular, b"volume=3\n"),
        entry("empty", EntryType::Regular, b""),
        RawEntry { path: "z/link.pak", kind: EntryType::Link, data: b"", link: Some("z/big.pak") },
        RawEntry { path: "latest", kind: EntryType::Symlink, data: b"", link: Some("z/big.pak") },
    ])
}

#[test]
fn an_outline_saves_the_manifest_byte_for_byte_and_writes_the_same_image_without_lists_in_memory() {
    let dir = tempfile::tempdir().unwrap();
    let store = ChunkStore::open(dir.path().join("chunks")).unwrap();
    let engine = Engine::start(EngineOptions { threads: 2, ..EngineOptions::default() }).unwrap();
    let hooks = Hooks::default();
    let outline = engine.import_outline(&build_tar()[..], None, &store, &hooks).unwrap();
    let whole = engine.import_tar(&build_tar()[..], None, &store, &hooks).unwrap();
    assert_eq!(outline.to_manifest().unwrap(), whole);

    // In memory, the outline holds entries only; the lists are on disk.
    assert!(outline.entries().iter().all(|e| match &e.kind {
        EntryKind::File { chunks, .. } => chunks.is_empty(),
        _ => true,
    }));
    assert_eq!(outline.chunk_refs(), whole.chunk_refs());
    let paths: Vec<&str> = whole.files.iter().map(|e| e.path.as_str()).collect();
    let link = paths.iter().position(|p| *p == "z/link.pak").unwrap();
    let big = paths.iter().position(|p| *p == "z/big.pak").unwrap();
    assert!(outline.chunks(big).unwrap().len() > 2, "the test needs a file of several chunks");
    assert_eq!(outline.chunks(link).unwrap(), outline.chunks(big).unwrap());
    for (file, path) in paths.iter().enumerate() {
        assert_eq!(outline.chunks(file).unwrap(), whole.chunks(file).unwrap(), "{path}");
    }

    let (a, b) = (dir.path().join("a.zst"), dir.path().join("b.zst"));
    outline.save(&a).unwrap();
    whole.save(&b).unwrap();
    assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());

    let from_outline = engine.write_image(&outline, &store, &dir.path().join("one"), &hooks).unwrap();
    let from_whole = engine.write_image(&whole, &store, &dir.path().join("two"), &hooks).unwrap();
    assert_eq!(from_outline.dxf_name, from_whole.dxf_name);
    assert_eq!(from_outline.size_bytes, from_whole.size_bytes);
    for name in std::fs::read_dir(&from_whole.dir).unwrap().map(|e| e.unwrap().file_name()) {
        assert_eq!(
            std::fs::read(from_outline.dir.join(&name)).unwrap(),
            std::fs::read(from_whole.dir.join(&name)).unwrap()
        );
    }
}

#[test]
fn progress_of_an_image_ends_at_its_total() {
    let dir = tempfile::tempdir().unwrap();
    let store = ChunkStore::open(dir.path().join("chunks")).unwrap();
    let engine = Engine::start(EngineOptions { threads: 1, ..EngineOptions::default() }).unwrap();
    let outline = engine.import_outline(&build_tar()[..], None, &store, &Hooks::default()).unwrap();
    let seen = std::sync::Mutex::new(Vec::new());
    let progress = |done, total| seen.lock().unwrap().push((done, total));
    let hooks = Hooks::new(&progress, &|| false);
    engine.write_image(&outline, &store, &dir.path().join("img"), &hooks).unwrap();
    let seen = seen.into_inner().unwrap();
    let last = *seen.last().unwrap();
    assert_eq!(last, (outline.chunk_refs(), outline.chunk_refs()));
    assert!(seen.windows(2).all(|w| w[0].0 <= w[1].0), "progress goes forward: {seen:?}");
}

#[test]
fn a_patch_to_an_outline_is_byte_for_byte_the_patch_to_its_whole_manifest() {
    let dir = tempfile::tempdir().unwrap();
    let store = ChunkStore::open(dir.path().join("chunks")).unwrap();
    let engine = Engine::start(EngineOptions { threads: 2, ..EngineOptions::default() }).unwrap();
    let hooks = Hooks::default();
    let old = engine.import_tar(&tar_of(&game_v1())[..], None, &store, &hooks).unwrap();
    let outline = engine.import_outline(&tar_of(&game_v2())[..], None, &store, &hooks).unwrap();
    let whole = outline.to_manifest().unwrap();
    let image = engine.write_image(&outline, &store, &dir.path().join("img"), &hooks).unwrap();

    let (a, b) = (dir.path().join("from-outline"), dir.path().join("from-whole"));
    let from_outline = engine.write_patch(&old, &outline, &image, &store, &a, &hooks).unwrap();
    let from_whole = engine.write_patch(&old, &whole, &image, &store, &b, &hooks).unwrap();
    let kinds = from_whole.op_counts.iter().filter(|&&n| n > 0).count();
    assert!(kinds >= 3, "the test needs several kinds of op: {:?}", from_whole.op_counts);
    assert_eq!(from_outline.op_counts, from_whole.op_counts);
    for name in ["patch.zst", "patch.dat"] {
        assert_eq!(std::fs::read(a.join(name)).unwrap(), std::fs::read(b.join(name)).unwrap(), "{name}");
    }
}
