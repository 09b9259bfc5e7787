//! Plugins that attack the host (issue 13): a detached grandchild that would outlive it, a
//! flood of hellos that would storm the dashboard and the log, stderr that is not UTF-8, and
//! programs or directories that do not exist.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use serde_json::{Value, json};

use crate::common::sse::apply_delta;
use crate::common::*;

/// Write a Python plugin into `dir` and return its config entry (restarts off unless `restart`).
fn script_plugin(dir: &Path, name: &str, source: &str) -> Value {
    let path = dir.join(format!("{name}.py"));
    std::fs::write(&path, source).expect("the temporary directory is writable");
    json!({ "name": name, "command": ["python3", path.display().to_string()], "restart": { "enabled": false } })
}

/// Kills a process at the end of a test, so that a failing run leaves nothing behind.
struct KillOnDrop(u32);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.0 as i32), Signal::SIGKILL);
    }
}

/// Wait for the PID a plugin wrote into `file`.
fn pid_written_to(file: &Path) -> u32 {
    wait_for("the detached process to write its pid", DEADLINE, || {
        std::fs::read_to_string(file).ok()?.trim().parse().ok()
    })
}

/// Python that detaches a process the way daemons do (fork, `setsid()`, output to /dev/null),
/// which writes its PID to `pid_file` and sleeps. With `double_fork`, the middle process exits
/// at once, so the detached one loses its parent.
fn detach_source(pid_file: &Path, double_fork: bool) -> String {
    format!(
        r#"
import json, os, sys, time
def detached():
    os.setsid()
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    with open({pid_file:?} + ".tmp", "w") as f:
        f.write(str(os.getpid()))
    os.rename({pid_file:?} + ".tmp", {pid_file:?})
    time.sleep(300)
    os._exit(0)
if os.fork() == 0:
    if {double_fork}:
        if os.fork() == 0:
            detached()
        os._exit(0)
    detached()
print(json.dumps({{"type": "hello", "version": "1"}}), flush=True)
"#,
        pid_file = pid_file.display().to_string(),
        double_fork = if double_fork { "True" } else { "False" },
    )
}

/// A bot running dice-roller and a plugin "detacher" that detaches a process (see
/// [`detach_source`]) and then runs `rest` (Python); the detached PID, killed when dropped.
fn start_detacher(double_fork: bool, rest: &str) -> (Rosey, KillOnDrop, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let pid_file = dir.path().join("detached.pid");
    let plugin = script_plugin(dir.path(), "detacher", &(detach_source(&pid_file, double_fork) + rest));
    let rosey =
        RoseyBuilder::new().plugins(json!([{ "name": "dice-roller", "builtin": "dice-roller" }, plugin])).start();
    let detached = KillOnDrop(pid_written_to(&pid_file));
    assert!(process_exists(detached.0));
    (rosey, detached, dir)
}

#[test]
fn a_detached_grandchild_does_not_outlive_the_host() {
    let (mut rosey, detached, _dir) = start_detacher(true, "for line in sys.stdin:\n    pass\n");
    let grandchild = detached.0;

    rosey.signal(Signal::SIGTERM);
    assert_eq!(rosey.wait_exit(DEADLINE).code(), Some(0), "{}", rosey.stderr_text());
    assert!(!process_exists(grandchild), "the detached grandchild {grandchild} outlived the host");
}

#[test]
fn a_crashing_plugin_takes_its_detached_child_with_it() {
    // The plugin lives on for a while after detaching its child (the host records its tree
    // every second), then crashes; the child now belongs to no one but the host.
    let (rosey, detached, _dir) = start_detacher(false, "time.sleep(3)\nsys.exit(1)\n");
    let child = detached.0;
    rosey.wait_for_state("detacher", "FAILED");
    wait_for("the detached child to be killed with its plugin", DEADLINE, || (!process_exists(child)).then_some(()));
    assert_eq!(rosey.plugin("dice-roller")["state"], "RUNNING", "nothing else was hit");
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

#[test]
fn stderr_that_is_not_utf8_reaches_the_crash_log() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let source =
        "import sys\nsys.stderr.buffer.write(b'caf\\xe9 is broken \\xff\\n')\nsys.stderr.flush()\nsys.exit(1)\n";
    let plugin = script_plugin(dir.path(), "latin1", source);
    let rosey = RoseyBuilder::new().plugins(json!([plugin])).start();
    let failed = rosey.wait_for_state("latin1", "FAILED");
    assert_eq!(failed["crash_log"][0]["stderr_tail"], json!(["caf\u{fffd} is broken \u{fffd}"]), "{failed}");
}

#[test]
fn a_missing_program_and_a_missing_directory_are_told_apart() {
    let off = json!({ "enabled": false });
    let program = json!({ "name": "no-program", "command": ["/nonexistent/prog"], "restart": off });
    let directory = json!({ "name": "no-directory", "command": ["python3", "-c", "pass"], "cwd": "/nonexistent/dir", "restart": off });
    let rosey = RoseyBuilder::new().plugins(json!([program, directory])).start();
    let reason = |name: &str| rosey.wait_for_state(name, "FAILED")["crash_log"][0]["reason"].clone();
    assert_eq!(reason("no-program"), "failed to start: program \"/nonexistent/prog\" not found");
    assert_eq!(reason("no-directory"), "failed to start: working directory \"/nonexistent/dir\" does not exist");
    let log = rosey.stderr_text();
    assert!(log.contains("program \"/nonexistent/prog\" not found"), "{log}");
    assert!(log.contains("working directory \"/nonexistent/dir\" does not exist"), "{log}");
}
