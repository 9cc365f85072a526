//! Golden tests: chunk cut points and the published formats are stored data. If one of these
//! fails, existing chunk stores, images or launchers are affected: change the format version
//! (docs/FORMAT.md) instead of updating the expected values.

mod engine_support;

use std::io::Read;

use engine_support::*;
use rockit_edge::engine::chunker;
use rockit_edge::engine::fsutil::sha256_hex;
use rockit_edge::engine::manifest::EntryKind;
use rockit_edge::engine::{layout, ChunkStore, Engine, EngineOptions, Hooks};

/// 3 MiB of deterministic input: incompressible noise, then repetitive text.
fn golden_input() -> Vec<u8> {
    [noise(42, 2 << 20), text(43, 1 << 20)].concat()
}

#[test]
fn chunk_cut_points_on_a_fixed_input_never_move() {
    let input = golden_input();
    let lengths: Vec<usize> = chunker::chunks(&input[..]).map(|c| c.unwrap().len()).collect();
    assert_eq!(lengths.iter().sum::<usize>(), input.len());
    assert!(lengths.iter().all(|&l| l <= 256 * 1024));
    assert_eq!(lengths, GOLDEN_LENGTHS.to_vec());
}

#[test]
fn every_file_starts_a_new_chunk() {
    let input = golden_input();
    let (a, b) = input.split_at(100_000);
    let whole: Vec<usize> = chunker::chunks(&input[..]).map(|c| c.unwrap().len()).collect();
    assert!(
        !whole
            .iter()
            .scan(0, |at, l| {
                *at += l;
                Some(*at)
            })
            .any(|at| at == 100_000),
        "the input must not cut at 100 000 by itself"
    );

    let mut tree = Tree::new();
    tree.insert("a".into(), file(a.to_vec()));
    tree.insert("b".into(), file(b.to_vec()));
    let dir = tempfile::tempdir().unwrap();
    let store = ChunkStore::open(dir.path()).unwrap();
    let engine = Engine::start(EngineOptions { threads: 1, ..EngineOptions::default() }).unwrap();
    let manifest = engine.import_tar(&tar_of(&tree)[..], None, &store, &Hooks::default()).unwrap();
    let EntryKind::File { chunks, .. } = &manifest.files[1].kind else { panic!("b is a file") };
    let alone: Vec<u32> = chunker::chunks(b).map(|c| c.unwrap().len() as u32).collect();
    assert_eq!(chunks.iter().map(|c| c.len).collect::<Vec<_>>(), alone);
    assert_eq!(chunks[0].id.to_hex(), sha256_hex(&b[..alone[0] as usize]));
}

const GOLDEN_LENGTHS: [usize; 37] = [
    75408, 38902, 35231, 73905, 50484, 24278, 75794, 151960, 150696, 66923, 66671, 58737, 26970, 57467, 99486, 139023,
    98301, 106261, 181948, 124471, 75152, 173545, 80428, 20605, 66384, 117696, 81354, 35081, 80313, 68859, 92769,
    160428, 68602, 50079, 152910, 86035, 32572,
];

fn tiny_v1() -> Tree {
    let mut t = Tree::new();
    t.insert("bin".into(), Node::Dir);
    t.insert("bin/run".into(), exe(b"#!/bin/sh\necho v1\n".to_vec()));
    t.insert("data.txt".into(), file(b"hello".to_vec()));
    t.insert("empty".into(), file(Vec::new()));
    t.insert("link".into(), Node::Link("data.txt".into()));
    t
}

fn tiny_v2() -> Tree {
    let mut t = tiny_v1();
    t.insert("bin/run".into(), exe(b"#!/bin/sh\necho v2\n".to_vec()));
    let data = t.remove("data.txt").expect("data.txt");
    t.insert("renamed.txt".into(), data);
    t.insert("link".into(), Node::Link("renamed.txt".into()));
    t
}

