//! The supervisor of one plugin: run one process generation after another ([`process`]),
//! restarting after a crash with backoff, and carry out the operator's orders ([`orders`]):
//! reload (a new generation beside the old one, the old one kept for the rollback window
//! after the switch), restart, stop, start. It runs until the host stops it or the plugin is
//! removed.

mod orders;
mod process;
mod spawn;

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use crate::sync::lock;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use super::action::{Action, ActionReport, Trigger};
use super::protocol::HostMessage;
use super::spec::PluginConfig;
use super::tree::Reaper;
use super::{CRASH_LOG_LEN, CrashRecord, ExitReason, Launcher, PluginState, PluginStatus, ProcessInfo};
use crate::plugins::spec::RestartPolicy;
use crate::timeline::notes;
use orders::Standby;
use process::{Exit, Generation, Outcome, Voice};
pub(super) use process::{HostLink, answer_timeouts};

/// An action for the supervisor, with the plugin's claim (freed when the order is done).
pub(in crate::plugins) struct Order {
    pub action: Action,
    /// For a reload: the plugin's entry as the config file has it now.
    pub config: Option<Arc<PluginConfig>>,
    /// Who asked, for the reload log.
    pub trigger: Trigger,
    pub reply: oneshot::Sender<ActionReport>,
    pub claim: Claim,
}

/// Which action, if any, holds a plugin.
#[derive(Default)]
pub(in crate::plugins) struct Busy(Arc<Mutex<Option<Action>>>);

impl Busy {
    /// Claim the plugin for `action`, or say which action holds it.
    pub(in crate::plugins) fn claim(&self, action: Action) -> Result<Claim, Action> {
        let mut slot = lock(&self.0);
        match *slot {
            Some(running) => Err(running),
            None => {
                *slot = Some(action);
                Ok(Claim(self.0.clone()))
            }
        }
    }
}

/// Held while an action runs (it travels with the order); dropping it frees the plugin, also
/// when the supervisor ends without answering.
pub(in crate::plugins) struct Claim(Arc<Mutex<Option<Action>>>);

impl Drop for Claim {
    fn drop(&mut self) {
        *lock(&self.0) = None;
    }
}

pub(super) struct Supervisor {
    pub link: Arc<HostLink>,
    pub launcher: Launcher,
    pub orders: mpsc::Receiver<Order>,
    pub reaper: Arc<Reaper>,
    /// Cancelled when the host stops or the plugin is removed.
    pub stop: CancellationToken,
    /// Cancelled when the operator will not wait for the stop grace period.
    pub kill: CancellationToken,
}

/// How a generation's task ended: its outcome, and its command queue for the next one.
struct Finished {
    outcome: Outcome,
    commands: mpsc::Receiver<HostMessage>,
}

/// A running generation, driven by its own task so that two can run side by side.
struct GenerationTask {
    info: ProcessInfo,
    voice: Arc<Voice>,
    config: Arc<PluginConfig>,
    /// This generation's own stop and kill (children of the supervisor's).
    stop: CancellationToken,
    kill: CancellationToken,
    finished: Finishing,
}

/// A generation's task, seen from the supervisor: done when the generation has ended.
type Finishing = Pin<Box<dyn Future<Output = Finished> + Send>>;

impl GenerationTask {
    /// Stop it the normal way and wait for it.
    async fn stop(self) -> mpsc::Receiver<HostMessage> {
        self.stop.cancel();
        self.finished.await.commands
    }

    /// Kill it at once (a reload's new process that failed) and wait for it.
    async fn kill(self) {
        self.kill.cancel();
        self.stop().await;
    }
}

/// Where a plugin is between events.
enum Phase {
    Running(GenerationTask),
    /// Just reloaded: `live` serves, the old process waits idle in `standby` until the
    /// rollback window is over, to take over again if `live` crashes meanwhile.
    Watching {
        live: GenerationTask,
        standby: Box<Standby>,
    },
    /// CRASHED: waiting to start again.
    Backoff {
        until: tokio::time::Instant,
        commands: mpsc::Receiver<HostMessage>,
    },
    /// FAILED or STOPPED: waiting for an order.
    Idle {
        commands: mpsc::Receiver<HostMessage>,
    },
}

