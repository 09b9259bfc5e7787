//! What the page shows: snapshot figures formatted once, in Rust, for both the server-side
//! templates and the live updates (the browser only copies these strings into the page), and
//! the chart points the browser draws itself.

mod chart;
mod listing;
mod operations;

use std::time::SystemTime;

use serde::Serialize;

use super::api::retry_in;
use crate::chat::irc::connection::{ConnectionStatus, LinkState};
use crate::display::{format_duration, format_mb, format_uptime, rfc3339, thousands};
use crate::metrics::health::{Health, Thresholds};
use crate::metrics::history::{Aggregates, Sample, SeriesView};
use crate::metrics::{PluginSnapshot, Snapshot, SystemMetrics};
use crate::plugins::{CrashRecord, PluginState};
pub use chart::{axis_value, nice_ceiling};
pub use listing::{PageQuery, Row, StateFilter, listing};
pub use operations::{CardOperations, ConflictView, ReloadView};

/// Samples drawn in a card's sparkline.
pub const SPARK_SAMPLES: usize = 60;
/// The boxes lines are drawn in; the templates' `<svg viewBox>` declare the same, and the live
/// page reads them there.
const SPARK_BOX: (f64, f64) = (120.0, 24.0);
const CHART_BOX: (f64, f64) = (600.0, 120.0);

#[derive(Debug, Clone, Default, Serialize)]
pub struct SystemView {
    pub uptime: String,
    pub plugins_running: usize,
    pub total_plugins: usize,
    pub plugins_crashed: usize,
    pub total_events: String,
    pub total_memory: String,
}

impl SystemView {
    pub fn of(system: &SystemMetrics) -> Self {
        SystemView {
            uptime: format_uptime(system.bot_uptime),
            plugins_running: system.plugins_running,
            total_plugins: system.total_plugins,
            plugins_crashed: system.plugins_crashed,
            total_events: thousands(system.total_events),
            total_memory: format_mb(system.total_memory_mb),
        }
    }
}

/// A card's state as the page shows it: the blank card of the page's `<template>` (`None`)
/// shows none.
fn state_text<S: serde::Serializer>(state: &Option<PluginState>, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(state.map_or("", PluginState::as_str))
}

/// One plugin's card. `Default` is the blank card the page's `<template>` is rendered from,
/// which the script clones for a plugin the page does not show yet.
#[derive(Debug, Clone, Default, Serialize)]
pub struct CardView {
    pub name: String,
    pub detail_url: String,
    /// None only on the blank card.
    #[serde(serialize_with = "state_text")]
    pub state: Option<PluginState>,
    /// The card's colour.
    pub health: Health,
    // How the index page orders and filters the card, sent so that the live page orders it by
    // the same rules as the server's render without working them out again.
    /// [`Health::problem_rank`].
    pub problem_rank: u8,
    /// [`PluginState::rank`].
    pub state_rank: u8,
    /// The state filters that show the card (`all` always).
    pub filters: Vec<StateFilter>,
    /// The card's CSS classes: its health colour and whether its figures are stale.
    pub classes: String,
    pub badge: String,
    pub version: String,
    pub pid: String,
    pub uptime: String,
    pub cpu: String,
    pub memory: String,
    /// The p95 response time over the last 5 minutes ("—" without answers in them).
    pub response: String,
    /// What the sparklines span: "max 12.5%", "max 40.2 MB".
    pub cpu_range: String,
    pub memory_range: String,
    pub events: String,
    pub crashes: String,
    pub last_exit: Option<String>,
    pub next_retry: Option<String>,
    pub stale: bool,
    pub availability: String,
    pub processes: String,
    // The card's part in the actions, field by field rather than a flattened `CardOperations`:
    // the live updates take a card apart as a plain struct (render::live::fields).
    pub activity: Option<String>,
    pub last_reload: Option<String>,
    pub stoppable: bool,
    pub startable: bool,
}

