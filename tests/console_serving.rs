//! How the server hands out the web console: security headers, caching by content hash, nothing
//! but the embedded files, and the API's CORS still closed.

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use common::Server;
use rockit_edge::http::console::{bundle_hash, ASSETS, CONTENT_SECURITY_POLICY};

/// An answer with every header, for the header checks.
struct Page {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Page {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

fn get(url: &str, headers: &[(&str, &str)]) -> Page {
    request("GET", url, headers)
}

fn request(method: &str, url: &str, headers: &[(&str, &str)]) -> Page {
    let agent = ureq::AgentBuilder::new().timeout(Duration::from_secs(60)).build();
    let mut req = agent.request(method, url);
    for (k, v) in headers {
        req = req.set(k, v);
    }
    let resp = match req.call() {
        Ok(resp) => resp,
        Err(ureq::Error::Status(_, resp)) => resp,
        Err(e) => panic!("{method} {url}: {e}"),
    };
    let status = resp.status();
    let headers = resp.headers_names().iter().filter_map(|n| Some((n.clone(), resp.header(n)?.to_string()))).collect();
    Page { status, headers, body: resp.into_string().unwrap_or_default() }
}

fn asset_urls(index: &str) -> Vec<String> {
    index.split('"').filter(|part| part.starts_with("/assets/")).map(str::to_string).collect()
}

#[test]
fn the_console_page_is_served_at_the_root_with_strict_security_headers() {
    let server = Server::start();
    let page = get(&server.url("/"), &[]);
    assert_eq!(page.status, 200);
    assert_eq!(page.header("content-type"), Some("text/html; charset=utf-8"));
    let csp = page.header("content-security-policy").expect("a CSP");
    assert_eq!(csp, CONTENT_SECURITY_POLICY);
    for directive in ["script-src 'self'", "connect-src 'self'", "frame-ancestors 'none'", "default-src 'none'"] {
        assert!(csp.contains(directive), "CSP lacks {directive}: {csp}");
    }
    assert!(!csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"), "{csp}");
    assert_eq!(page.header("x-content-type-options"), Some("nosniff"));
    assert_eq!(page.header("referrer-policy"), Some("no-referrer"));
    assert_eq!(page.header("x-frame-options"), Some("DENY"));
    // The page names the current asset hash, so it must be checked again on every load.
    assert_eq!(page.header("cache-control"), Some("no-cache"));
    assert!(!page.body.contains("{{assets}}"));
    // No inline script or style in the page: everything comes from the hashed asset directory.
    assert!(!page.body.contains("<script>") && !page.body.contains("style="), "{}", page.body);
    assert!(page.body.contains(&format!("/assets/{}/app.js", bundle_hash())));
    // Monitoring and link checkers ask with HEAD.
    let head = request("HEAD", &server.url("/"), &[]);
    assert_eq!(head.status, 200);
    assert_eq!(head.header("content-security-policy"), Some(CONTENT_SECURITY_POLICY));
}

#[test]
fn assets_named_by_content_hash_are_cached_for_long_and_carry_the_same_headers() {
    let server = Server::start();
    let index = get(&server.url("/"), &[]).body;
    let urls = asset_urls(&index);
    assert_eq!(urls.len(), 3, "icon, stylesheet, script: {urls:?}");
    for url in urls {
        let asset = get(&server.url(&url), &[]);
        assert_eq!(asset.status, 200, "{url}");
        assert_eq!(asset.header("cache-control"), Some("public, max-age=31536000, immutable"), "{url}");
        assert_eq!(asset.header("x-content-type-options"), Some("nosniff"), "{url}");
        assert_eq!(asset.header("content-security-policy"), Some(CONTENT_SECURITY_POLICY), "{url}");
    }
    let script = get(&server.url(&format!("/assets/{}/views/apps.js", bundle_hash())), &[]);
    assert_eq!(script.header("content-type"), Some("text/javascript; charset=utf-8"));
}

#[test]
fn an_asset_under_another_hash_or_outside_the_bundle_is_not_found() {
    let server = Server::start();
    let stale = get(&server.url("/assets/0000000000000000/app.js"), &[]);
    assert_eq!(stale.status, 404);
    assert_eq!(stale.header("cache-control"), None, "a miss is never cached for a year");
    for path in ["nothing.js", "../index.html", "%2e%2e/Cargo.toml", "index.html"] {
        let page = get(&server.url(&format!("/assets/{}/{path}", bundle_hash())), &[]);
        assert_eq!(page.status, 404, "{path}");
    }
    // Pages of the console are hash routes; any other path is still the API's 404.
    let other = get(&server.url("/apps"), &[]);
    assert_eq!(other.status, 404);
    assert!(other.body.contains("not-found"), "{}", other.body);
}

#[test]
fn the_api_still_answers_no_cross_origin_request() {
    let server = Server::start();
    let origin = ("Origin", "https://evil.example");
    let preflight = request(
        "OPTIONS",
        &server.url("/be/v1/apps"),
        &[origin, ("Access-Control-Request-Method", "GET"), ("Access-Control-Request-Headers", "authorization")],
    );
    assert_eq!(preflight.header("access-control-allow-origin"), None);
    let simple = get(&server.url("/be/v1/apps"), &[origin]);
    assert_eq!(simple.header("access-control-allow-origin"), None);
    let page = get(&server.url("/"), &[origin]);
    assert_eq!(page.header("access-control-allow-origin"), None);
}

#[test]
fn every_file_under_static_is_embedded() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("static");
    let mut on_disk = BTreeSet::new();
    let mut dirs = vec![root.clone()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).expect("read static/") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                dirs.push(path);
            } else {
                on_disk.insert(path.strip_prefix(&root).expect("below static/").to_string_lossy().into_owned());
            }
        }
    }
    let embedded: BTreeSet<String> = ASSETS.iter().map(|a| a.path.to_string()).collect();
    assert_eq!(embedded, on_disk, "src/http/console.rs ASSETS must list exactly the files of static/");
}

#[test]
fn the_console_loads_no_code_from_elsewhere_and_never_parses_server_text_as_html() {
    for asset in ASSETS {
        let text = String::from_utf8_lossy(asset.body);
        for banned in
            ["innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function", "localStorage"]
        {
            assert!(!text.contains(banned), "{} uses {banned}", asset.path);
        }
        for remote in ["http://", "https://"] {
            let remote_refs: Vec<&str> = text
                .lines()
                .filter(|l| l.contains(remote) && !l.contains("www.w3.org/2000/svg") && !l.contains("placeholder"))
                .collect();
            assert!(remote_refs.is_empty(), "{} refers to another origin: {remote_refs:?}", asset.path);
        }
    }
}
