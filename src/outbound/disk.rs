//! Free space on the file system that will hold a download, checked before the first byte is
//! written: a half-written disk on an edge box stops every other write (sessions, tasks) too.

use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// Bytes available to this (unprivileged) process on the file system holding `path`.
pub fn available_bytes(path: &Path) -> io::Result<u64> {
    let c_path = CString::new(path.as_os_str().as_bytes()).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    let mut stat = std::mem::MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: c_path is a valid NUL-terminated string and stat points to writable memory of the
    // right type; statvfs only writes into it.
    let rc = unsafe { libc::statvfs(c_path.as_ptr(), stat.as_mut_ptr()) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: statvfs returned 0, so it filled the struct.
    let stat = unsafe { stat.assume_init() };
    #[allow(clippy::unnecessary_cast)] // the field types differ between libc targets
    Ok((stat.f_bavail as u64).saturating_mul(stat.f_frsize as u64))
}

/// Room for `needed` more bytes while keeping `reserve` free for the database and logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpaceShortage {
    pub needed: u64,
    pub available: u64,
    pub reserve: u64,
}

impl std::fmt::Display for SpaceShortage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "not enough disk space: the download needs {} bytes, {} are available and {} stay reserved",
            self.needed, self.available, self.reserve
        )
    }
}

/// Checks that `needed` bytes fit on the file system of `dir` with `reserve` bytes to spare.
pub fn ensure_room(dir: &Path, needed: u64, reserve: u64) -> io::Result<Result<(), SpaceShortage>> {
    let available = available_bytes(dir)?;
    if available >= needed.saturating_add(reserve) {
        Ok(Ok(()))
    } else {
        Ok(Err(SpaceShortage { needed, available, reserve }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_temp_directory_reports_some_free_space() {
        let dir = std::env::temp_dir();
        assert!(available_bytes(&dir).unwrap() > 0);
    }

    #[test]
    fn a_request_larger_than_the_disk_is_a_shortage() {
        let dir = std::env::temp_dir();
        let shortage = ensure_room(&dir, u64::MAX / 2, 0).unwrap().unwrap_err();
        assert_eq!(shortage.needed, u64::MAX / 2);
        assert!(shortage.to_string().contains("not enough disk space"));
    }

    #[test]
    fn a_small_request_fits() {
        assert_eq!(ensure_room(&std::env::temp_dir(), 1, 0).unwrap(), Ok(()));
    }

    #[test]
    fn a_missing_directory_is_an_io_error() {
        assert!(available_bytes(Path::new("/definitely/not/here")).is_err());
    }
}
