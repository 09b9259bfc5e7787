//! The collector loop: follows the host's plugin list, samples every plugin's process tree,
//! appends to each plugin's history and publishes a [`Snapshot`] every poll interval and soon
//! after a plugin changes state. Each snapshot also carries the chat networks' state and the
//! admin desk's audit, read when it is published ([`Collector::follow_chat`]).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::{Notify, mpsc, watch};
use tokio_util::sync::CancellationToken;
use tracing::warn;

use super::history::{Sample, Series};
use super::response::{Marks, ResponseSummary};
use super::sampler::{HostUsage, Sampler, TreeUsage};
use super::snapshot::{ChatSnapshot, Operations, PluginSnapshot, Snapshot, SystemMetrics};
use crate::chat::ChatStatus;
use crate::chat::admin::AuditLog;
use crate::config::MetricsConfig;
use crate::display::unix_ms;
use crate::plugins::command_table::CommandTable;
use crate::plugins::{PluginCounters, PluginHandle, PluginList, PluginState};

/// What the collector remembers about one plugin between ticks.
struct Tracked {
    handle: Arc<PluginHandle>,
    /// Its place in the configuration, which decides command conflicts.
    config_index: usize,
    series: Series,
    usage: TreeUsage,
    /// The PID the usage belongs to.
    usage_pid: Option<u32>,
    last_sampled_at: Option<SystemTime>,
    /// The crash count at the last history point.
    recorded_crashes: u64,
    /// Readings of its response-time counters, for windows.
    response_marks: Marks,
}

/// Snapshots published for state changes come at most this often: a crash still reaches the
/// screen within this (plus one sampling), but a plugin that changes state in a tight loop
/// (a hello flood) cannot make the host publish, and push to every dashboard, a snapshot each.
pub const MIN_CHANGE_GAP: Duration = Duration::from_millis(250);

/// How a sampler reads the trees under some roots (a seam for testing a sampler that panics).
type ReadTrees = fn(&mut Sampler, &[u32]) -> (HashMap<u32, TreeUsage>, HostUsage);

/// Samples plugins and publishes snapshots.
pub struct Collector {
    /// The host's current plugins; `tracked` follows it (plugins come and go on a config reload).
    registry: watch::Receiver<PluginList>,
    tracked: Vec<Tracked>,
    /// The registry's list as last followed: configuration order, for the command table.
    routing: PluginList,
    /// Rebuilt only when the plugins' claims or the list change, not for every snapshot.
    commands: CommandTable,
    /// None after it failed: a new one is made at the next sampling.
    sampler: Option<Sampler>,
    read_trees: ReadTrees,
    host: HostUsage,
    config: MetricsConfig,
    started: Instant,
    /// The wall-clock time of `started`: turns a restart's `Instant` into the same
    /// `SystemTime` in every snapshot.
    started_wall: SystemTime,
    seq: u64,
    publish: watch::Sender<Arc<Snapshot>>,
    /// Where the chat networks' state and the admin audit are read; None: no chat to show.
    chat: Option<ChatFeed>,
    /// Where each tick's memory figures go (the memory limit's guard); None: nobody listens.
    memory: Option<mpsc::Sender<Vec<MemoryReading>>>,
}

/// One running plugin's process-tree memory at one tick, for whoever enforces `max_memory_mb`.
#[derive(Clone)]
pub struct MemoryReading {
    pub handle: Arc<PluginHandle>,
    /// The process the figure belongs to: a new one (after a recycle) starts counting afresh.
    pub pid: u32,
    pub bytes: u64,
}

/// The chat side's published state, read (never waited on) at each snapshot.
struct ChatFeed {
    status: watch::Receiver<ChatStatus>,
    audit: AuditLog,
}

impl ChatFeed {
    fn read(&self) -> ChatSnapshot {
        // The status is cloned out of the watch at once: no lock outlives this call.
        let connections = self.status.borrow().snapshot();
        ChatSnapshot { connections, admin_commands: self.audit.counts(), audit: Arc::new(self.audit.entries()) }
    }
}

impl Collector {
    pub fn new(registry: watch::Receiver<PluginList>, config: MetricsConfig) -> Collector {
        let sampler = Sampler::new().map_err(|e| warn!("cannot read process figures: {e}")).ok();
        let mut collector = Collector {
            registry,
            tracked: Vec::new(),
            routing: PluginList::from([]),
            commands: CommandTable::build(&[]),
            sampler,
            read_trees: Sampler::sample,
            host: HostUsage::default(),
            config,
            started: Instant::now(),
            started_wall: SystemTime::now(),
            seq: 0,
            publish: watch::Sender::new(Arc::new(Snapshot {
                seq: 0,
                taken_at: SystemTime::now(),
                poll_interval: config.poll_interval,
                plugins: Vec::new(),
                system: SystemMetrics::of(&[], Duration::ZERO),
                host: HostUsage::default(),
                chat: ChatSnapshot::default(),
            })),
            chat: None,
            memory: None,
        };
        collector.follow_registry();
        collector.publish_snapshot();
        collector
    }

