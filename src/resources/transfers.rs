//! Moving an organization between boxes (issue 13): export (a task writes a bundle, fetched
//! once through a download URL), import (a one-time upload URL; the bundle is verified, unpacked
//! and staged with a dry-run report) and the commit that applies a staged import in one
//! transaction.

use std::collections::BTreeSet;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::Stream;
use serde_json::{json, Value};

use super::uploads::UploadError;
use super::Resources;
use crate::auth::sealing::Sealer;
use crate::bundle::document::OrgDocument;
use crate::bundle::{self, BundleError, Keys};
use crate::domain::names;
use crate::domain::origins::Origin;
use crate::error::{ApiError, ApiResult};
use crate::identity::principal::Principal;
use crate::store::audit::{self, Actor};
use crate::store::builds as build_rows;
use crate::store::tasks::Task;
use crate::store::transfers::{self, Import, Landing};
use crate::tasks::export::{self, ExportInput};

/// A one-time URL capability: the token goes to the client once, only its hash is stored.
pub struct Capability {
    pub token: String,
    pub expires: String,
}

fn capability(ttl: Duration) -> (Capability, Vec<u8>) {
    let token = crate::auth::b64url_encode(&crate::auth::random_bytes::<32>());
    let hash = crate::auth::sha256(token.as_bytes());
    let expires = chrono::Utc::now() + chrono::Duration::from_std(ttl).unwrap_or(chrono::Duration::days(1));
    (Capability { token, expires: expires.to_rfc3339_opts(chrono::SecondsFormat::Millis, true) }, hash)
}

/// Imports whose upload is being received in this process: a second PUT of the same URL while
/// one streams is refused.
static RECEIVING: Mutex<BTreeSet<i64>> = Mutex::new(BTreeSet::new());

struct Receiving(i64);

impl Receiving {
    fn take(id: i64) -> Option<Receiving> {
        RECEIVING.lock().unwrap_or_else(|p| p.into_inner()).insert(id).then_some(Receiving(id))
    }
}

impl Drop for Receiving {
    fn drop(&mut self) {
        RECEIVING.lock().unwrap_or_else(|p| p.into_inner()).remove(&self.0);
    }
}

/// What a bundle's reading failed with, as the importer sees it. Nothing of the bundle stays.
fn refusal(e: BundleError) -> ApiError {
    match e {
        BundleError::WrongPassphrase => ApiError::invalid(
            "passphrase",
            "the passphrase does not open this bundle; start a new import with the right passphrase",
        ),
        BundleError::Io(kind) => ApiError::internal(format!("reading the bundle failed ({kind})")),
        other => ApiError::invalid("bundle", other.to_string()),
    }
}

/// The sealing context of a secret while its import is staged (the organization has no id yet).
fn staged_context(import: &str, kind: &str, name: &str, field: &str) -> String {
    format!("import/{import}/{kind}/{name}/{field}")
}

/// Applies `convert(kind, name, field, value)` to every secret of `doc`.
fn each_secret(
    doc: &mut OrgDocument,
    mut convert: impl FnMut(&str, &str, &str, &str) -> ApiResult<String>,
) -> ApiResult<()> {
    for d in &mut doc.deployments {
        if let Some(s) = &d.origin_secret {
            d.origin_secret = Some(convert("deployment", &d.name, "secretAccessKey", s)?);
        }
        if let Some(s) = &d.download_auth_key {
            d.download_auth_key = Some(convert("deployment", &d.name, "downloadAuth", s)?);
        }
    }
    for s in &mut doc.subscriptions {
        s.secret = convert("subscription", &s.name, "secret", &s.secret)?;
    }
    Ok(())
}

fn open_sealed(sealer: &Sealer, context: &str, text: &str) -> ApiResult<String> {
    let bytes = crate::auth::b64_decode_any(text).ok_or_else(|| ApiError::internal("a staged secret is not base64"))?;
    sealer.open(context, &bytes).map_err(ApiError::internal)
}

