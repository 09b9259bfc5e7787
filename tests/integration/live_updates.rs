//! Live updates that cost only what changed (issue 16), against the real binary: a client that
//! gets one full frame and then deltas rebuilds exactly what a fresh client is sent and what
//! `/api/metrics` says; a client whose last frame is not a delta's base gets a full frame; a
//! plugin page's frames carry that plugin alone.
//!
//! The frames are read by a small client of its own (a thread that splits the stream into SSE
//! frames and hands them over a channel, so every wait is bounded) and decoded with
//! [`apply_delta`], the same rules `static/dashboard.js` follows.

use serde_json::{Value, json};
use std::io::{BufRead, BufReader};
use std::sync::mpsc;

use crate::common::{DEADLINE, Rosey, RoseyBuilder};

/// One SSE event: the lines up to a blank line.
#[derive(Debug, Clone, Default)]
pub struct Event {
    pub id: Option<String>,
    pub name: Option<String>,
    pub data: String,
}

/// A live client: reads `/events` on a thread of its own and keeps the state its frames build.
pub struct LiveClient {
    events: mpsc::Receiver<Event>,
    /// The full frame with every delta since applied.
    pub state: Value,
    pub last_id: Option<String>,
}

fn read_events(body: impl std::io::Read, events: mpsc::Sender<Event>) {
    let mut event = Event::default();
    for line in BufReader::new(body).lines() {
        let Ok(line) = line else { return };
        if line.is_empty() {
            if event.name.is_some() && events.send(std::mem::take(&mut event)).is_err() {
                return;
            }
            continue;
        }
        let (field, value) = line.split_once(": ").unwrap_or((line.as_str(), ""));
        match field {
            "id" => event.id = Some(value.to_owned()),
            "event" => event.name = Some(value.to_owned()),
            "data" => event.data.push_str(value),
            _ => {} // retry hints and keep-alive comments
        }
    }
}

impl LiveClient {
    /// `GET path` (with `Last-Event-ID: resume` if given) and start reading its frames.
    pub fn open(rosey: &Rosey, path: &str, resume: Option<&str>) -> LiveClient {
        let mut request = ureq::http::Request::builder().uri(rosey.url(path));
        if let Some(id) = resume {
            request = request.header("Last-Event-ID", id);
        }
        let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
        let response = agent.run(request.body(()).expect("a well-formed request")).expect("the stream opens");
        assert_eq!(response.status(), 200, "GET {path}");
        let (sender, events) = mpsc::channel();
        let body = response.into_body().into_reader();
        std::thread::spawn(move || read_events(body, sender));
        LiveClient { events, state: Value::Null, last_id: None }
    }

    /// The next event as sent (not applied).
    pub fn next_event(&self) -> Event {
        self.events.recv_timeout(DEADLINE).unwrap_or_else(|e| panic!("no frame within {DEADLINE:?}: {e}"))
    }

    /// The next frame, applied to the state; returns it (the state is in `self.state`).
    pub fn next(&mut self) -> Event {
        let event = self.next_event();
        let data: Value = serde_json::from_str(&event.data).unwrap_or_else(|e| panic!("not JSON ({e}): {event:?}"));
        match event.name.as_deref() {
            Some("snapshot") => self.state = data,
            Some("delta") => {
                let base = data["base"].to_string();
                assert_eq!(Some(&base), self.last_id.as_ref(), "a delta follows the frame it was taken against");
                apply_delta(&mut self.state, &data);
            }
            other => panic!("unexpected event {other:?}"),
        }
        self.last_id = event.id.clone();
        event
    }
}

/// Apply a delta frame's data to the state a full frame started (docs/api.md, `GET /events`).
pub fn apply_delta(state: &mut Value, delta: &Value) {
    if let Some(step) = delta["uptime_step"].as_f64() {
        for plugin in state["plugins"].as_array_mut().into_iter().flatten() {
            if let Some(uptime) = plugin["uptime_seconds"].as_f64().filter(|&u| u > 0.0) {
                plugin["uptime_seconds"] = json!(((uptime + step) * 10.0).round() / 10.0);
            }
        }
    }
    patch(state, &delta["changes"]);
    state["timestamp"] = delta["timestamp"].clone();
    let window = delta["window"].as_u64().expect("a window") as usize;
    state["window"] = delta["window"].clone();
    let append = |points: &mut Value, new: &Value| {
        let points = points.as_array_mut().expect("a list of points");
        points.extend(new.as_array().expect("new points").iter().cloned());
        let excess = points.len().saturating_sub(window);
        points.drain(..excess);
    };
    match &delta["points"] {
        Value::Object(by_plugin) => {
            for (i, new) in by_plugin {
                append(&mut state["points"][i.parse::<usize>().expect("a position")], new);
            }
        }
        new => append(&mut state["points"], new),
    }
}

