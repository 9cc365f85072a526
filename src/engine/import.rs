//! `mkraw`'s first half: read a (possibly compressed) tar as a stream, validate every entry,
//! chunk and hash file contents, store new chunks on the pool, and return the build's manifest.
//! Memory holds one chunk per pool slot plus the manifest's entries, whatever the tar's size:
//! chunk lists go to disk as soon as their ids are known ([`super::lists`]).

use std::collections::{HashMap, HashSet, VecDeque};
use std::io::Read;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use tar::EntryType;

use super::chunker;
use super::error::{EngineError, IoContext, Result};
use super::fsutil::hex;
use super::lists::{ListWriter, Span};
use super::manifest::{ChunkRef, Entry, EntryKind, Outline, Warning};
use super::pool::WorkPool;
use super::sniff::{self, Wrapping};
use super::store::{ChunkId, ChunkStore};
use super::validate::{ancestors, check_link, normalize_path};
use super::Hooks;

/// Pending new chunk bytes that trigger a flush of the store: bounds the pending list (and
/// what a crash makes the rerun store again) while keeping syncs rare.
const FLUSH_EVERY: u64 = 256 << 20;

/// How many example paths a warning names.
const WARNING_EXAMPLES: usize = 5;

/// Counts the input bytes the tar reader consumed, for progress against the input's size.
struct Counting<R> {
    inner: R,
    count: Arc<AtomicU64>,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

/// Where the pool puts a chunk's id once it has hashed it; `None` for an id known already.
type Slot = Option<Arc<OnceLock<ChunkId>>>;

/// The tree being assembled: entries by path plus the directories implied by deeper paths.
struct Tree {
    entries: Vec<Entry>,
    /// Where each entry's chunk list went (parallel to `entries`): a file's list moves to
    /// `lists` as soon as its ids are known, so the tree holds no list but those in flight.
    spans: Vec<Span>,
    lists: ListWriter,
    by_path: HashMap<String, usize>,
    implied_dirs: HashSet<String>,
    links: HashMap<String, String>,
    empty_files: Vec<String>,
    lower_case: HashMap<String, String>,
    case_collisions: Vec<String>,
    /// Files whose chunk ids the pool is still computing, oldest first, with a slot per chunk
    /// (`None` where the id was known when the file was read). A file leaves as soon as its
    /// jobs are done, so only the files in flight hold slots, not every chunk of the build.
    unresolved: VecDeque<(usize, Vec<Slot>)>,
    /// Hard links (entry, earlier entry it repeats): they take its chunks once resolved.
    hard_links: Vec<(usize, usize)>,
}

impl Tree {
    fn new(lists: ListWriter) -> Tree {
        Tree {
            entries: Vec::new(),
            spans: Vec::new(),
            lists,
            by_path: HashMap::new(),
            implied_dirs: HashSet::new(),
            links: HashMap::new(),
            empty_files: Vec::new(),
            lower_case: HashMap::new(),
            case_collisions: Vec::new(),
            unresolved: VecDeque::new(),
            hard_links: Vec::new(),
        }
    }

    /// Refuses a second entry for a path, an entry below a file or link, and a file or link
    /// where earlier entries implied a directory.
    fn admit(&mut self, path: &str, is_dir: bool) -> Result<()> {
        if self.by_path.contains_key(path) {
            return Err(EngineError::file_read_failed(path, "unique path", "duplicate entry"));
        }
        if !is_dir && self.implied_dirs.contains(path) {
            return Err(EngineError::file_read_failed(path, "directory", "file over a directory"));
        }
        for dir in ancestors(path) {
            if let Some(&i) = self.by_path.get(dir) {
                if !matches!(self.entries[i].kind, EntryKind::Dir { .. }) {
                    return Err(EngineError::file_read_failed(
                        path,
                        "path below a directory",
                        format!("path below {dir}"),
                    ));
                }
            }
        }
        for dir in ancestors(path) {
            self.implied_dirs.insert(dir.to_string());
        }
        let lower = path.to_lowercase();
        match self.lower_case.get(&lower) {
            Some(other) if other != path => self.case_collisions.push(format!("{other} / {path}")),
            Some(_) => {}
            None => {
                self.lower_case.insert(lower, path.to_string());
            }
        }
        Ok(())
    }

    fn push(&mut self, path: String, kind: EntryKind) -> usize {
        let order = self.entries.len() as u64;
        self.by_path.insert(path.clone(), self.entries.len());
        self.entries.push(Entry { path, order, kind });
        self.spans.push(Span::default());
        self.entries.len() - 1
    }

    /// Moves the chunk lists of the oldest files whose jobs are all done to disk, with the
    /// ids the pool computed.
    fn resolve_ready(&mut self) -> Result<()> {
        while let Some((_, slots)) = self.unresolved.front() {
            if !slots.iter().flatten().all(|slot| slot.get().is_some()) {
                break;
            }
            if let Some((i, slots)) = self.unresolved.pop_front() {
                self.fill(i, slots)?;
            }
        }
        Ok(())
    }

