//! Configuration, as an operator meets it: defaults, the file, `ROSEY_*` overrides, `rosey
//! config`, one clear line per bad input (exit code 2, no panic), plugin paths relative to the
//! file, and what the bot says about its config at start. (`--help` and unknown flags are in
//! `cli.rs`; signals and shutdown in `shutdown.rs`.)
//!
//! Bad-config fixtures live in `tests/fixtures/invalid_configs/`, one file per kind of mistake.

use std::path::Path;

use nix::sys::signal::Signal;
use serde_json::{Value, json};

use crate::common::{DEADLINE, RoseyBuilder, fixture, request, run_rosey, stderr_of, stdout_of, wait_for};

/// `rosey ARGS config` in `dir`: the effective configuration it prints.
fn effective_config(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Value {
    let mut all = args.to_vec();
    all.push("config");
    let output = run_rosey(dir, &all, env);
    assert!(output.status.success(), "rosey config failed ({}): {}", output.status, stderr_of(&output));
    serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("rosey config printed no JSON ({e}): {}", stdout_of(&output)))
}

/// Run `rosey ARGS` (in an empty directory) expecting a configuration error: exit code 2,
/// nothing on stdout, no panic or backtrace. Returns stderr's lines.
fn config_error(args: &[&str], env: &[(&str, &str)]) -> Vec<String> {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let output = run_rosey(dir.path(), args, env);
    let err = stderr_of(&output);
    assert_eq!(output.status.code(), Some(2), "rosey {args:?} with {env:?}: {}\n{err}", output.status);
    assert_eq!(stdout_of(&output), "", "nothing on stdout for a config error");
    assert!(!err.contains("panicked") && !err.contains("RUST_BACKTRACE"), "a panic instead of a message:\n{err}");
    err.lines().map(str::to_owned).collect()
}

/// `config_error` for `rosey --config FIXTURE config`, with `{path}` in `expected` standing for
/// the fixture's path.
fn assert_fixture_error(name: &str, expected: &[&str]) {
    let path = fixture(&format!("invalid_configs/{name}"));
    let lines = config_error(&["--config", &path, "config"], &[]);
    let expected: Vec<String> = expected.iter().map(|line| line.replace("{path}", &path)).collect();
    assert_eq!(lines, expected, "stderr for {name}");
}

fn write_config(dir: &Path, name: &str, config: Value) {
    std::fs::write(dir.join(name), serde_json::to_vec_pretty(&config).expect("JSON")).expect("config written");
}

// ---------------------------------------------------------------------------------------------
// Layers: defaults < file < environment.

#[test]
fn defaults_apply_without_a_file() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let config = effective_config(dir.path(), &[], &[]);
    assert_eq!(config["dashboard"]["enabled"], json!(true));
    assert_eq!(config["dashboard"]["host"], json!("0.0.0.0"));
    assert_eq!(config["dashboard"]["port"], json!(8080));
    assert_eq!(config["metrics"]["poll_interval"], json!(5));
    assert_eq!(config["metrics"]["history_duration"], json!(3600));
    assert_eq!(config["plugins"], json!([]));
}

#[test]
fn the_file_overrides_defaults_key_by_key() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    write_config(
        dir.path(),
        "rosey.json",
        json!({
            "dashboard": { "port": 9000 },
            "metrics": { "poll_interval": 2 },
            "plugins": [{ "name": "dice", "builtin": "dice-roller" }]
        }),
    );
    let config = effective_config(dir.path(), &[], &[]);
    assert_eq!(config["dashboard"]["port"], json!(9000));
    assert_eq!(config["metrics"]["poll_interval"], json!(2));
    assert_eq!(config["plugins"][0]["name"], json!("dice"));
    assert_eq!(config["plugins"][0]["builtin"], json!("dice-roller"));
    // What the file leaves out keeps its default.
    assert_eq!(config["dashboard"]["host"], json!("0.0.0.0"));
    assert_eq!(config["dashboard"]["enabled"], json!(true));
    assert_eq!(config["metrics"]["history_duration"], json!(3600));
}

