//! Start-up traces (FastStart): which byte ranges of which files a game read while starting, in
//! first-access order. Launchers report them; the image writer puts the chunks they touch at the
//! front of the packs, so a launcher that fetches the first `preloadBytes` of the packs can start
//! the game before the rest of the build is there.

use std::collections::{HashMap, HashSet};

use serde::{Deserialize, Serialize};

use super::manifest::{ChunkRef, EntryKind, Manifest};
use super::store::ChunkId;

/// One read of a start-up trace: `len` bytes at `offset` of the build's file `path`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Read {
    pub path: String,
    pub offset: u64,
    pub len: u64,
}

/// Why a read does not fit the build.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BadRead {
    #[error("`{0}` is not a file of this build")]
    NoSuchFile(String),
    #[error("`{path}` has {size} bytes; a read of {len} bytes at {offset} goes past its end")]
    PastEnd { path: String, size: u64, offset: u64, len: u64 },
    #[error("a read of `{0}` has length 0")]
    Empty(String),
}

/// The regular files of a build by path.
fn files(manifest: &Manifest) -> HashMap<&str, (u64, &[ChunkRef])> {
    manifest
        .files
        .iter()
        .filter_map(|e| match &e.kind {
            EntryKind::File { size, chunks, .. } => Some((e.path.as_str(), (*size, chunks.as_slice()))),
            _ => None,
        })
        .collect()
}

/// Checks that every read names a regular file of the build and stays inside it; the error
/// carries the position of the first read that does not.
pub fn check(manifest: &Manifest, reads: &[Read]) -> Result<(), (usize, BadRead)> {
    let files = files(manifest);
    for (n, read) in reads.iter().enumerate() {
        let Some(&(size, _)) = files.get(read.path.as_str()) else {
            return Err((n, BadRead::NoSuchFile(read.path.clone())));
        };
        if read.len == 0 {
            return Err((n, BadRead::Empty(read.path.clone())));
        }
        if read.offset.checked_add(read.len).is_none_or(|end| end > size) {
            let (path, offset, len) = (read.path.clone(), read.offset, read.len);
            return Err((n, BadRead::PastEnd { path, size, offset, len }));
        }
    }
    Ok(())
}

/// Merges several traces of one build into one first-access order: every distinct read once,
/// ordered by the earliest position at which any trace made it (ties: the older trace first).
/// A read that any launcher needed early stays early; reads only some launchers make still
/// count as start-up reads, so the preload covers every launcher that sent a trace.
pub fn merge(traces: &[Vec<Read>]) -> Vec<Read> {
    let mut rank: HashMap<&Read, (usize, usize)> = HashMap::new();
    for (t, trace) in traces.iter().enumerate() {
        for (position, read) in trace.iter().enumerate() {
            let key = (position, t);
            rank.entry(read).and_modify(|r| *r = (*r).min(key)).or_insert(key);
        }
    }
    let mut merged: Vec<(&Read, (usize, usize))> = rank.into_iter().collect();
    merged.sort_by(|a, b| a.1.cmp(&b.1).then_with(|| a.0.path.cmp(&b.0.path)).then(a.0.offset.cmp(&b.0.offset)));
    merged.into_iter().map(|(read, _)| read.clone()).collect()
}

/// The chunks the reads touch, each once, in first-access order, and the files they touch in
/// first-access order. Reads of unknown paths or past a file's end touch what exists of them.
pub fn touched<'m>(manifest: &'m Manifest, reads: &[Read]) -> (Vec<&'m ChunkRef>, Vec<&'m str>) {
    let files = files(manifest);
    let mut chunk_seen: HashSet<&ChunkId> = HashSet::new();
    let mut file_seen: HashSet<&str> = HashSet::new();
    let (mut chunks, mut paths) = (Vec::new(), Vec::new());
    for read in reads {
        let Some((path, &(_, refs))) = files.get_key_value(read.path.as_str()) else { continue };
        if file_seen.insert(path) {
            paths.push(*path);
        }
        let end = read.offset.saturating_add(read.len);
        let mut at = 0u64;
        for r in refs {
            let next = at + r.len as u64;
            if next > read.offset && at < end && chunk_seen.insert(&r.id) {
                chunks.push(r);
            }
            if next >= end {
                break;
            }
            at = next;
        }
    }
    (chunks, paths)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::manifest::{Entry, MANIFEST_FORMAT};

    fn id(n: u8) -> ChunkId {
        ChunkId::of(&[n])
    }

    fn file(path: &str, order: u64, chunks: &[(u8, u32)]) -> Entry {
        let refs: Vec<ChunkRef> = chunks.iter().map(|&(n, len)| ChunkRef { id: id(n), len }).collect();
        let size = refs.iter().map(|r| r.len as u64).sum();
        Entry {
            path: path.into(),
            order,
            kind: EntryKind::File { mode: 0o644, size, sha256: String::new(), chunks: refs },
        }
    }

    fn manifest() -> Manifest {
        Manifest {
            format: MANIFEST_FORMAT,
            files: vec![
                file("a", 0, &[(1, 100), (2, 100), (3, 100)]),
                file("b", 1, &[(4, 50), (2, 100)]),
                Entry { path: "d".into(), order: 2, kind: EntryKind::Dir { mode: 0o755 } },
            ],
            warnings: Vec::new(),
        }
    }

    fn read(path: &str, offset: u64, len: u64) -> Read {
        Read { path: path.into(), offset, len }
    }

    #[test]
    fn reads_touch_the_chunks_they_overlap_in_first_access_order() {
        let m = manifest();
        let (chunks, paths) = touched(&m, &[read("b", 60, 10), read("a", 150, 100), read("b", 0, 1)]);
        let ids: Vec<&ChunkId> = chunks.iter().map(|c| &c.id).collect();
        assert_eq!(ids, vec![&id(2), &id(3), &id(4)]);
        assert_eq!(paths, vec!["b", "a"]);
    }

    #[test]
    fn a_read_ending_on_a_chunk_boundary_does_not_touch_the_next_chunk() {
        let m = manifest();
        let (chunks, _) = touched(&m, &[read("a", 0, 100)]);
        assert_eq!(chunks.iter().map(|c| &c.id).collect::<Vec<_>>(), vec![&id(1)]);
    }

    #[test]
    fn reads_outside_the_build_are_refused_with_their_position() {
        let m = manifest();
        assert_eq!(check(&m, &[read("a", 0, 300)]), Ok(()));
        assert_eq!(check(&m, &[read("a", 0, 1), read("zz", 0, 1)]), Err((1, BadRead::NoSuchFile("zz".into()))));
        assert_eq!(check(&m, &[read("d", 0, 1)]), Err((0, BadRead::NoSuchFile("d".into()))));
        assert!(matches!(check(&m, &[read("a", 250, 51)]), Err((0, BadRead::PastEnd { size: 300, .. }))));
        assert!(matches!(check(&m, &[read("a", u64::MAX, 2)]), Err((0, BadRead::PastEnd { .. }))));
        assert_eq!(check(&m, &[read("a", 0, 0)]), Err((0, BadRead::Empty("a".into()))));
    }

    #[test]
    fn merged_traces_keep_each_read_once_at_its_earliest_position() {
        let first = vec![read("a", 0, 1), read("b", 0, 1), read("a", 200, 1)];
        let second = vec![read("a", 200, 1), read("a", 0, 1)];
        assert_eq!(merge(&[first, second]), vec![read("a", 0, 1), read("a", 200, 1), read("b", 0, 1)]);
    }
}
