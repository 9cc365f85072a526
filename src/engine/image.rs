//! The DxF image of a build: `index.zst` (file tree and chunk table in load order) and packs
//! of stored chunks back to back, so a launcher gets any chunk with one Range request and
//! adjacent chunks with one. The directory's name (`dxfName`) is derived from the hash of the
//! index, so a published image never changes and its URLs can be cached forever.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::error::{EngineError, IoContext, Result};
use super::fsutil::{fsync_dir, sha256_hex, temp_name};
use super::layout::{pack_name, INDEX_FILE};
use super::manifest::{EntryKind, Manifest};
use super::store::{ChunkId, ChunkStore, Codec};
use super::Hooks;

pub const INDEX_FORMAT: u32 = 1;
/// Default pack size limit: few large objects (cheap on S3), each still a sane single upload.
pub const DEFAULT_PACK_LIMIT: u64 = 1 << 30;
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

    fn encode(&self) -> Result<Vec<u8>> {
        let json = serde_json::to_vec(self).map_err(|e| EngineError::Invalid(format!("index: {e}")))?;
        zstd::bulk::compress(&json, 19).ctx(|| "compress index".into())
    }

    /// Where each chunk id sits in the image.
    pub fn chunk_positions(&self) -> HashMap<&ChunkId, &IndexChunk> {
        self.chunks.iter().map(|c| (&c.id, c)).collect()
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

/// An open pack being filled.
struct PackWriter {
    file: BufWriter<File>,
    path: PathBuf,
    size: u64,
}

impl PackWriter {
    fn finish(self) -> Result<u64> {
        let file =
            self.file.into_inner().map_err(|e| e.into_error()).ctx(|| format!("write {}", self.path.display()))?;
        file.sync_all().ctx(|| format!("fsync {}", self.path.display()))?;
        Ok(self.size)
    }
}

/// Writes the image of `manifest` into `out_dir/<dxfName>/` (see `Engine::write_image`).
pub fn write_image(
    manifest: &Manifest,
    store: &ChunkStore,
    out_dir: &Path,
    options: &ImageOptions,
    hooks: &Hooks,
) -> Result<ImageInfo> {
    fs::create_dir_all(out_dir).ctx(|| format!("create {}", out_dir.display()))?;
    let staging = out_dir.join(temp_name("dxf"));
    fs::create_dir(&staging).ctx(|| format!("create {}", staging.display()))?;
    let result = fill_staging(manifest, store, &staging, options, hooks);
    let (index, index_bytes) = match result {
        Ok(done) => done,
        Err(e) => {
            let _ = fs::remove_dir_all(&staging);
            return Err(e);
        }
    };
    let dxf_name = sha256_hex(&index_bytes)[..32].to_string();
    let dir = out_dir.join(&dxf_name);
    let size_bytes = index_bytes.len() as u64 + index.packs.iter().map(|p| p.size).sum::<u64>();
    if dir.is_dir() {
        // A rerun after a crash produced the same image: the published one stays untouched.
        fs::remove_dir_all(&staging).ctx(|| format!("remove {}", staging.display()))?;
    } else {
        fs::rename(&staging, &dir).ctx(|| format!("rename to {}", dir.display()))?;
        fsync_dir(out_dir)?;
    }
    Ok(ImageInfo { dxf_name, size_bytes, dir, index })
}

fn fill_staging(
    manifest: &Manifest,
    store: &ChunkStore,
    staging: &Path,
    options: &ImageOptions,
    hooks: &Hooks,
) -> Result<(Index, Vec<u8>)> {
    let mut order: Vec<_> = manifest.files.iter().collect();
    order.sort_by_key(|e| (load_class(&e.kind), e.order));
    let total = manifest.chunk_ids().len() as u64;
    let mut positions: HashMap<&ChunkId, u32> = HashMap::new();
    let mut chunks = Vec::new();
    let mut packs = Vec::new();
    let mut files = Vec::new();
    let mut pack: Option<PackWriter> = None;
    for entry in order {
        let kind = match &entry.kind {
            EntryKind::Dir { mode } => IndexKind::Dir { mode: *mode },
            EntryKind::Symlink { target } => IndexKind::Symlink { target: target.clone() },
            EntryKind::File { mode, size, sha256, chunks: refs } => {
                let mut slots = Vec::with_capacity(refs.len());
                for r in refs {
                    if let Some(&slot) = positions.get(&r.id) {
                        slots.push(slot);
                        continue;
                    }
                    if (hooks.cancel)() {
                        return Err(EngineError::Cancelled);
                    }
                    let stored = store.get(&r.id)?;
                    let stored_len = stored.bytes.len() as u64;
                    if pack.as_ref().is_some_and(|p| p.size > 0 && p.size + stored_len > options.pack_limit) {
                        if let Some(full) = pack.take() {
                            packs.push(PackInfo { name: pack_name(packs.len() as u32), size: full.finish()? });
                        }
                    }
                    if pack.is_none() {
                        let path = staging.join(pack_name(packs.len() as u32));
                        let file = File::create(&path).ctx(|| format!("create {}", path.display()))?;
                        pack = Some(PackWriter { file: BufWriter::with_capacity(1 << 20, file), path, size: 0 });
                    }
                    let writer = pack.as_mut().ok_or_else(|| EngineError::Invalid("no open pack".into()))?;
                    writer.file.write_all(&stored.bytes).ctx(|| format!("write {}", writer.path.display()))?;
                    let slot = chunks.len() as u32;
                    chunks.push(IndexChunk {
                        id: r.id.clone(),
                        raw_len: r.len,
                        pack: packs.len() as u32,
                        offset: writer.size,
                        stored_len: stored_len as u32,
                        codec: stored.codec,
                    });
                    writer.size += stored_len;
                    positions.insert(&r.id, slot);
                    slots.push(slot);
                    (hooks.progress)(chunks.len() as u64, total);
                }
                IndexKind::File { mode: *mode, size: *size, sha256: sha256.clone(), chunks: slots }
            }
        };
        files.push(IndexEntry { path: entry.path.clone(), kind });
    }
    if let Some(last) = pack.take() {
        packs.push(PackInfo { name: pack_name(packs.len() as u32), size: last.finish()? });
    }
    let index = Index { format: INDEX_FORMAT, packs, chunks, files };
    let bytes = index.encode()?;
    // Data before index: the packs are fsynced above, the index after them.
    let path = staging.join(INDEX_FILE);
    let mut f = File::create(&path).ctx(|| format!("create {}", path.display()))?;
    f.write_all(&bytes).and_then(|_| f.sync_all()).ctx(|| format!("write {}", path.display()))?;
    fsync_dir(staging)?;
    Ok((index, bytes))
}