#[test]
fn the_environment_overrides_the_file() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    write_config(
        dir.path(),
        "rosey.json",
        json!({
            "dashboard": { "enabled": true, "host": "0.0.0.0", "port": 9000 },
            "metrics": { "poll_interval": 5, "history_duration": 600 }
        }),
    );
    let env = [
        ("ROSEY_DASHBOARD__PORT", "9090"),
        ("ROSEY_DASHBOARD__HOST", "127.0.0.1"),
        ("ROSEY_DASHBOARD__ENABLED", "false"),
        ("ROSEY_METRICS__POLL_INTERVAL", "1"),
    ];
    let config = effective_config(dir.path(), &[], &env);
    assert_eq!(config["dashboard"]["port"], json!(9090));
    assert_eq!(config["dashboard"]["host"], json!("127.0.0.1"));
    assert_eq!(config["dashboard"]["enabled"], json!(false));
    assert_eq!(config["metrics"]["poll_interval"], json!(1));
    // Not overridden: still the file's.
    assert_eq!(config["metrics"]["history_duration"], json!(600));
}

#[test]
fn rosey_config_variable_and_config_flag_pick_the_file() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    write_config(dir.path(), "rosey.json", json!({ "dashboard": { "port": 1001 } }));
    write_config(dir.path(), "from-env.json", json!({ "dashboard": { "port": 1002 } }));
    write_config(dir.path(), "from-flag.json", json!({ "dashboard": { "port": 1003 } }));
    let port =
        |args: &[&str], env: &[(&str, &str)]| effective_config(dir.path(), args, env)["dashboard"]["port"].clone();

    assert_eq!(port(&[], &[]), json!(1001), "rosey.json in the working directory");
    assert_eq!(port(&[], &[("ROSEY_CONFIG", "from-env.json")]), json!(1002), "ROSEY_CONFIG");
    assert_eq!(port(&["--config", "from-flag.json"], &[]), json!(1003), "--config");
    assert_eq!(port(&["-c", "from-flag.json"], &[]), json!(1003), "-c");
    assert_eq!(port(&["--config", "from-flag.json"], &[("ROSEY_CONFIG", "from-env.json")]), json!(1003), "flag wins");
}

#[test]
fn rosey_config_never_prints_the_password() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    write_config(
        dir.path(),
        "rosey.json",
        json!({ "dashboard": { "auth": { "username": "admin", "password": "hunter2-file" } } }),
    );
    let output = run_rosey(dir.path(), &["config"], &[]);
    assert!(output.status.success(), "{}", stderr_of(&output));
    assert!(!stdout_of(&output).contains("hunter2"), "the password leaked:\n{}", stdout_of(&output));
    let config: Value = serde_json::from_slice(&output.stdout).expect("JSON");
    assert_eq!(config["dashboard"]["auth"], json!({ "username": "admin", "password": "<redacted>" }));

    // Nor one set from the environment.
    let env = [("ROSEY_DASHBOARD__AUTH__PASSWORD", "hunter2-env")];
    let output = run_rosey(dir.path(), &["config"], &env);
    assert!(output.status.success(), "{}", stderr_of(&output));
    assert!(!stdout_of(&output).contains("hunter2"), "the password leaked:\n{}", stdout_of(&output));
    assert!(!stderr_of(&output).contains("hunter2"), "the password leaked:\n{}", stderr_of(&output));
}

#[test]
fn rosey_config_and_rosey_log_are_not_config_keys() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    write_config(dir.path(), "other.json", json!({ "dashboard": { "port": 1234 } }));
    let config = effective_config(dir.path(), &[], &[("ROSEY_CONFIG", "other.json"), ("ROSEY_LOG", "debug")]);
    assert_eq!(config["dashboard"]["port"], json!(1234));
}

