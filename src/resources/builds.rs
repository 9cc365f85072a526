//! Imports (API.md §8) and the tasks they run (§9): `POST /be/v1/builds` takes the app for one
//! import and queues the chain's first task in the same transaction.

use super::Resources;
use crate::domain::permissions::{Resource, EXECUTE, READ, UPDATE};
use crate::error::{ApiError, ApiResult};
use crate::identity::principal::Principal;
use crate::store::apps;
use crate::store::builds as build_rows;
use crate::store::builds::{MkrawExpiry, RetryRefused};
use crate::store::tasks::{self as task_rows, Task, TaskFilter};
use crate::store::{Listed, Page};
use crate::tasks::builds::{self as chain, BuildInput, UrlSource};
use crate::tasks::commit;

/// How long `PATCH /be/v1/tasks {"expire":true}` waits for a running mkraw to stop before it
/// answers the task as it is.
const EXPIRY_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// What `POST /be/v1/builds` asks for, checked as far as its shape goes.
pub struct NewImport {
    pub app_name: String,
    pub build_name: Option<String>,
    pub source: Option<UrlSource>,
    pub size: Option<u64>,
    /// `false`: stage the build without going live.
    pub commit: bool,
}

/// How long an upload URL lives and how large an upload may be (settings).
pub struct UploadTerms {
    pub ttl: std::time::Duration,
    pub max_bytes: u64,
}

/// The one-time upload capability of an import in upload mode: 256 random bits, shown once.
pub struct UploadOffer {
    pub token: String,
    pub expires: String,
}

impl UploadOffer {
    fn new(ttl: std::time::Duration) -> UploadOffer {
        let ttl = chrono::Duration::from_std(ttl).unwrap_or(chrono::Duration::days(1));
        UploadOffer {
            token: crate::auth::b64url_encode(&crate::auth::random_bytes::<32>()),
            expires: (chrono::Utc::now() + ttl).to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        }
    }
}

/// A build URL must be http(s) with a host (the document's pattern, checked the same way as a
/// webhook URL); whether it parses and where it may point is the download's call, made when it
/// runs (DNS can change between now and then), and a refusal there fails the task visibly.
fn check_url(url: &str) -> ApiResult<()> {
    if !crate::resources::subscriptions::plausible_url(url, true) {
        return Err(ApiError::invalid("url", "must be an http or https URL with a host"));
    }
    Ok(())
}

impl Resources {
    /// Starts an import: 409 `busy` while another import of the app runs. In upload mode (no
    /// `source`) the answer carries the one-time upload capability, of which only the hash is
    /// stored.
    pub async fn create_build(
        &self,
        caller: &Principal,
        import: NewImport,
        terms: UploadTerms,
    ) -> ApiResult<(Task, Option<UploadOffer>)> {
        caller.require(Resource::APPS, UPDATE)?;
        let mut import = import;
        if let Some(source) = &mut import.source {
            check_url(&source.url)?;
            source.seal_secrets(&self.sealer, caller.org_id, &import.app_name);
        }
        if let Some(size) = import.size.filter(|s| *s > terms.max_bytes) {
            let limit = terms.max_bytes;
            // Well-formed, but over this server's configured limit (max_build_bytes): a 409 like
            // other values the server's current configuration or state refuses.
            return Err(ApiError::ConflictParam {
                param: "size",
                message: format!("{size} bytes is more than this server's limit of {limit}"),
            });
        }
        let offer = import.source.is_none().then(|| UploadOffer::new(terms.ttl));
        let stored = offer.as_ref().map(|o| (crate::auth::sha256(o.token.as_bytes()), o.expires.clone()));
        let (org_id, org_name, max_bytes) = (caller.org_id, caller.org_name.clone(), terms.max_bytes);
        let task = self
            .store
            .write(move |c| -> ApiResult<Task> {
                let app = apps::by_name(c, org_id, &import.app_name)?.ok_or(ApiError::NotFound { resource: "app" })?;
                let busy = || ApiError::Busy(format!("an import of app `{}` is running", app.name));
                if app.processing || app.exporting {
                    return Err(busy());
                }
                let build_id = build_rows::next_build_number(c, app.id)?;
                let input = BuildInput {
                    org_id,
                    org_name,
                    app_id: app.id,
                    app_name: app.name.clone(),
                    build_id,
                    build_name: import.build_name,
                    source: import.source,
                    size: import.size,
                    retained: build_rows::build_ids(c, app.id)?,
                    max_builds: app.max_builds,
                    image: None,
                    commit: import.commit,
                    live: app.i_cur_build,
                };
                let group = format!("build-{}", crate::auth::hex(&crate::auth::random_bytes::<8>()));
                let first = chain::task(chain::DLTAR, &group, &input);
                let task = build_rows::start_import(c, org_id, app.id, &first)?.ok_or_else(busy)?;
                if let Some((hash, expires)) = &stored {
                    build_rows::insert_upload(c, task.id, hash, expires, max_bytes)?;
                }
                Ok(task)
            })
            .await?;
        self.queue.wake_workers();
        Ok((task, offer))
    }

