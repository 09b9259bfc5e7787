//! The plugin host: one supervisor per plugin, the registry of current plugins that readers
//! follow, and the door through which actions reach a supervisor (one at a time per plugin).

use std::sync::Arc;

use tokio::sync::{Notify, mpsc, oneshot, watch};
use tokio::task::{JoinHandle, JoinSet};
use tokio_util::sync::CancellationToken;

use super::action::{Action, ActionError, ActionOutcome, ActionReport, Trigger};
use super::spec::PluginConfig;
use super::supervisor::{self, Busy, HostLink, Order};
use super::{COMMAND_QUEUE, ChatReply, Launcher, PluginHandle, PluginState, tree};

/// The current plugins, in config order. Readers (collector, chat) hold a `watch::Receiver`
/// of it and take a cheap `Arc` clone when they need the list; the host publishes a new one
/// when plugins are added or removed.
pub type PluginList = Arc<[Arc<PluginHandle>]>;

/// One plugin as the host keeps it.
struct Entry {
    handle: Arc<PluginHandle>,
    orders: mpsc::Sender<Order>,
    busy: Busy,
    /// Cancelled to stop this plugin for good (removed from the config).
    retire: CancellationToken,
}

/// All plugins and their supervisors.
pub struct PluginHost {
    entries: Vec<Entry>,
    registry: watch::Sender<PluginList>,
    changed: Arc<Notify>,
    supervisors: JoinSet<()>,
    launcher: Launcher,
    replies: mpsc::Sender<ChatReply>,
    stop: CancellationToken,
    /// Cancelled to SIGKILL the plugins still inside their stop grace period.
    kill: CancellationToken,
    reaper: Arc<tree::Reaper>,
    reaper_task: JoinHandle<()>,
}

impl PluginHost {
    /// Spawn every plugin. Replies are sent to `replies`.
    pub fn start(configs: Vec<PluginConfig>, launcher: Launcher, replies: mpsc::Sender<ChatReply>) -> PluginHost {
        let stop = CancellationToken::new();
        let reaper = tree::Reaper::adopt_orphans();
        let reaper_task = tokio::spawn(reaper.clone().run(stop.clone()));
        let mut host = PluginHost {
            entries: Vec::with_capacity(configs.len()),
            registry: watch::Sender::new(Arc::from([])),
            changed: Arc::new(Notify::new()),
            supervisors: JoinSet::new(),
            launcher,
            replies,
            stop,
            kill: CancellationToken::new(),
            reaper,
            reaper_task,
        };
        for config in configs {
            host.spawn(config);
        }
        host.publish();
        host
    }

    fn spawn(&mut self, config: PluginConfig) {
        let (command_tx, command_rx) = mpsc::channel(COMMAND_QUEUE);
        let (orders_tx, orders_rx) = mpsc::channel(1);
        let log = self.launcher.logs.open(config.name.as_str());
        let handle = Arc::new(PluginHandle::new(config, command_tx, log));
        let retire = self.stop.child_token();
        let timeline = self.launcher.timeline.clone();
        let link = Arc::new(HostLink::new(handle.clone(), self.changed.clone(), self.replies.clone(), timeline));
        self.supervisors.spawn(supervisor::answer_timeouts(link.clone(), retire.clone()));
        let supervisor = supervisor::Supervisor {
            link,
            launcher: self.launcher.clone(),
            orders: orders_rx,
            reaper: self.reaper.clone(),
            stop: retire.clone(),
            kill: self.kill.clone(),
        };
        self.supervisors.spawn(supervisor.run(command_rx));
        self.entries.push(Entry { handle, orders: orders_tx, busy: Busy::default(), retire });
    }

    fn publish(&self) {
        let list: PluginList = self.entries.iter().map(|e| e.handle.clone()).collect();
        self.registry.send_replace(list);
        self.changed.notify_one();
    }

    /// The current plugins, followed as they change.
    pub fn registry(&self) -> watch::Receiver<PluginList> {
        self.registry.subscribe()
    }

    /// The current plugins.
    pub fn handles(&self) -> PluginList {
        self.registry.borrow().clone()
    }

    pub fn handle(&self, name: &str) -> Option<&Arc<PluginHandle>> {
        self.entries.iter().find(|e| e.handle.name() == name).map(|e| &e.handle)
    }

