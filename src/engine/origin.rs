//! Where the reference client reads published objects from: a directory (the depot, an `fs`
//! origin) or an HTTP base URL (a CDN in front of an origin), by whole object or byte range.

use std::fs::{self, File};
use std::io::{Read, Seek, SeekFrom};
use std::path::PathBuf;
use std::time::Duration;

use super::error::{EngineError, IoContext, Result};

/// Where published objects come from: the depot, an `fs` origin's directory, or a CDN.
pub trait Origin {
    /// The whole object at `rel` (`/`-separated, below the origin's root).
    fn get(&self, rel: &str) -> Result<Vec<u8>>;
    /// `len` bytes at `offset` of the object at `rel`.
    fn get_range(&self, rel: &str, offset: u64, len: u64) -> Result<Vec<u8>>;
    /// The names in a directory, where the origin can list (a local one can); used to find the
    /// `dxfName` of a build when the caller does not know it.
    fn list(&self, rel: &str) -> Result<Vec<String>>;
}

/// A published tree on the local filesystem (the depot or an `fs` origin).
pub struct DirOrigin {
    pub root: PathBuf,
}

impl Origin for DirOrigin {
    fn get(&self, rel: &str) -> Result<Vec<u8>> {
        let path = self.root.join(rel);
        fs::read(&path).ctx(|| format!("read {}", path.display()))
    }

    fn get_range(&self, rel: &str, offset: u64, len: u64) -> Result<Vec<u8>> {
        let path = self.root.join(rel);
        let mut buf = vec![0u8; len as usize];
        File::open(&path)
            .and_then(|mut f| f.seek(SeekFrom::Start(offset)).and_then(|_| f.read_exact(&mut buf)))
            .ctx(|| format!("read {len} bytes at {offset} of {}", path.display()))?;
        Ok(buf)
    }

    fn list(&self, rel: &str) -> Result<Vec<String>> {
        let path = self.root.join(rel);
        let mut names = Vec::new();
        for entry in fs::read_dir(&path).ctx(|| format!("list {}", path.display()))? {
            let entry = entry.ctx(|| format!("list {}", path.display()))?;
            names.push(entry.file_name().to_string_lossy().into_owned());
        }
        names.sort();
        Ok(names)
    }
}

/// Objects below an `http://` base URL; chunks are fetched with `Range` requests, so the server
/// must answer them with 206 (every CDN and S3-compatible store does).
pub struct HttpOrigin {
    base: String,
    agent: ureq::Agent,
}

/// Largest whole object (an index or a patch) the client accepts, against a hostile origin.
const MAX_OBJECT: u64 = 1 << 30;

impl HttpOrigin {
    pub fn new(base: &str) -> HttpOrigin {
        let agent = ureq::AgentBuilder::new()
            .timeout_connect(Duration::from_secs(10))
            .timeout_read(Duration::from_secs(60))
            .build();
        HttpOrigin { base: base.trim_end_matches('/').to_string(), agent }
    }

    fn url(&self, rel: &str) -> String {
        format!("{}/{rel}", self.base)
    }

    fn fetch(&self, rel: &str, range: Option<(u64, u64)>) -> Result<Vec<u8>> {
        let url = self.url(rel);
        let mut request = self.agent.get(&url);
        if let Some((offset, len)) = range {
            request = request.set("Range", &format!("bytes={offset}-{}", offset + len - 1));
        }
        let response = request.call().map_err(|e| match e {
            ureq::Error::Status(status, _) => EngineError::Invalid(format!("{url}: HTTP {status}")),
            other => EngineError::Io { context: url.clone(), source: std::io::Error::other(other.to_string()) },
        })?;
        let limit = match range {
            Some((_, len)) if response.status() == 206 => len,
            Some(_) => {
                return Err(EngineError::Invalid(format!(
                    "{url}: the server ignores Range requests (HTTP {})",
                    response.status()
                )))
            }
            None => MAX_OBJECT,
        };
        let mut body = Vec::new();
        response.into_reader().take(limit + 1).read_to_end(&mut body).ctx(|| format!("read {url}"))?;
        if body.len() as u64 > limit {
            return Err(EngineError::Invalid(format!("{url}: answer longer than asked")));
        }
        Ok(body)
    }
}

impl Origin for HttpOrigin {
    fn get(&self, rel: &str) -> Result<Vec<u8>> {
        self.fetch(rel, None)
    }

    fn get_range(&self, rel: &str, offset: u64, len: u64) -> Result<Vec<u8>> {
        if len == 0 {
            return Ok(Vec::new());
        }
        self.fetch(rel, Some((offset, len)))
    }

    fn list(&self, rel: &str) -> Result<Vec<String>> {
        Err(EngineError::Invalid(format!("{}: an HTTP origin cannot be listed; give the dxfName", self.url(rel))))
    }
}