impl CardView {
    pub fn of(snapshot: &Snapshot, p: &PluginSnapshot, thresholds: Thresholds) -> Self {
        let (health, badge) = Health::of(p, thresholds);
        let stale = snapshot.is_stale(p);
        let problem_rank = health.problem_rank(stale);
        let CardOperations { activity, last_reload, stoppable, startable } = CardOperations::of(p);
        let recent = || p.history.last(SPARK_SAMPLES);
        let cpu_max = recent().map(|s| f64::from(s.cpu_percent)).fold(0.0, f64::max);
        let memory_max = recent().map(|s| s.memory_mb()).fold(0.0, f64::max);
        CardView {
            name: p.name.clone(),
            detail_url: format!("/plugin/{}", p.name),
            state: Some(p.state),
            health,
            problem_rank,
            state_rank: p.state.rank(),
            filters: StateFilter::showing(p.state, problem_rank),
            classes: format!("card health-{}{}", health.as_str(), if stale { " is-stale" } else { "" }),
            badge,
            version: p.version.clone(),
            pid: p.pid.map_or_else(|| "—".to_owned(), |pid| pid.to_string()),
            uptime: format_uptime(p.uptime),
            cpu: format!("{:.1}%", p.cpu_percent),
            memory: format_mb(p.memory_mb()),
            response: format_response(p.response.recent_p95()),
            cpu_range: format!("max {cpu_max:.1}%"),
            memory_range: format!("max {}", format_mb(memory_max)),
            events: thousands(p.events),
            crashes: thousands(p.crashes),
            // The host's own reason for giving up, when it has one, says more than the last exit.
            last_exit: p.operations.failure.clone().filter(|_| p.state == PluginState::Failed).or_else(|| {
                p.crash_log.front().filter(|_| p.state != PluginState::Running || p.crashes > 0).map(crash_reason)
            }),
            next_retry: p.next_restart_in.map(|d| format!("next retry in {} s", d.as_secs_f64().ceil() as u64)),
            stale,
            availability: p.history.availability().map_or_else(|| "—".to_owned(), |a| format!("{:.1}%", a * 100.0)),
            processes: p.processes.to_string(),
            activity,
            last_reload,
            stoppable,
            startable,
        }
    }
}

/// A response time as a card shows it: "312 ms", "2.5 s"; "—" without one.
pub fn format_response(seconds: Option<f64>) -> String {
    match seconds {
        None => "—".to_owned(),
        Some(s) if s < 1.0 => format!("{:.0} ms", s * 1000.0),
        Some(s) => format!("{s:.1} s"),
    }
}

/// A card as the server renders it: the card and its two sparklines drawn (the live page draws
/// them itself from the points of the live updates).
#[derive(Debug, Clone, Default, Serialize)]
pub struct CardPage {
    #[serde(flatten)]
    pub card: CardView,
    pub cpu_spark: String,
    pub memory_spark: String,
}

impl CardPage {
    pub fn of(card: CardView, p: &PluginSnapshot) -> Self {
        let recent: Vec<&Sample> = p.history.last(SPARK_SAMPLES).collect();
        CardPage {
            card,
            cpu_spark: polyline(recent.iter().map(|s| f64::from(s.cpu_percent)), SPARK_BOX, 0.0),
            memory_spark: polyline(recent.iter().map(|s| s.memory_mb()), SPARK_BOX, 0.0),
        }
    }
}

/// One sample as a card's sparklines draw it: CPU %, memory MB.
pub type SparkPoint = [f64; 2];
/// One sample as the detail page's charts draw it: its Unix time in seconds (for the time axis
/// and the read-out), then CPU %, memory MB, events per minute and response-time p95 in ms
/// (the order of [`DetailView::charts`]).
pub type ChartPoint = [f64; 5];

/// Chart values keep the precision of `/api/plugin`'s history: finer steps are invisible in a
/// 120 x 24 sparkline or a 600 x 120 chart, and would only lengthen every live update.
fn point_value(v: f64) -> f64 {
    (v * 100.0).round() / 100.0
}

/// The samples of `history` newer than `after_ms` (all of them without it), oldest first.
fn samples_after(history: &SeriesView, after_ms: Option<u64>) -> usize {
    match after_ms {
        None => history.len(),
        Some(after) => history.iter().rev().take_while(|s| s.at_ms > after).count(),
    }
}

