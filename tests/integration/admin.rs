//! The console's `!admin` (issue 15, item 6): the operator's commands are obeyed from the
//! console, `stop` and `restart` wait for a `yes`, anything else cancels them, other chat users
//! are refused, and every action is written to the audit log. Real binary, real plugin
//! processes (the versioned fixture, "deployed" by rewriting its version file).

use serde_json::json;

use crate::common::actions::{Deployable, wait_until_running};
use crate::common::*;

/// A bot running `plugin`, its dashboard without credentials: the console needs none.
fn bot(plugin: &Deployable) -> Rosey {
    let rosey = RoseyBuilder::new().plugins(json!([plugin.entry()])).start();
    rosey.wait_for_plugin("version 1 running", plugin.name, |p| p["state"] == "RUNNING" && p["version"] == "1");
    rosey
}

/// Say `line`; the number of stdout lines printed before it.
fn say(rosey: &mut Rosey, line: &str) -> usize {
    let from = rosey.stdout_lines().len();
    rosey.say(line);
    from
}

/// The first stdout line after the first `from` that starts with `prefix`.
fn after(rosey: &Rosey, from: usize, prefix: &str) -> String {
    wait_for(&format!("a line starting with {prefix:?}"), DEADLINE, || {
        rosey.stdout_lines().into_iter().skip(from).find(|l| l.starts_with(prefix))
    })
}

/// Say `line`, then wait for a stdout line starting with `prefix` printed after it.
fn ask(rosey: &mut Rosey, line: &str, prefix: &str) -> String {
    let from = say(rosey, line);
    after(rosey, from, prefix)
}

/// The audit lines in the log (each starts `audit: `).
fn audit_lines(rosey: &Rosey) -> Vec<String> {
    rosey.stderr_text().lines().filter(|l| l.contains("audit: ")).map(str::to_owned).collect()
}

