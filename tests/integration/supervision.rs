//! Supervision: a crashed plugin is counted and restarted with backoff (restarts never come
//! early, and the countdown to the next one goes down), a run of the reset window forgets
//! earlier crashes, a plugin that keeps crashing ends FAILED and stays so, commands for a
//! crashed plugin are dropped and counted, a plugin that cannot start fails without harming the
//! host (a missing program and a missing directory told apart).

use std::time::Instant;

use nix::sys::signal::Signal;
use serde_json::{Value, json};

use crate::common::json::{metric, plugin_in};
use crate::common::pages::card_text;
use crate::common::*;

/// A restart policy entry for a plugin config.
fn restart(initial_delay: f64, max_delay: f64, max_attempts: u32) -> Value {
    json!({ "initial_delay": initial_delay, "max_delay": max_delay, "max_attempts": max_attempts, "reset_window": 60 })
}

fn with_restart(mut plugin: Value, policy: Value) -> Value {
    plugin["restart"] = policy;
    plugin
}

#[test]
fn a_killed_plugin_is_counted_and_restarted_with_backoff() {
    let policy = json!({ "initial_delay": 0.5, "max_delay": 1, "max_attempts": 3, "reset_window": 60 });
    let mut rosey = RoseyBuilder::new()
        .plugins(json!([
            { "name": "dice-roller", "builtin": "dice-roller", "restart": policy },
            { "name": "8ball", "builtin": "8ball" },
        ]))
        .start();
    rosey.wait_until_running();

    // Attempt 1 waits initial_delay, attempt 2 twice that; restarts never come early.
    for (crash, delay) in [(1, 0.5), (2, 1.0)] {
        let old_pid = rosey.pid_of("dice-roller");
        let killed_at = Instant::now();
        sigkill(old_pid);
        let crashed = rosey.wait_for_plugin("the crash to be seen", "dice-roller", |p| {
            p["state"] == "CRASHED" || (p["state"] == "RUNNING" && p["pid"].is_i64() && p["pid"] != old_pid)
        });
        let back = rosey.wait_for_plugin("a restart with a new pid", "dice-roller", |p| {
            p["state"] == "RUNNING" && p["pid"].is_i64() && p["pid"] != old_pid
        });
        let waited = killed_at.elapsed().as_secs_f64();
        assert!(waited >= delay - 0.05, "restart {crash} came after {waited:.2}s, before its {delay}s backoff");
        assert!(!crashed["crash_log"].as_array().expect("a crash log").is_empty());
        assert_eq!(back["current"]["crash_count"], crash);
        assert_eq!(back["restart_attempt"], crash, "consecutive crashes are counted");
        assert_eq!(back["crash_log"][0]["signal"], "SIGKILL");
        assert_eq!(back["crash_log"][0]["exit_code"], Value::Null);
        assert!(!process_exists(old_pid as u32), "the killed process is gone");
    }

    // The restarted plugin serves chat again, and 8ball never noticed.
    rosey.say("alice: !roll 1d6");
    wait_for_line(&rosey, "[dice-roller] @alice 🎲 1d6: ");
    let eight_ball = rosey.plugin("8ball");
    assert_eq!(eight_ball["current"]["crash_count"], 0);
    assert_eq!(eight_ball["state"], "RUNNING");
}

/// A running bot with dice-roller alone, restarted as `policy` (a `restart` object) says.
fn dice_roller_restarted_by(policy: Value) -> Rosey {
    let rosey = RoseyBuilder::new()
        .plugins(json!([{ "name": "dice-roller", "builtin": "dice-roller", "restart": policy }]))
        .start();
    rosey.wait_until_running();
    rosey
}

#[test]
fn staying_up_for_the_reset_window_forgets_earlier_crashes() {
    // One restart allowed in a row; a run of 1 s starts the count afresh.
    let policy = json!({ "initial_delay": 0.2, "max_delay": 0.2, "max_attempts": 1, "reset_window": 1 });
    let rosey = dice_roller_restarted_by(policy);
    for crash in 1..=3 {
        let pid = rosey.pid_of("dice-roller");
        sigkill(pid);
        let back = rosey.wait_for_plugin("a restart", "dice-roller", |p| {
            p["state"] == "RUNNING" && p["pid"].is_i64() && p["pid"] != pid
        });
        assert_eq!(back["current"]["crash_count"], crash);
        rosey.wait_for_plugin("the attempt count to reset after 1 s up", "dice-roller", |p| {
            p["restart_attempt"] == 0 && p["state"] == "RUNNING"
        });
    }
    // Without the reset, the second crash would have been one too many.
    assert_eq!(rosey.plugin("dice-roller")["state"], "RUNNING");
}

