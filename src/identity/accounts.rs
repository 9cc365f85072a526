//! Accounts (API.md §5): people and machines, their roles, passwords and API keys.
//!
//! The rules against privilege escalation live here: nobody assigns roles beyond their own
//! rights, and nobody acts on an account (roles, credentials, deletion) that holds rights they
//! lack — otherwise resetting an administrator's password would hand over the administrator.

use super::principal::{AccountKind, Principal};
use super::Identity;
use crate::auth::{b64url_encode, hex, passwords, random_bytes, sha256};
use crate::domain::permissions::{Permissions, Resource, CREATE, DELETE, READ, UPDATE};
use crate::error::{ApiError, ApiResult};
use crate::store::users::{Profile, User, UserFilter};
use crate::store::{api_keys, audit, roles, sessions, users, Listed, Page, StoreError, StoreResult};

/// A new account as the request describes it.
pub struct NewAccount {
    pub username: String,
    pub kind: AccountKind,
    pub profile: Profile,
    pub roles: Vec<String>,
    pub password: Option<String>,
}

/// A secret shown exactly once.
pub enum OneTimeSecret {
    InitialPassword(String),
    ApiKey { key: String, id: String, created: String },
}

/// What a `PATCH /be/v1/users` asks for.
#[derive(Default)]
pub struct AccountChange {
    pub username: Option<String>,
    pub profile: Profile,
    pub roles: Option<Vec<String>>,
    pub password: Option<(String, String)>,
    pub reset_credentials: bool,
}

fn not_found() -> ApiError {
    ApiError::NotFound { resource: "user" }
}

/// Looks up role ids by name within the organization; an unknown name is a bad parameter.
fn resolve_roles(
    c: &rusqlite::Connection,
    org_id: i64,
    names: &[String],
) -> StoreResult<Result<(Vec<i64>, Permissions), String>> {
    let mut ids = Vec::new();
    let mut union = Permissions::default();
    for name in names {
        match roles::by_name(c, org_id, name)? {
            Some(role) => {
                if !ids.contains(&role.id) {
                    ids.push(role.id);
                }
                union = union.union(&role.permissions);
            }
            None => return Ok(Err(name.clone())),
        }
    }
    Ok(Ok((ids, union)))
}

/// 409, not 400: the name is well-formed, the organization just has no such role (yet).
fn unknown_role(name: String) -> ApiError {
    ApiError::ConflictParam { param: "roles", message: format!("there is no role `{name}`") }
}

/// A new API key: `rk_` + 256 random bits, and its public id.
fn new_api_key() -> (String, String) {
    (format!("rk_{}", b64url_encode(&random_bytes::<32>())), format!("ak_{}", hex(&random_bytes::<8>())))
}

impl Identity {
    pub async fn create_account(
        &self,
        caller: &Principal,
        new: NewAccount,
        client: &str,
    ) -> ApiResult<(User, Option<OneTimeSecret>)> {
        caller.require(Resource::BE_USERS, CREATE)?;
        let org_id = caller.org_id;
        let names = new.roles.clone();
        let (role_ids, granted) =
            self.store.read(move |c| resolve_roles(c, org_id, &names)).await?.map_err(unknown_role)?;
        caller.require_covers(&granted, "assigning these roles")?;
        let (hash, secret) = match new.kind {
            AccountKind::User => {
                let password = new.password.clone().unwrap_or_else(passwords::generate);
                let shown = if new.password.is_some() { None } else { Some(password.clone()) };
                (Some(self.hash_password(password).await?), shown.map(OneTimeSecret::InitialPassword))
            }
            AccountKind::Machine => (None, None),
        };
        let api_key = (new.kind == AccountKind::Machine).then(new_api_key);
        let key_for_store = api_key.clone();
        let username = new.username.clone();
        let (principal, client) = (caller.username.clone(), client.to_string());
        let created = self
            .store
            .write(move |c| -> StoreResult<_> {
                if users::by_name(c, org_id, &new.username)?.is_some() {
                    return Ok(None);
                }
                let user_id = users::insert(
                    c,
                    &users::NewUser {
                        org_id,
                        username: &new.username,
                        kind: new.kind,
                        profile: new.profile,
                        password_hash: hash,
                    },
                )?;
                users::set_roles(c, user_id, &role_ids)?;
                let target = format!("{} roles=[{}]", new.username, new.roles.join(","));
                audit::record_member(c, org_id, audit::USER_CREATED, &principal, &client, &target)?;
                let key_created = match &key_for_store {
                    Some((key, id)) => {
                        let created = api_keys::insert(c, id, org_id, user_id, &sha256(key.as_bytes()))?;
                        let target = format!("{} {id}", new.username);
                        audit::record_member(c, org_id, audit::APIKEY_CREATED, &principal, &client, &target)?;
                        Some(created)
                    }
                    None => None,
                };
                let user =
                    users::by_id(c, org_id, user_id)?.ok_or_else(|| StoreError::Corrupt("new user vanished".into()))?;
                Ok(Some((user, key_created)))
            })
            .await?;
        let (user, key_created) = created.ok_or(ApiError::AlreadyExists { resource: "user", name: username })?;
        let secret = match (api_key, key_created) {
            (Some((key, id)), Some(created)) => Some(OneTimeSecret::ApiKey { key, id, created }),
            _ => secret,
        };
        Ok((user, secret))
    }

