//! The keys of a bundle: PBKDF2-HMAC-SHA256 over the passphrase gives 64 bytes, the first half
//! an AES-256-GCM key for secrets, the second an HMAC-SHA-256 key for the whole file.

use std::num::NonZeroU32;

use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use ring::{hmac, pbkdf2};

use super::BundleError;

pub const SALT_LEN: usize = 16;
pub const CHECK_LEN: usize = 32;
/// What the check value of the header is the MAC of: lets a reader tell a wrong passphrase
/// from a damaged file before reading the rest.
const CHECK_LABEL: &[u8] = b"rockit-edge bundle passphrase check";
/// The associated data of the encrypted document.
const DOCUMENT_LABEL: &[u8] = b"rockit-edge bundle document";

/// The keys one passphrase and salt give. `Debug` is deliberately not derived.
pub struct Keys {
    secrets: LessSafeKey,
    mac: hmac::Key,
}

impl Keys {
    /// Derives both keys; `iterations` is clamped to at least 1 (readers bound it before).
    pub fn derive(passphrase: &str, salt: &[u8; SALT_LEN], iterations: u32) -> Keys {
        let mut out = [0u8; 64];
        let rounds = NonZeroU32::new(iterations).unwrap_or(NonZeroU32::MIN);
        pbkdf2::derive(pbkdf2::PBKDF2_HMAC_SHA256, rounds, salt, passphrase.as_bytes(), &mut out);
        let (enc, mac) = out.split_at(32);
        let secrets = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, enc).expect("a 32-byte key"));
        Keys { secrets, mac: hmac::Key::new(hmac::HMAC_SHA256, mac) }
    }

    /// The header's check value.
    pub fn check_value(&self) -> [u8; CHECK_LEN] {
        let mut out = [0u8; CHECK_LEN];
        out.copy_from_slice(hmac::sign(&self.mac, CHECK_LABEL).as_ref());
        out
    }

    /// Whether `value` is this passphrase's check value (constant time).
    pub fn checks(&self, value: &[u8]) -> bool {
        hmac::verify(&self.mac, CHECK_LABEL, value).is_ok()
    }

    /// A running MAC over the file.
    pub fn mac(&self) -> hmac::Context {
        hmac::Context::with_key(&self.mac)
    }

    /// `nonce || ciphertext || tag` of the bundle's document: the accounts' hashes, e-mail
    /// addresses and origins are nobody's business without the passphrase either.
    pub fn seal_document(&self, json: &[u8]) -> Vec<u8> {
        let nonce = crate::auth::random_bytes::<NONCE_LEN>();
        let mut sealed = json.to_vec();
        self.secrets
            .seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::from(DOCUMENT_LABEL), &mut sealed)
            .expect("AES-GCM sealing of a document below 64 GiB cannot fail");
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        out
    }

    pub fn open_document(&self, sealed: &[u8]) -> Result<Vec<u8>, BundleError> {
        if sealed.len() < NONCE_LEN {
            return Err(BundleError::Tampered);
        }
        let (nonce, body) = sealed.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| BundleError::Tampered)?;
        let mut body = body.to_vec();
        let plain = self
            .secrets
            .open_in_place(nonce, Aad::from(DOCUMENT_LABEL), &mut body)
            .map_err(|_| BundleError::Tampered)?;
        Ok(plain.to_vec())
    }

    /// `base64(nonce || ciphertext || tag)`, bound to `context` (where the secret belongs).
    pub fn encrypt(&self, context: &str, secret: &str) -> String {
        let nonce = crate::auth::random_bytes::<NONCE_LEN>();
        let mut sealed = secret.as_bytes().to_vec();
        self.secrets
            .seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::from(context.as_bytes()), &mut sealed)
            .expect("AES-GCM sealing of a small value cannot fail");
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        crate::auth::b64_encode(&out)
    }

    pub fn decrypt(&self, context: &str, text: &str) -> Result<String, BundleError> {
        let refused = || BundleError::Refused(format!("the secret of {context} cannot be opened"));
        let bytes = crate::auth::b64_decode_any(text).ok_or_else(refused)?;
        if bytes.len() < NONCE_LEN {
            return Err(refused());
        }
        let (nonce, body) = bytes.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| refused())?;
        let mut body = body.to_vec();
        let plain =
            self.secrets.open_in_place(nonce, Aad::from(context.as_bytes()), &mut body).map_err(|_| refused())?;
        String::from_utf8(plain.to_vec()).map_err(|_| refused())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_opens_only_with_the_same_passphrase_and_context() {
        let keys = Keys::derive("correct horse battery", &[1; SALT_LEN], 1000);
        let sealed = keys.encrypt("deployment/cdn/secretAccessKey", "s3cr3t");
        assert!(!sealed.contains("s3cr3t"));
        assert_eq!(keys.decrypt("deployment/cdn/secretAccessKey", &sealed).unwrap(), "s3cr3t");
        assert!(keys.decrypt("deployment/other/secretAccessKey", &sealed).is_err());
        let other = Keys::derive("wrong horse battery", &[1; SALT_LEN], 1000);
        assert!(other.decrypt("deployment/cdn/secretAccessKey", &sealed).is_err());
        assert!(keys.checks(&keys.check_value()) && !other.checks(&keys.check_value()));
    }
}
