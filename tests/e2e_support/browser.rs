//! The dashboard in a real browser, the harness: headless Chromium driven through chromedriver
//! (WebDriver) against the real `rosey` binary, a card as the user sees it, waiting for the page
//! to change, frame times. The tests are in `browser_*.rs`, one file per feature of the page.
//!
//! One browser at a time (a static lock): two Chromiums at once would starve a 2-core machine.
//! Screenshots land in `target/screenshots/`.

use crate::e2e_support as e2e;

use std::path::Path;
use std::process::Command;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::common::{DEADLINE, Rosey, RoseyBuilder, free_port, request};

static ONE_BROWSER: Mutex<()> = Mutex::new(());

pub const PLUGINS: [&str; 3] = ["dice-roller", "8ball", "hostile"];
pub const DESKTOP: (u32, u32) = (1280, 1000);
pub const PHONE: (u32, u32) = (375, 812);
/// "Within a few seconds" for a live update (one poll interval is 1 s in these tests).
pub const LIVE_DEADLINE: Duration = Duration::from_secs(10);

/// How the browser reaches the bot.
pub enum Scheme<'a> {
    Http,
    /// HTTPS (the builder sets `dashboard.tls`) with a certificate issued by `ca`, which the
    /// browser trusts as a user's would after importing it: the CA is in the NSS database of
    /// a HOME of the browser's own (made with `certutil`, from libnss3-tools).
    Https {
        ca: &'a Path,
    },
}

/// Run `body` against a started bot and a fresh browser showing its dashboard, then check the
/// browser console stayed clean. Skips (or fails, in CI) without chromium and chromedriver.
pub fn in_browser(test: &str, javascript: bool, builder: RoseyBuilder, body: impl AsyncFnOnce(&mut Rosey, &Browser)) {
    in_browser_via(test, javascript, builder, Scheme::Http, body);
}

/// [`in_browser`], reaching the bot by `scheme`.
pub fn in_browser_via(
    test: &str,
    javascript: bool,
    builder: RoseyBuilder,
    scheme: Scheme,
    body: impl AsyncFnOnce(&mut Rosey, &Browser),
) {
    let needed: &[&str] = match scheme {
        Scheme::Http => &["chromium", "chromedriver"],
        Scheme::Https { .. } => &["chromium", "chromedriver", "certutil", "curl"],
    };
    let Some(tools) = e2e::tools(test, needed) else { return };
    let _one = ONE_BROWSER.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let auth = &builder.config["dashboard"]["auth"];
    let credentials =
        auth["username"].as_str().map(|user| format!("{user}:{}@", auth["password"].as_str().unwrap_or("")));
    let home = tempfile::tempdir().expect("a temporary directory");
    let (mut rosey, base) = match scheme {
        Scheme::Http => (builder.start(), "http://"),
        Scheme::Https { ca } => {
            trust_in_nss(home.path(), ca);
            let rosey = builder.spawn();
            let health = format!("https://127.0.0.1:{}/health", rosey.port());
            e2e::poll_until("the dashboard to answer over HTTPS", DEADLINE, || {
                rosey.assert_alive();
                let mut curl = Command::new("curl");
                let output = curl.args(["-sSf", "--max-time", "5", "--cacert"]).arg(ca).arg(&health).output();
                let output = output.expect("curl runs");
                if output.status.success() { Ok(()) } else { Err(String::from_utf8_lossy(&output.stderr).into_owned()) }
            });
            (rosey, "https://")
        }
    };
    if credentials.is_none() && matches!(scheme, Scheme::Http) {
        // (With auth, or over HTTPS, the test waits for its plugins itself.)
        rosey.wait_until_running();
    }
    let page = rosey.url("/").replacen("http://", base, 1);
    let runtime =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("a tokio runtime");
    runtime.block_on(async {
        let home = matches!(scheme, Scheme::Https { .. }).then_some(home.path());
        let browser = Browser::open(&tools[0], &tools[1], javascript, home).await;
        browser.resize(DESKTOP).await;
        if let Some(credentials) = credentials {
            // What a person does by typing them into the browser's prompt once: the browser
            // keeps them and sends them with every request to this origin (the page's own
            // address must not hold them: fetch refuses URLs with credentials).
            let with_credentials = page.replacen(base, &format!("{base}{credentials}"), 1);
            browser.client.goto(&with_credentials).await.expect("the dashboard loads with credentials");
        }
        browser.client.goto(&page).await.expect("the dashboard loads");
        body(&mut rosey, &browser).await;
        if javascript {
            browser.assert_no_console_errors();
        }
        browser.close().await;
    });
}

