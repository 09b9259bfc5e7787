//! Plugins: each one a supervised OS child process, its observable status and its counters.
//!
//! [`PluginHost::start`] spawns one supervisor task per configured plugin
//! ([`supervisor`]). A supervisor owns its child processes: it starts one, feeds it commands,
//! reads its replies and stderr, notices when it dies and restarts it with backoff, and carries
//! out the operator's actions (reload beside the old process, restart, stop, start). Everything
//! other components may look at is published through a [`PluginHandle`]: the current
//! [`PluginStatus`] (a `watch` channel, so a crash is visible at once) and lock-free counters.
//! The set of plugins can change while the bot runs (a config reload): readers follow the
//! host's [`PluginList`] registry. The host adopts whatever its plugins leave behind ([`tree`])
//! and kills it when they stop.

pub mod action;
pub mod builtin;
pub mod command_table;
mod host;
pub mod ledger;
pub mod lines;
pub mod output_log;
pub mod protocol;
pub mod spec;
mod supervisor;
pub mod timing;
pub mod tree;

use std::collections::VecDeque;
use std::fmt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use serde::Serialize;
use tokio::sync::{mpsc, watch};

use crate::sync::lock;

use action::{ReloadCounts, ReloadRecord};
pub use host::{PluginHost, PluginList};
use protocol::HostMessage;
use spec::{PluginConfig, PluginName};

/// The capacity of a plugin's command queue: its [`ledger::COMMAND_SLOTS`] bound what the queue
/// holds, except for commands the host answered while they were still queued.
pub const COMMAND_QUEUE: usize = 2 * ledger::COMMAND_SLOTS;
/// How many unexpected exits each plugin remembers.
pub const CRASH_LOG_LEN: usize = 10;
/// How many finished reloads each plugin remembers.
pub const RELOAD_LOG_LEN: usize = 20;

/// Lifecycle state of a plugin, as shown everywhere (JSON, Prometheus, page).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum PluginState {
    Starting,
    Running,
    /// Exited unexpectedly; a restart is pending.
    Crashed,
    /// Gave up after too many consecutive crashes (or restarts are disabled).
    Failed,
    /// Stopped by the host.
    Stopped,
}

impl PluginState {
    pub const ALL: [PluginState; 5] =
        [PluginState::Starting, PluginState::Running, PluginState::Crashed, PluginState::Failed, PluginState::Stopped];

    pub fn as_str(self) -> &'static str {
        match self {
            PluginState::Starting => "STARTING",
            PluginState::Running => "RUNNING",
            PluginState::Crashed => "CRASHED",
            PluginState::Failed => "FAILED",
            PluginState::Stopped => "STOPPED",
        }
    }

    /// STARTING or RUNNING: a process exists, or is being started, to take commands.
    pub fn has_process(self) -> bool {
        matches!(self, PluginState::Starting | PluginState::Running)
    }

    /// CRASHED or FAILED: down against the operator's wishes (a STOPPED plugin was asked to be).
    pub fn is_down(self) -> bool {
        matches!(self, PluginState::Crashed | PluginState::Failed)
    }

    /// STOPPED or FAILED: what `start` starts (a CRASHED plugin's restart is already pending).
    pub fn startable(self) -> bool {
        matches!(self, PluginState::Stopped | PluginState::Failed)
    }

    /// Worst first, for sorting by state: FAILED, CRASHED, STARTING, STOPPED, RUNNING.
    pub fn rank(self) -> u8 {
        match self {
            PluginState::Failed => 0,
            PluginState::Crashed => 1,
            PluginState::Starting => 2,
            PluginState::Stopped => 3,
            PluginState::Running => 4,
        }
    }
}

impl fmt::Display for PluginState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a plugin process ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExitReason {
    Code(i32),
    Signal(i32),
    /// The program could not be started at all.
    SpawnFailed(String),
}

impl ExitReason {
    pub fn code(&self) -> Option<i32> {
        match self {
            ExitReason::Code(c) => Some(*c),
            _ => None,
        }
    }

    /// The signal's conventional name, e.g. `SIGKILL`.
    pub fn signal_name(&self) -> Option<String> {
        match self {
            ExitReason::Signal(n) => Some(signal_name(*n)),
            _ => None,
        }
    }
}

