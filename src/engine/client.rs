//! The reference client: what a launcher does with a published build. Read it as the
//! executable half of docs/FORMAT.md.
//!
//! * [`Client::rebuild`] writes the full tree of a build from its DxF image.
//! * [`Client::update`] turns a tree of build `b` into build `n` with the patch `b → n` only
//!   (plus the new image's packs for `fetch` pieces).
//!
//! Nothing from the origin is trusted: paths are checked before use, every chunk is checked
//! against its id and every file against its SHA-256 and size before it is put in place.

use std::cell::Cell;
use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{BufWriter, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use super::error::{EngineError, IoContext, Result};
use super::fsutil::hex;
use super::image::{Index, IndexChunk, IndexKind};
use super::layout::{build_rel, current_rel, pack_name, patch_rel, Pointer, INDEX_FILE, PATCH_DATA_FILE, PATCH_FILE};
use super::patch::{DeltaCodec, FileOp, Patch, PatchKind, Piece};
use super::store::{ChunkId, Codec};
use super::validate::{check_link, normalize_path};
use super::{chunker, delta};

pub use super::origin::{DirOrigin, HttpOrigin, Origin};

/// Adjacent chunks are fetched with one request up to this many bytes.
const MAX_COALESCED: u64 = 16 << 20;

/// What a rebuild or update did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// Bytes read from the origin (indexes, patches, pack ranges).
    pub bytes_fetched: u64,
    /// Files written (kept unchanged files not counted).
    pub files_written: u64,
    /// Files verified and left in place by an update.
    pub files_kept: u64,
}

/// What a launcher fetched before a game's start-up reads were all satisfied
/// ([`Client::startup`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StartupReport {
    /// Bytes read from the origin: the index, then pack data up to the last chunk a start-up
    /// read needs.
    pub bytes_fetched: u64,
    pub index_bytes: u64,
    /// The image's `preloadBytes`, fetched at once before the reads are replayed.
    pub preload_bytes: Option<u64>,
    /// Distinct chunks the start-up reads touch.
    pub chunks_needed: usize,
}

pub struct Client<'o> {
    origin: &'o dyn Origin,
    org: String,
    app: String,
    fetched: Cell<u64>,
}

/// A file being written: hashes what goes in, checks size and SHA-256 at the end.
struct Output {
    file: BufWriter<File>,
    hash: ring::digest::Context,
    size: u64,
    path: PathBuf,
}

impl Output {
    fn create(path: &Path) -> Result<Output> {
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir).ctx(|| format!("create {}", dir.display()))?;
        }
        let file = File::create(path).ctx(|| format!("create {}", path.display()))?;
        Ok(Output {
            file: BufWriter::with_capacity(1 << 20, file),
            hash: ring::digest::Context::new(&ring::digest::SHA256),
            size: 0,
            path: path.to_path_buf(),
        })
    }

    fn write(&mut self, bytes: &[u8]) -> Result<()> {
        self.hash.update(bytes);
        self.size += bytes.len() as u64;
        self.file.write_all(bytes).ctx(|| format!("write {}", self.path.display()))
    }

    fn finish(self, name: &str, size: u64, sha256: &str, mode: u32) -> Result<()> {
        let file =
            self.file.into_inner().map_err(|e| e.into_error()).ctx(|| format!("write {}", self.path.display()))?;
        let got = hex(self.hash.finish().as_ref());
        if self.size != size || got != sha256 {
            return Err(EngineError::Corrupt(format!(
                "{name}: rebuilt {} bytes with SHA-256 {got}, expected {size} bytes with {sha256}",
                self.size
            )));
        }
        file.set_permissions(fs::Permissions::from_mode(mode & 0o777)).ctx(|| format!("chmod {}", self.path.display()))
    }
}

/// A path from the origin, accepted only in the engine's normal form (no `..`, not absolute).
fn safe_path(path: &str) -> Result<&str> {
    match normalize_path(path.as_bytes()) {
        Ok(Some(normal)) if normal == path => Ok(path),
        _ => Err(EngineError::Corrupt(format!("unsafe path in published data: {path:?}"))),
    }
}

fn sha256_of_file(path: &Path) -> Result<(u64, String)> {
    let mut file = File::open(path).ctx(|| format!("open {}", path.display()))?;
    let mut hash = ring::digest::Context::new(&ring::digest::SHA256);
    let mut buf = vec![0u8; 1 << 20];
    let mut size = 0u64;
    loop {
        let n = file.read(&mut buf).ctx(|| format!("read {}", path.display()))?;
        if n == 0 {
            return Ok((size, hex(hash.finish().as_ref())));
        }
        size += n as u64;
        hash.update(&buf[..n]);
    }
}

