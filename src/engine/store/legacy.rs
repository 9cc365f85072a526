//! The first chunk store layout (v1): one file per chunk, `<root>/<id[..2]>/<id>`, holding a
//! codec byte and the stored bytes. Stores written by earlier versions keep working without a
//! migration pass: their chunks are read, deduplicated against and pruned here, and new chunks
//! go to segments only, so the v1 files disappear as the builds using them are evicted.

use std::fs::{self, File};
use std::io::Read;
use std::path::{Path, PathBuf};

use super::index::Key;
use super::{Codec, StoredChunk};
use crate::engine::error::{EngineError, IoContext, Result};
use crate::engine::fsutil;

fn is_fanout_dir(name: &str) -> bool {
    name.len() == 2 && name.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

pub fn path(root: &Path, id: &str) -> PathBuf {
    root.join(&id[..2]).join(id)
}

/// Whether `root` holds any v1 fan-out directory (so lookups must look there too).
pub fn present(root: &Path) -> Result<bool> {
    for entry in fs::read_dir(root).ctx(|| format!("list {}", root.display()))? {
        let entry = entry.ctx(|| format!("list {}", root.display()))?;
        if is_fanout_dir(&entry.file_name().to_string_lossy()) {
            return Ok(true);
        }
    }
    Ok(false)
}

/// The chunk as stored in its v1 file; `None` when there is no such file.
pub fn read(root: &Path, id: &str) -> Result<Option<StoredChunk>> {
    let mut bytes = Vec::new();
    match File::open(path(root, id)).and_then(|mut f| f.read_to_end(&mut bytes)) {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(EngineError::Io { context: format!("read chunk {id}"), source: e }),
    }
    let Some((&first, _)) = bytes.split_first() else {
        return Err(EngineError::Corrupt(format!("chunk {id} is empty")));
    };
    let codec = Codec::from_byte(first).ok_or_else(|| EngineError::Corrupt(format!("chunk {id}: unknown codec")))?;
    bytes.remove(0);
    Ok(Some(StoredChunk { codec, bytes }))
}

/// Removes the v1 chunk files whose key `used` says no retained build uses (and files whose
/// name is no key), the temporary files of interrupted v1 writes, and fan-out directories left
/// empty. Returns how many chunks were removed.
pub fn prune(root: &Path, used: &mut dyn FnMut(&Key) -> Result<bool>) -> Result<usize> {
    let mut removed = 0;
    for dir in fs::read_dir(root).ctx(|| format!("list {}", root.display()))? {
        let dir = dir.ctx(|| format!("list {}", root.display()))?;
        let is_dir = dir.file_type().map(|t| t.is_dir()).unwrap_or(false);
        if !is_dir || !is_fanout_dir(&dir.file_name().to_string_lossy()) {
            continue;
        }
        fsutil::remove_leftovers(&dir.path())?;
        for chunk in fs::read_dir(dir.path()).ctx(|| format!("list {}", dir.path().display()))? {
            let chunk = chunk.ctx(|| format!("list {}", dir.path().display()))?;
            let key = super::ChunkId::from_hex(&chunk.file_name().to_string_lossy()).map(|id| id.key());
            let keep = match key {
                Some(key) => used(&key)?,
                None => false,
            };
            if !keep {
                fs::remove_file(chunk.path()).ctx(|| format!("remove {}", chunk.path().display()))?;
                removed += 1;
            }
        }
        // Fails while chunks remain, which is what we want.
        let _ = fs::remove_dir(dir.path());
    }
    Ok(removed)
}
