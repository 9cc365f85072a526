//! The web console in a real browser (headless Chromium over WebDriver) against the real binary.
//! Screenshots of the main pages land in target/console-screenshots/ (1280 and 390 px wide).

mod common;
mod engine_support;
mod webdriver;

use std::io::{BufRead, BufReader, Read, Write};
use std::time::{Duration, Instant};

use common::{send, Server, PASSWORD};
use engine_support::{game_v1, game_v2, tar_of, BuildOrigin};
use serde_json::{json, Value};
use webdriver::{browser_or_skip, Browser, ENTER, TAB};

/// Signs in with the two-step flow using only the keyboard: the username field has the focus,
/// Tab moves on, Enter submits; then the organization is chosen.
fn sign_in_two_steps(browser: &Browser, server: &Server, username: &str, password: &str, org: &str) {
    browser.goto(&server.url("/#/login"));
    browser.find_with_text("h1", "Sign in");
    browser.wait_for("the username field to have the focus", || {
        let focused = browser.script("return document.activeElement && document.activeElement.name", json!([]));
        (focused == "username").then_some(())
    });
    browser.keys(username);
    browser.keys(TAB);
    browser.keys(password);
    browser.keys(ENTER);
    browser.find_with_text("h1", "Choose an organization");
    let select = browser.field("Organization");
    browser.type_into(&select, org);
    browser.press("Continue");
    browser.find(".who #sign-out");
}

/// Signs in with the one-step shortcut (username, password and organization in one form).
fn sign_in_directly(browser: &Browser, server: &Server, username: &str, password: &str, org: &str) {
    browser.goto(&server.url("/#/login"));
    browser.fill("Username", username);
    browser.fill("Password", password);
    browser.fill("Organization (optional)", org);
    browser.press("Sign in");
    browser.find(".who #sign-out");
}

/// Form controls of the current page that no label names (for, aria-label, aria-labelledby).
fn unlabelled_fields(browser: &Browser) -> Vec<String> {
    let found = browser.script(
        "return [...document.querySelectorAll('input, select, textarea')].filter((el) => { \
           if (el.type === 'hidden') return false; \
           if (el.getAttribute('aria-label') || el.getAttribute('aria-labelledby')) return false; \
           return !(el.id && document.querySelector(`label[for=\"${el.id}\"]`)); \
         }).map((el) => el.outerHTML);",
        json!([]),
    );
    serde_json::from_value(found).unwrap_or_default()
}

/// What `sessionStorage` and `localStorage` hold, as JSON.
fn storage(browser: &Browser) -> (Value, Value) {
    let answer = browser.script(
        "return [JSON.stringify(Object.assign({}, sessionStorage)), JSON.stringify(Object.assign({}, localStorage))];",
        json!([]),
    );
    let parse = |v: &Value| serde_json::from_str(v.as_str().unwrap_or("{}")).unwrap_or(Value::Null);
    (parse(&answer[0]), parse(&answer[1]))
}

/// The refresh token the console keeps in sessionStorage.
fn stored_refresh_token(browser: &Browser) -> String {
    let (session, _) = storage(browser);
    let stored: Value =
        serde_json::from_str(session["rockit-edge.session"].as_str().unwrap_or("{}")).unwrap_or_default();
    stored["refresh"]["token"].as_str().unwrap_or_default().to_string()
}

#[test]
fn an_administrator_signs_in_in_two_steps_creates_an_app_and_finds_it_by_search() {
    let Some(browser) = browser_or_skip("console_browser::two_step_sign_in") else { return };
    let server = Server::start();
    let password = server.create_org("acme");

    sign_in_two_steps(&browser, &server, "admin", &password, "acme");
    browser.find_with_text("h1", "Apps");
    browser.wait_for_text("Nothing here yet.");
    assert_eq!(unlabelled_fields(&browser), Vec::<String>::new());

    browser.open("New app");
    browser.fill("Name", "space_game");
    browser.fill("Label", "Space Game");
    browser.press("Create app");
    browser.find_with_text("h1", "Space Game");
    assert!(browser.url().ends_with("#/apps/space_game"), "{}", browser.url());
    browser.wait_for_text("No builds yet.");
    assert_eq!(unlabelled_fields(&browser), Vec::<String>::new());
    browser.screenshots("app");

    // A second app, then the search narrows the list to one.
    let admin = server.login("acme", "admin", &password);
    admin.call("POST", "/be/v1/apps", Some(json!({"name": "puzzle", "label": "Puzzle"}))).assert_ok();
    browser.goto(&server.url("/#/apps"));
    browser.find_with_text("td a", "puzzle");
    browser.find_with_text("td a", "space_game");
    browser.screenshots("apps");
    // Paging: 20 apps a page.
    for i in 0..20 {
        admin.call("POST", "/be/v1/apps", Some(json!({"name": format!("app_{i:02}"), "label": "More"}))).assert_ok();
    }
    browser.refresh();
    browser.wait_for_text("1–20 of 22");
    browser.press("Next page");
    browser.wait_for_text("21–22 of 22");
    browser.find_with_text("td a", "space_game");
    browser.fill("Search apps by name", "spa");
    browser.wait_for("the search to leave one app", || {
        let names: Vec<String> = browser.find_all("td a").iter().map(|a| browser.text(a)).collect();
        (names == ["space_game"]).then_some(())
    });
}

#[test]
fn a_validation_error_appears_next_to_the_field_it_names() {
    let Some(browser) = browser_or_skip("console_browser::validation_error") else { return };
    let server = Server::start();
    let password = server.create_org("acme");
    sign_in_directly(&browser, &server, "admin", &password, "acme");

    browser.goto(&server.url("/#/apps"));
    browser.open("New app");
    browser.fill("Name", "x");
    browser.fill("Label", "Too short a name");
    browser.press("Create app");
    // The server's message for `param: name`, shown under the Name field and tied to it.
    let described = browser.wait_for("the error under Name", || {
        let answer = browser.script(
            "const input = document.querySelector('input[name=name]'); \
             const error = document.getElementById(input.getAttribute('aria-describedby').split(' ').pop()); \
             return error && !error.hidden ? [error.textContent, input.getAttribute('aria-invalid')] : null;",
            json!([]),
        );
        (!answer.is_null()).then_some(answer)
    });
    assert!(described[0].as_str().unwrap_or("").contains("`name` must be 2 to 50"), "{described}");
    assert_eq!(described[1], "true");

    // The skip link takes keyboard users to the content and leaves the page where it is.
    let url = browser.url();
    browser.script("document.querySelector('.skip-link').focus()", json!([]));
    browser.keys(ENTER);
    browser.wait_for("the content to have the focus", || {
        (browser.script("return document.activeElement.id", json!([])) == "main").then_some(())
    });
    assert_eq!(browser.url(), url);
    browser.screenshots("validation");
}

