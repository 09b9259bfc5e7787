//! The JSON API shapes: `/api/metrics` and `/api/plugin/{name}` exactly as the seed specifies,
//! plus the additions (crash log, restart countdown, freshness), and `/api/chat` and
//! `/api/audit`; every field is described in docs/api.md.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;

use crate::chat::admin::AuditEntry;
use crate::chat::irc::connection::{ConnectionStatus, LinkState};
use crate::display::{rfc3339, round};
use crate::metrics::health::{Health, Thresholds};
use crate::metrics::history::{Aggregates, Stats};
use crate::metrics::response::{Quantiles, ResponseSummary};
use crate::metrics::{PluginSnapshot, Snapshot, SystemMetrics};
use crate::plugins::CrashRecord;
use crate::plugins::action::ReloadRecord;
use crate::plugins::command_table::CommandConflict;

/// History points returned by `/api/plugin/{name}` (the seed's "last 60 snapshots").
pub const HISTORY_POINTS: usize = 60;

/// One entry of `/api/metrics` `plugins`.
#[derive(Debug, Serialize)]
pub struct PluginSummary<'a> {
    pub name: &'a str,
    pub version: &'a str,
    pub pid: Option<u32>,
    pub state: &'static str,
    pub uptime_seconds: f64,
    pub cpu_percent: f64,
    pub memory_mb: f64,
    pub event_count: u64,
    pub crash_count: u64,
    pub response_time: ResponseJson,
}

/// A plugin's response times, in milliseconds: answers counted and p50/p95/p99 over the last
/// 5 minutes and the last hour, estimated from histogram buckets (docs/metrics.md).
#[derive(Debug, Serialize)]
pub struct ResponseJson {
    pub count: u64,
    #[serde(rename = "5m")]
    pub last_5m: WindowJson,
    #[serde(rename = "1h")]
    pub last_1h: WindowJson,
}

#[derive(Debug, Serialize)]
pub struct WindowJson {
    pub count: u64,
    pub p50_ms: Option<f64>,
    pub p95_ms: Option<f64>,
    pub p99_ms: Option<f64>,
}

impl ResponseJson {
    pub fn of(r: &ResponseSummary) -> Self {
        let ms = |seconds: Option<f64>| seconds.map(|s| round(s * 1000.0, 1));
        let window =
            |q: &Quantiles| WindowJson { count: q.count, p50_ms: ms(q.p50), p95_ms: ms(q.p95), p99_ms: ms(q.p99) };
        let [last_5m, last_1h] = &r.windows;
        ResponseJson { count: r.total.count(), last_5m: window(last_5m), last_1h: window(last_1h) }
    }
}

impl<'a> PluginSummary<'a> {
    pub fn of(p: &'a PluginSnapshot) -> Self {
        PluginSummary {
            name: &p.name,
            version: &p.version,
            pid: p.pid,
            state: p.state.as_str(),
            uptime_seconds: round(p.uptime.as_secs_f64(), 1),
            cpu_percent: round(p.cpu_percent, 2),
            memory_mb: round(p.memory_mb(), 2),
            event_count: p.events,
            crash_count: p.crashes,
            response_time: ResponseJson::of(&p.response),
        }
    }
}

/// `/api/metrics` `system`.
#[derive(Debug, Serialize)]
pub struct SystemJson {
    pub bot_uptime_seconds: f64,
    pub bot_uptime_human: String,
    pub total_plugins: usize,
    pub plugins_running: usize,
    pub plugins_crashed: usize,
    pub total_events: u64,
    pub total_memory_mb: f64,
}

impl SystemJson {
    pub fn of(s: &SystemMetrics) -> Self {
        SystemJson {
            bot_uptime_seconds: round(s.bot_uptime.as_secs_f64(), 1),
            bot_uptime_human: crate::display::format_uptime(s.bot_uptime),
            total_plugins: s.total_plugins,
            plugins_running: s.plugins_running,
            plugins_crashed: s.plugins_crashed,
            total_events: s.total_events,
            total_memory_mb: round(s.total_memory_mb, 2),
        }
    }
}

/// `GET /api/metrics`.
#[derive(Debug, Serialize)]
pub struct ApiMetrics<'a> {
    pub timestamp: String,
    pub plugins: Vec<PluginSummary<'a>>,
    pub system: SystemJson,
}

