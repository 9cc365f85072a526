use super::*;

/// Every file below `root`, as paths relative to it.
fn files(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut dirs = vec![root.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in fs::read_dir(&dir).unwrap() {
            let entry = entry.unwrap();
            if entry.file_type().unwrap().is_dir() {
                dirs.push(entry.path());
            } else {
                out.push(entry.path().strip_prefix(root).unwrap().to_string_lossy().into_owned());
            }
        }
    }
    out.sort();
    out
}

fn stored(store: &ChunkStore, raw: &[u8]) -> ChunkId {
    let id = ChunkId::of(raw);
    store.put(&id, raw).unwrap();
    id
}

fn manifest_of(ids: &[&ChunkId]) -> crate::engine::manifest::Manifest {
    use crate::engine::manifest::{ChunkRef, Entry, EntryKind, Manifest, MANIFEST_FORMAT};
    let chunks = ids.iter().map(|id| ChunkRef { id: (*id).clone(), len: 1 }).collect();
    let kind = EntryKind::File { mode: 0o644, size: ids.len() as u64, sha256: String::new(), chunks };
    Manifest { format: MANIFEST_FORMAT, files: vec![Entry { path: "f".into(), order: 0, kind }], warnings: vec![] }
}

/// A v1 chunk file as earlier versions wrote it: codec byte, then the stored bytes.
fn write_v1_chunk(root: &Path, raw: &[u8]) -> ChunkId {
    let id = ChunkId::of(raw);
    let hex = id.to_hex();
    let path = root.join(&hex[..2]).join(&hex);
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    let mut bytes = vec![1u8];
    bytes.extend(zstd::bulk::compress(raw, 3).unwrap());
    fs::write(path, bytes).unwrap();
    id
}

#[test]
fn a_chunk_is_readable_and_indexed_only_once_flushed() {
    let dir = tempfile::tempdir().unwrap();
    let store = ChunkStore::open(dir.path()).unwrap();
    let raw = vec![42u8; 100_000];
    let id = stored(&store, &raw);
    assert!(store.contains(&id).unwrap(), "pending chunks count as stored, so they are not written twice");
    assert!(store.get(&id).is_err());
    assert!(ChunkStore::open(dir.path()).unwrap().get(&id).is_err(), "another store sees no pending chunk");

    store.flush().unwrap();
    assert_eq!(files(dir.path()), ["index", "segments/seg-00000001"]);
    assert_eq!(store.read_raw(&id, raw.len()).unwrap(), raw);
    assert_eq!(store.get(&id).unwrap().codec, Codec::Zstd);
    let reopened = ChunkStore::open(dir.path()).unwrap();
    assert_eq!(reopened.read_raw(&id, raw.len()).unwrap(), raw);
}

#[test]
fn a_store_opened_earlier_finds_chunks_another_store_indexed_since() {
    let dir = tempfile::tempdir().unwrap();
    let reader = ChunkStore::open(dir.path()).unwrap();
    let writer = ChunkStore::open(dir.path()).unwrap();
    let raw = vec![3u8; 70_000];
    let id = stored(&writer, &raw);
    writer.flush().unwrap();
    assert_eq!(reader.read_raw(&id, raw.len()).unwrap(), raw);
}

#[test]
fn chunks_a_crash_left_unflushed_are_not_indexed_and_are_stored_again() {
    let dir = tempfile::tempdir().unwrap();
    let raw = vec![7u8; 50_000];
    // The store instance of a process that died before flushing: its bytes are in a segment,
    // but no index record points to them.
    let id = stored(&ChunkStore::open(dir.path()).unwrap(), &raw);

    let store = ChunkStore::open(dir.path()).unwrap();
    assert!(!store.contains(&id).unwrap());
    assert_eq!(store.prune(&[]).unwrap(), 0);
    assert!(files(dir.path()).iter().all(|f| !f.starts_with("segments/")), "an unindexed segment is reclaimed");
    store.put(&id, &raw).unwrap();
    store.flush().unwrap();
    assert_eq!(store.read_raw(&id, raw.len()).unwrap(), raw);
}

