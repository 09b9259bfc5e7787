//! Chat on the dashboard and in Prometheus: `/api/chat` lists each configured connection and
//! its state, `/metrics` has the chat series, the page shows the chat panel, `/api/audit` lists
//! the admin desk's refusals behind the dashboard's auth, and no secret reaches any of them.
//! `metrics.prometheus_enabled: false` turns `/metrics` into a 404 that says why. In a real
//! browser, the chat panel follows the live updates.

use std::path::Path;

use serde_json::{Value, json};

use crate::common::pages::basic;
use crate::common::*;
use crate::e2e_support as e2e;
use crate::e2e_support::browser::{LIVE_DEADLINE, eventually, in_browser, wait_live};

const SASL_PASSWORD: &str = "sasl-Pa55-do-not-show";
const DASHBOARD_PASSWORD: &str = "dash-Pa55-do-not-show";

/// A bot with dice-roller, the dashboard behind basic auth, and `irc` as its chat connections.
fn bot(irc: Value) -> (Rosey, String) {
    let mut builder = RoseyBuilder::new().plugins(json!([{ "name": "dice-roller", "builtin": "dice-roller" }]));
    builder.config["dashboard"]["auth"] = json!({ "username": "ops", "password": DASHBOARD_PASSWORD });
    builder.config["chat"] = json!({ "irc": irc });
    (builder.start(), basic("ops", DASHBOARD_PASSWORD))
}

fn get(rosey: &Rosey, path: &str, auth: &str) -> Reply {
    let reply = request("GET", &rosey.url(path), &[("Authorization", auth)]).unwrap();
    assert_eq!(reply.status, 200, "GET {path}: {}", reply.body);
    reply
}

