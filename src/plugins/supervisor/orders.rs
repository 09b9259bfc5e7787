//! The operator's orders to one plugin's supervisor: blue-green reload, restart, stop, start.
//!
//! A reload starts a new generation beside the running one. The new one is ready when it says
//! hello (within `reload_timeout`), or, for a plugin that never speaks the protocol, when it is
//! still alive after [`READY_WITHOUT_HELLO`]. Then the plugin's command queue is swapped in one
//! step: every command from that instant goes to the new process; the old one's queue closes,
//! it answers what it already received and is stopped (see [`process`](super::process)). If
//! the new one exits or is not ready in time, it is killed and the old one never noticed.
//!
//! With a `probe`, the new process is ready only once it has also answered the probe's command
//! as expected, within the probe's timeout; the probe is the host's own command (no user, no
//! event, no response time).
//!
//! With a `rollback_window`, the old process's queue is not closed at the switch: the old
//! process stays, idle, as a [`Standby`]. If the new one ends within the window, commands go
//! back to the old one at once (those the new one had received get the host's answer, those
//! still queued for it move to the old one) and the reload log says why. The new process's
//! end is a crash in the crash log, but not a restart attempt: the plugin never stopped
//! serving. When the window is over, or an order comes, the old process is stopped as
//! without a window.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::process::{Exit, Greeting, HostLink, Outcome};
use super::{Finished, Finishing, GenerationTask, Order, Phase, Supervisor, log_crash};
use crate::plugins::action::{Action, ActionOutcome, ActionReport, ReloadRecord, Trigger};
use crate::plugins::command_table::HOST_NAME;
use crate::plugins::protocol::HostMessage;
use crate::plugins::spec::{PluginConfig, Probe};
use crate::plugins::{COMMAND_QUEUE, CrashRecord, ExitReason, PluginState, PluginStatus, ProcessInfo, RELOAD_LOG_LEN};

/// A plugin that has never said hello is ready when its new process is still alive after this.
pub const READY_WITHOUT_HELLO: Duration = Duration::from_secs(2);
/// Stderr lines quoted in the reason of a failed start.
const REASON_STDERR_LINES: usize = 5;
/// Characters of a wrong probe reply quoted in the reason.
const REASON_REPLY_CHARS: usize = 200;

/// How an order went, before it becomes a report.
struct Done {
    outcome: ActionOutcome,
    from_version: Option<String>,
    reason: Option<String>,
}

impl Supervisor {
    /// Carry out `order` while a generation runs.
    pub(super) async fn obey_running(&mut self, live: GenerationTask, order: Order) -> Phase {
        let started = Instant::now();
        let from_version = Some(self.link.handle.status.borrow().version());
        let (phase, outcome, reason) = match order.action {
            Action::Stop => (self.stop_live(live).await, ActionOutcome::Done, None),
            Action::Start => (Phase::Running(live), ActionOutcome::Done, Some("already running".to_owned())),
            Action::Restart => {
                self.publish_activity(Some(format!("restarting: stopping pid {}", live.info.pid)));
                let config = live.config.clone();
                let commands = live.stop().await;
                self.start_ready(config, commands).await
            }
            Action::Reload => {
                let config = order.config.clone().unwrap_or_else(|| live.config.clone());
                self.reload(live, config, &order.trigger).await
            }
        };
        self.answer(order, started, Done { outcome, from_version, reason });
        phase
    }