#[test]
fn an_index_record_torn_by_a_crash_is_dropped_and_the_next_flush_appends_after_the_whole_ones() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b, c) = (vec![1u8; 40_000], vec![2u8; 40_000], vec![3u8; 40_000]);
    let store = ChunkStore::open(dir.path()).unwrap();
    let id_a = stored(&store, &a);
    store.flush().unwrap();
    let id_b = stored(&store, &b);
    store.flush().unwrap();
    // The crash tore the second append: half of b's record made it to disk.
    let index = dir.path().join(INDEX_FILE);
    let len = fs::metadata(&index).unwrap().len();
    OpenOptions::new().write(true).open(&index).unwrap().set_len(len - 20).unwrap();

    let store = ChunkStore::open(dir.path()).unwrap();
    assert_eq!(store.read_raw(&id_a, a.len()).unwrap(), a);
    assert!(!store.contains(&id_b).unwrap(), "a torn record names no chunk");
    let id_c = stored(&store, &c);
    store.put(&id_b, &b).unwrap();
    store.flush().unwrap();
    // The records appended after the cut are numbered from it: the store that cut finds them.
    for (id, raw) in [(&id_a, &a), (&id_b, &b), (&id_c, &c)] {
        assert_eq!(&store.read_raw(id, raw.len()).unwrap(), raw);
    }
    let store = ChunkStore::open(dir.path()).unwrap();
    for (id, raw) in [(&id_a, &a), (&id_b, &b), (&id_c, &c)] {
        assert_eq!(&store.read_raw(id, raw.len()).unwrap(), raw);
    }
}

#[test]
fn a_chunk_put_by_several_threads_at_once_is_written_once() {
    let dir = tempfile::tempdir().unwrap();
    let store = ChunkStore::open(dir.path()).unwrap();
    let raw = vec![9u8; 80_000];
    let id = ChunkId::of(&raw);
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| store.put(&id, &raw).unwrap());
        }
    });
    assert_eq!(store.pending_bytes().unwrap(), raw.len() as u64);
    store.flush().unwrap();
    let index_len = fs::metadata(dir.path().join(INDEX_FILE)).unwrap().len();
    assert_eq!(index_len, (index::MAGIC.len() + index::RECORD_LEN) as u64);
    assert_eq!(store.read_raw(&id, raw.len()).unwrap(), raw);
}

#[test]
fn a_chunk_whose_write_failed_is_written_by_the_next_put() {
    let dir = tempfile::tempdir().unwrap();
    let store = ChunkStore::open(dir.path()).unwrap();
    let raw = vec![5u8; 30_000];
    let id = ChunkId::of(&raw);
    // A file where the segment directory should be: the write fails.
    let blocked = dir.path().join(SEGMENT_DIR);
    fs::write(&blocked, b"in the way").unwrap();
    assert!(store.put(&id, &raw).is_err());
    assert!(!store.contains(&id).unwrap(), "a failed write must not count as stored");
    fs::remove_file(&blocked).unwrap();
    store.put(&id, &raw).unwrap();
    store.flush().unwrap();
    assert_eq!(store.read_raw(&id, raw.len()).unwrap(), raw);
}

#[test]
fn incompressible_chunks_are_kept_raw() {
    let dir = tempfile::tempdir().unwrap();
    let store = ChunkStore::open(dir.path()).unwrap();
    let raw: Vec<u8> = (0..2048u32)
        .flat_map(|i| ring::digest::digest(&ring::digest::SHA256, &i.to_le_bytes()).as_ref().to_vec())
        .collect();
    let id = stored(&store, &raw);
    store.flush().unwrap();
    let stored = store.get(&id).unwrap();
    assert_eq!((stored.codec, stored.bytes.len()), (Codec::Raw, raw.len()));
}