impl Supervisor {
    pub async fn run(mut self, commands: mpsc::Receiver<HostMessage>) {
        let config = self.link.handle.config();
        let mut phase = self.start(config, commands);
        loop {
            phase = match phase {
                Phase::Running(mut live) => tokio::select! {
                    finished = &mut live.finished => self.after_exit(finished),
                    Some(order) = self.orders.recv() => self.obey_running(live, order).await,
                    () = self.stop.cancelled() => {
                        // The generation's token is a child of ours: it is stopping already.
                        live.finished.await;
                        break;
                    }
                },
                Phase::Watching { mut live, mut standby } => tokio::select! {
                    finished = &mut live.finished => self.after_switch_exit(finished, standby).await,
                    ended = &mut standby.old.finished => {
                        standby.lost(ended, &self.link);
                        Phase::Running(live)
                    }
                    () = tokio::time::sleep_until(standby.until) => {
                        self.retire(standby).await;
                        Phase::Running(live)
                    }
                    Some(order) = self.orders.recv() => {
                        // An order ends the window: it acts on the new process alone.
                        self.retire(standby).await;
                        self.obey_running(live, order).await
                    }
                    () = self.stop.cancelled() => {
                        // Both generations' tokens are children of ours: both are stopping.
                        tokio::join!(live.finished, standby.old.finished);
                        break;
                    }
                },
                Phase::Backoff { until, commands } => match backoff(until, &mut self.orders, &self.stop).await {
                    Backoff::Due => {
                        self.link.publish(|s| s.restart_count += 1);
                        self.start(self.link.handle.config(), commands)
                    }
                    Backoff::Order(order) => self.obey_idle(commands, order).await,
                    Backoff::Stopped => break,
                },
                Phase::Idle { commands } => tokio::select! {
                    Some(order) = self.orders.recv() => self.obey_idle(commands, order).await,
                    () = self.stop.cancelled() => break,
                },
            };
        }
        // FAILED stays visible until the host stops.
        self.link.publish(|s| {
            if s.state != PluginState::Failed {
                s.state = PluginState::Stopped;
            }
            s.process = None;
            s.next_restart_at = None;
            s.activity = None;
        });
    }

    /// Spawn a generation with `config` on its own task; it speaks for the plugin at once
    /// when `current`. Nothing is published.
    fn launch(
        &self,
        config: Arc<PluginConfig>,
        mut commands: mpsc::Receiver<HostMessage>,
        current: bool,
    ) -> Result<GenerationTask, (Exit, mpsc::Receiver<HostMessage>)> {
        let generation = match Generation::spawn(&config, &self.launcher, &self.reaper, current) {
            Ok(generation) => generation,
            Err(error) => return Err((Exit::spawn_failed(&error), commands)),
        };
        let (info, voice) = (generation.info(), generation.voice());
        let (stop, kill) = (self.stop.child_token(), self.kill.child_token());
        let (link, task_stop, task_kill) = (self.link.clone(), stop.clone(), kill.clone());
        let task = tokio::spawn(async move {
            let outcome = generation.run(&link, &mut commands, &task_stop, &task_kill).await;
            Finished { outcome, commands }
        });
        let finished = Box::pin(async move {
            task.await.unwrap_or_else(|e| {
                // The generation's task owned the queue; a new one takes its place.
                let (_, commands) = mpsc::channel(1);
                let reason = ExitReason::SpawnFailed(format!("the task running the process failed: {e}"));
                Finished {
                    outcome: Outcome::Exited(Exit { reason, uptime: Duration::ZERO, stderr_tail: Vec::new() }),
                    commands,
                }
            })
        });
        info!(plugin = self.link.handle.name(), pid = info.pid, "started");
        self.link.timeline.record(notes::started(self.link.handle.name(), info.pid, current));
        Ok(GenerationTask { info, voice, config, stop, kill, finished })
    }

