//! The per-app chunk store: every chunk once, named by the SHA-256 of its raw bytes, so
//! identical content is stored once across every build of the app and a rerun after a crash
//! skips what is already there.
//!
//! Layout (v2): new chunks are appended to segment files (`segments/seg-NNNNNNNN`, stored
//! bytes back to back, a new segment per writer and per [`SEGMENT_LIMIT`]); the append-only
//! `index` ([`index`]) says where each chunk is. One file per chunk (v1) cost an open, a
//! write, a rename and a directory entry per 64 KiB chunk, a whole-filesystem `syncfs` to make
//! them durable, and an open and read per chunk again when the image copied them into packs.
//! Stores in the v1 layout keep working as they are ([`legacy`]): read both, write v2 only.
//!
//! Durability: a new chunk is pending until [`ChunkStore::flush`], which `fdatasync`s the
//! segments written since the last flush, then appends the pending chunks' index records and
//! `fdatasync`s the index. So an index record only ever points to durable bytes, a crash loses
//! only pending chunks (a rerun stores them again) and bytes no record points to (reclaimed by
//! [`ChunkStore::prune`]), and a record torn by a crash is dropped when the index is read.
//!
//! A copy of a live store (the export bundle) is consistent when it takes `index` before the
//! segments, as a walk in name order does: between prunes segments only grow, so every record
//! of the copied index points into bytes the copied segments hold.
//!
//! The stored bytes of a chunk (zstd or raw, see [`Codec`]) are what packs and patches carry,
//! so the image writer copies them without recompressing ([`ChunkStore::locate`]).
//!
//! Memory: what a store holds per chunk must not grow with the builds it keeps, since one store
//! lives through a whole mkraw and covers every retained build of the app. So the lookup from a
//! chunk to its location is not a map in memory (~69 bytes a chunk) but the index itself: a
//! [`table::DedupTable`] of 8-byte slots (32 bits of a keyed hash and a record number, ≤ 21.3
//! bytes a chunk) finds the candidate records, and a lookup reads each one (`pread` of 64 bytes)
//! and compares its whole key before taking it as a hit. The table is filled only by reading the
//! index ([`ChunkStore::flush`] appends its records, then reads them back), so a record number
//! is always the record's place in the file.

pub mod index;
mod legacy;
mod table;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use serde::{Deserialize, Serialize};

use super::error::{EngineError, IoContext, Result};
use super::fsutil::{self, fsync_dir};
use index::{Key, Loc};

/// zstd level for stored chunks: fast enough to keep up with the chunker on one core.
const CHUNK_LEVEL: i32 = 3;
/// How far behind a segment's end early writeback stays: the pool's jobs in flight (a few per
/// worker, at most `MAX_CHUNK` each) have not all written their bytes closer to it.
const WRITEBACK_LAG: u64 = 4 << 20;
/// A segment takes appends until it holds this many bytes; then a new one starts.
pub const SEGMENT_LIMIT: u64 = 1 << 30;
/// Prune rewrites a segment whose live chunks fill less than this share of it (percent).
const COMPACT_BELOW_PERCENT: u64 = 50;
const INDEX_FILE: &str = "index";
/// Index records read at a time when (re)reading the index.
const CATCH_UP_RECORDS: u64 = 1024;
const SEGMENT_DIR: &str = "segments";

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

/// SHA-256 of a chunk's raw bytes. In memory its 32 bytes: a build holds one per chunk
/// reference in its manifest, image table and maps, so the 64-character hex string it used to be
/// (24 bytes of `String` plus an 80-byte heap block) was most of an import's memory per chunk.
/// In every stored and transmitted form (manifest, index, patch, `Display`) it is the 64-digit
/// lower-case hex, byte for byte as before; anything else is refused when read.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ChunkId(pub Key);

impl ChunkId {
    pub fn of(raw: &[u8]) -> ChunkId {
        let digest = ring::digest::digest(&ring::digest::SHA256, raw);
        let mut key = [0u8; 32];
        key.copy_from_slice(digest.as_ref());
        ChunkId(key)
    }