#[test]
fn a_user_holding_a_narrow_role_is_offered_only_what_the_role_allows() {
    let Some(browser) = browser_or_skip("console_browser::narrow_role") else { return };
    let server = Server::start();
    let password = server.create_org("acme");
    let admin = server.login("acme", "admin", &password);
    admin.call("POST", "/be/v1/apps", Some(json!({"name": "space_game", "label": "Space Game"}))).assert_ok();
    sign_in_directly(&browser, &server, "admin", &password, "acme");

    // The role: apps Read only, ticked in the permission grid.
    browser.goto(&server.url("/#/roles"));
    browser.open("New role");
    browser.fill("Name", "viewers");
    browser.fill("Label", "App viewers");
    let read_apps = browser.find("input[aria-label='apps: Read']");
    browser.click(&read_apps);
    assert_eq!(unlabelled_fields(&browser), Vec::<String>::new());
    browser.screenshots("roles-new");
    browser.press("Create role");
    browser.find_with_text("h1", "App viewers");
    let role = admin.call("GET", "/be/v1/roles/viewers", None);
    assert_eq!(role.assert_ok()["role"]["permissions"]["apps"], 2);
    assert_eq!(role.body["role"]["permissions"]["beUsers"], 0);

    // The user, with that role, through the form.
    browser.goto(&server.url("/#/users"));
    browser.open("New account");
    browser.fill("Username", "vera");
    browser.fill("Email", "vera@example.com");
    browser.fill("First name", "Vera");
    browser.fill("Surname", "Viewer");
    browser.fill("Password", PASSWORD);
    let role_input = browser.find(".choice input[value='viewers']");
    browser.click(&role_input);
    assert_eq!(unlabelled_fields(&browser), Vec::<String>::new());
    browser.press("Create account");
    browser.find_with_text("td a", "vera");
    browser.screenshots("users");
    browser.press("Sign out");
    browser.find_with_text("h1", "Sign in");

    // As vera: Apps and nothing else; no way to create, change or delete.
    sign_in_directly(&browser, &server, "vera", PASSWORD, "acme");
    browser.find_with_text("h1", "Apps");
    let nav: Vec<String> = browser.find_all(".topbar nav a").iter().map(|a| browser.text(a)).collect();
    assert_eq!(nav, ["Apps", "Administration"]);
    browser.find_with_text("td a", "space_game");
    assert!(browser.find_all("details.create").is_empty(), "no 'New app' for a reader");
    browser.goto(&server.url("/#/apps/space_game"));
    browser.find_with_text("h1", "Space Game");
    let buttons: Vec<String> = browser.find_all("main button").iter().map(|b| browser.text(b)).collect();
    assert!(buttons.is_empty(), "a reader gets no buttons on the app page: {buttons:?}");
    assert!(browser.find_all("main form").is_empty(), "a reader gets no change form");
    browser.goto(&server.url("/#/users"));
    browser.wait_for_text("Your roles do not allow you to see this page.");
}

#[test]
fn the_session_outlives_its_access_tokens_and_a_reload_and_signing_out_ends_it() {
    let Some(browser) = browser_or_skip("console_browser::refresh") else { return };
    // Access tokens live 3 s: the console must refresh several times during this test.
    let server = Server::start_with(&[("ROCKIT_EDGE_ACCESS_TTL", "3s")]);
    let password = server.create_org("acme");
    sign_in_directly(&browser, &server, "admin", &password, "acme");
    browser.find_with_text("h1", "Apps");
    let first = stored_refresh_token(&browser);
    assert!(!first.is_empty());
    let (_, local) = storage(&browser);
    assert_eq!(local, json!({}), "nothing in localStorage");
    assert!(!browser.url().contains(&first), "the token is never in a URL");

    // Outlive two access tokens, then keep working.
    let start = Instant::now();
    browser.wait_for("two access-token lifetimes to pass", || (start.elapsed() > Duration::from_secs(7)).then_some(()));
    browser.goto(&server.url("/#/users"));
    browser.find_with_text("td a", "admin");
    let later = stored_refresh_token(&browser);
    assert_ne!(first, later, "the console refreshed the session");

    // A reload keeps the session (the refresh token in sessionStorage buys a new access token).
    // Reload right after a refresh completed: a reload that cut a refresh off in flight would
    // present the old, already rotated token and rightly get the session revoked.
    browser.wait_for("the next refresh", || (stored_refresh_token(&browser) != later).then_some(()));
    browser.refresh();
    browser.find_with_text("td a", "admin");
    assert!(browser.find_all(".who #sign-out").len() == 1);

    // Signing out ends the session on the server too.
    let before = stored_refresh_token(&browser);
    browser.press("Sign out");
    browser.find_with_text("h1", "Sign in");
    browser.wait_for_text("You are signed out.");
    assert_eq!(stored_refresh_token(&browser), "");
    let auth = format!("Bearer {before}");
    send("POST", &server.url("/be/v1/refresh"), &[("Authorization", &auth)], Some(json!({})))
        .assert_error(401, "token-revoked");
}

#[test]
fn a_revoked_session_shows_why_on_the_sign_in_page() {
    let Some(browser) = browser_or_skip("console_browser::revoked_session") else { return };
    let server = Server::start();
    let password = server.create_org("acme");
    sign_in_directly(&browser, &server, "admin", &password, "acme");
    browser.find_with_text("h1", "Apps");

    let auth = format!("Bearer {}", stored_refresh_token(&browser));
    send("POST", &server.url("/be/v1/logout"), &[("Authorization", &auth)], None).assert_ok();
    let users = browser.find_with_text(".topbar nav a", "Users");
    browser.click(&users);
    browser.find_with_text("h1", "Sign in");
    browser.wait_for_text("Your session was ended");
    browser.screenshots("session-ended");
}

#[test]
fn failed_sign_ins_show_the_servers_answer_and_then_the_slow_down() {
    let Some(browser) = browser_or_skip("console_browser::failed_sign_in") else { return };
    let server = Server::start_with(&[("ROCKIT_EDGE_LOGIN_MAX_FAILURES", "2")]);
    server.create_org("acme");
    browser.goto(&server.url("/#/login"));
    browser.fill("Username", "admin");
    browser.fill("Password", "not-the-password");
    browser.press("Sign in");
    browser.wait_for_text("wrong username or password");
    // Two failures are allowed; a button press while an answer is pending does nothing.
    browser.wait_for("the slow-down", || {
        browser.press("Sign in");
        browser.page_text().contains("too many attempts; try again in").then_some(())
    });
    browser.screenshots("sign-in-slow-down");
}

