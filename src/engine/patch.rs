//! Patches from an older build to a newer one. Per target file, the cheapest way to rebuild it
//! from the older tree: `same` (a file of the old build with that content, any path), `chunks`
//! (every chunk is somewhere in the old tree), `delta` (a zstd frame against the best-matching
//! old file) or `fetch` (new chunks from the new build's image, known chunks from the old tree).
//!
//! Pairing follows itch.io wharf's rule: the old file sharing the most chunk bytes; without
//! any, the same path, then the same extension and nearest size. Measured on pygame
//! 2.6.0→2.6.1, pairing by content is what makes per-file deltas as small as a whole-tar delta
//! (245 KB of delta frames, against 495 KB when files are paired by path only: renamed
//! libraries).

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::delta;
use super::error::{EngineError, IoContext, Result};
use super::fsutil::{fsync_dir, temp_name, write_durably};
use super::image::{ImageInfo, Index};
use super::layout::{PATCH_DATA_FILE, PATCH_FILE};
use super::manifest::{ChunkRef, Entry, EntryKind, FileChunks, Manifest};
use super::pool::{Pending, WorkPool};
use super::store::{ChunkId, ChunkStore, Codec};
use super::Hooks;

/// The patch format a client must know. 1: every delta is a zstd frame. 2: a delta segment may
/// be a BSDIFF40 patch (`"codec":"bsdiff"`); written only by patches that have one, so clients
/// of format 1 keep reading every other patch and refuse (detect) the ones they cannot apply.
pub const PATCH_FORMAT: u32 = 1;
pub const PATCH_FORMAT_BSDIFF: u32 = 2;
/// How many old files per chunk pairing considers.
const MAX_HOLDERS: usize = 32;
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

/// One delta in `patch.dat` that rebuilds `outLen` bytes of the file from `srcLen` bytes at
/// `srcOffset` of the old file `source`: a zstd frame with them as its reference prefix, or
/// (`codec` `bsdiff`, patch format 2) a BSDIFF40 patch against them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeltaSegment {
    pub source: String,
    pub src_offset: u64,
    pub src_len: u64,
    pub dat_offset: u64,
    pub dat_len: u64,
    pub out_len: u64,
    /// Absent for zstd, so format-1 patches are written byte for byte as before.
    #[serde(default, skip_serializing_if = "DeltaCodec::is_zstd")]
    pub codec: DeltaCodec,
}

/// How a delta segment's bytes in `patch.dat` are applied.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeltaCodec {
    #[default]
    Zstd,
    Bsdiff,
}

impl DeltaCodec {
    fn is_zstd(&self) -> bool {
        *self == DeltaCodec::Zstd
    }
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
    /// Deltas taken from the [`DeltaCache`] instead of computed.
    pub deltas_reused: u64,
}

/// Deltas computed for the patches of one new build, reused across them. When the paired old
/// file has the same content in two retained builds (measured on panda3d 1.10.14/15→16: 39 of
/// 205 changed files, 18 of 113 MB), the delta is the same: a job is deterministic in its
/// inputs, which the key names (source and target content, what fetching would cost, whether the
/// pair was a guess). Bounded: past `max_bytes` of frames, new outcomes are not kept.
pub struct DeltaCache {
    outcomes: std::sync::Mutex<HashMap<DeltaKey, DeltaOutcome>>,
    bytes: std::sync::atomic::AtomicU64,
    max_bytes: u64,
}

/// Source sha256, target sha256, fetch cost, guessed.
type DeltaKey = (String, String, u64, bool);

/// Frames a [`DeltaCache`] keeps at most: the patch.dat of a large update, not a build's size.
const DELTA_CACHE_BYTES: u64 = 256 << 20;

impl Default for DeltaCache {
    fn default() -> Self {
        DeltaCache::new(DELTA_CACHE_BYTES)
    }
}

impl DeltaCache {
    pub fn new(max_bytes: u64) -> DeltaCache {
        DeltaCache { outcomes: Default::default(), bytes: Default::default(), max_bytes }
    }

    fn get(&self, key: &DeltaKey) -> Option<DeltaOutcome> {
        self.outcomes.lock().ok()?.get(key).cloned()
    }

    fn keep(&self, key: DeltaKey, outcome: &DeltaOutcome) {
        use std::sync::atomic::Ordering;
        let size: u64 = outcome.iter().flatten().map(|(_, frame)| frame.len() as u64).sum();
        if self.bytes.load(Ordering::Relaxed) + size > self.max_bytes {
            return;
        }
        if let Ok(mut outcomes) = self.outcomes.lock() {
            if outcomes.insert(key, outcome.clone()).is_none() {
                self.bytes.fetch_add(size, Ordering::Relaxed);
            }
        }
    }
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
        if patch.format != PATCH_FORMAT && patch.format != PATCH_FORMAT_BSDIFF {
            return Err(EngineError::Corrupt(format!(
                "patch format {} is not {PATCH_FORMAT} or {PATCH_FORMAT_BSDIFF}",
                patch.format
            )));
        }
        if patch.format < PATCH_FORMAT_BSDIFF && patch.uses_bsdiff() {
            return Err(EngineError::Corrupt(format!("a format {} patch has a bsdiff delta", patch.format)));
        }
        Ok(patch)
    }

    fn uses_bsdiff(&self) -> bool {
        self.files.iter().any(|f| {
            matches!(&f.kind, PatchKind::File { op: FileOp::Delta { segments }, .. }
                if segments.iter().any(|s| s.codec == DeltaCodec::Bsdiff))
        })
    }
}

struct OldFile<'a> {
    path: &'a str,
    size: u64,
    sha256: &'a str,
    chunks: &'a [ChunkRef],
}

/// One old file holding a chunk, at the chunk's first offset in it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Holder<'a> {
    /// Borrowed from the old manifest: 8 bytes rather than 32.
    id: &'a ChunkId,
    file: usize,
    offset: u64,
}