    /// The id the 64 lower-case hex digits `hex` spell; `None` for anything else.
    pub fn from_hex(hex: &str) -> Option<ChunkId> {
        let digit = |b: u8| match b {
            b'0'..=b'9' => Some(b - b'0'),
            b'a'..=b'f' => Some(b - b'a' + 10),
            _ => None,
        };
        let hex = hex.as_bytes();
        if hex.len() != 64 {
            return None;
        }
        let mut key = [0u8; 32];
        for (i, byte) in key.iter_mut().enumerate() {
            *byte = digit(hex[2 * i])? << 4 | digit(hex[2 * i + 1])?;
        }
        Some(ChunkId(key))
    }

    /// The 64 lower-case hex digits, without allocating.
    fn hex_digits(&self) -> [u8; 64] {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        let mut out = [0u8; 64];
        for (i, b) in self.0.iter().enumerate() {
            out[2 * i] = DIGITS[(b >> 4) as usize];
            out[2 * i + 1] = DIGITS[(b & 15) as usize];
        }
        out
    }

    /// The 64 lower-case hex digits (file names of the v1 layout).
    pub fn to_hex(&self) -> String {
        self.to_string()
    }

    fn key(&self) -> Key {
        self.0
    }
}

impl std::fmt::Display for ChunkId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let digits = self.hex_digits();
        // Hex digits are ASCII.
        f.write_str(std::str::from_utf8(&digits).map_err(|_| std::fmt::Error)?)
    }
}

impl std::fmt::Debug for ChunkId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ChunkId({self})")
    }
}

impl Serialize for ChunkId {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        let digits = self.hex_digits();
        serializer.serialize_str(std::str::from_utf8(&digits).map_err(serde::ser::Error::custom)?)
    }
}

impl<'de> Deserialize<'de> for ChunkId {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> std::result::Result<ChunkId, D::Error> {
        struct HexId;
        impl serde::de::Visitor<'_> for HexId {
            type Value = ChunkId;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a chunk id (64 lower-case hex digits)")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> std::result::Result<ChunkId, E> {
                ChunkId::from_hex(v).ok_or_else(|| E::custom(format!("not a chunk id: {v:?}")))
            }
        }
        deserializer.deserialize_str(HexId)
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

/// Where a chunk's stored bytes can be copied from without reading them into memory.
pub enum Located {
    /// `len` bytes at `offset` of segment number `segment` (open as `file`).
    Segment { file: Arc<File>, segment: u32, offset: u64, len: u32, codec: Codec },
    /// A v1 chunk file, read whole.
    Bytes(StoredChunk),
}

#[derive(Debug, Clone)]
pub struct ChunkStore {
    root: PathBuf,
    state: Arc<Mutex<State>>,
}

/// The segment new chunks are appended to.
#[derive(Debug)]
struct Writer {
    segment: u32,
    file: Arc<File>,
    len: u64,
    /// Up to where the segment was handed to early writeback (see [`ChunkStore::reserve`]).
    written_back: u64,
}

#[derive(Debug)]
struct State {
    /// Which index record holds each chunk the index names (as far as it was read).
    table: table::DedupTable,
    /// How far the index file has been read, which file it was (prune replaces it) and a read
    /// handle on that file, for the lookups' record reads.
    index_read: u64,
    index_file: Option<(u64, u64)>,
    index: Option<File>,
    /// The index was checked for a torn tail since this store was opened (before appending).
    index_checked: bool,
    /// Whether v1 chunk files may exist (a fan-out directory was there at open).
    legacy: bool,
    /// Chunks reserved by a `put` (being written, or written and not flushed).
    reserved: HashSet<Key>,
    /// Chunks written and waiting for the next flush, with their raw bytes.
    written: Vec<(Key, Loc)>,
    raw_bytes: u64,
    writer: Option<Writer>,
    /// Segments appended to since the last flush.
    unsynced: Vec<Arc<File>>,
    /// A segment file was created since the last flush: its directory entry needs an fsync.
    created: bool,
    /// Open segments, for reads.
    open: HashMap<u32, Arc<File>>,
}

