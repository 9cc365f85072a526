//! The manifest of one build: every entry of the tar, sorted by path, with the chunks of each
//! file. It is what images and patches are made from, and what eviction consults to know which
//! chunks a retained build still uses.

use std::borrow::Cow;
use std::collections::HashSet;
use std::io::{BufReader, BufWriter, Write};
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::error::{EngineError, IoContext, Result};
use super::fsutil::write_durably_with;
use super::lists::{ChunkLists, Span};
use super::store::ChunkId;

/// Buffer between the JSON and zstd, each way.
const STREAM_BUFFER: usize = 64 << 10;

/// Bumped whenever the manifest's meaning changes; a manifest of another version is refused.
pub const MANIFEST_FORMAT: u32 = 1;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub format: u32,
    /// Sorted by `path` (byte order), unique.
    pub files: Vec<Entry>,
    /// Oddities that did not block the import (empty files, names equal up to case).
    #[serde(default)]
    pub warnings: Vec<Warning>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// Relative, `/`-separated, no `.` or `..` components, no trailing slash.
    pub path: String,
    /// Position in the tar (0-based): the image's load order starts from it.
    pub order: u64,
    #[serde(flatten)]
    pub kind: EntryKind,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum EntryKind {
    File { mode: u32, size: u64, sha256: String, chunks: Vec<ChunkRef> },
    Dir { mode: u32 },
    Symlink { target: String },
}

/// One chunk of a file, in file order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkRef {
    pub id: ChunkId,
    pub len: u32,
}

/// A non-blocking oddity found while importing, for the task's `warnings`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Warning {
    /// Stable machine-readable kind: `compressedTar`, `emptyFiles`, `caseCollision`.
    pub code: String,
    pub message: String,
}

impl Manifest {
    /// Every distinct chunk id the build uses.
    pub fn chunk_ids(&self) -> HashSet<&ChunkId> {
        self.files
            .iter()
            .filter_map(|e| match &e.kind {
                EntryKind::File { chunks, .. } => Some(chunks.iter().map(|c| &c.id)),
                _ => None,
            })
            .flatten()
            .collect()
    }

    /// Calls `each` with the id of every chunk reference, file by file (repeats included).
    pub fn each_chunk_id(&self, each: &mut dyn FnMut(&ChunkId) -> Result<()>) -> Result<()> {
        for entry in &self.files {
            if let EntryKind::File { chunks, .. } = &entry.kind {
                chunks.iter().try_for_each(|c| each(&c.id))?;
            }
        }
        Ok(())
    }

    /// Total bytes of file contents.
    pub fn content_bytes(&self) -> u64 {
        self.files.iter().map(|e| if let EntryKind::File { size, .. } = e.kind { size } else { 0 }).sum()
    }

    /// Writes the manifest durably (zstd-compressed JSON), streamed: the JSON of an 8 GiB
    /// build is ~11 MB (~100 bytes per chunk), which made whole and then compressed into a
    /// buffer of its size was the largest allocation of an import (+25 MiB of peak heap at
    /// 8 GiB). The JSON is the same byte for byte; the zstd frame around it is a streamed one
    /// (readers of either need nothing but a zstd decoder).
    pub fn save(&self, path: &Path) -> Result<()> {
        save_json(path, self)
    }

    /// Reads a manifest, streaming its JSON from the decompressor (never whole in memory).
    pub fn load(path: &Path) -> Result<Manifest> {
        let file = std::fs::File::open(path).ctx(|| format!("open {}", path.display()))?;
        let decoder = zstd::stream::read::Decoder::new(file).ctx(|| format!("read {}", path.display()))?;
        let mut manifest: Manifest = serde_json::from_reader(BufReader::with_capacity(STREAM_BUFFER, decoder))
            .map_err(|e| match e.is_io() {
                true => EngineError::Io { context: format!("read {}", path.display()), source: e.into() },
                false => EngineError::Corrupt(format!("{}: {e}", path.display())),
            })?;
        if manifest.format != MANIFEST_FORMAT {
            return Err(EngineError::Corrupt(format!("{}: manifest format {}", path.display(), manifest.format)));
        }
        // Kept through the image and every patch: without the slack of the lists' growth.
        for entry in &mut manifest.files {
            if let EntryKind::File { chunks, .. } = &mut entry.kind {
                chunks.shrink_to_fit();
            }
        }
        Ok(manifest)
    }
}

