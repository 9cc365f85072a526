//! Password hashes: salted PBKDF2-HMAC-SHA256 via `ring`, stored as
//! `$pbkdf2-sha256$i=<iterations>$<salt b64>$<hash b64>` so the parameters travel with the hash.

use std::num::NonZeroU32;

use base64::engine::general_purpose::STANDARD_NO_PAD;
use base64::Engine;
use ring::pbkdf2;

use super::random_bytes;

const ALGORITHM: pbkdf2::Algorithm = pbkdf2::PBKDF2_HMAC_SHA256;
const PREFIX: &str = "$pbkdf2-sha256$i=";

/// Shortest accepted password, in characters (API.md §5).
pub const MIN_LENGTH: usize = 12;
/// Longest accepted password: bounds the work one request can cause.
pub const MAX_LENGTH: usize = 1024;

/// Hashes a password with a fresh 16-byte salt.
pub fn hash(password: &str, iterations: u32) -> String {
    let iterations = NonZeroU32::new(iterations.max(1)).expect("non-zero");
    let salt = random_bytes::<16>();
    let mut out = [0u8; 32];
    pbkdf2::derive(ALGORITHM, iterations, &salt, password.as_bytes(), &mut out);
    format!("{PREFIX}{iterations}${}${}", STANDARD_NO_PAD.encode(salt), STANDARD_NO_PAD.encode(out))
}

struct Parsed {
    iterations: NonZeroU32,
    salt: Vec<u8>,
    hash: Vec<u8>,
}

fn parse(stored: &str) -> Option<Parsed> {
    let rest = stored.strip_prefix(PREFIX)?;
    let mut parts = rest.split('$');
    let iterations = NonZeroU32::new(parts.next()?.parse().ok()?)?;
    let salt = STANDARD_NO_PAD.decode(parts.next()?).ok()?;
    let hash = STANDARD_NO_PAD.decode(parts.next()?).ok()?;
    parts.next().is_none().then_some(Parsed { iterations, salt, hash })
}

/// Constant-time check of `password` against a stored hash; a malformed hash never matches.
pub fn verify(stored: &str, password: &str) -> bool {
    match parse(stored) {
        Some(p) => pbkdf2::verify(ALGORITHM, p.iterations, &p.salt, password.as_bytes(), &p.hash).is_ok(),
        None => false,
    }
}

/// Whether a stored hash uses fewer iterations than the setting asks for now.
pub fn needs_rehash(stored: &str, iterations: u32) -> bool {
    parse(stored).is_none_or(|p| p.iterations.get() < iterations)
}

/// A generated initial password: 144 random bits, URL-safe, 24 characters.
pub fn generate() -> String {
    super::b64url_encode(&random_bytes::<18>())
}

/// Checks the length rules; the message names the parameter.
pub fn check_policy(param: &str, password: &str) -> crate::error::ApiResult<()> {
    let n = password.chars().count();
    if n < MIN_LENGTH {
        return Err(crate::error::ApiError::invalid(
            param,
            format!("`{param}` must have at least {MIN_LENGTH} characters"),
        ));
    }
    if password.len() > MAX_LENGTH {
        return Err(crate::error::ApiError::invalid(param, format!("`{param}` must have at most {MAX_LENGTH} bytes")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hash_verifies_its_password_only() {
        let stored = hash("correct horse battery", 1_000);
        assert!(stored.starts_with("$pbkdf2-sha256$i=1000$"));
        assert!(verify(&stored, "correct horse battery"));
        assert!(!verify(&stored, "correct horse batterY"));
        assert!(!verify("garbage", "correct horse battery"));
    }

    #[test]
    fn a_lower_iteration_count_asks_for_a_rehash() {
        let stored = hash("correct horse battery", 1_000);
        assert!(needs_rehash(&stored, 2_000));
        assert!(!needs_rehash(&stored, 1_000));
    }

    #[test]
    fn generated_passwords_meet_the_policy_and_differ() {
        let (a, b) = (generate(), generate());
        assert_ne!(a, b);
        assert!(check_policy("password", &a).is_ok());
        assert!(check_policy("password", "short").is_err());
    }
}
