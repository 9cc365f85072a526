//! Deployments: publish targets with their secrets sealed at rest (API.md §7).

use std::path::Path;

use super::Resources;
use crate::domain::origins::{self, DownloadAuth, DownloadAuthFields, Origin, OriginFields};
use crate::domain::permissions::{Resource, CREATE, DELETE, READ, UPDATE};
use crate::error::{ApiError, ApiResult};
use crate::identity::principal::Principal;
use crate::store::deployments::{self, Deployment, DeploymentWrite};
use crate::store::tasks::Task;
use crate::store::{apps, builds as build_rows};
use crate::store::{Listed, Page, StoreError, StoreResult};
use crate::tasks::prune::{self, PruneTarget};
use crate::tasks::sync;

/// A deployment's settings as the request gives them (secrets in clear, not yet sealed).
#[derive(Clone, Debug)]
pub struct DeploymentSpec {
    pub label: String,
    pub origin_prefix: String,
    pub origin: Origin,
    pub download_auth: Option<DownloadAuth>,
}

impl DeploymentSpec {
    /// Checks a full description (create); `label` defaults to the name.
    pub fn new(
        name: &str,
        label: Option<String>,
        origin_prefix: Option<String>,
        origin: &OriginFields,
        download_auth: Option<&DownloadAuthFields>,
    ) -> ApiResult<DeploymentSpec> {
        let origin_prefix = origin_prefix.map(|p| p.trim_end_matches('/').to_string()).unwrap_or_default();
        origins::validate_prefix(&origin_prefix)?;
        Ok(DeploymentSpec {
            label: label.unwrap_or_else(|| name.to_string()),
            origin_prefix,
            origin: Origin::from_fields(origin)?,
            download_auth: download_auth.map(DownloadAuth::from_fields).transpose()?,
        })
    }
}

/// A PATCH of a deployment: `None` leaves a field, `Some(None)` removes an optional one.
#[derive(Debug, Default)]
pub struct DeploymentPatch {
    pub label: Option<Option<String>>,
    pub origin_prefix: Option<Option<String>>,
    pub origin: Option<Option<OriginFields>>,
    pub download_auth: Option<Option<DownloadAuthFields>>,
}

fn not_found() -> ApiError {
    ApiError::NotFound { resource: "deployment" }
}

/// Where `path` will really be: its deepest existing ancestor resolved (links and all), with the
/// parts that do not exist yet appended.
fn resolved(path: &Path) -> std::io::Result<std::path::PathBuf> {
    let mut existing = path;
    let mut rest = Vec::new();
    while !existing.exists() {
        rest.push(existing.file_name().unwrap_or_default().to_owned());
        existing = existing.parent().unwrap_or(Path::new("/"));
    }
    let mut real = existing.canonicalize()?;
    real.extend(rest.iter().rev());
    Ok(real)
}

/// An `fs` origin must be a directory the service can write, outside its own state directory.
/// The location is checked before anything is created.
/// The answer names neither the resolved path nor the OS error (they would map the box's file
/// system for an API user); the operator finds both in the log.
fn prepare_fs_origin(path: &Path, state_dir: &Path, roots: &[std::path::PathBuf]) -> ApiResult<()> {
    let bad = |why: &str| ApiError::invalid("origin.path", why.to_string());
    let state = state_dir.canonicalize().unwrap_or_else(|_| state_dir.to_path_buf());
    let real = resolved(path).map_err(|e| {
        log::warn!("fs origin {}: cannot resolve: {e}", path.display());
        bad("`origin.path` cannot be used")
    })?;
    if real.starts_with(&state) || state.starts_with(&real) {
        return Err(bad("`origin.path` must not contain or be inside the server's state directory"));
    }
    // Resolved, so neither `..` nor a symlink leads out of the allowed directories.
    let inside = |root: &std::path::PathBuf| real.starts_with(root.canonicalize().unwrap_or_else(|_| root.clone()));
    if !roots.is_empty() && !roots.iter().any(inside) {
        log::warn!("fs origin {} (resolved {}) is outside origin_roots", path.display(), real.display());
        return Err(bad("`origin.path` must be inside a directory the operator allows for origins (origin_roots)"));
    }
    std::fs::create_dir_all(&real).map_err(|e| {
        log::warn!("fs origin {} (resolved {}): cannot create: {e}", path.display(), real.display());
        bad("`origin.path` cannot be created by the service")
    })?;
    let probe = real.join(format!(".rockit-edge-write-test-{}", crate::auth::hex(&crate::auth::random_bytes::<6>())));
    std::fs::write(&probe, b"").map_err(|e| {
        log::warn!("fs origin {} (resolved {}): not writable: {e}", path.display(), real.display());
        bad("`origin.path` is not writable by the service")
    })?;
    let _ = std::fs::remove_file(&probe);
    Ok(())
}

