//! The HTML pages (`/`, `/plugin/{name}`) and their static assets: cards sorted and described
//! in words, warning thresholds, a bot without plugins, a hostile plugin version shown literally
//! everywhere.

use std::time::Instant;

use serde_json::json;

use crate::common::json::{assert_api_metrics_shape, metric, plugin_in};
use crate::common::pages::{card, field};
use crate::common::sse::Sse;
use crate::common::*;

#[test]
fn page_lists_cards_sorted_by_name_with_the_state_in_words() {
    let rosey = RoseyBuilder::new()
        .plugins(json!([
            { "name": "zeta", "builtin": "8ball" },
            { "name": "alpha", "builtin": "dice-roller" },
            failing_plugin("mid"),
        ]))
        .start();
    rosey.wait_for_state("alpha", "RUNNING");
    rosey.wait_for_state("zeta", "RUNNING");
    rosey.wait_for_state("mid", "FAILED");

    let page = wait_for("the page to show alpha and zeta RUNNING and mid FAILED", DEADLINE, || {
        let page = rosey.get("/").body;
        let ok = field(card(&page, "alpha"), "badge").starts_with("RUNNING")
            && field(card(&page, "zeta"), "badge").starts_with("RUNNING")
            && field(card(&page, "mid"), "badge") == "FAILED";
        ok.then_some(page)
    });
    assert!(page.contains(r#"<noscript><meta http-equiv="refresh" content="5"></noscript>"#));
    assert!(page.contains("<title>Rosey Metrics Dashboard</title>"));

    let cards_start = page.find("id=\"cards\"").expect("the card list");
    let cards_end = page.find("<template").unwrap_or(page.len());
    let listed = &page[cards_start..cards_end];
    let positions: Vec<usize> = ["alpha", "mid", "zeta"]
        .iter()
        .map(|n| listed.find(&format!("data-plugin=\"{n}\"")).unwrap_or_else(|| panic!("no card for {n}")))
        .collect();
    assert!(positions[1] < positions[0] && positions[0] < positions[2], "problems first, then by name: {positions:?}");
    let by_name = rosey.get("/?sort=name").body;
    let positions: Vec<usize> = ["alpha", "mid", "zeta"]
        .iter()
        .map(|n| by_name.find(&format!("data-plugin=\"{n}\"")).unwrap_or_else(|| panic!("no card for {n}")))
        .collect();
    assert!(positions.windows(2).all(|w| w[0] < w[1]), "?sort=name: cards sorted by name: {positions:?}");

    let mid = card(&page, "mid");
    assert!(mid.contains("health-error"), "a FAILED card is red: {mid}");
    assert!(field(mid, "last_exit").contains("exited with code 1"), "the last exit in words: {mid}");
    assert!(card(&page, "alpha").contains("health-healthy"));
    assert!(field(card(&page, "alpha"), "pid").parse::<u32>().is_ok());
    assert!(page.contains("Plugins running"));

    // The overview counts.
    assert!(page.contains(r#"data-system="plugins_running">2<"#), "2 of 3 running");
    assert!(page.contains(r#"data-system="total_plugins">3<"#));

    // The detail page of each plugin exists and has the same fallback.
    let detail = rosey.get("/plugin/alpha");
    assert_eq!(detail.status, 200);
    assert!(detail.body.contains(r#"<noscript><meta http-equiv="refresh" content="5"></noscript>"#));
    assert!(page.contains(r#"href="/plugin/alpha""#), "the card links to its detail page");
}

#[test]
fn a_bot_without_plugins_says_so_on_every_route() {
    let rosey = RoseyBuilder::new().plugins(json!([])).start();
    let page = rosey.get("/").body;
    assert!(page.contains(r#"<p id="no-plugins" class="empty">No plugins configured.</p>"#), "{page}");
    let metrics = rosey.get_json("/api/metrics");
    assert_api_metrics_shape(&metrics);
    assert_eq!(metrics["plugins"], json!([]));
    assert_eq!(metric(&rosey.get("/metrics").body, "rosey_total_plugins"), Some(0.0));
    let mut sse = Sse::open(rosey.port(), "/events", &[]);
    let (_, data) = sse.snapshot(Instant::now() + DEADLINE);
    assert_eq!(data["view"]["cards"], json!([]));
}

#[test]
fn warning_thresholds_turn_a_running_card_yellow_in_words() {
    let mut builder = RoseyBuilder::new().plugins(json!([
        python_plugin("heavy", "hold_memory.py", &["30"]),
        { "name": "light", "builtin": "8ball" },
    ]));
    builder.config["dashboard"]["warn_memory_mb"] = json!(20);
    let rosey = builder.start();
    rosey.wait_for_plugin("heavy to hold its memory", "heavy", |p| p["current"]["memory_mb"].as_f64() > Some(20.0));
    let page = wait_for("the heavy card to warn", DEADLINE, || {
        let page = rosey.get("/").body;
        card(&page, "heavy").contains("health-warning").then_some(page)
    });
    let badge = field(card(&page, "heavy"), "badge");
    assert!(badge.starts_with("RUNNING") && badge.contains("memory"), "the warning is in words: {badge:?}");
    assert!(card(&page, "light").contains("health-healthy"));
}

#[test]
fn static_assets_the_page_refers_to_are_served_with_their_types() {
    let rosey = RoseyBuilder::new().start();
    let page = rosey.get("/").body;
    let mut refs: Vec<String> = Vec::new();
    for attr in ["href=\"", "src=\""] {
        for (at, _) in page.match_indices(attr) {
            let url = page[at + attr.len()..].split('"').next().unwrap();
            if url.starts_with("/static/") {
                refs.push(url.to_owned());
            }
        }
    }
    for expected in ["/static/dashboard.js", "/static/dashboard.css", "/static/favicon.svg"] {
        assert!(refs.iter().any(|r| r == expected), "the page refers to {expected}: {refs:?}");
    }
    for url in refs.iter().map(String::as_str).chain(["/favicon.ico"]) {
        let resp = rosey.get(url);
        assert_eq!(resp.status, 200, "{url}");
        assert!(!resp.body.is_empty(), "{url}");
        let expected = match url.rsplit('.').next() {
            Some("js") => "text/javascript",
            Some("css") => "text/css",
            _ => "image/svg+xml",
        };
        assert!(resp.content_type.starts_with(expected), "{url}: {}", resp.content_type);
    }
    // The script opens the live stream the server offers and writes text, never markup.
    let js = rosey.get("/static/dashboard.js").body;
    assert!(js.contains("EventSource") && js.contains("'/events"), "the script follows /events");
    assert!(!js.contains("innerHTML"), "no innerHTML from data");
    // What the page's markup hooks expect, the snapshot provides.
    let mut sse = Sse::open(rosey.port(), "/events", &[]);
    let (_, data) = sse.snapshot(Instant::now() + DEADLINE);
    let cards = data["view"]["cards"].as_array().unwrap();
    for attr in ["data-field=\"", "data-show=\"", "data-spark=\""] {
        for (at, _) in page.match_indices(attr) {
            let key = page[at + attr.len()..].split('"').next().unwrap();
            assert!(cards.iter().all(|c| c.get(key).is_some()), "cards lack {key:?} used by {attr}");
        }
    }
    for (at, _) in page.match_indices("data-system=\"") {
        let key = page[at + 13..].split('"').next().unwrap();
        assert!(data["view"]["system"].get(key).is_some(), "view.system lacks {key:?}");
    }
}

#[test]
fn hostile_version_is_shown_literally_everywhere() {
    let rosey = RoseyBuilder::new().start();
    rosey.wait_for_plugin("the hostile version", "hostile", |p| p["version"] == HOSTILE_VERSION);

    // HTML: escaped, never markup.
    for path in ["/", "/plugin/hostile"] {
        let page = wait_for("the page to show the reported version", DEADLINE, || {
            let page = rosey.get(path).body;
            page.contains("&lt;img src=x onerror=alert(1)&gt;").then_some(page)
        });
        assert!(!page.contains("<img src=x"), "{path} holds the version as markup");
        assert!(!page.contains("'</script>"), "{path} closes a script with plugin data");
        assert!(!page.contains("onerror=alert(1)>"), "{path}");
        assert!(page.contains("&amp; 🦀"), "{path}: & escaped, emoji kept");
    }

    // JSON: literal.
    let metrics = rosey.get_json("/api/metrics");
    assert_eq!(plugin_in(&metrics["plugins"], "hostile")["version"], HOSTILE_VERSION);
    assert_eq!(rosey.plugin("hostile")["version"], HOSTILE_VERSION);

    // SSE: literal JSON too (the page writes it with textContent).
    let mut sse = Sse::open(rosey.port(), "/events", &[]);
    let data =
        sse.wait_for("the hostile version", |d| plugin_in(&d["plugins"], "hostile")["version"] == HOSTILE_VERSION);
    assert_eq!(plugin_in(&data["view"]["cards"], "hostile")["version"], HOSTILE_VERSION);

    // Prometheus: a label value with backslash and quote escaped.
    let escaped = HOSTILE_VERSION.replace('\\', r"\\").replace('"', r#"\""#).replace('\n', r"\n");
    let line = format!(r#"rosey_plugin_info{{plugin="hostile",version="{escaped}"}} 1"#);
    let text = rosey.get("/metrics").body;
    assert!(text.lines().any(|l| l == line), "missing {line}\nin\n{text}");
}
