//! The dashboard server (issue 5), against the real binary over real HTTP: the seed's two tests
//! kept exactly, the JSON shapes, 404/405, hostile input, the live SSE stream, escaping of a
//! hostile plugin version everywhere, disabled dashboard, bind failure, static assets, basic auth.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::time::Instant;

use serde_json::{Value, json};

use super::plugin_story::{metric, parse_rfc3339};
use crate::common::*;

// ---------------------------------------------------------------------------------------------
// A small server-sent-events client on a raw socket: the request is written by hand, the
// response decoded (chunked or not) and split into SSE frames, every read bounded by a deadline.

/// One SSE frame: the fields of the lines up to a blank line.
#[derive(Debug, Default)]
struct Frame {
    event: Option<String>,
    id: Option<String>,
    retry: Option<String>,
    data: Option<String>,
    comments: Vec<String>,
}

#[derive(Clone, Copy)]
enum Chunk {
    Size,
    Data(usize),
    End,
}

struct Sse {
    stream: TcpStream,
    status: u16,
    headers: Vec<(String, String)>,
    chunked: bool,
    chunk: Chunk,
    /// Received bytes not yet decoded.
    raw: Vec<u8>,
    /// Decoded body bytes not yet split into lines.
    body: Vec<u8>,
    eof: bool,
    /// The last full frame with every delta since applied.
    state: Value,
}

impl Sse {
    /// `GET path` with `extra` headers; returns once the status line and headers are read.
    fn open(port: u16, path: &str, extra: &[(&str, &str)]) -> Sse {
        let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect to the dashboard");
        let mut request = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAccept: text/event-stream\r\n");
        for (k, v) in extra {
            request.push_str(&format!("{k}: {v}\r\n"));
        }
        request.push_str("\r\n");
        stream.write_all(request.as_bytes()).expect("request sent");
        let mut sse = Sse {
            stream,
            status: 0,
            headers: Vec::new(),
            chunked: false,
            chunk: Chunk::Size,
            raw: Vec::new(),
            body: Vec::new(),
            eof: false,
            state: Value::Null,
        };
        let deadline = Instant::now() + DEADLINE;
        let head_end = loop {
            if let Some(at) = find(&sse.raw, b"\r\n\r\n") {
                break at;
            }
            assert!(sse.receive(deadline), "connection closed before the response head");
        };
        let head = String::from_utf8(sse.raw[..head_end].to_vec()).expect("an ASCII response head");
        sse.raw.drain(..head_end + 4);
        let mut lines = head.lines();
        let status_line = lines.next().unwrap_or_default();
        sse.status = status_line.split(' ').nth(1).and_then(|s| s.parse().ok()).expect("a status code");
        sse.headers = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
            .collect();
        sse.chunked = sse.header("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked"));
        sse.decode();
        sse
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    /// Read once from the socket into `raw`; false at end of stream. Panics at the deadline.
    fn receive(&mut self, deadline: Instant) -> bool {
        let mut buf = [0u8; 16 * 1024];
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(!left.is_zero(), "timed out reading the event stream");
            self.stream.set_read_timeout(Some(left)).expect("read timeout set");
            match self.stream.read(&mut buf) {
                Ok(0) => return false,
                Ok(n) => {
                    self.raw.extend_from_slice(&buf[..n]);
                    return true;
                }
                Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => return false,
            }
        }
    }

    /// Move what can be decoded from `raw` into `body`.
    fn decode(&mut self) {
        if !self.chunked {
            self.body.append(&mut self.raw);
            return;
        }
        loop {
            match self.chunk {
                Chunk::End => return,
                Chunk::Size => {
                    let Some(at) = find(&self.raw, b"\r\n") else { return };
                    let line = String::from_utf8_lossy(&self.raw[..at]).into_owned();
                    self.raw.drain(..at + 2);
                    let size = usize::from_str_radix(line.split(';').next().unwrap_or("").trim(), 16)
                        .unwrap_or_else(|_| panic!("bad chunk size line {line:?}"));
                    self.chunk = if size == 0 { Chunk::End } else { Chunk::Data(size) };
                }
                Chunk::Data(left) => {
                    // A chunk's data is followed by CRLF: wait until both are here.
                    if self.raw.len() < left + 2 {
                        return;
                    }
                    self.body.extend(self.raw.drain(..left));
                    self.raw.drain(..2);
                    self.chunk = Chunk::Size;
                }
            }
        }
    }

    /// The next line of the body (without its line ending); None at end of stream.
    fn line(&mut self, deadline: Instant) -> Option<String> {
        loop {
            if let Some(at) = self.body.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = self.body.drain(..=at).collect();
                let text = String::from_utf8(line).expect("UTF-8 event stream");
                return Some(text.trim_end_matches(['\n', '\r']).to_owned());
            }
            if self.eof || matches!(self.chunk, Chunk::End) {
                return None;
            }
            if !self.receive(deadline) {
                self.eof = true;
            }
            self.decode();
        }
    }

    /// The next frame; None at end of stream.
    fn frame(&mut self, deadline: Instant) -> Option<Frame> {
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

    /// The next snapshot, whole (a full frame, or the state after applying a delta): its id
    /// and data.
    fn snapshot(&mut self, deadline: Instant) -> (u64, Value) {
        loop {
            let frame = self.frame(deadline).expect("the stream stays open");
            let (Some(event @ ("snapshot" | "delta")), Some(data)) = (frame.event.as_deref(), frame.data) else {
                continue;
            };
            let id = frame.id.as_deref().and_then(|id| id.parse().ok()).expect("a snapshot carries a numeric id");
            let value = serde_json::from_str(&data).unwrap_or_else(|e| panic!("snapshot data is not JSON ({e})"));
            if event == "snapshot" {
                self.state = value;
            } else {
                super::live_updates::apply_delta(&mut self.state, &value);
            }
            return (id, self.state.clone());
        }
    }

    /// Read snapshots until one satisfies `check` (or panic after DEADLINE).
    fn wait_for(&mut self, what: &str, check: impl Fn(&Value) -> bool) -> Value {
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
    fn rest(&mut self) -> String {
        let deadline = Instant::now() + DEADLINE;
        let length = self.header("content-length").and_then(|v| v.parse::<usize>().ok());
        loop {
            if length.is_some_and(|n| self.body.len() >= n) || self.eof || matches!(self.chunk, Chunk::End) {
                return String::from_utf8_lossy(&self.body).into_owned();
            }
            if !self.receive(deadline) {
                self.eof = true;
            }
            self.decode();
        }
    }
}

impl Drop for Sse {
    fn drop(&mut self) {
        let _ = self.stream.shutdown(Shutdown::Both);
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Send `request` verbatim and read the whole answer (the request must ask to close).
fn raw_exchange(port: u16, request: &str) -> Vec<u8> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    stream.set_read_timeout(Some(DEADLINE)).expect("timeout set");
    stream.write_all(request.as_bytes()).expect("request sent");
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).expect("answer read to the end");
    answer
}

// ---------------------------------------------------------------------------------------------
// Small helpers.

fn plugin_in<'a>(list: &'a Value, name: &str) -> &'a Value {
    list.as_array()
        .and_then(|ps| ps.iter().find(|p| p["name"] == name))
        .unwrap_or_else(|| panic!("no plugin {name} in {list}"))
}

