//! The store's dedup table: which index record holds a chunk, in 8 bytes a slot.
//!
//! Why not a map from key to location: such a map (32-byte key, 24-byte `Loc`, hashbrown's
//! control byte and spare buckets: ~69 bytes a chunk) covers every chunk of every retained build
//! of the app, for as long as a store is open, and so grew with every build size; at 8 GiB of
//! chunks it was 7 MiB. The index file already holds each key with its location, so a slot here
//! keeps only what is needed to find the record: 32 bits of the key's hash and the record's
//! number. A lookup reads the record (64 bytes, a `pread` normally served by the page cache) and
//! compares the whole key: a hash match alone is never taken as a hit, since a false hit would
//! put a wrong chunk into a build. With at most 3/4 of the slots used (doubling when fuller),
//! the table costs 8 / 0.75 ≈ 10.7 to 8 / 0.375 ≈ 21.3 bytes a chunk, and those bytes are
//! not in the heap: the slots are in an unnamed file beside the index ([`DiskSlots`]), so the
//! server's resident memory does not grow with the store.
//!
//! Open addressing with linear probing. A chunk's home slot is the top bits of its stored hash
//! (so the table can double without the keys, which it does not hold: each entry moves to the
//! home its stored hash gives in the larger table), and the hash is keyed per store
//! ([`RandomState`]), so a build cannot choose chunks that pile up in one probe run.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::path::{Path, PathBuf};

use super::index::Key;
use crate::engine::error::{EngineError, Result};
use crate::engine::slots::DiskSlots;

/// The smallest table (512 bytes).
const MIN_SLOTS: usize = 64;
/// Record numbers must stay below this: with the load kept at 3/4, the table then never needs
/// more than 2^32 slots, the most a 32-bit stored hash can address.
const MAX_RECORDS: u32 = 3 << 30;

/// How a key is hashed; only tests pass anything but the keyed SipHash.
pub type HashFn = fn(&RandomState, &Key) -> u64;

pub fn keyed_hash(keyed: &RandomState, key: &Key) -> u64 {
    keyed.hash_one(key)
}

/// A slot's word: the stored hash in the high half, the record number plus one in the low half
/// (so a free slot, all zeros, names no record).
fn word(hash: u32, record: u32) -> u64 {
    (u64::from(hash) << 32) | (u64::from(record) + 1)
}

fn unpack(word: u64) -> (u32, u32) {
    ((word >> 32) as u32, (word as u32).wrapping_sub(1))
}

pub struct DedupTable {
    /// Where the slots' file is created: the store's directory.
    dir: PathBuf,
    /// `None` until the first record: an empty store creates no file.
    slots: Option<DiskSlots>,
    len: usize,
    keyed: RandomState,
    hash: HashFn,
}

impl std::fmt::Debug for DedupTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DedupTable").field("len", &self.len).field("slots", &self.slot_count()).finish()
    }
}

impl DedupTable {
    /// An empty table whose slots will live in `dir`, hashing keys with `hash` (tests use a
    /// degenerate one to force collisions).
    pub fn new(dir: &Path, hash: HashFn) -> DedupTable {
        DedupTable { dir: dir.to_path_buf(), slots: None, len: 0, keyed: RandomState::new(), hash }
    }

    /// An empty table with the same directory and hash function (the index was replaced).
    pub fn emptied(&self) -> DedupTable {
        DedupTable::new(&self.dir, self.hash)
    }

    /// How many records (distinct keys) the table names.
    pub fn len(&self) -> usize {
        self.len
    }

    fn slot_count(&self) -> usize {
        self.slots.as_ref().map_or(0, DiskSlots::len)
    }

    /// Bytes of slots (on disk, not in the heap).
    #[cfg(test)]
    pub fn slot_bytes(&self) -> usize {
        self.slot_count() * std::mem::size_of::<u64>()
    }

    fn stored_hash(&self, key: &Key) -> u32 {
        ((self.hash)(&self.keyed, key) >> 32) as u32
    }