/// Writes `value` durably as zstd-compressed JSON, streamed (see [`Manifest::save`]).
fn save_json(path: &Path, value: &impl Serialize) -> Result<()> {
    write_durably_with(path, |file| {
        let encoder = zstd::stream::write::Encoder::new(BufWriter::with_capacity(STREAM_BUFFER, file), 3)?;
        let mut json = BufWriter::with_capacity(STREAM_BUFFER, encoder);
        serde_json::to_writer(&mut json, value)?;
        json.into_inner().map_err(std::io::IntoInnerError::into_error)?.finish()?.flush()
    })
}

/// What an image is made from: a build's entries and, per file, its chunk list. Either a whole
/// [`Manifest`] in memory, or an [`Outline`] whose chunk lists are on disk.
pub trait FileChunks {
    /// The entries; a file's `chunks` may be empty here even when it has some (see
    /// [`FileChunks::chunks`]).
    fn entries(&self) -> &[Entry];
    /// The chunk list of `entries()[file]` (empty for anything but a non-empty file).
    fn chunks(&self, file: usize) -> Result<Cow<'_, [ChunkRef]>>;
    /// How many chunk references the files hold together (duplicates counted).
    fn chunk_refs(&self) -> u64;
    /// The whole manifest, when it is in memory (start-up traces need it).
    fn whole(&self) -> Option<&Manifest>;
}

impl FileChunks for Manifest {
    fn entries(&self) -> &[Entry] {
        &self.files
    }

    fn chunks(&self, file: usize) -> Result<Cow<'_, [ChunkRef]>> {
        Ok(match self.files.get(file).map(|e| &e.kind) {
            Some(EntryKind::File { chunks, .. }) => Cow::Borrowed(chunks.as_slice()),
            _ => Cow::Borrowed(&[]),
        })
    }

    fn chunk_refs(&self) -> u64 {
        self.files
            .iter()
            .map(|e| if let EntryKind::File { chunks, .. } = &e.kind { chunks.len() as u64 } else { 0 })
            .sum()
    }

    fn whole(&self) -> Option<&Manifest> {
        Some(self)
    }
}

/// A build's manifest as an import makes it: every entry in memory, every file's chunk list on
/// disk ([`ChunkLists`]), so nothing in it grows with the number of chunks. It saves to the same
/// `manifest.zst` a [`Manifest`] with those lists would, byte for byte.
pub struct Outline {
    /// The manifest with every file's `chunks` left empty.
    outline: Manifest,
    /// Where each entry's chunk list is (parallel to `outline.files`; empty for non-files).
    spans: Vec<Span>,
    lists: ChunkLists,
}

impl Outline {
    /// `files` and their `spans` in any order (they are sorted by path here); every file's
    /// `chunks` must be empty, its list being at its span in `lists`.
    pub fn new(files: Vec<(Entry, Span)>, warnings: Vec<Warning>, lists: ChunkLists) -> Outline {
        let mut files = files;
        files.sort_by(|a, b| a.0.path.cmp(&b.0.path));
        let (files, spans) = files.into_iter().unzip();
        Outline { outline: Manifest { format: MANIFEST_FORMAT, files, warnings }, spans, lists }
    }

    pub fn warnings(&self) -> &[Warning] {
        &self.outline.warnings
    }

    /// Writes the manifest durably, as [`Manifest::save`] does, reading each file's list from
    /// disk as the JSON gets to it.
    pub fn save(&self, path: &Path) -> Result<()> {
        save_json(path, &WithLists(self))
    }

    /// The whole manifest in memory.
    pub fn to_manifest(&self) -> Result<Manifest> {
        let files = (0..self.outline.files.len()).map(|file| self.whole_entry(file)).collect::<Result<_>>()?;
        Ok(Manifest { format: self.outline.format, files, warnings: self.outline.warnings.clone() })
    }

    /// `entry` with its chunk list read back.
    fn whole_entry(&self, file: usize) -> Result<Entry> {
        let mut entry = self.outline.files[file].clone();
        if let EntryKind::File { chunks, .. } = &mut entry.kind {
            *chunks = self.lists.read(self.spans[file])?;
        }
        Ok(entry)
    }
}