#[test]
fn a_store_in_the_one_file_per_chunk_layout_is_read_deduplicated_against_and_pruned() {
    let dir = tempfile::tempdir().unwrap();
    let (old_kept, old_dropped) = (vec![11u8; 60_000], vec![12u8; 60_000]);
    let kept = write_v1_chunk(dir.path(), &old_kept);
    let dropped = write_v1_chunk(dir.path(), &old_dropped);
    let leftover = dir.path().join(&kept.to_hex()[..2]).join(".tmp-chunk-1");
    fs::write(&leftover, b"half a chunk").unwrap();

    let store = ChunkStore::open(dir.path()).unwrap();
    assert!(store.contains(&kept).unwrap());
    assert_eq!(store.read_raw(&kept, old_kept.len()).unwrap(), old_kept);
    assert!(matches!(store.locate(&kept).unwrap(), Located::Bytes(_)));
    // The same content again (a new build sharing it) is not written a second time.
    store.put(&kept, &old_kept).unwrap();
    let new = vec![13u8; 60_000];
    let new_id = stored(&store, &new);
    store.flush().unwrap();
    let index_len = fs::metadata(dir.path().join(INDEX_FILE)).unwrap().len();
    assert_eq!(index_len, (index::MAGIC.len() + index::RECORD_LEN) as u64, "only the new chunk is indexed");

    assert_eq!(store.prune(&[&manifest_of(&[&kept, &new_id])]).unwrap(), 1);
    assert!(!store.contains(&dropped).unwrap() && !leftover.exists());
    assert_eq!(store.read_raw(&kept, old_kept.len()).unwrap(), old_kept);
    assert_eq!(store.read_raw(&new_id, new.len()).unwrap(), new);
    // Once no build uses a v1 chunk, its fan-out directory goes too.
    assert_eq!(store.prune(&[&manifest_of(&[&new_id])]).unwrap(), 1);
    assert_eq!(files(dir.path()), ["index", "segments/seg-00000001"]);
}

#[test]
fn prune_drops_unused_chunks_and_rewrites_a_mostly_unused_segment() {
    let dir = tempfile::tempdir().unwrap();
    let store = ChunkStore::open(dir.path()).unwrap();
    // Distinct, incompressible chunks, so each takes its full size in the segment.
    let raws: Vec<Vec<u8>> = (0..10u32)
        .map(|n| {
            (0..1024u32)
                .flat_map(|i| {
                    ring::digest::digest(&ring::digest::SHA256, &(n * 10_000 + i).to_le_bytes()).as_ref().to_vec()
                })
                .collect()
        })
        .collect();
    let ids: Vec<ChunkId> = raws.iter().map(|r| stored(&store, r)).collect();
    store.flush().unwrap();
    let segment = dir.path().join("segments/seg-00000001");
    assert_eq!(fs::metadata(&segment).unwrap().len(), 10 * 32 * 1024);

    // Keeping 6 of 10: most of the segment is live, it stays as it is.
    assert_eq!(store.prune(&[&manifest_of(&ids[..6].iter().collect::<Vec<_>>())]).unwrap(), 4);
    assert_eq!(files(dir.path()), ["index", "segments/seg-00000001"]);
    assert!(!store.contains(&ids[7]).unwrap());
    // Keeping 2: the live chunks move to a new segment and the old one goes.
    assert_eq!(store.prune(&[&manifest_of(&[&ids[1], &ids[4]])]).unwrap(), 4);
    assert_eq!(files(dir.path()), ["index", "segments/seg-00000002"]);
    assert_eq!(fs::metadata(dir.path().join("segments/seg-00000002")).unwrap().len(), 2 * 32 * 1024);
    let reopened = ChunkStore::open(dir.path()).unwrap();
    for i in [1, 4] {
        assert_eq!(reopened.read_raw(&ids[i], raws[i].len()).unwrap(), raws[i]);
        assert_eq!(store.read_raw(&ids[i], raws[i].len()).unwrap(), raws[i]);
    }
    // New chunks after a prune go to a new segment, never into a compacted one.
    let more = stored(&store, &raws[9]);
    store.flush().unwrap();
    assert_eq!(files(dir.path()), ["index", "segments/seg-00000002", "segments/seg-00000003"]);
    assert_eq!(reopened.read_raw(&more, raws[9].len()).unwrap(), raws[9]);
}

