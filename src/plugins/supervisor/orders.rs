//! The operator's orders to one plugin's supervisor: blue-green reload, restart, stop, start.
//!
//! A reload starts a new generation beside the running one. The new one is ready when it says
//! hello (within `reload_timeout`), or, for a plugin that never speaks the protocol, when it is
//! still alive after [`READY_WITHOUT_HELLO`]. Then the plugin's command queue is swapped in one
//! step: every command from that instant goes to the new process; the old one's queue closes,
//! it answers what it already received and is stopped (see [`process`](super::process)). If
//! the new one exits or is not ready in time, it is killed and the old one never noticed.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::process::{Greeting, Outcome};
use super::{Finishing, GenerationTask, Order, Phase, Supervisor};
use crate::plugins::action::{Action, ActionOutcome, ActionReport, ReloadRecord};
use crate::plugins::protocol::HostMessage;
use crate::plugins::spec::PluginConfig;
use crate::plugins::{COMMAND_QUEUE, ExitReason, PluginState, RELOAD_LOG_LEN};

/// A plugin that has never said hello is ready when its new process is still alive after this.
pub const READY_WITHOUT_HELLO: Duration = Duration::from_secs(2);
/// Stderr lines quoted in the reason of a failed start.
const REASON_STDERR_LINES: usize = 5;

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
                self.reload(live, config).await
            }
        };
        self.answer(order, started, Done { outcome, from_version, reason });
        phase
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
                s.reloads.count(record.outcome, record.duration);
                let mut log = (*s.reload_log).clone();
                log.push_front(record);
                log.truncate(RELOAD_LOG_LEN);
                s.reload_log = Arc::new(log);
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
        if let Err(reason) = self.ready(&mut new, timeout).await {
            warn!(plugin = name, pid = new.info.pid, "reload rolled back: {reason}");
            new.kill().await;
            return (Phase::Running(old), ActionOutcome::RolledBack, Some(reason.to_string()));
        }

        // The switch. The new process speaks for the plugin before the queue moves, so a hello
        // it sends meanwhile is published either by its reader or by the lines below.
        new.voice.set_current(true);
        old.voice.set_current(false);
        drop(self.link.handle.route_to(queue));
        let greeting = new.voice.hello.borrow().clone();
        let (process, old_pid) = (new.info, old.info.pid);
        self.link.publish(|s| {
            s.state = PluginState::Running;
            s.process = Some(process);
            s.loaded_at = Some(process.started_at);
            s.config = config;
            s.said_hello = greeting.is_some();
            s.reported_version = greeting.as_ref().and_then(|g| g.version.clone());
            s.announced_commands = greeting.map_or_else(|| Arc::from([]), |g| g.commands);
            s.activity = Some(format!("draining old pid {old_pid}"));
        });
        info!(plugin = name, pid = process.pid, old_pid, "switched to the new process; draining the old one");
        // The old generation sees its queue close, answers what it has, and stops.
        let _ = old.finished.await;
        (Phase::Running(new), ActionOutcome::Reloaded, None)
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
        ended = &mut *finished => {
            let reason = match &ended.outcome {
                Outcome::Exited(exit) => {
                    let tail = &exit.stderr_tail[exit.stderr_tail.len().saturating_sub(REASON_STDERR_LINES)..];
                    NotReady::Exited { reason: exit.reason.clone(), waited_for, stderr: StderrQuote(tail.to_vec()) }
                }
                Outcome::Stopped => NotReady::Stopped { waited_for },
            };
            *finished = Box::pin(std::future::ready(ended));
            Err(reason)
        }
        () = shutdown.cancelled() => Err(NotReady::ShuttingDown),
    }
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
}

/// What a new process had to do before it counts as ready.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum WaitedFor {
    /// A plugin that has said hello before must say it again.
    Hello,
    /// One that never did must stay alive for [`READY_WITHOUT_HELLO`].
    FirstSeconds,
}

impl fmt::Display for WaitedFor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            WaitedFor::Hello => "hello",
            WaitedFor::FirstSeconds => "the first seconds",
        })
    }
}

/// The last stderr lines of a process that died before it was ready: `; stderr: a | b`, or
/// nothing when it wrote none.
#[derive(Debug, Clone, PartialEq, Eq)]
struct StderrQuote(Vec<String>);

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
