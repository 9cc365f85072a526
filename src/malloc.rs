//! How the C allocator (glibc) holds and hands back memory, tuned for a server that lives for
//! months.
//!
//! glibc gives an allocation above its mmap threshold (128 KiB at first) a mapping of its own,
//! unmapped when freed. But freeing such a block raises the threshold to its size (up to
//! 32 MiB) and the heap's trim threshold to twice that, so from then on blocks of that size come
//! from a heap and stay resident after they are freed. An import's image writer allocates ~9 MiB
//! of zstd tables for `index.zst` for under a second. In the bench, a server that had imported
//! an 8 GiB build and was importing a second one held 87 MiB of anonymous memory (5 MiB when
//! idle and fresh), most of it in ~9 MiB stretches of per-thread heaps (`/proc/PID/smaps`).
//! Fixing the threshold (which also stops its adjustment) returns every large block to the
//! system when freed, at the cost of a `mmap` and its page faults per large allocation, which
//! here come per image or per delta, never per chunk.

/// Allocations at least this large get a mapping of their own, returned on free. Above the
/// chunk buffers (at most 256 KiB) and compression contexts the engine reuses per thread.
pub const MMAP_THRESHOLD: usize = 1 << 20;

/// Heaps ("arenas") glibc may create for threads, per core. Its default, 8 per core, lets
/// each of the server's ~20 threads (HTTP workers, engine pool, task workers, database) keep a
/// heap of its own, and each heap keeps what was freed in it: measured in the pipeline bench
/// (one 1 GiB import and one under a list workload), the server's peak RSS over the run was
/// 42-46 MiB with the default and 31 MiB with 2 arenas on this 2-core box, the import no
/// slower (mkraw 165-169 against 161-171 MB/s).
pub const ARENAS_PER_CORE: usize = 1;

/// Applies [`MMAP_THRESHOLD`] and the arena limit ([`ARENAS_PER_CORE`], at least two). Call it
/// first thing in `main`, before threads start. A no-op where the C library is not glibc.
pub fn tune() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        let arenas = (cores * ARENAS_PER_CORE).max(2).min(libc::c_int::MAX as usize) as libc::c_int;
        // SAFETY: mallopt only sets allocator parameters; nothing else runs yet.
        unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD as libc::c_int);
            libc::mallopt(libc::M_ARENA_MAX, arenas);
        }
    }
}
