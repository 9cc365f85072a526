//! Organizations, users, roles and API keys (API.md §3–§6), including the rules against
//! privilege escalation, over HTTP against the real binary.

mod common;

use std::path::Path;
use std::time::Duration;

use common::{assert_param, assert_timestamp, eventually, send, Machine, Reply, Server, Session, MAXIMA, PASSWORD};
use serde_json::{json, Value};

fn maxima() -> Value {
    Value::Object(MAXIMA.iter().map(|(name, bits)| (name.to_string(), json!(bits))).collect())
}

/// The admin API with one token for the whole test (minting one per request spawns the CLI).
struct Adm<'a> {
    server: &'a Server,
    token: String,
}

impl<'a> Adm<'a> {
    fn new(server: &'a Server) -> Self {
        Adm { server, token: server.admin_token() }
    }

    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Reply {
        send(method, &self.server.url(path), &[("x-rockit-admin-token", self.token.as_str())], body)
    }

    fn org_exists(&self, name: &str) -> bool {
        let reply = self.call("GET", &format!("/adm/v1/orgs?name={name}&limit=1000"), None);
        reply.assert_ok()["orgs"].as_array().unwrap().iter().any(|o| o["name"] == name)
    }
}

/// The direct login (`username` + `password` + `orgName`), whatever it answers.
fn login_reply(server: &Server, org: &str, username: &str, password: &str) -> Reply {
    send(
        "POST",
        &server.url("/be/v1/login"),
        &[],
        Some(json!({"username": username, "password": password, "orgName": org})),
    )
}

/// A user holding one new role with exactly these permissions (created by `admin`).
fn user_with(server: &Server, admin: &Session, username: &str, permissions: Value) -> Session {
    let role = admin.create_role(&format!("{username}_role"), permissions);
    admin.create_user(server, username, &[&role])
}

/// A person account body without a password.
fn person(username: &str) -> Value {
    json!({"username": username, "email": format!("{username}@example.com"), "firstname": "Pat", "surname": "Doe", "roles": []})
}

fn user_details(session: &Session, username: &str) -> Value {
    session.call("GET", &format!("/be/v1/users/{username}"), None).assert_ok()["user"].clone()
}

fn role_details(session: &Session, name: &str) -> Value {
    session.call("GET", &format!("/be/v1/roles/{name}"), None).assert_ok()["role"].clone()
}

/// The status of a harmless request every account may make: reading its own profile.
fn probe(session: &Session) -> Reply {
    session.call("GET", &format!("/be/v1/users/{}", session.username), None)
}

fn probe_key(machine: &Machine) -> Reply {
    machine.call("GET", &format!("/be/v1/users/{}", machine.username), None)
}

/// The same machine with another of its keys.
fn with_key(machine: &Machine, body: &Value) -> Machine {
    Machine {
        key: body["apiKey"].as_str().unwrap().to_string(),
        key_id: body["apiKeyId"].as_str().unwrap().to_string(),
        ..machine.clone()
    }
}

fn names(list: &Value, field: &str) -> Vec<String> {
    list.as_array().unwrap().iter().map(|item| item[field].as_str().unwrap().to_string()).collect()
}

fn usernames(session: &Session, query: &str) -> (Vec<String>, i64) {
    let reply = session.call("GET", &format!("/be/v1/users?{query}"), None);
    let body = reply.assert_ok();
    (names(&body["users"], "username"), body["total"].as_i64().unwrap())
}

fn write_file(path: &Path) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, b"published").unwrap();
}

fn count_rows(db: &rusqlite::Connection, table: &str, org_id: i64) -> i64 {
    db.query_row(&format!("SELECT count(*) FROM {table} WHERE org_id = ?1"), [org_id], |r| r.get(0)).unwrap()
}

// ---------------------------------------------------------------------------------------------
// A. Organizations
// ---------------------------------------------------------------------------------------------

#[test]
fn creating_an_org_answers_the_org_and_an_admin_whose_initial_password_logs_in() {
    let server = Server::start();
    let adm = Adm::new(&server);
    let reply = adm.call("POST", "/adm/v1/orgs", Some(json!({"name": "acme", "label": "ACME Games"})));
    let body = reply.assert_ok();
    let org = &body["org"];
    assert_eq!((&org["name"], &org["label"], &org["users"]), (&json!("acme"), &json!("ACME Games"), &json!(1)));
    assert!(org["publicKey"].is_null(), "{org}");
    assert_timestamp(&org["created"]);
    assert_timestamp(&org["updated"]);
    assert_eq!(body["admin"]["username"], "admin");
    let password = body["admin"]["initialPassword"].as_str().unwrap();
    assert!(password.len() >= 12, "initial password too short: {password}");
    let admin = server.login("acme", "admin", password);
    assert_eq!(user_details(&admin, "admin")["roles"], json!(["Administrators"]));
}

#[test]
fn a_new_org_has_a_builtin_administrators_role_with_every_maximum() {
    let server = Server::start();
    let admin = server.org_admin("acme");
    let role = role_details(&admin, "Administrators");
    assert_eq!(role["builtin"], true);
    assert_eq!(role["permissions"], maxima());
    assert_eq!(role["users"], 1);
}

#[test]
fn the_first_administrator_can_have_a_custom_username_and_profile() {
    let server = Server::start();
    let adm = Adm::new(&server);
    let admin = json!({"username": "boss", "email": "boss@acme.example", "firstname": "Big", "surname": "Boss"});
    let reply = adm.call("POST", "/adm/v1/orgs", Some(json!({"name": "acme", "admin": admin})));
    let body = reply.assert_ok();
    assert_eq!(body["admin"]["username"], "boss");
    let boss = server.login("acme", "boss", body["admin"]["initialPassword"].as_str().unwrap());
    let details = user_details(&boss, "boss");
    assert_eq!(
        (&details["email"], &details["firstname"], &details["surname"]),
        (&admin["email"], &admin["firstname"], &admin["surname"])
    );
    assert_eq!(details["roles"], json!(["Administrators"]));
    boss.call("GET", "/be/v1/users/admin", None).assert_error(404, "not-found");
}

#[test]
fn a_duplicate_org_name_is_already_exists() {
    let server = Server::start();
    server.create_org("acme");
    let adm = Adm::new(&server);
    adm.call("POST", "/adm/v1/orgs", Some(json!({"name": "acme"}))).assert_error(409, "already-exists");
}

