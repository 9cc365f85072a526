//! An S3-compatible bucket as a destination (API.md §7): SigV4-signed requests over the
//! outbound policy's pinned connections, a single PUT below a threshold and a multipart upload
//! above it. Multipart uploads are recorded in SQLite (upload id, then each part's ETag once S3
//! has it), so an upload a crash interrupted resumes without sending its finished parts again.
//!
//! The endpoint holds the region and never the bucket [compat]: path-style requests
//! (`https://endpoint/bucket/key`) when `pathStyle`, virtual-hosted ones
//! (`https://bucket.endpoint/key`) otherwise. An endpoint without a scheme is HTTPS.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use url::Url;

use super::sigv4::{self, Credentials, SignedRequest, EMPTY_SHA256};
use super::{Destination, PublishError};
use crate::outbound::download::DownloadError;
use crate::outbound::policy::OutboundPolicy;
use crate::store::s3_uploads::{self, Upload};
use crate::store::Store;

/// The S3 smallest part (all but the last part of a multipart upload must be this large).
pub const MIN_PART_SIZE: u64 = 5 << 20;

/// How this server talks to S3 endpoints (settings, the same for every deployment).
#[derive(Clone, Debug)]
pub struct S3Settings {
    /// Objects of at least this many bytes go up as multipart uploads.
    pub multipart_threshold: u64,
    /// Bytes per part (≥ 5 MiB).
    pub part_size: u64,
    /// Parts of one upload in flight at once.
    pub part_concurrency: u32,
    /// Connect and per-read/write timeout of one request.
    pub timeout: Duration,
    pub policy: OutboundPolicy,
    /// Attempts of one request before the task gives up for now (5xx, throttling, network).
    pub attempts: u32,
    /// The first pause between attempts; doubled after each.
    pub backoff: Duration,
}

impl Default for S3Settings {
    fn default() -> S3Settings {
        S3Settings {
            multipart_threshold: 64 << 20,
            part_size: 16 << 20,
            part_concurrency: 4,
            timeout: Duration::from_secs(60),
            policy: OutboundPolicy::default(),
            attempts: 4,
            backoff: Duration::from_millis(250),
        }
    }
}

/// One bucket: where it is and how to sign for it.
pub struct S3Config {
    pub endpoint: String,
    pub region: String,
    pub bucket: String,
    pub credentials: Credentials,
    pub path_style: bool,
    /// The deployment's `originPrefix` ('' or segments without a trailing slash).
    pub prefix: String,
}

/// A request body.
enum Body<'a> {
    Empty,
    Bytes(&'a [u8]),
    /// `len` bytes of a file from `offset`, streamed (never held in memory whole).
    File {
        path: &'a Path,
        offset: u64,
        len: u64,
    },
}

/// What an answer carried that we use.
struct Reply {
    status: u16,
    etag: Option<String>,
    content_length: Option<u64>,
    body: String,
}

pub struct S3Destination {
    label: String,
    config: S3Config,
    settings: S3Settings,
    journal: Option<Store>,
    /// `http` or `https`.
    scheme: String,
    /// The host (and port) requests go to and sign: the endpoint, or `bucket.endpoint`.
    host: String,
    /// Identifies the bucket in the multipart journal.
    target: String,
    /// Connects only to the addresses that passed the outbound policy, resolved once.
    agent: Mutex<Option<ureq::Agent>>,
    /// The bucket was found and the credentials accepted (checked once, before the first write:
    /// some S3-compatible stores create a missing bucket's directory on a PUT instead of refusing).
    checked: std::sync::atomic::AtomicBool,
}

