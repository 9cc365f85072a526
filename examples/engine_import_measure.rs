//! Measurement, not a test: import throughput and peak memory of the engine on a synthetic
//! build of a given size, next to `zstd -3 -T0` on the same tar (the import target is ≥ 0.6×
//! its throughput; bench/pipeline/baselines.sh runs the same baseline).
//! Peak RSS should not grow with the build size. Usage:
//!
//! ```text
//! cargo run --release --example engine_import_measure -- SIZE_MIB [WORK_DIR]
//! ```

use std::io::{BufWriter, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use rockit_edge::engine::{ChunkStore, Engine, EngineOptions, Hooks};

/// Deterministic bytes: half incompressible noise, half repetitive records, like game data.
fn fill(seed: u64, buf: &mut [u8]) {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    for (i, block) in buf.chunks_mut(4096).enumerate() {
        if i % 2 == 0 {
            for b in block.iter_mut() {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                *b = x as u8;
            }
        } else {
            for (j, b) in block.iter_mut().enumerate() {
                *b = b"record;hp=100;name=orc;level=7\n"[j % 31];
            }
        }
    }
}

/// Writes a tar of about `size` bytes: files from 4 KiB to 64 MiB, streamed, never in memory.
fn write_tar(path: &Path, size: u64) -> std::io::Result<()> {
    let mut builder = tar::Builder::new(BufWriter::new(std::fs::File::create(path)?));
    let mut written = 0u64;
    let mut n = 0u64;
    let mut buf = vec![0u8; 1 << 20];
    while written < size {
        let file_size = (4096u64 << (n % 15)).min(size - written).max(1);
        let mut header = tar::Header::new_gnu();
        header.set_size(file_size);
        header.set_mode(if n.is_multiple_of(7) { 0o755 } else { 0o644 });
        header.set_mtime(0);
        header.set_entry_type(tar::EntryType::Regular);
        header.set_path(format!("data/{:03}/file-{n:06}.bin", n % 50))?;
        header.set_cksum();
        let mut reader = Generated { seed: n, left: file_size, buf: &mut buf };
        builder.append(&header, &mut reader)?;
        written += file_size;
        n += 1;
    }
    builder.into_inner()?.flush()
}

struct Generated<'a> {
    seed: u64,
    left: u64,
    buf: &'a mut [u8],
}

impl std::io::Read for Generated<'_> {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        let n = out.len().min(self.buf.len()).min(self.left as usize);
        fill(self.seed.wrapping_add(self.left), &mut self.buf[..n]);
        out[..n].copy_from_slice(&self.buf[..n]);
        self.left -= n as u64;
        Ok(n)
    }
}

/// Peak resident memory of this process (kB), from /proc.
fn peak_rss_kb() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let size_mib: u64 = args.first().map(|s| s.parse()).transpose()?.unwrap_or(256);
    let work = match args.get(1) {
        Some(dir) => tempfile::tempdir_in(dir)?,
        None => tempfile::tempdir()?,
    };
    let tar = work.path().join("native-build.tar");
    write_tar(&tar, size_mib << 20)?;
    let tar_len = std::fs::metadata(&tar)?.len();
    let mb = tar_len as f64 / 1e6;

    let t = Instant::now();
    let zstd = Command::new("zstd").args(["-3", "-T0", "-q", "-c"]).arg(&tar).stdout(Stdio::null()).status();
    let zstd_time = t.elapsed().as_secs_f64();
    let zstd_line = match zstd {
        Ok(s) if s.success() => format!("{:.0} MB/s", mb / zstd_time),
        _ => "not available".to_string(),
    };

    // Reset the peak so that generating the tar does not count.
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    let store = ChunkStore::open(work.path().join("chunks"))?;
    let engine = Engine::start(EngineOptions::default())?;
    let t = Instant::now();
    let manifest = engine.import_tar(std::fs::File::open(&tar)?, Some(tar_len), &store, &Hooks::default())?;
    let import_time = t.elapsed().as_secs_f64();
    println!("tar: {mb:.0} MB, {} files", manifest.files.len());
    println!("zstd -3 -T0: {zstd_line}");
    println!(
        "engine import: {:.0} MB/s ({:.2} s), peak RSS {} MB",
        mb / import_time,
        import_time,
        peak_rss_kb() / 1024
    );
    Ok(())
}
