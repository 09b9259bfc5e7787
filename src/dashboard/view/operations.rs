//! What the page shows of an operator's actions on a plugin: which buttons a card offers, the
//! action under way, the newest reload's outcome (on every card), and the reload log and
//! command conflicts of the detail page. Formatted here, once, for the server render and the
//! live updates alike.

use serde::Serialize;

use crate::control::text::ActionSummary;
use crate::display::{format_action_seconds, rfc3339};
use crate::metrics::PluginSnapshot;
use crate::plugins::action::{Action, ActionOutcome, ReloadRecord};
use crate::plugins::command_table::CommandConflict;

/// A card's part in the actions: what is under way, how the newest reload went, and whether
/// its Stop or its Start button is offered (a card's own fields, set from this).
#[derive(Debug)]
pub struct CardOperations {
    /// In words, e.g. "draining old pid 1234"; None when nothing is under way.
    pub activity: Option<String>,
    /// The newest reload-log entry in words, e.g. "reloaded dice 1 → 2 in 0.12 s".
    pub last_reload: Option<String>,
    /// Stop is offered while a process runs or is due to (RUNNING, STARTING, CRASHED with a
    /// restart pending); Start when nothing will run by itself (STOPPED, FAILED).
    pub stoppable: bool,
    pub startable: bool,
}

impl CardOperations {
    pub fn of(p: &PluginSnapshot) -> Self {
        let startable = p.state.startable();
        CardOperations {
            activity: p.operations.activity.clone(),
            last_reload: p.operations.reload_log.front().map(|r| {
                let line = reload_summary(&p.name, r).line();
                // A reload nobody typed says why it happened: "… · memory over 200 MB".
                match r.trigger.automatic() {
                    Some(why) => format!("{line} · {why}"),
                    None => line,
                }
            }),
            stoppable: !startable,
            startable,
        }
    }
}

/// A reload-log entry read like the answer to the action (the same words as chat and the CLI).
fn reload_summary<'a>(plugin: &'a str, r: &'a ReloadRecord) -> ActionSummary<'a> {
    ActionSummary {
        plugin,
        action: Action::Reload,
        outcome: r.outcome,
        from_version: r.from_version.as_deref(),
        to_version: r.to_version.as_deref(),
        duration: r.duration,
        reason: r.reason.as_deref(),
    }
}

/// One entry of the detail page's reload log. `Default` is the blank entry of the page's
/// `<template>`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ReloadView {
    pub at: String,
    /// `api`, `console`, `chat`, `signal`, `config`, `memory` or `watch`.
    pub trigger: &'static str,
    /// `1 → 2`; a version not known (the new process never said hello) is `?`.
    pub versions: String,
    pub duration: String,
    /// `reloaded`, `rolled back` or `failed`.
    pub outcome: &'static str,
    /// The entry's CSS classes: its outcome's colour.
    pub classes: &'static str,
    /// Why it rolled back or failed; empty when it did not.
    pub reason: String,
}

impl ReloadView {
    pub fn of(r: &ReloadRecord) -> Self {
        let version = |v: &Option<String>| v.clone().unwrap_or_else(|| "?".to_owned());
        let (outcome, classes) = match r.outcome {
            ActionOutcome::Reloaded | ActionOutcome::Done => ("reloaded", "reload outcome-reloaded"),
            ActionOutcome::RolledBack => ("rolled back", "reload outcome-rolled-back"),
            ActionOutcome::Failed => ("failed", "reload outcome-failed"),
        };
        ReloadView {
            at: rfc3339(r.at),
            trigger: r.trigger.kind(),
            versions: format!("{} → {}", version(&r.from_version), version(&r.to_version)),
            duration: format_action_seconds(r.duration),
            outcome,
            classes,
            reason: r.reason.clone().unwrap_or_default(),
        }
    }
}

/// A command the plugin claims together with another plugin (or the host). `Default` is the
/// blank entry of the page's `<template>`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ConflictView {
    /// As typed in chat: `!roll`.
    pub command: String,
    pub routed_to: String,
    /// Every claimant in configuration order, comma-separated.
    pub claimed_by: String,
}

impl ConflictView {
    pub fn of(c: &CommandConflict) -> Self {
        ConflictView {
            command: format!("!{}", c.command),
            routed_to: c.routed_to.clone(),
            claimed_by: c.claimed_by.join(", "),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use super::*;
    use crate::plugins::action::Trigger;

    #[test]
    fn a_rolled_back_reload_reads_with_its_reason_and_unknown_new_version() {
        let record = ReloadRecord {
            at: SystemTime::UNIX_EPOCH,
            trigger: Trigger::Api { user: None },
            from_version: Some("1".into()),
            to_version: None,
            duration: Duration::from_millis(2100),
            outcome: ActionOutcome::RolledBack,
            reason: Some("exited with code 3 before hello".into()),
        };
        let view = ReloadView::of(&record);
        assert_eq!((view.versions.as_str(), view.duration.as_str()), ("1 → ?", "2.10 s"));
        assert_eq!((view.outcome, view.classes), ("rolled back", "reload outcome-rolled-back"));
        assert_eq!(
            reload_summary("dice", &record).line(),
            "reload of dice rolled back after 2.10 s (exited with code 3 before hello); 1 keeps serving"
        );
    }
}
