//! The timeline: a crash, a reload, an action and a refused config reload each appear once on
//! `GET /api/events` and on `/timeline`, with the right details; filters and `since`; the
//! events file survives a bot restart; `/api/events/live` delivers a new event.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::common::actions::{AUTH, Deployable, bot_with_actions, get_json, post, wait_for_plugin, wait_until_running};
use crate::common::sse::Sse;
use crate::common::{DEADLINE, HOSTILE_VERSION, Rosey, RoseyBuilder, python_plugin, request, sigkill, wait_for};

fn get(rosey: &Rosey, path: &str) -> crate::common::Reply {
    request("GET", &rosey.url(path), &[("authorization", AUTH)]).unwrap_or_else(|e| panic!("GET {path}: {e}"))
}

fn events(rosey: &Rosey, query: &str) -> Vec<Value> {
    let reply = get(rosey, &format!("/api/events?{query}"));
    assert_eq!(reply.status, 200, "{}", reply.body);
    reply.json()["events"].as_array().expect("a list").clone()
}

/// Wait until exactly one event matches `query`, and return it.
fn the_one(rosey: &Rosey, query: &str) -> Value {
    let found = wait_for(&format!("an event for {query}"), DEADLINE, || {
        let found = events(rosey, query);
        (!found.is_empty()).then_some(found)
    });
    // A moment for a duplicate to show, were one recorded.
    std::thread::sleep(Duration::from_millis(300));
    let again = events(rosey, query);
    assert_eq!(again.len(), 1, "exactly one event for {query}: {again:#?}");
    assert_eq!(found[0]["id"], again[0]["id"]);
    again[0].clone()
}

#[test]
fn a_crash_a_reload_an_action_and_a_refused_config_reload_each_appear_once() {
    let versioned = Deployable::new("versioned", "1.0");
    let rosey = bot_with_actions(json!([
        { "name": "dice-roller", "builtin": "dice-roller" },
        { "name": "8ball", "builtin": "8ball" },
        python_plugin("hostile", "hostile.py", &[]),
        versioned.entry(),
    ]));
    for name in ["dice-roller", "8ball", "hostile", "versioned"] {
        wait_until_running(&rosey, name, &[("authorization", AUTH)]);
    }

    sigkill(get_json(&rosey, "/api/plugin/dice-roller")["pid"].as_i64().expect("a pid") as i32);
    let crash = the_one(&rosey, "plugin=dice-roller&kind=crashed");
    assert_eq!(crash["details"]["signal"], "SIGKILL");
    assert!(crash["message"].as_str().unwrap().contains("killed by SIGKILL"), "{crash}");
    assert!(crash["time"].as_str().unwrap().ends_with('Z'));

    wait_for_plugin(&rosey, "versioned 1.0 said hello", "versioned", |p| p["version"] == "1.0");
    versioned.deploy("2.0");
    assert_eq!(post(&rosey, "/api/plugin/versioned/reload").status, 200);
    let reload = the_one(&rosey, "plugin=versioned&kind=reloaded,rolled_back,reload_failed");
    assert_eq!(reload["kind"], "reloaded");
    assert_eq!(
        (reload["details"]["from_version"].as_str(), reload["details"]["to_version"].as_str()),
        (Some("1.0"), Some("2.0"))
    );
    assert_eq!(reload["who"], "api user \"admin\"");

    assert_eq!(post(&rosey, "/api/plugin/8ball/stop").status, 200);
    let action = the_one(&rosey, "plugin=8ball&kind=action");
    assert_eq!(
        (action["details"]["action"].as_str(), action["details"]["outcome"].as_str()),
        (Some("stop"), Some("done"))
    );
    assert_eq!(action["who"], "api user \"admin\"");

    std::fs::write(&rosey.config_path, "{\"plugins\": [{\"name\": \"x\"}], \"metrics\": {\"poll_interval\": -1}}")
        .unwrap();
    assert_ne!(post(&rosey, "/api/reload").status, 200);
    let refused = the_one(&rosey, "kind=config_refused");
    assert_eq!(refused["plugin"], Value::Null);
    let problems = refused["details"]["problems"].as_array().expect("the problems");
    assert!(problems.iter().any(|p| p.as_str().unwrap().contains("metrics.poll_interval")), "{refused}");

    // Filters: a plugin's own events only; several kinds; `since` is exclusive.
    let all = events(&rosey, "");
    assert!(all.windows(2).all(|w| w[0]["id"].as_u64() < w[1]["id"].as_u64()), "oldest first");
    let of_dice = events(&rosey, "plugin=dice-roller");
    assert!(of_dice.iter().all(|e| e["plugin"] == "dice-roller"));
    for kind in ["started", "hello", "crashed", "restart_scheduled"] {
        assert!(of_dice.iter().any(|e| e["kind"] == kind), "dice-roller has a {kind} event: {of_dice:#?}");
    }
    let two = events(&rosey, "kind=crashed,action");
    assert_eq!(two.len(), 2);
    let after = events(&rosey, &format!("since={}", crash["id"]));
    assert!(after.iter().all(|e| e["id"].as_u64() > crash["id"].as_u64()));
    assert!(after.iter().any(|e| e["id"] == refused["id"]));
    let page = get(&rosey, &format!("/api/events?since={}", refused["id"])).json();
    assert!(page["next"].as_u64() >= refused["id"].as_u64());
    assert_eq!(get(&rosey, "/api/events?kind=nonsense").status, 400);

    // The page: every event, escaped; the plugin linked to its page; the filters from the URL.
    let html = get(&rosey, "/timeline").body;
    for event in [&crash, &reload, &action, &refused] {
        assert!(html.contains(&format!("data-id=\"{}\"", event["id"])), "the page shows {event}");
    }
    assert!(html.contains("killed by SIGKILL") && html.contains("config reload refused"));
    assert!(html.contains("href=\"/plugin/dice-roller\""));
    assert!(!html.contains(HOSTILE_VERSION) && !html.contains("<img src=x"), "the hostile version is escaped");
    let filtered = get(&rosey, "/timeline?plugin=8ball&kind=action").body;
    assert!(filtered.contains("stop done") && !filtered.contains("killed by SIGKILL"));
    // The plugin page and the overview show the newest events too.
    assert!(get(&rosey, "/plugin/dice-roller").body.contains("killed by SIGKILL"));
    assert!(get(&rosey, "/").body.contains("href=\"/timeline\""));
}

