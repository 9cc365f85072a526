//! Measurement, not a test: publish throughput of the `Destination`s (issue 11) next to the
//! plainest way to move the same bytes — `fs`: copy + fsync per file vs `DirDestination`
//! (temp name, fsync, rename, fsync of the directory); `s3`: one signed PUT per file vs
//! `S3Destination` (bucket check, HEAD per object, multipart above the threshold with every part
//! recorded in SQLite), both against the same local s3s-fs server on 127.0.0.1. Target: each
//! destination ≥ 0.8× its plain baseline. Run by `bash bench/run --publish`:
//!
//! ```text
//! cargo run --release --example publish_throughput -- [PACK_MIB] [ROUNDS]
//! ```

#[path = "../tests/s3_support/mod.rs"]
mod s3_support;

use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rockit_edge::config::Synchronous;
use rockit_edge::outbound::policy::OutboundPolicy;
use rockit_edge::publish::s3::{S3Config, S3Destination, S3Settings};
use rockit_edge::publish::sigv4::{self, Credentials, SignedRequest};
use rockit_edge::publish::{Destination, DirDestination};
use rockit_edge::store::{Pragmas, Store};

/// Deterministic incompressible bytes (packs are compressed data).
fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// A published build's objects: one large pack, a patch's data and the small indexes.
fn objects(dir: &Path, pack_mib: usize) -> Vec<(PathBuf, String)> {
    let files = [
        ("dxf/acme/game/0002/0123abcd/pack-00000", pack_mib << 20),
        ("dxf/acme/game/0002/0123abcd/index.zst", 300 << 10),
        ("pat/acme/game/0002/0001/patch.dat", 3 << 20),
        ("pat/acme/game/0002/0001/patch.zst", 40 << 10),
    ];
    files
        .iter()
        .enumerate()
        .map(|(i, (rel, len))| {
            let path = dir.join(rel);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            let mut f = File::create(&path).unwrap();
            // Written in slices: a large pack is never built in memory whole.
            let mut left = *len;
            let mut seed = i as u64 + 1;
            while left > 0 {
                let n = left.min(8 << 20);
                f.write_all(&noise(seed, n)).unwrap();
                left -= n;
                seed += 100;
            }
            (path, rel.to_string())
        })
        .collect()
}

fn copy_fsync(objects: &[(PathBuf, String)], root: &Path) {
    for (src, rel) in objects {
        let dest = root.join(rel);
        std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
        std::fs::copy(src, &dest).unwrap();
        File::open(&dest).unwrap().sync_all().unwrap();
    }
}

fn publish(dest: &dyn Destination, objects: &[(PathBuf, String)]) {
    for (src, rel) in objects {
        dest.put_file(rel, src).unwrap_or_else(|e| panic!("{e}"));
    }
}