/// The checks a document must pass beyond its MAC: names as the API would accept them, and
/// every reference resolvable, so the commit cannot fail half-way on a foreign key.
fn validate(doc: &OrgDocument, files: &[String]) -> ApiResult<()> {
    let bad = |why: String| ApiError::invalid("bundle", format!("the bundle cannot be used: {why}"));
    let name_ok = |n: &str| names::validate("name", n).is_ok();
    if !name_ok(&doc.org.name) {
        return Err(bad(format!("`{}` is not an organization name", doc.org.name)));
    }
    let roles: BTreeSet<&str> = doc.roles.iter().map(|r| r.name.as_str()).collect();
    let users: BTreeSet<&str> = doc.users.iter().map(|u| u.username.as_str()).collect();
    let deployments: BTreeSet<&str> = doc.deployments.iter().map(|d| d.name.as_str()).collect();
    let apps: BTreeSet<&str> = doc.apps.iter().map(|a| a.name.as_str()).collect();
    let subscriptions: BTreeSet<&str> = doc.subscriptions.iter().map(|s| s.name.as_str()).collect();
    for name in roles.iter().chain(&users).chain(&apps).chain(&subscriptions) {
        if !name_ok(name) {
            return Err(bad(format!("`{name}` is not a valid name")));
        }
    }
    if deployments.iter().any(|d| names::validate_deployment("name", d).is_err()) {
        return Err(bad("a deployment name is not valid".into()));
    }
    if doc.users.iter().flat_map(|u| &u.roles).any(|r| !roles.contains(r.as_str()))
        || doc.api_keys.iter().any(|k| !users.contains(k.username.as_str()))
        || doc.apps.iter().flat_map(|a| &a.deployments).any(|d| !deployments.contains(d.as_str()))
    {
        return Err(bad("it refers to roles, accounts or deployments it does not contain".into()));
    }
    // Files belong to an app of the document, under one of the two roots a commit moves.
    for path in files {
        let mut parts = path.split('/');
        let (root, second, third) = (parts.next(), parts.next(), parts.next());
        let app = match (root, second, third) {
            (Some("builds"), Some(app), Some(_)) => app,
            (Some("depot"), Some("dxf" | "pat"), Some(app)) => app,
            _ => return Err(bad(format!("it holds a file outside builds/ and depot/ ({path})"))),
        };
        if !apps.contains(app) {
            return Err(bad(format!("it holds files of the unknown app {app}")));
        }
    }
    Ok(())
}

/// What a commit would create, shown before it is applied.
fn report(doc: &OrgDocument, landing: Landing, files: usize, bytes: u64) -> Value {
    let names = |it: Vec<&String>| it.into_iter().cloned().collect::<Vec<_>>();
    json!({
        "orgName": doc.org.name,
        "replacesEmptyOrg": matches!(landing, Landing::Empty(_)),
        "exported": doc.exported,
        "exportedBy": doc.exported_by,
        "includeBuilds": doc.include_builds,
        "create": {
            "roles": names(doc.roles.iter().map(|r| &r.name).collect()),
            "users": names(doc.users.iter().map(|u| &u.username).collect()),
            "apiKeys": doc.api_keys.len(),
            "deployments": names(doc.deployments.iter().map(|d| &d.name).collect()),
            "apps": names(doc.apps.iter().map(|a| &a.name).collect()),
            "builds": doc.apps.iter().map(|a| a.builds.len()).sum::<usize>(),
            "subscriptions": names(doc.subscriptions.iter().map(|s| &s.name).collect()),
        },
        "files": files,
        "fileBytes": bytes,
    })
}

/// Moves a staged directory into place; an existing target is refused, never merged.
fn move_dir(from: &Path, to: &Path, moved: &mut Vec<(PathBuf, PathBuf)>) -> std::io::Result<()> {
    if !from.exists() {
        return Ok(());
    }
    if to.exists() {
        return Err(std::io::Error::new(std::io::ErrorKind::AlreadyExists, "target exists"));
    }
    std::fs::create_dir_all(crate::engine::fsutil::parent(to))?;
    std::fs::rename(from, to)?;
    moved.push((from.to_path_buf(), to.to_path_buf()));
    Ok(())
}

