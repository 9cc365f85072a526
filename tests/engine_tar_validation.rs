//! What the import refuses (with the compat `fileReadFailed` fields a task's exception carries)
//! and what it accepts with a warning.

mod engine_support;

use std::io::Write;

use engine_support::*;
use rockit_edge::engine::manifest::EntryKind;
use rockit_edge::engine::{ChunkStore, Engine, EngineError, EngineOptions, FileReadFailed, Hooks, Manifest};
use tar::EntryType;

fn import(bytes: &[u8]) -> Result<Manifest, EngineError> {
    let dir = tempfile::tempdir().unwrap();
    let store = ChunkStore::open(dir.path().join("chunks")).unwrap();
    let engine = Engine::start(EngineOptions { threads: 1, ..EngineOptions::default() }).unwrap();
    engine.import_tar(bytes, None, &store, &Hooks::default())
}

#[track_caller]
fn assert_refused(bytes: &[u8], filename: &str, expected: &str, detected: &str) {
    match import(bytes) {
        Err(EngineError::FileReadFailed(f)) => assert_eq!(f, FileReadFailed::new(filename, expected, detected)),
        other => panic!("expected fileReadFailed, got {other:?}"),
    }
}

fn entry<'a>(path: &'a str, kind: EntryType, data: &'a [u8]) -> RawEntry<'a> {
    RawEntry { path, kind, data, link: None }
}

fn link<'a>(path: &'a str, kind: EntryType, target: &'a str) -> RawEntry<'a> {
    RawEntry { path, kind, data: b"", link: Some(target) }
}

#[test]
fn an_absolute_path_is_refused() {
    assert_refused(
        &raw_tar(&[entry("/etc/passwd", EntryType::Regular, b"x")]),
        "/etc/passwd",
        "relative path",
        "absolute path",
    );
}

#[test]
fn a_path_climbing_out_with_dot_dot_is_refused() {
    assert_refused(
        &raw_tar(&[entry("a/../../evil", EntryType::Regular, b"x")]),
        "a/../../evil",
        "path inside the tree",
        "path with '..'",
    );
}

#[test]
fn a_path_given_twice_is_refused() {
    let tar = raw_tar(&[entry("a.txt", EntryType::Regular, b"1"), entry("./a.txt", EntryType::Regular, b"2")]);
    assert_refused(&tar, "a.txt", "unique path", "duplicate entry");
}

#[test]
fn devices_and_fifos_are_refused() {
    assert_refused(
        &raw_tar(&[entry("dev/null", EntryType::Char, b"")]),
        "dev/null",
        "file, directory or symlink",
        "character device",
    );
    assert_refused(
        &raw_tar(&[entry("dev/sda", EntryType::Block, b"")]),
        "dev/sda",
        "file, directory or symlink",
        "block device",
    );
    assert_refused(&raw_tar(&[entry("pipe", EntryType::Fifo, b"")]), "pipe", "file, directory or symlink", "FIFO");
}

#[test]
fn links_leaving_the_tree_are_refused() {
    let up = raw_tar(&[link("data/l", EntryType::Symlink, "../../outside")]);
    assert_refused(&up, "data/l", "symlink inside the tree", "symlink to ../../outside");
    let absolute = raw_tar(&[link("l", EntryType::Symlink, "/etc/passwd")]);
    assert_refused(&absolute, "l", "symlink inside the tree", "symlink to /etc/passwd");
    // Each link alone stays inside; followed one through the other, they leave.
    let chained = raw_tar(&[link("a/up", EntryType::Symlink, ".."), link("l", EntryType::Symlink, "a/up/..")]);
    assert_refused(&chained, "l", "symlink inside the tree", "symlink to a/up/..");
}

#[test]
fn an_entry_below_a_file_or_a_link_is_refused() {
    let below_file = raw_tar(&[entry("a", EntryType::Regular, b"x"), entry("a/b", EntryType::Regular, b"y")]);
    assert_refused(&below_file, "a/b", "path below a directory", "path below a");
    let through_link = raw_tar(&[link("l", EntryType::Symlink, "d"), entry("l/x", EntryType::Regular, b"y")]);
    assert_refused(&through_link, "l/x", "path below a directory", "path below l");
}

