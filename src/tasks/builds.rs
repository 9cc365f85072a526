//! The build chain of one import (API.md §8, PIPELINE.md): `dltar` → `mkraw` → `deploy`, one task
//! group. Each stage's `on_done` inserts the next task in the transaction that completes it, so
//! a crash between stages can neither lose the chain nor run a stage twice in parallel.
//!
//! Files of an app's imports live under `<state>/builds/<appId>/`: `incoming/<NNNN>.tar` (and its
//! `.part` while downloading), `manifests/<NNNN>.json` and the chunk store `chunks/`. The DxF
//! image and patches are written into the depot, then published to every deployment through its
//! [`Destination`] (`fs` or `s3`).

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rusqlite::Connection;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::commit;
use super::prune::{self, PruneTarget};
use super::{failure, io_failure, store_failure, TaskContext, TaskFailure, TaskHandler};
use crate::auth::sealing::Sealer;
use crate::engine::{
    layout, ChunkStore, DeltaCache, Engine, EngineError, FileChunks, Hooks, ImageInfo, Manifest, Outline,
};
use crate::outbound::download::{self, Checkpoint, DownloadError, Limits, Observer, Source};
use crate::outbound::policy::OutboundPolicy;
use crate::publish::{self, Destination, PublishEnv, TargetSpec};
use crate::store::builds::{self as build_rows, NewBuild};
use crate::store::deployments;
use crate::store::tasks::{NewTask, Task};
use crate::store::{Store, StoreResult};

pub const DLTAR: &str = "dltar";
pub const MKRAW: &str = "mkraw";
pub const DEPLOY: &str = "deploy";

/// What the build handlers share: the engine and its pool, where imports keep their files, and
/// the bounds of a download.
pub struct BuildEnv {
    pub engine: Engine,
    /// `<state>/builds`.
    pub work_root: PathBuf,
    pub policy: OutboundPolicy,
    pub max_build_bytes: u64,
    /// Free disk space kept beyond a download.
    pub reserve_bytes: u64,
    pub download_timeout: Duration,
    /// How long published objects of an evicted build stay for clients still fetching them.
    pub prune_grace: Duration,
    /// Opens the build server's request headers, stored sealed.
    pub sealer: Arc<Sealer>,
    /// Opens the deployments' destinations.
    pub publish: Arc<PublishEnv>,
}

impl BuildEnv {
    fn app_dir(&self, app_id: i64) -> PathBuf {
        self.work_root.join(app_id.to_string())
    }

    fn tar_path(&self, input: &BuildInput) -> PathBuf {
        tar_path(&self.work_root, input.app_id, input.build_id)
    }

    pub(crate) fn manifest_path(&self, app_id: i64, build: i64) -> PathBuf {
        manifest_path(&self.work_root, app_id, build)
    }

    pub(crate) fn chunk_store(&self, app_id: i64) -> Result<ChunkStore, TaskFailure> {
        self.open_chunk_store(app_id).map_err(engine_failure)
    }

    /// The app's chunk store, its error as the engine reports it.
    fn open_chunk_store(&self, app_id: i64) -> Result<ChunkStore, EngineError> {
        ChunkStore::open(self.app_dir(app_id).join("chunks"))
    }
}

/// Where an import's tar is kept until mkraw has read it (`work_root` is `<state>/builds`).
pub fn tar_path(work_root: &Path, app_id: i64, build_id: i64) -> PathBuf {
    work_root.join(app_id.to_string()).join("incoming").join(format!("{build_id:04}.tar"))
}

/// Where the manifest of an app's build is kept (`work_root` is `<state>/builds`).
pub fn manifest_path(work_root: &Path, app_id: i64, build: i64) -> PathBuf {
    work_root.join(app_id.to_string()).join("manifests").join(format!("{build:04}.json"))
}

/// The handlers of the chain, to register with the queue.
pub fn handlers(env: Arc<BuildEnv>) -> Vec<(&'static str, Arc<dyn TaskHandler>)> {
    vec![(DLTAR, Arc::new(Dltar(env.clone()))), (MKRAW, Arc::new(Mkraw(env.clone()))), (DEPLOY, Arc::new(Deploy(env)))]
}

/// The tar's origin in URL mode.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UrlSource {
    /// As given on the way in; as stored, without the parts `sealed_url` holds.
    pub url: String,
    /// Only in memory on the way in: the stored task input carries them sealed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub headers: Vec<(String, String)>,
    /// The headers as JSON, sealed (AES-256-GCM) and base64: they often hold a credential for
    /// the build server, which the database must not keep in clear.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sealed_headers: Option<String>,
    /// The whole URL, sealed like the headers, when it has a query, a fragment or user info:
    /// a presigned URL's signature or a token parameter is as much a credential as a header.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sealed_url: Option<String>,
}

impl UrlSource {
    /// A source as the request gives it: nothing sealed yet.
    pub fn new(url: String, headers: Vec<(String, String)>) -> Self {
        UrlSource { url, headers, sealed_headers: None, sealed_url: None }
    }

