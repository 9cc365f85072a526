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
use super::slots::DiskSlots;
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

// --- Chunk rows without the whole index (patch.rs): read-only, one block. ---

impl Index {
    /// Calls `visit` with every row of `index.zst`'s chunk table, in table order, without
    /// holding the index: the JSON streams from the decompressor and each row is dropped once
    /// visited. A patch needs the positions of the chunks it fetches only, and the whole index
    /// was ~56 bytes per chunk of the new build (plus a map over it). Errors as
    /// [`Index::load`]: the file unreadable is an I/O error, anything it holds that is not an
    /// index of this format is corrupt (rows visited before that was found included).
    pub fn visit_chunks(dxf_dir: &Path, visit: impl FnMut(IndexChunk)) -> Result<()> {
        let path = dxf_dir.join(INDEX_FILE);
        let file = File::open(&path).ctx(|| format!("open {}", path.display()))?;
        let read_failed = std::cell::Cell::new(false);
        let source = ReadFailures { inner: file, failed: &read_failed };
        let parsed = (|| {
            let decoder = zstd::stream::read::Decoder::new(source)?;
            let reader = std::io::BufReader::with_capacity(64 << 10, decoder);
            let mut json = serde_json::Deserializer::from_reader(reader);
            let format = serde::de::DeserializeSeed::deserialize(ChunkRows { visit }, &mut json)?;
            json.end()?;
            Ok::<_, std::io::Error>(format)
        })();
        let format = match parsed {
            Ok(parsed) => parsed,
            Err(e) if read_failed.get() => {
                return Err(EngineError::Io { context: format!("read {}", path.display()), source: e })
            }
            Err(e) => return Err(EngineError::Corrupt(format!("index.zst: {e}"))),
        };
        if format != INDEX_FORMAT {
            return Err(EngineError::Corrupt(format!("index format {format} is not {INDEX_FORMAT}")));
        }
        Ok(())
    }
}

/// A reader that notes whether the file under the decompressor failed, so that a disk error
/// is not reported as a corrupt index.
struct ReadFailures<'a, R> {
    inner: R,
    failed: &'a std::cell::Cell<bool>,
}

impl<R: Read> Read for ReadFailures<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.inner.read(buf).inspect_err(|_| self.failed.set(true))
    }
}

/// Deserialises an [`Index`] object into its format, passing each chunk row to `visit`; the
/// other members are checked to be there and skipped without being built.
struct ChunkRows<F> {
    visit: F,
}

impl<'de, F: FnMut(IndexChunk)> serde::de::DeserializeSeed<'de> for ChunkRows<F> {
    type Value = u32;

    fn deserialize<D: serde::Deserializer<'de>>(self, deserializer: D) -> std::result::Result<Self::Value, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de, F: FnMut(IndexChunk)> serde::de::Visitor<'de> for ChunkRows<F> {
    type Value = u32;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("an image index")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(mut self, mut map: A) -> std::result::Result<Self::Value, A::Error> {
        use serde::de::{Error, IgnoredAny};
        let (mut format, mut chunks, mut packs, mut files) = (None, false, false, false);
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "format" => format = Some(map.next_value::<u32>()?),
                "chunks" => {
                    map.next_value_seed(VisitedRows { visit: &mut self.visit })?;
                    chunks = true;
                }
                "packs" => {
                    map.next_value::<IgnoredAny>()?;
                    packs = true;
                }
                "files" => {
                    map.next_value::<IgnoredAny>()?;
                    files = true;
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        let format = format.ok_or_else(|| A::Error::missing_field("format"))?;
        if !chunks {
            return Err(A::Error::missing_field("chunks"));
        }
        if !packs {
            return Err(A::Error::missing_field("packs"));
        }
        if !files {
            return Err(A::Error::missing_field("files"));
        }
        Ok(format)
    }
}

/// The chunk table's array, each row passed to `visit`.
struct VisitedRows<'v, F> {
    visit: &'v mut F,
}

impl<'de, F: FnMut(IndexChunk)> serde::de::DeserializeSeed<'de> for VisitedRows<'_, F> {
    type Value = ();

    fn deserialize<D: serde::Deserializer<'de>>(self, deserializer: D) -> std::result::Result<Self::Value, D::Error> {
        deserializer.deserialize_seq(self)
    }
}

impl<'de, F: FnMut(IndexChunk)> serde::de::Visitor<'de> for VisitedRows<'_, F> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a chunk table")
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> std::result::Result<Self::Value, A::Error> {
        while let Some(row) = seq.next_element::<IndexChunk>()? {
            (self.visit)(row);
        }
        Ok(())
    }
}

