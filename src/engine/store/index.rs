//! The chunk index: an append-only log that says where each stored chunk lives (segment,
//! offset, length, codec). A file header, then one fixed-size record per chunk, each with its
//! own checksum, so a record torn by a crash is recognised and dropped with everything after it.
//! Records are appended only after the segment bytes they point to are durable, which is what
//! makes "a chunk id never points to torn bytes" hold across crashes.

use std::fs::File;
use std::os::unix::fs::FileExt;

use super::Codec;
use crate::engine::error::{EngineError, Result};

/// The file's first bytes: the index format (a change of record layout gets a new one).
pub const MAGIC: &[u8; 8] = b"rkchidx1";
/// id 32 + segment 4 + offset 8 + stored length 4 + codec 1 + reserved 7 + checksum 8.
pub const RECORD_LEN: usize = 64;
const CHECKED_LEN: usize = RECORD_LEN - 8;

/// A chunk's raw SHA-256 (the hex `ChunkId` decoded): the index's key.
pub type Key = [u8; 32];

/// Where a chunk's stored bytes are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Loc {
    pub segment: u32,
    pub offset: u64,
    pub len: u32,
    pub codec: Codec,
}

/// FNV-1a, 64 bits: detects a torn or damaged record (not an adversary: the store is local).
fn checksum(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| (h ^ b as u64).wrapping_mul(0x0100_0000_01b3))
}

pub fn encode(key: &Key, loc: &Loc) -> [u8; RECORD_LEN] {
    let mut rec = [0u8; RECORD_LEN];
    rec[..32].copy_from_slice(key);
    rec[32..36].copy_from_slice(&loc.segment.to_le_bytes());
    rec[36..44].copy_from_slice(&loc.offset.to_le_bytes());
    rec[44..48].copy_from_slice(&loc.len.to_le_bytes());
    rec[48] = loc.codec.byte();
    let sum = checksum(&rec[..CHECKED_LEN]);
    rec[CHECKED_LEN..].copy_from_slice(&sum.to_le_bytes());
    rec
}

/// Where record number `n` starts in the index file.
pub fn record_offset(n: u32) -> u64 {
    MAGIC.len() as u64 + n as u64 * RECORD_LEN as u64
}

/// The number of the record starting at `offset` (a record boundary after the header).
pub fn record_number(offset: u64) -> u64 {
    offset.saturating_sub(MAGIC.len() as u64) / RECORD_LEN as u64
}

/// Record number `n` of the index file `file`: one `pread`. The record was whole when the
/// index was read, so a record that no longer decodes means the file was damaged since.
pub fn read_record(file: &File, n: u32) -> Result<(Key, Loc)> {
    let mut rec = [0u8; RECORD_LEN];
    file.read_exact_at(&mut rec, record_offset(n)).map_err(|e| match e.kind() {
        std::io::ErrorKind::UnexpectedEof => EngineError::Corrupt(format!("the chunk index lost its record {n}")),
        _ => EngineError::Io { context: format!("read record {n} of the chunk index"), source: e },
    })?;
    decode(&rec).ok_or_else(|| EngineError::Corrupt(format!("record {n} of the chunk index is damaged")))
}

/// One record, or `None` when its checksum or codec is wrong (torn or damaged).
fn decode(rec: &[u8]) -> Option<(Key, Loc)> {
    let field = |range: std::ops::Range<usize>| rec.get(range);
    let sum = u64::from_le_bytes(field(CHECKED_LEN..RECORD_LEN)?.try_into().ok()?);
    if rec.len() != RECORD_LEN || checksum(&rec[..CHECKED_LEN]) != sum {
        return None;
    }
    let key: Key = field(0..32)?.try_into().ok()?;
    let loc = Loc {
        segment: u32::from_le_bytes(field(32..36)?.try_into().ok()?),
        offset: u64::from_le_bytes(field(36..44)?.try_into().ok()?),
        len: u32::from_le_bytes(field(44..48)?.try_into().ok()?),
        codec: Codec::from_byte(rec[48])?,
    };
    Some((key, loc))
}

/// The records in `bytes`, the part of an index file that starts at byte `start` (0: the whole
/// file, header included). Stops at the first torn or damaged record; the second value is how
/// many bytes of `bytes` were whole records (plus the header), i.e. where the valid log ends.
pub fn parse(bytes: &[u8], start: u64) -> Result<(Vec<(Key, Loc)>, u64)> {
    let mut at = 0usize;
    if start == 0 {
        if bytes.len() < MAGIC.len() {
            // A header a crash cut short: an empty index.
            return match MAGIC.starts_with(bytes) {
                true => Ok((Vec::new(), 0)),
                false => Err(EngineError::Corrupt("the chunk index has no valid header".into())),
            };
        }
        if &bytes[..MAGIC.len()] != MAGIC {
            return Err(EngineError::Corrupt("the chunk index has an unknown format".into()));
        }
        at = MAGIC.len();
    }
    let mut records = Vec::with_capacity((bytes.len() - at) / RECORD_LEN);
    while let Some(rec) = bytes.get(at..at + RECORD_LEN) {
        match decode(rec) {
            Some(entry) => records.push(entry),
            None => break,
        }
        at += RECORD_LEN;
    }
    Ok((records, at as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn loc(n: u64) -> Loc {
        Loc { segment: 1, offset: n * 100, len: 100, codec: Codec::Zstd }
    }

    #[test]
    fn a_torn_or_damaged_record_ends_the_log() {
        let mut file = MAGIC.to_vec();
        for n in 0..3u8 {
            file.extend_from_slice(&encode(&[n; 32], &loc(n as u64)));
        }
        let (all, end) = parse(&file, 0).unwrap();
        assert_eq!((all.len(), end), (3, file.len() as u64));
        assert_eq!(all[2], ([2; 32], loc(2)));

        // A crash in the middle of the last append.
        let torn = &file[..file.len() - 10];
        assert_eq!(parse(torn, 0).unwrap().1, (MAGIC.len() + 2 * RECORD_LEN) as u64);
        // A flipped bit in the second record hides it and the third.
        let mut damaged = file.clone();
        damaged[MAGIC.len() + RECORD_LEN + 40] ^= 1;
        assert_eq!(parse(&damaged, 0).unwrap().0.len(), 1);
        // Read from the middle (a reader catching up with appends).
        let tail = &file[MAGIC.len() + RECORD_LEN..];
        assert_eq!(parse(tail, (MAGIC.len() + RECORD_LEN) as u64).unwrap().0.len(), 2);
    }

    #[test]
    fn a_file_that_is_not_a_chunk_index_is_refused_and_a_torn_header_is_empty() {
        assert!(parse(b"something else entirely", 0).is_err());
        assert_eq!(parse(&MAGIC[..3], 0).unwrap(), (Vec::new(), 0));
    }
}