    /// The sealing context binds the headers to the organization and app of the import.
    pub fn headers_context(org_id: i64, app_name: &str) -> String {
        format!("build-headers/{org_id}/{app_name}")
    }

    fn url_context(org_id: i64, app_name: &str) -> String {
        format!("build-url/{org_id}/{app_name}")
    }

    /// Replaces what may be a credential by its sealed form, before the source is stored: the
    /// headers, and the URL's query, fragment and user info (the stored `url` keeps the scheme,
    /// host and path, which tell an operator where a download went).
    pub fn seal_secrets(&mut self, sealer: &Sealer, org_id: i64, app_name: &str) {
        if !self.headers.is_empty() {
            let clear = serde_json::to_string(&self.headers).unwrap_or_default();
            let sealed = sealer.seal(&Self::headers_context(org_id, app_name), &clear);
            self.sealed_headers = Some(crate::auth::b64_encode(&sealed));
            self.headers.clear();
        }
        let Ok(mut shown) = url::Url::parse(&self.url) else { return };
        if shown.query().is_none()
            && shown.fragment().is_none()
            && shown.username().is_empty()
            && shown.password().is_none()
        {
            return;
        }
        let sealed = sealer.seal(&Self::url_context(org_id, app_name), &self.url);
        self.sealed_url = Some(crate::auth::b64_encode(&sealed));
        shown.set_query(None);
        shown.set_fragment(None);
        // Only fails for URLs without a host, which the import refuses before sealing.
        let _ = shown.set_username("");
        let _ = shown.set_password(None);
        self.url = shown.into();
    }

    /// The URL to download from: the sealed whole one where there is one.
    fn open_url(&self, sealer: &Sealer, org_id: i64, app_name: &str) -> Result<String, TaskFailure> {
        let Some(sealed) = &self.sealed_url else { return Ok(self.url.clone()) };
        let refused = || failure("the build URL cannot be opened", false);
        let bytes = crate::auth::b64_decode_any(sealed).ok_or_else(refused)?;
        sealer.open(&Self::url_context(org_id, app_name), &bytes).map_err(|_| refused())
    }

    fn open_headers(&self, sealer: &Sealer, org_id: i64, app_name: &str) -> Result<Vec<(String, String)>, TaskFailure> {
        let Some(sealed) = &self.sealed_headers else { return Ok(self.headers.clone()) };
        let refused = || failure("the build server's request headers cannot be opened", false);
        let bytes = crate::auth::b64_decode_any(sealed).ok_or_else(refused)?;
        let clear = sealer.open(&Self::headers_context(org_id, app_name), &bytes).map_err(|_| refused())?;
        serde_json::from_str(&clear).map_err(|_| refused())
    }
}

/// A patch mkraw wrote, for deploy and the commit.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PatchOut {
    pub from_build_id: i64,
    pub size_bytes: i64,
}

/// The image mkraw wrote.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ImageOut {
    pub dxf_name: String,
    pub size_bytes: i64,
    pub patches: Vec<PatchOut>,
}

/// The input every task of the chain carries; mkraw adds `image` for deploy.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BuildInput {
    pub org_id: i64,
    pub org_name: String,
    pub app_id: i64,
    pub app_name: String,
    pub build_id: i64,
    pub build_name: Option<String>,
    pub source: Option<UrlSource>,
    /// The `size` the client announced.
    pub size: Option<u64>,
    /// The app's builds when the import started: patches go from each of them to the new one.
    pub retained: Vec<i64>,
    pub max_builds: i64,
    #[serde(default)]
    pub image: Option<ImageOut>,
    /// Deploy ends by making the build current (`current.json`, `iCurBuild`); `false` stages it
    /// for a later `POST /be/v1/commit`. Absent in inputs stored before go-live existed: true.
    #[serde(default = "yes")]
    pub commit: bool,
    /// The app's current build when the import started (an import holds the app, so no commit
    /// changes it meanwhile): a staged build never evicts it.
    #[serde(default)]
    pub live: i64,
}

fn yes() -> bool {
    true
}

/// A task of the chain for `input`.
pub fn task(kind: &str, group: &str, input: &BuildInput) -> NewTask {
    NewTask {
        kind: kind.into(),
        group: Some(group.into()),
        app_name: Some(input.app_name.clone()),
        build_id: Some(input.build_id),
        input: serde_json::to_value(input).unwrap_or(Value::Null),
        max_attempts: 5,
        run_in_maintenance: false,
    }
}

/// A refused build is final (`fileReadFailed` with the compat fields); anything else may pass on
/// another attempt.
pub(crate) fn engine_failure(e: EngineError) -> TaskFailure {
    match e.file_read_failed_fields() {
        Some(fields) => {
            TaskFailure { exception: json!({"message": e.to_string(), "fileReadFailed": fields}), retryable: false }
        }
        None => failure(e.to_string(), !matches!(e, EngineError::Corrupt(_) | EngineError::Invalid(_))),
    }
}

fn input_of(task: &Task) -> Result<BuildInput, TaskFailure> {
    BuildInput::deserialize(&task.input)
        .map_err(|e| failure(format!("the task input is not a build input: {e}"), false))
}

