//! A build's chunk lists on disk while it is being made: one 36-byte record per chunk reference
//! (32-byte id, 4-byte length), in an anonymous temporary file that vanishes with its handle, or
//! with the process if it crashes.
//!
//! Why: held in memory, the chunk lists of a manifest cost 36 bytes per chunk for as long as
//! mkraw runs (3.7 MiB at 8 GiB, 37 MiB at 80 GiB), which made an import's memory grow with the
//! build. On disk they cost one read per file when the manifest is saved and when the image is
//! written, served from the page cache.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::os::unix::fs::FileExt;
use std::path::Path;

use super::error::{EngineError, IoContext, Result};
use super::manifest::ChunkRef;
use super::store::ChunkId;

const RECORD_LEN: usize = 36;

/// Where one file's chunk list is in a [`ChunkLists`] file: `count` records from record `start`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Span {
    pub start: u64,
    pub count: u32,
}

/// Chunk lists being written (during an import). [`ListWriter::finish`] makes them readable.
pub struct ListWriter {
    out: BufWriter<File>,
    records: u64,
}

impl ListWriter {
    /// A new, empty list file in `dir` (a directory on the disk the lists may use: the app's
    /// chunk store).
    pub fn create_in(dir: &Path) -> Result<ListWriter> {
        let file = tempfile::tempfile_in(dir).ctx(|| format!("create a temporary file in {}", dir.display()))?;
        Ok(ListWriter { out: BufWriter::with_capacity(64 << 10, file), records: 0 })
    }

    /// Appends one file's chunk list; its place in the file comes back.
    pub fn push(&mut self, chunks: &[ChunkRef]) -> Result<Span> {
        let start = self.records;
        for chunk in chunks {
            let mut record = [0u8; RECORD_LEN];
            record[..32].copy_from_slice(&chunk.id.0);
            record[32..].copy_from_slice(&chunk.len.to_le_bytes());
            self.out.write_all(&record).ctx(|| "write a chunk list".to_string())?;
        }
        self.records += chunks.len() as u64;
        let count = u32::try_from(chunks.len()).map_err(|_| EngineError::Invalid("a file of 2³² chunks".into()))?;
        Ok(Span { start, count })
    }

    pub fn finish(self) -> Result<ChunkLists> {
        let file = self
            .out
            .into_inner()
            .map_err(|e| EngineError::Io { context: "write a chunk list".into(), source: e.into_error() })?;
        Ok(ChunkLists { file, records: self.records })
    }
}

/// Chunk lists written by a [`ListWriter`], read back one file's list at a time.
pub struct ChunkLists {
    file: File,
    records: u64,
}

impl ChunkLists {
    /// The chunk list at `span`.
    pub fn read(&self, span: Span) -> Result<Vec<ChunkRef>> {
        if span.start + span.count as u64 > self.records {
            return Err(EngineError::Invalid(format!("chunk list {span:?} past the {} written", self.records)));
        }
        let mut bytes = vec![0u8; span.count as usize * RECORD_LEN];
        self.file.read_exact_at(&mut bytes, span.start * RECORD_LEN as u64).ctx(|| "read a chunk list".to_string())?;
        Ok(bytes
            .chunks_exact(RECORD_LEN)
            .map(|record| {
                let mut id = [0u8; 32];
                id.copy_from_slice(&record[..32]);
                let mut len = [0u8; 4];
                len.copy_from_slice(&record[32..]);
                ChunkRef { id: ChunkId(id), len: u32::from_le_bytes(len) }
            })
            .collect())
    }

    /// How many chunk references all lists hold together.
    pub fn records(&self) -> u64 {
        self.records
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(seed: u32, n: u32) -> Vec<ChunkRef> {
        (0..n)
            .map(|i| ChunkRef { id: ChunkId::of(&[seed, i].map(u32::to_le_bytes).concat()), len: seed * 1000 + i })
            .collect()
    }

    #[test]
    fn every_list_reads_back_as_it_was_pushed_and_an_empty_one_is_empty() {
        let dir = tempfile::tempdir().unwrap();
        let mut writer = ListWriter::create_in(dir.path()).unwrap();
        let spans: Vec<Span> =
            [3, 0, 1, 2000].iter().enumerate().map(|(s, &n)| writer.push(&list(s as u32, n)).unwrap()).collect();
        let lists = writer.finish().unwrap();
        assert_eq!(lists.records(), 2004);
        for (s, (&n, span)) in [3, 0, 1, 2000].iter().zip(&spans).enumerate() {
            assert_eq!(lists.read(*span).unwrap(), list(s as u32, n));
        }
        assert!(lists.read(Span { start: 2000, count: 5 }).is_err());
        // Anonymous: nothing is left in the directory, even while the lists are open.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn a_list_that_cannot_be_written_is_an_io_error_not_a_lost_list() {
        // /dev/full answers every write with ENOSPC, as a full disk does.
        let full = std::fs::OpenOptions::new().write(true).open("/dev/full").unwrap();
        let mut writer = ListWriter { out: BufWriter::with_capacity(64 << 10, full), records: 0 };
        // More than the buffer holds, so a push itself reaches the disk.
        let error = (0..10).map(|s| writer.push(&list(s, 500))).find_map(Result::err);
        match error {
            Some(EngineError::Io { context, source }) => {
                assert_eq!(context, "write a chunk list");
                assert_eq!(source.raw_os_error(), Some(libc::ENOSPC));
            }
            other => panic!("expected an I/O error, got {other:?}"),
        }
    }
}
