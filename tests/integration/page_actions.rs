//! The pages' side of the plugin actions, as the server renders them (the browser side is in
//! `browser.rs`): the buttons are offered only when actions are enabled, each a form that posts
//! to its plugin's own action route and works as rendered; Stop or Start as the state calls
//! for; the card shows the newest reload and the detail page the reload log (live too) and the
//! plugin's command conflicts.

use std::time::Instant;

use serde_json::json;

use crate::common::actions::{AUTH, Deployable, bot_with_actions, post, wait_for_plugin};
use crate::common::pages::{card, field};
use crate::common::sse::Sse;
use crate::common::{DEADLINE, HOSTILE_VERSION, Rosey, RoseyBuilder, request, wait_for};

const ACTIONS: [&str; 4] = ["reload", "restart", "stop", "start"];

/// A page of a bot with actions enabled (with the credentials).
fn page(rosey: &Rosey, path: &str) -> String {
    let reply = request("GET", &rosey.url(path), &[("authorization", AUTH)]).expect("GET");
    assert_eq!(reply.status, 200, "GET {path}: {}", reply.body);
    reply.body
}

/// The value of every `action="…"` of the forms in `html`.
fn form_actions(html: &str) -> Vec<&str> {
    html.split("<form ").skip(1).filter_map(|tag| tag.split("action=\"").nth(1)?.split('"').next()).collect()
}

/// Is the element whose opening tag carries `marker` hidden?
fn hidden(html: &str, marker: &str) -> bool {
    let at = html.find(marker).unwrap_or_else(|| panic!("no {marker} in {html}"));
    let open = html[..at].rfind('<').expect("inside a tag");
    let tag = &html[open..at + html[at..].find('>').expect("the tag closes")];
    tag.split_whitespace().any(|attribute| attribute == "hidden")
}

/// Undo the escaping of the few characters the texts under test contain.
fn unescape(text: &str) -> String {
    text.replace("&#x27;", "'").replace("&#39;", "'").replace("&quot;", "\"").replace("&amp;", "&")
}

#[test]
fn action_buttons_are_offered_only_when_actions_are_enabled_and_post_to_their_plugins_own_route() {
    // Without dashboard.auth the routes refuse every action, so no page offers one.
    let closed = RoseyBuilder::new().start();
    closed.wait_until_running();
    for path in ["/", "/plugin/hostile"] {
        let html = closed.get(path).body;
        assert!(!html.contains("method=\"post\"") && !html.contains("/api/plugin/"), "{path} offers actions: {html}");
    }
    drop(closed);

    // The default plugins (one with a hostile version) and a name with every punctuation a
    // name may hold; a program that never speaks the protocol is RUNNING after 2 s alive.
    let odd = "v1.2_beta-x";
    let mut builder = RoseyBuilder::new().plugin(json!({ "name": odd, "command": ["sleep", "3600"] }));
    builder.config["dashboard"]["auth"] = json!({ "username": "admin", "password": "s3cret" });
    let rosey = builder.start();
    for name in ["dice-roller", "8ball", "hostile", odd] {
        wait_for_plugin(&rosey, &format!("{name} running"), name, |p| p["state"] == "RUNNING");
    }
    let index = wait_for("every card to show its plugin RUNNING", DEADLINE, || {
        let html = page(&rosey, "/");
        ["dice-roller", "8ball", "hostile", odd]
            .iter()
            .all(|name| field(card(&html, name), "state") == "RUNNING")
            .then_some(html)
    });
    for name in ["dice-roller", "8ball", "hostile", odd] {
        let expected: Vec<String> = ACTIONS.iter().map(|action| format!("/api/plugin/{name}/{action}")).collect();
        let on_card = card(&index, name);
        assert_eq!(form_actions(on_card), expected, "{name}'s card posts to its own routes, literally");
        assert!(!hidden(on_card, "data-show=\"stoppable\"") && hidden(on_card, "data-show=\"startable\""));
        let detail = page(&rosey, &format!("/plugin/{name}"));
        assert_eq!(form_actions(&detail), expected, "{name}'s detail page offers the same buttons");
    }
    // The hostile version is text on its card, never part of any form.
    assert!(!index.contains(HOSTILE_VERSION), "the hostile version is escaped");
    let every_action = form_actions(&index);
    assert!(every_action.iter().all(|a| *a == "/" || a.starts_with("/api/plugin/")), "{every_action:?}");

    // A button's form works as rendered: what it posts is what the browser sends (basic auth,
    // same origin), and the card then offers Start instead of Stop.
    let stop = format!("/api/plugin/{odd}/stop");
    let origin = format!("http://127.0.0.1:{}", rosey.port());
    let headers = [
        ("authorization", AUTH),
        ("origin", origin.as_str()),
        ("sec-fetch-site", "same-origin"),
        ("content-type", "application/x-www-form-urlencoded"),
    ];
    let reply = request("POST", &rosey.url(&stop), &headers).expect("POST");
    assert_eq!(reply.status, 200, "{}", reply.body);
    let summary = reply.json()["summary"].as_str().expect("the answer in words").to_owned();
    assert!(summary.starts_with(&format!("stopped {odd} in ")) && summary.ends_with("until started"), "{summary}");
    let stopped = wait_for("the card to offer Start", DEADLINE, || {
        let html = page(&rosey, "/");
        (field(card(&html, odd), "state") == "STOPPED").then_some(html)
    });
    let on_card = card(&stopped, odd);
    assert!(hidden(on_card, "data-show=\"stoppable\"") && !hidden(on_card, "data-show=\"startable\""), "{on_card}");
}

