//! HS256 JWS compact tokens (JWT), built on `ring::hmac`.
//!
//! The header is pinned: `alg` must be `HS256`, `typ` (if present) `JWT`, `kid` (if present) the
//! verifying key's id, and no `crit`. The signature is checked before the payload is parsed.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ring::hmac;
use serde_json::{json, Map, Value};

/// Clock leeway for `exp`, `nbf` and `iat` of tokens minted elsewhere (admin tokens from other
/// HS256 tools), in seconds (API.md §2.1: at most 60 s). Tokens this server both issues and
/// checks see no clock skew and get none, so `access_ttl = 2s` means two seconds.
pub const LEEWAY_SECS: i64 = 60;

/// One HMAC-SHA-256 key and the id it is announced by.
pub struct SigningKey {
    kid: String,
    key: hmac::Key,
    leeway: i64,
}

impl SigningKey {
    /// `kid` names the key without revealing it: a prefix of the key's SHA-256.
    pub fn new(kind_prefix: &str, secret: &[u8]) -> Self {
        let digest = ring::digest::digest(&ring::digest::SHA256, secret);
        SigningKey {
            kid: format!("{kind_prefix}-{}", super::hex(&digest.as_ref()[..6])),
            key: hmac::Key::new(hmac::HMAC_SHA256, secret),
            leeway: LEEWAY_SECS,
        }
    }

    /// The same key without clock leeway, for tokens this server issues itself.
    pub fn without_leeway(mut self) -> Self {
        self.leeway = 0;
        self
    }

    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// Signs `claims` (a JSON object) into a compact token with this key's `kid`.
    pub fn sign(&self, claims: &Value) -> String {
        let header = json!({"alg": "HS256", "typ": "JWT", "kid": self.kid});
        let signing_input =
            format!("{}.{}", URL_SAFE_NO_PAD.encode(header.to_string()), URL_SAFE_NO_PAD.encode(claims.to_string()));
        let tag = hmac::sign(&self.key, signing_input.as_bytes());
        format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(tag.as_ref()))
    }

    /// Checks header, signature and time claims; answers the claims in their typed shape (a
    /// payload of another shape is an invalid token).
    pub fn verify_as<T: serde::de::DeserializeOwned>(&self, token: &str, now: i64) -> Result<T, TokenError> {
        serde_json::from_value(Value::Object(self.verify(token, now)?)).map_err(|_| TokenError::Invalid)
    }

    /// Signs typed claims.
    pub fn sign_claims<T: serde::Serialize>(&self, claims: &T) -> String {
        self.sign(&serde_json::to_value(claims).unwrap_or(Value::Null))
    }

    /// Checks header, signature and time claims; answers the claims.
    pub fn verify(&self, token: &str, now: i64) -> Result<Map<String, Value>, TokenError> {
        let token = token.trim();
        let (signing_input, signature) = token.rsplit_once('.').ok_or(TokenError::Invalid)?;
        let (header, payload) = signing_input.split_once('.').ok_or(TokenError::Invalid)?;
        if payload.contains('.') {
            return Err(TokenError::Invalid);
        }
        let header: Map<String, Value> = decode_json(header)?;
        if header.get("alg").and_then(Value::as_str) != Some("HS256") || header.contains_key("crit") {
            return Err(TokenError::Invalid);
        }
        if let Some(typ) = header.get("typ") {
            if !typ.as_str().is_some_and(|t| t.eq_ignore_ascii_case("JWT")) {
                return Err(TokenError::Invalid);
            }
        }
        if let Some(kid) = header.get("kid") {
            if kid.as_str() != Some(self.kid.as_str()) {
                return Err(TokenError::Invalid);
            }
        }
        let signature = URL_SAFE_NO_PAD.decode(signature).map_err(|_| TokenError::Invalid)?;
        hmac::verify(&self.key, signing_input.as_bytes(), &signature).map_err(|_| TokenError::Invalid)?;
        let claims: Map<String, Value> = decode_json(payload)?;
        check_times(&claims, now, self.leeway)?;
        Ok(claims)
    }
}

fn decode_json(segment: &str) -> Result<Map<String, Value>, TokenError> {
    let bytes = URL_SAFE_NO_PAD.decode(segment).map_err(|_| TokenError::Invalid)?;
    serde_json::from_slice(&bytes).map_err(|_| TokenError::Invalid)
}

fn time_claim(claims: &Map<String, Value>, name: &str) -> Result<Option<i64>, TokenError> {
    match claims.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(value) => value.as_i64().or_else(|| value.as_f64().map(|f| f as i64)).map(Some).ok_or(TokenError::Invalid),
    }
}

