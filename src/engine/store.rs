//! The per-app chunk store: one file per chunk, named by the SHA-256 of its raw bytes, so
//! identical content is stored once across every build of the app and a rerun after a crash
//! skips what is already there.
//!
//! A chunk file is one codec byte (0 raw, 1 zstd) followed by the stored bytes. The codec byte
//! lets the image writer copy stored bytes into a pack without recompressing.
//!
//! Durability without one fsync per chunk (measured: it halved import throughput): a new chunk
//! is written under a temporary name; [`ChunkStore::flush`] makes every pending temporary file
//! durable with one `syncfs`, then renames them to their final names and syncs again. So a
//! file under a chunk's name is always whole and durable, and a crash loses only temporary
//! files (removed by `prune`) and chunks a rerun stores again.

use std::collections::HashSet;
use std::fs::{self, File};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

use super::error::{EngineError, IoContext, Result};
use super::fsutil::{self, sha256_hex};

/// zstd level for stored chunks: fast enough to keep up with the chunker on one core.
const CHUNK_LEVEL: i32 = 3;

/// Compresses one chunk with this thread's zstd context: creating a context per 64 KiB chunk
/// (allocating and initialising its tables) cost as much as a good part of the compression.
fn compress_chunk(raw: &[u8]) -> std::io::Result<Vec<u8>> {
    thread_local! {
        static COMPRESSOR: std::cell::RefCell<Option<zstd::bulk::Compressor<'static>>> =
            const { std::cell::RefCell::new(None) };
    }
    COMPRESSOR.with(|cell| {
        let mut cell = cell.borrow_mut();
        let compressor = match cell.as_mut() {
            Some(c) => c,
            None => cell.insert(zstd::bulk::Compressor::new(CHUNK_LEVEL)?),
        };
        compressor.compress(raw)
    })
}

/// SHA-256 of a chunk's raw bytes, lower-case hex.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ChunkId(pub String);

impl ChunkId {
    pub fn of(raw: &[u8]) -> ChunkId {
        ChunkId(sha256_hex(raw))
    }

    fn is_valid(&self) -> bool {
        self.0.len() == 64 && self.0.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    }
}

impl std::fmt::Display for ChunkId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// How a chunk's bytes are stored (in the store, in packs and in patches).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Codec {
    Raw,
    Zstd,
}

impl Codec {
    fn byte(self) -> u8 {
        match self {
            Codec::Raw => 0,
            Codec::Zstd => 1,
        }
    }

    fn from_byte(b: u8) -> Option<Codec> {
        match b {
            0 => Some(Codec::Raw),
            1 => Some(Codec::Zstd),
            _ => None,
        }
    }

    /// Turns stored bytes back into the raw chunk; `raw_len` bounds the output.
    pub fn decode(self, stored: &[u8], raw_len: usize) -> Result<Vec<u8>> {
        match self {
            Codec::Raw => Ok(stored.to_vec()),
            Codec::Zstd => zstd::bulk::decompress(stored, raw_len)
                .map_err(|e| EngineError::Corrupt(format!("zstd chunk does not decode: {e}"))),
        }
    }
}

/// A chunk as stored: its codec and stored bytes.
pub struct StoredChunk {
    pub codec: Codec,
    pub bytes: Vec<u8>,
}

#[derive(Debug, Clone)]
pub struct ChunkStore {
    root: PathBuf,
    pending: Arc<Mutex<Pending>>,
}

/// Chunks written under temporary names, waiting for the next `flush`.
#[derive(Debug, Default)]
struct Pending {
    files: Vec<(PathBuf, PathBuf)>,
    ids: HashSet<String>,
    raw_bytes: u64,
}

impl ChunkStore {
    /// Opens (creating if needed) the chunk store in `root`.
    pub fn open(root: impl Into<PathBuf>) -> Result<ChunkStore> {
        let root = root.into();
        fs::create_dir_all(&root).ctx(|| format!("create {}", root.display()))?;
        Ok(ChunkStore { root, pending: Arc::default() })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn path(&self, id: &ChunkId) -> Result<PathBuf> {
        if !id.is_valid() {
            return Err(EngineError::Corrupt(format!("not a chunk id: {:?}", id.0)));
        }
        Ok(self.root.join(&id.0[..2]).join(&id.0))
    }

    /// Whether the chunk is stored or pending (written, waiting for `flush`).
    pub fn contains(&self, id: &ChunkId) -> Result<bool> {
        Ok(self.path(id)?.is_file() || self.lock_pending()?.ids.contains(&id.0))
    }

    fn lock_pending(&self) -> Result<std::sync::MutexGuard<'_, Pending>> {
        self.pending.lock().map_err(|_| EngineError::Invalid("chunk store lock poisoned".into()))
    }

    /// Raw bytes of the chunks written since the last `flush`.
    pub fn pending_bytes(&self) -> Result<u64> {
        Ok(self.lock_pending()?.raw_bytes)
    }

