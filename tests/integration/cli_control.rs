//! The control CLI (issue 23, item 4): `rosey status [NAME] [--json]`, `rosey start|stop|
//! restart|reload NAME` against a running bot with `dashboard.auth`, found through the same
//! config file (or `--url`), with their exit codes: 0 done, 1 refused (unknown plugin, wrong
//! credentials) or not reachable, 2 usage error. Colour only on a terminal, and not with
//! `NO_COLOR`.

use std::io::Read;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use serde_json::{Value, json};
use unicode_width::UnicodeWidthStr;

use crate::common::actions::{Deployable, bot_with_actions, get_json, wait_for_plugin};
use crate::common::*;

/// `rosey --config FILE ARGS`, run beside the file, from a shell whose environment holds `env`.
pub fn control(config_path: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let dir = config_path.parent().expect("the config file has a directory");
    let config = config_path.display().to_string();
    let mut all = vec!["--config", config.as_str()];
    all.extend_from_slice(args);
    run_rosey(dir, &all, env)
}

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// `args` succeeded; its standard output.
fn succeeds(rosey: &Rosey, args: &[&str]) -> String {
    let out = control(&rosey.config_path, args, &[]);
    assert_eq!(out.status.code(), Some(0), "rosey {args:?}: {}", text(&out.stderr));
    text(&out.stdout)
}

/// A bot with actions enabled, running the hostile fixture beside dice-roller and 8ball.
fn hostile_bot() -> Rosey {
    let rosey = bot_with_actions(RoseyBuilder::new().config["plugins"].clone());
    for name in ["dice-roller", "8ball", "hostile"] {
        wait_for_plugin(&rosey, &format!("{name} running"), name, |p| p["state"] == "RUNNING");
    }
    wait_for_plugin(&rosey, "the hostile version", "hostile", |p| p["version"] == HOSTILE_VERSION);
    rosey
}

/// Where each column of `line` starts, in terminal cells (columns are two spaces apart).
fn column_starts(line: &str) -> Vec<usize> {
    let mut starts = vec![0];
    let mut at = 0;
    while let Some(gap) = line[at..].find("  ") {
        let next = at + gap + line[at + gap..].find(|c| c != ' ').unwrap_or(0);
        starts.push(line[..next].width());
        at = next;
    }
    starts
}

