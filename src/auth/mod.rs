//! Credentials: signed tokens, the keyring they are signed with, and secret handling.

pub mod claims;
pub mod hash_pool;
pub mod jws;
pub mod keyring;
pub mod passwords;
pub mod sealing;

use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use base64::Engine;
use ring::rand::{SecureRandom, SystemRandom};

/// Decodes base64 in any of the usual alphabets, padded or not (secrets come from many tools).
pub fn b64_decode_any(text: &str) -> Option<Vec<u8>> {
    let text = text.trim();
    [&STANDARD, &STANDARD_NO_PAD, &URL_SAFE, &URL_SAFE_NO_PAD].iter().find_map(|engine| engine.decode(text).ok())
}

/// Standard padded base64, the form `admin-secret` prints.
pub fn b64_encode(bytes: &[u8]) -> String {
    STANDARD.encode(bytes)
}

/// URL-safe unpadded base64, the form of JWS segments and API keys.
pub fn b64url_encode(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// `n` bytes from the operating system's CSPRNG.
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    // SystemRandom only fails when the OS has no entropy source at all; nothing can continue then.
    SystemRandom::new().fill(&mut bytes).expect("the operating system's random source failed");
    bytes
}

/// SHA-256 of a secret, the only form in which refresh tokens and API keys are stored.
pub fn sha256(bytes: &[u8]) -> Vec<u8> {
    ring::digest::digest(&ring::digest::SHA256, bytes).as_ref().to_vec()
}

/// Lowercase hex of a byte slice.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
