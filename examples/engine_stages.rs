//! Measurement, not a test: where mkraw's time goes, stage by stage, on a series of real tars
//! (e.g. bench/pipeline/inputs.sh output or bench/pipeline/synthetic.py builds). Each tar is
//! imported into one chunk store, its image written and published to an `fs` origin directory
//! (as deploy does), and the patch from the previous tar of the series; at the end, the chunks
//! only older builds use are pruned (eviction with maxBuilds 1). Wall time and process
//! CPU time are printed per stage, with each stage's peak RSS (VmHWM, reset before the stage)
//! and peak live heap (a counting allocator: exact, unlike RSS, which keeps freed pages), and
//! the live heap left after it (what the next stages carry, e.g. the manifest). Usage:
//!
//! ```text
//! cargo run --release --example engine_stages -- WORK_DIR OLD.tar NEW.tar [NEWER.tar …]
//! ```

use std::alloc::{GlobalAlloc, Layout, System};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use rockit_edge::engine::FileChunks;
use rockit_edge::engine::{layout, ChunkStore, Engine, EngineOptions, Hooks, Manifest};
use rockit_edge::publish::{self, Destination, DirDestination};

/// The system allocator, counting live bytes and their peak since the last reset.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is forwarded to the system allocator unchanged; only counters are added.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
            grew(new_size);
        }
        p
    }
}

fn grew(size: usize) {
    let live = LIVE.fetch_add(size, Ordering::Relaxed) + size;
    PEAK.fetch_max(live, Ordering::Relaxed);
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

const MIB: f64 = (1 << 20) as f64;

/// This process's peak RSS (VmHWM) in bytes.
fn peak_rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kib = status.lines().find_map(|l| l.strip_prefix("VmHWM:")).and_then(|v| v.trim().strip_suffix("kB"));
    kib.and_then(|v| v.trim().parse::<u64>().ok()).unwrap_or(0) * 1024
}

/// Starts a new peak for [`peak_rss`] (at the current RSS) and for the heap counter.
fn reset_peaks() {
    // Linux: writing 5 to clear_refs resets VmHWM (proc(5)); without it the peak spans stages.
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    PEAK.store(LIVE.load(Ordering::Relaxed), Ordering::Relaxed);
}

/// User + system CPU seconds of this process so far (every thread).
fn cpu_seconds() -> f64 {
    // SAFETY: getrusage fills the struct we own.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    secs(usage.ru_utime) + secs(usage.ru_stime)
}

/// Runs `f`, printing its wall and CPU time, peak RSS and heap, and the heap left after it.
fn stage<T>(name: &str, bytes: u64, f: impl FnOnce() -> T) -> T {
    reset_peaks();
    let (wall, cpu) = (Instant::now(), cpu_seconds());
    let out = f();
    let (wall, cpu) = (wall.elapsed().as_secs_f64(), cpu_seconds() - cpu);
    println!(
        "  {name:<8} {wall:7.2} s wall {cpu:7.2} s CPU  {:6.0} MB/s  peak RSS {:6.1} MiB  peak heap {:6.1} MiB  heap after {:6.1} MiB",
        bytes as f64 / 1e6 / wall,
        peak_rss() as f64 / MIB,
        PEAK.load(Ordering::Relaxed) as f64 / MIB,
        LIVE.load(Ordering::Relaxed) as f64 / MIB,
    );
    out
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some((work, tars)) = args.split_first() else {
        return Err("usage: engine_stages WORK_DIR TAR [TAR …]".into());
    };
    let work = Path::new(work);
    let store = ChunkStore::open(work.join("chunks"))?;
    let engine = Engine::start(EngineOptions::default())?;
    let hooks = Hooks::default();
    let mut previous: Option<Manifest> = None;
    for (n, tar) in tars.iter().enumerate() {
        let len = std::fs::metadata(tar)?.len();
        println!("{tar} ({len} bytes)");
        let file = std::fs::File::open(tar)?;
        // As mkraw does: the import's chunk lists stay on disk, the manifest is saved before the
        // image, and only a patch loads it back whole.
        let outline = stage("import", len, || engine.import_outline(file, Some(len), &store, &hooks))?;
        println!("           {} entries, {} chunk refs", outline.entries().len(), outline.chunk_refs());
        let manifest_path = work.join(format!("manifest-{}.zst", n + 1));
        stage("save", len, || outline.save(&manifest_path))?;
        let build_dir = layout::build_dir(work, "org", "app", n as u32 + 1);
        let image = stage("image", len, || engine.write_image(&outline, &store, &build_dir, &hooks))?;
        println!("           image {} bytes", image.size_bytes);
        let rel = format!("{}/{}", layout::build_rel("org", "app", n as u32 + 1), image.dxf_name);
        let origin = DirDestination::new("origin", work.join("origin"));
        stage("publish", len, || -> Result<(), Box<dyn std::error::Error>> {
            for (src, rel) in publish::objects_of(work, &[rel])? {
                origin.put_file(&rel, &src)?;
            }
            Ok(())
        })?;
        drop(outline);
        if n + 1 == tars.len() && previous.is_none() {
            break;
        }
        let manifest = stage("load", len, || Manifest::load(&manifest_path))?;
        if let Some(old) = &previous {
            let dir = layout::patch_dir(work, "org", "app", n as u32 + 1, n as u32);
            let patch = stage("patch", len, || engine.write_patch(old, &manifest, &image, &store, &dir, &hooks))?;
            println!("           patch {} bytes, ops same/chunks/delta/fetch {:?}", patch.size_bytes, patch.op_counts);
        }
        previous = Some(manifest);
    }
    // Eviction as deploy does it with maxBuilds 1: every build but the last leaves the store.
    // The manifest is read inside the stage, as the deploy task reads it.
    if tars.len() > 1 {
        let last = work.join(format!("manifest-{}.zst", tars.len()));
        drop(previous);
        let removed = stage("prune", 0, || -> Result<usize, Box<dyn std::error::Error>> {
            Ok(store.prune(&[&Manifest::load(&last)?])?)
        })?;
        println!("           {removed} chunks removed");
    }
    Ok(())
}
