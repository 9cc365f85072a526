//! The DxF image of a build: `index.zst` (file tree and chunk table in load order) and packs
//! of stored chunks back to back, so a launcher gets any chunk with one Range request and
//! adjacent chunks with one. The directory's name (`dxfName`) is derived from the hash of the
//! index, so a published image never changes and its URLs can be cached forever.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::error::{EngineError, IoContext, Result};
use super::fsutil::{copy_range, fsync_dir, hex, sha256_hex, temp_name, EarlyWriteback};
use super::layout::{pack_name, INDEX_FILE};
use super::manifest::{ChunkRef, EntryKind, FileChunks};
use super::startup::{self, Read as StartupRead};
use super::store::{ChunkId, ChunkStore, Codec, Located};
use super::Hooks;

pub const INDEX_FORMAT: u32 = 1;
/// Default pack size limit: few large objects (cheap on S3), each still a sane single upload.
pub const DEFAULT_PACK_LIMIT: u64 = 1 << 30;
/// zstd level of `index.zst`. Level 19 took 0.37 s of CPU for the index of a 256 MiB build
/// (527 KB of JSON, most of it hex chunk ids) — a seventh of the whole import — to save 15 %
/// (180 → 154 KB); level 12 takes 0.03 s. Readers accept any level (FORMAT.md).
const INDEX_LEVEL: i32 = 12;
/// Files up to this size load before the large ones (with executables), so a launcher can
/// start early.
const SMALL_FILE: u64 = 1 << 20;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Index {
    pub format: u32,
    pub packs: Vec<PackInfo>,
    /// Every distinct chunk once, in load order; packs hold them in this order.
    pub chunks: Vec<IndexChunk>,
    /// Every entry, in load order.
    pub files: Vec<IndexEntry>,
    /// Images ordered by start-up traces (FastStart): the length of the prefix of the packs,
    /// taken in pack order, that holds every chunk the game reads while starting. A launcher
    /// that fetches it (after the index) can start the game. Absent in images without traces;
    /// readers that do not know it ignore it (unknown members are ignored, FORMAT.md §2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preload_bytes: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PackInfo {
    pub name: String,
    pub size: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IndexChunk {
    pub id: ChunkId,
    pub raw_len: u32,
    /// Index into `packs`.
    pub pack: u32,
    pub offset: u64,
    pub stored_len: u32,
    pub codec: Codec,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexEntry {
    pub path: String,
    #[serde(flatten)]
    pub kind: IndexKind,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum IndexKind {
    /// `chunks` are positions in the index's chunk table, in file order.
    File {
        mode: u32,
        size: u64,
        sha256: String,
        chunks: Vec<u32>,
    },
    Dir {
        mode: u32,
    },
    Symlink {
        target: String,
    },
}

impl Index {
    /// Reads `index.zst` from a DxF directory.
    pub fn load(dxf_dir: &Path) -> Result<Index> {
        let path = dxf_dir.join(INDEX_FILE);
        let bytes = fs::read(&path).ctx(|| format!("read {}", path.display()))?;
        Index::decode(&bytes)
    }

    /// Parses the bytes of an `index.zst`.
    pub fn decode(bytes: &[u8]) -> Result<Index> {
        let mut json = Vec::new();
        zstd::stream::read::Decoder::new(bytes)
            .and_then(|mut d| d.read_to_end(&mut json))
            .map_err(|e| EngineError::Corrupt(format!("index.zst: {e}")))?;
        let index: Index =
            serde_json::from_slice(&json).map_err(|e| EngineError::Corrupt(format!("index.zst: {e}")))?;
        if index.format != INDEX_FORMAT {
            return Err(EngineError::Corrupt(format!("index format {} is not {INDEX_FORMAT}", index.format)));
        }
        Ok(index)
    }

    /// Where each chunk id sits in the image.
    pub fn chunk_positions(&self) -> HashMap<&ChunkId, &IndexChunk> {
        self.chunks.iter().map(|c| (&c.id, c)).collect()
    }
}

/// The largest window `index.zst` is written with (1 MiB); see [`compress_json`].
const INDEX_WINDOW_LOG: u32 = 20;

/// Streams `value` as JSON into zstd. The index of an 8 GiB build is 17 MB of JSON: made whole
/// and compressed in one shot, zstd sized its tables from the input, for +86 MiB of peak RSS at
/// 8 GiB against +50 MiB at 1 GiB (bench/results/2026-11-27T0001-pipeline.md). With the window and
/// tables capped at 1 MiB and no JSON buffer, the memory is the same for any build, for an output
/// within 0.5 % of the uncapped one.
#[cfg(test)]
fn compress_json(value: &impl Serialize) -> std::io::Result<Vec<u8>> {
    compress_json_to(value, Vec::new())
}

/// [`compress_json`] into `out`, which it returns.
fn compress_json_to<W: Write>(value: &impl Serialize, out: W) -> std::io::Result<W> {
    use zstd::stream::raw::CParameter;
    let mut encoder = zstd::stream::write::Encoder::new(out, INDEX_LEVEL)?;
    for cap in [
        CParameter::WindowLog(INDEX_WINDOW_LOG),
        CParameter::ChainLog(INDEX_WINDOW_LOG),
        CParameter::HashLog(INDEX_WINDOW_LOG),
    ] {
        encoder.set_parameter(cap)?;
    }
    let mut json = std::io::BufWriter::with_capacity(64 << 10, encoder);
    serde_json::to_writer(&mut json, value)?;
    json.into_inner().map_err(std::io::IntoInnerError::into_error)?.finish()
}

/// Writes to a file while hashing and counting what it writes: `index.zst` goes to its file
/// as it is compressed, never whole in memory (at 8 GiB it is ~5 MB, mostly incompressible
/// chunk ids), and its name comes from the hash taken on the way.
struct HashingFile {
    file: std::io::BufWriter<File>,
    hash: ring::digest::Context,
    len: u64,
}

impl Write for HashingFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.file.write(buf)?;
        self.hash.update(&buf[..n]);
        self.len += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }
}

/// Where and under which name an image was written.
#[derive(Debug, Clone)]
pub struct ImageInfo {
    pub dxf_name: String,
    /// index.zst plus every pack.
    pub size_bytes: u64,
    /// `<out_dir>/<dxfName>`.
    pub dir: PathBuf,
    pub index: Index,
}

impl ImageInfo {
    /// Reads back an image written earlier (a retried task that needs it for its patches
    /// without writing it again), checking that the directory's name is its index's hash.
    pub fn open(dxf_dir: &Path) -> Result<ImageInfo> {
        let index_path = dxf_dir.join(INDEX_FILE);
        let bytes = fs::read(&index_path).ctx(|| format!("read {}", index_path.display()))?;
        let dxf_name = sha256_hex(&bytes)[..32].to_string();
        if dxf_dir.file_name().and_then(|n| n.to_str()) != Some(dxf_name.as_str()) {
            return Err(EngineError::Corrupt(format!("{}: index hash is {dxf_name}", dxf_dir.display())));
        }
        let index = Index::decode(&bytes)?;
        let mut size_bytes = bytes.len() as u64;
        for pack in &index.packs {
            let path = dxf_dir.join(&pack.name);
            let len = fs::metadata(&path).ctx(|| format!("stat {}", path.display()))?.len();
            if len != pack.size {
                return Err(EngineError::Corrupt(format!("{}: {len} bytes, index says {}", path.display(), pack.size)));
            }
            size_bytes += len;
        }
        Ok(ImageInfo { dxf_name, size_bytes, dir: dxf_dir.to_path_buf(), index })
    }
}

#[derive(Debug, Clone)]
pub struct ImageOptions {
    pub pack_limit: u64,
}

impl Default for ImageOptions {
    fn default() -> Self {
        ImageOptions { pack_limit: DEFAULT_PACK_LIMIT }
    }
}

/// Load order: directories and links (free), then executables and small files, then the rest;
/// tar order within each class, until access traces exist to reorder by.
fn load_class(kind: &EntryKind) -> u8 {
    match kind {
        EntryKind::Dir { .. } | EntryKind::Symlink { .. } => 0,
        EntryKind::File { mode, size, .. } if mode & 0o111 != 0 || *size <= SMALL_FILE => 1,
        EntryKind::File { .. } => 2,
    }
}

/// An open pack being filled. Stored bytes go in with `copy_file_range` from the chunk
/// store's segments (no pass through this process's memory), adjacent chunks of a segment in
/// one call.
struct PackWriter {
    file: File,
    path: PathBuf,
    size: u64,
    /// Bytes of one segment waiting to be copied: (segment number, its file, start, length).
    run: Option<(u32, Arc<File>, u64, u64)>,
    /// So the fsync at the end finds little left to write.
    writeback: EarlyWriteback,
}

impl PackWriter {
    /// Appends a chunk's stored bytes to the pack.
    fn push(&mut self, located: Located) -> Result<()> {
        match located {
            Located::Segment { file, segment, offset, len, .. } => {
                let len = len as u64;
                match &mut self.run {
                    Some((s, _, start, run_len)) if *s == segment && *start + *run_len == offset => *run_len += len,
                    _ => {
                        self.copy_run()?;
                        self.run = Some((segment, file, offset, len));
                    }
                }
                self.size += len;
            }
            Located::Bytes(stored) => {
                self.copy_run()?;
                self.file.write_all_at(&stored.bytes, self.size).ctx(|| format!("write {}", self.path.display()))?;
                self.size += stored.bytes.len() as u64;
                self.writeback.wrote(&self.file, stored.bytes.len() as u64);
            }
        }
        Ok(())
    }

    /// Copies the waiting run of segment bytes to its place at the end of the pack.
    fn copy_run(&mut self) -> Result<()> {
        if let Some((_, src, start, len)) = self.run.take() {
            let at = self.size - len;
            copy_range(&src, start, &self.file, at, len).ctx(|| format!("write {}", self.path.display()))?;
            self.writeback.wrote(&self.file, len);
        }
        Ok(())
    }

    fn finish(mut self) -> Result<u64> {
        self.copy_run()?;
        self.file.sync_all().ctx(|| format!("fsync {}", self.path.display()))?;
        Ok(self.size)
    }
}

/// Writes the image of `manifest` into `out_dir/<dxfName>/` (see `Engine::write_image`).
/// `startup` (a merged start-up trace, first access first) puts the chunks those reads touch at
/// the front of the packs, in that order, and records their length as `preloadBytes`; empty, the
/// image has the default load order.
pub fn write_image(
    manifest: &dyn FileChunks,
    store: &ChunkStore,
    out_dir: &Path,
    options: &ImageOptions,
    startup: &[StartupRead],
    hooks: &Hooks,
) -> Result<ImageInfo> {
    fs::create_dir_all(out_dir).ctx(|| format!("create {}", out_dir.display()))?;
    let staging = out_dir.join(temp_name("dxf"));
    fs::create_dir(&staging).ctx(|| format!("create {}", staging.display()))?;
    let result = fill_staging(manifest, store, &staging, options, startup, hooks);
    let (index, index_sha256, index_len) = match result {
        Ok(done) => done,
        Err(e) => {
            let _ = fs::remove_dir_all(&staging);
            return Err(e);
        }
    };
    let dxf_name = index_sha256[..32].to_string();
    let dir = out_dir.join(&dxf_name);
    let size_bytes = index_len + index.packs.iter().map(|p| p.size).sum::<u64>();
    if dir.is_dir() {
        // A rerun after a crash produced the same image: the published one stays untouched.
        fs::remove_dir_all(&staging).ctx(|| format!("remove {}", staging.display()))?;
    } else {
        fs::rename(&staging, &dir).ctx(|| format!("rename to {}", dir.display()))?;
        fsync_dir(out_dir)?;
    }
    Ok(ImageInfo { dxf_name, size_bytes, dir, index })
}

/// Where each chunk placed so far sits in the chunk table: an open-addressing table of
/// positions in it (4 bytes each, at most half full), the ids read from the table itself. A map
/// from ids to positions held a second copy of every 32-byte id, ~44 bytes per chunk.
struct Positions {
    /// Positions in the chunk table; `EMPTY` where there is none.
    table: Vec<u32>,
    /// Keyed per image: a build cannot choose its chunks to collide in the table.
    hasher: std::collections::hash_map::RandomState,
    len: usize,
}

const EMPTY: u32 = u32::MAX;

impl Positions {
    fn with_capacity(n: usize) -> Positions {
        let size = (n.max(8) * 2).next_power_of_two();
        Positions { table: vec![EMPTY; size], hasher: Default::default(), len: 0 }
    }

    /// The bucket of `id`, then each following one (linear probing).
    fn probe(&self, id: &ChunkId) -> impl Iterator<Item = usize> {
        use std::hash::BuildHasher;
        let mask = self.table.len() - 1;
        let start = self.hasher.hash_one(id) as usize;
        (0..self.table.len()).map(move |i| (start + i) & mask)
    }

    fn get(&self, id: &ChunkId, chunks: &[IndexChunk]) -> Option<u32> {
        for bucket in self.probe(id) {
            let slot = self.table[bucket];
            if slot == EMPTY {
                return None;
            }
            if chunks.get(slot as usize).is_some_and(|c| c.id == *id) {
                return Some(slot);
            }
        }
        None
    }

    /// Records that `chunks[slot]` (not recorded yet) is at `slot`.
    fn insert(&mut self, slot: u32, chunks: &[IndexChunk]) {
        if (self.len + 1) * 2 > self.table.len() {
            let mut grown = Positions::with_capacity(self.table.len());
            for &s in self.table.iter().filter(|&&s| s != EMPTY) {
                grown.insert(s, chunks);
            }
            *self = grown;
        }
        if let Some(id) = chunks.get(slot as usize).map(|c| &c.id) {
            if let Some(bucket) = self.probe(id).find(|&b| self.table[b] == EMPTY) {
                self.table[bucket] = slot;
                self.len += 1;
            }
        }
    }
}

/// The packs being filled and the chunk table, chunk by chunk in load order.
struct Packer<'a> {
    store: &'a ChunkStore,
    staging: &'a Path,
    limit: u64,
    positions: Positions,
    chunks: Vec<IndexChunk>,
    packs: Vec<PackInfo>,
    pack: Option<PackWriter>,
    /// Chunk references placed so far, duplicates included: the progress.
    refs: u64,
}

