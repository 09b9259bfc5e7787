//! The live stream `/events`: the snapshot on connect, updates as plugins crash and count
//! commands, one plugin's detail, the client cap, the end of the stream when the bot stops.

use std::time::Instant;

use serde_json::{Value, json};

use crate::common::json::{Kind, assert_api_metrics_shape, assert_shape, plugin_in};
use crate::common::sse::Sse;
use crate::common::*;

#[test]
fn events_stream_sends_a_snapshot_on_connect() {
    let rosey = RoseyBuilder::new().start();
    let mut sse = Sse::open(rosey.port(), "/events", &[]);
    assert_eq!(sse.status, 200);
    assert_eq!(sse.header("content-type"), Some("text/event-stream"));
    assert_eq!(sse.header("cache-control"), Some("no-store"));

    let deadline = Instant::now() + DEADLINE;
    let first = sse.frame(deadline).expect("a first frame");
    assert!(first.retry.as_deref().is_some_and(|r| r.parse::<u64>().is_ok()), "a retry hint first: {first:?}");

    let (id, data) = sse.snapshot(deadline);
    assert_api_metrics_shape(&data);
    assert_eq!(data["plugins"].as_array().unwrap().len(), 3);
    assert_eq!(data["system"]["total_plugins"], 3);
    let cards = data["view"]["cards"].as_array().expect("view.cards for the page");
    assert_eq!(cards.len(), 3);
    for c in cards {
        assert_shape(
            "a card",
            c,
            &[
                ("name", Kind::Str),
                ("state", Kind::Str),
                ("badge", Kind::Str),
                ("cpu", Kind::Str),
                ("memory", Kind::Str),
            ],
        );
    }
    assert!(data["view"]["system"].is_object());

    // Later snapshots carry increasing ids.
    let (next, _) = sse.snapshot(deadline);
    assert!(next > id, "ids increase: {id} then {next}");

    // A reconnecting browser (Last-Event-ID) is brought to the current snapshot at once (by the
    // delta from the frame it names, when that is the current one's base), not sent a replay.
    let mut again = Sse::open(rosey.port(), "/events", &[("Last-Event-ID", &id.to_string())]);
    assert_eq!(again.status, 200);
    let resumed = again.event(Instant::now() + DEADLINE);
    let resumed: u64 = resumed.id.as_deref().and_then(|id| id.parse().ok()).expect("a numeric id");
    assert!(resumed >= next, "the current snapshot ({resumed}), not an old one (after {next})");
}

#[test]
fn events_stream_shows_a_killed_plugin_crashed() {
    let rosey = RoseyBuilder::new()
        .plugins(json!([
            { "name": "dice-roller", "builtin": "dice-roller", "restart": { "initial_delay": 3 } },
            { "name": "8ball", "builtin": "8ball" },
        ]))
        .start();
    rosey.wait_until_running();
    let pid = rosey.pid_of("dice-roller");
    let mut sse = Sse::open(rosey.port(), "/events", &[]);
    let (_, before) = sse.snapshot(Instant::now() + DEADLINE);
    assert_eq!(plugin_in(&before["plugins"], "dice-roller")["state"], "RUNNING");

    sigkill(pid);
    let after = sse.wait_for("dice-roller crashed", |data| {
        let p = plugin_in(&data["plugins"], "dice-roller");
        p["state"] == "CRASHED" || (p["state"] == "RUNNING" && p["crash_count"] == 1 && p["pid"] != json!(pid))
    });
    let p = plugin_in(&after["plugins"], "dice-roller");
    assert_eq!(p["crash_count"], 1, "{p}");
    assert_eq!(after["system"]["plugins_crashed"].as_u64(), Some(u64::from(p["state"] == "CRASHED")));
    let card = plugin_in(&after["view"]["cards"], "dice-roller");
    assert_eq!(card["state"], p["state"]);
    assert!(card["last_exit"].as_str().is_some_and(|r| r.contains("SIGKILL")), "the card says why: {card}");
    // The other plugin is untouched.
    assert_eq!(plugin_in(&after["plugins"], "8ball")["state"], "RUNNING");
}

