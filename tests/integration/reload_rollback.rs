//! A reload that goes back after the switch, and one that checks the new version first: the
//! real binary with the versioned Python plugin, "deployed" as a version that crashes a few
//! seconds after its hello (`crash_after=S`) or that answers every command wrongly (`confused`).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use serde_json::{Value, json};

use crate::common::actions::{Deployable, bot_with_actions, get_json, post, wait_for_plugin};
use crate::common::{DEADLINE, Rosey, next_snapshot, process_exists, wait_for};

/// The host's answer to a command written to a process that then ended.
const ENDED: &str = "[rosey] @console versioned ended before answering";

/// The versioned plugin's `vVERSION N` replies on stdout: N -> every version that answered it.
fn replies(rosey: &Rosey) -> BTreeMap<u64, Vec<String>> {
    let mut out: BTreeMap<u64, Vec<String>> = BTreeMap::new();
    for line in rosey.stdout_lines() {
        let reply = line.strip_prefix("[versioned] @console v").and_then(|rest| rest.split_once(' '));
        if let Some((version, n)) = reply
            && let Ok(n) = n.parse()
        {
            out.entry(n).or_default().push(version.to_owned());
        }
    }
    out
}

fn host_answers(rosey: &Rosey) -> usize {
    rosey.stdout_lines().iter().filter(|l| l.starts_with(ENDED)).count()
}

