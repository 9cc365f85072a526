//! Patches from an older build to a newer one. Per target file, the cheapest way to rebuild it
//! from the older tree: `same` (a file of the old build with that content, any path), `chunks`
//! (every chunk is somewhere in the old tree), `delta` (a zstd frame against the best-matching
//! old file) or `fetch` (new chunks from the new build's image, known chunks from the old tree).
//!
//! Pairing follows itch.io wharf's rule: the old file sharing the most chunk bytes; without
//! any, the same path, then the same extension and nearest size. Measured on pygame 2.6.0→2.6.1
//! (PIPELINE.md), pairing by content is what makes per-file deltas as small as a whole-tar delta.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{BufWriter, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::delta;
use super::error::{EngineError, IoContext, Result};
use super::fsutil::{fsync_dir, temp_name, write_durably};
use super::image::ImageInfo;
use super::layout::{PATCH_DATA_FILE, PATCH_FILE};
use super::manifest::{ChunkRef, Entry, EntryKind, Manifest};
use super::pool::WorkPool;
use super::store::{ChunkId, ChunkStore, Codec};
use super::Hooks;

pub const PATCH_FORMAT: u32 = 1;
/// Largest delta segment: the source and target windows a delta holds in memory (server and
/// client) are bounded by it, far below zstd's 2 GiB window limit. At 128 MiB a level-19 delta
/// needs about 400 MB (target, 1.25× reference, matcher tables); data moved by more than
/// 16 MiB across a segment boundary is fetched instead of found.
pub const DEFAULT_SEGMENT: u64 = 128 << 20;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Patch {
    pub format: u32,
    /// The image `fetch` pieces come from: `dxf/<org>/<app>/<to>/<toDxfName>/`.
    pub to_dxf_name: String,
    /// Size of `patch.dat`.
    pub dat_size: u64,
    /// Every entry of the new build, in path order.
    pub files: Vec<PatchEntry>,
    /// Paths of the old build that the new one does not have (or has as another kind).
    pub remove: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PatchEntry {
    pub path: String,
    #[serde(flatten)]
    pub kind: PatchKind,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum PatchKind {
    File { mode: u32, size: u64, sha256: String, op: FileOp },
    Dir { mode: u32 },
    Symlink { target: String },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum FileOp {
    /// Copy (or keep) the old build's file `source`.
    Same { source: String },
    /// Concatenate pieces that are all in the old tree.
    Chunks { pieces: Vec<Piece> },
    /// Concatenate the outputs of the delta segments.
    Delta { segments: Vec<DeltaSegment> },
    /// Concatenate pieces; at least one comes from the new image.
    Fetch { pieces: Vec<Piece> },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Piece {
    /// `len` bytes at `offset` of the old tree's file `path`.
    Local { path: String, offset: u64, len: u32 },
    /// A chunk of the new image: `storedLen` bytes at `offset` of pack number `pack`.
    Remote {
        id: ChunkId,
        pack: u32,
        offset: u64,
        #[serde(rename = "storedLen")]
        stored_len: u32,
        len: u32,
        codec: Codec,
    },
}

/// One zstd frame in `patch.dat` that rebuilds `outLen` bytes of the file, using
/// `srcLen` bytes at `srcOffset` of the old file `source` as its reference prefix.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeltaSegment {
    pub source: String,
    pub src_offset: u64,
    pub src_len: u64,
    pub dat_offset: u64,
    pub dat_len: u64,
    pub out_len: u64,
}

#[derive(Debug, Clone)]
pub struct PatchOptions {
    pub segment: u64,
    pub level: i32,
}

impl Default for PatchOptions {
    fn default() -> Self {
        PatchOptions { segment: DEFAULT_SEGMENT, level: delta::DELTA_LEVEL }
    }
}

/// What was written.
#[derive(Debug, Clone)]
pub struct PatchInfo {
    /// patch.zst plus patch.dat (the app's `patches[].sizeBytes`).
    pub size_bytes: u64,
    pub dir: PathBuf,
    /// How many target files each op rebuilds: same, chunks, delta, fetch.
    pub op_counts: [u64; 4],
}

impl Patch {
    pub fn load(dir: &Path) -> Result<Patch> {
        let path = dir.join(PATCH_FILE);
        Patch::decode(&fs::read(&path).ctx(|| format!("read {}", path.display()))?)
    }

    pub fn decode(bytes: &[u8]) -> Result<Patch> {
        let json = zstd::stream::decode_all(bytes).map_err(|e| EngineError::Corrupt(format!("patch.zst: {e}")))?;
        let patch: Patch =
            serde_json::from_slice(&json).map_err(|e| EngineError::Corrupt(format!("patch.zst: {e}")))?;
        if patch.format != PATCH_FORMAT {
            return Err(EngineError::Corrupt(format!("patch format {} is not {PATCH_FORMAT}", patch.format)));
        }
        Ok(patch)
    }
}

struct OldFile<'a> {
    path: &'a str,
    size: u64,
    chunks: &'a [ChunkRef],
}

/// Where the old build keeps what: content hashes, chunk locations, files by path.
struct OldBuild<'a> {
    files: Vec<OldFile<'a>>,
    by_path: HashMap<&'a str, usize>,
    by_sha: HashMap<&'a str, usize>,
    /// chunk id → (file, offset) of its first occurrence, and every file holding it.
    chunk_at: HashMap<&'a ChunkId, (usize, u64)>,
    chunk_files: HashMap<&'a ChunkId, Vec<usize>>,
}

impl<'a> OldBuild<'a> {
    fn new(manifest: &'a Manifest) -> OldBuild<'a> {
        let mut old = OldBuild {
            files: Vec::new(),
            by_path: HashMap::new(),
            by_sha: HashMap::new(),
            chunk_at: HashMap::new(),
            chunk_files: HashMap::new(),
        };
        for entry in &manifest.files {
            if let EntryKind::File { size, sha256, chunks, .. } = &entry.kind {
                let i = old.files.len();
                old.files.push(OldFile { path: &entry.path, size: *size, chunks });
                old.by_path.insert(&entry.path, i);
                old.by_sha.entry(sha256).or_insert(i);
                let mut offset = 0;
                for c in chunks.iter() {
                    old.chunk_at.entry(&c.id).or_insert((i, offset));
                    let holders = old.chunk_files.entry(&c.id).or_default();
                    if holders.last() != Some(&i) {
                        holders.push(i);
                    }
                    offset += c.len as u64;
                }
            }
        }
        old
    }

    /// The old file a delta for `path` should use as its reference (see the module comment).
    fn pair(&self, path: &str, size: u64, chunks: &[ChunkRef]) -> Option<usize> {
        let mut shared: HashMap<usize, u64> = HashMap::new();
        for c in chunks {
            for &i in self.chunk_files.get(&c.id).map(Vec::as_slice).unwrap_or(&[]) {
                *shared.entry(i).or_default() += c.len as u64;
            }
        }
        let same_path = self.by_path.get(path).copied();
        let best = shared.into_iter().max_by_key(|&(i, bytes)| (bytes, Some(i) == same_path, std::cmp::Reverse(i)));
        if let Some((i, _)) = best {
            return Some(i);
        }
        if let Some(i) = same_path.filter(|&i| self.files[i].size > 0) {
            return Some(i);
        }
        let ext = extension(path);
        self.files
            .iter()
            .enumerate()
            .filter(|(_, f)| f.size > 0 && extension(f.path) == ext)
            .min_by_key(|(i, f)| (f.size.abs_diff(size), *i))
            .map(|(i, _)| i)
    }
}

fn extension(path: &str) -> &str {
    let name = path.rsplit('/').next().unwrap_or(path);
    match name.rfind('.') {
        Some(dot) if dot > 0 => &name[dot + 1..],
        _ => "",
    }
}

/// Reads `len` bytes at `offset` of a file from its chunks in the store.
pub fn read_range(chunks: &[ChunkRef], store: &ChunkStore, offset: u64, len: u64) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(len as usize);
    let end = offset + len;
    let mut at = 0u64;
    for c in chunks {
        let c_end = at + c.len as u64;
        if c_end > offset && at < end {
            let raw = store.read_raw(&c.id, c.len as usize)?;
            let from = offset.saturating_sub(at) as usize;
            let to = (end.min(c_end) - at) as usize;
            out.extend_from_slice(&raw[from..to]);
        }
        if c_end >= end {
            break;
        }
        at = c_end;
    }
    if out.len() as u64 != len {
        return Err(EngineError::Corrupt(format!(
            "file shorter than its manifest says ({} of {len} bytes)",
            out.len()
        )));
    }
    Ok(out)
}

/// The source window each target segment is diffed against: the whole source when both fit one
/// segment, else a window around the proportional position, a quarter segment wider than the
/// target segment so that shifted data is still found.
fn segments(src_size: u64, tgt_size: u64, segment: u64) -> Vec<(u64, u64, u64, u64)> {
    if src_size <= segment && tgt_size <= segment {
        return vec![(0, src_size, 0, tgt_size)];
    }
    let mut out = Vec::new();
    let mut t = 0;
    while t < tgt_size {
        let t_len = segment.min(tgt_size - t);
        let center = ((t as u128 * src_size as u128) / tgt_size.max(1) as u128) as u64;
        let s_off = center.saturating_sub(segment / 8).min(src_size);
        let s_len = (segment + segment / 4).min(src_size - s_off);
        out.push((s_off, s_len, t, t_len));
        t += t_len;
    }
    out
}

/// Writes the patch that turns build `from` into build `to` into `out_dir` (see
/// `Engine::write_patch`, the public entry point, which supplies options and pool).
#[allow(clippy::too_many_arguments)]
pub fn write_patch(
    from: &Manifest,
    to: &Manifest,
    to_image: &ImageInfo,
    store: &ChunkStore,
    out_dir: &Path,
    options: &PatchOptions,
    pool: &WorkPool,
    hooks: &Hooks,
) -> Result<PatchInfo> {
    let (to_dxf_name, to_index) = (&to_image.dxf_name, &to_image.index);
    fs::create_dir_all(out_dir).ctx(|| format!("create {}", out_dir.display()))?;
    let old = OldBuild::new(from);
    let remote = to_index.chunk_positions();
    let dat_tmp = out_dir.join(temp_name("dat"));
    let outcome = (|| {
        let file = File::create(&dat_tmp).ctx(|| format!("create {}", dat_tmp.display()))?;
        let mut dat = DatWriter { file: BufWriter::new(file), size: 0 };
        let mut files = Vec::with_capacity(to.files.len());
        let mut counts = [0u64; 4];
        let total = to.files.len() as u64;
        for (n, entry) in to.files.iter().enumerate() {
            if (hooks.cancel)() {
                return Err(EngineError::Cancelled);
            }
            let kind = match &entry.kind {
                EntryKind::Dir { mode } => PatchKind::Dir { mode: *mode },
                EntryKind::Symlink { target } => PatchKind::Symlink { target: target.clone() },
                EntryKind::File { mode, size, sha256, chunks } => {
                    let op = plan_file(entry, *size, sha256, chunks, &old, &remote, store, &mut dat, options, pool)?;
                    counts[match op {
                        FileOp::Same { .. } => 0,
                        FileOp::Chunks { .. } => 1,
                        FileOp::Delta { .. } => 2,
                        FileOp::Fetch { .. } => 3,
                    }] += 1;
                    PatchKind::File { mode: *mode, size: *size, sha256: sha256.clone(), op }
                }
            };
            files.push(PatchEntry { path: entry.path.clone(), kind });
            (hooks.progress)(n as u64 + 1, total);
        }
        let file = dat.file.into_inner().map_err(|e| e.into_error()).ctx(|| format!("write {}", dat_tmp.display()))?;
        file.sync_all().ctx(|| format!("fsync {}", dat_tmp.display()))?;
        Ok((files, dat.size, counts))
    })();
    let (files, dat_size, op_counts) = match outcome {
        Ok(done) => done,
        Err(e) => {
            let _ = fs::remove_file(&dat_tmp);
            return Err(e);
        }
    };
    // Data before index: patch.dat is in place (and durable) before patch.zst names it.
    fs::rename(&dat_tmp, out_dir.join(PATCH_DATA_FILE)).ctx(|| format!("rename patch.dat in {}", out_dir.display()))?;
    fsync_dir(out_dir)?;
    let kinds: HashMap<&str, std::mem::Discriminant<EntryKind>> =
        to.files.iter().map(|e| (e.path.as_str(), std::mem::discriminant(&e.kind))).collect();
    let remove = from
        .files
        .iter()
        .filter(|e| kinds.get(e.path.as_str()) != Some(&std::mem::discriminant(&e.kind)))
        .map(|e| e.path.clone())
        .collect();
    let patch = Patch { format: PATCH_FORMAT, to_dxf_name: to_dxf_name.to_string(), dat_size, files, remove };
    let json = serde_json::to_vec(&patch).map_err(|e| EngineError::Invalid(format!("patch: {e}")))?;
    let packed = zstd::bulk::compress(&json, 19).ctx(|| "compress patch".into())?;
    write_durably(&out_dir.join(PATCH_FILE), &packed)?;
    Ok(PatchInfo { size_bytes: packed.len() as u64 + dat_size, dir: out_dir.to_path_buf(), op_counts })
}

struct DatWriter {
    file: BufWriter<File>,
    size: u64,
}

impl DatWriter {
    /// Drops frames appended since `size` (a delta that lost against `fetch`).
    fn truncate(&mut self, size: u64) -> Result<()> {
        self.file.flush().ctx(|| "flush patch.dat".into())?;
        let f = self.file.get_mut();
        f.set_len(size).and_then(|_| f.seek(SeekFrom::Start(size))).ctx(|| "truncate patch.dat".into())?;
        self.size = size;
        Ok(())
    }
}

#[allow(clippy::too_many_arguments)]
fn plan_file(
    entry: &Entry,
    size: u64,
    sha256: &str,
    chunks: &[ChunkRef],
    old: &OldBuild,
    remote: &HashMap<&ChunkId, &super::image::IndexChunk>,
    store: &ChunkStore,
    dat: &mut DatWriter,
    options: &PatchOptions,
    pool: &WorkPool,
) -> Result<FileOp> {
    if let Some(&i) = old.by_sha.get(sha256) {
        // Prefer the file at the same path, so the client leaves it where it is.
        let source = match old.by_path.get(entry.path.as_str()) {
            Some(&p) if old_sha_matches(old, p, i) => entry.path.clone(),
            _ => old.files[i].path.to_string(),
        };
        return Ok(FileOp::Same { source });
    }
    let mut pieces = Vec::with_capacity(chunks.len());
    let mut fetch_cost = 0u64;
    for c in chunks {
        if let Some(&(i, offset)) = old.chunk_at.get(&c.id) {
            pieces.push(Piece::Local { path: old.files[i].path.to_string(), offset, len: c.len });
        } else {
            let at = remote.get(&c.id).ok_or_else(|| {
                EngineError::Corrupt(format!("chunk {} of {} is not in the new image", c.id, entry.path))
            })?;
            fetch_cost += at.stored_len as u64;
            pieces.push(Piece::Remote {
                id: c.id.clone(),
                pack: at.pack,
                offset: at.offset,
                stored_len: at.stored_len,
                len: c.len,
                codec: at.codec,
            });
        }
    }
    if fetch_cost == 0 {
        return Ok(FileOp::Chunks { pieces });
    }
    let Some(src) = old.pair(&entry.path, size, chunks) else {
        return Ok(FileOp::Fetch { pieces });
    };
    let start = dat.size;
    let mut segs = Vec::new();
    for (s_off, s_len, t_off, t_len) in segments(old.files[src].size, size, options.segment) {
        let source_bytes = read_range(old.files[src].chunks, store, s_off, s_len)?;
        let target_bytes = read_range(chunks, store, t_off, t_len)?;
        let level = options.level;
        let frame = pool.run(move || delta::encode(&source_bytes, &target_bytes, level))?;
        dat.file.write_all(&frame).ctx(|| "write patch.dat".into())?;
        segs.push(DeltaSegment {
            source: old.files[src].path.to_string(),
            src_offset: s_off,
            src_len: s_len,
            dat_offset: dat.size,
            dat_len: frame.len() as u64,
            out_len: t_len,
        });
        dat.size += frame.len() as u64;
        // Already worse than fetching: stop spending CPU on this file.
        if (dat.size - start) * 10 >= fetch_cost * 9 {
            break;
        }
    }
    let delta_cost = dat.size - start;
    // "Clearly smaller": a delta must save at least 10 % over fetching the new chunks.
    if delta_cost * 10 < fetch_cost * 9 && segs.iter().map(|s| s.out_len).sum::<u64>() == size {
        Ok(FileOp::Delta { segments: segs })
    } else {
        dat.truncate(start)?;
        Ok(FileOp::Fetch { pieces })
    }
}

fn old_sha_matches(old: &OldBuild, a: usize, b: usize) -> bool {
    a == b || (old.files[a].size == old.files[b].size && old.files[a].chunks == old.files[b].chunks)
}