#[test]
fn a_reopened_store_reads_an_index_longer_than_its_read_piece_and_stops_at_a_torn_tail() {
    let dir = tempfile::tempdir().unwrap();
    let store = ChunkStore::open(dir.path()).unwrap();
    let n = 2 * CATCH_UP_RECORDS as u32 + 300;
    let ids: Vec<ChunkId> = (0..n).map(|i| stored(&store, &i.to_le_bytes())).collect();
    store.flush().unwrap();
    // Half a record, as a crash in the middle of an append leaves it.
    let index = dir.path().join(INDEX_FILE);
    let mut f = OpenOptions::new().append(true).open(&index).unwrap();
    f.write_all(&[7u8; index::RECORD_LEN / 2]).unwrap();
    drop(f);

    let reopened = ChunkStore::open(dir.path()).unwrap();
    for (i, id) in ids.iter().enumerate() {
        assert_eq!(reopened.read_raw(id, 4).unwrap(), (i as u32).to_le_bytes(), "chunk {i}");
    }
    let st = reopened.lock().unwrap();
    assert_eq!(st.table.len(), n as usize);
    assert_eq!(st.index_read, (index::MAGIC.len() + n as usize * index::RECORD_LEN) as u64);
}

#[test]
fn early_writeback_of_a_segment_stays_its_lag_behind_the_end_and_goes_in_steps() {
    let dir = tempfile::tempdir().unwrap();
    let store = ChunkStore::open(dir.path()).unwrap();
    // Incompressible 256 KiB chunks (stored raw), 80 of them: 20 MiB appended.
    let mut seed = 1u64;
    for _ in 0..80 {
        let raw: Vec<u8> = (0..256 * 1024)
            .map(|_| {
                seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                (seed >> 56) as u8
            })
            .collect();
        stored(&store, &raw);
    }
    let st = store.lock().unwrap();
    let writer = st.writer.as_ref().unwrap();
    assert_eq!(writer.len, 20 << 20);
    // 16 MiB of the 20 are settled: two steps of 8 MiB handed over, the rest waits.
    assert_eq!(writer.written_back, 16 << 20);
    drop(st);
    store.flush().unwrap();
}

/// Distinct small chunks: `n` little-endian, stored raw.
fn small_chunks(store: &ChunkStore, range: std::ops::Range<u32>) -> Vec<ChunkId> {
    range.map(|i| stored(store, &i.to_le_bytes())).collect()
}

fn index_len(dir: &Path) -> u64 {
    fs::metadata(dir.join(INDEX_FILE)).unwrap().len()
}

#[test]
fn lookups_stay_exact_when_every_chunk_hashes_alike() {
    let dir = tempfile::tempdir().unwrap();
    // Every key gets the same home slot and the same stored hash: only the records read back
    // tell the chunks apart.
    let store = ChunkStore::open_with(dir.path().into(), |_, _| 42).unwrap();
    let ids = small_chunks(&store, 0..150);
    store.flush().unwrap();
    let more = small_chunks(&store, 150..200);
    store.flush().unwrap();
    for (i, id) in ids.iter().chain(&more).enumerate() {
        assert!(store.contains(id).unwrap());
        assert_eq!(store.read_raw(id, 4).unwrap(), (i as u32).to_le_bytes(), "chunk {i}");
    }
    let absent = ChunkId::of(b"never stored");
    assert!(!store.contains(&absent).unwrap(), "a hash match is not a hit");
    assert!(store.locate(&absent).is_err());
    // A chunk already stored is not written again; a new one is, even though it collides.
    let len = index_len(dir.path());
    store.put(&ids[77], &77u32.to_le_bytes()).unwrap();
    store.put(&absent, b"never stored").unwrap();
    store.flush().unwrap();
    assert_eq!(index_len(dir.path()), len + index::RECORD_LEN as u64);
    assert_eq!(store.read_raw(&absent, 12).unwrap(), b"never stored");
}