#[test]
fn text_from_the_server_is_shown_as_text_and_never_run() {
    let Some(browser) = browser_or_skip("console_browser::xss") else { return };
    let server = Server::start();
    let password = server.create_org("acme");
    let admin = server.login("acme", "admin", &password);
    let label = "<img src=x onerror=alert(1)>";
    admin.call("POST", "/be/v1/apps", Some(json!({"name": "evil", "label": label}))).assert_ok();
    sign_in_directly(&browser, &server, "admin", &password, "acme");

    browser.find_with_text("td", label);
    browser.goto(&server.url("/#/apps/evil"));
    browser.find_with_text("h1", label);
    assert!(browser.find_all("img").is_empty(), "the label became an element");
    assert_eq!(browser.alert_text(), None, "a script ran");
    let handlers = browser.script("return document.querySelectorAll('[onerror]').length", json!([]));
    assert_eq!(handlers, 0);
}

#[test]
fn the_admin_page_runs_the_test_task_and_creates_an_organization_showing_its_password_once() {
    let Some(browser) = browser_or_skip("console_browser::admin") else { return };
    let server = Server::start();
    browser.goto(&server.url("/#/admin"));
    browser.fill("Admin token", &server.admin_token());
    browser.press("Continue");
    browser.find_with_text("h1", "Instance administration");
    browser.wait_for_text(env!("CARGO_PKG_VERSION"));
    assert_eq!(unlabelled_fields(&browser), Vec::<String>::new());

    browser.press("Ping");
    browser.wait_for_text("pong at");
    browser.fill("Message", "hi there");
    browser.press("Run test task");
    browser.wait_for_text("\"hi there\"");

    browser.open("New organization");
    browser.fill("Name", "globex");
    browser.fill("Label", "Globex");
    browser.press("Create organization");
    let shown = browser.wait_for("the one-time password", || {
        let codes = browser.find_all(".one-time code.secret");
        (codes.len() == 2).then(|| browser.text(&codes[1]))
    });
    let password = shown;
    assert!(password.len() >= 12, "initial password shown: {password:?}");
    browser.find_with_text("td", "globex");
    browser.screenshots("admin");
    // The password shown works, once, for the first administrator.
    server.login("globex", "admin", &password);

    browser.press("Turn maintenance on");
    browser.wait_for_text("On: the API answers 503");
    send("GET", &server.url("/be/v1/apps"), &[], None).assert_error(503, "maintenance");
    browser.press("Turn maintenance off");
    browser.wait_for_text("Off: the API serves requests.");
}

/// Imports on a loaded 2-core machine take a while; a chain is watched for up to this long.
const CHAIN: Duration = Duration::from_secs(180);

/// Writes `bytes` as a file the browser can pick, in the server's temp home.
fn build_file(server: &Server, name: &str, bytes: &[u8]) -> std::path::PathBuf {
    let path = server.home.path().join(name);
    std::fs::write(&path, bytes).expect("write the build file");
    path
}

/// Picks `file` in the app page's upload form and starts the import.
fn upload_in_browser(browser: &Browser, file: &std::path::Path) {
    let input = browser.field("Build tar file");
    browser.type_into(&input, &file.display().to_string());
    browser.press("Upload and import");
}

/// The import chain as the app page shows it: [type, status] per row, once `done` says it ended.
fn chain_when(browser: &Browser, done: impl Fn(&[(String, String)]) -> bool) -> Vec<(String, String)> {
    common::eventually(CHAIN, || {
        let rows = browser.script(
            "return [...document.querySelectorAll('.chain tbody tr')].map((tr) => \
               [tr.querySelector('.task-name strong').textContent, tr.querySelector('.badge').textContent]);",
            json!([]),
        );
        let rows: Vec<(String, String)> = serde_json::from_value(rows).unwrap_or_default();
        done(&rows).then_some(rows)
    })
}

fn all_done(rows: &[(String, String)]) -> bool {
    let kinds: Vec<&str> = rows.iter().map(|(kind, _)| kind.as_str()).collect();
    kinds == ["dltar", "mkraw", "deploy"] && rows.iter().all(|(_, status)| status == "done")
}

/// A signed-in administrator on the page of app `space_game`, which publishes to an fs deployment.
fn app_page_with_a_deployment(browser: &Browser, server: &Server) -> common::Session {
    let password = server.create_org("acme");
    let admin = server.login("acme", "admin", &password);
    let cdn = server.home.path().join("cdn");
    let origin = json!({"type": "fs", "path": cdn.display().to_string()});
    admin.call("POST", "/be/v1/deployments", Some(json!({"name": "cdn", "origin": origin}))).assert_ok();
    admin.call("POST", "/be/v1/apps", Some(json!({"name": "space_game", "label": "Space Game"}))).assert_ok();
    sign_in_directly(browser, server, "admin", &password, "acme");
    browser.goto(&server.url("/#/apps/space_game"));
    browser.find_with_text("h1", "Space Game");
    browser.wait_for_text("No builds yet.");
    admin
}

#[test]
fn a_tar_uploaded_from_the_browser_is_imported_and_a_second_one_lists_the_build_and_its_patch() {
    let Some(browser) = browser_or_skip("console_browser::upload_import") else { return };
    let server = Server::start();
    let admin = app_page_with_a_deployment(&browser, &server);
    assert_eq!(unlabelled_fields(&browser), Vec::<String>::new());

    let v1 = build_file(&server, "v1.tar", &tar_of(&game_v1()));
    upload_in_browser(&browser, &v1);
    chain_when(&browser, all_done);
    browser.wait_for_text("Import done: the build is published.");
    let sent =
        browser.script("return document.querySelector('progress[aria-label=\"Upload progress\"]').value", json!([]));
    assert_eq!(sent, 100, "the upload's progress bar is full");
    browser.find_with_text(".badge", "current");
    browser.wait_for_text("No patches yet");

    let v2 = build_file(&server, "v2.tar", &tar_of(&game_v2()));
    upload_in_browser(&browser, &v2);
    // The patch row appears when the second chain has ended and the app was read again.
    common::eventually(CHAIN, || browser.find_all("td").iter().any(|td| browser.text(td) == "#1 → #2").then_some(()));
    let rows = chain_when(&browser, all_done);
    assert_eq!(rows.len(), 3);
    let app = admin.call("GET", "/be/v1/apps/space_game", None).assert_ok()["app"].clone();
    assert_eq!(app["iCurBuild"], 2, "{app}");
    let (patch, image) =
        (app["patches"][0]["sizeBytes"].as_f64().unwrap(), app["builds"][1]["sizeBytes"].as_f64().unwrap());
    let share = format!("{:.1}% of the", 100.0 * patch / image);
    browser.wait_for_text(&share);
    let builds: Vec<String> =
        browser.find_all("main section td:first-child").iter().map(|td| browser.text(td)).collect();
    assert!(builds.iter().any(|t| t == "#1") && builds.iter().any(|t| t.starts_with("#2")), "{builds:?}");
    assert_eq!(browser.console_errors(), Vec::<String>::new());
    browser.script("window.scrollTo(0, 0)", json!([]));
    browser.screenshots("app-builds");
}

