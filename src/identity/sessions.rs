//! Logging in, refreshing and logging out (API.md §2.2–§2.5).
//!
//! A refresh token carries its session id, a generation number and a random 256-bit secret; the
//! session row keeps only the secret's SHA-256. Refreshing swaps in a new secret on the single
//! writer, so two concurrent refreshes with one token cannot both win. A validly signed refresh
//! token whose secret is not the current one can only be a retired one: presenting it revokes
//! the whole session (refresh-token reuse detection, OAuth 2.0 Security BCP).

use super::principal::{load_principal, AccountKind, Principal};
use super::{unix_now, Identity};
use crate::auth::claims::{AccessClaims, OrgSelectionClaims, RefreshClaims, SessionClaim};
use crate::auth::keyring::TokenKind;
use crate::auth::{b64url_encode, random_bytes, sha256};
use crate::domain::permissions::{Resource, READ, UPDATE};
use crate::error::{ApiError, ApiResult};
use crate::store::{self, audit, orgs, sessions, users, Listed, Page, StoreError, StoreResult};

/// A fresh access + refresh pair, in the exact shape of API.md §2.4.
#[derive(Debug)]
pub struct SessionTokens {
    pub id: String,
    pub access: (String, i64),
    pub refresh: (String, i64),
}

/// What the organization login answers besides the tokens.
pub struct OrgLogin {
    pub tokens: SessionTokens,
    pub user: users::User,
    pub principal: Principal,
}

/// Step one of the login: every organization where the username has this password.
pub struct OrgChoice {
    pub orgs: Vec<(String, String)>,
    pub token: String,
    pub expires: i64,
}

/// Outcome of a refresh attempt decided on the writer.
enum Rotation {
    Rotated,
    Reused,
    Revoked,
}

impl Identity {
    /// Counters of a login attempt: (account, address) and address refuse past the limit; the
    /// account alone (last) only slows down, so guessing from elsewhere cannot lock its owner out.
    /// The account's key differs from the one of password changes, which only the owner makes.
    fn rate_keys(username: &str, client: &str) -> Vec<String> {
        vec![format!("pair:{client}|{username}"), format!("addr:{client}"), format!("login:{username}")]
    }

    /// Refuses an attempt from an address over its limits, and makes one on an account under
    /// attack wait first.
    async fn check_rate(&self, keys: &[String]) -> ApiResult<()> {
        self.limiter.check(&keys[..2]).map_err(|retry_after| ApiError::RateLimited { retry_after })?;
        let wait = self.limiter.slowdown(&keys[2]);
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
        Ok(())
    }

    /// After a success: the account and this address's attempts on it start afresh.
    fn rate_success(&self, keys: &[String]) {
        self.limiter.record_success(&[&keys[0], &keys[2]]);
    }

    /// `POST /be/v1/login` with username + password.
    pub async fn login_password(&self, username: &str, password: &str, client: &str) -> ApiResult<OrgChoice> {
        let keys = Self::rate_keys(username, client);
        self.check_rate(&keys).await?;
        let name = username.to_string();
        let candidates = self.store.read(move |c| users::people_named(c, &name)).await?;
        let mut matched = Vec::new();
        let tried: Vec<i64> = candidates.iter().map(|(user, _, _)| user.org_id).collect();
        if candidates.is_empty() {
            self.verify_password(None, password.to_string()).await?;
        }
        for (user, org_name, org_label) in candidates {
            if self.verify_password(user.password_hash.clone(), password.to_string()).await? {
                self.rehash_if_needed(&user, password).await;
                matched.push((user.org_id, org_name, org_label));
            }
        }
        if matched.is_empty() {
            self.limiter.record_failure(&keys);
            self.login_failures.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            self.audit_login_failure(tried, username, client).await;
            return Err(ApiError::InvalidCredentials);
        }
        self.rate_success(&keys);
        let now = unix_now();
        let expires = now + self.settings.orgsel_ttl.as_secs() as i64;
        let org_ids: Vec<i64> = matched.iter().map(|(id, _, _)| *id).collect();
        let claims = OrgSelectionClaims { username: username.to_string(), orgs: org_ids, iat: now, exp: expires };
        let token = self.keyring.key(TokenKind::OrgSelection).sign_claims(&claims);
        Ok(OrgChoice { orgs: matched.into_iter().map(|(_, n, l)| (n, l)).collect(), token, expires })
    }

    /// `POST /be/v1/login` with an organization selection token and `orgName`.
    pub async fn login_selected_org(&self, selection_token: &str, org_name: &str, client: &str) -> ApiResult<OrgLogin> {
        let claims: OrgSelectionClaims =
            self.keyring.key(TokenKind::OrgSelection).verify_as(selection_token, unix_now())?;
        let (username, allowed) = (claims.username, claims.orgs);
        let name = org_name.to_string();
        let org = self.store.read(move |c| orgs::by_name(c, &name)).await?;
        let org = org.filter(|o| allowed.contains(&o.id)).ok_or(ApiError::NotFound { resource: "org" })?;
        let org_id = org.id;
        let user = self.store.read(move |c| users::by_name(c, org_id, &username)).await?;
        let user = user.filter(|u| u.kind == AccountKind::User).ok_or(ApiError::TokenRevoked)?;
        self.open_session(user, client).await
    }

