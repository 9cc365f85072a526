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
//! the table costs 8 / 0.75 ≈ 10.7 to 8 / 0.375 ≈ 21.3 bytes a chunk.
//!
//! Open addressing with linear probing. A chunk's home slot is the top bits of its stored hash
//! (so the table can double without the keys, which it does not hold: each entry moves to the
//! home its stored hash gives in the larger table), and the hash is keyed per store
//! ([`RandomState`]), so a build cannot choose chunks that pile up in one probe run.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;

use super::index::Key;
use crate::engine::error::{EngineError, Result};

/// A free slot's record number.
const EMPTY: u32 = u32::MAX;
/// The smallest table (512 bytes).
const MIN_SLOTS: usize = 64;
/// Record numbers must stay below this: with the load kept at 3/4, the table then never needs
/// more than 2^32 slots, the most a 32-bit stored hash can address.
const MAX_RECORDS: u32 = 3 << 30;

/// How a key is hashed; only tests pass anything but the keyed SipHash.
pub type HashFn = fn(&RandomState, &Key) -> u64;

fn keyed_hash(keyed: &RandomState, key: &Key) -> u64 {
    keyed.hash_one(key)
}

pub struct DedupTable {
    /// Per slot: the high 32 bits of the key's hash (meaningless where the slot is free).
    hashes: Vec<u32>,
    /// Per slot: the number of the index record holding the key, or [`EMPTY`].
    records: Vec<u32>,
    len: usize,
    keyed: RandomState,
    hash: HashFn,
}

impl Default for DedupTable {
    fn default() -> DedupTable {
        DedupTable::with_hash(keyed_hash)
    }
}

impl std::fmt::Debug for DedupTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DedupTable").field("len", &self.len).field("slots", &self.records.len()).finish()
    }
}

impl DedupTable {
    /// An empty table hashing keys with `hash` (tests use a degenerate one to force collisions).
    pub fn with_hash(hash: HashFn) -> DedupTable {
        DedupTable {
            hashes: vec![0; MIN_SLOTS],
            records: vec![EMPTY; MIN_SLOTS],
            len: 0,
            keyed: RandomState::new(),
            hash,
        }
    }

    /// An empty table with the same hash function (the index was replaced).
    pub fn emptied(&self) -> DedupTable {
        DedupTable::with_hash(self.hash)
    }

    /// How many records (distinct keys) the table names.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Heap bytes the table holds.
    #[cfg(test)]
    pub fn allocated_bytes(&self) -> usize {
        self.hashes.capacity() * std::mem::size_of::<u32>() + self.records.capacity() * std::mem::size_of::<u32>()
    }

    fn stored_hash(&self, key: &Key) -> u32 {
        ((self.hash)(&self.keyed, key) >> 32) as u32
    }

    /// The home slot of `hash` in a table of `slots` (a power of two, at most 2^32) slots,
    /// then each following one.
    fn probe(hash: u32, slots: usize) -> impl Iterator<Item = usize> {
        let bits = slots.trailing_zeros();
        let home = if bits == 0 { 0 } else { (hash >> (32 - bits)) as usize };
        (0..slots).map(move |i| (home + i) & (slots - 1))
    }

    /// The record holding `key`, with what `read` returned for it. `read(n)` reads record `n`
    /// (its key and whatever else the caller wants back); only a record whose key is `key` is a
    /// hit, so a hash collision costs a read, never a wrong answer.
    pub fn find<T>(&self, key: &Key, mut read: impl FnMut(u32) -> Result<(Key, T)>) -> Result<Option<(u32, T)>> {
        let hash = self.stored_hash(key);
        for slot in Self::probe(hash, self.records.len()) {
            let record = self.records[slot];
            if record == EMPTY {
                return Ok(None);
            }
            if self.hashes[slot] == hash {
                let (found, value) = read(record)?;
                if found == *key {
                    return Ok(Some((record, value)));
                }
            }
        }
        Ok(None)
    }

    /// Whether the table names record `record`, which holds `key` (no read needed: a key is in
    /// the table once, under one record number). False for a later duplicate of the key.
    pub fn holds(&self, key: &Key, record: u32) -> bool {
        let hash = self.stored_hash(key);
        for slot in Self::probe(hash, self.records.len()) {
            match self.records[slot] {
                EMPTY => return false,
                r if r == record => return true,
                _ => {}
            }
        }
        false
    }

    /// Names record `record` for `key`, unless the table names one already (a duplicate in the
    /// index: the first record stays, both point to the same bytes). Returns whether it was added.
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
        if (self.len + 1) * 4 > self.records.len() * 3 {
            self.grow();
        }
        self.place(self.stored_hash(key), record);
        self.len += 1;
        Ok(true)
    }

    /// Doubles the table, moving every entry to its home (from its stored hash) in the new size.
    fn grow(&mut self) {
        let slots = self.records.len() * 2;
        let hashes = std::mem::replace(&mut self.hashes, vec![0; slots]);
        let records = std::mem::replace(&mut self.records, vec![EMPTY; slots]);
        for (hash, record) in hashes.into_iter().zip(records).filter(|(_, r)| *r != EMPTY) {
            self.place(hash, record);
        }
    }

    fn place(&mut self, hash: u32, record: u32) {
        // The load is kept below 3/4, so a free slot exists.
        if let Some(slot) = Self::probe(hash, self.records.len()).find(|&s| self.records[s] == EMPTY) {
            self.hashes[slot] = hash;
            self.records[slot] = record;
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
        let mut table = DedupTable::with_hash(hash);
        for r in 0..n {
            assert!(table.insert(&key(r), r.into(), read).unwrap());
        }
        table
    }

    fn assert_exact(table: &DedupTable, n: u32) {
        for r in 0..n {
            assert_eq!(table.find(&key(r), read).unwrap().map(|(found, _)| found), Some(r), "record {r}");
            assert!(table.holds(&key(r), r));
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
        assert!(table.holds(&key(3), 3) && !table.holds(&key(3), 10));
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
    fn the_table_holds_at_most_22_bytes_per_chunk_at_any_size() {
        let mut table = DedupTable::default();
        let mut worst = 0f64;
        for r in 0..190_000u32 {
            table.insert(&key(r), r.into(), read).unwrap();
            let n = r as usize + 1;
            if n >= MIN_SLOTS {
                worst = worst.max(table.allocated_bytes() as f64 / n as f64);
            }
        }
        // Just after a doubling 3/8 of the slots are used: 8 / 0.375 = 21.3 bytes a chunk.
        assert!(worst <= 22.0, "{worst} bytes per chunk");
        assert_eq!(table.allocated_bytes(), 262_144 * 8, "190 000 chunks fit 2^18 slots at 3/4");
    }
}