#[test]
fn a_refused_build_shows_why_in_words_and_asks_for_a_corrected_build_instead_of_a_retry() {
    let Some(browser) = browser_or_skip("console_browser::failed_import") else { return };
    let server = Server::start();
    let admin = app_page_with_a_deployment(&browser, &server);

    let junk = build_file(&server, "notes.tar", &b"this is a text file, not a native build tar\n".repeat(40));
    upload_in_browser(&browser, &junk);
    let rows = chain_when(&browser, |rows| rows.iter().any(|(_, status)| status == "failed"));
    assert_eq!(rows, [("dltar".to_string(), "done".to_string()), ("mkraw".to_string(), "failed".to_string())]);
    // The compat fileReadFailed fields, as a sentence, and what to do instead of retrying.
    browser.wait_for_text("Could not read native-build.tar: expected");
    browser.wait_for_text("A retry would read the same file: import a corrected build.");
    let mkraw = admin.call("GET", "/be/v1/tasks?type=mkraw", None).assert_ok()["tasks"][0].clone();
    assert_eq!(mkraw["attempts"], 1);
    // The app itself says its import failed, above its details.
    let app = admin.call("GET", "/be/v1/apps/space_game", None).assert_ok()["app"].clone();
    assert_eq!(app["status"], "error", "{app}");
    browser.wait_for_text(&format!("Error: {}", app["error"].as_str().unwrap()));
    browser.find_with_text("h1 .badge", "error");
    let retries: Vec<_> = browser.find_all("button").into_iter().filter(|b| browser.text(b) == "Retry").collect();
    assert!(retries.is_empty(), "a refused build offers no retry");
    browser.script("window.scrollTo(0, 0)", json!([]));
    browser.screenshots("app-error");
    browser.script("document.querySelector('.chain').scrollIntoView()", json!([]));
    browser.screenshots("app-import-failed");
    assert_eq!(browser.console_errors(), Vec::<String>::new());
}

#[test]
fn a_failed_download_is_retried_from_the_tasks_page_and_the_build_goes_live() {
    let Some(browser) = browser_or_skip("console_browser::retried_download") else { return };
    let server = Server::start_with(&[("ROCKIT_EDGE_OUTBOUND_ALLOW_LOOPBACK", "true")]);
    let admin = app_page_with_a_deployment(&browser, &server);
    // The build server does not have the file yet: 404, which is not retried on its own.
    let origin = BuildOrigin::start(Vec::new());
    let v1 = tar_of(&game_v1());
    let body = json!({"appName": "space_game", "url": origin.url, "size": v1.len()});
    let dltar =
        admin.call("POST", "/be/v1/builds", Some(body)).assert_ok()["task"]["name"].as_str().unwrap().to_string();
    common::eventually(CHAIN, || {
        (admin.call("GET", &format!("/be/v1/tasks/{dltar}"), None).assert_ok()["task"]["status"] == "failed")
            .then_some(())
    });
    let tasks = browser.find_with_text(".topbar nav a", "Tasks");
    browser.click(&tasks);
    browser.find_with_text("h1", "Tasks");
    browser.wait_for_text("The build server answered HTTP 404.");
    let failed = admin.call("GET", &format!("/be/v1/tasks/{dltar}"), None).assert_ok()["task"].clone();
    let app = admin.call("GET", "/be/v1/apps/space_game", None).assert_ok()["app"].clone();
    assert_eq!((&app["status"], &app["error"]), (&json!("error"), &failed["exception"]["message"]), "{app}");

    origin.serve(v1);
    browser.press("Retry");
    browser.wait_for_text("Attempt 2");
    let app = common::eventually(CHAIN, || {
        let app = admin.call("GET", "/be/v1/apps/space_game", None).assert_ok()["app"].clone();
        (app["iCurBuild"] == 1).then_some(app)
    });
    assert_eq!((&app["status"], &app["error"]), (&json!("ok"), &Value::Null), "{app}");
    assert_eq!(browser.console_errors(), Vec::<String>::new());
}

#[test]
fn the_tasks_page_filters_acknowledges_warnings_and_cancels_a_waiting_upload() {
    let Some(browser) = browser_or_skip("console_browser::tasks_page") else { return };
    let server = Server::start();
    let admin = app_page_with_a_deployment(&browser, &server);
    // A gzip-compressed tar is accepted with a warning.
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut gz, &tar_of(&game_v1())).unwrap();
    let v1 = build_file(&server, "v1.tar.gz", &gz.finish().unwrap());
    upload_in_browser(&browser, &v1);
    chain_when(&browser, all_done);
    // An import by API whose upload never comes.
    admin.call("POST", "/be/v1/builds", Some(json!({"appName": "space_game"}))).assert_ok();

    let tasks = browser.find_with_text(".topbar nav a", "Tasks");
    browser.click(&tasks);
    browser.find_with_text("h1", "Tasks");
    assert_eq!(unlabelled_fields(&browser), Vec::<String>::new());
    browser.wait_for_text("-compressed; accepted");
    browser.screenshots("tasks");
    browser.press("Acknowledge warnings");
    browser.wait_for("the warnings to go", || browser.find_all(".warnings").is_empty().then_some(()));
    let warned = admin.call("GET", "/be/v1/tasks?type=mkraw", None).assert_ok()["tasks"][0].clone();
    assert_eq!(warned["warnings"], json!([]), "{warned}");

    // The status filter leaves the waiting dltar; cancelling it expires it.
    let status = browser.field("Status");
    browser.type_into(&status, "submitted");
    browser.wait_for("one submitted task", || (browser.find_all("main tbody tr").len() == 1).then_some(()));
    browser.press("Cancel upload");
    browser.wait_for_text("No matches.");
    let expired = admin.call("GET", "/be/v1/tasks?status=expired", None).assert_ok()["total"].clone();
    assert_eq!(expired, 1);
    assert_eq!(admin.call("GET", "/be/v1/apps/space_game", None).assert_ok()["app"]["processing"], false);
}

/// The visible error of the upload form, once there is one.
fn upload_error(browser: &Browser) -> String {
    browser.wait_for("the upload form's error", || {
        let shown = browser.script(
            "const error = document.querySelector('.import-upload .form-error'); \
             return error && !error.hidden ? error.textContent : null;",
            json!([]),
        );
        shown.as_str().map(str::to_string)
    })
}