    /// The script shortcut: username + password + orgName in one request.
    pub async fn login_direct(
        &self,
        username: &str,
        password: &str,
        org_name: &str,
        client: &str,
    ) -> ApiResult<OrgLogin> {
        let keys = Self::rate_keys(username, client);
        self.check_rate(&keys).await?;
        let (name, org) = (username.to_string(), org_name.to_string());
        let user = self
            .store
            .read(move |c| match orgs::by_name(c, &org)? {
                Some(org) => users::by_name(c, org.id, &name),
                None => Ok(None),
            })
            .await?
            .filter(|u| u.kind == AccountKind::User);
        let stored = user.as_ref().and_then(|u| u.password_hash.clone());
        if !self.verify_password(stored, password.to_string()).await? {
            self.limiter.record_failure(&keys);
            self.login_failures.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            self.audit_login_failure(user.iter().map(|u| u.org_id).collect(), username, client).await;
            return Err(ApiError::InvalidCredentials);
        }
        self.rate_success(&keys);
        let user = user.ok_or(ApiError::InvalidCredentials)?;
        self.rehash_if_needed(&user, password).await;
        self.open_session(user, client).await
    }

    async fn rehash_if_needed(&self, user: &users::User, password: &str) {
        let Some(old) = user.password_hash.clone() else { return };
        if !crate::auth::passwords::needs_rehash(&old, self.settings.pbkdf2_iterations) {
            return;
        }
        let Ok(new) = self.hash_password(password.to_string()).await else { return };
        let user_id = user.id;
        if let Err(e) = self.store.write(move |c| users::rehash_password(c, user_id, &old, &new)).await {
            log::warn!("cannot store a re-hashed password: {e}");
        }
    }

    async fn open_session(&self, user: users::User, client: &str) -> ApiResult<OrgLogin> {
        let session_id = crate::auth::hex(&random_bytes::<16>());
        let (refresh_token, refresh_secret, refresh_expires) = self.refresh_token(&session_id, 0);
        let row = sessions::Session {
            id: session_id.clone(),
            org_id: user.org_id,
            user_id: user.id,
            refresh_hash: sha256(refresh_secret.as_bytes()),
            generation: 0,
            expires: refresh_expires,
            revoked: false,
        };
        let (org_id, user_id, client) = (user.org_id, user.id, client.to_string());
        let (user, principal) = self
            .store
            .write(move |c| -> StoreResult<_> {
                sessions::insert(c, &row, Some(&client))?;
                users::set_last_login(c, user_id)?;
                let user =
                    users::by_id(c, org_id, user_id)?.ok_or_else(|| StoreError::Corrupt("account vanished".into()))?;
                let event = audit::Event {
                    org_id: Some(org_id),
                    event: audit::LOGIN_SUCCEEDED,
                    principal: Some(&user.username),
                    client: Some(&client),
                    target: None,
                };
                audit::record(c, &event)?;
                let principal = load_principal(c, org_id, user_id)?
                    .ok_or_else(|| StoreError::Corrupt("account vanished".into()))?;
                Ok((user, principal))
            })
            .await?;
        let tokens = SessionTokens {
            access: self.access_token(&session_id, user.id),
            refresh: (refresh_token, refresh_expires),
            id: session_id.clone(),
        };
        let principal = Principal { session_id: Some(session_id), ..principal };
        Ok(OrgLogin { tokens, user, principal })
    }

    fn access_token(&self, session_id: &str, user_id: i64) -> (String, i64) {
        let now = unix_now();
        let expires = now + self.settings.access_ttl.as_secs() as i64;
        let token = self.keyring.key(TokenKind::Access).sign_claims(&AccessClaims {
            sid: session_id.to_string(),
            sub: user_id,
            iat: now,
            exp: expires,
        });
        (token, expires)
    }

    /// A refresh token and its secret (whose hash the session keeps).
    fn refresh_token(&self, session_id: &str, generation: i64) -> (String, String, i64) {
        let now = unix_now();
        let expires = now + self.settings.refresh_ttl.as_secs() as i64;
        let secret = b64url_encode(&random_bytes::<32>());
        let claims =
            RefreshClaims { sid: session_id.to_string(), gen: generation, jti: secret.clone(), iat: now, exp: expires };
        let token = self.keyring.key(TokenKind::Refresh).sign_claims(&claims);
        (token, secret, expires)
    }