impl fmt::Display for ExitReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExitReason::Code(c) => write!(f, "exited with code {c}"),
            ExitReason::Signal(n) => write!(f, "killed by {}", signal_name(*n)),
            ExitReason::SpawnFailed(e) => write!(f, "failed to start: {e}"),
        }
    }
}

fn signal_name(n: i32) -> String {
    nix::sys::signal::Signal::try_from(n).map_or_else(|_| format!("signal {n}"), |s| s.as_str().to_owned())
}

/// One unexpected exit.
#[derive(Debug, Clone)]
pub struct CrashRecord {
    pub at: SystemTime,
    pub reason: ExitReason,
    /// How long the process had run.
    pub uptime: Duration,
    /// The last stderr lines before it died.
    pub stderr_tail: Vec<String>,
}

/// The current process of a plugin, while one exists.
#[derive(Debug, Clone, Copy)]
pub struct ProcessInfo {
    pub pid: u32,
    pub started: Instant,
    pub started_at: SystemTime,
}

/// Everything about a plugin that changes when its state does.
#[derive(Debug, Clone)]
pub struct PluginStatus {
    pub state: PluginState,
    pub process: Option<ProcessInfo>,
    /// When the newest process started; kept after it exits (the seed's `loaded_at` is always
    /// a time), None only until a process has started.
    pub loaded_at: Option<SystemTime>,
    /// Reported in the plugin's hello.
    pub reported_version: Option<String>,
    /// Announced in the plugin's hello.
    pub announced_commands: Arc<[String]>,
    /// Has the current process said hello? Chat holds unknown commands briefly until it has.
    pub said_hello: bool,
    pub crash_count: u64,
    pub restart_count: u64,
    /// Consecutive crashes since the plugin last stayed up for `reset_window`.
    pub restart_attempt: u32,
    pub next_restart_at: Option<Instant>,
    /// Newest first.
    pub crash_log: Arc<VecDeque<CrashRecord>>,
    /// The config entry the current process runs with (a reload may change it).
    pub config: Arc<PluginConfig>,
    /// An operator's action under way, in words ("reloading…", "draining old pid 1234").
    pub activity: Option<String>,
    /// Finished reloads, newest first.
    pub reload_log: Arc<VecDeque<ReloadRecord>>,
    pub reloads: ReloadCounts,
    /// Why the host gave up on it when that was not its crashes (e.g. recycled too often for
    /// memory); cleared when a process starts again.
    pub failure: Option<String>,
}

impl PluginStatus {
    fn new(config: Arc<PluginConfig>) -> Self {
        PluginStatus {
            state: PluginState::Starting,
            process: None,
            loaded_at: None,
            reported_version: None,
            announced_commands: Arc::from([]),
            said_hello: false,
            crash_count: 0,
            restart_count: 0,
            restart_attempt: 0,
            next_restart_at: None,
            crash_log: Arc::new(VecDeque::new()),
            config,
            activity: None,
            reload_log: Arc::new(VecDeque::new()),
            reloads: ReloadCounts::default(),
            failure: None,
        }
    }

    /// The version to show: reported by the plugin, else configured, else "unknown".
    pub fn version(&self) -> String {
        self.reported_version.clone().or_else(|| self.config.version.clone()).unwrap_or_else(|| "unknown".to_owned())
    }

    pub fn last_crash(&self) -> Option<&CrashRecord> {
        self.crash_log.front()
    }
}

/// Counters bumped on hot paths without locks.
#[derive(Debug, Default)]
pub struct PluginCounters {
    /// Chat commands routed to the plugin.
    pub events: AtomicU64,
    /// Invalid, unknown or oversized lines from the plugin.
    pub protocol_errors: AtomicU64,
    /// Commands dropped because the plugin was busy (every slot taken) or not running.
    pub dropped_commands: AtomicU64,
    /// Commands the host answered because the plugin did not within `command_timeout`.
    pub command_timeouts: AtomicU64,
    /// From writing each command to reading its reply.
    pub response_times: timing::ResponseTimes,
}

impl PluginCounters {
    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }

    fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// A reply from a plugin, to be shown in chat.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatReply {
    pub plugin: String,
    /// Who asked, when the request is still known.
    pub user: Option<String>,
    pub text: String,
    /// The id of the routed command this answers (the plugin's reply, or the host's answer in
    /// its place: a timeout, a process that ended); None for answers given on the spot.
    pub request: Option<u64>,
}