#[test]
fn an_import_the_server_refuses_shows_why_next_to_the_form() {
    let Some(browser) = browser_or_skip("console_browser::import_refused") else { return };
    let server = Server::start_with(&[("ROCKIT_EDGE_MAX_BUILD_BYTES", "1000")]);
    let admin = app_page_with_a_deployment(&browser, &server);

    // Larger than max_build_bytes: refused, and nothing runs.
    let big = build_file(&server, "big.tar", &[0u8; 4096]);
    upload_in_browser(&browser, &big);
    let why = upload_error(&browser);
    assert!(why.contains("1000"), "{why}");
    // Not a URL: the server's message lands under the URL field.
    browser.fill("Build URL", "ftp://builds.example.com/native-build.tar");
    browser.press("Import from URL");
    assert!(field_error(&browser, "Build URL").contains("http"));
    assert_eq!(admin.call("GET", "/be/v1/tasks", None).assert_ok()["total"], 0);
}

#[test]
fn an_upload_url_the_server_no_longer_knows_shows_its_answer_and_the_waiting_import_is_cancelled() {
    let Some(browser) = browser_or_skip("console_browser::upload_refused") else { return };
    let server = Server::start();
    let admin = app_page_with_a_deployment(&browser, &server);
    // The page sends its upload to a capability the server never issued, as it would to one
    // that expired while the file was chosen.
    browser.script(
        "const open = XMLHttpRequest.prototype.open; \
         XMLHttpRequest.prototype.open = function (method, url, ...rest) { \
           return open.call(this, method, url.replace(/uploads\\/.*$/, 'uploads/unknown'), ...rest); };",
        json!([]),
    );
    let v1 = build_file(&server, "v1.tar", &tar_of(&game_v1()));
    upload_in_browser(&browser, &v1);
    let why = upload_error(&browser);
    assert!(why.contains("upload"), "{why}");
    // The import still waits for its upload; the page offers to cancel it, which frees the app.
    chain_when(&browser, |rows| rows == [("dltar".to_string(), "submitted".to_string())]);
    browser.press("Cancel upload");
    chain_when(&browser, |rows| rows == [("dltar".to_string(), "expired".to_string())]);
    let app = admin.call("GET", "/be/v1/apps/space_game", None).assert_ok()["app"].clone();
    assert_eq!(app["processing"], false, "{app}");
}

#[test]
fn imports_and_task_actions_are_offered_only_to_roles_that_allow_them() {
    let Some(browser) = browser_or_skip("console_browser::import_permissions") else { return };
    let server = Server::start();
    let password = server.create_org("acme");
    let admin = server.login("acme", "admin", &password);
    admin.call("POST", "/be/v1/apps", Some(json!({"name": "space_game", "label": "Space Game"}))).assert_ok();
    // A failed import, through the API: the upload is no tar.
    let answer = admin.call("POST", "/be/v1/builds", Some(json!({"appName": "space_game"})));
    let url = answer.assert_ok()["upload"]["url"].as_str().unwrap().to_string();
    common::send_raw("PUT", &url, &[], Some(("application/x-tar", &[b'x'; 2048]))).assert_ok();
    common::eventually(CHAIN, || {
        let failed = admin.call("GET", "/be/v1/tasks?status=failed", None).assert_ok()["total"].clone();
        (failed == 1).then_some(())
    });
    // Importers may update apps and read tasks, but not retry them (no tasks X) nor change them.
    admin.create_role("importers", json!({"apps": 6, "tasks": 2}));
    admin.create_user(&server, "ivy", &["importers"]);
    sign_in_directly(&browser, &server, "ivy", PASSWORD, "acme");

    browser.goto(&server.url("/#/apps/space_game"));
    browser.find_with_text("h1", "Space Game");
    browser.field("Build tar file");
    browser.field("Build URL");
    browser.goto(&server.url("/#/tasks"));
    browser.find_with_text("h1", "Tasks");
    browser.wait_for_text("Could not read native-build.tar");
    let buttons: Vec<String> = browser.find_all("main tbody button").iter().map(|b| browser.text(b)).collect();
    assert!(buttons.is_empty(), "no retry without tasks X: {buttons:?}");

    // A reader of apps and tasks gets no import form.
    admin.create_role("readers", json!({"apps": 2, "tasks": 2}));
    admin.create_user(&server, "rex", &["readers"]);
    browser.press("Sign out");
    sign_in_directly(&browser, &server, "rex", PASSWORD, "acme");
    browser.goto(&server.url("/#/apps/space_game"));
    browser.find_with_text("h1", "Space Game");
    browser.wait_for_text("No builds yet.");
    assert!(browser.find_all("input[type=file]").is_empty(), "no upload for a reader");
    assert!(!browser.page_text().contains("Import a build"));
}

#[test]
fn deployments_subscriptions_and_machine_keys_show_their_secrets_once() {
    let Some(browser) = browser_or_skip("console_browser::secrets_once") else { return };
    let server = Server::start();
    let password = server.create_org("acme");
    let admin = server.login("acme", "admin", &password);
    sign_in_directly(&browser, &server, "admin", &password, "acme");

    // A deployment to a directory; the S3 fields stay hidden for that origin type.
    browser.goto(&server.url("/#/deployments"));
    browser.open("New deployment");
    assert!(browser
        .find_all("input[name='origin.bucket']")
        .iter()
        .all(|el| { browser.script("return arguments[0].offsetParent === null", json!([el.as_arg()])) == true }));
    assert_eq!(unlabelled_fields(&browser), Vec::<String>::new());
    browser.fill("Name", "local_cdn");
    let cdn = server.home.path().join("cdn");
    browser.fill("Directory", &cdn.display().to_string());
    browser.press("Create deployment");
    browser.find_with_text("h1", "local_cdn");
    admin.call("GET", "/be/v1/deployments/local_cdn", None).assert_ok();
    browser.screenshots("deployment");

    // A subscription: its signing secret appears once.
    browser.goto(&server.url("/#/subscriptions"));
    browser.open("New subscription");
    assert_eq!(unlabelled_fields(&browser), Vec::<String>::new());
    browser.fill("Name", "builds_hook");
    browser.fill("URL", "https://hooks.example.com/rockit");
    browser.press("Create subscription");
    let secret = browser.wait_for("the signing secret", || {
        let code = browser.find_all(".one-time code.secret").into_iter().next()?;
        Some(browser.text(&code))
    });
    assert!(secret.len() >= 32, "{secret:?}");
    browser.find_with_text("td", "builds_hook");
    browser.screenshots("subscriptions");
    browser.press("Done");
    assert!(!browser.page_text().contains(&secret), "gone once dismissed");

    // A machine account: its API key appears once and works.
    browser.goto(&server.url("/#/users"));
    browser.open("New account");
    let kind = browser.field("Kind");
    browser.type_into(&kind, "Machine");
    browser.fill("Username", "ci_bot");
    browser.fill("Label", "CI pipeline");
    browser.press("Create account");
    let key = browser.wait_for("the API key", || {
        let code = browser.find_all(".one-time code.secret").into_iter().next()?;
        Some(browser.text(&code))
    });
    let headers = [("x-rockit-orgname", "acme"), ("x-rockit-username", "ci_bot"), ("x-rockit-api-key", key.as_str())];
    send("GET", &server.url("/be/v1/users/ci_bot"), &headers, None).assert_ok();
    assert_eq!(browser.console_errors(), Vec::<String>::new());
}