/// The HTML of the card whose `data-plugin` is `name` (up to its closing tag).
fn card<'a>(page: &'a str, name: &str) -> &'a str {
    let marker = format!("data-plugin=\"{name}\"");
    let start = page
        .match_indices("<article ")
        .map(|(i, _)| i)
        .find(|&i| page[i..].split('>').next().is_some_and(|tag| tag.contains(&marker)))
        .unwrap_or_else(|| panic!("no card for {name} in the page"));
    let end = page[start..].find("</article>").expect("the card is closed") + start;
    &page[start..end]
}

/// The text of the element carrying `data-field="field"` inside `html`.
fn field<'a>(html: &'a str, field: &str) -> &'a str {
    let marker = format!("data-field=\"{field}\"");
    let at = html.find(&marker).unwrap_or_else(|| panic!("no {marker} in {html}"));
    let open_end = html[at..].find('>').expect("tag closes") + at + 1;
    let close = html[open_end..].find('<').expect("element closes") + open_end;
    &html[open_end..close]
}

/// Basic auth header value.
fn basic(user: &str, password: &str) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let input = format!("{user}:{password}");
    let mut out = String::new();
    for chunk in input.as_bytes().chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    format!("Basic {out}")
}

/// What a JSON value must be.
#[derive(Debug, Clone, Copy)]
enum Kind {
    Str,
    Num,
    UInt,
    Bool,
    Obj,
    Arr,
    StrOrNull,
    NumOrNull,
    UIntOrNull,
}