    /// Stores `raw` under `id` unless it is already there. zstd level 3, kept raw when
    /// compression saves less than 5 %. The chunk is pending until the next `flush`. Safe to
    /// call from several threads at once: the id is reserved before compressing, so two
    /// workers given the same new chunk compress and write it only once.
    pub fn put(&self, id: &ChunkId, raw: &[u8]) -> Result<()> {
        let path = self.path(id)?;
        let pending = self.lock_pending()?.ids.contains(&id.0);
        if pending || path.is_file() {
            return Ok(());
        }
        let reserved = self.lock_pending()?.ids.insert(id.0.clone());
        if !reserved {
            return Ok(());
        }
        let written = self.write_pending(id, &path, raw);
        let mut pending = self.lock_pending()?;
        match written {
            Ok(tmp) => {
                pending.files.push((tmp, path));
                pending.raw_bytes += raw.len() as u64;
                Ok(())
            }
            Err(e) => {
                // Not written after all: a later put of the same chunk must not skip it.
                pending.ids.remove(&id.0);
                Err(e)
            }
        }
    }

    /// Compresses and writes one chunk under a temporary name next to `path`.
    fn write_pending(&self, id: &ChunkId, path: &Path, raw: &[u8]) -> Result<PathBuf> {
        let compressed = compress_chunk(raw).ctx(|| format!("compress chunk {id}"))?;
        let (codec, stored) = if (compressed.len() as u64) * 100 < (raw.len() as u64) * 95 {
            (Codec::Zstd, &compressed[..])
        } else {
            (Codec::Raw, raw)
        };
        let dir = fsutil::parent(path);
        fs::create_dir_all(&dir).ctx(|| format!("create {}", dir.display()))?;
        let tmp = dir.join(fsutil::temp_name("chunk"));
        let result = (|| {
            let mut f = File::create(&tmp).ctx(|| format!("create {}", tmp.display()))?;
            f.write_all(&[codec.byte()])
                .and_then(|_| f.write_all(stored))
                .ctx(|| format!("write {}", tmp.display()))?;
            Ok(tmp.clone())
        })();
        if result.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        result
    }

    /// Makes every pending chunk durable and visible under its name: `syncfs` (the data of
    /// every temporary file), the renames, `syncfs` again (the renames). Call it before
    /// committing a manifest that names the chunks, and every few hundred MB during an import
    /// to keep the pending list short.
    pub fn flush(&self) -> Result<()> {
        // Chunks other threads are still writing keep their reservation (their ids) and go
        // with the next flush.
        let files = {
            let mut pending = self.lock_pending()?;
            pending.raw_bytes = 0;
            std::mem::take(&mut pending.files)
        };
        if files.is_empty() {
            return Ok(());
        }
        self.syncfs()?;
        for (tmp, path) in &files {
            fs::rename(tmp, path).ctx(|| format!("rename to {}", path.display()))?;
        }
        self.syncfs()?;
        // Under their names now: `contains` finds them on disk.
        let mut pending = self.lock_pending()?;
        for (_, path) in &files {
            if let Some(name) = path.file_name().and_then(|n| n.to_str()) {
                pending.ids.remove(name);
            }
        }
        Ok(())
    }

    /// The chunk as stored (codec and stored bytes).
    pub fn get(&self, id: &ChunkId) -> Result<StoredChunk> {
        let path = self.path(id)?;
        let mut bytes = Vec::new();
        File::open(&path).and_then(|mut f| f.read_to_end(&mut bytes)).ctx(|| format!("read chunk {id}"))?;
        if bytes.is_empty() {
            return Err(EngineError::Corrupt(format!("chunk {id} is empty")));
        }
        let codec =
            Codec::from_byte(bytes[0]).ok_or_else(|| EngineError::Corrupt(format!("chunk {id}: unknown codec")))?;
        bytes.remove(0);
        Ok(StoredChunk { codec, bytes })
    }

    /// The raw bytes of a chunk, checked against its id.
    pub fn read_raw(&self, id: &ChunkId, raw_len: usize) -> Result<Vec<u8>> {
        let stored = self.get(id)?;
        let raw = stored.codec.decode(&stored.bytes, raw_len)?;
        if raw.len() != raw_len || ChunkId::of(&raw) != *id {
            return Err(EngineError::Corrupt(format!("chunk {id} does not match its id")));
        }
        Ok(raw)
    }

