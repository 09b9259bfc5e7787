//! A config reload, worked out against the running bot: entries new in the file start, entries
//! gone from it are removed, changed ones are hot-reloaded, and settings read only at start-up
//! are named as needing a restart.

use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::sync::oneshot;

use super::{Action, ActionError, ActionOutcome, ActionReport, Trigger};
use crate::config::Config;
use crate::plugins::PluginHost;

/// What a config reload changed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ConfigReport {
    /// New entries, now starting.
    pub started: Vec<String>,
    /// Entries gone from the file, now stopped and gone from the dashboard.
    pub removed: Vec<String>,
    /// Changed entries, hot-reloaded (each with its outcome).
    pub reloaded: Vec<ActionReport>,
    /// Entries left untouched.
    pub unchanged: Vec<String>,
    /// Keys that changed but take effect only after a restart of the bot (e.g. `dashboard.port`).
    pub needs_restart: Vec<String>,
    #[serde(rename = "duration_seconds", serialize_with = "crate::plugins::action::seconds")]
    pub duration: Duration,
}

/// A config reload under way: what was decided at once, and the reloads still running.
pub(super) struct Plan {
    report: ConfigReport,
    reloads: Vec<(String, Result<oneshot::Receiver<ActionReport>, ActionError>)>,
}

impl Plan {
    pub(super) async fn finish(mut self, started: Instant) -> ConfigReport {
        for (plugin, reload) in self.reloads {
            let report = match reload {
                Ok(answer) => answer.await.map_err(|_| ActionError::ShuttingDown),
                Err(error) => Err(error),
            };
            self.report.reloaded.push(report.unwrap_or_else(|error| ActionReport {
                plugin,
                action: Action::Reload,
                outcome: ActionOutcome::Failed,
                from_version: None,
                to_version: None,
                duration: Duration::ZERO,
                reason: Some(error.to_string()),
            }));
        }
        self.report.duration = started.elapsed();
        self.report
    }
}

/// Start new plugins, remove the ones gone from the file, hot-reload the changed ones.
pub(super) fn apply(host: &mut PluginHost, running: &Config, config: Config) -> Plan {
    let mut report = ConfigReport {
        started: Vec::new(),
        removed: Vec::new(),
        reloaded: Vec::new(),
        unchanged: Vec::new(),
        needs_restart: needs_restart(running, &config),
        duration: Duration::ZERO,
    };
    let wanted = |name: &str| config.plugins.iter().any(|p| p.name.as_str() == name);
    for handle in host.handles().iter().filter(|h| !wanted(h.name())) {
        host.remove(handle.name());
        report.removed.push(handle.name().to_owned());
    }
    let mut reloads = Vec::new();
    let order: Vec<String> = config.plugins.iter().map(|p| p.name.to_string()).collect();
    for entry in config.plugins {
        let name = entry.name.to_string();
        match host.handle(&name).map(|h| *h.config() == entry) {
            None => {
                host.add(entry);
                report.started.push(name);
            }
            Some(true) => report.unchanged.push(name),
            Some(false) => {
                let answer = host.act(&name, Action::Reload, Some(entry), &Trigger::Config);
                reloads.push((name, answer));
            }
        }
    }
    host.arrange(&order.iter().map(String::as_str).collect::<Vec<_>>());
    Plan { report, reloads }
}

/// The settings that differ from the running ones but only take effect at start.
fn needs_restart(running: &Config, new: &Config) -> Vec<String> {
    let (a, b) = (&running.dashboard, &new.dashboard);
    let same_auth = match (&a.auth, &b.auth) {
        (None, None) => true,
        (Some(x), Some(y)) => x.username == y.username && x.password == y.password,
        _ => false,
    };
    let changes = [
        ("dashboard.enabled", a.enabled != b.enabled),
        ("dashboard.host", a.host != b.host),
        ("dashboard.port", a.port != b.port),
        ("dashboard.warn_cpu_percent", a.warn_cpu_percent != b.warn_cpu_percent),
        ("dashboard.warn_memory_mb", a.warn_memory_mb != b.warn_memory_mb),
        ("dashboard.max_sse_clients", a.max_sse_clients != b.max_sse_clients),
        ("dashboard.auth", !same_auth),
        ("metrics.poll_interval", running.metrics.poll_interval != new.metrics.poll_interval),
        ("metrics.history_duration", running.metrics.history_duration != new.metrics.history_duration),
    ];
    changes.into_iter().filter(|(_, changed)| *changed).map(|(key, _)| key.to_owned()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_that_need_a_re_bind_are_named() {
        let load = |json: &str| {
            let dir = tempfile::tempdir().expect("a temporary directory");
            let path = dir.path().join("rosey.json");
            std::fs::write(&path, json).expect("written");
            let named_by = crate::config::NamedBy::Flag;
            crate::config::load(&crate::config::ConfigFile::Named { path, named_by }).expect("valid").config
        };
        let running = load(r#"{"dashboard": {"port": 8080}}"#);
        assert!(needs_restart(&running, &load(r#"{"dashboard": {"port": 8080}}"#)).is_empty());
        let moved = load(r#"{"dashboard": {"port": 9090, "host": "127.0.0.1"}, "metrics": {"poll_interval": 1}}"#);
        assert_eq!(needs_restart(&running, &moved), ["dashboard.host", "dashboard.port", "metrics.poll_interval"]);
    }
}
