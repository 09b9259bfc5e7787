//! The plugin protocol against plugins that break it: junk on stdout is counted as protocol
//! errors without a restart, a plugin that never reads has its commands dropped and counted, a
//! flood of hellos is neither a snapshot storm nor a log flood, and a hello that changes nothing
//! is not news. None of it disturbs the other plugins.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::common::json::count;
use crate::common::sse::apply_delta;
use crate::common::*;

#[test]
fn garbage_and_deaf_plugins_do_not_disturb_the_others() {
    let mut rosey = RoseyBuilder::new()
        .plugins(json!([
            { "name": "dice-roller", "builtin": "dice-roller" },
            python_plugin("garbage", "garbage.py", &[]),
            python_plugin("deaf", "deaf.py", &[]),
        ]))
        .start();
    rosey.wait_until_running();
    let garbage_pid = rosey.pid_of("garbage");
    rosey.wait_for_plugin("deaf's hello", "deaf", |p| p["version"] == "1.0");

    // garbage.py: invalid JSON, an unknown type, a 200 KiB line, a reply to nothing, 20,000 junk lines.
    let garbage =
        rosey.wait_for_plugin("every garbage line counted", "garbage", |p| count(&p["protocol_errors"]) >= 20_004);
    assert_eq!(garbage["protocol_errors"], 20_004, "each bad line is one protocol error");
    assert_eq!(garbage["state"], "RUNNING");
    assert_eq!(garbage["pid"], garbage_pid, "bad output is not a reason to restart");

    // deaf.py never reads: its pipe and queue fill up, then commands are dropped and counted.
    for _ in 0..2000 {
        rosey.say("!deaf x");
    }
    rosey.say("alice: !roll 3d6");
    wait_for_line(&rosey, "[dice-roller] @alice 🎲 3d6: ");
    assert_eq!(rosey.get("/health").status, 200);
    let deaf = rosey.wait_for_plugin("all 2,000 deaf commands accounted for", "deaf", |p| {
        count(&p["current"]["event_count"]) + count(&p["dropped_commands"]) == 2000
    });
    assert!(count(&deaf["dropped_commands"]) > 0, "a plugin that does not read has commands dropped: {deaf}");
    assert_eq!(deaf["state"], "RUNNING");
    let drop_lines = rosey.stderr_text().lines().filter(|l| l.contains("command dropped")).count();
    assert!((1..50).contains(&drop_lines), "drops are logged, but not one line each: {drop_lines} lines");
    assert_eq!(rosey.plugin("dice-roller")["protocol_errors"], 0, "the others' counters are untouched");
}

/// The snapshots `/events` sends during `window`, then until `until` holds for one (or the
/// deadline passes): (frames in the window, the frame that satisfied `until`).
fn sse_frames(port: u16, window: Duration, until: impl Fn(&Value) -> bool) -> (usize, Option<Value>) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect to the dashboard");
    // HTTP/1.0: the body is not chunked, so frames can be split on blank lines as they come.
    write!(stream, "GET /events HTTP/1.0\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n")
        .expect("request sent");
    stream.set_read_timeout(Some(Duration::from_millis(100))).expect("a read timeout can be set");
    let started = Instant::now();
    let (mut raw, mut buf) = (Vec::new(), [0u8; 64 * 1024]);
    let mut in_window = 0;
    // The first frame is whole, the rest are deltas against it: the state they build.
    let mut state = Value::Null;
    while started.elapsed() < DEADLINE {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => raw.extend_from_slice(&buf[..n]),
            Err(_) => {}
        }
        while let Some(end) = raw.windows(2).position(|w| w == b"\n\n") {
            let frame: Vec<u8> = raw.drain(..end + 2).collect();
            let text = String::from_utf8_lossy(&frame);
            let Some(data) = text.lines().find_map(|l| l.strip_prefix("data: ")) else { continue };
            let data: Value = serde_json::from_str(data).expect("a frame is JSON");
            match text.lines().find_map(|l| l.strip_prefix("event: ")) {
                Some("delta") => apply_delta(&mut state, &data),
                _ => state = data,
            }
            if started.elapsed() < window {
                in_window += 1;
            } else if until(&state) {
                return (in_window, Some(state));
            }
        }
    }
    (in_window, None)
}

fn state_of<'a>(snapshot: &'a Value, name: &str) -> &'a Value {
    let plugins = snapshot["plugins"].as_array().expect("a plugin list");
    &plugins.iter().find(|p| p["name"] == name).expect("the plugin is listed")["state"]
}

#[test]
fn a_hello_flood_is_neither_a_snapshot_storm_nor_a_log_flood() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    // Every hello says something new (a new version), so each one is a real change.
    let flood = r#"
import json, sys, time
end = time.time() + 6
n = 0
while time.time() < end:
    n += 1
    sys.stdout.write(json.dumps({"type": "hello", "version": str(n)}) + "\n")
    sys.stdout.flush()
sys.exit(3)
"#;
    let plugin = script_plugin(dir.path(), "flood", flood);
    let mut builder = RoseyBuilder::new().plugins(json!([plugin]));
    // No periodic snapshot within the test: whatever shows the crash was published for it.
    builder.config["metrics"] = json!({ "poll_interval": 60, "history_duration": 120 });
    let rosey = builder.start();
    rosey.wait_for_plugin("the flood to begin", "flood", |p| p["version"] != "unknown");

    let (frames, crashed) =
        sse_frames(rosey.port(), Duration::from_secs(3), |snapshot| state_of(snapshot, "flood") == "FAILED");
    eprintln!("{frames} snapshot frames in 3 s of hello flood");
    assert!(frames <= 30, "at most a handful of snapshots a second, not one per hello: {frames} in 3 s");
    let crashed = crashed.expect("the crash reaches the dashboard without waiting for a poll");
    assert_eq!(crashed["plugins"][0]["version"].as_str().map(|v| v.parse::<u64>().is_ok()), Some(true));

    let log = rosey.stderr_text();
    let lines = log.lines().count();
    eprintln!("{lines} log lines, {} bytes", log.len());
    assert!(lines < 400, "a flood of hellos is not a flood of log lines: {lines} lines");
    assert!(log.contains("not logged"), "the log says lines were left out: {log}");
}

#[test]
fn a_hello_that_changes_nothing_is_not_news() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let repeat = r#"
import json, sys
for _ in range(5000):
    sys.stdout.write(json.dumps({"type": "hello", "version": "1.0", "commands": ["echo"]}) + "\n")
# A reply to nothing: one protocol error, read after every hello (same pipe, in order).
sys.stdout.write(json.dumps({"type": "reply", "id": 99, "text": "done"}) + "\n")
sys.stdout.flush()
# Exiting is a state change, so a snapshot with the final counters follows at once, however
# long the host took to read the flood (the next sampling is a minute away).
"#;
    let mut plugin = script_plugin(dir.path(), "repeater", repeat);
    plugin["restart"] = json!({ "enabled": false });
    let mut builder = RoseyBuilder::new().plugins(json!([plugin]));
    builder.config["metrics"] = json!({ "poll_interval": 60, "history_duration": 120 });
    let rosey = builder.start();
    let failed = rosey.wait_for_state("repeater", "FAILED");
    assert_eq!(failed["protocol_errors"], 1, "every hello was read: {failed}");
    let hellos = rosey.stderr_text().lines().filter(|l| l.contains("hello")).count();
    assert_eq!(hellos, 1, "5,000 identical hellos are one hello: {}", rosey.stderr_text());
}