#[cfg(test)]
mod chunk_rows_tests {
    use super::*;

    fn index() -> Index {
        let chunks = (0..6u32)
            .map(|n| IndexChunk {
                id: ChunkId::of(&n.to_le_bytes()),
                raw_len: 10 + n,
                pack: n % 2,
                offset: 100 * n as u64,
                stored_len: 5 + n,
                codec: if n % 3 == 0 { Codec::Raw } else { Codec::Zstd },
            })
            .collect();
        let files = vec![
            IndexEntry {
                path: "a.bin".into(),
                kind: IndexKind::File { mode: 0o644, size: 21, sha256: "x".into(), chunks: vec![0, 1] },
            },
            IndexEntry { path: "d".into(), kind: IndexKind::Dir { mode: 0o755 } },
        ];
        let packs = vec![PackInfo { name: "p0".into(), size: 1 }, PackInfo { name: "p1".into(), size: 2 }];
        Index { format: INDEX_FORMAT, packs, chunks, files, preload_bytes: Some(3) }
    }

    fn written(bytes: &[u8]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(INDEX_FILE), bytes).unwrap();
        dir
    }

    fn visited(dir: &Path) -> Result<Vec<IndexChunk>> {
        let mut rows = Vec::new();
        Index::visit_chunks(dir, |row| rows.push(row))?;
        Ok(rows)
    }

    #[test]
    fn the_visited_chunk_rows_are_those_of_the_whole_index_in_table_order() {
        let dir = written(&compress_json(&index()).unwrap());
        assert_eq!(visited(dir.path()).unwrap(), Index::load(dir.path()).unwrap().chunks);
        let mut empty = index();
        empty.chunks.clear();
        let dir = written(&compress_json(&empty).unwrap());
        assert!(visited(dir.path()).unwrap().is_empty());
    }

    #[test]
    fn chunk_rows_of_an_index_that_is_not_one_are_refused_as_corrupt() {
        let mut other_format = index();
        other_format.format = INDEX_FORMAT + 1;
        let mut no_files = serde_json::to_value(index()).unwrap();
        no_files.as_object_mut().unwrap().remove("files");
        let mut bad_row = serde_json::to_value(index()).unwrap();
        bad_row["chunks"][2]["id"] = "not hex".into();
        let json = serde_json::to_vec(&index()).unwrap();
        for (what, bytes) in [
            ("another format", compress_json(&other_format).unwrap()),
            ("no files", compress_json(&no_files).unwrap()),
            ("a bad row", compress_json(&bad_row).unwrap()),
            ("not zstd", b"{\"format\":1}".to_vec()),
            ("trailing data", zstd::bulk::compress(&[json.clone(), json].concat(), 3).unwrap()),
        ] {
            let dir = written(&bytes);
            let got = visited(dir.path());
            assert!(matches!(got, Err(EngineError::Corrupt(_))), "{what}: {got:?}");
        }
    }

    #[test]
    fn chunk_rows_of_a_missing_index_are_an_io_error() {
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(visited(dir.path()), Err(EngineError::Io { .. })));
    }
}

// --- End of the chunk-rows block. ---

/// The largest window `index.zst` is written with (1 MiB); see [`compress_to`].
const INDEX_WINDOW_LOG: u32 = 20;

/// Streams `value` as JSON into zstd (what [`compress_to`] does with a whole value).
#[cfg(test)]
fn compress_json(value: &impl Serialize) -> std::io::Result<Vec<u8>> {
    compress_to(Vec::new(), |json| serde_json::to_writer(json, value).map_err(std::io::Error::from))
}

/// Compresses what `write` writes into `out`, which it returns. The index of an 8 GiB build is
/// 17 MB of JSON: made whole and compressed in one shot, zstd sized its tables from the input,
/// for +86 MiB of peak RSS at 8 GiB against +50 MiB at 1 GiB
/// (bench/results/2026-11-27T0001-pipeline.md). With the window and tables capped at 1 MiB and
/// no JSON buffer, the memory is the same for any build, for an output within 0.5 % of the
/// uncapped one.
fn compress_to<W: Write>(out: W, write: impl FnOnce(&mut dyn Write) -> std::io::Result<()>) -> std::io::Result<W> {
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
    write(&mut json)?;
    json.into_inner().map_err(std::io::IntoInnerError::into_error)?.finish()
}

