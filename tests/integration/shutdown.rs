//! Shutdown: the bot runs until signalled and stops cleanly: SIGTERM and SIGINT exit 0 and stop the
//! plugins, at every log level, and the end of the console's input is not a shutdown.

use nix::sys::signal::Signal;
use serde_json::json;

use crate::common::{DEADLINE, RoseyBuilder, request, wait_for};

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
        let first = rosey.get_json("/api/metrics")["timestamp"].clone();
        wait_for(&format!("a second snapshot at ROSEY_LOG={level}"), DEADLINE, || {
            (rosey.get_json("/api/metrics")["timestamp"] != first).then_some(())
        });
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
    let first = rosey.get_json("/api/metrics")["timestamp"].clone();
    let second = wait_for("a snapshot after stdin closed", DEADLINE, || {
        let now = rosey.get_json("/api/metrics")["timestamp"].clone();
        (now != first).then_some(now)
    });
    wait_for("another snapshot", DEADLINE, || (rosey.get_json("/api/metrics")["timestamp"] != second).then_some(()));
    rosey.assert_alive();
    let health = request("GET", &rosey.url("/health"), &[]).expect("/health answers");
    assert_eq!(health.status, 200, "{}", health.body);
    assert_eq!(rosey.plugin("dice-roller")["state"], json!("RUNNING"));
}
