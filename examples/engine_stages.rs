//! Measurement, not a test: where mkraw's time goes, stage by stage, on a series of real tars
//! (e.g. bench/pipeline/inputs.sh output or bench/pipeline/synthetic.py builds). Each tar is
//! imported into one chunk store, its image written and published to an `fs` origin directory
//! (as deploy does), and the patch from the previous tar of the series; wall time and process
//! CPU time are printed per stage. Usage:
//!
//! ```text
//! cargo run --release --example engine_stages -- WORK_DIR OLD.tar NEW.tar [NEWER.tar …]
//! ```

use std::path::Path;
use std::time::Instant;

use rockit_edge::engine::{layout, ChunkStore, Engine, EngineOptions, Hooks, Manifest};
use rockit_edge::publish::{self, Destination, DirDestination};

/// User + system CPU seconds of this process so far (every thread).
fn cpu_seconds() -> f64 {
    // SAFETY: getrusage fills the struct we own.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    secs(usage.ru_utime) + secs(usage.ru_stime)
}

/// Runs `f`, printing its wall and CPU time.
fn stage<T>(name: &str, bytes: u64, f: impl FnOnce() -> T) -> T {
    let (wall, cpu) = (Instant::now(), cpu_seconds());
    let out = f();
    let (wall, cpu) = (wall.elapsed().as_secs_f64(), cpu_seconds() - cpu);
    println!("  {name:<8} {wall:7.2} s wall {cpu:7.2} s CPU  {:6.0} MB/s", bytes as f64 / 1e6 / wall);
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
        let manifest = stage("import", len, || engine.import_tar(file, Some(len), &store, &hooks))?;
        let build_dir = layout::build_dir(work, "org", "app", n as u32 + 1);
        let image = stage("image", len, || engine.write_image(&manifest, &store, &build_dir, &hooks))?;
        println!("           image {} bytes", image.size_bytes);
        let rel = format!("{}/{}", layout::build_rel("org", "app", n as u32 + 1), image.dxf_name);
        let origin = DirDestination::new("origin", work.join("origin"));
        stage("publish", len, || -> Result<(), Box<dyn std::error::Error>> {
            for (src, rel) in publish::objects_of(work, &[rel])? {
                origin.put_file(&rel, &src)?;
            }
            Ok(())
        })?;
        if let Some(old) = &previous {
            let dir = layout::patch_dir(work, "org", "app", n as u32 + 1, n as u32);
            let patch = stage("patch", len, || engine.write_patch(old, &manifest, &image, &store, &dir, &hooks))?;
            println!("           patch {} bytes, ops same/chunks/delta/fetch {:?}", patch.size_bytes, patch.op_counts);
        }
        previous = Some(manifest);
    }
    Ok(())
}
