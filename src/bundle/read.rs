//! Reads a bundle in one pass: the header first (format version, then the passphrase), then
//! every frame through the MAC. Files go to the caller's sink as they stream by; the document
//! is decrypted and handed out only once the MAC at the end has matched, so nothing of an unverified bundle
//! is ever used — a caller that unpacks files must discard them on any error.

use std::io::Read;

use ring::hmac;

use super::crypto::{Keys, CHECK_LEN, SALT_LEN};
use super::{
    BundleError, HEADER_LEN, KIND_DOCUMENT, KIND_END, KIND_FILE, MAGIC, MAX_DOCUMENT, MAX_ITERATIONS, MIN_ITERATIONS,
    VERSION,
};

/// The fixed header.
pub struct Header {
    pub version: u16,
    pub iterations: u32,
    pub salt: [u8; SALT_LEN],
    pub check: [u8; CHECK_LEN],
    raw: [u8; HEADER_LEN],
}

/// `read_exact` that reports the end of the input as truncation.
fn exact(r: &mut impl Read, buf: &mut [u8]) -> Result<(), BundleError> {
    r.read_exact(buf).map_err(|e| match e.kind() {
        std::io::ErrorKind::UnexpectedEof => BundleError::Truncated,
        _ => e.into(),
    })
}

/// Reads the header and derives the keys, refusing a newer version before anything else.
pub fn unlock(r: &mut impl Read, passphrase: &str) -> Result<(Header, Keys), BundleError> {
    let mut raw = [0u8; HEADER_LEN];
    let mut magic = [0u8; 8];
    r.read_exact(&mut magic).map_err(|_| BundleError::NotABundle)?;
    if &magic != MAGIC {
        return Err(BundleError::NotABundle);
    }
    raw[..8].copy_from_slice(&magic);
    exact(r, &mut raw[8..])?;
    let version = u16::from_be_bytes([raw[8], raw[9]]);
    if version > VERSION {
        return Err(BundleError::NewerVersion(version));
    }
    if version == 0 {
        return Err(BundleError::NotABundle);
    }
    let iterations = u32::from_be_bytes([raw[10], raw[11], raw[12], raw[13]]);
    let mut salt = [0u8; SALT_LEN];
    salt.copy_from_slice(&raw[14..14 + SALT_LEN]);
    let mut check = [0u8; CHECK_LEN];
    check.copy_from_slice(&raw[14 + SALT_LEN..]);
    if !(MIN_ITERATIONS..=MAX_ITERATIONS).contains(&iterations) {
        return Err(BundleError::Refused(format!(
            "its key derivation uses {iterations} iterations, outside {MIN_ITERATIONS}..={MAX_ITERATIONS}"
        )));
    }
    let keys = Keys::derive(passphrase, &salt, iterations);
    if !keys.checks(&check) {
        return Err(BundleError::WrongPassphrase);
    }
    Ok((Header { version, iterations, salt, check, raw }, keys))
}

/// Compares two MACs in constant time.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Feeds what it reads into the MAC.
struct MacReader<'a, R: Read> {
    inner: &'a mut R,
    mac: &'a mut hmac::Context,
}

impl<R: Read> Read for MacReader<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.mac.update(&buf[..n]);
        Ok(n)
    }
}