fn undo_moves(moved: &[(PathBuf, PathBuf)]) {
    for (from, to) in moved.iter().rev() {
        if let Err(e) = std::fs::rename(to, from) {
            log::error!("cannot move {} back after a failed commit: {e}", to.display());
        }
    }
}

impl Resources {
    fn exports_dir(&self) -> PathBuf {
        self.state_dir.join("exports")
    }

    fn import_dir(&self, name: &str) -> PathBuf {
        self.state_dir.join("imports").join(name)
    }

    /// `POST /be/v1/export`: queues the export task of the caller's organization (the caller is
    /// an administrator, checked by the handler) with its download URL.
    pub async fn start_export(
        &self,
        caller: &Principal,
        passphrase: &str,
        include_builds: bool,
        ttl: Duration,
        actor: Actor,
    ) -> ApiResult<(Task, Capability)> {
        self.remove_stale_bundles().await?;
        let sealed = self.sealer.seal(&ExportInput::passphrase_context(caller.org_id), passphrase);
        let input = ExportInput {
            org_id: caller.org_id,
            org_name: caller.org_name.clone(),
            include_builds,
            requested_by: caller.username.clone(),
            passphrase: Some(crate::auth::b64_encode(&sealed)),
        };
        let (offer, hash) = capability(ttl);
        let (org_id, expires) = (caller.org_id, offer.expires.clone());
        let task = self
            .store
            .write(move |c| {
                let importing = transfers::importing_apps(c, org_id)?;
                if include_builds && !importing.is_empty() {
                    return Err(ApiError::Busy(format!(
                        "app(s) {} are importing a build; export with builds once they are done",
                        importing.join(", ")
                    )));
                }
                let task = build_rows::insert_task(c, org_id, &export::task(&input))?;
                transfers::insert_export(c, task.id, &hash, &expires)?;
                let what = format!("{} includeBuilds={include_builds}", task.name);
                audit::record_member(c, org_id, audit::ORG_EXPORTED, &actor.principal, &actor.client, &what)?;
                Ok(task)
            })
            .await?;
        self.queue.wake_workers();
        Ok((task, offer))
    }

    /// Bundles nobody fetched in time go before a new one takes disk space: those whose URL
    /// expired, and those whose task was removed (task retention) with its URL.
    async fn remove_stale_bundles(&self) -> ApiResult<()> {
        self.store.write(transfers::remove_expired_exports).await?;
        let pending = self.store.read(transfers::pending_export_names).await?;
        let Ok(entries) = std::fs::read_dir(self.exports_dir()) else { return Ok(()) };
        for entry in entries.filter_map(Result::ok) {
            let file = entry.file_name().to_string_lossy().into_owned();
            // `.part` files belong to export tasks still writing; they replace them when done.
            let Some(task) = file.strip_suffix(".bundle") else { continue };
            if !pending.iter().any(|p| p == task) {
                let _ = std::fs::remove_file(entry.path());
            }
        }
        Ok(())
    }

    /// The bundle a download URL opens, once its export is done: its task and file.
    pub async fn export_download(&self, token: &str) -> ApiResult<(Task, PathBuf, u64)> {
        let hash = crate::auth::sha256(token.as_bytes());
        let task = self.store.read(move |c| transfers::export_by_hash(c, &hash)).await?;
        let task = task.ok_or(ApiError::NotFound { resource: "download" })?;
        match task.status.as_ref() {
            "done" => {}
            "failed" | "expired" => {
                return Err(ApiError::Conflict(format!("export task {} failed; start a new export", task.name)))
            }
            _ => return Err(ApiError::Busy(format!("export task {} is still writing the bundle", task.name))),
        }
        let path = export::bundle_path(&self.exports_dir(), &task.name);
        let size = std::fs::metadata(&path).map_err(|_| ApiError::NotFound { resource: "download" })?.len();
        Ok((task, path, size))
    }

    /// The whole bundle went out: the URL is used up and the file goes.
    pub async fn finish_download(&self, task: &Task) -> ApiResult<()> {
        let id = task.id;
        if self.store.write(move |c| transfers::finish_export(c, id)).await? {
            let _ = std::fs::remove_file(export::bundle_path(&self.exports_dir(), &task.name));
        }
        Ok(())
    }

