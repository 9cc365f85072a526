//! Multipart uploads to S3 in progress (migration 007): the upload id once the endpoint gave it,
//! then each part's ETag once the endpoint stored the part. A publish that a crash interrupted
//! finds them here and sends only the parts that are missing.

use std::collections::BTreeMap;

use rusqlite::{params, Connection, OptionalExtension};

use super::{now_rfc3339, StoreResult};

/// One recorded upload of `size` bytes in parts of `part_size`.
#[derive(Clone, Debug)]
pub struct Upload {
    pub id: i64,
    pub upload_id: String,
    pub size: u64,
    pub part_size: u64,
    /// Part number → ETag, of the parts the endpoint has.
    pub parts: BTreeMap<u64, String>,
}

/// The upload of `key` in bucket `target` (`endpoint/bucket`), if one is recorded.
pub fn find(conn: &Connection, target: &str, key: &str) -> StoreResult<Option<Upload>> {
    let row = conn
        .query_row(
            "SELECT id, upload_id, size_bytes, part_size FROM s3_uploads WHERE target = ?1 AND object_key = ?2",
            params![target, key],
            |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?, r.get::<_, i64>(2)?, r.get::<_, i64>(3)?)),
        )
        .optional()?;
    let Some((id, upload_id, size, part_size)) = row else { return Ok(None) };
    let parts = conn
        .prepare("SELECT part_number, etag FROM s3_upload_parts WHERE upload = ?1")?
        .query_map([id], |r| Ok((r.get::<_, i64>(0)? as u64, r.get::<_, String>(1)?)))?
        .collect::<Result<BTreeMap<_, _>, _>>()?;
    Ok(Some(Upload { id, upload_id, size: size as u64, part_size: part_size as u64, parts }))
}

/// Records a new upload (replacing a stale record of the same object); answers its row id.
pub fn start(conn: &Connection, target: &str, key: &str, upload: &Upload) -> StoreResult<i64> {
    forget(conn, target, key)?;
    conn.execute(
        "INSERT INTO s3_uploads (target, object_key, upload_id, size_bytes, part_size, created)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![target, key, upload.upload_id, upload.size as i64, upload.part_size as i64, now_rfc3339()],
    )?;
    Ok(conn.last_insert_rowid())
}

pub fn part_done(conn: &Connection, upload: i64, part_number: u64, etag: &str) -> StoreResult<()> {
    conn.execute(
        "INSERT OR REPLACE INTO s3_upload_parts (upload, part_number, etag) VALUES (?1, ?2, ?3)",
        params![upload, part_number as i64, etag],
    )?;
    Ok(())
}

/// The upload is complete (or unusable): its record goes, parts with it.
pub fn forget(conn: &Connection, target: &str, key: &str) -> StoreResult<()> {
    conn.execute("DELETE FROM s3_uploads WHERE target = ?1 AND object_key = ?2", params![target, key])?;
    Ok(())
}

/// The recorded uploads of keys below `prefix` in bucket `target`: `(key, upload id)`.
pub fn below(conn: &Connection, target: &str, prefix: &str) -> StoreResult<Vec<(String, String)>> {
    Ok(conn
        .prepare(
            "SELECT object_key, upload_id FROM s3_uploads WHERE target = ?1 AND substr(object_key, 1, length(?2)) = ?2",
        )?
        .query_map(params![target, prefix], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<_, _>>()?)
}