// ---------------------------------------------------------------------------------------------
// Bad input: one line per problem, naming the key, its source and what was expected.

#[test]
fn bad_type_from_the_environment_names_the_variable() {
    assert_eq!(
        config_error(&["config"], &[("ROSEY_DASHBOARD__PORT", "abc")]),
        ["config error: dashboard.port from ROSEY_DASHBOARD__PORT: expected an integer 1..65535, found \"abc\""]
    );
    assert_eq!(
        config_error(&["config"], &[("ROSEY_DASHBOARD__ENABLED", "maybe")]),
        ["config error: dashboard.enabled from ROSEY_DASHBOARD__ENABLED: expected true or false, found \"maybe\""]
    );
}

#[test]
fn bad_type_in_the_file_names_the_file() {
    assert_fixture_error(
        "bad_type.json",
        &["config error: dashboard.port from {path}: expected an integer 1..65535, found \"abc\""],
    );
}

#[test]
fn out_of_range_values_are_refused() {
    assert_fixture_error(
        "port_zero.json",
        &["config error: dashboard.port from {path}: expected an integer 1..65535, found 0"],
    );
    assert_fixture_error(
        "port_too_big.json",
        &["config error: dashboard.port from {path}: expected an integer 1..65535, found 70000"],
    );
    assert_eq!(
        config_error(&["config"], &[("ROSEY_DASHBOARD__PORT", "70000")]),
        ["config error: dashboard.port from ROSEY_DASHBOARD__PORT: expected an integer 1..65535, found 70000"]
    );
    assert_fixture_error(
        "poll_interval_zero.json",
        &["config error: metrics.poll_interval from {path}: expected a number of seconds > 0, found 0"],
    );
    assert_eq!(
        config_error(&["config"], &[("ROSEY_METRICS__POLL_INTERVAL", "0")]),
        [
            "config error: metrics.poll_interval from ROSEY_METRICS__POLL_INTERVAL: expected a number of seconds > 0, found 0"
        ]
    );
    assert_fixture_error(
        "history_shorter_than_poll.json",
        &["config error: metrics.history_duration from {path}: expected a number of seconds >= metrics.poll_interval \
           (10), found 5"],
    );
}

#[test]
fn unknown_keys_in_the_file_are_named_with_the_expected_ones() {
    assert_fixture_error(
        "unknown_section.json",
        &["config error: dashbord from {path}: unknown key \"dashbord\", did you mean \"dashboard\"? \
           (expected one of: dashboard, metrics, plugins, chat, timeline, notify, admins, owner, logs)"],
    );
    assert_fixture_error(
        "unknown_key.json",
        &["config error: dashboard.prot from {path}: unknown key \"prot\", did you mean \"port\"? \
           (expected one of: enabled, host, port, warn_cpu_percent, warn_memory_mb, warn_response_ms, max_sse_clients, auth, users, trusted_proxies, tls)"],
    );
}

#[test]
fn unknown_keys_from_the_environment_name_the_variable() {
    assert_eq!(
        config_error(&["config"], &[("ROSEY_DASHBOARD__PROT", "1")]),
        ["config error: dashboard.prot from ROSEY_DASHBOARD__PROT: unknown key \"prot\", did you mean \"port\"? \
          (expected one of: enabled, host, port, warn_cpu_percent, warn_memory_mb, warn_response_ms, max_sse_clients, auth, users, trusted_proxies, tls)"]
    );
    // A mistyped section: the message names the variable as written, not a rebuilt one.
    assert_eq!(
        config_error(&["config"], &[("ROSEY_DASHBORD__PORT", "9090")]),
        ["config error: dashbord from ROSEY_DASHBORD__PORT: unknown key \"dashbord\", did you mean \"dashboard\"? \
          (expected one of: dashboard, metrics, plugins, chat, timeline, notify, admins, owner, logs)"]
    );
}

#[test]
fn broken_json_names_the_file_and_the_line() {
    assert_fixture_error("broken.json", &["config error: {path}: invalid JSON: trailing comma at line 4 column 3"]);
}

