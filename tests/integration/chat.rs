//! Chat (issue 13): every command gets an answer, from its plugin or from the host; commands
//! typed before a plugin's hello are held, not lost; `!help`; command conflicts; the user
//! prefix and command case; signals that must not kill the bot uncleanly; the dashboard port
//! checked before any plugin starts; `run --exit-at-eof`; `ROSEY_LOG`; the docs' examples; the builtins' answers to absurd input, and a hundred commands typed
//! before any hello counted and answered.

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use serde_json::{Value, json};

use crate::common::*;

fn repo_file(path: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path).display().to_string()
}

/// The shipped example plugin, `plugins/echo.py`.
fn echo_plugin(name: &str) -> Value {
    json!({ "name": name, "command": ["python3", repo_file("plugins/echo.py")] })
}

/// The echo plugin, saying its hello only after `delay_s` seconds.
fn slow_echo_plugin(name: &str, delay_s: f64) -> Value {
    let script =
        format!("import runpy, time; time.sleep({delay_s}); runpy.run_path({:?})", repo_file("plugins/echo.py"));
    json!({ "name": name, "command": ["python3", "-c", script] })
}

#[test]
fn a_command_typed_before_its_plugins_hello_is_answered() {
    let mut rosey = RoseyBuilder::new().plugins(json!([slow_echo_plugin("echo", 1.0)])).spawn();
    rosey.say("alice: !echo hi early");
    let reply = wait_for_line(&rosey, "[echo] @alice ");
    assert_eq!(reply, "[echo] @alice alice said: hi early");
}

#[test]
fn unknown_commands_are_answered_and_help_lists_every_command() {
    let mut rosey = RoseyBuilder::new().start();
    rosey.wait_for_plugin("hostile's hello", "hostile", |p| p["version"] == HOSTILE_VERSION);
    rosey.say("dave: !nosuchcommand please");
    let unknown = wait_for_line(&rosey, "[rosey] @dave ");
    assert_eq!(unknown, "[rosey] @dave unknown command !nosuchcommand; !help lists the commands");
    rosey.say("erin: !help");
    let help = wait_for_line(&rosey, "[rosey] @erin ");
    assert_eq!(
        help,
        "[rosey] @erin commands: !8ball (8ball), !admin (rosey), !help (rosey), !hostile (hostile), !roll (dice-roller)"
    );
    assert_eq!(rosey.get_json("/api/metrics")["system"]["total_events"], 0, "the host's answers are not events");
}

#[test]
fn a_command_claimed_twice_is_logged_and_shown_on_both_plugins() {
    let mut rosey = RoseyBuilder::new().plugins(json!([echo_plugin("echo"), echo_plugin("echo-too")])).start();
    let expected = json!([{ "command": "echo", "routed_to": "echo", "claimed_by": ["echo", "echo-too"] }]);
    for name in ["echo", "echo-too"] {
        let plugin = rosey.wait_for_plugin("the conflict", name, |p| p["command_conflicts"] == expected);
        assert_eq!(plugin["command_conflicts"], expected, "{name}");
    }
    assert_eq!(rosey.plugin("echo")["commands"], json!(["echo"]));
    assert_eq!(rosey.plugin("echo-too")["commands"], json!([]), "it gets none of its commands");
    rosey.say("alice: !echo hi");
    assert_eq!(wait_for_line(&rosey, "[echo"), "[echo] @alice alice said: hi", "the first claimant answers");
    let log = rosey.stderr_text();
    assert!(log.contains("command !echo is claimed by echo, echo-too; it goes to echo"), "{log}");
}

