//! A real S3-compatible server for the tests: `s3s-fs` (objects as files below a temporary
//! directory) behind `s3s`, which verifies every request's SigV4 signature, on 127.0.0.1:0 in
//! a thread of the test process. A thin layer in front counts requests by kind and can answer
//! 503 `SlowDown` or slow down part uploads, so tests can see retries and catch an upload midway.
#![allow(dead_code)]

use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder as ConnBuilder;
use s3s::auth::SimpleAuth;
use s3s::service::{S3Service, S3ServiceBuilder};
use serde_json::{json, Value};

pub const ACCESS_KEY: &str = "AKIATESTEDGE";
pub const SECRET_KEY: &str = "edge-test-secret/with+symbols";

/// What the server saw and how it misbehaves.
#[derive(Default)]
pub struct Stats {
    /// `PUT ?partNumber=` requests that reached the store.
    pub part_puts: AtomicU64,
    /// Plain object PUTs (no part number).
    pub object_puts: AtomicU64,
    pub deletes: AtomicU64,
    /// Requests answered 503 `SlowDown` by the layer (never reaching the store).
    pub throttled: AtomicU64,
    /// The next this-many PUTs are answered 503 `SlowDown`.
    pub throttle_next_puts: AtomicU64,
    /// Milliseconds each part upload is held before it is stored.
    pub part_delay_ms: AtomicU64,
}

impl Stats {
    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::SeqCst)
    }
}

#[derive(Clone)]
struct Layer {
    inner: S3Service,
    stats: Arc<Stats>,
}

type Reply = Result<s3s::HttpResponse, s3s::HttpError>;

impl hyper::service::Service<http::Request<Incoming>> for Layer {
    type Response = s3s::HttpResponse;
    type Error = s3s::HttpError;
    type Future = Pin<Box<dyn Future<Output = Reply> + Send>>;

    fn call(&self, req: http::Request<Incoming>) -> Self::Future {
        let stats = self.stats.clone();
        let method = req.method().clone();
        let is_part = req.uri().query().is_some_and(|q| q.contains("partNumber="));
        if method == http::Method::PUT {
            let throttle =
                stats.throttle_next_puts.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok();
            if throttle {
                stats.throttled.fetch_add(1, Ordering::SeqCst);
                let body = "<?xml version=\"1.0\"?><Error><Code>SlowDown</Code><Message>reduce your request rate</Message></Error>";
                let reply = http::Response::builder().status(503).body(s3s::Body::from(body.to_string())).unwrap();
                return Box::pin(async move { Ok(reply) });
            }
        }
        let inner = self.inner.clone();
        Box::pin(async move {
            if method == http::Method::PUT && is_part {
                let delay = Stats::get(&stats.part_delay_ms);
                if delay > 0 {
                    tokio::time::sleep(Duration::from_millis(delay)).await;
                }
            }
            let reply = hyper::service::Service::call(&inner, req).await;
            if reply.as_ref().is_ok_and(|r| r.status().is_success()) {
                match (method, is_part) {
                    (http::Method::PUT, true) => stats.part_puts.fetch_add(1, Ordering::SeqCst),
                    (http::Method::PUT, false) => stats.object_puts.fetch_add(1, Ordering::SeqCst),
                    (http::Method::DELETE, _) => stats.deletes.fetch_add(1, Ordering::SeqCst),
                    _ => 0,
                };
            }
            reply
        })
    }
}

/// A running S3 server. Its objects are files: `root/<bucket>/<key>`.
pub struct S3Server {
    pub endpoint: String,
    pub root: PathBuf,
    pub stats: Arc<Stats>,
    _dir: tempfile::TempDir,
}

impl S3Server {
    /// Starts with the given buckets (directories) already there.
    pub fn start(buckets: &[&str]) -> S3Server {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("s3");
        for bucket in buckets {
            std::fs::create_dir_all(root.join(bucket)).unwrap();
        }
        let stats = Arc::new(Stats::default());
        let (tx, rx) = std::sync::mpsc::channel();
        let (serve_root, serve_stats) = (root.clone(), stats.clone());
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
            runtime.block_on(async move {
                let fs = s3s_fs::FileSystem::new(&serve_root).unwrap();
                let mut builder = S3ServiceBuilder::new(fs);
                builder.set_auth(SimpleAuth::from_single(ACCESS_KEY, SECRET_KEY));
                let layer = Layer { inner: builder.build(), stats: serve_stats };
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                tx.send(listener.local_addr().unwrap()).unwrap();
                let http = ConnBuilder::new(TokioExecutor::new());
                loop {
                    let Ok((socket, _)) = listener.accept().await else { continue };
                    let conn = http.serve_connection(TokioIo::new(socket), layer.clone()).into_owned();
                    tokio::spawn(async move {
                        let _ = conn.await;
                    });
                }
            });
        });
        let addr = rx.recv_timeout(Duration::from_secs(30)).expect("the S3 server started");
        S3Server { endpoint: format!("http://{addr}"), root, stats, _dir: dir }
    }

    /// The `origin` of a deployment on this server.
    pub fn origin(&self, bucket: &str) -> Value {
        json!({"type": "s3", "endpoint": self.endpoint, "region": "us-east-1", "bucket": bucket,
               "accessKeyId": ACCESS_KEY, "secretAccessKey": SECRET_KEY, "pathStyle": true})
    }

    /// Where the objects below `prefix` of `bucket` are, as files.
    pub fn dir(&self, bucket: &str, prefix: &str) -> PathBuf {
        self.root.join(bucket).join(prefix)
    }

    /// Every object key of `bucket` (s3s-fs keeps its own bookkeeping in dot files).
    pub fn keys(&self, bucket: &str) -> Vec<String> {
        let mut keys = Vec::new();
        collect(&self.root.join(bucket), Path::new(""), &mut keys);
        keys.sort();
        keys
    }
}

fn collect(dir: &Path, rel: &Path, out: &mut Vec<String>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') {
            continue;
        }
        let path = rel.join(&name);
        if entry.file_type().map(|t| t.is_dir()).unwrap_or(false) {
            collect(&entry.path(), &path, out);
        } else {
            out.push(path.to_string_lossy().into_owned());
        }
    }
}
