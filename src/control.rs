//! Operating the bot while it runs: reload, restart, stop or start one plugin, or reload the
//! whole configuration. Every source of an action (the HTTP API, the console's `!admin`, a
//! signal, `rosey reload`) asks through [`Controls`], so that each action is carried out by one
//! owner (the task that owns the plugin host) and written to the audit log in one place.
//!
//! This is the one path that runs against the data flow (plugins → collector → snapshot →
//! dashboard): requests travel to the host over a channel and answers come back on a oneshot,
//! so no caller ever holds the host or a lock on it. Progress is seen the usual way: the
//! plugin's status changes and the next snapshot shows it.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::config::{Config, ConfigError};
use crate::plugins::PluginHost;
pub use crate::plugins::action::{Action, ActionError, ActionOutcome, ActionReport, Trigger};

/// Requests waiting for the host; a caller beyond this waits its turn.
const REQUEST_QUEUE: usize = 64;
/// The `tracing` target of audit lines, so they can be filtered or routed on their own
/// (`ROSEY_LOG=info,audit=info`).
pub const AUDIT_TARGET: &str = "audit";

/// A request to the task that owns the plugin host.
#[derive(Debug)]
pub enum ControlRequest {
    Act { plugin: String, action: Action, trigger: Trigger, reply: oneshot::Sender<Result<ActionReport, ActionError>> },
    ReloadConfig { trigger: Trigger, reply: oneshot::Sender<Result<ConfigReport, ConfigReloadError>> },
}

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

/// Why a config reload changed nothing.
#[derive(Debug, thiserror::Error)]
pub enum ConfigReloadError {
    /// The file or environment is invalid; every problem, one line each, as at start-up.
    #[error("{0}")]
    Invalid(#[from] ConfigError),
    #[error("a config reload is already in progress; try again when it has finished")]
    Busy,
    #[error("the bot is shutting down")]
    ShuttingDown,
}

/// The front door for actions: cheap to clone, one per source.
#[derive(Debug, Clone)]
pub struct Controls {
    requests: mpsc::Sender<ControlRequest>,
}

impl Controls {
    /// The door and the receiving end, which the host's owner serves.
    pub fn channel() -> (Controls, mpsc::Receiver<ControlRequest>) {
        let (requests, receiver) = mpsc::channel(REQUEST_QUEUE);
        (Controls { requests }, receiver)
    }

    /// Send a request and wait for its answer; `gone` when the host no longer takes requests.
    async fn ask<T, E>(
        &self,
        request: impl FnOnce(oneshot::Sender<Result<T, E>>) -> ControlRequest,
        gone: fn() -> E,
    ) -> Result<T, E> {
        let (reply, answer) = oneshot::channel();
        match self.requests.send(request(reply)).await {
            Ok(()) => answer.await.unwrap_or_else(|_| Err(gone())),
            Err(_) => Err(gone()),
        }
    }

    /// Carry out `action` on `plugin` and wait until it has finished; audited.
    pub async fn act(&self, plugin: &str, action: Action, trigger: Trigger) -> Result<ActionReport, ActionError> {
        let started = Instant::now();
        let request =
            |reply| ControlRequest::Act { plugin: plugin.to_owned(), action, trigger: trigger.clone(), reply };
        let result = self.ask(request, || ActionError::ShuttingDown).await;
        let took = started.elapsed().as_secs_f64();
        match &result {
            Ok(report) => info!(
                target: AUDIT_TARGET,
                who = %trigger,
                action = %action,
                plugin,
                outcome = %report.outcome,
                reason = report.reason.as_deref().unwrap_or(""),
                duration_seconds = took,
                "audit: action finished"
            ),
            Err(error) => warn!(
                target: AUDIT_TARGET,
                who = %trigger,
                action = %action,
                plugin,
                outcome = "refused",
                reason = %error,
                duration_seconds = took,
                "audit: action refused"
            ),
        }
        result
    }