pub(crate) fn build_number(n: i64) -> Result<u32, TaskFailure> {
    u32::try_from(n).map_err(|_| failure(format!("build number {n} is out of range"), false))
}

/// Removes temporary files an interrupted attempt left in `dir`, if it exists.
pub(crate) fn remove_leftovers(dir: &Path) -> Result<(), TaskFailure> {
    if dir.is_dir() {
        crate::engine::fsutil::remove_leftovers(dir).map_err(engine_failure)?;
    }
    Ok(())
}

/// Makes renames in `dir` durable.
fn sync_dir(dir: &Path) -> Result<(), TaskFailure> {
    crate::engine::fsutil::fsync_dir(dir).map_err(engine_failure)
}

// dltar.

struct Dltar(Arc<BuildEnv>);

/// Feeds the download's progress and checkpoints into the task row.
struct TaskObserver<'a> {
    store: &'a Store,
    task_id: i64,
}

impl Observer for TaskObserver<'_> {
    fn progress(&mut self, done: u64, total: Option<u64>) {
        let (id, done, total) = (self.task_id, done as i64, total.unwrap_or(0) as i64);
        let saved = self.store.write_blocking(move |c| {
            crate::store::tasks::set_progress(c, id, &crate::store::tasks::Progress { done, total })
        });
        if let Err(e) = saved {
            log::warn!("cannot record the progress of a download: {e}");
        }
    }

    fn checkpoint(&mut self, checkpoint: &Checkpoint) -> std::io::Result<()> {
        let (id, value) = (self.task_id, serde_json::to_value(checkpoint).unwrap_or(Value::Null));
        self.store
            .write_blocking(move |c| build_rows::set_checkpoint(c, id, &value))
            .map_err(|e| std::io::Error::other(e.to_string()))
    }

    fn cancelled(&self) -> bool {
        false
    }
}

impl TaskHandler for Dltar {
    fn run(&self, ctx: &TaskContext) -> Result<Value, TaskFailure> {
        let env = &self.0;
        let input = input_of(ctx.task)?;
        let tar = env.tar_path(&input);
        let dir = tar.parent().map(Path::to_path_buf).unwrap_or_default();
        std::fs::create_dir_all(&dir).map_err(|e| io_failure("creating the download directory", e))?;
        // An upload that arrived, or a crash after the rename but before the task was recorded
        // done: the tar is whole. Its progress shows the bytes received, as a finished download's
        // does (an upload reports none on the way).
        if let Ok(meta) = std::fs::metadata(&tar) {
            let size = i64::try_from(meta.len()).unwrap_or(i64::MAX);
            ctx.progress(size, size).map_err(store_failure)?;
            return Ok(json!({"sizeBytes": meta.len()}));
        }
        let Some(url) = &input.source else {
            // Upload mode: the task runs once the upload is in (the tar exists, see above) or
            // when its upload URL expired.
            return Err(TaskFailure {
                exception: json!({"message": "the upload URL expired before a build was uploaded", "uploadExpired": true}),
                retryable: false,
            });
        };
        let headers = url.open_headers(&env.sealer, input.org_id, &input.app_name)?;
        let source = Source { url: url.open_url(&env.sealer, input.org_id, &input.app_name)?, headers };
        let limits = Limits {
            max_bytes: env.max_build_bytes,
            expected_bytes: input.size,
            reserve_bytes: env.reserve_bytes,
            timeout: env.download_timeout,
            reconnects: 3,
        };
        let id = ctx.task.id;
        let checkpoint = ctx
            .store
            .read_blocking(|c| build_rows::checkpoint(c, id))
            .map_err(store_failure)?
            .and_then(|v| Checkpoint::deserialize(&v).ok())
            .unwrap_or_default();
        let part = tar.with_extension("tar.part");
        let mut observer = TaskObserver { store: ctx.store, task_id: id };
        let got = download::download(&source, env.policy, &limits, &part, checkpoint, &mut observer)
            .map_err(|e: DownloadError| TaskFailure { exception: e.exception(), retryable: e.retryable() })?;
        File::open(&part).and_then(|f| f.sync_all()).map_err(|e| io_failure("syncing the download", e))?;
        std::fs::rename(&part, &tar).map_err(|e| io_failure("keeping the download", e))?;
        sync_dir(&dir)?;
        Ok(json!({"sizeBytes": got.bytes, "resumed": got.resumed, "restarted": got.restarted}))
    }

    fn on_done(&self, conn: &Connection, task: &Task, _output: &Value) -> StoreResult<()> {
        let Ok(input) = input_of(task) else { return Ok(()) };
        let group = task.group.clone().unwrap_or_default();
        build_rows::insert_task(conn, input.org_id, &self::task(MKRAW, &group, &input)).map(drop)
    }

    fn on_failed(&self, conn: &Connection, task: &Task, exception: &Value) -> StoreResult<()> {
        if exception.get("uploadExpired").is_some() {
            build_rows::mark_expired(conn, task.id)?;
            return release(conn, task, None);
        }
        release(conn, task, Some(chain_error(exception, "downloading the build failed")))
    }
}