impl State {
    fn new(legacy: bool, table: table::DedupTable) -> State {
        State {
            table,
            index_read: 0,
            index_file: None,
            index: None,
            index_checked: false,
            legacy,
            reserved: HashSet::new(),
            written: Vec::new(),
            raw_bytes: 0,
            writer: None,
            unsynced: Vec::new(),
            created: false,
            open: HashMap::new(),
        }
    }

    /// Where the index says the chunk is, as far as it was read: the number of the record the
    /// table points to, and the location in it, read back and its key compared (a hash match
    /// alone is not a hit).
    fn lookup(&self, key: &Key) -> Result<Option<(u32, Loc)>> {
        let Some(file) = self.index.as_ref() else {
            return Ok(None);
        };
        self.table.find(key, |n| index::read_record(file, n))
    }

    fn find(&self, key: &Key) -> Result<Option<Loc>> {
        Ok(self.lookup(key)?.map(|(_, loc)| loc))
    }

    fn find_record(&self, key: &Key) -> Result<Option<u32>> {
        Ok(self.lookup(key)?.map(|(n, _)| n))
    }

    /// Calls `each(record number, key, location)` for every record read so far, streaming the
    /// index file a piece at a time.
    fn each_record(&self, mut each: impl FnMut(u32, Key, Loc) -> Result<()>) -> Result<()> {
        let Some(file) = self.index.as_ref() else {
            return Ok(());
        };
        let mut at = index::MAGIC.len() as u64;
        let mut bytes = Vec::new();
        while at < self.index_read {
            let want = (CATCH_UP_RECORDS * index::RECORD_LEN as u64).min(self.index_read - at);
            bytes.resize(want as usize, 0);
            file.read_exact_at(&mut bytes, at).ctx(|| "read the chunk index".to_string())?;
            let (records, valid) = index::parse(&bytes, at)?;
            if valid < want {
                return Err(EngineError::Corrupt("the chunk index changed under its reader".into()));
            }
            let first = index::record_number(at) as u32;
            for (i, (key, loc)) in records.into_iter().enumerate() {
                each(first + i as u32, key, loc)?;
            }
            at += valid;
        }
        Ok(())
    }
}

impl ChunkStore {
    /// Opens (creating if needed) the chunk store in `root`, in either layout.
    pub fn open(root: impl Into<PathBuf>) -> Result<ChunkStore> {
        Self::open_with(root.into(), table::keyed_hash)
    }

    /// Opens the store with a dedup table hashing with `hash`: tests pass one that collides on
    /// purpose.
    fn open_with(root: PathBuf, hash: table::HashFn) -> Result<ChunkStore> {
        fs::create_dir_all(&root).ctx(|| format!("create {}", root.display()))?;
        let legacy = legacy::present(&root)?;
        let table = table::DedupTable::new(&root, hash);
        let store = ChunkStore { root, state: Arc::new(Mutex::new(State::new(legacy, table))) };
        {
            let mut st = store.lock()?;
            store.catch_up(&mut st)?;
        }
        Ok(store)
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn lock(&self) -> Result<MutexGuard<'_, State>> {
        self.state.lock().map_err(|_| EngineError::Invalid("chunk store lock poisoned".into()))
    }

    fn index_path(&self) -> PathBuf {
        self.root.join(INDEX_FILE)
    }

    fn segment_dir(&self) -> PathBuf {
        self.root.join(SEGMENT_DIR)
    }

    fn segment_path(&self, n: u32) -> PathBuf {
        self.segment_dir().join(format!("seg-{n:08}"))
    }