#[test]
fn a_missing_named_file_is_an_error_naming_the_path() {
    assert_eq!(
        config_error(&["--config", "no-such-file.json", "config"], &[]),
        ["config error: config file no-such-file.json (named by --config) does not exist"]
    );
    assert_eq!(
        config_error(&["config"], &[("ROSEY_CONFIG", "no-such-file.json")]),
        ["config error: config file no-such-file.json (named by ROSEY_CONFIG) does not exist"]
    );
}

#[test]
fn plugin_mistakes_name_the_plugin() {
    assert_fixture_error(
        "bad_plugin_name.json",
        &["config error: plugins[0].name from {path}: invalid plugin name \"bad name!\": expected 1..64 characters \
           of a-z A-Z 0-9 . _ - (not . or ..)"],
    );
    assert_fixture_error(
        "reserved_plugin_name.json",
        &[
            "config error: plugins[0].name from {path}: plugin name \"Rosey\" is reserved for the bot's own chat answers",
        ],
    );
    assert_fixture_error(
        "duplicate_plugins.json",
        &["config error: plugins[1].name from {path}: duplicate plugin name \"dice\" (plugins[0] has it too): \
           names must be unique"],
    );
    assert_fixture_error(
        "unknown_builtin.json",
        &["config error: plugins[0].builtin from {path}: plugin \"coin\": unknown builtin \"coin-flip\" \
           (expected one of: dice-roller, 8ball)"],
    );
}

#[test]
fn several_problems_are_all_reported_one_line_each() {
    assert_fixture_error(
        "many_problems.json",
        &[
            "config error: dashboard.enabled from {path}: expected true or false, found \"yes\"",
            "config error: dashboard.port from {path}: expected an integer 1..65535, found 70000",
            "config error: dashboard.prot from {path}: unknown key \"prot\", did you mean \"port\"? \
             (expected one of: enabled, host, port, warn_cpu_percent, warn_memory_mb, warn_response_ms, max_sse_clients, auth, users, trusted_proxies, tls)",
            "config error: metrics.poll_interval from {path}: expected a number of seconds > 0, found 0",
            "config error: plugins[0].name from {path}: invalid plugin name \"bad name!\": expected 1..64 characters \
             of a-z A-Z 0-9 . _ - (not . or ..)",
            "config error: plugins[1].builtin from {path}: plugin \"coin\": unknown builtin \"coin-flip\" \
             (expected one of: dice-roller, 8ball)",
        ],
    );
    // Problems from the file and from the environment together, each with its own source.
    let path = fixture("invalid_configs/port_zero.json");
    assert_eq!(
        config_error(&["--config", &path, "config"], &[("ROSEY_METRICS__POLL_INTERVAL", "abc")]),
        [
            format!("config error: dashboard.port from {path}: expected an integer 1..65535, found 0"),
            "config error: metrics.poll_interval from ROSEY_METRICS__POLL_INTERVAL: expected a number of seconds > 0, \
             found \"abc\""
                .to_owned(),
        ]
    );
}

#[test]
fn the_bot_refuses_to_start_on_a_bad_config() {
    // `rosey` itself (not `rosey config`): it must stop before starting anything. With a good
    // config it would run until the harness gives up, so this also fails if the error is lost.
    let path = fixture("invalid_configs/many_problems.json");
    let lines = config_error(&["--config", &path], &[]);
    assert_eq!(lines.len(), 6, "one line per problem, nothing else:\n{}", lines.join("\n"));
    assert!(lines.iter().all(|l| l.starts_with("config error: ")), "{lines:#?}");
}