/// The newest sample's time, which the next live update's new points follow.
pub fn newest_sample_ms(history: &SeriesView) -> Option<u64> {
    history.iter().next_back().map(|s| s.at_ms)
}

/// A card's sparkline points: the samples newer than `after_ms`, at most [`SPARK_SAMPLES`].
pub fn spark_points(history: &SeriesView, after_ms: Option<u64>) -> Vec<SparkPoint> {
    let new = samples_after(history, after_ms).min(SPARK_SAMPLES);
    history.last(new).map(|s| [point_value(f64::from(s.cpu_percent)), point_value(s.memory_mb())]).collect()
}

/// The detail charts' points: the samples newer than `after_ms` (the whole window without it).
pub fn chart_points(history: &SeriesView, after_ms: Option<u64>) -> Vec<ChartPoint> {
    let new = samples_after(history, after_ms);
    let rates = events_per_minute(history);
    let skip = history.len() - new;
    history
        .iter()
        .zip(rates)
        .skip(skip)
        .map(|(s, rate)| {
            [
                (s.at_ms / 1000) as f64,
                point_value(f64::from(s.cpu_percent)),
                point_value(s.memory_mb()),
                point_value(rate),
                point_value(f64::from(s.response_ms)),
            ]
        })
        .collect()
}

/// "killed by SIGKILL after 3m 12s"
pub fn crash_reason(crash: &CrashRecord) -> String {
    format!("{} after {}", crash.reason, format_duration(crash.uptime))
}

/// A detail chart's caption; its points travel separately ([`chart_points`]).
#[derive(Debug, Clone, Serialize)]
pub struct ChartView {
    pub key: &'static str,
    pub title: &'static str,
    /// What its values are in: the suffix of its axis labels and read-out (`%`, ` MB`).
    pub unit: &'static str,
    pub max_label: String,
}

/// A chart as the server renders it: its caption, its line drawn on a scale that reads well,
/// the labels of both axes, and the crashes and reloads in its window.
#[derive(Debug, Clone, Serialize)]
pub struct ChartPage {
    #[serde(flatten)]
    pub chart: ChartView,
    pub points: String,
    /// Top first.
    pub value_labels: Vec<String>,
    /// Oldest first.
    pub time_labels: Vec<String>,
    pub markers: Vec<chart::Marker>,
}

#[derive(Debug, Clone, Serialize)]
pub struct LabelValue {
    pub label: &'static str,
    pub value: String,
}

/// One crash-log entry. `Default` is the blank entry of the page's `<template>`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct CrashView {
    pub time: String,
    pub reason: String,
    /// The stderr tail as one text, a line per line (shown in a `<pre>`).
    pub stderr: String,
}

/// The detail page's charts, aggregates, crash log, reload log and command conflicts.
#[derive(Debug, Clone, Serialize)]
pub struct DetailView {
    pub charts: Vec<ChartView>,
    pub aggregates: Vec<LabelValue>,
    pub crash_log: Vec<CrashView>,
    /// Newest first.
    pub reload_log: Vec<ReloadView>,
    pub command_conflicts: Vec<ConflictView>,
}

/// The values of the detail page's charts, one series per chart, in the order of the charts.
fn chart_series(history: &SeriesView) -> [Vec<f64>; 4] {
    let cpu = history.iter().map(|s| f64::from(s.cpu_percent)).collect();
    let memory = history.iter().map(Sample::memory_mb).collect();
    let response = history.iter().map(|s| f64::from(s.response_ms)).collect();
    [cpu, memory, events_per_minute(history), response]
}

