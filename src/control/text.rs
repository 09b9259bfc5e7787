//! How the outcome of an operator's action reads, the same in chat (`!admin`) and on the
//! terminal (`rosey reload`): one line per plugin action, one line per change of a config
//! reload. Both callers fill the borrowed summaries below, chat from the host's reports and the
//! CLI from the API's JSON, so the wording cannot drift apart.

use std::time::Duration;

use super::{ActionReport, ConfigReport};
use crate::display::format_action_seconds as seconds;

/// One finished plugin action.
#[derive(Debug, Clone, PartialEq)]
pub struct ActionSummary<'a> {
    pub plugin: &'a str,
    /// `reload`, `restart`, `stop` or `start`.
    pub action: &'a str,
    /// `done`, `reloaded`, `rolled_back` or `failed`.
    pub outcome: &'a str,
    pub from_version: Option<&'a str>,
    pub to_version: Option<&'a str>,
    pub duration: Duration,
    pub reason: Option<&'a str>,
}

impl<'a> ActionSummary<'a> {
    pub fn of(report: &'a ActionReport) -> Self {
        ActionSummary {
            plugin: &report.plugin,
            action: report.action.as_str(),
            outcome: report.outcome.as_str(),
            from_version: report.from_version.as_deref(),
            to_version: report.to_version.as_deref(),
            duration: report.duration,
            reason: report.reason.as_deref(),
        }
    }

    /// Did it do what was asked?
    pub fn succeeded(&self) -> bool {
        matches!(self.outcome, "done" | "reloaded")
    }

    /// `reloaded dice-roller 1.0 → 1.1 in 0.84 s`, `reload of dice-roller rolled back after
    /// 2.10 s (exited with code 3 before hello); 1.0 keeps serving`.
    pub fn line(&self) -> String {
        let ActionSummary { plugin, action, from_version, to_version, reason, .. } = *self;
        let took = seconds(self.duration);
        let from = version(from_version);
        let to = version(to_version);
        let reason = reason.map(|r| format!(" ({r})")).unwrap_or_default();
        match (action, self.outcome) {
            // Nothing to do, e.g. a start of a plugin that runs.
            (_, "done") if !reason.is_empty() => format!("{action} {plugin}: nothing to do{reason}"),
            (_, "rolled_back") => format!("reload of {plugin} rolled back after {took}{reason}; {from} keeps serving"),
            ("reload", "reloaded" | "done") => format!("reloaded {plugin} {from} → {to} in {took}"),
            ("restart", "done") => format!("restarted {plugin} {from} → {to} in {took}"),
            ("stop", "done") => format!("stopped {plugin} in {took}; it stays STOPPED until started"),
            ("start", "done") => format!("started {plugin} {to} in {took}"),
            (_, outcome) => format!("{action} of {plugin} {}after {took}{reason}", outcome_words(outcome)),
        }
    }
}

/// What one config reload changed.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ConfigSummary<'a> {
    pub started: Vec<&'a str>,
    pub removed: Vec<&'a str>,
    pub reloaded: Vec<ActionSummary<'a>>,
    pub unchanged: Vec<&'a str>,
    pub needs_restart: Vec<&'a str>,
    pub duration: Duration,
}

impl<'a> ConfigSummary<'a> {
    pub fn of(report: &'a ConfigReport) -> Self {
        let names = |list: &'a [String]| list.iter().map(String::as_str).collect();
        ConfigSummary {
            started: names(&report.started),
            removed: names(&report.removed),
            reloaded: report.reloaded.iter().map(ActionSummary::of).collect(),
            unchanged: names(&report.unchanged),
            needs_restart: names(&report.needs_restart),
            duration: report.duration,
        }
    }

    /// A headline, then one line per change (a reload of nothing says so).
    pub fn lines(&self) -> Vec<String> {
        let mut lines = vec![format!("config reloaded in {}", seconds(self.duration))];
        lines.extend(self.started.iter().map(|name| format!("started {name} (new in the config)")));
        lines.extend(self.removed.iter().map(|name| format!("removed {name} (gone from the config)")));
        lines.extend(self.reloaded.iter().map(ActionSummary::line));
        lines.extend(self.needs_restart.iter().map(|key| format!("{key} changed: takes effect when the bot restarts")));
        if !self.unchanged.is_empty() {
            lines.push(format!("unchanged: {}", self.unchanged.join(", ")));
        }
        if lines.len() == 1 {
            lines.push("nothing changed".to_owned());
        }
        lines
    }

    /// Did every change take effect at once?
    pub fn succeeded(&self) -> bool {
        self.reloaded.iter().all(ActionSummary::succeeded)
    }
}

fn version(v: Option<&str>) -> &str {
    v.unwrap_or("(unknown version)")
}

fn outcome_words(outcome: &str) -> &str {
    match outcome {
        "failed" => "failed ",
        _ => "ended ",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary(action: &'static str, outcome: &'static str) -> ActionSummary<'static> {
        ActionSummary {
            plugin: "dice",
            action,
            outcome,
            from_version: Some("1.0"),
            to_version: Some("1.1"),
            duration: Duration::from_millis(840),
            reason: None,
        }
    }

    #[test]
    fn each_outcome_reads_with_its_duration_and_versions() {
        assert_eq!(summary("reload", "reloaded").line(), "reloaded dice 1.0 → 1.1 in 0.84 s");
        assert_eq!(summary("restart", "done").line(), "restarted dice 1.0 → 1.1 in 0.84 s");
        assert_eq!(summary("stop", "done").line(), "stopped dice in 0.84 s; it stays STOPPED until started");
        assert_eq!(summary("start", "done").line(), "started dice 1.1 in 0.84 s");
        let running = ActionSummary { reason: Some("already running"), ..summary("start", "done") };
        assert_eq!(running.line(), "start dice: nothing to do (already running)");
        let failed = ActionSummary { reason: Some("no such file: ./dice"), ..summary("start", "failed") };
        assert_eq!(failed.line(), "start of dice failed after 0.84 s (no such file: ./dice)");
        assert!(!failed.succeeded());
    }

    #[test]
    fn a_rollback_names_its_reason_and_what_keeps_serving() {
        let rolled = ActionSummary {
            to_version: None,
            reason: Some("exited with code 3 before hello"),
            ..summary("reload", "rolled_back")
        };
        assert_eq!(
            rolled.line(),
            "reload of dice rolled back after 0.84 s (exited with code 3 before hello); 1.0 keeps serving"
        );
    }

    #[test]
    fn a_config_reload_reads_one_line_per_change() {
        let report = ConfigSummary {
            started: vec!["echo"],
            removed: vec!["old"],
            reloaded: vec![summary("reload", "reloaded")],
            unchanged: vec!["8ball", "hostile"],
            needs_restart: vec!["dashboard.port"],
            duration: Duration::from_millis(1500),
        };
        assert_eq!(
            report.lines(),
            [
                "config reloaded in 1.50 s",
                "started echo (new in the config)",
                "removed old (gone from the config)",
                "reloaded dice 1.0 → 1.1 in 0.84 s",
                "dashboard.port changed: takes effect when the bot restarts",
                "unchanged: 8ball, hostile",
            ]
        );
        let nothing = ConfigSummary { duration: Duration::from_millis(2), ..ConfigSummary::default() };
        assert_eq!(nothing.lines(), ["config reloaded in 0.00 s", "nothing changed"]);
    }
}