/// The text of every `<tag>…</tag>` in an XML answer, entities decoded. S3 answers are flat
/// enough that this is all the XML we need.
fn tag_values(xml: &str, tag: &str) -> Vec<String> {
    let (open, close) = (format!("<{tag}>"), format!("</{tag}>"));
    let mut out = Vec::new();
    let mut rest = xml;
    while let Some(start) = rest.find(&open) {
        let after = &rest[start + open.len()..];
        let Some(end) = after.find(&close) else { break };
        out.push(
            after[..end]
                .replace("&lt;", "<")
                .replace("&gt;", ">")
                .replace("&quot;", "\"")
                .replace("&apos;", "'")
                .replace("&amp;", "&"),
        );
        rest = &after[end + close.len()..];
    }
    out
}

fn first_tag(xml: &str, tag: &str) -> Option<String> {
    tag_values(xml, tag).into_iter().next()
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

/// SHA-256 (hex) of `len` bytes of `path` from `offset`.
fn hash_range(path: &Path, offset: u64, len: u64) -> std::io::Result<String> {
    let mut file = File::open(path)?;
    file.seek(SeekFrom::Start(offset))?;
    let mut reader = file.take(len);
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    let mut buf = vec![0u8; 1 << 20];
    let mut seen = 0u64;
    loop {
        let n = reader.read(&mut buf)?;
        if n == 0 {
            break;
        }
        ctx.update(&buf[..n]);
        seen += n as u64;
    }
    if seen != len {
        return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "the file is shorter than expected"));
    }
    Ok(crate::auth::hex(ctx.finish().as_ref()))
}

