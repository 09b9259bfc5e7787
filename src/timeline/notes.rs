//! The events the host's parts record, in words and details, so that each hook in the
//! supervisor, the control task and the dashboard is one call.

use std::sync::Mutex;
use std::time::Duration;

use serde_json::json;

use super::{Kind, Note, Timeline};
use crate::config::ConfigError;
use crate::control::ConfigReport;
use crate::logging::{LogBudget, Suppressed};
use crate::plugins::ExitReason;
use crate::plugins::action::{Action, ActionOutcome, ActionReport, Trigger};
use crate::sync::lock;

/// A plugin process started; `current` is false for a reload's new process beside the old one.
pub fn started(plugin: &str, pid: u32, current: bool) -> Note {
    let message = if current { format!("started, pid {pid}") } else { format!("started pid {pid} for a reload") };
    Note::new(Kind::Started, message).plugin(plugin).details(json!({ "pid": pid, "reload": !current }))
}

/// A plugin said hello, with its version if it gave one.
pub fn hello(plugin: &str, version: Option<&str>) -> Note {
    let message = format!("said hello, version {}", version.unwrap_or("unknown"));
    Note::new(Kind::Hello, message).plugin(plugin).details(json!({ "version": version }))
}

/// How a crash ended: restarted after `delay`, or given up on (`None`).
pub struct AfterCrash {
    /// Consecutive crashes, this one included.
    pub attempt: u32,
    pub restart_in: Option<Duration>,
}

/// A plugin process ended on its own; then a restart is scheduled, or the plugin FAILED.
pub fn crashed(
    timeline: &Timeline,
    plugin: &str,
    reason: &ExitReason,
    uptime: Duration,
    stderr_tail: &[String],
    after: AfterCrash,
) {
    let details = json!({
        "reason": reason.to_string(),
        "exit_code": reason.code(),
        "signal": reason.signal_name(),
        "uptime_seconds": uptime.as_secs_f64(),
        "stderr_tail": stderr_tail,
        "attempt": after.attempt,
    });
    let message = format!("crashed: {reason} after {:.1} s", uptime.as_secs_f64());
    timeline.record(Note::new(Kind::Crashed, message).plugin(plugin).details(details));
    let next = match after.restart_in {
        Some(delay) => {
            Note::new(Kind::RestartScheduled, format!("restart {} in {:.1} s", after.attempt, delay.as_secs_f64()))
                .details(json!({ "attempt": after.attempt, "delay_seconds": delay.as_secs_f64() }))
        }
        None => Note::new(Kind::Failed, format!("FAILED: gave up after {} consecutive crashes", after.attempt))
            .details(json!({ "attempts": after.attempt, "last_reason": reason.to_string() })),
    };
    timeline.record(next.plugin(plugin));
}

/// The host stopped a plugin and left it FAILED on purpose (e.g. recycled for memory too
/// often): the same kind as giving up after crashes, with the host's reason.
pub fn gave_up(plugin: &str, reason: &str, trigger: &Trigger) -> Note {
    Note::new(Kind::Failed, format!("FAILED: {reason}"))
        .plugin(plugin)
        .who(trigger)
        .details(json!({ "reason": reason, "trigger": trigger.kind() }))
}

/// An order finished (reload, restart, stop, start), as the supervisor answered it.
pub fn action(report: &ActionReport, trigger: &Trigger) -> Note {
    let kind = match (report.action, report.outcome) {
        (Action::Reload, ActionOutcome::Reloaded | ActionOutcome::Done) => Kind::Reloaded,
        (Action::Reload, ActionOutcome::RolledBack) => Kind::RolledBack,
        (Action::Reload, ActionOutcome::Failed) => Kind::ReloadFailed,
        _ => Kind::Action,
    };
    let versions = match (&report.from_version, &report.to_version) {
        (Some(from), Some(to)) if kind == Kind::Reloaded => format!(" {from} → {to}"),
        _ => String::new(),
    };
    let reason = report.reason.as_deref().map(|r| format!(": {r}")).unwrap_or_default();
    let message = match kind {
        Kind::Action => format!("{} {}{reason} (asked by {trigger})", report.action, report.outcome),
        Kind::RolledBack => format!("reload rolled back{reason} (asked by {trigger})"),
        Kind::ReloadFailed => format!("reload failed{reason} (asked by {trigger})"),
        _ => format!("reloaded{versions} in {:.2} s (asked by {trigger})", report.duration.as_secs_f64()),
    };
    let details = json!({
        "action": report.action,
        "outcome": report.outcome,
        "from_version": report.from_version,
        "to_version": report.to_version,
        "duration_seconds": report.duration.as_secs_f64(),
        "reason": report.reason,
        "trigger": trigger.kind(),
    });
    Note::new(kind, message).plugin(&report.plugin).who(trigger).details(details)
}