/// What the app's `error` says after its import failed for good: the failed task's message
/// (already free of state paths and build URLs), so a pipeline polling the app sees why.
fn chain_error<'a>(exception: &'a Value, fallback: &'a str) -> &'a str {
    exception.get("message").and_then(Value::as_str).unwrap_or(fallback)
}

/// Frees the app after the chain failed for good; with an `error`, the app shows
/// `status:"error"` and the message until the next build is committed. An import that was only cancelled
/// or left to expire leaves the app's status as it was.
fn release(conn: &Connection, task: &Task, error: Option<&str>) -> StoreResult<()> {
    match input_of(task) {
        Ok(input) => build_rows::release_failed(conn, input.app_id, error),
        Err(_) => Ok(()),
    }
}

// mkraw.

struct Mkraw(Arc<BuildEnv>);

/// Throttles the engine's progress calls (one per chunk) to the task row: a write at most every
/// 1 % (and 1 MiB), at the end of a phase, and when a new phase (image, each patch) starts over.
struct ProgressGate {
    last: std::sync::atomic::AtomicU64,
}

impl ProgressGate {
    fn new() -> ProgressGate {
        ProgressGate { last: std::sync::atomic::AtomicU64::new(0) }
    }

    fn record(&self, ctx: &TaskContext, done: u64, total: u64) {
        use std::sync::atomic::Ordering;
        let step = (total / 100).max(1 << 20);
        let last = self.last.load(Ordering::Relaxed);
        if done != total && done >= last && done - last < step {
            return;
        }
        self.last.store(done, Ordering::Relaxed);
        if let Err(e) = ctx.progress(done as i64, total as i64) {
            log::warn!("cannot record the progress of an import: {e}");
        }
    }
}

/// What mkraw has durably done, kept in its task's checkpoint: a retry or a restart after a
/// crash keeps the image and every patch an earlier attempt finished (each is fsynced before it
/// is recorded here) instead of computing them again.
#[derive(Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct MkrawCheckpoint {
    #[serde(default)]
    dxf_name: Option<String>,
    #[serde(default)]
    patches: Vec<PatchOut>,
    /// `PATCH /be/v1/tasks {"expire":true}` asked the running task to stop.
    #[serde(default)]
    expire_requested: bool,
}

/// How often a running mkraw looks for an expiry request: its cancel hook is polled per chunk,
/// far too often for a database read each time.
const EXPIRY_POLL: Duration = Duration::from_millis(250);

/// The expiry request of a running mkraw, read from its checkpoint at most every [`EXPIRY_POLL`].
struct ExpiryWatch<'a> {
    ctx: &'a TaskContext<'a>,
    last: std::sync::Mutex<Option<std::time::Instant>>,
    requested: std::sync::atomic::AtomicBool,
}

impl<'a> ExpiryWatch<'a> {
    fn new(ctx: &'a TaskContext<'a>) -> ExpiryWatch<'a> {
        ExpiryWatch { ctx, last: std::sync::Mutex::new(None), requested: Default::default() }
    }

    fn requested(&self) -> bool {
        if self.requested.load(std::sync::atomic::Ordering::Relaxed) {
            return true;
        }
        {
            let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
            if last.is_some_and(|at| at.elapsed() < EXPIRY_POLL) {
                return false;
            }
            *last = Some(std::time::Instant::now());
        }
        self.requested_now()
    }

    /// Reads the request now, whenever the last look was.
    fn requested_now(&self) -> bool {
        let id = self.ctx.task.id;
        let asked = match self.ctx.store.read_blocking(move |c| build_rows::checkpoint(c, id)) {
            Ok(checkpoint) => {
                checkpoint.and_then(|v| MkrawCheckpoint::deserialize(&v).ok()).is_some_and(|c| c.expire_requested)
            }
            Err(e) => {
                log::warn!("cannot read the checkpoint of task {}: {e}", self.ctx.task.name);
                false
            }
        };
        self.requested.store(asked, std::sync::atomic::Ordering::Relaxed);
        asked
    }
}

/// The failure of an mkraw stopped on request; `on_failed` turns it into `expired`.
fn expired_failure() -> TaskFailure {
    TaskFailure {
        exception: json!({"message": "expired on request: mkraw stopped", "expired": true}),
        retryable: false,
    }
}

