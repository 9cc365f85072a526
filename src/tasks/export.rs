//! `export`: writes one organization into a bundle file under `<state>/exports/` (issue 13,
//! docs/FORMAT.md). Secrets are opened with this box's key and encrypted again under the
//! passphrase's; with `includeBuilds` the retained builds' manifests, chunks and published
//! images and patches follow as files, streamed from disk into the bundle.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rusqlite::Connection;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::{failure, io_failure, TaskContext, TaskFailure, TaskHandler};
use crate::auth::sealing::Sealer;
use crate::bundle::document::OrgDocument;
use crate::bundle::{crypto::SALT_LEN, BundleWriter, Keys};
use crate::engine::layout;
use crate::store::tasks::{NewTask, Task};
use crate::store::{transfers, StoreResult};

pub const TYPE: &str = "export";

/// What the export handler needs besides the task.
pub struct ExportEnv {
    pub sealer: Arc<Sealer>,
    /// `<state>/builds`.
    pub work_root: PathBuf,
    /// `<state>/exports`.
    pub exports_dir: PathBuf,
    /// PBKDF2 iterations of new bundles.
    pub iterations: u32,
}

/// The stored input of an export task.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ExportInput {
    pub org_id: i64,
    pub org_name: String,
    pub include_builds: bool,
    pub requested_by: String,
    /// Sealed under this box's key (base64) while the task may run; removed when it ends.
    #[serde(default)]
    pub passphrase: Option<String>,
}

impl ExportInput {
    pub fn passphrase_context(org_id: i64) -> String {
        format!("export/{org_id}/passphrase")
    }
}

pub fn task(input: &ExportInput) -> NewTask {
    NewTask {
        kind: TYPE.into(),
        group: None,
        app_name: None,
        build_id: None,
        input: serde_json::to_value(input).unwrap_or(Value::Null),
        max_attempts: 3,
        run_in_maintenance: false,
    }
}

/// Where the bundle of export task `task_name` is kept until it is downloaded.
pub fn bundle_path(exports_dir: &Path, task_name: &str) -> PathBuf {
    exports_dir.join(format!("{task_name}.bundle"))
}

/// Where a secret sits inside a bundle: the AES-GCM associated data, so an encrypted value
/// cannot be moved to another field or resource.
pub fn bundle_context(kind: &str, name: &str, field: &str) -> String {
    format!("{kind}/{name}/{field}")
}

pub struct Export(pub Arc<ExportEnv>);

/// Every regular file below `dir` as (`/`-joined path relative to `dir`, size), skipping
/// temporary files (`.tmp-…`) an import may be writing.
fn files_below(dir: &Path) -> std::io::Result<Vec<(String, PathBuf, u64)>> {
    let mut out = Vec::new();
    let mut stack = vec![(dir.to_path_buf(), String::new())];
    while let Some((at, rel)) = stack.pop() {
        let mut entries: Vec<_> = std::fs::read_dir(&at)?.collect::<Result<_, _>>()?;
        entries.sort_by_key(|e| e.file_name());
        for entry in entries {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') {
                continue;
            }
            let path = if rel.is_empty() { name.clone() } else { format!("{rel}/{name}") };
            let kind = entry.file_type()?;
            if kind.is_dir() {
                stack.push((entry.path(), path));
            } else if kind.is_file() {
                out.push((path, entry.path(), entry.metadata()?.len()));
            }
        }
    }
    Ok(out)
}

impl Export {
    /// The files of the retained builds: bundle path, source, size.
    fn build_files(
        &self,
        ctx: &TaskContext,
        doc: &OrgDocument,
        apps: &[(String, i64)],
    ) -> std::io::Result<Vec<(String, PathBuf, u64)>> {
        let org = doc.org.name.as_str();
        let mut files = Vec::new();
        for app in &doc.apps {
            let Some((_, app_id)) = apps.iter().find(|(name, _)| *name == app.name) else { continue };
            let work = self.0.work_root.join(app_id.to_string());
            for b in &app.builds {
                let name = format!("{:04}.json", b.build_id);
                let path = work.join("manifests").join(&name);
                let size = std::fs::metadata(&path)?.len();
                files.push((format!("builds/{}/manifests/{name}", app.name), path, size));
            }
            let chunks = work.join("chunks");
            if chunks.is_dir() {
                for (rel, path, size) in files_below(&chunks)? {
                    files.push((format!("builds/{}/chunks/{rel}", app.name), path, size));
                }
            }
            for b in &app.builds {
                let n = u32::try_from(b.build_id).map_err(|_| std::io::ErrorKind::InvalidData)?;
                let dir = layout::build_dir(ctx.depot, org, &app.name, n);
                for (rel, path, size) in files_below(&dir)? {
                    files.push((format!("depot/dxf/{}/{n:04}/{rel}", app.name), path, size));
                }
            }
            for p in &app.patches {
                let (to, from) = (
                    u32::try_from(p.to_build_id).map_err(|_| std::io::ErrorKind::InvalidData)?,
                    u32::try_from(p.from_build_id).map_err(|_| std::io::ErrorKind::InvalidData)?,
                );
                let dir = layout::patch_dir(ctx.depot, org, &app.name, to, from);
                for (rel, path, size) in files_below(&dir)? {
                    files.push((format!("depot/pat/{}/{to:04}/{from:04}/{rel}", app.name), path, size));
                }
            }
        }
        Ok(files)
    }

