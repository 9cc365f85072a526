//! Deployments: publish targets with their secrets sealed at rest (API.md §7).

use std::path::Path;

use serde_json::{json, Map, Value};

use super::{prune_target, Resources};
use crate::domain::origins::{self, DownloadAuth, Origin};
use crate::domain::permissions::{Resource, CREATE, DELETE, READ, UPDATE};
use crate::error::{ApiError, ApiResult};
use crate::identity::principal::Principal;
use crate::store::deployments::{self, Deployment, DeploymentWrite};
use crate::store::tasks::NewTask;
use crate::store::{Listed, Page, StoreError, StoreResult};

/// A deployment's settings as the request gives them (secrets in clear, not yet sealed).
#[derive(Clone, Debug)]
pub struct DeploymentSpec {
    pub label: String,
    pub origin_prefix: String,
    pub origin: Origin,
    pub download_auth: Option<DownloadAuth>,
}

impl DeploymentSpec {
    /// Parses a full description (create, or a PATCH merged onto the current one).
    pub fn parse(body: &Map<String, Value>, name: &str) -> ApiResult<DeploymentSpec> {
        let label = match body.get("label") {
            None | Some(Value::Null) => name.to_string(),
            Some(Value::String(s)) => s.clone(),
            Some(_) => return Err(ApiError::invalid("label", "`label` must be a string")),
        };
        let origin_prefix = match body.get("originPrefix") {
            None | Some(Value::Null) => String::new(),
            Some(Value::String(s)) => s.trim_end_matches('/').to_string(),
            Some(_) => return Err(ApiError::invalid("originPrefix", "`originPrefix` must be a string")),
        };
        origins::validate_prefix(&origin_prefix)?;
        let origin =
            Origin::parse(body.get("origin").filter(|v| !v.is_null()).ok_or_else(|| ApiError::missing("origin"))?)?;
        let download_auth = match body.get("downloadAuth") {
            None | Some(Value::Null) => None,
            Some(value) => Some(DownloadAuth::parse(value)?),
        };
        Ok(DeploymentSpec { label, origin_prefix, origin, download_auth })
    }

    /// Everything, secrets included, for merging a PATCH onto it.
    fn to_json_with_secrets(&self) -> Map<String, Value> {
        let mut map = Map::new();
        map.insert("label".into(), json!(self.label));
        map.insert("originPrefix".into(), json!(self.origin_prefix));
        map.insert("origin".into(), self.origin.to_json_with_secrets());
        map.insert(
            "downloadAuth".into(),
            self.download_auth.as_ref().map_or(Value::Null, DownloadAuth::to_json_with_secrets),
        );
        map
    }
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

    async fn check_origin(&self, origin: &Origin) -> ApiResult<()> {
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
        let created = self
            .store
            .write(move |c| {
                if deployments::by_name(c, org_id, &name_owned)?.is_some() {
                    return Ok(None);
                }
                deployments::insert(c, org_id, &name_owned, &write)?;
                deployments::by_name(c, org_id, &name_owned)
            })
            .await?;
        created.ok_or_else(|| ApiError::AlreadyExists { resource: "deployment", name: name.to_string() })
    }

    /// One page of deployments, handed to `render` on the reader thread (see `list_apps`).
    pub async fn list_deployments<R: Send + 'static>(
        &self,
        caller: &Principal,
        name: Option<String>,
        status: Option<String>,
        page: Page,
        render: impl FnOnce(Listed<Deployment>) -> R + Send + 'static,
    ) -> ApiResult<R> {
        caller.require(Resource::DEPLOYMENTS, READ)?;
        let org_id = caller.org_id;
        Ok(self
            .store
            .read(move |c| Ok(render(deployments::list(c, org_id, name.as_deref(), status.as_deref(), &page)?)))
            .await?)
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
    pub async fn change_deployment(
        &self,
        caller: &Principal,
        name: &str,
        patch: &Map<String, Value>,
    ) -> ApiResult<Deployment> {
        caller.require(Resource::DEPLOYMENTS, UPDATE)?;
        let current = self.find_deployment(caller, name).await?;
        let current_spec = DeploymentSpec {
            label: current.label.clone(),
            origin_prefix: current.origin_prefix.clone(),
            origin: self.open_origin(caller.org_id, &current)?,
            download_auth: self.open_download_auth(caller.org_id, &current)?,
        };
        let mut merged = current_spec.to_json_with_secrets();
        for field in ["label", "originPrefix", "origin", "downloadAuth"] {
            let Some(new) = patch.get(field) else { continue };
            let value = match (field, new) {
                ("origin", Value::Null) => return Err(ApiError::invalid("origin", "`origin` cannot be removed")),
                ("origin" | "downloadAuth", _) => origins::merge(&merged[field], new),
                _ => new.clone(),
            };
            merged.insert(field.to_string(), value);
        }
        let spec = DeploymentSpec::parse(&merged, name)?;
        if spec.origin != current_spec.origin {
            self.check_origin(&spec.origin).await?;
        }
        let write = self.seal_spec(caller.org_id, name, &spec);
        let (org_id, id, name) = (caller.org_id, current.id, name.to_string());
        self.store
            .write(move |c| -> StoreResult<Deployment> {
                deployments::update(c, id, &write)?;
                deployments::by_name(c, org_id, &name)?.ok_or_else(|| StoreError::Corrupt("deployment vanished".into()))
            })
            .await
            .map_err(Into::into)
    }

    /// Deletes an unused deployment and answers the background task that removes what was
    /// published there.
    pub async fn delete_deployment(&self, caller: &Principal, name: &str) -> ApiResult<NewTask> {
        caller.require(Resource::DEPLOYMENTS, DELETE)?;
        let (org_id, wanted) = (caller.org_id, name.to_string());
        let outcome = self
            .store
            .write(move |c| -> StoreResult<Result<Deployment, ApiError>> {
                let Some(d) = deployments::by_name(c, org_id, &wanted)? else { return Ok(Err(not_found())) };
                let apps = deployments::listed_by_apps(c, d.id)?;
                if !apps.is_empty() {
                    return Ok(Err(ApiError::InUse(format!(
                        "deployment `{wanted}` is listed by app(s) {}",
                        apps.join(", ")
                    ))));
                }
                deployments::delete(c, d.id)?;
                Ok(Ok(d))
            })
            .await??;
        Ok(super::prune_task(&caller.org_name, None, vec![prune_target(&outcome)], false))
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
