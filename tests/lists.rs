//! The one list convention (API.md §1.4) on every list endpoint: the answer's shape, paging and
//! `total`, order with stable ties, `fields[]`, filters, and 400s that name the parameter.
//! Data-driven: `ENDPOINTS` has one row per list endpoint, and `every_list_endpoint_has_a_row`
//! fails until a new list endpoint gets its row.

mod common;

use std::collections::BTreeSet;

use common::{send, Reply, Server, Session, PASSWORD};
use rockit_edge::http::{routes, Auth};
use serde_json::{json, Value};

/// The names every list gets items under: `alpha` matches two, `x_y` one (not `xzy`), and the
/// fillers make more than the default page of 10.
const NAMES: [&str; 12] = [
    "alpha_one",
    "alpha_two",
    "beta",
    "x_y",
    "xzy",
    "item_01",
    "item_02",
    "item_03",
    "item_04",
    "item_05",
    "item_06",
    "item_07",
];

/// One list endpoint: where it is, what its items look like, and how to fill it.
struct Endpoint {
    path: &'static str,
    /// The key of the item array in the answer.
    key: &'static str,
    /// The field the default order sorts by and ties are broken by.
    name: &'static str,
    /// The partial filter on a name: (query parameter, item field).
    name_filter: (&'static str, &'static str),
    /// Exact-match filters: (query parameter, item field); tried with every value the items have.
    filters: &'static [(&'static str, &'static str)],
    /// A sortable field on which the created items share values.
    tie: &'static str,
    /// Two fields for `fields[]`.
    fields: [&'static str; 2],
    /// Creates items under `NAMES`; answers the `name` of every item it created.
    fill: fn(&Fixture) -> Vec<String>,
}

const ENDPOINTS: &[Endpoint] = &[
    Endpoint {
        path: "/be/v1/users",
        key: "users",
        name: "username",
        name_filter: ("username", "username"),
        filters: &[("type", "type"), ("role", "roles")],
        tie: "type",
        fields: ["username", "type"],
        fill: fill_users,
    },
    Endpoint {
        path: "/be/v1/roles",
        key: "roles",
        name: "name",
        name_filter: ("name", "name"),
        filters: &[],
        tie: "label",
        fields: ["name", "label"],
        fill: fill_roles,
    },
    Endpoint {
        path: "/be/v1/apikeys",
        key: "apikeys",
        name: "apiKeyId",
        name_filter: ("username", "username"),
        filters: &[],
        tie: "username",
        fields: ["apiKeyId", "username"],
        fill: fill_api_keys,
    },
    Endpoint {
        path: "/be/v1/deployments",
        key: "deployments",
        name: "name",
        name_filter: ("name", "name"),
        filters: &[("status", "status")],
        tie: "status",
        fields: ["name", "status"],
        fill: fill_deployments,
    },
    Endpoint {
        path: "/be/v1/apps",
        key: "apps",
        name: "name",
        name_filter: ("name", "name"),
        filters: &[("status", "status")],
        tie: "status",
        fields: ["name", "label"],
        fill: fill_apps,
    },
    Endpoint {
        path: "/be/v1/subscriptions",
        key: "subscriptions",
        name: "name",
        name_filter: ("name", "name"),
        filters: &[("type", "type")],
        tie: "type",
        fields: ["name", "type"],
        fill: fill_subscriptions,
    },
    Endpoint {
        path: "/be/v1/tasks",
        key: "tasks",
        name: "name",
        name_filter: ("appName", "appName"),
        filters: &[("type", "type"), ("status", "status")],
        tie: "type",
        fields: ["name", "type"],
        fill: fill_tasks,
    },
    Endpoint {
        path: "/be/v1/sessions",
        key: "sessions",
        name: "sessionId",
        name_filter: ("username", "username"),
        filters: &[],
        tie: "username",
        fields: ["sessionId", "username"],
        fill: fill_sessions,
    },
    Endpoint {
        path: "/be/v1/audit",
        key: "audit",
        name: "created",
        name_filter: ("username", "username"),
        filters: &[("event", "event")],
        tie: "event",
        fields: ["created", "event"],
        fill: fill_audit,
    },
    Endpoint {
        path: "/adm/v1/audit",
        key: "audit",
        name: "created",
        name_filter: ("username", "username"),
        filters: &[("event", "event")],
        tie: "event",
        fields: ["created", "event"],
        fill: fill_box_audit,
    },
    Endpoint {
        path: "/adm/v1/orgs",
        key: "orgs",
        name: "name",
        name_filter: ("name", "name"),
        filters: &[],
        tie: "label",
        fields: ["name", "label"],
        fill: fill_orgs,
    },
];

/// A server with one organization (`lists`), its administrator, and an admin token.
struct Fixture {
    server: Server,
    session: Session,
    admin_token: String,
}

impl Fixture {
    fn start() -> Fixture {
        let server = Server::start();
        let session = server.org_admin("lists");
        let admin_token = server.admin_token();
        Fixture { server, session, admin_token }
    }