    /// The new process of a reload ended within the rollback window: go back to the old one.
    pub(super) async fn after_switch_exit(&self, finished: Finished, standby: Box<Standby>) -> Phase {
        let Finished { outcome, commands: mut leftovers } = finished;
        let Outcome::Exited(exit) = outcome else {
            // Only the host stops a process: the bot is stopping, the old one with it.
            self.retire(standby).await;
            return self.after_exit(Finished { outcome: Outcome::Stopped, commands: leftovers });
        };
        let Standby { old, queue, switched, trigger, old_version, .. } = *standby;
        let (name, failed_version) = (self.link.handle.name(), self.link.handle.status.borrow().version());
        // The old process speaks for the plugin again and gets every command from now on.
        old.voice.set_current(true);
        drop(self.link.handle.route_to(queue.clone()));
        // What was queued for the new process and never written to it goes to the old one.
        leftovers.close();
        while let Some(command) = leftovers.recv().await {
            if queue.send(command).await.is_err() {
                break;
            }
        }
        drop(queue);
        let reason = CrashedAfterSwitch {
            version: failed_version.clone(),
            after: switched.elapsed(),
            reason: exit.reason.clone(),
            stderr: StderrQuote::tail(&exit),
        }
        .to_string();
        warn!(plugin = name, pid = old.info.pid, "reload rolled back: {reason}; the old process serves again");
        let Exit { reason: exit_reason, uptime, stderr_tail } = exit;
        let crash = CrashRecord { at: SystemTime::now(), reason: exit_reason, uptime, stderr_tail };
        let record = ReloadRecord {
            at: SystemTime::now(),
            trigger,
            from_version: Some(failed_version),
            to_version: Some(old_version),
            duration: switched.elapsed(),
            outcome: ActionOutcome::RolledBack,
            reason: Some(reason),
        };
        // On the timeline as the reload's second outcome, as the reload log has it.
        let report = ActionReport {
            plugin: name.to_owned(),
            action: Action::Reload,
            outcome: ActionOutcome::RolledBack,
            from_version: record.from_version.clone(),
            to_version: record.to_version.clone(),
            duration: record.duration,
            reason: record.reason.clone(),
        };
        self.link.timeline.record(crate::timeline::notes::action(&report, &record.trigger));
        let greeting = old.voice.hello.borrow().clone();
        let (process, config) = (old.info, old.config.clone());
        self.link.publish(|s| {
            // A crash to see, not a restart attempt: the plugin kept serving.
            log_crash(s, crash);
            served_by(s, process, config, greeting);
            s.next_restart_at = None;
            push_reload(s, record);
        });
        Phase::Running(old)
    }

    /// The rollback window is over (or an order came): stop the old process as a reload
    /// without a window would have at the switch.
    pub(super) async fn retire(&self, standby: Box<Standby>) {
        let Standby { old, queue, .. } = *standby;
        info!(plugin = self.link.handle.name(), pid = old.info.pid, "rollback window over; stopping the old process");
        // Its queue closes: it answers what it still owes, then is stopped.
        drop(queue);
        let _ = old.finished.await;
    }

    /// Carry out `order` while no process runs (CRASHED, FAILED or STOPPED).
    pub(super) async fn obey_idle(&mut self, commands: mpsc::Receiver<HostMessage>, order: Order) -> Phase {
        let started = Instant::now();
        let from_version = Some(self.link.handle.status.borrow().version());
        let (phase, outcome, reason) = match order.action {
            Action::Stop => {
                self.link.publish(|s| {
                    if s.state != PluginState::Failed {
                        s.state = PluginState::Stopped;
                    }
                    s.next_restart_at = None;
                });
                (Phase::Idle { commands }, ActionOutcome::Done, None)
            }
            // A fresh start: earlier crashes no longer count towards giving up.
            Action::Start | Action::Restart | Action::Reload => {
                self.link.publish(|s| s.restart_attempt = 0);
                let config = order.config.clone().unwrap_or_else(|| self.link.handle.config());
                let (phase, outcome, reason) = self.start_ready(config, commands).await;
                let outcome = match (order.action, outcome) {
                    (Action::Reload, ActionOutcome::Done) => ActionOutcome::Reloaded,
                    (_, outcome) => outcome,
                };
                (phase, outcome, reason)
            }
        };
        self.answer(order, started, Done { outcome, from_version, reason });
        phase
    }