    /// Reads the index records appended since the last look (by this store or another one on
    /// the same directory), starting over when the index file was replaced (by a prune).
    fn catch_up(&self, st: &mut State) -> Result<()> {
        let path = self.index_path();
        let file = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(EngineError::Io { context: format!("open {}", path.display()), source: e }),
        };
        let meta = file.metadata().ctx(|| format!("stat {}", path.display()))?;
        let identity = Some((meta.dev(), meta.ino()));
        if st.index_file != identity || st.index.is_none() {
            st.table = st.table.emptied();
            st.open.clear();
            st.index_read = 0;
            st.index_file = identity;
            st.index = Some(file);
        }
        let Some(file) = st.index.as_ref() else {
            return Ok(());
        };
        // A piece at a time: read whole, the index of a store holding a few large builds (64
        // bytes a chunk, plus 56 parsed) cost more memory at open than the table it fills.
        let end = meta.len();
        // Sized once for every record there is to read, rather than doubled (and moved) as it fills.
        st.table.reserve((end.saturating_sub(st.index_read) / index::RECORD_LEN as u64) as usize)?;
        let mut bytes = Vec::new();
        while st.index_read < end {
            let header = if st.index_read == 0 { index::MAGIC.len() as u64 } else { 0 };
            let want = (header + CATCH_UP_RECORDS * index::RECORD_LEN as u64).min(end - st.index_read);
            bytes.resize(want as usize, 0);
            file.read_exact_at(&mut bytes, st.index_read).ctx(|| format!("read {}", path.display()))?;
            let (records, valid) = index::parse(&bytes, st.index_read)?;
            // Known from the offset: the table is filled only here, so its numbers are exact.
            let first = index::record_number(st.index_read + header);
            for (i, (key, _)) in records.iter().enumerate() {
                // A key indexed twice (two stores stored it at once) keeps its first record.
                st.table.insert(key, first + i as u64, |r| index::read_record(file, r))?;
            }
            st.index_read += valid;
            if valid < want {
                // A record being appended (or torn by a crash): the rest waits for the next look.
                break;
            }
        }
        Ok(())
    }

    /// Whether the chunk is stored or pending (written, waiting for `flush`).
    pub fn contains(&self, id: &ChunkId) -> Result<bool> {
        let key = id.key();
        let legacy = {
            let st = self.lock()?;
            if st.reserved.contains(&key) || st.find(&key)?.is_some() {
                return Ok(true);
            }
            st.legacy
        };
        Ok(legacy && legacy::path(&self.root, &id.to_hex()).is_file())
    }

    /// Raw bytes of the chunks written since the last `flush`.
    pub fn pending_bytes(&self) -> Result<u64> {
        Ok(self.lock()?.raw_bytes)
    }

    /// Stores `raw` under `id` unless it is already there. zstd level 3, kept raw when
    /// compression saves less than 5 %. The chunk is pending until the next `flush`. Safe to
    /// call from several threads at once: the id is reserved before compressing, so two
    /// workers given the same new chunk compress and write it only once.
    pub fn put(&self, id: &ChunkId, raw: &[u8]) -> Result<()> {
        let key = id.key();
        let legacy = {
            let mut st = self.lock()?;
            if st.reserved.contains(&key) || st.find(&key)?.is_some() {
                return Ok(());
            }
            st.reserved.insert(key);
            st.legacy
        };
        let written = if legacy && legacy::path(&self.root, &id.to_hex()).is_file() {
            Ok(None)
        } else {
            self.append(id, raw).map(Some)
        };
        let mut st = self.lock()?;
        match written {
            Ok(Some(loc)) => {
                st.written.push((key, loc));
                st.raw_bytes += raw.len() as u64;
                Ok(())
            }
            Ok(None) => {
                // Stored in the v1 layout already: nothing to write or index.
                st.reserved.remove(&key);
                Ok(())
            }
            Err(e) => {
                // Not written after all: a later put of the same chunk must not skip it.
                st.reserved.remove(&key);
                Err(e)
            }
        }
    }

    /// Compresses one chunk and appends it to the current segment.
    fn append(&self, id: &ChunkId, raw: &[u8]) -> Result<Loc> {
        let compressed = compress_chunk(raw).ctx(|| format!("compress chunk {id}"))?;
        let (codec, stored) = if (compressed.len() as u64) * 100 < (raw.len() as u64) * 95 {
            (Codec::Zstd, &compressed[..])
        } else {
            (Codec::Raw, raw)
        };
        let len = stored.len() as u64;
        let (file, segment, offset, writeback) = self.reserve(len)?;
        let path = || self.segment_path(segment).display().to_string();
        file.write_all_at(stored, offset).ctx(|| format!("write {}", path()))?;
        if let Some((from, len)) = writeback {
            fsutil::start_writeback(&file, from, len);
        }
        Ok(Loc { segment, offset, len: len as u32, codec })
    }

    /// Space for `len` bytes in the current segment, starting a new one when there is none
    /// yet or it is full. The bytes are written outside the lock, by the caller, who also asks
    /// for early writeback of the range returned with them, if any: the segment's bytes from
    /// the last such range up to [`WRITEBACK_LAG`] behind its end (appends that far back are
    /// written by now, the jobs in flight hold less), so the flush's `fdatasync` does not
    /// write hundreds of megabytes at once while the chunker waits.
    #[allow(clippy::type_complexity)]
    fn reserve(&self, len: u64) -> Result<(Arc<File>, u32, u64, Option<(u64, u64)>)> {
        let mut st = self.lock()?;
        let full = st.writer.as_ref().is_some_and(|w| w.len > 0 && w.len + len > SEGMENT_LIMIT);
        if st.writer.is_none() || full {
            let (segment, file) = self.create_segment()?;
            let file = Arc::new(file);
            st.unsynced.push(file.clone());
            st.open.insert(segment, file.clone());
            st.created = true;
            st.writer = Some(Writer { segment, file, len: 0, written_back: 0 });
        }
        let writer = st.writer.as_mut().ok_or_else(|| EngineError::Invalid("no open segment".into()))?;
        let offset = writer.len;
        writer.len += len;
        let settled = writer.len.saturating_sub(WRITEBACK_LAG);
        let writeback = (settled >= writer.written_back + fsutil::EarlyWriteback::STEP).then(|| {
            let range = (writer.written_back, settled - writer.written_back);
            writer.written_back = settled;
            range
        });
        Ok((writer.file.clone(), writer.segment, offset, writeback))
    }

    /// A new, empty segment numbered after every existing one. Never an existing file: a
    /// segment's bytes are only ever appended by the store that created it.
    fn create_segment(&self) -> Result<(u32, File)> {
        let dir = self.segment_dir();
        fs::create_dir_all(&dir).ctx(|| format!("create {}", dir.display()))?;
        let mut next = self.segments()?.keys().next_back().map_or(1, |n| n + 1);
        loop {
            let path = self.segment_path(next);
            match OpenOptions::new().read(true).write(true).create_new(true).open(&path) {
                Ok(file) => return Ok((next, file)),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => next += 1,
                Err(e) => return Err(EngineError::Io { context: format!("create {}", path.display()), source: e }),
            }
        }
    }

    /// The segment files on disk, by number, with their lengths.
    fn segments(&self) -> Result<BTreeMap<u32, u64>> {
        let dir = self.segment_dir();
        let entries = match fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(BTreeMap::new()),
            Err(e) => return Err(EngineError::Io { context: format!("list {}", dir.display()), source: e }),
        };
        let mut found = BTreeMap::new();
        for entry in entries {
            let entry = entry.ctx(|| format!("list {}", dir.display()))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if let Some(n) = name.strip_prefix("seg-").and_then(|n| n.parse::<u32>().ok()) {
                let len = entry.metadata().ctx(|| format!("stat {}", entry.path().display()))?.len();
                found.insert(n, len);
            }
        }
        Ok(found)
    }

    /// Makes every pending chunk durable and indexed: `fdatasync` of the segments written
    /// since the last flush (and of their directory when one was created), then one append to
    /// the index and its `fdatasync`. Call it before committing a manifest that names the
    /// chunks, and every few hundred MB during an import to keep the pending list short.
    ///
    /// The appended records enter the dedup table by reading the index back (with whatever
    /// another store on the directory appended before them), and only then do the chunks lose
    /// their reservation: in between, `put` and `contains` still see them as stored.
    pub fn flush(&self) -> Result<()> {
        // Chunks other threads are still writing keep their reservation and go with the next
        // flush; so does the current segment, which they are appending to.
        let (written, unsynced, created) = {
            let mut st = self.lock()?;
            st.raw_bytes = 0;
            let written = std::mem::take(&mut st.written);
            let unsynced = std::mem::take(&mut st.unsynced);
            if let Some(file) = st.writer.as_ref().map(|w| w.file.clone()) {
                st.unsynced.push(file);
            }
            (written, unsynced, std::mem::take(&mut st.created))
        };
        if written.is_empty() {
            return Ok(());
        }
        for file in &unsynced {
            file.sync_data().ctx(|| format!("fsync a segment of {}", self.root.display()))?;
        }
        if created {
            fsync_dir(&self.segment_dir())?;
        }
        let mut records = Vec::with_capacity(written.len() * index::RECORD_LEN);
        for (key, loc) in &written {
            records.extend_from_slice(&index::encode(key, loc));
        }
        let appended_to = self.append_index(&records)?;
        let mut st = self.lock()?;
        let caught_up = self.catch_up(&mut st);
        // Even when they are not readable (below), the chunks are no longer being written: a
        // later put must write them again rather than skip them.
        for (key, _) in &written {
            st.reserved.remove(key);
        }
        caught_up?;
        if st.index_read < appended_to {
            // A damaged record (another store's append torn by a crash) lies before ours: no
            // reader gets past it, so these chunks are not stored as far as anyone can tell.
            return Err(EngineError::Corrupt(format!(
                "the chunk index {} has a damaged record before the ones just appended",
                self.index_path().display()
            )));
        }
        Ok(())
    }

    /// Appends whole records to the index and makes them durable; returns where they end in
    /// the file. The first append of this store cuts off a tail a crash tore, so the new
    /// records start on a record boundary.
    fn append_index(&self, records: &[u8]) -> Result<u64> {
        let path = self.index_path();
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .read(true)
            .open(&path)
            .ctx(|| format!("open {}", path.display()))?;
        let checked = self.lock()?.index_checked;
        if !checked {
            let mut bytes = Vec::new();
            (&file).read_to_end(&mut bytes).ctx(|| format!("read {}", path.display()))?;
            let (_, valid) = index::parse(&bytes, 0)?;
            if valid != bytes.len() as u64 {
                file.set_len(valid).ctx(|| format!("truncate {}", path.display()))?;
            }
            if valid == 0 {
                file.write_all(index::MAGIC).ctx(|| format!("write {}", path.display()))?;
            }
            self.lock()?.index_checked = true;
        }
        file.write_all(records).ctx(|| format!("write {}", path.display()))?;
        // In append mode the position is now the end of this write, whatever others appended.
        let end = file.stream_position().ctx(|| format!("seek {}", path.display()))?;
        file.sync_data().ctx(|| format!("fsync {}", path.display()))?;
        if !checked {
            // The index may be new: its directory entry must be durable too.
            fsync_dir(&self.root)?;
        }
        Ok(end)
    }

    /// Where the chunk's stored bytes are (see [`Located`]).
    pub fn locate(&self, id: &ChunkId) -> Result<Located> {
        let key = id.key();
        let found = {
            let mut st = self.lock()?;
            let mut loc = st.find(&key)?;
            if loc.is_none() {
                // Indexed by another store on this directory since we last looked?
                self.catch_up(&mut st)?;
                loc = st.find(&key)?;
            }
            match loc {
                Some(loc) => Some((self.segment_file(&mut st, loc.segment)?, loc)),
                None => None,
            }
        };
        match found {
            Some((file, loc)) => {
                Ok(Located::Segment { file, segment: loc.segment, offset: loc.offset, len: loc.len, codec: loc.codec })
            }
            None => match legacy::read(&self.root, &id.to_hex())? {
                Some(stored) => Ok(Located::Bytes(stored)),
                None => Err(EngineError::Io {
                    context: format!("read chunk {id}"),
                    source: std::io::Error::new(std::io::ErrorKind::NotFound, "not in the chunk store"),
                }),
            },
        }
    }

    fn segment_file(&self, st: &mut State, segment: u32) -> Result<Arc<File>> {
        if let Some(file) = st.open.get(&segment) {
            return Ok(file.clone());
        }
        let path = self.segment_path(segment);
        let file = Arc::new(File::open(&path).ctx(|| format!("open {}", path.display()))?);
        st.open.insert(segment, file.clone());
        Ok(file)
    }

    /// The chunk as stored (codec and stored bytes).
    pub fn get(&self, id: &ChunkId) -> Result<StoredChunk> {
        match self.locate(id)? {
            Located::Bytes(stored) => Ok(stored),
            Located::Segment { file, segment, offset, len, codec } => {
                let mut bytes = vec![0u8; len as usize];
                file.read_exact_at(&mut bytes, offset).map_err(|e| match e.kind() {
                    std::io::ErrorKind::UnexpectedEof => {
                        EngineError::Corrupt(format!("chunk {id}: segment {segment} is shorter than its index says"))
                    }
                    _ => EngineError::Io { context: format!("read chunk {id}"), source: e },
                })?;
                Ok(StoredChunk { codec, bytes })
            }
        }
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

    /// Removes every chunk no manifest in `keep` uses (eviction of a build), reclaims the
    /// space of segments that became mostly garbage and what crashes left (temporary files,
    /// bytes no index record points to). Run it only while no import of the app runs. Returns
    /// how many chunks were removed. See [`ChunkStore::prune_keeping`].
    pub fn prune(&self, keep: &[&super::manifest::Manifest]) -> Result<usize> {
        self.prune_keeping(|mark| keep.iter().try_for_each(|manifest| manifest.each_chunk_id(mark)))
    }

    /// [`ChunkStore::prune`], the retained builds' chunks named by `kept`, which calls `mark`
    /// for each (repeats are fine) and must not use this store: a caller can read one manifest
    /// at a time. What prune holds does not grow with the store: a bit per index record marks
    /// the records in use, and the new index is streamed to its file. (It held every retained
    /// manifest, 36 bytes per chunk reference, plus ~200 per used chunk: a set of the keys, the
    /// same keys again as hex strings, a list of the live records; tens of MB for a few retained
    /// 8 GiB builds, in every deploy that evicted one.)
    ///
    /// Crash-safe by order: live chunks of segments to compact are copied to a new segment
    /// and made durable, then the new index (live chunks only) replaces the old one by rename,
    /// and only then are segments no record points to any more deleted.
    pub fn prune_keeping(
        &self,
        kept: impl FnOnce(&mut dyn FnMut(&ChunkId) -> Result<()>) -> Result<()>,
    ) -> Result<usize> {
        self.flush()?;
        let mut st = self.lock()?;
        st.index_file = None;
        self.catch_up(&mut st)?;
        let mut used = InUse::new(index::record_number(st.index_read), st.legacy);
        kept(&mut |id| used.mark(&st, &id.key()))?;
        let mut removed = legacy::prune(&self.root, &mut |key| used.holds(&st, key))?;
        fsutil::remove_leftovers(&self.root)?;

        // Each indexed chunk once: a key's first record (the one the table names, so the one
        // marked), not a later duplicate of it.
        let before = st.table.len();
        let mut live = 0;
        let mut live_bytes: HashMap<u32, u64> = HashMap::new();
        st.each_record(|n, _, loc| {
            if used.record(n) {
                live += 1;
                *live_bytes.entry(loc.segment).or_default() += loc.len as u64;
            }
            Ok(())
        })?;
        removed += before - live;

        let on_disk = self.segments()?;
        let compact: HashSet<u32> = on_disk
            .iter()
            .filter(|(n, len)| {
                let kept = live_bytes.get(*n).copied().unwrap_or(0);
                kept > 0 && kept * 100 < **len * COMPACT_BELOW_PERCENT
            })
            .map(|(n, _)| *n)
            .collect();
        if live != before || !compact.is_empty() {
            self.rewrite_index(&mut st, &used, &compact)?;
        }
        // The copies went to a new segment, which is not among `on_disk`.
        let referenced: HashSet<u32> = live_bytes.into_keys().filter(|n| !compact.contains(n)).collect();
        let mut deleted = false;
        for n in on_disk.keys().filter(|n| !referenced.contains(*n)) {
            let path = self.segment_path(*n);
            fs::remove_file(&path).ctx(|| format!("remove {}", path.display()))?;
            st.open.remove(n);
            deleted = true;
        }
        if deleted {
            fsync_dir(&self.segment_dir())?;
        }
        st.writer = None;
        st.unsynced.clear();
        st.index_file = None;
        st.index_checked = false;
        self.catch_up(&mut st)?;
        Ok(removed)
    }

    /// Replaces the index by one naming exactly the records `used` marks, streamed in index
    /// order (temp, fsync, rename, fsync). The live chunks of the segments in `compact` are
    /// copied into a new segment first, made durable before the new index names them.
    fn rewrite_index(&self, st: &mut State, used: &InUse, compact: &HashSet<u32>) -> Result<()> {
        let mut sources = HashMap::new();
        for &n in compact {
            sources.insert(n, self.segment_file(st, n)?);
        }
        let copy_to = if compact.is_empty() { None } else { Some(self.create_segment()?) };
        let path = self.index_path();
        let tmp = self.root.join(fsutil::temp_name("index"));
        let written = (|| {
            let file = File::create(&tmp).ctx(|| format!("create {}", tmp.display()))?;
            let mut out = std::io::BufWriter::with_capacity(64 << 10, file);
            out.write_all(index::MAGIC).ctx(|| format!("write {}", tmp.display()))?;
            let mut at = 0u64;
            st.each_record(|n, key, mut loc| {
                if !used.record(n) {
                    return Ok(());
                }
                if let (Some(src), Some((segment, dst))) = (sources.get(&loc.segment), copy_to.as_ref()) {
                    let dst_path = self.segment_path(*segment);
                    fsutil::copy_range(src, loc.offset, dst, at, loc.len as u64)
                        .ctx(|| format!("copy into {}", dst_path.display()))?;
                    loc = Loc { segment: *segment, offset: at, ..loc };
                    at += loc.len as u64;
                }
                out.write_all(&index::encode(&key, &loc)).ctx(|| format!("write {}", tmp.display()))
            })?;
            if let Some((segment, dst)) = copy_to.as_ref() {
                dst.sync_all().ctx(|| format!("fsync {}", self.segment_path(*segment).display()))?;
                fsync_dir(&self.segment_dir())?;
            }
            let file = out.into_inner().map_err(|e| e.into_error()).ctx(|| format!("write {}", tmp.display()))?;
            file.sync_all().ctx(|| format!("fsync {}", tmp.display()))?;
            fs::rename(&tmp, &path).ctx(|| format!("rename to {}", path.display()))
        })();
        if written.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        written?;
        fsync_dir(&self.root)?;
        if let Some((segment, dst)) = copy_to {
            st.open.insert(segment, Arc::new(dst));
        }
        Ok(())
    }
}

