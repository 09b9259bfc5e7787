//! The plugin host (issue 3): chat routing and replies, event counting, crash detection and
//! restart with backoff, giving up, robustness against misbehaving plugins, clean shutdown.

use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use serde_json::{Value, json};

use crate::common::*;

/// A restart policy entry for a plugin config.
fn restart(initial_delay: f64, max_delay: f64, max_attempts: u32) -> Value {
    json!({ "initial_delay": initial_delay, "max_delay": max_delay, "max_attempts": max_attempts, "reset_window": 60 })
}

fn with_restart(mut plugin: Value, policy: Value) -> Value {
    plugin["restart"] = policy;
    plugin
}

fn kill(pid: i32) {
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), Signal::SIGKILL).expect("the plugin can be killed");
}

/// Wait for a stdout line starting with `prefix` and return it.
fn wait_for_reply(rosey: &Rosey, prefix: &str) -> String {
    wait_for(&format!("a reply starting with {prefix:?}"), DEADLINE, || {
        rosey.stdout_lines().into_iter().find(|l| l.starts_with(prefix))
    })
}

/// The total of a dice reply such as `... 🎲 2d6+3: [4, 1] + 3 = 8`.
fn dice_total(line: &str) -> i64 {
    let total = line.rsplit_once(" = ").map(|(_, t)| t.trim()).unwrap_or_else(|| panic!("no total in {line:?}"));
    total.parse().unwrap_or_else(|_| panic!("total {total:?} in {line:?} is not a number"))
}

fn count(value: &Value) -> u64 {
    value.as_u64().unwrap_or_else(|| panic!("{value} is not a count"))
}