    /// Track the plugins the host has now: new ones start with an empty history, removed ones
    /// are forgotten, the others keep theirs. The host also wakes the collector (`changed`)
    /// when it changes the list, so the next snapshot shows it.
    fn follow_registry(&mut self) {
        if !self.registry.has_changed().unwrap_or(false) && !self.tracked.is_empty() {
            return;
        }
        let current = self.registry.borrow_and_update().clone();
        let mut old = std::mem::take(&mut self.tracked);
        for (config_index, handle) in current.iter().enumerate() {
            match old.iter().position(|t| Arc::ptr_eq(&t.handle, handle)) {
                Some(i) => self.tracked.push(Tracked { config_index, ..old.swap_remove(i) }),
                None => self.tracked.push(Tracked {
                    handle: handle.clone(),
                    config_index,
                    series: Series::new(self.config.history_capacity()),
                    usage: TreeUsage::default(),
                    usage_pid: None,
                    last_sampled_at: None,
                    recorded_crashes: 0,
                    response_marks: Marks::default(),
                }),
            }
        }
        self.tracked.sort_by(|a, b| a.handle.name().cmp(b.handle.name()));
        self.routing = current;
    }

    /// Carry the chat connections' state (`status`, filled once the chat starts) and the admin
    /// desk's `audit` in every snapshot from the next one on.
    pub fn follow_chat(&mut self, status: watch::Receiver<ChatStatus>, audit: AuditLog) {
        self.chat = Some(ChatFeed { status, audit });
    }

    /// Send every tick's memory figures of the running plugins to `to`. Never waits: a tick the
    /// receiver has not taken yet is dropped (the next one comes a poll interval later).
    pub fn report_memory(&mut self, to: mpsc::Sender<Vec<MemoryReading>>) {
        self.memory = Some(to);
    }

    fn send_memory(&self) {
        let Some(to) = &self.memory else { return };
        let readings: Vec<MemoryReading> = self
            .tracked
            .iter()
            // Only plugins with a limit: the others cost nothing here.
            .filter(|t| t.handle.config().memory_limit.is_some())
            .filter_map(|t| {
                let pid = t.handle.status().process?.pid;
                (t.usage_pid == Some(pid)).then(|| MemoryReading {
                    handle: t.handle.clone(),
                    pid,
                    bytes: t.usage.memory_bytes,
                })
            })
            .collect();
        if !readings.is_empty() {
            let _ = to.try_send(readings);
        }
    }

    /// Receivers always see the latest snapshot only: a slow reader skips, never queues.
    pub fn subscribe(&self) -> watch::Receiver<Arc<Snapshot>> {
        self.publish.subscribe()
    }

