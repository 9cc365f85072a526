//! A small W3C WebDriver client (JSON over HTTP with `ureq`) driving Debian's headless
//! `chromium` through `chromedriver`, for the console's browser tests. Only the commands those
//! tests use. Every wait is a poll with a generous deadline: the machine may be slow and loaded.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// How long any wait in the browser may take before the test fails.
pub const PATIENCE: Duration = Duration::from_secs(60);

/// WebDriver's key codes.
pub const TAB: &str = "\u{E004}";
pub const ENTER: &str = "\u{E007}";

/// Where the browser and its driver are, or why the browser tests cannot run here.
pub fn find_browser() -> Result<(PathBuf, PathBuf), String> {
    let which = |name: &str| {
        std::env::var_os("PATH")
            .and_then(|paths| std::env::split_paths(&paths).map(|dir| dir.join(name)).find(|p| p.is_file()))
    };
    let chromium = which("chromium").ok_or("no `chromium` on PATH")?;
    let driver = which("chromedriver").ok_or("no `chromedriver` on PATH")?;
    Ok((chromium, driver))
}

/// The browser, or `None` (with a note on stderr) where it is not installed and the run does not
/// demand it. CI sets `ROCKIT_TEST_BROWSER=required` (after `scripts/test-deps` installed
/// the packages), so there a missing browser fails the run instead of skipping.
pub fn browser_or_skip(test: &str) -> Option<Browser> {
    match find_browser() {
        Ok((chromium, driver)) => Some(Browser::start(&chromium, &driver)),
        Err(why) => {
            let required = std::env::var("ROCKIT_TEST_BROWSER").is_ok_and(|v| v == "required");
            assert!(!required, "{test}: {why}; run scripts/test-deps to install chromium and chromium-driver");
            eprintln!("SKIPPED {test}: {why} (scripts/test-deps installs chromium and chromium-driver)");
            None
        }
    }
}

/// A running chromedriver with one browser session. Both end on drop.
pub struct Browser {
    driver: Child,
    base: String,
    session: String,
    profile: tempfile::TempDir,
}

/// An element reference of the current page.
#[derive(Clone, Debug)]
pub struct Element(String);

impl Element {
    /// The reference as a script argument (`arguments[i]` in [`Browser::script`]).
    pub fn as_arg(&self) -> Value {
        json!({ ELEMENT_KEY: self.0 })
    }
}

fn agent() -> ureq::Agent {
    ureq::AgentBuilder::new().timeout(Duration::from_secs(120)).build()
}