#[test]
fn builtins_answer_in_chat_and_survive_absurd_input() {
    let mut rosey = RoseyBuilder::new().start();
    rosey.wait_until_running();
    let dice_pid = rosey.pid_of("dice-roller");

    rosey.say("alice: !roll 2d6+3");
    let roll = wait_for_reply(&rosey, "[dice-roller] @alice 🎲 2d6+3: ");
    assert!((5..=15).contains(&dice_total(&roll)), "2d6+3 is between 5 and 15: {roll}");

    rosey.say("!8ball will it work?");
    wait_for_reply(&rosey, "[8ball] @console 🎱 ");

    // Absurd input gets a friendly explanation, not a hang or a crash.
    rosey.say("bob: !roll banana");
    let banana = wait_for_reply(&rosey, "[dice-roller] @bob ");
    assert!(banana.contains("2d6"), "the reply shows how to write a roll: {banana}");
    rosey.say("carol: !roll 99999999d999999999");
    let huge = wait_for_reply(&rosey, "[dice-roller] @carol ");
    assert!(huge.contains("between 1 and 100 dice"), "the reply states the limit: {huge}");

    // Plain chat is ignored; an unknown command gets the host's answer (chat.rs), not an event.
    rosey.say("dave: !nosuchcommand please");
    rosey.say("just chatting, no command here");
    rosey.say("erin: !roll 1d1");
    wait_for_reply(&rosey, "[dice-roller] @erin ");
    wait_for_reply(&rosey, "[rosey] @dave ");
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

/// The load test, `yes '!roll 2d6' | head -n 100 | rosey`: the commands arrive before
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

#[test]
fn a_killed_plugin_is_counted_and_restarted_with_backoff() {
    let policy = json!({ "initial_delay": 0.5, "max_delay": 1, "max_attempts": 3, "reset_window": 60 });
    let mut rosey = RoseyBuilder::new()
        .plugins(json!([
            { "name": "dice-roller", "builtin": "dice-roller", "restart": policy },
            { "name": "8ball", "builtin": "8ball" },
        ]))
        .start();
    rosey.wait_until_running();

    // Attempt 1 waits initial_delay, attempt 2 twice that; restarts never come early.
    for (crash, delay) in [(1, 0.5), (2, 1.0)] {
        let old_pid = rosey.pid_of("dice-roller");
        let killed_at = Instant::now();
        kill(old_pid);
        let crashed = rosey.wait_for_plugin("the crash to be seen", "dice-roller", |p| {
            p["state"] == "CRASHED" || (p["state"] == "RUNNING" && p["pid"].is_i64() && p["pid"] != old_pid)
        });
        let back = rosey.wait_for_plugin("a restart with a new pid", "dice-roller", |p| {
            p["state"] == "RUNNING" && p["pid"].is_i64() && p["pid"] != old_pid
        });
        let waited = killed_at.elapsed().as_secs_f64();
        assert!(waited >= delay - 0.05, "restart {crash} came after {waited:.2}s, before its {delay}s backoff");
        assert!(!crashed["crash_log"].as_array().expect("a crash log").is_empty());
        assert_eq!(back["current"]["crash_count"], crash);
        assert_eq!(back["restart_attempt"], crash, "consecutive crashes are counted");
        assert_eq!(back["crash_log"][0]["signal"], "SIGKILL");
        assert_eq!(back["crash_log"][0]["exit_code"], Value::Null);
        assert!(!process_exists(old_pid as u32), "the killed process is gone");
    }

    // The restarted plugin serves chat again, and 8ball never noticed.
    rosey.say("alice: !roll 1d6");
    wait_for_reply(&rosey, "[dice-roller] @alice 🎲 1d6: ");
    let eight_ball = rosey.plugin("8ball");
    assert_eq!(eight_ball["current"]["crash_count"], 0);
    assert_eq!(eight_ball["state"], "RUNNING");
}

/// A running bot with dice-roller alone, restarted as `policy` (a `restart` object) says.
fn dice_roller_restarted_by(policy: Value) -> Rosey {
    let rosey = RoseyBuilder::new()
        .plugins(json!([{ "name": "dice-roller", "builtin": "dice-roller", "restart": policy }]))
        .start();
    rosey.wait_until_running();
    rosey
}

#[test]
fn staying_up_for_the_reset_window_forgets_earlier_crashes() {
    // One restart allowed in a row; a run of 1 s starts the count afresh.
    let policy = json!({ "initial_delay": 0.2, "max_delay": 0.2, "max_attempts": 1, "reset_window": 1 });
    let rosey = dice_roller_restarted_by(policy);
    for crash in 1..=3 {
        let pid = rosey.pid_of("dice-roller");
        kill(pid);
        let back = rosey.wait_for_plugin("a restart", "dice-roller", |p| {
            p["state"] == "RUNNING" && p["pid"].is_i64() && p["pid"] != pid
        });
        assert_eq!(back["current"]["crash_count"], crash);
        rosey.wait_for_plugin("the attempt count to reset after 1 s up", "dice-roller", |p| {
            p["restart_attempt"] == 0 && p["state"] == "RUNNING"
        });
    }
    // Without the reset, the second crash would have been one too many.
    assert_eq!(rosey.plugin("dice-roller")["state"], "RUNNING");
}

/// Regression: a restart delay past what a clock reading can hold panicked the supervisor, which left
/// the dead plugin shown as RUNNING for good. The config now refuses delays over a day (see
/// config::hostile_config), so the longest one it accepts stands in.
#[test]
fn an_enormous_restart_delay_is_just_a_long_wait() {
    let never = json!({ "initial_delay": 86400, "max_delay": 86400, "max_attempts": 3, "reset_window": 60 });
    let mut rosey = dice_roller_restarted_by(never);
    let loaded_at = rosey.plugin("dice-roller")["loaded_at"].clone();
    assert!(loaded_at.is_string(), "a running plugin has loaded_at: {loaded_at}");
    kill(rosey.pid_of("dice-roller"));
    let crashed = rosey.wait_for_state("dice-roller", "CRASHED");
    assert_eq!(crashed["pid"], Value::Null);
    assert_eq!(crashed["current"]["crash_count"], 1);
    assert_eq!(crashed["loaded_at"], loaded_at, "a crashed plugin keeps the time it was loaded");
    rosey.signal(Signal::SIGTERM);
    assert_eq!(rosey.wait_exit(DEADLINE).code(), Some(0), "{}", rosey.stderr_text());
    assert!(!rosey.stderr_text().contains("panicked"), "{}", rosey.stderr_text());
}

/// A crashed plugin's commands are dropped and counted, not queued to be answered whenever the
/// restart comes.
#[test]
fn commands_for_a_crashed_plugin_are_dropped_and_counted() {
    let slow_restart = json!({ "initial_delay": 3, "max_delay": 3, "max_attempts": 3, "reset_window": 60 });
    let mut rosey = dice_roller_restarted_by(slow_restart);
    let pid = rosey.pid_of("dice-roller");
    kill(pid);
    rosey.wait_for_state("dice-roller", "CRASHED");
    for user in ["early1", "early2", "early3"] {
        rosey.say(&format!("{user}: !roll 1d6"));
    }
    let crashed = rosey.wait_for_plugin("3 dropped commands", "dice-roller", |p| p["dropped_commands"] == 3);
    assert_eq!(crashed["current"]["event_count"], 0, "dropped commands are not events");
    assert_eq!(crashed["state"], "CRASHED", "still waiting for the restart (else raise initial_delay)");

    rosey.wait_for_plugin("the restart", "dice-roller", |p| p["state"] == "RUNNING" && p["pid"] != pid);
    rosey.say("late: !roll 1d6");
    wait_for_reply(&rosey, "[dice-roller] @late ");
    // Replies come in order: had the early commands been queued, they would have come first.
    let lines = rosey.stdout_lines();
    assert!(
        !lines.iter().any(|l| l.starts_with("[dice-roller] @early")),
        "dropped commands got late replies: {lines:?}"
    );
    let after = rosey.wait_for_plugin("the late command's event", "dice-roller", |p| p["current"]["event_count"] == 1);
    assert_eq!(after["dropped_commands"], 3);
}

#[test]
fn a_plugin_that_keeps_crashing_ends_failed() {
    let crasher = with_restart(python_plugin("crasher", "crasher.py", &["0.2"]), restart(0.1, 0.2, 2));
    let mut rosey = RoseyBuilder::new().plugin(crasher).start();
    let failed = rosey.wait_for_state("crasher", "FAILED");
    assert_eq!(failed["current"]["crash_count"], 3, "the first run and two restarts");
    assert_eq!(failed["pid"], Value::Null);
    assert_eq!(failed["next_restart_in_seconds"], Value::Null, "no restart is pending");
    let last = &failed["crash_log"][0];
    assert_eq!(last["exit_code"], 3);
    assert_eq!(last["reason"], "exited with code 3");
    let tail: Vec<&str> =
        last["stderr_tail"].as_array().expect("stderr tail").iter().filter_map(Value::as_str).collect();
    assert!(tail.contains(&"fatal: giving up"), "the crash log keeps the last stderr lines: {tail:?}");

    // FAILED is final, and the others carry on.
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(rosey.plugin("crasher")["current"]["crash_count"], 3, "no restart after giving up");
    rosey.say("!roll 1d6");
    wait_for_reply(&rosey, "[dice-roller] @console 🎲 1d6: ");
}

#[test]
fn garbage_and_deaf_plugins_do_not_disturb_the_others() {
    let mut rosey = RoseyBuilder::new()
        .plugins(json!([
            { "name": "dice-roller", "builtin": "dice-roller" },
            python_plugin("garbage", "garbage.py", &[]),
            python_plugin("deaf", "deaf.py", &[]),
        ]))
        .start();
    rosey.wait_until_running();
    let garbage_pid = rosey.pid_of("garbage");
    rosey.wait_for_plugin("deaf's hello", "deaf", |p| p["version"] == "1.0");

    // garbage.py: invalid JSON, an unknown type, a 200 KiB line, a reply to nothing, 20,000 junk lines.
    let garbage =
        rosey.wait_for_plugin("every garbage line counted", "garbage", |p| count(&p["protocol_errors"]) >= 20_004);
    assert_eq!(garbage["protocol_errors"], 20_004, "each bad line is one protocol error");
    assert_eq!(garbage["state"], "RUNNING");
    assert_eq!(garbage["pid"], garbage_pid, "bad output is not a reason to restart");

    // deaf.py never reads: its pipe and queue fill up, then commands are dropped and counted.
    for _ in 0..2000 {
        rosey.say("!deaf x");
    }
    rosey.say("alice: !roll 3d6");
    wait_for_reply(&rosey, "[dice-roller] @alice 🎲 3d6: ");
    assert_eq!(rosey.get("/health").status, 200);
    let deaf = rosey.wait_for_plugin("all 2,000 deaf commands accounted for", "deaf", |p| {
        count(&p["current"]["event_count"]) + count(&p["dropped_commands"]) == 2000
    });
    assert!(count(&deaf["dropped_commands"]) > 0, "a plugin that does not read has commands dropped: {deaf}");
    assert_eq!(deaf["state"], "RUNNING");
    let drop_lines = rosey.stderr_text().lines().filter(|l| l.contains("command dropped")).count();
    assert!((1..50).contains(&drop_lines), "drops are logged, but not one line each: {drop_lines} lines");
    assert_eq!(rosey.plugin("dice-roller")["protocol_errors"], 0, "the others' counters are untouched");
}

/// A plugin's pid and every process below it (for "nothing outlives the host").
fn tree_of(pid: u32) -> Vec<u32> {
    let mut tree = vec![pid];
    let mut next = 0;
    while next < tree.len() {
        let children = children_of(tree[next]);
        tree.extend(children);
        next += 1;
    }
    tree
}

#[test]
fn sigterm_leaves_no_plugin_process_behind() {
    let mut rosey = RoseyBuilder::new().plugin(python_plugin("memory-tree", "memory_tree.py", &["10"])).start();
    rosey.wait_until_running();
    rosey.wait_for_plugin("hostile's hello", "hostile", |p| p["version"] == HOSTILE_VERSION);
    let tree_root = rosey.pid_of("memory-tree") as u32;
    wait_for("memory_tree.py's child", DEADLINE, || (tree_of(tree_root).len() == 2).then_some(()));
    let mut pids = Vec::new();
    for name in ["dice-roller", "8ball", "hostile", "memory-tree"] {
        pids.extend(tree_of(rosey.pid_of(name) as u32));
    }
    assert_eq!(pids.len(), 5, "four plugins and memory_tree.py's child: {pids:?}");
    assert!(pids.iter().all(|&p| process_exists(p)));

    rosey.signal(Signal::SIGTERM);
    let status = rosey.wait_exit(DEADLINE);
    assert_eq!(status.code(), Some(0), "a clean stop: {}", rosey.stderr_text());
    let survivors: Vec<u32> = pids.into_iter().filter(|&p| process_exists(p)).collect();
    assert!(survivors.is_empty(), "processes outlived the host: {survivors:?}");
    assert!(rosey.stderr_text().contains("stopped"), "the log says so");
}

/// The host cannot clean up after SIGKILL; its plugins notice their input closing and exit.
#[test]
fn plugins_exit_when_the_host_is_killed() {
    let mut rosey = RoseyBuilder::new().plugin(python_plugin("memory-tree", "memory_tree.py", &["10"])).start();
    rosey.wait_until_running();
    let tree_root = rosey.pid_of("memory-tree") as u32;
    wait_for("memory_tree.py's child", DEADLINE, || (tree_of(tree_root).len() == 2).then_some(()));
    let mut pids = Vec::new();
    for name in ["dice-roller", "8ball", "hostile", "memory-tree"] {
        pids.extend(tree_of(rosey.pid_of(name) as u32));
    }
    rosey.signal(Signal::SIGKILL);
    rosey.wait_exit(DEADLINE);
    wait_for("every plugin process to exit", DEADLINE, || pids.iter().all(|&p| !process_exists(p)).then_some(()));
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
fn a_missing_program_fails_without_harming_the_host() {
    let missing = json!({ "name": "missing", "command": ["/nonexistent/prog"], "restart": restart(0.1, 0.1, 2) });
    let mut rosey =
        RoseyBuilder::new().plugins(json!([{ "name": "dice-roller", "builtin": "dice-roller" }, missing])).start();
    let failed = rosey.wait_for_state("missing", "FAILED");
    assert_eq!(failed["pid"], Value::Null);
    assert_eq!(failed["loaded_at"], Value::Null, "it never started");
    assert_eq!(failed["current"]["crash_count"], 3);
    let reason = failed["crash_log"][0]["reason"].as_str().expect("a reason");
    assert!(reason.starts_with("failed to start: "), "the crash log says why: {reason}");
    assert_eq!(rosey.get("/health").status, 200);
    rosey.say("!roll 1d6");
    wait_for_reply(&rosey, "[dice-roller] @console 🎲 1d6: ");
    rosey.assert_alive();
}