    /// The home slot of a stored hash in a table of `slots` (a power of two): its top bits.
    fn home(hash: u32, slots: usize) -> usize {
        let bits = slots.trailing_zeros();
        if bits == 0 {
            0
        } else {
            (hash >> (32 - bits)) as usize
        }
    }

    /// The record holding `key` and what `read` made of it. `read(record)` returns the record's
    /// key (compared with `key`: a hash match alone is not a hit) and value.
    pub fn find<T>(&self, key: &Key, mut read: impl FnMut(u32) -> Result<(Key, T)>) -> Result<Option<(u32, T)>> {
        let Some(slots) = self.slots.as_ref() else {
            return Ok(None);
        };
        let hash = self.stored_hash(key);
        let found = slots.probe(Self::home(hash, slots.len()), |_, w| {
            if w == 0 {
                return Ok(Some(None));
            }
            let (stored, record) = unpack(w);
            if stored == hash {
                let (found, value) = read(record)?;
                if found == *key {
                    return Ok(Some(Some((record, value))));
                }
            }
            Ok(None)
        })?;
        Ok(found.flatten())
    }

    /// Makes room for `more` records beyond the current ones at once: the store knows how many
    /// records an index has before reading them, and growing by doubling would move every slot
    /// once per doubling.
    pub fn reserve(&mut self, more: usize) -> Result<()> {
        let wanted = self.len + more;
        let mut slots = self.slot_count().max(MIN_SLOTS);
        while wanted * 4 > slots * 3 {
            slots *= 2;
        }
        if slots > self.slot_count() {
            self.resize(slots)?;
        }
        Ok(())
    }

    /// Records that index record `record` holds `key`, unless the table already names a record
    /// for it (a key indexed twice keeps its first record). Returns whether it was added.
    pub fn insert<T>(&mut self, key: &Key, record: u64, read: impl FnMut(u32) -> Result<(Key, T)>) -> Result<bool> {
        let record = match u32::try_from(record) {
            Ok(r) if r < MAX_RECORDS => r,
            _ => {
                return Err(EngineError::Invalid(format!(
                    "the chunk index holds more than {MAX_RECORDS} records, more than the store can address"
                )))
            }
        };
        if self.find(key, read)?.is_some() {
            return Ok(false);
        }
        self.reserve(1)?;
        if let Some(slots) = self.slots.as_ref() {
            Self::place(slots, word(self.stored_hash(key), record))?;
        }
        self.len += 1;
        Ok(true)
    }

    /// Moves the table into `count` slots (a power of two, more than it has).
    fn resize(&mut self, count: usize) -> Result<()> {
        let bigger = DiskSlots::new(&self.dir, count, "chunk store's dedup table")?;
        if let Some(old) = self.slots.as_ref() {
            old.each_used(|w| Self::place(&bigger, w))?;
        }
        self.slots = Some(bigger);
        Ok(())
    }