#[test]
fn the_detail_page_lists_each_reload_newest_first_and_the_card_shows_the_newest() {
    let plugin = Deployable::new("versioned", "1");
    let rosey = bot_with_actions(json!([plugin.entry()]));
    wait_for_plugin(&rosey, "version 1 running", "versioned", |p| p["version"] == "1");
    let before = page(&rosey, "/plugin/versioned");
    assert!(!hidden(&before, "id=\"reload-empty\""), "no reload yet, and it says so");

    plugin.deploy("broken");
    assert_eq!(post(&rosey, "/api/plugin/versioned/reload").json()["outcome"], "rolled_back");
    let mut sse = Sse::open(rosey.port(), "/events?plugin=versioned", &[("authorization", AUTH)]);
    sse.snapshot(Instant::now() + DEADLINE);
    plugin.deploy("2");
    assert_eq!(post(&rosey, "/api/plugin/versioned/reload").json()["outcome"], "reloaded");

    // Live: the detail page's updates bring the new entry and the card's outcome line.
    let live = sse.wait_for("the reload in the live reload log", |data| {
        data["view"]["detail"]["reload_log"].as_array().is_some_and(|log| log.len() == 2)
    });
    let newest = &live["view"]["detail"]["reload_log"][0];
    assert_eq!((newest["outcome"].as_str(), newest["versions"].as_str()), (Some("reloaded"), Some("1 → 2")));
    assert_eq!(newest["trigger"], "api");
    let summary = live["view"]["card"]["last_reload"].as_str().expect("the card's last reload").to_owned();
    assert!(summary.starts_with("reloaded versioned 1 → 2 in "), "{summary}");

    // The server render, newest first, with the rolled-back one's reason.
    let detail = page(&rosey, "/plugin/versioned");
    assert!(hidden(&detail, "id=\"reload-empty\""));
    let log = &detail[detail.find("id=\"reload-log\"").expect("the reload log")..];
    let log = &log[..log.find("</ol>").expect("the list closes")];
    let entries: Vec<&str> = log.split("<li ").skip(1).collect();
    assert_eq!(entries.len(), 2, "{log}");
    assert_eq!((field(entries[0], "outcome"), field(entries[0], "versions")), ("reloaded", "1 → 2"));
    assert_eq!((field(entries[1], "outcome"), field(entries[1], "versions")), ("rolled back", "1 → ?"));
    assert_eq!((field(entries[0], "trigger"), field(entries[1], "trigger")), ("api", "api"));
    let reason = unescape(field(entries[1], "reason"));
    assert!(reason.contains("exited with code 3 before hello"), "{reason}");
    assert!(hidden(entries[0], "data-field=\"reason\"") && !hidden(entries[1], "data-field=\"reason\""));
    let index = page(&rosey, "/");
    assert_eq!(unescape(field(card(&index, "versioned"), "last_reload")), summary, "the index card says it too");
}

