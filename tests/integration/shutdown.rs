//! Shutdown: the bot runs until signalled and stops cleanly: SIGTERM and SIGINT exit 0 and stop the
//! plugins, at every log level; a plugin that ignores SIGTERM is killed after the grace period,
//! or at once on a second signal or SIGQUIT; the end of the console's input is not a shutdown. (Nothing of
//! a plugin's process tree outlives the host: `process_tree.rs`.)

use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use serde_json::json;

use crate::common::{
    DEADLINE, Rosey, RoseyBuilder, children_of, fixture, next_snapshot, process_exists, request, wait_for,
};

/// Start a bot, stop it with `signal`, and check it exits 0 without leaving a plugin behind.
fn stops_cleanly_on(signal: Signal) {
    let mut rosey = RoseyBuilder::new().start();
    rosey.wait_until_running();
    let plugins: Vec<i32> = ["dice-roller", "8ball", "hostile"].iter().map(|name| rosey.pid_of(name)).collect();
    rosey.signal(signal);
    let status = rosey.wait_exit(DEADLINE);
    assert!(status.success(), "{signal} gave {status}; log:\n{}", rosey.stderr_text());
    for pid in plugins {
        wait_for(&format!("plugin {pid} to be gone after {signal}"), DEADLINE, || {
            (!crate::common::process_exists(pid as u32)).then_some(())
        });
    }
}

#[test]
fn sigterm_exits_0_and_stops_the_plugins() {
    stops_cleanly_on(Signal::SIGTERM);
}

#[test]
fn sigint_exits_0_and_stops_the_plugins() {
    stops_cleanly_on(Signal::SIGINT);
}

#[test]
fn the_bot_runs_until_signalled_at_every_log_level() {
    // Operators quiet the log (`ROSEY_LOG=warn` or `error`); that must change nothing but the log.
    for level in ["warn", "error"] {
        let mut rosey = RoseyBuilder::new().env("ROSEY_LOG", level).start();
        rosey.wait_until_running();
        let what = format!("a second snapshot at ROSEY_LOG={level}");
        next_snapshot(&what, &rosey.get_json("/api/metrics"), || rosey.get_json("/api/metrics"));
        rosey.assert_alive();
        rosey.signal(Signal::SIGTERM);
        let status = rosey.wait_exit(DEADLINE);
        assert!(status.success(), "ROSEY_LOG={level}: SIGTERM gave {status}; log:\n{}", rosey.stderr_text());
    }
}

#[test]
fn the_bot_keeps_running_after_its_stdin_ends() {
    let mut rosey = RoseyBuilder::new().plugins(json!([{ "name": "dice-roller", "builtin": "dice-roller" }])).start();
    rosey.wait_until_running();
    rosey.close_stdin();
    // Two fresh snapshots after the console closed: the collector still ticks.
    let first = rosey.get_json("/api/metrics");
    let second = next_snapshot("a snapshot after stdin closed", &first, || rosey.get_json("/api/metrics"));
    next_snapshot("another snapshot", &second, || rosey.get_json("/api/metrics"));
    rosey.assert_alive();
    let health = request("GET", &rosey.url("/health"), &[]).expect("/health answers");
    assert_eq!(health.status, 200, "{}", health.body);
    assert_eq!(rosey.plugin("dice-roller")["state"], json!("RUNNING"));
}

/// A running bot with dice-roller and a plugin that ignores SIGTERM, and the PIDs of all three
/// plugin processes (the stubborn script, its `sleep`, dice-roller).
fn start_with_a_stubborn_plugin() -> (Rosey, [u32; 3]) {
    let stubborn = json!({ "name": "stubborn", "command": ["sh", fixture("ignore_sigterm.sh")] });
    let rosey =
        RoseyBuilder::new().plugins(json!([{ "name": "dice-roller", "builtin": "dice-roller" }, stubborn])).start();
    rosey.wait_until_running();
    let stubborn_pid = rosey.pid_of("stubborn") as u32;
    let sleeper = wait_for("the script's sleep", DEADLINE, || children_of(stubborn_pid).first().copied());
    let dice_pid = rosey.pid_of("dice-roller") as u32;
    (rosey, [stubborn_pid, sleeper, dice_pid])
}

#[test]
fn a_plugin_ignoring_sigterm_is_killed_after_the_grace_period() {
    let (mut rosey, pids) = start_with_a_stubborn_plugin();
    let asked = Instant::now();
    rosey.signal(Signal::SIGTERM);
    let status = rosey.wait_exit(DEADLINE);
    let took = asked.elapsed();
    assert_eq!(status.code(), Some(0), "{}", rosey.stderr_text());
    assert!(took >= Duration::from_millis(4900), "the plugin was granted its 5 s grace period, not {took:?}");
    assert!(rosey.stderr_text().contains("did not stop within 5s of SIGTERM; killing it"), "{}", rosey.stderr_text());
    for pid in pids {
        assert!(!process_exists(pid), "process {pid} outlived the host");
    }
}

#[test]
fn a_second_signal_kills_the_plugins_without_waiting_out_the_grace() {
    let (mut rosey, pids) = start_with_a_stubborn_plugin();
    let asked = Instant::now();
    rosey.signal(Signal::SIGINT);
    wait_for("the shutdown to begin", DEADLINE, || rosey.stderr_text().contains("shutting down").then_some(()));
    rosey.signal(Signal::SIGINT);
    let status = rosey.wait_exit(DEADLINE);
    let took = asked.elapsed();
    let log = rosey.stderr_text();
    assert_eq!(status.code(), Some(0), "{log}");
    assert!(log.contains("SIGINT received again; killing the plugins now"), "{log}");
    assert!(!log.contains("did not stop within"), "the grace period was waited out: {log}");
    assert!(took < Duration::from_millis(4900), "stopped after {took:?}, as if the grace period had run");
    for pid in pids {
        assert!(!process_exists(pid), "process {pid} outlived the host");
    }
}

#[test]
fn sigquit_stops_at_once_and_leaves_no_plugin_behind() {
    let (mut rosey, pids) = start_with_a_stubborn_plugin();
    rosey.signal(Signal::SIGQUIT);
    let status = rosey.wait_exit(DEADLINE);
    let log = rosey.stderr_text();
    assert_eq!(status.code(), Some(0), "{log}");
    assert!(log.contains("SIGQUIT received; stopping now"), "{log}");
    assert!(!log.contains("did not stop within"), "SIGQUIT does not wait out the grace period: {log}");
    for pid in pids {
        assert!(!process_exists(pid), "process {pid} outlived the host");
    }
}
