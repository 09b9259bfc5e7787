//! The action routes as an attack surface: refused without `dashboard.auth`, refused without
//! credentials and from another site, accepted same-site with credentials; GET stays 405;
//! an unknown plugin is 404 and a second action on a busy plugin 409.

use serde_json::json;

use crate::common::actions::{AUTH, Deployable, bot_with_actions, get_json, post, wait_for_plugin};
use crate::common::{RoseyBuilder, request};

#[test]
fn actions_are_refused_until_dashboard_auth_is_set() {
    let rosey = RoseyBuilder::new().plugins(json!([{ "name": "dice-roller", "builtin": "dice-roller" }])).start();
    rosey.wait_until_running();
    let pid = rosey.pid_of("dice-roller");
    for path in ["/api/plugin/dice-roller/stop", "/api/reload"] {
        let reply = request("POST", &rosey.url(path), &[]).expect("POST");
        assert_eq!(reply.status, 403, "{path}: {}", reply.body);
        let error = reply.json()["error"].as_str().expect("a JSON error").to_owned();
        assert!(error.contains("dashboard.auth"), "says how to enable them: {error}");
    }
    assert_eq!(rosey.plugin("dice-roller")["state"], "RUNNING");
    assert_eq!(rosey.pid_of("dice-roller"), pid, "nothing was done");
}

#[test]
fn actions_need_credentials_and_the_same_site() {
    let rosey = bot_with_actions(json!([{ "name": "dice-roller", "builtin": "dice-roller" }]));
    let url = rosey.url("/api/plugin/dice-roller/restart");

    let anonymous = request("POST", &url, &[]).expect("POST");
    assert_eq!(anonymous.status, 401);
    let cross_site = request("POST", &url, &[("authorization", AUTH), ("sec-fetch-site", "cross-site")]).expect("POST");
    assert_eq!(cross_site.status, 403, "{}", cross_site.body);
    assert!(cross_site.json()["error"].as_str().is_some_and(|e| e.contains("cross-origin")));
    let foreign = request("POST", &url, &[("authorization", AUTH), ("origin", "http://evil.example")]).expect("POST");
    assert_eq!(foreign.status, 403, "an Origin that is not this host: {}", foreign.body);

    let origin = format!("http://127.0.0.1:{}", rosey.port());
    let same_site = [("authorization", AUTH), ("sec-fetch-site", "same-origin"), ("origin", origin.as_str())];
    let accepted = request("POST", &url, &same_site).expect("POST");
    assert_eq!(accepted.status, 200, "{}", accepted.body);
    let report = accepted.json();
    assert_eq!((report["plugin"].as_str(), report["action"].as_str()), (Some("dice-roller"), Some("restart")));
    assert_eq!(report["outcome"], "done");
    assert!(report["duration_seconds"].is_number());

    let config = request("POST", &rosey.url("/api/reload"), &same_site).expect("POST");
    assert_eq!(config.status, 200, "{}", config.body);
    assert_eq!(config.json()["unchanged"], json!(["dice-roller"]));
}

#[test]
fn get_is_405_an_unknown_plugin_404_and_a_busy_plugin_409() {
    // A version that takes 2 s to say hello keeps its reload busy long enough to ask again.
    let plugin = Deployable::new("slow", "1");
    let rosey = bot_with_actions(json!([plugin.entry()]));

    for path in ["/api/plugin/slow/reload", "/api/reload"] {
        let reply = request("GET", &rosey.url(path), &[("authorization", AUTH)]).expect("GET");
        assert_eq!(reply.status, 405, "{path}");
        assert_eq!(reply.header("allow"), Some("POST"), "{path}");
    }
    let unknown = post(&rosey, "/api/plugin/nope/reload");
    assert_eq!(unknown.status, 404);
    assert_eq!(unknown.json()["error"], "Plugin nope not found");

    plugin.deploy("2 2");
    let url = rosey.url("/api/plugin/slow/reload");
    let first = std::thread::spawn(move || request("POST", &url, &[("authorization", AUTH)]).expect("POST"));
    let reloading = wait_for_plugin(&rosey, "the reload to show", "slow", |p| p["activity"].is_string());
    assert!(reloading["activity"].as_str().is_some_and(|a| a.starts_with("reloading")), "{reloading}");
    let busy = post(&rosey, "/api/plugin/slow/stop");
    assert_eq!(busy.status, 409, "{}", busy.body);
    assert!(
        busy.json()["error"].as_str().is_some_and(|e| e.contains("reload is already in progress")),
        "{}",
        busy.body
    );
    let first = first.join().expect("the first request");
    assert_eq!(first.json()["outcome"], "reloaded", "{}", first.body);

    // A reload re-reads the file: a broken file refuses it, with the problems, and changes nothing.
    let pid = get_json(&rosey, "/api/plugin/slow")["pid"].clone();
    std::fs::write(&rosey.config_path, "{\"plugins\": [").expect("config rewritten");
    let refused = post(&rosey, "/api/plugin/slow/reload");
    assert_eq!(refused.status, 422, "{}", refused.body);
    assert!(refused.json()["error"].as_str().is_some_and(|e| e.contains("invalid JSON")), "{}", refused.body);
    let whole = post(&rosey, "/api/reload");
    assert_eq!(whole.status, 422, "{}", whole.body);
    assert!(whole.json()["problems"][0].as_str().is_some_and(|p| p.contains("invalid JSON")), "{}", whole.body);
    assert_eq!(get_json(&rosey, "/api/plugin/slow")["pid"], pid);
    assert_eq!(post(&rosey, "/api/plugin/slow/stop").status, 200, "free again once the reload finished");
}