    fn place(slots: &DiskSlots, w: u64) -> Result<()> {
        let free = slots.probe(Self::home(unpack(w).0, slots.len()), |slot, used| Ok((used == 0).then_some(slot)))?;
        match free {
            Some(slot) => slots.set(slot, w),
            None => Err(EngineError::Invalid("the chunk store's dedup table is full".into())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Keys `n` for record `n`: a stand-in for the index file.
    fn key(n: u32) -> Key {
        let mut k = [0u8; 32];
        k[..4].copy_from_slice(&n.to_le_bytes());
        k[31] = 0xa5;
        k
    }

    fn read(n: u32) -> Result<(Key, ())> {
        Ok((key(n), ()))
    }

    fn filled(hash: HashFn, n: u32) -> DedupTable {
        let mut table = DedupTable::new(&std::env::temp_dir(), hash);
        for r in 0..n {
            assert!(table.insert(&key(r), r.into(), read).unwrap());
        }
        table
    }

    fn assert_exact(table: &DedupTable, n: u32) {
        for r in 0..n {
            assert_eq!(table.find(&key(r), read).unwrap().map(|(found, _)| found), Some(r), "record {r}");
        }
        for absent in n..n + 50 {
            assert_eq!(table.find(&key(absent), read).unwrap().map(|(found, _)| found), None);
        }
    }

    #[test]
    fn keys_whose_hashes_all_collide_are_still_found_exactly() {
        // Every key has the same home slot and the same stored hash: only the key read back
        // tells records apart.
        let table = filled(|_, _| 0x1234_5678_9abc_def0, 300);
        assert_exact(&table, 300);
    }

    #[test]
    fn keys_sharing_a_stored_hash_but_not_a_home_stay_exact() {
        // Equal stored hashes in neighbouring runs, across several doublings.
        let table = filled(|_, k| u64::from(k[0] & 3) << 62, 1000);
        assert_exact(&table, 1000);
    }

    #[test]
    fn keyed_tables_find_every_record_across_doublings() {
        let table = filled(keyed_hash, 20_000);
        assert_exact(&table, 20_000);
    }

    #[test]
    fn a_key_indexed_twice_keeps_its_first_record() {
        let mut table = filled(keyed_hash, 10);
        // Record 10 repeats record 3's key.
        let read_dup = |n: u32| Ok((key(if n == 10 { 3 } else { n }), ()));
        assert!(!table.insert(&key(3), 10, read_dup).unwrap());
        assert_eq!(table.len(), 10);
        assert_eq!(table.find(&key(3), read_dup).unwrap().map(|(found, _)| found), Some(3));
    }

    #[test]
    fn a_record_number_beyond_what_the_table_addresses_is_refused() {
        let mut table = filled(keyed_hash, 3);
        for too_far in [u64::from(MAX_RECORDS), u64::from(u32::MAX), 1 << 40] {
            assert!(matches!(table.insert(&key(9), too_far, read), Err(EngineError::Invalid(_))));
        }
        assert_eq!(table.len(), 3);
    }

    #[test]
    fn a_failing_read_is_an_error_not_a_miss() {
        let table = filled(|_, _| 7, 3);
        let failing = |_| Err(EngineError::Corrupt("damaged".into()));
        assert!(table.find::<()>(&key(1), failing).is_err());
    }

    #[test]
    fn the_tables_slots_take_at_most_22_bytes_per_chunk_at_any_size_and_none_of_the_heap() {
        let mut table = DedupTable::new(&std::env::temp_dir(), keyed_hash);
        let mut worst = 0f64;
        for r in 0..190_000u32 {
            table.insert(&key(r), r.into(), read).unwrap();
            let n = r as usize + 1;
            if n >= MIN_SLOTS {
                worst = worst.max(table.slot_bytes() as f64 / n as f64);
            }
        }
        // Just after a doubling 3/8 of the slots are used: 8 / 0.375 = 21.3 bytes a chunk.
        assert!(worst <= 22.0, "{worst} bytes per chunk");
        assert_eq!(table.slot_bytes(), 262_144 * 8, "190 000 chunks fit 2^18 slots at 3/4");
        // The slots are the file's, not a Vec's: the table itself is a few words.
        assert!(std::mem::size_of::<DedupTable>() < 128);
    }

    #[test]
    fn an_empty_table_creates_no_file_and_a_reserved_one_never_moves() {
        let dir = tempfile::tempdir().unwrap();
        let mut table = DedupTable::new(dir.path(), keyed_hash);
        assert_eq!(table.slot_bytes(), 0);
        assert_eq!(table.find(&key(1), read).unwrap().map(|(r, _)| r), None);
        table.reserve(30_000).unwrap();
        let reserved = table.slot_bytes();
        assert_eq!(reserved, 65_536 * 8, "30 000 records fit 2^16 slots at 3/4");
        for r in 0..30_000u32 {
            table.insert(&key(r), r.into(), read).unwrap();
        }
        assert_eq!(table.slot_bytes(), reserved);
        assert_exact(&table, 30_000);
        // Unnamed: nothing in the directory, during or after.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
