//! FastStart in the engine and the reference client: an image ordered by a start-up trace puts
//! the chunks the trace reads first, records `preloadBytes`, still rebuilds byte for byte, and
//! lets a launcher start after fetching far fewer bytes; `rockit-edge fetch --trace` reports it.

mod engine_support;

use std::path::Path;
use std::process::Command;

use engine_support::*;
use rockit_edge::engine::client::{Client, DirOrigin};
use rockit_edge::engine::image::IndexKind;
use rockit_edge::engine::startup::Read;
use rockit_edge::engine::{layout, ChunkStore, Engine, EngineOptions, Hooks, ImageInfo, Index};

const BIN: &str = env!("CARGO_BIN_EXE_rockit-edge");

fn read(path: &str, offset: u64, len: u64) -> Read {
    Read { path: path.into(), offset, len }
}

/// Reads scattered through the test game, the large late-loading pack among them.
fn trace() -> Vec<Read> {
    vec![
        read("data/level1.pak", 1_200_000, 70_000),
        read("docs/readme.txt", 0, 10),
        read("data/level2.pak", 300_000, 1_000),
        read("data/level1.pak", 1_200_000, 10),
    ]
}

/// The chunk-table slots `reads` touch, each once, in first-access order, found from the index.
fn touched_slots(index: &Index, reads: &[Read]) -> Vec<u32> {
    let mut slots = Vec::new();
    for r in reads {
        let entry = index.files.iter().find(|e| e.path == r.path).expect("traced file in the index");
        let IndexKind::File { chunks, .. } = &entry.kind else { panic!("{} is no file", r.path) };
        let mut at = 0u64;
        for &slot in chunks {
            let len = index.chunks[slot as usize].raw_len as u64;
            if at + len > r.offset && at < r.offset + r.len && !slots.contains(&slot) {
                slots.push(slot);
            }
            at += len;
        }
    }
    slots
}

/// Build 1 of the test game published twice in `root`: the default image and one ordered by
/// [`trace`].
fn images(root: &Path) -> (ImageInfo, ImageInfo) {
    let store = ChunkStore::open(root.join("chunks")).unwrap();
    let engine = Engine::start(EngineOptions { threads: 2, ..EngineOptions::default() }).unwrap();
    let hooks = Hooks::default();
    let manifest = engine.import_tar(&tar_of(&game_v1())[..], None, &store, &hooks).unwrap();
    let dir = layout::build_dir(&root.join("depot"), "acme", "game", 1);
    let plain = engine.write_image(&manifest, &store, &dir, &hooks).unwrap();
    let fast = engine.write_startup_image(&manifest, &store, &dir, &trace(), &hooks).unwrap();
    (plain, fast)
}

#[test]
fn a_traced_image_puts_the_start_up_chunks_first_in_first_access_order_with_their_length_as_preload() {
    let dir = tempfile::tempdir().unwrap();
    let (plain, fast) = images(dir.path());
    assert_ne!(plain.dxf_name, fast.dxf_name);
    assert_eq!(plain.preload_bytes, None);

    let (plain_index, index) = (Index::load(&plain.dir).unwrap(), &Index::load(&fast.dir).unwrap());
    assert_eq!(fast.preload_bytes, index.preload_bytes);
    let slots = touched_slots(index, &trace());
    assert!(slots.len() >= 3, "the trace touches several chunks: {slots:?}");
    assert_eq!(slots, (0..slots.len() as u32).collect::<Vec<_>>(), "start-up chunks lead the table");
    let preload: u64 = index.chunks[..slots.len()].iter().map(|c| c.stored_len as u64).sum();
    assert_eq!(index.preload_bytes, Some(preload));
    // In the default order the large pack loads last: its chunks sit at the end of the table.
    let plain_slots = touched_slots(&plain_index, &trace());
    assert!(plain_slots.iter().any(|&s| s as usize > plain_index.chunks.len() / 2), "{plain_slots:?}");

    // The traced files come right after directories and links, in first-access order.
    let files: Vec<&str> = index
        .files
        .iter()
        .filter(|e| matches!(e.kind, IndexKind::File { .. }))
        .map(|e| e.path.as_str())
        .take(3)
        .collect();
    assert_eq!(files, vec!["data/level1.pak", "docs/readme.txt", "data/level2.pak"]);
    // Same content, same chunks: only the order differs.
    let mut a: Vec<_> = plain_index.chunks.iter().map(|c| c.id.clone()).collect();
    let mut b: Vec<_> = index.chunks.iter().map(|c| c.id.clone()).collect();
    a.sort();
    b.sort();
    assert_eq!(a, b);
}

#[test]
fn a_traced_image_rebuilds_byte_for_byte_and_starts_after_far_fewer_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let (plain, fast) = images(dir.path());
    let origin = DirOrigin { root: dir.path().join("depot") };
    let dest = dir.path().join("tree");
    Client::new(&origin, "acme", "game").rebuild(1, Some(&fast.dxf_name), &dest).unwrap();
    assert_same_tree(&read_tree(&dest), &game_v1());

    let before = Client::new(&origin, "acme", "game").startup(1, Some(&plain.dxf_name), &trace()).unwrap();
    let after = Client::new(&origin, "acme", "game").startup(1, Some(&fast.dxf_name), &trace()).unwrap();
    let preload = fast.preload_bytes.unwrap();
    assert_eq!(after.preload_bytes, Some(preload));
    assert_eq!(after.bytes_fetched, after.index_bytes + preload, "nothing beyond the preload is needed");
    assert_eq!(before.preload_bytes, None);
    assert!(before.bytes_fetched > 3 * after.bytes_fetched, "before {before:?}, after {after:?}");
    assert_eq!(before.chunks_needed, after.chunks_needed);
}

#[test]
fn a_start_up_replay_refuses_a_trace_of_files_the_build_lacks() {
    let dir = tempfile::tempdir().unwrap();
    let (_, fast) = images(dir.path());
    let origin = DirOrigin { root: dir.path().join("depot") };
    let err = Client::new(&origin, "acme", "game")
        .startup(1, Some(&fast.dxf_name), &[read("no/such.file", 0, 1)])
        .unwrap_err();
    assert!(err.to_string().contains("no/such.file"), "{err}");
}

#[test]
fn fetch_with_a_trace_reports_the_bytes_before_start_up_then_rebuilds() {
    let dir = tempfile::tempdir().unwrap();
    let (_, fast) = images(dir.path());
    let trace_file = dir.path().join("trace.json");
    let body = serde_json::json!({"appName": "game", "buildId": 1, "reads": trace()});
    std::fs::write(&trace_file, body.to_string()).unwrap();
    let dest = dir.path().join("tree");
    let out = Command::new(BIN)
        .args(["fetch", "--org", "acme", "--app", "game", "--build", "1", "--dxf-name", &fast.dxf_name, "--from"])
        .arg(dir.path().join("depot"))
        .arg("--dest")
        .arg(&dest)
        .arg("--trace")
        .arg(&trace_file)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let preload = fast.preload_bytes.unwrap();
    assert!(stdout.contains(&format!("preloadBytes {preload}")), "{stdout}");
    assert!(stdout.contains("bytes fetched before the traced reads were satisfied"), "{stdout}");
    assert_same_tree(&read_tree(&dest), &game_v1());
}
