//! The built-in build engine (issue 9, `mkraw`): a native build's tar becomes chunks in the
//! app's chunk store, a manifest, a DxF image and patches from older builds. It knows nothing
//! of HTTP, SQL or tasks: the task layer calls it with a reader, directories and [`Hooks`].
//! The formats it writes are specified in docs/FORMAT.md; [`client`] reads them back.
//!
//! Typical use by the task layer (one `Engine` per process; its pool is shared by all imports):
//!
//! ```text
//! let engine = Engine::start(EngineOptions::default())?;
//! let store = ChunkStore::open(state_dir.join("chunks").join(app_id))?;
//! let hooks = Hooks::new(&|done, total| progress(done, total), &|| cancelled());
//! let outline = engine.import_outline(File::open(tar)?, Some(tar_len), &store, &hooks)?;
//!     // EngineError::FileReadFailed(f) → the task's compat `fileReadFailed` exception
//!     // outline.warnings() → the task's warnings; its chunk lists stay on disk
//! outline.save(&manifest_path)?;                // durable; a crash before it reruns the import
//! let image = engine.write_image(&outline, &store, &layout::build_dir(depot, org, app, n), &hooks)?;
//!     // image.dxf_name, image.size_bytes; a retried task reopens it: ImageInfo::open(&dxf_dir)
//! let patch = engine.write_patch(&old_manifest, &outline, &image, &store,
//!                                &layout::patch_dir(depot, org, app, n, b), &hooks)?;
//!     // patch.size_bytes; the new build's lists are read one file at a time
//! // eviction of build N − maxBuilds, while no import of the app runs, one manifest at a time:
//! store.prune_keeping(|mark| Manifest::load(&retained_path)?.each_chunk_id(mark))?;
//! fsutil::remove_leftovers(&build_dir)?;        // staging of an image write a crash cut short
//! ```
//!
//! Every call is deterministic: rerunning it after a crash writes the same bytes, and outputs
//! become visible only whole (temp + fsync + rename; data before index). Memory is bounded by the
//! pool's queue (a few chunks) and the deltas in flight (one per pool thread plus one, their
//! inputs within two delta segments together), and an import keeps nothing per chunk in the
//! heap: the store's dedup table and the image's placement table keep their slots in unnamed
//! files ([`slots`]), and an import's chunk lists stay on disk ([`Outline`]). A patch holds the
//! old build's manifest and ~25 bytes per old chunk (see [`patch`]); a prune a bit per indexed
//! chunk.

pub mod chunker;
pub mod client;
pub mod delta;
pub mod error;
pub mod fsutil;
pub mod image;
pub mod import;
pub mod layout;
pub mod lists;
pub mod manifest;
pub mod origin;
pub mod patch;
pub mod pool;
pub mod slots;
pub mod sniff;
pub mod startup;
pub mod store;
pub mod validate;

use std::io::Read;
use std::path::Path;

pub use error::{EngineError, FileReadFailed};
pub use image::{ImageInfo, ImageOptions, Index};
pub use manifest::{FileChunks, Manifest, Outline, Warning};
pub use patch::{DeltaCache, Patch, PatchInfo, PatchOptions};
pub use pool::WorkPool;
pub use store::{ChunkId, ChunkStore};

/// How the caller follows and stops a long engine call: `progress(done, total)` after each
/// unit of work (`total` 0 when unknown), `cancel()` polled often; when it answers true the
/// call returns `EngineError::Cancelled` and leaves only content-addressed or temporary files.
pub struct Hooks<'a> {
    pub progress: &'a (dyn Fn(u64, u64) + Sync),
    pub cancel: &'a (dyn Fn() -> bool + Sync),
}

impl<'a> Hooks<'a> {
    pub fn new(progress: &'a (dyn Fn(u64, u64) + Sync), cancel: &'a (dyn Fn() -> bool + Sync)) -> Hooks<'a> {
        Hooks { progress, cancel }
    }
}

impl Default for Hooks<'static> {
    /// No progress reporting, never cancelled.
    fn default() -> Self {
        Hooks { progress: &|_, _| {}, cancel: &|| false }
    }
}

#[derive(Debug, Clone)]
pub struct EngineOptions {
    /// Worker threads of the low-priority pool (default: one per core).
    pub threads: usize,
    pub image: ImageOptions,
    pub patch: PatchOptions,
}