#[test]
fn commands_that_cannot_be_delivered_are_answered_by_the_host() {
    let slow_restart = json!({ "initial_delay": 30, "max_delay": 30, "max_attempts": 3, "reset_window": 60 });
    let mut failing = failing_plugin("failer");
    failing["commands"] = json!(["fail"]);
    let mut rosey = RoseyBuilder::new()
        .plugins(json!([{ "name": "dice-roller", "builtin": "dice-roller", "restart": slow_restart }, failing]))
        .start();
    rosey.wait_for_state("failer", "FAILED");
    rosey.say("bob: !fail now");
    assert_eq!(wait_for_line(&rosey, "[rosey] @bob "), "[rosey] @bob failer is not running");

    let dice = rosey.wait_for_state("dice-roller", "RUNNING");
    sigkill(dice["pid"].as_i64().expect("pid") as i32);
    rosey.wait_for_state("dice-roller", "CRASHED");
    rosey.say("alice: !roll 1d6");
    let restarting = wait_for_line(&rosey, "[rosey] @alice ");
    assert!(restarting.starts_with("[rosey] @alice dice-roller is restarting (next try in "), "{restarting}");
    assert!(restarting.ends_with(" s); try again shortly"), "{restarting}");
    let dice = rosey.wait_for_plugin("the drop counted", "dice-roller", |p| p["dropped_commands"] == 1);
    assert_eq!(dice["current"]["event_count"], 0);
}

#[test]
fn the_user_prefix_and_the_command_name_are_read_as_documented() {
    let mut rosey = RoseyBuilder::new().plugins(json!([{ "name": "dice-roller", "builtin": "dice-roller" }])).start();
    rosey.say("carol:!roll 1d20");
    wait_for_line(&rosey, "[dice-roller] @carol 🎲 1d20: ");
    rosey.say("dave smith: !roll 1d4");
    wait_for_line(&rosey, "[dice-roller] @dave smith 🎲 1d4: ");
    rosey.say("!ROLL 1d6");
    wait_for_line(&rosey, "[dice-roller] @console 🎲 1d6: ");
}

/// RFC 3339 UTC (`2026-11-29T09:16:42.655Z`) as seconds since midnight (the tests run well
/// within a day).
fn seconds_of_day(timestamp: &Value) -> f64 {
    let text = timestamp.as_str().unwrap_or_else(|| panic!("{timestamp} is not a timestamp"));
    let time = text.split_once('T').and_then(|(_, t)| t.strip_suffix('Z')).expect("RFC 3339 in UTC");
    let parts: Vec<f64> = time.split(':').map(|p| p.parse().expect("a number")).collect();
    parts[0] * 3600.0 + parts[1] * 60.0 + parts[2]
}

#[test]
fn the_next_restart_time_is_given_as_a_timestamp_that_stays_put() {
    let slow_restart = json!({ "initial_delay": 30, "max_delay": 30, "max_attempts": 3, "reset_window": 60 });
    let rosey = RoseyBuilder::new()
        .plugins(json!([{ "name": "dice-roller", "builtin": "dice-roller", "restart": slow_restart }]))
        .start();
    let pid = rosey.wait_for_state("dice-roller", "RUNNING")["pid"].as_i64().expect("pid") as i32;
    assert_eq!(rosey.plugin("dice-roller")["next_restart_at"], Value::Null, "no restart pending");
    sigkill(pid);
    let first = rosey.wait_for_state("dice-roller", "CRASHED");
    let later = rosey.wait_for_plugin("a later snapshot", "dice-roller", |p| {
        p["next_restart_in_seconds"] != first["next_restart_in_seconds"]
    });
    assert_eq!(later["next_restart_at"], first["next_restart_at"], "the countdown moved, the time did not");
    let delay = seconds_of_day(&first["next_restart_at"]) - seconds_of_day(&first["last_crash_at"]);
    assert!((29.0..=31.0).contains(&delay), "the restart is due 30 s after the crash, not {delay} s");
}