impl Resources {
    fn seal_spec(&self, org_id: i64, name: &str, spec: &DeploymentSpec) -> DeploymentWrite {
        DeploymentWrite {
            label: spec.label.clone(),
            origin_prefix: spec.origin_prefix.clone(),
            origin_type: spec.origin.kind().into(),
            origin: spec.origin.public_fields(),
            origin_secret: spec
                .origin
                .secret()
                .map(|s| self.sealer.seal(&Self::context("deployment", org_id, name, "secretAccessKey"), s)),
            download_auth_type: spec.download_auth.as_ref().map(|a| a.kind.clone()),
            download_auth_key: spec
                .download_auth
                .as_ref()
                .map(|a| self.sealer.seal(&Self::context("deployment", org_id, name, "downloadAuth"), &a.key)),
        }
    }

    pub(super) async fn check_origin(&self, origin: &Origin) -> ApiResult<()> {
        if let Origin::Fs { path } = origin {
            let (path, state, roots) =
                (std::path::PathBuf::from(path), self.state_dir.clone(), self.origin_roots.clone());
            tokio::task::spawn_blocking(move || prepare_fs_origin(&path, &state, &roots))
                .await
                .map_err(ApiError::internal)??;
        }
        Ok(())
    }

    pub async fn create_deployment(
        &self,
        caller: &Principal,
        name: &str,
        spec: DeploymentSpec,
    ) -> ApiResult<Deployment> {
        caller.require(Resource::DEPLOYMENTS, CREATE)?;
        self.check_origin(&spec.origin).await?;
        let (org_id, name_owned) = (caller.org_id, name.to_string());
        let write = self.seal_spec(org_id, name, &spec);
        let org_name = caller.org_name.clone();
        let created = self
            .store
            .write(move |c| {
                if deployments::by_name(c, org_id, &name_owned)?.is_some() {
                    return Ok(None);
                }
                deployments::insert(c, org_id, &name_owned, &write)?;
                // Apps that list no deployment publish here from now on: their builds catch up.
                let behind: Vec<String> = apps::publishing_to(c, org_id, &name_owned)?
                    .into_iter()
                    .filter(|a| !a.builds.is_empty())
                    .map(|a| a.name)
                    .collect();
                if !behind.is_empty() {
                    build_rows::insert_task(c, org_id, &sync::task(org_id, &org_name, &name_owned, behind))?;
                }
                deployments::by_name(c, org_id, &name_owned)
            })
            .await?;
        self.queue.wake_workers();
        created.ok_or_else(|| ApiError::AlreadyExists { resource: "deployment", name: name.to_string() })
    }

    /// One page of deployments; the handler renders it.
    pub async fn list_deployments(
        &self,
        caller: &Principal,
        name: Option<String>,
        status: Option<String>,
        page: Page,
    ) -> ApiResult<Listed<Deployment>> {
        caller.require(Resource::DEPLOYMENTS, READ)?;
        let org_id = caller.org_id;
        Ok(self.store.read(move |c| deployments::list(c, org_id, name.as_deref(), status.as_deref(), &page)).await?)
    }

    pub async fn deployment(&self, caller: &Principal, name: &str) -> ApiResult<Deployment> {
        caller.require(Resource::DEPLOYMENTS, READ)?;
        self.find_deployment(caller, name).await
    }

    async fn find_deployment(&self, caller: &Principal, name: &str) -> ApiResult<Deployment> {
        let (org_id, name) = (caller.org_id, name.to_string());
        self.store.read(move |c| deployments::by_name(c, org_id, &name)).await?.ok_or_else(not_found)
    }