/// Why a command did not reach its plugin.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    #[error("the plugin already holds as many commands as it may; command dropped")]
    QueueFull,
    #[error("the plugin is not running; command dropped")]
    Closed,
}

/// The shared face of one plugin: its status, counters, open commands and command queue.
pub struct PluginHandle {
    name: PluginName,
    status: watch::Sender<PluginStatus>,
    pub counters: PluginCounters,
    /// Every command accepted and not yet answered.
    pub(crate) ledger: ledger::Ledger,
    /// The queue of the process that gets new commands. A reload swaps it: the lock is held
    /// only for a `try_send` or the swap, so every command goes to exactly one process.
    commands: Mutex<mpsc::Sender<HostMessage>>,
    /// What its processes wrote that was not protocol (stderr, stray stdout lines).
    pub log: Arc<output_log::PluginLog>,
}

impl PluginHandle {
    fn new(config: PluginConfig, commands: mpsc::Sender<HostMessage>, log: Arc<output_log::PluginLog>) -> PluginHandle {
        PluginHandle {
            log,
            name: config.name.clone(),
            status: watch::Sender::new(PluginStatus::new(Arc::new(config))),
            counters: PluginCounters::default(),
            ledger: ledger::Ledger::new(ledger::COMMAND_SLOTS),
            commands: Mutex::new(commands),
        }
    }

    pub fn name(&self) -> &str {
        self.name.as_str()
    }

    /// A copy of the current status.
    pub fn status(&self) -> PluginStatus {
        self.status.borrow().clone()
    }

    /// The config entry of the current process.
    pub fn config(&self) -> Arc<PluginConfig> {
        self.status.borrow().config.clone()
    }

    /// From now on, commands go to `queue`; returns the queue they went to until now.
    fn route_to(&self, queue: mpsc::Sender<HostMessage>) -> mpsc::Sender<HostMessage> {
        std::mem::replace(&mut *lock(&self.commands), queue)
    }

    /// Queue a command without waiting. It takes one of the plugin's slots
    /// ([`ledger::COMMAND_SLOTS`]) until it is answered, by the plugin or by the host; with every
    /// slot taken it is refused (counted), never stalls the caller, never pushes out another.
    /// A plugin with no process (CRASHED, FAILED, STOPPED) refuses it too: queued, it would be
    /// answered whenever a restart comes, if ever, long after the user asked.
    pub fn send(&self, message: HostMessage) -> Result<(), SendError> {
        let (state, timeout) = {
            let status = self.status.borrow();
            (status.state, status.config.command_timeout)
        };
        if !state.has_process() {
            PluginCounters::bump(&self.counters.dropped_commands);
            return Err(SendError::Closed);
        }
        let HostMessage::Command { id, user, .. } = &message;
        let id = *id;
        if self.ledger.accept(id, user, timeout).is_err() {
            PluginCounters::bump(&self.counters.dropped_commands);
            return Err(SendError::QueueFull);
        }
        let sent = lock(&self.commands).try_send(message);
        match sent {
            Ok(()) => {
                PluginCounters::bump(&self.counters.events);
                Ok(())
            }
            Err(e) => {
                self.ledger.withdraw(id);
                PluginCounters::bump(&self.counters.dropped_commands);
                Err(match e {
                    mpsc::error::TrySendError::Full(_) => SendError::QueueFull,
                    mpsc::error::TrySendError::Closed(_) => SendError::Closed,
                })
            }
        }
    }
}

/// How plugin processes are launched: the executable that serves `rosey plugin NAME`.
#[derive(Debug, Clone)]
pub struct Launcher {
    pub rosey_exe: PathBuf,
    /// The open-files limit plugins get back when the bot raised its own.
    pub open_files: Option<crate::limits::InheritedLimit>,
    /// Where the supervisors record what happens to their plugins.
    pub timeline: crate::timeline::Timeline,
    /// Where each plugin's output is kept.
    pub logs: Arc<output_log::LogBook>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugins::builtin::Builtin;
    use crate::plugins::spec::{Launch, PluginName, ReloadPolicy, RestartPolicy};

    /// A handle with no supervisor behind it (tests change its status directly).
    pub(super) fn handle(
        launch: Launch,
        commands: &[&str],
        queue: usize,
    ) -> (PluginHandle, mpsc::Receiver<HostMessage>) {
        named_handle("p", launch, commands, queue)
    }

