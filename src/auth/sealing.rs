//! Secrets the server must use later (S3 keys, CDN auth keys, webhook signing secrets) are kept
//! sealed at rest with AES-256-GCM under the state directory's sealing key. Each sealed value is
//! bound to where it belongs (the associated data), so it cannot be moved to another row.

use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};

use super::random_bytes;

/// The sealing context that binds a secret to its organization, resource and field.
pub fn context(kind: &str, org_id: i64, name: &str, field: &str) -> String {
    format!("{kind}/{org_id}/{name}/{field}")
}

/// Seals and opens secrets. `Debug` is deliberately not derived.
pub struct Sealer {
    key: LessSafeKey,
}

/// A sealed value could not be opened: wrong key, wrong place, or damaged.
#[derive(Debug, thiserror::Error)]
#[error("a sealed secret could not be opened")]
pub struct Unsealable;

impl Sealer {
    pub fn new(key: &[u8; 32]) -> Self {
        Sealer { key: LessSafeKey::new(UnboundKey::new(&AES_256_GCM, key).expect("a 32-byte key")) }
    }

    /// `nonce || ciphertext || tag`, with a fresh random nonce.
    pub fn seal(&self, context: &str, secret: &str) -> Vec<u8> {
        let nonce_bytes = random_bytes::<NONCE_LEN>();
        let mut sealed = secret.as_bytes().to_vec();
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce_bytes),
                Aad::from(context.as_bytes()),
                &mut sealed,
            )
            .expect("AES-GCM sealing of a small value cannot fail");
        let mut out = nonce_bytes.to_vec();
        out.extend_from_slice(&sealed);
        out
    }

    pub fn open(&self, context: &str, sealed: &[u8]) -> Result<String, Unsealable> {
        if sealed.len() < NONCE_LEN {
            return Err(Unsealable);
        }
        let (nonce, body) = sealed.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| Unsealable)?;
        let mut body = body.to_vec();
        let plain = self.key.open_in_place(nonce, Aad::from(context.as_bytes()), &mut body).map_err(|_| Unsealable)?;
        String::from_utf8(plain.to_vec()).map_err(|_| Unsealable)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_secret_opens_only_in_its_own_context() {
        let sealer = Sealer::new(&[7; 32]);
        let sealed = sealer.seal("deployment/1/cdn/secretAccessKey", "s3cr3t-value");
        assert!(!sealed.windows(12).any(|w| w == b"s3cr3t-value"));
        assert_eq!(sealer.open("deployment/1/cdn/secretAccessKey", &sealed).unwrap(), "s3cr3t-value");
        assert!(sealer.open("deployment/2/cdn/secretAccessKey", &sealed).is_err());
        assert!(Sealer::new(&[8; 32]).open("deployment/1/cdn/secretAccessKey", &sealed).is_err());
        assert_ne!(sealed, sealer.seal("deployment/1/cdn/secretAccessKey", "s3cr3t-value"), "fresh nonce each time");
    }
}