/// Make `home`'s NSS database (where Chromium on Linux reads the certificates its user
/// trusts) trust `ca` to identify web sites.
fn trust_in_nss(home: &Path, ca: &Path) {
    let db = home.join(".pki/nssdb");
    std::fs::create_dir_all(&db).expect("the NSS database's directory");
    let db = format!("sql:{}", db.display());
    let run = |command: &mut Command| {
        let output = command.output().expect("certutil runs");
        assert!(output.status.success(), "{command:?}: {}", String::from_utf8_lossy(&output.stderr));
    };
    run(Command::new("certutil").args(["-N", "-d", &db, "--empty-password"]));
    // C: a CA trusted to issue server certificates.
    run(Command::new("certutil").args(["-A", "-d", &db, "-n", "rosey test CA", "-t", "C,,", "-i"]).arg(ca));
}

/// A WebDriver session on a headless Chromium of its own (own chromedriver, own profile).
pub struct Browser {
    pub client: Client,
    session_url: String,
    driver: e2e::Daemon,
    _profile: tempfile::TempDir,
}

impl Browser {
    /// With `home`, Chromium runs with that HOME (whose NSS database it reads trust from).
    async fn open(chromium: &Path, chromedriver: &Path, javascript: bool, home: Option<&Path>) -> Browser {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let port = free_port();
        let mut command = Command::new(chromedriver);
        command.arg(format!("--port={port}")).current_dir(dir.path());
        if let Some(home) = home {
            command.env("HOME", home);
        }
        let mut driver = e2e::Daemon::spawn("chromedriver", command, &dir.path().join("chromedriver.log"));
        let driver_url = format!("http://127.0.0.1:{port}");
        e2e::poll_until("chromedriver to be ready", DEADLINE, || {
            driver.assert_alive();
            let reply = request("GET", &format!("{driver_url}/status"), &[]).map_err(|e| e.to_string())?;
            let ready = reply.status == 200 && reply.json()["value"]["ready"] == true;
            if ready { Ok(()) } else { Err(reply.body) }
        });

        let profile = dir.path().join("profile");
        let mut options = json!({
            "binary": chromium,
            "args": [
                "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--no-first-run",
                "--disable-dev-shm-usage", format!("--user-data-dir={}", profile.display()),
            ],
        });
        if !javascript {
            options["prefs"] = json!({ "profile.managed_default_content_settings.javascript": 2 });
        }
        let capabilities = json!({
            "browserName": "chrome",
            "goog:chromeOptions": options,
            "goog:loggingPrefs": { "browser": "ALL" },
        });
        let Value::Object(capabilities) = capabilities else { unreachable!("a JSON object literal") };
        let client = ClientBuilder::new(HttpConnector::new())
            .capabilities(capabilities)
            .connect(&driver_url)
            .await
            .unwrap_or_else(|e| panic!("a Chromium session: {e}\nchromedriver log:\n{}", driver.log()));
        let session = client.session_id().await.expect("session id").expect("a session id");
        Browser { client, session_url: format!("{driver_url}/session/{session}"), driver, _profile: dir }
    }

    /// Make the viewport (not the window) exactly `width` x `height` CSS pixels.
    pub async fn resize(&self, (width, height): (u32, u32)) {
        self.client.set_window_rect(0, 0, width, height).await.expect("window resized");
        let inner = self.js("return [window.innerWidth, window.innerHeight];").await;
        let (w, h) = (inner[0].as_u64().unwrap_or(0) as u32, inner[1].as_u64().unwrap_or(0) as u32);
        if (w, h) != (width, height) {
            // Window decorations (headless keeps some): grow the window by the difference.
            let (outer_w, outer_h) = (width + width.saturating_sub(w), height + height.saturating_sub(h));
            self.client.set_window_rect(0, 0, outer_w, outer_h).await.expect("window resized");
        }
        let inner = self.js("return [window.innerWidth, window.innerHeight];").await;
        assert_eq!(inner, json!([width, height]), "the viewport is {width} x {height}");
    }

    pub async fn js(&self, script: &str) -> Value {
        self.client.execute(script, Vec::new()).await.unwrap_or_else(|e| panic!("script failed: {e}\n{script}"))
    }

    /// The card of `plugin` on the index page as the user sees it (None if there is none).
    pub async fn card(&self, plugin: &str) -> Option<Card> {
        let script = r#"
            var cards = document.querySelectorAll('#cards [data-plugin]');
            for (var i = 0; i < cards.length; i++) {
                var el = cards[i];
                if (el.getAttribute('data-plugin') !== arguments[0]) continue;
                var field = function (k) {
                    var f = el.querySelector('[data-field="' + k + '"]');
                    return f ? f.textContent : '';
                };
                var box = el.getBoundingClientRect();
                return {
                    class: el.className, badge: field('badge'), state: field('state'), pid: field('pid'),
                    cpu: field('cpu'), memory: field('memory'), events: field('events'),
                    crashes: field('crashes'), version: field('version'), left: box.left, top: box.top,
                    link: el.querySelector('a[data-field="name"]').getAttribute('href')
                };
            }
            return null;
        "#;
        let value = self.client.execute(script, vec![json!(plugin)]).await.expect("card script runs");
        serde_json::from_value(value).expect("card fields")
    }