/// A webhook receiver on loopback that reads each request whole and answers 500; answers its URL.
fn receiver_answering_500() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            // The body is read before answering: closing on unread bytes would reset the
            // connection, and the server would record a transport error instead of the 500.
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut length = 0;
            let mut line = String::new();
            while reader.read_line(&mut line).unwrap_or(0) > 0 && line != "\r\n" {
                if let Some((name, value)) = line.split_once(':') {
                    if name.eq_ignore_ascii_case("content-length") {
                        length = value.trim().parse().unwrap_or(0);
                    }
                }
                line.clear();
            }
            let mut body = vec![0; length];
            if reader.read_exact(&mut body).is_ok() {
                let reply = "HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
                let _ = stream.write_all(reply.as_bytes());
            }
        }
    });
    url
}

#[test]
fn a_subscriptions_page_shows_a_failing_receivers_delivery_with_its_error() {
    let Some(browser) = browser_or_skip("console_browser::subscription_deliveries") else { return };
    // The next attempt an hour away keeps the failed first one pending while the page is read.
    let server = Server::start_with(&[
        ("ROCKIT_EDGE_OUTBOUND_ALLOW_LOOPBACK", "true"),
        ("ROCKIT_EDGE_WEBHOOK_RETRY_DELAYS", "1h"),
        ("ROCKIT_EDGE_WEBHOOK_TIMEOUT", "10s"),
    ]);
    let password = server.create_org("acme");
    let admin = server.login("acme", "admin", &password);
    let url = receiver_answering_500();
    let body = json!({"name": "broken_hook", "type": "webhook", "url": url, "events": []});
    admin.call("POST", "/be/v1/subscriptions", Some(body)).assert_ok();
    admin.call("POST", "/be/v1/apps", Some(json!({"name": "space_game", "label": "Space Game"}))).assert_ok();
    // An import whose download this server answers 404: its `dltar submit` goes out first.
    let build = json!({"appName": "space_game", "url": server.url("/no/such/native-build.tar")});
    admin.call("POST", "/be/v1/builds", Some(build)).assert_ok();
    let head = common::eventually(CHAIN, || {
        let answer = admin.call("GET", "/be/v1/subscriptions/broken_hook", None).assert_ok()["subscription"].clone();
        let head = answer["deliveries"].as_array()?.last()?.clone();
        (head["attempts"].as_i64() >= Some(1)).then_some(head)
    });
    assert_eq!((head["status"].as_str(), head["lastStatus"].as_i64()), (Some("pending"), Some(500)), "{head}");
    let error = head["lastError"].as_str().unwrap().to_string();

    sign_in_directly(&browser, &server, "admin", &password, "acme");
    browser.goto(&server.url("/#/subscriptions"));
    let link = browser.find_with_text("td a", "broken_hook");
    browser.click(&link);
    browser.find_with_text("h1", "broken_hook");
    browser.find_with_text("h2", "Last deliveries");
    let row = browser.find_with_text("tbody tr", "dltar submit");
    let text = browser.text(&row);
    for shown in ["pending", "1", "500", error.as_str(), "space_game"] {
        assert!(text.contains(shown), "{shown:?} in the delivery row {text:?}");
    }
    browser.screenshots("subscription");
    assert_eq!(browser.console_errors(), Vec::<String>::new());
}

#[test]
fn a_session_left_alone_longer_than_its_refresh_token_lives_asks_to_sign_in_again() {
    let Some(browser) = browser_or_skip("console_browser::expired_session") else { return };
    let server = Server::start_with(&[("ROCKIT_EDGE_ACCESS_TTL", "2s"), ("ROCKIT_EDGE_REFRESH_TTL", "3s")]);
    let password = server.create_org("acme");
    sign_in_directly(&browser, &server, "admin", &password, "acme");
    browser.find_with_text("h1", "Apps");

    // The tab shows another page (as a sleeping laptop would, no timers run) past both lifetimes.
    browser.goto("about:blank");
    let start = Instant::now();
    browser.wait_for("the refresh token to expire", || (start.elapsed() > Duration::from_secs(5)).then_some(()));
    browser.goto(&server.url("/#/apps"));
    browser.find_with_text("h1", "Sign in");
    browser.wait_for_text("Your session has expired. Please sign in again.");
    assert_eq!(stored_refresh_token(&browser), "", "the dead token is dropped");
}

/// The text of the visible error next to the field labelled `label`, once there is one.
fn field_error(browser: &Browser, label: &str) -> String {
    let field = browser.field(label);
    browser.wait_for(&format!("an error next to {label:?}"), || {
        let shown = browser.script(
            "const ids = (arguments[0].getAttribute('aria-describedby') || '').split(' '); \
             const error = document.getElementById(ids[ids.length - 1]); \
             return error && !error.hidden ? error.textContent : null;",
            json!([field.as_arg()]),
        );
        shown.as_str().map(str::to_string)
    })
}