fn unzstd(path: &std::path::Path) -> String {
    let mut json = String::new();
    zstd::stream::read::Decoder::new(std::fs::File::open(path).unwrap()).unwrap().read_to_string(&mut json).unwrap();
    json
}

#[test]
fn the_index_and_patch_formats_of_a_tiny_build_never_change() {
    let dir = tempfile::tempdir().unwrap();
    let store = ChunkStore::open(dir.path().join("chunks")).unwrap();
    let engine = Engine::start(EngineOptions { threads: 1, ..EngineOptions::default() }).unwrap();
    let hooks = Hooks::default();
    let m1 = engine.import_tar(&tar_of(&tiny_v1())[..], None, &store, &hooks).unwrap();
    let m2 = engine.import_tar(&tar_of(&tiny_v2())[..], None, &store, &hooks).unwrap();
    let root = dir.path().join("depot");
    engine.write_image(&m1, &store, &layout::build_dir(&root, "o", "a", 1), &hooks).unwrap();
    let image = engine.write_image(&m2, &store, &layout::build_dir(&root, "o", "a", 2), &hooks).unwrap();
    let patch_dir = layout::patch_dir(&root, "o", "a", 2, 1);
    engine.write_patch(&m1, &m2, &image, &store, &patch_dir, &hooks).unwrap();

    let index_zst = std::fs::read(image.dir.join("index.zst")).unwrap();
    assert_eq!(image.dxf_name, sha256_hex(&index_zst)[..32], "dxfName is the hash of index.zst");
    let index = unzstd(&image.dir.join("index.zst"));
    let patch = unzstd(&patch_dir.join("patch.zst"));
    assert_eq!(index, GOLDEN_INDEX);
    assert_eq!(patch, GOLDEN_PATCH.replace("DXF", &image.dxf_name));
    assert_eq!(std::fs::read(image.dir.join("pack-00000")).unwrap(), b"#!/bin/sh\necho v2\nhello");
}

const GOLDEN_INDEX: &str = r#"{"format":1,"packs":[{"name":"pack-00000","size":23}],"chunks":[{"id":"268005d39f7e216d686f4e63ed1e4b4a1b6a06552b5ca4d1a17e1a176e3ce249","rawLen":18,"pack":0,"offset":0,"storedLen":18,"codec":"raw"},{"id":"2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824","rawLen":5,"pack":0,"offset":18,"storedLen":5,"codec":"raw"}],"files":[{"path":"bin","kind":"dir","mode":493},{"path":"link","kind":"symlink","target":"renamed.txt"},{"path":"bin/run","kind":"file","mode":493,"size":18,"sha256":"268005d39f7e216d686f4e63ed1e4b4a1b6a06552b5ca4d1a17e1a176e3ce249","chunks":[0]},{"path":"empty","kind":"file","mode":420,"size":0,"sha256":"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855","chunks":[]},{"path":"renamed.txt","kind":"file","mode":420,"size":5,"sha256":"2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824","chunks":[1]}]}"#;
const GOLDEN_PATCH: &str = r#"{"format":1,"toDxfName":"DXF","datSize":0,"files":[{"path":"bin","kind":"dir","mode":493},{"path":"bin/run","kind":"file","mode":493,"size":18,"sha256":"268005d39f7e216d686f4e63ed1e4b4a1b6a06552b5ca4d1a17e1a176e3ce249","op":{"type":"fetch","pieces":[{"remote":{"id":"268005d39f7e216d686f4e63ed1e4b4a1b6a06552b5ca4d1a17e1a176e3ce249","pack":0,"offset":0,"storedLen":18,"len":18,"codec":"raw"}}]}},{"path":"empty","kind":"file","mode":420,"size":0,"sha256":"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855","op":{"type":"same","source":"empty"}},{"path":"link","kind":"symlink","target":"renamed.txt"},{"path":"renamed.txt","kind":"file","mode":420,"size":5,"sha256":"2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824","op":{"type":"same","source":"data.txt"}}],"remove":["data.txt"]}"#;