/// An object patches (a list by position), anything else replaces.
fn patch(target: &mut Value, changes: &Value) {
    for (key, value) in changes.as_object().expect("changes are an object") {
        let inner = match target {
            Value::Array(items) => items.get_mut(key.parse::<usize>().expect("a position")),
            Value::Object(fields) => fields.get_mut(key),
            other => panic!("a patch for {key} on {other}"),
        };
        match inner {
            Some(inner) if value.is_object() && (inner.is_object() || inner.is_array()) => patch(inner, value),
            Some(inner) => *inner = value.clone(),
            None => target[key.as_str()] = value.clone(),
        }
    }
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
fn follow(client: &mut LiveClient, frames: usize, mut each: impl FnMut(&LiveClient, usize, usize)) {
    for n in 0..frames {
        let event = client.next();
        if event.name.as_deref() == Some("delta") {
            each(client, n, event.data.len());
        }
    }
}

#[test]
fn a_client_on_deltas_rebuilds_what_a_fresh_client_and_the_api_see() {
    let mut rosey = busy_bot();
    let mut client = LiveClient::open(&rosey, "/events", None);
    let first = client.next();
    assert_eq!(first.name.as_deref(), Some("snapshot"), "the first frame is full");
    let full_size = first.data.len();

    let (mut compared_fresh, mut compared_api, mut delta_sizes) = (0, 0, Vec::new());
    let sleeper = rosey.pid_of("sleeper");
    follow(&mut client, 8, |client, n, size| {
        delta_sizes.push(size);
        if n == 2 {
            nix::sys::signal::kill(nix::unistd::Pid::from_raw(sleeper), nix::sys::signal::Signal::SIGKILL)
                .expect("the sleeper is killed");
        }
        // A fresh client is sent the current snapshot whole: when it is the one this client
        // rebuilt, both must hold the same, points included.
        let mut fresh = LiveClient::open(&rosey, "/events", None);
        fresh.next();
        if fresh.last_id == client.last_id {
            assert_eq!(fresh.state, client.state, "after delta {n}, the rebuilt frame equals a full one");
            compared_fresh += 1;
        }
        let api = rosey.get_json("/api/metrics");
        if api["timestamp"] == client.state["timestamp"] {
            for (field, value) in api.as_object().expect("an object") {
                assert_eq!(&client.state[field], value, "after delta {n}, {field} as /api/metrics has it");
            }
            compared_api += 1;
        }
    });
    for _ in 0..3 {
        rosey.say("!roll 1d6");
    }
    follow(&mut client, 4, |_, _, size| delta_sizes.push(size));
    let api = rosey.get_json("/api/metrics");
    let dice = |state: &Value| state["plugins"][1]["event_count"].clone();
    assert_eq!(dice(&client.state), dice(&api), "the events arrived through deltas");
    assert!(delta_sizes.len() >= 8, "most frames after the first are deltas: {delta_sizes:?}");
    assert!(
        compared_fresh >= 3 && compared_api >= 3,
        "compared {compared_fresh} times with a fresh client, {compared_api} with the API"
    );
    let sleeper_state = &client.state["plugins"][3];
    assert!(sleeper_state["crash_count"] == 1, "the crash came through the deltas: {sleeper_state}");
    // What it is for: a snapshot costs each client a fraction of the whole.
    let largest = delta_sizes.iter().max().copied().unwrap_or_default();
    assert!(largest * 2 < full_size, "deltas of {delta_sizes:?} bytes against a full frame of {full_size}");
}

#[test]
fn a_client_whose_last_frame_is_not_the_base_gets_a_full_frame() {
    let rosey = busy_bot();
    let mut client = LiveClient::open(&rosey, "/events", None);
    client.next();
    let older = client.last_id.clone().expect("an id");
    client.next();
    // The newest delta and the frame it follows (a busy machine may make a client skip one).
    let (previous, current) = loop {
        let previous = client.last_id.clone().expect("an id");
        let event = client.next();
        if event.name.as_deref() == Some("delta") {
            break (previous, event.id.expect("an id"));
        }
    };

    // A browser resuming with the id of the frame before the current one gets the delta.
    let resumed = LiveClient::open(&rosey, "/events", Some(&previous));
    let event = resumed.next_event();
    let data: Value = serde_json::from_str(&event.data).expect("JSON");
    if event.id.as_deref() == Some(current.as_str()) {
        assert_eq!(event.name.as_deref(), Some("delta"), "on the delta's base: {event:?}");
        assert_eq!(data["base"].to_string(), previous);
    }

    // One that missed a snapshot, or that comes from an earlier run of the bot, gets a full one.
    for stale in [older.as_str(), "7", "not-a-number"] {
        let skipped = LiveClient::open(&rosey, "/events", Some(stale));
        let event = skipped.next_event();
        assert_eq!(event.name.as_deref(), Some("snapshot"), "after {stale}: a full frame, {event:?}");
        assert!(event.data.contains("\"cards\""), "the whole page: {event:?}");
    }

    // One that already has the current snapshot is sent nothing until the next.
    let up_to_date = LiveClient::open(&rosey, "/events", Some(&current));
    let event = up_to_date.next_event();
    assert_ne!(event.id.as_deref(), Some(current.as_str()), "the current frame is not sent again: {event:?}");
}

#[test]
fn a_plugin_page_is_sent_that_plugin_alone() {
    let mut rosey = busy_bot();
    let mut detail = LiveClient::open(&rosey, "/events?plugin=napper", None);
    let first = detail.next();
    assert_eq!(first.name.as_deref(), Some("snapshot"));
    for other in ["dice-roller", "8ball", "sleeper"] {
        assert!(!first.data.contains(other), "the napper's page is not sent {other}: {}", first.data);
    }
    assert_eq!(detail.state["plugin"]["name"], "napper");
    assert!(detail.state["plugins"].is_null() && detail.state["view"]["cards"].is_null(), "no list of plugins");
    let charts: Vec<&str> = detail.state["view"]["detail"]["charts"]
        .as_array()
        .expect("charts")
        .iter()
        .filter_map(|c| c["key"].as_str())
        .collect();
    assert_eq!(charts, ["cpu", "memory", "events"]);

    rosey.say("!roll 1d6");
    let mut compared = 0;
    follow(&mut detail, 6, |detail, n, _| {
        let mut fresh = LiveClient::open(&rosey, "/events?plugin=napper", None);
        let event = fresh.next();
        if fresh.last_id == detail.last_id {
            assert_eq!(fresh.state, detail.state, "after delta {n}, the rebuilt detail equals a full one");
            compared += 1;
        }
        assert!(!event.data.contains("dice-roller"), "{}", event.data);
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