#[test]
fn apps_roles_deployments_and_users_are_changed_and_deleted_through_the_console() {
    let Some(browser) = browser_or_skip("console_browser::change_and_delete") else { return };
    let server = Server::start();
    let password = server.create_org("acme");
    let admin = server.login("acme", "admin", &password);
    admin.call("POST", "/be/v1/apps", Some(json!({"name": "space_game", "label": "Space Game"}))).assert_ok();
    admin.create_role("testers", json!({"apps": 2}));
    admin.create_user(&server, "tess", &["testers"]);
    sign_in_directly(&browser, &server, "admin", &password, "acme");

    // App: new label, then gone.
    browser.goto(&server.url("/#/apps/space_game"));
    browser.fill("Label", "Space Game II");
    browser.press("Save changes");
    browser.find_with_text("h1", "Space Game II");
    browser.wait_for_text("Saved.");
    browser.press("Delete app");
    browser.press("Yes, delete app");
    browser.find_with_text("h1", "Apps");
    admin.call("GET", "/be/v1/apps/space_game", None).assert_error(404, "not-found");

    // Role: one more bit through the grid.
    browser.goto(&server.url("/#/roles/testers"));
    let update_apps = browser.find("input[aria-label='apps: Update']");
    browser.click(&update_apps);
    browser.press("Save changes");
    browser.wait_for_text("Saved.");
    assert_eq!(admin.call("GET", "/be/v1/roles/testers", None).assert_ok()["role"]["permissions"]["apps"], 6);

    // User: deleted; then the role it held can go too.
    browser.goto(&server.url("/#/users/tess"));
    browser.press("Delete account");
    browser.press("Yes, delete account");
    browser.find_with_text("h1", "Users");
    admin.call("GET", "/be/v1/users/tess", None).assert_error(404, "not-found");
    browser.goto(&server.url("/#/roles/testers"));
    browser.press("Delete role");
    browser.press("Yes, delete role");
    browser.find_with_text("h1", "Roles");
    admin.call("GET", "/be/v1/roles/testers", None).assert_error(404, "not-found");

    // Deployment: a nested parameter's error (origin.path) lands next to its own field.
    browser.goto(&server.url("/#/deployments"));
    browser.open("New deployment");
    browser.fill("Name", "inside_state");
    browser.fill("Directory", &server.state_dir.join("depot").display().to_string());
    browser.press("Create deployment");
    assert!(field_error(&browser, "Directory").contains("state directory"));
    browser.fill("Directory", &server.home.path().join("cdn").display().to_string());
    browser.press("Create deployment");
    browser.find_with_text("h1", "inside_state");
    browser.press("Delete deployment");
    browser.press("Yes, delete deployment");
    browser.find_with_text("h1", "Deployments");
    admin.call("GET", "/be/v1/deployments/inside_state", None).assert_error(404, "not-found");
}

// Go live / roll back, permissions after a reload, the Tasks page refreshing itself (issue 12's
// remaining items, with issue 11's POST /be/v1/commit and GET /be/v1/me).

/// Imports `tree` through the API (upload mode) and waits until the app has settled.
fn import_by_api(admin: &common::Session, app: &str, tree: &engine_support::Tree) {
    let tar = tar_of(tree);
    let reply = admin.call("POST", "/be/v1/builds", Some(json!({"appName": app, "size": tar.len()})));
    let url = reply.assert_ok()["upload"]["url"].as_str().unwrap().to_string();
    common::send_raw("PUT", &url, &[], Some(("application/x-tar", &tar))).assert_ok();
    common::eventually(CHAIN, || {
        let app = admin.call("GET", &format!("/be/v1/apps/{app}"), None).assert_ok()["app"].clone();
        (app["processing"] == false && app["exporting"] == false).then_some(())
    });
}

/// The build the app page marks `current`, as its `#N` text.
fn marked_current(browser: &Browser) -> String {
    let text = browser.script(
        "const badge = [...document.querySelectorAll('main section td .badge')].find((b) => b.textContent === 'current'); \
         return badge ? badge.parentElement.firstChild.textContent.trim() : '';",
        json!([]),
    );
    text.as_str().unwrap_or_default().to_string()
}

#[test]
fn going_live_and_rolling_back_from_the_app_page_moves_the_current_build_everywhere() {
    let Some(browser) = browser_or_skip("console_browser::go_live") else { return };
    let server = Server::start();
    let admin = app_page_with_a_deployment(&browser, &server);
    import_by_api(&admin, "space_game", &game_v1());
    import_by_api(&admin, "space_game", &game_v2());
    let pointer = server.home.path().join("cdn/dxf/acme/space_game/current.json");
    let live = || -> Value { serde_json::from_slice(&std::fs::read(&pointer).unwrap()).unwrap() };
    assert_eq!(live()["buildId"], 2);

    browser.refresh();
    browser.wait_for("build #2 marked current", || (marked_current(&browser) == "#2").then_some(()));
    assert_eq!(unlabelled_fields(&browser), Vec::<String>::new());
    // Only the other build offers to switch; the current one says it is live.
    let offered: Vec<String> = browser.find_all("main button.commit").iter().map(|b| browser.text(b)).collect();
    assert_eq!(offered, ["Roll back"]);

    browser.press("Roll back");
    browser.wait_for_text("Build #1 is live on every deployment.");
    browser.wait_for("build #1 marked current", || (marked_current(&browser) == "#1").then_some(()));
    // The commit task was shown with its status while it ran and stays shown, done.
    let task = browser.find(".commit-status .badge");
    assert_eq!(browser.text(&task), "done");
    assert_eq!(admin.call("GET", "/be/v1/apps/space_game", None).assert_ok()["app"]["iCurBuild"], 1);
    assert_eq!(live()["buildId"], 1);
    browser.script(
        "[...document.querySelectorAll('main h2')].find((h) => h.textContent === 'Builds').scrollIntoView()",
        json!([]),
    );
    browser.screenshots("app-rolled-back");

    browser.press("Go live");
    browser.wait_for_text("Build #2 is live on every deployment.");
    browser.wait_for("build #2 marked current again", || (marked_current(&browser) == "#2").then_some(()));
    assert_eq!(admin.call("GET", "/be/v1/apps/space_game", None).assert_ok()["app"]["iCurBuild"], 2);
    assert_eq!(live()["buildId"], 2);
    assert_eq!(browser.console_errors(), Vec::<String>::new());

    // A reader sees which build is current but is offered no switch.
    admin.create_role("viewers", json!({"apps": 2}));
    admin.create_user(&server, "vera", &["viewers"]);
    browser.press("Sign out");
    sign_in_directly(&browser, &server, "vera", PASSWORD, "acme");
    browser.goto(&server.url("/#/apps/space_game"));
    browser.wait_for("build #2 marked current for the reader", || (marked_current(&browser) == "#2").then_some(()));
    assert!(browser.find_all("main button").is_empty(), "no Go live / Roll back for a reader");
}