    /// Opens every secret with this box's key and encrypts it under the passphrase's.
    fn reencrypt(&self, doc: &mut OrgDocument, org_id: i64, keys: &Keys) -> Result<(), TaskFailure> {
        let sealer = &self.0.sealer;
        let open = |kind: &str, name: &str, field: &str, text: &str| -> Result<String, TaskFailure> {
            let refused = || failure(format!("the {field} of {kind} {name} cannot be opened on this box"), false);
            let bytes = crate::auth::b64_decode_any(text).ok_or_else(refused)?;
            let clear = sealer
                .open(&crate::resources::Resources::context(kind, org_id, name, field), &bytes)
                .map_err(|_| refused())?;
            Ok(keys.encrypt(&bundle_context(kind, name, field), &clear))
        };
        for d in &mut doc.deployments {
            if let Some(s) = &d.origin_secret {
                d.origin_secret = Some(open("deployment", &d.name, "secretAccessKey", s)?);
            }
            if let Some(s) = &d.download_auth_key {
                d.download_auth_key = Some(open("deployment", &d.name, "downloadAuth", s)?);
            }
        }
        for s in &mut doc.subscriptions {
            s.secret = open("subscription", &s.name, "secret", &s.secret)?;
        }
        Ok(())
    }
}

impl TaskHandler for Export {
    fn run(&self, ctx: &TaskContext) -> Result<Value, TaskFailure> {
        let env = &self.0;
        let input = ExportInput::deserialize(&ctx.task.input)
            .map_err(|e| failure(format!("the task input is not an export input: {e}"), false))?;
        let sealed = input.passphrase.as_deref().ok_or_else(|| failure("the export's passphrase is gone", false))?;
        let passphrase = crate::auth::b64_decode_any(sealed)
            .and_then(|b| env.sealer.open(&ExportInput::passphrase_context(input.org_id), &b).ok())
            .ok_or_else(|| failure("the export's passphrase cannot be opened", false))?;
        let org_id = input.org_id;
        let (doc, apps, importing) = ctx
            .store
            .read_blocking(|c| {
                Ok((
                    transfers::snapshot(c, org_id)?,
                    transfers::app_ids(c, org_id)?,
                    transfers::importing_apps(c, org_id)?,
                ))
            })
            .map_err(|e| failure(format!("database: {e}"), true))?;
        // An import that started after the export was queued changes the build files under us.
        if input.include_builds && !importing.is_empty() {
            return Err(failure(format!("app(s) {} are importing a build", importing.join(", ")), true));
        }
        let mut doc = doc.ok_or_else(|| failure("the organization no longer exists", false))?;
        let salt = crate::auth::random_bytes::<SALT_LEN>();
        let keys = Keys::derive(&passphrase, &salt, env.iterations);
        self.reencrypt(&mut doc, org_id, &keys)?;
        doc.exported = crate::store::now_rfc3339();
        doc.exported_by = input.requested_by.clone();
        let files = if input.include_builds {
            doc.include_builds = true;
            self.build_files(ctx, &doc, &apps).map_err(|e| io_failure("reading the builds", e))?
        } else {
            doc.without_builds();
            Vec::new()
        };
        let json = serde_json::to_vec(&doc).map_err(|e| failure(e.to_string(), false))?;
        let total = (json.len() as u64 + files.iter().map(|f| f.2).sum::<u64>()) as i64;

        std::fs::create_dir_all(&env.exports_dir).map_err(|e| io_failure("creating the exports directory", e))?;
        let path = bundle_path(&env.exports_dir, &ctx.task.name);
        let part = path.with_extension("part");
        let out = File::create(&part).map_err(|e| io_failure("creating the bundle", e))?;
        let written = (|| -> std::io::Result<u64> {
            let mut w = BundleWriter::start(std::io::BufWriter::new(out), &keys, &salt, env.iterations)?;
            w.document(&keys, &json)?;
            let mut reported = 0u64;
            for (rel, src, size) in &files {
                w.file(rel, *size, File::open(src)?)?;
                // A progress write per percent at most: one per chunk file would flood the writer.
                if w.written - reported >= (total as u64 / 100).max(1 << 20) {
                    reported = w.written;
                    let _ = ctx.progress(w.written as i64, total);
                }
            }
            let written = w.written;
            let file = w.finish()?.into_inner().map_err(|e| e.into_error())?;
            file.sync_all()?;
            Ok(written)
        })();
        let written = match written {
            Ok(n) => n,
            Err(e) => {
                let _ = std::fs::remove_file(&part);
                return Err(io_failure("writing the bundle", e));
            }
        };
        std::fs::rename(&part, &path).map_err(|e| io_failure("keeping the bundle", e))?;
        crate::engine::fsutil::fsync_dir(&env.exports_dir).map_err(|e| failure(e.to_string(), true))?;
        let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(written);
        ctx.progress(total, total).map_err(|e| failure(format!("database: {e}"), true))?;
        Ok(json!({"sizeBytes": size, "includeBuilds": input.include_builds, "files": files.len()}))
    }

    fn on_done(&self, conn: &Connection, task: &Task, _output: &Value) -> StoreResult<()> {
        transfers::forget_passphrase(conn, task.id)
    }

    fn on_failed(&self, conn: &Connection, task: &Task, _exception: &Value) -> StoreResult<()> {
        transfers::forget_passphrase(conn, task.id)
    }
}