    /// `POST /be/v1/import` (admin token): a waiting import with its one-time upload URL.
    pub async fn start_import(
        &self,
        passphrase: &str,
        ttl: Duration,
        max_bytes: u64,
    ) -> ApiResult<(Import, Capability)> {
        let (offer, hash) = capability(ttl);
        // The passphrase is needed once the upload arrives; sealed until then, never in clear.
        let context = format!("import/{}", crate::auth::hex(&hash));
        let sealed = self.sealer.seal(&context, passphrase);
        let expires = offer.expires.clone();
        let import =
            self.store.write(move |c| transfers::insert_import(c, &hash, &sealed, &expires, max_bytes)).await?;
        Ok((import, offer))
    }

    /// The `PUT` of an import's upload URL: streams the bundle to disk, verifies and unpacks it,
    /// and stages the import with its dry-run report. Any refusal leaves nothing behind; the
    /// client may PUT again until the URL expires.
    pub async fn receive_import<S, E>(&self, token: &str, body: S) -> Result<Import, UploadError>
    where
        S: Stream<Item = Result<actix_web::web::Bytes, E>> + Unpin,
        E: std::fmt::Display,
    {
        let hash = crate::auth::sha256(token.as_bytes());
        let context = format!("import/{}", crate::auth::hex(&hash));
        let import = self.store.read(move |c| transfers::import_by_hash(c, &hash)).await?;
        let import = import.ok_or(ApiError::NotFound { resource: "upload" })?;
        let _receiving = Receiving::take(import.id)
            .ok_or_else(|| ApiError::Busy("another upload to this URL is in progress".into()))?;
        let dir = self.import_dir(&import.name);
        // What an earlier, refused attempt may have left.
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).map_err(|e| UploadError::Body(format!("staging failed ({})", e.kind())))?;
        let part = dir.join("bundle.part");
        let staged = match super::uploads::stream_to(&part, body, import.max_bytes, None).await {
            Ok(()) => self.stage(&import, &context, &part).await.map_err(UploadError::Api),
            Err(e) => Err(e),
        };
        let _ = std::fs::remove_file(&part);
        if staged.is_err() {
            let _ = std::fs::remove_dir_all(&dir);
        }
        staged
    }

    async fn stage(&self, import: &Import, context: &str, part: &Path) -> ApiResult<Import> {
        let sealed =
            import.passphrase.clone().ok_or_else(|| ApiError::internal("a waiting import lost its passphrase"))?;
        let passphrase = self.sealer.open(context, &sealed).map_err(ApiError::internal)?;
        let files_dir = self.import_dir(&import.name).join("files");
        let bundle_file = part.to_path_buf();
        let (mut doc, files, bytes, keys) =
            tokio::task::spawn_blocking(move || unpack(&bundle_file, &passphrase, &files_dir))
                .await
                .map_err(ApiError::internal)??;
        validate(&doc, &files)?;
        for d in &doc.deployments {
            let secret = None;
            let origin = Origin::from_stored(&d.origin, secret).map_err(|_| {
                ApiError::invalid("bundle", format!("deployment {} has an origin this box cannot use", d.name))
            });
            if let Ok(origin @ Origin::Fs { .. }) = origin {
                self.check_origin(&origin)
                    .await
                    .map_err(|e| ApiError::invalid("bundle", format!("deployment {}: {e}", d.name)))?;
            }
        }
        let name = import.name.clone();
        let sealer = self.sealer.clone();
        each_secret(&mut doc, |kind, owner, field, value| {
            let clear = keys
                .decrypt(&export::bundle_context(kind, owner, field), value)
                .map_err(|e| ApiError::invalid("bundle", e.to_string()))?;
            Ok(crate::auth::b64_encode(&sealer.seal(&staged_context(&name, kind, owner, field), &clear)))
        })?;
        let org_name = doc.org.name.clone();
        let lookup = org_name.clone();
        let landing = self.store.read(move |c| transfers::landing(c, &lookup)).await?;
        if landing == Landing::Taken {
            return Err(ApiError::AlreadyExists { resource: "org", name: org_name });
        }
        let report = report(&doc, landing, files.len(), bytes);
        let document = serde_json::to_string(&doc).map_err(ApiError::internal)?;
        let id = import.id;
        let staged_report = report.clone();
        if !self.store.write(move |c| transfers::stage_import(c, id, &org_name, &document, &staged_report)).await? {
            return Err(ApiError::NotFound { resource: "upload" });
        }
        let name = import.name.clone();
        let staged = self.store.read(move |c| transfers::import_by_name(c, &name)).await?;
        staged.ok_or(ApiError::NotFound { resource: "import" })
    }

    /// `GET /adm/v1/imports/{importId}`: an import with its dry-run report.
    pub async fn import(&self, import_id: &str) -> ApiResult<Import> {
        let name = import_id.to_string();
        let import = self.store.read(move |c| transfers::import_by_name(c, &name)).await?;
        import.ok_or(ApiError::NotFound { resource: "import" })
    }

    /// `DELETE /adm/v1/imports/{importId}`: discards an import that was not committed, with its
    /// staged files; its upload URL stops working.
    pub async fn discard_import(&self, import_id: &str) -> ApiResult<()> {
        let import = self.import(import_id).await?;
        if import.status == "committed" {
            return Err(ApiError::Conflict(format!("import {} was committed; it cannot be discarded", import.name)));
        }
        let id = import.id;
        if !self.store.write(move |c| transfers::delete_import(c, id)).await? {
            return Err(ApiError::Conflict(format!("import {} was committed meanwhile", import.name)));
        }
        let _ = std::fs::remove_dir_all(self.import_dir(&import.name));
        Ok(())
    }

    /// `POST /adm/v1/commit`: applies a staged import in one transaction — the organization, its
    /// accounts (passwords as hashed on the old box, no sessions), secrets sealed under this box's
    /// key, and the builds moved into this box's depot — or nothing at all.
    pub async fn commit_import(&self, import_id: &str, actor: Actor) -> ApiResult<(Import, crate::store::orgs::Org)> {
        let name = import_id.to_string();
        let import = self.store.read(move |c| transfers::import_by_name(c, &name)).await?;
        let import = import.ok_or(ApiError::NotFound { resource: "import" })?;
        match import.status.as_str() {
            "staged" => {}
            "committed" => return Err(ApiError::Conflict(format!("import {} was committed already", import.name))),
            _ => return Err(ApiError::Conflict(format!("import {} has no verified upload yet", import.name))),
        }
        let text = import.document.clone().ok_or_else(|| ApiError::internal("a staged import lost its document"))?;
        let doc: OrgDocument = serde_json::from_str(&text).map_err(ApiError::internal)?;
        let files = self.import_dir(&import.name).join("files");
        let (sealer, state_dir, id, import_name) =
            (self.sealer.clone(), self.state_dir.clone(), import.id, import.name.clone());
        let moved = Arc::new(Mutex::new(Vec::new()));
        let undo = moved.clone();
        let committed = self
            .store
            .write(move |c| -> ApiResult<i64> {
                let org_name = doc.org.name.clone();
                match transfers::landing(c, &org_name)? {
                    Landing::Taken => return Err(ApiError::AlreadyExists { resource: "org", name: org_name }),
                    Landing::Empty(old) => {
                        crate::store::orgs::delete(c, old)?;
                    }
                    Landing::Free => {}
                }
                // A crash during an earlier commit may have moved staged files away (the rows
                // were rolled back, the renames were not): never commit builds without files.
                for app in doc.apps.iter().filter(|a| !a.builds.is_empty()) {
                    if !files.join("builds").join(&app.name).join("manifests").is_dir() {
                        return Err(ApiError::Conflict(format!(
                            "the staged files of app {} are missing; start a new import",
                            app.name
                        )));
                    }
                }
                if !transfers::mark_committed(c, id)? {
                    return Err(ApiError::Conflict(format!("import {import_name} was committed already")));
                }
                let org_id = transfers::insert_org_row(c, &doc.org)?;
                let what = format!("{org_name} import={import_name}");
                audit::record(
                    c,
                    &audit::Event {
                        org_id: None,
                        event: audit::ORG_IMPORTED,
                        principal: Some(&actor.principal),
                        client: Some(&actor.client),
                        target: Some(&what),
                    },
                )?;
                let mut doc = doc;
                each_secret(&mut doc, |kind, owner, field, value| {
                    let clear = open_sealed(&sealer, &staged_context(&import_name, kind, owner, field), value)?;
                    let context = Resources::context(kind, org_id, owner, field);
                    Ok(crate::auth::b64_encode(&sealer.seal(&context, &clear)))
                })?;
                let apps = transfers::insert_contents(c, org_id, &doc)?;
                let mut moved = moved.lock().unwrap_or_else(|p| p.into_inner());
                let placed = (|| -> std::io::Result<()> {
                    for (app, app_id) in &apps {
                        let work = state_dir.join("builds").join(app_id.to_string());
                        // A directory of a deleted app that had this id: nothing refers to it.
                        if work.exists() {
                            std::fs::remove_dir_all(&work)?;
                        }
                        move_dir(&files.join("builds").join(app), &work, &mut moved)?;
                        for kind in ["dxf", "pat"] {
                            let to = state_dir.join("depot").join(kind).join(&org_name).join(app);
                            move_dir(&files.join("depot").join(kind).join(app), &to, &mut moved)?;
                        }
                    }
                    Ok(())
                })();
                if let Err(e) = placed {
                    undo_moves(&moved);
                    moved.clear();
                    return Err(match e.kind() {
                        std::io::ErrorKind::AlreadyExists => ApiError::Conflict(format!(
                            "this box's depot already holds files of organization {org_name}; remove them first"
                        )),
                        kind => ApiError::internal(format!("placing the builds failed ({kind})")),
                    });
                }
                Ok(org_id)
            })
            .await;
        let org_id = match committed {
            Ok(id) => id,
            Err(e) => {
                // The transaction did not commit: files moved in it go back to the staging area.
                undo_moves(&undo.lock().unwrap_or_else(|p| p.into_inner()));
                return Err(e);
            }
        };
        let _ = std::fs::remove_dir_all(self.import_dir(&import.name));
        let name = import.name.clone();
        let (import, org) = self
            .store
            .read(move |c| Ok((transfers::import_by_name(c, &name)?, crate::store::orgs::by_id(c, org_id)?)))
            .await?;
        match (import, org) {
            (Some(import), Some(org)) => Ok((import, org)),
            _ => Err(ApiError::internal("a committed import vanished")),
        }
    }
}

