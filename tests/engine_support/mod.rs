//! Helpers for the engine tests: deterministic trees described in memory, written as tars the
//! way a build server would, and compared file by file with what the client rebuilt.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// One entry of a test tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Node {
    File { mode: u32, bytes: Vec<u8> },
    Dir,
    Link(String),
}

pub type Tree = BTreeMap<String, Node>;

/// Deterministic pseudo-random bytes (xorshift64*), different per seed.
pub fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        out.extend_from_slice(&x.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
    }
    out.truncate(len);
    out
}

/// Compressible but not trivial bytes, like game data tables.
pub fn text(seed: u64, len: usize) -> Vec<u8> {
    let words = ["sword", "shield", "potion", "dragon", "castle", "level", "score", "player", "enemy", "door"];
    let n = noise(seed, len / 4 + 1);
    let mut out = Vec::with_capacity(len + 16);
    let mut i = 0;
    while out.len() < len {
        out.extend_from_slice(words[(n[i % n.len()] % 10) as usize].as_bytes());
        out.push(if n[(i + 1) % n.len()].is_multiple_of(7) { b'\n' } else { b' ' });
        i += 1;
    }
    out.truncate(len);
    out
}

pub fn file(bytes: Vec<u8>) -> Node {
    Node::File { mode: 0o644, bytes }
}

pub fn exe(bytes: Vec<u8>) -> Node {
    Node::File { mode: 0o755, bytes }
}

fn header(path: &str, kind: tar::EntryType, size: u64, mode: u32) -> tar::Header {
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(kind);
    h.set_size(size);
    h.set_mode(mode);
    h.set_mtime(0);
    set_raw_path(&mut h, path);
    h
}

/// Writes the name bytes directly, so tests can build the malformed entries the tar crate's
/// own `set_path` would refuse.
pub fn set_raw_path(h: &mut tar::Header, path: &str) {
    let ustar = h.as_ustar_mut().expect("ustar header");
    ustar.name = [0; 100];
    ustar.name[..path.len()].copy_from_slice(path.as_bytes());
}

/// A raw tar entry for the bad-tar tests.
pub struct RawEntry<'a> {
    pub path: &'a str,
    pub kind: tar::EntryType,
    pub data: &'a [u8],
    pub link: Option<&'a str>,
}

pub fn raw_tar(entries: &[RawEntry]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for e in entries {
        let mut h = header(e.path, e.kind, e.data.len() as u64, 0o644);
        if let Some(link) = e.link {
            let ustar = h.as_ustar_mut().expect("ustar header");
            ustar.linkname = [0; 100];
            ustar.linkname[..link.len()].copy_from_slice(link.as_bytes());
        }
        h.set_cksum();
        b.append(&h, e.data).expect("append");
    }
    b.into_inner().expect("finish tar")
}

/// The tree as a tar, entries in path order with a `./` prefix as `tar -C dir .` writes them.
pub fn tar_of(tree: &Tree) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (path, node) in tree {
        let mut h;
        let name = format!("./{path}");
        match node {
            Node::File { mode, bytes } => {
                h = tar::Header::new_gnu();
                h.set_size(bytes.len() as u64);
                h.set_mode(*mode);
                h.set_mtime(0);
                h.set_entry_type(tar::EntryType::Regular);
                b.append_data(&mut h, &name, &bytes[..]).expect("append file");
            }
            Node::Dir => {
                h = header("", tar::EntryType::Directory, 0, 0o755);
                b.append_data(&mut h, format!("{name}/"), &[][..]).expect("append dir");
            }
            Node::Link(target) => {
                h = header("", tar::EntryType::Symlink, 0, 0o777);
                b.append_link(&mut h, &name, target).expect("append link");
            }
        }
    }
    b.into_inner().expect("finish tar")
}

/// Reads a directory back into a `Tree` (directories only where they hold nothing, as in the
/// trees the tests describe; other directories are implied by their contents).
pub fn read_tree(root: &Path) -> Tree {
    let mut tree = Tree::new();
    walk(root, root, &mut tree);
    tree
}

fn walk(root: &Path, dir: &Path, tree: &mut Tree) {
    let mut any = false;
    for entry in std::fs::read_dir(dir).expect("read dir") {
        any = true;
        let entry = entry.expect("dir entry");
        let path = entry.path();
        let rel = path.strip_prefix(root).expect("inside root").to_string_lossy().into_owned();
        let meta = std::fs::symlink_metadata(&path).expect("metadata");
        if meta.file_type().is_symlink() {
            tree.insert(rel, Node::Link(std::fs::read_link(&path).expect("link").to_string_lossy().into_owned()));
        } else if meta.is_dir() {
            walk(root, &path, tree);
        } else {
            tree.insert(
                rel,
                Node::File { mode: meta.permissions().mode() & 0o777, bytes: std::fs::read(&path).expect("read file") },
            );
        }
    }
    if !any && dir != root {
        tree.insert(dir.strip_prefix(root).expect("inside root").to_string_lossy().into_owned(), Node::Dir);
    }
}

/// Only the leaves of a described tree (files, links, empty directories), as `read_tree` sees
/// a directory.
pub fn leaves(tree: &Tree) -> Tree {
    tree.iter()
        .filter(|(path, node)| **node != Node::Dir || !tree.keys().any(|other| other.starts_with(&format!("{path}/"))))
        .map(|(p, n)| (p.clone(), n.clone()))
        .collect()
}