/// Writes the JSON of an [`Index`] from its parts: `chunks` and `files` are the members of its
/// two arrays, each exactly as `serde_json` serialises it, separated by commas. The result is
/// byte for byte `serde_json::to_vec(&Index { .. })` (fields in declaration order, compact, the
/// absent `preloadBytes` skipped): the image's name is the hash of these bytes, so streaming the
/// table from disk rather than serialising it whole must not change a single one.
fn write_index_json(
    out: &mut dyn Write,
    packs: &[PackInfo],
    chunks: &mut dyn Read,
    files: &mut dyn Read,
    preload_bytes: Option<u64>,
) -> std::io::Result<()> {
    write!(out, "{{\"format\":{INDEX_FORMAT},\"packs\":")?;
    serde_json::to_writer(&mut *out, packs)?;
    out.write_all(b",\"chunks\":[")?;
    std::io::copy(chunks, out)?;
    out.write_all(b"],\"files\":[")?;
    std::io::copy(files, out)?;
    out.write_all(b"]")?;
    if let Some(n) = preload_bytes {
        write!(out, ",\"preloadBytes\":{n}")?;
    }
    out.write_all(b"}")
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

/// Where and under which name an image was written. It does not carry the index: its chunk
/// table is 56 bytes per chunk (6 MiB at 8 GiB) that mkraw held from the image to its last
/// patch; a patch reads it back with [`Index::load`] when it needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageInfo {
    pub dxf_name: String,
    /// index.zst plus every pack.
    pub size_bytes: u64,
    /// `<out_dir>/<dxfName>`.
    pub dir: PathBuf,
    /// The index's `packs`, in order.
    pub packs: Vec<PackInfo>,
    /// The index's `preloadBytes`: present in images ordered by start-up traces.
    pub preload_bytes: Option<u64>,
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
        let Index { packs, preload_bytes, .. } = Index::decode(&bytes)?;
        let mut size_bytes = bytes.len() as u64;
        for pack in &packs {
            let path = dxf_dir.join(&pack.name);
            let len = fs::metadata(&path).ctx(|| format!("stat {}", path.display()))?.len();
            if len != pack.size {
                return Err(EngineError::Corrupt(format!("{}: {len} bytes, index says {}", path.display(), pack.size)));
            }
            size_bytes += len;
        }
        Ok(ImageInfo { dxf_name, size_bytes, dir: dxf_dir.to_path_buf(), packs, preload_bytes })
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
    let Staged { packs, preload_bytes, index_sha256, index_len } = match result {
        Ok(done) => done,
        Err(e) => {
            let _ = fs::remove_dir_all(&staging);
            return Err(e);
        }
    };
    let dxf_name = index_sha256[..32].to_string();
    let dir = out_dir.join(&dxf_name);
    let size_bytes = index_len + packs.iter().map(|p| p.size).sum::<u64>();
    if dir.is_dir() {
        // A rerun after a crash produced the same image: the published one stays untouched.
        fs::remove_dir_all(&staging).ctx(|| format!("remove {}", staging.display()))?;
    } else {
        fs::rename(&staging, &dir).ctx(|| format!("rename to {}", dir.display()))?;
        fsync_dir(out_dir)?;
    }
    Ok(ImageInfo { dxf_name, size_bytes, dir, packs, preload_bytes })
}

/// A scratch file in the staging directory with no name (`O_TMPFILE`, or unlinked as soon as
/// open where that is missing): it is gone however the image ends (written, failed, or the
/// process killed), so it can never be published with the packs, and nothing has to remember
/// to remove it.
fn scratch_file(staging: &Path, what: &str) -> Result<File> {
    tempfile::tempfile_in(staging).ctx(|| format!("create the image's {what} in {}", staging.display()))
}

/// Members of a JSON array (chunk-table rows, file entries) written to a scratch file as they
/// are produced, comma-separated, to be copied into `index.zst` at the end: held in memory, the
/// chunk table alone was 56 bytes per chunk and the files' position lists 4 more.
struct JsonSpill {
    file: std::io::BufWriter<File>,
    what: &'static str,
    empty: bool,
}

impl JsonSpill {
    fn new(staging: &Path, what: &'static str) -> Result<JsonSpill> {
        let file = scratch_file(staging, what)?;
        Ok(JsonSpill { file: std::io::BufWriter::with_capacity(64 << 10, file), what, empty: true })
    }