    /// Start a generation that is the plugin's only one.
    fn start(&self, config: Arc<PluginConfig>, commands: mpsc::Receiver<HostMessage>) -> Phase {
        if self.stop.is_cancelled() {
            return Phase::Idle { commands };
        }
        self.link.publish(|s| {
            s.state = PluginState::Starting;
            s.next_restart_at = None;
            s.failure = None;
            s.config = config.clone();
        });
        match self.launch(config, commands, true) {
            Ok(live) => {
                let process = live.info;
                self.link.publish(|s| {
                    s.state = PluginState::Running;
                    s.process = Some(process);
                    s.said_hello = false;
                    s.loaded_at = Some(process.started_at);
                });
                Phase::Running(live)
            }
            Err((exit, commands)) => self.after_exit(Finished { outcome: Outcome::Exited(exit), commands }),
        }
    }

    /// Record how a generation ended; schedule a restart, give up, or stay stopped.
    fn after_exit(&self, finished: Finished) -> Phase {
        let Finished { outcome, commands } = finished;
        let Outcome::Exited(Exit { reason, uptime, stderr_tail }) = outcome else {
            self.link.publish(|s| {
                s.state = PluginState::Stopped;
                s.process = None;
                s.next_restart_at = None;
            });
            return Phase::Idle { commands };
        };
        let policy = self.link.handle.config().restart;
        let name = self.link.handle.name();
        let previous = self.link.handle.status.borrow().restart_attempt;
        let Restart { attempt, give_up, delay } = Restart::after_crash(&policy, previous, uptime);
        if give_up {
            error!(
                plugin = name,
                "{reason} after {:.1}s; giving up after {} consecutive crashes",
                uptime.as_secs_f64(),
                attempt
            );
        } else {
            warn!(
                plugin = name,
                "{reason} after {:.1}s; restart {attempt} in {:.1}s",
                uptime.as_secs_f64(),
                delay.as_secs_f64()
            );
        }
        let after = notes::AfterCrash { attempt, restart_in: (!give_up).then_some(delay) };
        notes::crashed(&self.link.timeline, name, &reason, uptime, &stderr_tail, after);
        let record = CrashRecord { at: SystemTime::now(), reason, uptime, stderr_tail };
        // checked: a policy may ask for a delay longer than an `Instant` can hold.
        let restart_at = if give_up { None } else { Instant::now().checked_add(delay) };
        self.link.publish(|s| {
            log_crash(s, record);
            s.restart_attempt = attempt;
            s.process = None;
            s.state = if give_up { PluginState::Failed } else { PluginState::Crashed };
            s.next_restart_at = restart_at;
        });
        match restart_at {
            Some(at) => Phase::Backoff { until: at.into(), commands },
            // A delay beyond what a clock can hold is never reached: the plugin waits for an order.
            None => Phase::Idle { commands },
        }
    }
}

/// Put a crash in the plugin's crash log and count it.
fn log_crash(status: &mut PluginStatus, record: CrashRecord) {
    let mut log = (*status.crash_log).clone();
    log.push_front(record);
    log.truncate(CRASH_LOG_LEN);
    status.crash_log = Arc::new(log);
    status.crash_count += 1;
}

/// What to do after a crash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Restart {
    /// Consecutive crashes, this one included.
    attempt: u32,
    give_up: bool,
    delay: Duration,
}

impl Restart {
    /// `previous` consecutive crashes came before this one, after which the process had run
    /// for `uptime`; a run of `reset_window` or more starts the count afresh.
    fn after_crash(policy: &RestartPolicy, previous: u32, uptime: Duration) -> Restart {
        let previous = if uptime >= policy.reset_window { 0 } else { previous };
        let attempt = previous.saturating_add(1);
        let give_up = !policy.enabled || attempt > policy.max_attempts;
        Restart { attempt, give_up, delay: if give_up { Duration::ZERO } else { policy.backoff(attempt) } }
    }
}

/// How a CRASHED plugin's wait for its restart ended.
enum Backoff {
    /// The restart is due.
    Due,
    /// The operator asked for something first (a start, a stop…).
    Order(Order),
    /// The host stops or the plugin was removed.
    Stopped,
}

