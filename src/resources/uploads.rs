//! The `PUT` of an upload URL (API.md §8 upload mode): the body streams to disk under the size
//! limit, never into memory; when it is whole the waiting dltar task runs. A failed PUT leaves
//! nothing behind and may be repeated until the URL expires.

use std::collections::BTreeSet;
use std::io::Write;
use std::sync::Mutex;

use futures_util::{Stream, StreamExt};
use serde::Deserialize;

use super::Resources;
use crate::error::ApiError;
use crate::store::builds as build_rows;
use crate::store::tasks::{self as task_rows, Task};
use crate::tasks::builds::{self as chain, BuildInput};

/// Why an upload was not taken.
#[derive(Debug)]
pub enum UploadError {
    Api(ApiError),
    /// The body broke off or could not be written; the client may PUT again.
    Body(String),
}

impl From<ApiError> for UploadError {
    fn from(e: ApiError) -> Self {
        UploadError::Api(e)
    }
}

impl From<crate::store::StoreError> for UploadError {
    fn from(e: crate::store::StoreError) -> Self {
        UploadError::Api(e.into())
    }
}

/// Uploads streaming in this process, by task: a second PUT of the same URL while one streams
/// is refused, so two bodies never race for the same tar.
static RECEIVING: Mutex<BTreeSet<i64>> = Mutex::new(BTreeSet::new());

/// Holds a task's place in [`RECEIVING`] while its body streams.
struct Receiving(i64);

impl Receiving {
    fn take(task_id: i64) -> Option<Receiving> {
        let mut set = RECEIVING.lock().unwrap_or_else(|p| p.into_inner());
        set.insert(task_id).then_some(Receiving(task_id))
    }
}

impl Drop for Receiving {
    fn drop(&mut self) {
        RECEIVING.lock().unwrap_or_else(|p| p.into_inner()).remove(&self.0);
    }
}

fn io(e: std::io::Error) -> UploadError {
    // A full disk is the box's condition, answered 507 as every other write answers it; the
    // client may PUT again once space is freed.
    if e.kind() == std::io::ErrorKind::StorageFull {
        return UploadError::Api(ApiError::InsufficientStorage);
    }
    // Only the kind: an OS message could reveal the state directory's path.
    UploadError::Body(format!("writing the upload failed ({})", e.kind()))
}

impl Resources {
    /// Takes the body of a `PUT` to the upload URL whose capability is `token`.
    pub async fn receive_upload<S, E>(&self, token: &str, body: S) -> Result<Task, UploadError>
    where
        S: Stream<Item = Result<actix_web::web::Bytes, E>> + Unpin,
        E: std::fmt::Display,
    {
        let hash = crate::auth::sha256(token.as_bytes());
        let upload = self.store.read(move |c| build_rows::upload_by_hash(c, &hash)).await?;
        let upload = upload.ok_or(ApiError::NotFound { resource: "upload" })?;
        let _receiving = Receiving::take(upload.task.id)
            .ok_or_else(|| ApiError::Busy("another upload to this URL is in progress".into()))?;
        let input = BuildInput::deserialize(&upload.task.input).map_err(ApiError::internal)?;
        let tar = chain::tar_path(&self.state_dir.join("builds"), input.app_id, input.build_id);
        let dir = crate::engine::fsutil::parent(&tar);
        std::fs::create_dir_all(&dir).map_err(io)?;
        let part = dir.join(crate::engine::fsutil::temp_name("upload"));
        let received = stream_to(&part, body, upload.max_bytes, input.size).await.and_then(|()| {
            std::fs::rename(&part, &tar).map_err(io)?;
            std::fs::File::open(&dir).and_then(|d| d.sync_all()).map_err(io)
        });
        if let Err(e) = received {
            let _ = std::fs::remove_file(&part);
            return Err(e);
        }
        let task_id = upload.task.id;
        if !self.store.write(move |c| build_rows::finish_upload(c, task_id)).await? {
            // Expired (or expired by PATCH) while the body streamed.
            let _ = std::fs::remove_file(&tar);
            return Err(ApiError::NotFound { resource: "upload" }.into());
        }
        self.queue.wake_workers();
        let task = self.store.read(move |c| task_rows::get_by_id(c, task_id)).await?;
        Ok(task.ok_or(ApiError::NotFound { resource: "task" })?)
    }
}

