//! The manifest of one build: every entry of the tar, sorted by path, with the chunks of each
//! file. It is what images and patches are made from, and what eviction consults to know which
//! chunks a retained build still uses.

use std::collections::HashSet;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::error::{EngineError, IoContext, Result};
use super::fsutil::write_durably;
use super::store::ChunkId;

/// Bumped whenever the manifest's meaning changes; a manifest of another version is refused.
pub const MANIFEST_FORMAT: u32 = 1;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub format: u32,
    /// Sorted by `path` (byte order), unique.
    pub files: Vec<Entry>,
    /// Oddities that did not block the import (empty files, names equal up to case).
    #[serde(default)]
    pub warnings: Vec<Warning>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// Relative, `/`-separated, no `.` or `..` components, no trailing slash.
    pub path: String,
    /// Position in the tar (0-based): the image's load order starts from it.
    pub order: u64,
    #[serde(flatten)]
    pub kind: EntryKind,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum EntryKind {
    File { mode: u32, size: u64, sha256: String, chunks: Vec<ChunkRef> },
    Dir { mode: u32 },
    Symlink { target: String },
}

/// One chunk of a file, in file order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkRef {
    pub id: ChunkId,
    pub len: u32,
}

/// A non-blocking oddity found while importing, for the task's `warnings`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Warning {
    /// Stable machine-readable kind: `compressedTar`, `emptyFiles`, `caseCollision`.
    pub code: String,
    pub message: String,
}

impl Manifest {
    /// Every distinct chunk id the build uses.
    pub fn chunk_ids(&self) -> HashSet<&ChunkId> {
        self.files
            .iter()
            .filter_map(|e| match &e.kind {
                EntryKind::File { chunks, .. } => Some(chunks.iter().map(|c| &c.id)),
                _ => None,
            })
            .flatten()
            .collect()
    }

    /// Total bytes of file contents.
    pub fn content_bytes(&self) -> u64 {
        self.files.iter().map(|e| if let EntryKind::File { size, .. } = e.kind { size } else { 0 }).sum()
    }

    /// Writes the manifest durably (zstd-compressed JSON).
    pub fn save(&self, path: &Path) -> Result<()> {
        let json = serde_json::to_vec(self).map_err(|e| EngineError::Invalid(format!("manifest: {e}")))?;
        let packed = zstd::bulk::compress(&json, 3).ctx(|| "compress manifest".into())?;
        write_durably(path, &packed)
    }

    pub fn load(path: &Path) -> Result<Manifest> {
        let file = std::fs::File::open(path).ctx(|| format!("open {}", path.display()))?;
        let json = zstd::stream::read::Decoder::new(file)
            .and_then(|mut d| {
                let mut v = Vec::new();
                std::io::Read::read_to_end(&mut d, &mut v).map(|_| v)
            })
            .ctx(|| format!("read {}", path.display()))?;
        let manifest: Manifest =
            serde_json::from_slice(&json).map_err(|e| EngineError::Corrupt(format!("{}: {e}", path.display())))?;
        if manifest.format != MANIFEST_FORMAT {
            return Err(EngineError::Corrupt(format!("{}: manifest format {}", path.display(), manifest.format)));
        }
        Ok(manifest)
    }
}
