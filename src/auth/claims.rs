//! The claims of every token kind, typed: a token whose payload does not have its kind's shape is
//! `token-invalid`, and no code looks a claim up by string. Time claims (`iat`, `exp`, `nbf`) are
//! checked by [`super::jws::SigningKey::verify`] before these are read.

use serde::{Deserialize, Serialize};

/// An access token: which session and user, until when.
#[derive(Debug, Serialize, Deserialize)]
pub struct AccessClaims {
    /// Session id.
    pub sid: String,
    /// User id.
    pub sub: i64,
    pub iat: i64,
    pub exp: i64,
}

/// A refresh token: its session, its place in the rotation chain and its one-time secret.
#[derive(Serialize, Deserialize)]
pub struct RefreshClaims {
    pub sid: String,
    /// Rotation generation of the session when this token was issued.
    pub gen: i64,
    /// The secret whose hash the session keeps; never logged.
    pub jti: String,
    pub iat: i64,
    pub exp: i64,
}

/// An organization selection token: who logged in and in which organizations that password fits.
#[derive(Debug, Serialize, Deserialize)]
pub struct OrgSelectionClaims {
    pub username: String,
    pub orgs: Vec<i64>,
    pub iat: i64,
    pub exp: i64,
}

/// An admin token. Other HS256 tools mint these too [compat], so claims beyond `username` are
/// allowed and ignored.
#[derive(Debug, Serialize, Deserialize)]
pub struct AdminClaims {
    pub username: String,
}

/// Just the session of an access or refresh token (logout takes either).
#[derive(Debug, Deserialize)]
pub struct SessionClaim {
    pub sid: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::jws::{SigningKey, TokenError};
    use serde_json::json;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

    #[test]
    fn a_signed_token_of_another_shape_is_invalid() {
        let key = SigningKey::new("acc", SECRET);
        // Signed with the right key, but `sub` is a string and `sid` is missing.
        let token = key.sign(&json!({"sub": "1", "iat": 0, "exp": 100}));
        assert_eq!(key.verify_as::<AccessClaims>(&token, 10).unwrap_err(), TokenError::Invalid);
        let good = key.sign_claims(&AccessClaims { sid: "s".into(), sub: 1, iat: 0, exp: 100 });
        assert_eq!(key.verify_as::<AccessClaims>(&good, 10).unwrap().sub, 1);
    }

    #[test]
    fn admin_tokens_of_other_tools_may_carry_more_claims() {
        let key = SigningKey::new("adm", SECRET);
        let token = key.sign(&json!({"username": "ops", "role": "whatever"}));
        assert_eq!(key.verify_as::<AdminClaims>(&token, 10).unwrap().username, "ops");
    }
}