impl<'a> ApiMetrics<'a> {
    pub fn of(snapshot: &'a Snapshot) -> Self {
        ApiMetrics {
            timestamp: rfc3339(snapshot.taken_at),
            plugins: snapshot.plugins.iter().map(PluginSummary::of).collect(),
            system: SystemJson::of(&snapshot.system),
        }
    }
}

#[derive(Debug, Serialize)]
pub struct Current {
    pub cpu_percent: f64,
    pub memory_mb: f64,
    pub uptime_seconds: f64,
    pub event_count: u64,
    pub crash_count: u64,
}

#[derive(Debug, Serialize)]
pub struct AggregatesJson<'a> {
    pub plugin_name: &'a str,
    pub sample_count: usize,
    pub time_span_seconds: f64,
    pub cpu: Stats,
    pub memory_mb: Stats,
}

#[derive(Debug, Serialize)]
pub struct HistoryPoint {
    pub timestamp: String,
    pub cpu_percent: f64,
    pub memory_mb: f64,
    pub event_count: u64,
    pub state: &'static str,
}

#[derive(Debug, Serialize)]
pub struct CrashJson<'a> {
    pub time: String,
    pub exit_code: Option<i32>,
    pub signal: Option<String>,
    pub reason: String,
    pub uptime_seconds: f64,
    pub stderr_tail: &'a [String],
}

impl<'a> CrashJson<'a> {
    fn of(c: &'a CrashRecord) -> Self {
        CrashJson {
            time: rfc3339(c.at),
            exit_code: c.reason.code(),
            signal: c.reason.signal_name(),
            reason: c.reason.to_string(),
            uptime_seconds: round(c.uptime.as_secs_f64(), 1),
            stderr_tail: &c.stderr_tail,
        }
    }
}

/// One entry of a plugin's `reload_log`.
#[derive(Debug, Serialize)]
pub struct ReloadJson<'a> {
    pub at: String,
    pub trigger: &'static str,
    pub from_version: Option<&'a str>,
    pub to_version: Option<&'a str>,
    pub duration_seconds: f64,
    pub outcome: &'static str,
    pub reason: Option<&'a str>,
}

impl<'a> ReloadJson<'a> {
    fn of(r: &'a ReloadRecord) -> Self {
        ReloadJson {
            at: rfc3339(r.at),
            trigger: r.trigger.kind(),
            from_version: r.from_version.as_deref(),
            to_version: r.to_version.as_deref(),
            duration_seconds: round(r.duration.as_secs_f64(), 3),
            outcome: r.outcome.as_str(),
            reason: r.reason.as_deref(),
        }
    }
}

/// `GET /api/plugin/{name}`.
#[derive(Debug, Serialize)]
pub struct ApiPlugin<'a> {
    pub name: &'a str,
    pub version: &'a str,
    pub loaded_at: Option<String>,
    pub state: &'static str,
    pub pid: Option<u32>,
    pub current: Current,
    pub aggregates_1h: Option<AggregatesJson<'a>>,
    pub history: Vec<HistoryPoint>,
    // Additions beyond the seed.
    /// The card's colour: `healthy`, `warning` (RUNNING above a `dashboard.warn_*` threshold),
    /// `error` (CRASHED or FAILED) or `idle` (STARTING or STOPPED).
    pub health: Health,
    pub last_sampled_at: Option<String>,
    pub stale: bool,
    pub processes: u32,
    pub cpu_seconds_total: f64,
    pub restart_attempt: u32,
    pub restarts: u64,
    pub next_restart_in_seconds: Option<f64>,
    pub next_restart_at: Option<String>,
    pub availability_1h: Option<f64>,
    pub last_crash_at: Option<String>,
    pub crash_log: Vec<CrashJson<'a>>,
    pub protocol_errors: u64,
    pub dropped_commands: u64,
    pub command_timeouts: u64,
    pub response_time: ResponseJson,
    pub commands: &'a [String],
    pub command_conflicts: &'a [CommandConflict],
    /// An operator's action under way, in words.
    pub activity: Option<&'a str>,
    pub reload_log: Vec<ReloadJson<'a>>,
    /// Why the host gave up on it (FAILED) when not for its crashes, e.g. recycled too often
    /// for memory; null otherwise.
    pub failed_reason: Option<&'a str>,
}

