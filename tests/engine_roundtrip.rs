//! Round trips through the whole engine: generated builds are tarred, imported, published as
//! images and patches into a directory laid out like the depot, then rebuilt by the reference
//! client and compared file by file with what went in.

mod engine_support;

use std::path::Path;

use engine_support::*;
use rockit_edge::engine::client::{Client, DirOrigin};
use rockit_edge::engine::image::ImageOptions;
use rockit_edge::engine::patch::{DeltaCodec, FileOp, PatchKind};
use rockit_edge::engine::store::Codec;
use rockit_edge::engine::{layout, ChunkStore, Engine, EngineOptions, Hooks, ImageInfo, Manifest, Patch, PatchOptions};

const ORG: &str = "acme";
const APP: &str = "game";

struct Depot {
    _dir: tempfile::TempDir,
    root: std::path::PathBuf,
    store: ChunkStore,
    engine: Engine,
}

impl Depot {
    fn new(options: EngineOptions) -> Depot {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("depot");
        let store = ChunkStore::open(dir.path().join("chunks")).unwrap();
        Depot { _dir: dir, root, store, engine: Engine::start(options).unwrap() }
    }

    fn import(&self, tree: &Tree) -> Manifest {
        self.engine.import_tar(&tar_of(tree)[..], None, &self.store, &Hooks::default()).unwrap()
    }

    fn publish(&self, build: u32, manifest: &Manifest) -> ImageInfo {
        let dir = layout::build_dir(&self.root, ORG, APP, build);
        self.engine.write_image(manifest, &self.store, &dir, &Hooks::default()).unwrap()
    }

    fn patch(&self, from: (u32, &Manifest), to: (u32, &Manifest, &ImageInfo)) -> rockit_edge::engine::PatchInfo {
        let dir = layout::patch_dir(&self.root, ORG, APP, to.0, from.0);
        self.engine.write_patch(from.1, to.1, to.2, &self.store, &dir, &Hooks::default()).unwrap()
    }

    fn origin(&self) -> DirOrigin {
        DirOrigin { root: self.root.clone() }
    }
}

fn small_engine() -> EngineOptions {
    EngineOptions { threads: 2, ..EngineOptions::default() }
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let meta = std::fs::symlink_metadata(entry.path()).unwrap();
        let dest = to.join(entry.file_name());
        if meta.file_type().is_symlink() {
            std::os::unix::fs::symlink(std::fs::read_link(entry.path()).unwrap(), dest).unwrap();
        } else if meta.is_dir() {
            copy_tree(&entry.path(), &dest);
        } else {
            std::fs::copy(entry.path(), dest).unwrap();
        }
    }
}

fn op_names(patch: &Patch) -> Vec<(String, &'static str)> {
    patch
        .files
        .iter()
        .filter_map(|e| match &e.kind {
            PatchKind::File { op, .. } => Some((
                e.path.clone(),
                match op {
                    FileOp::Same { .. } => "same",
                    FileOp::Chunks { .. } => "chunks",
                    FileOp::Delta { .. } => "delta",
                    FileOp::Fetch { .. } => "fetch",
                },
            )),
            _ => None,
        })
        .collect()
}

#[test]
fn a_build_rebuilt_from_its_image_equals_the_tar_that_was_imported() {
    let depot = Depot::new(small_engine());
    let v1 = game_v1();
    let manifest = depot.import(&v1);
    let image = depot.publish(1, &manifest);
    assert!(image.dir.join("index.zst").is_file() && image.dir.join("pack-00000").is_file());

    let out = tempfile::tempdir().unwrap();
    let origin = depot.origin();
    let report = Client::new(&origin, ORG, APP).rebuild(1, None, &out.path().join("tree")).unwrap();
    assert_same_tree(&read_tree(&out.path().join("tree")), &v1);
    // The identical copy is rebuilt locally, not fetched twice.
    assert!(
        report.bytes_fetched <= image.size_bytes,
        "fetched {} of an image of {}",
        report.bytes_fetched,
        image.size_bytes
    );
}

