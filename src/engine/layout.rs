//! The compat published layout (API.md §7), shared by the depot, every `fs` origin and the
//! reference client.

use std::path::{Path, PathBuf};

/// `<root>/dxf/<org>/<app>/<build:04>`: the directory holding the build's `<dxfName>/`.
pub fn build_dir(root: &Path, org: &str, app: &str, build: u32) -> PathBuf {
    root.join(build_rel(org, app, build))
}

/// The same as a `/`-separated relative path (HTTP origins).
pub fn build_rel(org: &str, app: &str, build: u32) -> String {
    format!("dxf/{org}/{app}/{build:04}")
}

/// `<root>/pat/<org>/<app>/<to:04>/<from:04>`: the patch from build `from` to build `to`.
pub fn patch_dir(root: &Path, org: &str, app: &str, to: u32, from: u32) -> PathBuf {
    root.join(patch_rel(org, app, to, from))
}

pub fn patch_rel(org: &str, app: &str, to: u32, from: u32) -> String {
    format!("pat/{org}/{app}/{to:04}/{from:04}")
}

pub const INDEX_FILE: &str = "index.zst";
pub const PATCH_FILE: &str = "patch.zst";
pub const PATCH_DATA_FILE: &str = "patch.dat";

/// `pack-00000`, `pack-00001`, …
pub fn pack_name(n: u32) -> String {
    format!("pack-{n:05}")
}

/// The go-live pointer's name below `dxf/<org>/<app>/`.
pub const CURRENT_FILE: &str = "current.json";

/// `dxf/<org>/<app>/current.json`: which build a launcher that names none should fetch.
pub fn current_rel(org: &str, app: &str) -> String {
    format!("dxf/{org}/{app}/{CURRENT_FILE}")
}

/// The go-live pointer (`current.json`), written last and atomically on every target when a
/// build goes live.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Pointer {
    pub build_id: i64,
    pub dxf_name: String,
    pub name: Option<String>,
    pub size_bytes: i64,
    pub committed_at: String,
}