fn is_kind(v: &Value, kind: Kind) -> bool {
    match kind {
        Kind::Str => v.is_string(),
        Kind::Num => v.is_number(),
        Kind::UInt => v.is_u64(),
        Kind::Bool => v.is_boolean(),
        Kind::Obj => v.is_object(),
        Kind::Arr => v.is_array(),
        Kind::StrOrNull => v.is_string() || v.is_null(),
        Kind::NumOrNull => v.is_number() || v.is_null(),
        Kind::UIntOrNull => v.is_u64() || v.is_null(),
    }
}

fn assert_shape(what: &str, value: &Value, fields: &[(&str, Kind)]) {
    assert!(value.is_object(), "{what} is not an object: {value}");
    for (key, kind) in fields {
        let v = value.get(*key).unwrap_or_else(|| panic!("{what} lacks \"{key}\": {value}"));
        assert!(is_kind(v, *kind), "{what}.{key} should be {kind:?}, is {v}");
    }
}

const SUMMARY: &[(&str, Kind)] = &[
    ("name", Kind::Str),
    ("version", Kind::Str),
    ("pid", Kind::UIntOrNull),
    ("state", Kind::Str),
    ("uptime_seconds", Kind::Num),
    ("cpu_percent", Kind::Num),
    ("memory_mb", Kind::Num),
    ("event_count", Kind::UInt),
    ("crash_count", Kind::UInt),
];

const SYSTEM: &[(&str, Kind)] = &[
    ("bot_uptime_seconds", Kind::Num),
    ("bot_uptime_human", Kind::Str),
    ("total_plugins", Kind::UInt),
    ("plugins_running", Kind::UInt),
    ("plugins_crashed", Kind::UInt),
    ("total_events", Kind::UInt),
    ("total_memory_mb", Kind::Num),
];

const STATS: &[(&str, Kind)] = &[("avg", Kind::Num), ("min", Kind::Num), ("max", Kind::Num), ("p95", Kind::Num)];

const STATES: [&str; 5] = ["STARTING", "RUNNING", "CRASHED", "FAILED", "STOPPED"];

fn assert_rfc3339(what: &str, v: &Value) {
    let text = v.as_str().unwrap_or_else(|| panic!("{what} is not a string: {v}"));
    assert!(parse_rfc3339(text).is_some(), "{what} is not RFC 3339: {text:?}");
}

fn assert_api_metrics_shape(data: &Value) {
    assert_shape("/api/metrics", data, &[("timestamp", Kind::Str), ("plugins", Kind::Arr), ("system", Kind::Obj)]);
    assert_rfc3339("/api/metrics timestamp", &data["timestamp"]);
    let plugins = data["plugins"].as_array().expect("plugins is a list");
    for p in plugins {
        assert_shape("a plugin summary", p, SUMMARY);
        assert!(STATES.contains(&p["state"].as_str().unwrap_or_default()), "unknown state in {p}");
    }
    assert_shape("system", &data["system"], SYSTEM);
    let system = &data["system"];
    assert_eq!(system["total_plugins"].as_u64(), Some(plugins.len() as u64), "{system}");
    let running = plugins.iter().filter(|p| p["state"] == "RUNNING").count() as u64;
    assert_eq!(system["plugins_running"].as_u64(), Some(running), "{data}");
    let events: u64 = plugins.iter().filter_map(|p| p["event_count"].as_u64()).sum();
    assert_eq!(system["total_events"].as_u64(), Some(events), "{data}");
}

// ---------------------------------------------------------------------------------------------
// The seed's two tests, assertions kept exactly.

/// The seed's `test_dashboard_endpoints`.
#[test]
fn test_dashboard_endpoints() {
    let rosey = RoseyBuilder::new().plugins(json!([{ "name": "dice-roller", "builtin": "dice-roller" }])).start();

    // GET /
    let resp = rosey.get("/");
    assert_eq!(resp.status, 200);
    assert!(resp.content_type.contains("text/html"), "{}", resp.content_type);
    assert!(resp.body.contains("Rosey Metrics Dashboard"));

    // GET /api/metrics
    let resp = rosey.get("/api/metrics");
    assert_eq!(resp.status, 200);
    let data = resp.json();
    assert!(data.get("plugins").is_some());
    assert!(data.get("system").is_some());
    assert!(!data["plugins"].as_array().expect("plugins is a list").is_empty());

    // GET /api/plugin/dice-roller
    let resp = rosey.get("/api/plugin/dice-roller");
    assert_eq!(resp.status, 200);
    let data = resp.json();
    assert_eq!(data["name"], "dice-roller");
    assert!(data.get("current").is_some());
    assert!(data.get("aggregates_1h").is_some());

    // GET /health
    let resp = rosey.get("/health");
    assert_eq!(resp.status, 200);
    let data = resp.json();
    assert_eq!(data["status"], "ok");
    assert_eq!(data, json!({ "status": "ok" }));
}