    /// `POST /be/v1/refresh`.
    pub async fn refresh(&self, token: &str) -> ApiResult<SessionTokens> {
        let claims: RefreshClaims = self.keyring.key(TokenKind::Refresh).verify_as(token, unix_now())?;
        let (session_id, secret, generation) = (claims.sid, claims.jti, claims.gen);
        let presented = sha256(secret.as_bytes());
        let (new_token, new_secret, expires) = self.refresh_token(&session_id, generation + 1);
        let new_hash = sha256(new_secret.as_bytes());
        let sid = session_id.clone();
        let (outcome, user_id) = self
            .store
            .write(move |c| -> StoreResult<_> {
                let Some(session) = sessions::get(c, &sid)? else { return Ok((Rotation::Revoked, 0)) };
                if session.revoked {
                    return Ok((Rotation::Revoked, session.user_id));
                }
                if session.refresh_hash != presented {
                    sessions::revoke(c, &sid)?;
                    return Ok((Rotation::Reused, session.user_id));
                }
                sessions::rotate(c, &sid, &new_hash, generation + 1, expires)?;
                Ok((Rotation::Rotated, session.user_id))
            })
            .await?;
        match outcome {
            Rotation::Rotated => Ok(SessionTokens {
                access: self.access_token(&session_id, user_id),
                refresh: (new_token, expires),
                id: session_id,
            }),
            Rotation::Reused => {
                log::warn!("refresh token reuse detected: session {session_id} revoked");
                self.cache.invalidate_all();
                Err(ApiError::TokenRevoked)
            }
            Rotation::Revoked => Err(ApiError::TokenRevoked),
        }
    }

    /// `POST /be/v1/logout` with an access or a refresh token: ends that session.
    pub async fn logout(&self, token: &str) -> ApiResult<()> {
        let now = unix_now();
        let session_id = match self.keyring.key(TokenKind::Access).verify_as::<SessionClaim>(token, now) {
            Ok(claims) => claims.sid,
            Err(access_err) => match self.keyring.key(TokenKind::Refresh).verify_as::<SessionClaim>(token, now) {
                Ok(claims) => claims.sid,
                Err(_) => return Err(access_err.into()),
            },
        };
        let revoked = self
            .store
            .write(move |c| match sessions::get(c, &session_id)? {
                Some(s) if !s.revoked => sessions::revoke(c, &session_id).map(|_| true),
                _ => Ok(false),
            })
            .await?;
        self.cache.invalidate_all();
        if revoked {
            Ok(())
        } else {
            Err(ApiError::TokenRevoked)
        }
    }

    /// `GET /be/v1/sessions`: the caller's live sessions, or the organization's with `beUsers`
    /// read.
    pub async fn list_sessions(
        &self,
        caller: &Principal,
        username: Option<String>,
        page: Page,
    ) -> ApiResult<Listed<sessions::SessionInfo>> {
        let owner = (!caller.permissions.has(Resource::BE_USERS, READ)).then_some(caller.user_id);
        let (org_id, now) = (caller.org_id, unix_now());
        let listed =
            self.store.read(move |c| sessions::list_live(c, org_id, owner, username.as_deref(), now, &page)).await?;
        Ok(listed)
    }

    /// `DELETE /be/v1/sessions/{id}`: ends one session (own, or `beUsers` update over its user).
    /// Every token of it is refused from the next request on: the principal cache is dropped.
    pub async fn end_session(&self, caller: &Principal, id: &str, client: &str) -> ApiResult<()> {
        let (org_id, sid, now) = (caller.org_id, id.to_string(), unix_now());
        let session = self.store.read(move |c| sessions::live_by_id(c, org_id, &sid, now)).await?;
        let session = session.ok_or(ApiError::NotFound { resource: "session" })?;
        if session.user_id != caller.user_id {
            let (target, rights) = self.target(caller, &session.username).await?;
            Self::require_over(caller, &target, &rights, UPDATE)?;
        }
        let (sid, principal, client) = (id.to_string(), caller.username.clone(), client.to_string());
        self.store
            .write(move |c| -> StoreResult<()> {
                sessions::revoke(c, &sid)?;
                let event = audit::Event {
                    org_id: Some(org_id),
                    event: audit::SESSION_REVOKED,
                    principal: Some(&principal),
                    client: Some(&client),
                    target: Some(&session.username),
                };
                audit::record(c, &event)
            })
            .await?;
        self.cache.invalidate_all();
        Ok(())
    }

    /// A refused login, in every organization where the account exists (an unknown username
    /// belongs to no organization; `/metrics` counts it). A failure to record is logged, never
    /// turned into another answer.
    async fn audit_login_failure(&self, org_ids: Vec<i64>, username: &str, client: &str) {
        if org_ids.is_empty() {
            return;
        }
        let (username, client) = (username.to_string(), client.to_string());
        let recorded = self
            .store
            .write(move |c| -> StoreResult<()> {
                for org_id in org_ids {
                    let event = audit::Event {
                        org_id: Some(org_id),
                        event: audit::LOGIN_FAILED,
                        principal: Some(&username),
                        client: Some(&client),
                        target: None,
                    };
                    audit::record(c, &event)?;
                }
                Ok(())
            })
            .await;
        if let Err(e) = recorded {
            log::warn!("cannot record a failed login in the audit trail: {e}");
        }
    }

    /// Deletes sessions whose refresh token has expired.
    pub fn remove_expired_sessions(&self) -> store::StoreResult<usize> {
        let now = unix_now();
        self.store.write_blocking(move |c| sessions::delete_expired(c, now))
    }
}