/// Reads the whole bundle after [`unlock`]: `on_file(path, len, content)` is called for every
/// file and must read its content (what it leaves is skipped). Answers the document once the
/// MAC has matched.
pub fn read_bundle<R: Read>(
    mut r: R,
    header: &Header,
    keys: &Keys,
    mut on_file: impl FnMut(&str, u64, &mut dyn Read) -> Result<(), BundleError>,
) -> Result<Vec<u8>, BundleError> {
    let mut mac = keys.mac();
    mac.update(&header.raw);
    let mut document: Option<Vec<u8>> = None;
    loop {
        let mut head = [0u8; 9];
        let mut input = MacReader { inner: &mut r, mac: &mut mac };
        exact(&mut input, &mut head)?;
        let len = u64::from_be_bytes([head[1], head[2], head[3], head[4], head[5], head[6], head[7], head[8]]);
        match head[0] {
            KIND_END => {
                // The MAC covers everything up to and including this frame's head.
                if len != 32 {
                    return Err(BundleError::Tampered);
                }
                let mut tag = [0u8; 32];
                exact(&mut r, &mut tag)?;
                let mut rest = [0u8; 1];
                let trailing = r.read(&mut rest)?;
                let expected = mac.sign();
                if !same(expected.as_ref(), &tag) || trailing != 0 {
                    return Err(BundleError::Tampered);
                }
                return keys.open_document(&document.ok_or(BundleError::Tampered)?);
            }
            // Anything out of place can only be damage the MAC would find at the end; saying
            // so now saves reading the rest.
            KIND_DOCUMENT if document.is_none() && len <= MAX_DOCUMENT => {
                let mut json = vec![0u8; len as usize];
                exact(&mut input, &mut json)?;
                document = Some(json);
            }
            KIND_FILE if document.is_some() && len >= 2 => {
                let mut path_len = [0u8; 2];
                exact(&mut input, &mut path_len)?;
                let path_len = u16::from_be_bytes(path_len) as u64;
                if path_len > super::MAX_PATH as u64 || 2 + path_len > len {
                    return Err(BundleError::Tampered);
                }
                let mut path = vec![0u8; path_len as usize];
                exact(&mut input, &mut path)?;
                let path = String::from_utf8(path).map_err(|_| BundleError::Tampered)?;
                if !super::valid_path(&path) {
                    return Err(BundleError::Tampered);
                }
                let size = len - 2 - path_len;
                let mut content = (&mut input).take(size);
                on_file(&path, size, &mut content)?;
                // Whatever the sink left, so the MAC still sees every byte.
                std::io::copy(&mut content, &mut std::io::sink())?;
                if content.limit() != 0 {
                    return Err(BundleError::Truncated);
                }
            }
            _ => return Err(BundleError::Tampered),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::write::BundleWriter;
    use super::*;

    fn bundle(passphrase: &str) -> Vec<u8> {
        let salt = [3u8; SALT_LEN];
        let keys = Keys::derive(passphrase, &salt, 1000);
        let mut w = BundleWriter::start(Vec::new(), &keys, &salt, 1000).unwrap();
        w.document(&keys, br#"{"org":"acme"}"#).unwrap();
        w.file("builds/game/manifests/0001.json", 5, &b"hello"[..]).unwrap();
        w.finish().unwrap()
    }

    /// The document and the files (path, content) of a bundle.
    type Read = (Vec<u8>, Vec<(String, Vec<u8>)>);

    fn read(bytes: &[u8], passphrase: &str) -> Result<Read, BundleError> {
        let mut input = bytes;
        let (header, keys) = unlock(&mut input, passphrase)?;
        let mut files = Vec::new();
        let doc = read_bundle(input, &header, &keys, |path, _, content| {
            let mut body = Vec::new();
            content.read_to_end(&mut body)?;
            files.push((path.to_string(), body));
            Ok(())
        })?;
        Ok((doc, files))
    }

    #[test]
    fn a_bundle_reads_back_with_its_passphrase() {
        let (doc, files) = read(&bundle("pass phrase 1"), "pass phrase 1").unwrap();
        assert_eq!(doc, br#"{"org":"acme"}"#);
        assert_eq!(files, vec![("builds/game/manifests/0001.json".to_string(), b"hello".to_vec())]);
    }

    #[test]
    fn every_kind_of_damage_is_told_apart() {
        let good = bundle("pass phrase 1");
        assert!(matches!(read(&good, "pass phrase 2"), Err(BundleError::WrongPassphrase)));
        for cut in [good.len() - 1, good.len() - 40, HEADER_LEN + 3, 20] {
            assert!(matches!(read(&good[..cut], "pass phrase 1"), Err(BundleError::Truncated)), "cut at {cut}");
        }
        for at in [HEADER_LEN + 12, good.len() - 50, good.len() - 1] {
            let mut bad = good.clone();
            bad[at] ^= 1;
            assert!(matches!(read(&bad, "pass phrase 1"), Err(BundleError::Tampered)), "flip at {at}");
        }
        let mut newer = good.clone();
        newer[9] = 2;
        assert!(matches!(read(&newer, "pass phrase 1"), Err(BundleError::NewerVersion(2))));
        assert!(matches!(read(b"PK\x03\x04 not a bundle", "x"), Err(BundleError::NotABundle)));
        let mut longer = good.clone();
        longer.push(0);
        assert!(matches!(read(&longer, "pass phrase 1"), Err(BundleError::Tampered)));
    }
}