    /// Report to whoever asked; a reload also goes into the plugin's reload log.
    fn answer(&self, order: Order, started: Instant, done: Done) {
        let duration = started.elapsed();
        let to_version = match done.outcome {
            ActionOutcome::RolledBack | ActionOutcome::Failed => None,
            ActionOutcome::Done | ActionOutcome::Reloaded => Some(self.link.handle.status.borrow().version()),
        };
        let report = ActionReport {
            plugin: self.link.handle.name().to_owned(),
            action: order.action,
            outcome: done.outcome,
            from_version: done.from_version,
            to_version,
            duration,
            reason: done.reason,
        };
        self.link.timeline.record(crate::timeline::notes::action(&report, &order.trigger));
        let record = (order.action == Action::Reload).then(|| ReloadRecord {
            at: SystemTime::now(),
            trigger: order.trigger,
            from_version: report.from_version.clone(),
            to_version: report.to_version.clone(),
            duration,
            outcome: report.outcome,
            reason: report.reason.clone(),
        });
        self.link.publish(|s| {
            s.activity = None;
            if let Some(record) = record {
                push_reload(s, record);
            }
        });
        // Free the plugin before answering, so the caller may act again at once.
        drop(order.claim);
        let _ = order.reply.send(report);
    }

    fn publish_activity(&self, activity: Option<String>) {
        self.link.publish(|s| s.activity = activity);
    }

    async fn stop_live(&self, live: GenerationTask) -> Phase {
        self.publish_activity(Some(format!("stopping pid {}", live.info.pid)));
        let commands = live.stop().await;
        self.link.publish(|s| {
            s.state = PluginState::Stopped;
            s.process = None;
            s.next_restart_at = None;
        });
        Phase::Idle { commands }
    }

    /// Start the plugin's only generation and wait until it is ready.
    async fn start_ready(
        &self,
        config: Arc<PluginConfig>,
        commands: mpsc::Receiver<HostMessage>,
    ) -> (Phase, ActionOutcome, Option<String>) {
        self.publish_activity(Some("starting…".to_owned()));
        let timeout = config.reload.ready_timeout;
        match self.start(config, commands) {
            Phase::Running(mut live) => match self.ready(&mut live, timeout).await {
                // A process that exited is picked up by the main loop as a crash.
                Err(reason) => (Phase::Running(live), ActionOutcome::Failed, Some(reason.to_string())),
                Ok(()) => (Phase::Running(live), ActionOutcome::Done, None),
            },
            phase => {
                let reason = self.link.handle.status.borrow().last_crash().map(|c| c.reason.to_string());
                (phase, ActionOutcome::Failed, reason)
            }
        }
    }

    /// Blue-green: a new generation with `config` beside `old`, switch when it is ready, then
    /// drain `old`; or roll back.
    async fn reload(
        &mut self,
        old: GenerationTask,
        config: Arc<PluginConfig>,
        trigger: &Trigger,
    ) -> (Phase, ActionOutcome, Option<String>) {
        let name = self.link.handle.name().to_owned();
        self.publish_activity(Some("reloading…".to_owned()));
        let (queue, commands) = mpsc::channel(COMMAND_QUEUE);
        let timeout = config.reload.ready_timeout;
        let mut new = match self.launch(config.clone(), commands, false) {
            Ok(new) => new,
            Err((exit, _)) => {
                warn!(plugin = name, "reload rolled back: {}", exit.reason);
                return (Phase::Running(old), ActionOutcome::RolledBack, Some(exit.reason.to_string()));
            }
        };
        self.publish_activity(Some(format!(
            "reloading: new pid {} starting beside pid {}",
            new.info.pid, old.info.pid
        )));
        let mut ready = self.ready(&mut new, timeout).await;
        if let (Ok(()), Some(probe)) = (&ready, &config.reload.probe) {
            self.publish_activity(Some(format!("reloading: probing new pid {} with {probe}", new.info.pid)));
            ready = self.probe(&mut new, &queue, probe).await;
        }
        if let Err(reason) = ready {
            warn!(plugin = name, pid = new.info.pid, "reload rolled back: {reason}");
            new.kill().await;
            return (Phase::Running(old), ActionOutcome::RolledBack, Some(reason.to_string()));
        }

        // The switch. The new process speaks for the plugin before the queue moves, so a hello
        // it sends meanwhile is published either by its reader or by the lines below.
        new.voice.set_current(true);
        old.voice.set_current(false);
        let old_queue = self.link.handle.route_to(queue);
        let old_version = self.link.handle.status.borrow().version();
        let window = config.reload.rollback_window;
        let greeting = new.voice.hello.borrow().clone();
        let (process, old_pid) = (new.info, old.info.pid);
        self.link.publish(|s| {
            served_by(s, process, config, greeting);
            s.activity = window.is_zero().then(|| format!("draining old pid {old_pid}"));
        });
        if !window.is_zero() {
            info!(
                plugin = name,
                pid = process.pid,
                old_pid,
                "switched to the new process; the old one is kept idle for {} s in case the new one crashes",
                window.as_secs_f64()
            );
            let switched = tokio::time::Instant::now();
            let standby = Box::new(Standby {
                old,
                queue: old_queue,
                switched,
                until: switched + window,
                trigger: trigger.clone(),
                old_version,
            });
            return (Phase::Watching { live: new, standby }, ActionOutcome::Reloaded, None);
        }
        info!(plugin = name, pid = process.pid, old_pid, "switched to the new process; draining the old one");
        // The old generation sees its queue close, answers what it has, and stops.
        drop(old_queue);
        let _ = old.finished.await;
        (Phase::Running(new), ActionOutcome::Reloaded, None)
    }