impl Packer<'_> {
    /// The chunk's slot in the table, appending it to the packs the first time.
    fn place(&mut self, r: &ChunkRef, hooks: &Hooks, total: u64) -> Result<u32> {
        self.refs += 1;
        if let Some(slot) = self.positions.get(&r.id, &self.chunks) {
            return Ok(slot);
        }
        if (hooks.cancel)() {
            return Err(EngineError::Cancelled);
        }
        let located = self.store.locate(&r.id)?;
        let (stored_len, codec) = match &located {
            Located::Segment { len, codec, .. } => (*len as u64, *codec),
            Located::Bytes(stored) => (stored.bytes.len() as u64, stored.codec),
        };
        if self.pack.as_ref().is_some_and(|p| p.size > 0 && p.size + stored_len > self.limit) {
            if let Some(full) = self.pack.take() {
                self.packs.push(PackInfo { name: pack_name(self.packs.len() as u32), size: full.finish()? });
            }
        }
        if self.pack.is_none() {
            let path = self.staging.join(pack_name(self.packs.len() as u32));
            let file = File::create(&path).ctx(|| format!("create {}", path.display()))?;
            self.pack = Some(PackWriter { file, path, size: 0, run: None, writeback: EarlyWriteback::default() });
        }
        let writer = self.pack.as_mut().ok_or_else(|| EngineError::Invalid("no open pack".into()))?;
        let offset = writer.size;
        writer.push(located)?;
        let slot = self.chunks.len() as u32;
        self.chunks.push(IndexChunk {
            id: r.id.clone(),
            raw_len: r.len,
            pack: self.packs.len() as u32,
            offset,
            stored_len: stored_len as u32,
            codec,
        });
        self.positions.insert(slot, &self.chunks);
        (hooks.progress)(self.refs, total);
        Ok(slot)
    }

    fn finish(mut self) -> Result<(Vec<PackInfo>, Vec<IndexChunk>)> {
        if let Some(last) = self.pack.take() {
            self.packs.push(PackInfo { name: pack_name(self.packs.len() as u32), size: last.finish()? });
        }
        Ok((self.packs, self.chunks))
    }
}