    pub fn screenshot(&self, name: &str, png: Vec<u8>) {
        let path = e2e::screenshot_dir().join(name);
        std::fs::write(&path, png).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        // Straight to the real stderr: people look for these files.
        let _ =
            std::io::Write::write_all(&mut std::io::stderr(), format!("screenshot: {}\n", path.display()).as_bytes());
    }

    pub async fn page_screenshot(&self, name: &str) {
        let png = self.client.screenshot().await.expect("page screenshot");
        self.screenshot(name, png);
    }

    /// SEVERE entries of the browser console since the last call (chromedriver's log endpoint).
    fn console_errors(&self) -> Vec<Value> {
        let url = format!("{}/se/log", self.session_url);
        let mut reply = ureq::post(&url).send(r#"{"type":"browser"}"#).expect("chromedriver returns the browser log");
        let body: Value =
            serde_json::from_str(&reply.body_mut().read_to_string().expect("log body")).expect("log JSON");
        let entries = body["value"].as_array().cloned().unwrap_or_default();
        entries.into_iter().filter(|e| e["level"] == "SEVERE").collect()
    }

    fn assert_no_console_errors(&self) {
        let errors = self.console_errors();
        assert!(errors.is_empty(), "errors in the browser console: {errors:#?}");
    }

    async fn close(self) {
        let _ = self.client.close().await;
        drop(self.driver);
    }
}

#[derive(Debug, Deserialize)]
pub struct Card {
    pub class: String,
    pub badge: String,
    pub state: String,
    pub pid: String,
    pub cpu: String,
    pub memory: String,
    pub events: String,
    pub crashes: String,
    pub version: String,
    pub link: String,
    pub left: f64,
    pub top: f64,
}

impl Card {
    pub fn count(text: &str) -> u64 {
        let digits: String = text.chars().filter(char::is_ascii_digit).collect();
        digits.parse().unwrap_or_else(|_| panic!("a count, found {text:?}"))
    }

    pub fn is_crashed(&self) -> bool {
        self.class.split_whitespace().any(|c| c == "health-error") && self.badge.trim() == "CRASHED"
    }

    pub fn is_healthy(&self) -> bool {
        self.class.split_whitespace().any(|c| c == "health-healthy") && self.badge.trim() == "RUNNING"
    }
}

/// Poll `check` until it returns Ok, or panic after `deadline` with `what` and the last Err.
pub async fn eventually<T>(what: &str, deadline: Duration, mut check: impl AsyncFnMut() -> Result<T, String>) -> T {
    let start = Instant::now();
    loop {
        match check().await {
            Ok(value) => return value,
            Err(seen) if start.elapsed() >= deadline => {
                panic!("timed out after {deadline:?} waiting for {what}; last seen: {seen}")
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

/// Wait for the card of `plugin` to satisfy `check`.
pub async fn card_until(
    browser: &Browser,
    what: &str,
    plugin: &str,
    deadline: Duration,
    check: impl Fn(&Card) -> bool,
) -> Card {
    eventually(what, deadline, async || match browser.card(plugin).await {
        Some(card) if check(&card) => Ok(card),
        other => Err(format!("{other:?}")),
    })
    .await
}

/// Wait until the page's live connection (SSE) is up.
pub async fn wait_live(browser: &Browser) {
    eventually("the page to say its updates are live", DEADLINE, async || {
        let conn = browser.js("return document.getElementById('conn').textContent;").await;
        if conn == "live" { Ok(()) } else { Err(conn.to_string()) }
    })
    .await;
}

pub fn has_figure(text: &str) -> bool {
    text.chars().any(|c| c.is_ascii_digit())
}

/// Click the element `css` selects.
pub async fn click(browser: &Browser, css: &str) {
    let element = browser.client.find(Locator::Css(css)).await.unwrap_or_else(|e| panic!("{css}: {e}"));
    element.click().await.unwrap_or_else(|e| panic!("clicking {css}: {e}"));
}

/// The names of the cards the index page shows, in order.
pub async fn shown_cards(browser: &Browser) -> Vec<String> {
    let names = browser
        .js("return Array.from(document.querySelectorAll('#cards > [data-plugin]'), c => c.dataset.plugin);")
        .await;
    serde_json::from_value(names).expect("card names")
}

/// Main-thread time of each frame named `name` (`rosey:full`, `rosey:delta`) the page applied
/// since `collect_frame_times` (ms).
pub async fn frame_times(browser: &Browser, name: &str) -> Vec<f64> {
    let times = browser.js(&format!("return window.__frameTimes.filter(m => m[0] === '{name}').map(m => m[1]);")).await;
    serde_json::from_value(times).expect("frame times")
}

pub async fn collect_frame_times(browser: &Browser) {
    browser
        .js("window.__frameTimes = []; new PerformanceObserver((list) => { for (const e of list.getEntries()) window.__frameTimes.push([e.name, e.duration]); }).observe({ type: 'measure' });")
        .await;
}