    /// A request as the instance administrator (`/adm`, `/srv`) or the org administrator (`/be`).
    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Reply {
        if path.starts_with("/be/") {
            self.session.call(method, path, body)
        } else {
            send(method, &self.server.url(path), &[("x-rockit-admin-token", self.admin_token.as_str())], body)
        }
    }

    fn create(&self, path: &str, body: Value) -> Value {
        self.call("POST", path, Some(body)).assert_ok().clone()
    }

    fn get(&self, endpoint: &Endpoint, query: &str) -> Reply {
        self.call("GET", &format!("{}?{query}", endpoint.path), None)
    }
}

fn fill_users(fx: &Fixture) -> Vec<String> {
    fx.session.create_role("tagged", json!({"apps": 1}));
    for (i, name) in NAMES.iter().enumerate() {
        let roles = if i % 3 == 0 { json!(["tagged"]) } else { json!([]) };
        let body = if i % 2 == 0 {
            json!({"username": name, "email": format!("{name}@example.com"), "firstname": "List",
                   "surname": "User", "roles": roles, "password": PASSWORD})
        } else {
            json!({"username": name, "type": "machine", "label": "bot", "roles": roles})
        };
        fx.create("/be/v1/users", body);
    }
    named()
}

fn fill_roles(fx: &Fixture) -> Vec<String> {
    for name in NAMES {
        fx.create("/be/v1/roles", json!({"name": name, "label": "same label", "permissions": {"apps": 1}}));
    }
    named()
}

/// One machine account (and so one key) per name, and two more keys for `beta`.
fn fill_api_keys(fx: &Fixture) -> Vec<String> {
    let mut ids = Vec::new();
    for name in NAMES {
        let created = fx.create("/be/v1/users", json!({"username": name, "type": "machine", "label": "bot"}));
        ids.push(created["apiKeyId"].as_str().expect("apiKeyId").to_string());
    }
    for _ in 0..2 {
        let created = fx.create("/be/v1/apikeys", json!({"username": "beta"}));
        ids.push(created["apiKeyId"].as_str().expect("apiKeyId").to_string());
    }
    ids
}

fn fill_deployments(fx: &Fixture) -> Vec<String> {
    for name in NAMES {
        let path = fx.server.home.path().join("cdn").join(name);
        std::fs::create_dir_all(&path).unwrap();
        fx.create("/be/v1/deployments", json!({"name": name, "origin": {"type": "fs", "path": path}}));
    }
    named()
}

fn fill_apps(fx: &Fixture) -> Vec<String> {
    for name in NAMES {
        fx.create("/be/v1/apps", json!({"name": name, "label": "same label"}));
    }
    named()
}

fn fill_subscriptions(fx: &Fixture) -> Vec<String> {
    for (i, name) in NAMES.iter().enumerate() {
        let body = if i % 3 == 0 {
            json!({"name": name, "type": "slack", "url": "https://hooks.slack.com/services/T0/B0/x"})
        } else {
            json!({"name": name, "type": "webhook", "url": "https://ci.example.com/h"})
        };
        fx.create("/be/v1/subscriptions", body);
    }
    named()
}

/// One import per app in upload mode: each leaves a dltar task waiting for its upload.
fn fill_tasks(fx: &Fixture) -> Vec<String> {
    let mut names = Vec::new();
    for name in NAMES {
        fx.create("/be/v1/apps", json!({"name": name, "label": "same label"}));
        let started = fx.create("/be/v1/builds", json!({"appName": name}));
        names.push(started["task"]["name"].as_str().unwrap().to_string());
    }
    names
}

/// A person per name, each logged in once, and `beta` twice (so usernames tie).
fn fill_sessions(fx: &Fixture) -> Vec<String> {
    let mut ids = Vec::new();
    for name in NAMES {
        let body = json!({"username": name, "email": format!("{name}@example.com"), "firstname": "List",
                          "surname": "User", "password": PASSWORD});
        fx.create("/be/v1/users", body);
        ids.push(fx.server.login("lists", name, PASSWORD).id);
    }
    ids.push(fx.server.login("lists", "beta", PASSWORD).id);
    ids
}

/// The `created` of every audit event whose principal is one of `NAMES`.
fn created_of_named(fx: &Fixture, path: &str, principal: impl Fn(&str) -> String) -> Vec<String> {
    let events = fx.call("GET", &format!("{path}?limit=1000"), None).assert_ok()["audit"].clone();
    let wanted: Vec<String> = NAMES.iter().map(|n| principal(n)).collect();
    events
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["username"].as_str().is_some_and(|u| wanted.iter().any(|w| w == u)))
        .map(|e| e["created"].as_str().unwrap().to_string())
        .collect()
}

