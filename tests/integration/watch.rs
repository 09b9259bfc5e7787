//! Reload on change (issue 21, item 6): a plugin with `watch` is reloaded (trigger `watch`)
//! when a file under a watched path changes: once for a burst of writes, never for an editor's
//! swap or backup file, and rolled back like any reload when the new version fails.

use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};

use crate::common::*;

/// The versioned fixture reading `dir/VERSION` (version `1`), with `dir` watched.
fn watched(dir: &Path) -> Rosey {
    std::fs::write(dir.join("VERSION"), "1").unwrap();
    let version = dir.join("VERSION").display().to_string();
    let mut plugin = python_plugin("versioned", "versioned.py", &[&version]);
    plugin["watch"] = json!([dir.display().to_string()]);
    let rosey = RoseyBuilder::new().plugins(json!([plugin])).start();
    rosey.wait_for_plugin("version 1", "versioned", |p| p["version"] == "1");
    rosey
}

fn reloads(rosey: &Rosey) -> Vec<Value> {
    rosey.plugin("versioned")["reload_log"].as_array().cloned().unwrap_or_default()
}

/// Wait until the reload log has `n` entries and return the newest.
fn wait_for_reloads(rosey: &Rosey, n: usize) -> Value {
    rosey.wait_for_plugin(&format!("{n} reloads"), "versioned", |p| {
        p["reload_log"].as_array().is_some_and(|log| log.len() == n)
    })["reload_log"][0]
        .clone()
}

/// Longer than the watcher's debounce and settling together (0.2 s + 0.5 s), with room for a
/// busy machine: a change that was going to reload has asked for it by then.
const QUIET: Duration = Duration::from_secs(3);

#[test]
fn a_file_written_several_times_quickly_reloads_the_plugin_once() {
    let dir = tempfile::tempdir().unwrap();
    let rosey = watched(dir.path());
    for version in ["2", "2.", "2", "2", "2"] {
        std::fs::write(dir.path().join("VERSION"), version).unwrap();
    }
    let entry = wait_for_reloads(&rosey, 1);
    assert_eq!((entry["trigger"].as_str(), entry["outcome"].as_str()), (Some("watch"), Some("reloaded")));
    assert_eq!(entry["to_version"], "2");
    std::thread::sleep(QUIET);
    assert_eq!(reloads(&rosey).len(), 1, "one reload, not five");
}

#[test]
fn editor_swap_and_backup_files_do_not_reload() {
    let dir = tempfile::tempdir().unwrap();
    let rosey = watched(dir.path());
    for litter in [".VERSION.swp", "VERSION~", "4913", ".#VERSION", ".VERSION.swx"] {
        std::fs::write(dir.path().join(litter), "2").unwrap();
    }
    std::thread::sleep(QUIET);
    assert!(reloads(&rosey).is_empty(), "no reload for an editor's files: {:?}", reloads(&rosey));
    // The watcher is alive: a real change still reloads.
    std::fs::write(dir.path().join("VERSION"), "3").unwrap();
    assert_eq!(wait_for_reloads(&rosey, 1)["to_version"], "3");
}

#[test]
fn a_change_to_a_version_that_fails_is_rolled_back_and_the_old_one_keeps_answering() {
    let dir = tempfile::tempdir().unwrap();
    let mut rosey = watched(dir.path());
    std::fs::write(dir.path().join("VERSION"), "broken").unwrap();
    let entry = wait_for_reloads(&rosey, 1);
    assert_eq!((entry["trigger"].as_str(), entry["outcome"].as_str()), (Some("watch"), Some("rolled_back")));
    assert!(entry["reason"].as_str().is_some_and(|r| r.contains("broken on purpose")), "{entry}");
    rosey.say("!ver still");
    wait_for_line(&rosey, "[versioned] @console v1 still");
}

#[test]
fn a_watch_list_added_by_a_config_reload_is_armed_at_once() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("VERSION"), "1").unwrap();
    let version = dir.path().join("VERSION").display().to_string();
    let plugin = python_plugin("versioned", "versioned.py", &[&version]);
    let mut rosey = RoseyBuilder::new().plugins(json!([plugin.clone()])).start();
    rosey.wait_for_plugin("version 1", "versioned", |p| p["version"] == "1");

    let mut watching = plugin;
    watching["watch"] = json!([version]);
    rosey.config["plugins"] = json!([watching]);
    std::fs::write(&rosey.config_path, serde_json::to_vec(&rosey.config).unwrap()).unwrap();
    rosey.signal(nix::sys::signal::Signal::SIGHUP);
    assert_eq!(wait_for_reloads(&rosey, 1)["trigger"], "config", "the changed entry is reloaded");
    wait_for("the watcher to follow the new entry", DEADLINE, || {
        rosey.stderr_text().contains("watching plugin files").then_some(())
    });

    std::fs::write(dir.path().join("VERSION"), "2").unwrap();
    let entry = wait_for_reloads(&rosey, 2);
    assert_eq!((entry["trigger"].as_str(), entry["to_version"].as_str()), (Some("watch"), Some("2")));
}
