//! How the C allocator (glibc) hands memory back, tuned for a server that lives for months.
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

/// Applies [`MMAP_THRESHOLD`]. Call it first thing in `main`, before threads start. A no-op
/// where the C library is not glibc.
pub fn return_large_blocks_when_freed() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets an allocator parameter; nothing else runs yet.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD as libc::c_int);
    }
}