/// Where the old build keeps what: content hashes, chunk locations, files by path. Sorted
/// vectors searched by bisection rather than hash maps: per chunk one 24-byte [`Holder`] row
/// where two maps and a `Vec` per chunk took ~300 bytes (issue #9: memory stays bounded
/// whatever the build size).
struct OldBuild<'a> {
    files: Vec<OldFile<'a>>,
    /// Files sorted by path; with equal paths the later file is the one found, as when a map
    /// from paths was filled in order.
    by_path: Vec<usize>,
    /// Files sorted by (content hash, file): the first file with a given content.
    by_sha: Vec<usize>,
    /// Sorted by (chunk id, file): per chunk, the first `MAX_HOLDERS` files holding it (the
    /// first row is then where the chunk first occurs in the build).
    holders: Vec<Holder<'a>>,
    /// Non-empty files by extension, sorted by (size, file): the last pairing fallback is a
    /// binary search, not a scan of the old build per new file.
    by_ext: HashMap<&'a str, Vec<(u64, usize)>>,
}

impl<'a> OldBuild<'a> {
    fn new(manifest: &'a Manifest) -> OldBuild<'a> {
        let mut files = Vec::new();
        for entry in &manifest.files {
            if let EntryKind::File { size, sha256, chunks, .. } = &entry.kind {
                files.push(OldFile { path: &entry.path, size: *size, sha256, chunks });
            }
        }
        let mut by_path: Vec<usize> = (0..files.len()).collect();
        by_path.sort_unstable_by_key(|&i| (files[i].path, i));
        let mut by_sha: Vec<usize> = (0..files.len()).collect();
        by_sha.sort_unstable_by_key(|&i| (files[i].sha256, i));
        let mut by_ext: HashMap<&str, Vec<(u64, usize)>> = HashMap::new();
        for (i, f) in files.iter().enumerate().filter(|(_, f)| f.size > 0) {
            by_ext.entry(extension(f.path)).or_default().push((f.size, i));
        }
        for list in by_ext.values_mut() {
            list.sort_unstable();
        }
        OldBuild { holders: holders(&files), files, by_path, by_sha, by_ext }
    }

    /// The old files holding chunk `id` (at most `MAX_HOLDERS`, the first ones), in file order.
    fn holders(&self, id: &ChunkId) -> &[Holder<'a>] {
        let from = self.holders.partition_point(|h| h.id < id);
        let to = from + self.holders[from..].partition_point(|h| h.id == id);
        &self.holders[from..to]
    }

    /// (file, offset) of the first occurrence of chunk `id` in the old build.
    fn chunk_at(&self, id: &ChunkId) -> Option<(usize, u64)> {
        self.holders(id).first().map(|h| (h.file, h.offset))
    }

    /// The old file at `path`.
    fn by_path(&self, path: &str) -> Option<usize> {
        let to = self.by_path.partition_point(|&i| self.files[i].path <= path);
        to.checked_sub(1).map(|at| self.by_path[at]).filter(|&i| self.files[i].path == path)
    }

    /// The first old file with content `sha256`.
    fn by_sha(&self, sha256: &str) -> Option<usize> {
        let at = self.by_sha.partition_point(|&i| self.files[i].sha256 < sha256);
        self.by_sha.get(at).copied().filter(|&i| self.files[i].sha256 == sha256)
    }

    /// The old file a delta for `path` should use as its reference (see the module comment).
    #[cfg(test)]
    fn pair(&self, path: &str, size: u64, chunks: &[ChunkRef]) -> Option<usize> {
        self.pair_with_reason(path, size, chunks).map(|(i, _)| i)
    }

    /// [`OldBuild::pair`], and whether the pair shares chunks (else it is a guess by path,
    /// extension and size).
    fn pair_with_reason(&self, path: &str, size: u64, chunks: &[ChunkRef]) -> Option<(usize, bool)> {
        let mut shared: HashMap<usize, u64> = HashMap::new();
        for c in chunks {
            for h in self.holders(&c.id) {
                *shared.entry(h.file).or_default() += c.len as u64;
            }
        }
        let same_path = self.by_path(path);
        let best = shared.into_iter().max_by_key(|&(i, bytes)| (bytes, Some(i) == same_path, std::cmp::Reverse(i)));
        if let Some((i, _)) = best {
            return Some((i, true));
        }
        if let Some(i) = same_path.filter(|&i| self.files[i].size > 0) {
            return Some((i, false));
        }
        let list = self.by_ext.get(extension(path))?;
        // The nearest size sits next to where `size` would be inserted. On equal distance the
        // smaller size wins; among equal sizes the earliest file (the list is sorted by both).
        let at = list.partition_point(|&(s, _)| s < size);
        let above = list.get(at).map(|&(s, _)| (s - size, s));
        let below = at.checked_sub(1).map(|i| (size - list[i].0, list[i].0));
        let (_, nearest) = match (below, above) {
            (Some(b), Some(a)) => {
                if a.0 < b.0 {
                    a
                } else {
                    b
                }
            }
            (b, a) => b.or(a)?,
        };
        list.get(list.partition_point(|&(s, _)| s < nearest)).map(|&(_, i)| (i, false))
    }
}

/// The [`OldBuild::holders`] table of `files`: every (chunk, file) pair once, at the chunk's
/// first offset in the file, and per chunk only the first `MAX_HOLDERS` files: a chunk in very
/// many files (zero padding, a common header) says little about pairing and would make it
/// quadratic. Built from one row per chunk reference, sorted, then thinned in place.
fn holders<'a>(files: &[OldFile<'a>]) -> Vec<Holder<'a>> {
    let mut rows = Vec::with_capacity(files.iter().map(|f| f.chunks.len()).sum());
    for (file, f) in files.iter().enumerate() {
        let mut offset = 0;
        for c in f.chunks {
            rows.push(Holder { id: &c.id, file, offset });
            offset += c.len as u64;
        }
    }
    // Offsets grow within a file, so the first row of a (chunk, file) run is the first occurrence.
    rows.sort_unstable_by(|a, b| (a.id, a.file, a.offset).cmp(&(b.id, b.file, b.offset)));
    rows.dedup_by(|b, a| a.id == b.id && a.file == b.file);
    let mut run = 0;
    let mut previous: Option<&ChunkId> = None;
    rows.retain(|h| {
        if previous != Some(h.id) {
            previous = Some(h.id);
            run = 0;
        }
        run += 1;
        run <= MAX_HOLDERS
    });
    rows.shrink_to_fit();
    rows
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
    to: &dyn FileChunks,
    to_image: &ImageInfo,
    store: &ChunkStore,
    out_dir: &Path,
    options: &PatchOptions,
    pool: &WorkPool,
    cache: &DeltaCache,
    hooks: &Hooks,
) -> Result<PatchInfo> {
    // The new image's chunk positions are read back from its index here rather than kept since
    // the image was written, and only those of the chunks this patch fetches (see `Remote`).
    let to_dxf_name = &to_image.dxf_name;
    let old = OldBuild::new(from);
    let remote = Remote::load(to, &old, &to_image.dir)?;
    fs::create_dir_all(out_dir).ctx(|| format!("create {}", out_dir.display()))?;
    let dat_tmp = out_dir.join(temp_name("dat"));
    let outcome = (|| {
        let file = File::create(&dat_tmp).ctx(|| format!("create {}", dat_tmp.display()))?;
        let mut dat = DatWriter { file: BufWriter::new(file), size: 0 };
        let mut files = Vec::with_capacity(to.entries().len());
        let mut deltas = InFlight::new(pool.threads() + 1, 2 * options.segment, cache);
        let total = to.entries().len() as u64;
        for (n, entry) in to.entries().iter().enumerate() {
            if (hooks.cancel)() {
                return Err(EngineError::Cancelled);
            }
            let kind = match &entry.kind {
                EntryKind::Dir { mode } => PatchKind::Dir { mode: *mode },
                EntryKind::Symlink { target } => PatchKind::Symlink { target: target.clone() },
                EntryKind::File { mode, size, sha256, .. } => {
                    // Read here, one file at a time: `to` may hold no chunk list (an Outline).
                    let chunks = to.chunks(n)?;
                    let op = match plan_file(entry, *size, sha256, &chunks, &old, &remote)? {
                        Plan::Done(op) => op,
                        Plan::Delta { job, pieces } => {
                            // `fetch` until the delta, computed meanwhile, proves clearly smaller.
                            deltas.start(files.len(), job, store, options, pool, &mut dat, &mut files)?;
                            FileOp::Fetch { pieces }
                        }
                    };
                    PatchKind::File { mode: *mode, size: *size, sha256: sha256.clone(), op }
                }
            };
            files.push(PatchEntry { path: entry.path.clone(), kind });
            (hooks.progress)(n as u64 + 1, total);
        }
        deltas.finish_all(&mut dat, &mut files)?;
        let mut counts = [0u64; 4];
        for f in &files {
            if let PatchKind::File { op, .. } = &f.kind {
                counts[match op {
                    FileOp::Same { .. } => 0,
                    FileOp::Chunks { .. } => 1,
                    FileOp::Delta { .. } => 2,
                    FileOp::Fetch { .. } => 3,
                }] += 1;
            }
        }
        let file = dat.file.into_inner().map_err(|e| e.into_error()).ctx(|| format!("write {}", dat_tmp.display()))?;
        file.sync_all().ctx(|| format!("fsync {}", dat_tmp.display()))?;
        Ok((files, dat.size, counts, deltas.reused))
    })();
    let (files, dat_size, op_counts, deltas_reused) = match outcome {
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
        to.entries().iter().map(|e| (e.path.as_str(), std::mem::discriminant(&e.kind))).collect();
    let remove = from
        .files
        .iter()
        .filter(|e| kinds.get(e.path.as_str()) != Some(&std::mem::discriminant(&e.kind)))
        .map(|e| e.path.clone())
        .collect();
    let mut patch = Patch { format: PATCH_FORMAT, to_dxf_name: to_dxf_name.to_string(), dat_size, files, remove };
    if patch.uses_bsdiff() {
        patch.format = PATCH_FORMAT_BSDIFF;
    }
    let json = serde_json::to_vec(&patch).map_err(|e| EngineError::Invalid(format!("patch: {e}")))?;
    let packed = zstd::bulk::compress(&json, 19).ctx(|| "compress patch".into())?;
    write_durably(&out_dir.join(PATCH_FILE), &packed)?;
    Ok(PatchInfo { size_bytes: packed.len() as u64 + dat_size, dir: out_dir.to_path_buf(), op_counts, deltas_reused })
}

struct DatWriter {
    file: BufWriter<File>,
    size: u64,
}

/// A delta to compute: everything the job needs, owned, so it can run on the pool.
struct DeltaJob {
    source: String,
    source_size: u64,
    source_chunks: Vec<ChunkRef>,
    target_size: u64,
    target_chunks: Vec<ChunkRef>,
    /// Stored bytes of the target's new chunks: what `fetch` would cost.
    fetch_cost: u64,
    /// The pair shares no chunk (a guess by path, extension and size): try a fast delta first.
    guessed: bool,
    /// sha256 of the source and target files: with `fetch_cost` and `guessed`, what the
    /// outcome depends on (the [`DeltaCache`] key).
    source_sha256: String,
    target_sha256: String,
    /// The target starts like an executable (its first chunk, read when the job is made).
    executable: bool,
}

/// A finished delta: segments (with `dat_offset` relative to the file's first frame) and their
/// frames, or nothing when fetching is cheaper.
type DeltaOutcome = Option<Vec<(DeltaSegment, Vec<u8>)>>;

impl DeltaJob {
    fn key(&self) -> DeltaKey {
        (self.source_sha256.clone(), self.target_sha256.clone(), self.fetch_cost, self.guessed)
    }
}

/// Level of the probe that decides whether a guessed pair is worth a full delta: fast, and
/// never much worse than the full level on data the reference helps with.
const PROBE_LEVEL: i32 = 1;

impl DeltaJob {
    /// Runs on the pool. Deterministic: the same inputs give the same frames and decision.
    fn run(self, store: &ChunkStore, segment: u64, level: i32) -> Result<DeltaOutcome> {
        let segs = segments(self.source_size, self.target_size, segment);
        if let [(s_off, s_len, t_off, t_len)] = segs[..] {
            let source = read_range(&self.source_chunks, store, s_off, s_len)?;
            let target = read_range(&self.target_chunks, store, t_off, t_len)?;
            let one = |codec, frame: Vec<u8>| {
                let seg = DeltaSegment {
                    source: self.source.clone(),
                    src_offset: s_off,
                    src_len: s_len,
                    dat_offset: 0,
                    dat_len: frame.len() as u64,
                    out_len: t_len,
                    codec,
                };
                self.decide(vec![(seg, frame)])
            };
            let mut probe = None;
            if self.guessed {
                // Measured on unrelated files (two synthetic builds): a level-19 delta that ends
                // up as `fetch` anyway cost minutes. A fast delta that is no smaller than
                // fetching means the reference does not help; the full level then only
                // out-compresses the store's level 3, which is not what patches are for.
                // Compressible targets pass that test on compression alone (measured: the same
                // two builds still spent 67 s of level-19 deltas), so the reference must also
                // save 10 % over compressing the target alone at the same level.
                let with_reference = delta::encode(&source, &target, PROBE_LEVEL)?.len() as u64;
                if with_reference >= self.fetch_cost {
                    return Ok(None);
                }
                // Not for executables: bsdiff finds what a level-1 delta does not (panda3d
                // 1.10.14→15: `libuuid.so.1`, paired by guess, went to `fetch` by this test and
                // is a delta without it).
                if !self.executable {
                    let alone = delta::encode(&[], &target, PROBE_LEVEL)?.len() as u64;
                    if with_reference * 10 >= alone * 9 {
                        return Ok(None);
                    }
                }
                probe = Some(with_reference);
            }
            if self.executable && source.len() <= delta::BSDIFF_MAX_SOURCE {
                // Rebuilt executables shift addresses everywhere: bsdiff's byte-wise differences
                // were half the size of a zstd delta on panda3d's libraries, and faster to make
                // (bench/results/2026-11-26T2330-patches.md). The level-1 zstd probe decides
                // whether the level-19 delta is worth its time: it was never below 0.44× the
                // probe there, so a bsdiff patch at half the probe or less is kept without it.
                let bsdiff = delta::bsdiff_encode(&source, &target)?;
                let fast = match probe {
                    Some(bytes) => bytes,
                    None => delta::encode(&source, &target, PROBE_LEVEL)?.len() as u64,
                };
                // Unless it is not clearly smaller than fetching either: the level-19 delta
                // may still be (measured on panda3d 1.10.14→15: two files went to `fetch`).
                if bsdiff.len() as u64 * 2 <= fast && (bsdiff.len() as u64) * 10 < self.fetch_cost * 9 {
                    return Ok(one(DeltaCodec::Bsdiff, bsdiff));
                }
                let frame = delta::encode(&source, &target, level)?;
                return Ok(if bsdiff.len() < frame.len() {
                    one(DeltaCodec::Bsdiff, bsdiff)
                } else {
                    one(DeltaCodec::Zstd, frame)
                });
            }
            return Ok(one(DeltaCodec::Zstd, delta::encode(&source, &target, level)?));
        }
        let mut out = Vec::new();
        let mut cost = 0u64;
        for (s_off, s_len, t_off, t_len) in segs {
            let source = read_range(&self.source_chunks, store, s_off, s_len)?;
            let target = read_range(&self.target_chunks, store, t_off, t_len)?;
            let frame = delta::encode(&source, &target, level)?;
            let seg = DeltaSegment {
                source: self.source.clone(),
                src_offset: s_off,
                src_len: s_len,
                dat_offset: cost,
                dat_len: frame.len() as u64,
                out_len: t_len,
                codec: DeltaCodec::Zstd,
            };
            cost += frame.len() as u64;
            out.push((seg, frame));
            // Already worse than fetching: stop spending CPU on this file.
            if cost * 10 >= self.fetch_cost * 9 {
                return Ok(None);
            }
        }
        Ok(self.decide(out))
    }

    /// "Clearly smaller": a delta must save at least 10 % over fetching the new chunks.
    fn decide(&self, out: Vec<(DeltaSegment, Vec<u8>)>) -> DeltaOutcome {
        let cost: u64 = out.iter().map(|(s, _)| s.dat_len).sum();
        let covered: u64 = out.iter().map(|(s, _)| s.out_len).sum();
        (cost * 10 < self.fetch_cost * 9 && covered == self.target_size).then_some(out)
    }

    /// Bytes the job holds at once: source and target of its first, largest segment; for a
    /// job that may end in bsdiff, also qbsdiff's suffix array and output (about 4× and 1× the
    /// source), so that a few of those never run together.
    fn footprint(&self, segment: u64) -> u64 {
        let inputs = self.source_size.min(segment + segment / 4) + self.target_size.min(segment);
        if self.executable && self.source_size <= delta::BSDIFF_MAX_SOURCE as u64 {
            inputs + 5 * self.source_size
        } else {
            inputs
        }
    }
}

/// Deltas being computed, oldest first. Their frames go into patch.dat in target order, so the
/// output does not depend on which finished first. At most `max_jobs` run at once, and a
/// second one only while their bytes stay within `max_bytes` (memory stays bounded whatever
/// the build size). Outcomes an earlier patch of the same build computed come from `cache`.
struct InFlight<'c> {
    jobs: std::collections::VecDeque<(usize, u64, DeltaKey, Computing)>,
    bytes: u64,
    max_jobs: usize,
    max_bytes: u64,
    cache: &'c DeltaCache,
    reused: u64,
}