fn read_file_range(path: &Path, offset: u64, len: u64) -> Result<Vec<u8>> {
    let mut buf = vec![0u8; len as usize];
    File::open(path)
        .and_then(|mut f| f.seek(SeekFrom::Start(offset)).and_then(|_| f.read_exact(&mut buf)))
        .ctx(|| format!("read {len} bytes at {offset} of {}", path.display()))?;
    Ok(buf)
}

/// Decodes a chunk's stored bytes and checks them against its id.
fn decode_chunk(id: &ChunkId, codec: Codec, stored: &[u8], raw_len: u32) -> Result<Vec<u8>> {
    check_chunk_sizes(raw_len, stored.len() as u64)?;
    let raw = codec.decode(stored, raw_len as usize)?;
    if raw.len() != raw_len as usize || ChunkId::of(&raw) != *id {
        return Err(EngineError::Corrupt(format!("chunk {id} does not match its id")));
    }
    Ok(raw)
}

/// Published sizes are checked before anything is allocated for them: a damaged or hostile
/// index must not make the client reserve gigabytes.
fn check_chunk_sizes(raw_len: u32, stored_len: u64) -> Result<()> {
    // A zstd frame of a chunk is at most a little larger than the chunk.
    let max_stored = chunker::MAX_CHUNK as u64 + 4096;
    if raw_len as usize > chunker::MAX_CHUNK || stored_len > max_stored {
        return Err(EngineError::Corrupt(format!("chunk sizes {raw_len}/{stored_len} exceed the format's limits")));
    }
    Ok(())
}

/// The largest delta segment (reference, frame or output) a client accepts: zstd's window limit.
const MAX_SEGMENT: u64 = 2 << 30;