#[test]
fn a_numeric_password_from_the_environment_is_kept_as_written() {
    // figment reads `007` as the number 7; the password must stay the text "007".
    let rosey = RoseyBuilder::new()
        .plugins(json!([]))
        .env("ROSEY_DASHBOARD__AUTH__USERNAME", "admin")
        .env("ROSEY_DASHBOARD__AUTH__PASSWORD", "007")
        .start();
    let url = rosey.url("/api/metrics");
    // base64("admin:007")
    let with_password = request("GET", &url, &[("Authorization", "Basic YWRtaW46MDA3")]).expect("an answer");
    assert_eq!(with_password.status, 200, "{}", with_password.body);
    let without = request("GET", &url, &[]).expect("an answer");
    assert_eq!(without.status, 401, "{}", without.body);
}

#[test]
fn a_missing_file_named_by_both_blames_the_flag_that_won() {
    // The flag wins over ROSEY_CONFIG, so the flag is what to fix, even when both say the same.
    assert_eq!(
        config_error(&["--config", "no-such-file.json", "config"], &[("ROSEY_CONFIG", "no-such-file.json")]),
        ["config error: config file no-such-file.json (named by --config) does not exist"]
    );
}

// ---------------------------------------------------------------------------------------------
// ROSEY_* variables that are not config overrides.

#[test]
fn rosey_variables_outside_the_config_sections_are_not_config() {
    // The project's own test switch, and anything else a user's scripts may set.
    let dir = tempfile::tempdir().expect("a temporary directory");
    let env = [("ROSEY_E2E_REQUIRED", "1"), ("ROSEY_SOMETHING_ELSE", "x"), ("ROSEY_E2E__MODE", "strict")];
    let config = effective_config(dir.path(), &[], &env);
    assert_eq!(config["dashboard"]["port"], json!(8080));
}

#[test]
fn a_single_underscore_variable_is_told_the_double_underscore_spelling() {
    assert_eq!(
        config_error(&["config"], &[("ROSEY_DASHBOARD_PORT", "9090")]),
        ["config error: ROSEY_DASHBOARD_PORT: not a config variable: did you mean ROSEY_DASHBOARD__PORT? \
          (two underscores between section and key)"]
    );
    assert_eq!(
        config_error(&["config"], &[("ROSEY_METRICS_POLL_INTERVAL", "1")]),
        ["config error: ROSEY_METRICS_POLL_INTERVAL: not a config variable: did you mean \
          ROSEY_METRICS__POLL_INTERVAL? (two underscores between section and key)"]
    );
}