#[test]
fn events_stream_counts_commands() {
    let mut rosey = RoseyBuilder::new().start();
    rosey.wait_until_running();
    let mut sse = Sse::open(rosey.port(), "/events", &[]);
    let (_, before) = sse.snapshot(Instant::now() + DEADLINE);
    assert_eq!(plugin_in(&before["plugins"], "dice-roller")["event_count"], 0);

    for _ in 0..3 {
        rosey.say("alice: !roll 2d6");
    }
    rosey.say("!8ball will it work?");
    let after = sse.wait_for("3 dice-roller events", |data| {
        plugin_in(&data["plugins"], "dice-roller")["event_count"] == 3
            && plugin_in(&data["plugins"], "8ball")["event_count"] == 1
    });
    assert_eq!(after["system"]["total_events"], 4);
    assert_eq!(plugin_in(&after["view"]["cards"], "dice-roller")["events"], "3");
    assert_eq!(plugin_in(&after["plugins"], "hostile")["event_count"], 0);
    wait_for("the replies", DEADLINE, || {
        let out = rosey.stdout_lines();
        (out.iter().filter(|l| l.starts_with("[dice-roller] @alice ")).count() == 3).then_some(())
    });
}

#[test]
fn events_stream_for_one_plugin_carries_its_detail() {
    let rosey = RoseyBuilder::new().start();
    let mut sse = Sse::open(rosey.port(), "/events?plugin=dice-roller", &[]);
    assert_eq!(sse.status, 200);
    let data = sse.wait_for("a detail view", |d| d["view"]["detail"].is_object());
    let detail = &data["view"]["detail"];
    let charts: Vec<&str> =
        detail["charts"].as_array().expect("charts").iter().map(|c| c["key"].as_str().unwrap()).collect();
    assert_eq!(charts, ["cpu", "memory", "events", "response"]);
    assert!(detail["aggregates"].is_array());
    assert!(detail["crash_log"].is_array());

    let mut missing = Sse::open(rosey.port(), "/events?plugin=nope", &[]);
    assert_eq!(missing.status, 404);
    assert_eq!(serde_json::from_str::<Value>(&missing.rest()).unwrap(), json!({ "error": "Plugin nope not found" }));

    // The index stream has no detail.
    let mut index = Sse::open(rosey.port(), "/events", &[]);
    let (_, data) = index.snapshot(Instant::now() + DEADLINE);
    assert!(data["view"]["detail"].is_null());
}

#[test]
fn events_stream_caps_clients_and_frees_slots() {
    let mut builder = RoseyBuilder::new();
    builder.config["dashboard"]["max_sse_clients"] = json!(2);
    let rosey = builder.start();
    let deadline = Instant::now() + DEADLINE;
    let mut a = Sse::open(rosey.port(), "/events", &[]);
    let mut b = Sse::open(rosey.port(), "/events", &[]);
    a.snapshot(deadline);
    b.snapshot(deadline);

    let mut c = Sse::open(rosey.port(), "/events", &[]);
    assert_eq!(c.status, 503, "the third client is refused");
    assert!(c.header("retry-after").is_some());
    assert!(!c.rest().is_empty(), "the refusal says why");
    // Other routes are not affected by the cap.
    assert_eq!(rosey.get("/api/metrics").status, 200);

    // A client that leaves frees its slot.
    drop(a);
    let mut d = wait_for("a freed slot", DEADLINE, || {
        let sse = Sse::open(rosey.port(), "/events", &[]);
        (sse.status == 200).then_some(sse)
    });
    d.snapshot(Instant::now() + DEADLINE);
    b.snapshot(Instant::now() + DEADLINE);
}

#[test]
fn events_streams_end_when_the_bot_stops() {
    let mut rosey = RoseyBuilder::new().start();
    let mut sse = Sse::open(rosey.port(), "/events", &[]);
    sse.snapshot(Instant::now() + DEADLINE);
    rosey.signal(nix::sys::signal::Signal::SIGTERM);
    let deadline = Instant::now() + DEADLINE;
    while sse.frame(deadline).is_some() {}
    let status = rosey.wait_exit(DEADLINE);
    assert!(status.success(), "a clean stop with a live client: {status:?}\n{}", rosey.stderr_text());
}
