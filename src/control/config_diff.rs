//! A config reload, worked out against the running bot: entries new in the file start, entries
//! gone from it are removed, changed ones are hot-reloaded, and settings read only at start-up
//! are named as needing a restart.

use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::sync::oneshot;

use super::{Action, ActionError, ActionOutcome, ActionReport, Trigger};
use crate::config::{Config, DashboardConfig, MetricsConfig};
use crate::plugins::PluginHost;
use crate::plugins::output_log::LogSettings;

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
            // Any key of the entry, the healers' too (`max_memory_*`, `watch`): a hot reload
            // puts the new entry in place, and the memory guard and the file watcher read the
            // running entry, so their new settings take effect with it (nothing is lost).
            Some(false) => {
                let answer = host.act(&name, Action::Reload, Some(entry), &Trigger::Config);
                reloads.push((name, answer));
            }
        }
    }
    host.arrange(&order.iter().map(String::as_str).collect::<Vec<_>>());
    Plan { report, reloads }
}

/// The settings that differ from the running ones but only take effect at start. Each section
/// is taken apart field by field (no `..`), so a new setting does not compile until it is
/// sorted in here: today the dashboard and the collector read every one of theirs only as they
/// start, so every change needs a restart.
fn needs_restart(running: &Config, new: &Config) -> Vec<String> {
    let DashboardConfig {
        enabled,
        host,
        port,
        warn_cpu_percent,
        warn_memory_mb,
        warn_response_ms,
        max_sse_clients,
        auth,
        users,
        trusted_proxies,
        tls,
    } = &new.dashboard;
    let MetricsConfig { poll_interval, history_duration } = &new.metrics;
    let LogSettings { max_lines, max_bytes, lines_per_second, files } = &new.logs;
    let (was, was_metrics) = (&running.dashboard, &running.metrics);
    let (was_files, files) = (running.logs.files.as_ref(), files.as_ref());
    let changes = [
        ("dashboard.enabled", was.enabled != *enabled),
        ("dashboard.host", was.host != *host),
        ("dashboard.port", was.port != *port),
        ("dashboard.warn_cpu_percent", was.warn_cpu_percent != *warn_cpu_percent),
        ("dashboard.warn_memory_mb", was.warn_memory_mb != *warn_memory_mb),
        ("dashboard.warn_response_ms", was.warn_response_ms != *warn_response_ms),
        ("dashboard.max_sse_clients", was.max_sse_clients != *max_sse_clients),
        ("dashboard.auth", was.auth != *auth),
        ("dashboard.users", was.users != *users),
        ("dashboard.trusted_proxies", was.trusted_proxies != *trusted_proxies),
        // Switching TLS on or off, or to other files, needs a restart; the same files are
        // re-read with the config at every reload (dashboard::ServedCertificate).
        ("dashboard.tls", was.tls != *tls),
        ("metrics.poll_interval", was_metrics.poll_interval != *poll_interval),
        ("metrics.history_duration", was_metrics.history_duration != *history_duration),
        ("metrics.prometheus_enabled", running.prometheus_enabled != new.prometheus_enabled),
        // The chat connections are made at start.
        ("chat", running.chat != new.chat),
        // The timeline's file is opened and the notifier's webhooks read at start.
        ("timeline", running.timeline != new.timeline),
        ("notify", running.notify != new.notify),
        // Each plugin's log ring and file writer are made as the bot starts.
        ("logs.max_lines", running.logs.max_lines != *max_lines),
        ("logs.max_bytes", running.logs.max_bytes != *max_bytes),
        ("logs.lines_per_second", running.logs.lines_per_second != *lines_per_second),
        ("logs.dir", was_files.map(|f| &f.dir) != files.map(|f| &f.dir)),
        // The file settings without a dir on both sides change nothing.
        ("logs.file_max_bytes", matches!((was_files, files), (Some(a), Some(b)) if a.max_bytes != b.max_bytes)),
        ("logs.file_backups", matches!((was_files, files), (Some(a), Some(b)) if a.backups != b.backups)),
    ];
    changes.into_iter().filter(|(_, changed)| *changed).map(|(key, _)| key.to_owned()).collect()
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;
    use crate::config::{ConfigFile, NamedBy, RawConfig};

    fn load(json: &str) -> Config {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let path = dir.path().join("rosey.json");
        std::fs::write(&path, json).expect("written");
        crate::config::load(&ConfigFile::Named { path, named_by: NamedBy::Flag }).expect("valid").config
    }

    #[test]
    fn settings_that_need_a_re_bind_are_named() {
        let running = load(r#"{"dashboard": {"port": 8080}}"#);
        assert!(needs_restart(&running, &load(r#"{"dashboard": {"port": 8080}}"#)).is_empty());
        let moved = load(r#"{"dashboard": {"port": 9090, "host": "127.0.0.1"}, "metrics": {"poll_interval": 1}}"#);
        assert_eq!(needs_restart(&running, &moved), ["dashboard.host", "dashboard.port", "metrics.poll_interval"]);
    }

    #[test]
    fn a_change_to_a_plugins_memory_limit_or_watch_list_alone_reloads_it() {
        let entry = |extra: &str| {
            load(&format!(r#"{{"plugins": [{{"name": "a", "builtin": "8ball"{extra}}}]}}"#)).plugins.remove(0)
        };
        let plain = entry("");
        assert_eq!(plain, entry(""));
        assert_ne!(plain, entry(r#", "max_memory_mb": 200"#), "a new limit is a changed entry");
        assert_ne!(entry(r#", "max_memory_mb": 200"#), entry(r#", "max_memory_mb": 200, "max_memory_window": 60"#));
        assert_ne!(plain, entry(r#", "watch": ["plugins/*.py"]"#), "a new watch list is a changed entry");
    }

    #[test]
    fn a_changed_log_setting_needs_a_restart() {
        let running = load("{}");
        let new = load(r#"{"logs": {"max_lines": 50, "lines_per_second": 10}}"#);
        assert_eq!(needs_restart(&running, &new), ["logs.max_lines", "logs.lines_per_second"]);
        let files = load(r#"{"logs": {"dir": "/tmp/rosey-logs", "file_backups": 2}}"#);
        assert_eq!(needs_restart(&running, &files), ["logs.dir"], "the files' settings come with it");
        let fewer = load(r#"{"logs": {"dir": "/tmp/rosey-logs", "file_backups": 1}}"#);
        assert_eq!(needs_restart(&files, &fewer), ["logs.file_backups"]);
    }

    /// The keys come from what a user may write (the raw config's defaults), not from a list
    /// kept beside `needs_restart`: a key it forgets, or names wrongly, fails here.
    #[test]
    fn every_dashboard_and_metrics_key_changed_alone_is_named() {
        let defaults = serde_json::to_value(RawConfig::default()).expect("plain data serialises");
        let running = load("{}");
        let mut checked = 0;
        for section in ["dashboard", "metrics"] {
            let mut fields = defaults[section].as_object().expect("a section is an object").clone();
            if section == "dashboard" {
                // Absent by default, so not serialised.
                fields.insert("auth".to_owned(), json!({ "username": "admin", "password": "secret" }));
                fields.insert("trusted_proxies".to_owned(), json!(["10.0.0.0/8"]));
                fields.insert("tls".to_owned(), json!({ "cert": "c.pem", "key": "k.pem" }));
                fields.insert("users".to_owned(), json!([{ "username": "ann", "password": "x", "role": "viewer" }]));
            }
            for (field, value) in fields {
                let changed = match value {
                    Value::Bool(on) => json!(!on),
                    Value::Number(n) => match n.as_u64() {
                        Some(whole) => json!(whole + 1),
                        None => json!(n.as_f64().expect("a finite number") + 1.0),
                    },
                    Value::String(text) => json!(format!("{text}.example")),
                    object @ Value::Object(_) => object,
                    list @ Value::Array(_) => list,
                    other => panic!("{section}.{field}: no change written for {other}"),
                };
                let new = load(&json!({ section: { field.as_str(): changed } }).to_string());
                assert_eq!(needs_restart(&running, &new), [format!("{section}.{field}")]);
                checked += 1;
            }
        }
        assert_eq!(checked, 14, "every dashboard and metrics key is checked");
    }
}
