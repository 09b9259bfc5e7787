//! A server-sent-events reader on the tests' HTTP client (ureq): ureq sends the request and
//! decodes the chunked body; this splits it into SSE frames, every read bounded by a timeout.

use std::io::{BufRead, BufReader};
use std::time::Instant;

use serde_json::{Value, json};

use super::DEADLINE;

/// One SSE frame: the fields of the lines up to a blank line.
#[derive(Debug, Default)]
pub struct Frame {
    pub event: Option<String>,
    pub id: Option<String>,
    pub retry: Option<String>,
    pub data: Option<String>,
    pub comments: Vec<String>,
}

/// An open `GET` on an event stream (or the error response that came instead).
pub struct Sse {
    pub status: u16,
    headers: Vec<(String, String)>,
    body: BufReader<ureq::BodyReader<'static>>,
    /// The last full frame with every delta since applied (see [`Sse::next`]).
    pub state: Value,
    /// The id of the last event applied.
    pub last_id: Option<String>,
}

impl Sse {
    /// `GET path` on the dashboard at `port` with `extra` headers; returns once the status
    /// line and headers are read.
    pub fn open(port: u16, path: &str, extra: &[(&str, &str)]) -> Sse {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(DEADLINE))
            .timeout_recv_response(Some(DEADLINE))
            // A stream has no end: bound each read, not the whole body.
            .timeout_per_read(Some(DEADLINE))
            .build()
            .into();
        let mut request = ureq::http::Request::builder()
            .uri(format!("http://127.0.0.1:{port}{path}"))
            .header("Accept", "text/event-stream");
        for (k, v) in extra {
            request = request.header(*k, *v);
        }
        let response =
            agent.run(request.body(()).expect("a well-formed request")).unwrap_or_else(|e| panic!("GET {path}: {e}"));
        let status = response.status().as_u16();
        let headers = response
            .headers()
            .iter()
            .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or_default().to_owned()))
            .collect();
        Sse {
            status,
            headers,
            body: BufReader::new(response.into_body().into_reader()),
            state: Value::Null,
            last_id: None,
        }
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// The next line of the body (without its line ending); None at end of stream.
    fn line(&mut self, deadline: Instant) -> Option<String> {
        assert!(Instant::now() < deadline, "timed out reading the event stream");
        let mut line = String::new();
        match self.body.read_line(&mut line) {
            Ok(0) => None,
            Ok(_) => Some(line.trim_end_matches(['\n', '\r']).to_owned()),
            Err(e) if e.kind() == std::io::ErrorKind::InvalidData => panic!("the event stream is not UTF-8: {e}"),
            Err(e) if is_timeout(&e) => panic!("timed out reading the event stream: {e}"),
            // The server closed the stream mid-chunk (it stopped): the end, like a clean close.
            Err(_) => None,
        }
    }

    /// The next frame; None at end of stream.
    pub fn frame(&mut self, deadline: Instant) -> Option<Frame> {
        let mut frame = Frame::default();
        let mut any = false;
        loop {
            let line = self.line(deadline)?;
            if line.is_empty() {
                if any {
                    return Some(frame);
                }
                continue;
            }
            any = true;
            if let Some(comment) = line.strip_prefix(':') {
                frame.comments.push(comment.trim().to_owned());
                continue;
            }
            let (field, value) = line.split_once(':').map_or((line.as_str(), ""), |(f, v)| (f, v));
            let value = value.strip_prefix(' ').unwrap_or(value).to_owned();
            match field {
                "event" => frame.event = Some(value),
                "id" => frame.id = Some(value),
                "retry" => frame.retry = Some(value),
                "data" => {
                    frame.data = Some(match frame.data.take() {
                        Some(before) => format!("{before}\n{value}"),
                        None => value,
                    })
                }
                other => panic!("unexpected SSE field {other:?} in {line:?}"),
            }
        }
    }

    /// The next frame that carries an event (retry hints and keep-alive comments skipped),
    /// as sent: not applied to the state.
    pub fn event(&mut self, deadline: Instant) -> Frame {
        loop {
            let frame = self.frame(deadline).expect("the stream stays open");
            if frame.event.is_some() {
                return frame;
            }
        }
    }

    /// The next event, applied to [`Sse::state`]: a `snapshot` replaces it, a `delta` (whose
    /// base must be the last event applied) patches it. Returns the event as sent.
    pub fn next(&mut self, deadline: Instant) -> Frame {
        let frame = self.event(deadline);
        let text = frame.data.as_deref().expect("an event carries data");
        let data: Value = serde_json::from_str(text).unwrap_or_else(|e| panic!("event data is not JSON ({e}): {text}"));
        match frame.event.as_deref() {
            Some("snapshot") => self.state = data,
            Some("delta") => {
                let base = data["base"].to_string();
                assert_eq!(Some(&base), self.last_id.as_ref(), "a delta follows the frame it was taken against");
                apply_delta(&mut self.state, &data);
            }
            other => panic!("unexpected event {other:?}"),
        }
        self.last_id = frame.id.clone();
        frame
    }

    /// The next snapshot, whole (a full frame, or the state after applying a delta): its id
    /// and data.
    pub fn snapshot(&mut self, deadline: Instant) -> (u64, Value) {
        let frame = self.next(deadline);
        let id = frame.id.as_deref().and_then(|id| id.parse().ok()).expect("a snapshot carries a numeric id");
        (id, self.state.clone())
    }

    /// Read snapshots until one satisfies `check` (or panic after DEADLINE).
    pub fn wait_for(&mut self, what: &str, check: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + DEADLINE;
        loop {
            assert!(Instant::now() < deadline, "no snapshot showed {what} within {DEADLINE:?}");
            let (_, data) = self.snapshot(deadline);
            if check(&data) {
                return data;
            }
        }
    }

    /// The rest of the body as text (for error responses).
    pub fn rest(&mut self) -> String {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut self.body, &mut text).expect("the error body is read");
        text
    }
}

fn is_timeout(e: &std::io::Error) -> bool {
    matches!(e.kind(), std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock)
        || e.to_string().contains("timeout")
}

/// Apply a delta frame's data to the state a full frame started (docs/api.md, `GET /events`):
/// the same rules `static/dashboard.js` follows.
pub fn apply_delta(state: &mut Value, delta: &Value) {
    if let Some(step) = delta["uptime_step"].as_f64() {
        for plugin in state["plugins"].as_array_mut().into_iter().flatten() {
            if let Some(uptime) = plugin["uptime_seconds"].as_f64().filter(|&u| u > 0.0) {
                plugin["uptime_seconds"] = json!(((uptime + step) * 10.0).round() / 10.0);
            }
        }
    }
    if let Some(names) = delta["names"].as_array() {
        in_new_order(state, names);
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

/// A delta's `names`: the plugins' lists (`plugins`, `view.cards`, `points`) put in that order,
/// a kept plugin's items taken from its old position (by the name in `plugins`), a new one's
/// left empty (null, no points) for the rest of the delta to fill.
fn in_new_order(state: &mut Value, names: &[Value]) {
    let old: Vec<Value> =
        state["plugins"].as_array().expect("a list of plugins").iter().map(|p| p["name"].clone()).collect();
    let reorder = |list: &mut Value, empty: Value| {
        let items = list.as_array_mut().expect("a list per plugin");
        let item = |name: &Value| old.iter().position(|o| o == name).map_or_else(|| empty.clone(), |i| items[i].take());
        *list = Value::Array(names.iter().map(item).collect());
    };
    reorder(&mut state["plugins"], Value::Null);
    reorder(&mut state["view"]["cards"], Value::Null);
    reorder(&mut state["points"], json!([]));
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
