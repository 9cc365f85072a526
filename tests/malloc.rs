//! The allocator setting `main` applies (src/malloc.rs). Alone in its test binary: the resident
//! memory it reads is then this test's, not other tests' running beside it. glibc only: the
//! setting is a no-op elsewhere.

#[cfg(all(target_os = "linux", target_env = "gnu"))]
/// Anonymous resident memory of this process, in bytes.
fn resident_anonymous() -> i64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("RssAnon:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse::<i64>().unwrap() * 1024
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
/// A block of `size` bytes whose every page was written (a zeroed one could stay unbacked).
fn touched(size: usize) -> Vec<u8> {
    vec![0xa5; size]
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[test]
fn a_large_block_goes_back_to_the_system_when_freed_even_after_one_like_it_was_freed_before() {
    rockit_edge::malloc::tune();
    const SIZE: usize = 16 << 20;
    // With glibc's defaults, freeing this first block raises the mmap threshold to its size,
    // so the next one like it comes from a heap and stays resident once freed.
    drop(std::hint::black_box(touched(SIZE)));
    let before = resident_anonymous();
    let block = std::hint::black_box(touched(SIZE));
    let held = resident_anonymous();
    drop(block);
    let after = resident_anonymous();
    let mib = |bytes: i64| bytes as f64 / (1 << 20) as f64;
    assert!(held - before >= 15 << 20, "the block was not resident: +{:.1} MiB", mib(held - before));
    assert!(held - after >= 15 << 20, "freed, the block stayed resident: {:+.1} MiB", mib(after - held));
}