/// Regression: a restart delay past what a clock reading can hold panicked the supervisor, which left
/// the dead plugin shown as RUNNING for good. The config now refuses delays over a day (see
/// config::hostile_config), so the longest one it accepts stands in.
#[test]
fn an_enormous_restart_delay_is_just_a_long_wait() {
    let never = json!({ "initial_delay": 86400, "max_delay": 86400, "max_attempts": 3, "reset_window": 60 });
    let mut rosey = dice_roller_restarted_by(never);
    let loaded_at = rosey.plugin("dice-roller")["loaded_at"].clone();
    assert!(loaded_at.is_string(), "a running plugin has loaded_at: {loaded_at}");
    sigkill(rosey.pid_of("dice-roller"));
    let crashed = rosey.wait_for_state("dice-roller", "CRASHED");
    assert_eq!(crashed["pid"], Value::Null);
    assert_eq!(crashed["current"]["crash_count"], 1);
    assert_eq!(crashed["loaded_at"], loaded_at, "a crashed plugin keeps the time it was loaded");
    rosey.signal(Signal::SIGTERM);
    assert_eq!(rosey.wait_exit(DEADLINE).code(), Some(0), "{}", rosey.stderr_text());
    assert!(!rosey.stderr_text().contains("panicked"), "{}", rosey.stderr_text());
}

/// A crashed plugin's commands are dropped and counted, not queued to be answered whenever the
/// restart comes.
#[test]
fn commands_for_a_crashed_plugin_are_dropped_and_counted() {
    let slow_restart = json!({ "initial_delay": 3, "max_delay": 3, "max_attempts": 3, "reset_window": 60 });
    let mut rosey = dice_roller_restarted_by(slow_restart);
    let pid = rosey.pid_of("dice-roller");
    sigkill(pid);
    rosey.wait_for_state("dice-roller", "CRASHED");
    for user in ["early1", "early2", "early3"] {
        rosey.say(&format!("{user}: !roll 1d6"));
    }
    let crashed = rosey.wait_for_plugin("3 dropped commands", "dice-roller", |p| p["dropped_commands"] == 3);
    assert_eq!(crashed["current"]["event_count"], 0, "dropped commands are not events");
    assert_eq!(crashed["state"], "CRASHED", "still waiting for the restart (else raise initial_delay)");

    rosey.wait_for_plugin("the restart", "dice-roller", |p| p["state"] == "RUNNING" && p["pid"] != pid);
    rosey.say("late: !roll 1d6");
    wait_for_line(&rosey, "[dice-roller] @late ");
    // Replies come in order: had the early commands been queued, they would have come first.
    let lines = rosey.stdout_lines();
    assert!(
        !lines.iter().any(|l| l.starts_with("[dice-roller] @early")),
        "dropped commands got late replies: {lines:?}"
    );
    let after = rosey.wait_for_plugin("the late command's event", "dice-roller", |p| p["current"]["event_count"] == 1);
    assert_eq!(after["dropped_commands"], 3);
}

#[test]
fn a_plugin_that_keeps_crashing_ends_failed() {
    // No delay: a restart, were one still scheduled after giving up, would be due at once.
    let crasher = with_restart(python_plugin("crasher", "crasher.py", &["0.2"]), restart(0.0, 0.0, 2));
    let mut rosey = RoseyBuilder::new().plugin(crasher).start();
    let failed = rosey.wait_for_state("crasher", "FAILED");
    assert_eq!(failed["current"]["crash_count"], 3, "the first run and two restarts");
    assert_eq!(failed["pid"], Value::Null);
    assert_eq!(failed["next_restart_in_seconds"], Value::Null, "no restart is pending");
    let last = &failed["crash_log"][0];
    assert_eq!(last["exit_code"], 3);
    assert_eq!(last["reason"], "exited with code 3");
    let tail: Vec<&str> =
        last["stderr_tail"].as_array().expect("stderr tail").iter().filter_map(Value::as_str).collect();
    assert!(tail.contains(&"fatal: giving up"), "the crash log keeps the last stderr lines: {tail:?}");

    // FAILED is final: the snapshot after one that shows it would show a restart due at once.
    let seen = wait_for("crasher FAILED in /api/metrics", DEADLINE, || {
        let snapshot = rosey.get_json("/api/metrics");
        (plugin_in(&snapshot["plugins"], "crasher")["state"] == "FAILED").then_some(snapshot)
    });
    let later = next_snapshot("the snapshot after the one showing FAILED", &seen, || rosey.get_json("/api/metrics"));
    assert_eq!(plugin_in(&later["plugins"], "crasher")["crash_count"], 3, "no restart after giving up");
    // And the others carry on.
    rosey.say("!roll 1d6");
    wait_for_line(&rosey, "[dice-roller] @console 🎲 1d6: ");
}

