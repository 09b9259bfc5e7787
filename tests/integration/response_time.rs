//! How fast each plugin answers, on the dashboard (issue 21): a plugin that takes 300 ms per
//! command shows its p95 on its card, on the page and in the live updates, and turns yellow
//! over `dashboard.warn_response_ms`; the table view sorts by it; a reload is counted in
//! `rosey_reload_duration_seconds`. (The p95 in `/api/plugin` and the histogram's counts are
//! in `answers.rs`.)

use serde_json::{Value, json};

use crate::common::actions::{AUTH, Deployable, bot_with_actions, post, wait_for_plugin};
use crate::common::json::metric;
use crate::common::pages::{card, card_text, field};
use crate::common::sse::Sse;
use crate::common::*;

/// The slow fixture as plugin `slow`, answering `!slow` after `seconds`.
fn slow_plugin(seconds: &str) -> Value {
    python_plugin("slow", "slow.py", &[seconds])
}

/// Say `!slow` as each of `users`, one at a time (each answer then takes the plugin's own
/// time, not the wait behind the others), and wait for the answers to be timed.
fn ask_slow(rosey: &mut Rosey, users: &[&str]) {
    rosey.wait_for_plugin("slow's hello", "slow", |p| p["version"] == "1.0");
    for user in users {
        rosey.say(&format!("{user}: !slow x"));
        wait_for_line(rosey, &format!("[slow] @{user} "));
    }
    rosey.wait_for_plugin("the answers timed", "slow", |p| p["response_time"]["5m"]["count"] == users.len());
}

/// "312 ms" -> 312.
fn millis(text: &str) -> f64 {
    let number = text.strip_suffix(" ms").unwrap_or_else(|| panic!("a time in ms: {text:?}"));
    number.parse().unwrap_or_else(|_| panic!("a number of ms: {text:?}"))
}

#[test]
fn a_plugin_that_takes_300_ms_shows_its_p95_on_its_card_and_turns_yellow_over_warn_response_ms() {
    let mut builder = RoseyBuilder::new().plugins(json!([slow_plugin("0.3"), { "name": "quick", "builtin": "8ball" }]));
    builder.config["dashboard"]["warn_response_ms"] = json!(200);
    let mut rosey = builder.start();
    let mut sse = Sse::open(rosey.port(), "/events", &[]);
    ask_slow(&mut rosey, &["u1", "u2", "u3"]);

    let page = wait_for("the slow card to warn", DEADLINE, || {
        let page = rosey.get("/").body;
        card(&page, "slow").contains("health-warning").then_some(page)
    });
    let p95 = millis(&card_text(&page, "slow", "response"));
    // A band, not a timing goal: the estimate comes from the (250, 500] ms bucket.
    assert!((250.0..=500.0).contains(&p95), "p95 {p95} ms");
    let badge = field(card(&page, "slow"), "badge");
    assert_eq!(badge, "RUNNING · high response time", "the warning is in words");
    assert_eq!(card_text(&page, "quick", "response"), "—", "no answers, no figure");
    assert!(card(&page, "quick").contains("health-healthy"));

    let detail = rosey.get("/plugin/slow").body;
    assert_eq!(millis(&card_text(&detail, "slow", "response")), p95, "the plugin page's card says the same");

    let live = sse.wait_for("the slow card's p95 in a live update", |data| {
        data["view"]["cards"].as_array().is_some_and(|cards| {
            cards.iter().any(|c| c["name"] == "slow" && c["health"] == "warning" && c["response"] != "—")
        })
    });
    let slow = live["view"]["cards"].as_array().unwrap().iter().find(|c| c["name"] == "slow").unwrap().clone();
    assert!((250.0..=500.0).contains(&millis(slow["response"].as_str().unwrap())), "{slow}");
}