    /// Sample every `poll_interval` and publish; on plugin state changes, sample and publish
    /// too, but no more often than [`MIN_CHANGE_GAP`] (changes in between share one snapshot).
    pub async fn run(mut self, changed: Arc<Notify>, stop: CancellationToken) {
        // The first point is one interval in: at t=0 every plugin is still STARTING, which would
        // count against its availability and has no CPU figure yet.
        let first = tokio::time::Instant::now() + self.config.poll_interval;
        let mut ticks = tokio::time::interval_at(first, self.config.poll_interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_published = tokio::time::Instant::now();
        let change_due = tokio::time::sleep_until(last_published);
        tokio::pin!(change_due);
        let mut change_pending = false;
        loop {
            tokio::select! {
                _ = ticks.tick() => {
                    self.sample().await;
                    self.record_history();
                    self.send_memory();
                }
                () = changed.notified(), if !change_pending => {
                    change_pending = true;
                    change_due.as_mut().reset(last_published + MIN_CHANGE_GAP);
                    continue;
                }
                () = &mut change_due, if change_pending => {
                    // A new process gets its CPU baseline now, so the next tick has a real figure.
                    self.sample().await;
                }
                () = stop.cancelled() => return,
            }
            // This snapshot shows every change so far, whatever woke it.
            change_pending = false;
            self.publish_snapshot();
            last_published = tokio::time::Instant::now();
        }
    }

    /// Read every running plugin's tree on a blocking thread (sysinfo reads /proc synchronously).
    /// A sampler that fails (panics) is replaced at the next sampling; until one succeeds the
    /// figures keep their last values and the cards turn stale.
    async fn sample(&mut self) {
        self.follow_registry();
        let sampler = match self.sampler.take() {
            Some(sampler) => sampler,
            None => match Sampler::new() {
                Ok(sampler) => {
                    warn!("process sampling restarted");
                    sampler
                }
                Err(_) => return,
            },
        };
        let roots: Vec<u32> = self.tracked.iter().filter_map(|t| t.handle.status().process.map(|p| p.pid)).collect();
        let read_trees = self.read_trees;
        let result = tokio::task::spawn_blocking(move || {
            let mut sampler = sampler;
            let readings = read_trees(&mut sampler, &roots);
            (sampler, readings)
        })
        .await;
        let (sampler, (usage, host)) = match result {
            Ok(done) => done,
            Err(e) => {
                tracing::error!(
                    "process sampling failed ({e}); it restarts at the next sampling, figures are stale until then"
                );
                return;
            }
        };
        self.sampler = Some(sampler);
        self.host = host;
        let now = SystemTime::now();
        for t in &mut self.tracked {
            let pid = t.handle.status().process.map(|p| p.pid);
            match pid.and_then(|pid| usage.get(&pid)) {
                Some(u) => {
                    t.usage = *u;
                    t.usage_pid = pid;
                    t.last_sampled_at = Some(now);
                }
                None => {
                    t.usage = TreeUsage::default();
                    t.usage_pid = None;
                }
            }
        }
    }

    fn record_history(&mut self) {
        let now_ms = unix_ms(SystemTime::now());
        let now = Instant::now();
        for t in &mut self.tracked {
            let answers = t.response_marks.record(now, t.handle.counters.response_times.read());
            let status = t.handle.status();
            let running = status.process.is_some() && t.usage_pid == status.process.map(|p| p.pid);
            // A restart quicker than a poll would leave no trace in the series: a point covers
            // the interval before it, so one after a crash says CRASHED even if the plugin is back.
            let crashed_since = status.crash_count > t.recorded_crashes;
            t.recorded_crashes = status.crash_count;
            t.series.push(Sample {
                at_ms: now_ms,
                events: PluginCounters::get(&t.handle.counters.events),
                cpu_percent: if running { t.usage.cpu_percent.unwrap_or(0.0) as f32 } else { 0.0 },
                memory_kib: if running { (t.usage.memory_bytes / 1024).min(u64::from(u32::MAX)) as u32 } else { 0 },
                response_ms: answers.quantile(0.95).map_or(0.0, |s| (s * 1000.0) as f32),
                state: history_state(status.state, crashed_since),
            });
        }
    }

    /// Publish a snapshot of the plugins as they are now, with the latest samples (`run` does
    /// this each tick and after state changes; the collector benchmark times it).
    pub fn publish_snapshot(&mut self) {
        self.follow_registry();
        self.seq += 1;
        let taken_at = SystemTime::now();
        self.commands.refresh(&self.routing);
        let clock = (self.started, self.started_wall);
        let plugins: Vec<PluginSnapshot> =
            self.tracked.iter().map(|t| plugin_snapshot(t, &self.commands, clock)).collect();
        let system = SystemMetrics::of(&plugins, self.started.elapsed());
        let snapshot = Snapshot {
            seq: self.seq,
            taken_at,
            poll_interval: self.config.poll_interval,
            plugins,
            system,
            host: self.host,
            chat: self.chat.as_ref().map(ChatFeed::read).unwrap_or_default(),
        };
        self.publish.send_replace(Arc::new(snapshot));
    }

    /// Heap bytes of all histories (for the memory budget benchmark).
    pub fn history_bytes(&self) -> usize {
        self.tracked.iter().map(|t| t.series.heap_bytes()).sum()
    }
}

/// `clock` is one reading of both clocks, to turn an `Instant` into a `SystemTime`.
fn plugin_snapshot(t: &Tracked, commands: &CommandTable, clock: (Instant, SystemTime)) -> PluginSnapshot {
    let status = t.handle.status();
    let counters = &t.handle.counters;
    // Figures belong to a process: after a restart, the old process's figures are not shown.
    let usage = match status.process {
        Some(p) if t.usage_pid == Some(p.pid) => t.usage,
        _ => TreeUsage::default(),
    };
    let now = Instant::now();
    PluginSnapshot {
        name: t.handle.name().to_owned(),
        version: status.version(),
        state: status.state,
        pid: status.process.map(|p| p.pid),
        uptime: status.process.map_or(Duration::ZERO, |p| now.duration_since(p.started)),
        loaded_at: status.loaded_at,
        cpu_percent: usage.cpu_percent.unwrap_or(0.0),
        memory_bytes: usage.memory_bytes,
        cpu_seconds: usage.cpu_seconds,
        processes: usage.processes,
        events: PluginCounters::get(&counters.events),
        crashes: status.crash_count,
        restarts: status.restart_count,
        restart_attempt: status.restart_attempt,
        next_restart_in: status.next_restart_at.map(|at| at.saturating_duration_since(now)),
        next_restart_at: status
            .next_restart_at
            .and_then(|at| clock.1.checked_add(at.saturating_duration_since(clock.0))),
        protocol_errors: PluginCounters::get(&counters.protocol_errors),
        dropped_commands: PluginCounters::get(&counters.dropped_commands),
        command_timeouts: PluginCounters::get(&counters.command_timeouts),
        log_lines_dropped: t.handle.log.dropped(),
        log_file_errors: t.handle.log.file_errors(),
        response: ResponseSummary::new(&t.response_marks, now, counters.response_times.read()),
        commands: commands.commands_of(t.config_index).to_vec(),
        command_conflicts: commands.conflicts_of(t.config_index).cloned().collect(),
        crash_log: status.crash_log.clone(),
        last_sampled_at: t.last_sampled_at,
        history: t.series.view(),
        operations: Operations {
            activity: status.activity,
            reload_log: status.reload_log,
            reloads: status.reloads,
            failure: status.failure,
        },
    }
}

/// The state a history point records: the current one, or CRASHED when the plugin crashed
/// since the previous point and has already been restarted (FAILED and CRASHED stay as they are).
fn history_state(current: PluginState, crashed_since: bool) -> PluginState {
    match current {
        PluginState::Starting | PluginState::Running if crashed_since => PluginState::Crashed,
        state => state,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_point_after_a_quick_restart_says_crashed() {
        assert_eq!(history_state(PluginState::Running, true), PluginState::Crashed);
        assert_eq!(history_state(PluginState::Starting, true), PluginState::Crashed);
        assert_eq!(history_state(PluginState::Failed, true), PluginState::Failed);
        assert_eq!(history_state(PluginState::Stopped, true), PluginState::Stopped);
        assert_eq!(history_state(PluginState::Running, false), PluginState::Running);
    }

    fn panicking_read(_: &mut Sampler, _: &[u32]) -> (HashMap<u32, TreeUsage>, HostUsage) {
        panic!("a sampler bug");
    }

    #[tokio::test]
    async fn a_sampler_that_panics_is_replaced() {
        let config = MetricsConfig { poll_interval: Duration::from_secs(1), history_duration: Duration::from_secs(60) };
        let (_registry, plugins) = watch::channel(PluginList::from([]));
        let mut collector = Collector::new(plugins, config);
        collector.read_trees = panicking_read;
        collector.sample().await;
        assert!(collector.sampler.is_none(), "the failed sampler is dropped");
        assert_eq!(collector.host, HostUsage::default(), "no figures from a failed sampling");
        collector.read_trees = Sampler::sample;
        collector.sample().await;
        assert!(collector.sampler.is_some(), "a new sampler took its place");
        assert!(collector.host.resident_bytes > 0, "and it reads figures again");
    }

    #[tokio::test(start_paused = true)]
    async fn state_changes_publish_snapshots_no_more_often_than_the_gap() {
        let config =
            MetricsConfig { poll_interval: Duration::from_secs(60), history_duration: Duration::from_secs(600) };
        let (_registry, plugins) = watch::channel(PluginList::from([]));
        let collector = Collector::new(plugins, config);
        let mut snapshots = collector.subscribe();
        let first = snapshots.borrow_and_update().seq;
        let (changed, stop) = (Arc::new(Notify::new()), CancellationToken::new());
        let start = tokio::time::Instant::now();
        let running = tokio::spawn(collector.run(changed.clone(), stop.clone()));

        changed.notify_one();
        snapshots.changed().await.expect("the collector runs");
        assert_eq!(start.elapsed(), MIN_CHANGE_GAP, "a change right after a snapshot waits out the gap");
        assert_eq!(snapshots.borrow_and_update().seq, first + 1);

        // A burst of changes: a snapshot or two, each a gap after the one before, then quiet
        // until the next poll.
        for _ in 0..5 {
            changed.notify_one();
        }
        let mut published = vec![start.elapsed()];
        while let Ok(news) = tokio::time::timeout(config.poll_interval / 2, snapshots.changed()).await {
            news.expect("the collector runs");
            published.push(start.elapsed());
        }
        assert!((2..=3).contains(&published.len()), "{published:?}");
        assert!(published.windows(2).all(|w| w[1] - w[0] >= MIN_CHANGE_GAP), "{published:?}");

        stop.cancel();
        running.await.expect("the collector stops");
    }
}