#[test]
fn a_malformed_or_missing_org_name_is_refused_and_the_bounds_are_accepted() {
    let server = Server::start();
    let adm = Adm::new(&server);
    for bad in ["a", "has space", "dash-name", &"x".repeat(51)] {
        let reply = adm.call("POST", "/adm/v1/orgs", Some(json!({"name": bad, "label": "Bad"})));
        assert_param(&reply, 400, "invalid-param", "name");
    }
    assert_param(&adm.call("POST", "/adm/v1/orgs", Some(json!({"label": "No name"}))), 400, "missing-param", "name");
    for good in ["ab", &"y".repeat(50), "Under_Score_9"] {
        adm.call("POST", "/adm/v1/orgs", Some(json!({"name": good}))).assert_ok();
    }
    let listed = adm.call("GET", "/adm/v1/orgs", None);
    assert_eq!(listed.assert_ok()["total"], 3);
}

#[test]
fn a_2048_bit_public_key_is_kept_and_a_weak_or_garbage_key_is_refused() {
    let server = Server::start();
    let adm = Adm::new(&server);
    let strong = std::fs::read_to_string("tests/fixtures/rsa2048.pub.pem").unwrap();
    let weak = std::fs::read_to_string("tests/fixtures/rsa1024.pub.pem").unwrap();
    let reply = adm.call("POST", "/adm/v1/orgs", Some(json!({"name": "keyed", "publicKey": strong})));
    let stored = reply.assert_ok()["org"]["publicKey"].as_str().unwrap().to_string();
    assert_eq!(stored.trim(), strong.trim());
    let garbage = "-----BEGIN PUBLIC KEY-----\nbm90IGEga2V5\n-----END PUBLIC KEY-----\n";
    for (name, pem) in [("weak", weak.as_str()), ("garbage", garbage), ("words", "hello")] {
        let reply = adm.call("POST", "/adm/v1/orgs", Some(json!({"name": name, "publicKey": pem})));
        assert_param(&reply, 400, "invalid-param", "publicKey");
        assert!(!adm.org_exists(name), "{name} was created anyway");
    }
}

#[test]
fn the_admin_org_endpoints_need_the_admin_token() {
    let server = Server::start();
    server.create_org("acme");
    for (method, path) in [("POST", "/adm/v1/orgs"), ("GET", "/adm/v1/orgs"), ("DELETE", "/adm/v1/orgs/acme")] {
        let body = (method == "POST").then(|| json!({"name": "sneaky"}));
        send(method, &server.url(path), &[], body).assert_error(401, "token-missing");
    }
    let adm = Adm::new(&server);
    assert!(adm.org_exists("acme") && !adm.org_exists("sneaky"));
}

