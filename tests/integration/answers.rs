//! No command goes unanswered (issue 21): bursts piped at once to a fast and to a slow plugin,
//! before and after its hello; a plugin that does not answer within `command_timeout`; a plugin
//! that dies with commands in flight. Every command gets exactly one answer: the plugin's, or the
//! host's saying why not, and the counts add up.

use std::process::Output;
use std::time::Duration;

use serde_json::{Value, json};

use crate::chat::pipe_into_rosey_within;
use crate::common::*;

/// The slow fixture as plugin `slow`, answering `!slow` after `seconds` per command; its command
/// is configured, so commands are routed to it before its hello.
fn slow_plugin(seconds: &str) -> Value {
    let mut plugin = python_plugin("slow", "slow.py", &[seconds]);
    plugin["commands"] = json!(["slow"]);
    plugin
}

/// How the console's answers to a burst of one command split up.
#[derive(Debug, PartialEq, Eq)]
struct Tally {
    by_plugin: usize,
    busy: usize,
}

/// `n` lines of `command` piped at once (after a second when `after_hello`) into a bot running
/// `plugin` only; every stdout line must be the plugin's answer (starting `answer`) or the host's
/// "busy", and there must be `n` of them.
fn burst(plugin: Value, command: &str, answer: &str, n: usize, after_hello: bool, deadline: Duration) -> Tally {
    let name = plugin["name"].as_str().expect("a named plugin").to_owned();
    let config = json!({ "dashboard": { "enabled": false }, "plugins": [plugin] });
    let wait = if after_hello { "sleep 1; " } else { "" };
    let output = pipe_into_rosey_within(&config, &format!("({wait}yes '{command}' | head -n {n})"), deadline);
    let busy_line = format!("[rosey] @console {name} is busy; try again shortly");
    let stdout = stdout_of(&output);
    let mut tally = Tally { by_plugin: 0, busy: 0 };
    for line in stdout.lines() {
        if line.starts_with(answer) {
            tally.by_plugin += 1;
        } else if line == busy_line {
            tally.busy += 1;
        } else {
            panic!("an answer that is neither {name}'s nor busy: {line:?}");
        }
    }
    assert_eq!(tally.by_plugin + tally.busy, n, "one answer per command: {tally:?}\n{}", stderr_of(&output));
    assert!(tally.by_plugin > 0, "the plugin answered some: {tally:?}");
    assert_counts_add_up(&output, tally.by_plugin);
    tally
}

/// The bot's own count at the end of input: every command it delivered was answered, and the
/// plugin answered all of those (none timed out in these bursts).
fn assert_counts_add_up(output: &Output, by_plugin: usize) {
    let log = stderr_of(output);
    let expected = format!("answered={by_plugin} asked={by_plugin}");
    assert!(log.contains(&expected), "the log says {expected}:\n{log}");
    assert!(!log.contains("unknown request id"), "no reply thrown away:\n{log}");
}

const DICE_ANSWER: &str = "[dice-roller] @console 🎲 1d6: ";
const BURST_DEADLINE: Duration = Duration::from_secs(60);

fn dice() -> Value {
    json!({ "name": "dice-roller", "builtin": "dice-roller" })
}

#[test]
fn five_thousand_commands_piped_at_once_get_one_answer_each() {
    burst(dice(), "!roll 1d6", DICE_ANSWER, 5_000, true, BURST_DEADLINE);
}

#[test]
fn five_thousand_commands_piped_before_the_hello_get_one_answer_each() {
    burst(dice(), "!roll 1d6", DICE_ANSWER, 5_000, false, BURST_DEADLINE);
}

#[test]
fn five_thousand_commands_to_a_slow_plugin_get_one_answer_each() {
    burst(slow_plugin("0.002"), "!slow x", "[slow] @console done x", 5_000, true, BURST_DEADLINE);
}

#[test]
fn five_thousand_commands_to_a_slow_plugin_before_its_hello_get_one_answer_each() {
    burst(slow_plugin("0.002"), "!slow x", "[slow] @console done x", 5_000, false, BURST_DEADLINE);
}

#[test]
fn two_hundred_thousand_commands_piped_at_once_get_one_answer_each() {
    burst(dice(), "!roll 1d6", DICE_ANSWER, 200_000, false, Duration::from_secs(240));
}