/// A delta on the pool, or one the cache already had.
enum Computing {
    Pending(Pending<DeltaOutcome>),
    Known(DeltaOutcome),
}

impl<'c> InFlight<'c> {
    fn new(max_jobs: usize, max_bytes: u64, cache: &'c DeltaCache) -> InFlight<'c> {
        InFlight { jobs: Default::default(), bytes: 0, max_jobs: max_jobs.max(1), max_bytes, cache, reused: 0 }
    }

    /// Starts the delta of `files[file]` (the entry about to be pushed at that position),
    /// first finishing older ones while the limits are reached.
    #[allow(clippy::too_many_arguments)]
    fn start(
        &mut self,
        file: usize,
        mut job: DeltaJob,
        store: &ChunkStore,
        options: &PatchOptions,
        pool: &WorkPool,
        dat: &mut DatWriter,
        files: &mut [PatchEntry],
    ) -> Result<()> {
        let key = job.key();
        if let Some(mut known) = self.cache.get(&key) {
            // Same content, maybe another path in this old build: the frames name this one.
            for (seg, _) in known.iter_mut().flatten() {
                seg.source.clone_from(&job.source);
            }
            self.reused += 1;
            self.jobs.push_back((file, 0, key, Computing::Known(known)));
            return Ok(());
        }
        if let Some(first) = job.target_chunks.first() {
            job.executable = delta::looks_executable(&store.read_raw(&first.id, first.len as usize)?);
        }
        let bytes = job.footprint(options.segment);
        while !self.jobs.is_empty() && (self.running() >= self.max_jobs || self.bytes + bytes > self.max_bytes) {
            self.finish_oldest(dat, files)?;
        }
        let (store, segment, level) = (store.clone(), options.segment, options.level);
        let pending = pool.submit(move || job.run(&store, segment, level))?;
        self.jobs.push_back((file, bytes, key, Computing::Pending(pending)));
        self.bytes += bytes;
        Ok(())
    }

    /// Jobs that hold (or will hold) a pool thread.
    fn running(&self) -> usize {
        self.jobs.iter().filter(|(_, _, _, c)| matches!(c, Computing::Pending(_))).count()
    }

    fn finish_oldest(&mut self, dat: &mut DatWriter, files: &mut [PatchEntry]) -> Result<()> {
        let Some((file, bytes, key, oldest)) = self.jobs.pop_front() else { return Ok(()) };
        self.bytes -= bytes;
        let outcome = match oldest {
            Computing::Known(outcome) => outcome,
            Computing::Pending(oldest) => {
                if !oldest.run_if_waiting() {
                    // A worker has it: compute the younger ones nobody started meanwhile.
                    for (_, _, _, younger) in &self.jobs {
                        if let Computing::Pending(younger) = younger {
                            younger.run_if_waiting();
                        }
                    }
                }
                let outcome = oldest.wait()?;
                self.cache.keep(key, &outcome);
                outcome
            }
        };
        let (Some(frames), Some(PatchKind::File { op, .. })) = (outcome, files.get_mut(file).map(|f| &mut f.kind))
        else {
            return Ok(());
        };
        let mut segments = Vec::with_capacity(frames.len());
        for (mut seg, frame) in frames {
            dat.file.write_all(&frame).ctx(|| "write patch.dat".into())?;
            seg.dat_offset = dat.size;
            dat.size += frame.len() as u64;
            segments.push(seg);
        }
        *op = FileOp::Delta { segments };
        Ok(())
    }

    fn finish_all(&mut self, dat: &mut DatWriter, files: &mut [PatchEntry]) -> Result<()> {
        while !self.jobs.is_empty() {
            self.finish_oldest(dat, files)?;
        }
        Ok(())
    }
}

/// Where the chunks a patch fetches sit in the new image: for each chunk of a changed file
/// that the old build lacks (sorted ids), its place in the image's packs. Proportional to what
/// the patch fetches, not to the build: the whole index and a map over it were ~100 bytes per
/// chunk of the new build; this is 56 per fetched chunk.
struct Remote {
    ids: Vec<ChunkId>,
    /// Beside each id: where the image has it, if it does.
    spots: Vec<Option<Spot>>,
}

/// A chunk's place in the image (an [`IndexChunk`](super::image::IndexChunk) without the id
/// and raw length).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Spot {
    pack: u32,
    offset: u64,
    stored_len: u32,
    codec: Codec,
}