#[test]
fn after_a_reload_the_menus_follow_the_permissions_the_server_grants_now() {
    let Some(browser) = browser_or_skip("console_browser::permissions_after_reload") else { return };
    let server = Server::start();
    let password = server.create_org("acme");
    let admin = server.login("acme", "admin", &password);
    admin.create_role("viewers", json!({"apps": 2}));
    admin.create_user(&server, "vera", &["viewers"]);
    sign_in_directly(&browser, &server, "vera", PASSWORD, "acme");
    browser.find_with_text("h1", "Apps");
    let nav = || -> Vec<String> { browser.find_all(".topbar nav a").iter().map(|a| browser.text(a)).collect() };
    assert_eq!(nav(), ["Apps", "Administration"]);

    // The administrator widens the role: after a reload vera is offered Tasks and app creation.
    let widened = json!({"name": "viewers", "permissions": {"apps": 3, "tasks": 2}});
    admin.call("PATCH", "/be/v1/roles", Some(widened)).assert_ok();
    browser.refresh();
    browser.wait_for("the Tasks menu", || (nav() == ["Apps", "Tasks", "Administration"]).then_some(()));
    browser.find_with_text("summary", "New app");

    // Narrowed again: the menu shrinks on the next reload, and Apps is no longer home.
    let narrowed = json!({"name": "viewers", "permissions": {"tasks": 2}});
    admin.call("PATCH", "/be/v1/roles", Some(narrowed)).assert_ok();
    browser.refresh();
    browser.wait_for("only the Tasks menu", || (nav() == ["Tasks", "Administration"]).then_some(()));
    browser.goto(&server.url("/#/apps"));
    browser.wait_for_text("Your roles do not allow you to see this page.");
}

#[test]
fn the_tasks_page_updates_itself_while_tasks_run_and_keeps_its_filters() {
    let Some(browser) = browser_or_skip("console_browser::tasks_auto_refresh") else { return };
    let server = Server::start();
    let admin = app_page_with_a_deployment(&browser, &server);
    // An import waiting for its upload: its dltar is `submitted` until the tar arrives.
    let tar = tar_of(&game_v1());
    let reply = admin.call("POST", "/be/v1/builds", Some(json!({"appName": "space_game", "size": tar.len()})));
    let url = reply.assert_ok()["upload"]["url"].as_str().unwrap().to_string();

    browser.goto(&server.url("/#/tasks"));
    browser.find_with_text("h1", "Tasks");
    let kind = browser.field("Type");
    browser.type_into(&kind, "dltar");
    let statuses = || -> Vec<(String, String)> {
        let rows = browser.script(
            "return [...document.querySelectorAll('main tbody tr')].map((tr) => \
               [tr.querySelector('.task-name strong').textContent, tr.querySelector('.badge').textContent]);",
            json!([]),
        );
        serde_json::from_value(rows).unwrap_or_default()
    };
    browser.wait_for("the waiting dltar", || {
        (statuses() == [("dltar".to_string(), "submitted".to_string())]).then_some(())
    });
    browser.wait_for_text("this page updates itself");

    // The upload arrives outside the browser; the page follows without a click or reload.
    common::send_raw("PUT", &url, &[], Some(("application/x-tar", &tar))).assert_ok();
    common::eventually(CHAIN, || (statuses() == [("dltar".to_string(), "done".to_string())]).then_some(()));
    // The filter is still applied: mkraw and deploy are not listed, and the select kept its value.
    let selected = browser.script("return document.querySelector('main select[name=type]').value", json!([]));
    assert_eq!(selected, "dltar");
    browser.wait_for("the self-update notice to go once nothing runs", || {
        (!browser.page_text().contains("this page updates itself")).then_some(())
    });
    assert_eq!(browser.console_errors(), Vec::<String>::new());
}

#[test]
fn a_tar_uploaded_as_staged_is_published_without_going_live_until_go_live_is_pressed() {
    let Some(browser) = browser_or_skip("console_browser::staged_upload") else { return };
    let server = Server::start();
    let admin = app_page_with_a_deployment(&browser, &server);
    import_by_api(&admin, "space_game", &game_v1());
    browser.refresh();
    browser.wait_for("build #1 marked current", || (marked_current(&browser) == "#1").then_some(()));

    let v2 = build_file(&server, "v2.tar", &tar_of(&game_v2()));
    let stage = browser.field("Stage only: go live later from the builds list");
    browser.click(&stage);
    upload_in_browser(&browser, &v2);
    chain_when(&browser, all_done);
    // Build 2 is listed and offered, build 1 stays current.
    let go_live = browser.wait_for("Go live for build #2", || {
        browser.find_all("main button.commit").into_iter().find(|b| browser.text(b) == "Go live")
    });
    assert_eq!(marked_current(&browser), "#1");
    assert_eq!(admin.call("GET", "/be/v1/apps/space_game", None).assert_ok()["app"]["iCurBuild"], 1);
    browser.click(&go_live);
    browser.wait_for_text("Build #2 is live on every deployment.");
    assert_eq!(admin.call("GET", "/be/v1/apps/space_game", None).assert_ok()["app"]["iCurBuild"], 2);
}

#[test]
fn the_tasks_page_stops_asking_while_the_tab_is_hidden_and_catches_up_when_shown() {
    let Some(browser) = browser_or_skip("console_browser::tasks_hidden_tab") else { return };
    let server = Server::start();
    let admin = app_page_with_a_deployment(&browser, &server);
    // A task that stays `submitted` (an upload that never comes) keeps the page polling.
    admin.call("POST", "/be/v1/builds", Some(json!({"appName": "space_game"}))).assert_ok();
    browser.goto(&server.url("/#/tasks"));
    browser.wait_for_text("this page updates itself");
    // Count the page's task list requests, and let the test say whether the tab is hidden.
    browser.script(
        "window.taskCalls = 0; window.tabHidden = false; const real = window.fetch; \
         window.fetch = (url, init) => { if (String(url).startsWith('/be/v1/tasks')) window.taskCalls += 1; return real(url, init); }; \
         Object.defineProperty(document, 'hidden', { configurable: true, get: () => window.tabHidden });",
        json!([]),
    );
    let calls = || browser.script("return window.taskCalls", json!([])).as_u64().unwrap_or(0);
    browser.wait_for("the page to poll", || (calls() >= 1).then_some(()));

    // Shown again right away: one reload, and the backoff starts over at its shortest delay.
    let hide =
        "window.tabHidden = true; document.dispatchEvent(new Event('visibilitychange')); return window.taskCalls;";
    let show =
        "window.tabHidden = false; document.dispatchEvent(new Event('visibilitychange')); return window.taskCalls;";
    browser.script(hide, json!([]));
    let before = browser.script(show, json!([])).as_u64().unwrap();
    browser.wait_for("a reload when shown", || (calls() > before).then_some(()));
    let hidden_at = browser.script(hide, json!([])).as_u64().unwrap();
    // Several of the shortest delays pass while hidden: no request goes out.
    std::thread::sleep(Duration::from_secs(5));
    assert_eq!(calls(), hidden_at, "requests while the tab was hidden");
    let shown_at = browser.script(show, json!([])).as_u64().unwrap();
    browser.wait_for("a reload when shown again", || (calls() > shown_at).then_some(()));
}