#[test]
fn the_table_view_has_a_response_time_column_and_sorts_by_it_slowest_first() {
    let plugins = json!([
        { "name": "a-quick", "builtin": "dice-roller" },
        { "name": "b-silent", "builtin": "8ball" },
        slow_plugin("0.3"),
    ]);
    let mut rosey = RoseyBuilder::new().plugins(plugins).start();
    ask_slow(&mut rosey, &["u1", "u2"]);
    rosey.say("!roll 1d6");
    wait_for_line(&rosey, "[a-quick] @console ");
    rosey.wait_for_plugin("the quick answer timed", "a-quick", |p| p["response_time"]["5m"]["count"] == 1);

    let page = rosey.get("/?sort=response&view=table").body;
    assert!(page.contains("<span>p95</span>"), "the table has the column");
    let order: Vec<&str> = ["a-quick", "b-silent", "slow"]
        .into_iter()
        .map(|name| (page.find(&format!("data-plugin=\"{name}\"")).expect("every card"), name))
        .collect::<std::collections::BTreeMap<_, _>>()
        .into_values()
        .collect();
    assert_eq!(order, ["slow", "a-quick", "b-silent"], "slowest first, no answers last");
    assert!(page.contains("<option value=\"response\" selected>"), "the sort control says so");
}

#[test]
fn a_reload_is_counted_in_the_reload_duration_histogram() {
    let plugin = Deployable::new("versioned", "1");
    let rosey = bot_with_actions(json!([plugin.entry()]));
    wait_for_plugin(&rosey, "version 1 running", "versioned", |p| p["version"] == "1");
    let scrape = || request("GET", &rosey.url("/metrics"), &[("authorization", AUTH)]).expect("GET /metrics").body;
    let count = "rosey_reload_duration_seconds_count{plugin=\"versioned\"}";
    assert_eq!(metric(&scrape(), count), Some(0.0), "declared before any reload");

    plugin.deploy("2");
    let reply = post(&rosey, "/api/plugin/versioned/reload");
    assert_eq!(reply.status, 200, "{}", reply.body);
    let metrics = wait_for("the reload counted", DEADLINE, || {
        let metrics = scrape();
        (metric(&metrics, count) == Some(1.0)).then_some(metrics)
    });
    let every = "rosey_reload_duration_seconds_bucket{plugin=\"versioned\",le=\"+Inf\"}";
    assert_eq!(metric(&metrics, every), Some(1.0));
    let sum = metric(&metrics, "rosey_reload_duration_seconds_sum{plugin=\"versioned\"}").expect("a sum");
    assert!(sum > 0.0, "a reload takes some time: {sum}");
    let reloaded = "rosey_plugin_reloads_total{plugin=\"versioned\",status=\"reloaded\"}";
    assert_eq!(metric(&metrics, reloaded), Some(1.0), "the PRD's label name");
}

/// The live page orders the table by response time as the server does (the same figures), and
/// keeps that order through live updates and a change of sort and back.
#[test]
fn in_chromium_the_table_sorted_by_response_time_keeps_the_servers_order_live() {
    use crate::e2e_support::browser::*;
    use fantoccini::Locator;

    let plugins = json!([
        { "name": "a-quick", "builtin": "dice-roller" },
        { "name": "b-silent", "builtin": "8ball" },
        slow_plugin("0.3"),
    ]);
    in_browser(
        "in_chromium_the_table_sorted_by_response_time_keeps_the_servers_order_live",
        true,
        RoseyBuilder::new().plugins(plugins),
        async |rosey, browser| {
            ask_slow(rosey, &["u1", "u2"]);
            rosey.say("!roll 1d6");
            rosey.wait_for_plugin("the quick answer timed", "a-quick", |p| p["response_time"]["5m"]["count"] == 1);
            browser.client.goto(&rosey.url("/?sort=response&view=table")).await.expect("the table loads");
            wait_live(browser).await;
            let slowest_first = ["slow", "a-quick", "b-silent"];
            assert_eq!(shown_cards(browser).await, slowest_first, "as the server rendered it");
            let head = browser.js("return document.getElementById('table-head').textContent;").await;
            assert!(head.as_str().is_some_and(|h| h.contains("p95")), "the column: {head}");
            for (value, order) in [("name", ["a-quick", "b-silent", "slow"]), ("response", slowest_first)] {
                let select = browser.client.find(Locator::Css("#controls select[name=sort]")).await.expect("sort");
                select.select_by_value(value).await.expect("a choice");
                eventually(&format!("sorted by {value}"), LIVE_DEADLINE, async || {
                    let shown = shown_cards(browser).await;
                    if shown == order { Ok(()) } else { Err(format!("{shown:?}")) }
                })
                .await;
            }
            let p95 = browser
                .js("return document.querySelector('[data-plugin=\"slow\"] [data-field=\"response\"]').textContent;")
                .await;
            let p95 = p95.as_str().expect("the slow row's p95").to_owned();
            assert!((250.0..=500.0).contains(&millis(&p95)), "{p95}");
        },
    );
}