#[test]
fn a_connection_to_a_closed_port_is_shown_reconnecting_with_its_error_and_never_its_password() {
    // Nothing listens there: every attempt is refused at once.
    let port = free_port();
    let connection = json!({
        "name": "lab", "server": "127.0.0.1", "port": port, "tls": false, "nick": "rosey",
        "channels": ["#rosey"], "sasl": { "account": "rosey", "password": SASL_PASSWORD },
    });
    let (rosey, auth) = bot(json!([connection]));

    let chat = wait_for("/api/chat to show the connection reconnecting", DEADLINE, || {
        let chat = get(&rosey, "/api/chat", &auth).json();
        (chat["connections"][0]["state"] == "reconnecting").then_some(chat)
    });
    let connections = chat["connections"].as_array().unwrap();
    assert_eq!(connections.len(), 1, "{chat}");
    let lab = &connections[0];
    assert_eq!(lab["name"], "lab");
    assert_eq!(lab["server"], format!("127.0.0.1:{port}"));
    assert_eq!(lab["tls"], false);
    assert_eq!(lab["connected"], false);
    assert!(lab["reconnects"].as_u64().unwrap() >= 1, "{lab}");
    assert!(lab["retry_in_seconds"].as_f64().is_some(), "a countdown while reconnecting: {lab}");
    let error = lab["last_error"].as_str().unwrap_or_else(|| panic!("a last_error: {lab}"));
    assert!(!error.is_empty(), "{lab}");

    let metrics = get(&rosey, "/metrics", &auth).body;
    assert_eq!(json::metric(&metrics, r#"rosey_chat_connected{connection="lab"}"#), Some(0.0), "{metrics}");
    for series in [
        r#"rosey_chat_messages_total{connection="lab",direction="in"}"#,
        r#"rosey_chat_messages_total{connection="lab",direction="out"}"#,
        r#"rosey_chat_replies_dropped_total{connection="lab"}"#,
    ] {
        assert!(json::metric(&metrics, series).is_some(), "{series} in {metrics}");
    }
    assert!(json::metric(&metrics, r#"rosey_chat_reconnects_total{connection="lab"}"#) >= Some(1.0), "{metrics}");
    if let Some(tools) = e2e::tools("chat_panel::promtool", &["promtool"]) {
        let run = e2e::run_tool(&tools[0], &["check", "metrics"], Path::new("."), metrics.as_bytes(), DEADLINE);
        let complaints: Vec<String> =
            run.lines().into_iter().filter(|l| !l.contains("rosey_plugin_memory_mb")).collect();
        assert!(matches!(run.status.code(), Some(0 | 3)) && complaints.is_empty(), "{}\n{metrics}", run.output());
    }

    let page = get(&rosey, "/", &auth).body;
    assert!(page.contains("id=\"chat\""), "the chat panel is on the page");
    assert!(page.contains(">lab<") && page.contains("reconnecting in "), "{page}");
    assert!(page.contains("last error: "), "the panel says why it reconnects: {page}");
    // What the page's script swaps in after each live update: the same panel, alone.
    let panel = get(&rosey, "/chat-panel", &auth).body;
    assert!(panel.trim_start().starts_with("<section id=\"chat\""), "{panel}");
    assert!(panel.contains(">lab<") && panel.contains("reconnecting in "), "{panel}");
    assert_eq!(rosey.get("/chat-panel").status, 401, "/chat-panel without credentials");

    for path in ["/api/chat", "/metrics", "/", "/chat-panel", "/api/audit", "/api/metrics"] {
        let body = get(&rosey, path, &auth).body;
        assert!(!body.contains(SASL_PASSWORD), "the SASL password is in {path}");
    }
    assert!(!rosey.stderr_text().contains(SASL_PASSWORD), "the SASL password is in the log");
}

#[test]
fn the_audit_needs_the_dashboards_auth_and_lists_a_refused_console_admin() {
    let (mut rosey, auth) = bot(json!([]));
    assert_eq!(rosey.get("/api/audit").status, 401, "/api/audit without credentials");
    assert_eq!(rosey.get("/api/chat").status, 401, "/api/chat without credentials");
    assert_eq!(get(&rosey, "/api/audit", &auth).json()["entries"], json!([]));

    rosey.say("alice: !admin stop x");
    let audit = wait_for("/api/audit to list the refusal", DEADLINE, || {
        let audit = get(&rosey, "/api/audit", &auth).json();
        (audit["entries"].as_array().is_some_and(|e| !e.is_empty())).then_some(audit)
    });
    let entry = &audit["entries"][0];
    assert_eq!(entry["who"], r#"console user "alice""#, "{audit}");
    assert_eq!(entry["command"], "stop x", "{audit}");
    let outcome = entry["outcome"].as_str().unwrap();
    assert!(outcome.starts_with("refused: ") && outcome.contains("alice"), "{audit}");
    json::assert_rfc3339("an audit entry's time", &entry["at"]);

    let metrics = wait_for("the refusal counted in /metrics", DEADLINE, || {
        let metrics = get(&rosey, "/metrics", &auth).body;
        metrics.contains("rosey_admin_commands_total{").then_some(metrics)
    });
    assert_eq!(json::metric(&metrics, r#"rosey_admin_commands_total{command="stop",user="refused"}"#), Some(1.0));
    assert!(!metrics.contains("rosey_chat_connected{"), "no chat series without connections: {metrics}");
    let page = get(&rosey, "/", &auth).body;
    assert!(!page.contains("id=\"chat\""), "no chat panel without connections");
    assert_eq!(get(&rosey, "/chat-panel", &auth).body.trim(), "", "nor a panel to fetch");
}

#[test]
fn metrics_off_in_the_config_makes_metrics_a_404_that_says_why() {
    let mut builder = RoseyBuilder::new().plugins(json!([]));
    builder.config["metrics"]["prometheus_enabled"] = json!(false);
    let rosey = builder.start();
    let reply = rosey.get("/metrics");
    assert_eq!(reply.status, 404);
    assert!(reply.body.contains("metrics.prometheus_enabled = false"), "{}", reply.body);
    assert_eq!(rosey.get("/api/metrics").status, 200, "the rest of the dashboard is served");
    assert!(
        rosey.stderr_text().contains("/metrics is off (metrics.prometheus_enabled = false)"),
        "the log says why at start: {}",
        rosey.stderr_text()
    );
}

#[test]
fn the_chat_panel_follows_the_live_updates_without_a_page_reload() {
    let mut builder = RoseyBuilder::new().plugins(json!([{ "name": "dice-roller", "builtin": "dice-roller" }]));
    let connection =
        json!({ "name": "lab", "server": "127.0.0.1", "port": free_port(), "tls": false, "nick": "rosey" });
    builder.config["chat"] = json!({ "irc": [connection] });
    in_browser(
        "chat_panel::the_chat_panel_follows_the_live_updates_without_a_page_reload",
        true,
        builder,
        async |_rosey, browser| {
            wait_live(browser).await;
            browser.js("window.__noReload = 1;").await;
            let state = async || {
                let text = browser.js("return document.querySelector('#chat .chat-state')?.textContent ?? '';").await;
                text.as_str().unwrap_or_default().to_owned()
            };
            let first = state().await;
            // The countdown to the next attempt, or the attempts themselves, change the words.
            eventually("the chat panel's state to change live", LIVE_DEADLINE, async || {
                let now = state().await;
                if now != first && now.starts_with("reconnecting in ") {
                    Ok(())
                } else {
                    Err(format!("{first:?} → {now:?}"))
                }
            })
            .await;
            assert_eq!(browser.js("return window.__noReload ?? null;").await, json!(1), "the page was not reloaded");
            let error = browser.js("return document.querySelector('#chat .chat-error')?.textContent ?? '';").await;
            assert!(error.as_str().unwrap_or_default().starts_with("last error: "), "{error}");
        },
    );
}