    /// One page of accounts; the handler renders it.
    pub async fn list_accounts(
        &self,
        caller: &Principal,
        username: Option<String>,
        kind: Option<String>,
        role: Option<String>,
        page: Page,
    ) -> ApiResult<Listed<User>> {
        caller.require(Resource::BE_USERS, READ)?;
        let org_id = caller.org_id;
        Ok(self
            .store
            .read(move |c| {
                let filter = UserFilter { username: username.as_deref(), kind: kind.as_deref(), role: role.as_deref() };
                users::list(c, org_id, &filter, &page)
            })
            .await?)
    }

    /// Details of an account: one's own always, others' with `beUsers` read.
    pub async fn account(&self, caller: &Principal, username: &str) -> ApiResult<User> {
        if username != caller.username {
            caller.require(Resource::BE_USERS, READ)?;
        }
        let (org_id, name) = (caller.org_id, username.to_string());
        self.store.read(move |c| users::by_name(c, org_id, &name)).await?.ok_or_else(not_found)
    }

    /// Loads the target of a change and its current rights.
    pub(super) async fn target(&self, caller: &Principal, username: &str) -> ApiResult<(User, Permissions)> {
        let (org_id, name) = (caller.org_id, username.to_string());
        self.store
            .read(move |c| match users::by_name(c, org_id, &name)? {
                Some(user) => {
                    let rights = roles::permissions_of(c, user.id)?;
                    Ok(Some((user, rights)))
                }
                None => Ok(None),
            })
            .await?
            .ok_or_else(not_found)
    }

    /// Acting on someone else's account needs `bit` on beUsers and every right they hold.
    pub(super) fn require_over(caller: &Principal, target: &User, rights: &Permissions, bit: u8) -> ApiResult<()> {
        caller.require(Resource::BE_USERS, bit)?;
        if target.id != caller.user_id {
            caller.require_covers(rights, "acting on this account")?;
        }
        Ok(())
    }

