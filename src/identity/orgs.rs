//! Organizations: creation with their `Administrators` role and first administrator, deletion
//! with everything they own.

use super::principal::Principal;
use super::Identity;
use crate::auth::passwords;
use crate::domain::permissions::Permissions;
use crate::error::{ApiError, ApiResult};
use crate::store::tasks::{self as task_rows, Task};
use crate::store::{audit, deployments, orgs, roles, users, Listed, Page, StoreError};
use crate::tasks::prune::{self, PruneTarget};

pub struct NewOrg {
    pub name: String,
    pub label: String,
    pub public_key: Option<String>,
    pub admin_username: String,
    pub admin_profile: users::Profile,
}

pub struct CreatedOrg {
    pub org: orgs::Org,
    pub admin_username: String,
    pub initial_password: String,
}

/// A box-wide (admin-level) event about an organization.
fn box_event<'a>(event: &'a str, actor: &'a audit::Actor, org_name: &'a str) -> audit::Event<'a> {
    audit::Event {
        org_id: None,
        event,
        principal: Some(&actor.principal),
        client: Some(&actor.client),
        target: Some(org_name),
    }
}

/// What deleting an organization left to do in the background (already queued).
pub struct DeletedOrg {
    pub prune: Option<Task>,
}

impl Identity {
    pub async fn create_org(&self, new: NewOrg, actor: audit::Actor) -> ApiResult<CreatedOrg> {
        let initial_password = passwords::generate();
        let hash = self.hash_password(initial_password.clone()).await?;
        let admin_username = new.admin_username.clone();
        let org_name = new.name.clone();
        let org = self
            .store
            .write(move |c| {
                if orgs::exists(c, &new.name)? {
                    return Ok(None);
                }
                let org_id = orgs::insert(c, &new.name, &new.label, new.public_key.as_deref())?;
                let role_id =
                    roles::insert(c, org_id, roles::ADMINISTRATORS, "Administrators", &Permissions::all(), true)?;
                let user_id = users::insert(
                    c,
                    &users::NewUser {
                        org_id,
                        username: &new.admin_username,
                        kind: crate::domain::kinds::AccountKind::User,
                        profile: new.admin_profile,
                        password_hash: Some(hash),
                    },
                )?;
                users::set_roles(c, user_id, &[role_id])?;
                audit::record(c, &box_event(audit::ORG_CREATED, &actor, &new.name))?;
                orgs::by_id(c, org_id)?.ok_or_else(|| StoreError::Corrupt("new org vanished".into())).map(Some)
            })
            .await?;
        let org = org.ok_or(ApiError::AlreadyExists { resource: "org", name: org_name })?;
        log::info!("organization {} created", org.name);
        Ok(CreatedOrg { org, admin_username, initial_password })
    }

    /// Deletes an organization and all its rows; its sessions and API keys stop working on the
    /// next request. With `prune`, a background task removes its published files; it is inserted
    /// in the same transaction as the delete, so a crash cannot leave the files orphaned.
    pub async fn delete_org(&self, name: &str, prune: bool, actor: audit::Actor) -> ApiResult<DeletedOrg> {
        let org_name = name.to_string();
        let task = self
            .store
            .write(move |c| -> ApiResult<Option<Task>> {
                let org = orgs::by_name(c, &org_name)?.ok_or(ApiError::NotFound { resource: "org" })?;
                // The origins are read in the same transaction as the delete, for the prune task.
                let targets = deployments::all_of_org(c, org.id)?.iter().map(|d| PruneTarget::of(org.id, d)).collect();
                orgs::delete(c, org.id)?;
                audit::record(c, &box_event(audit::ORG_DELETED, &actor, &org_name))?;
                Ok(match prune {
                    true => Some(task_rows::insert(c, &prune::task(&org_name, None, targets, true))?),
                    false => None,
                })
            })
            .await?;
        self.cache.invalidate_all();
        if task.is_some() {
            self.queue.wake_workers();
        }
        log::info!("organization {name} deleted (prune: {prune})");
        Ok(DeletedOrg { prune: task })
    }

    /// `DELETE /be/v1/orgs/{name}`: only the caller's own organization, only by an administrator.
    pub async fn delete_own_org(
        &self,
        caller: &Principal,
        name: &str,
        prune: bool,
        actor: audit::Actor,
    ) -> ApiResult<DeletedOrg> {
        if caller.org_name != name {
            return Err(ApiError::NotFound { resource: "org" });
        }
        self.require_administrator(caller).await?;
        self.delete_org(name, prune, actor).await
    }

    /// Refuses with 403 unless the caller holds the organization's `Administrators` role.
    pub async fn require_administrator(&self, caller: &Principal) -> ApiResult<()> {
        let user_id = caller.user_id;
        if self.store.read(move |c| roles::is_administrator(c, user_id)).await? {
            Ok(())
        } else {
            Err(ApiError::PermissionDenied("only members of Administrators may do this".into()))
        }
    }

    /// One page of organizations; the handler renders it.
    pub async fn list_orgs(&self, name_filter: Option<String>, page: Page) -> ApiResult<Listed<orgs::Org>> {
        Ok(self.store.read(move |c| orgs::list(c, name_filter.as_deref(), &page)).await?)
    }
}