#[test]
fn plugins_from_the_environment_are_refused_with_a_pointer_to_the_file() {
    // An empty list is refused like a full one: plugins are never read from the environment.
    for value in ["[]", r#"[{"name": "dice", "builtin": "dice-roller"}]"#] {
        assert_eq!(
            config_error(&["config"], &[("ROSEY_PLUGINS", value)]),
            ["config error: plugins from ROSEY_PLUGINS: plugins are configured in the config file only, not the \
              environment (unset ROSEY_PLUGINS)"],
            "ROSEY_PLUGINS={value}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Relative plugin paths, and what the bot says about its config at start.

/// A bot started by hand (not by `RoseyBuilder`, which always runs beside its config), its
/// stderr collected; stopped with SIGTERM when dropped.
struct HandStarted {
    child: std::process::Child,
    stderr: std::sync::Arc<std::sync::Mutex<String>>,
}

impl HandStarted {
    fn spawn(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> HandStarted {
        use std::io::BufRead;
        let mut command = std::process::Command::new(crate::common::rosey_exe());
        for (key, _) in std::env::vars_os().filter(|(k, _)| k.to_string_lossy().starts_with("ROSEY_")) {
            command.env_remove(key);
        }
        command.args(args).current_dir(dir).env("ROSEY_LOG", "info").env("NO_COLOR", "1").envs(env.iter().copied());
        let mut child = command
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("rosey starts");
        let pipe = child.stderr.take().expect("piped stderr");
        let stderr = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let sink = stderr.clone();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(pipe).lines().map_while(Result::ok) {
                let mut text = sink.lock().expect("stderr lock");
                text.push_str(&line);
                text.push('\n');
            }
        });
        HandStarted { child, stderr }
    }

    /// Wait until stderr has a line containing every one of `needles`; that line.
    fn wait_for_log(&mut self, needles: &[&str]) -> String {
        wait_for(&format!("a log line with {needles:?}"), DEADLINE, || {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("rosey exited ({status}):\n{}", self.stderr.lock().expect("stderr lock"));
            }
            let text = self.stderr.lock().expect("stderr lock").clone();
            text.lines().find(|line| needles.iter().all(|n| line.contains(n))).map(str::to_owned)
        })
    }
}

impl Drop for HandStarted {
    fn drop(&mut self) {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        if let Ok(None) = self.child.try_wait() {
            let _ = nix::sys::signal::kill(pid, Signal::SIGTERM);
            let _ = self.child.wait();
        }
    }
}

/// `dir/conf/rosey.json` running `dir/conf/bin/where.sh` in `dir/conf/work`, both written
/// relative to the file; the script records the directory it runs in.
fn config_with_relative_paths(dir: &Path) -> std::path::PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let conf = dir.join("conf");
    std::fs::create_dir_all(conf.join("bin")).expect("conf/bin created");
    std::fs::create_dir_all(conf.join("work")).expect("conf/work created");
    std::fs::create_dir_all(dir.join("elsewhere")).expect("elsewhere created");
    let script = conf.join("bin/where.sh");
    std::fs::write(&script, "#!/bin/sh\npwd > started-in.tmp && mv started-in.tmp started-in\nexec cat > /dev/null\n")
        .expect("script written");
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).expect("script made executable");
    write_config(
        &conf,
        "rosey.json",
        json!({
            "dashboard": { "enabled": false },
            "plugins": [
                { "name": "where", "command": ["./bin/where.sh", "data/input.txt"], "cwd": "work" },
                { "name": "by-path", "command": ["python3", "-c", "pass"] }
            ]
        }),
    );
    conf
}

#[test]
fn rosey_config_prints_plugin_paths_resolved_against_the_config_file() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let conf = config_with_relative_paths(dir.path());
    let file = conf.join("rosey.json");
    let config = effective_config(&dir.path().join("elsewhere"), &["--config", "../conf/rosey.json"], &[]);
    let conf_dir = std::path::absolute(dir.path().join("elsewhere/../conf")).expect("an absolute path");
    let plugins = &config["plugins"];
    // The program names a path: beside the file. Its arguments are the program's business.
    assert_eq!(plugins[0]["command"], json!([conf_dir.join("bin/where.sh"), "data/input.txt"]), "{file:?}");
    assert_eq!(plugins[0]["cwd"], json!(conf_dir.join("work")));
    // A bare program name is still looked up in PATH.
    assert_eq!(plugins[1]["command"][0], json!("python3"));
}

#[test]
fn a_plugin_with_relative_paths_starts_beside_its_config_file() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let conf = config_with_relative_paths(dir.path());
    let file = conf.join("rosey.json");
    let _rosey = HandStarted::spawn(&dir.path().join("elsewhere"), &["--config", "../conf/rosey.json"], &[]);
    let marker = conf.join("work/started-in");
    let started_in = wait_for("the plugin to record where it runs", DEADLINE, || std::fs::read_to_string(&marker).ok());
    let expected = std::fs::canonicalize(conf.join("work")).expect("conf/work exists");
    assert_eq!(Path::new(started_in.trim()), expected, "config file {file:?}");
}

#[test]
fn the_config_file_in_use_is_logged_at_start() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let conf = config_with_relative_paths(dir.path());
    let mut rosey = HandStarted::spawn(&dir.path().join("elsewhere"), &["--config", "../conf/rosey.json"], &[]);
    let absolute = std::path::absolute(dir.path().join("elsewhere/../conf/rosey.json")).expect("an absolute path");
    let line = rosey.wait_for_log(&["config file in use", &absolute.display().to_string()]);
    assert!(line.contains("plugins=2"), "{line}");
    assert!(conf.join("rosey.json").is_file());
}