impl S3Destination {
    pub fn new(
        label: String,
        config: S3Config,
        settings: S3Settings,
        journal: Option<Store>,
    ) -> Result<S3Destination, PublishError> {
        let endpoint = if config.endpoint.contains("://") {
            config.endpoint.clone()
        } else {
            format!("https://{}", config.endpoint)
        };
        let bad = |why: &str| PublishError::new(format!("{label}: the S3 endpoint {why}"), false);
        let url = Url::parse(&endpoint).map_err(|_| bad("is not a host name"))?;
        let host = url.host_str().ok_or_else(|| bad("has no host"))?;
        let host = match url.port() {
            Some(port) => format!("{host}:{port}"),
            None => host.to_string(),
        };
        let host = if config.path_style { host } else { format!("{}.{host}", config.bucket) };
        let target = format!("{}/{}", config.endpoint, config.bucket);
        Ok(S3Destination {
            label,
            scheme: url.scheme().to_string(),
            host,
            target,
            config,
            settings,
            journal,
            agent: Mutex::new(None),
            checked: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// The object key of `rel`, below the prefix.
    fn key(&self, rel: &str) -> String {
        match self.config.prefix.trim_matches('/') {
            "" => rel.to_string(),
            prefix => format!("{prefix}/{rel}"),
        }
    }

    /// The request path of an object (`None`: the bucket itself).
    fn path(&self, key: Option<&str>) -> String {
        let raw = match (self.config.path_style, key) {
            (true, Some(key)) => format!("/{}/{key}", self.config.bucket),
            (true, None) => format!("/{}", self.config.bucket),
            (false, Some(key)) => format!("/{key}"),
            (false, None) => "/".to_string(),
        };
        sigv4::encode_path(&raw)
    }

    fn agent(&self, url: &Url) -> Result<ureq::Agent, PublishError> {
        let mut slot = self.agent.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(agent) = slot.as_ref() {
            return Ok(agent.clone());
        }
        let addrs = crate::outbound::resolve_checked(url, self.settings.policy).map_err(|e| match e {
            DownloadError::Refused { host, class } => PublishError::new(
                format!(
                    "{}: the S3 endpoint {host} is {}, which this server may not connect to",
                    self.label,
                    class.describe()
                ),
                false,
            ),
            DownloadError::BadUrl(why) => {
                PublishError::new(format!("{}: the S3 endpoint is not usable: {why}", self.label), false)
            }
            other => PublishError::new(
                format!("{}: {}", self.label, other.to_string().replace("downloading the build failed: ", "")),
                true,
            ),
        })?;
        let agent = crate::outbound::agent(self.settings.timeout, addrs);
        *slot = Some(agent.clone());
        Ok(agent)
    }

    /// One signed request, any answer status.
    fn send_once(
        &self,
        method: &str,
        key: Option<&str>,
        query: &[(String, String)],
        body: &Body,
    ) -> Result<Reply, PublishError> {
        let path = self.path(key);
        let query_string = sigv4::canonical_query(query);
        let mut url = format!("{}://{}{}", self.scheme, self.host, path);
        if !query_string.is_empty() {
            url.push('?');
            url.push_str(&query_string);
        }
        let url = Url::parse(&url)
            .map_err(|_| PublishError::new(format!("{}: a request URL is not valid", self.label), false))?;
        let agent = self.agent(&url)?;
        let payload = match body {
            Body::Empty => EMPTY_SHA256.to_string(),
            Body::Bytes(bytes) => crate::auth::hex(&crate::auth::sha256(bytes)),
            Body::File { path, offset, len } => hash_range(path, *offset, *len).map_err(|e| {
                PublishError::new(format!("{}: reading the file to publish failed ({})", self.label, e.kind()), true)
            })?,
        };
        let amz_date = chrono::Utc::now().format("%Y%m%dT%H%M%SZ").to_string();
        let headers = pairs(&[("host", &self.host), ("x-amz-content-sha256", &payload), ("x-amz-date", &amz_date)]);
        let signed = SignedRequest { method, path: &path, query, headers: &headers, payload_sha256: &payload };
        let authorization =
            sigv4::authorization(&self.config.credentials, &self.config.region, "s3", &amz_date, &signed);
        let mut request = agent.request_url(method, &url).set("Authorization", &authorization);
        for (name, value) in &headers {
            request = request.set(name, value);
        }
        let result = match body {
            Body::Empty if method == "PUT" || method == "POST" => request.set("Content-Length", "0").send_bytes(&[]),
            Body::Empty => request.call(),
            Body::Bytes(bytes) => request.send_bytes(bytes),
            Body::File { path, offset, len } => {
                let mut file =
                    File::open(path).and_then(|mut f| f.seek(SeekFrom::Start(*offset)).map(|_| f)).map_err(|e| {
                        PublishError::new(
                            format!("{}: reading the file to publish failed ({})", self.label, e.kind()),
                            true,
                        )
                    })?;
                let reader = (&mut file).take(*len);
                request.set("Content-Length", &len.to_string()).send(reader)
            }
        };
        let response = match result {
            Ok(response) => response,
            Err(ureq::Error::Status(_, response)) => response,
            Err(ureq::Error::Transport(t)) => {
                return Err(PublishError::new(
                    format!("{}: the S3 endpoint cannot be reached: {}", self.label, t.kind()),
                    true,
                ))
            }
        };
        let status = response.status();
        let etag = response.header("ETag").map(str::to_string);
        let content_length = response.header("Content-Length").and_then(|v| v.parse().ok());
        let mut text = String::new();
        if method != "HEAD" {
            // Answers we read are small XML documents; bound them anyway.
            let _ = response.into_reader().take(4 << 20).read_to_string(&mut text);
        }
        Ok(Reply { status, etag, content_length, body: text })
    }

    /// What a failed answer means for the operator.
    fn refusal(&self, method: &str, key: Option<&str>, reply: &Reply) -> PublishError {
        let code = first_tag(&reply.body, "Code").unwrap_or_default();
        let what = key.map(|k| format!(" {k}")).unwrap_or_default();
        let label = &self.label;
        let credentials = [
            "InvalidAccessKeyId",
            "SignatureDoesNotMatch",
            "AccessDenied",
            "InvalidToken",
            "ExpiredToken",
            "InvalidSecurity",
        ];
        let transient =
            ["SlowDown", "RequestTimeout", "InternalError", "ServiceUnavailable", "Throttling", "RequestLimitExceeded"];
        if code == "NoSuchBucket" {
            return PublishError::new(
                format!("{label}: the bucket `{}` does not exist on {}", self.config.bucket, self.config.endpoint),
                false,
            );
        }
        if credentials.contains(&code.as_str()) || (reply.status == 403 && code.is_empty()) || reply.status == 401 {
            let code = if code.is_empty() { format!("HTTP {}", reply.status) } else { code };
            return PublishError::new(
                format!(
                    "{label}: the S3 endpoint refused the credentials of access key {} ({code})",
                    self.config.credentials.access_key_id
                ),
                false,
            );
        }
        let retryable =
            reply.status >= 500 || reply.status == 429 || reply.status == 408 || transient.contains(&code.as_str());
        let detail = match (code.is_empty(), first_tag(&reply.body, "Message")) {
            (true, _) => String::new(),
            (false, Some(message)) => format!(" {code}: {message}"),
            (false, None) => format!(" {code}"),
        };
        PublishError::new(format!("{label}: {method}{what} answered HTTP {}{detail}", reply.status), retryable)
    }

    /// A request, retried with backoff on network trouble, 5xx and throttling. Answers a 2xx
    /// reply, or one whose status `accept` lists (a HEAD's 404); anything else is an error.
    fn call(
        &self,
        method: &str,
        key: Option<&str>,
        query: &[(String, String)],
        body: Body,
        accept: &[u16],
    ) -> Result<Reply, PublishError> {
        let attempts = self.settings.attempts.max(1);
        let mut pause = self.settings.backoff;
        let mut attempt = 1;
        loop {
            let outcome = self.send_once(method, key, query, &body).and_then(|reply| {
                // S3 may answer 200 to CompleteMultipartUpload and put an error in the body.
                let hidden_error = reply.status == 200 && method == "POST" && reply.body.contains("<Error>");
                if ((200..300).contains(&reply.status) && !hidden_error) || accept.contains(&reply.status) {
                    Ok(reply)
                } else {
                    let reply = if hidden_error { Reply { status: 500, ..reply } } else { reply };
                    Err(self.refusal(method, key, &reply))
                }
            });
            match outcome {
                Err(e) if e.retryable && attempt < attempts => {
                    log::warn!("{} (attempt {attempt} of {attempts}, retrying)", e.message);
                    std::thread::sleep(pause);
                    pause *= 2;
                    attempt += 1;
                }
                other => return other,
            }
        }
    }

    fn check_once(&self) -> Result<(), PublishError> {
        use std::sync::atomic::Ordering;
        if !self.checked.load(Ordering::Acquire) {
            self.check()?;
            self.checked.store(true, Ordering::Release);
        }
        Ok(())
    }

    /// The size of an object, or `None` when there is none.
    fn object_size(&self, key: &str) -> Result<Option<u64>, PublishError> {
        let reply = self.call("HEAD", Some(key), &[], Body::Empty, &[404])?;
        Ok((reply.status != 404).then_some(reply.content_length.unwrap_or(0)))
    }

    fn journal<T>(
        &self,
        f: impl FnOnce(&rusqlite::Connection) -> crate::store::StoreResult<T> + Send + 'static,
    ) -> Result<T, PublishError>
    where
        T: Send + 'static,
    {
        match &self.journal {
            Some(store) => store
                .write_blocking(f)
                .map_err(|e| PublishError::new(format!("{}: recording the upload failed: {e}", self.label), true)),
            None => Err(PublishError::new("no journal", true)),
        }
    }

    fn recorded_upload(&self, key: &str) -> Result<Option<Upload>, PublishError> {
        let Some(store) = &self.journal else { return Ok(None) };
        let (target, key) = (self.target.clone(), key.to_string());
        store
            .read_blocking(move |c| s3_uploads::find(c, &target, &key))
            .map_err(|e| PublishError::new(format!("{}: reading the upload record failed: {e}", self.label), true))
    }

    fn forget_upload(&self, key: &str) -> Result<(), PublishError> {
        if self.journal.is_none() {
            return Ok(());
        }
        let (target, key) = (self.target.clone(), key.to_string());
        self.journal(move |c| s3_uploads::forget(c, &target, &key))
    }

    fn start_upload(&self, key: &str, size: u64) -> Result<Upload, PublishError> {
        let query = pairs(&[("uploads", "")]);
        let reply = self.call("POST", Some(key), &query, Body::Empty, &[])?;
        let upload_id = first_tag(&reply.body, "UploadId").ok_or_else(|| {
            PublishError::new(
                format!("{}: the S3 endpoint started an upload of {key} without an UploadId", self.label),
                true,
            )
        })?;
        let upload = Upload { id: 0, upload_id, size, part_size: self.settings.part_size, parts: BTreeMap::new() };
        if self.journal.is_none() {
            return Ok(upload);
        }
        let (target, key_owned, recorded) = (self.target.clone(), key.to_string(), upload.clone());
        let id = self.journal(move |c| s3_uploads::start(c, &target, &key_owned, &recorded))?;
        Ok(Upload { id, ..upload })
    }

    /// A multipart upload of `src`, resumed from the recorded parts if an earlier attempt
    /// started it with the same size and part size.
    fn put_multipart(&self, key: &str, src: &Path, size: u64) -> Result<(), PublishError> {
        let part_size = self.settings.part_size.max(MIN_PART_SIZE);
        let mut upload = match self.recorded_upload(key)? {
            Some(u) if u.size == size && u.part_size == part_size => u,
            Some(stale) => {
                // Another size or part size: that upload cannot be completed with this file.
                let query = pairs(&[("uploadId", &stale.upload_id)]);
                let _ = self.call("DELETE", Some(key), &query, Body::Empty, &[404]);
                self.forget_upload(key)?;
                self.start_upload(key, size)?
            }
            None => self.start_upload(key, size)?,
        };
        let count = size.div_ceil(part_size).max(1);
        let missing: Vec<u64> = (1..=count).filter(|n| !upload.parts.contains_key(n)).collect();
        // Parts go up on a few connections at once: one stream rarely fills the link, and the
        // hash pass of one part overlaps the sending of another.
        let next = std::sync::atomic::AtomicUsize::new(0);
        let done = Mutex::new(Vec::new());
        let failed: Mutex<Option<PublishError>> = Mutex::new(None);
        let workers = (self.settings.part_concurrency.max(1) as usize).min(missing.len());
        std::thread::scope(|scope| {
            for _ in 0..workers {
                scope.spawn(|| loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let stop = failed.lock().map(|f| f.is_some()).unwrap_or(true);
                    let Some(&n) = missing.get(i).filter(|_| !stop) else { break };
                    match self.put_part(key, src, &upload, n, part_size, size) {
                        Ok(etag) => done.lock().unwrap_or_else(|p| p.into_inner()).push((n, etag)),
                        Err(e) => {
                            failed.lock().unwrap_or_else(|p| p.into_inner()).get_or_insert(e);
                            break;
                        }
                    }
                });
            }
        });
        if let Some(e) = failed.into_inner().unwrap_or_else(|p| p.into_inner()) {
            if e.message.contains("NoSuchUpload") {
                // The endpoint dropped the upload (expired, aborted): start over next time.
                self.forget_upload(key)?;
                return Err(PublishError::new(
                    format!("{}: the upload of {key} was dropped by the endpoint; starting over", self.label),
                    true,
                ));
            }
            return Err(e);
        }
        upload.parts.extend(done.into_inner().unwrap_or_else(|p| p.into_inner()));
        let mut xml = String::from("<CompleteMultipartUpload>");
        for (n, etag) in &upload.parts {
            let etag = etag.replace('&', "&amp;").replace('<', "&lt;");
            xml.push_str(&format!("<Part><PartNumber>{n}</PartNumber><ETag>{etag}</ETag></Part>"));
        }
        xml.push_str("</CompleteMultipartUpload>");
        let query = pairs(&[("uploadId", &upload.upload_id)]);
        match self.call("POST", Some(key), &query, Body::Bytes(xml.as_bytes()), &[]) {
            Ok(_) => {}
            Err(e) if e.message.contains("NoSuchUpload") => {
                self.forget_upload(key)?;
                return Err(PublishError::new(
                    format!("{}: the upload of {key} was dropped by the endpoint; starting over", self.label),
                    true,
                ));
            }
            Err(e) => return Err(e),
        }
        self.forget_upload(key)
    }

    /// Sends part `n` and records its ETag once the endpoint has it.
    fn put_part(
        &self,
        key: &str,
        src: &Path,
        upload: &Upload,
        n: u64,
        part_size: u64,
        size: u64,
    ) -> Result<String, PublishError> {
        let offset = (n - 1) * part_size;
        let len = part_size.min(size - offset);
        let query = pairs(&[("partNumber", &n.to_string()), ("uploadId", &upload.upload_id)]);
        let reply = self.call("PUT", Some(key), &query, Body::File { path: src, offset, len }, &[])?;
        let etag = reply.etag.ok_or_else(|| {
            PublishError::new(format!("{}: part {n} of {key} was stored without an ETag", self.label), true)
        })?;
        if self.journal.is_some() {
            let (id, tag) = (upload.id, etag.clone());
            self.journal(move |c| s3_uploads::part_done(c, id, n, &tag))?;
        }
        Ok(etag)
    }

    /// Every key below `prefix`.
    fn list(&self, prefix: &str) -> Result<Vec<String>, PublishError> {
        let mut keys = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut query = pairs(&[("list-type", "2"), ("prefix", prefix)]);
            if let Some(t) = &token {
                query.push(("continuation-token".into(), t.clone()));
            }
            let reply = self.call("GET", None, &query, Body::Empty, &[])?;
            keys.extend(tag_values(&reply.body, "Key"));
            token = first_tag(&reply.body, "NextContinuationToken");
            if first_tag(&reply.body, "IsTruncated").as_deref() != Some("true") || token.is_none() {
                return Ok(keys);
            }
        }
    }
}

impl Destination for S3Destination {
    fn label(&self) -> &str {
        &self.label
    }

