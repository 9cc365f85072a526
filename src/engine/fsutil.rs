//! Durable file writes: every output is written to a temporary name, fsynced, renamed into
//! place and its directory fsynced, so a crash leaves either the old state or the whole new file.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use super::error::{IoContext, Result};

/// A name unique within this process, for temporary files and directories. The prefix marks
/// them as leftovers a cleanup may remove.
pub fn temp_name(hint: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let nanos =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
    format!(".tmp-{}-{}-{n}-{nanos}", hint, std::process::id())
}

/// Removes what a crash left in `dir` (not below it): temporary files and staging
/// directories of interrupted writes. Only safe while no engine call writes into `dir`, which
/// one import per app at a time guarantees. Returns how many were removed.
pub fn remove_leftovers(dir: &Path) -> Result<usize> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(super::error::EngineError::Io { context: format!("list {}", dir.display()), source: e }),
    };
    let mut removed = 0;
    for entry in entries {
        let entry = entry.ctx(|| format!("list {}", dir.display()))?;
        if !entry.file_name().to_string_lossy().starts_with(".tmp-") {
            continue;
        }
        let path = entry.path();
        let is_dir = entry.file_type().map(|t| t.is_dir()).unwrap_or(false);
        if is_dir { fs::remove_dir_all(&path) } else { fs::remove_file(&path) }
            .ctx(|| format!("remove {}", path.display()))?;
        removed += 1;
    }
    Ok(removed)
}

/// Copies `len` bytes at `src_at` of `src` to `dst_at` of `dst` with `copy_file_range`: the
/// kernel moves the bytes between page caches without a pass through this process's memory
/// (and shares extents where the filesystem can). Falls back to read and write where the
/// kernel or the filesystem pair cannot (another filesystem on old kernels, no support).
pub fn copy_range(src: &File, mut src_at: u64, dst: &File, mut dst_at: u64, mut len: u64) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    while len > 0 {
        let (mut off_in, mut off_out) = (src_at as libc::loff_t, dst_at as libc::loff_t);
        let want = len.min(1 << 30) as usize;
        // SAFETY: both descriptors are open files we borrow; the offsets are our own locals.
        let n = unsafe { libc::copy_file_range(src.as_raw_fd(), &mut off_in, dst.as_raw_fd(), &mut off_out, want, 0) };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            match e.raw_os_error() {
                Some(libc::EINTR) => continue,
                Some(libc::EXDEV | libc::ENOSYS | libc::EOPNOTSUPP | libc::EINVAL) => {
                    return copy_range_via_memory(src, src_at, dst, dst_at, len)
                }
                _ => return Err(e),
            }
        }
        if n == 0 {
            return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "source shorter than the range"));
        }
        (src_at, dst_at, len) = (src_at + n as u64, dst_at + n as u64, len - n as u64);
    }
    Ok(())
}

fn copy_range_via_memory(src: &File, src_at: u64, dst: &File, dst_at: u64, len: u64) -> std::io::Result<()> {
    use std::os::unix::fs::FileExt;
    let mut buf = vec![0u8; len.min(1 << 20) as usize];
    let mut done = 0;
    while done < len {
        let n = buf.len().min((len - done) as usize);
        src.read_exact_at(&mut buf[..n], src_at + done)?;
        dst.write_all_at(&buf[..n], dst_at + done)?;
        done += n as u64;
    }
    Ok(())
}

pub fn fsync_dir(dir: &Path) -> Result<()> {
    File::open(dir).and_then(|d| d.sync_all()).ctx(|| format!("fsync {}", dir.display()))
}

/// Writes `bytes` to `path` durably (temp, fsync, rename, fsync of the directory).
pub fn write_durably(path: &Path, bytes: &[u8]) -> Result<()> {
    write_durably_with(path, |f| f.write_all(bytes))
}