fn check_times(claims: &Map<String, Value>, now: i64, leeway: i64) -> Result<(), TokenError> {
    if let Some(nbf) = time_claim(claims, "nbf")? {
        if now + leeway < nbf {
            return Err(TokenError::Invalid);
        }
    }
    if let Some(iat) = time_claim(claims, "iat")? {
        if now + leeway < iat {
            return Err(TokenError::Invalid);
        }
    }
    if let Some(exp) = time_claim(claims, "exp")? {
        // `exp` is the first second at which the token is no longer accepted (RFC 7519 §4.1.4).
        if now >= exp + leeway {
            return Err(TokenError::Expired);
        }
    }
    Ok(())
}

/// Why a token was refused; maps to `token-invalid` / `token-expired`.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("token invalid")]
    Invalid,
    #[error("token expired")]
    Expired,
}

impl From<TokenError> for crate::error::ApiError {
    fn from(err: TokenError) -> Self {
        match err {
            TokenError::Invalid => crate::error::ApiError::TokenInvalid,
            TokenError::Expired => crate::error::ApiError::TokenExpired,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_770_000_000;

    fn key() -> SigningKey {
        SigningKey::new("t", b"0123456789abcdef0123456789abcdef")
    }

    fn forge(header: &Value, claims: &Value, secret: &[u8]) -> String {
        let input =
            format!("{}.{}", URL_SAFE_NO_PAD.encode(header.to_string()), URL_SAFE_NO_PAD.encode(claims.to_string()));
        let tag = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, secret), input.as_bytes());
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(tag.as_ref()))
    }

    #[test]
    fn a_signed_token_verifies_and_returns_its_claims() {
        let token = key().sign(&json!({"username": "ops", "exp": NOW + 10}));
        assert_eq!(key().verify(&token, NOW).unwrap()["username"], "ops");
    }

    #[test]
    fn a_token_without_kid_from_another_tool_is_accepted() {
        let token = forge(
            &json!({"alg": "HS256", "typ": "JWT"}),
            &json!({"username": "ops"}),
            b"0123456789abcdef0123456789abcdef",
        );
        assert!(key().verify(&token, NOW).is_ok());
    }

    #[test]
    fn other_algorithms_other_keys_and_garbage_are_invalid() {
        let secret = b"0123456789abcdef0123456789abcdef";
        let claims = json!({"username": "ops"});
        for header in [
            json!({"alg": "none"}),
            json!({"alg": "HS512"}),
            json!({"alg": "HS256", "kid": "other"}),
            json!({"alg": "HS256", "typ": "JWE"}),
            json!({"alg": "HS256", "crit": ["exp"]}),
        ] {
            assert_eq!(key().verify(&forge(&header, &claims, secret), NOW), Err(TokenError::Invalid), "{header}");
        }
        let wrong_key = forge(&json!({"alg": "HS256"}), &claims, b"another-secret-another-secret-xx");
        assert_eq!(key().verify(&wrong_key, NOW), Err(TokenError::Invalid));
        let unsigned = format!(
            "{}.{}.",
            URL_SAFE_NO_PAD.encode(r#"{"alg":"none"}"#),
            URL_SAFE_NO_PAD.encode(r#"{"username":"x"}"#)
        );
        for garbage in ["", "a.b", "a.b.c.d", "not a token", &unsigned] {
            assert_eq!(key().verify(garbage, NOW), Err(TokenError::Invalid), "{garbage}");
        }
    }

    #[test]
    fn expiry_and_not_before_honour_the_leeway() {
        let k = key();
        assert!(k.verify(&k.sign(&json!({"exp": NOW - 30})), NOW).is_ok());
        assert_eq!(k.verify(&k.sign(&json!({"exp": NOW - 61})), NOW), Err(TokenError::Expired));
        assert!(k.verify(&k.sign(&json!({"nbf": NOW + 30})), NOW).is_ok());
        assert_eq!(k.verify(&k.sign(&json!({"nbf": NOW + 120})), NOW), Err(TokenError::Invalid));
        assert_eq!(k.verify(&k.sign(&json!({"iat": NOW + 120})), NOW), Err(TokenError::Invalid));
        assert_eq!(k.verify(&k.sign(&json!({"exp": "soon"})), NOW), Err(TokenError::Invalid));
    }

    #[test]
    fn a_tampered_payload_is_invalid() {
        let token = key().sign(&json!({"username": "ops"}));
        let parts: Vec<&str> = token.split('.').collect();
        let tampered = format!("{}.{}.{}", parts[0], URL_SAFE_NO_PAD.encode(r#"{"username":"root"}"#), parts[2]);
        assert_eq!(key().verify(&tampered, NOW), Err(TokenError::Invalid));
    }
}