#[test]
fn two_stores_on_one_directory_see_each_others_chunks() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (ChunkStore::open(dir.path()).unwrap(), ChunkStore::open(dir.path()).unwrap());
    let from_a = small_chunks(&a, 0..100);
    let from_b = small_chunks(&b, 100..300);
    b.flush().unwrap();
    a.flush().unwrap();
    // a's flush read b's records, which came first in the index, along with its own.
    for (i, id) in from_a.iter().chain(&from_b).enumerate() {
        assert!(a.contains(id).unwrap(), "a: chunk {i}");
        assert_eq!(a.read_raw(id, 4).unwrap(), (i as u32).to_le_bytes());
    }
    // b looks again when a lookup misses.
    for (i, id) in from_a.iter().chain(&from_b).enumerate() {
        assert_eq!(b.read_raw(id, 4).unwrap(), (i as u32).to_le_bytes(), "b: chunk {i}");
    }
    // And neither writes again what the other stored.
    let len = index_len(dir.path());
    b.put(&from_a[5], &5u32.to_le_bytes()).unwrap();
    a.put(&from_b[5], &105u32.to_le_bytes()).unwrap();
    a.flush().unwrap();
    b.flush().unwrap();
    assert_eq!(index_len(dir.path()), len);
}

#[test]
fn a_chunk_indexed_twice_counts_once_and_prune_keeps_lookups_exact() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (ChunkStore::open(dir.path()).unwrap(), ChunkStore::open(dir.path()).unwrap());
    // Both stores are given the same new chunk before either flushes: it is indexed twice.
    let twice = stored(&a, b"stored by both");
    stored(&b, b"stored by both");
    let kept = small_chunks(&a, 0..40);
    let dropped = small_chunks(&b, 40..100);
    a.flush().unwrap();
    b.flush().unwrap();
    assert_eq!(index_len(dir.path()), (index::MAGIC.len() + 102 * index::RECORD_LEN) as u64);
    assert_eq!(b.lock().unwrap().table.len(), 101, "one table entry per chunk");

    let mut keep: Vec<&ChunkId> = kept.iter().collect();
    keep.push(&twice);
    assert_eq!(b.prune(&[&manifest_of(&keep)]).unwrap(), 60);
    assert_eq!(index_len(dir.path()), (index::MAGIC.len() + 41 * index::RECORD_LEN) as u64);
    for store in [&b, &ChunkStore::open(dir.path()).unwrap()] {
        assert_eq!(store.read_raw(&twice, 14).unwrap(), b"stored by both");
        for (i, id) in kept.iter().enumerate() {
            assert_eq!(store.read_raw(id, 4).unwrap(), (i as u32).to_le_bytes());
        }
        assert!(dropped.iter().all(|id| !store.contains(id).unwrap()));
    }
    // The index was replaced: the table starts over from the new one, and new records follow.
    let again = stored(&b, &77u32.to_le_bytes());
    b.flush().unwrap();
    assert_eq!(b.lock().unwrap().table.len(), 42);
    assert_eq!(b.read_raw(&again, 4).unwrap(), 77u32.to_le_bytes());
}

#[test]
fn a_damaged_record_before_a_flushs_own_fails_the_flush_and_a_new_store_writes_them_again() {
    let dir = tempfile::tempdir().unwrap();
    let store = ChunkStore::open(dir.path()).unwrap();
    let first = small_chunks(&store, 0..3);
    store.flush().unwrap();
    // Another store's append, torn by its crash, after this store checked the index.
    let mut f = OpenOptions::new().append(true).open(dir.path().join(INDEX_FILE)).unwrap();
    f.write_all(&[7u8; index::RECORD_LEN / 2]).unwrap();
    drop(f);

    let late = stored(&store, b"after the tear");
    let err = store.flush().unwrap_err();
    assert!(matches!(err, EngineError::Corrupt(_)), "{err}");
    assert!(!store.contains(&late).unwrap(), "no reader can get past the damaged record");

    // A new store cuts the index back to its whole records; the chunk is stored again.
    let store = ChunkStore::open(dir.path()).unwrap();
    assert!(!store.contains(&late).unwrap());
    store.put(&late, b"after the tear").unwrap();
    store.flush().unwrap();
    assert_eq!(store.read_raw(&late, 14).unwrap(), b"after the tear");
    for (i, id) in first.iter().enumerate() {
        assert_eq!(store.read_raw(id, 4).unwrap(), (i as u32).to_le_bytes());
    }
}