#[test]
fn a_missing_program_fails_without_harming_the_host() {
    let missing = json!({ "name": "missing", "command": ["/nonexistent/prog"], "restart": restart(0.1, 0.1, 2) });
    let mut rosey =
        RoseyBuilder::new().plugins(json!([{ "name": "dice-roller", "builtin": "dice-roller" }, missing])).start();
    let failed = rosey.wait_for_state("missing", "FAILED");
    assert_eq!(failed["pid"], Value::Null);
    assert_eq!(failed["loaded_at"], Value::Null, "it never started");
    assert_eq!(failed["current"]["crash_count"], 3);
    let reason = failed["crash_log"][0]["reason"].as_str().expect("a reason");
    assert!(reason.starts_with("failed to start: "), "the crash log says why: {reason}");
    assert_eq!(rosey.get("/health").status, 200);
    rosey.say("!roll 1d6");
    wait_for_line(&rosey, "[dice-roller] @console 🎲 1d6: ");
    rosey.assert_alive();
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

#[test]
fn next_restart_countdown_counts_down_during_backoff() {
    let rosey =
        RoseyBuilder::new().plugins(json!([crasher("3", json!({ "initial_delay": 5, "max_delay": 60 }))])).start();
    let running = rosey.wait_for_state("crasher", "RUNNING");
    assert!(running["next_restart_in_seconds"].is_null(), "null while RUNNING: {running}");
    assert_eq!(running["restart_attempt"], 0);

    let crashed = rosey.wait_for_state("crasher", "CRASHED");
    let first = crashed["next_restart_in_seconds"].as_f64().expect("a countdown while CRASHED");
    assert!(first > 0.0 && first <= 5.0, "{first}");
    assert_eq!(crashed["restart_attempt"], 1);
    let later = rosey.wait_for_plugin("the countdown to go down", "crasher", |p| {
        p["state"] != "CRASHED" || p["next_restart_in_seconds"].as_f64().is_some_and(|n| n < first)
    });
    assert_eq!(later["state"], "CRASHED", "the countdown went down before the restart");
    let second = later["next_restart_in_seconds"].as_f64().unwrap();
    assert!(second < first && second <= 5.0, "{first} then {second}");
    let page = rosey.get("/").body;
    if card_text(&page, "crasher", "badge") == "CRASHED" {
        assert!(card_text(&page, "crasher", "next_retry").starts_with("next retry in "));
    }

    let restarted = rosey.wait_for_plugin("the restart", "crasher", |p| p["state"] == "RUNNING" && p["restarts"] == 1);
    assert!(restarted["next_restart_in_seconds"].is_null(), "null again once RUNNING: {restarted}");
    assert_eq!(restarted["restart_attempt"], 1, "the attempt count stays until the plugin proves stable");
    let page = wait_for("the page to show it running", DEADLINE, || {
        let page = rosey.get("/").body;
        (card_text(&page, "crasher", "badge") == "RUNNING").then_some(page)
    });
    assert_eq!(card_text(&page, "crasher", "next_retry"), "", "no countdown on a running card");
    let text = rosey.get("/metrics").body;
    assert!(metric(&text, r#"rosey_plugin_restarts_total{plugin="crasher"}"#) >= Some(1.0), "{text}");

    let again = rosey.wait_for_plugin("the second crash", "crasher", |p| p["restart_attempt"] == 2);
    if again["state"] == "CRASHED" {
        let n = again["next_restart_in_seconds"].as_f64().expect("a countdown");
        assert!(n > 0.0 && n <= 10.0, "the second backoff doubles: {n}");
    }
}