impl Browser {
    pub fn start(chromium: &Path, driver: &Path) -> Browser {
        let mut child = Command::new(driver)
            .arg("--port=0")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let stdout = child.stdout.take().expect("chromedriver stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let deadline = Instant::now() + PATIENCE;
        let port = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = rx.recv_timeout(left).expect("chromedriver did not say its port");
            if let Some(rest) = line.split("started successfully on port ").nth(1) {
                break rest.trim_end_matches('.').trim().to_string();
            }
        };
        let base = format!("http://127.0.0.1:{port}");
        let profile = tempfile::tempdir().expect("browser profile dir");
        let args = [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
            "--window-size=1280,900",
            &format!("--user-data-dir={}", profile.path().display()),
        ];
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": chromium.display().to_string(), "args": args},
            "unhandledPromptBehavior": "ignore",
            "goog:loggingPrefs": {"browser": "ALL"},
        }}});
        let answer = raw(&base, "POST", "/session", Some(caps)).unwrap_or_else(|e| panic!("new browser session: {e}"));
        let session = answer["sessionId"].as_str().expect("session id").to_string();
        Browser { driver: child, base, session, profile }
    }

    fn cmd(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        self.try_cmd(method, path, body).unwrap_or_else(|e| panic!("WebDriver {method} {path}: {e}"))
    }

    fn try_cmd(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value, String> {
        raw(&self.base, method, &format!("/session/{}{path}", self.session), body)
    }

    pub fn goto(&self, url: &str) {
        self.cmd("POST", "/url", Some(json!({"url": url})));
    }

    pub fn refresh(&self) {
        self.cmd("POST", "/refresh", Some(json!({})));
    }

    pub fn url(&self) -> String {
        self.cmd("GET", "/url", None).as_str().unwrap_or_default().to_string()
    }

    pub fn set_width(&self, width: u32, height: u32) {
        self.cmd("POST", "/window/rect", Some(json!({"width": width, "height": height})));
    }

    /// Runs a function body in the page and answers its return value.
    pub fn script(&self, body: &str, args: Value) -> Value {
        self.cmd("POST", "/execute/sync", Some(json!({"script": body, "args": args})))
    }

    pub fn find_all(&self, css: &str) -> Vec<Element> {
        let found = self.cmd("POST", "/elements", Some(json!({"using": "css selector", "value": css})));
        found.as_array().map(|items| items.iter().filter_map(element_id).map(Element).collect()).unwrap_or_default()
    }

    /// The first element matching `css`, once one is there.
    #[track_caller]
    pub fn find(&self, css: &str) -> Element {
        self.wait_for(&format!("an element `{css}`"), || self.find_all(css).into_iter().next())
    }

    /// The first element matching `css` whose text contains `text`, once one is there.
    #[track_caller]
    pub fn find_with_text(&self, css: &str, text: &str) -> Element {
        self.wait_for(&format!("`{css}` with text {text:?}"), || {
            self.find_all(css).into_iter().find(|el| self.try_text(el).is_some_and(|t| t.contains(text)))
        })
    }

    /// The form control labelled `label` (its `<label for>` text, exactly).
    #[track_caller]
    pub fn field(&self, label: &str) -> Element {
        self.wait_for(&format!("a field labelled {label:?}"), || {
            let found = self.script(
                "for (const l of document.querySelectorAll('label')) { \
                   if (l.textContent.trim() === arguments[0] && l.htmlFor) { \
                     const el = document.getElementById(l.htmlFor); if (el && el.offsetParent !== null) return el; } } \
                 return null;",
                json!([label]),
            );
            element_id(&found).map(Element)
        })
    }

    /// Polls `probe` until it answers `Some`, for at most [`PATIENCE`].
    #[track_caller]
    pub fn wait_for<T>(&self, what: &str, mut probe: impl FnMut() -> Option<T>) -> T {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(found) = probe() {
                return found;
            }
            assert!(
                Instant::now() < deadline,
                "waited {PATIENCE:?} for {what} at {}; page text:\n{}",
                self.url(),
                self.page_text()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits until the page's visible text contains `text`.
    #[track_caller]
    pub fn wait_for_text(&self, text: &str) {
        self.wait_for(&format!("the text {text:?}"), || self.page_text().contains(text).then_some(()));
    }

    pub fn page_text(&self) -> String {
        self.try_cmd("POST", "/execute/sync", Some(json!({"script": "return document.body.innerText", "args": []})))
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default()
    }

    pub fn click(&self, el: &Element) {
        self.cmd("POST", &format!("/element/{}/click", el.0), Some(json!({})));
    }

    pub fn clear(&self, el: &Element) {
        self.cmd("POST", &format!("/element/{}/clear", el.0), Some(json!({})));
    }

    pub fn type_into(&self, el: &Element, text: &str) {
        self.cmd("POST", &format!("/element/{}/value", el.0), Some(json!({"text": text})));
    }

    /// Replaces a field's content.
    pub fn fill(&self, label: &str, text: &str) {
        let el = self.field(label);
        self.clear(&el);
        self.type_into(&el, text);
    }

    /// Types into whatever has the keyboard focus (keys such as [`TAB`] included).
    pub fn keys(&self, text: &str) {
        let active = self.cmd("GET", "/element/active", None);
        let el = Element(element_id(&active).expect("a focused element"));
        self.type_into(&el, text);
    }

    pub fn text(&self, el: &Element) -> String {
        self.try_text(el).unwrap_or_default()
    }

    fn try_text(&self, el: &Element) -> Option<String> {
        self.try_cmd("GET", &format!("/element/{}/text", el.0), None).ok().and_then(|v| v.as_str().map(str::to_string))
    }

    /// Clicks the button whose text is exactly `text`.
    #[track_caller]
    pub fn press(&self, text: &str) {
        let button = self.wait_for(&format!("a button {text:?}"), || {
            self.find_all("button").into_iter().find(|b| self.try_text(b).is_some_and(|t| t.trim() == text))
        });
        self.click(&button);
    }

    /// Opens a `<details>` section by its summary text.
    pub fn open(&self, summary: &str) {
        let el = self.find_with_text("summary", summary);
        self.click(&el);
    }

    /// The text of an open alert dialog, if a script opened one.
    pub fn alert_text(&self) -> Option<String> {
        self.try_cmd("GET", "/alert/text", None).ok().and_then(|v| v.as_str().map(str::to_string))
    }

    /// Errors the page reported since the last call (script errors, CSP violations, failed loads).
    pub fn console_errors(&self) -> Vec<String> {
        let entries = self.try_cmd("POST", "/se/log", Some(json!({"type": "browser"}))).unwrap_or(Value::Null);
        entries
            .as_array()
            .map(|items| {
                items
                    .iter()
                    .filter(|e| e["level"] == "SEVERE")
                    .map(|e| e["message"].as_str().unwrap_or_default().to_string())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Saves a PNG of the viewport.
    pub fn screenshot(&self, path: &Path) {
        use base64::Engine;
        let data = self.cmd("GET", "/screenshot", None);
        let png = base64::engine::general_purpose::STANDARD.decode(data.as_str().unwrap_or_default()).expect("base64");
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).expect("screenshot dir");
        }
        std::fs::write(path, png).expect("write screenshot");
    }

    /// Screenshots at 1280 and 390 px wide, under `target/console-screenshots/NAME-WIDTH.png`.
    pub fn screenshots(&self, name: &str) {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/console-screenshots");
        for (width, height) in [(1280, 900), (390, 844)] {
            self.set_width(width, height);
            // Layout after a resize happens on the next frame; wait for the page to report it.
            self.wait_for("the resize", || {
                let inner = self.script("return window.innerWidth", json!([])).as_u64().unwrap_or(0);
                (inner > 0 && inner <= u64::from(width)).then_some(())
            });
            self.screenshot(&dir.join(format!("{name}-{width}.png")));
        }
        self.set_width(1280, 900);
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = raw(&self.base, "DELETE", &format!("/session/{}", self.session), None);
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// The W3C WebDriver key of an element reference.
const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";

fn element_id(value: &Value) -> Option<String> {
    value.get(ELEMENT_KEY).and_then(Value::as_str).map(str::to_string)
}

/// One WebDriver call; answers `value` or the driver's error.
fn raw(base: &str, method: &str, path: &str, body: Option<Value>) -> Result<Value, String> {
    let req = agent().request(method, &format!("{base}{path}"));
    let result = match body {
        Some(body) => req.send_json(body),
        None => req.call(),
    };
    let resp = match result {
        Ok(resp) => resp,
        Err(ureq::Error::Status(_, resp)) => resp,
        Err(e) => return Err(e.to_string()),
    };
    let status = resp.status();
    let answer: Value = resp.into_json().map_err(|e| e.to_string())?;
    if status == 200 {
        Ok(answer["value"].clone())
    } else {
        Err(format!("{status}: {} {}", answer["value"]["error"], answer["value"]["message"]))
    }
}