/// A config reload: what it changed, or why it changed nothing.
pub fn config_reload(result: Result<&ConfigReport, &ConfigError>, trigger: &Trigger) -> Note {
    match result {
        Ok(report) => {
            let mut parts = Vec::new();
            for (what, names) in [("added", &report.started), ("removed", &report.removed)] {
                if !names.is_empty() {
                    parts.push(format!("{what} {}", names.join(", ")));
                }
            }
            if !report.reloaded.is_empty() {
                let names: Vec<&str> = report.reloaded.iter().map(|r| r.plugin.as_str()).collect();
                parts.push(format!("changed {}", names.join(", ")));
            }
            if !report.needs_restart.is_empty() {
                parts.push(format!("needs a restart for {}", report.needs_restart.join(", ")));
            }
            let summary = if parts.is_empty() { "nothing changed".to_owned() } else { parts.join("; ") };
            let changed: Vec<serde_json::Value> = report
                .reloaded
                .iter()
                .map(|r| json!({ "plugin": r.plugin, "outcome": r.outcome, "reason": r.reason }))
                .collect();
            let details = json!({
                "added": report.started,
                "removed": report.removed,
                "changed": changed,
                "needs_restart": report.needs_restart,
                "duration_seconds": report.duration.as_secs_f64(),
            });
            Note::new(Kind::ConfigReloaded, format!("config reloaded: {summary}")).who(trigger).details(details)
        }
        Err(error) => {
            let problems = error.problem_lines();
            let message = format!("config reload refused: {}", problems.join("; "));
            Note::new(Kind::ConfigRefused, message).who(trigger).details(json!({ "problems": problems }))
        }
    }
}

/// Failed dashboard logins, on the timeline at most once per [`AUTH_WINDOW`]: a guessing
/// attack must not push everything else out of it. Each event counts the failures before it
/// that were not recorded.
pub struct AuthFailures {
    timeline: Timeline,
    budget: Mutex<LogBudget>,
}

/// One `auth_failed` event per this window at most.
pub const AUTH_WINDOW: Duration = Duration::from_secs(60);

impl AuthFailures {
    pub fn new(timeline: Timeline) -> AuthFailures {
        AuthFailures { timeline, budget: Mutex::new(LogBudget::new(1, AUTH_WINDOW)) }
    }

    /// A login failed: `client` (an address), with user name `user`, asking for `route`.
    pub fn failed(&self, client: &str, user: &str, route: &str) {
        let Some(Suppressed(before)) = lock(&self.budget).admit() else { return };
        let message = format!("dashboard login failed from {client} as {user:?}");
        let details = json!({ "client": client, "user": user, "route": route, "unrecorded_before": before });
        self.timeline.record(Note::new(Kind::AuthFailed, message).details(details));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_crash_then_a_restart_or_a_failure() {
        let timeline = Timeline::new(10);
        let tail = vec!["<script>boom</script>".to_owned()];
        let after = AfterCrash { attempt: 2, restart_in: Some(Duration::from_secs(2)) };
        crashed(&timeline, "p", &ExitReason::Code(3), Duration::from_secs(1), &tail, after);
        crashed(
            &timeline,
            "p",
            &ExitReason::Signal(9),
            Duration::ZERO,
            &[],
            AfterCrash { attempt: 6, restart_in: None },
        );
        let kinds: Vec<Kind> = timeline.newest(None, 10).iter().rev().map(|e| e.kind).collect();
        assert_eq!(kinds, [Kind::Crashed, Kind::RestartScheduled, Kind::Crashed, Kind::Failed]);
        let first = &timeline.newest(None, 10)[3];
        assert_eq!(first.details["exit_code"], 3);
        assert_eq!(first.details["stderr_tail"][0], "<script>boom</script>");
        assert_eq!(timeline.newest(None, 10)[1].details["signal"], "SIGKILL");
    }

    #[test]
    fn a_reload_is_named_by_its_outcome_and_who_asked() {
        let report = ActionReport {
            plugin: "p".into(),
            action: Action::Reload,
            outcome: ActionOutcome::RolledBack,
            from_version: Some("1".into()),
            to_version: None,
            duration: Duration::from_millis(300),
            reason: Some("exited with code 3 before hello".into()),
        };
        let note = action(&report, &Trigger::Api { user: Some("admin".into()) });
        let event = Timeline::new(1).record(note);
        assert_eq!(event.kind, Kind::RolledBack);
        assert_eq!(event.who.as_deref(), Some("api user \"admin\""));
        assert!(event.message.contains("exited with code 3 before hello"), "{}", event.message);
        let stop = ActionReport { action: Action::Stop, outcome: ActionOutcome::Done, reason: None, ..report };
        assert_eq!(Timeline::new(1).record(action(&stop, &Trigger::Config)).kind, Kind::Action);
    }
}