impl DetailView {
    pub fn of(p: &PluginSnapshot) -> Self {
        let history = &p.history;
        let [cpu, memory, events, response] = chart_series(history);
        let chart = |key, title, unit, values: &[f64], label: fn(f64) -> String| ChartView {
            key,
            title,
            unit,
            max_label: label(values.iter().copied().fold(0.0, f64::max)),
        };
        DetailView {
            charts: vec![
                chart("cpu", "CPU %", "%", &cpu, |v| format!("{v:.1}%")),
                chart("memory", "Memory", " MB", &memory, format_mb),
                chart("events", "Events per minute", "/min", &events, |v| format!("{v:.0}/min")),
                chart("response", "Response time p95", " ms", &response, |v| format_response(Some(v / 1000.0))),
            ],
            aggregates: aggregate_rows(history.aggregates()),
            crash_log: p
                .crash_log
                .iter()
                .map(|c| CrashView { time: rfc3339(c.at), reason: crash_reason(c), stderr: c.stderr_tail.join("\n") })
                .collect(),
            reload_log: p.operations.reload_log.iter().map(ReloadView::of).collect(),
            command_conflicts: p.command_conflicts.iter().map(ConflictView::of).collect(),
        }
    }
}

/// The detail charts as the server renders them, each line drawn with its axes and markers.
pub fn chart_pages(detail: &DetailView, p: &PluginSnapshot) -> Vec<ChartPage> {
    let series = chart_series(&p.history);
    let (time_labels, markers) = (chart::time_labels(&p.history), chart::markers(p, CHART_BOX.0));
    detail
        .charts
        .iter()
        .zip(series)
        .map(|(chart, values)| {
            let top = chart::nice_ceiling(values.iter().copied().fold(0.0, f64::max));
            ChartPage {
                chart: chart.clone(),
                points: polyline(values.into_iter(), CHART_BOX, top),
                value_labels: chart::value_labels(top, chart.unit),
                time_labels: time_labels.clone(),
                markers: markers.clone(),
            }
        })
        .collect()
}

/// The same rows always ("—" before the first sample), so the page's rows never change shape
/// and the live updates only replace values.
fn aggregate_rows(aggregates: Option<Aggregates>) -> Vec<LabelValue> {
    let a = aggregates.as_ref();
    let row = |label, value: Option<String>| LabelValue { label, value: value.unwrap_or_else(|| "—".to_owned()) };
    let percent = |v: f64| format!("{v:.1}%");
    vec![
        row("Samples", a.map(|a| thousands(a.sample_count as u64))),
        row("Time span", a.map(|a| format_duration(a.time_span))),
        row("CPU avg", a.map(|a| percent(a.cpu.avg))),
        row("CPU p95", a.map(|a| percent(a.cpu.p95))),
        row("CPU max", a.map(|a| percent(a.cpu.max))),
        row("Memory avg", a.map(|a| format_mb(a.memory_mb.avg))),
        row("Memory p95", a.map(|a| format_mb(a.memory_mb.p95))),
        row("Memory max", a.map(|a| format_mb(a.memory_mb.max))),
    ]
}

/// Events per minute between consecutive samples (zero after a counter reset).
fn events_per_minute(history: &SeriesView) -> Vec<f64> {
    let mut previous: Option<&Sample> = None;
    history
        .iter()
        .map(|s| {
            let rate = previous.map_or(0.0, |p| {
                let minutes = s.at_ms.saturating_sub(p.at_ms) as f64 / 60_000.0;
                if minutes > 0.0 { s.events.saturating_sub(p.events) as f64 / minutes } else { 0.0 }
            });
            previous = Some(s);
            rate
        })
        .collect()
}

