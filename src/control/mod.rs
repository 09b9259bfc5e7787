//! Operating the bot while it runs: reload, restart, stop or start one plugin, or reload the
//! whole configuration. Every source of an action (the HTTP API, the console's `!admin`, a
//! signal, `rosey reload`) asks through the [`ActionDoor`], so that each action is carried out
//! by one owner (the task that owns the plugin host) and written to the audit log in one place.
//!
//! This is the one path that runs against the data flow (plugins → collector → snapshot →
//! dashboard): requests travel to the host over a channel and answers come back on a oneshot,
//! so no caller ever holds the host or a lock on it. Progress is seen the usual way: the
//! plugin's status changes and the next snapshot shows it.
//!
//! - this file: the door, its requests and the audit lines;
//! - [`serving`]: the host's side, which takes the requests and carries them out;
//! - [`config_diff`]: what a config reload starts, removes, reloads or leaves for a restart;
//! - [`text`]: the outcome of an action in words, for chat and the terminal.
//!
//! What an action is and how it went on one plugin ([`Action`], [`ActionReport`]) is the
//! plugins' own ([`crate::plugins::action`]), re-exported here for the askers.

mod config_diff;
mod serving;
pub mod text;

use std::time::Instant;

use tokio::sync::{mpsc, oneshot};
use tracing::{info, warn};

use crate::config::ConfigError;
pub use crate::plugins::action::{Action, ActionError, ActionOutcome, ActionReport, Trigger};
pub use config_diff::ConfigReport;
pub use serving::{LoadConfig, serve};

/// Requests waiting for the host; a caller beyond this waits its turn.
const REQUEST_QUEUE: usize = 64;
/// The `tracing` target of audit lines, so they can be filtered or routed on their own
/// (`ROSEY_LOG=info,audit=info`).
pub const AUDIT_TARGET: &str = "audit";

/// A request to the task that owns the plugin host. `GiveUp` stops a plugin and leaves it
/// FAILED with `reason` (the host gives up on a plugin that keeps needing to be healed); an
/// operator's `start` brings it back.
#[derive(Debug)]
pub enum ControlRequest {
    Act { plugin: String, action: Action, trigger: Trigger, reply: oneshot::Sender<Result<ActionReport, ActionError>> },
    ReloadConfig { trigger: Trigger, reply: oneshot::Sender<Result<ConfigReport, ConfigReloadError>> },
    GiveUp { plugin: String, reason: String, trigger: Trigger, reply: ActionReply },
}

/// Where the answer to an action goes.
pub type ActionReply = oneshot::Sender<Result<ActionReport, ActionError>>;

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
pub struct ActionDoor {
    requests: mpsc::Sender<ControlRequest>,
}

impl ActionDoor {
    /// The door and the receiving end, which the host's owner serves.
    pub fn channel() -> (ActionDoor, mpsc::Receiver<ControlRequest>) {
        let (requests, receiver) = mpsc::channel(REQUEST_QUEUE);
        (ActionDoor { requests }, receiver)
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

    /// Stop `plugin` and mark it FAILED with `reason`; audited like a stop.
    pub async fn give_up(&self, plugin: &str, reason: &str, trigger: Trigger) -> Result<ActionReport, ActionError> {
        let started = Instant::now();
        let request = |reply| ControlRequest::GiveUp {
            plugin: plugin.to_owned(),
            reason: reason.to_owned(),
            trigger: trigger.clone(),
            reply,
        };
        let result = self.ask(request, || ActionError::ShuttingDown).await;
        let took = started.elapsed().as_secs_f64();
        let outcome = result.as_ref().map_or_else(|e| format!("refused: {e}"), |_| "failed".to_owned());
        warn!(
            target: AUDIT_TARGET,
            who = %trigger,
            action = "give-up",
            plugin,
            outcome,
            reason,
            duration_seconds = took,
            "audit: plugin given up on"
        );
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

#[cfg(test)]
mod tests {
    use super::*;

    use std::time::Duration;

    #[tokio::test]
    async fn an_action_reaches_the_host_and_its_answer_comes_back() {
        let (door, mut requests) = ActionDoor::channel();
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
        let report = door.act("dice", Action::Stop, Trigger::Signal("SIGHUP")).await.expect("answered");
        assert_eq!((report.plugin.as_str(), report.action), ("dice", Action::Stop));
        host.await.expect("host task");
    }

    #[tokio::test]
    async fn a_host_that_is_gone_means_shutting_down() {
        let (door, requests) = ActionDoor::channel();
        drop(requests);
        assert_eq!(door.act("dice", Action::Reload, Trigger::Config).await, Err(ActionError::ShuttingDown));
        assert!(matches!(door.reload_config(Trigger::Signal("SIGHUP")).await, Err(ConfigReloadError::ShuttingDown)));
    }
}
