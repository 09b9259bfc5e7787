//! A memory limit that heals (issue 21, item 5): a plugin whose process tree stays above its
//! `max_memory_mb` is recycled by a hot reload (trigger `memory`) without losing a command, and
//! one that keeps coming back over it ends FAILED with the reason until an operator starts it.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::common::*;

/// The leaking fixture as plugin `hog`: 120 MB against a limit of 40, two samples in a row at
/// 0.2 s polls; with `marker`, only its first process leaks.
fn hog(marker: Option<&std::path::Path>, recycles: u32) -> RoseyBuilder {
    let mut args = vec!["120".to_owned()];
    args.extend(marker.map(|m| m.display().to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut plugin = python_plugin("hog", "memory_hog.py", &args);
    plugin["max_memory_mb"] = json!(40);
    plugin["max_memory_samples"] = json!(2);
    plugin["max_memory_recycles"] = json!(recycles);
    let mut builder = RoseyBuilder::new().plugins(json!([plugin]));
    builder.config["metrics"]["poll_interval"] = json!(0.2);
    builder
}

fn memory_reloads(plugin: &Value) -> Vec<Value> {
    let log = plugin["reload_log"].as_array().cloned().unwrap_or_default();
    log.into_iter().filter(|r| r["trigger"] == "memory").collect()
}

#[test]
fn a_plugin_over_max_memory_mb_is_recycled_by_a_reload_and_no_command_is_lost() {
    let dir = tempfile::tempdir().unwrap();
    let mut rosey = hog(Some(&dir.path().join("leaked")), 3).start();
    rosey.wait_for_plugin("hog's hello", "hog", |p| p["version"] != "unknown");

    // A steady load, from before the leak is noticed until after the new process took over.
    let mut sent = 0usize;
    let start = Instant::now();
    let mut recycled_at = None;
    while recycled_at.is_none_or(|at: usize| sent < at + 200) {
        assert!(start.elapsed() < DEADLINE, "no memory recycle within {DEADLINE:?}:\n{}", rosey.stderr_text());
        for _ in 0..10 {
            rosey.say(&format!("!hog {sent}"));
            sent += 1;
        }
        std::thread::sleep(Duration::from_millis(50));
        if recycled_at.is_none() && sent.is_multiple_of(100) && !memory_reloads(&rosey.plugin("hog")).is_empty() {
            recycled_at = Some(sent);
        }
    }

    // Every command gets exactly one answer: the plugin's, or the host's "busy" on a machine
    // too loaded for the plugin to keep up (then its command never reached the plugin).
    let answers = wait_for("an answer to every command", DEADLINE, || {
        let lines = rosey.stdout_lines();
        (lines.len() >= sent).then_some(lines)
    });
    let mut counts: BTreeMap<usize, usize> = BTreeMap::new();
    let mut busy = 0;
    for line in &answers {
        match line.strip_prefix("[hog] @console hog ") {
            Some(n) => *counts.entry(n.parse().unwrap()).or_default() += 1,
            None if line == "[rosey] @console hog is busy; try again shortly" => busy += 1,
            None => panic!("neither hog's answer nor busy: {line:?}"),
        }
    }
    assert_eq!(counts.len() + busy, sent, "one answer per command, none missing ({busy} busy)");
    assert!(counts.values().all(|&n| n == 1), "none answered twice");
    assert!(counts.len() > sent / 2, "the plugin answered most: {} of {sent}", counts.len());

    let plugin = rosey.plugin("hog");
    let recycles = memory_reloads(&plugin);
    assert_eq!(recycles.len(), 1, "the cured process is not recycled again: {:?}", plugin["reload_log"]);
    assert_eq!(recycles[0]["outcome"], "reloaded");
    assert_eq!(plugin["state"], "RUNNING");
    let log = rosey.stderr_text();
    assert!(log.contains("over max_memory_mb 40 for 2 samples in a row"), "the log says why, with figures:\n{log}");
    let page = rosey.get("/").body;
    assert!(page.contains("· memory over 40 MB"), "the card's last reload says why");
}

#[test]
fn a_plugin_that_keeps_going_over_its_limit_ends_failed_with_the_reason_until_started() {
    let mut rosey = hog(None, 2).start();
    let failed = rosey.wait_for_plugin("hog to be given up on", "hog", |p| p["state"] == "FAILED");
    assert_eq!(failed["failed_reason"], "recycled 2 times in 10 min for memory over 40 MB");
    assert_eq!(memory_reloads(&failed).len(), 2, "recycled twice first: {:?}", failed["reload_log"]);
    assert_eq!(failed["pid"], Value::Null, "no process is left running");
    assert!(rosey.get("/").body.contains("recycled 2 times in 10 min for memory over 40 MB"), "the card says why");

    rosey.say("!admin start hog");
    wait_for_line(&rosey, "[rosey] @console started hog");
    let started = rosey.plugin("hog");
    assert_eq!(started["failed_reason"], Value::Null, "a new process clears the reason: {started}");
}