fn fill_staging(
    manifest: &dyn FileChunks,
    store: &ChunkStore,
    staging: &Path,
    options: &ImageOptions,
    startup: &[StartupRead],
    hooks: &Hooks,
) -> Result<(Index, String, u64)> {
    let (first_chunks, first_files) = match (startup.is_empty(), manifest.whole()) {
        (true, _) => (Vec::new(), Vec::new()),
        (false, Some(whole)) => startup::touched(whole, startup),
        (false, None) => return Err(EngineError::Invalid("a start-up image needs the whole manifest".into())),
    };
    // Files the game opens while starting come right after directories and links, in the order
    // it first opened them; then the default order.
    let traced: HashMap<&str, usize> = first_files.iter().enumerate().map(|(rank, p)| (*p, rank)).collect();
    let entries = manifest.entries();
    let mut order: Vec<usize> = (0..entries.len()).collect();
    order.sort_by_key(|&i| match (load_class(&entries[i].kind), traced.get(entries[i].path.as_str())) {
        (0, _) => (0, 0, entries[i].order),
        (_, Some(&rank)) => (1, rank, 0),
        (class, None) => (1 + class, 0, entries[i].order),
    });
    // Every reference, duplicates included: counting distinct chunks took a set of every id.
    let total = first_chunks.len() as u64 + manifest.chunk_refs();
    // Sized for every distinct chunk up front: grown by doubling, the table and the map held up
    // to twice their size in slack and, while moving, their old and new copies at once.
    let mut packer = Packer {
        store,
        staging,
        limit: options.pack_limit,
        positions: Positions::with_capacity(total as usize),
        chunks: Vec::with_capacity(total as usize),
        packs: Vec::new(),
        pack: None,
        refs: 0,
    };
    for r in &first_chunks {
        packer.place(r, hooks, total)?;
    }
    let preload_bytes = (!startup.is_empty()).then(|| packer.chunks.iter().map(|c| c.stored_len as u64).sum());
    let mut files = Vec::with_capacity(order.len());
    for i in order {
        let entry = &entries[i];
        let kind = match &entry.kind {
            EntryKind::Dir { mode } => IndexKind::Dir { mode: *mode },
            EntryKind::Symlink { target } => IndexKind::Symlink { target: target.clone() },
            EntryKind::File { mode, size, sha256, .. } => {
                let refs = manifest.chunks(i)?;
                let slots = refs.iter().map(|r| packer.place(r, hooks, total)).collect::<Result<Vec<u32>>>()?;
                IndexKind::File { mode: *mode, size: *size, sha256: sha256.clone(), chunks: slots }
            }
        };
        files.push(IndexEntry { path: entry.path.clone(), kind });
    }
    (hooks.progress)(total, total);
    let (packs, chunks) = packer.finish()?;
    let index = Index { format: INDEX_FORMAT, packs, chunks, files, preload_bytes };
    // Data before index: the packs are fsynced above, the index after them.
    let path = staging.join(INDEX_FILE);
    let file = File::create(&path).ctx(|| format!("create {}", path.display()))?;
    let out = HashingFile {
        file: std::io::BufWriter::with_capacity(64 << 10, file),
        hash: ring::digest::Context::new(&ring::digest::SHA256),
        len: 0,
    };
    let written = compress_json_to(&index, out).and_then(|out| {
        let file = out.file.into_inner().map_err(std::io::IntoInnerError::into_error)?;
        file.sync_all()?;
        Ok((hex(out.hash.finish().as_ref()), out.len))
    });
    let (sha256, len) = written.ctx(|| format!("write {}", path.display()))?;
    fsync_dir(staging)?;
    Ok((index, sha256, len))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_find_every_chunk_placed_and_no_other_as_the_table_grows() {
        let chunk = |n: u32| IndexChunk {
            id: ChunkId::of(&n.to_le_bytes()),
            raw_len: 1,
            pack: 0,
            offset: n as u64,
            stored_len: 1,
            codec: Codec::Raw,
        };
        // Sized for 10, given 1000: grows (rehashes) several times on the way.
        let mut positions = Positions::with_capacity(10);
        let mut chunks = Vec::new();
        for n in 0..1000u32 {
            assert_eq!(positions.get(&chunk(n).id, &chunks), None);
            chunks.push(chunk(n));
            positions.insert(n, &chunks);
        }
        assert!(positions.table.len() >= 2000);
        for n in 0..1000u32 {
            assert_eq!(positions.get(&chunk(n).id, &chunks), Some(n));
        }
        assert_eq!(positions.get(&chunk(1000).id, &chunks), None);
    }

    #[test]
    fn a_large_index_is_compressed_with_a_window_of_at_most_one_mebibyte() {
        // 4 MB of chunk-id-like JSON: without the cap, a stream of unknown size at this level
        // gets a larger window, which a decoder limited to 1 MiB refuses.
        let ids: Vec<String> = (0..60_000u32).map(|i| sha256_hex(&i.to_le_bytes())).collect();
        let compressed = compress_json(&ids).unwrap();
        let mut decoder = zstd::stream::read::Decoder::new(&compressed[..]).unwrap();
        decoder.window_log_max(INDEX_WINDOW_LOG).unwrap();
        let mut json = Vec::new();
        decoder.read_to_end(&mut json).unwrap();
        assert_eq!(serde_json::from_slice::<Vec<String>>(&json).unwrap(), ids);
    }
}