#[test]
fn a_patch_turns_the_old_tree_into_the_new_build_with_renames_inserts_and_appends() {
    let depot = Depot::new(small_engine());
    let (v1, v2) = (game_v1(), game_v2());
    let (m1, m2) = (depot.import(&v1), depot.import(&v2));
    let _image1 = depot.publish(1, &m1);
    let image2 = depot.publish(2, &m2);
    let info = depot.patch((1, &m1), (2, &m2, &image2));

    let origin = depot.origin();
    let client = Client::new(&origin, ORG, APP);
    let work = tempfile::tempdir().unwrap();
    let tree = work.path().join("tree");
    client.rebuild(1, None, &tree).unwrap();
    let update = Client::new(&origin, ORG, APP).update(1, 2, &tree).unwrap();
    assert_same_tree(&read_tree(&tree), &v2);

    let patch = Patch::load(&layout::patch_dir(&depot.root, ORG, APP, 2, 1)).unwrap();
    let ops = op_names(&patch);
    let op = |path: &str| ops.iter().find(|(p, _)| p == path).map(|(_, o)| *o).unwrap();
    assert_eq!(op("manual/readme.txt"), "same", "a moved file is a rename");
    assert_eq!(op("copy/level1-again.pak"), "same");
    assert_eq!(op("bin/game"), "delta", "scattered edits are a delta");
    assert_eq!(op("lib/libfoo-def456.so"), "delta", "a renamed library pairs by content");
    assert_eq!(op("data/new.bin"), "fetch", "new content comes from the image");
    assert!(patch.remove.contains(&"old/removed.bin".to_string()));
    assert!(info.size_bytes < 300_000, "patch of {} bytes for ~320 KB of new data", info.size_bytes);
    assert!(
        update.bytes_fetched < image2.size_bytes / 4,
        "update fetched {} of an image of {}",
        update.bytes_fetched,
        image2.size_bytes
    );
}

#[test]
fn an_update_refuses_a_tree_that_is_not_the_old_build() {
    let depot = Depot::new(small_engine());
    let (v1, v2) = (game_v1(), game_v2());
    let (m1, m2) = (depot.import(&v1), depot.import(&v2));
    depot.publish(1, &m1);
    let image2 = depot.publish(2, &m2);
    depot.patch((1, &m1), (2, &m2, &image2));
    let origin = depot.origin();
    let work = tempfile::tempdir().unwrap();
    let tree = work.path().join("tree");
    Client::new(&origin, ORG, APP).rebuild(1, None, &tree).unwrap();
    std::fs::write(tree.join("copy/level1-again.pak"), b"tampered").unwrap();

    let err = Client::new(&origin, ORG, APP).update(1, 2, &tree).unwrap_err();
    assert!(err.to_string().contains("copy/level1-again.pak"), "{err}");
    // Nothing of the tree changed before the failure was found.
    assert!(tree.join("docs/readme.txt").is_file());
}

#[test]
fn images_split_into_packs_and_deltas_into_segments_still_round_trip() {
    let options = EngineOptions {
        threads: 2,
        image: ImageOptions { pack_limit: 256 * 1024 },
        patch: PatchOptions { segment: 128 * 1024, ..PatchOptions::default() },
    };
    let depot = Depot::new(options);
    let (v1, v2) = (game_v1(), game_v2());
    let (m1, m2) = (depot.import(&v1), depot.import(&v2));
    depot.publish(1, &m1);
    let image2 = depot.publish(2, &m2);
    assert!(image2.packs.len() > 4, "{} packs", image2.packs.len());
    assert!(image2.packs.iter().all(|p| p.size <= 256 * 1024));
    depot.patch((1, &m1), (2, &m2, &image2));
    let patch = Patch::load(&layout::patch_dir(&depot.root, ORG, APP, 2, 1)).unwrap();
    let segmented = patch
        .files
        .iter()
        .any(|e| matches!(&e.kind, PatchKind::File { op: FileOp::Delta { segments }, .. } if segments.len() > 1));
    assert!(segmented, "no delta was split into segments");

    let origin = depot.origin();
    let work = tempfile::tempdir().unwrap();
    let tree = work.path().join("tree");
    Client::new(&origin, ORG, APP).rebuild(2, None, &work.path().join("full")).unwrap();
    assert_same_tree(&read_tree(&work.path().join("full")), &v2);
    Client::new(&origin, ORG, APP).rebuild(1, None, &tree).unwrap();
    Client::new(&origin, ORG, APP).update(1, 2, &tree).unwrap();
    assert_same_tree(&read_tree(&tree), &v2);
}