impl<'a> ApiPlugin<'a> {
    pub fn of(snapshot: &Snapshot, p: &'a PluginSnapshot, thresholds: Thresholds) -> Self {
        let aggregates_1h = p.history.aggregates().map(|a: Aggregates| AggregatesJson {
            plugin_name: &p.name,
            sample_count: a.sample_count,
            time_span_seconds: a.time_span.as_secs_f64(),
            cpu: a.cpu,
            memory_mb: a.memory_mb,
        });
        ApiPlugin {
            name: &p.name,
            version: &p.version,
            loaded_at: p.loaded_at.map(rfc3339),
            state: p.state.as_str(),
            health: Health::of(p, thresholds).0,
            pid: p.pid,
            current: Current {
                cpu_percent: round(p.cpu_percent, 2),
                memory_mb: round(p.memory_mb(), 2),
                uptime_seconds: round(p.uptime.as_secs_f64(), 1),
                event_count: p.events,
                crash_count: p.crashes,
            },
            aggregates_1h,
            history: p
                .history
                .last(HISTORY_POINTS)
                .map(|s| HistoryPoint {
                    timestamp: rfc3339(s.at()),
                    cpu_percent: round(f64::from(s.cpu_percent), 2),
                    memory_mb: round(s.memory_mb(), 2),
                    event_count: s.events,
                    state: s.state.as_str(),
                })
                .collect(),
            last_sampled_at: p.last_sampled_at.map(rfc3339),
            stale: snapshot.is_stale(p),
            processes: p.processes,
            cpu_seconds_total: round(p.cpu_seconds, 3),
            restart_attempt: p.restart_attempt,
            restarts: p.restarts,
            next_restart_in_seconds: p.next_restart_in.map(|d| round(d.as_secs_f64(), 1)),
            next_restart_at: p.next_restart_at.map(rfc3339),
            availability_1h: p.history.availability().map(|a| round(a, 4)),
            last_crash_at: p.crash_log.front().map(|c| rfc3339(c.at)),
            crash_log: p.crash_log.iter().map(CrashJson::of).collect(),
            protocol_errors: p.protocol_errors,
            dropped_commands: p.dropped_commands,
            command_timeouts: p.command_timeouts,
            response_time: ResponseJson::of(&p.response),
            commands: &p.commands,
            command_conflicts: &p.command_conflicts,
            activity: p.operations.activity.as_deref(),
            reload_log: p.operations.reload_log.iter().map(ReloadJson::of).collect(),
            failed_reason: p.operations.failure.as_deref(),
        }
    }
}

/// One entry of `/api/chat` `connections`: the connection's status as it publishes it (it
/// holds no secret: no password reaches it), and what follows from it.
#[derive(Debug, Serialize)]
pub struct ChatConnectionJson<'a> {
    #[serde(flatten)]
    pub status: &'a ConnectionStatus,
    /// Registered with the server.
    pub connected: bool,
    /// While reconnecting: seconds until the next attempt, as of the snapshot.
    pub retry_in_seconds: Option<f64>,
}

/// `GET /api/chat`.
#[derive(Debug, Serialize)]
pub struct ApiChat<'a> {
    pub timestamp: String,
    pub connections: Vec<ChatConnectionJson<'a>>,
}

impl<'a> ApiChat<'a> {
    pub fn of(snapshot: &'a Snapshot) -> Self {
        let connections = snapshot
            .chat
            .connections
            .iter()
            .map(|status| ChatConnectionJson {
                status,
                connected: status.state == LinkState::Registered,
                retry_in_seconds: retry_in(&status.state, snapshot.taken_at).map(|d| round(d.as_secs_f64(), 1)),
            })
            .collect();
        ApiChat { timestamp: rfc3339(snapshot.taken_at), connections }
    }
}

/// While `state` is reconnecting: how long after `now` the next attempt starts.
pub fn retry_in(state: &LinkState, now: SystemTime) -> Option<Duration> {
    let LinkState::Reconnecting { retry_at_unix_ms, .. } = state else { return None };
    let retry_at = UNIX_EPOCH + Duration::from_millis(*retry_at_unix_ms);
    Some(retry_at.duration_since(now).unwrap_or_default())
}

/// `GET /api/audit`: the last admin commands and refusals, newest first.
#[derive(Debug, Serialize)]
pub struct ApiAudit<'a> {
    pub timestamp: String,
    pub entries: Vec<&'a AuditEntry>,
}

impl<'a> ApiAudit<'a> {
    pub fn of(snapshot: &'a Snapshot) -> Self {
        ApiAudit { timestamp: rfc3339(snapshot.taken_at), entries: snapshot.chat.audit.iter().rev().collect() }
    }
}
