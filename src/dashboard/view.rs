//! What the page shows: snapshot figures formatted once, in Rust, for both the server-side
//! templates and the live updates (the browser only copies these strings into the page).

use serde::Serialize;

use crate::metrics::history::{Aggregates, Sample, SeriesView};
use crate::metrics::{PluginSnapshot, Snapshot, SystemMetrics};
use crate::plugins::{CrashRecord, PluginState};
use crate::timefmt::{format_duration, format_uptime, rfc3339};

/// Samples drawn in a card's sparkline.
const SPARK_SAMPLES: usize = 60;
const SPARK_BOX: (f64, f64) = (120.0, 24.0);
const CHART_BOX: (f64, f64) = (600.0, 120.0);

/// When a running plugin's card turns yellow.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Thresholds {
    pub cpu_percent: f64,
    pub memory_mb: f64,
}

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

/// One plugin's card. `Default` is the blank card the page's `<template>` is rendered from,
/// which the script clones for a plugin the page does not show yet.
#[derive(Debug, Clone, Default, Serialize)]
pub struct CardView {
    pub name: String,
    pub detail_url: String,
    pub state: &'static str,
    /// The card's CSS classes: its health colour and whether its figures are stale.
    pub classes: String,
    pub badge: String,
    pub version: String,
    pub pid: String,
    pub uptime: String,
    pub cpu: String,
    pub memory: String,
    pub events: String,
    pub crashes: String,
    pub last_exit: Option<String>,
    pub next_retry: Option<String>,
    pub stale: bool,
    pub availability: String,
    pub processes: String,
    pub cpu_spark: String,
    pub memory_spark: String,
}

impl CardView {
    pub fn of(snapshot: &Snapshot, p: &PluginSnapshot, thresholds: Thresholds) -> Self {
        let high_cpu = p.cpu_percent > thresholds.cpu_percent;
        let high_memory = p.memory_mb() > thresholds.memory_mb;
        let (health, badge) = match p.state {
            PluginState::Running if high_cpu && high_memory => ("warning", "RUNNING · high CPU and memory".to_owned()),
            PluginState::Running if high_cpu => ("warning", "RUNNING · high CPU".to_owned()),
            PluginState::Running if high_memory => ("warning", "RUNNING · high memory".to_owned()),
            PluginState::Running => ("healthy", "RUNNING".to_owned()),
            PluginState::Crashed | PluginState::Failed => ("error", p.state.as_str().to_owned()),
            PluginState::Starting | PluginState::Stopped => ("idle", p.state.as_str().to_owned()),
        };
        let recent: Vec<&Sample> = p.history.last(SPARK_SAMPLES).collect();
        let stale = snapshot.is_stale(p);
        CardView {
            name: p.name.clone(),
            detail_url: format!("/plugin/{}", p.name),
            state: p.state.as_str(),
            classes: format!("card health-{health}{}", if stale { " is-stale" } else { "" }),
            badge,
            version: p.version.clone(),
            pid: p.pid.map_or_else(|| "—".to_owned(), |pid| pid.to_string()),
            uptime: format_uptime(p.uptime),
            cpu: format!("{:.1}%", p.cpu_percent),
            memory: format_mb(p.memory_mb()),
            events: thousands(p.events),
            crashes: thousands(p.crashes),
            last_exit: p
                .crash_log
                .front()
                .filter(|_| p.state != PluginState::Running || p.crashes > 0)
                .map(crash_reason),
            next_retry: p.next_restart_in.map(|d| format!("next retry in {} s", d.as_secs_f64().ceil() as u64)),
            stale,
            availability: p.history.availability().map_or_else(|| "—".to_owned(), |a| format!("{:.1}%", a * 100.0)),
            processes: p.processes.to_string(),
            cpu_spark: polyline(recent.iter().map(|s| f64::from(s.cpu_percent)), SPARK_BOX, 0.0),
            memory_spark: polyline(recent.iter().map(|s| s.memory_mb()), SPARK_BOX, 0.0),
        }
    }
}

/// "killed by SIGKILL after 3m 12s"
pub fn crash_reason(crash: &CrashRecord) -> String {
    format!("{} after {}", crash.reason, format_duration(crash.uptime))
}

#[derive(Debug, Clone, Serialize)]
pub struct ChartView {
    pub key: &'static str,
    pub title: &'static str,
    pub max_label: String,
    pub points: String,
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

/// The detail page's charts, aggregates and crash log.
#[derive(Debug, Clone, Serialize)]
pub struct DetailView {
    pub charts: Vec<ChartView>,
    pub aggregates: Vec<LabelValue>,
    pub crash_log: Vec<CrashView>,
}

impl DetailView {
    pub fn of(p: &PluginSnapshot) -> Self {
        let history = &p.history;
        let cpu: Vec<f64> = history.iter().map(|s| f64::from(s.cpu_percent)).collect();
        let memory: Vec<f64> = history.iter().map(Sample::memory_mb).collect();
        let events = events_per_minute(history);
        let chart = |key, title, values: &[f64], unit: fn(f64) -> String| ChartView {
            key,
            title,
            max_label: unit(values.iter().copied().fold(0.0, f64::max)),
            points: polyline(values.iter().copied(), CHART_BOX, 0.0),
        };
        DetailView {
            charts: vec![
                chart("cpu", "CPU %", &cpu, |v| format!("{v:.1}%")),
                chart("memory", "Memory", &memory, format_mb),
                chart("events", "Events per minute", &events, |v| format!("{v:.0}/min")),
            ],
            aggregates: aggregate_rows(history.aggregates()),
            crash_log: p
                .crash_log
                .iter()
                .map(|c| CrashView { time: rfc3339(c.at), reason: crash_reason(c), stderr: c.stderr_tail.join("\n") })
                .collect(),
        }
    }
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
        out.push_str(&format!("{:.0},{:.0}", i as f64 * step, y));
    }
    out
}

pub fn format_mb(mb: f64) -> String {
    format!("{mb:.1} MB")
}

/// `1234567` → `1,234,567`.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thousands_groups_digits() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(1_234_567), "1,234,567");
    }

    #[test]
    fn polyline_scales_into_the_box() {
        assert_eq!(polyline([0.0, 10.0].into_iter(), (120.0, 24.0), 0.0), "0,23 120,1");
        assert_eq!(polyline([].into_iter(), (120.0, 24.0), 0.0), "");
        assert_eq!(polyline([0.0, 0.0].into_iter(), (120.0, 24.0), 0.0), "0,23 120,23");
    }
}
