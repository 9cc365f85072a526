//! The organization's RSA public key (PEM), validated on input.

use rsa::pkcs1::DecodeRsaPublicKey;
use rsa::pkcs8::DecodePublicKey;
use rsa::traits::PublicKeyParts;
use rsa::RsaPublicKey;

use super::{Checked, Refusal};

/// Smallest accepted modulus.
const MIN_BITS: usize = 2048;

/// Accepts `-----BEGIN PUBLIC KEY-----` (SPKI) and `-----BEGIN RSA PUBLIC KEY-----` (PKCS#1).
pub fn validate(param: &str, pem: &str) -> Checked<()> {
    let pem = pem.trim();
    let key = RsaPublicKey::from_public_key_pem(pem)
        .or_else(|_| RsaPublicKey::from_pkcs1_pem(pem))
        .map_err(|_| Refusal::invalid(param, format!("`{param}` must be an RSA public key in PEM")))?;
    if key.n().bits() < MIN_BITS {
        return Err(Refusal::invalid(param, format!("`{param}` must have at least {MIN_BITS} bits")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_2048_bit_key_is_accepted_and_a_1024_bit_key_refused() {
        assert!(validate("publicKey", include_str!("../../tests/fixtures/rsa2048.pub.pem")).is_ok());
        assert!(validate("publicKey", include_str!("../../tests/fixtures/rsa1024.pub.pem")).is_err());
    }

    #[test]
    fn garbage_and_other_key_types_are_refused() {
        assert!(validate("publicKey", "hello").is_err());
        let ec = "-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEXz1dYhJ+ZBlNmJ5Lx0V9m1f6v9wz\nG0r2lF5pM1cXzB9xq9g8kWcQ0Y7yY0vYq1gk3J6n1q3r5p1q9m5x8x2Xqg==\n-----END PUBLIC KEY-----";
        assert!(validate("publicKey", ec).is_err());
    }
}
