//! The pages' side of the plugin actions, as the server renders them (the browser side is in
//! `browser_actions.rs`): the buttons are offered only when actions are enabled, each a form that posts
//! to its plugin's own action route and works as rendered; Stop or Start as the state calls
//! for; the card shows the newest reload and the detail page the reload log (live too) and the
//! plugin's command conflicts.

use std::time::Instant;

use serde_json::json;

use crate::common::actions::{AUTH, Deployable, bot_with_actions, get_json, post, submit, wait_for_plugin};
use crate::common::pages::{card, field};
use crate::common::sse::Sse;
use crate::common::{
    DEADLINE, HOSTILE_VERSION, Rosey, RoseyBuilder, python_plugin, request, request_unfollowed, wait_for,
};

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

/// The `href` of the answer page's link back.
fn link_back(html: &str) -> &str {
    let link = html.split("class=\"back\" href=\"").nth(1).unwrap_or_else(|| panic!("no link back in {html}"));
    link.split('"').next().expect("the attribute closes")
}

/// The answer page's messages (escaped as served).
fn messages(html: &str) -> Vec<&str> {
    html.split("class=\"note action-result\"")
        .skip(1)
        .filter_map(|m| m.split_once('>')?.1.split("</p>").next())
        .collect()
}

#[test]
fn without_javascript_a_button_goes_back_to_its_page_which_shows_the_outcome() {
    let plugin = Deployable::new("versioned", "1");
    let rosey = bot_with_actions(json!([plugin.entry(), python_plugin("hostile", "hostile.py", &[])]));
    wait_for_plugin(&rosey, "version 1 running", "versioned", |p| p["version"] == "1");
    wait_for_plugin(&rosey, "the hostile version", "hostile", |p| p["version"] == HOSTILE_VERSION);
    let on_its_page = rosey.url("/plugin/versioned");
    // Stop asks for a second click, without JavaScript too: its button is inside a closed <details>.
    let detail = page(&rosey, "/plugin/versioned");
    let confirm = detail.split("<details class=\"confirm\"").nth(2).expect("Stop's confirmation");
    assert!(confirm.starts_with('>') || confirm.starts_with(" data-show"), "closed: {confirm}");
    assert!(confirm.split("</details>").next().is_some_and(|c| c.contains("data-action=\"stop\"")), "{confirm}");

    // Stop, from the plugin's page: back there, and it says STOPPED at once.
    let stop = submit(&rosey, "/api/plugin/versioned/stop", &on_its_page, "same-origin");
    assert_eq!(stop.status, 303, "{}", stop.body);
    assert_eq!(stop.header("location"), Some("/plugin/versioned"));
    let detail = page(&rosey, "/plugin/versioned");
    assert_eq!(field(card(&detail, "versioned"), "state"), "STOPPED", "the page after the redirect");
    assert!(hidden(card(&detail, "versioned"), "data-show=\"stoppable\""), "Start is offered instead");

    // Start, from the index in a filtered table view: back to that very view.
    let view = "/?state=all&sort=name&view=table";
    let start = submit(&rosey, "/api/plugin/versioned/start", &rosey.url(view), "same-origin");
    assert_eq!((start.status, start.header("location")), (303, Some(view)), "{}", start.body);
    assert_eq!(field(card(&page(&rosey, view), "versioned"), "state"), "RUNNING");

    // Reload: the card on the index shows the reload's outcome.
    plugin.deploy("2");
    let reload = submit(&rosey, "/api/plugin/versioned/reload", &rosey.url("/"), "same-origin");
    assert_eq!((reload.status, reload.header("location")), (303, Some("/")), "{}", reload.body);
    let index = page(&rosey, "/");
    let outcome = unescape(field(card(&index, "versioned"), "last_reload"));
    assert!(outcome.starts_with("reloaded versioned 1 → 2 in "), "{outcome}");

    // The hostile version, reloaded from its own page, is text on the page it goes back to.
    let hostile = submit(&rosey, "/api/plugin/hostile/reload", &rosey.url("/plugin/hostile"), "same-origin");
    assert_eq!((hostile.status, hostile.header("location")), (303, Some("/plugin/hostile")), "{}", hostile.body);
    let detail = page(&rosey, "/plugin/hostile");
    let outcome = field(card(&detail, "hostile"), "last_reload");
    assert!(outcome.starts_with("reloaded hostile &lt;img src=x onerror=alert(1)&gt;"), "{outcome}");
    assert!(!detail.contains("<img src=x"), "the version is never markup");
}

