//! The supervisor of one plugin: run one process generation after another ([`process`]),
//! restarting after a crash with backoff, until the host stops it.

mod process;

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use super::protocol::HostMessage;
use super::tree::Reaper;
use super::{CRASH_LOG_LEN, CrashRecord, Launcher, PluginState};
use crate::plugins::spec::RestartPolicy;
pub(super) use process::HostLink;
use process::{Exit, Generation, Outcome};

pub(super) struct Supervisor {
    pub link: HostLink,
    pub launcher: Launcher,
    pub commands: mpsc::Receiver<HostMessage>,
    pub reaper: Arc<Reaper>,
    pub stop: CancellationToken,
    /// Cancelled when the operator will not wait for the stop grace period.
    pub kill: CancellationToken,
}

impl Supervisor {
    pub async fn run(mut self) {
        let policy = self.link.handle.config.restart;
        loop {
            let Outcome::Exited(Exit { reason, uptime, stderr_tail }) = self.run_generation().await else {
                self.link.publish(|s| {
                    s.state = PluginState::Stopped;
                    s.process = None;
                    s.next_restart_at = None;
                });
                return;
            };
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
            let record = CrashRecord { at: SystemTime::now(), reason, uptime, stderr_tail };
            self.link.publish(|s| {
                let mut log = (*s.crash_log).clone();
                log.push_front(record);
                log.truncate(CRASH_LOG_LEN);
                s.crash_log = Arc::new(log);
                s.crash_count += 1;
                s.restart_attempt = attempt;
                s.process = None;
                s.state = if give_up { PluginState::Failed } else { PluginState::Crashed };
                // checked: a policy may ask for a delay longer than an `Instant` can hold.
                s.next_restart_at = if give_up { None } else { Instant::now().checked_add(delay) };
            });
            if give_up {
                // FAILED stays visible until the host stops; nothing more to supervise.
                self.stop.cancelled().await;
                return;
            }
            tokio::select! {
                () = tokio::time::sleep(delay) => {}
                () = self.stop.cancelled() => {
                    self.link.publish(|s| { s.state = PluginState::Stopped; s.next_restart_at = None; });
                    return;
                }
            }
            self.link.publish(|s| s.restart_count += 1);
        }
    }

    /// Start a process and run it to its end.
    async fn run_generation(&mut self) -> Outcome {
        if self.stop.is_cancelled() {
            return Outcome::Stopped;
        }
        self.link.publish(|s| {
            s.state = PluginState::Starting;
            s.next_restart_at = None;
        });
        let generation = match Generation::spawn(&self.link, &self.launcher, &self.reaper) {
            Ok(generation) => generation,
            Err(error) => return Outcome::Exited(Exit::spawn_failed(&error)),
        };
        let process = generation.info();
        info!(plugin = self.link.handle.name(), pid = process.pid, "started");
        self.link.publish(|s| {
            s.state = PluginState::Running;
            s.process = Some(process);
            s.said_hello = false;
            s.loaded_at = Some(process.started_at);
        });
        generation.run(&self.link, &mut self.commands, &self.stop, &self.kill).await
    }
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
}