impl Mkraw {
    /// Removes what an expired mkraw wrote for build `n`: its image and patches in the depot
    /// (never published nor committed), its manifest and tar. Chunks stay: they are
    /// content-addressed, and the next eviction removes those no retained build uses.
    fn discard(&self, depot: &Path, input: &BuildInput, n: u32) -> Result<(), TaskFailure> {
        let env = &self.0;
        let (org, app) = (input.org_name.as_str(), input.app_name.as_str());
        let patches = crate::engine::fsutil::parent(&layout::patch_dir(depot, org, app, n, 0));
        for dir in [layout::build_dir(depot, org, app, n), patches] {
            match std::fs::remove_dir_all(&dir) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    return Err(io_failure("removing an expired build", e))
                }
                _ => {}
            }
        }
        for file in [env.manifest_path(input.app_id, input.build_id), env.tar_path(input)] {
            match std::fs::remove_file(&file) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    return Err(io_failure("removing an expired build", e))
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// The work of one attempt: manifest, image, patches, each kept from an earlier attempt
    /// when its checkpoint says it is done; stops at the next chunk or file once `watch` sees
    /// an expiry request.
    fn build(&self, ctx: &TaskContext, input: &BuildInput, n: u32, watch: &ExpiryWatch) -> Result<Value, TaskFailure> {
        let env = &self.0;
        let tar = env.tar_path(input);
        let store = env.chunk_store(input.app_id)?;
        let gate = ProgressGate::new();
        let progress = |done: u64, total: u64| gate.record(ctx, done, total);
        let cancel = || watch.requested();
        let hooks = Hooks::new(&progress, &cancel);
        let id = ctx.task.id;
        let mut checkpoint = ctx
            .store
            .read_blocking(move |c| build_rows::checkpoint(c, id))
            .map_err(store_failure)?
            .and_then(|v| MkrawCheckpoint::deserialize(&v).ok())
            .unwrap_or_default();

        // A manifest on disk means the import finished before a crash: skip straight to the
        // image (chunks are durable before the manifest is saved).
        let manifest_path = env.manifest_path(input.app_id, input.build_id);
        let manifest = match Manifest::load(&manifest_path) {
            Ok(m) => BuildManifest::Whole(m),
            Err(_) => {
                let file = File::open(&tar).map_err(|e| io_failure("opening the downloaded build", e))?;
                let len = file.metadata().map(|m| m.len()).ok();
                let tar = crate::api_load::Paced::new(file);
                let outline = env.engine.import_outline(tar, len, &store, &hooks).map_err(engine_failure)?;
                if ctx.task.warnings.is_empty() {
                    for w in outline.warnings() {
                        ctx.warn(json!({"code": w.code, "message": w.message})).map_err(store_failure)?;
                    }
                }
                std::fs::create_dir_all(crate::engine::fsutil::parent(&manifest_path))
                    .map_err(|e| io_failure("creating the manifest directory", e))?;
                outline.save(&manifest_path).map_err(engine_failure)?;
                BuildManifest::Outline(outline)
            }
        };

        let (org, app) = (input.org_name.as_str(), input.app_name.as_str());
        let build_dir = layout::build_dir(ctx.depot, org, app, n);
        // What an earlier attempt cut short (one import per app: nothing else writes here).
        remove_leftovers(&build_dir)?;
        let kept = checkpoint.dxf_name.as_ref().and_then(|name| ImageInfo::open(&build_dir.join(name)).ok());
        let image = match kept {
            Some(image) => {
                log::info!("mkraw of {org}/{app} build {n}: image {} kept from an earlier attempt", image.dxf_name);
                image
            }
            None => {
                checkpoint.patches.clear();
                let image =
                    env.engine.write_image(manifest.chunks(), &store, &build_dir, &hooks).map_err(engine_failure)?;
                checkpoint.dxf_name = Some(image.dxf_name.clone());
                Self::save_checkpoint(ctx, &checkpoint)?;
                image
            }
        };
        let mut patches = Vec::new();
        // Deltas one patch computed serve the others (the same old file in two retained builds).
        let cache = DeltaCache::default();
        // Newest first: N−1 → N is the patch most clients need. None from a build this one evicts.
        let evicted = evicted(input);
        for &from in input.retained.iter().rev().filter(|b| !evicted.contains(b)) {
            if watch.requested() {
                return Err(expired_failure());
            }
            let dir = layout::patch_dir(ctx.depot, org, app, n, build_number(from)?);
            let done = checkpoint.patches.iter().find(|p| p.from_build_id == from).cloned();
            if let Some(done) = done.filter(|_| patch_is_whole(&dir, &image.dxf_name)) {
                log::info!("mkraw of {org}/{app} build {n}: patch {from}→{n} kept from an earlier attempt");
                patches.push(done);
                continue;
            }
            let old = match Manifest::load(&env.manifest_path(input.app_id, from)) {
                Ok(m) => m,
                Err(e) => {
                    ctx.warn(json!({"code": "noPatch", "message": format!("no patch from build {from}: {e}")}))
                        .map_err(store_failure)?;
                    continue;
                }
            };
            remove_leftovers(&dir)?;
            let info = env
                .engine
                .write_patch_with(&old, manifest.chunks(), &image, &store, &dir, &cache, &hooks)
                .map_err(engine_failure)?;
            log::info!(
                "mkraw of {org}/{app} build {n}: patch {from}→{n} written, {} bytes, {} deltas reused",
                info.size_bytes,
                info.deltas_reused
            );
            let out = PatchOut { from_build_id: from, size_bytes: info.size_bytes as i64 };
            checkpoint.patches.retain(|p| p.from_build_id != from);
            checkpoint.patches.push(out.clone());
            Self::save_checkpoint(ctx, &checkpoint)?;
            patches.push(out);
        }
        let out = ImageOut { dxf_name: image.dxf_name, size_bytes: image.size_bytes as i64, patches };
        serde_json::to_value(out).map_err(|e| failure(e.to_string(), false))
    }

    fn save_checkpoint(ctx: &TaskContext, checkpoint: &MkrawCheckpoint) -> Result<(), TaskFailure> {
        let (id, fields) = (ctx.task.id, json!({"dxfName": checkpoint.dxf_name, "patches": checkpoint.patches}));
        ctx.store.write_blocking(move |c| build_rows::merge_checkpoint(c, id, &fields)).map_err(store_failure)
    }
}