    pub async fn change_account(
        &self,
        caller: &Principal,
        change: AccountChange,
        client: &str,
    ) -> ApiResult<(User, Option<OneTimeSecret>)> {
        let username = change.username.clone().unwrap_or_else(|| caller.username.clone());
        let (target, rights) = self.target(caller, &username).await?;
        let is_self = target.id == caller.user_id;
        let touches_profile = [
            &change.profile.email,
            &change.profile.firstname,
            &change.profile.surname,
            &change.profile.title,
            &change.profile.label,
        ]
        .iter()
        .any(|f| f.is_some());
        if touches_profile && !is_self {
            Self::require_over(caller, &target, &rights, UPDATE)?;
        }
        if change.roles.is_some() {
            Self::require_over(caller, &target, &rights, UPDATE)?;
        }
        if change.reset_credentials {
            Self::require_over(caller, &target, &rights, UPDATE)?;
        }
        let mut new_hash = None;
        if let Some((old, new)) = &change.password {
            if !is_self {
                return Err(ApiError::PermissionDenied(
                    "only the account itself can change its password this way; use resetCreds".into(),
                ));
            }
            if target.kind != AccountKind::User {
                return Err(ApiError::ConflictParam {
                    param: "newPW",
                    message: "machine accounts have no password".into(),
                });
            }
            let keys = vec![format!("acct:{}", target.username)];
            self.limiter.check(&keys).map_err(|retry_after| ApiError::RateLimited { retry_after })?;
            if !self.verify_password(target.password_hash.clone(), old.clone()).await? {
                self.limiter.record_failure(&keys);
                return Err(ApiError::DeniedParam { param: "oldPW", message: "the old password is wrong".into() });
            }
            new_hash = Some(self.hash_password(new.clone()).await?);
        }
        let mut secret = None;
        let mut reset_hash = None;
        let mut reset_key = None;
        if change.reset_credentials {
            if target.kind == AccountKind::Machine {
                reset_key = Some(new_api_key());
            } else {
                let password = passwords::generate();
                reset_hash = Some(self.hash_password(password.clone()).await?);
                secret = Some(OneTimeSecret::InitialPassword(password));
            }
        }
        let org_id = caller.org_id;
        let caller_rights = caller.permissions;
        let caller_session = caller.session_id.clone();
        let target_id = target.id;
        let key_for_store = reset_key.clone();
        let (principal, client, target_name) = (caller.username.clone(), client.to_string(), target.username.clone());
        let reset = change.reset_credentials;
        let outcome = self
            .store
            .write(move |c| -> ApiResult<(User, Option<String>)> {
                if let Some(names) = &change.roles {
                    let (ids, granted) = resolve_roles(c, org_id, names)?.map_err(unknown_role)?;
                    if !caller_rights.covers(&granted) {
                        return Err(ApiError::PermissionDenied(
                            "assigning these roles needs rights you do not hold".into(),
                        ));
                    }
                    if roles::is_administrator(c, target_id)? {
                        let keeps_admin = ids.contains(&roles::administrators_id(c, org_id)?);
                        if !keeps_admin && roles::administrators_count(c, org_id)? <= 1 {
                            return Err(ApiError::Conflict(
                                "the last member of Administrators cannot be removed from it".into(),
                            ));
                        }
                    }
                    users::set_roles(c, target_id, &ids)?;
                    let target = format!("{target_name} roles=[{}]", names.join(","));
                    audit::record_member(c, org_id, audit::USER_ROLES_CHANGED, &principal, &client, &target)?;
                }
                if reset {
                    audit::record_member(c, org_id, audit::CREDENTIALS_RESET, &principal, &client, &target_name)?;
                }
                users::update_profile(c, target_id, &change.profile)?;
                if let Some(hash) = &new_hash {
                    users::set_password_hash(c, target_id, hash)?;
                    // Other sessions end; the one that changed the password stays.
                    sessions::revoke_all_of_user_but(c, target_id, caller_session.as_deref())?;
                }
                if let Some(hash) = &reset_hash {
                    users::set_password_hash(c, target_id, hash)?;
                    sessions::revoke_all_of_user(c, target_id)?;
                }
                let mut key_created = None;
                if let Some((key, id)) = &key_for_store {
                    api_keys::delete_all_of_user(c, target_id)?;
                    key_created = Some(api_keys::insert(c, id, org_id, target_id, &sha256(key.as_bytes()))?);
                    let target = format!("{target_name} {id}");
                    audit::record_member(c, org_id, audit::APIKEY_CREATED, &principal, &client, &target)?;
                }
                let user =
                    users::by_id(c, org_id, target_id)?.ok_or_else(|| StoreError::Corrupt("user vanished".into()))?;
                Ok((user, key_created))
            })
            .await?;
        self.cache.invalidate_all();
        let (user, key_created) = outcome;
        if let (Some((key, id)), Some(created)) = (reset_key, key_created) {
            secret = Some(OneTimeSecret::ApiKey { key, id, created });
        }
        Ok((user, secret))
    }