    /// Puts the ids the pool computed into file `i`'s chunk list and moves the list to disk.
    fn fill(&mut self, i: usize, slots: Vec<Slot>) -> Result<()> {
        if let EntryKind::File { chunks, .. } = &mut self.entries[i].kind {
            for (chunk, slot) in chunks.iter_mut().zip(slots) {
                if let Some(slot) = slot {
                    chunk.id =
                        slot.get().cloned().ok_or_else(|| EngineError::Invalid("a chunk was left unhashed".into()))?;
                }
            }
            self.spans[i] = self.lists.push(chunks)?;
            *chunks = Vec::new();
        }
        Ok(())
    }

    /// Moves every remaining chunk list to disk (call after the batch is done), then gives
    /// hard links the list of the file they repeat.
    fn resolve_all(&mut self) -> Result<()> {
        while let Some((i, slots)) = self.unresolved.pop_front() {
            self.fill(i, slots)?;
        }
        for (link, target) in std::mem::take(&mut self.hard_links) {
            self.spans[link] = self.spans[target];
        }
        Ok(())
    }

    fn warnings(&self) -> Vec<Warning> {
        let mut warnings = Vec::new();
        let examples = |list: &[String]| list.iter().take(WARNING_EXAMPLES).cloned().collect::<Vec<_>>().join(", ");
        if !self.empty_files.is_empty() {
            warnings.push(Warning {
                code: "emptyFiles".into(),
                message: format!("{} empty file(s): {}", self.empty_files.len(), examples(&self.empty_files)),
            });
        }
        if !self.case_collisions.is_empty() {
            warnings.push(Warning {
                code: "caseCollision".into(),
                message: format!(
                    "{} name(s) differ only in case and collide on Windows clients: {}",
                    self.case_collisions.len(),
                    examples(&self.case_collisions)
                ),
            });
        }
        warnings
    }
}

fn entry_kind_name(t: EntryType) -> String {
    match t {
        EntryType::Char => "character device".into(),
        EntryType::Block => "block device".into(),
        EntryType::Fifo => "FIFO".into(),
        EntryType::GNUSparse => "sparse file".into(),
        other => format!("tar entry type {:?}", other.as_byte() as char),
    }
}

/// Reads the tar from `reader` and returns the build's manifest, its chunk lists in a
/// temporary file beside the chunk store; see `Engine::import_tar`.
pub fn import_tar<R: Read + Send>(
    reader: R,
    size_hint: Option<u64>,
    store: &ChunkStore,
    pool: &WorkPool,
    hooks: &Hooks,
) -> Result<Outline> {
    let consumed = Arc::new(AtomicU64::new(0));
    let (tar_stream, wrapping) = sniff::open_tar(Counting { inner: reader, count: consumed.clone() })?;
    let mut tree = Tree::new(ListWriter::create_in(store.root())?);
    let batch = pool.batch();
    let mut archive = tar::Archive::new(tar_stream);
    let entries = archive.entries().ctx(|| format!("read {}", sniff::INPUT_NAME))?;
    let report = || (hooks.progress)(consumed.load(Ordering::Relaxed), size_hint.unwrap_or(0));
    for entry in entries {
        if (hooks.cancel)() {
            return Err(EngineError::Cancelled);
        }
        let mut entry = entry.map_err(|e| tar_error(&e))?;
        let header = entry.header();
        let etype = header.entry_type();
        if matches!(
            etype,
            EntryType::XGlobalHeader | EntryType::XHeader | EntryType::GNULongName | EntryType::GNULongLink
        ) {
            continue;
        }
        let raw_path = entry.path_bytes().into_owned();
        let mode = header.mode().map_err(|e| tar_error(&e))? & 0o777;
        let Some(path) = normalize_path(&raw_path)? else {
            if etype == EntryType::Directory {
                continue;
            }
            return Err(EngineError::file_read_failed(".", "directory", "file at the root path"));
        };
        match etype {
            EntryType::Directory => {
                tree.admit(&path, true)?;
                tree.push(path, EntryKind::Dir { mode });
            }
            EntryType::Regular | EntryType::Continuous => {
                tree.admit(&path, false)?;
                let size = entry.size();
                let (sha256, chunks, slots) = chunk_file(&mut entry, store, &batch, hooks, &report)?;
                if size == 0 {
                    tree.empty_files.push(path.clone());
                }
                let i = tree.push(path, EntryKind::File { mode, size, sha256, chunks });
                // Queued even with every id known, so that lists go to disk in tar order.
                tree.unresolved.push_back((i, slots));
                tree.resolve_ready()?;
            }
            EntryType::Symlink => {
                let target = entry.link_name_bytes().map(|t| t.into_owned()).unwrap_or_default();
                let target = String::from_utf8(target)
                    .map_err(|_| EngineError::file_read_failed(&path, "UTF-8 link target", "non-UTF-8 link target"))?;
                tree.admit(&path, false)?;
                tree.links.insert(path.clone(), target.clone());
                tree.push(path, EntryKind::Symlink { target });
            }
            EntryType::Link => {
                // A hard link repeats an earlier file: same content, so the same chunks.
                let target = entry.link_name_bytes().map(|t| t.into_owned()).unwrap_or_default();
                let target_path = normalize_path(&target)?.unwrap_or_default();
                let target_index = tree.by_path.get(&target_path).copied();
                let kind = match target_index.map(|i| &tree.entries[i].kind) {
                    // Its list is the earlier file's, given once that one's is on disk.
                    Some(EntryKind::File { size, sha256, .. }) => {
                        EntryKind::File { mode, size: *size, sha256: sha256.clone(), chunks: Vec::new() }
                    }
                    _ => {
                        return Err(EngineError::file_read_failed(
                            &path,
                            "hard link to an earlier file",
                            "dangling hard link",
                        ))
                    }
                };
                tree.admit(&path, false)?;
                let i = tree.push(path, kind);
                if let Some(target) = target_index {
                    tree.hard_links.push((i, target));
                }
            }
            other => {
                return Err(EngineError::file_read_failed(&path, "file, directory or symlink", entry_kind_name(other)))
            }
        }
        report();
    }
    drop(archive);
    batch.wait()?;
    tree.resolve_all()?;
    // In path order, so the same tar always reports the same link.
    let mut links: Vec<_> = tree.links.iter().collect();
    links.sort();
    for (path, target) in links {
        check_link(path, target, &tree.links)?;
    }
    // Every chunk the manifest names is durable under its name before the caller commits it.
    store.flush()?;
    let mut warnings = Vec::new();
    match wrapping {
        Wrapping::Plain => {}
        Wrapping::Gzip | Wrapping::Zstd => warnings.push(Warning {
            code: "compressedTar".into(),
            message: format!(
                "{} is {}-compressed; accepted, but an uncompressed tar is expected",
                sniff::INPUT_NAME,
                if wrapping == Wrapping::Gzip { "gzip" } else { "zstd" }
            ),
        }),
    }
    warnings.extend(tree.warnings());
    let lists = tree.lists.finish()?;
    Ok(Outline::new(tree.entries.into_iter().zip(tree.spans).collect(), warnings, lists))
}

/// A tar the `tar` crate cannot parse (bad checksum, truncated) is not a valid tar.
fn tar_error(e: &std::io::Error) -> EngineError {
    EngineError::file_read_failed(sniff::INPUT_NAME, "tar", format!("damaged tar ({e})"))
}

/// Chunks one file and hashes it whole on the way; each chunk goes to the pool, which hashes it
/// (its id) and stores it unless the store has it. The chunk refs come back with the ids known
/// already, and a slot the pool fills for each other one. A file of one chunk is hashed once
/// here: its hash is the chunk's id (most files of a game build are smaller than a chunk).
fn chunk_file<R: Read>(
    contents: R,
    store: &ChunkStore,
    batch: &super::pool::Batch,
    hooks: &Hooks,
    report: &dyn Fn(),
) -> Result<(String, Vec<ChunkRef>, Vec<Slot>)> {
    let mut file_hash = ring::digest::Context::new(&ring::digest::SHA256);
    let mut single = None;
    let mut refs = Vec::new();
    let mut slots = Vec::new();
    let mut chunks = chunker::chunks(contents).peekable();
    while let Some(chunk) = chunks.next() {
        if (hooks.cancel)() {
            return Err(EngineError::Cancelled);
        }
        let data = chunk.map_err(|e| match e {
            EngineError::Io { source, .. } => tar_error(&source),
            other => other,
        })?;
        let chunk_store = store.clone();
        if refs.is_empty() && chunks.peek().is_none() {
            let id = ChunkId::of(&data);
            single = Some(id.to_hex());
            refs.push(ChunkRef { id: id.clone(), len: data.len() as u32 });
            slots.push(None);
            batch.spawn(move || chunk_store.put(&id, &data))?;
        } else {
            file_hash.update(&data);
            refs.push(ChunkRef { id: ChunkId([0; 32]), len: data.len() as u32 });
            let slot = Arc::new(OnceLock::new());
            slots.push(Some(slot.clone()));
            batch.spawn(move || {
                let id = ChunkId::of(&data);
                chunk_store.put(&id, &data)?;
                let _ = slot.set(id);
                Ok(())
            })?;
        }
        if store.pending_bytes()? >= FLUSH_EVERY {
            store.flush()?;
        }
        report();
    }
    Ok((single.unwrap_or_else(|| hex(file_hash.finish().as_ref())), refs, slots))
}