    /// Re-read the config file and environment and apply the difference; audited.
    pub async fn reload_config(&self, trigger: Trigger) -> Result<ConfigReport, ConfigReloadError> {
        let started = Instant::now();
        let request = |reply| ControlRequest::ReloadConfig { trigger: trigger.clone(), reply };
        let result = self.ask(request, || ConfigReloadError::ShuttingDown).await;
        let took = started.elapsed().as_secs_f64();
        if let Ok(report) = &result {
            // Each plugin the new config reloaded gets its own line, as any other action does.
            for each in &report.reloaded {
                info!(
                    target: AUDIT_TARGET,
                    who = %Trigger::Config,
                    action = %each.action,
                    plugin = each.plugin,
                    outcome = %each.outcome,
                    reason = each.reason.as_deref().unwrap_or(""),
                    duration_seconds = each.duration.as_secs_f64(),
                    "audit: action finished"
                );
            }
        }
        match &result {
            Ok(report) => info!(
                target: AUDIT_TARGET,
                who = %trigger,
                action = "reload-config",
                started = ?report.started,
                removed = ?report.removed,
                reloaded = ?report.reloaded.iter().map(|r| r.plugin.as_str()).collect::<Vec<_>>(),
                needs_restart = ?report.needs_restart,
                duration_seconds = took,
                "audit: config reloaded"
            ),
            Err(error) => warn!(
                target: AUDIT_TARGET,
                who = %trigger,
                action = "reload-config",
                outcome = "refused",
                duration_seconds = took,
                "audit: config reload refused: {error}"
            ),
        }
        result
    }
}

/// Reads the configuration again (the file and the environment), as at start-up.
pub type LoadConfig = Box<dyn Fn() -> Result<Config, ConfigError> + Send>;

/// Serve [`ControlRequest`]s with `host` until `stop`; then hand the host back to be stopped.
/// Each action runs in its supervisor, so a slow reload of one plugin holds up nothing else;
/// this task only checks, dispatches and keeps the set of plugins. `running` is the config the
/// bot started with: dashboard and metrics settings that differ from it need a restart.
pub async fn serve(
    mut host: PluginHost,
    mut requests: mpsc::Receiver<ControlRequest>,
    load: LoadConfig,
    running: Config,
    stop: CancellationToken,
) -> PluginHost {
    let reloading_config = Arc::new(AtomicBool::new(false));
    loop {
        let request = tokio::select! {
            request = requests.recv() => request,
            () = stop.cancelled() => None,
        };
        match request {
            None => return host,
            Some(ControlRequest::Act { plugin, action, trigger, reply }) => {
                match dispatch(&host, &load, &plugin, action, &trigger) {
                    Ok(answer) => {
                        tokio::spawn(async move {
                            let _ = reply.send(answer.await.map_err(|_| ActionError::ShuttingDown));
                        });
                    }
                    Err(error) => _ = reply.send(Err(error)),
                }
            }
            Some(ControlRequest::ReloadConfig { reply, .. }) => {
                if reloading_config.swap(true, Ordering::SeqCst) {
                    let _ = reply.send(Err(ConfigReloadError::Busy));
                    continue;
                }
                let started = Instant::now();
                match load() {
                    Err(error) => {
                        reloading_config.store(false, Ordering::SeqCst);
                        let _ = reply.send(Err(ConfigReloadError::Invalid(error)));
                    }
                    Ok(config) => {
                        let plan = apply(&mut host, &running, config);
                        let done = reloading_config.clone();
                        tokio::spawn(async move {
                            let report = plan.finish(started).await;
                            done.store(false, Ordering::SeqCst);
                            let _ = reply.send(Ok(report));
                        });
                    }
                }
            }
        }
    }
}

/// Hand an action to the host; a reload first re-reads the plugin's entry from the file.
fn dispatch(
    host: &PluginHost,
    load: &LoadConfig,
    plugin: &str,
    action: Action,
    trigger: &Trigger,
) -> Result<oneshot::Receiver<ActionReport>, ActionError> {
    if host.handle(plugin).is_none() {
        return Err(ActionError::UnknownPlugin(plugin.to_owned()));
    }
    let entry = match action {
        Action::Reload => {
            let config = load().map_err(|e| ActionError::InvalidConfig(e.to_string()))?;
            let entry = config.plugins.into_iter().find(|p| p.name.as_str() == plugin);
            Some(entry.ok_or_else(|| ActionError::NotInConfig(plugin.to_owned()))?)
        }
        Action::Restart | Action::Stop | Action::Start => None,
    };
    host.act(plugin, action, entry, trigger)
}

/// A config reload under way: what was decided at once, and the reloads still running.
struct Plan {
    report: ConfigReport,
    reloads: Vec<(String, Result<oneshot::Receiver<ActionReport>, ActionError>)>,
}

impl Plan {
    async fn finish(mut self, started: Instant) -> ConfigReport {
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
fn apply(host: &mut PluginHost, running: &Config, config: Config) -> Plan {
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

    #[tokio::test]
    async fn an_action_reaches_the_host_and_its_answer_comes_back() {
        let (controls, mut requests) = Controls::channel();
        let host = tokio::spawn(async move {
            let Some(ControlRequest::Act { plugin, action, reply, .. }) = requests.recv().await else {
                panic!("expected an action request");
            };
            let report = ActionReport {
                plugin,
                action,
                outcome: ActionOutcome::Done,
                from_version: None,
                to_version: None,
                duration: Duration::ZERO,
                reason: None,
            };
            reply.send(Ok(report)).expect("the caller waits");
        });
        let report = controls.act("dice", Action::Stop, Trigger::Signal("SIGHUP")).await.expect("answered");
        assert_eq!((report.plugin.as_str(), report.action), ("dice", Action::Stop));
        host.await.expect("host task");
    }

    #[tokio::test]
    async fn a_host_that_is_gone_means_shutting_down() {
        let (controls, requests) = Controls::channel();
        drop(requests);
        assert_eq!(controls.act("dice", Action::Reload, Trigger::Config).await, Err(ActionError::ShuttingDown));
        assert!(matches!(
            controls.reload_config(Trigger::Signal("SIGHUP")).await,
            Err(ConfigReloadError::ShuttingDown)
        ));
    }

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