    pub(super) fn named_handle(
        name: &str,
        launch: Launch,
        commands: &[&str],
        queue: usize,
    ) -> (PluginHandle, mpsc::Receiver<HostMessage>) {
        let config = PluginConfig {
            name: PluginName::new(name).expect("a valid name"),
            launch,
            env: Default::default(),
            cwd: None,
            version: None,
            commands: commands.iter().map(|c| c.to_string()).collect(),
            restart: RestartPolicy::default(),
            reload: ReloadPolicy::default(),
            command_timeout: spec::DEFAULT_COMMAND_TIMEOUT,
            memory_limit: None,
            watch: Vec::new(),
        };
        let (tx, rx) = mpsc::channel(queue);
        (PluginHandle::new(config, tx, output_log::LogBook::default().open(name)), rx)
    }

    fn command(id: u64) -> HostMessage {
        HostMessage::Command { id, command: "roll".into(), args: "1d6".into(), user: "u".into() }
    }

    #[test]
    fn a_plugin_with_every_slot_taken_refuses_and_counts_instead_of_waiting() {
        let (plugin, _rx) = handle(Launch::Builtin(Builtin::DiceRoller), &[], COMMAND_QUEUE);
        for id in 0..ledger::COMMAND_SLOTS as u64 {
            assert_eq!(plugin.send(command(id)), Ok(()));
        }
        assert_eq!(plugin.send(command(1000)), Err(SendError::QueueFull));
        let slots = ledger::COMMAND_SLOTS as u64;
        assert_eq!(PluginCounters::get(&plugin.counters.events), slots, "only delivered commands are events");
        assert_eq!(PluginCounters::get(&plugin.counters.dropped_commands), 1);
        assert!(matches!(plugin.ledger.answer(0), ledger::Matched::Open { .. }));
        assert_eq!(plugin.send(command(1001)), Ok(()), "an answer frees a slot");
    }

    #[test]
    fn a_full_queue_refuses_and_forgets_the_command() {
        let (plugin, _rx) = handle(Launch::Builtin(Builtin::DiceRoller), &[], 1);
        assert_eq!(plugin.send(command(1)), Ok(()));
        assert_eq!(plugin.send(command(2)), Err(SendError::QueueFull));
        assert_eq!(plugin.ledger.answer(2), ledger::Matched::Unknown, "not left open to time out");
    }

    #[test]
    fn a_plugin_without_a_process_takes_no_commands() {
        let (plugin, _rx) = handle(Launch::Builtin(Builtin::DiceRoller), &[], 8);
        for (i, state) in [PluginState::Crashed, PluginState::Failed, PluginState::Stopped].into_iter().enumerate() {
            plugin.status.send_modify(|s| s.state = state);
            assert_eq!(plugin.send(command(1)), Err(SendError::Closed), "{state}");
            assert_eq!(PluginCounters::get(&plugin.counters.dropped_commands), i as u64 + 1);
        }
        assert_eq!(PluginCounters::get(&plugin.counters.events), 0);
        // Starting (a restart under way) queues: the process exists and will read its input.
        plugin.status.send_modify(|s| s.state = PluginState::Starting);
        assert_eq!(plugin.send(command(2)), Ok(()));
    }

    #[test]
    fn after_a_switch_every_command_goes_to_the_new_queue_and_the_old_one_ends() {
        let (plugin, mut old) = handle(Launch::Builtin(Builtin::DiceRoller), &[], 8);
        plugin.status.send_modify(|s| s.state = PluginState::Running);
        assert_eq!(plugin.send(command(1)), Ok(()));
        let (queue, mut new) = mpsc::channel(8);
        drop(plugin.route_to(queue));
        assert_eq!(plugin.send(command(2)), Ok(()));
        assert!(matches!(old.try_recv(), Ok(HostMessage::Command { id: 1, .. })), "what it had stays");
        assert!(matches!(old.try_recv(), Err(mpsc::error::TryRecvError::Disconnected)), "then it ends");
        assert!(matches!(new.try_recv(), Ok(HostMessage::Command { id: 2, .. })));
        assert_eq!(PluginCounters::get(&plugin.counters.events), 2, "counted once each");
    }
}