#[test]
fn sighup_reloads_the_config_and_the_bot_carries_on() {
    // Closing the terminal sends SIGHUP too: it must never stop the bot (reload.rs tests what
    // a reload changes).
    let mut rosey = RoseyBuilder::new().plugins(json!([{ "name": "dice-roller", "builtin": "dice-roller" }])).start();
    rosey.wait_until_running();
    rosey.signal(Signal::SIGHUP);
    wait_for("the config reload's audit line", DEADLINE, || {
        rosey.assert_alive();
        rosey.stderr_text().contains("config reloaded").then_some(())
    });
    rosey.assert_alive();
    rosey.say("alice: !roll 1d6");
    wait_for_line(&rosey, "[dice-roller] @alice ");
    rosey.signal(Signal::SIGTERM);
    assert_eq!(rosey.wait_exit(DEADLINE).code(), Some(0), "{}", rosey.stderr_text());
}

#[test]
fn a_dashboard_port_in_use_stops_the_bot_before_any_plugin_starts() {
    let (mut rosey, _taken) = spawn_on_a_taken_port();
    let port = rosey.port();
    let status = rosey.wait_exit(DEADLINE);
    let log = rosey.stderr_text();
    assert_eq!(status.code(), Some(1), "{log}");
    assert!(log.contains(&format!("error: cannot listen on 127.0.0.1:{port}")), "{log}");
    assert!(!log.contains("started plugin="), "no plugin was started: {log}");
    // docs/operations.md quotes this message for the default address.
    let message = log.lines().find(|l| l.starts_with("error: cannot listen on")).expect("the error line");
    let quoted = message.replace(&format!("127.0.0.1:{port}"), "0.0.0.0:8080");
    let operations = std::fs::read_to_string(repo_file("docs/operations.md")).expect("docs/operations.md");
    assert!(operations.contains(&format!("```text\n{quoted}\n```")), "docs/operations.md quotes {quoted:?}");
}

#[test]
fn the_units_documentation_file_is_one_the_install_steps_install() {
    let unit = std::fs::read_to_string(repo_file("deploy/systemd/rosey.service")).expect("the unit");
    let operations = std::fs::read_to_string(repo_file("docs/operations.md")).expect("docs/operations.md");
    let documented = unit.lines().filter_map(|l| l.strip_prefix("Documentation=")).flat_map(str::split_whitespace);
    for target in documented {
        let Some(path) = target.strip_prefix("file://") else { continue };
        let installed = operations.lines().any(|l| l.starts_with("sudo install ") && l.contains(&format!(" {path}")));
        assert!(installed, "the unit points to {path}, which no install step in docs/operations.md installs");
    }
}

/// `sh -c "INPUT | rosey --config FILE run --exit-at-eof"` with `config`, to completion.
fn pipe_into_rosey(config: &Value, input: &str) -> Output {
    pipe_into_rosey_within(config, input, DEADLINE)
}