#[test]
fn rosey_status_shows_every_plugin_as_an_aligned_table_and_the_apis_json() {
    let rosey = hostile_bot();
    let table = succeeds(&rosey, &["status"]);
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(
        lines[0].split_whitespace().collect::<Vec<_>>(),
        ["NAME", "STATE", "PID", "UPTIME", "CPU", "MEMORY", "RESTARTS", "VERSION"]
    );
    assert_eq!(lines.len(), 4, "a header and a row per plugin:\n{table}");
    for (line, name) in lines[1..].iter().zip(["8ball", "dice-roller", "hostile"]) {
        assert!(line.starts_with(name) && line.contains(" RUNNING "), "{table}");
    }
    let pid = get_json(&rosey, "/api/plugin/hostile")["pid"].to_string();
    let hostile = lines[3];
    assert!(hostile.contains(&format!(" {pid} ")), "{table}");
    assert!(hostile.ends_with(HOSTILE_VERSION), "the version is shown literally: {table}");
    assert!(!table.contains('\u{1b}'), "no colour into a pipe: {table:?}");
    // The version column starts at the same cell on every line, the crab taking two.
    let starts: Vec<usize> = lines.iter().map(|l| column_starts(l)[7]).collect();
    assert!(starts.iter().all(|s| *s == starts[0]), "{starts:?}\n{table}");

    let json: Value = serde_json::from_str(&succeeds(&rosey, &["status", "--json"])).expect("JSON");
    let names: Vec<&str> = json["plugins"].as_array().unwrap().iter().map(|p| p["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["8ball", "dice-roller", "hostile"]);
    assert!(json["system"]["total_plugins"] == 3, "{json}");

    let one = succeeds(&rosey, &["status", "hostile"]);
    assert_eq!(one.lines().count(), 2, "{one}");
    assert!(one.lines().nth(1).unwrap().starts_with("hostile "), "{one}");
    let json: Value = serde_json::from_str(&succeeds(&rosey, &["status", "--json", "hostile"])).expect("JSON");
    assert_eq!((&json["name"], &json["version"]), (&json!("hostile"), &json!(HOSTILE_VERSION)));
    assert!(json["restarts"].is_u64() && json["current"].is_object(), "/api/plugin/NAME's JSON: {json}");
}

#[test]
fn status_of_an_unknown_plugin_exits_1_and_a_bad_name_exits_2() {
    let rosey = bot_with_actions(json!([{ "name": "8ball", "builtin": "8ball" }]));
    let out = control(&rosey.config_path, &["status", "nope"], &[]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert_eq!(stderr.trim_end(), "error: the bot refused (HTTP 404): Plugin nope not found");
    assert!(out.stdout.is_empty());

    for args in [&["status", "no/such"][..], &["stop", "no/such"], &["logs", "../x"], &["stop"]] {
        let out = control(&rosey.config_path, args, &[]);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", text(&out.stderr));
    }
}

#[test]
fn stop_start_restart_and_reload_act_on_one_plugin_and_say_what_they_did() {
    let plugin = Deployable::new("versioned", "1");
    let rosey = bot_with_actions(json!([plugin.entry(), { "name": "8ball", "builtin": "8ball" }]));
    let first = wait_for_plugin(&rosey, "version 1 running", "versioned", |p| p["version"] == "1")["pid"].clone();
    wait_for_plugin(&rosey, "8ball running", "8ball", |p| p["state"] == "RUNNING");

    let said = succeeds(&rosey, &["stop", "versioned"]);
    assert!(
        said.starts_with("stopped versioned in ") && said.ends_with("; it stays STOPPED until started\n"),
        "{said}"
    );
    wait_for_plugin(&rosey, "stopped", "versioned", |p| p["state"] == "STOPPED");
    let row = succeeds(&rosey, &["status", "versioned"]);
    let row = row.lines().nth(1).unwrap().split_whitespace().collect::<Vec<_>>();
    assert_eq!(row[..5], ["versioned", "STOPPED", "-", "-", "-"], "no process, no figures");

    let said = succeeds(&rosey, &["start", "versioned"]);
    assert!(said.starts_with("started versioned "), "{said}");
    let second = wait_for_plugin(&rosey, "running again", "versioned", |p| p["state"] == "RUNNING")["pid"].clone();
    assert_ne!(first, second);

    let said = succeeds(&rosey, &["restart", "versioned"]);
    assert!(said.starts_with("restarted versioned "), "{said}");
    // The snapshot may still show the old process RUNNING for a moment after the answer.
    wait_for_plugin(&rosey, "restarted", "versioned", |p| p["state"] == "RUNNING" && p["pid"] != second);

    plugin.deploy("2");
    let said = succeeds(&rosey, &["reload", "versioned"]);
    assert!(said.starts_with("reloaded versioned 1 → 2 in "), "{said}");
    wait_for_plugin(&rosey, "version 2", "versioned", |p| p["version"] == "2");
    assert_eq!(get_json(&rosey, "/api/plugin/8ball")["state"], "RUNNING", "the other plugin was not touched");

    // `rosey reload` without a name still reloads the config.
    assert!(succeeds(&rosey, &["reload"]).starts_with("config reloaded in "));
}

#[test]
fn wrong_credentials_exit_1_and_change_nothing() {
    let rosey = bot_with_actions(json!([{ "name": "8ball", "builtin": "8ball" }]));
    let pid = wait_for_plugin(&rosey, "8ball running", "8ball", |p| p["state"] == "RUNNING")["pid"].clone();
    let wrong = [("ROSEY_DASHBOARD__AUTH__PASSWORD", "wrong")];
    // Three tries: the bot holds an address back after five failed logins a minute.
    for args in [&["status"][..], &["stop", "8ball"], &["logs", "8ball", "-f"]] {
        let out = control(&rosey.config_path, args, &wrong);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(
            stderr.starts_with("error: the bot refused (HTTP 401)")
                && stderr.contains("(dashboard.auth in this config is not what the running bot has)"),
            "{args:?}: {stderr}"
        );
        assert!(!stderr.contains("wrong") && !stderr.contains("s3cret"), "no password is printed: {stderr}");
    }
    let now = get_json(&rosey, "/api/plugin/8ball");
    assert_eq!((&now["state"], &now["pid"]), (&json!("RUNNING"), &pid), "nothing changed");

    // Credentials in --url replace the config's.
    let url = format!("http://admin:s3cret@127.0.0.1:{}/", rosey.port());
    let out = control(&rosey.config_path, &["stop", "8ball", "--url", &url], &wrong);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    wait_for_plugin(&rosey, "8ball stopped", "8ball", |p| p["state"] == "STOPPED");
}

#[test]
fn actions_on_a_bot_without_auth_are_refused_but_status_answers() {
    let rosey = RoseyBuilder::new().plugins(json!([{ "name": "8ball", "builtin": "8ball" }])).start();
    rosey.wait_for_state("8ball", "RUNNING");
    let out = control(&rosey.config_path, &["stop", "8ball"], &[]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.starts_with("error: the bot refused (HTTP 403): actions are disabled: set dashboard.auth"),
        "{stderr}"
    );
    assert!(succeeds(&rosey, &["status"]).contains("8ball"));
}

#[test]
fn an_unreachable_bot_exits_1_naming_the_address_it_tried() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rosey.json");
    let port = free_port();
    std::fs::write(&path, json!({ "dashboard": { "host": "0.0.0.0", "port": port } }).to_string()).unwrap();
    for (args, route) in [
        (&["status"][..], "api/metrics"),
        (&["start", "x"], "api/plugin/x/start"),
        (&["logs", "x"], "api/plugin/x/logs?tail=20"),
        (&["events", "-f"], "api/events/live"),
    ] {
        let out = control(&path, args, &[]);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        let expected = format!("error: cannot reach the bot at http://127.0.0.1:{port}/{route}: ");
        assert!(stderr.starts_with(&expected), "{args:?}: {stderr}");
        assert!(stderr.trim_end().ends_with("is it running with this config?"), "{stderr}");
    }
    std::fs::write(&path, json!({ "dashboard": { "enabled": false } }).to_string()).unwrap();
    let out = control(&path, &["status"], &[]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
}

/// A running plugin shows yellow above this config's thresholds: none is reached here.
const QUIET_THRESHOLDS: [(&str, &str); 1] = [("ROSEY_DASHBOARD__WARN_CPU_PERCENT", "100000")];

/// `rosey status` with its standard output on a pseudo-terminal, as an operator runs it.
fn status_on_a_terminal(rosey: &Rosey, env: &[(&str, &str)]) -> String {
    let pty = nix::pty::openpty(None, None).expect("a pseudo-terminal");
    let mut command = Command::new(rosey_exe());
    command
        .args(["--config", &rosey.config_path.display().to_string(), "status"])
        .env_remove("NO_COLOR")
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::from(pty.slave))
        .stderr(Stdio::piped());
    let child = command.spawn().expect("rosey starts");
    drop(command); // our copy of the terminal's end, so reading ends when rosey exits
    let mut master = std::fs::File::from(pty.master);
    let mut shown = Vec::new();
    let mut chunk = [0; 4096];
    // A pseudo-terminal reports EIO, not end of file, once the other end is closed.
    while let Ok(n) = master.read(&mut chunk) {
        if n == 0 {
            break;
        }
        shown.extend_from_slice(&chunk[..n]);
    }
    let out = child.wait_with_output().expect("rosey exits");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    text(&shown)
}

#[test]
fn states_are_coloured_on_a_terminal_unless_no_color_is_set() {
    let rosey = bot_with_actions(json!([{ "name": "8ball", "builtin": "8ball" }, failing_plugin("broken")]));
    wait_for_plugin(&rosey, "8ball running", "8ball", |p| p["state"] == "RUNNING");
    wait_for_plugin(&rosey, "broken failed", "broken", |p| p["state"] == "FAILED");
    let coloured = status_on_a_terminal(&rosey, &QUIET_THRESHOLDS);
    assert!(coloured.contains("\x1b[31mFAILED\x1b[0m"), "{coloured:?}");
    assert!(coloured.contains("\x1b[32mRUNNING\x1b[0m"), "{coloured:?}");
    let plain = status_on_a_terminal(&rosey, &[("NO_COLOR", "1"), QUIET_THRESHOLDS[0]]);
    assert!(!plain.contains('\u{1b}') && plain.contains("FAILED"), "{plain:?}");
}