impl FileChunks for Outline {
    fn entries(&self) -> &[Entry] {
        &self.outline.files
    }

    fn chunks(&self, file: usize) -> Result<Cow<'_, [ChunkRef]>> {
        match self.spans.get(file) {
            Some(span) if span.count > 0 => Ok(Cow::Owned(self.lists.read(*span)?)),
            _ => Ok(Cow::Borrowed(&[])),
        }
    }

    fn chunk_refs(&self) -> u64 {
        self.spans.iter().map(|s| s.count as u64).sum()
    }

    fn whole(&self) -> Option<&Manifest> {
        None
    }
}

/// Serialises an [`Outline`] as the [`Manifest`] it stands for: the same derived impls, one
/// whole entry at a time.
struct WithLists<'a>(&'a Outline);

impl Serialize for WithLists<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut manifest = serializer.serialize_struct("Manifest", 3)?;
        manifest.serialize_field("format", &self.0.outline.format)?;
        manifest.serialize_field("files", &EntriesWithLists(self.0))?;
        manifest.serialize_field("warnings", &self.0.outline.warnings)?;
        manifest.end()
    }
}

struct EntriesWithLists<'a>(&'a Outline);

impl Serialize for EntriesWithLists<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        use serde::ser::{Error, SerializeSeq};
        let outline = self.0;
        let mut seq = serializer.serialize_seq(Some(outline.outline.files.len()))?;
        for file in 0..outline.outline.files.len() {
            seq.serialize_element(&outline.whole_entry(file).map_err(S::Error::custom)?)?;
        }
        seq.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A manifest of `files` files of `chunks` chunks each, with distinct ids.
    fn manifest(files: u32, per_file: u32) -> Manifest {
        let files = (0..files)
            .map(|f| {
                let chunks = (0..per_file)
                    .map(|c| ChunkRef {
                        id: ChunkId::of(&[f.to_le_bytes(), c.to_le_bytes()].concat()),
                        len: 65_536 + c,
                    })
                    .collect();
                let sha256 = ChunkId::of(&f.to_be_bytes()).to_hex();
                Entry {
                    path: format!("data/{f:04}.pak"),
                    order: f as u64,
                    kind: EntryKind::File { mode: 0o644, size: 65_536 * per_file as u64, sha256, chunks },
                }
            })
            .collect();
        Manifest { format: MANIFEST_FORMAT, files, warnings: vec![] }
    }

    #[test]
    fn a_streamed_manifest_holds_the_json_it_always_held_and_loads_back() {
        // 3 MB of JSON: more than one zstd block and window.
        let manifest = manifest(40, 800);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("manifest.zst");
        manifest.save(&path).unwrap();
        let json = zstd::stream::decode_all(&std::fs::read(&path).unwrap()[..]).unwrap();
        assert_eq!(json, serde_json::to_vec(&manifest).unwrap());
        let first = ChunkId::of(&[0u32.to_le_bytes(), 0u32.to_le_bytes()].concat()).to_hex();
        assert!(String::from_utf8(json).unwrap().contains(&format!(r#""chunks":[{{"id":"{first}","len":65536}}"#)));
        assert_eq!(Manifest::load(&path).unwrap(), manifest);

        // A manifest written whole and compressed in one shot (before streaming) still loads.
        std::fs::write(&path, zstd::bulk::compress(&serde_json::to_vec(&manifest).unwrap(), 3).unwrap()).unwrap();
        assert_eq!(Manifest::load(&path).unwrap(), manifest);
    }

    #[test]
    fn a_manifest_with_a_malformed_chunk_id_is_corrupt() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("manifest.zst");
        let json = serde_json::to_string(&manifest(1, 1)).unwrap();
        let id = ChunkId::of(&[0u32.to_le_bytes(), 0u32.to_le_bytes()].concat()).to_hex();
        // Upper-case hex spells the same bytes but is not the stored form.
        let bad = json.replace(&id, &id.to_uppercase());
        std::fs::write(&path, zstd::bulk::compress(bad.as_bytes(), 3).unwrap()).unwrap();
        match Manifest::load(&path) {
            Err(EngineError::Corrupt(message)) => assert!(message.contains("not a chunk id"), "{message}"),
            other => panic!("{other:?}"),
        }
    }
}
