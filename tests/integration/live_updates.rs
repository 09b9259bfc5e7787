//! Live updates that cost only what changed (issue 16), against the real binary: a client that
//! gets one full frame and then deltas rebuilds exactly what a fresh client is sent and what
//! `/api/metrics` says, also across a config reload that adds and removes plugins; a client
//! whose last frame is not a delta's base gets a full frame; a plugin page's frames carry that
//! plugin alone.
//!
//! The frames are read by the shared SSE reader (`tests/common/sse.rs`), which applies deltas
//! with the same rules `static/dashboard.js` follows.

use std::time::Instant;

use nix::sys::signal::Signal;
use serde_json::{Value, json};

use crate::common::sse::{Frame, Sse};
use crate::common::{DEADLINE, HOSTILE_VERSION, Rosey, RoseyBuilder, sigkill};

/// `GET path` as a live client (resuming from `resume`, as a browser's `Last-Event-ID`).
fn open(rosey: &Rosey, path: &str, resume: Option<&str>) -> Sse {
    let headers: Vec<(&str, &str)> = resume.map(|id| ("Last-Event-ID", id)).into_iter().collect();
    let client = Sse::open(rosey.port(), path, &headers);
    assert_eq!(client.status, 200, "GET {path}");
    client
}

fn soon() -> Instant {
    Instant::now() + DEADLINE
}

fn size(frame: &Frame) -> usize {
    frame.data.as_deref().map_or(0, str::len)
}

/// A bot whose plugins each have something that changes: events, a crash and restart, idling.
fn busy_bot() -> Rosey {
    let rosey = RoseyBuilder::new()
        .plugins(json!([
            { "name": "dice-roller", "builtin": "dice-roller" },
            { "name": "8ball", "builtin": "8ball" },
            { "name": "sleeper", "command": ["sleep", "3600"], "restart": { "initial_delay": 1 } },
            { "name": "napper", "command": ["sleep", "3600"] },
        ]))
        .start();
    rosey.wait_until_running();
    rosey
}

/// Read `frames` more frames into `client`, calling `each` after every delta with its number
/// and size. A full frame may come instead of a delta (the client skipped a snapshot on a busy
/// machine): it replaces the state, and is not counted.
fn follow(client: &mut Sse, frames: usize, mut each: impl FnMut(&Sse, usize, usize)) {
    for n in 0..frames {
        let event = client.next(soon());
        if event.event.as_deref() == Some("delta") {
            each(client, n, size(&event));
        }
    }
}

/// Which of the two a client's rebuilt state was compared with.
#[derive(Default)]
struct Compared {
    fresh: usize,
    api: usize,
}

impl Compared {
    /// Compare what `client` rebuilt with what a fresh client is sent whole (points included)
    /// and with `/api/metrics`, each when it is of the same snapshot as the client's state.
    fn check(&mut self, rosey: &Rosey, client: &Sse, after: &str) {
        let mut fresh = open(rosey, "/events", None);
        fresh.next(soon());
        if fresh.last_id == client.last_id {
            assert_eq!(fresh.state, client.state, "after {after}, the rebuilt frame equals a full one");
            self.fresh += 1;
        }
        let api = rosey.get_json("/api/metrics");
        if api["timestamp"] == client.state["timestamp"] {
            for (field, value) in api.as_object().expect("an object") {
                assert_eq!(&client.state[field], value, "after {after}, {field} as /api/metrics has it");
            }
            self.api += 1;
        }
    }
}

