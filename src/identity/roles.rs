//! Roles (API.md §3, §6): per-resource bitmasks, no grant beyond the caller's own rights, and an
//! `Administrators` role that nobody changes or deletes.

use super::principal::Principal;
use super::Identity;
use crate::domain::permissions::{Permissions, Resource, CREATE, DELETE, READ, UPDATE};
use crate::error::{ApiError, ApiResult};
use crate::store::audit;
use crate::store::roles::{self, Role};
use crate::store::{Listed, Page, StoreError, StoreResult};

fn not_found() -> ApiError {
    ApiError::NotFound { resource: "role" }
}

fn builtin_is_fixed() -> ApiError {
    ApiError::PermissionDenied("the Administrators role cannot be changed or deleted".into())
}

impl Identity {
    /// One page of roles; the handler renders it.
    pub async fn list_roles(&self, caller: &Principal, name: Option<String>, page: Page) -> ApiResult<Listed<Role>> {
        caller.require(Resource::ROLES, READ)?;
        let org_id = caller.org_id;
        Ok(self.store.read(move |c| roles::list(c, org_id, name.as_deref(), &page)).await?)
    }

    pub async fn role(&self, caller: &Principal, name: &str) -> ApiResult<Role> {
        caller.require(Resource::ROLES, READ)?;
        let (org_id, name) = (caller.org_id, name.to_string());
        self.store.read(move |c| roles::by_name(c, org_id, &name)).await?.ok_or_else(not_found)
    }

    pub async fn create_role(
        &self,
        caller: &Principal,
        name: String,
        label: String,
        permissions: Permissions,
        client: &str,
    ) -> ApiResult<Role> {
        caller.require(Resource::ROLES, CREATE)?;
        caller.require_covers(&permissions, "granting these permissions")?;
        let org_id = caller.org_id;
        let wanted = name.clone();
        let (principal, client) = (caller.username.clone(), client.to_string());
        let role = self
            .store
            .write(move |c| {
                if roles::by_name(c, org_id, &wanted)?.is_some() {
                    return Ok(None);
                }
                roles::insert(c, org_id, &wanted, &label, &permissions, false)?;
                let target = format!("{wanted} {}", permissions.summary());
                audit::record_member(c, org_id, audit::ROLE_CREATED, &principal, &client, &target)?;
                roles::by_name(c, org_id, &wanted)?
                    .ok_or_else(|| StoreError::Corrupt("new role vanished".into()))
                    .map(Some)
            })
            .await?;
        role.ok_or(ApiError::AlreadyExists { resource: "role", name })
    }

    pub async fn change_role(
        &self,
        caller: &Principal,
        name: &str,
        label: Option<String>,
        permissions: Option<Permissions>,
        client: &str,
    ) -> ApiResult<Role> {
        caller.require(Resource::ROLES, UPDATE)?;
        let current = self.role_for_change(caller, name).await?;
        // Editing a role changes the rights of everyone holding it: the caller must hold both
        // what it grants now and what it will grant.
        caller.require_covers(&current.permissions, "changing this role")?;
        if let Some(p) = &permissions {
            caller.require_covers(p, "granting these permissions")?;
        }
        let (org_id, role_id, role_name) = (caller.org_id, current.id, current.name.clone());
        let (principal, client) = (caller.username.clone(), client.to_string());
        // What the role granted and grants now: a permission change is readable from the trail.
        let target = match &permissions {
            Some(p) => format!("{role_name} {} -> {}", current.permissions.summary(), p.summary()),
            None => format!("{role_name} label"),
        };
        let role = self
            .store
            .write(move |c| -> StoreResult<Role> {
                roles::update(c, role_id, label.as_deref(), permissions.as_ref())?;
                audit::record_member(c, org_id, audit::ROLE_CHANGED, &principal, &client, &target)?;
                roles::by_name(c, org_id, &role_name)?.ok_or_else(|| StoreError::Corrupt("role vanished".into()))
            })
            .await?;
        self.cache.invalidate_all();
        Ok(role)
    }

    pub async fn delete_role(&self, caller: &Principal, name: &str, client: &str) -> ApiResult<()> {
        caller.require(Resource::ROLES, DELETE)?;
        let current = self.role_for_change(caller, name).await?;
        let (org_id, role_id, role_name) = (caller.org_id, current.id, current.name.clone());
        let (principal, client) = (caller.username.clone(), client.to_string());
        let in_use = self
            .store
            .write(move |c| -> StoreResult<_> {
                let holders = roles::holders(c, role_id)?;
                if holders > 0 {
                    return Ok(Some(holders));
                }
                roles::delete(c, role_id)?;
                audit::record_member(c, org_id, audit::ROLE_DELETED, &principal, &client, &role_name)?;
                Ok(None)
            })
            .await?;
        if let Some(holders) = in_use {
            return Err(ApiError::InUse(format!("role `{name}` is held by {holders} account(s)")));
        }
        self.cache.invalidate_all();
        Ok(())
    }

    async fn role_for_change(&self, caller: &Principal, name: &str) -> ApiResult<Role> {
        let (org_id, wanted) = (caller.org_id, name.to_string());
        let role = self.store.read(move |c| roles::by_name(c, org_id, &wanted)).await?.ok_or_else(not_found)?;
        if role.builtin {
            return Err(builtin_is_fixed());
        }
        Ok(role)
    }
}
