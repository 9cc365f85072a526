//! Apps (API.md §8): the builds and patches lists fill once the build pipeline produces them.

use super::Resources;
use crate::domain::permissions::{Resource, CREATE, DELETE, READ, UPDATE};
use crate::error::{ApiError, ApiResult};
use crate::identity::principal::Principal;
use crate::store::apps::{self, App};
use crate::store::builds as build_rows;
use crate::store::deployments;
use crate::store::tasks::Task;
use crate::store::{Listed, Page, StoreError};
use crate::tasks::prune::{self, PruneTarget};
use crate::tasks::sync;

/// `maxBuilds` bounds [compat].
pub const MAX_BUILDS_RANGE: (i64, i64) = (1, 100);
pub const DEFAULT_MAX_BUILDS: i64 = 5;

fn not_found() -> ApiError {
    ApiError::NotFound { resource: "app" }
}

/// The deployments an app with this `deployments` list publishes to (none listed: all).
fn effective_targets(
    c: &rusqlite::Connection,
    org_id: i64,
    listed: &[String],
) -> crate::store::StoreResult<Vec<String>> {
    if !listed.is_empty() {
        return Ok(listed.to_vec());
    }
    Ok(deployments::all_of_org(c, org_id)?.into_iter().map(|d| d.name).collect())
}

/// 409, not 400: the name is well-formed, the organization just has no such deployment (yet).
fn unknown_deployment(name: String) -> ApiError {
    ApiError::ConflictParam { param: "deployments", message: format!("there is no deployment `{name}`") }
}

impl Resources {
    pub async fn create_app(
        &self,
        caller: &Principal,
        name: &str,
        label: String,
        max_builds: i64,
        deployment_names: Vec<String>,
    ) -> ApiResult<App> {
        caller.require(Resource::APPS, CREATE)?;
        let (org_id, wanted) = (caller.org_id, name.to_string());
        self.store
            .write(move |c| -> ApiResult<App> {
                if apps::id_by_name(c, org_id, &wanted)?.is_some() {
                    return Err(ApiError::AlreadyExists { resource: "app", name: wanted });
                }
                let ids = deployments::ids_by_names(c, org_id, &deployment_names)?.map_err(unknown_deployment)?;
                let id = apps::insert(c, org_id, &wanted, &label, max_builds)?;
                apps::set_deployments(c, id, &ids)?;
                Ok(apps::by_name(c, org_id, &wanted)?.ok_or_else(|| StoreError::Corrupt("new app vanished".into()))?)
            })
            .await
    }

    /// One page of apps; the handler renders it (on its async worker: rendering on the reader
    /// thread did not pay, see bench/results/*-render-placement.md).
    pub async fn list_apps(
        &self,
        caller: &Principal,
        name: Option<String>,
        status: Option<String>,
        page: Page,
    ) -> ApiResult<Listed<App>> {
        caller.require(Resource::APPS, READ)?;
        let org_id = caller.org_id;
        Ok(self.store.read(move |c| apps::list(c, org_id, name.as_deref(), status.as_deref(), &page)).await?)
    }

    pub async fn app(&self, caller: &Principal, name: &str) -> ApiResult<App> {
        caller.require(Resource::APPS, READ)?;
        let (org_id, name) = (caller.org_id, name.to_string());
        self.store.read(move |c| apps::by_name(c, org_id, &name)).await?.ok_or_else(not_found)
    }

    /// `deployments`: `None` leaves them, `Some(empty)` means all of the organization's.
    pub async fn change_app(
        &self,
        caller: &Principal,
        name: &str,
        label: Option<String>,
        max_builds: Option<i64>,
        deployment_names: Option<Vec<String>>,
    ) -> ApiResult<App> {
        caller.require(Resource::APPS, UPDATE)?;
        let (org_id, org_name, wanted) = (caller.org_id, caller.org_name.clone(), name.to_string());
        let (app, syncs) = self
            .store
            .write(move |c| -> ApiResult<(App, bool)> {
                let app = apps::by_name(c, org_id, &wanted)?.ok_or_else(not_found)?;
                let mut syncs = false;
                if let Some(names) = &deployment_names {
                    let ids = deployments::ids_by_names(c, org_id, names)?.map_err(unknown_deployment)?;
                    let before = effective_targets(c, org_id, &app.deployments)?;
                    apps::set_deployments(c, app.id, &ids)?;
                    // A deployment the app did not publish to before catches up on its builds.
                    if !app.builds.is_empty() {
                        for added in effective_targets(c, org_id, names)?.into_iter().filter(|d| !before.contains(d)) {
                            let task = sync::task(org_id, &org_name, &added, vec![wanted.clone()]);
                            build_rows::insert_task(c, org_id, &task)?;
                            syncs = true;
                        }
                    }
                }
                apps::update(c, app.id, label.as_deref(), max_builds)?;
                let app =
                    apps::by_name(c, org_id, &wanted)?.ok_or_else(|| StoreError::Corrupt("app vanished".into()))?;
                Ok((app, syncs))
            })
            .await?;
        if syncs {
            self.queue.wake_workers();
        }
        Ok(app)
    }

    /// Deletes the app and answers the background task that removes its images and patches
    /// from the depot and from every origin it published to. The task is inserted in the same
    /// transaction as the delete, so no crash can leave the files without their clean-up.
    pub async fn delete_app(&self, caller: &Principal, name: &str) -> ApiResult<Task> {
        caller.require(Resource::APPS, DELETE)?;
        let (org_id, org_name, wanted) = (caller.org_id, caller.org_name.clone(), name.to_string());
        let task = self
            .store
            .write(move |c| -> ApiResult<Task> {
                let app = apps::by_name(c, org_id, &wanted)?.ok_or_else(not_found)?;
                let all = deployments::all_of_org(c, org_id)?;
                let used: Vec<_> = all
                    .iter()
                    .filter(|d| app.deployments.is_empty() || app.deployments.contains(&d.name))
                    .map(|d| PruneTarget::of(org_id, d))
                    .collect();
                apps::delete(c, app.id)?;
                // In the organization's task list, so whoever deleted the app can follow it.
                Ok(build_rows::insert_task(c, org_id, &prune::task(&org_name, Some(&wanted), used, true))?)
            })
            .await?;
        self.queue.wake_workers();
        Ok(task)
    }
}