    /// An object already there with the file's size is whole (objects are immutable and S3
    /// writes them atomically): skipped.
    fn put_file(&self, rel: &str, src: &Path) -> Result<(), PublishError> {
        self.check_once()?;
        let key = self.key(rel);
        let size = std::fs::metadata(src)
            .map_err(|e| {
                PublishError::new(format!("{}: reading {rel} from the depot failed ({})", self.label, e.kind()), true)
            })?
            .len();
        if self.object_size(&key)? == Some(size) {
            return self.forget_upload(&key);
        }
        if size >= self.settings.multipart_threshold && size > MIN_PART_SIZE {
            self.put_multipart(&key, src, size)
        } else {
            self.call("PUT", Some(&key), &[], Body::File { path: src, offset: 0, len: size }, &[]).map(drop)
        }
    }

    fn put_bytes(&self, rel: &str, bytes: &[u8]) -> Result<(), PublishError> {
        self.check_once()?;
        self.call("PUT", Some(&self.key(rel)), &[], Body::Bytes(bytes), &[]).map(drop)
    }

    fn remove_tree(&self, rel: &str) -> Result<(), PublishError> {
        let prefix = format!("{}/", self.key(rel.trim_end_matches('/')));
        // Uploads an interrupted publish left open below the prefix: their parts are stored (and
        // billed) until aborted.
        if let Some(store) = &self.journal {
            let (target, below) = (self.target.clone(), prefix.clone());
            let open = store.read_blocking(move |c| s3_uploads::below(c, &target, &below)).map_err(|e| {
                PublishError::new(format!("{}: reading the upload records failed: {e}", self.label), true)
            })?;
            for (key, upload_id) in open {
                self.call("DELETE", Some(&key), &pairs(&[("uploadId", &upload_id)]), Body::Empty, &[404])?;
                self.forget_upload(&key)?;
            }
        }
        for key in self.list(&prefix)? {
            self.call("DELETE", Some(&key), &[], Body::Empty, &[404])?;
        }
        Ok(())
    }

