//! The host's side of the [`ActionDoor`](super::ActionDoor): the one task that owns the plugin
//! host takes each request, checks it and hands it to the plugin's supervisor, so no caller
//! ever holds the host.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use super::config_diff::apply;
use super::{Action, ActionError, ActionReport, ConfigReloadError, ControlRequest, Trigger};
use crate::config::{Config, ConfigError};
use crate::plugins::PluginHost;
use crate::timeline::{Timeline, notes};

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
    timeline: Timeline,
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
            Some(ControlRequest::GiveUp { plugin, reason, trigger, reply }) => {
                match host.give_up(&plugin, reason, &trigger) {
                    Ok(answer) => {
                        tokio::spawn(async move {
                            let _ = reply.send(answer.await.map_err(|_| ActionError::ShuttingDown));
                        });
                    }
                    Err(error) => _ = reply.send(Err(error)),
                }
            }
            Some(ControlRequest::ReloadConfig { reply, trigger }) => {
                if reloading_config.swap(true, Ordering::SeqCst) {
                    let _ = reply.send(Err(ConfigReloadError::Busy));
                    continue;
                }
                let started = Instant::now();
                match load() {
                    Err(error) => {
                        timeline.record(notes::config_reload(Err(&error), &trigger));
                        reloading_config.store(false, Ordering::SeqCst);
                        let _ = reply.send(Err(ConfigReloadError::Invalid(error)));
                    }
                    Ok(config) => {
                        let plan = apply(&mut host, &running, config);
                        let (done, timeline) = (reloading_config.clone(), timeline.clone());
                        tokio::spawn(async move {
                            let report = plan.finish(started).await;
                            timeline.record(notes::config_reload(Ok(&report), &trigger));
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
            let config = load().map_err(|e| ActionError::InvalidConfig(e.problem_lines()))?;
            let entry = config.plugins.into_iter().find(|p| p.name.as_str() == plugin);
            Some(entry.ok_or_else(|| ActionError::NotInConfig(plugin.to_owned()))?)
        }
        Action::Restart | Action::Stop | Action::Start => None,
    };
    host.act(plugin, action, entry, trigger)
}