    /// Send `probe` to the new process `live` (through its own `queue`, before the switch) and
    /// wait for its reply (see [`wait_probe`]).
    async fn probe(
        &self,
        live: &mut GenerationTask,
        queue: &mpsc::Sender<HostMessage>,
        probe: &Probe,
    ) -> Result<(), NotReady> {
        let (id, reply) = self.link.handle.ledger.probe();
        let command = HostMessage::Command {
            id,
            command: probe.command.clone(),
            args: probe.args.clone(),
            user: HOST_NAME.to_owned(),
        };
        // The queue is new and empty; if its process has ended, `wait_probe` sees that.
        let _ = queue.try_send(command);
        wait_probe(reply, &mut live.finished, probe, &self.stop).await
    }

    /// Wait until `live` is ready (see [`wait_ready`]).
    async fn ready(&self, live: &mut GenerationTask, timeout: Duration) -> Result<(), NotReady> {
        wait_ready(&live.voice.hello, &mut live.finished, timeout, self.link.speaks_protocol(), &self.stop).await
    }
}

/// Wait until a new process is ready: it says `hello` within `timeout` or, if this plugin has
/// never said hello (`speaks_protocol` false), it is still alive after [`READY_WITHOUT_HELLO`].
/// Err says why not; an ending seen meanwhile is put back into `finished` for whoever handles
/// it next (the main loop: a crash).
async fn wait_ready(
    hello: &watch::Sender<Option<Greeting>>,
    finished: &mut Finishing,
    timeout: Duration,
    speaks_protocol: bool,
    shutdown: &CancellationToken,
) -> Result<(), NotReady> {
    let mut hello = hello.subscribe();
    let quiet = READY_WITHOUT_HELLO.min(timeout);
    let waited_for = if speaks_protocol { WaitedFor::Hello } else { WaitedFor::FirstSeconds };
    tokio::select! {
        _ = hello.wait_for(Option::is_some) => Ok(()),
        () = tokio::time::sleep(quiet), if !speaks_protocol => Ok(()),
        () = tokio::time::sleep(timeout) => Err(NotReady::NoHello { timeout }),
        ended = &mut *finished => Err(ended_before(ended, waited_for, finished)),
        () = shutdown.cancelled() => Err(NotReady::ShuttingDown),
    }
}

/// Wait for the reply to a probe: ready when it contains what the probe expects, within its
/// timeout. Err says why not; an ending seen meanwhile is put back as in [`wait_ready`].
async fn wait_probe(
    reply: oneshot::Receiver<String>,
    finished: &mut Finishing,
    probe: &Probe,
    shutdown: &CancellationToken,
) -> Result<(), NotReady> {
    let unanswered = || NotReady::ProbeUnanswered { probe: probe.to_string(), timeout: probe.timeout };
    tokio::select! {
        reply = reply => match reply {
            Ok(text) if probe.accepts(&text) => Ok(()),
            Ok(text) => Err(NotReady::ProbeAnswered {
                probe: probe.to_string(),
                reply: text.chars().take(REASON_REPLY_CHARS).collect(),
                expected: probe.expect.clone(),
            }),
            // The ledger let go of it: no reply will come.
            Err(_) => Err(unanswered()),
        },
        () = tokio::time::sleep(probe.timeout) => Err(unanswered()),
        ended = &mut *finished => Err(ended_before(ended, WaitedFor::Probe, finished)),
        () = shutdown.cancelled() => Err(NotReady::ShuttingDown),
    }
}