    /// Notified whenever any plugin changes state.
    pub fn changed(&self) -> Arc<Notify> {
        self.changed.clone()
    }

    /// Cancelling this SIGKILLs at once the plugins still inside their stop grace period.
    pub fn kill_switch(&self) -> CancellationToken {
        self.kill.clone()
    }

    /// Ask `plugin`'s supervisor to carry out `action` (a reload with `config`, the entry just
    /// read from the file). The answer comes when the action has finished; a second action on
    /// the same plugin before then is refused as busy.
    pub fn act(
        &self,
        plugin: &str,
        action: Action,
        config: Option<PluginConfig>,
        trigger: &Trigger,
    ) -> Result<oneshot::Receiver<ActionReport>, ActionError> {
        let entry = self
            .entries
            .iter()
            .find(|e| e.handle.name() == plugin)
            .ok_or_else(|| ActionError::UnknownPlugin(plugin.to_owned()))?;
        let claim =
            entry.busy.claim(action).map_err(|running| ActionError::Busy { plugin: plugin.to_owned(), running })?;
        let (reply, answer) = oneshot::channel();
        let order = Order { action, config: config.map(Arc::new), trigger: trigger.clone(), reply, claim };
        // The claim means no other order is queued, and a one-slot queue holds this one.
        entry.orders.try_send(order).map_err(|_| ActionError::ShuttingDown)?;
        Ok(answer)
    }

    /// Stop `plugin` and leave it FAILED with `reason`: the host gives up on a plugin that keeps
    /// needing to be healed (recycled for memory again and again). The answer is the stop's,
    /// with `reason`; `start` brings it back (a new process clears the reason).
    pub fn give_up(
        &self,
        plugin: &str,
        reason: String,
        trigger: &Trigger,
    ) -> Result<oneshot::Receiver<ActionReport>, ActionError> {
        let stopped = self.act(plugin, Action::Stop, None, trigger)?;
        let handle = self.handle(plugin).cloned().ok_or_else(|| ActionError::UnknownPlugin(plugin.to_owned()))?;
        let changed = self.changed.clone();
        let (timeline, trigger) = (self.launcher.timeline.clone(), trigger.clone());
        let (reply, answer) = oneshot::channel();
        tokio::spawn(async move {
            let Ok(mut report) = stopped.await else { return };
            // Only a plugin still STOPPED: an operator may have started it again meanwhile.
            let failed = handle.status.send_if_modified(|s| {
                let stopped = s.state == PluginState::Stopped;
                if stopped {
                    s.state = PluginState::Failed;
                    s.failure = Some(reason.clone());
                }
                stopped
            });
            if failed {
                changed.notify_one();
                report.outcome = ActionOutcome::Failed;
                timeline.record(crate::timeline::notes::gave_up(&report.plugin, &reason, &trigger));
            }
            report.reason = Some(reason);
            let _ = reply.send(report);
        });
        Ok(answer)
    }

    /// Start a plugin that was not configured before.
    pub fn add(&mut self, config: PluginConfig) {
        self.spawn(config);
        self.publish();
    }

    /// Stop a plugin for good and forget it: it leaves the registry at once, its processes
    /// stop in the background (the host's [`PluginHost::stop`] still waits for them).
    pub fn remove(&mut self, plugin: &str) -> bool {
        let Some(index) = self.entries.iter().position(|e| e.handle.name() == plugin) else { return false };
        let entry = self.entries.remove(index);
        entry.retire.cancel();
        self.publish();
        true
    }

    /// Put the plugins in the order of `names` (the config file's), others last.
    pub fn arrange(&mut self, names: &[&str]) {
        let position = |e: &Entry| names.iter().position(|n| *n == e.handle.name()).unwrap_or(usize::MAX);
        self.entries.sort_by_key(position);
        self.publish();
    }

    /// Stop every plugin (SIGTERM, grace period, SIGKILL) and wait for the supervisors; then
    /// kill whatever the plugins left behind.
    pub async fn stop(mut self) {
        self.stop.cancel();
        while self.supervisors.join_next().await.is_some() {}
        let _ = self.reaper_task.await;
        self.reaper.kill_all_orphans().await;
    }
}