#[test]
fn a_client_on_deltas_rebuilds_what_a_fresh_client_and_the_api_see() {
    let mut rosey = busy_bot();
    let mut client = open(&rosey, "/events", None);
    let first = client.next(soon());
    assert_eq!(first.event.as_deref(), Some("snapshot"), "the first frame is full");
    let full_size = size(&first);

    let (mut compared, mut delta_sizes) = (Compared::default(), Vec::new());
    let sleeper = rosey.pid_of("sleeper");
    follow(&mut client, 8, |client, n, size| {
        delta_sizes.push(size);
        if n == 2 {
            sigkill(sleeper);
        }
        compared.check(&rosey, client, &format!("delta {n}"));
    });
    for _ in 0..3 {
        rosey.say("!roll 1d6");
    }
    follow(&mut client, 4, |_, _, size| delta_sizes.push(size));
    let api = rosey.get_json("/api/metrics");
    let dice = |state: &Value| state["plugins"][1]["event_count"].clone();
    assert_eq!(dice(&client.state), dice(&api), "the events arrived through deltas");
    assert!(delta_sizes.len() >= 8, "most frames after the first are deltas: {delta_sizes:?}");
    let Compared { fresh, api } = compared;
    assert!(fresh >= 3 && api >= 3, "compared {fresh} times with a fresh client, {api} with the API");
    let sleeper_state = &client.state["plugins"][3];
    assert!(sleeper_state["crash_count"] == 1, "the crash came through the deltas: {sleeper_state}");
    // What it is for: a snapshot costs each client a fraction of the whole.
    let largest = delta_sizes.iter().max().copied().unwrap_or_default();
    assert!(largest * 2 < full_size, "deltas of {delta_sizes:?} bytes against a full frame of {full_size}");
}

fn plugin_names(state: &Value) -> Vec<&str> {
    state["plugins"].as_array().expect("a list of plugins").iter().filter_map(|p| p["name"].as_str()).collect()
}

/// A config reload (SIGHUP) that removes 8ball and adds a plugin reaches a client on deltas as a
/// delta, not a whole new page; after it, the client holds what a fresh client is sent and what
/// `/api/metrics` says (the plugin with the hostile version string among them).
#[test]
fn a_config_reload_that_adds_and_removes_plugins_reaches_a_client_on_deltas() {
    let rosey = RoseyBuilder::new().start();
    rosey.wait_until_running();
    // RUNNING comes before the hello: the kept plugin's version, checked below, comes with it.
    rosey.wait_for_plugin("hostile's hello", "hostile", |p| p["version"] == HOSTILE_VERSION);
    let started = rosey.config.clone();
    let mut reloaded = started.clone();
    let plugins = reloaded["plugins"].as_array_mut().expect("a list of plugins");
    plugins.retain(|p| p["name"] != "8ball");
    plugins.push(json!({ "name": "napper", "command": ["sleep", "3600"] }));

    let mut client = open(&rosey, "/events", None);
    let full_size = size(&client.next(soon()));
    // A client that skipped a snapshot (a busy machine) is rightly sent a full frame: then the
    // reload is undone and tried again, each time on a client that took the frame before.
    for (attempt, config) in [&reloaded, &started, &reloaded].into_iter().enumerate() {
        std::fs::write(&rosey.config_path, config.to_string()).expect("config rewritten");
        rosey.signal(Signal::SIGHUP);
        let expected: Vec<&str> = {
            let mut names = plugin_names(config);
            names.sort_unstable();
            names
        };
        let event = loop {
            let event = client.next(soon());
            if plugin_names(&client.state) == expected {
                break event;
            }
        };
        if event.event.as_deref() != Some("delta") {
            eprintln!("reload {attempt}: a full frame, not a delta (as after a skipped snapshot); trying again");
            continue;
        }
        let data: Value = serde_json::from_str(event.data.as_deref().expect("data")).expect("JSON");
        assert_eq!(data["names"], json!(expected), "the delta names the new list of plugins");
        eprintln!("reload {attempt}: a delta of {} bytes against a full frame of {full_size}", size(&event));

        let mut compared = Compared::default();
        compared.check(&rosey, &client, "the reload's delta");
        // On a busy machine the fresh client or the API may already be a snapshot further:
        // follow the deltas until both were compared.
        for n in 0..8 {
            if compared.fresh > 0 && compared.api > 0 {
                break;
            }
            client.next(soon());
            compared.check(&rosey, &client, &format!("the reload and {} more frames", n + 1));
        }
        assert!(compared.fresh > 0 && compared.api > 0, "compared with a fresh client and with the API");
        let hostile = client.state["plugins"].as_array().expect("plugins").iter().find(|p| p["name"] == "hostile");
        assert_eq!(hostile.map(|p| &p["version"]), Some(&json!(HOSTILE_VERSION)), "kept, its version literal");
        return;
    }
    panic!("every config reload reached the client as a full frame, none as a delta");
}

