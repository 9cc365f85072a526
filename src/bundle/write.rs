//! Writes a bundle to any `Write`, feeding every byte through the MAC on its way out.

use std::io::{Read, Write};

use ring::hmac;

use super::crypto::{Keys, SALT_LEN};
use super::{KIND_DOCUMENT, KIND_END, KIND_FILE, MAGIC, VERSION};

pub struct BundleWriter<W: Write> {
    out: W,
    mac: hmac::Context,
    /// Bytes written so far, for progress.
    pub written: u64,
}

impl<W: Write> BundleWriter<W> {
    /// Writes the header; the document must follow before any file.
    pub fn start(out: W, keys: &Keys, salt: &[u8; SALT_LEN], iterations: u32) -> std::io::Result<Self> {
        let mut writer = BundleWriter { out, mac: keys.mac(), written: 0 };
        writer.put(MAGIC)?;
        writer.put(&VERSION.to_be_bytes())?;
        writer.put(&iterations.to_be_bytes())?;
        writer.put(salt)?;
        writer.put(&keys.check_value())?;
        Ok(writer)
    }

    fn put(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.mac.update(bytes);
        self.out.write_all(bytes)?;
        self.written += bytes.len() as u64;
        Ok(())
    }

    fn frame(&mut self, kind: u8, len: u64) -> std::io::Result<()> {
        self.put(&[kind])?;
        self.put(&len.to_be_bytes())
    }

    /// The organization's JSON, encrypted under the passphrase's key.
    pub fn document(&mut self, keys: &Keys, json: &[u8]) -> std::io::Result<()> {
        let sealed = keys.seal_document(json);
        self.frame(KIND_DOCUMENT, sealed.len() as u64)?;
        self.put(&sealed)
    }

    /// Copies exactly `len` bytes of `content` as the file `path` (see [`super::valid_path`]).
    pub fn file(&mut self, path: &str, len: u64, content: impl Read) -> std::io::Result<()> {
        if !super::valid_path(path) {
            return Err(std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a bundle path"));
        }
        let path_len = u16::try_from(path.len()).map_err(|_| std::io::ErrorKind::InvalidInput)?;
        self.frame(KIND_FILE, 2 + path.len() as u64 + len)?;
        self.put(&path_len.to_be_bytes())?;
        self.put(path.as_bytes())?;
        let mut content = content.take(len);
        let mut buf = vec![0u8; 256 * 1024];
        let mut copied = 0u64;
        loop {
            let n = content.read(&mut buf)?;
            if n == 0 {
                break;
            }
            self.put(&buf[..n])?;
            copied += n as u64;
        }
        if copied != len {
            // The file shrank under us: the frame's length would lie.
            return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "a file changed while it was exported"));
        }
        Ok(())
    }

    /// Writes the end frame with the MAC and answers the output.
    pub fn finish(mut self) -> std::io::Result<W> {
        self.frame(KIND_END, 32)?;
        let tag = self.mac.clone().sign();
        self.out.write_all(tag.as_ref())?;
        self.written += 32;
        self.out.flush()?;
        Ok(self.out)
    }
}