#[test]
fn a_command_not_answered_in_time_gets_the_hosts_answer_once_and_the_late_reply_is_dropped() {
    let mut slow = slow_plugin("2");
    slow["command_timeout"] = json!(1);
    let mut rosey = RoseyBuilder::new().plugins(json!([slow])).start();
    let users = ["u1", "u2", "u3", "u4", "u5"];
    for user in users {
        rosey.say(&format!("{user}: !slow x"));
    }
    for user in users {
        let line = wait_for_line(&rosey, &format!("[rosey] @{user} "));
        assert_eq!(line, format!("[rosey] @{user} slow did not answer within 1 s"));
    }
    // The plugin answers the first at about 2 s, the second at about 4 s: both too late.
    wait_for("two late replies", DEADLINE, || {
        (rosey.plugin("slow")["protocol_errors"] == 0 && rosey.stderr_text().contains("late reply to request"))
            .then_some(())
    });
    std::thread::sleep(Duration::from_millis(2_500));
    let lines = rosey.stdout_lines();
    assert_eq!(lines.len(), users.len(), "one answer each, nothing from the plugin after: {lines:?}");
    let plugin = rosey.wait_for_plugin("5 timeouts counted", "slow", |p| p["command_timeouts"] == 5);
    assert_eq!(plugin["protocol_errors"], 0, "a late reply is not the plugin's mistake");
    let metrics = rosey.get("/metrics").body;
    assert!(metrics.contains("rosey_plugin_command_timeouts_total{plugin=\"slow\"} 5"), "{metrics}");
}

#[test]
fn commands_in_flight_when_the_plugin_dies_get_the_hosts_answer_with_the_reason() {
    let mut slow = slow_plugin("30");
    slow["restart"] = json!({ "enabled": false });
    let mut rosey = RoseyBuilder::new().plugins(json!([slow])).start();
    for user in ["alice", "bob"] {
        rosey.say(&format!("{user}: !slow x"));
    }
    rosey.wait_for_plugin("2 commands delivered", "slow", |p| p["current"]["event_count"] == 2);
    sigkill(rosey.pid_of("slow"));
    for user in ["alice", "bob"] {
        let line = wait_for_line(&rosey, &format!("[rosey] @{user} "));
        assert_eq!(line, format!("[rosey] @{user} slow ended before answering (killed by SIGKILL)"));
    }
}

#[test]
fn a_plugin_that_takes_300_ms_shows_a_p95_near_300_ms_and_a_histogram_of_its_answers() {
    let mut rosey = RoseyBuilder::new().plugins(json!([slow_plugin("0.3")])).start();
    rosey.wait_for_plugin("slow's hello", "slow", |p| p["version"] == "1.0");
    let users = ["u1", "u2", "u3", "u4", "u5", "u6"];
    // One at a time: each answer then takes the plugin's 300 ms, not the wait behind the others.
    for user in users {
        rosey.say(&format!("{user}: !slow x"));
        assert_eq!(wait_for_line(&rosey, &format!("[slow] @{user} ")), format!("[slow] @{user} done x"));
    }
    let plugin = rosey.wait_for_plugin("6 answers timed", "slow", |p| p["response_time"]["5m"]["count"] == users.len());
    let p95 = plugin["response_time"]["5m"]["p95_ms"].as_f64().expect("a p95 with answers");
    // A band, not a timing goal: the estimate must come from the right bucket.
    assert!((250.0..=1000.0).contains(&p95), "p95 {p95} ms: {}", plugin["response_time"]);
    assert_eq!(plugin["response_time"]["1h"]["count"], users.len());
    let listed = rosey.get_json("/api/metrics")["plugins"][0]["response_time"].clone();
    assert_eq!(listed["count"], users.len(), "{listed}");
    let metrics = rosey.get("/metrics").body;
    for line in [
        "rosey_plugin_response_time_seconds_count{plugin=\"slow\"} 6",
        "rosey_plugin_response_time_seconds_bucket{plugin=\"slow\",le=\"0.25\"} 0",
        "rosey_plugin_response_time_seconds_bucket{plugin=\"slow\",le=\"+Inf\"} 6",
    ] {
        assert!(metrics.lines().any(|l| l == line), "{line} in:\n{metrics}");
    }
}