    fn check(&self) -> Result<(), PublishError> {
        let query = pairs(&[("list-type", "2"), ("max-keys", "1")]);
        self.call("GET", None, &query, Body::Empty, &[]).map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn destination(path_style: bool, prefix: &str) -> S3Destination {
        let config = S3Config {
            endpoint: "s3.eu-west-1.amazonaws.com".into(),
            region: "eu-west-1".into(),
            bucket: "games".into(),
            credentials: Credentials { access_key_id: "AK".into(), secret_access_key: "SK".into() },
            path_style,
            prefix: prefix.into(),
        };
        S3Destination::new("deployment cdn".into(), config, S3Settings::default(), None).unwrap()
    }

    #[test]
    fn path_style_puts_the_bucket_in_the_path_and_virtual_hosting_in_the_host() {
        let path = destination(true, "");
        assert_eq!((path.scheme.as_str(), path.host.as_str()), ("https", "s3.eu-west-1.amazonaws.com"));
        assert_eq!(path.path(Some("dxf/acme/game/0001/x/index.zst")), "/games/dxf/acme/game/0001/x/index.zst");
        let hosted = destination(false, "cdn/v1");
        assert_eq!(hosted.host, "games.s3.eu-west-1.amazonaws.com");
        assert_eq!(hosted.path(Some(&hosted.key("dxf/a"))), "/cdn/v1/dxf/a");
        assert_eq!(hosted.path(None), "/");
    }

    #[test]
    fn an_endpoint_with_a_scheme_and_port_keeps_both() {
        let mut d = destination(true, "");
        d.config.endpoint = "http://127.0.0.1:9000".into();
        let d = S3Destination::new("x".into(), d.config, S3Settings::default(), None).unwrap();
        assert_eq!((d.scheme.as_str(), d.host.as_str()), ("http", "127.0.0.1:9000"));
    }

    #[test]
    fn error_answers_are_classified_for_the_operator() {
        let d = destination(true, "");
        let reply = |status, body: &str| Reply { status, etag: None, content_length: None, body: body.into() };
        let missing = d.refusal("PUT", Some("k"), &reply(404, "<Error><Code>NoSuchBucket</Code></Error>"));
        assert!(!missing.retryable && missing.message.contains("bucket `games` does not exist"), "{missing}");
        let denied = d.refusal("PUT", Some("k"), &reply(403, "<Error><Code>SignatureDoesNotMatch</Code></Error>"));
        assert!(!denied.retryable && denied.message.contains("refused the credentials"), "{denied}");
        assert!(!denied.message.contains("SK"), "never the secret");
        let slow = d.refusal("PUT", Some("k"), &reply(503, "<Error><Code>SlowDown</Code></Error>"));
        assert!(slow.retryable && slow.message.starts_with("deployment cdn:"), "{slow}");
        let bad =
            d.refusal("PUT", Some("k"), &reply(400, "<Error><Code>InvalidArgument</Code><Message>m</Message></Error>"));
        assert!(!bad.retryable && bad.message.contains("InvalidArgument: m"), "{bad}");
    }

    #[test]
    fn xml_values_are_read_and_decoded() {
        let xml = "<R><Key>a&amp;b</Key><Key>c</Key><IsTruncated>false</IsTruncated></R>";
        assert_eq!(tag_values(xml, "Key"), vec!["a&b".to_string(), "c".to_string()]);
        assert_eq!(first_tag(xml, "IsTruncated").as_deref(), Some("false"));
        assert_eq!(first_tag(xml, "UploadId"), None);
    }
}