/// SVG polyline points for values scaled into a `width` x `height` box (higher is up).
pub fn polyline(values: impl ExactSizeIterator<Item = f64>, (width, height): (f64, f64), floor: f64) -> String {
    let values: Vec<f64> = values.collect();
    if values.is_empty() {
        return String::new();
    }
    let max = values.iter().copied().fold(floor, f64::max);
    let step = if values.len() > 1 { width / (values.len() - 1) as f64 } else { 0.0 };
    // Whole units: a sparkline box is 120 x 24, a chart 600 x 120, so finer steps are invisible
    // and would double the size of every page and live update.
    let mut out = String::with_capacity(values.len() * 7);
    for (i, v) in values.iter().enumerate() {
        let y = if max > 0.0 { height - 1.0 - (v / max) * (height - 2.0) } else { height - 1.0 };
        if i > 0 {
            out.push(' ');
        }
        // `round` (half away from zero), as the live page's Math.round on these non-negative
        // numbers; `{:.0}` would round a half to even and draw some points a unit apart.
        out.push_str(&format!("{},{}", (i as f64 * step).round(), y.round()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn response_times_read_in_ms_below_a_second() {
        assert_eq!(format_response(None), "—");
        assert_eq!(format_response(Some(0.3124)), "312 ms");
        assert_eq!(format_response(Some(2.46)), "2.5 s");
    }

    #[test]
    fn polyline_scales_into_the_box() {
        assert_eq!(polyline([0.0, 10.0].into_iter(), (120.0, 24.0), 0.0), "0,23 120,1");
        assert_eq!(polyline([].into_iter(), (120.0, 24.0), 0.0), "");
        assert_eq!(polyline([0.0, 0.0].into_iter(), (120.0, 24.0), 0.0), "0,23 120,23");
    }

    /// The live page draws each line into the box its `<svg>` declares, so the templates'
    /// boxes must be the ones the server draws in.
    #[test]
    fn the_templates_declare_the_boxes_the_server_draws_in() {
        let view_box = |(width, height): (f64, f64)| format!("viewBox=\"0 0 {width} {height}\"");
        let card = include_str!("../../templates/card.html");
        assert_eq!(card.matches("<svg ").count(), card.matches(&view_box(SPARK_BOX)).count(), "{card}");
        let plugin = include_str!("../../templates/plugin.html");
        assert_eq!(plugin.matches("<svg ").count(), plugin.matches(&view_box(CHART_BOX)).count(), "{plugin}");
        assert!(plugin.contains(&view_box(CHART_BOX)), "{plugin}");
    }
}

/// One chat connection on the index page's chat panel, in words.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ChatConnectionView {
    pub name: String,
    pub server: String,
    pub tls: bool,
    /// `registered as rosey, joined #a, #b`, `reconnecting in 4 s`, …
    pub state: String,
    /// The colour: healthy once registered, warning on the way there, error while waiting to
    /// reconnect, idle when stopped.
    pub health: Health,
    pub lag: String,
    pub messages_in: String,
    pub messages_out: String,
    pub replies_dropped: String,
    pub last_error: Option<String>,
}

impl ChatConnectionView {
    pub fn of(status: &ConnectionStatus, now: SystemTime) -> Self {
        let (state, health) = match &status.state {
            LinkState::Connecting => ("connecting".to_owned(), Health::Warning),
            LinkState::Registering => ("connected, logging in".to_owned(), Health::Warning),
            LinkState::Registered => {
                let nick = status.nick.as_deref().map(|n| format!(" as {n}")).unwrap_or_default();
                let joined = if status.channels.is_empty() {
                    ", no channel joined".to_owned()
                } else {
                    format!(", joined {}", status.channels.join(", "))
                };
                (format!("registered{nick}{joined}"), Health::Healthy)
            }
            state @ LinkState::Reconnecting { .. } => {
                let wait = retry_in(state, now).unwrap_or_default();
                (format!("reconnecting in {} s", wait.as_secs_f64().ceil()), Health::Error)
            }
            LinkState::Stopped => ("stopped".to_owned(), Health::Idle),
        };
        ChatConnectionView {
            name: status.name.clone(),
            server: status.server.clone(),
            tls: status.tls,
            state,
            health,
            lag: status.lag_seconds.map_or_else(|| "—".to_owned(), |s| format!("{:.0} ms", s * 1000.0)),
            messages_in: thousands(status.messages_in),
            messages_out: thousands(status.messages_out),
            replies_dropped: thousands(status.replies_dropped),
            last_error: status.last_error.clone(),
        }
    }

    /// The panel's rows, one per connection (none when no connection is configured).
    pub fn all(snapshot: &Snapshot) -> Vec<ChatConnectionView> {
        snapshot.chat.connections.iter().map(|c| ChatConnectionView::of(c, snapshot.taken_at)).collect()
    }
}