/// The plain S3 baseline: for each file, hash it (SigV4 needs the payload hash) and send it as
/// one signed PUT, streamed. No check, no HEAD, no multipart, no bookkeeping.
fn plain_puts(endpoint: &str, bucket: &str, prefix: &str, objects: &[(PathBuf, String)]) {
    let host = endpoint.trim_start_matches("http://");
    let creds =
        Credentials { access_key_id: s3_support::ACCESS_KEY.into(), secret_access_key: s3_support::SECRET_KEY.into() };
    let agent = ureq::AgentBuilder::new().timeout(Duration::from_secs(300)).build();
    for (src, rel) in objects {
        let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
        let mut f = File::open(src).unwrap();
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = f.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            ctx.update(&buf[..n]);
        }
        let payload = rockit_edge::auth::hex(ctx.finish().as_ref());
        let path = sigv4::encode_path(&format!("/{bucket}/{prefix}/{rel}"));
        let date = chrono::Utc::now().format("%Y%m%dT%H%M%SZ").to_string();
        let headers: Vec<(String, String)> =
            [("host", host), ("x-amz-content-sha256", &payload), ("x-amz-date", &date)]
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
        let req = SignedRequest { method: "PUT", path: &path, query: &[], headers: &headers, payload_sha256: &payload };
        let auth = sigv4::authorization(&creds, "us-east-1", "s3", &date, &req);
        let len = std::fs::metadata(src).unwrap().len();
        let mut request = agent.put(&format!("{endpoint}{path}")).set("Authorization", &auth);
        for (k, v) in &headers {
            request = request.set(k, v);
        }
        request.set("Content-Length", &len.to_string()).send(File::open(src).unwrap()).unwrap();
    }
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn mb_s(bytes: u64, d: Duration) -> f64 {
    bytes as f64 / d.as_secs_f64() / 1e6
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let pack_mib: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(256);
    let rounds: usize = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(3);
    let work = tempfile::tempdir().unwrap();
    let objects = objects(&work.path().join("depot"), pack_mib);
    let bytes: u64 = objects.iter().map(|(p, _)| std::fs::metadata(p).unwrap().len()).sum();
    let s3 = s3_support::S3Server::start(&["games"]);
    let pragmas = Pragmas { busy_timeout: Duration::from_secs(30), synchronous: Synchronous::Full };
    let journal = Store::open(&work.path().join("journal.db"), pragmas, 1).unwrap();
    let settings = S3Settings {
        policy: OutboundPolicy { allow_loopback: true, allow_link_local: false },
        timeout: Duration::from_secs(300),
        ..S3Settings::default()
    };

    // The same destination with the threshold above the pack: every object one PUT, which tells
    // the cost of multipart itself (on s3s-fs, completing an upload copies every part again).
    let single = S3Settings { multipart_threshold: u64::MAX, ..settings.clone() };
    let (mut fs_plain, mut fs_dest, mut s3_plain, mut s3_dest) = (vec![], vec![], vec![], vec![]);
    let mut s3_single = vec![];
    for round in 0..rounds {
        // Alternate which side goes first, so neither always gets the warmer cache.
        let out = work.path().join(format!("out-{round}"));
        let time = |f: &mut dyn FnMut()| {
            let t = Instant::now();
            f();
            t.elapsed()
        };
        let mut plain_fs = || copy_fsync(&objects, &out.join("plain"));
        let dir = DirDestination::new("bench", out.join("dest"));
        let mut dest_fs = || publish(&dir, &objects);
        let prefix = format!("dest-{round}");
        let config = S3Config {
            endpoint: s3.endpoint.clone(),
            region: "us-east-1".into(),
            bucket: "games".into(),
            credentials: Credentials {
                access_key_id: s3_support::ACCESS_KEY.into(),
                secret_access_key: s3_support::SECRET_KEY.into(),
            },
            path_style: true,
            prefix: prefix.clone(),
        };
        let single_prefix = format!("single-{round}");
        let single_config = S3Config {
            endpoint: s3.endpoint.clone(),
            region: "us-east-1".into(),
            bucket: "games".into(),
            credentials: Credentials {
                access_key_id: s3_support::ACCESS_KEY.into(),
                secret_access_key: s3_support::SECRET_KEY.into(),
            },
            path_style: true,
            prefix: single_prefix.clone(),
        };
        let bucket = S3Destination::new("bench".into(), config, settings.clone(), Some(journal.clone())).unwrap();
        let unsplit = S3Destination::new("bench".into(), single_config, single.clone(), Some(journal.clone())).unwrap();
        s3_single.push(time(&mut || publish(&unsplit, &objects)));
        let mut dest_s3 = || publish(&bucket, &objects);
        let plain_prefix = format!("plain-{round}");
        let mut plain_s3 = || plain_puts(&s3.endpoint, "games", &plain_prefix, &objects);
        if round % 2 == 0 {
            fs_plain.push(time(&mut plain_fs));
            fs_dest.push(time(&mut dest_fs));
            s3_plain.push(time(&mut plain_s3));
            s3_dest.push(time(&mut dest_s3));
        } else {
            fs_dest.push(time(&mut dest_fs));
            fs_plain.push(time(&mut plain_fs));
            s3_dest.push(time(&mut dest_s3));
            s3_plain.push(time(&mut plain_s3));
        }
        // Keep the disk use of one round.
        let _ = std::fs::remove_dir_all(&out);
        let _ = std::fs::remove_dir_all(s3.dir("games", &prefix));
        let _ = std::fs::remove_dir_all(s3.dir("games", &plain_prefix));
        let _ = std::fs::remove_dir_all(s3.dir("games", &single_prefix));
    }
    let (fp, fd, sp, sd) = (median(fs_plain), median(fs_dest), median(s3_plain), median(s3_dest));
    let ss = median(s3_single);
    println!(
        "{} objects, {:.1} MiB, median of {rounds} rounds; multipart threshold {} MiB, part {} MiB",
        objects.len(),
        bytes as f64 / (1 << 20) as f64,
        settings.multipart_threshold >> 20,
        settings.part_size >> 20
    );
    println!();
    println!("| target | baseline MB/s | Destination MB/s | ratio (target ≥ 0.8) |");
    println!("|---|---:|---:|---:|");
    println!(
        "| fs (copy + fsync vs DirDestination) | {:.0} | {:.0} | {:.2} |",
        mb_s(bytes, fp),
        mb_s(bytes, fd),
        fp.as_secs_f64() / fd.as_secs_f64()
    );
    println!(
        "| s3 (plain signed PUT loop vs S3Destination) | {:.0} | {:.0} | {:.2} |",
        mb_s(bytes, sp),
        mb_s(bytes, sd),
        sp.as_secs_f64() / sd.as_secs_f64()
    );
    println!(
        "| s3, threshold above the pack (single PUTs) | {:.0} | {:.0} | {:.2} |",
        mb_s(bytes, sp),
        mb_s(bytes, ss),
        sp.as_secs_f64() / ss.as_secs_f64()
    );
}