#[test]
fn the_operator_stops_a_plugin_after_a_yes_and_starts_it_again_each_audited() {
    let plugin = Deployable::new("versioned", "1");
    let mut rosey = bot(&plugin);

    let prompt = ask(&mut rosey, "!admin stop versioned", "[rosey] @console ");
    assert_eq!(
        prompt,
        "[rosey] @console stop versioned? it stays STOPPED, its commands unanswered, until !admin start; \
         type yes within 30 s to confirm"
    );
    assert_eq!(rosey.plugin("versioned")["state"], "RUNNING", "nothing happens before the yes");

    let stopped = ask(&mut rosey, "yes", "[rosey] @console stopped ");
    assert!(stopped.starts_with("[rosey] @console stopped versioned in "), "{stopped}");
    assert!(stopped.ends_with(" s; it stays STOPPED until started"), "{stopped}");
    rosey.wait_for_state("versioned", "STOPPED");
    let not_running = ask(&mut rosey, "!ver 1", "[rosey] @console ");
    assert_eq!(not_running, "[rosey] @console versioned is not running");

    let started = ask(&mut rosey, "!admin start versioned", "[rosey] @console started ");
    assert!(started.starts_with("[rosey] @console started versioned 1 in "), "{started}");
    rosey.wait_for_state("versioned", "RUNNING");
    assert_eq!(ask(&mut rosey, "!ver 2", "[versioned] "), "[versioned] @console v1 2");

    let audit = audit_lines(&rosey);
    for action in ["stop", "start"] {
        let line = audit.iter().find(|l| l.contains(&format!("action={action} ")));
        let line = line.unwrap_or_else(|| panic!("no audit line for {action}: {audit:#?}"));
        assert!(line.contains(r#"who=console user "console""#), "{line}");
        assert!(line.contains("versioned") && line.contains("outcome=done"), "{line}");
        assert!(line.contains("duration_seconds="), "{line}");
    }
}

#[test]
fn a_reload_from_the_console_switches_versions_and_a_broken_one_rolls_back_with_its_reason() {
    let plugin = Deployable::new("versioned", "1");
    let mut rosey = bot(&plugin);

    plugin.deploy("2");
    let from = say(&mut rosey, "!admin reload versioned");
    let ack = after(&rosey, from, "[rosey] @console ");
    assert_eq!(ack, "[rosey] @console reloading versioned…", "a reload needs no yes");
    let reloaded = after(&rosey, from, "[rosey] @console reloaded ");
    assert!(reloaded.starts_with("[rosey] @console reloaded versioned 1 → 2 in "), "{reloaded}");
    assert_eq!(ask(&mut rosey, "!ver a", "[versioned] "), "[versioned] @console v2 a");

    plugin.deploy("broken");
    let rolled = ask(&mut rosey, "!admin reload versioned", "[rosey] @console reload of ");
    assert!(rolled.starts_with("[rosey] @console reload of versioned rolled back after "), "{rolled}");
    assert!(rolled.contains("code 3") && rolled.ends_with("; 2 keeps serving"), "{rolled}");
    assert_eq!(ask(&mut rosey, "!ver b", "[versioned] "), "[versioned] @console v2 b");
    let audit = audit_lines(&rosey);
    assert!(audit.iter().any(|l| l.contains("action=reload") && l.contains("outcome=rolled_back")), "{audit:#?}");
}

#[test]
fn other_input_cancels_a_pending_restart_and_a_later_yes_does_nothing() {
    let plugin = Deployable::new("versioned", "1");
    let mut rosey = bot(&plugin);
    let pid = rosey.pid_of("versioned");

    ask(&mut rosey, "!admin restart versioned", "[rosey] @console restart versioned? ");
    let from = say(&mut rosey, "!ver 1");
    assert_eq!(after(&rosey, from, "[rosey] "), "[rosey] @console restart versioned cancelled");
    assert_eq!(after(&rosey, from, "[versioned] "), "[versioned] @console v1 1", "the other input still counts");
    rosey.say("yes");
    // Lines are handled in order: by the time the status is answered, the yes has been read.
    let status = ask(&mut rosey, "!admin status versioned", "[rosey] @console versioned 1: ");
    assert!(status.contains("RUNNING for "), "{status}");
    let said: Vec<String> = rosey.stdout_lines().into_iter().skip(from).collect();
    assert!(!said.iter().any(|l| l.contains("restarting")), "the late yes restarted it: {said:#?}");
    assert_eq!(rosey.pid_of("versioned"), pid);
}

#[test]
fn chat_users_other_than_the_operator_are_refused_and_logged() {
    let plugin = Deployable::new("versioned", "1");
    let mut rosey = bot(&plugin);
    let pid = rosey.pid_of("versioned");

    for line in ["alice: !admin stop versioned", "alice: !admin reload-config", "console user: !admin list"] {
        let user = line.split_once(':').map(|(u, _)| u).unwrap_or_default();
        let refused = ask(&mut rosey, line, &format!("[rosey] @{user} "));
        assert_eq!(refused, format!("[rosey] @{user} !admin is for the operator only; {user} may not use it"));
    }
    rosey.say("alice: yes");
    ask(&mut rosey, "!admin list", "[rosey] @console 1 plugins:");
    assert_eq!(rosey.pid_of("versioned"), pid, "nothing was done");
    let refusals: Vec<String> =
        audit_lines(&rosey).into_iter().filter(|l| l.contains("audit: !admin refused")).collect();
    assert_eq!(refusals.len(), 3, "{refusals:#?}");
    assert!(
        refusals[0].contains(r#"who=console user "alice""#) && refusals[0].contains("stop versioned"),
        "{refusals:#?}"
    );
}

#[test]
fn status_list_metrics_and_a_config_reload_from_the_console() {
    let plugin = Deployable::new("versioned", "1");
    let mut rosey = bot(&plugin);

    let from = say(&mut rosey, "!admin list");
    assert_eq!(after(&rosey, from, "[rosey] @console 1 "), "[rosey] @console 1 plugins:");
    assert_eq!(after(&rosey, from, "[rosey] @console versioned "), "[rosey] @console versioned 1 RUNNING");
    let from = say(&mut rosey, "!admin metrics");
    let metrics = after(&rosey, from, "[rosey] @console up ");
    assert!(metrics.contains("1/1 plugins running"), "{metrics}");
    let url = format!("http://127.0.0.1:{}/", rosey.port());
    assert!(after(&rosey, from, "[rosey] @console dashboard: ").contains(&url));

    let mut config = rosey.config.clone();
    config["plugins"] = json!([plugin.entry(), { "name": "8ball", "builtin": "8ball" }]);
    std::fs::write(&rosey.config_path, serde_json::to_vec_pretty(&config).unwrap()).unwrap();
    let from = say(&mut rosey, "!admin reload-config");
    after(&rosey, from, "[rosey] @console config reloaded in ");
    assert_eq!(after(&rosey, from, "[rosey] @console started "), "[rosey] @console started 8ball (new in the config)");
    assert_eq!(after(&rosey, from, "[rosey] @console unchanged"), "[rosey] @console unchanged: versioned");
    wait_until_running(&rosey, "8ball", &[]);
}