#[test]
fn starting_without_a_config_file_warns_that_there_are_no_plugins() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let mut rosey = HandStarted::spawn(dir.path(), &[], &[("ROSEY_DASHBOARD__ENABLED", "false")]);
    let line = rosey.wait_for_log(&["WARN", "no config file", "rosey.json", "no plugins"]);
    assert!(!line.contains("config file in use"), "{line}");
}

/// Numbers at the edges of what a float can say: each is a config error naming the key, its
/// source and the range, exit code 2, never a panic, a frozen dashboard or a vanished plugin.
mod hostile_config {
    use super::*;

    fn file_error(config: Value) -> Vec<String> {
        let dir = tempfile::tempdir().expect("a temporary directory");
        write_config(dir.path(), "hostile.json", config);
        let path = dir.path().join("hostile.json").display().to_string();
        config_error(&["--config", &path, "config"], &[])
            .into_iter()
            .map(|line| line.replace(&path, "{path}"))
            .collect()
    }

    #[test]
    fn a_poll_interval_too_small_to_measure_is_refused() {
        // 1e-10 s is > 0, but as a Duration it is zero: the collector would panic at its first tick.
        assert_eq!(
            file_error(json!({ "metrics": { "poll_interval": 1e-10 } })),
            ["config error: metrics.poll_interval from {path}: expected a number of seconds from 0.1 to 86400 \
              (1 day), found 1e-10"]
        );
        assert_eq!(
            // figment reads exponent notation in a variable as text, so it is written out here.
            config_error(&["config"], &[("ROSEY_METRICS__POLL_INTERVAL", "0.0000000001")]),
            ["config error: metrics.poll_interval from ROSEY_METRICS__POLL_INTERVAL: expected a number of seconds \
              from 0.1 to 86400 (1 day), found 1e-10"]
        );
    }

    #[test]
    fn a_history_longer_than_a_week_is_refused() {
        assert_eq!(
            file_error(json!({ "metrics": { "history_duration": 1e300 } })),
            ["config error: metrics.history_duration from {path}: expected a number of seconds >= \
              metrics.poll_interval, at most 604800 (1 week), found 1e300"]
        );
    }

    #[test]
    fn a_restart_delay_longer_than_a_day_is_refused_not_dropped() {
        let plugin =
            |restart: Value| json!({ "plugins": [{ "name": "d", "builtin": "dice-roller", "restart": restart }] });
        assert_eq!(
            file_error(plugin(json!({ "initial_delay": 1e300 }))),
            ["config error: plugins[0].restart.initial_delay from {path}: expected a number of seconds from 0 to \
              86400 (1 day), found 1e300"]
        );
        assert_eq!(
            file_error(plugin(json!({ "max_delay": 90000, "reset_window": 1e20 }))),
            [
                "config error: plugins[0].restart.max_delay from {path}: expected a number of seconds from 0 to \
                 86400 (1 day), found 90000",
                "config error: plugins[0].restart.reset_window from {path}: expected a number of seconds from 0 to \
                 86400 (1 day), found 1e20",
            ]
        );
    }

    #[test]
    fn the_bot_refuses_to_start_on_an_extreme_number() {
        // `rosey` itself, not `rosey config`: it used to start and panic (exit 101) or run frozen.
        let dir = tempfile::tempdir().expect("a temporary directory");
        write_config(dir.path(), "rosey.json", json!({ "metrics": { "history_duration": 1e300 } }));
        let output = run_rosey(dir.path(), &["--config", "rosey.json"], &[("ROSEY_DASHBOARD__ENABLED", "false")]);
        assert_eq!(output.status.code(), Some(2), "{}", stderr_of(&output));
        assert!(stderr_of(&output).contains("metrics.history_duration from rosey.json"), "{}", stderr_of(&output));
    }
}