/// Which index records the retained builds use, for [`ChunkStore::prune_keeping`]: a bit per
/// record, set on the first record of each key they name (the one the dedup table finds, so a
/// later duplicate of it stays unmarked and goes). A store that still has v1 chunk files also
/// keeps the used keys the index does not hold, which only v1-era builds name.
struct InUse {
    bits: Vec<u64>,
    legacy: Option<HashSet<Key>>,
}

impl InUse {
    fn new(records: u64, legacy: bool) -> InUse {
        InUse { bits: vec![0; records.div_ceil(64) as usize], legacy: legacy.then(HashSet::new) }
    }

    fn mark(&mut self, st: &State, key: &Key) -> Result<()> {
        match st.find_record(key)? {
            Some(n) => {
                if let Some(word) = self.bits.get_mut(n as usize / 64) {
                    *word |= 1 << (n % 64);
                }
            }
            None => {
                if let Some(outside) = self.legacy.as_mut() {
                    outside.insert(*key);
                }
            }
        }
        Ok(())
    }

    fn record(&self, n: u32) -> bool {
        self.bits.get(n as usize / 64).is_some_and(|word| word & (1 << (n % 64)) != 0)
    }

    /// Whether a retained build uses `key` (for the v1 files, which are not indexed).
    fn holds(&self, st: &State, key: &Key) -> Result<bool> {
        if self.legacy.as_ref().is_some_and(|outside| outside.contains(key)) {
            return Ok(true);
        }
        Ok(st.find_record(key)?.is_some_and(|n| self.record(n)))
    }
}

#[cfg(test)]
mod tests;
