//! Who a `/be/v1` caller is, checked on every request: signature and expiry of the access
//! token (or the API key triple), a live session, an existing account, and its current rights.

use std::sync::Arc;

use super::Identity;
use crate::auth::claims::AccessClaims;
use crate::auth::keyring::TokenKind;
use crate::auth::sha256;
use crate::domain::permissions::{Permissions, Resource};
use crate::error::{ApiError, ApiResult};
use crate::store::{api_keys, orgs, roles, sessions, users};

pub use crate::domain::kinds::AccountKind;

/// An authenticated caller of the Backend API.
#[derive(Clone, Debug)]
pub struct Principal {
    pub org_id: i64,
    pub org_name: String,
    pub user_id: i64,
    pub username: String,
    pub kind: AccountKind,
    pub permissions: Permissions,
    /// The login session, for token callers.
    pub session_id: Option<String>,
    /// The key used, for API key callers.
    pub api_key_id: Option<String>,
}

impl Principal {
    /// Refuses with 403 unless the caller holds `bit` on `resource`.
    pub fn require(&self, resource: Resource, bit: u8) -> ApiResult<()> {
        if self.permissions.has(resource, bit) {
            Ok(())
        } else {
            Err(ApiError::MissingPermission { resource: resource.name(), bit })
        }
    }

    /// Refuses with 403 unless the caller holds every bit of `other` (no privilege escalation).
    pub fn require_covers(&self, other: &Permissions, what: &str) -> ApiResult<()> {
        if self.permissions.covers(other) {
            Ok(())
        } else {
            Err(ApiError::PermissionDenied(format!("{what} needs rights you do not hold")))
        }
    }
}

/// The credentials a request carries.
pub enum Credentials<'a> {
    AccessToken(&'a str),
    ApiKey { org: &'a str, username: &'a str, key: &'a str },
}

impl Identity {
    /// Resolves credentials to a principal, from the cache when it is current.
    pub async fn authenticate(&self, credentials: Credentials<'_>) -> ApiResult<Arc<Principal>> {
        match credentials {
            Credentials::AccessToken(token) => self.by_access_token(token).await,
            Credentials::ApiKey { org, username, key } => self.by_api_key(org, username, key).await,
        }
    }

    /// Cached by the exact token text: a hit means this very token was verified before, under the
    /// current epoch, and has not reached its `exp` — so signature and claims need no second look.
    async fn by_access_token(&self, token: &str) -> ApiResult<Arc<Principal>> {
        let now = super::unix_now();
        if let Some(principal) = self.cache.get(token, now) {
            return Ok(principal);
        }
        let stamp = self.cache.epoch();
        let claims: AccessClaims = self.keyring.key(TokenKind::Access).verify_as(token, now)?;
        let (session_id, user_id, expires) = (claims.sid, claims.sub, claims.exp);
        let sid = session_id.clone();
        let principal = self
            .store
            .read(move |c| {
                let Some(session) = sessions::get(c, &sid)? else { return Ok(None) };
                if session.revoked || session.expires < now || session.user_id != user_id {
                    return Ok(None);
                }
                Ok(load_principal(c, session.org_id, session.user_id)?.map(|p| (p, session.expires)))
            })
            .await?
            .ok_or(ApiError::TokenRevoked)?;
        let (principal, session_expires) = principal;
        let principal = Arc::new(Principal { session_id: Some(session_id), ..principal });
        // Valid until the token's exp or the session's end, whichever comes first.
        self.cache.put(token.to_string(), stamp, principal.clone(), expires.min(session_expires + 1));
        Ok(principal)
    }

    async fn by_api_key(&self, org: &str, username: &str, key: &str) -> ApiResult<Arc<Principal>> {
        let hash = sha256(key.as_bytes());
        let cache_key = format!("k:{}", crate::auth::hex(&hash));
        if let Some(principal) = self.cache.get(&cache_key, i64::MIN) {
            return if principal.org_name == org && principal.username == username {
                self.note_key_use(&principal);
                Ok(principal)
            } else {
                Err(ApiError::InvalidApiKey)
            };
        }
        let stamp = self.cache.epoch();
        let (org, username) = (org.to_string(), username.to_string());
        let principal = self
            .store
            .read(move |c| {
                let Some((key_id, user_id, org_id)) = api_keys::owner(c, &org, &username, &hash)? else {
                    return Ok(None);
                };
                Ok(load_principal(c, org_id, user_id)?.map(|p| Principal { api_key_id: Some(key_id), ..p }))
            })
            .await?
            .ok_or(ApiError::InvalidApiKey)?;
        let principal = Arc::new(principal);
        self.note_key_use(&principal);
        self.cache.put(cache_key, stamp, principal.clone(), i64::MAX);
        Ok(principal)
    }
}

/// Account, organization and current rights; `None` when the account is gone.
pub fn load_principal(
    c: &rusqlite::Connection,
    org_id: i64,
    user_id: i64,
) -> crate::store::StoreResult<Option<Principal>> {
    let Some(user) = users::by_id(c, org_id, user_id)? else { return Ok(None) };
    let Some(org) = orgs::by_id(c, org_id)? else { return Ok(None) };
    let permissions = roles::permissions_of(c, user_id)?;
    Ok(Some(Principal {
        org_id,
        org_name: org.name,
        user_id,
        username: user.username,
        kind: user.kind,
        permissions,
        session_id: None,
        api_key_id: None,
    }))
}