/// Writes the body to `part` and fsyncs it: refused above `max_bytes`, and when the import
/// announced a `size`, unless it has exactly that many bytes. The disk work runs on a blocking
/// thread fed through a short queue: on the async worker, each write and the final fsync (a
/// second for a gigabyte) stalled every other connection that worker serves.
pub(super) async fn stream_to<S, E>(
    part: &std::path::Path,
    mut body: S,
    max_bytes: u64,
    size: Option<u64>,
) -> Result<(), UploadError>
where
    S: Stream<Item = Result<actix_web::web::Bytes, E>> + Unpin,
    E: std::fmt::Display,
{
    let file = std::fs::File::create(part).map_err(io)?;
    let (pieces, arriving) = tokio::sync::mpsc::channel(4);
    // Normal priority, unlike the engine: at idle priority the writer starved beside the
    // actix worker that reads the body (8 GiB: 16 s instead of 11 s on 2 cores) without a list
    // p99 during the upload measurably better than the run-to-run spread (5.5-8.4 ms).
    let writer = tokio::task::spawn_blocking(move || write_pieces(file, arriving));
    let _streaming = crate::api_load::streaming();
    let mut pacer = crate::api_load::Pacer::default();
    let streamed: Result<(), UploadError> = async {
        let mut received: u64 = 0;
        let (mut batch, mut batch_bytes) = (Vec::new(), 0);
        while let Some(piece) = body.next().await {
            let piece = piece.map_err(|e| UploadError::Body(format!("the upload broke off: {e}")))?;
            received += piece.len() as u64;
            if received > max_bytes {
                let message = format!("the upload is larger than the limit of {max_bytes} bytes");
                return Err(ApiError::invalid("body", message).into());
            }
            batch_bytes += piece.len();
            batch.push(piece);
            if batch_bytes >= UPLOAD_BATCH {
                if pieces.send(std::mem::take(&mut batch)).await.is_err() {
                    // The writer stopped on an error, which it returns below.
                    break;
                }
                // Yield to the API's requests (`api_load`): without the pause, an upload over
                // loopback took both cores of a small box.
                if let Some(pause) = pacer.after(batch_bytes as u64, crate::api_load::busy) {
                    tokio::time::sleep(pause).await;
                }
                batch_bytes = 0;
            }
        }
        if !batch.is_empty() {
            // A failed send means the writer stopped on an error, which it returns below.
            let _ = pieces.send(batch).await;
        }
        if let Some(expected) = size.filter(|s| *s != received) {
            let message = format!("the upload has {received} bytes, but the import announced {expected}");
            return Err(ApiError::invalid("size", message).into());
        }
        Ok(())
    }
    .await;
    drop(pieces);
    let written = writer.await.map_err(|e| UploadError::Body(format!("writing the upload failed ({e})")))?;
    let file = written.map_err(io)?;
    streamed?;
    tokio::task::spawn_blocking(move || file.sync_all())
        .await
        .map_err(|e| UploadError::Body(format!("writing the upload failed ({e})")))?
        .map_err(io)
}

/// Body pieces handed to the writer at once: the pieces are a few KiB each, and a hand-over per
/// piece cost a thread wake-up each.
const UPLOAD_BATCH: usize = 1 << 20;

/// Appends the pieces to `file` until the queue closes, starting writeback as it goes.
fn write_pieces(
    mut file: std::fs::File,
    mut arriving: tokio::sync::mpsc::Receiver<Vec<actix_web::web::Bytes>>,
) -> std::io::Result<std::fs::File> {
    let mut writeback = crate::engine::fsutil::EarlyWriteback::default();
    while let Some(batch) = arriving.blocking_recv() {
        for piece in batch {
            file.write_all(&piece)?;
            writeback.wrote(&file, piece.len() as u64);
        }
    }
    Ok(file)
}
