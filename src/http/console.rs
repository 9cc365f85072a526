//! The web console: the files under `static/`, compiled into the binary, served at `/`.
//!
//! `index.html` is served at `/` and never cached for long, so a new binary is picked up at once.
//! Every other file lives under `/assets/<bundle hash>/…`, where the hash covers the content of
//! all files; those answers may be cached for a year because a change to any file changes every
//! asset URL. One hash for the whole bundle (rather than one per file) keeps the relative
//! `import` statements between the JavaScript modules working without rewriting them.

use std::sync::OnceLock;

use actix_web::http::header::{self, HeaderValue};
use actix_web::{web, HttpRequest, HttpResponse};

use crate::error::{ApiError, ApiResult};

/// One embedded file of `static/`.
pub struct Asset {
    /// Path below `static/`.
    pub path: &'static str,
    pub body: &'static [u8],
    pub content_type: &'static str,
}

macro_rules! asset {
    ($path:literal, $content_type:expr) => {
        Asset {
            path: $path,
            body: include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/static/", $path)),
            content_type: $content_type,
        }
    };
}

const JS: &str = "text/javascript; charset=utf-8";

/// Every file of `static/` (a test checks that none is missing from this list).
pub const ASSETS: &[Asset] = &[
    asset!("index.html", "text/html; charset=utf-8"),
    asset!("assets/app.css", "text/css; charset=utf-8"),
    asset!("assets/icon.svg", "image/svg+xml"),
    asset!("assets/app.js", JS),
    asset!("assets/api.js", JS),
    asset!("assets/dom.js", JS),
    asset!("assets/forms.js", JS),
    asset!("assets/permissions.js", JS),
    asset!("assets/views/admin.js", JS),
    asset!("assets/views/apps.js", JS),
    asset!("assets/views/deployments.js", JS),
    asset!("assets/views/imports.js", JS),
    asset!("assets/views/list.js", JS),
    asset!("assets/views/login.js", JS),
    asset!("assets/views/roles.js", JS),
    asset!("assets/views/subscriptions.js", JS),
    asset!("assets/views/tasks.js", JS),
    asset!("assets/views/users.js", JS),
];

/// Where `index.html` names the asset directory; replaced by `/assets/<hash>` when served.
const ASSETS_PLACEHOLDER: &str = "{{assets}}";

/// No inline script or style, no `eval`, API calls only to this origin, never inside a frame.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// Asset answers carry a content hash in their URL, so they never change.
const IMMUTABLE: &str = "public, max-age=31536000, immutable";
/// The page itself names the current hash, so it is checked on every load.
const REVALIDATE: &str = "no-cache";

struct Bundle {
    hash: String,
    index_html: String,
}

fn bundle() -> &'static Bundle {
    static BUNDLE: OnceLock<Bundle> = OnceLock::new();
    BUNDLE.get_or_init(|| {
        let mut digest = ring::digest::Context::new(&ring::digest::SHA256);
        for asset in ASSETS {
            // Path and length delimit each file, so moving bytes between files changes the hash.
            digest.update(asset.path.as_bytes());
            digest.update(&(asset.body.len() as u64).to_le_bytes());
            digest.update(asset.body);
        }
        let hash: String = digest.finish().as_ref()[..8].iter().map(|b| format!("{b:02x}")).collect();
        let index = ASSETS.iter().find(|a| a.path == "index.html").map_or(&[][..], |a| a.body);
        let index_html = String::from_utf8_lossy(index).replace(ASSETS_PLACEHOLDER, &format!("/assets/{hash}"));
        Bundle { hash, index_html }
    })
}

/// The hash that names the current asset directory.
pub fn bundle_hash() -> &'static str {
    &bundle().hash
}

fn with_security_headers(mut res: HttpResponse, cache: &'static str) -> HttpResponse {
    let headers = res.headers_mut();
    headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CONTENT_SECURITY_POLICY));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    // For browsers that predate CSP's frame-ancestors.
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    res
}

async fn index() -> HttpResponse {
    let res = HttpResponse::Ok().content_type("text/html; charset=utf-8").body(bundle().index_html.as_str());
    with_security_headers(res, REVALIDATE)
}

async fn asset(req: HttpRequest) -> ApiResult<HttpResponse> {
    let (hash, path) = (req.match_info().get("hash").unwrap_or(""), req.match_info().get("path").unwrap_or(""));
    // An asset of another build (a page loaded before an upgrade) is not served from this one:
    // its name promises content this binary does not have.
    let found = (hash == bundle_hash())
        .then(|| ASSETS.iter().find(|a| a.path.strip_prefix("assets/") == Some(path)))
        .flatten()
        .ok_or(ApiError::NotFound { resource: "asset" })?;
    let res = HttpResponse::Ok().content_type(found.content_type).body(found.body);
    Ok(with_security_headers(res, IMMUTABLE))
}

/// Mounts `/` and `/assets/<hash>/…`.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/").route(web::get().to(index)).route(web::head().to(index)));
    cfg.service(web::resource("/assets/{hash}/{path:.*}").route(web::get().to(asset)).route(web::head().to(asset)));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_index_names_the_hashed_asset_directory() {
        let html = &bundle().index_html;
        assert!(!html.contains(ASSETS_PLACEHOLDER));
        assert!(html.contains(&format!("/assets/{}/app.js", bundle_hash())));
    }

    #[test]
    fn asset_paths_are_unique() {
        for (i, a) in ASSETS.iter().enumerate() {
            assert!(ASSETS[i + 1..].iter().all(|b| b.path != a.path), "{} listed twice", a.path);
        }
    }
}