#[test]
fn the_card_shows_a_reload_in_progress_live() {
    // The new version takes 2 s to say hello: long enough to be seen.
    let plugin = Deployable::new("versioned", "1");
    let rosey = bot_with_actions(json!([plugin.entry()]));
    wait_for_plugin(&rosey, "version 1 running", "versioned", |p| p["version"] == "1");
    let mut sse = Sse::open(rosey.port(), "/events", &[("authorization", AUTH)]);
    sse.snapshot(Instant::now() + DEADLINE);

    plugin.deploy("2 2");
    let url = rosey.url("/api/plugin/versioned/reload");
    let reload = std::thread::spawn(move || request("POST", &url, &[("authorization", AUTH)]).expect("POST"));
    let during = sse.wait_for("the card to show the reload under way", |data| {
        data["view"]["cards"][0]["activity"].as_str().is_some_and(|a| a.starts_with("reloading"))
    });
    assert_eq!(during["view"]["cards"][0]["version"], "1", "version 1 serves meanwhile");
    let after = sse.wait_for("the card to show the outcome", |data| {
        let card = &data["view"]["cards"][0];
        card["version"] == "2" && card["activity"].is_null()
    });
    let outcome = after["view"]["cards"][0]["last_reload"].as_str().expect("the newest reload").to_owned();
    assert!(outcome.starts_with("reloaded versioned 1 → 2 in "), "{outcome}");
    assert_eq!(reload.join().expect("the reload").json()["outcome"], "reloaded");
}

#[test]
fn the_detail_page_lists_the_commands_its_plugin_shares_with_another() {
    let rosey = RoseyBuilder::new()
        .plugins(json!([
            { "name": "dice-roller", "builtin": "dice-roller" },
            { "name": "dice-copy", "builtin": "dice-roller" },
            { "name": "8ball", "builtin": "8ball" },
        ]))
        .start();
    rosey.wait_until_running();

    let copy = rosey.get("/plugin/dice-copy").body;
    assert!(hidden(&copy, "id=\"conflict-empty\""), "a conflict, so no 'none' line");
    let list = &copy[copy.find("id=\"conflicts\"").expect("the conflict list")..];
    let list = &list[..list.find("</ul>").expect("the list closes")];
    let entries: Vec<&str> = list.split("<li ").skip(1).collect();
    assert_eq!(entries.len(), 1, "{list}");
    assert_eq!(field(entries[0], "command"), "!roll");
    assert_eq!(field(entries[0], "claimed_by"), "dice-roller, dice-copy");
    assert_eq!(field(entries[0], "routed_to"), "dice-roller", "the first in the config gets it");

    let mut sse = Sse::open(rosey.port(), "/events?plugin=dice-copy", &[]);
    let (_, live) = sse.snapshot(Instant::now() + DEADLINE);
    assert_eq!(
        live["view"]["detail"]["command_conflicts"],
        json!([{ "command": "!roll", "routed_to": "dice-roller", "claimed_by": "dice-roller, dice-copy" }])
    );

    let alone = rosey.get("/plugin/8ball").body;
    assert!(!hidden(&alone, "id=\"conflict-empty\""), "8ball shares nothing and says so");
}