/// The new build's manifest during mkraw: whole when it was read back from disk (a retried
/// task), or as the import made it, its chunk lists on disk: the image and the patches read
/// one file's list at a time, so a first attempt never holds the build's lists in memory.
enum BuildManifest {
    Whole(Manifest),
    Outline(Outline),
}

impl BuildManifest {
    fn chunks(&self) -> &dyn FileChunks {
        match self {
            BuildManifest::Whole(m) => m,
            BuildManifest::Outline(o) => o,
        }
    }
}

/// Whether the patch an earlier attempt recorded is still whole in `dir`, for the image `dxf_name`.
fn patch_is_whole(dir: &Path, dxf_name: &str) -> bool {
    let Ok(patch) = crate::engine::Patch::load(dir) else { return false };
    let dat = std::fs::metadata(dir.join(layout::PATCH_DATA_FILE)).map(|m| m.len()).ok();
    patch.to_dxf_name == dxf_name && dat == Some(patch.dat_size)
}

impl TaskHandler for Mkraw {
    fn run(&self, ctx: &TaskContext) -> Result<Value, TaskFailure> {
        let input = input_of(ctx.task)?;
        let n = build_number(input.build_id)?;
        let watch = ExpiryWatch::new(ctx);
        let outcome = crate::engine::pool::at_idle_priority(|| self.build(ctx, &input, n, &watch));
        // Stopped on request, or finished just as the request came (a last fresh look, so that
        // only the moment between this and on_done is left to on_done): nothing of it is kept.
        if watch.requested() || watch.requested_now() {
            self.discard(ctx.depot, &input, n)?;
            log::info!(
                "mkraw of {}/{} build {n} expired on request; its outputs were removed",
                input.org_name,
                input.app_name
            );
            return Err(expired_failure());
        }
        outcome
    }

    fn on_done(&self, conn: &Connection, task: &Task, output: &Value) -> StoreResult<()> {
        let Ok(mut input) = input_of(task) else { return Ok(()) };
        // Expiry asked for after the task's last look: the chain still stops here.
        let checkpoint = build_rows::checkpoint(conn, task.id)?.and_then(|v| MkrawCheckpoint::deserialize(&v).ok());
        if checkpoint.is_some_and(|c| c.expire_requested) {
            build_rows::mark_expired(conn, task.id)?;
            return release(conn, task, None);
        }
        input.image = ImageOut::deserialize(output).ok();
        let group = task.group.clone().unwrap_or_default();
        build_rows::set_exporting(conn, input.app_id)?;
        build_rows::insert_task(conn, input.org_id, &self::task(DEPLOY, &group, &input)).map(drop)
    }

    fn on_failed(&self, conn: &Connection, task: &Task, exception: &Value) -> StoreResult<()> {
        if exception.get("expired").is_some() {
            build_rows::mark_expired(conn, task.id)?;
            return release(conn, task, None);
        }
        release(conn, task, Some(chain_error(exception, "building the image and patches failed")))
    }
}

// deploy.

struct Deploy(Arc<BuildEnv>);

/// The deployments a build of the app goes to: those it lists, or all of the organization's.
pub fn targets_of_app(conn: &Connection, org_id: i64, app_id: i64) -> StoreResult<Vec<TargetSpec>> {
    let listed = build_rows::app_deployment_names(conn, app_id)?;
    Ok(deployments::all_of_org(conn, org_id)?
        .iter()
        .filter(|d| listed.is_empty() || listed.contains(&d.name))
        .map(|d| TargetSpec::of(org_id, d))
        .collect())
}

/// Publishes `objects` (in order) to `target`, counting progress on `done` of `total`.
pub fn publish_objects(
    ctx: &TaskContext,
    target: &dyn Destination,
    deployment: &str,
    objects: &[(PathBuf, String)],
    done: &mut i64,
    total: i64,
) -> Result<(), TaskFailure> {
    for (src, rel) in objects {
        target
            .put_file(rel, src)
            .map_err(|e| TaskFailure { exception: e.exception(Some(deployment)), retryable: e.retryable })?;
        *done += 1;
        ctx.progress(*done, total).map_err(store_failure)?;
    }
    Ok(())
}

