//! `POST /be/v1/export`, `POST /be/v1/import`, `POST /adm/v1/commit` [compat paths, design
//! bodies] and the one-time URLs of their bundles. Thin: rules are in `resources::transfers`.

use std::io::Read;

use actix_web::{web, HttpRequest, HttpResponse};
use schemars::JsonSchema;
use serde::Serialize;
use serde_json::{json, Value};

use super::body::Json;
use super::principal::{Admin, Caller};
use super::requests::{CommitImport, StartExport, StartImport};
use super::views;
use crate::error::{ApiError, ApiResult};
use crate::resources::transfers::Capability;
use crate::resources::uploads::UploadError;
use crate::state::AppState;
use crate::store::transfers::Import;

/// An import as the API shows it.
#[derive(Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ImportView<'a> {
    /// What `POST /adm/v1/commit` takes.
    import_id: &'a str,
    /// `waiting` (for the upload), `staged` (verified, with `report`) or `committed`.
    status: &'a str,
    /// Until when the upload URL takes the bundle.
    expires: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    org_name: Option<&'a str>,
    /// The dry run: what the commit would create.
    #[serde(skip_serializing_if = "Option::is_none")]
    report: Option<&'a Value>,
    created: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    staged: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    committed: Option<&'a str>,
}

pub fn import(i: &Import) -> ImportView<'_> {
    ImportView {
        import_id: &i.name,
        status: &i.status,
        expires: &i.expires,
        org_name: i.org_name.as_deref(),
        report: i.report.as_ref(),
        created: &i.created,
        staged: i.staged.as_deref(),
        committed: i.committed.as_deref(),
    }
}

/// The shortest passphrase accepted: the bundle's secrets are only as safe as it is.
pub const MIN_PASSPHRASE: usize = 12;

fn check_passphrase(passphrase: &str) -> ApiResult<()> {
    if passphrase.chars().count() < MIN_PASSPHRASE {
        return Err(ApiError::invalid(
            "passphrase",
            format!("the passphrase must have at least {MIN_PASSPHRASE} characters"),
        ));
    }
    Ok(())
}

/// An absolute one-time URL on the address the caller used to reach this server.
fn offer(req: &HttpRequest, path: &str, method: &str, capability: &Capability) -> Value {
    let info = req.connection_info();
    let url = format!("{}://{}{path}/{}", info.scheme(), info.host(), capability.token);
    json!({"url": url, "method": method, "expires": capability.expires})
}

pub async fn start_export(
    state: web::Data<AppState>,
    caller: Caller,
    req: HttpRequest,
    body: Json<StartExport>,
) -> ApiResult<HttpResponse> {
    state.identity.require_administrator(&caller).await?;
    let actor = super::audit::member(&state, &caller, &req);
    let body = body.0;
    check_passphrase(&body.passphrase)?;
    let include_builds = body.include_builds.unwrap_or(false);
    let (task, capability) = state
        .resources
        .start_export(&caller, &body.passphrase, include_builds, state.settings.upload_ttl, actor)
        .await?;
    let download = offer(&req, "/be/v1/exports", "GET", &capability);
    Ok(HttpResponse::Ok().json(json!({"status": "success", "task": views::task(&task), "download": download})))
}

/// `GET` of a download URL: the bundle, streamed from disk. The URL is used up when the last
/// piece of the file is sent; a download that broke off before may be repeated until it expires.
pub async fn download(state: web::Data<AppState>, token: web::Path<String>) -> ApiResult<HttpResponse> {
    let (task, path, size) = state.resources.export_download(&token).await?;
    let file = std::fs::File::open(&path).map_err(|_| ApiError::NotFound { resource: "download" })?;
    let resources = state.resources.clone();
    let stream = futures_util::stream::unfold(Some((file, 0u64)), move |at| {
        let (resources, task) = (resources.clone(), task.clone());
        async move {
            let (mut file, sent) = at?;
            let read = web::block(move || {
                let mut buf = vec![0u8; 256 * 1024];
                let n = file.read(&mut buf)?;
                buf.truncate(n);
                Ok::<_, std::io::Error>((file, buf))
            })
            .await;
            match read {
                Ok(Ok((file, buf))) if !buf.is_empty() => {
                    let sent = sent + buf.len() as u64;
                    // Retired before the last piece goes out, so a client that has every byte
                    // can never fetch the bundle a second time.
                    if sent == size {
                        if let Err(e) = resources.finish_download(&task).await {
                            log::warn!("export {}: cannot retire its download URL: {e}", task.name);
                        }
                    }
                    Some((Ok(web::Bytes::from(buf)), Some((file, sent))))
                }
                Ok(Ok(_)) => None,
                Ok(Err(e)) => Some((Err(std::io::Error::other(format!("reading the bundle ({})", e.kind()))), None)),
                Err(_) => Some((Err(std::io::Error::other("reading the bundle was cancelled")), None)),
            }
        }
    });
    Ok(HttpResponse::Ok()
        .content_type("application/octet-stream")
        .insert_header(("Content-Disposition", "attachment; filename=\"organization.bundle\""))
        .no_chunking(size)
        .streaming(stream))
}

pub async fn start_import(
    state: web::Data<AppState>,
    _admin: Admin,
    req: HttpRequest,
    body: Json<StartImport>,
) -> ApiResult<HttpResponse> {
    let body = body.0;
    check_passphrase(&body.passphrase)?;
    let (staged, capability) = state
        .resources
        .start_import(&body.passphrase, state.settings.upload_ttl, state.settings.max_bundle_bytes)
        .await?;
    let upload = offer(&req, "/be/v1/imports", "PUT", &capability);
    Ok(HttpResponse::Ok().json(json!({"status": "success", "import": import(&staged), "upload": upload})))
}

/// `PUT` of an import's upload URL: the capability in the path is the only credential.
pub async fn upload(
    state: web::Data<AppState>,
    token: web::Path<String>,
    body: web::Payload,
) -> ApiResult<HttpResponse> {
    match state.resources.receive_import(&token, body).await {
        Ok(staged) => Ok(super::success("import", import(&staged))),
        Err(UploadError::Api(e)) => Err(e),
        Err(UploadError::Body(message)) => Err(ApiError::invalid("body", message)),
    }
}

pub async fn commit(
    state: web::Data<AppState>,
    admin: Admin,
    req: HttpRequest,
    body: Json<CommitImport>,
) -> ApiResult<HttpResponse> {
    let actor = super::audit::admin(&state, &admin, &req);
    let (committed, org) = state.resources.commit_import(&body.0.import_id, actor).await?;
    // An empty organization it replaced had sessions that must end now.
    state.identity.cache.invalidate_all();
    Ok(HttpResponse::Ok().json(json!({"status": "success", "import": import(&committed), "org": views::org(&org)})))
}

pub async fn import_details(
    state: web::Data<AppState>,
    _admin: Admin,
    import_id: web::Path<String>,
) -> ApiResult<HttpResponse> {
    Ok(super::success("import", import(&state.resources.import(&import_id).await?)))
}

pub async fn discard_import(
    state: web::Data<AppState>,
    _admin: Admin,
    import_id: web::Path<String>,
) -> ApiResult<HttpResponse> {
    state.resources.discard_import(&import_id).await?;
    Ok(super::done())
}