/// One login (a `login.succeeded` event) per name.
fn fill_audit(fx: &Fixture) -> Vec<String> {
    for name in NAMES {
        let body = json!({"username": name, "email": format!("{name}@example.com"), "firstname": "List",
                          "surname": "User", "password": PASSWORD});
        fx.create("/be/v1/users", body);
        fx.server.login("lists", name, PASSWORD);
    }
    created_of_named(fx, "/be/v1/audit", |n| n.to_string())
}

/// One organization created (an `org.created` event) per name, each with an admin token of
/// that name.
fn fill_box_audit(fx: &Fixture) -> Vec<String> {
    for name in NAMES {
        let out = fx.server.cli(&["admin-token", "--name", name]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let token = String::from_utf8(out.stdout).unwrap().trim().to_string();
        let body = json!({"name": format!("org_{name}"), "label": "same label"});
        send("POST", &fx.server.url("/adm/v1/orgs"), &[("x-rockit-admin-token", &token)], Some(body)).assert_ok();
    }
    created_of_named(fx, "/adm/v1/audit", |n| format!("admin-token:{n}"))
}

fn fill_orgs(fx: &Fixture) -> Vec<String> {
    for name in NAMES {
        fx.create("/adm/v1/orgs", json!({"name": name, "label": "same label"}));
    }
    named()
}

/// `NAMES` as the fill functions answer them.
fn named() -> Vec<String> {
    NAMES.iter().map(|n| n.to_string()).collect()
}

/// The items of a successful list answer, after checking its shape.
#[track_caller]
fn page(endpoint: &Endpoint, reply: &Reply, offset: u64, limit: u64) -> (Vec<Value>, u64) {
    let body = reply.assert_ok();
    let keys: BTreeSet<&str> = body.as_object().unwrap().keys().map(String::as_str).collect();
    let expected: BTreeSet<&str> = ["status", endpoint.key, "total", "offset", "limit"].into();
    assert_eq!(keys, expected, "{}: {body}", endpoint.path);
    assert_eq!((body["offset"].as_u64(), body["limit"].as_u64()), (Some(offset), Some(limit)), "{body}");
    let items = body[endpoint.key].as_array().unwrap().clone();
    assert!(items.len() as u64 <= limit, "{body}");
    (items, body["total"].as_u64().expect("total"))
}

/// The `name` field of each item.
fn names(endpoint: &Endpoint, items: &[Value]) -> Vec<String> {
    items.iter().map(|item| item[endpoint.name].as_str().expect("name field").to_string()).collect()
}

/// The names of a list answer with the given query, checking it holds the whole result.
#[track_caller]
fn list_all(fx: &Fixture, endpoint: &Endpoint, query: &str) -> Vec<String> {
    let reply = fx.get(endpoint, &format!("limit=1000&{query}"));
    let (items, total) = page(endpoint, &reply, 0, 1000);
    assert_eq!(items.len() as u64, total, "{query}: total counts every match");
    names(endpoint, &items)
}

/// A string sort key; `null` sorts first, as SQL `NULL` does.
fn key(value: &Value) -> &str {
    value.as_str().unwrap_or("")
}

/// Whether a filter value matches an item field (a string, or an array holding it).
fn holds(field: &Value, value: &str) -> bool {
    match field {
        Value::Array(values) => values.iter().any(|v| v == value),
        other => other == value,
    }
}

fn check_list_convention(fx: &Fixture, endpoint: &Endpoint) {
    let path = endpoint.path;
    let name = endpoint.name;
    let created = (endpoint.fill)(fx);

    // Everything, in the default order: ascending by name.
    let reply = fx.get(endpoint, "limit=1000");
    let (all, total) = page(endpoint, &reply, 0, 1000);
    let full = names(endpoint, &all);
    assert_eq!(total, full.len() as u64, "{path}: total");
    for item in &created {
        assert!(full.contains(item), "{path}: {item} missing from {full:?}");
    }
    let mut sorted = full.clone();
    sorted.sort();
    assert_eq!(full, sorted, "{path}: default order is ascending by {name}");
    let count = full.len();
    assert!(count > 10, "{path}: enough items to pass a default page");

    // 1. Defaults: offset 0, limit 10, total counts all matches.
    let (items, total) = page(endpoint, &fx.get(endpoint, ""), 0, 10);
    assert_eq!((names(endpoint, &items), total), (full[..10].to_vec(), count as u64), "{path}: default page");

    // 2. Paging.
    let (items, total) = page(endpoint, &fx.get(endpoint, "limit=2"), 0, 2);
    assert_eq!((names(endpoint, &items), total), (full[..2].to_vec(), count as u64), "{path}: limit=2");
    let (items, total) = page(endpoint, &fx.get(endpoint, "offset=2&limit=2"), 2, 2);
    assert_eq!((names(endpoint, &items), total), (full[2..4].to_vec(), count as u64), "{path}: offset=2");
    let (items, total) = page(endpoint, &fx.get(endpoint, &format!("offset={count}")), count as u64, 10);
    assert_eq!((items.len(), total), (0, count as u64), "{path}: past the end");
    let mut pages = Vec::new();
    for offset in (0..count).step_by(3) {
        let (items, total) = page(endpoint, &fx.get(endpoint, &format!("offset={offset}&limit=3")), offset as u64, 3);
        assert_eq!(total, count as u64, "{path}: total on every page");
        pages.extend(names(endpoint, &items));
    }
    assert_eq!(pages, full, "{path}: pages put together are the whole list");
    let half_known = format!("fields[]={name},nosuchfield");
    for (query, param) in [
        ("limit=0", "limit"),
        ("limit=1001", "limit"),
        ("limit=x", "limit"),
        ("offset=-1", "offset"),
        ("offset=x", "offset"),
        ("order[]=nosuchfield", "order[]"),
        ("order[]=-nosuchfield", "order[]"),
        ("fields[]=nosuchfield", "fields[]"),
        (half_known.as_str(), "fields[]"),
        ("nmae=x", "nmae"),
    ] {
        let reply = fx.get(endpoint, query);
        reply.assert_error(400, "invalid-param");
        assert_eq!(reply.body["param"], param, "{path}?{query}: {:?}", reply.body);
    }

    // 3. Order: `-name`, `[-name]`, `+name`, and stable ties.
    let reversed: Vec<String> = full.iter().rev().cloned().collect();
    assert_eq!(list_all(fx, endpoint, &format!("order[]=-{name}")), reversed, "{path}: order[]=-{name}");
    assert_eq!(list_all(fx, endpoint, &format!("order[]=[-{name}]")), reversed, "{path}: order[]=[-{name}]");
    assert_eq!(list_all(fx, endpoint, &format!("order[]=%2B{name}")), full, "{path}: order[]=+{name}");
    assert_eq!(list_all(fx, endpoint, &format!("order[]=[%2B{name}]")), full, "{path}: order[]=[+{name}]");
    assert_eq!(list_all(fx, endpoint, &format!("order[]={name}")), full, "{path}: order[]={name}");

    let tie = endpoint.tie;
    let values: BTreeSet<&str> = all.iter().map(|item| key(&item[tie])).collect();
    assert!(values.len() < count, "{path}: the items share values of `{tie}`, so ties are tested");
    // `all` is ordered by name, so a stable sort by the tie field breaks ties by name. Ties go
    // in the direction of the last field given: a descending order is the ascending one
    // reversed, unless the name is asked for ascending.
    let mut ascending = all.clone();
    ascending.sort_by(|a, b| key(&a[tie]).cmp(key(&b[tie])));
    let mut names_ascending = all.clone();
    names_ascending.sort_by(|a, b| key(&b[tie]).cmp(key(&a[tie])));
    let both_descending: Vec<Value> = ascending.iter().rev().cloned().collect();
    for (query, expected) in [
        (format!("order[]={tie}"), &ascending),
        (format!("order[]=-{tie}"), &both_descending),
        (format!("order[]=[-{tie}]"), &both_descending),
        (format!("order[]=-{tie}&order[]=-{name}"), &both_descending),
        (format!("order[]=-{tie}&order[]={name}"), &names_ascending),
    ] {
        let expected = names(endpoint, expected);
        let first = list_all(fx, endpoint, &query);
        assert_eq!(first, expected, "{path}?{query}: ties ordered by {name}");
        assert_eq!(list_all(fx, endpoint, &query), first, "{path}?{query}: same order on every call");
        let mut pages = Vec::new();
        for offset in (0..count).step_by(3) {
            let reply = fx.get(endpoint, &format!("{query}&offset={offset}&limit=3"));
            pages.extend(names(endpoint, &page(endpoint, &reply, offset as u64, 3).0));
        }
        assert_eq!(pages, expected, "{path}?{query}: pages agree with the whole list");
    }

    // 4. `fields[]`, repeated or comma-separated.
    let [a, b] = endpoint.fields;
    let chosen: BTreeSet<&str> = [a, b].into();
    for query in [format!("fields[]={a}&fields[]={b}"), format!("fields[]={a},{b}")] {
        let reply = fx.get(endpoint, &format!("{query}&limit=1000"));
        let (items, total) = page(endpoint, &reply, 0, 1000);
        assert_eq!((items.len(), total), (count, count as u64), "{path}?{query}");
        for (item, full_item) in items.iter().zip(&all) {
            let keys: BTreeSet<&str> = item.as_object().unwrap().keys().map(String::as_str).collect();
            assert_eq!(keys, chosen, "{path}?{query}: {item}");
            assert_eq!((&item[a], &item[b]), (&full_item[a], &full_item[b]), "{path}?{query}");
        }
    }

    // 5. Filters: a partial name filter where `%` and `_` match themselves, and exact filters.
    let (param, field) = endpoint.name_filter;
    for (needle, encoded, matches) in [("alpha", "alpha", 2), ("x_y", "x_y", 1), ("_", "_", 10), ("x%y", "x%25y", 0)] {
        let expected: Vec<String> = all
            .iter()
            .filter(|item| key(&item[field]).contains(needle))
            .map(|item| item[name].as_str().unwrap().to_string())
            .collect();
        assert_eq!(expected.len(), matches, "{path}: items whose {field} contains {needle}");
        assert_eq!(list_all(fx, endpoint, &format!("{param}={encoded}")), expected, "{path}?{param}={encoded}");
    }
    let (items, total) = page(endpoint, &fx.get(endpoint, &format!("{param}=alpha&limit=1")), 0, 1);
    assert_eq!((items.len(), total), (1, 2), "{path}: a filtered total counts all matches, not the page");
    for &(param, field) in endpoint.filters {
        let values: BTreeSet<String> = all
            .iter()
            .flat_map(|item| match &item[field] {
                Value::Array(values) => values.iter().map(|v| key(v).to_string()).collect(),
                other => vec![key(other).to_string()],
            })
            .collect();
        for value in values {
            let expected: Vec<String> = all
                .iter()
                .filter(|item| holds(&item[field], &value))
                .map(|item| item[name].as_str().unwrap().to_string())
                .collect();
            assert_eq!(list_all(fx, endpoint, &format!("{param}={value}")), expected, "{path}?{param}={value}");
        }
    }
}

fn run(path: &str) {
    let endpoint = ENDPOINTS.iter().find(|e| e.path == path).expect("a row in ENDPOINTS");
    let fx = Fixture::start();
    check_list_convention(&fx, endpoint);
}

#[test]
fn users_follow_the_list_convention() {
    run("/be/v1/users");
}

#[test]
fn roles_follow_the_list_convention() {
    run("/be/v1/roles");
}

#[test]
fn api_keys_follow_the_list_convention() {
    run("/be/v1/apikeys");
}

#[test]
fn deployments_follow_the_list_convention() {
    run("/be/v1/deployments");
}

#[test]
fn apps_follow_the_list_convention() {
    run("/be/v1/apps");
}

#[test]
fn subscriptions_follow_the_list_convention() {
    run("/be/v1/subscriptions");
}

#[test]
fn tasks_follow_the_list_convention() {
    run("/be/v1/tasks");
}

#[test]
fn sessions_follow_the_list_convention() {
    run("/be/v1/sessions");
}

#[test]
fn the_audit_trail_follows_the_list_convention() {
    run("/be/v1/audit");
}

#[test]
fn the_box_wide_audit_trail_follows_the_list_convention() {
    run("/adm/v1/audit");
}

#[test]
fn orgs_follow_the_list_convention() {
    run("/adm/v1/orgs");
}

/// Every GET route without a path parameter that refuses `limit=0` is a list, and has its row (and
/// its own test above).
#[test]
fn every_list_endpoint_has_a_row() {
    let fx = Fixture::start();
    let mut lists = BTreeSet::new();
    for route in routes() {
        if route.method.as_str() != "GET" || route.path.contains('{') || !matches!(route.auth, Auth::Admin | Auth::User)
        {
            continue;
        }
        let reply = fx.call("GET", &format!("{}?limit=0", route.path), None);
        if reply.status == 400 && reply.body["param"] == "limit" {
            lists.insert(route.path);
        }
    }
    let rows: BTreeSet<&str> = ENDPOINTS.iter().map(|e| e.path).collect();
    assert_eq!(lists, rows, "list endpoints vs rows in ENDPOINTS");
}

/// A full page's `total` of tasks comes from counters kept by triggers rather than a `count(*)`:
/// they must follow a status change (an expired upload) and another organization's tasks must
/// not leak into them. (Retention: builds_pipeline's `finished_tasks_are_removed_after_…`.)
#[test]
fn a_full_page_of_tasks_totals_every_match_of_its_type_status_app_name_and_creation_window() {
    let fx = Fixture::start();
    let mut waiting = Vec::new();
    for name in ["one", "two", "three"] {
        fx.create("/be/v1/apps", json!({"name": name, "label": name}));
        let started = fx.create("/be/v1/builds", json!({"appName": name}));
        waiting.push(started["task"]["name"].as_str().unwrap().to_string());
    }
    let other = fx.server.org_admin("other");
    other.call("POST", "/be/v1/apps", Some(json!({"name": "theirs", "label": "theirs"}))).assert_ok();
    other.call("POST", "/be/v1/builds", Some(json!({"appName": "theirs"}))).assert_ok();
    fx.call("PATCH", "/be/v1/tasks", Some(json!({"name": waiting[0], "expire": true}))).assert_ok();

    let tasks = ENDPOINTS.iter().find(|e| e.path == "/be/v1/tasks").expect("the tasks row");
    for (query, total) in [
        ("limit=1", 3),
        ("type=dltar&limit=1", 3),
        ("status=submitted&limit=1", 2),
        ("status=expired&limit=1", 1),
        ("type=dltar&status=submitted&limit=1", 2),
        ("type=mkraw&limit=1", 0),
        ("offset=5&status=submitted", 2),
        // A name part, any case, from the per-app counters.
        ("appName=O&limit=1", 2),
        ("appName=t&limit=1", 2),
        ("appName=one&status=expired&limit=1", 1),
        ("appName=thr&type=dltar&status=submitted&limit=1", 1),
        ("appName=&limit=1", 3),
        ("appName=heir&offset=1", 0),
        // Creation windows far around now: whole years, months, days and hours from the counters.
        ("createdAfter=2000-01-01T00:00:00Z&limit=1", 3),
        ("createdBefore=2999-12-31T23:59:59.999Z&status=submitted&limit=1", 2),
        ("createdAfter=2000-01-01T00:00:00Z&createdBefore=2999-01-01T00:00:00Z&appName=E&limit=1", 2),
        ("createdAfter=2999-01-01T00:00:00Z&offset=1", 0),
    ] {
        let reply = fx.get(tasks, query);
        assert_eq!(reply.assert_ok()["total"], total, "tasks?{query}: {:?}", reply.body);
    }
    // Windows with an edge at a task's own creation (exclusive) and in its hour: the boundary
    // hour is counted task by task. What the whole list holds is the truth.
    let all = fx.get(tasks, "order[]=created&limit=1000");
    let created: Vec<String> = all.assert_ok()["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["created"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(created.len(), 3);
    for edge in &created {
        let after = created.iter().filter(|c| *c > edge).count();
        let before = created.iter().filter(|c| *c < edge).count();
        for (query, total) in [
            (format!("createdAfter={edge}&offset=3"), after),
            (format!("createdBefore={edge}&offset=3"), before),
            (format!("createdAfter={edge}&createdBefore=2999-01-01T00:00:00Z&offset=3"), after),
        ] {
            let reply = fx.get(tasks, &query);
            assert_eq!(reply.assert_ok()["total"], total, "tasks?{query}: {:?}", reply.body);
        }
    }
}