#[test]
fn a_rerun_after_a_crash_stores_nothing_new_and_writes_the_same_image() {
    let depot = Depot::new(small_engine());
    let v1 = game_v1();
    let first = depot.import(&v1);
    let image = depot.publish(1, &first);
    let chunk_files = || walkdir_count(depot.store.root());
    let before = chunk_files();

    let again = depot.import(&v1);
    let image_again = depot.publish(1, &again);
    assert_eq!(again, first);
    assert_eq!(chunk_files(), before);
    assert_eq!(image_again.dxf_name, image.dxf_name);
    let build_dir = layout::build_dir(&depot.root, ORG, APP, 1);
    assert_eq!(std::fs::read_dir(build_dir).unwrap().count(), 1, "no second image, no leftover staging directory");
}

#[test]
fn a_patch_between_identical_builds_is_all_same_and_an_update_keeps_every_file() {
    let depot = Depot::new(small_engine());
    let v1 = game_v1();
    let m = depot.import(&v1);
    depot.publish(1, &m);
    let image = depot.publish(2, &m);
    depot.patch((1, &m), (2, &m, &image));
    let origin = depot.origin();
    let work = tempfile::tempdir().unwrap();
    let tree = work.path().join("tree");
    Client::new(&origin, ORG, APP).rebuild(1, None, &tree).unwrap();
    let copy = work.path().join("copy");
    copy_tree(&tree, &copy);
    let report = Client::new(&origin, ORG, APP).update(1, 2, &copy).unwrap();
    assert_eq!(report.files_written, 0);
    assert_same_tree(&read_tree(&copy), &v1);
}

#[test]
fn progress_is_reported_and_a_cancelled_import_stops() {
    let depot = Depot::new(small_engine());
    let tar = tar_of(&game_v1());
    let seen = std::sync::Mutex::new(Vec::new());
    let progress = |done: u64, total: u64| seen.lock().unwrap().push((done, total));
    let never = || false;
    depot.engine.import_tar(&tar[..], Some(tar.len() as u64), &depot.store, &Hooks::new(&progress, &never)).unwrap();
    let seen = seen.into_inner().unwrap();
    assert!(seen.len() > 3 && seen.windows(2).all(|w| w[0].0 <= w[1].0));
    assert!(seen.iter().all(|&(done, total)| total == tar.len() as u64 && done <= total));

    let cancel = || true;
    let err = depot.engine.import_tar(&tar[..], None, &depot.store, &Hooks::new(&|_, _| {}, &cancel)).unwrap_err();
    assert!(matches!(err, rockit_edge::engine::EngineError::Cancelled), "{err}");
}

fn walkdir_count(dir: &Path) -> usize {
    let mut n = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_dir() {
            n += walkdir_count(&entry.path());
        } else {
            n += 1;
        }
    }
    n
}

#[test]
fn evicting_a_build_removes_only_the_chunks_no_retained_build_uses() {
    let depot = Depot::new(small_engine());
    let (m1, m2) = (depot.import(&game_v1()), depot.import(&game_v2()));
    let only_in_v1: Vec<_> = m1.chunk_ids().into_iter().filter(|id| !m2.chunk_ids().contains(id)).cloned().collect();
    assert!(!only_in_v1.is_empty());
    let leftover = depot.store.root().join("ab").join(".tmp-chunk-1");
    std::fs::create_dir_all(leftover.parent().unwrap()).unwrap();
    std::fs::write(&leftover, b"half a chunk").unwrap();

    let removed = depot.store.prune(&[&m2]).unwrap();
    assert_eq!(removed, only_in_v1.len());
    assert!(only_in_v1.iter().all(|id| !depot.store.contains(id).unwrap()));
    assert!(!leftover.exists());
    let image = depot.publish(2, &m2);
    let out = tempfile::tempdir().unwrap();
    let origin = depot.origin();
    Client::new(&origin, ORG, APP).rebuild(2, Some(&image.dxf_name), &out.path().join("t")).unwrap();
    assert_same_tree(&read_tree(&out.path().join("t")), &game_v2());
}