/// [`pipe_into_rosey`], failing after `deadline` rather than [`DEADLINE`] (long inputs).
pub(crate) fn pipe_into_rosey_within(config: &Value, input: &str, deadline: Duration) -> Output {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let config_path = dir.path().join("rosey.json");
    std::fs::write(&config_path, config.to_string()).expect("config written");
    let script = format!("{input} | {} --config {} run --exit-at-eof", rosey_exe(), config_path.display());
    let (out_path, err_path) = (dir.path().join("stdout"), dir.path().join("stderr"));
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(&script)
        .current_dir(dir.path())
        .env_remove("ROSEY_CONFIG")
        .env("ROSEY_LOG", "info")
        // Files, not pipes: a pipe nobody reads until the end would stall a long run.
        .stdout(std::fs::File::create(&out_path).expect("stdout file"))
        .stderr(std::fs::File::create(&err_path).expect("stderr file"))
        .spawn()
        .expect("sh starts");
    let until = Instant::now() + deadline;
    while child.try_wait().expect("try_wait works").is_none() {
        if Instant::now() > until {
            let _ = child.kill();
            panic!("{script:?} did not finish within {deadline:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let status = child.wait().expect("sh has exited");
    let read = |path| std::fs::read(path).expect("output file");
    Output { status, stdout: read(&out_path), stderr: read(&err_path) }
}

#[test]
fn the_readme_load_test_ends_with_its_input_when_asked() {
    let readme = std::fs::read_to_string(repo_file("README.md")).expect("README.md");
    let line = "yes '!roll 2d6' | head -n 100 | cargo run --release -- run --exit-at-eof";
    assert!(readme.contains(line), "the README shows the load test as {line:?}");
    let config = json!({
        "dashboard": { "enabled": false },
        "plugins": [{ "name": "dice-roller", "builtin": "dice-roller" }, slow_echo_plugin("echo", 0.5)],
    });
    let output = pipe_into_rosey(&config, "(yes '!roll 2d6' | head -n 100; echo 'alice: !echo last')");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    let rolls = stdout.lines().filter(|l| l.starts_with("[dice-roller] @console 🎲 2d6: ")).count();
    assert_eq!(rolls, 100, "every command answered before the exit: {stdout}");
    assert!(stdout.lines().any(|l| l == "[echo] @alice alice said: last"), "a held command too: {stdout}");
    assert!(stderr.contains("stopped"), "a clean shutdown: {stderr}");
}

#[test]
fn rosey_log_trace_shows_what_chat_does_and_a_bad_filter_is_reported() {
    let dice = json!([{ "name": "dice-roller", "builtin": "dice-roller" }]);
    let mut rosey = RoseyBuilder::new().plugins(dice.clone()).env("ROSEY_LOG", "trace").start();
    rosey.say("alice: !roll 1d6");
    wait_for_line(&rosey, "[dice-roller] @alice ");
    wait_for("the routing at debug level", DEADLINE, || {
        let log = rosey.stderr_text();
        (log.contains("DEBUG command routed plugin=\"dice-roller\"") && log.contains("TRACE console input"))
            .then_some(())
    });

    let rosey = RoseyBuilder::new().plugins(dice).env("ROSEY_LOG", "rosey=loud").start();
    let log = rosey.stderr_text();
    assert!(log.contains("ROSEY_LOG=\"rosey=loud\" is not a valid log filter"), "{log}");
}

/// The protocol guide's example plugin is the shipped `plugins/echo.py`, and its config entry
/// and session work as shown.
#[test]
fn the_protocol_guides_echo_plugin_works_as_shown() {
    let guide = std::fs::read_to_string(repo_file("docs/plugin-protocol.md")).expect("the guide");
    let shipped = std::fs::read_to_string(repo_file("plugins/echo.py")).expect("plugins/echo.py is shipped");
    assert!(guide.contains(&format!("```python\n{shipped}```")), "the guide shows plugins/echo.py as it is");
    let entry_line = guide
        .lines()
        .find(|l| l.starts_with("{\"name\": \"echo\", \"command\": [\"python3\", \"plugins/echo.py\"]"))
        .expect("the guide's config entry");
    let mut entry: Value = serde_json::from_str(entry_line).expect("the guide's config entry is JSON");
    entry["cwd"] = json!(env!("CARGO_MANIFEST_DIR")); // its "." means the repository here
    let mut rosey = RoseyBuilder::new().plugins(json!([entry])).start();
    rosey.say("alice: !echo hi there");
    assert_eq!(wait_for_line(&rosey, "[echo] "), "[echo] @alice alice said: hi there");
}

#[test]
fn api_metrics_lists_plugins_sorted_by_name_as_documented() {
    let api = std::fs::read_to_string(repo_file("docs/api.md")).expect("docs/api.md");
    assert!(api.contains("One entry per configured plugin, sorted by name."), "docs/api.md says the order");
    let plugins = json!([
        { "name": "zeta", "builtin": "8ball" },
        { "name": "alpha", "builtin": "dice-roller" },
        { "name": "mid", "builtin": "8ball" },
    ]);
    let rosey = RoseyBuilder::new().plugins(plugins).start();
    let metrics = rosey.get_json("/api/metrics");
    let names: Vec<&str> =
        metrics["plugins"].as_array().expect("plugins").iter().filter_map(|p| p["name"].as_str()).collect();
    assert_eq!(names, ["alpha", "mid", "zeta"]);
}

/// The total of a dice reply such as `... 🎲 2d6+3: [4, 1] + 3 = 8`.
fn dice_total(line: &str) -> i64 {
    let total = line.rsplit_once(" = ").map(|(_, t)| t.trim()).unwrap_or_else(|| panic!("no total in {line:?}"));
    total.parse().unwrap_or_else(|_| panic!("total {total:?} in {line:?} is not a number"))
}

#[test]
fn builtins_answer_in_chat_and_survive_absurd_input() {
    let mut rosey = RoseyBuilder::new().start();
    rosey.wait_until_running();
    let dice_pid = rosey.pid_of("dice-roller");

    rosey.say("alice: !roll 2d6+3");
    let roll = wait_for_line(&rosey, "[dice-roller] @alice 🎲 2d6+3: ");
    assert!((5..=15).contains(&dice_total(&roll)), "2d6+3 is between 5 and 15: {roll}");

    rosey.say("!8ball will it work?");
    wait_for_line(&rosey, "[8ball] @console 🎱 ");

    // Absurd input gets a friendly explanation, not a hang or a crash.
    rosey.say("bob: !roll banana");
    let banana = wait_for_line(&rosey, "[dice-roller] @bob ");
    assert!(banana.contains("2d6"), "the reply shows how to write a roll: {banana}");
    rosey.say("carol: !roll 99999999d999999999");
    let huge = wait_for_line(&rosey, "[dice-roller] @carol ");
    assert!(huge.contains("between 1 and 100 dice"), "the reply states the limit: {huge}");

    // Plain chat is ignored; an unknown command gets the host's answer (chat.rs), not an event.
    rosey.say("dave: !nosuchcommand please");
    rosey.say("just chatting, no command here");
    rosey.say("erin: !roll 1d1");
    wait_for_line(&rosey, "[dice-roller] @erin ");
    wait_for_line(&rosey, "[rosey] @dave ");
    let lines = rosey.stdout_lines();
    assert!(
        !lines.iter().any(|l| l.starts_with("[dice-roller] @dave") || l.contains("chatting")),
        "ignored lines got replies: {lines:?}"
    );
    assert_eq!(lines.len(), 6, "one reply per routed command, and the host's for dave: {lines:?}");
    let metrics = rosey.wait_for_plugin("dice-roller's 4 events", "dice-roller", |p| p["current"]["event_count"] == 4);
    assert_eq!(metrics["state"], "RUNNING");
    assert_eq!(metrics["pid"], dice_pid, "dice-roller survived without a restart");
    assert_eq!(metrics["current"]["crash_count"], 0);
    let system = rosey.get_json("/api/metrics")["system"].clone();
    assert_eq!(system["total_events"], 5, "4 rolls and one 8ball question, nothing for the unknown command");
}

/// The issue's load test, `yes '!roll 2d6' | head -n 100 | rosey`: the commands arrive before
/// any plugin has said hello, and every one of them still counts and gets its answer.
#[test]
fn a_hundred_commands_are_a_hundred_events() {
    let mut rosey = RoseyBuilder::new().spawn();
    for _ in 0..100 {
        rosey.say("!roll 2d6");
    }
    rosey.close_stdin();
    wait_for("/health", DEADLINE, || request("GET", &rosey.url("/health"), &[]).ok().filter(|r| r.status == 200));
    rosey.wait_for_plugin("100 dice-roller events", "dice-roller", |p| p["current"]["event_count"] == 100);
    wait_for("100 replies", DEADLINE, || {
        let replies = rosey.stdout_lines().iter().filter(|l| l.starts_with("[dice-roller] @console 🎲 2d6: ")).count();
        (replies == 100).then_some(())
    });
    let plugin = rosey.plugin("dice-roller");
    assert_eq!(plugin["current"]["event_count"], 100, "no command counted twice");
    assert_eq!(plugin["dropped_commands"], 0);
    // End of input is not a shutdown.
    rosey.assert_alive();
}