/// Like [`write_durably`], with the contents written by `fill` into the temporary file, for
/// contents streamed rather than held whole in memory.
pub fn write_durably_with(path: &Path, fill: impl FnOnce(&mut File) -> std::io::Result<()>) -> Result<()> {
    let dir = parent(path);
    fs::create_dir_all(&dir).ctx(|| format!("create {}", dir.display()))?;
    let tmp = dir.join(temp_name("w"));
    let result = (|| {
        let mut f = File::create(&tmp).ctx(|| format!("create {}", tmp.display()))?;
        fill(&mut f).ctx(|| format!("write {}", tmp.display()))?;
        f.sync_all().ctx(|| format!("fsync {}", tmp.display()))?;
        fs::rename(&tmp, path).ctx(|| format!("rename to {}", path.display()))
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result?;
    fsync_dir(&dir)
}

pub fn parent(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Lower-case hex of a byte string.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[(b >> 4) as usize] as char);
        s.push(DIGITS[(b & 15) as usize] as char);
    }
    s
}

/// SHA-256 of a byte string, as lower-case hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(ring::digest::digest(&ring::digest::SHA256, bytes).as_ref())
}

/// Starts the kernel writing back a file's new bytes while more are written, so the fsync
/// that makes the file durable waits only for the last stretch. Without it the bytes sit in
/// the page cache (up to a tenth of RAM before background writeback starts) and the fsync
/// writes them all at once: a second for a gigabyte, after the last byte arrived.
#[derive(Debug, Default)]
pub struct EarlyWriteback {
    /// Where the range not yet handed to writeback starts, and where written bytes end.
    from: u64,
    to: u64,
}

impl EarlyWriteback {
    /// Written bytes that make one writeback request: large enough that the requests are few,
    /// small enough that the final fsync has little left.
    pub const STEP: u64 = 8 << 20;

    /// For sequential writes from `offset` on (a resumed download).
    pub fn starting_at(offset: u64) -> EarlyWriteback {
        EarlyWriteback { from: offset, to: offset }
    }

    /// Records `len` more bytes written sequentially after the last ones (from offset 0, or the
    /// offset given to [`EarlyWriteback::starting_at`]).
    pub fn wrote(&mut self, file: &File, len: u64) {
        self.to += len;
        if self.to - self.from >= Self::STEP {
            start_writeback(file, self.from, self.to - self.from);
            self.from = self.to;
        }
    }
}

/// Asks the kernel to start writing `len` bytes at `from` of `file` to disk, without waiting.
/// A hint only: the fsync that follows writes whatever this did not and reports any error.
pub fn start_writeback(file: &File, from: u64, len: u64) {
    use std::os::fd::AsRawFd;
    // SAFETY: a borrowed, open descriptor and a plain range.
    unsafe {
        libc::sync_file_range(
            file.as_raw_fd(),
            from as libc::off64_t,
            len as libc::off64_t,
            libc::SYNC_FILE_RANGE_WRITE,
        );
    }
}

#[cfg(test)]
mod writeback_tests {
    use super::*;

    #[test]
    fn early_writeback_asks_for_each_step_once_and_leaves_the_tail_to_the_fsync() {
        let dir = tempfile::tempdir().unwrap();
        let mut file = File::create(dir.path().join("f")).unwrap();
        let mut writeback = EarlyWriteback::default();
        let piece = vec![7u8; 3 << 20];
        for _ in 0..6 {
            file.write_all(&piece).unwrap();
            writeback.wrote(&file, piece.len() as u64);
        }
        // 18 MiB written: requests at 9 MiB and 18 MiB, nothing pending.
        assert_eq!((writeback.from, writeback.to), (18 << 20, 18 << 20));
        file.write_all(&piece).unwrap();
        writeback.wrote(&file, piece.len() as u64);
        assert_eq!((writeback.from, writeback.to), (18 << 20, 21 << 20));
        file.sync_all().unwrap();
        assert_eq!(std::fs::metadata(dir.path().join("f")).unwrap().len(), 21 << 20);
    }
}
