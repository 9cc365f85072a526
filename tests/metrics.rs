//! `GET /metrics` (issue 14): Prometheus text for an admin token or the `metrics_token`,
//! requests per route template, writer, database, disk and login-failure figures.

mod common;

use common::{send, Server};
use serde_json::json;

/// Status and text of `GET /metrics` with these headers.
fn scrape(server: &Server, headers: &[(&str, &str)]) -> (u16, String) {
    let mut req = ureq::get(&server.url("/metrics"));
    for (k, v) in headers {
        req = req.set(k, v);
    }
    match req.call() {
        Ok(resp) => (resp.status(), resp.into_string().unwrap()),
        Err(ureq::Error::Status(status, resp)) => (status, resp.into_string().unwrap_or_default()),
        Err(e) => panic!("GET /metrics: {e}"),
    }
}

fn scrape_as_admin(server: &Server) -> String {
    let token = server.admin_token();
    let (status, text) = scrape(server, &[("x-rockit-admin-token", &token)]);
    assert_eq!(status, 200, "{text}");
    text
}

/// The value of the sample line that starts with `series` (name and labels, exactly).
fn sample(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|line| line.strip_prefix(series).and_then(|rest| rest.strip_prefix(' ')))
        .unwrap_or_else(|| panic!("no `{series}` in:\n{text}"))
        .parse()
        .unwrap()
}

#[test]
fn requests_are_counted_per_route_template_never_per_raw_path() {
    let server = Server::start();
    let admin = server.org_admin("acme");
    for app in ["alpha_app", "beta_app"] {
        admin.call("POST", "/be/v1/apps", Some(json!({"name": app, "label": app}))).assert_ok();
        admin.call("GET", &format!("/be/v1/apps/{app}"), None).assert_ok();
    }
    admin.call("GET", "/be/v1/apps/missing_app", None).assert_error(404, "not-found");

    let text = scrape_as_admin(&server);
    let route = "route=\"/be/v1/apps/{appName}\"";
    assert_eq!(sample(&text, &format!("rockit_http_requests_total{{{route},class=\"2xx\"}}")), 2.0);
    assert_eq!(sample(&text, &format!("rockit_http_requests_total{{{route},class=\"4xx\"}}")), 1.0);
    assert_eq!(sample(&text, &format!("rockit_http_request_duration_seconds_count{{{route}}}")), 3.0);
    assert_eq!(sample(&text, &format!("rockit_http_request_duration_seconds_bucket{{{route},le=\"+Inf\"}}")), 3.0);
    for raw in ["alpha_app", "beta_app", "missing_app"] {
        assert!(!text.contains(raw), "a raw path leaked into the metrics: {raw}");
    }
}

#[test]
fn metrics_need_an_admin_token_or_the_metrics_token() {
    let secret = "scraper-secret-0123456789";
    let server = Server::start_with(&[("ROCKIT_EDGE_METRICS_TOKEN", secret)]);
    let admin = server.org_admin("acme");

    assert_eq!(scrape(&server, &[]).0, 401);
    assert_eq!(scrape(&server, &[("Authorization", "Bearer scraper-secret-wrong-guess")]).0, 401);
    // An organization's access token is no admin token.
    assert_eq!(scrape(&server, &[("Authorization", &format!("Bearer {}", admin.access))]).0, 401);

    let (status, text) = scrape(&server, &[("Authorization", &format!("Bearer {secret}"))]);
    assert_eq!(status, 200, "{text}");
    assert!(text.contains("# TYPE rockit_http_requests_total counter"), "{text}");
    assert_eq!(scrape(&server, &[("x-rockit-admin-token", &server.admin_token())]).0, 200);
}

#[test]
fn the_metrics_token_is_refused_when_the_setting_is_absent() {
    let server = Server::start();
    assert_eq!(scrape(&server, &[("Authorization", "Bearer scraper-secret-0123456789")]).0, 401);
}

#[test]
fn metrics_report_writer_database_disk_queue_and_login_failures() {
    let server = Server::start();
    server.org_admin("acme");
    for _ in 0..2 {
        let body = json!({"username": "admin", "password": "not the password", "orgName": "acme"});
        send("POST", &server.url("/be/v1/login"), &[], Some(body)).assert_error(401, "invalid-credentials");
    }
    let text = scrape_as_admin(&server);
    assert_eq!(sample(&text, "rockit_login_failures_total"), 2.0);
    assert!(sample(&text, "rockit_writer_batch_jobs_count") >= 1.0, "{text}");
    assert!(sample(&text, "rockit_writer_commit_duration_seconds_count") >= 1.0, "{text}");
    assert!(sample(&text, "rockit_database_bytes") > 0.0, "{text}");
    assert!(sample(&text, "rockit_wal_bytes") >= 0.0, "{text}");
    assert!(sample(&text, "rockit_state_dir_free_bytes") > 0.0, "{text}");
    assert_eq!(sample(&text, "rockit_tasks{status=\"submitted\"}"), 0.0);
    assert_eq!(sample(&text, "rockit_task_oldest_age_seconds{status=\"running\"}"), 0.0);
}

/// A build server that answers the headers of a large tar and then sends nothing: the download
/// (and so its `dltar` task) stays running for as long as the test needs it.
fn stalled_origin() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/native-build.tar", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut head = [0u8; 4096];
            let _ = std::io::Read::read(&mut stream, &mut head);
            let _ = std::io::Write::write_all(&mut stream, b"HTTP/1.1 200 OK\r\nContent-Length: 100000000\r\n\r\n");
            held.push(stream);
        }
    });
    url
}

#[test]
fn queue_gauges_count_tasks_waiting_and_running_and_age_the_oldest() {
    let server = Server::start_with(&[("ROCKIT_EDGE_OUTBOUND_ALLOW_LOOPBACK", "true")]);
    let admin = server.org_admin("acme");
    for app in ["waiting", "busy"] {
        admin.call("POST", "/be/v1/apps", Some(json!({"name": app, "label": app}))).assert_ok();
    }
    // An import in upload mode waits (submitted) until its upload arrives; none will.
    admin.call("POST", "/be/v1/builds", Some(json!({"appName": "waiting"}))).assert_ok();
    // An import from a build server that never finishes sending keeps its download running.
    let body = json!({"appName": "busy", "url": stalled_origin()});
    admin.call("POST", "/be/v1/builds", Some(body)).assert_ok();

    let text = common::eventually(std::time::Duration::from_secs(120), || {
        let text = scrape_as_admin(&server);
        let seen = sample(&text, "rockit_tasks{status=\"running\"}") == 1.0
            && sample(&text, "rockit_task_oldest_age_seconds{status=\"submitted\"}") > 0.0;
        seen.then_some(text)
    });
    assert_eq!(sample(&text, "rockit_tasks{status=\"submitted\"}"), 1.0, "{text}");
    assert!(sample(&text, "rockit_task_oldest_age_seconds{status=\"running\"}") >= 0.0, "{text}");
}