impl TaskHandler for Deploy {
    fn run(&self, ctx: &TaskContext) -> Result<Value, TaskFailure> {
        let env = &self.0;
        let input = input_of(ctx.task)?;
        let n = build_number(input.build_id)?;
        let Some(image) = &input.image else {
            return Err(failure("the deploy task has no image to publish", false));
        };
        let (org, app) = (input.org_name.as_str(), input.app_name.as_str());
        // Objects relative to a published root: the image's directory, then each patch.
        let mut dirs = vec![format!("{}/{}", layout::build_rel(org, app, n), image.dxf_name)];
        for p in &image.patches {
            dirs.push(layout::patch_rel(org, app, n, build_number(p.from_build_id)?));
        }
        let objects = publish::objects_of(ctx.depot, &dirs).map_err(|e| io_failure("reading the depot", e))?;
        let (org_id, app_id) = (input.org_id, input.app_id);
        let targets = ctx.store.read_blocking(|c| targets_of_app(c, org_id, app_id)).map_err(store_failure)?;
        let total = (objects.len() * targets.len()) as i64;
        let mut done = 0;
        let mut published = Vec::new();
        for spec in &targets {
            let target = publish::open(&env.publish, spec)
                .map_err(|e| TaskFailure { exception: e.exception(Some(&spec.deployment)), retryable: e.retryable })?;
            publish_objects(ctx, target.as_ref(), &spec.deployment, &objects, &mut done, total)?;
            published.push(target.label().to_string());
        }
        // Going live is the last write: the pointer on every target once all of them hold the
        // build (a staged build, `"commit": false`, leaves the pointer alone).
        if input.commit {
            let pointer =
                commit::pointer(input.build_id, &image.dxf_name, input.build_name.as_deref(), image.size_bytes);
            let progress = |_, _| Ok(());
            commit::publish_to_targets(
                &env.publish,
                ctx.depot,
                &targets,
                None,
                &commit::current_rel(org, app),
                &pointer,
                &progress,
            )?;
        }

        // Builds beyond maxBuilds leave with this one: their manifests go, and the chunks no
        // retained build uses. Their published objects go after a grace period (on_done).
        let evicted = evicted(&input);
        if !evicted.is_empty() {
            // The build is live on every target by now: a failed eviction must not fail the
            // deploy, or the app would name the old build while launchers get the new one (a
            // retry converges, but only once someone retries). It leaves chunks for the next
            // eviction to reclaim, and says so.
            for problem in evict(env, &input, &evicted) {
                log::warn!("deploy of app {} build {}: {problem}", input.app_id, input.build_id);
                ctx.warn(json!({"code": "evictionIncomplete", "message": problem})).map_err(store_failure)?;
            }
        }
        // The tar is in chunks and a manifest now.
        match std::fs::remove_file(env.tar_path(&input)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(io_failure("removing the build tar", e)),
            _ => {}
        }
        Ok(json!({"published": published, "objects": objects.len(), "evicted": evicted}))
    }

    fn on_done(&self, conn: &Connection, task: &Task, _output: &Value) -> StoreResult<()> {
        let Ok(input) = input_of(task) else { return Ok(()) };
        let Some(image) = &input.image else { return Ok(()) };
        let patches: Vec<(i64, i64)> = image.patches.iter().map(|p| (p.from_build_id, p.size_bytes)).collect();
        let evicted = evicted(&input);
        build_rows::commit_build(
            conn,
            &NewBuild {
                app_id: input.app_id,
                build_id: input.build_id,
                name: input.build_name.as_deref(),
                dxf_name: &image.dxf_name,
                size_bytes: image.size_bytes,
                patches: &patches,
                evicted: &evicted,
                live: input.commit,
            },
        )?;
        let listed = build_rows::app_deployment_names(conn, input.app_id)?;
        let mut targets = Vec::new();
        for d in deployments::all_of_org(conn, input.org_id)? {
            if listed.is_empty() || listed.contains(&d.name) {
                build_rows::set_deployment_status(conn, input.org_id, &d.name, None)?;
                targets.push(PruneTarget::of(input.org_id, &d));
            }
        }
        // The evicted builds' images and patches stay published for the grace period: a client
        // that read the old app state may still be fetching them.
        let builds: Vec<u32> = evicted.iter().filter_map(|b| u32::try_from(*b).ok()).collect();
        if !builds.is_empty() {
            let mut new = prune::task(&input.org_name, Some(&input.app_name), targets, true);
            new.input["builds"] = json!(builds);
            let task = build_rows::insert_task(conn, input.org_id, &new)?;
            let grace = chrono::Duration::from_std(self.0.prune_grace).unwrap_or(chrono::Duration::days(1));
            let at = (chrono::Utc::now() + grace).to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
            build_rows::set_run_after(conn, task.id, &at)?;
        }
        Ok(())
    }

    fn on_failed(&self, conn: &Connection, task: &Task, exception: &Value) -> StoreResult<()> {
        let message = chain_error(exception, "deploy failed");
        if let (Ok(input), Some(name)) = (input_of(task), exception.get("deployment").and_then(Value::as_str)) {
            build_rows::set_deployment_status(conn, input.org_id, name, Some(message))?;
        }
        release(conn, task, Some(message))
    }
}