/// Why a process that ended while it was waited for is not ready; its ending is put back
/// into `finished` for whoever handles it next.
fn ended_before(ended: Finished, waited_for: WaitedFor, finished: &mut Finishing) -> NotReady {
    let reason = match &ended.outcome {
        Outcome::Exited(exit) => {
            NotReady::Exited { reason: exit.reason.clone(), waited_for, stderr: StderrQuote::tail(exit) }
        }
        Outcome::Stopped => NotReady::Stopped { waited_for },
    };
    *finished = Box::pin(std::future::ready(ended));
    reason
}

/// Push a finished reload into the plugin's reload log and count it: the one place a reload
/// is recorded, whether it ended at the switch or was rolled back after it.
/// The plugin is RUNNING as `process`, started with `config`, as its `greeting` said (a
/// reload's switch to the new process, or a rollback to the old one).
fn served_by(status: &mut PluginStatus, process: ProcessInfo, config: Arc<PluginConfig>, greeting: Option<Greeting>) {
    status.state = PluginState::Running;
    status.process = Some(process);
    status.loaded_at = Some(process.started_at);
    status.config = config;
    status.said_hello = greeting.is_some();
    status.reported_version = greeting.as_ref().and_then(|g| g.version.clone());
    status.announced_commands = greeting.map_or_else(|| Arc::from([]), |g| g.commands);
}

fn push_reload(status: &mut PluginStatus, record: ReloadRecord) {
    status.reloads.count(record.outcome, record.duration);
    let mut log = (*status.reload_log).clone();
    log.push_front(record);
    log.truncate(RELOAD_LOG_LEN);
    status.reload_log = Arc::new(log);
}

/// The old process of a reload, kept idle after the switch for the rollback window.
pub(super) struct Standby {
    pub old: GenerationTask,
    /// Its command queue, held open so that it waits for commands instead of draining and
    /// stopping; routed to again on a rollback, dropped to retire it.
    queue: mpsc::Sender<HostMessage>,
    switched: tokio::time::Instant,
    /// The end of the window.
    pub until: tokio::time::Instant,
    /// Who asked for the reload, for the reload log.
    trigger: Trigger,
    /// The version it runs, to show again on a rollback.
    old_version: String,
}

impl Standby {
    /// The old process ended during the window (it crashed, or the bot is stopping): there is
    /// nothing left to go back to.
    pub(super) fn lost(self, ended: Finished, link: &HostLink) {
        if let Outcome::Exited(exit) = ended.outcome {
            warn!(
                plugin = link.handle.name(),
                pid = self.old.info.pid,
                "the old process, kept in case the reload had to be rolled back, {}; no rollback is possible now",
                exit.reason
            );
        }
    }
}

/// Why a reload was rolled back after the switch, as the reload log and the log say it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("version {version} crashed {:.1} s after the switch ({reason}){stderr}", .after.as_secs_f64())]
struct CrashedAfterSwitch {
    version: String,
    after: Duration,
    reason: ExitReason,
    stderr: StderrQuote,
}

/// Why a new process was not ready: the reason of a failed start or a rolled-back reload, as
/// the operator reads it in the action's answer and the reload log.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
enum NotReady {
    #[error("no hello within {}s", .timeout.as_secs_f64())]
    NoHello { timeout: Duration },
    #[error("{reason} before {waited_for}{stderr}")]
    Exited { reason: ExitReason, waited_for: WaitedFor, stderr: StderrQuote },
    #[error("stopped before {waited_for}")]
    Stopped { waited_for: WaitedFor },
    #[error("the bot is shutting down")]
    ShuttingDown,
    #[error("probe {probe} answered {reply:?}, expected {expected:?}")]
    ProbeAnswered { probe: String, reply: String, expected: String },
    #[error("probe {probe} not answered within {} s", .timeout.as_secs_f64())]
    ProbeUnanswered { probe: String, timeout: Duration },
}