impl<'o> Client<'o> {
    pub fn new(origin: &'o dyn Origin, org: &str, app: &str) -> Client<'o> {
        Client { origin, org: org.to_string(), app: app.to_string(), fetched: Cell::new(0) }
    }

    fn get(&self, rel: &str) -> Result<Vec<u8>> {
        let bytes = self.origin.get(rel)?;
        self.fetched.set(self.fetched.get() + bytes.len() as u64);
        Ok(bytes)
    }

    fn get_range(&self, rel: &str, offset: u64, len: u64) -> Result<Vec<u8>> {
        let bytes = self.origin.get_range(rel, offset, len)?;
        if bytes.len() as u64 != len {
            return Err(EngineError::Corrupt(format!("{rel}: got {} bytes at {offset}, asked {len}", bytes.len())));
        }
        self.fetched.set(self.fetched.get() + len);
        Ok(bytes)
    }

    /// The app's go-live pointer (`current.json`): the build a launcher fetches when it names
    /// none. Its fields are checked like any published data before they are used in a path.
    pub fn current(&self) -> Result<Pointer> {
        let rel = current_rel(&self.org, &self.app);
        let bytes = self.get(&rel)?;
        let pointer: Pointer =
            serde_json::from_slice(&bytes).map_err(|e| EngineError::Corrupt(format!("{rel}: {e}")))?;
        if u32::try_from(pointer.build_id).is_err() || safe_path(&pointer.dxf_name)?.contains('/') {
            return Err(EngineError::Corrupt(format!("{rel} names no valid build")));
        }
        Ok(pointer)
    }

    /// The `dxfName` of `build`, found by listing its directory (local origins only; an HTTP
    /// launcher gets it from the app's `dxfName`).
    pub fn find_dxf_name(&self, build: u32) -> Result<String> {
        let names: Vec<String> = self
            .origin
            .list(&build_rel(&self.org, &self.app, build))?
            .into_iter()
            .filter(|n| !n.starts_with('.'))
            .collect();
        match names.as_slice() {
            [one] => Ok(one.clone()),
            [] => Err(EngineError::Invalid(format!("build {build} has no image"))),
            _ => {
                Err(EngineError::Invalid(format!("build {build} has several images ({}); name one", names.join(", "))))
            }
        }
    }

    /// Fetches chunk-table slots `slots` (consecutive in the pack) with one range request.
    fn fetch_run(&self, dxf_rel: &str, packs: &[String], run: &[&IndexChunk], out: &mut Output) -> Result<()> {
        let Some(first) = run.first() else { return Ok(()) };
        let pack = packs
            .get(first.pack as usize)
            .ok_or_else(|| EngineError::Corrupt(format!("pack {} missing from index", first.pack)))?;
        for c in run {
            check_chunk_sizes(c.raw_len, c.stored_len as u64)?;
        }
        let len: u64 = run.iter().map(|c| c.stored_len as u64).sum();
        let bytes = self.get_range(&format!("{dxf_rel}/{pack}"), first.offset, len)?;
        let mut at = 0usize;
        for c in run {
            let stored = &bytes[at..at + c.stored_len as usize];
            out.write(&decode_chunk(&c.id, c.codec, stored, c.raw_len)?)?;
            at += c.stored_len as usize;
        }
        Ok(())
    }

    /// Fetches and checks the chunks at table positions `from..to`, with one range request per
    /// run of chunks contiguous in a pack (at most [`MAX_COALESCED`] bytes each).
    fn fetch_slots(&self, dxf_rel: &str, index: &Index, from: usize, to: usize) -> Result<()> {
        let mut at = from;
        while at < to {
            let first = &index.chunks[at];
            let mut end = at + 1;
            let mut len = first.stored_len as u64;
            while let Some(next) = index.chunks.get(end).filter(|_| end < to) {
                let last = &index.chunks[end - 1];
                if next.pack != first.pack
                    || next.offset != last.offset + last.stored_len as u64
                    || len + next.stored_len as u64 > MAX_COALESCED
                {
                    break;
                }
                len += next.stored_len as u64;
                end += 1;
            }
            for c in &index.chunks[at..end] {
                check_chunk_sizes(c.raw_len, c.stored_len as u64)?;
            }
            let pack = index
                .packs
                .get(first.pack as usize)
                .ok_or_else(|| EngineError::Corrupt(format!("pack {} missing from index", first.pack)))?;
            let bytes = self.get_range(&format!("{dxf_rel}/{}", safe_path(&pack.name)?), first.offset, len)?;
            let mut offset = 0usize;
            for c in &index.chunks[at..end] {
                decode_chunk(&c.id, c.codec, &bytes[offset..offset + c.stored_len as usize], c.raw_len)?;
                offset += c.stored_len as usize;
            }
            at = end;
        }
        Ok(())
    }

    /// Replays a game's start-up the way a streaming launcher installs: fetch the index, then the
    /// image's `preloadBytes` at once (when it has them), then the packs in load order until
    /// every chunk the start-up `reads` touch is in. Answers the bytes fetched until then; each
    /// chunk fetched is checked against its id.
    pub fn startup(&self, build: u32, dxf_name: Option<&str>, reads: &[super::startup::Read]) -> Result<StartupReport> {
        let dxf_name = match dxf_name {
            Some(n) => n.to_string(),
            None => self.find_dxf_name(build)?,
        };
        let dxf_rel = format!("{}/{}", build_rel(&self.org, &self.app, build), safe_path(&dxf_name)?);
        let index = Index::decode(&self.get(&format!("{dxf_rel}/{INDEX_FILE}"))?)?;
        let index_bytes = self.fetched.get();
        let files: HashMap<&str, (u64, &[u32])> = index
            .files
            .iter()
            .filter_map(|e| match &e.kind {
                IndexKind::File { size, chunks, .. } => Some((e.path.as_str(), (*size, chunks.as_slice()))),
                _ => None,
            })
            .collect();
        let mut needed = std::collections::BTreeSet::new();
        for read in reads {
            let &(size, slots) = files.get(read.path.as_str()).ok_or_else(|| {
                EngineError::Invalid(format!("the trace reads `{}`, which is no file of build {build}", read.path))
            })?;
            if read.offset.saturating_add(read.len) > size {
                return Err(EngineError::Invalid(format!("the trace reads past the end of `{}`", read.path)));
            }
            let (end, mut at) = (read.offset + read.len, 0u64);
            for &slot in slots {
                let c = index
                    .chunks
                    .get(slot as usize)
                    .ok_or_else(|| EngineError::Corrupt(format!("{}: chunk slot {slot} out of range", read.path)))?;
                let next = at + c.raw_len as u64;
                if next > read.offset && at < end {
                    needed.insert(slot as usize);
                }
                if next >= end {
                    break;
                }
                at = next;
            }
        }
        // The preload is a prefix of the packs in pack order, which is a prefix of the table.
        let mut preloaded = 0usize;
        if let Some(preload) = index.preload_bytes {
            let mut sum = 0u64;
            while let Some(c) = index.chunks.get(preloaded).filter(|c| sum + c.stored_len as u64 <= preload) {
                sum += c.stored_len as u64;
                preloaded += 1;
            }
            self.fetch_slots(&dxf_rel, &index, 0, preloaded)?;
        }
        let last = needed.iter().next_back().map_or(0, |&slot| slot + 1);
        if last > preloaded {
            self.fetch_slots(&dxf_rel, &index, preloaded, last)?;
        }
        Ok(StartupReport {
            bytes_fetched: self.fetched.get(),
            index_bytes,
            preload_bytes: index.preload_bytes,
            chunks_needed: needed.len(),
        })
    }

    /// Writes the full tree of `build` into `dest` (which must not exist or be empty) from its
    /// DxF image. `dxf_name` defaults to the one image found by listing (local origins).
    pub fn rebuild(&self, build: u32, dxf_name: Option<&str>, dest: &Path) -> Result<Report> {
        let dxf_name = match dxf_name {
            Some(n) => n.to_string(),
            None => self.find_dxf_name(build)?,
        };
        if dest.exists() && fs::read_dir(dest).ctx(|| format!("list {}", dest.display()))?.next().is_some() {
            return Err(EngineError::Invalid(format!("{} is not empty", dest.display())));
        }
        fs::create_dir_all(dest).ctx(|| format!("create {}", dest.display()))?;
        let dxf_rel = format!("{}/{dxf_name}", build_rel(&self.org, &self.app, build));
        let index = Index::decode(&self.get(&format!("{dxf_rel}/{INDEX_FILE}"))?)?;
        let packs: Vec<String> = (0..index.packs.len() as u32).map(pack_name).collect();
        let links: HashMap<String, String> = index
            .files
            .iter()
            .filter_map(|e| match &e.kind {
                IndexKind::Symlink { target } => Some((e.path.clone(), target.clone())),
                _ => None,
            })
            .collect();
        let mut report = Report::default();
        let mut written: HashMap<&str, PathBuf> = HashMap::new();
        let mut dir_modes = Vec::new();
        let mut link_list = Vec::new();
        for entry in &index.files {
            let path = dest.join(safe_path(&entry.path)?);
            match &entry.kind {
                IndexKind::Dir { mode } => {
                    fs::create_dir_all(&path).ctx(|| format!("create {}", path.display()))?;
                    dir_modes.push((path, *mode));
                }
                IndexKind::Symlink { target } => {
                    check_link(&entry.path, target, &links)
                        .map_err(|_| EngineError::Corrupt(format!("link {} leaves the tree", entry.path)))?;
                    // Created after every file, so no file is ever written through a link.
                    link_list.push((path, target));
                }
                IndexKind::File { mode, size, sha256, chunks } => {
                    let mut out = Output::create(&path)?;
                    if let Some(copy) = written.get(sha256.as_str()) {
                        // Identical content already rebuilt: copy it instead of fetching again.
                        let mut src = File::open(copy).ctx(|| format!("open {}", copy.display()))?;
                        let mut buf = vec![0u8; 1 << 20];
                        loop {
                            let n = src.read(&mut buf).ctx(|| format!("read {}", copy.display()))?;
                            if n == 0 {
                                break;
                            }
                            out.write(&buf[..n])?;
                        }
                    } else {
                        let mut run: Vec<&IndexChunk> = Vec::new();
                        let mut run_len = 0u64;
                        for &slot in chunks {
                            let c = index.chunks.get(slot as usize).ok_or_else(|| {
                                EngineError::Corrupt(format!("{}: chunk slot {slot} out of range", entry.path))
                            })?;
                            let contiguous = run
                                .last()
                                .is_some_and(|l| l.pack == c.pack && l.offset + l.stored_len as u64 == c.offset);
                            if !run.is_empty() && (!contiguous || run_len + c.stored_len as u64 > MAX_COALESCED) {
                                self.fetch_run(&dxf_rel, &packs, &run, &mut out)?;
                                run.clear();
                                run_len = 0;
                            }
                            run.push(c);
                            run_len += c.stored_len as u64;
                        }
                        self.fetch_run(&dxf_rel, &packs, &run, &mut out)?;
                    }
                    out.finish(&entry.path, *size, sha256, *mode)?;
                    written.insert(sha256, path);
                    report.files_written += 1;
                }
            }
        }
        for (path, target) in link_list {
            if let Some(dir) = path.parent() {
                fs::create_dir_all(dir).ctx(|| format!("create {}", dir.display()))?;
            }
            std::os::unix::fs::symlink(target, &path).ctx(|| format!("symlink {}", path.display()))?;
        }
        for (path, mode) in dir_modes.into_iter().rev() {
            fs::set_permissions(&path, fs::Permissions::from_mode(mode & 0o777))
                .ctx(|| format!("chmod {}", path.display()))?;
        }
        report.bytes_fetched = self.fetched.get();
        Ok(report)
    }

    /// Updates `tree`, a verified copy of build `from`, to build `to` using the patch only.
    /// New files are built in a staging directory inside `tree` and verified before any file of
    /// the tree changes; then removed paths go, staged files are renamed into place, links and
    /// directories are set.
    pub fn update(&self, from: u32, to: u32, tree: &Path) -> Result<Report> {
        let rel = patch_rel(&self.org, &self.app, to, from);
        let patch = Patch::decode(&self.get(&format!("{rel}/{PATCH_FILE}"))?)?;
        let dat_rel = format!("{rel}/{PATCH_DATA_FILE}");
        let dxf_rel = format!("{}/{}", build_rel(&self.org, &self.app, to), safe_path(&patch.to_dxf_name)?);
        let staging = tree.join(format!(".rockit-update-{to:04}"));
        if staging.exists() {
            fs::remove_dir_all(&staging).ctx(|| format!("remove {}", staging.display()))?;
        }
        fs::create_dir(&staging).ctx(|| format!("create {}", staging.display()))?;
        let links: HashMap<String, String> = patch
            .files
            .iter()
            .filter_map(|e| match &e.kind {
                PatchKind::Symlink { target } => Some((e.path.clone(), target.clone())),
                _ => None,
            })
            .collect();
        let mut report = Report::default();
        let mut staged: Vec<(PathBuf, &str)> = Vec::new();
        let mut kept = Vec::new();
        for (n, entry) in patch.files.iter().enumerate() {
            safe_path(&entry.path)?;
            let PatchKind::File { mode, size, sha256, op } = &entry.kind else {
                if let PatchKind::Symlink { target } = &entry.kind {
                    check_link(&entry.path, target, &links)
                        .map_err(|_| EngineError::Corrupt(format!("link {} leaves the tree", entry.path)))?;
                }
                continue;
            };
            if let FileOp::Same { source } = op {
                if *source == entry.path {
                    // Unchanged: verify in place, leave it (its mode may still change).
                    let (got_size, got_sha) = sha256_of_file(&tree.join(&entry.path))?;
                    if got_size != *size || got_sha != *sha256 {
                        return Err(EngineError::Invalid(format!(
                            "{}: the tree is not build {from} (file differs)",
                            entry.path
                        )));
                    }
                    kept.push((tree.join(&entry.path), *mode));
                    report.files_kept += 1;
                    continue;
                }
            }
            let out_path = staging.join(n.to_string());
            let mut out = Output::create(&out_path)?;
            self.rebuild_file(op, tree, &dat_rel, &dxf_rel, &mut out)?;
            out.finish(&entry.path, *size, sha256, *mode)?;
            staged.push((out_path, &entry.path));
            report.files_written += 1;
        }
        self.commit(&patch, tree, staged)?;
        for (path, mode) in kept {
            fs::set_permissions(&path, fs::Permissions::from_mode(mode & 0o777))
                .ctx(|| format!("chmod {}", path.display()))?;
        }
        fs::remove_dir_all(&staging).ctx(|| format!("remove {}", staging.display()))?;
        report.bytes_fetched = self.fetched.get();
        Ok(report)
    }

    fn rebuild_file(&self, op: &FileOp, tree: &Path, dat_rel: &str, dxf_rel: &str, out: &mut Output) -> Result<()> {
        match op {
            FileOp::Same { source } => {
                let src = tree.join(safe_path(source)?);
                let mut file = File::open(&src).ctx(|| format!("open {}", src.display()))?;
                let mut buf = vec![0u8; 1 << 20];
                loop {
                    let n = file.read(&mut buf).ctx(|| format!("read {}", src.display()))?;
                    if n == 0 {
                        return Ok(());
                    }
                    out.write(&buf[..n])?;
                }
            }
            FileOp::Chunks { pieces } | FileOp::Fetch { pieces } => {
                let mut i = 0;
                while i < pieces.len() {
                    match &pieces[i] {
                        Piece::Local { path, offset, len } => {
                            out.write(&read_file_range(&tree.join(safe_path(path)?), *offset, *len as u64)?)?;
                            i += 1;
                        }
                        Piece::Remote { pack, offset, .. } => {
                            // Coalesce the following remote pieces that sit right after this one.
                            let mut end = i;
                            let mut next_offset = *offset;
                            while let Some(Piece::Remote { pack: p, offset: o, stored_len, len, .. }) = pieces.get(end)
                            {
                                check_chunk_sizes(*len, *stored_len as u64)?;
                                if *p != *pack
                                    || *o != next_offset
                                    || next_offset - offset + *stored_len as u64 > MAX_COALESCED
                                {
                                    break;
                                }
                                next_offset += *stored_len as u64;
                                end += 1;
                            }
                            let bytes = self.get_range(
                                &format!("{dxf_rel}/{}", pack_name(*pack)),
                                *offset,
                                next_offset - offset,
                            )?;
                            let mut at = 0usize;
                            for piece in &pieces[i..end] {
                                if let Piece::Remote { id, stored_len, len, codec, .. } = piece {
                                    out.write(&decode_chunk(id, *codec, &bytes[at..at + *stored_len as usize], *len)?)?;
                                    at += *stored_len as usize;
                                }
                            }
                            i = end;
                        }
                    }
                }
                Ok(())
            }
            FileOp::Delta { segments } => {
                for seg in segments {
                    if seg.src_len.max(seg.dat_len).max(seg.out_len) > MAX_SEGMENT {
                        return Err(EngineError::Corrupt(format!(
                            "delta segment of {} exceeds the format's limits",
                            seg.source
                        )));
                    }
                    let source = read_file_range(&tree.join(safe_path(&seg.source)?), seg.src_offset, seg.src_len)?;
                    let frame = self.get_range(dat_rel, seg.dat_offset, seg.dat_len)?;
                    let out_len = seg.out_len as usize;
                    out.write(&match seg.codec {
                        DeltaCodec::Zstd => delta::decode(&source, &frame, out_len)?,
                        DeltaCodec::Bsdiff => delta::bsdiff_decode(&source, &frame, out_len)?,
                    })?;
                }
                Ok(())
            }
        }
    }

    /// Puts the verified new build in place.
    fn commit(&self, patch: &Patch, tree: &Path, staged: Vec<(PathBuf, &str)>) -> Result<()> {
        for path in &patch.remove {
            let target = tree.join(safe_path(path)?);
            match fs::symlink_metadata(&target) {
                Ok(meta) if meta.is_dir() => {
                    fs::remove_dir_all(&target).ctx(|| format!("remove {}", target.display()))?
                }
                Ok(_) => fs::remove_file(&target).ctx(|| format!("remove {}", target.display()))?,
                Err(_) => {}
            }
        }
        let mut dir_modes = Vec::new();
        for entry in &patch.files {
            if let PatchKind::Dir { mode } = &entry.kind {
                let path = tree.join(&entry.path);
                fs::create_dir_all(&path).ctx(|| format!("create {}", path.display()))?;
                dir_modes.push((path, *mode));
            }
        }
        for (from, path) in staged {
            let to = tree.join(path);
            if let Some(dir) = to.parent() {
                fs::create_dir_all(dir).ctx(|| format!("create {}", dir.display()))?;
            }
            fs::rename(&from, &to).ctx(|| format!("rename to {}", to.display()))?;
        }
        for entry in &patch.files {
            if let PatchKind::Symlink { target } = &entry.kind {
                let path = tree.join(&entry.path);
                match fs::read_link(&path) {
                    Ok(current) if current == Path::new(target) => continue,
                    Ok(_) => fs::remove_file(&path).ctx(|| format!("remove {}", path.display()))?,
                    Err(_) => {}
                }
                if let Some(dir) = path.parent() {
                    fs::create_dir_all(dir).ctx(|| format!("create {}", dir.display()))?;
                }
                std::os::unix::fs::symlink(target, &path).ctx(|| format!("symlink {}", path.display()))?;
            }
        }
        for (path, mode) in dir_modes.into_iter().rev() {
            fs::set_permissions(&path, fs::Permissions::from_mode(mode & 0o777))
                .ctx(|| format!("chmod {}", path.display()))?;
        }
        Ok(())
    }
}