impl Remote {
    /// Reads the places `plan_file` will ask for from the new image's index.
    fn load(to: &dyn FileChunks, old: &OldBuild, dxf_dir: &Path) -> Result<Remote> {
        let mut ids: Vec<ChunkId> = Vec::new();
        // Length after the last removal of repeats: they go whenever the list has doubled since,
        // so it stays within twice the distinct ids (zero padding repeated in every file) at an
        // amortised sort.
        let mut distinct = 0;
        for (file, entry) in to.entries().iter().enumerate() {
            if let EntryKind::File { sha256, .. } = &entry.kind {
                // A file the old build has is `same`: its chunks are never looked up.
                if old.by_sha(sha256).is_none() {
                    let chunks = to.chunks(file)?;
                    ids.extend(chunks.iter().map(|c| &c.id).filter(|id| old.chunk_at(id).is_none()).cloned());
                    if ids.len() >= 2 * distinct.max(1024) {
                        ids.sort_unstable();
                        ids.dedup();
                        distinct = ids.len();
                    }
                }
            }
        }
        ids.sort_unstable();
        ids.dedup();
        ids.shrink_to_fit();
        let mut spots = vec![None; ids.len()];
        Index::visit_chunks(dxf_dir, |c| {
            if let Ok(at) = ids.binary_search(&c.id) {
                // Of two rows with one id (a corrupt index) the later one, as the map from ids
                // that this replaces answered.
                spots[at] = Some(Spot { pack: c.pack, offset: c.offset, stored_len: c.stored_len, codec: c.codec });
            }
        })?;
        Ok(Remote { ids, spots })
    }

