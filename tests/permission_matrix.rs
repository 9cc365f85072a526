//! The permission matrix: every `/be/v1` endpoint, called without the bit it needs (403) and
//! from another organization (404, or nothing of the other organization in a list).
//!
//! The table below must name every `/be/v1` operation of `/openapi.json`; a new endpoint that is
//! not added here fails `every_be_endpoint_is_in_the_matrix`.

mod common;

use common::{Server, Session, MAXIMA};
use serde_json::{json, Value};

/// What an endpoint demands of its caller.
#[derive(Clone, Copy, Debug)]
enum Needs {
    /// This bit on this resource (API.md §3).
    Bit(&'static str, u8),
    /// Membership in the organization's Administrators role.
    Administrators,
    /// Any authenticated caller of the organization (acts on the caller's own things).
    AnyCaller,
    /// Not an organization-scoped call (login, refresh, logout).
    NoCaller,
}

/// How the endpoint reaches into another organization.
#[derive(Clone, Copy, Debug)]
enum Scope {
    /// Names a resource of org A (path or body): org B gets 404.
    Named,
    /// Lists: org B never sees org A's items under this key.
    Lists(&'static str),
    /// Creates in the caller's own organization only.
    CreatesOwn,
    Unscoped,
}

struct Entry {
    method: &'static str,
    path: &'static str,
    needs: Needs,
    scope: Scope,
    /// Concrete path and body, given the fixture's names.
    request: fn(&Fixture) -> (String, Option<Value>),
}

/// Names that exist in organization A.
struct Fixture {
    org: String,
    user: String,
    role: String,
    machine: String,
    key_id: String,
    /// A live login session of `user`.
    session: String,
    deployment: String,
    app: String,
    subscription: String,
    /// The first task of an import of `app` (it fails: loopback is not allowed by default).
    task: String,
}

fn entries() -> Vec<Entry> {
    use Needs::*;
    use Scope::*;
    vec![
        Entry {
            method: "POST",
            path: "/be/v1/orgs",
            needs: Administrators,
            scope: CreatesOwn,
            request: |_| ("/be/v1/orgs".into(), Some(json!({"name": "fresh_org"}))),
        },
        Entry {
            method: "DELETE",
            path: "/be/v1/orgs/{orgName}",
            needs: Administrators,
            scope: Named,
            request: |f| (format!("/be/v1/orgs/{}", f.org), None),
        },
        Entry {
            method: "POST",
            path: "/be/v1/login",
            needs: NoCaller,
            scope: Unscoped,
            request: |_| ("/be/v1/login".into(), None),
        },
        Entry {
            method: "POST",
            path: "/be/v1/refresh",
            needs: NoCaller,
            scope: Unscoped,
            request: |_| ("/be/v1/refresh".into(), None),
        },
        Entry {
            method: "POST",
            path: "/be/v1/logout",
            needs: NoCaller,
            scope: Unscoped,
            request: |_| ("/be/v1/logout".into(), None),
        },
        Entry {
            method: "POST",
            path: "/be/v1/users",
            needs: Bit("beUsers", 1),
            scope: CreatesOwn,
            request: |_| ("/be/v1/users".into(), Some(json!({"username": "newbie", "type": "machine", "label": "x"}))),
        },
        Entry {
            method: "GET",
            path: "/be/v1/users",
            needs: Bit("beUsers", 2),
            scope: Lists("users"),
            request: |_| ("/be/v1/users?limit=1000".into(), None),
        },
        Entry {
            method: "PATCH",
            path: "/be/v1/users",
            needs: Bit("beUsers", 4),
            scope: Named,
            request: |f| ("/be/v1/users".into(), Some(json!({"username": f.user, "firstname": "Changed"}))),
        },
        Entry {
            method: "GET",
            path: "/be/v1/users/{username}",
            needs: Bit("beUsers", 2),
            scope: Named,
            request: |f| (format!("/be/v1/users/{}", f.user), None),
        },
        Entry {
            method: "DELETE",
            path: "/be/v1/users/{username}",
            needs: Bit("beUsers", 8),
            scope: Named,
            request: |f| (format!("/be/v1/users/{}", f.user), None),
        },
        Entry {
            method: "POST",
            path: "/be/v1/apikeys",
            needs: Bit("beUsers", 4),
            scope: Named,
            request: |f| ("/be/v1/apikeys".into(), Some(json!({"username": f.machine}))),
        },
        Entry {
            method: "GET",
            path: "/be/v1/apikeys",
            needs: AnyCaller,
            scope: Lists("apikeys"),
            request: |_| ("/be/v1/apikeys?limit=1000".into(), None),
        },
        Entry {
            method: "DELETE",
            path: "/be/v1/apikeys/{apiKeyId}",
            needs: Bit("beUsers", 4),
            scope: Named,
            request: |f| (format!("/be/v1/apikeys/{}", f.key_id), None),
        },
        Entry {
            method: "GET",
            path: "/be/v1/audit",
            needs: Administrators,
            scope: Lists("audit"),
            request: |_| ("/be/v1/audit?limit=1000".into(), None),
        },
        Entry {
            method: "GET",
            path: "/be/v1/sessions",
            needs: AnyCaller,
            scope: Lists("sessions"),
            request: |_| ("/be/v1/sessions?limit=1000".into(), None),
        },
        Entry {
            method: "DELETE",
            path: "/be/v1/sessions/{sessionId}",
            needs: Bit("beUsers", 4),
            scope: Named,
            request: |f| (format!("/be/v1/sessions/{}", f.session), None),
        },
        Entry {
            method: "POST",
            path: "/be/v1/deployments",
            needs: Bit("deployments", 1),
            scope: CreatesOwn,
            request: |_| {
                (
                    "/be/v1/deployments".into(),
                    Some(json!({"name": "fresh_dep", "origin": {"type": "fs", "path": "/tmp/rockit-matrix-cdn"}})),
                )
            },
        },
        Entry {
            method: "GET",
            path: "/be/v1/deployments",
            needs: Bit("deployments", 2),
            scope: Lists("deployments"),
            request: |_| ("/be/v1/deployments?limit=1000".into(), None),
        },
        Entry {
            method: "PATCH",
            path: "/be/v1/deployments",
            needs: Bit("deployments", 4),
            scope: Named,
            request: |f| ("/be/v1/deployments".into(), Some(json!({"name": f.deployment, "label": "changed"}))),
        },
        Entry {
            method: "GET",
            path: "/be/v1/deployments/{name}",
            needs: Bit("deployments", 2),
            scope: Named,
            request: |f| (format!("/be/v1/deployments/{}", f.deployment), None),
        },
        Entry {
            method: "DELETE",
            path: "/be/v1/deployments/{name}",
            needs: Bit("deployments", 8),
            scope: Named,
            request: |f| (format!("/be/v1/deployments/{}", f.deployment), None),
        },
        Entry {
            method: "POST",
            path: "/be/v1/apps",
            needs: Bit("apps", 1),
            scope: CreatesOwn,
            request: |_| ("/be/v1/apps".into(), Some(json!({"name": "fresh_app", "label": "Fresh"}))),
        },
        Entry {
            method: "GET",
            path: "/be/v1/apps",
            needs: Bit("apps", 2),
            scope: Lists("apps"),
            request: |_| ("/be/v1/apps?limit=1000".into(), None),
        },
        Entry {
            method: "PATCH",
            path: "/be/v1/apps",
            needs: Bit("apps", 4),
            scope: Named,
            request: |f| ("/be/v1/apps".into(), Some(json!({"name": f.app, "label": "changed"}))),
        },
        Entry {
            method: "GET",
            path: "/be/v1/apps/{appName}",
            needs: Bit("apps", 2),
            scope: Named,
            request: |f| (format!("/be/v1/apps/{}", f.app), None),
        },
        Entry {
            method: "DELETE",
            path: "/be/v1/apps/{appName}",
            needs: Bit("apps", 8),
            scope: Named,
            request: |f| (format!("/be/v1/apps/{}", f.app), None),
        },
        Entry {
            method: "POST",
            path: "/be/v1/builds",
            needs: Bit("apps", 4),
            scope: Named,
            request: |f| {
                let url = "http://127.0.0.1:9/native-build.tar";
                ("/be/v1/builds".into(), Some(json!({"appName": f.app, "url": url})))
            },
        },
        Entry {
            method: "GET",
            path: "/be/v1/me",
            needs: AnyCaller,
            scope: Unscoped,
            request: |_| ("/be/v1/me".into(), None),
        },
        Entry {
            method: "POST",
            path: "/be/v1/commit",
            needs: Bit("apps", 4),
            scope: Named,
            request: |f| ("/be/v1/commit".into(), Some(json!({"appName": f.app}))),
        },
        Entry {
            method: "GET",
            path: "/be/v1/tasks/{taskName}",
            needs: Bit("tasks", 2),
            scope: Named,
            request: |f| (format!("/be/v1/tasks/{}", f.task), None),
        },
        Entry {
            method: "PUT",
            path: "/be/v1/uploads/{uploadToken}",
            needs: NoCaller,
            scope: Unscoped,
            request: |_| ("/be/v1/uploads/not-a-capability".into(), None),
        },
        Entry {
            method: "GET",
            path: "/be/v1/tasks",
            needs: Bit("tasks", 2),
            scope: Lists("tasks"),
            request: |_| ("/be/v1/tasks?limit=1000".into(), None),
        },
        Entry {
            method: "PATCH",
            path: "/be/v1/tasks",
            needs: Bit("tasks", 4),
            scope: Named,
            request: |f| ("/be/v1/tasks".into(), Some(json!({"name": f.task, "ackWarnings": true}))),
        },
        Entry {
            method: "POST",
            path: "/be/v1/trigger",
            needs: Bit("tasks", 16),
            scope: Named,
            request: |f| ("/be/v1/trigger".into(), Some(json!({"action": "retryTask", "taskName": f.task}))),
        },
        // Organization transfers (issue 13): an export is of the caller's own organization; an
        // import needs the admin token; the one-time URLs are capabilities (tests/transfers.rs).
        Entry {
            method: "POST",
            path: "/be/v1/export",
            needs: Administrators,
            scope: CreatesOwn,
            request: |_| ("/be/v1/export".into(), Some(json!({"passphrase": "a long export passphrase"}))),
        },
        Entry {
            method: "GET",
            path: "/be/v1/exports/{downloadToken}",
            needs: NoCaller,
            scope: Unscoped,
            request: |_| ("/be/v1/exports/not-a-capability".into(), None),
        },
        Entry {
            method: "POST",
            path: "/be/v1/import",
            needs: NoCaller,
            scope: Unscoped,
            request: |_| ("/be/v1/import".into(), Some(json!({"passphrase": "a long import passphrase"}))),
        },
        Entry {
            method: "PUT",
            path: "/be/v1/imports/{uploadToken}",
            needs: NoCaller,
            scope: Unscoped,
            request: |_| ("/be/v1/imports/not-a-capability".into(), None),
        },
        Entry {
            method: "POST",
            path: "/be/v1/trigger",
            needs: Bit("tasks", 16),
            scope: Named,
            request: |f| ("/be/v1/trigger".into(), Some(json!({"action": "processTraces", "appName": f.app}))),
        },
        Entry {
            method: "POST",
            path: "/be/v1/traces",
            needs: Bit("trainings", 4),
            scope: Named,
            request: |f| {
                let reads = json!([{"path": "bin/game", "offset": 0, "len": 1}]);
                ("/be/v1/traces".into(), Some(json!({"appName": f.app, "buildId": 1, "reads": reads})))
            },
        },
        Entry {
            method: "POST",
            path: "/be/v1/subscriptions",
            needs: Bit("subscriptions", 1),
            scope: CreatesOwn,
            request: |_| {
                (
                    "/be/v1/subscriptions".into(),
                    Some(json!({"name": "fresh_sub", "type": "webhook", "url": "https://ci.example.com/h"})),
                )
            },
        },
        Entry {
            method: "GET",
            path: "/be/v1/subscriptions",
            needs: Bit("subscriptions", 2),
            scope: Lists("subscriptions"),
            request: |_| ("/be/v1/subscriptions?limit=1000".into(), None),
        },
        Entry {
            method: "GET",
            path: "/be/v1/subscriptions/{subscriptionName}",
            needs: Bit("subscriptions", 2),
            scope: Named,
            request: |f| (format!("/be/v1/subscriptions/{}", f.subscription), None),
        },
        Entry {
            method: "DELETE",
            path: "/be/v1/subscriptions/{subscriptionName}",
            needs: Bit("subscriptions", 8),
            scope: Named,
            request: |f| (format!("/be/v1/subscriptions/{}", f.subscription), None),
        },
        Entry {
            method: "GET",
            path: "/be/v1/roles",
            needs: Bit("roles", 2),
            scope: Lists("roles"),
            request: |_| ("/be/v1/roles?limit=1000".into(), None),
        },
        Entry {
            method: "POST",
            path: "/be/v1/roles",
            needs: Bit("roles", 1),
            scope: CreatesOwn,
            request: |_| ("/be/v1/roles".into(), Some(json!({"name": "fresh_role", "permissions": {}}))),
        },
        Entry {
            method: "PATCH",
            path: "/be/v1/roles",
            needs: Bit("roles", 4),
            scope: Named,
            request: |f| ("/be/v1/roles".into(), Some(json!({"name": f.role, "label": "changed"}))),
        },
        Entry {
            method: "GET",
            path: "/be/v1/roles/{roleName}",
            needs: Bit("roles", 2),
            scope: Named,
            request: |f| (format!("/be/v1/roles/{}", f.role), None),
        },
        Entry {
            method: "DELETE",
            path: "/be/v1/roles/{roleName}",
            needs: Bit("roles", 8),
            scope: Named,
            request: |f| (format!("/be/v1/roles/{}", f.role), None),
        },
    ]
}

fn all_but(resource: &str, bit: u8) -> Value {
    let map: serde_json::Map<String, Value> =
        MAXIMA.iter().map(|(r, max)| (r.to_string(), json!(if *r == resource { max & !bit } else { *max }))).collect();
    Value::Object(map)
}

/// Org A with a user, an unused role, a machine with a key; its admin session.
fn fixture(server: &Server, org: &str) -> (Fixture, Session) {
    let admin = server.org_admin(org);
    let target = admin.create_user(server, "target_user", &[]);
    admin.create_role("target_role", json!({"apps": 2}));
    let machine = admin.create_machine("target_bot", &[]);
    let cdn = server.home.path().join(format!("cdn_{org}"));
    admin
        .call("POST", "/be/v1/deployments", Some(json!({"name": "target_dep", "origin": {"type": "fs", "path": cdn}})))
        .assert_ok();
    admin.call("POST", "/be/v1/apps", Some(json!({"name": "target_app", "label": "Target"}))).assert_ok();
    admin
        .call(
            "POST",
            "/be/v1/subscriptions",
            Some(json!({"name": "target_sub", "type": "webhook", "url": "https://ci.example.com/hook"})),
        )
        .assert_ok();
    let import = admin.call(
        "POST",
        "/be/v1/builds",
        Some(json!({"appName": "target_app", "url": "http://127.0.0.1:9/native-build.tar"})),
    );
    let task = import.assert_ok()["task"]["name"].as_str().unwrap().to_string();
    let f = Fixture {
        org: org.into(),
        user: "target_user".into(),
        role: "target_role".into(),
        machine: "target_bot".into(),
        key_id: machine.key_id,
        session: target.id,
        deployment: "target_dep".into(),
        app: "target_app".into(),
        subscription: "target_sub".into(),
        task,
    };
    (f, admin)
}

#[test]
fn every_be_endpoint_is_in_the_matrix() {
    let server = Server::start();
    let doc = common::send("GET", &server.url("/openapi.json"), &[], None).body;
    let table = entries();
    for (path, operations) in doc["paths"].as_object().unwrap() {
        if !path.starts_with("/be/") {
            continue;
        }
        for method in operations.as_object().unwrap().keys() {
            let method = method.to_uppercase();
            assert!(
                table.iter().any(|e| e.method == method && e.path == path),
                "{method} {path} is not in the permission matrix of tests/permission_matrix.rs"
            );
        }
    }
}

#[test]
fn every_endpoint_refuses_a_caller_without_the_bit_it_needs() {
    let server = Server::start();
    let (f, admin) = fixture(&server, "org_a");
    for (i, entry) in entries().iter().enumerate() {
        let (path, body) = (entry.request)(&f);
        let lacking = match entry.needs {
            Needs::Bit(resource, bit) => {
                let role = admin.create_role(&format!("lacks_{i}"), all_but(resource, bit));
                admin.create_user(&server, &format!("lacking_{i}"), &[&role])
            }
            // Every bit there is, but not the Administrators role.
            Needs::Administrators => {
                let role = admin.create_role(&format!("almost_admin_{i}"), all_but("apps", 0));
                admin.create_user(&server, &format!("almost_{i}"), &[&role])
            }
            Needs::AnyCaller | Needs::NoCaller => continue,
        };
        let reply = lacking.call(entry.method, &path, body);
        assert_eq!(
            (reply.status, reply.error()),
            (403, "permission-denied"),
            "{} {} without {:?}: {:?}",
            entry.method,
            entry.path,
            entry.needs,
            reply.body
        );
        // The refusal names the missing resource: what `holding_exactly_the_needed_bit_is_enough`
        // looks for, so that test cannot pass by the answer merely changing its wording.
        if let Needs::Bit(resource, _) = entry.needs {
            assert_eq!(reply.body["resource"], resource, "{} {}: {:?}", entry.method, entry.path, reply.body);
        }
    }
    // Nothing was changed by the refused calls.
    admin.call("GET", &format!("/be/v1/users/{}", f.user), None).assert_ok();
    admin.call("GET", &format!("/be/v1/roles/{}", f.role), None).assert_ok();
}

#[test]
fn every_endpoint_hides_another_organizations_resources() {
    let server = Server::start();
    let (f, admin_a) = fixture(&server, "org_a");
    let admin_b = server.org_admin("org_b");
    for entry in entries() {
        let (path, body) = (entry.request)(&f);
        match entry.scope {
            Scope::Named => {
                let reply = admin_b.call(entry.method, &path, body);
                assert_eq!(
                    (reply.status, reply.error()),
                    (404, "not-found"),
                    "{} {} from another organization: {:?}",
                    entry.method,
                    entry.path,
                    reply.body
                );
            }
            Scope::Lists(key) => {
                let reply = admin_b.call(entry.method, &path, body);
                let text = reply.assert_ok()[key].to_string();
                for name in [
                    &f.user,
                    &f.role,
                    &f.machine,
                    &f.key_id,
                    &f.session,
                    &f.deployment,
                    &f.app,
                    &f.subscription,
                    &f.task,
                ] {
                    assert!(!text.contains(name.as_str()), "{} {} shows org A's {name}", entry.method, entry.path);
                }
            }
            Scope::CreatesOwn | Scope::Unscoped => {}
        }
    }
    // Org A is untouched by everything org B tried.
    admin_a.call("GET", &format!("/be/v1/users/{}", f.user), None).assert_ok();
    admin_a.call("GET", &format!("/be/v1/roles/{}", f.role), None).assert_ok();
    admin_a.call("GET", &format!("/be/v1/deployments/{}", f.deployment), None).assert_ok();
    admin_a.call("GET", &format!("/be/v1/apps/{}", f.app), None).assert_ok();
    let keys = admin_a.call("GET", "/be/v1/apikeys", None);
    assert!(keys.assert_ok()["apikeys"].to_string().contains(&f.key_id));
    let sessions = admin_a.call("GET", "/be/v1/sessions?limit=1000", None);
    assert!(sessions.assert_ok()["sessions"].to_string().contains(&f.session));
}

#[test]
fn holding_exactly_the_needed_bit_is_enough() {
    let server = Server::start();
    let (f, admin) = fixture(&server, "org_a");
    for (i, entry) in entries().iter().enumerate() {
        let Needs::Bit(resource, bit) = entry.needs else { continue };
        let role = admin.create_role(&format!("only_{i}"), json!({ resource: bit }));
        let holder = admin.create_user(&server, &format!("holder_{i}"), &[&role]);
        let (path, body) = (entry.request)(&f);
        let reply = holder.call(entry.method, &path, body);
        // The call may still fail for its own reasons (e.g. acting on a user whose rights the
        // caller lacks), but never for want of the bit itself.
        assert!(
            !(reply.status == 403 && reply.body["resource"] == resource),
            "{} {} with only {resource}:{bit}: {:?}",
            entry.method,
            entry.path,
            reply.body
        );
    }
}