    pub async fn delete_account(&self, caller: &Principal, username: &str, client: &str) -> ApiResult<()> {
        caller.require(Resource::BE_USERS, DELETE)?;
        let (target, rights) = self.target(caller, username).await?;
        if target.id == caller.user_id {
            return Err(ApiError::Conflict("you cannot delete your own account".into()));
        }
        caller.require_covers(&rights, "deleting this account")?;
        let (org_id, target_id) = (caller.org_id, target.id);
        let (principal, client, target_name) = (caller.username.clone(), client.to_string(), target.username.clone());
        self.store
            .write(move |c| -> ApiResult<()> {
                if roles::is_administrator(c, target_id)? && roles::administrators_count(c, org_id)? <= 1 {
                    return Err(ApiError::Conflict("the last member of Administrators cannot be deleted".into()));
                }
                users::delete(c, org_id, target_id)?;
                audit::record_member(c, org_id, audit::USER_DELETED, &principal, &client, &target_name)?;
                Ok(())
            })
            .await?;
        self.cache.invalidate_all();
        Ok(())
    }

    /// `POST /be/v1/apikeys`: a new key for a machine account (the caller by default).
    pub async fn create_api_key(
        &self,
        caller: &Principal,
        username: Option<&str>,
        client: &str,
    ) -> ApiResult<OneTimeSecret> {
        let username = username.unwrap_or(&caller.username).to_string();
        let (target, rights) = self.target(caller, &username).await?;
        if target.id != caller.user_id {
            Self::require_over(caller, &target, &rights, UPDATE)?;
        }
        if target.kind != AccountKind::Machine {
            return Err(ApiError::ConflictParam {
                param: "username",
                message: "API keys belong to machine accounts".into(),
            });
        }
        let (key, id) = new_api_key();
        let (org_id, user_id, hash, key_id) = (caller.org_id, target.id, sha256(key.as_bytes()), id.clone());
        let (principal, client, target_name) = (caller.username.clone(), client.to_string(), target.username.clone());
        let created = self
            .store
            .write(move |c| -> StoreResult<String> {
                let created = api_keys::insert(c, &key_id, org_id, user_id, &hash)?;
                let target = format!("{target_name} {key_id}");
                let event = audit::Event {
                    org_id: Some(org_id),
                    event: audit::APIKEY_CREATED,
                    principal: Some(&principal),
                    client: Some(&client),
                    target: Some(&target),
                };
                audit::record(c, &event)?;
                Ok(created)
            })
            .await?;
        Ok(OneTimeSecret::ApiKey { key, id, created })
    }

    /// Keys of the organization with `beUsers` read; otherwise only the caller's own.
    /// One page of API keys; the handler renders it.
    pub async fn list_api_keys(
        &self,
        caller: &Principal,
        username: Option<String>,
        page: Page,
    ) -> ApiResult<Listed<api_keys::ApiKey>> {
        let owner = (!caller.permissions.has(Resource::BE_USERS, READ)).then_some(caller.user_id);
        let org_id = caller.org_id;
        Ok(self.store.read(move |c| api_keys::list(c, org_id, owner, username.as_deref(), &page)).await?)
    }

    pub async fn delete_api_key(&self, caller: &Principal, id: &str, client: &str) -> ApiResult<()> {
        let (org_id, key_id) = (caller.org_id, id.to_string());
        let key = self.store.read(move |c| api_keys::by_id(c, org_id, &key_id)).await?;
        let key = key.ok_or(ApiError::NotFound { resource: "apiKey" })?;
        if key.user_id != caller.user_id {
            let (target, rights) = self.target(caller, &key.username).await?;
            Self::require_over(caller, &target, &rights, UPDATE)?;
        }
        let (key_id, principal, client) = (id.to_string(), caller.username.clone(), client.to_string());
        self.store
            .write(move |c| -> StoreResult<()> {
                api_keys::delete(c, org_id, &key_id)?;
                let target = format!("{} {key_id}", key.username);
                let event = audit::Event {
                    org_id: Some(org_id),
                    event: audit::APIKEY_DELETED,
                    principal: Some(&principal),
                    client: Some(&client),
                    target: Some(&target),
                };
                audit::record(c, &event)
            })
            .await?;
        self.cache.invalidate_all();
        Ok(())
    }
}