impl Default for EngineOptions {
    fn default() -> Self {
        let threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
        EngineOptions { threads, image: ImageOptions::default(), patch: PatchOptions::default() }
    }
}

/// The engine: options plus the low-priority pool its CPU work runs on. Cheap to clone.
#[derive(Clone)]
pub struct Engine {
    pool: WorkPool,
    options: EngineOptions,
}

impl Engine {
    pub fn start(options: EngineOptions) -> std::io::Result<Engine> {
        Ok(Engine { pool: WorkPool::start(options.threads)?, options })
    }

    pub fn options(&self) -> &EngineOptions {
        &self.options
    }

    /// Validates and imports a build's tar (plain, or gzip/zstd-compressed with a warning):
    /// new chunks go to `store`, the manifest comes back. `size_hint` (the input's length, if
    /// known) is the progress total. Refused input: `EngineError::FileReadFailed`.
    pub fn import_tar<R: Read + Send>(
        &self,
        reader: R,
        size_hint: Option<u64>,
        store: &ChunkStore,
        hooks: &Hooks,
    ) -> Result<Manifest, EngineError> {
        self.import_outline(reader, size_hint, store, hooks)?.to_manifest()
    }

    /// [`Engine::import_tar`] for builds of any size: the manifest comes back with its chunk
    /// lists on disk ([`Outline`]), which saves to the same `manifest.zst` and writes the same
    /// image, in memory that does not grow with the number of chunks.
    pub fn import_outline<R: Read + Send>(
        &self,
        reader: R,
        size_hint: Option<u64>,
        store: &ChunkStore,
        hooks: &Hooks,
    ) -> Result<Outline, EngineError> {
        import::import_tar(reader, size_hint, store, &self.pool, hooks)
    }

    /// Writes the DxF image of `manifest` (a [`Manifest`] or an [`Outline`]) into
    /// `build_dir/<dxfName>/` (`build_dir` is `dxf/<org>/<app>/<NNNN>` of the depot, see
    /// [`layout::build_dir`]).
    pub fn write_image(
        &self,
        manifest: &dyn FileChunks,
        store: &ChunkStore,
        build_dir: &Path,
        hooks: &Hooks,
    ) -> Result<ImageInfo, EngineError> {
        image::write_image(manifest, store, build_dir, &self.options.image, &[], hooks)
    }

    /// Like [`Engine::write_image`], with the chunks that the start-up reads `startup` touch
    /// first, in first-access order, and `preloadBytes` in the index (FastStart). The reads must
    /// pass [`startup::check`]; merge several traces with [`startup::merge`] first.
    pub fn write_startup_image(
        &self,
        manifest: &Manifest,
        store: &ChunkStore,
        build_dir: &Path,
        startup: &[startup::Read],
        hooks: &Hooks,
    ) -> Result<ImageInfo, EngineError> {
        image::write_image(manifest, store, build_dir, &self.options.image, startup, hooks)
    }

    /// Writes `patch.dat` then `patch.zst` into `patch_dir` (`pat/<org>/<app>/<to>/<from>`,
    /// see [`layout::patch_dir`]): the patch from build `from` to build `to`, whose image is
    /// `to_image`. `to` may be the [`Outline`] of the import: its chunk lists are then read one
    /// file at a time, never the whole new manifest in memory beside the old one.
    pub fn write_patch(
        &self,
        from: &Manifest,
        to: &dyn FileChunks,
        to_image: &ImageInfo,
        store: &ChunkStore,
        patch_dir: &Path,
        hooks: &Hooks,
    ) -> Result<PatchInfo, EngineError> {
        self.write_patch_with(from, to, to_image, store, patch_dir, &DeltaCache::default(), hooks)
    }

    /// [`Engine::write_patch`] for one of several patches to the same build: deltas another
    /// patch already computed with the same `cache` are reused (the output is the same).
    #[allow(clippy::too_many_arguments)]
    pub fn write_patch_with(
        &self,
        from: &Manifest,
        to: &dyn FileChunks,
        to_image: &ImageInfo,
        store: &ChunkStore,
        patch_dir: &Path,
        cache: &DeltaCache,
        hooks: &Hooks,
    ) -> Result<PatchInfo, EngineError> {
        patch::write_patch(from, to, to_image, store, patch_dir, &self.options.patch, &self.pool, cache, hooks)
    }
}
