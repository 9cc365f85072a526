//! Measurement, not a test: imports two build tars, writes both images and the patch between
//! them, applies the patch with the reference client and checks the result against a full
//! rebuild; prints sizes, op counts and times. Usage:
//!
//! ```text
//! cargo run --release --example engine_patch_size -- OLD.tar NEW.tar
//! ```

use std::path::Path;
use std::time::Instant;

use rockit_edge::engine::client::{Client, DirOrigin};
use rockit_edge::engine::{layout, ChunkStore, Engine, EngineOptions, Hooks};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [old, new] = args.as_slice() else {
        return Err("usage: engine_patch_size OLD.tar NEW.tar".into());
    };
    let work = tempfile::tempdir()?;
    let store = ChunkStore::open(work.path().join("chunks"))?;
    let engine = Engine::start(EngineOptions::default())?;
    let hooks = Hooks::default();
    let root = work.path().join("depot");

    let t = Instant::now();
    let m1 = engine.import_tar(std::fs::File::open(old)?, None, &store, &hooks)?;
    let import_old = t.elapsed();
    let t = Instant::now();
    let m2 = engine.import_tar(std::fs::File::open(new)?, None, &store, &hooks)?;
    let import_new = t.elapsed();
    let image1 = engine.write_image(&m1, &store, &layout::build_dir(&root, "o", "a", 1), &hooks)?;
    let t = Instant::now();
    let image2 = engine.write_image(&m2, &store, &layout::build_dir(&root, "o", "a", 2), &hooks)?;
    let image_time = t.elapsed();
    let t = Instant::now();
    let patch = engine.write_patch(&m1, &m2, &image2, &store, &layout::patch_dir(&root, "o", "a", 2, 1), &hooks)?;
    let patch_time = t.elapsed();

    // Which files fall back to fetching new chunks, and what that costs: bytes a launcher
    // downloads beyond the patch.
    for entry in &rockit_edge::engine::Patch::load(&patch.dir)?.files {
        if let rockit_edge::engine::patch::PatchKind::File {
            op: rockit_edge::engine::patch::FileOp::Fetch { pieces },
            size,
            ..
        } = &entry.kind
        {
            let remote: u64 = pieces
                .iter()
                .map(|p| match p {
                    rockit_edge::engine::patch::Piece::Remote { stored_len, .. } => *stored_len as u64,
                    _ => 0,
                })
                .sum();
            println!("fetch: {} ({size} bytes, {remote} bytes from the image)", entry.path);
        }
    }

    let origin = DirOrigin { root: root.clone() };
    let tree = work.path().join("tree");
    Client::new(&origin, "o", "a").rebuild(1, None, &tree)?;
    let t = Instant::now();
    let update = Client::new(&origin, "o", "a").update(1, 2, &tree)?;
    let apply_time = t.elapsed();
    let full = work.path().join("full");
    Client::new(&origin, "o", "a").rebuild(2, None, &full)?;
    compare(&tree, &full)?;

    let [same, chunks, delta, fetch] = patch.op_counts;
    println!("files: {} → {}", m1.files.len(), m2.files.len());
    println!(
        "import: {:.2} s old, {:.2} s new (content {} bytes)",
        import_old.as_secs_f64(),
        import_new.as_secs_f64(),
        m2.content_bytes()
    );
    println!(
        "image: old {} bytes, new {} bytes ({:.2} s)",
        image1.size_bytes,
        image2.size_bytes,
        image_time.as_secs_f64()
    );
    let index_bytes = std::fs::metadata(patch.dir.join(layout::PATCH_FILE))?.len();
    println!(
        "patch: {} bytes (patch.zst {index_bytes}, patch.dat {}) in {:.2} s; ops same {same}, chunks {chunks}, delta {delta}, fetch {fetch}",
        patch.size_bytes,
        patch.size_bytes - index_bytes,
        patch_time.as_secs_f64()
    );
    println!(
        "apply: {} bytes fetched, {} files written, {} kept, {:.2} s; tree equals the full rebuild",
        update.bytes_fetched,
        update.files_written,
        update.files_kept,
        apply_time.as_secs_f64()
    );
    Ok(())
}

/// Every file of `a` equals the one in `b` and both have the same paths.
fn compare(a: &Path, b: &Path) -> Result<(), Box<dyn std::error::Error>> {
    let mut names_a: Vec<_> = std::fs::read_dir(a)?.map(|e| e.map(|e| e.file_name())).collect::<Result<_, _>>()?;
    let mut names_b: Vec<_> = std::fs::read_dir(b)?.map(|e| e.map(|e| e.file_name())).collect::<Result<_, _>>()?;
    names_a.sort();
    names_b.sort();
    if names_a != names_b {
        return Err(format!("{} and {} list different names", a.display(), b.display()).into());
    }
    for name in names_a {
        let (pa, pb) = (a.join(&name), b.join(&name));
        let meta = std::fs::symlink_metadata(&pa)?;
        if meta.file_type().is_symlink() {
            if std::fs::read_link(&pa)? != std::fs::read_link(&pb)? {
                return Err(format!("{} differs", pa.display()).into());
            }
        } else if meta.is_dir() {
            compare(&pa, &pb)?;
        } else if std::fs::read(&pa)? != std::fs::read(&pb)? {
            return Err(format!("{} differs", pa.display()).into());
        }
    }
    Ok(())
}
