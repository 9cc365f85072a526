//! The server never agrees to send requests to cloud metadata services: webhook URLs and S3
//! endpoints pointing at link-local addresses are refused when they are created or changed.

mod common;

use common::{assert_param, Server};
use serde_json::json;

#[test]
fn a_webhook_to_a_metadata_address_is_refused_at_create_time() {
    let server = Server::start();
    let admin = server.org_admin("acme");
    for url in [
        "http://169.254.169.254/latest/meta-data/iam/security-credentials/",
        "http://2852039166/",
        "http://[fe80::1]/hook",
        "http://metadata.google.internal/computeMetadata/v1/",
    ] {
        let body = json!({"name": "hook", "type": "webhook", "url": url});
        let reply = admin.call("POST", "/be/v1/subscriptions", Some(body));
        // Well-formed, but this server may not call there: 403, naming the field.
        assert_param(&reply, 403, "permission-denied", "url");
    }
    let lan = json!({"name": "hook", "type": "webhook", "url": "http://10.0.0.5:8080/hook"});
    admin.call("POST", "/be/v1/subscriptions", Some(lan)).assert_ok();
}

#[test]
fn an_s3_endpoint_at_a_metadata_address_is_refused() {
    let server = Server::start();
    let admin = server.org_admin("acme");
    let origin = |endpoint: &str| {
        json!({"type": "s3", "endpoint": endpoint, "region": "r", "bucket": "games",
               "accessKeyId": "AKIAEXAMPLE", "secretAccessKey": "secret-secret"})
    };
    for endpoint in ["169.254.169.254", "http://169.254.169.254:80", "0xa9fea9fe", "instance-data"] {
        let body = json!({"name": "cdn", "origin": origin(endpoint)});
        let reply = admin.call("POST", "/be/v1/deployments", Some(body));
        assert_param(&reply, 400, "invalid-param", "origin.endpoint");
    }
    let body = json!({"name": "cdn", "origin": origin("minio.local:9000")});
    admin.call("POST", "/be/v1/deployments", Some(body)).assert_ok();
    let patch = json!({"name": "cdn", "origin": {"type": "s3", "endpoint": "169.254.169.254"}});
    let reply = admin.call("PATCH", "/be/v1/deployments", Some(patch));
    assert_param(&reply, 400, "invalid-param", "origin.endpoint");
}