#[track_caller]
pub fn assert_same_tree(actual: &Tree, expected: &Tree) {
    let expected = leaves(expected);
    let a: Vec<&String> = actual.keys().collect();
    let e: Vec<&String> = expected.keys().collect();
    assert_eq!(a, e, "paths differ");
    for (path, node) in &expected {
        assert!(actual[path] == *node, "{path} differs");
    }
}

/// Build 1 of a small game: executables, data, a library, identical files, an empty file, a
/// link, an empty directory and a path too long for a plain tar header.
pub fn game_v1() -> Tree {
    let mut t = Tree::new();
    t.insert("bin".into(), Node::Dir);
    t.insert("bin/game".into(), exe(noise(1, 700_000)));
    t.insert("data".into(), Node::Dir);
    t.insert("data/level1.pak".into(), file(noise(2, 1_500_000)));
    t.insert("data/level2.pak".into(), file(text(3, 600_000)));
    t.insert("copy".into(), Node::Dir);
    t.insert("copy/level1-again.pak".into(), file(noise(2, 1_500_000)));
    t.insert("lib".into(), Node::Dir);
    t.insert("lib/libfoo-abc123.so".into(), exe(noise(4, 400_000)));
    t.insert("docs".into(), Node::Dir);
    t.insert("docs/readme.txt".into(), file(text(5, 5_000)));
    t.insert("empty.txt".into(), file(Vec::new()));
    t.insert("readme".into(), Node::Link("docs/readme.txt".into()));
    t.insert("saves".into(), Node::Dir);
    t.insert("old".into(), Node::Dir);
    t.insert("old/removed.bin".into(), file(noise(6, 100_000)));
    // Longer than the 100 bytes of a tar header's name field: a GNU long-name entry.
    t.insert(format!("assets/{}/deep.bin", "sub-directory".repeat(10)), file(text(10, 3_000)));
    t
}

/// Build 2: scattered edits, an insert that shifts data, an append, a renamed and edited
/// library, a renamed directory, a new file, a removed one, a new empty file, a mode change.
pub fn game_v2() -> Tree {
    let mut t = game_v1();
    let Some(Node::File { bytes, .. }) = t.get_mut("bin/game") else { unreachable!() };
    for at in [1_000usize, 250_000, 600_000] {
        bytes[at..at + 16].copy_from_slice(b"patched-in-v2!!!");
    }
    let Some(Node::File { bytes, .. }) = t.get_mut("data/level1.pak") else { unreachable!() };
    let tail = bytes.split_off(300_000);
    bytes.extend_from_slice(&text(7, 1_000));
    bytes.extend_from_slice(&tail);
    let Some(Node::File { bytes, .. }) = t.get_mut("data/level2.pak") else { unreachable!() };
    bytes.extend_from_slice(&text(8, 50_000));
    let Some(Node::File { mut bytes, mode }) = t.remove("lib/libfoo-abc123.so") else { unreachable!() };
    bytes[100_000..100_008].copy_from_slice(b"v2-build");
    t.insert("lib/libfoo-def456.so".into(), Node::File { mode, bytes });
    let readme = t.remove("docs/readme.txt").expect("readme");
    t.remove("docs");
    t.insert("manual".into(), Node::Dir);
    t.insert("manual/readme.txt".into(), readme);
    t.insert("readme".into(), Node::Link("manual/readme.txt".into()));
    t.remove("old/removed.bin");
    t.remove("old");
    t.insert("data/new.bin".into(), file(noise(9, 200_000)));
    t.insert("new-empty.txt".into(), file(Vec::new()));
    // Same content, new mode: an update must still apply the mode.
    let Some(Node::File { mode, .. }) = t.get_mut("copy/level1-again.pak") else { unreachable!() };
    *mode = 0o600;
    t
}

/// Files under `root` whose name marks an unfinished write (a temp name never renamed into
/// place): what a crash test expects to find none of once the task finished.
pub fn leftovers(root: &Path) -> Vec<String> {
    let mut found = Vec::new();
    let mut dirs = vec![root.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().map(Result::unwrap) {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with(".tmp-") {
                found.push(entry.path().display().to_string());
            } else if entry.file_type().unwrap().is_dir() {
                dirs.push(entry.path());
            }
        }
    }
    found
}

/// A build server on loopback: every GET answers the current `body` whole (no ranges), or 404
/// while the body is empty.
pub struct BuildOrigin {
    pub url: String,
    body: std::sync::Arc<std::sync::Mutex<Vec<u8>>>,
    /// Each request's head, as received.
    pub heads: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl BuildOrigin {
    pub fn start(body: Vec<u8>) -> BuildOrigin {
        use std::io::{BufRead, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/native-build.tar", listener.local_addr().unwrap());
        let body = std::sync::Arc::new(std::sync::Mutex::new(body));
        let heads = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let (served, seen) = (body.clone(), heads.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let mut reader = std::io::BufReader::new(stream.try_clone().unwrap());
                let mut head = String::new();
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                    head.push_str(&line);
                }
                seen.lock().unwrap().push(head);
                let body = served.lock().unwrap().clone();
                if body.is_empty() {
                    let _ =
                        stream.write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
                    continue;
                }
                let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", body.len());
                let _ = stream.write_all(head.as_bytes()).and_then(|_| stream.write_all(&body));
            }
        });
        BuildOrigin { url, body, heads }
    }

    /// What every later request gets (empty: 404).
    pub fn serve(&self, body: Vec<u8>) {
        *self.body.lock().unwrap() = body;
    }
}