    /// Removes a chunk no retained build uses any more (eviction).
    pub fn remove(&self, id: &ChunkId) -> Result<()> {
        match fs::remove_file(self.path(id)?) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(EngineError::Io { context: format!("remove chunk {id}"), source: e })
            }
            _ => Ok(()),
        }
    }

    /// Removes every chunk no manifest in `keep` uses (eviction of a build) and the temporary
    /// files of interrupted writes. Run it only while no import of the app runs. Returns how
    /// many chunks were removed.
    pub fn prune(&self, keep: &[&super::manifest::Manifest]) -> Result<usize> {
        let used: std::collections::HashSet<&str> =
            keep.iter().flat_map(|m| m.chunk_ids()).map(|id| id.0.as_str()).collect();
        let mut removed = 0;
        for dir in fs::read_dir(&self.root).ctx(|| format!("list {}", self.root.display()))? {
            let dir = dir.ctx(|| format!("list {}", self.root.display()))?;
            if !dir.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                continue;
            }
            fsutil::remove_leftovers(&dir.path())?;
            for chunk in fs::read_dir(dir.path()).ctx(|| format!("list {}", dir.path().display()))? {
                let chunk = chunk.ctx(|| format!("list {}", dir.path().display()))?;
                let name = chunk.file_name().to_string_lossy().into_owned();
                if !used.contains(name.as_str()) {
                    fs::remove_file(chunk.path()).ctx(|| format!("remove {}", chunk.path().display()))?;
                    removed += 1;
                }
            }
        }
        Ok(removed)
    }

    /// One `syncfs` of the store's filesystem: cheaper than one fsync per file and directory.
    fn syncfs(&self) -> Result<()> {
        let dir = File::open(&self.root).ctx(|| format!("open {}", self.root.display()))?;
        use std::os::fd::AsRawFd;
        // SAFETY: syncfs on a valid, open file descriptor owned by `dir`.
        if unsafe { libc::syncfs(dir.as_raw_fd()) } != 0 {
            return Err(EngineError::Io {
                context: format!("syncfs {}", self.root.display()),
                source: std::io::Error::last_os_error(),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk_files(root: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(root)
            .unwrap()
            .flat_map(|d| fs::read_dir(d.unwrap().path()).unwrap())
            .map(|f| f.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn a_chunk_gets_its_name_only_when_flushed() {
        let dir = tempfile::tempdir().unwrap();
        let store = ChunkStore::open(dir.path()).unwrap();
        let raw = vec![42u8; 100_000];
        let id = ChunkId::of(&raw);
        store.put(&id, &raw).unwrap();
        assert!(store.contains(&id).unwrap(), "pending chunks count as stored, so they are not written twice");
        assert!(chunk_files(dir.path()).iter().all(|n| n.starts_with(".tmp-")));
        assert!(store.get(&id).is_err());

        store.flush().unwrap();
        assert_eq!(chunk_files(dir.path()), vec![id.0.clone()]);
        assert_eq!(store.read_raw(&id, raw.len()).unwrap(), raw);
        assert_eq!(store.get(&id).unwrap().codec, Codec::Zstd);
    }

    #[test]
    fn chunks_a_crash_left_unflushed_are_removed_by_prune_and_stored_again() {
        let dir = tempfile::tempdir().unwrap();
        let raw = vec![7u8; 50_000];
        let id = ChunkId::of(&raw);
        // The store instance of a process that died before flushing.
        ChunkStore::open(dir.path()).unwrap().put(&id, &raw).unwrap();

        let store = ChunkStore::open(dir.path()).unwrap();
        assert!(!store.contains(&id).unwrap());
        assert_eq!(store.prune(&[]).unwrap(), 0);
        assert!(chunk_files(dir.path()).is_empty());
        store.put(&id, &raw).unwrap();
        store.flush().unwrap();
        assert_eq!(store.read_raw(&id, raw.len()).unwrap(), raw);
    }

    #[test]
    fn a_chunk_put_by_several_threads_at_once_is_written_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = ChunkStore::open(dir.path()).unwrap();
        let raw = vec![9u8; 80_000];
        let id = ChunkId::of(&raw);
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| store.put(&id, &raw).unwrap());
            }
        });
        assert_eq!(chunk_files(dir.path()).len(), 1);
        assert_eq!(store.pending_bytes().unwrap(), raw.len() as u64);
        store.flush().unwrap();
        assert_eq!(chunk_files(dir.path()), vec![id.0.clone()]);
    }

    #[test]
    fn a_chunk_whose_write_failed_is_written_by_the_next_put() {
        let dir = tempfile::tempdir().unwrap();
        let store = ChunkStore::open(dir.path()).unwrap();
        let raw = vec![5u8; 30_000];
        let id = ChunkId::of(&raw);
        // A file where the chunk's directory should be: the write fails.
        let blocked = dir.path().join(&id.0[..2]);
        fs::write(&blocked, b"in the way").unwrap();
        assert!(store.put(&id, &raw).is_err());
        assert!(!store.contains(&id).unwrap(), "a failed write must not count as stored");
        fs::remove_file(&blocked).unwrap();
        store.put(&id, &raw).unwrap();
        store.flush().unwrap();
        assert_eq!(store.read_raw(&id, raw.len()).unwrap(), raw);
    }

    #[test]
    fn incompressible_chunks_are_kept_raw() {
        let dir = tempfile::tempdir().unwrap();
        let store = ChunkStore::open(dir.path()).unwrap();
        let raw: Vec<u8> = (0..2048u32)
            .flat_map(|i| ring::digest::digest(&ring::digest::SHA256, &i.to_le_bytes()).as_ref().to_vec())
            .collect();
        let id = ChunkId::of(&raw);
        store.put(&id, &raw).unwrap();
        store.flush().unwrap();
        let stored = store.get(&id).unwrap();
        assert_eq!((stored.codec, stored.bytes.len()), (Codec::Raw, raw.len()));
    }
}