/// What a new process had to do before it counts as ready.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum WaitedFor {
    /// A plugin that has said hello before must say it again.
    Hello,
    /// One that never did must stay alive for [`READY_WITHOUT_HELLO`].
    FirstSeconds,
    /// Then it must answer the reload's probe.
    Probe,
}

impl fmt::Display for WaitedFor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            WaitedFor::Hello => "hello",
            WaitedFor::FirstSeconds => "the first seconds",
            WaitedFor::Probe => "answering the probe",
        })
    }
}

/// The last stderr lines of a process that died before it was ready: `; stderr: a | b`, or
/// nothing when it wrote none.
#[derive(Debug, Clone, PartialEq, Eq)]
struct StderrQuote(Vec<String>);

impl StderrQuote {
    /// The last [`REASON_STDERR_LINES`] lines `exit` left.
    fn tail(exit: &Exit) -> StderrQuote {
        StderrQuote(exit.stderr_tail[exit.stderr_tail.len().saturating_sub(REASON_STDERR_LINES)..].to_vec())
    }
}

impl fmt::Display for StderrQuote {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return Ok(());
        }
        write!(f, "; stderr: {}", self.0.join(" | "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugins::supervisor::Finished;
    use crate::plugins::supervisor::process::Exit;

    #[test]
    fn not_ready_reasons_read_as_before() {
        assert_eq!(NotReady::NoHello { timeout: Duration::from_millis(1500) }.to_string(), "no hello within 1.5s");
        let exited = |stderr: &[&str]| NotReady::Exited {
            reason: ExitReason::Code(3),
            waited_for: WaitedFor::Hello,
            stderr: StderrQuote(stderr.iter().map(|l| (*l).to_owned()).collect()),
        };
        assert_eq!(exited(&[]).to_string(), "exited with code 3 before hello");
        assert_eq!(exited(&["boom", "bye"]).to_string(), "exited with code 3 before hello; stderr: boom | bye");
        let stopped = NotReady::Stopped { waited_for: WaitedFor::FirstSeconds };
        assert_eq!(stopped.to_string(), "stopped before the first seconds");
    }

    fn greeting() -> Option<Greeting> {
        Some(Greeting { version: None, commands: Arc::from([]) })
    }

    fn never_ends() -> Finishing {
        Box::pin(std::future::pending())
    }

    fn ends_after(after: Duration, outcome: Outcome) -> Finishing {
        Box::pin(async move {
            tokio::time::sleep(after).await;
            let (_, commands) = mpsc::channel(1);
            Finished { outcome, commands }
        })
    }

    const TIMEOUT: Duration = Duration::from_secs(10);

    #[tokio::test(start_paused = true)]
    async fn a_process_that_never_says_hello_is_given_up_on_at_the_timeout() {
        let (hello, start) = (watch::Sender::new(None), tokio::time::Instant::now());
        let ready = wait_ready(&hello, &mut never_ends(), TIMEOUT, true, &CancellationToken::new()).await;
        assert_eq!(ready, Err(NotReady::NoHello { timeout: TIMEOUT }));
        assert_eq!(start.elapsed(), TIMEOUT, "not a moment before");
    }

    #[tokio::test(start_paused = true)]
    async fn a_hello_makes_it_ready_at_once() {
        let (hello, start) = (Arc::new(watch::Sender::new(None)), tokio::time::Instant::now());
        let speaker = hello.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(3)).await;
            speaker.send_replace(greeting());
        });
        assert_eq!(wait_ready(&hello, &mut never_ends(), TIMEOUT, true, &CancellationToken::new()).await, Ok(()));
        assert_eq!(start.elapsed(), Duration::from_secs(3));
    }

    #[tokio::test(start_paused = true)]
    async fn a_plugin_that_never_spoke_the_protocol_is_ready_when_it_stays_alive() {
        let (hello, start) = (watch::Sender::new(None), tokio::time::Instant::now());
        assert_eq!(wait_ready(&hello, &mut never_ends(), TIMEOUT, false, &CancellationToken::new()).await, Ok(()));
        assert_eq!(start.elapsed(), READY_WITHOUT_HELLO);
    }

    #[tokio::test(start_paused = true)]
    async fn an_exit_before_hello_is_the_reason_and_stays_for_the_main_loop() {
        let exit = Exit { reason: ExitReason::Code(3), uptime: Duration::ZERO, stderr_tail: vec!["boom".into()] };
        let mut finished = ends_after(Duration::from_millis(500), Outcome::Exited(exit));
        let hello = watch::Sender::new(None);
        let ready = wait_ready(&hello, &mut finished, TIMEOUT, true, &CancellationToken::new()).await;
        let reason = ready.expect_err("it exited");
        assert_eq!(reason.to_string(), "exited with code 3 before hello; stderr: boom");
        let again = tokio::time::timeout(Duration::ZERO, finished).await.expect("the ending was put back");
        assert!(matches!(again.outcome, Outcome::Exited(Exit { reason: ExitReason::Code(3), .. })));
    }

    fn probe(expect: &str) -> Probe {
        Probe { command: "roll".into(), args: "1d1".into(), expect: expect.into(), timeout: TIMEOUT }
    }

    /// A probe's reply sent after `after`.
    fn reply_after(after: Duration, text: &str) -> oneshot::Receiver<String> {
        let (reply, answer) = oneshot::channel();
        let text = text.to_owned();
        tokio::spawn(async move {
            tokio::time::sleep(after).await;
            let _ = reply.send(text);
        });
        answer
    }

    #[tokio::test(start_paused = true)]
    async fn a_probe_passes_on_the_reply_it_expects_and_names_a_wrong_one() {
        let shutdown = CancellationToken::new();
        let right = reply_after(Duration::from_secs(1), "🎲 1d1: [1] = 1");
        assert_eq!(wait_probe(right, &mut never_ends(), &probe("= 1"), &shutdown).await, Ok(()));
        let wrong = reply_after(Duration::from_secs(1), "no \"dice\" today");
        let reason = wait_probe(wrong, &mut never_ends(), &probe("= 1"), &shutdown).await.expect_err("wrong reply");
        assert_eq!(reason.to_string(), r#"probe !roll 1d1 answered "no \"dice\" today", expected "= 1""#);
    }

    #[tokio::test(start_paused = true)]
    async fn a_slow_probe_fails_at_its_timeout() {
        let start = tokio::time::Instant::now();
        let slow = reply_after(TIMEOUT + Duration::from_secs(1), "= 1");
        let reason = wait_probe(slow, &mut never_ends(), &probe("= 1"), &CancellationToken::new()).await;
        assert_eq!(reason.expect_err("too slow").to_string(), "probe !roll 1d1 not answered within 10 s");
        assert_eq!(start.elapsed(), TIMEOUT);
    }

    #[tokio::test(start_paused = true)]
    async fn a_process_that_dies_on_its_probe_is_named_with_its_stderr() {
        let exit = Exit { reason: ExitReason::Code(1), uptime: Duration::ZERO, stderr_tail: vec!["Traceback".into()] };
        let mut finished = ends_after(Duration::from_millis(100), Outcome::Exited(exit));
        let (_reply, answer) = oneshot::channel();
        let reason = wait_probe(answer, &mut finished, &probe(""), &CancellationToken::new()).await;
        let reason = reason.expect_err("it died").to_string();
        assert_eq!(reason, "exited with code 1 before answering the probe; stderr: Traceback");
    }

    #[test]
    fn a_rollback_after_the_switch_says_when_and_why() {
        let reason = CrashedAfterSwitch {
            version: "2".into(),
            after: Duration::from_millis(3240),
            reason: ExitReason::Code(4),
            stderr: StderrQuote(vec!["boom".into()]),
        };
        assert_eq!(reason.to_string(), "version 2 crashed 3.2 s after the switch (exited with code 4); stderr: boom");
    }

    #[tokio::test(start_paused = true)]
    async fn shutting_down_ends_the_wait() {
        let shutdown = CancellationToken::new();
        let canceller = shutdown.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(1)).await;
            canceller.cancel();
        });
        let hello = watch::Sender::new(None);
        assert_eq!(wait_ready(&hello, &mut never_ends(), TIMEOUT, true, &shutdown).await, Err(NotReady::ShuttingDown));
    }
}
