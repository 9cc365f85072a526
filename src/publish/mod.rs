//! Publishing to targets (API.md §7, PIPELINE.md "deploy"): a [`Destination`] is one place the
//! published layout lives — a directory (the depot, an `fs` origin) or an S3-compatible bucket.
//! Deploy, sync and prune speak only this trait, so every target gets the same order (data
//! before index), the same idempotence (a whole object is skipped) and the same errors.

pub mod dir;
pub mod s3;
pub mod sigv4;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::{json, Value};

use crate::auth::sealing::Sealer;
use crate::domain::origins::Origin;
use crate::engine::layout;
use crate::store::deployments::Deployment;
use crate::store::Store;

pub use dir::DirDestination;
pub use s3::{S3Destination, S3Settings};

/// Why publishing to a target failed; the message names the target.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct PublishError {
    pub message: String,
    /// Worth another attempt (network, 5xx, throttling), as opposed to refused credentials or a
    /// missing bucket, which only a change of the deployment fixes.
    pub retryable: bool,
}

impl PublishError {
    pub fn new(message: impl Into<String>, retryable: bool) -> PublishError {
        PublishError { message: message.into(), retryable }
    }

    /// The task exception: the message and the deployment it concerns.
    pub fn exception(&self, deployment: Option<&str>) -> Value {
        match deployment {
            Some(name) => json!({"message": self.message, "deployment": name}),
            None => json!({"message": self.message}),
        }
    }
}

/// One publish target. Paths (`rel`) are '/'-separated below the target's root (which already
/// includes the deployment's `originPrefix`).
pub trait Destination: Send + Sync {
    /// "deployment NAME" (or "depot"), for messages.
    fn label(&self) -> &str;
    /// Publishes a local file as object `rel`. An object already whole there may be skipped
    /// (idempotent, resumable).
    fn put_file(&self, rel: &str, src: &Path) -> Result<(), PublishError>;
    /// Writes a small object, replacing any previous one atomically (the current.json pointer).
    fn put_bytes(&self, rel: &str, bytes: &[u8]) -> Result<(), PublishError>;
    /// Removes every object below `rel` (prune, deletion).
    fn remove_tree(&self, rel: &str) -> Result<(), PublishError>;
    /// A cheap look whether the target can be written at all (credentials, bucket), so a changed
    /// deployment shows `status:"error"` before the next build needs it.
    fn check(&self) -> Result<(), PublishError> {
        Ok(())
    }
}

/// What opening a deployment's destination needs besides the deployment row.
pub struct PublishEnv {
    pub sealer: Arc<Sealer>,
    pub s3: S3Settings,
    /// Where multipart uploads in progress are recorded, so a restart resumes them.
    pub store: Store,
}

/// The sealing context of a deployment's S3 secret (the one the resources layer seals it under).
pub fn secret_context(org_id: i64, deployment: &str) -> String {
    crate::auth::sealing::context("deployment", org_id, deployment, "secretAccessKey")
}

/// Where a deployment's objects go, as a prune or publish needs it: the public origin fields,
/// the prefix and the secret still sealed (opened only when the destination is opened).
#[derive(Clone, Debug)]
pub struct TargetSpec {
    pub org_id: i64,
    pub deployment: String,
    pub prefix: String,
    pub origin: Value,
    pub sealed_secret: Option<Vec<u8>>,
}

impl TargetSpec {
    pub fn of(org_id: i64, d: &Deployment) -> TargetSpec {
        TargetSpec {
            org_id,
            deployment: d.name.clone(),
            prefix: d.origin_prefix.clone(),
            origin: d.origin.clone(),
            sealed_secret: d.origin_secret.clone(),
        }
    }
}

/// Opens the destination of a deployment.
pub fn open(env: &PublishEnv, spec: &TargetSpec) -> Result<Box<dyn Destination>, PublishError> {
    let label = format!("deployment {}", spec.deployment);
    let bad = |why: String| PublishError::new(format!("{label}: {why}"), false);
    crate::domain::origins::validate_prefix(&spec.prefix).map_err(|_| bad("its originPrefix is not valid".into()))?;
    let secret = match &spec.sealed_secret {
        Some(sealed) => Some(
            env.sealer
                .open(&secret_context(spec.org_id, &spec.deployment), sealed)
                .map_err(|_| bad("its secret cannot be opened with this server's sealing key".into()))?,
        ),
        None => None,
    };
    let origin = Origin::from_stored(&spec.origin, secret).map_err(|_| bad("its origin is not valid".into()))?;
    Ok(match origin {
        Origin::Fs { path } => Box::new(DirDestination::new(label, Path::new(&path).join(&spec.prefix))),
        Origin::S3 { endpoint, region, bucket, access_key_id, secret_access_key, path_style } => {
            let config = s3::S3Config {
                endpoint,
                region,
                bucket,
                credentials: sigv4::Credentials { access_key_id, secret_access_key },
                path_style,
                prefix: spec.prefix.clone(),
            };
            Box::new(S3Destination::new(label, config, env.s3.clone(), Some(env.store.clone())).map_err(|e| {
                PublishError::new(format!("deployment {}: {}", spec.deployment, e.message), e.retryable)
            })?)
        }
    })
}

/// The files of `dir` in publish order: data before index (`index.zst` and `patch.zst` last), so
/// no index is ever visible before the data it points to.
pub fn publish_order(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .map(|e| e.path())
        .filter(|p| !p.file_name().is_some_and(|n| n.to_string_lossy().starts_with('.')))
        .collect();
    files.sort_by_key(|p| {
        let name = p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        (name == layout::INDEX_FILE || name == layout::PATCH_FILE, name)
    });
    Ok(files)
}

/// The objects of the published directories `dirs` (relative to the depot), in publish order:
/// `(local file, object path)`.
pub fn objects_of(depot: &Path, dirs: &[String]) -> std::io::Result<Vec<(PathBuf, String)>> {
    let mut objects = Vec::new();
    for rel in dirs {
        for file in publish_order(&depot.join(rel))? {
            let name = file.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            objects.push((file, format!("{rel}/{name}")));
        }
    }
    Ok(objects)
}

/// The published directories of one retained build: its image (every dxfName directory of the
/// build in the depot) and the patches to it from `patch_sources`.
pub fn build_dirs(
    depot: &Path,
    org: &str,
    app: &str,
    build: u32,
    patch_sources: &[u32],
) -> std::io::Result<Vec<String>> {
    let mut dirs = Vec::new();
    let image_root = layout::build_rel(org, app, build);
    match std::fs::read_dir(depot.join(&image_root)) {
        Ok(entries) => {
            let mut names: Vec<String> = entries
                .filter_map(|e| e.ok())
                .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| !n.starts_with('.'))
                .collect();
            names.sort();
            dirs.extend(names.into_iter().map(|n| format!("{image_root}/{n}")));
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    for &from in patch_sources {
        let rel = layout::patch_rel(org, app, build, from);
        if depot.join(&rel).is_dir() {
            dirs.push(rel);
        }
    }
    Ok(dirs)
}
