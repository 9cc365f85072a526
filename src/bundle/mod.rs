//! The organization bundle (docs/FORMAT.md, "Organization bundles"): one file that carries an
//! organization from one box to another. Pure format code: it knows neither HTTP nor SQL.
//!
//! Layout: a fixed header (magic, version, KDF parameters, a passphrase check value), then
//! frames (`kind`, `length`, payload): one JSON document (encrypted), any number of files, and
//! an end frame holding an HMAC-SHA-256 over every byte before it. Files are streamed through,
//! never held.

pub mod crypto;
pub mod document;
pub mod read;
pub mod write;

pub use crypto::Keys;
pub use read::{read_bundle, unlock};
pub use write::BundleWriter;

/// The first eight bytes of every bundle.
pub const MAGIC: &[u8; 8] = b"RKEBNDL\0";
/// The format version this server writes and the newest it reads.
pub const VERSION: u16 = 1;
/// magic, version (u16), iterations (u32), salt, passphrase check value.
pub const HEADER_LEN: usize = 8 + 2 + 4 + crypto::SALT_LEN + crypto::CHECK_LEN;
/// PBKDF2 iterations a reader accepts: fewer is a bundle nobody should trust its secrets to,
/// more is a way to make the importing box spin.
pub const MIN_ITERATIONS: u32 = 1_000;
pub const MAX_ITERATIONS: u32 = 10_000_000;
/// The organization's rows, as JSON. Far above any real organization; bounds reader memory.
pub const MAX_DOCUMENT: u64 = 64 << 20;
/// Longest relative path of a file frame.
pub const MAX_PATH: usize = 1024;

pub(crate) const KIND_END: u8 = 0;
pub(crate) const KIND_DOCUMENT: u8 = 1;
pub(crate) const KIND_FILE: u8 = 2;

/// Why a bundle was not read (or written). Each is a different answer to the importer.
#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    #[error("the upload is not an organization bundle")]
    NotABundle,
    #[error("the bundle has format version {0}, newer than this server reads ({VERSION}); upgrade this box first")]
    NewerVersion(u16),
    #[error("the passphrase does not open this bundle")]
    WrongPassphrase,
    #[error("the bundle is truncated: it ends before its integrity check")]
    Truncated,
    #[error("the bundle failed its integrity check: it was changed after it was exported")]
    Tampered,
    #[error("the bundle cannot be used: {0}")]
    Refused(String),
    #[error("reading or writing the bundle failed ({0})")]
    Io(std::io::ErrorKind),
}

impl From<std::io::Error> for BundleError {
    fn from(e: std::io::Error) -> Self {
        // Only the kind: an OS message could name paths of the state directory.
        BundleError::Io(e.kind())
    }
}

/// Whether `path` may name a file of a bundle: relative, `/`-separated, no empty, `.` or `..`
/// component, only characters that names and build files use. A reader refuses anything else,
/// so a bundle can never write outside the directory it is unpacked into.
pub fn valid_path(path: &str) -> bool {
    !path.is_empty()
        && path.len() <= MAX_PATH
        && path.split('/').all(|part| {
            !part.is_empty()
                && part != "."
                && part != ".."
                && part.bytes().all(|b| b.is_ascii_alphanumeric() || b"_-.[]".contains(&b))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_relative_paths_are_valid() {
        assert!(valid_path("builds/game/manifests/0001.json"));
        assert!(valid_path("depot/dxf/game[1]/0001/x/pack-00000"));
        for bad in ["", "/etc/passwd", "a//b", "a/../b", "./a", "a/.", "a\\b", "a/b c", "a/\u{e9}"] {
            assert!(!valid_path(bad), "{bad:?}");
        }
    }
}
