//! Helpers for the tests of operating plugins (actions, reload, the console's `!admin`, the
//! dashboard's buttons): a bot with actions enabled, a plugin whose version a test "deploys",
//! authenticated requests.

use std::path::PathBuf;

use serde_json::{Value, json};

use super::{DEADLINE, Reply, Rosey, RoseyBuilder, fixture, request, request_unfollowed, wait_for};

/// `admin:s3cret`, base64: the credentials every action test configures.
pub const AUTH: &str = "Basic YWRtaW46czNjcmV0";

/// A deployable plugin: its version file, and the config entry that runs it.
pub struct Deployable {
    pub dir: tempfile::TempDir,
    pub name: &'static str,
}

impl Deployable {
    pub fn new(name: &'static str, version: &str) -> Deployable {
        let deployable = Deployable { dir: tempfile::tempdir().expect("a temporary directory"), name };
        deployable.deploy(version);
        deployable
    }

    fn version_file(&self) -> PathBuf {
        self.dir.path().join("VERSION")
    }

    /// Replace the plugin's "code": the next process started reads this.
    pub fn deploy(&self, version: &str) {
        std::fs::write(self.version_file(), version).expect("the version file is writable");
    }

    pub fn entry(&self) -> Value {
        let program = vec!["python3".to_owned(), fixture("versioned.py"), self.version_file().display().to_string()];
        json!({ "name": self.name, "command": program })
    }
}

/// A bot with actions enabled (credentials set) running `plugins`.
pub fn bot_with_actions(plugins: Value) -> Rosey {
    let mut builder = RoseyBuilder::new().plugins(plugins);
    builder.config["dashboard"]["auth"] = json!({ "username": "admin", "password": "s3cret" });
    builder.start()
}

/// POST with the credentials, as a same-origin browser would.
pub fn post(rosey: &Rosey, path: &str) -> Reply {
    request("POST", &rosey.url(path), &[("authorization", AUTH)]).unwrap_or_else(|e| panic!("POST {path}: {e}"))
}

/// What a browser asks for when it navigates (Chromium's `Accept`).
const NAVIGATION_ACCEPT: &str = "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8";

/// Submit a card's form as a browser does without JavaScript: a navigation from the page at
/// `referer` (a full URL), with the credentials, `Sec-Fetch-Site: site`. The answer as sent:
/// a redirect is not followed.
pub fn submit(rosey: &Rosey, path: &str, referer: &str, site: &str) -> Reply {
    let origin = rosey.url("");
    let headers = [
        ("authorization", AUTH),
        ("accept", NAVIGATION_ACCEPT),
        ("content-type", "application/x-www-form-urlencoded"),
        ("origin", origin.as_str()),
        ("referer", referer),
        ("sec-fetch-site", site),
        ("sec-fetch-mode", "navigate"),
        ("sec-fetch-dest", "document"),
    ];
    request_unfollowed("POST", &rosey.url(path), &headers).unwrap_or_else(|e| panic!("POST {path}: {e}"))
}

/// GET with the credentials.
pub fn get_json(rosey: &Rosey, path: &str) -> Value {
    let reply = request("GET", &rosey.url(path), &[("authorization", AUTH)]).expect("GET");
    assert_eq!(reply.status, 200, "GET {path}: {}", reply.body);
    reply.json()
}

pub fn wait_for_plugin(rosey: &Rosey, what: &str, name: &str, check: impl Fn(&Value) -> bool) -> Value {
    wait_for(what, DEADLINE, || {
        let plugin = get_json(rosey, &format!("/api/plugin/{name}"));
        check(&plugin).then_some(plugin)
    })
}

/// Wait until a plugin added by a config reload is RUNNING: it reaches the API with the next
/// snapshot, so a 404 until then is expected.
pub fn wait_until_running(rosey: &Rosey, name: &str, headers: &[(&str, &str)]) {
    wait_for(&format!("{name} running"), DEADLINE, || {
        let reply = request("GET", &rosey.url(&format!("/api/plugin/{name}")), headers).ok()?;
        (reply.status == 200 && reply.json()["state"] == "RUNNING").then_some(())
    });
}