    /// `POST /be/v1/commit`: queues the `commit` task that makes `build_id` (or the newest
    /// processed build) current on every target. 409 `conflict` on `buildId` when the build is
    /// not retained or not processed, 409 `busy` while an import or another commit holds the app.
    pub async fn commit_build(&self, caller: &Principal, app_name: &str, build_id: Option<i64>) -> ApiResult<Task> {
        caller.require(Resource::APPS, UPDATE)?;
        let (org_id, org_name, app_name) = (caller.org_id, caller.org_name.clone(), app_name.to_string());
        let task = self
            .store
            .write(move |c| -> ApiResult<Task> {
                let app = apps::by_name(c, org_id, &app_name)?.ok_or(ApiError::NotFound { resource: "app" })?;
                let busy = || ApiError::Busy(format!("an import or commit of app `{}` is running", app.name));
                if app.processing || app.exporting {
                    return Err(busy());
                }
                let build = build_rows::retained_build(c, app.id, build_id)?.ok_or_else(|| {
                    let message = match build_id {
                        Some(id) => format!("build {id} of app `{}` is not retained or not processed", app.name),
                        None => format!("app `{}` has no processed build", app.name),
                    };
                    ApiError::ConflictParam { param: "buildId", message }
                })?;
                let input = commit::CommitInput {
                    org_id,
                    org_name,
                    app_id: app.id,
                    app_name: app.name.clone(),
                    build_id: build.build_id,
                    build_name: build.name,
                    size_bytes: build.size_bytes,
                    dxf_name: build.dxf_name,
                };
                build_rows::start_commit(c, org_id, app.id, &commit::task(&input))?.ok_or_else(busy)
            })
            .await?;
        self.queue.wake_workers();
        Ok(task)
    }

    /// One task of the caller's organization.
    pub async fn task(&self, caller: &Principal, name: &str) -> ApiResult<Task> {
        caller.require(Resource::TASKS, READ)?;
        let (org_id, name) = (caller.org_id, name.to_string());
        self.store
            .read(move |c| build_rows::task_in_org(c, org_id, &name))
            .await?
            .ok_or(ApiError::NotFound { resource: "task" })
    }

    /// One page of the organization's tasks; the handler renders it.
    pub async fn list_tasks(&self, caller: &Principal, filter: TaskFilter, page: Page) -> ApiResult<Listed<Task>> {
        caller.require(Resource::TASKS, READ)?;
        let org_id = caller.org_id;
        Ok(self.store.read(move |c| task_rows::list(c, org_id, &filter, &page)).await?)
    }

    /// `ackWarnings` clears the warnings; `expire` ends a task waiting for an upload (409 for any
    /// other task) and frees its app.
    pub async fn change_task(&self, caller: &Principal, name: &str, ack: bool, expire: bool) -> ApiResult<Task> {
        caller.require(Resource::TASKS, UPDATE)?;
        let (org_id, name) = (caller.org_id, name.to_string());
        if expire {
            // The partial file of a failed PUT goes with that PUT: there is nothing on disk to
            // remove, only the capability and the app's lock. A running mkraw removes its own
            // outputs when it sees the request.
            let expired = self
                .store
                .write(move |c| -> ApiResult<MkrawExpiry> {
                    if let Some(task) = build_rows::expire_upload(c, org_id, &name)? {
                        return Ok(MkrawExpiry::Expired(task));
                    }
                    match build_rows::expire_mkraw(c, org_id, &name)? {
                        Some(expiry) => Ok(expiry),
                        None if build_rows::task_in_org(c, org_id, &name)?.is_none() => {
                            Err(ApiError::NotFound { resource: "task" })
                        }
                        None => Err(ApiError::Conflict(format!(
                            "task `{name}` is neither waiting for an upload nor a queued or running mkraw"
                        ))),
                    }
                })
                .await?;
            return match expired {
                MkrawExpiry::Expired(task) => Ok(task),
                // Usually it stops within a chunk or a file of a patch: answer its end state
                // then, else the running task (the caller polls it).
                MkrawExpiry::Requested(task) => {
                    Ok(self.queue.wait(task.id, EXPIRY_WAIT).await?.filter(|t| t.status.is_final()).unwrap_or(task))
                }
            };
        }
        if !ack {
            return Err(ApiError::invalid("ackWarnings", "send ackWarnings or expire as true"));
        }
        self.store
            .write(move |c| build_rows::ack_warnings(c, org_id, &name))
            .await?
            .ok_or(ApiError::NotFound { resource: "task" })
    }

    /// `retryTask`: a failed task runs again from its checkpoint.
    pub async fn retry_task(&self, caller: &Principal, name: &str) -> ApiResult<Task> {
        caller.require(Resource::TASKS, EXECUTE)?;
        let (org_id, name) = (caller.org_id, name.to_string());
        let task =
            self.store.write(move |c| build_rows::retry(c, org_id, &name)).await?.map_err(|refused| match refused {
                RetryRefused::NotFound => ApiError::NotFound { resource: "task" },
                RetryRefused::NotFailed(status) => {
                    ApiError::Conflict(format!("only a failed task is retried; this one is {status}"))
                }
                RetryRefused::AppBusy(app) => ApiError::Busy(format!("an import of app `{app}` is running")),
            })?;
        self.queue.wake_workers();
        Ok(task)
    }
}