/// Verifies and unpacks a bundle file into `files_dir`: answers the document (parsed only after
/// the MAC matched), the paths unpacked, their bytes, and the keys for the secrets.
fn unpack(bundle_file: &Path, passphrase: &str, files_dir: &Path) -> ApiResult<(OrgDocument, Vec<String>, u64, Keys)> {
    let file = std::fs::File::open(bundle_file)
        .map_err(|e| ApiError::internal(format!("opening the upload ({})", e.kind())))?;
    let mut input = std::io::BufReader::new(file);
    let (header, keys) = bundle::unlock(&mut input, passphrase).map_err(refusal)?;
    let mut paths = Vec::new();
    let mut bytes = 0u64;
    let json = bundle::read_bundle(input, &header, &keys, |path, size, content| {
        let dest = files_dir.join(path);
        std::fs::create_dir_all(crate::engine::fsutil::parent(&dest))?;
        let mut out = std::fs::File::create(&dest)?;
        let copied = std::io::copy(&mut content.take(size), &mut out)?;
        if copied != size {
            return Err(BundleError::Truncated);
        }
        out.sync_all()?;
        paths.push(path.to_string());
        bytes += size;
        Ok(())
    })
    .map_err(refusal)?;
    let doc: OrgDocument = serde_json::from_slice(&json)
        .map_err(|e| ApiError::invalid("bundle", format!("the bundle's document cannot be read: {e}")))?;
    Ok((doc, paths, bytes, keys))
}