#[test]
fn a_version_that_crashes_after_the_switch_is_rolled_back_and_the_old_one_answers_again() {
    let plugin = Deployable::new("versioned", "1");
    let mut rosey = bot_with_actions(json!([plugin.entry()]));
    let before = wait_for_plugin(&rosey, "version 1 running", "versioned", |p| p["version"] == "1");

    plugin.deploy("2 crash_after=3");
    let report = post(&rosey, "/api/plugin/versioned/reload").json();
    assert_eq!(report["outcome"], "reloaded", "the switch happens: {report}");
    assert_eq!(report["to_version"], "2");

    // A command every 50 ms while version 2 serves, and on after it has crashed.
    let (mut sent, mut sent_after_rollback) = (0u64, None);
    let start = Instant::now();
    while sent_after_rollback.is_none_or(|first| sent < first + 40) {
        assert!(start.elapsed() < DEADLINE, "no rollback within {DEADLINE:?}");
        rosey.say(&format!("!ver {sent}"));
        sent += 1;
        if sent_after_rollback.is_none() && rosey.stderr_text().contains("reload rolled back") {
            sent_after_rollback = Some(sent);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let first_after = sent_after_rollback.expect("the rollback was logged");

    // Every command is answered once: by a version, or by the host for what version 2 had
    // received when it died.
    let answered = wait_for("an answer to every command", DEADLINE, || {
        let replies = replies(&rosey);
        (replies.len() + host_answers(&rosey) == sent as usize).then_some(replies)
    });
    let twice: Vec<_> = answered.iter().filter(|(_, versions)| versions.len() != 1).collect();
    assert!(twice.is_empty(), "answered more than once: {twice:?}");
    assert!(answered.values().any(|v| v[0] == "2"), "version 2 served during the window");
    let late: Vec<_> = answered.iter().filter(|(n, v)| **n >= first_after && v[0] != "1").collect();
    assert!(late.is_empty(), "after the rollback only version 1 answers: {late:?}");
    assert_eq!((first_after..sent).filter(|n| answered.contains_key(n)).count() as u64, sent - first_after);

    let after = wait_for_plugin(&rosey, "the rollback in the reload log", "versioned", |p| {
        p["reload_log"][0]["outcome"] == "rolled_back"
    });
    let entry = &after["reload_log"][0];
    let reason = entry["reason"].as_str().expect("a reason");
    assert!(
        reason.starts_with("version 2 crashed ") && reason.contains(" s after the switch (exited with code 4)"),
        "{reason}"
    );
    assert!(reason.contains("v2 fell over on purpose"), "the new version's stderr tail: {reason}");
    assert_eq!((entry["from_version"].as_str(), entry["to_version"].as_str()), (Some("2"), Some("1")));
    assert_eq!(entry["trigger"], "api", "who asked for the reload");
    assert_eq!(after["reload_log"][1]["outcome"], "reloaded", "the switch itself stays in the log");
    assert_eq!((after["pid"].clone(), after["version"].clone()), (before["pid"].clone(), json!("1")));
    assert_eq!(after["state"], "RUNNING");
    // Seen as a crash, not as a reason to back off: the old process never stopped serving.
    assert_eq!(after["crash_log"][0]["reason"], "exited with code 4", "{after}");
    assert_eq!((after["restart_attempt"].clone(), after["restarts"].clone()), (json!(0), json!(0)));
    rosey.close_stdin();
}

#[test]
fn without_a_rollback_window_a_crash_after_the_switch_restarts_the_new_version() {
    let plugin = Deployable::new("versioned", "1");
    let mut entry = plugin.entry();
    entry["rollback_window"] = json!(0);
    let rosey = bot_with_actions(json!([entry]));
    let before = wait_for_plugin(&rosey, "version 1 running", "versioned", |p| p["version"] == "1");
    let old_pid = before["pid"].as_u64().expect("a pid") as u32;

    plugin.deploy("2 crash_after=2");
    let report = post(&rosey, "/api/plugin/versioned/reload").json();
    assert_eq!(report["outcome"], "reloaded", "{report}");
    assert!(!process_exists(old_pid), "the old process is stopped before the reload answers");
    let restarted = wait_for_plugin(&rosey, "the new version restarted", "versioned", |p| {
        p["restarts"].as_u64().is_some_and(|n| n >= 1)
    });
    assert_eq!(restarted["version"], "2", "the new version is restarted, not rolled back");
    let log = restarted["reload_log"].as_array().expect("a reload log");
    assert_eq!((log.len(), log[0]["outcome"].as_str()), (1, Some("reloaded")), "{log:?}");
}

/// The plugin's commands counted and timed so far.
fn counted(plugin: &Value) -> (Value, Value) {
    (plugin["current"]["event_count"].clone(), plugin["response_time"]["count"].clone())
}

#[test]
fn a_probe_rolls_back_a_wrong_version_before_the_switch_and_lets_a_right_one_through_uncounted() {
    let plugin = Deployable::new("versioned", "1");
    let mut entry = plugin.entry();
    entry["probe"] = json!({ "command": "ver", "args": "pong", "expect": "pong", "timeout": 5 });
    let mut rosey = bot_with_actions(json!([entry]));
    wait_for_plugin(&rosey, "version 1 running", "versioned", |p| p["version"] == "1");
    rosey.say("!ver 0");
    let before =
        wait_for_plugin(&rosey, "one command counted and timed", "versioned", |p| counted(p) == (json!(1), json!(1)));

    plugin.deploy("2 confused");
    let reply = post(&rosey, "/api/plugin/versioned/reload");
    let report = reply.json();
    assert_eq!(report["outcome"], "rolled_back", "{report}");
    assert_eq!(report["reason"], r#"probe !ver pong answered "v2 confused", expected "pong""#);
    let after = wait_for_plugin(&rosey, "the rollback in the reload log", "versioned", |p| {
        p["reload_log"][0]["outcome"] == "rolled_back"
    });
    assert_eq!(after["reload_log"][0]["reason"], report["reason"]);
    assert_eq!((after["pid"].clone(), after["version"].clone()), (before["pid"].clone(), json!("1")));

    plugin.deploy("2");
    let report = post(&rosey, "/api/plugin/versioned/reload").json();
    assert_eq!(report["outcome"], "reloaded", "{report}");
    assert_eq!(report["to_version"], "2");

    // Neither probe is an event, a timed reply or a line in chat.
    let seen = get_json(&rosey, "/api/metrics");
    next_snapshot("a snapshot after both probes", &seen, || get_json(&rosey, "/api/metrics"));
    let later = get_json(&rosey, "/api/plugin/versioned");
    assert_eq!(counted(&later), (json!(1), json!(1)), "{later}");
    let probes: Vec<_> =
        rosey.stdout_lines().into_iter().filter(|l| l.contains("pong") || l.contains("confused")).collect();
    assert!(probes.is_empty(), "probe replies stay out of chat: {probes:?}");
    rosey.say("!ver 1");
    wait_for("version 2 to answer", DEADLINE, || {
        rosey.stdout_lines().iter().any(|l| l == "[versioned] @console v2 1").then_some(())
    });
}

#[test]
fn stopping_the_bot_during_the_rollback_window_stops_both_processes() {
    let plugin = Deployable::new("versioned", "1");
    let mut entry = plugin.entry();
    entry["rollback_window"] = json!(600);
    let mut rosey = bot_with_actions(json!([entry]));
    let old = wait_for_plugin(&rosey, "version 1 running", "versioned", |p| p["version"] == "1");
    plugin.deploy("2");
    assert_eq!(post(&rosey, "/api/plugin/versioned/reload").json()["outcome"], "reloaded");
    let new = wait_for_plugin(&rosey, "version 2 serving", "versioned", |p| p["version"] == "2");
    let pids = [&old, &new].map(|p| p["pid"].as_u64().expect("a pid") as u32);
    assert!(pids.iter().all(|&pid| process_exists(pid)), "the old process waits beside the new one");

    rosey.signal(Signal::SIGTERM);
    assert!(rosey.wait_exit(DEADLINE).success());
    let left: Vec<_> = pids.into_iter().filter(|&pid| process_exists(pid)).collect();
    assert!(left.is_empty(), "no plugin process outlives the bot: {left:?}");
}