    /// Appends `value`, serialised exactly as `serde_json` does inside the whole index.
    fn push(&mut self, value: &impl Serialize) -> Result<()> {
        let what = self.what;
        (|| {
            if !self.empty {
                self.file.write_all(b",")?;
            }
            self.empty = false;
            serde_json::to_writer(&mut self.file, value).map_err(std::io::Error::from)
        })()
        .ctx(|| format!("write the image's {what}"))
    }

    /// The file, read from its start.
    fn into_reader(self) -> Result<std::io::BufReader<File>> {
        use std::io::{Seek, SeekFrom};
        let what = self.what;
        let mut file = self
            .file
            .into_inner()
            .map_err(std::io::IntoInnerError::into_error)
            .ctx(|| format!("write the image's {what}"))?;
        file.seek(SeekFrom::Start(0)).ctx(|| format!("read the image's {what}"))?;
        Ok(std::io::BufReader::with_capacity(64 << 10, file))
    }
}

/// Bytes of one id in [`IdSpill`].
const ID_LEN: usize = std::mem::size_of::<ChunkId>();
/// Ids [`IdSpill`] gathers before writing them out.
const ID_BATCH: usize = 2048;

/// The chunk table's ids in slot order, 32 bytes each at `slot * 32` of a scratch file, so that
/// [`Positions`] can confirm a candidate slot with one `pread` instead of holding every id. The
/// last few (up to `ID_BATCH`) wait in memory, written out in one call.
struct IdSpill {
    file: File,
    /// Ids in the file.
    written: u32,
    /// The ids after them.
    pending: Vec<u8>,
}

impl IdSpill {
    fn new(staging: &Path) -> Result<IdSpill> {
        Ok(IdSpill {
            file: scratch_file(staging, "chunk ids")?,
            written: 0,
            pending: Vec::with_capacity(ID_BATCH * ID_LEN),
        })
    }

    fn len(&self) -> u32 {
        self.written + (self.pending.len() / ID_LEN) as u32
    }

    /// Appends the id of the next slot.
    fn push(&mut self, id: &ChunkId) -> Result<()> {
        self.pending.extend_from_slice(&id.0);
        if self.pending.len() >= ID_BATCH * ID_LEN {
            let at = self.written as u64 * ID_LEN as u64;
            self.file.write_all_at(&self.pending, at).ctx(|| "write the image's chunk ids".to_string())?;
            self.written += (self.pending.len() / ID_LEN) as u32;
            self.pending.clear();
        }
        Ok(())
    }

    /// The id at `slot` (one that was pushed).
    fn get(&self, slot: u32) -> Result<ChunkId> {
        let mut id = [0u8; ID_LEN];
        if slot < self.written {
            self.file
                .read_exact_at(&mut id, slot as u64 * ID_LEN as u64)
                .ctx(|| "read the image's chunk ids".to_string())?;
        } else {
            let at = (slot - self.written) as usize * ID_LEN;
            let pending = self
                .pending
                .get(at..at + ID_LEN)
                .ok_or_else(|| EngineError::Invalid(format!("no chunk at slot {slot}")))?;
            id.copy_from_slice(pending);
        }
        Ok(ChunkId(id))
    }
}

/// Where each chunk placed so far sits in the chunk table: an open-addressing table (at most
/// half full) whose 8-byte buckets hold a position in the table and a 4-byte tag of the id's
/// keyed hash: 16-32 bytes per chunk (19 for the 108 541 chunks of an 8 GiB build), kept in an
/// unnamed file in the staging directory ([`DiskSlots`]), not in the heap. The ids themselves
/// stay on disk too ([`IdSpill`]); a bucket whose tag matches is confirmed by reading its id
/// back, never assumed: two ids with the same tag would otherwise put one chunk's bytes where
/// the other belongs. A map from ids to positions held a second copy of every 32-byte id, ~44
/// bytes per chunk, in the heap.
struct Positions<S = std::collections::hash_map::RandomState> {
    /// Per bucket: the tag in the high half, the position plus one in the low half (0: free).
    buckets: DiskSlots,
    /// Keyed per image: a build cannot choose its chunks to collide in the table.
    hasher: S,
    staging: PathBuf,
    len: usize,
}

impl Positions {
    fn new(staging: &Path, n: usize) -> Result<Positions> {
        Positions::with_hasher(staging, n, Default::default())
    }
}

impl<S: std::hash::BuildHasher + Clone> Positions<S> {
    fn with_hasher(staging: &Path, n: usize, hasher: S) -> Result<Positions<S>> {
        let size = (n.max(8) * 2).next_power_of_two();
        let buckets = DiskSlots::new(staging, size, "image's chunk positions")?;
        Ok(Positions { buckets, hasher, staging: staging.to_path_buf(), len: 0 })
    }

