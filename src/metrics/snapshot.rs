//! What the collector publishes: one immutable [`Snapshot`] of the bot (every plugin's
//! [`PluginSnapshot`], the [`SystemMetrics`] totals and the chat networks' [`ChatSnapshot`]),
//! shared by every reader.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::history::SeriesView;
use super::response::ResponseSummary;
use super::sampler::HostUsage;
use crate::chat::admin::AuditEntry;
use crate::chat::irc::connection::ConnectionStatus;
use crate::plugins::action::{ReloadCounts, ReloadRecord};
use crate::plugins::command_table::CommandConflict;
use crate::plugins::{CrashRecord, PluginState};

/// Everything known about one plugin at one moment.
#[derive(Debug, Clone)]
pub struct PluginSnapshot {
    pub name: String,
    pub version: String,
    pub state: PluginState,
    pub pid: Option<u32>,
    /// Uptime of the current process (zero when none runs).
    pub uptime: Duration,
    /// Start of the newest process, also after it exited (None before the first start).
    pub loaded_at: Option<SystemTime>,
    pub cpu_percent: f64,
    pub memory_bytes: u64,
    /// CPU time of the current process tree.
    pub cpu_seconds: f64,
    pub processes: u32,
    pub events: u64,
    pub crashes: u64,
    pub restarts: u64,
    pub restart_attempt: u32,
    pub next_restart_in: Option<Duration>,
    /// The same moment on the wall clock; unlike the countdown, it stays put between snapshots.
    pub next_restart_at: Option<SystemTime>,
    pub protocol_errors: u64,
    pub dropped_commands: u64,
    /// Commands the host answered because the plugin did not within `command_timeout`.
    pub command_timeouts: u64,
    /// Lines of its output over `logs.lines_per_second`, dropped from its log.
    pub log_lines_dropped: u64,
    /// Lines of its output that could not be written to its log file.
    pub log_file_errors: u64,
    /// How long it takes to answer: all along and over recent windows.
    pub response: ResponseSummary,
    /// The chat commands routed to it, sorted.
    pub commands: Vec<String>,
    /// Commands it claims together with another plugin (or the host).
    pub command_conflicts: Vec<CommandConflict>,
    /// Newest first.
    pub crash_log: Arc<VecDeque<CrashRecord>>,
    pub last_sampled_at: Option<SystemTime>,
    pub history: SeriesView,
    pub operations: Operations,
}

/// The operator's actions on one plugin: what is under way and how its reloads went.
#[derive(Debug, Clone, Default)]
pub struct Operations {
    /// In words, e.g. "draining old pid 1234"; None when nothing is under way.
    pub activity: Option<String>,
    /// Newest first.
    pub reload_log: Arc<VecDeque<ReloadRecord>>,
    pub reloads: ReloadCounts,
    /// Why the host gave up on it, when not for its crashes (FAILED: recycled too often).
    pub failure: Option<String>,
}

impl PluginSnapshot {
    /// A plugin for tests and benches: named `name`, RUNNING with `history`, version `1.0`,
    /// no process, every figure zero and every list empty; a caller sets what it is about with
    /// struct update syntax.
    #[doc(hidden)]
    pub fn example(name: &str, history: SeriesView) -> PluginSnapshot {
        PluginSnapshot {
            name: name.to_owned(),
            version: "1.0".to_owned(),
            state: PluginState::Running,
            pid: None,
            uptime: Duration::ZERO,
            loaded_at: None,
            cpu_percent: 0.0,
            memory_bytes: 0,
            cpu_seconds: 0.0,
            processes: 0,
            events: 0,
            crashes: 0,
            restarts: 0,
            restart_attempt: 0,
            next_restart_in: None,
            next_restart_at: None,
            protocol_errors: 0,
            dropped_commands: 0,
            command_timeouts: 0,
            log_lines_dropped: 0,
            log_file_errors: 0,
            response: Default::default(),
            commands: Vec::new(),
            command_conflicts: Vec::new(),
            crash_log: Arc::new(VecDeque::new()),
            last_sampled_at: None,
            history,
            operations: Operations::default(),
        }
    }

    /// Start of the current process (None when none runs).
    pub fn started_at(&self) -> Option<SystemTime> {
        self.pid.and(self.loaded_at)
    }

    pub fn memory_mb(&self) -> f64 {
        self.memory_bytes as f64 / (1024.0 * 1024.0)
    }

    pub fn is_running(&self) -> bool {
        self.state == PluginState::Running
    }

    /// CRASHED or FAILED.
    pub fn is_down(&self) -> bool {
        self.state.is_down()
    }
}

/// Totals over all plugins.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SystemMetrics {
    pub bot_uptime: Duration,
    pub total_plugins: usize,
    pub plugins_running: usize,
    pub plugins_crashed: usize,
    pub total_events: u64,
    pub total_memory_mb: f64,
}

impl SystemMetrics {
    pub fn of(plugins: &[PluginSnapshot], bot_uptime: Duration) -> Self {
        SystemMetrics {
            bot_uptime,
            total_plugins: plugins.len(),
            plugins_running: plugins.iter().filter(|p| p.is_running()).count(),
            plugins_crashed: plugins.iter().filter(|p| p.is_down()).count(),
            total_events: plugins.iter().map(|p| p.events).sum(),
            total_memory_mb: plugins.iter().map(PluginSnapshot::memory_mb).sum(),
        }
    }
}

/// The chat networks and the admin desk as the collector last read them.
#[derive(Debug, Clone, Default)]
pub struct ChatSnapshot {
    /// In `chat.irc` order; empty when no connection is configured.
    pub connections: Vec<ConnectionStatus>,
    /// `!admin` commands by (command, user label), sorted; the label is an admin's name or
    /// `refused`, so the values stay bounded.
    pub admin_commands: Vec<((&'static str, String), u64)>,
    /// The last admin commands and refusals, oldest first.
    pub audit: Arc<Vec<AuditEntry>>,
}

/// One immutable picture of the bot, shared by every reader.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// Increases by one per published snapshot (the SSE event id).
    pub seq: u64,
    pub taken_at: SystemTime,
    pub poll_interval: Duration,
    /// Sorted by name.
    pub plugins: Vec<PluginSnapshot>,
    pub system: SystemMetrics,
    pub host: HostUsage,
    pub chat: ChatSnapshot,
}

impl Snapshot {
    /// A snapshot with no plugins, for tests of what is built from snapshots.
    #[cfg(test)]
    pub(crate) fn empty(seq: u64, poll_interval: Duration, bot_uptime: Duration) -> Arc<Snapshot> {
        Arc::new(Snapshot {
            seq,
            taken_at: SystemTime::now(),
            poll_interval,
            plugins: Vec::new(),
            system: SystemMetrics::of(&[], bot_uptime),
            host: HostUsage::default(),
            chat: ChatSnapshot::default(),
        })
    }

    pub fn plugin(&self, name: &str) -> Option<(usize, &PluginSnapshot)> {
        self.plugins.binary_search_by(|p| p.name.as_str().cmp(name)).ok().map(|i| (i, &self.plugins[i]))
    }

    /// Is this plugin's last sample older than two poll intervals?
    pub fn is_stale(&self, plugin: &PluginSnapshot) -> bool {
        plugin.is_running()
            && plugin
                .last_sampled_at
                .is_some_and(|at| self.taken_at.duration_since(at).unwrap_or_default() > 2 * self.poll_interval)
    }
}