#[test]
fn leftovers_of_interrupted_writes_are_removed_and_published_objects_kept() {
    let depot = Depot::new(small_engine());
    let m = depot.import(&game_v1());
    let image = depot.publish(1, &m);
    let build_dir = layout::build_dir(&depot.root, ORG, APP, 1);
    std::fs::create_dir(build_dir.join(".tmp-dxf-123-0-0")).unwrap();
    std::fs::write(build_dir.join(".tmp-w-123-1-0"), b"partial").unwrap();

    assert_eq!(rockit_edge::engine::fsutil::remove_leftovers(&build_dir).unwrap(), 2);
    let names: Vec<String> =
        std::fs::read_dir(&build_dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    assert_eq!(names, vec![image.dxf_name]);
}

#[test]
fn a_saved_manifest_loads_back_equal() {
    let depot = Depot::new(small_engine());
    let m = depot.import(&game_v2());
    let path = depot.root.join("manifests").join("0002.zst");
    m.save(&path).unwrap();
    assert_eq!(Manifest::load(&path).unwrap(), m);
    assert!(m.warnings.iter().any(|w| w.code == "emptyFiles"), "{:?}", m.warnings);
}

#[test]
fn cancelled_image_and_patch_writes_leave_nothing_published() {
    let depot = Depot::new(small_engine());
    let (m1, m2) = (depot.import(&game_v1()), depot.import(&game_v2()));
    let image2 = depot.publish(2, &m2);
    let cancel = || true;
    let hooks = Hooks::new(&|_, _| {}, &cancel);
    let build_dir = layout::build_dir(&depot.root, ORG, APP, 1);
    let err = depot.engine.write_image(&m1, &depot.store, &build_dir, &hooks).unwrap_err();
    assert!(matches!(err, rockit_edge::engine::EngineError::Cancelled), "{err}");
    assert_eq!(std::fs::read_dir(&build_dir).unwrap().count(), 0, "no image and no staging directory left");

    let patch_dir = layout::patch_dir(&depot.root, ORG, APP, 2, 1);
    let err = depot.engine.write_patch(&m1, &m2, &image2, &depot.store, &patch_dir, &hooks).unwrap_err();
    assert!(matches!(err, rockit_edge::engine::EngineError::Cancelled), "{err}");
    assert_eq!(std::fs::read_dir(&patch_dir).unwrap().count(), 0, "no patch.zst, patch.dat or temporary file left");
}

#[test]
fn an_image_written_earlier_opens_with_the_same_name_size_and_packs() {
    let depot = Depot::new(small_engine());
    let written = depot.publish(1, &depot.import(&game_v1()));
    let opened = ImageInfo::open(&written.dir).unwrap();
    assert_eq!(opened, written);

    let renamed = written.dir.with_file_name("0123456789abcdef0123456789abcdef");
    std::fs::rename(&written.dir, &renamed).unwrap();
    let err = ImageInfo::open(&renamed).unwrap_err();
    assert!(err.to_string().contains("index hash is"), "{err}");
}

#[test]
fn a_delta_shared_by_two_patches_of_a_build_is_computed_once_and_the_patches_are_unchanged() {
    let depot = Depot::new(small_engine());
    let v1 = game_v1();
    // Build 2 keeps bin/game's content under another name: its delta to build 3 is the same
    // frame as from build 1, and must name build 2's path.
    let mut v1b = v1.clone();
    let game = v1b.remove("bin/game").expect("bin/game");
    v1b.insert("bin/game-launcher".into(), game);
    let v2 = game_v2();
    let (m1, m2, m3) = (depot.import(&v1), depot.import(&v1b), depot.import(&v2));
    depot.publish(1, &m1);
    depot.publish(2, &m2);
    let image3 = depot.publish(3, &m3);

    let cache = rockit_edge::engine::DeltaCache::default();
    let hooks = Hooks::default();
    let write = |from: u32, m: &Manifest| {
        let dir = layout::patch_dir(&depot.root, ORG, APP, 3, from);
        depot.engine.write_patch_with(m, &m3, &image3, &depot.store, &dir, &cache, &hooks).unwrap()
    };
    let first = write(2, &m2);
    assert_eq!(first.deltas_reused, 0);
    let second = write(1, &m1);
    assert!(second.deltas_reused >= 1, "bin/game's delta is computed again: {:?}", second.op_counts);

    // The reused frames give the bytes a patch computed alone gives.
    let alone = tempfile::tempdir().unwrap();
    let fresh = depot.engine.write_patch(&m1, &m3, &image3, &depot.store, alone.path(), &hooks).unwrap();
    assert_eq!(fresh.deltas_reused, 0);
    for name in [layout::PATCH_FILE, layout::PATCH_DATA_FILE] {
        assert_eq!(std::fs::read(second.dir.join(name)).unwrap(), std::fs::read(alone.path().join(name)).unwrap());
    }
    let from2 = Patch::load(&first.dir).unwrap();
    let sources: Vec<&str> = from2
        .files
        .iter()
        .filter_map(|e| match &e.kind {
            PatchKind::File { op: FileOp::Delta { segments }, .. } if e.path == "bin/game" => {
                Some(segments[0].source.as_str())
            }
            _ => None,
        })
        .collect();
    assert_eq!(sources, ["bin/game-launcher"]);

    let origin = depot.origin();
    for from in [1, 2] {
        let out = tempfile::tempdir().unwrap();
        let tree = out.path().join("tree");
        let client = Client::new(&origin, ORG, APP);
        client.rebuild(from, None, &tree).unwrap();
        client.update(from, 3, &tree).unwrap();
        assert_same_tree(&read_tree(&tree), &v2);
    }
}

/// A shared library whose rebuild moved every address after the first third a little, as a
/// change early in the code does.
fn elf_library(shift: u32) -> Vec<u8> {
    let mut bytes = b"\x7fELF\x02\x01\x01\0".to_vec();
    for i in 0..120_000u32 {
        let word = (i.wrapping_mul(2654435761) >> 7) & 0xffff_f000;
        bytes.extend_from_slice(&(word + if i > 40_000 { shift } else { 0 }).to_le_bytes());
    }
    bytes
}

#[test]
fn a_rebuilt_library_travels_as_a_bsdiff_delta_in_a_format_2_patch_that_the_client_applies() {
    let depot = Depot::new(small_engine());
    let mut v1 = game_v1();
    v1.insert("lib/libengine.so".into(), exe(elf_library(0)));
    let mut v2 = game_v2();
    v2.insert("lib/libengine.so".into(), exe(elf_library(0x40)));
    let (m1, m2) = (depot.import(&v1), depot.import(&v2));
    depot.publish(1, &m1);
    let image2 = depot.publish(2, &m2);
    let info = depot.patch((1, &m1), (2, &m2, &image2));
    let patch = Patch::load(&info.dir).unwrap();
    assert_eq!(patch.format, 2, "a patch with a bsdiff delta is format 2");
    let codecs: Vec<(String, DeltaCodec)> = patch
        .files
        .iter()
        .filter_map(|e| match &e.kind {
            PatchKind::File { op: FileOp::Delta { segments }, .. } => Some((e.path.clone(), segments[0].codec)),
            _ => None,
        })
        .collect();
    assert!(codecs.contains(&("lib/libengine.so".to_string(), DeltaCodec::Bsdiff)), "{codecs:?}");
    // Data files keep zstd deltas.
    assert!(codecs.contains(&("data/level1.pak".to_string(), DeltaCodec::Zstd)), "{codecs:?}");

    let out = tempfile::tempdir().unwrap();
    let tree = out.path().join("tree");
    let origin = depot.origin();
    let client = Client::new(&origin, ORG, APP);
    client.rebuild(1, None, &tree).unwrap();
    client.update(1, 2, &tree).unwrap();
    assert_same_tree(&read_tree(&tree), &v2);
}

#[test]
fn a_patch_without_bsdiff_deltas_stays_format_1_for_older_clients() {
    let depot = Depot::new(small_engine());
    let (m1, m2) = (depot.import(&game_v1()), depot.import(&game_v2()));
    let image2 = depot.publish(2, &m2);
    let info = depot.patch((1, &m1), (2, &m2, &image2));
    assert_eq!(Patch::load(&info.dir).unwrap().format, 1);
}

/// Turns the app's chunk store into what versions before segments wrote: one file per chunk,
/// `<id[..2]>/<id>`, holding a codec byte (0 raw, 1 zstd) then the stored bytes.
fn rewrite_as_one_file_per_chunk(root: &Path, manifest: &Manifest) {
    let store = ChunkStore::open(root).unwrap();
    for id in manifest.chunk_ids() {
        let stored = store.get(id).unwrap();
        let mut bytes = vec![match stored.codec {
            Codec::Raw => 0u8,
            Codec::Zstd => 1,
        }];
        bytes.extend(stored.bytes);
        let hex = id.to_hex();
        let path = root.join(&hex[..2]).join(&hex);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, bytes).unwrap();
    }
    std::fs::remove_file(root.join("index")).unwrap();
    std::fs::remove_dir_all(root.join("segments")).unwrap();
}