    /// The tag of `id` and its home bucket (linear probing from there). The bucket comes from
    /// the hash's low bits, the tag from its high ones, so ids in one probe run do not share
    /// their tag more often than any two ids do.
    fn home(&self, id: &ChunkId) -> (u32, usize) {
        let hash = self.hasher.hash_one(id);
        ((hash >> 32) as u32, hash as usize & (self.buckets.len() - 1))
    }

    fn get(&self, id: &ChunkId, ids: &IdSpill) -> Result<Option<u32>> {
        let (tag, home) = self.home(id);
        let found = self.buckets.probe(home, |_, word| {
            if word == 0 {
                return Ok(Some(None));
            }
            let slot = (word as u32).wrapping_sub(1);
            if (word >> 32) as u32 == tag && ids.get(slot)? == *id {
                return Ok(Some(Some(slot)));
            }
            Ok(None)
        })?;
        Ok(found.flatten())
    }

    /// Records that `id` (not recorded yet) is at `slot`.
    fn insert(&mut self, slot: u32, id: &ChunkId, ids: &IdSpill) -> Result<()> {
        if (self.len + 1) * 2 > self.buckets.len() {
            // Only when the count it was sized for was short: the ids come back from disk.
            let bigger = DiskSlots::new(&self.staging, self.buckets.len() * 2, "image's chunk positions")?;
            let old = std::mem::replace(&mut self.buckets, bigger);
            self.len = 0;
            old.each_used(|word| {
                let s = (word as u32).wrapping_sub(1);
                self.put(s, &ids.get(s)?)
            })?;
        }
        self.put(slot, id)
    }

    fn put(&mut self, slot: u32, id: &ChunkId) -> Result<()> {
        let (tag, home) = self.home(id);
        let free = self.buckets.probe(home, |bucket, word| Ok((word == 0).then_some(bucket)))?;
        if let Some(bucket) = free {
            self.buckets.set(bucket, (u64::from(tag) << 32) | (u64::from(slot) + 1))?;
            self.len += 1;
        }
        Ok(())
    }
}

/// The packs being filled and the chunk table, chunk by chunk in load order.
struct Packer<'a> {
    store: &'a ChunkStore,
    staging: &'a Path,
    limit: u64,
    positions: Positions,
    /// The chunk table's rows, on disk.
    rows: JsonSpill,
    /// The chunk table's ids, on disk, for `positions`.
    ids: IdSpill,
    /// Stored bytes of the chunks placed so far: `preloadBytes` once the start-up ones are in.
    stored_bytes: u64,
    packs: Vec<PackInfo>,
    pack: Option<PackWriter>,
    /// Chunk references placed so far, duplicates included, for progress (see [`fill_staging`]).
    done: u64,
    total: u64,
}

impl Packer<'_> {
    /// The chunk's slot in the table, appending it to the packs the first time.
    fn place(&mut self, r: &ChunkRef, hooks: &Hooks) -> Result<u32> {
        self.done += 1;
        if let Some(slot) = self.positions.get(&r.id, &self.ids)? {
            (hooks.progress)(self.done, self.total);
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
        let slot = self.ids.len();
        self.rows.push(&IndexChunk {
            id: r.id.clone(),
            raw_len: r.len,
            pack: self.packs.len() as u32,
            offset,
            stored_len: stored_len as u32,
            codec,
        })?;
        self.ids.push(&r.id)?;
        self.positions.insert(slot, &r.id, &self.ids)?;
        self.stored_bytes += stored_len as u32 as u64;
        (hooks.progress)(self.done, self.total);
        Ok(slot)
    }

    fn finish(mut self) -> Result<(Vec<PackInfo>, JsonSpill)> {
        if let Some(last) = self.pack.take() {
            self.packs.push(PackInfo { name: pack_name(self.packs.len() as u32), size: last.finish()? });
        }
        Ok((self.packs, self.rows))
    }
}

/// What [`fill_staging`] left in the staging directory.
struct Staged {
    packs: Vec<PackInfo>,
    preload_bytes: Option<u64>,
    index_sha256: String,
    index_len: u64,
}

