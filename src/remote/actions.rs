//! `rosey reload [NAME]` and `rosey start|stop|restart NAME`: ask the running bot to re-read
//! its config (`POST /api/reload`) or to act on one plugin (`POST /api/plugin/NAME/ACTION`),
//! and print what it did, in the words chat uses.

use std::time::Duration;

use serde::Deserialize;

use super::client::{Client, read};
use super::terminal::escaped;
use super::{RemoteError, emit};
use crate::control::text::{ActionSummary, ConfigSummary};
use crate::control::{Action, ActionOutcome};
use crate::plugins::spec::PluginName;

/// What to ask of the bot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// Re-read the config file and environment, as SIGHUP does.
    ReloadConfig,
    Plugin(PluginName, Action),
}

/// Ask, and print the outcome on stdout one line per change; an outcome that is not what
/// was asked (a rollback, a start that failed) is an error after its lines.
pub fn ask(client: &Client, request: &Request) -> Result<(), RemoteError> {
    let path = match request {
        Request::ReloadConfig => "api/reload".to_owned(),
        Request::Plugin(name, action) => format!("api/plugin/{name}/{action}"),
    };
    let body = client.post(&path)?;
    let summary = match request {
        Request::ReloadConfig => {
            read::<ConfigAnswer>(&body).map(|report| (report.summary().lines(), report.summary().succeeded()))
        }
        Request::Plugin(..) => {
            read::<ActionAnswer>(&body).map(|report| (vec![report.summary().line()], report.summary().succeeded()))
        }
    };
    let Some((lines, succeeded)) = summary else { return Err(RemoteError::BadAnswer { url: client.url(&path), body }) };
    // The lines hold the plugin's names and versions, as the plugin announced them.
    let text: String = lines.iter().map(|line| format!("{}\n", escaped(line))).collect();
    emit(&text)?;
    if succeeded { Ok(()) } else { Err(RemoteError::NotAllDone) }
}

/// An `ActionReport` as the API sends it, which [`ActionSummary`] words.
#[derive(Debug, Deserialize)]
struct ActionAnswer {
    plugin: String,
    action: Action,
    outcome: ActionOutcome,
    from_version: Option<String>,
    to_version: Option<String>,
    duration_seconds: Option<f64>,
    reason: Option<String>,
}

impl ActionAnswer {
    fn summary(&self) -> ActionSummary<'_> {
        ActionSummary {
            plugin: &self.plugin,
            action: self.action,
            outcome: self.outcome,
            from_version: self.from_version.as_deref(),
            to_version: self.to_version.as_deref(),
            duration: seconds(self.duration_seconds),
            reason: self.reason.as_deref(),
        }
    }
}

/// A `ConfigReport` as the API sends it.
#[derive(Debug, Deserialize)]
struct ConfigAnswer {
    #[serde(default)]
    started: Vec<String>,
    #[serde(default)]
    removed: Vec<String>,
    reloaded: Vec<ActionAnswer>,
    #[serde(default)]
    unchanged: Vec<String>,
    #[serde(default)]
    needs_restart: Vec<String>,
    duration_seconds: Option<f64>,
}

impl ConfigAnswer {
    fn summary(&self) -> ConfigSummary<'_> {
        ConfigSummary {
            started: names(&self.started),
            removed: names(&self.removed),
            reloaded: self.reloaded.iter().map(ActionAnswer::summary).collect(),
            unchanged: names(&self.unchanged),
            needs_restart: names(&self.needs_restart),
            duration: seconds(self.duration_seconds),
        }
    }
}

fn names(list: &[String]) -> Vec<&str> {
    list.iter().map(String::as_str).collect()
}

/// A `duration_seconds`; one that is absent or no duration reads as zero.
fn seconds(value: Option<f64>) -> Duration {
    value.and_then(|secs| Duration::try_from_secs_f64(secs).ok()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_config_report_reads_as_the_chat_reads_it() {
        let report = json!({
            "started": ["echo"], "removed": [], "unchanged": ["8ball"], "needs_restart": [],
            "reloaded": [{ "plugin": "dice", "action": "reload", "outcome": "rolled_back", "from_version": "1",
                           "to_version": null, "duration_seconds": 2.5, "reason": "exited with code 3 before hello" }],
            "duration_seconds": 2.75,
        });
        let report: ConfigAnswer = serde_json::from_value(report).expect("a report");
        let summary = report.summary();
        assert!(!summary.succeeded(), "a rollback is not success");
        assert_eq!(
            summary.lines(),
            [
                "config reloaded in 2.75 s",
                "started echo (new in the config)",
                "reload of dice rolled back after 2.50 s (exited with code 3 before hello); 1 keeps serving",
                "unchanged: 8ball",
            ]
        );
    }
}