/// The seed's `test_prometheus_format`, plus the exact 0.0.4 content type.
#[test]
fn test_prometheus_format() {
    let rosey = RoseyBuilder::new()
        .plugins(json!([{ "name": "dice-roller", "builtin": "dice-roller" }, { "name": "8ball", "builtin": "8ball" }]))
        .start();
    // Let the collector poll once.
    rosey.wait_for_plugin("a first sample", "dice-roller", |p| p["last_sampled_at"].is_string());

    let resp = rosey.get("/metrics");
    assert_eq!(resp.status, 200);
    assert!(resp.content_type.contains("text/plain"));
    assert_eq!(resp.content_type, "text/plain; version=0.0.4; charset=utf-8");
    let text = resp.body;

    assert!(text.contains("# HELP rosey_plugin_cpu_percent"), "{text}");
    assert!(text.contains("# TYPE rosey_plugin_cpu_percent gauge"));
    assert!(text.contains(r#"rosey_plugin_cpu_percent{plugin="dice-roller"}"#));
    assert!(text.contains(r#"rosey_plugin_cpu_percent{plugin="8ball"}"#));
    assert!(text.contains(r#"rosey_plugin_memory_mb{plugin="dice-roller"}"#));
    assert!(text.contains("rosey_bot_uptime_seconds"));

    // The seed's HELP and TYPE lines, word for word.
    for line in [
        "# HELP rosey_plugin_cpu_percent Plugin CPU usage percent",
        "# TYPE rosey_plugin_cpu_percent gauge",
        "# HELP rosey_plugin_memory_mb Plugin memory usage MB",
        "# TYPE rosey_plugin_memory_mb gauge",
        "# HELP rosey_plugin_uptime_seconds Plugin uptime seconds",
        "# TYPE rosey_plugin_uptime_seconds gauge",
        "# HELP rosey_plugin_events_total Plugin events processed",
        "# TYPE rosey_plugin_events_total counter",
        "# HELP rosey_plugin_crashes_total Plugin crash count",
        "# TYPE rosey_plugin_crashes_total counter",
        "# HELP rosey_bot_uptime_seconds Bot uptime seconds",
        "# TYPE rosey_bot_uptime_seconds gauge",
        "# HELP rosey_total_plugins Total plugins loaded",
        "# TYPE rosey_total_plugins gauge",
        "# HELP rosey_plugins_running Plugins currently running",
        "# TYPE rosey_plugins_running gauge",
    ] {
        assert!(text.lines().any(|l| l == line), "missing {line:?} in\n{text}");
    }
    assert_eq!(metric(&text, "rosey_total_plugins"), Some(2.0));
    assert_eq!(metric(&text, "rosey_plugins_running"), Some(2.0));
    assert!(metric(&text, r#"rosey_plugin_memory_mb{plugin="dice-roller"}"#).is_some_and(|mb| mb > 0.0), "{text}");
}

// ---------------------------------------------------------------------------------------------
// JSON shapes.

#[test]
fn every_json_route_has_the_seed_shape() {
    let rosey = RoseyBuilder::new().start();
    rosey.wait_until_running();
    let detail = rosey.wait_for_plugin("history and aggregates", "dice-roller", |p| {
        p["history"].as_array().is_some_and(|h| h.len() >= 2) && p["aggregates_1h"].is_object()
    });

    // /api/metrics
    let metrics = rosey.get("/api/metrics");
    assert_eq!(metrics.content_type, "application/json");
    let metrics = metrics.json();
    assert_api_metrics_shape(&metrics);
    let names: Vec<&str> = metrics["plugins"].as_array().unwrap().iter().map(|p| p["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["8ball", "dice-roller", "hostile"], "plugins sorted by name");
    assert_eq!(metrics["system"]["total_plugins"], 3);
    let summary = plugin_in(&metrics["plugins"], "dice-roller");
    assert_eq!(summary["state"], "RUNNING");
    assert_eq!(summary["pid"], detail["pid"]);
    assert_eq!(summary["version"], detail["version"]);

    // /api/plugin/{name}
    assert_shape(
        "/api/plugin/dice-roller",
        &detail,
        &[
            ("name", Kind::Str),
            ("version", Kind::Str),
            ("loaded_at", Kind::Str),
            ("state", Kind::Str),
            ("pid", Kind::UInt),
            ("current", Kind::Obj),
            ("aggregates_1h", Kind::Obj),
            ("history", Kind::Arr),
            // Additions (issue 9).
            ("last_sampled_at", Kind::StrOrNull),
            ("stale", Kind::Bool),
            ("processes", Kind::UInt),
            ("cpu_seconds_total", Kind::Num),
            ("restart_attempt", Kind::UInt),
            ("restarts", Kind::UInt),
            ("next_restart_in_seconds", Kind::NumOrNull),
            ("availability_1h", Kind::NumOrNull),
            ("last_crash_at", Kind::StrOrNull),
            ("crash_log", Kind::Arr),
        ],
    );
    assert_eq!(detail["name"], "dice-roller");
    assert_eq!(detail["state"], "RUNNING");
    assert_rfc3339("loaded_at", &detail["loaded_at"]);
    let pid = detail["pid"].as_u64().unwrap() as u32;
    assert!(process_exists(pid), "the reported pid {pid} is a live process");
    assert_shape(
        "current",
        &detail["current"],
        &[
            ("cpu_percent", Kind::Num),
            ("memory_mb", Kind::Num),
            ("uptime_seconds", Kind::Num),
            ("event_count", Kind::UInt),
            ("crash_count", Kind::UInt),
        ],
    );
    assert_eq!(detail["current"]["crash_count"], 0);

    let aggregates = &detail["aggregates_1h"];
    assert_shape(
        "aggregates_1h",
        aggregates,
        &[
            ("plugin_name", Kind::Str),
            ("sample_count", Kind::UInt),
            ("time_span_seconds", Kind::Num),
            ("cpu", Kind::Obj),
            ("memory_mb", Kind::Obj),
        ],
    );
    assert_eq!(aggregates["plugin_name"], "dice-roller");
    assert!(aggregates["sample_count"].as_u64().unwrap() >= 2);
    for key in ["cpu", "memory_mb"] {
        let stats = &aggregates[key];
        assert_shape(key, stats, STATS);
        let (min, avg, max, p95) = (
            stats["min"].as_f64().unwrap(),
            stats["avg"].as_f64().unwrap(),
            stats["max"].as_f64().unwrap(),
            stats["p95"].as_f64().unwrap(),
        );
        assert!(min <= avg && avg <= max && min <= p95 && p95 <= max, "{key}: {stats}");
    }
    assert!(aggregates["memory_mb"]["max"].as_f64().unwrap() > 0.0, "a running plugin uses memory: {aggregates}");

    let history = detail["history"].as_array().unwrap();
    assert!(history.len() <= 60);
    let mut previous = f64::MIN;
    for point in history {
        assert_shape(
            "a history point",
            point,
            &[
                ("timestamp", Kind::Str),
                ("cpu_percent", Kind::Num),
                ("memory_mb", Kind::Num),
                ("event_count", Kind::UInt),
            ],
        );
        let at = parse_rfc3339(point["timestamp"].as_str().unwrap()).expect("RFC 3339 timestamp");
        assert!(at > previous, "history is oldest first: {history:?}");
        previous = at;
    }

    // A crashed or failed plugin keeps the same shape, with nulls where nothing runs.
    let rosey = RoseyBuilder::new().plugins(json!([failing_plugin("broken")])).start();
    let broken = rosey.wait_for_state("broken", "FAILED");
    assert_shape(
        "a failed plugin",
        &broken,
        &[
            ("name", Kind::Str),
            ("version", Kind::Str),
            ("loaded_at", Kind::StrOrNull),
            ("state", Kind::Str),
            ("pid", Kind::UIntOrNull),
            ("current", Kind::Obj),
            ("history", Kind::Arr),
            ("crash_log", Kind::Arr),
        ],
    );
    assert!(broken["pid"].is_null(), "no process, no pid: {broken}");
    assert_eq!(broken["current"]["crash_count"], 1);
    assert!(broken.get("aggregates_1h").is_some(), "aggregates_1h is always present (maybe null)");
    assert_api_metrics_shape(&rosey.get_json("/api/metrics"));
}

/// The seed's "last 60 snapshots": with more samples than that, exactly the newest 60.
#[test]
fn plugin_history_is_the_newest_60_points() {
    let mut builder = RoseyBuilder::new().plugins(json!([{ "name": "dice-roller", "builtin": "dice-roller" }]));
    builder.config["metrics"] = json!({ "poll_interval": 0.25, "history_duration": 60 });
    let rosey = builder.start();
    let detail = rosey.wait_for_plugin("more than 60 samples", "dice-roller", |p| {
        p["aggregates_1h"]["sample_count"].as_u64().is_some_and(|n| n > 62)
    });
    let history = detail["history"].as_array().unwrap();
    assert_eq!(history.len(), 60, "{detail}");
    // The newest: the last point is no older than two polls before the response.
    let last = parse_rfc3339(history[59]["timestamp"].as_str().unwrap()).unwrap();
    let first = parse_rfc3339(history[0]["timestamp"].as_str().unwrap()).unwrap();
    let span = detail["aggregates_1h"]["time_span_seconds"].as_f64().unwrap();
    assert!(last - first < span, "history is the tail of the window ({first}..{last}, span {span})");
}

// ---------------------------------------------------------------------------------------------
// Errors and odd input.

#[test]
fn unknown_plugin_is_a_json_404() {
    let rosey = RoseyBuilder::new().start();
    let resp = rosey.get("/api/plugin/nope");
    assert_eq!(resp.status, 404);
    assert_eq!(resp.content_type, "application/json");
    assert_eq!(resp.json(), json!({ "error": "Plugin nope not found" }));
}

#[test]
fn unknown_paths_are_404_and_other_methods_405() {
    let rosey = RoseyBuilder::new().start();
    for path in ["/nope", "/api", "/api/metrics/", "/api/plugin/", "/static/nope.js", "/plugin/", "/metrics/x"] {
        assert_eq!(rosey.get(path).status, 404, "GET {path}");
    }
    for path in ["/", "/api/metrics", "/api/plugin/dice-roller", "/metrics", "/health", "/events", "/plugin/8ball"] {
        for method in ["POST", "PUT", "DELETE", "PATCH"] {
            let resp = request(method, &rosey.url(path), &[]).expect("an answer");
            assert_eq!(resp.status, 405, "{method} {path}");
            let allow = resp.header("allow").unwrap_or_default();
            assert!(allow.contains("GET"), "{method} {path}: Allow says {allow:?}");
        }
    }
    // HEAD: the GET's status and headers, no body.
    for path in ["/", "/api/metrics", "/metrics", "/health"] {
        let answer = raw_exchange(
            rosey.port(),
            &format!("HEAD {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"),
        );
        let text = String::from_utf8_lossy(&answer);
        assert!(text.starts_with("HTTP/1.1 200"), "HEAD {path}: {text}");
        let head_end = find(&answer, b"\r\n\r\n").expect("a complete head") + 4;
        assert_eq!(answer.len(), head_end, "HEAD {path} sent a body: {text}");
    }
    let head = request("HEAD", &rosey.url("/"), &[]).expect("HEAD answered");
    assert_eq!(head.status, 200);
    assert!(head.content_type.starts_with("text/html"), "{}", head.content_type);
}

#[test]
fn hostile_paths_never_fail_and_are_never_reflected_as_markup() {
    let rosey = RoseyBuilder::new().start();
    let long = "a".repeat(5000);
    let paths = [
        "/api/plugin/%3Cscript%3Ealert(1)%3C%2Fscript%3E".to_owned(),
        "/plugin/%3Cscript%3Ealert(1)%3C%2Fscript%3E".to_owned(),
        "/plugin/%3Cimg%20src%3Dx%20onerror%3Dalert(1)%3E".to_owned(),
        "/plugin/..%2f..".to_owned(),
        "/plugin/..%2F..%2Fetc%2Fpasswd".to_owned(),
        "/api/plugin/..%2f..".to_owned(),
        "/api/plugin/%FF%FE".to_owned(),
        "/plugin/%00".to_owned(),
        "/api/plugin/%22%27%3E".to_owned(),
        format!("/api/plugin/{long}"),
        format!("/plugin/{long}"),
        format!("/{long}"),
        "/events?plugin=%3Cscript%3E".to_owned(),
        "/events?plugin=%FF".to_owned(),
        "/events?plugin=a&plugin=b".to_owned(),
        "/static/..%2f..%2fCargo.toml".to_owned(),
        "/?%3Cscript%3E=1".to_owned(),
    ];
    for path in &paths {
        let resp = request("GET", &rosey.url(path), &[]).unwrap_or_else(|e| panic!("GET {path}: {e}"));
        let shown: String = path.chars().take(80).collect();
        assert!(resp.status < 500, "GET {shown}: {} {}", resp.status, resp.body);
        if !path.starts_with("/?") {
            assert!((400..500).contains(&resp.status), "GET {shown}: {}", resp.status);
        }
        assert_eq!(resp.header("x-content-type-options"), Some("nosniff"), "GET {shown}");
        if resp.content_type.starts_with("text/html") {
            for raw in ["<script>alert", "<img src", "\"'>"] {
                assert!(!resp.body.contains(raw), "GET {shown} reflects {raw:?} unescaped:\n{}", resp.body);
            }
        }
    }
    let resp = rosey.get("/api/plugin/%3Cscript%3E");
    assert_eq!(resp.json(), json!({ "error": "Plugin <script> not found" }), "JSON holds the name literally");
    let resp = rosey.get("/plugin/%3Cscript%3E");
    assert_eq!(resp.status, 404);
    assert!(resp.content_type.starts_with("text/html"), "{}", resp.content_type);
    assert!(resp.body.contains("&lt;script&gt;"), "the name is shown, escaped:\n{}", resp.body);
    // The bot is still fine.
    assert_eq!(rosey.get_json("/health"), json!({ "status": "ok" }));
}

// ---------------------------------------------------------------------------------------------
// The page.

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

// ---------------------------------------------------------------------------------------------
// Live updates (SSE).

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
    let resumed = loop {
        let frame = again.frame(Instant::now() + DEADLINE).expect("a frame");
        if frame.event.is_some() {
            break frame;
        }
    };
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

    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL).expect("killed");
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
    assert_eq!(charts, ["cpu", "memory", "events"]);
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

// ---------------------------------------------------------------------------------------------
// A hostile plugin version.

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

// ---------------------------------------------------------------------------------------------
// Start-up: disabled, bind failure.

/// Socket inodes of the TCP sockets in LISTEN state (from /proc/net/tcp and tcp6).
fn listening_inodes() -> Vec<String> {
    let mut out = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else { continue };
        for line in text.lines().skip(1) {
            let cols: Vec<&str> = line.split_whitespace().collect();
            if cols.len() > 9 && cols[3] == "0A" {
                out.push(cols[9].to_owned());
            }
        }
    }
    out
}

fn socket_inodes_of(pid: u32) -> Vec<String> {
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else { return Vec::new() };
    fds.flatten()
        .filter_map(|fd| std::fs::read_link(fd.path()).ok())
        .filter_map(|target| {
            let t = target.to_string_lossy().into_owned();
            t.strip_prefix("socket:[").and_then(|s| s.strip_suffix(']')).map(str::to_owned)
        })
        .collect()
}

#[test]
fn disabled_dashboard_listens_nowhere_but_plugins_run() {
    let rosey = RoseyBuilder::new().env("ROSEY_DASHBOARD__ENABLED", "false").spawn();
    wait_for("the plugins to start", DEADLINE, || {
        rosey.assert_alive();
        let log = rosey.stderr_text();
        (log.contains(r#"hello plugin="dice-roller""#) && log.contains(r#"hello plugin="8ball""#)).then_some(())
    });
    let log = rosey.stderr_text();
    assert!(log.contains("dashboard disabled"), "the log says so:\n{log}");
    assert!(!log.contains("dashboard: http://"), "no URL announced:\n{log}");
    rosey.assert_alive();

    let err = TcpStream::connect(("127.0.0.1", rosey.port())).expect_err("nothing listens on the dashboard port");
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused);
    let listening = listening_inodes();
    let own = socket_inodes_of(rosey.child.id());
    assert!(own.iter().all(|inode| !listening.contains(inode)), "rosey holds a listening socket");
}

#[test]
fn bind_failure_exits_1_naming_the_address_and_the_reason() {
    let occupied = TcpListener::bind("127.0.0.1:0").expect("a port to occupy");
    let port = occupied.local_addr().unwrap().port();
    let mut builder = RoseyBuilder::new();
    builder.config["dashboard"]["port"] = json!(port);
    let mut rosey = builder.spawn();
    let status = rosey.wait_exit(DEADLINE);
    assert_eq!(status.code(), Some(1), "{status:?}");
    let log = wait_for("the error message", DEADLINE, || {
        let log = rosey.stderr_text();
        log.contains("error:").then_some(log)
    });
    let message = log.lines().find(|l| l.contains("error:")).unwrap();
    assert!(message.contains(&format!("127.0.0.1:{port}")), "names the address: {message}");
    assert!(message.to_lowercase().contains("address already in use"), "names the reason: {message}");

    // The plugins that had started are stopped, not orphaned.
    let pids: Vec<u32> = log
        .lines()
        .filter(|l| l.contains("INFO started plugin="))
        .filter_map(|l| l.split("pid=").nth(1).and_then(|p| p.trim().parse().ok()))
        .collect();
    for pid in pids {
        wait_for("the plugin to be gone", DEADLINE, || (!process_exists(pid)).then_some(()));
    }
    drop(occupied);
}

// ---------------------------------------------------------------------------------------------
// Static assets and auth.

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
fn basic_auth_guards_everything_but_health() {
    let password = "s3cret-Pa55word";
    let mut builder = RoseyBuilder::new();
    builder.config["dashboard"]["auth"] = json!({ "username": "ops", "password": password });
    let rosey = builder.start();
    let right = basic("ops", password);
    let wrong = [basic("ops", "nope"), basic("admin", password), "Basic !!!".to_owned(), "Bearer x".to_owned()];

    let guarded = ["/", "/api/metrics", "/api/plugin/dice-roller", "/metrics", "/plugin/8ball", "/static/dashboard.js"];
    for path in guarded {
        let resp = rosey.get(path);
        assert_eq!(resp.status, 401, "{path} without credentials");
        let challenge = resp.header("www-authenticate").unwrap_or_default();
        assert!(challenge.starts_with("Basic "), "{path}: {challenge:?}");
        for header in &wrong {
            let resp = request("GET", &rosey.url(path), &[("Authorization", header)]).unwrap();
            assert_eq!(resp.status, 401, "{path} with {header}");
        }
        let resp = request("GET", &rosey.url(path), &[("Authorization", &right)]).unwrap();
        assert_eq!(resp.status, 200, "{path} with the right credentials");
    }
    assert_eq!(rosey.get("/health").status, 200, "/health stays open for probes");
    assert_eq!(Sse::open(rosey.port(), "/events", &[]).status, 401);
    let mut sse = Sse::open(rosey.port(), "/events", &[("Authorization", &right)]);
    assert_eq!(sse.status, 200);
    sse.snapshot(Instant::now() + DEADLINE);

    assert!(!rosey.stderr_text().contains(password), "the password is in the log");
    let dir = rosey.config_path.parent().unwrap();
    let shown = run_rosey(dir, &["--config", rosey.config_path.to_str().unwrap(), "config"], &[]);
    assert!(shown.status.success(), "{}", String::from_utf8_lossy(&shown.stderr));
    let stdout = String::from_utf8_lossy(&shown.stdout);
    assert!(stdout.contains("\"ops\""), "the config is shown: {stdout}");
    assert!(!stdout.contains(password) && !String::from_utf8_lossy(&shown.stderr).contains(password));
}

/// GET `path` with `Accept-Encoding: accept`; the response's headers (lower-cased) and body.
fn get_encoded(port: u16, path: &str, accept: &str) -> (String, Vec<u8>) {
    let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\nAccept-Encoding: {accept}\r\nConnection: close\r\n\r\n");
    let answer = raw_exchange(port, &request);
    let split = find(&answer, b"\r\n\r\n").expect("a header block");
    (String::from_utf8_lossy(&answer[..split]).to_ascii_lowercase(), answer[split + 4..].to_vec())
}

#[test]
fn page_and_metrics_are_served_gzipped_to_clients_that_accept_it() {
    let rosey = RoseyBuilder::new().start();
    rosey.wait_until_running();
    rosey.wait_for_plugin("the hostile version", "hostile", |p| p["version"] == HOSTILE_VERSION);
    for (path, expected) in
        [("/", "&lt;img src=x onerror=alert(1)&gt;"), ("/metrics", "# TYPE rosey_plugin_cpu_percent gauge")]
    {
        let (headers, body) = get_encoded(rosey.port(), path, "br;q=1.0, gzip;q=0.8, *;q=0.1");
        assert!(headers.contains("content-encoding: gzip"), "{path}: {headers}");
        assert!(headers.contains("vary: accept-encoding"), "{path}: {headers}");
        let mut text = String::new();
        flate2::read::GzDecoder::new(body.as_slice()).read_to_string(&mut text).expect("a valid gzip body");
        assert!(text.contains(expected), "{path} decompressed lacks {expected}");

        // Refused or not offered: the plain body.
        for accept in ["gzip;q=0", "identity"] {
            let (headers, body) = get_encoded(rosey.port(), path, accept);
            assert!(!headers.contains("content-encoding"), "{path} with {accept}: {headers}");
            assert!(String::from_utf8_lossy(&body).contains(expected), "{path} with {accept}");
        }
    }
}