fn fill_staging(
    manifest: &dyn FileChunks,
    store: &ChunkStore,
    staging: &Path,
    options: &ImageOptions,
    startup: &[StartupRead],
    hooks: &Hooks,
) -> Result<Staged> {
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
    // Progress counts chunk references, the start-up ones then every file's: known without a
    // set of every distinct id (~70 bytes per chunk, for a number), it moves on every
    // reference, and ends at `total` exactly.
    let references = manifest.chunk_refs();
    let total = first_chunks.len() as u64 + references;
    // Sized up front for at least every distinct chunk (there are at most as many as references):
    // grown by doubling, the table held up to twice its size in slack and, while moving, its old
    // and new copies at once.
    let mut packer = Packer {
        store,
        staging,
        limit: options.pack_limit,
        positions: Positions::new(staging, references as usize)?,
        rows: JsonSpill::new(staging, "chunk table")?,
        ids: IdSpill::new(staging)?,
        stored_bytes: 0,
        packs: Vec::new(),
        pack: None,
        done: 0,
        total,
    };
    for r in &first_chunks {
        packer.place(r, hooks)?;
    }
    let preload_bytes = (!startup.is_empty()).then_some(packer.stored_bytes);
    let mut files = JsonSpill::new(staging, "file list")?;
    for i in order {
        let entry = &entries[i];
        let kind = match &entry.kind {
            EntryKind::Dir { mode } => IndexKind::Dir { mode: *mode },
            EntryKind::Symlink { target } => IndexKind::Symlink { target: target.clone() },
            EntryKind::File { mode, size, sha256, .. } => {
                let refs = manifest.chunks(i)?;
                let slots = refs.iter().map(|r| packer.place(r, hooks)).collect::<Result<Vec<u32>>>()?;
                IndexKind::File { mode: *mode, size: *size, sha256: sha256.clone(), chunks: slots }
            }
        };
        files.push(&IndexEntry { path: entry.path.clone(), kind })?;
    }
    (hooks.progress)(total, total);
    let (packs, rows) = packer.finish()?;
    let (mut rows, mut files) = (rows.into_reader()?, files.into_reader()?);
    // Data before index: the packs are fsynced above, the index after them.
    let path = staging.join(INDEX_FILE);
    let file = File::create(&path).ctx(|| format!("create {}", path.display()))?;
    let out = HashingFile {
        file: std::io::BufWriter::with_capacity(64 << 10, file),
        hash: ring::digest::Context::new(&ring::digest::SHA256),
        len: 0,
    };
    let written = compress_to(out, |json| write_index_json(json, &packs, &mut rows, &mut files, preload_bytes))
        .and_then(|out| {
            let file = out.file.into_inner().map_err(std::io::IntoInnerError::into_error)?;
            file.sync_all()?;
            Ok((hex(out.hash.finish().as_ref()), out.len))
        });
    let (index_sha256, index_len) = written.ctx(|| format!("write {}", path.display()))?;
    fsync_dir(staging)?;
    Ok(Staged { packs, preload_bytes, index_sha256, index_len })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u32) -> ChunkId {
        ChunkId::of(&n.to_le_bytes())
    }

    /// Places ids 0..n as `place` does (spill, then table), checking each is absent before.
    fn place_all<S: std::hash::BuildHasher + Clone>(positions: &mut Positions<S>, ids: &mut IdSpill, n: u32) {
        for k in 0..n {
            assert_eq!(positions.get(&id(k), ids).unwrap(), None, "{k} is not placed yet");
            ids.push(&id(k)).unwrap();
            positions.insert(k, &id(k), ids).unwrap();
        }
    }

    #[test]
    fn positions_find_every_chunk_placed_and_no_other_as_the_table_grows() {
        let staging = tempfile::tempdir().unwrap();
        let mut ids = IdSpill::new(staging.path()).unwrap();
        // Sized for 10, given 5000: grows (rehashes from the spilled ids) several times on the
        // way, and the ids span written batches and the pending one.
        let mut positions = Positions::new(staging.path(), 10).unwrap();
        place_all(&mut positions, &mut ids, 5000);
        assert!(positions.buckets.len() >= 10_000);
        assert!(ids.written > 0 && !ids.pending.is_empty());
        for k in 0..5000u32 {
            assert_eq!(positions.get(&id(k), &ids).unwrap(), Some(k));
        }
        assert_eq!(positions.get(&id(5000), &ids).unwrap(), None);
    }

    /// Every id hashes alike: one bucket to start from and one tag for all.
    #[derive(Clone, Default)]
    struct Degenerate;

    impl std::hash::BuildHasher for Degenerate {
        type Hasher = Degenerate;
        fn build_hasher(&self) -> Degenerate {
            Degenerate
        }
    }

    impl std::hash::Hasher for Degenerate {
        fn finish(&self) -> u64 {
            0x5eed_0000_0000_0007
        }
        fn write(&mut self, _: &[u8]) {}
    }

    #[test]
    fn positions_confirm_a_matching_tag_against_the_spilled_id_and_never_assume_it() {
        let staging = tempfile::tempdir().unwrap();
        let mut ids = IdSpill::new(staging.path()).unwrap();
        let mut positions = Positions::with_hasher(staging.path(), 10, Degenerate).unwrap();
        // 3000 ids, all with the same tag in one probe run (past a batch of the spill, and
        // through two growths): only the id read back tells them apart.
        place_all(&mut positions, &mut ids, 3000);
        assert!(ids.written > 0);
        let mut tags = Vec::new();
        positions
            .buckets
            .each_used(|word| {
                tags.push((word >> 32) as u32);
                Ok(())
            })
            .unwrap();
        assert_eq!(tags, vec![0x5eed_0000; 3000]);
        for k in (0..3000u32).step_by(7) {
            assert_eq!(positions.get(&id(k), &ids).unwrap(), Some(k));
        }
        assert_eq!(positions.get(&id(3000), &ids).unwrap(), None, "a tag match alone is not a hit");
    }

    #[test]
    fn the_streamed_index_json_is_serde_jsons_byte_for_byte() {
        let chunk = |n: u32| IndexChunk {
            id: id(n),
            raw_len: 100 + n,
            pack: n / 2,
            offset: n as u64 * 10,
            stored_len: 90 + n,
            codec: if n.is_multiple_of(2) { Codec::Raw } else { Codec::Zstd },
        };
        let file = |path: &str, chunks: Vec<u32>| IndexEntry {
            path: path.into(),
            kind: IndexKind::File { mode: 0o755, size: 7, sha256: sha256_hex(path.as_bytes()), chunks },
        };
        for (chunks, files, preload_bytes) in [
            (
                vec![chunk(0), chunk(1), chunk(2)],
                vec![file("a \"q\"/é", vec![0, 1]), file("b", vec![]), file("c", vec![1, 2, 1])],
                Some(190),
            ),
            (vec![chunk(0)], vec![IndexEntry { path: "d".into(), kind: IndexKind::Dir { mode: 0o700 } }], None),
            (vec![], vec![], None),
        ] {
            let packs: Vec<PackInfo> = (0..2).map(|n| PackInfo { name: pack_name(n), size: 1000 + n as u64 }).collect();
            let join = |json: Vec<Vec<u8>>| json.join(&b","[..]);
            let rows = join(chunks.iter().map(|c| serde_json::to_vec(c).unwrap()).collect());
            let entries = join(files.iter().map(|e| serde_json::to_vec(e).unwrap()).collect());
            let mut streamed = Vec::new();
            write_index_json(&mut streamed, &packs, &mut &rows[..], &mut &entries[..], preload_bytes).unwrap();
            let index = Index { format: INDEX_FORMAT, packs, chunks, files, preload_bytes };
            assert_eq!(
                String::from_utf8(streamed).unwrap(),
                String::from_utf8(serde_json::to_vec(&index).unwrap()).unwrap()
            );
        }
    }

    #[test]
    fn a_written_index_is_the_serde_json_of_its_own_contents_and_leaves_no_scratch_file() {
        use crate::engine::manifest::{Entry, Manifest, MANIFEST_FORMAT};
        let dir = tempfile::tempdir().unwrap();
        let store = ChunkStore::open(dir.path().join("chunks")).unwrap();
        let raw = |n: u8| vec![n; 50 + n as usize];
        for n in 1..=5u8 {
            store.put(&ChunkId::of(&raw(n)), &raw(n)).unwrap();
        }
        store.flush().unwrap();
        let file = |path: &str, order: u64, mode: u32, chunks: &[u8]| {
            let chunks: Vec<ChunkRef> =
                chunks.iter().map(|&n| ChunkRef { id: ChunkId::of(&raw(n)), len: raw(n).len() as u32 }).collect();
            let size = chunks.iter().map(|c| c.len as u64).sum();
            Entry {
                path: path.into(),
                order,
                kind: EntryKind::File { mode, size, sha256: sha256_hex(path.as_bytes()), chunks },
            }
        };
        let manifest = Manifest {
            format: MANIFEST_FORMAT,
            files: vec![
                file("big", 0, 0o644, &[1, 2, 3]),
                Entry { path: "bin".into(), order: 1, kind: EntryKind::Dir { mode: 0o755 } },
                file("bin/run", 2, 0o755, &[4, 2]),
                file("empty", 3, 0o644, &[]),
                Entry { path: "link".into(), order: 4, kind: EntryKind::Symlink { target: "big".into() } },
                file("more", 5, 0o644, &[5, 1, 5]),
            ],
            warnings: Vec::new(),
        };
        // "more" starts first: its chunks 5 and 1 lead the packs, ahead of the default order.
        let startup = [StartupRead { path: "more".into(), offset: 0, len: 100 }];
        let out = dir.path().join("out");
        let seen = std::sync::Mutex::new(Vec::new());
        let progress = |done: u64, total: u64| seen.lock().unwrap().push((done, total));
        let hooks = Hooks::new(&progress, &|| false);
        // One chunk a pack: rows in several packs.
        let options = ImageOptions { pack_limit: 1 };
        let image = write_image(&manifest, &store, &out, &options, &startup, &hooks).unwrap();

        let index = Index::load(&image.dir).unwrap();
        let mut json = Vec::new();
        zstd::stream::read::Decoder::new(&fs::read(image.dir.join(INDEX_FILE)).unwrap()[..])
            .unwrap()
            .read_to_end(&mut json)
            .unwrap();
        assert_eq!(String::from_utf8(json).unwrap(), String::from_utf8(serde_json::to_vec(&index).unwrap()).unwrap());
        let order: Vec<ChunkId> = index.chunks.iter().map(|c| c.id.clone()).collect();
        assert_eq!(order, [5, 1, 2, 3, 4].map(|n| ChunkId::of(&raw(n))));
        let paths: Vec<&str> = index.files.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(paths, ["bin", "link", "more", "big", "bin/run", "empty"]);
        let IndexKind::File { chunks, .. } = &index.files[2].kind else { panic!("more is a file") };
        assert_eq!(chunks, &[0, 1, 0], "a chunk used twice is stored once");
        assert_eq!(index.preload_bytes, Some(index.chunks[..2].iter().map(|c| c.stored_len as u64).sum()));
        assert_eq!(index.packs.len(), 5, "{:?}", index.packs);
        assert_eq!(image, ImageInfo::open(&image.dir).unwrap());
        assert_eq!((image.packs.clone(), image.preload_bytes), (index.packs.clone(), index.preload_bytes));

        let mut names: Vec<String> =
            fs::read_dir(&image.dir).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
        names.sort();
        let mut expected: Vec<String> = index.packs.iter().map(|p| p.name.clone()).collect();
        expected.push(INDEX_FILE.into());
        expected.sort();
        assert_eq!(names, expected, "nothing but the packs and the index is published");
        let names: Vec<_> = fs::read_dir(&out).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, [std::ffi::OsString::from(&image.dxf_name)], "no staging directory is left");

        let seen = seen.into_inner().unwrap();
        // Two start-up references, then 3 + 2 + 3 of the files.
        assert!(seen.iter().all(|&(_, total)| total == 10), "{seen:?}");
        assert!(seen.windows(2).all(|w| w[0].0 <= w[1].0), "{seen:?}");
        assert_eq!(seen.last(), Some(&(10, 10)));
    }

    #[test]
    fn a_failed_image_leaves_nothing_behind() {
        use crate::engine::manifest::{Entry, Manifest, MANIFEST_FORMAT};
        let dir = tempfile::tempdir().unwrap();
        let store = ChunkStore::open(dir.path().join("chunks")).unwrap();
        store.put(&ChunkId::of(b"here"), b"here").unwrap();
        store.flush().unwrap();
        let chunks = vec![ChunkRef { id: ChunkId::of(b"here"), len: 4 }, ChunkRef { id: ChunkId::of(b"gone"), len: 4 }];
        let manifest = Manifest {
            format: MANIFEST_FORMAT,
            files: vec![Entry {
                path: "f".into(),
                order: 0,
                kind: EntryKind::File { mode: 0o644, size: 8, sha256: String::new(), chunks },
            }],
            warnings: Vec::new(),
        };
        let out = dir.path().join("out");
        let hooks = Hooks::new(&|_, _| {}, &|| false);
        assert!(write_image(&manifest, &store, &out, &ImageOptions::default(), &[], &hooks).is_err());
        assert_eq!(fs::read_dir(&out).unwrap().count(), 0, "the staging directory and its scratch files are gone");
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