#[test]
fn the_org_list_counts_users_and_supports_filters_paging_order_and_fields() {
    let server = Server::start();
    let adm = Adm::new(&server);
    server.create_org("alpha");
    server.create_org("alphabet");
    let beta = server.org_admin("beta");
    beta.create_user(&server, "b_one", &[]);
    beta.create_machine("b_bot", &[]);

    let body = adm.call("GET", "/adm/v1/orgs", None).assert_ok().clone();
    assert_eq!(body["total"], 3);
    let users: Vec<(String, i64)> = body["orgs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| (o["name"].as_str().unwrap().to_string(), o["users"].as_i64().unwrap()))
        .collect();
    assert_eq!(users, [("alpha".into(), 1), ("alphabet".into(), 1), ("beta".into(), 3)]);

    let body = adm.call("GET", "/adm/v1/orgs?name=lph", None).assert_ok().clone();
    assert_eq!(
        (names(&body["orgs"], "name"), &body["total"]),
        (vec!["alpha".to_string(), "alphabet".into()], &json!(2))
    );

    let body = adm.call("GET", "/adm/v1/orgs?order[]=-name&limit=1&offset=1", None).assert_ok().clone();
    assert_eq!(names(&body["orgs"], "name"), ["alphabet"]);
    assert_eq!((&body["total"], &body["limit"], &body["offset"]), (&json!(3), &json!(1), &json!(1)));

    let body = adm.call("GET", "/adm/v1/orgs?order[]=[-name]", None).assert_ok().clone();
    assert_eq!(names(&body["orgs"], "name"), ["beta", "alphabet", "alpha"]);

    let body = adm.call("GET", "/adm/v1/orgs?fields[]=name", None).assert_ok().clone();
    for org in body["orgs"].as_array().unwrap() {
        assert_eq!(org.as_object().unwrap().keys().collect::<Vec<_>>(), ["name"], "{org}");
    }
}

#[test]
fn deleting_an_org_ends_its_sessions_and_keys_at_once_and_removes_its_rows() {
    let server = Server::start();
    let adm = Adm::new(&server);
    let admin = server.org_admin("doomed");
    let member = admin.create_user(&server, "member", &[]);
    let bot = admin.create_machine("bot", &[]);
    let keeper = server.org_admin("keeper");
    let keeper_bot = keeper.create_machine("bot", &[]);
    // Every credential works before.
    for reply in [probe(&admin), probe(&member), probe_key(&bot), probe(&keeper), probe_key(&keeper_bot)] {
        reply.assert_ok();
    }
    let db = rusqlite::Connection::open(server.database()).unwrap();
    let org_id: i64 = db.query_row("SELECT id FROM orgs WHERE name = 'doomed'", [], |r| r.get(0)).unwrap();
    let keeper_id: i64 = db.query_row("SELECT id FROM orgs WHERE name = 'keeper'", [], |r| r.get(0)).unwrap();
    for table in ["users", "roles", "sessions", "api_keys"] {
        assert!(count_rows(&db, table, org_id) > 0, "{table} has no rows before the deletion");
    }

    let reply = adm.call("DELETE", "/adm/v1/orgs/doomed", None);
    assert!(reply.assert_ok()["task"].is_null(), "no prune was asked for: {:?}", reply.body);

    probe(&admin).assert_error(401, "token-revoked");
    probe(&member).assert_error(401, "token-revoked");
    probe_key(&bot).assert_error(401, "invalid-api-key");
    let bearer = format!("Bearer {}", member.refresh);
    let refresh = send("POST", &server.url("/be/v1/refresh"), &[("Authorization", bearer.as_str())], Some(json!({})));
    refresh.assert_error(401, "token-revoked");
    for table in ["users", "roles", "sessions", "api_keys"] {
        assert_eq!(count_rows(&db, table, org_id), 0, "{table} still holds rows of the deleted org");
        assert!(count_rows(&db, table, keeper_id) > 0, "{table} lost the other org's rows");
    }
    assert!(!adm.org_exists("doomed"));
    // The other organization is untouched.
    probe(&keeper).assert_ok();
    probe_key(&keeper_bot).assert_ok();
}

#[test]
fn deleting_an_unknown_org_is_not_found_and_a_bad_prune_flag_is_invalid() {
    let server = Server::start();
    let adm = Adm::new(&server);
    let reply = adm.call("DELETE", "/adm/v1/orgs/nobody_here", None);
    reply.assert_error(404, "not-found");
    assert!(reply.body["resource"].is_string(), "{:?}", reply.body);
    let admin = server.org_admin("acme");
    assert_param(&adm.call("DELETE", "/adm/v1/orgs/acme?prune=maybe", None), 400, "invalid-param", "prune");
    assert!(adm.org_exists("acme"));
    probe(&admin).assert_ok();
}

#[test]
fn deleting_with_prune_removes_the_orgs_published_files_in_the_background() {
    let server = Server::start();
    let adm = Adm::new(&server);
    server.create_org("pruned");
    server.create_org("other");
    let depot = server.state_dir.join("depot");
    write_file(&depot.join("dxf/pruned/game/0001/game_dxf/data.bin"));
    write_file(&depot.join("pat/pruned/game/0002/0001/patch.bin"));
    let survivor = depot.join("dxf/other/game/0001/game_dxf/data.bin");
    write_file(&survivor);

    let reply = adm.call("DELETE", "/adm/v1/orgs/pruned?prune=true", None);
    let task = &reply.assert_ok()["task"];
    assert_eq!(task["type"], "prune", "{task}");
    assert!(task["name"].is_string(), "{task}");

    eventually(Duration::from_secs(30), || {
        (!depot.join("dxf/pruned").exists() && !depot.join("pat/pruned").exists()).then_some(())
    });
    assert!(survivor.is_file(), "another org's files were pruned");
    assert!(!adm.org_exists("pruned"));
}

#[test]
fn an_administrators_member_can_create_an_org_and_other_members_cannot() {
    let server = Server::start();
    let adm = Adm::new(&server);
    let admin = server.org_admin("acme");
    let reply = admin.call("POST", "/be/v1/orgs", Some(json!({"name": "sister", "label": "Sister Org"})));
    let body = reply.assert_ok();
    assert_eq!(body["org"]["name"], "sister");
    server.login("sister", "admin", body["admin"]["initialPassword"].as_str().unwrap());

    let manager = user_with(&server, &admin, "manager", json!({"beUsers": 15, "roles": 15}));
    let reply = manager.call("POST", "/be/v1/orgs", Some(json!({"name": "rogue"})));
    reply.assert_error(403, "permission-denied");
    assert!(!adm.org_exists("rogue"));
}

#[test]
fn an_administrators_member_can_delete_its_own_org_but_no_other() {
    let server = Server::start();
    let adm = Adm::new(&server);
    let admin = server.org_admin("home");
    let away = server.org_admin("away");

    admin.call("DELETE", "/be/v1/orgs/away", None).assert_error(404, "not-found");
    assert!(adm.org_exists("away"));
    probe(&away).assert_ok();

    let manager = user_with(&server, &admin, "manager", json!({"beUsers": 15, "roles": 15}));
    manager.call("DELETE", "/be/v1/orgs/home", None).assert_error(403, "permission-denied");
    assert!(adm.org_exists("home"));

    admin.call("DELETE", "/be/v1/orgs/home", None).assert_ok();
    assert!(!adm.org_exists("home"));
    probe(&admin).assert_error(401, "token-revoked");
    probe(&away).assert_ok();
}

// ---------------------------------------------------------------------------------------------
// B. Users
// ---------------------------------------------------------------------------------------------

#[test]
fn a_person_without_a_password_gets_an_initial_password_that_logs_in() {
    let server = Server::start();
    let admin = server.org_admin("acme");
    let reply = admin.call("POST", "/be/v1/users", Some(person("alice")));
    let body = reply.assert_ok();
    assert_eq!((&body["user"]["username"], &body["user"]["type"]), (&json!("alice"), &json!("user")));
    let password = body["initialPassword"].as_str().unwrap();
    assert!(password.len() >= 12);
    assert!(body["apiKey"].is_null());
    server.login("acme", "alice", password);
}

#[test]
fn a_person_with_a_password_gets_no_initial_password() {
    let server = Server::start();
    let admin = server.org_admin("acme");
    let mut body = person("alice");
    body["password"] = json!(PASSWORD);
    let reply = admin.call("POST", "/be/v1/users", Some(body));
    assert!(reply.assert_ok()["initialPassword"].is_null(), "{:?}", reply.body);
    server.login("acme", "alice", PASSWORD);
}

#[test]
fn a_machine_gets_an_api_key_that_works() {
    let server = Server::start();
    let admin = server.org_admin("acme");
    for body in [
        json!({"username": "bot", "type": "machine", "label": "Build bot"}),
        json!({"username": "bot2", "label": "Implicit machine", "roles": []}),
    ] {
        let reply = admin.call("POST", "/be/v1/users", Some(body.clone()));
        let answer = reply.assert_ok();
        assert_eq!((&answer["user"]["type"], &answer["user"]["label"]), (&json!("machine"), &body["label"]));
        assert!(answer["apiKey"].as_str().unwrap().starts_with("rk_"), "{answer}");
        assert!(answer["apiKeyId"].is_string(), "{answer}");
        assert!(answer["initialPassword"].is_null(), "{answer}");
        let machine = Machine {
            base: server.base.clone(),
            org: "acme".into(),
            username: body["username"].as_str().unwrap().into(),
            key: answer["apiKey"].as_str().unwrap().into(),
            key_id: answer["apiKeyId"].as_str().unwrap().into(),
        };
        assert_eq!(probe_key(&machine).assert_ok()["user"]["username"], body["username"]);
    }
}

#[test]
fn invalid_user_fields_are_refused_naming_the_parameter() {
    let server = Server::start();
    let admin = server.org_admin("acme");
    let with = |field: &str, value: Value| {
        let mut body = person("alice");
        body[field] = value;
        admin.call("POST", "/be/v1/users", Some(body))
    };
    assert_param(&with("password", json!("elevenchars")), 400, "invalid-param", "password");
    assert_param(&with("email", json!("not-an-email")), 400, "invalid-param", "email");
    // A well-formed name of a role that does not exist conflicts with the organization's state.
    assert_param(&with("roles", json!(["Ghosts"])), 409, "conflict", "roles");
    let mut no_email = person("alice");
    no_email.as_object_mut().unwrap().remove("email");
    assert_param(&admin.call("POST", "/be/v1/users", Some(no_email)), 400, "missing-param", "email");
    admin.call("POST", "/be/v1/users", Some(person("admin"))).assert_error(409, "already-exists");
    // Nothing was created by the refused requests.
    assert_eq!(usernames(&admin, "").0, ["admin"]);
}

#[test]
fn the_user_list_filters_by_username_type_and_role_and_pages() {
    let server = Server::start();
    let admin = server.org_admin("acme");
    let viewers = admin.create_role("Viewers", json!({"apps": 2}));
    admin.create_user(&server, "alice", &[]);
    admin.create_user(&server, "alicia", &[&viewers]);
    admin.create_user(&server, "bob", &[]);
    admin.create_machine("bot_a", &[]);
    admin.create_machine("bot_b", &[&viewers]);

    let by_name = "order[]=username";
    let listed = |query: &str| usernames(&admin, &format!("{by_name}&{query}"));
    let expect = |names: &[&str]| (names.iter().map(|n| n.to_string()).collect::<Vec<_>>(), names.len() as i64);
    assert_eq!(listed(""), expect(&["admin", "alice", "alicia", "bob", "bot_a", "bot_b"]));
    assert_eq!(listed("username=lic"), expect(&["alice", "alicia"]));
    // `_` is a name character, not a wildcard.
    assert_eq!(listed("username=_"), expect(&["bot_a", "bot_b"]));
    assert_eq!(listed("type=machine"), expect(&["bot_a", "bot_b"]));
    assert_eq!(listed("type=user"), expect(&["admin", "alice", "alicia", "bob"]));
    assert_eq!(listed("role=Viewers"), expect(&["alicia", "bot_b"]));
    assert_eq!(listed("role=Administrators"), expect(&["admin"]));
    assert_eq!(listed("type=machine&role=Viewers"), expect(&["bot_b"]));

    let body = admin.call("GET", &format!("/be/v1/users?{by_name}&limit=2&offset=1"), None).assert_ok().clone();
    assert_eq!(names(&body["users"], "username"), ["alice", "alicia"]);
    assert_eq!((&body["total"], &body["limit"], &body["offset"]), (&json!(6), &json!(2), &json!(1)));
}

#[test]
fn user_details_have_every_field_and_no_answer_reveals_a_hash_or_a_key() {
    let server = Server::start();
    let admin = server.org_admin("acme");
    let viewers = admin.create_role("Viewers", json!({"apps": 2}));
    let mut body = person("carol");
    body["title"] = json!("Dr.");
    body["roles"] = json!([viewers]);
    body["password"] = json!(PASSWORD);
    admin.call("POST", "/be/v1/users", Some(body)).assert_ok();
    let bot = admin.create_machine("bot", &[]);

    let details = user_details(&admin, "carol");
    for key in [
        "username",
        "type",
        "email",
        "firstname",
        "surname",
        "title",
        "label",
        "roles",
        "created",
        "updated",
        "lastLogin",
    ] {
        assert!(details.get(key).is_some(), "details lack `{key}`: {details}");
    }
    assert_eq!(
        (&details["title"], &details["roles"], &details["type"]),
        (&json!("Dr."), &json!(["Viewers"]), &json!("user"))
    );
    assert!(details["lastLogin"].is_null(), "{details}");
    let login = login_reply(&server, "acme", "carol", PASSWORD);
    login.assert_ok();
    assert_timestamp(&user_details(&admin, "carol")["lastLogin"]);

    // The stored hash is PBKDF2, so its absence from the answers below means something.
    let db = rusqlite::Connection::open(server.database()).unwrap();
    let hash: String =
        db.query_row("SELECT password_hash FROM users WHERE username = 'carol'", [], |r| r.get(0)).unwrap();
    assert!(hash.to_lowercase().contains("pbkdf2"), "{hash}");

    let answers = [
        login.body.clone(),
        admin.call("GET", "/be/v1/users?limit=1000", None).body,
        admin.call("GET", "/be/v1/users/carol", None).body,
        admin.call("GET", "/be/v1/users/bot", None).body,
        admin.call("GET", "/be/v1/apikeys", None).body,
        admin.call("PATCH", "/be/v1/users", Some(json!({"username": "carol", "surname": "Changed"}))).body,
        admin.call("PATCH", "/be/v1/users", Some(json!({"username": "bot", "label": "Changed"}))).body,
        bot.call("GET", "/be/v1/users/bot", None).body,
        bot.call("GET", "/be/v1/apikeys", None).body,
    ];
    for answer in answers {
        assert_eq!(answer["status"], "success", "{answer}");
        let text = answer.to_string();
        assert!(!text.to_lowercase().contains("pbkdf2"), "a hash leaked: {text}");
        assert!(!text.contains(&bot.key), "the API key leaked: {text}");
    }
}

#[test]
fn any_user_reads_and_patches_its_own_profile_without_user_rights() {
    let server = Server::start();
    let admin = server.org_admin("acme");
    let dave = admin.create_user(&server, "dave", &[]);

    assert_eq!(user_details(&dave, "dave")["username"], "dave");
    let change = json!({"email": "dave@new.example", "firstname": "David", "surname": "Newman", "title": "Prof."});
    let reply = dave.call("PATCH", "/be/v1/users", Some(change.clone()));
    let user = &reply.assert_ok()["user"];
    assert_eq!(
        (&user["email"], &user["firstname"], &user["surname"], &user["title"]),
        (&change["email"], &change["firstname"], &change["surname"], &change["title"])
    );

    dave.call("PATCH", "/be/v1/users", Some(json!({"username": "dave", "title": null}))).assert_ok();
    let details = user_details(&dave, "dave");
    assert!(details["title"].is_null(), "null did not clear the title: {details}");
    assert_eq!(
        (&details["email"], &details["firstname"]),
        (&change["email"], &change["firstname"]),
        "untouched fields changed"
    );

    // Someone else's account is not its business.
    dave.call("GET", "/be/v1/users/admin", None).assert_error(403, "permission-denied");
    dave.call("GET", "/be/v1/users", None).assert_error(403, "permission-denied");
    let reply = dave.call("PATCH", "/be/v1/users", Some(json!({"username": "admin", "firstname": "Hacked"})));
    reply.assert_error(403, "permission-denied");
    assert_ne!(user_details(&admin, "admin")["firstname"], "Hacked");
}

#[test]
fn patching_another_users_profile_needs_user_update_rights() {
    let server = Server::start();
    let admin = server.org_admin("acme");
    admin.create_user(&server, "eve", &[]);
    let reader = user_with(&server, &admin, "reader", json!({"beUsers": 2}));
    let editor = user_with(&server, &admin, "editor", json!({"beUsers": 6}));

    let reply = reader.call("PATCH", "/be/v1/users", Some(json!({"username": "eve", "firstname": "Mallory"})));
    reply.assert_error(403, "permission-denied");
    assert_eq!(user_details(&admin, "eve")["firstname"], "Test");

    let reply = editor.call("PATCH", "/be/v1/users", Some(json!({"username": "eve", "firstname": "Evelyn"})));
    assert_eq!(reply.assert_ok()["user"]["firstname"], "Evelyn");
    assert_eq!(user_details(&admin, "eve")["firstname"], "Evelyn");
}

#[test]
fn nobody_deletes_its_own_account() {
    let server = Server::start();
    let admin = server.org_admin("acme");
    let manager = user_with(&server, &admin, "manager", json!({"beUsers": 15}));
    admin.call("DELETE", "/be/v1/users/admin", None).assert_error(409, "conflict");
    manager.call("DELETE", "/be/v1/users/manager", None).assert_error(409, "conflict");
    probe(&admin).assert_ok();
    probe(&manager).assert_ok();
}

#[test]
fn the_last_administrator_cannot_leave_administrators_or_be_deleted_but_one_of_two_can() {
    let server = Server::start();
    let admin = server.org_admin("acme");
    // Holds every right without being a member of Administrators.
    let superuser = user_with(&server, &admin, "superuser", maxima());

    admin.call("PATCH", "/be/v1/users", Some(json!({"username": "admin", "roles": []}))).assert_error(409, "conflict");
    let demote = json!({"username": "admin", "roles": ["superuser_role"]});
    superuser.call("PATCH", "/be/v1/users", Some(demote)).assert_error(409, "conflict");
    superuser.call("DELETE", "/be/v1/users/admin", None).assert_error(409, "conflict");
    assert_eq!(user_details(&admin, "admin")["roles"], json!(["Administrators"]));

    // With a second administrator, either can be removed from the role…
    let second = admin.create_user(&server, "second", &["Administrators"]);
    second.call("PATCH", "/be/v1/users", Some(json!({"username": "admin", "roles": []}))).assert_ok();
    assert_eq!(user_details(&second, "admin")["roles"], json!([]));
    assert_eq!(role_details(&second, "Administrators")["users"], 1);
    // …or deleted.
    second.create_user(&server, "third", &["Administrators"]);
    second.call("DELETE", "/be/v1/users/third", None).assert_ok();
    second.call("GET", "/be/v1/users/third", None).assert_error(404, "not-found");
    // `second` is the last one now.
    superuser.call("DELETE", "/be/v1/users/second", None).assert_error(409, "conflict");
    probe(&second).assert_ok();
}

#[test]
fn two_administrators_removing_each_other_at_once_leave_one() {
    let server = Server::start();
    for (org, delete) in [("race_delete", true), ("race_demote", false)] {
        let first = server.org_admin(org);
        let second = first.create_user(&server, "second", &["Administrators"]);
        // Each removes the other at the same moment; only one of them may get through.
        let act = |caller: &Session, target: &str| {
            let (caller, target) = (caller.clone(), target.to_string());
            std::thread::spawn(move || match delete {
                true => caller.call("DELETE", &format!("/be/v1/users/{target}"), None),
                false => caller.call("PATCH", "/be/v1/users", Some(json!({"username": target, "roles": []}))),
            })
        };
        let (a, b) = (act(&first, "second"), act(&second, "admin"));
        let replies = [a.join().unwrap(), b.join().unwrap()];
        let winners: Vec<&Session> =
            [&first, &second].into_iter().zip(&replies).filter(|(_, r)| r.status == 200).map(|(s, _)| s).collect();
        assert_eq!(winners.len(), 1, "{org}: {replies:?}");
        for reply in replies.iter().filter(|r| r.status != 200) {
            // The loser was refused as the last administrator (or was already gone).
            assert!(matches!(reply.error(), "conflict" | "token-revoked" | "permission-denied"), "{org}: {reply:?}");
        }
        assert_eq!(role_details(winners[0], "Administrators")["users"], 1, "{org}");
    }
}

#[test]
fn resetting_credentials_replaces_a_machines_key_and_a_persons_password() {
    let server = Server::start();
    let admin = server.org_admin("acme");
    let bot = admin.create_machine("bot", &[]);
    let reply = admin.call("PATCH", "/be/v1/users", Some(json!({"username": "bot", "resetCreds": true})));
    let body = reply.assert_ok();
    assert!(body["apiKey"].as_str().unwrap().starts_with("rk_"), "{body}");
    let renewed = with_key(&bot, body);
    assert_ne!(renewed.key, bot.key);
    probe_key(&bot).assert_error(401, "invalid-api-key");
    probe_key(&renewed).assert_ok();

    let erin = admin.create_user(&server, "erin", &[]);
    let reply = admin.call("PATCH", "/be/v1/users", Some(json!({"username": "erin", "resetCreds": true})));
    let password = reply.assert_ok()["initialPassword"].as_str().unwrap().to_string();
    probe(&erin).assert_error(401, "token-revoked");
    login_reply(&server, "acme", "erin", PASSWORD).assert_error(401, "invalid-credentials");
    server.login("acme", "erin", &password);
}

// ---------------------------------------------------------------------------------------------
// C. Roles
// ---------------------------------------------------------------------------------------------

#[test]
fn creating_a_role_answers_every_resource_and_builtin_false() {
    let server = Server::start();
    let admin = server.org_admin("acme");
    let body = json!({"name": "Builders", "label": "Build team", "permissions": {"apps": 15, "tasks": 2}});
    let reply = admin.call("POST", "/be/v1/roles", Some(body.clone()));
    let role = reply.assert_ok()["role"].clone();
    assert_eq!(
        (&role["name"], &role["label"], &role["builtin"], &role["users"]),
        (&json!("Builders"), &json!("Build team"), &json!(false), &json!(0))
    );
    let mut expected = maxima();
    for (name, _) in MAXIMA {
        expected[name] = json!(0);
    }
    expected["apps"] = json!(15);
    expected["tasks"] = json!(2);
    assert_eq!(role["permissions"], expected);
    assert_timestamp(&role["created"]);
    assert_timestamp(&role["updated"]);
    assert_eq!(role_details(&admin, "Builders"), role);
    admin.call("POST", "/be/v1/roles", Some(body)).assert_error(409, "already-exists");
}

#[test]
fn permission_bits_outside_the_allowed_set_unknown_resources_and_non_integers_are_invalid() {
    let server = Server::start();
    let admin = server.org_admin("acme");
    admin.create_role("Existing", json!({"apps": 2}));
    let bad = [
        json!({"apps": 16}),
        json!({"consumption": 1}),
        json!({"trainings": 1}),
        json!({"tasks": 32}),
        json!({"nosuch": 1}),
        json!({"apps": "15"}),
        json!({"apps": 1.5}),
        json!({"apps": -1}),
        json!({"apps": true}),
        json!([15]),
    ];
    for (i, permissions) in bad.into_iter().enumerate() {
        let reply = admin.call(
            "POST",
            "/be/v1/roles",
            Some(json!({"name": format!("bad_{i}"), "permissions": permissions.clone()})),
        );
        assert_param(&reply, 400, "invalid-param", "permissions");
        let reply = admin.call("PATCH", "/be/v1/roles", Some(json!({"name": "Existing", "permissions": permissions})));
        assert_param(&reply, 400, "invalid-param", "permissions");
    }
    assert_param(
        &admin.call("POST", "/be/v1/roles", Some(json!({"name": "NoPerms"}))),
        400,
        "missing-param",
        "permissions",
    );
    // The maxima themselves are fine; nothing else was created or changed.
    admin.create_role("Edges", json!({"tasks": 31, "trainings": 6, "consumption": 2}));
    let listed = admin.call("GET", "/be/v1/roles?order[]=name", None);
    assert_eq!(names(&listed.assert_ok()["roles"], "name"), ["Administrators", "Edges", "Existing"]);
    assert_eq!(role_details(&admin, "Existing")["permissions"]["apps"], 2);
}

#[test]
fn a_role_can_be_patched_and_its_holders_rights_change_at_once() {
    let server = Server::start();
    let admin = server.org_admin("acme");
    admin.create_role("Ops", json!({"roles": 2}));
    let holder = admin.create_user(&server, "holder", &["Ops"]);
    holder.call("GET", "/be/v1/roles", None).assert_ok();

    let reply = admin.call("PATCH", "/be/v1/roles", Some(json!({"name": "Ops", "label": "Operations"})));
    let role = &reply.assert_ok()["role"];
    assert_eq!((&role["label"], &role["permissions"]["roles"]), (&json!("Operations"), &json!(2)));

    let reply =
        admin.call("PATCH", "/be/v1/roles", Some(json!({"name": "Ops", "permissions": {"apps": 2, "tasks": 2}})));
    reply.assert_ok();
    let role = role_details(&admin, "Ops");
    assert_eq!(role["label"], "Operations", "a permissions patch changed the label");
    assert_eq!((&role["permissions"]["apps"], &role["permissions"]["tasks"]), (&json!(2), &json!(2)));
    assert_eq!(role["users"], 1);
    // The holder's access token predates the change; the change applies anyway.
    holder.call("GET", "/be/v1/roles", None).assert_error(403, "permission-denied");

    admin.call("PATCH", "/be/v1/roles", Some(json!({"name": "Ghosts", "label": "x"}))).assert_error(404, "not-found");
    admin.call("GET", "/be/v1/roles/Ghosts", None).assert_error(404, "not-found");
}

#[test]
fn a_role_held_by_a_user_is_in_use_and_an_unheld_one_is_deleted() {
    let server = Server::start();
    let admin = server.org_admin("acme");
    admin.create_role("Held", json!({"apps": 2}));
    admin.create_role("Spare", json!({"apps": 2}));
    admin.create_user(&server, "frank", &["Held"]);

    admin.call("DELETE", "/be/v1/roles/Held", None).assert_error(409, "in-use");
    assert_eq!(role_details(&admin, "Held")["users"], 1);

    admin.call("DELETE", "/be/v1/roles/Spare", None).assert_ok();
    admin.call("GET", "/be/v1/roles/Spare", None).assert_error(404, "not-found");
    admin.call("DELETE", "/be/v1/roles/Spare", None).assert_error(404, "not-found");

    admin.call("PATCH", "/be/v1/users", Some(json!({"username": "frank", "roles": []}))).assert_ok();
    admin.call("DELETE", "/be/v1/roles/Held", None).assert_ok();
}

#[test]
fn the_administrators_role_cannot_be_patched_or_deleted() {
    let server = Server::start();
    let admin = server.org_admin("acme");
    let relabel = json!({"name": "Administrators", "label": "Admins"});
    admin.call("PATCH", "/be/v1/roles", Some(relabel)).assert_error(403, "permission-denied");
    let shrink = json!({"name": "Administrators", "permissions": {"apps": 1}});
    admin.call("PATCH", "/be/v1/roles", Some(shrink)).assert_error(403, "permission-denied");
    admin.call("DELETE", "/be/v1/roles/Administrators", None).assert_error(403, "permission-denied");
    let role = role_details(&admin, "Administrators");
    assert_eq!(
        (&role["label"], &role["permissions"], &role["builtin"]),
        (&json!("Administrators"), &maxima(), &json!(true))
    );
}

#[test]
fn rights_are_the_union_of_roles() {
    let server = Server::start();
    let admin = server.org_admin("acme");
    admin.create_role("RoleReaders", json!({"roles": 2}));
    admin.create_role("UserReaders", json!({"beUsers": 2}));
    let only_roles = admin.create_user(&server, "only_roles", &["RoleReaders"]);
    admin.create_user(&server, "both", &["RoleReaders", "UserReaders"]);

    let login = login_reply(&server, "acme", "both", PASSWORD);
    let permissions = &login.assert_ok()["permissions"];
    assert_eq!(
        (&permissions["roles"], &permissions["beUsers"], &permissions["apps"]),
        (&json!(2), &json!(2), &json!(0))
    );
    let both = server.login("acme", "both", PASSWORD);
    both.call("GET", "/be/v1/roles", None).assert_ok();
    both.call("GET", "/be/v1/users", None).assert_ok();
    // One role alone grants only its own bits.
    only_roles.call("GET", "/be/v1/roles", None).assert_ok();
    only_roles.call("GET", "/be/v1/users", None).assert_error(403, "permission-denied");
}

// ---------------------------------------------------------------------------------------------
// D. No privilege escalation
// ---------------------------------------------------------------------------------------------

#[test]
fn a_role_manager_cannot_create_a_role_with_rights_it_lacks() {
    let server = Server::start();
    let admin = server.org_admin("acme");
    let manager = user_with(&server, &admin, "manager", json!({"roles": 15}));
    let reply = manager.call("POST", "/be/v1/roles", Some(json!({"name": "Sneaky", "permissions": {"apps": 1}})));
    reply.assert_error(403, "permission-denied");
    admin.call("GET", "/be/v1/roles/Sneaky", None).assert_error(404, "not-found");
    // Within its own bits it may.
    manager.create_role("Modest", json!({"roles": 3}));
}

#[test]
fn a_role_manager_cannot_add_bits_it_lacks_to_a_role() {
    let server = Server::start();
    let admin = server.org_admin("acme");
    admin.create_role("Plain", json!({"roles": 2}));
    let manager = user_with(&server, &admin, "manager", json!({"roles": 15}));
    let reply =
        manager.call("PATCH", "/be/v1/roles", Some(json!({"name": "Plain", "permissions": {"roles": 2, "apps": 1}})));
    reply.assert_error(403, "permission-denied");
    assert_eq!(role_details(&admin, "Plain")["permissions"]["apps"], 0);
}

#[test]
fn a_role_manager_cannot_even_relabel_a_role_that_grants_bits_it_lacks() {
    let server = Server::start();
    let admin = server.org_admin("acme");
    admin.create_role("Mighty", json!({"apps": 15}));
    let manager = user_with(&server, &admin, "manager", json!({"roles": 15}));
    let reply = manager.call("PATCH", "/be/v1/roles", Some(json!({"name": "Mighty", "label": "Renamed"})));
    reply.assert_error(403, "permission-denied");
    assert_eq!(role_details(&admin, "Mighty")["label"], "Mighty");
}

#[test]
fn a_user_manager_cannot_create_users_with_roles_beyond_its_rights() {
    let server = Server::start();
    let admin = server.org_admin("acme");
    admin.create_role("AppsOnly", json!({"apps": 1}));
    let manager = user_with(&server, &admin, "manager", json!({"beUsers": 15}));
    for (username, role) in [("crown", "Administrators"), ("appster", "AppsOnly")] {
        let mut body = person(username);
        body["roles"] = json!([role]);
        manager.call("POST", "/be/v1/users", Some(body)).assert_error(403, "permission-denied");
        admin.call("GET", &format!("/be/v1/users/{username}"), None).assert_error(404, "not-found");
    }
    // Roles within its own bits are fine.
    admin.create_role("UserReaders", json!({"beUsers": 2}));
    let mut body = person("helper");
    body["roles"] = json!(["UserReaders"]);
    manager.call("POST", "/be/v1/users", Some(body)).assert_ok();
}

#[test]
fn a_user_manager_cannot_assign_roles_beyond_its_rights() {
    let server = Server::start();
    let admin = server.org_admin("acme");
    admin.create_role("AppsOnly", json!({"apps": 1}));
    admin.create_user(&server, "gina", &[]);
    let manager = user_with(&server, &admin, "manager", json!({"beUsers": 15}));
    for (target, role) in [("gina", "Administrators"), ("gina", "AppsOnly"), ("manager", "Administrators")] {
        let reply = manager.call("PATCH", "/be/v1/users", Some(json!({"username": target, "roles": [role]})));
        reply.assert_error(403, "permission-denied");
    }
    assert_eq!(user_details(&admin, "gina")["roles"], json!([]));
    assert_eq!(user_details(&admin, "manager")["roles"], json!(["manager_role"]));
    assert_eq!(role_details(&admin, "Administrators")["users"], 1);
}

#[test]
fn a_user_manager_cannot_reset_delete_or_demote_an_administrator() {
    let server = Server::start();
    let adm = Adm::new(&server);
    let reply = adm.call("POST", "/adm/v1/orgs", Some(json!({"name": "acme"})));
    let password = reply.assert_ok()["admin"]["initialPassword"].as_str().unwrap().to_string();
    let admin = server.login("acme", "admin", &password);
    let manager = user_with(&server, &admin, "manager", json!({"beUsers": 15}));

    let reply = manager.call("PATCH", "/be/v1/users", Some(json!({"username": "admin", "resetCreds": true})));
    reply.assert_error(403, "permission-denied");
    assert!(reply.body["initialPassword"].is_null());
    manager.call("DELETE", "/be/v1/users/admin", None).assert_error(403, "permission-denied");
    let reply = manager.call("PATCH", "/be/v1/users", Some(json!({"username": "admin", "roles": []})));
    reply.assert_error(403, "permission-denied");

    // The administrator is exactly as before: same password, live session, same role.
    probe(&admin).assert_ok();
    server.login("acme", "admin", &password);
    assert_eq!(user_details(&admin, "admin")["roles"], json!(["Administrators"]));
}

#[test]
fn a_user_manager_cannot_take_over_a_more_powerful_machine_through_its_keys() {
    let server = Server::start();
    let admin = server.org_admin("acme");
    let robot = admin.create_machine("robot", &["Administrators"]);
    let manager = user_with(&server, &admin, "manager", json!({"beUsers": 15}));

    let reply = manager.call("POST", "/be/v1/apikeys", Some(json!({"username": "robot"})));
    reply.assert_error(403, "permission-denied");
    assert!(reply.body["apiKey"].is_null());
    let reply = manager.call("PATCH", "/be/v1/users", Some(json!({"username": "robot", "resetCreds": true})));
    reply.assert_error(403, "permission-denied");
    assert!(reply.body["apiKey"].is_null());
    // The machine keeps exactly its one key, and it still works.
    let listed = admin.call("GET", "/be/v1/apikeys?limit=1000", None);
    assert_eq!(names(&listed.assert_ok()["apikeys"], "apiKeyId"), std::slice::from_ref(&robot.key_id));
    probe_key(&robot).assert_ok();
}

// ---------------------------------------------------------------------------------------------
// E. API keys
// ---------------------------------------------------------------------------------------------

#[test]
fn a_machine_creates_another_key_for_itself_and_both_keys_work() {
    let server = Server::start();
    let admin = server.org_admin("acme");
    let bot = admin.create_machine("bot", &[]);
    let reply = bot.call("POST", "/be/v1/apikeys", None);
    let body = reply.assert_ok();
    assert!(body["apiKey"].as_str().unwrap().starts_with("rk_"), "{body}");
    assert_timestamp(&body["created"]);
    let second = with_key(&bot, body);
    assert_ne!(second.key, bot.key);
    assert_ne!(second.key_id, bot.key_id);
    probe_key(&bot).assert_ok();
    probe_key(&second).assert_ok();
}

#[test]
fn an_admin_creates_a_key_for_a_machine_but_not_for_a_person() {
    let server = Server::start();
    let admin = server.org_admin("acme");
    let bot = admin.create_machine("bot", &[]);
    admin.create_user(&server, "hank", &[]);
    let reply = admin.call("POST", "/be/v1/apikeys", Some(json!({"username": "bot"})));
    probe_key(&with_key(&bot, reply.assert_ok())).assert_ok();

    for body in [Some(json!({"username": "hank"})), Some(json!({"username": "admin"})), None] {
        // Well-formed, refused by the account's kind: a conflict with its state, not a bad request.
        assert_param(&admin.call("POST", "/be/v1/apikeys", body), 409, "conflict", "username");
    }
}

#[test]
fn a_machine_changing_its_own_password_is_a_conflict_naming_new_pw() {
    let server = Server::start();
    let admin = server.org_admin("acme");
    let bot = admin.create_machine("bot", &[]);
    let body = json!({"oldPW": "whatever-it-was", "newPW": "a-brand-new-password"});
    assert_param(&bot.call("PATCH", "/be/v1/users", Some(body)), 409, "conflict", "newPW");
}

#[test]
fn creating_a_key_for_another_machine_needs_user_update_rights() {
    let server = Server::start();
    let admin = server.org_admin("acme");
    admin.create_machine("bot", &[]);
    let reader = user_with(&server, &admin, "reader", json!({"beUsers": 2}));
    let other_bot = admin.create_machine("other_bot", &[]);
    let body = json!({"username": "bot"});
    reader.call("POST", "/be/v1/apikeys", Some(body.clone())).assert_error(403, "permission-denied");
    other_bot.call("POST", "/be/v1/apikeys", Some(body)).assert_error(403, "permission-denied");
    // `bot` still has only the key it was created with.
    let listed = admin.call("GET", "/be/v1/apikeys?limit=1000", None);
    let owners = names(&listed.assert_ok()["apikeys"], "username");
    assert_eq!(owners.iter().filter(|owner| *owner == "bot").count(), 1, "{owners:?}");
}

#[test]
fn the_key_list_never_shows_keys_and_a_machine_without_user_rights_sees_only_its_own() {
    let server = Server::start();
    let admin = server.org_admin("acme");
    let bot = admin.create_machine("bot", &[]);
    let extra = bot.call("POST", "/be/v1/apikeys", None).assert_ok()["apiKey"].as_str().unwrap().to_string();
    let other = admin.create_machine("other_bot", &[]);

    let body = admin.call("GET", "/be/v1/apikeys?limit=1000", None).assert_ok().clone();
    assert_eq!(body["total"], 3);
    for item in body["apikeys"].as_array().unwrap() {
        let mut keys: Vec<&String> = item.as_object().unwrap().keys().collect();
        keys.sort();
        assert_eq!(keys, ["apiKeyId", "created", "lastUsed", "username"], "{item}");
    }
    let text = body.to_string();
    for key in [&bot.key, &extra, &other.key] {
        assert!(!text.contains(key.as_str()), "a key leaked: {text}");
    }

    let own = bot.call("GET", "/be/v1/apikeys", None).assert_ok().clone();
    assert_eq!(own["total"], 2);
    assert_eq!(names(&own["apikeys"], "username"), ["bot", "bot"]);
    assert!(names(&own["apikeys"], "apiKeyId").contains(&bot.key_id));
}

#[test]
fn last_used_is_recorded_once_a_key_is_used() {
    let server = Server::start();
    let admin = server.org_admin("acme");
    let bot = admin.create_machine("bot", &[]);
    let last_used = || {
        let body = admin.call("GET", "/be/v1/apikeys?username=bot", None).assert_ok().clone();
        let item = body["apikeys"].as_array().unwrap().iter().find(|k| k["apiKeyId"] == bot.key_id.as_str()).cloned();
        item.expect("the key is listed")["lastUsed"].clone()
    };
    assert!(last_used().is_null());
    probe_key(&bot).assert_ok();
    let stamp = eventually(Duration::from_secs(10), || Some(last_used()).filter(|v| !v.is_null()));
    assert_timestamp(&stamp);
}

#[test]
fn revoking_one_key_leaves_the_machines_other_keys_working() {
    let server = Server::start();
    let admin = server.org_admin("acme");
    let bot = admin.create_machine("bot", &[]);
    let second = with_key(&bot, bot.call("POST", "/be/v1/apikeys", None).assert_ok());

    admin.call("DELETE", &format!("/be/v1/apikeys/{}", bot.key_id), None).assert_ok();
    probe_key(&bot).assert_error(401, "invalid-api-key");
    probe_key(&second).assert_ok();

    admin.call("DELETE", &format!("/be/v1/apikeys/{}", bot.key_id), None).assert_error(404, "not-found");
    admin.call("DELETE", "/be/v1/apikeys/ak_0000000000000000", None).assert_error(404, "not-found");
    let listed = admin.call("GET", "/be/v1/apikeys", None);
    assert_eq!(names(&listed.assert_ok()["apikeys"], "apiKeyId"), std::slice::from_ref(&second.key_id));
}