/// Wait until `until` for the restart, unless an order or the stop comes first.
async fn backoff(until: tokio::time::Instant, orders: &mut mpsc::Receiver<Order>, stop: &CancellationToken) -> Backoff {
    tokio::select! {
        () = tokio::time::sleep_until(until) => Backoff::Due,
        Some(order) = orders.recv() => Backoff::Order(order),
        () = stop.cancelled() => Backoff::Stopped,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(max_attempts: u32) -> RestartPolicy {
        RestartPolicy {
            enabled: true,
            max_attempts,
            initial_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(30),
            reset_window: Duration::from_secs(60),
        }
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let delays: Vec<u64> = (1..=8).map(|n| policy(10).backoff(n).as_secs()).collect();
        assert_eq!(delays, [1, 2, 4, 8, 16, 30, 30, 30]);
    }

    #[test]
    fn consecutive_crashes_back_off_then_give_up() {
        let policy = policy(5);
        let short = Duration::from_secs(2);
        let mut previous = 0;
        let mut delays = Vec::new();
        loop {
            let restart = Restart::after_crash(&policy, previous, short);
            assert_eq!(restart.attempt, previous + 1);
            if restart.give_up {
                break;
            }
            delays.push(restart.delay.as_secs());
            previous = restart.attempt;
        }
        assert_eq!(delays, [1, 2, 4, 8, 16], "five restarts, then FAILED on the sixth crash");
        assert_eq!(previous, 5);
    }

    #[test]
    fn a_long_run_resets_the_count() {
        let policy = policy(5);
        let restart = Restart::after_crash(&policy, 5, policy.reset_window);
        assert_eq!(restart, Restart { attempt: 1, give_up: false, delay: Duration::from_secs(1) });
        let restart = Restart::after_crash(&policy, 5, policy.reset_window - Duration::from_millis(1));
        assert!(restart.give_up);
    }

    #[test]
    fn disabled_restarts_give_up_at_once() {
        let policy = RestartPolicy { enabled: false, ..policy(5) };
        assert!(Restart::after_crash(&policy, 0, Duration::from_secs(600)).give_up);
        assert!(Restart::after_crash(&self::policy(0), 0, Duration::ZERO).give_up, "max_attempts 0");
    }

    #[test]
    fn exit_reasons_read_as_words() {
        use crate::plugins::ExitReason;
        assert_eq!(ExitReason::Code(3).to_string(), "exited with code 3");
        assert_eq!(ExitReason::Signal(9).to_string(), "killed by SIGKILL");
        assert_eq!(ExitReason::Signal(9).signal_name().as_deref(), Some("SIGKILL"));
    }

    fn order(busy: &Busy) -> (Order, oneshot::Receiver<ActionReport>) {
        let (reply, answer) = oneshot::channel();
        let claim = busy.claim(Action::Start).expect("the plugin is free");
        (Order { action: Action::Start, config: None, trigger: Trigger::Config, reply, claim }, answer)
    }

    #[tokio::test(start_paused = true)]
    async fn a_crashed_plugin_restarts_when_its_backoff_is_over_not_before() {
        let (_sender, mut orders) = mpsc::channel(1);
        let stop = CancellationToken::new();
        let start = tokio::time::Instant::now();
        let until = start + Duration::from_secs(4);
        let early = tokio::time::timeout(Duration::from_millis(3999), backoff(until, &mut orders, &stop)).await;
        assert!(early.is_err(), "not due before the backoff is over");
        assert!(matches!(backoff(until, &mut orders, &stop).await, Backoff::Due));
        assert_eq!(start.elapsed(), Duration::from_secs(4));
    }

    #[tokio::test(start_paused = true)]
    async fn an_order_or_the_stop_ends_the_backoff_at_once() {
        let (sender, mut orders) = mpsc::channel(1);
        let stop = CancellationToken::new();
        let start = tokio::time::Instant::now();
        let until = start + Duration::from_secs(30);
        let busy = Busy::default();
        let (first, _answer) = order(&busy);
        sender.send(first).await.expect("the receiver is open");
        assert!(matches!(backoff(until, &mut orders, &stop).await, Backoff::Order(o) if o.action == Action::Start));
        stop.cancel();
        assert!(matches!(backoff(until, &mut orders, &stop).await, Backoff::Stopped));
        assert_eq!(start.elapsed(), Duration::ZERO, "neither waited for the restart");
    }
}
