//! The slots of an open-addressing hash table, kept in an unnamed temporary file instead of the
//! heap: the engine's two per-chunk tables (the chunk store's dedup table and the image's
//! placement table) would otherwise be the only part of an import's memory that grows with the
//! build (8 bytes a slot: 4 MiB at 8 GiB, 40 at 80 GiB). Read and written with `pread` and
//! `pwrite`, the slots live in the page cache, which the kernel can write back and reclaim under
//! pressure, rather than in the process's resident memory, which it cannot; a lookup costs a
//! system call or two (~1 µs against the ~250 µs it takes to compress the 64 KiB chunk it is
//! for). The file is created in the directory the table serves (never `/tmp`, often a RAM disk)
//! with `O_TMPFILE` where available, so it has no name and nothing is left behind by a crash.
//!
//! A slot is a `u64` word; `0` marks a free one, so a new table is a sparse file of zeros.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;

use super::error::{IoContext, Result};

const WORD: usize = std::mem::size_of::<u64>();
/// Slots read at once while probing: one 64-byte `pread` covers a typical probe run.
const PROBE_READ: usize = 8;
/// Slots read at once when walking the whole table (to move it into a larger one).
const WALK_READ: usize = 8192;

pub struct DiskSlots {
    file: File,
    len: usize,
    /// What the table is, for error messages.
    what: &'static str,
}

impl DiskSlots {
    /// `len` free slots in a new temporary file in `dir`.
    pub fn new(dir: &Path, len: usize, what: &'static str) -> Result<DiskSlots> {
        let file = tempfile::tempfile_in(dir).ctx(|| format!("create the {what} in {}", dir.display()))?;
        file.set_len((len * WORD) as u64).ctx(|| format!("size the {what}"))?;
        Ok(DiskSlots { file, len, what })
    }

    /// How many slots there are (a table always has some).
    #[allow(clippy::len_without_is_empty)]
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn set(&self, slot: usize, word: u64) -> Result<()> {
        self.file.write_all_at(&word.to_le_bytes(), (slot * WORD) as u64).ctx(|| format!("write the {}", self.what))
    }

    /// Visits the slots from `home` on, wrapping around, until `visit` returns an answer (or
    /// every slot was seen: `None`). `visit` gets each slot's number and word.
    pub fn probe<T>(&self, home: usize, mut visit: impl FnMut(usize, u64) -> Result<Option<T>>) -> Result<Option<T>> {
        let mut buf = [0u8; PROBE_READ * WORD];
        let (mut at, mut seen) = (home % self.len.max(1), 0);
        while seen < self.len {
            let n = PROBE_READ.min(self.len - at).min(self.len - seen);
            let bytes = &mut buf[..n * WORD];
            self.file.read_exact_at(bytes, (at * WORD) as u64).ctx(|| format!("read the {}", self.what))?;
            for (i, word) in bytes.chunks_exact(WORD).enumerate() {
                if let Some(answer) = visit(at + i, u64::from_le_bytes(word.try_into().unwrap_or_default()))? {
                    return Ok(Some(answer));
                }
            }
            seen += n;
            at = (at + n) % self.len;
        }
        Ok(None)
    }

    /// Calls `each` with every used slot's word, in slot order, reading the file in large
    /// pieces.
    pub fn each_used(&self, mut each: impl FnMut(u64) -> Result<()>) -> Result<()> {
        let mut buf = vec![0u8; WALK_READ * WORD];
        let mut at = 0;
        while at < self.len {
            let n = WALK_READ.min(self.len - at);
            let bytes = &mut buf[..n * WORD];
            self.file.read_exact_at(bytes, (at * WORD) as u64).ctx(|| format!("read the {}", self.what))?;
            for word in bytes.chunks_exact(WORD).map(|w| u64::from_le_bytes(w.try_into().unwrap_or_default())) {
                if word != 0 {
                    each(word)?;
                }
            }
            at += n;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn used_words(slots: &DiskSlots) -> Vec<u64> {
        let mut used = Vec::new();
        slots
            .each_used(|w| {
                used.push(w);
                Ok(())
            })
            .unwrap();
        used
    }

    #[test]
    fn a_new_table_is_free_everywhere_and_keeps_what_is_written() {
        let dir = tempfile::tempdir().unwrap();
        let slots = DiskSlots::new(dir.path(), 20, "test table").unwrap();
        assert_eq!(slots.probe(0, |_, w| Ok((w != 0).then_some(w))).unwrap(), None);
        slots.set(19, 7).unwrap();
        slots.set(3, 9).unwrap();
        // From slot 17 the probe wraps: 17, 18, 19 (found).
        assert_eq!(slots.probe(17, |i, w| Ok((w != 0).then_some((i, w)))).unwrap(), Some((19, 7)));
        // From 5 it runs past the end and finds slot 3 after wrapping.
        assert_eq!(slots.probe(5, |i, w| Ok((w != 0 && i < 10).then_some(i))).unwrap(), Some(3));
        let used = used_words(&slots);
        assert_eq!(used, vec![9, 7]);
        // The table is no file in the directory.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn a_probe_visits_every_slot_once_and_then_gives_up() {
        let dir = tempfile::tempdir().unwrap();
        let slots = DiskSlots::new(dir.path(), 21, "test table").unwrap();
        let mut visited = Vec::new();
        let found: Option<()> = slots
            .probe(13, |i, _| {
                visited.push(i);
                Ok(None)
            })
            .unwrap();
        assert_eq!(found, None);
        visited.sort_unstable();
        assert_eq!(visited, (0..21).collect::<Vec<_>>());
    }

    #[test]
    fn a_walk_spans_several_reads() {
        let dir = tempfile::tempdir().unwrap();
        let slots = DiskSlots::new(dir.path(), WALK_READ * 2 + 5, "test table").unwrap();
        for i in [0, WALK_READ - 1, WALK_READ, 2 * WALK_READ + 4] {
            slots.set(i, i as u64 + 1).unwrap();
        }
        let used = used_words(&slots);
        assert_eq!(used, vec![1, WALK_READ as u64, WALK_READ as u64 + 1, 2 * WALK_READ as u64 + 5]);
    }
}
