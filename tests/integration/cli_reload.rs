//! `rosey reload [NAME]` (issue 15, item 4): the CLI asks the running bot through its API, with
//! the address and credentials of the same config file, or at `--url` when the shell's
//! environment is not the bot's, and says what happened; exit 0 done, 1 refused or not
//! reachable, 2 configuration or usage error.

use std::path::Path;
use std::process::Output;

use serde_json::{Value, json};

use crate::cli_control::{control, text};
use crate::common::actions::{AUTH, Deployable, bot_with_actions, get_json, wait_for_plugin, wait_until_running};
use crate::common::*;

/// `rosey --config FILE reload ARGS`, run beside the file.
fn reload(config_path: &Path, args: &[&str]) -> Output {
    reload_with_env(config_path, args, &[])
}

/// The same, from a shell whose environment holds `env`.
fn reload_with_env(config_path: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut all = vec!["reload"];
    all.extend_from_slice(args);
    control(config_path, &all, env)
}

fn write_config(rosey: &Rosey, config: &Value) {
    std::fs::write(&rosey.config_path, serde_json::to_vec_pretty(config).unwrap()).unwrap();
}

#[test]
fn rosey_reload_applies_the_edited_file_and_prints_each_change() {
    let plugin = Deployable::new("versioned", "1");
    let rosey = bot_with_actions(json!([plugin.entry(), { "name": "8ball", "builtin": "8ball" }]));
    wait_for_plugin(&rosey, "version 1 running", "versioned", |p| p["version"] == "1");

    let mut config = rosey.config.clone();
    config["plugins"] = json!([plugin.entry(), { "name": "dice-roller", "builtin": "dice-roller" }]);
    write_config(&rosey, &config);
    let out = reload(&rosey.config_path, &[]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "stdout: {stdout}\nstderr: {}", text(&out.stderr));
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(lines[0].starts_with("config reloaded in "), "{stdout}");
    assert_eq!(
        lines[1..],
        ["started dice-roller (new in the config)", "removed 8ball (gone from the config)", "unchanged: versioned"]
    );
    wait_until_running(&rosey, "dice-roller", &[("authorization", AUTH)]);
    let names: Vec<Value> =
        get_json(&rosey, "/api/metrics")["plugins"].as_array().unwrap().iter().map(|p| p["name"].clone()).collect();
    assert!(!names.contains(&json!("8ball")), "{names:?}");

    plugin.deploy("2");
    let out = reload(&rosey.config_path, &["versioned"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let line = text(&out.stdout);
    assert!(line.starts_with("reloaded versioned 1 → 2 in "), "{line}");
}

#[test]
fn an_invalid_config_is_refused_with_every_problem_and_nothing_changes() {
    let plugin = Deployable::new("versioned", "1");
    let rosey = bot_with_actions(json!([plugin.entry()]));
    let pid = wait_for_plugin(&rosey, "running", "versioned", |p| p["state"] == "RUNNING")["pid"].clone();

    let mut config = rosey.config.clone();
    config["plugins"] = json!([plugin.entry(), { "name": "bad name!", "builtin": "8ball" }, { "name": "x" }]);
    write_config(&rosey, &config);
    let out = reload(&rosey.config_path, &[]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.starts_with("error: the bot refused the new config; nothing was changed:\n"), "{stderr}");
    assert!(stderr.contains("plugins[1].name"), "each problem names its key: {stderr}");
    assert!(stderr.contains("plugins[2]"), "every problem is listed: {stderr}");
    assert!(text(&out.stdout).is_empty());
    let plugin_now = get_json(&rosey, "/api/plugin/versioned");
    assert_eq!((&plugin_now["state"], &plugin_now["pid"]), (&json!("RUNNING"), &pid), "nothing changed");
}

#[test]
fn a_bot_that_is_not_running_or_refuses_actions_exits_1_saying_why() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rosey.json");
    let port = free_port();
    std::fs::write(&path, json!({ "dashboard": { "host": "0.0.0.0", "port": port } }).to_string()).unwrap();
    let out = reload(&path, &[]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let expected = format!("error: cannot reach the bot at http://127.0.0.1:{port}/api/reload: ");
    assert!(stderr.starts_with(&expected), "the wildcard address means this machine: {stderr}");
    assert!(stderr.trim_end().ends_with("is it running with this config?"), "{stderr}");

    let rosey = RoseyBuilder::new().plugins(json!([])).start();
    let out = reload(&rosey.config_path, &[]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.starts_with("error: the bot refused (HTTP 403): actions are disabled: set dashboard.auth"),
        "{stderr}"
    );
}

#[test]
fn usage_and_config_mistakes_exit_2_before_asking_anything() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rosey.json");
    std::fs::write(&path, json!({ "dashboard": { "enabled": false } }).to_string()).unwrap();
    let out = reload(&path, &[]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("dashboard is disabled") && stderr.contains("SIGHUP"), "{stderr}");

    let out = reload(&path, &["no/such"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("invalid plugin name \"no/such\""), "{}", text(&out.stderr));

    std::fs::write(&path, json!({ "dashboard": { "port": "abc" } }).to_string()).unwrap();
    let out = reload(&path, &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("dashboard.port"), "{}", text(&out.stderr));
}

#[test]
fn with_url_rosey_reload_reaches_the_bot_whatever_the_shells_environment_says() {
    let plugin = Deployable::new("versioned", "1");
    let rosey = bot_with_actions(json!([plugin.entry()]));
    wait_for_plugin(&rosey, "version 1 running", "versioned", |p| p["version"] == "1");
    let url = format!("http://127.0.0.1:{}/", rosey.port());

    // This shell's environment points at another port: the config's address is not the bot's.
    let elsewhere = free_port().to_string();
    let shell = [("ROSEY_DASHBOARD__PORT", elsewhere.as_str())];
    let out = reload_with_env(&rosey.config_path, &["versioned"], &shell);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.starts_with(&format!("error: cannot reach the bot at http://127.0.0.1:{elsewhere}/")), "{stderr}");
    plugin.deploy("2");
    let out = reload_with_env(&rosey.config_path, &["--url", &url, "versioned"], &shell);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(text(&out.stdout).starts_with("reloaded versioned 1 → 2 in "), "{}", text(&out.stdout));

    // Nothing listens there: the hint names --url.
    let nowhere = format!("http://127.0.0.1:{elsewhere}/");
    let out = reload_with_env(&rosey.config_path, &["--url", &nowhere], &[]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.trim_end().ends_with("is it running, and is --url its dashboard's address?"), "{stderr}");

    // This shell's password is wrong, and its dashboard "disabled": the URL's credentials
    // replace dashboard.auth, and a wrong one is named without being shown.
    let shell = [("ROSEY_DASHBOARD__AUTH__PASSWORD", "wrong"), ("ROSEY_DASHBOARD__ENABLED", "false")];
    let out = reload_with_env(&rosey.config_path, &["--url", &url], &shell);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("(HTTP 401)") && stderr.contains("dashboard.auth in this config is not what"), "{stderr}");
    let with_password = |password: &str| format!("http://admin:{password}@127.0.0.1:{}/", rosey.port());
    let out = reload_with_env(&rosey.config_path, &["--url", &with_password("hunter2")], &shell);
    let said = format!("{}{}", text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(said.contains("(the credentials in --url are not what the running bot has)"), "{said}");
    assert!(!said.contains("hunter2"), "the password is never printed: {said}");
    let out = reload_with_env(&rosey.config_path, &["--url", &with_password("s3cret")], &shell);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(text(&out.stdout).starts_with("config reloaded in "), "{}", text(&out.stdout));
}

#[test]
fn a_url_that_is_not_a_dashboards_address_exits_2_naming_the_option() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rosey.json");
    std::fs::write(&path, "{}").unwrap();
    for (url, problem) in [
        ("127.0.0.1:8080", "it has no http:// or https:// in front"),
        ("ftp://bot.example/", "the scheme is ftp"),
        ("http://127.0.0.1:8080/api/reload", "it has a path, query or fragment (/api/reload)"),
        ("http://127.0.0.1:99999/", "the port \"99999\" is not a number from 1 to 65535"),
        ("http://admin:hunter2@127.0.0.1:99999/", "the port"),
    ] {
        let out = reload(&path, &["--url", url]);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{url}: {stderr}");
        assert!(stderr.starts_with("error: invalid value \""), "{url}: {stderr}");
        assert!(stderr.contains("\" for --url: ") && stderr.contains(problem), "{url}: {stderr}");
        assert!(stderr.contains("expected http://HOST:PORT/, e.g. http://127.0.0.1:8080/"), "{url}: {stderr}");
        assert!(!stderr.contains("hunter2"), "{stderr}");
        assert!(text(&out.stdout).is_empty());
    }
}