#[test]
fn a_client_whose_last_frame_is_not_the_base_gets_a_full_frame() {
    let rosey = busy_bot();
    let mut client = open(&rosey, "/events", None);
    client.next(soon());
    let older = client.last_id.clone().expect("an id");
    client.next(soon());
    // The newest delta and the frame it follows (a busy machine may make a client skip one).
    let (previous, current) = loop {
        let previous = client.last_id.clone().expect("an id");
        let event = client.next(soon());
        if event.event.as_deref() == Some("delta") {
            break (previous, event.id.expect("an id"));
        }
    };

    // A browser resuming with the id of the frame before the current one gets the delta.
    let mut resumed = open(&rosey, "/events", Some(&previous));
    let event = resumed.event(soon());
    let data: Value = serde_json::from_str(event.data.as_deref().expect("data")).expect("JSON");
    if event.id.as_deref() == Some(current.as_str()) {
        assert_eq!(event.event.as_deref(), Some("delta"), "on the delta's base: {event:?}");
        assert_eq!(data["base"].to_string(), previous);
    }

    // One that missed a snapshot, or that comes from an earlier run of the bot, gets a full one.
    for stale in [older.as_str(), "7", "not-a-number"] {
        let mut skipped = open(&rosey, "/events", Some(stale));
        let event = skipped.event(soon());
        assert_eq!(event.event.as_deref(), Some("snapshot"), "after {stale}: a full frame, {event:?}");
        assert!(event.data.as_deref().is_some_and(|d| d.contains("\"cards\"")), "the whole page: {event:?}");
    }

    // One that already has the current snapshot is sent nothing until the next.
    let mut up_to_date = open(&rosey, "/events", Some(&current));
    let event = up_to_date.event(soon());
    assert_ne!(event.id.as_deref(), Some(current.as_str()), "the current frame is not sent again: {event:?}");
}

#[test]
fn a_plugin_page_is_sent_that_plugin_alone() {
    let mut rosey = busy_bot();
    let mut detail = open(&rosey, "/events?plugin=napper", None);
    let first = detail.next(soon());
    assert_eq!(first.event.as_deref(), Some("snapshot"));
    for other in ["dice-roller", "8ball", "sleeper"] {
        let data = first.data.as_deref().expect("data");
        assert!(!data.contains(other), "the napper's page is not sent {other}: {data}");
    }
    assert_eq!(detail.state["plugin"]["name"], "napper");
    assert!(detail.state["plugins"].is_null() && detail.state["view"]["cards"].is_null(), "no list of plugins");
    let charts: Vec<&str> = detail.state["view"]["detail"]["charts"]
        .as_array()
        .expect("charts")
        .iter()
        .filter_map(|c| c["key"].as_str())
        .collect();
    assert_eq!(charts, ["cpu", "memory", "events", "response"]);

    rosey.say("!roll 1d6");
    let mut compared = 0;
    follow(&mut detail, 6, |detail, n, _| {
        let mut fresh = open(&rosey, "/events?plugin=napper", None);
        let event = fresh.next(soon());
        if fresh.last_id == detail.last_id {
            assert_eq!(fresh.state, detail.state, "after delta {n}, the rebuilt detail equals a full one");
            compared += 1;
        }
        let data = event.data.as_deref().expect("data");
        assert!(!data.contains("dice-roller"), "{data}");
    });
    assert!(compared >= 2, "compared with a fresh client {compared} times");
    let api = rosey.plugin("napper");
    assert_eq!(detail.state["plugin"]["pid"], api["pid"], "the plugin's own figures");
    let points = detail.state["points"].as_array().expect("points").len();
    assert!(
        points > 0 && json!(points) == detail.state["window"],
        "one chart point per sample of the window: {points}"
    );
}