#[test]
fn the_dedup_table_takes_at_most_22_bytes_of_file_per_indexed_chunk_and_leaves_no_file() {
    let dir = tempfile::tempdir().unwrap();
    let store = ChunkStore::open(dir.path()).unwrap();
    small_chunks(&store, 0..5000);
    store.flush().unwrap();
    let st = store.lock().unwrap();
    assert_eq!(st.table.len(), 5000);
    // The map it replaced took ~69 bytes per chunk, of the heap.
    assert!(st.table.slot_bytes() <= 22 * 5000, "{} bytes", st.table.slot_bytes());
    // The slots' file is unnamed: the store's directory holds only its own files.
    let mut names: Vec<String> =
        fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    assert_eq!(names, [INDEX_FILE, SEGMENT_DIR]);
}

#[test]
fn a_lookup_in_an_index_damaged_since_it_was_read_is_an_error_not_a_miss() {
    let dir = tempfile::tempdir().unwrap();
    let store = ChunkStore::open(dir.path()).unwrap();
    let ids = small_chunks(&store, 0..3);
    store.flush().unwrap();
    let index = dir.path().join(INDEX_FILE);
    // A flipped bit in record 1, in place: the table still points there.
    let f = OpenOptions::new().write(true).open(&index).unwrap();
    f.write_all_at(&[0xff], index::record_offset(1) + 40).unwrap();
    assert!(matches!(store.contains(&ids[1]), Err(EngineError::Corrupt(_))));
    assert!(matches!(store.read_raw(&ids[1], 4), Err(EngineError::Corrupt(_))));
    let err = store.lock().unwrap().each_record(|_, _, _| Ok(())).unwrap_err();
    assert!(matches!(err, EngineError::Corrupt(_)), "{err}");
    // Record 2 cut off, in place.
    f.set_len(index::record_offset(2) + 10).unwrap();
    assert!(matches!(store.locate(&ids[2]), Err(EngineError::Corrupt(_))));
    // Record 0 is as it was.
    assert_eq!(store.read_raw(&ids[0], 4).unwrap(), 0u32.to_le_bytes());
}

#[test]
fn a_prune_whose_retained_builds_cannot_be_read_removes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = ChunkStore::open(dir.path()).unwrap();
    let ids = small_chunks(&store, 0..20);
    store.flush().unwrap();
    let index_before = fs::read(dir.path().join(INDEX_FILE)).unwrap();
    // The second retained manifest fails to load after the first was marked.
    let failed = store.prune_keeping(|mark| {
        ids[..5].iter().try_for_each(&mut *mark)?;
        Err(EngineError::Corrupt("manifest.zst: damaged".into()))
    });
    assert!(matches!(failed, Err(EngineError::Corrupt(_))), "{failed:?}");
    assert_eq!(fs::read(dir.path().join(INDEX_FILE)).unwrap(), index_before);
    for id in &ids {
        assert!(store.contains(id).unwrap());
    }
    // Marked one manifest at a time, repeats included, it prunes as a whole list would.
    let removed = store
        .prune_keeping(|mark| {
            ids[..5].iter().try_for_each(&mut *mark)?;
            ids[3..8].iter().try_for_each(&mut *mark)
        })
        .unwrap();
    assert_eq!(removed, 12);
    for (i, id) in ids.iter().enumerate() {
        assert_eq!(store.contains(id).unwrap(), i < 8, "chunk {i}");
    }
}