#[test]
fn a_store_written_before_segments_keeps_serving_its_builds_after_the_upgrade() {
    let depot = Depot::new(small_engine());
    let (v1, v2) = (game_v1(), game_v2());
    let m1 = depot.import(&v1);
    let root = depot.store.root().to_path_buf();
    rewrite_as_one_file_per_chunk(&root, &m1);
    // The upgraded server opens the old store as it is: no migration step.
    let depot = Depot { store: ChunkStore::open(&root).unwrap(), ..depot };
    depot.publish(1, &m1);
    let m2 = depot.import(&v2);
    let image2 = depot.publish(2, &m2);
    depot.patch((1, &m1), (2, &m2, &image2));

    let new_in_v2 = m2.chunk_ids().into_iter().filter(|id| !m1.chunk_ids().contains(id)).count();
    assert!(new_in_v2 > 0 && new_in_v2 < m2.chunk_ids().len(), "v2 shares some chunks with v1, not all");
    let index_len = std::fs::metadata(root.join("index")).unwrap().len();
    assert_eq!(index_len, 8 + 64 * new_in_v2 as u64, "only chunks the old store lacked were written again");
    let origin = depot.origin();
    let work = tempfile::tempdir().unwrap();
    let tree = work.path().join("tree");
    Client::new(&origin, ORG, APP).rebuild(1, None, &tree).unwrap();
    assert_same_tree(&read_tree(&tree), &v1);
    Client::new(&origin, ORG, APP).update(1, 2, &tree).unwrap();
    assert_same_tree(&read_tree(&tree), &v2);

    // Evicting build 1 removes its old-layout chunks; build 2 still publishes from both layouts.
    let only_in_v1 = m1.chunk_ids().into_iter().filter(|id| !m2.chunk_ids().contains(id)).count();
    assert_eq!(depot.store.prune(&[&m2]).unwrap(), only_in_v1);
    let again = tempfile::tempdir().unwrap();
    let image2_again = depot.publish(2, &m2);
    assert_eq!(image2_again.dxf_name, image2.dxf_name);
    Client::new(&origin, ORG, APP).rebuild(2, None, &again.path().join("t")).unwrap();
    assert_same_tree(&read_tree(&again.path().join("t")), &v2);
}