    fn get(&self, id: &ChunkId) -> Option<Spot> {
        self.ids.binary_search(id).ok().and_then(|at| self.spots[at])
    }
}

/// What a target file needs: an op now, or a delta to try (with `fetch` pieces to fall back on).
enum Plan {
    Done(FileOp),
    Delta { job: DeltaJob, pieces: Vec<Piece> },
}

fn plan_file(
    entry: &Entry,
    size: u64,
    sha256: &str,
    chunks: &[ChunkRef],
    old: &OldBuild,
    remote: &Remote,
) -> Result<Plan> {
    if let Some(i) = old.by_sha(sha256) {
        // Prefer the file at the same path, so the client leaves it where it is.
        let source = match old.by_path(&entry.path) {
            Some(p) if old_sha_matches(old, p, i) => entry.path.clone(),
            _ => old.files[i].path.to_string(),
        };
        return Ok(Plan::Done(FileOp::Same { source }));
    }
    let mut pieces = Vec::with_capacity(chunks.len());
    let mut fetch_cost = 0u64;
    for c in chunks {
        if let Some((i, offset)) = old.chunk_at(&c.id) {
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
        return Ok(Plan::Done(FileOp::Chunks { pieces }));
    }
    let Some((src, shares_chunks)) = old.pair_with_reason(&entry.path, size, chunks) else {
        return Ok(Plan::Done(FileOp::Fetch { pieces }));
    };
    let job = DeltaJob {
        source: old.files[src].path.to_string(),
        source_size: old.files[src].size,
        source_chunks: old.files[src].chunks.to_vec(),
        target_size: size,
        target_chunks: chunks.to_vec(),
        fetch_cost,
        guessed: !shares_chunks,
        source_sha256: old.files[src].sha256.to_string(),
        target_sha256: sha256.to_string(),
        executable: false,
    };
    Ok(Plan::Delta { job, pieces })
}

fn old_sha_matches(old: &OldBuild, a: usize, b: usize) -> bool {
    a == b || (old.files[a].size == old.files[b].size && old.files[a].chunks == old.files[b].chunks)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(path: &str, size: u64, chunks: &[&str]) -> Entry {
        let chunks = chunks
            .iter()
            .map(|c| ChunkRef { id: ChunkId::of(c.as_bytes()), len: (size / chunks.len() as u64) as u32 })
            .collect();
        Entry {
            path: path.into(),
            order: 0,
            kind: EntryKind::File { mode: 0o644, size, sha256: format!("sha-{path}"), chunks },
        }
    }

    fn refs(size: u64, chunks: &[&str]) -> Vec<ChunkRef> {
        match file("x", size, chunks).kind {
            EntryKind::File { chunks, .. } => chunks,
            _ => unreachable!(),
        }
    }

    fn old_build() -> Manifest {
        Manifest {
            format: 1,
            files: vec![
                file("a/lib-1.so", 300, &["a", "b", "c"]),
                file("b/data.pak", 200, &["d", "e"]),
                file("c/big.pak", 900, &["f"]),
                file("d/small.pak", 100, &["1"]),
                file("e/other.txt", 150, &["2"]),
            ],
            warnings: Vec::new(),
        }
    }

    /// A one-chunk file in `store`, as its chunk refs.
    fn stored(store: &ChunkStore, bytes: &[u8]) -> Vec<ChunkRef> {
        let id = ChunkId::of(bytes);
        store.put(&id, bytes).unwrap();
        vec![ChunkRef { id, len: bytes.len() as u32 }]
    }

    /// Incompressible bytes (xorshift64), different for every seed.
    fn noise(seed: u64, len: usize) -> Vec<u8> {
        let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 32) as u8
            })
            .collect()
    }

    fn job(store: &ChunkStore, source: &[u8], target: &[u8]) -> DeltaJob {
        let (source_chunks, target_chunks) = (stored(store, source), stored(store, target));
        store.flush().unwrap();
        DeltaJob {
            source: "old.bin".into(),
            source_size: source.len() as u64,
            source_chunks,
            target_size: target.len() as u64,
            target_chunks,
            fetch_cost: target.len() as u64,
            guessed: true,
            source_sha256: "old".into(),
            target_sha256: "new".into(),
            executable: delta::looks_executable(target),
        }
    }

    #[test]
    fn a_guessed_pair_gets_a_delta_only_when_the_old_file_helps() {
        let dir = tempfile::tempdir().unwrap();
        let store = ChunkStore::open(dir.path()).unwrap();
        let old = noise(1, 100_000);
        let mut edited = old.clone();
        edited[500..510].copy_from_slice(b"0123456789");
        let outcome = job(&store, &old, &edited).run(&store, DEFAULT_SEGMENT, 19).unwrap();
        let frames = outcome.expect("a small edit of the old file makes a delta");
        assert_eq!(frames.len(), 1);
        assert_eq!(delta::decode(&old, &frames[0].1, edited.len()).unwrap(), edited);

        let unrelated = noise(7, 100_000);
        assert!(job(&store, &old, &unrelated).run(&store, DEFAULT_SEGMENT, 19).unwrap().is_none());
        // Compressible, but nothing in common with the old file: compression alone is no delta.
        let text: Vec<u8> = (0..100_000u32).map(|i| b"level=7;name=orc;hp=100\n"[(i % 24) as usize]).collect();
        assert!(job(&store, &old, &text).run(&store, DEFAULT_SEGMENT, 19).unwrap().is_none());
    }

    #[test]
    fn a_new_file_pairs_with_the_old_file_sharing_the_most_chunk_bytes() {
        let manifest = old_build();
        let old = OldBuild::new(&manifest);
        let renamed = old.pair("z/lib-2.so", 300, &refs(300, &["a", "b", "x"]));
        assert_eq!(renamed.map(|i| old.files[i].path), Some("a/lib-1.so"));
    }

    #[test]
    fn without_shared_chunks_the_same_path_then_the_nearest_size_with_the_extension_wins() {
        let manifest = old_build();
        let old = OldBuild::new(&manifest);
        let same_path = old.pair("b/data.pak", 800, &refs(800, &["y"]));
        assert_eq!(same_path.map(|i| old.files[i].path), Some("b/data.pak"));
        let nearest = old.pair("new/level.pak", 700, &refs(700, &["y"]));
        assert_eq!(nearest.map(|i| old.files[i].path), Some("c/big.pak"));
        let nearest = old.pair("new/level.pak", 120, &refs(120, &["y"]));
        assert_eq!(nearest.map(|i| old.files[i].path), Some("d/small.pak"));
        assert_eq!(old.pair("new/readme.md", 100, &refs(100, &["y"])), None);
    }

    /// A file of `len`-byte chunks named by `chunks`, with its own content hash.
    fn chunked(path: &str, len: u32, chunks: &[&str]) -> Entry {
        let chunks: Vec<ChunkRef> = chunks.iter().map(|c| ChunkRef { id: ChunkId::of(c.as_bytes()), len }).collect();
        let size = len as u64 * chunks.len() as u64;
        Entry {
            path: path.into(),
            order: 0,
            kind: EntryKind::File { mode: 0o644, size, sha256: format!("sha-{path}"), chunks },
        }
    }

    fn id(name: &str) -> ChunkId {
        ChunkId::of(name.as_bytes())
    }

    #[test]
    fn a_chunk_repeated_in_a_file_is_found_at_its_first_offset_in_the_first_file_holding_it() {
        let manifest = Manifest {
            format: 1,
            files: vec![
                chunked("a.bin", 10, &["x", "zero", "y", "zero", "zero"]),
                chunked("b.bin", 10, &["zero", "y"]),
            ],
            warnings: Vec::new(),
        };
        let old = OldBuild::new(&manifest);
        assert_eq!(old.chunk_at(&id("zero")), Some((0, 10)));
        assert_eq!(old.chunk_at(&id("y")), Some((0, 20)));
        let holders: Vec<(usize, u64)> = old.holders(&id("zero")).iter().map(|h| (h.file, h.offset)).collect();
        assert_eq!(holders, [(0, 10), (1, 0)], "one row per file, at the chunk's first offset there");
    }

    #[test]
    fn a_chunk_held_by_many_files_keeps_only_the_first_holders() {
        let names: Vec<String> = (0..MAX_HOLDERS + 8).map(|i| format!("f{i:03}.bin")).collect();
        let files = names.iter().map(|n| chunked(n, 4, &["common", n])).collect();
        let manifest = Manifest { format: 1, files, warnings: Vec::new() };
        let old = OldBuild::new(&manifest);
        let holders: Vec<usize> = old.holders(&id("common")).iter().map(|h| h.file).collect();
        assert_eq!(holders, (0..MAX_HOLDERS).collect::<Vec<_>>());
        // Thinning one chunk's run leaves its neighbours in the table whole.
        for (i, n) in names.iter().enumerate() {
            assert_eq!(old.chunk_at(&id(n)), Some((i, 4)), "{n}");
        }
    }

    #[test]
    fn a_chunk_in_no_old_file_has_no_holder_and_no_position() {
        let manifest = old_build();
        let old = OldBuild::new(&manifest);
        assert!(old.holders(&id("nowhere")).is_empty());
        assert_eq!(old.chunk_at(&id("nowhere")), None);
        let empty = Manifest { format: 1, files: Vec::new(), warnings: Vec::new() };
        assert_eq!(OldBuild::new(&empty).chunk_at(&id("a")), None);
    }

    /// What the maps `OldBuild` had before its sorted tables answered, filled the same way.
    #[test]
    fn the_sorted_tables_answer_as_the_maps_they_replace() {
        let mut files = vec![
            chunked("a/one.bin", 8, &["p", "q", "p", "r"]),
            chunked("a/two.bin", 8, &["q", "s"]),
            chunked("b/same-as-one.bin", 8, &["p", "q", "p", "r"]),
            Entry { path: "c/dir".into(), order: 0, kind: EntryKind::Dir { mode: 0o755 } },
            chunked("d/three.bin", 8, &["s", "s", "t"]),
        ];
        if let EntryKind::File { sha256, .. } = &mut files[2].kind {
            *sha256 = "sha-a/one.bin".into();
        }
        files.extend((0..40).map(|i| chunked(&format!("e/{i:02}.bin"), 8, &["q", "u"])));
        // Not in a valid manifest (paths are unique), but answered as the map did: the later one.
        files.push(chunked("a/two.bin", 8, &["v", "q"]));
        let manifest = Manifest { format: 1, files, warnings: Vec::new() };
        let old = OldBuild::new(&manifest);

        let mut chunk_at: HashMap<&ChunkId, (usize, u64)> = HashMap::new();
        let mut chunk_files: HashMap<&ChunkId, Vec<usize>> = HashMap::new();
        let (mut by_path, mut by_sha) = (HashMap::new(), HashMap::new());
        let file_entries = manifest.files.iter().filter_map(|e| match &e.kind {
            EntryKind::File { sha256, chunks, .. } => Some((e.path.as_str(), sha256.as_str(), chunks)),
            _ => None,
        });
        for (i, (path, sha256, chunks)) in file_entries.enumerate() {
            by_path.insert(path, i);
            by_sha.entry(sha256).or_insert(i);
            let mut offset = 0;
            for c in chunks {
                chunk_at.entry(&c.id).or_insert((i, offset));
                let holders = chunk_files.entry(&c.id).or_default();
                if holders.last() != Some(&i) && holders.len() < MAX_HOLDERS {
                    holders.push(i);
                }
                offset += c.len as u64;
            }
        }
        for name in ["p", "q", "r", "s", "t", "u", "v"] {
            assert_eq!(old.chunk_at(&id(name)), chunk_at.get(&id(name)).copied(), "{name}");
            let holders: Vec<usize> = old.holders(&id(name)).iter().map(|h| h.file).collect();
            assert_eq!(holders, chunk_files.get(&id(name)).cloned().unwrap_or_default(), "{name}");
        }
        for f in &old.files {
            assert_eq!(old.by_path(f.path), by_path.get(f.path).copied(), "{}", f.path);
            assert_eq!(old.by_sha(f.sha256), by_sha.get(f.sha256).copied(), "{}", f.sha256);
        }
        assert_eq!(old.by_sha("sha-a/one.bin"), Some(0), "the first file with a content");
        assert_eq!(old.by_path("c/dir"), None, "not a file");
        assert_eq!(old.by_path("a/one"), None);
        assert_eq!(old.by_sha("sha-none"), None);
    }

    #[test]
    fn the_remote_table_holds_the_places_of_the_chunks_the_old_build_lacks_and_only_those() {
        use super::super::image::{IndexChunk, PackInfo};
        let old_manifest = Manifest {
            format: 1,
            files: vec![chunked("kept.bin", 4, &["k1", "k2"]), chunked("edited.bin", 4, &["e1", "e2"])],
            warnings: Vec::new(),
        };
        let with_sha = |mut entry: Entry, content: &str| {
            if let EntryKind::File { sha256, .. } = &mut entry.kind {
                *sha256 = content.into();
            }
            entry
        };
        let new_manifest = Manifest {
            format: 1,
            files: vec![
                with_sha(chunked("edited.bin", 4, &["e1", "new", "new", "twice"]), "sha-edited-2"),
                chunked("fresh.bin", 4, &["new", "absent"]),
                // The old build's kept.bin moved: `same`, its chunks are not looked up.
                with_sha(chunked("moved.bin", 4, &["k1", "k2"]), "sha-kept.bin"),
            ],
            warnings: Vec::new(),
        };
        let row = |name: &str, pack: u32| IndexChunk {
            id: id(name),
            raw_len: 4,
            pack,
            offset: pack as u64 * 100,
            stored_len: 3 + pack,
            codec: if pack.is_multiple_of(2) { Codec::Zstd } else { Codec::Raw },
        };
        // "absent" is in no row; "twice" has two (a corrupt index): the later one counts.
        let chunks = vec![row("k1", 0), row("twice", 1), row("e1", 2), row("new", 3), row("twice", 4), row("k2", 5)];
        let packs = (0..6).map(|n| PackInfo { name: format!("p{n}"), size: 1000 }).collect();
        let index =
            Index { format: super::super::image::INDEX_FORMAT, packs, chunks, files: Vec::new(), preload_bytes: None };
        let dir = tempfile::tempdir().unwrap();
        let json = serde_json::to_vec(&index).unwrap();
        fs::write(dir.path().join(super::super::layout::INDEX_FILE), zstd::bulk::compress(&json, 3).unwrap()).unwrap();

        let old = OldBuild::new(&old_manifest);
        let remote = Remote::load(&new_manifest, &old, dir.path()).unwrap();
        let spot = |pack: u32| Spot {
            pack,
            offset: pack as u64 * 100,
            stored_len: 3 + pack,
            codec: if pack.is_multiple_of(2) { Codec::Zstd } else { Codec::Raw },
        };
        assert_eq!(remote.get(&id("new")), Some(spot(3)));
        assert_eq!(remote.get(&id("twice")), Some(spot(4)), "the later of two rows");
        assert_eq!(remote.get(&id("absent")), None, "not in the image: plan_file reports it");
        for known in ["k1", "k2", "e1"] {
            assert_eq!(remote.get(&id(known)), None, "{known} comes from the old tree");
        }
        let mut wanted = vec![id("new"), id("twice"), id("absent")];
        wanted.sort();
        assert_eq!(remote.ids, wanted, "each fetched chunk once");
    }

    #[test]
    fn a_bsdiff_segment_has_a_pinned_form_and_needs_patch_format_2() {
        let seg = DeltaSegment {
            source: "lib/a.so".into(),
            src_offset: 0,
            src_len: 10,
            dat_offset: 4,
            dat_len: 5,
            out_len: 12,
            codec: DeltaCodec::Bsdiff,
        };
        let json =
            r#"{"source":"lib/a.so","srcOffset":0,"srcLen":10,"datOffset":4,"datLen":5,"outLen":12,"codec":"bsdiff"}"#;
        assert_eq!(serde_json::to_string(&seg).unwrap(), json);
        let zstd = DeltaSegment { codec: DeltaCodec::Zstd, ..seg.clone() };
        assert!(!serde_json::to_string(&zstd).unwrap().contains("codec"), "format-1 segments are unchanged");

        let patch = |format: u32| {
            let file = PatchEntry {
                path: "lib/a.so".into(),
                kind: PatchKind::File {
                    mode: 0o755,
                    size: 12,
                    sha256: "x".into(),
                    op: FileOp::Delta { segments: vec![seg.clone()] },
                },
            };
            let p = Patch { format, to_dxf_name: "d".into(), dat_size: 9, files: vec![file], remove: Vec::new() };
            zstd::bulk::compress(&serde_json::to_vec(&p).unwrap(), 3).unwrap()
        };
        assert_eq!(Patch::decode(&patch(2)).unwrap().format, 2);
        assert!(matches!(Patch::decode(&patch(1)), Err(EngineError::Corrupt(_))), "format 1 has no bsdiff");
        assert!(matches!(Patch::decode(&patch(3)), Err(EngineError::Corrupt(_))), "a newer format is refused");
    }
}