#[test]
fn inputs_that_are_not_tars_are_refused_with_what_they_look_like() {
    assert_refused(b"", "native-build.tar", "tar", "empty file");
    assert_refused(b"PK\x03\x04 rest of a zip file", "native-build.tar", "tar", "zip archive");
    assert_refused(b"just some text, not an archive\n", "native-build.tar", "tar", "text");
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(b"compressed text, not a tar").unwrap();
    assert_refused(&gz.finish().unwrap(), "native-build.tar", "tar", "gzip-compressed text");
}

#[test]
fn a_truncated_tar_is_refused() {
    let tar = tar_of(&game_v1());
    let err = import(&tar[..tar.len() / 2]).unwrap_err();
    let f = err.file_read_failed_fields().unwrap_or_else(|| panic!("not fileReadFailed: {err}"));
    assert_eq!((f.filename.as_str(), f.type_expected.as_str()), ("native-build.tar", "tar"));
    assert!(f.type_detected.starts_with("damaged tar"), "{f:?}");
}

#[test]
fn compressed_tars_are_accepted_with_a_warning() {
    let tar = tar_of(&game_v1());
    let plain = import(&tar).unwrap();
    assert!(plain.warnings.iter().all(|w| w.code != "compressedTar"));

    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&tar).unwrap();
    let from_gzip = import(&gz.finish().unwrap()).unwrap();
    let from_zstd = import(&zstd::bulk::compress(&tar, 3).unwrap()).unwrap();
    for manifest in [&from_gzip, &from_zstd] {
        assert_eq!(manifest.files, plain.files);
        assert!(manifest.warnings.iter().any(|w| w.code == "compressedTar"), "{:?}", manifest.warnings);
    }
}

#[test]
fn empty_files_and_names_equal_up_to_case_are_warnings() {
    let tar = raw_tar(&[
        entry("Readme.txt", EntryType::Regular, b"a"),
        entry("README.txt", EntryType::Regular, b"b"),
        entry("empty.dat", EntryType::Regular, b""),
    ]);
    let manifest = import(&tar).unwrap();
    let codes: Vec<&str> = manifest.warnings.iter().map(|w| w.code.as_str()).collect();
    assert_eq!(codes, vec!["emptyFiles", "caseCollision"]);
    assert!(manifest.warnings[0].message.contains("empty.dat"));
    assert!(manifest.warnings[1].message.contains("Readme.txt / README.txt"));
}

#[test]
fn a_hard_link_becomes_a_copy_of_the_earlier_file_and_a_dangling_one_is_refused() {
    let tar = raw_tar(&[entry("a.bin", EntryType::Regular, b"payload"), link("b.bin", EntryType::Link, "a.bin")]);
    let manifest = import(&tar).unwrap();
    let kinds: Vec<&EntryKind> = manifest.files.iter().map(|e| &e.kind).collect();
    assert_eq!(kinds[0], kinds[1]);
    let dangling = raw_tar(&[link("b.bin", EntryType::Link, "missing.bin")]);
    assert_refused(&dangling, "b.bin", "hard link to an earlier file", "dangling hard link");
}

#[test]
fn the_manifest_is_sorted_by_path_and_keeps_the_tar_order() {
    let tar = raw_tar(&[
        entry("z/", EntryType::Directory, b""),
        entry("z/last.txt", EntryType::Regular, b"z"),
        entry("a.txt", EntryType::Regular, b"a"),
        link("m", EntryType::Symlink, "a.txt"),
    ]);
    let manifest = import(&tar).unwrap();
    let listed: Vec<(&str, u64)> = manifest.files.iter().map(|e| (e.path.as_str(), e.order)).collect();
    assert_eq!(listed, vec![("a.txt", 2), ("m", 3), ("z", 0), ("z/last.txt", 1)]);
}