#[test]
fn without_javascript_a_refused_or_failed_action_says_why_with_a_link_back() {
    // Its first version's name holds markup.
    let first = "1&<b>\"";
    let plugin = Deployable::new("slow", first);
    let rosey = bot_with_actions(json!([plugin.entry()]));
    // Its hello, so the process has read its version before the next deploy replaces it.
    wait_for_plugin(&rosey, "the first version running", "slow", |p| p["version"] == first);
    let on_its_page = rosey.url("/plugin/slow");

    // Rolled back: the page says so and why, the version that keeps serving as text.
    plugin.deploy("broken");
    let rolled_back = submit(&rosey, "/api/plugin/slow/reload", &on_its_page, "same-origin");
    assert_eq!((rolled_back.status, rolled_back.header("location")), (200, None), "{}", rolled_back.body);
    assert!(rolled_back.body.contains("reload slow: rolled back"), "{}", rolled_back.body);
    let said = messages(&rolled_back.body);
    assert!(said[0].starts_with("reload of slow rolled back after "), "{said:?}");
    assert!(said[0].contains("(exited with code 3 before hello"), "{said:?}");
    assert!(said[0].ends_with("; 1&amp;&lt;b&gt;&quot; keeps serving"), "{said:?}");
    assert_eq!(link_back(&rolled_back.body), "/plugin/slow");

    // Busy: 409, and the reason. A version that takes 2 s to say hello keeps a reload busy
    // long enough to ask again.
    plugin.deploy("2 2");
    let url = rosey.url("/api/plugin/slow/reload");
    let first = std::thread::spawn(move || request("POST", &url, &[("authorization", AUTH)]).expect("POST"));
    wait_for_plugin(&rosey, "the reload to show", "slow", |p| p["activity"].is_string());
    let busy = submit(&rosey, "/api/plugin/slow/stop", &on_its_page, "same-origin");
    assert_eq!((busy.status, busy.header("location")), (409, None), "{}", busy.body);
    assert!(busy.content_type.starts_with("text/html"), "{}", busy.content_type);
    assert!(busy.body.contains("stop slow: refused"), "{}", busy.body);
    assert_eq!(messages(&busy.body), ["slow: a reload is already in progress; try again when it has finished"]);
    assert_eq!(first.join().expect("the first reload").json()["outcome"], "reloaded");

    // A reload of a file that no longer parses: 422, every line of the reason.
    std::fs::write(&rosey.config_path, "{\"plugins\": [").expect("config rewritten");
    let invalid = submit(&rosey, "/api/plugin/slow/reload", &rosey.url("/"), "same-origin");
    assert_eq!(invalid.status, 422, "{}", invalid.body);
    let said = messages(&invalid.body);
    assert!(said.len() > 1 && said[0].starts_with("the config file is invalid"), "{said:?}");
    assert_eq!(link_back(&invalid.body), "/");

    // A name that is no plugin, full of markup: 404, shown as text, and the way back is the
    // index, not a URL built from the name.
    let hostile_path = "/api/plugin/%3Cimg%20src%3Dx%20onerror%3Dalert(1)%3E/stop";
    let referer = rosey.url("/plugin/%3Cimg%20src%3Dx%20onerror%3Dalert(1)%3E");
    let unknown = submit(&rosey, hostile_path, &referer, "same-origin");
    assert_eq!((unknown.status, unknown.header("location")), (404, None), "{}", unknown.body);
    assert!(!unknown.body.contains("<img"), "the name is never markup: {}", unknown.body);
    assert_eq!(messages(&unknown.body), ["Plugin &lt;img src=x onerror=alert(1)&gt; not found"]);
    assert_eq!(link_back(&unknown.body), "/");

    // From another site: refused, and nothing in the request decides where the link goes.
    let foreign = submit(&rosey, "/api/plugin/slow/stop", "http://evil.example/plugin/slow", "cross-site");
    assert_eq!((foreign.status, foreign.header("location")), (403, None), "{}", foreign.body);
    assert!(messages(&foreign.body)[0].starts_with("cross-origin request refused"), "{}", foreign.body);
    assert!(!foreign.body.contains("evil.example"), "{}", foreign.body);
    assert_eq!(get_json(&rosey, "/api/plugin/slow")["state"], "RUNNING", "nothing was done");
}

#[test]
fn a_script_gets_json_whatever_it_posts() {
    let rosey = bot_with_actions(json!([{ "name": "dice-roller", "builtin": "dice-roller" }]));
    wait_for_plugin(&rosey, "dice-roller running", "dice-roller", |p| p["state"] == "RUNNING");
    let url = rosey.url("/api/plugin/dice-roller/restart");
    let origin = rosey.url("");
    let scripts: [&[(&str, &str)]; 3] = [
        // curl -u admin:s3cret -X POST
        &[("authorization", AUTH), ("accept", "*/*")],
        // curl -d '': a form's content type, from a script
        &[("authorization", AUTH), ("accept", "*/*"), ("content-type", "application/x-www-form-urlencoded")],
        // the page's own fetch (dashboard.js)
        &[
            ("authorization", AUTH),
            ("accept", "application/json"),
            ("origin", origin.as_str()),
            ("sec-fetch-site", "same-origin"),
            ("sec-fetch-mode", "cors"),
        ],
    ];
    for headers in scripts {
        let reply = request_unfollowed("POST", &url, headers).expect("POST");
        assert_eq!(
            (reply.status, reply.content_type.as_str()),
            (200, "application/json"),
            "{headers:?}: {}",
            reply.body
        );
        assert_eq!(reply.json()["outcome"], "done");
        let unknown = request_unfollowed("POST", &rosey.url("/api/plugin/nope/stop"), headers).expect("POST");
        assert_eq!((unknown.status, unknown.json()["error"].as_str()), (404, Some("Plugin nope not found")));
    }
}