    /// `PATCH`: only what is sent changes; `null` removes an optional field; an origin or
    /// download auth of the same type merges field by field (so a secret can be rotated alone).
    /// The merge happens on typed fields in memory: no secret is ever written into JSON.
    pub async fn change_deployment(
        &self,
        caller: &Principal,
        name: &str,
        patch: DeploymentPatch,
    ) -> ApiResult<Deployment> {
        caller.require(Resource::DEPLOYMENTS, UPDATE)?;
        let current = self.find_deployment(caller, name).await?;
        let current_origin = self.open_origin(caller.org_id, &current)?;
        let current_auth = self.open_download_auth(caller.org_id, &current)?;
        let label = match patch.label {
            None => current.label.clone(),
            Some(label) => label.unwrap_or_else(|| name.to_string()),
        };
        let origin_prefix = match patch.origin_prefix {
            None => current.origin_prefix.clone(),
            Some(prefix) => prefix.map(|p| p.trim_end_matches('/').to_string()).unwrap_or_default(),
        };
        origins::validate_prefix(&origin_prefix)?;
        let origin = match patch.origin {
            None => current_origin.clone(),
            Some(None) => return Err(ApiError::invalid("origin", "`origin` cannot be removed")),
            Some(Some(fields)) => Origin::from_fields(&fields.merged_onto(current_origin.to_fields()))?,
        };
        let download_auth = match patch.download_auth {
            None => current_auth,
            Some(None) => None,
            Some(Some(fields)) => {
                let current = current_auth.as_ref().map(DownloadAuth::to_fields).unwrap_or_default();
                Some(DownloadAuth::from_fields(&fields.merged_onto(current))?)
            }
        };
        let spec = DeploymentSpec { label, origin_prefix, origin, download_auth };
        if spec.origin != current_origin {
            self.check_origin(&spec.origin).await?;
        }
        // Where or how the objects are written changed: check the target again and bring it up
        // to date in the background (the deployment's status says how that went).
        let recheck = spec.origin != current_origin || spec.origin_prefix != current.origin_prefix;
        let write = self.seal_spec(caller.org_id, name, &spec);
        let (org_id, org_name, id, name) = (caller.org_id, caller.org_name.clone(), current.id, name.to_string());
        let changed = self
            .store
            .write(move |c| -> StoreResult<Deployment> {
                deployments::update(c, id, &write)?;
                if recheck {
                    build_rows::insert_task(c, org_id, &sync::task(org_id, &org_name, &name, Vec::new()))?;
                }
                deployments::by_name(c, org_id, &name)?.ok_or_else(|| StoreError::Corrupt("deployment vanished".into()))
            })
            .await?;
        if recheck {
            self.queue.wake_workers();
        }
        Ok(changed)
    }

    /// Deletes an unused deployment and answers the background task that removes what was
    /// published there; the task commits with the delete.
    pub async fn delete_deployment(&self, caller: &Principal, name: &str) -> ApiResult<Task> {
        caller.require(Resource::DEPLOYMENTS, DELETE)?;
        let (org_id, org_name, wanted) = (caller.org_id, caller.org_name.clone(), name.to_string());
        let task = self
            .store
            .write(move |c| -> ApiResult<Task> {
                let d = deployments::by_name(c, org_id, &wanted)?.ok_or_else(not_found)?;
                let apps = deployments::listed_by_apps(c, d.id)?;
                if !apps.is_empty() {
                    return Err(ApiError::InUse(format!(
                        "deployment `{wanted}` is listed by app(s) {}",
                        apps.join(", ")
                    )));
                }
                deployments::delete(c, d.id)?;
                // In the organization's task list, so whoever deleted the deployment can follow it.
                let task = prune::task(&org_name, None, vec![PruneTarget::of(org_id, &d)], false);
                Ok(build_rows::insert_task(c, org_id, &task)?)
            })
            .await?;
        self.queue.wake_workers();
        Ok(task)
    }

    fn open_download_auth(&self, org_id: i64, d: &Deployment) -> ApiResult<Option<DownloadAuth>> {
        match (&d.download_auth_type, &d.download_auth_key) {
            (Some(kind), Some(sealed)) => {
                let key = self
                    .sealer
                    .open(&Self::context("deployment", org_id, &d.name, "downloadAuth"), sealed)
                    .map_err(ApiError::internal)?;
                Ok(Some(DownloadAuth { kind: kind.clone(), key }))
            }
            _ => Ok(None),
        }
    }
}