#[test]
fn the_events_file_survives_a_bot_restart() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("events.jsonl");
    let mut builder = RoseyBuilder::new().plugins(json!([{ "name": "dice-roller", "builtin": "dice-roller" }]));
    builder.config["timeline"] = json!({ "file": file.display().to_string() });
    let config = builder.config.clone();
    let mut first = builder.start();
    first.wait_until_running();
    let before = wait_for("the hello event", DEADLINE, || {
        let found = events(&first, "kind=hello");
        (!found.is_empty()).then_some(found)
    });
    first.signal(nix::sys::signal::Signal::SIGTERM);
    assert!(first.wait_exit(DEADLINE).success());
    drop(first);
    // A torn last line (a crash mid-write) is skipped, not a failed start.
    let mut text = std::fs::read_to_string(&file).unwrap();
    text.push_str("{\"id\": 99999, \"ti");
    std::fs::write(&file, text).unwrap();

    let mut again = RoseyBuilder::new();
    again.config = config;
    again.config["dashboard"]["port"] = json!(crate::common::free_port());
    let second = again.start();
    let kept = events(&second, "kind=hello");
    assert_eq!(kept[0]["id"], before[0]["id"], "the first run's hello is still there");
    second.wait_until_running();
    let hellos = wait_for("the second hello", DEADLINE, || {
        let found = events(&second, "kind=hello");
        (found.len() == 2).then_some(found)
    });
    assert!(hellos[1]["id"].as_u64() > hellos[0]["id"].as_u64(), "ids go on increasing");
}

#[test]
fn live_subscribers_get_each_new_event_of_their_filter() {
    let rosey = bot_with_actions(json!([
        { "name": "dice-roller", "builtin": "dice-roller" },
        { "name": "8ball", "builtin": "8ball" },
    ]));
    wait_until_running(&rosey, "8ball", &[("authorization", AUTH)]);
    let mut live = Sse::open(rosey.port(), "/api/events/live?plugin=8ball&kind=action", &[("authorization", AUTH)]);
    assert_eq!(live.status, 200);
    assert_eq!(live.header("content-type"), Some("text/event-stream"));
    assert_eq!(post(&rosey, "/api/plugin/dice-roller/stop").status, 200);
    assert_eq!(post(&rosey, "/api/plugin/8ball/stop").status, 200);
    let frame = live.event(Instant::now() + DEADLINE);
    assert_eq!(frame.event.as_deref(), Some("event"));
    let event: Value = serde_json::from_str(frame.data.as_deref().unwrap()).unwrap();
    assert_eq!((event["kind"].as_str(), event["plugin"].as_str()), (Some("action"), Some("8ball")), "{event}");
    assert_eq!(frame.id.as_deref(), Some(event["id"].to_string().as_str()));
}