/// Removes from the chunk store the chunks only `evicted` builds use (reading the retained
/// manifests one at a time), then the evicted builds' manifests. Answers what went wrong: the
/// chunks stay when the prune fails, and the next eviction, which keeps only retained builds,
/// reclaims them; a manifest that cannot be removed is left as it is.
fn evict(env: &BuildEnv, input: &BuildInput, evicted: &[i64]) -> Vec<String> {
    let mut problems = Vec::new();
    let keep: Vec<i64> = input
        .retained
        .iter()
        .chain(std::iter::once(&input.build_id))
        .filter(|b| !evicted.contains(b))
        .copied()
        .collect();
    let pruned = env.open_chunk_store(input.app_id).and_then(|store| {
        // One retained manifest in memory at a time, not all of them.
        store.prune_keeping(|mark| {
            for b in &keep {
                Manifest::load(&env.manifest_path(input.app_id, *b))?.each_chunk_id(&mut *mark)?;
            }
            Ok(())
        })
    });
    if let Err(e) = pruned {
        problems.push(format!(
            "the chunks only evicted builds {evicted:?} use stay in the chunk store until the next eviction: {e}"
        ));
    }
    for b in evicted {
        match std::fs::remove_file(env.manifest_path(input.app_id, *b)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                problems.push(format!("the manifest of evicted build {b} stays: {}", e.kind()));
            }
            _ => {}
        }
    }
    problems
}

/// The oldest builds beyond `maxBuilds` once the new one is in. Neither the new build nor —
/// when the new one is only staged — the live build is evicted: launchers follow the live one,
/// so the app keeps one build more than `maxBuilds` until a commit moves on.
fn evicted(input: &BuildInput) -> Vec<i64> {
    let keep = input.max_builds.max(1) as usize;
    let mut all: Vec<i64> = input.retained.clone();
    all.push(input.build_id);
    all.sort_unstable();
    all.dedup();
    let excess = all.len().saturating_sub(keep);
    let spared = |b: &i64| *b == input.build_id || (!input.commit && *b == input.live);
    all.into_iter().filter(|b| !spared(b)).take(excess).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_urls_query_fragment_and_user_info_are_stored_sealed_and_opened_whole() {
        let sealer = Sealer::new(&[7; 32]);
        let given = "https://deploy:hunter2@builds.example.com/v1/native-build.tar?X-Amz-Signature=abc123#part";
        let mut source = UrlSource::new(given.into(), Vec::new());
        source.seal_secrets(&sealer, 1, "game");
        let stored = serde_json::to_string(&source).unwrap();
        // Outside the sealed value (base64 of random bytes, which may spell anything).
        let clear = stored.replace(source.sealed_url.as_deref().unwrap(), "");
        assert!(!["hunter2", "deploy", "abc123", "part"].iter().any(|s| clear.contains(s)), "{stored}");
        assert_eq!(source.url, "https://builds.example.com/v1/native-build.tar");
        let back: UrlSource = serde_json::from_str(&stored).unwrap();
        assert_eq!(back.open_url(&sealer, 1, "game").unwrap(), given);
        assert!(back.open_url(&sealer, 1, "other").is_err(), "sealed for its app only");
    }

    #[test]
    fn a_plain_url_is_stored_as_it_is() {
        let sealer = Sealer::new(&[7; 32]);
        let mut source = UrlSource::new("https://builds.example.com/native-build.tar".into(), Vec::new());
        source.seal_secrets(&sealer, 1, "game");
        assert_eq!(source.sealed_url, None);
        assert_eq!(source.open_url(&sealer, 1, "game").unwrap(), "https://builds.example.com/native-build.tar");
    }

    fn input(retained: &[i64], build_id: i64, max_builds: i64, commit: bool, live: i64) -> BuildInput {
        BuildInput {
            org_id: 1,
            org_name: "acme".into(),
            app_id: 1,
            app_name: "game".into(),
            build_id,
            build_name: None,
            source: None,
            size: None,
            retained: retained.to_vec(),
            max_builds,
            image: None,
            commit,
            live,
        }
    }

    #[test]
    fn a_committed_import_evicts_the_oldest_builds_beyond_max_builds() {
        assert_eq!(evicted(&input(&[1, 2], 3, 2, true, 2)), [1]);
        assert_eq!(evicted(&input(&[1, 2, 3], 4, 2, true, 1)), [1, 2]);
        assert_eq!(evicted(&input(&[1], 2, 2, true, 1)), Vec::<i64>::new());
    }

    #[test]
    fn a_staged_import_spares_the_live_build_and_itself() {
        // Build 1 is live: the next oldest goes instead.
        assert_eq!(evicted(&input(&[1, 2], 3, 2, false, 1)), [2]);
        // Nothing else to evict: the app keeps one build more than maxBuilds for now.
        assert_eq!(evicted(&input(&[1], 2, 1, false, 1)), Vec::<i64>::new());
        // A rollback made an older build live; a staged import keeps it.
        assert_eq!(evicted(&input(&[1, 2, 3], 4, 3, false, 1)), [2]);
    }

    #[test]
    fn inputs_stored_before_go_live_existed_commit_their_build() {
        let mut stored = serde_json::to_value(input(&[], 1, 5, true, 0)).unwrap();
        let fields = stored.as_object_mut().unwrap();
        fields.remove("commit");
        fields.remove("live");
        let read = BuildInput::deserialize(&stored).unwrap();
        assert!(read.commit);
        assert_eq!(read.live, 0);
    }
}
