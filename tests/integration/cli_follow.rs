//! `rosey logs NAME [-n N] [-f]` and `rosey events [-f] [--plugin NAME]` (issue 23, item 4)
//! against a running bot with `dashboard.auth`: a plugin's stderr lines and its stray stdout
//! appear in order with their stream, new ones arrive while following, a crash appears in
//! `rosey events -f`, hostile output is shown escaped, Ctrl-C ends a follow with exit 0 and
//! an unknown plugin exits 1.
//!
//! They need the routes of items 1 and 2 (`/api/plugin/NAME/logs[/live]`,
//! `/api/events[/live]`), and run once those are merged.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};

use serde_json::json;

use crate::cli_control::{control, text};
use crate::common::actions::{bot_with_actions, wait_for_plugin};
use crate::common::*;

/// A `rosey … -f` running beside the test, its output lines collected as they come.
struct Follower {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Follower {
    fn start(config_path: &Path, args: &[&str]) -> Follower {
        let mut child = Command::new(rosey_exe())
            .arg("--config")
            .arg(config_path)
            .args(args)
            .env_remove("ROSEY_CONFIG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("rosey starts");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = lines.clone();
        let stdout = child.stdout.take().expect("piped stdout");
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                eprintln!("[follower] {line}");
                sink.lock().unwrap().push(line);
            }
        });
        Follower { child, lines }
    }

    fn lines(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }

    /// Wait until the output satisfies `check`, and return the lines then.
    fn wait_for(&mut self, what: &str, check: impl Fn(&[String]) -> bool) -> Vec<String> {
        wait_for(what, DEADLINE, || {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("rosey exited ({status}) before {what}; it printed {:?}", self.lines());
            }
            let lines = self.lines();
            check(&lines).then_some(lines)
        })
    }

    /// Ctrl-C, as the operator stops following: the exit code.
    fn interrupt(mut self) -> Option<i32> {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT).expect("signal delivered");
        let status = wait_for("rosey to exit after Ctrl-C", DEADLINE, || self.child.try_wait().unwrap());
        status.code()
    }
}

impl Drop for Follower {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The positions of `needles` in `lines`, each found after the one before.
fn in_order(lines: &[String], needles: &[&str]) -> bool {
    let mut from = 0;
    needles.iter().all(|needle| match lines[from..].iter().position(|l| l.contains(needle)) {
        Some(at) => {
            from += at + 1;
            true
        }
        None => false,
    })
}

/// A plugin that says hello, writes to stderr and one stray stdout line, then serves on.
const TALKER: &str = r#"
import json, sys, time
print(json.dumps({"type": "hello", "version": "1"}), flush=True)
sys.stderr.write("first on stderr\n"); sys.stderr.flush()
print("not a protocol message", flush=True)
sys.stderr.write("hostile \x1b[2J\u202e end\n"); sys.stderr.flush()
for line in sys.stdin:
    pass
"#;

#[test]
fn a_plugins_stderr_and_stray_stdout_lines_appear_in_rosey_logs_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let rosey = bot_with_actions(json!([script_plugin(dir.path(), "talker", TALKER)]));
    let pid = wait_for_plugin(&rosey, "talker running", "talker", |p| p["state"] == "RUNNING")["pid"].to_string();
    let shown = wait_for("the three lines in rosey logs", DEADLINE, || {
        let out = control(&rosey.config_path, &["logs", "talker"], &[]);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
        let lines: Vec<String> = text(&out.stdout).lines().map(str::to_owned).collect();
        (lines.len() >= 3).then_some(lines)
    });
    // In order within each stream; stdout and stderr are two pipes, read apart, so lines
    // written a microsecond apart on different ones may be kept in either order.
    assert!(
        in_order(
            &shown,
            &[
                &format!("[{pid} stderr] first on stderr"),
                &format!("[{pid} stderr] hostile \\u{{1b}}[2J\\u{{202e}} end")
            ]
        ),
        "{shown:?}"
    );
    assert!(in_order(&shown, &[&format!("[{pid} stdout] not a protocol message")]), "{shown:?}");
    assert!(!shown.iter().any(|l| l.contains('\u{1b}') || l.contains('\u{202e}')), "escaped: {shown:?}");
    let out = control(&rosey.config_path, &["logs", "talker", "-n", "1"], &[]);
    assert_eq!(text(&out.stdout).lines().count(), 1, "{}", text(&out.stdout));
}

#[test]
fn rosey_logs_follow_prints_each_new_generations_lines_and_ctrl_c_exits_0() {
    let restart = json!({ "enabled": true, "max_attempts": 100, "initial_delay": 0.5, "max_delay": 0.5 });
    let rosey = bot_with_actions(json!([crasher("1", restart)]));
    let mut follower = Follower::start(&rosey.config_path, &["logs", "crasher", "-f", "-n", "0"]);
    // Lines written after the follow began: at least two generations (distinct pids) of them.
    let lines = follower.wait_for("two crasher generations' lines", |lines| {
        let pids: std::collections::HashSet<&str> = lines
            .iter()
            .filter(|l| l.contains(" stderr] fatal: giving up"))
            .filter_map(|l| l.split('[').nth(1)?.split(' ').next())
            .collect();
        pids.len() >= 2
    });
    assert!(in_order(&lines, &CRASHER_STDERR), "{lines:?}");
    assert_eq!(follower.interrupt(), Some(0));
}

#[test]
fn a_crash_appears_in_rosey_events_follow() {
    let dir = tempfile::tempdir().unwrap();
    let victim = script_plugin(dir.path(), "victim", "import time\nwhile True: time.sleep(1)\n");
    let rosey = bot_with_actions(json!([victim, { "name": "8ball", "builtin": "8ball" }]));
    let pid = wait_for_plugin(&rosey, "victim running", "victim", |p| p["state"] == "RUNNING")["pid"].as_i64().unwrap();
    let mut follower = Follower::start(&rosey.config_path, &["events", "-f", "--plugin", "victim"]);
    // Its history (victim started) is printed once the live stream is open: the crash after
    // it can only come over the stream.
    follower.wait_for("victim's history", |lines| !lines.is_empty());
    sigkill(pid as i32);
    let lines = follower.wait_for("the crash", |lines| lines.iter().any(|l| l.contains(" crashed victim: ")));
    assert!(lines.iter().all(|l| !l.contains(" 8ball")), "only victim's events: {lines:?}");
    assert_eq!(follower.interrupt(), Some(0));

    let out = control(&rosey.config_path, &["events", "--plugin", "victim"], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout).matches(" crashed victim: ").count(), 1, "{}", text(&out.stdout));
}

#[test]
fn logs_of_an_unknown_plugin_exit_1() {
    let rosey = bot_with_actions(json!([{ "name": "8ball", "builtin": "8ball" }]));
    for args in [&["logs", "nope"][..], &["logs", "nope", "-f"]] {
        let out = control(&rosey.config_path, args, &[]);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(stderr.starts_with("error: the bot refused (HTTP 404): "), "{args:?}: {stderr}");
        assert!(stderr.contains("nope"), "{stderr}");
    }
}
