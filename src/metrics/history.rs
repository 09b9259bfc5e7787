//! The rolling per-plugin history: compact samples in shared, immutable chunks.
//!
//! A [`Series`] is written only by the collector. Full chunks are frozen into `Arc<[Sample]>`,
//! so a snapshot's [`SeriesView`] shares them (a few reference counts per plugin per tick)
//! instead of copying an hour of samples, and readers never touch the writer's state.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;

use crate::plugins::PluginState;

/// Samples per frozen chunk.
const CHUNK: usize = 32;

/// One reading of one plugin: 32 bytes, no strings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    /// Unix time in milliseconds.
    pub at_ms: u64,
    /// Cumulative events routed to the plugin.
    pub events: u64,
    /// Percent of one core, whole process tree.
    pub cpu_percent: f32,
    /// Resident memory of the whole tree in KiB.
    pub memory_kib: u32,
    /// The p95 response time, in milliseconds, of the answers read since the previous sample
    /// (0 when there were none): the detail page's response-time chart.
    pub response_ms: f32,
    /// The state at `at_ms`, except that a point after a crash says CRASHED even when the
    /// plugin was restarted within the interval (so a quick restart still shows).
    pub state: PluginState,
}

impl Sample {
    pub fn at(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(self.at_ms)
    }

    pub fn memory_mb(&self) -> f64 {
        f64::from(self.memory_kib) / 1024.0
    }
}

/// The writer's side of one plugin's history: at most `capacity` samples are visible.
#[derive(Debug)]
pub struct Series {
    sealed: VecDeque<Arc<[Sample]>>,
    sealed_len: usize,
    open: Vec<Sample>,
    capacity: usize,
    /// RUNNING samples in the window, kept as samples come and go: every card shows the
    /// availability on every snapshot, and counting it afresh read the whole hour of every plugin.
    running: usize,
}

impl Series {
    pub fn new(capacity: usize) -> Self {
        Series {
            sealed: VecDeque::new(),
            sealed_len: 0,
            open: Vec::with_capacity(CHUNK),
            capacity: capacity.max(1),
            running: 0,
        }
    }

    pub fn push(&mut self, sample: Sample) {
        self.running += usize::from(sample.state == PluginState::Running);
        if let Some(leaving) = self.oldest_in_window().filter(|_| self.len() == self.capacity) {
            self.running -= usize::from(leaving.state == PluginState::Running);
        }
        self.open.push(sample);
        if self.open.len() == CHUNK {
            let full = std::mem::replace(&mut self.open, Vec::with_capacity(CHUNK));
            self.sealed_len += full.len();
            self.sealed.push_back(Arc::from(full));
        }
        // Drop whole chunks once the rest still covers the window.
        while let Some(front) = self.sealed.front() {
            if self.sealed_len + self.open.len() - front.len() < self.capacity {
                break;
            }
            self.sealed_len -= front.len();
            self.sealed.pop_front();
        }
    }

    /// Samples in the window.
    fn len(&self) -> usize {
        (self.sealed_len + self.open.len()).min(self.capacity)
    }

    /// Samples still held that are older than the window (fewer than a chunk).
    fn skipped(&self) -> usize {
        (self.sealed_len + self.open.len()).saturating_sub(self.capacity)
    }

    /// The first sample of the window: the one a push moves out of a full window.
    fn oldest_in_window(&self) -> Option<&Sample> {
        self.sealed.iter().flat_map(|chunk| chunk.iter()).chain(&self.open).nth(self.skipped())
    }

    /// An immutable view of the window, sharing the frozen chunks.
    pub fn view(&self) -> SeriesView {
        let mut chunks: Vec<Arc<[Sample]>> = self.sealed.iter().cloned().collect();
        if !self.open.is_empty() {
            chunks.push(Arc::from(self.open.as_slice()));
        }
        SeriesView { chunks, skip: self.skipped(), len: self.len(), running: self.running }
    }

    /// Bytes held by this series (for the memory budget benchmark).
    pub fn heap_bytes(&self) -> usize {
        let sample = std::mem::size_of::<Sample>();
        self.sealed.len() * (CHUNK * sample + 2 * std::mem::size_of::<usize>())
            + self.open.capacity() * sample
            + self.sealed.capacity() * std::mem::size_of::<Arc<[Sample]>>()
    }
}

/// A read-only window of samples, oldest first.
#[derive(Debug, Clone, Default)]
pub struct SeriesView {
    chunks: Vec<Arc<[Sample]>>,
    skip: usize,
    len: usize,
    /// RUNNING samples among them.
    running: usize,
}

impl SeriesView {
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn iter(&self) -> impl DoubleEndedIterator<Item = &Sample> + '_ {
        // Only leading chunks are skipped, wholly or in part: find where the window starts.
        let (mut first, mut offset) = (0, self.skip);
        while first < self.chunks.len() && offset >= self.chunks[first].len() {
            offset -= self.chunks[first].len();
            first += 1;
        }
        self.chunks[first..].iter().enumerate().flat_map(move |(i, c)| c[if i == 0 { offset } else { 0 }..].iter())
    }

    /// The newest `n` samples, oldest first.
    pub fn last(&self, n: usize) -> impl Iterator<Item = &Sample> + '_ {
        self.iter().skip(self.len.saturating_sub(n))
    }

    /// Samples no older than `window` before the newest one.
    pub fn within(&self, window: Duration) -> impl Iterator<Item = &Sample> + '_ {
        let newest = self.iter().next_back().map_or(0, |s| s.at_ms);
        let cutoff = newest.saturating_sub(window.as_millis() as u64);
        self.iter().filter(move |s| s.at_ms >= cutoff)
    }

    /// Fraction of samples in which the plugin was RUNNING (None without samples).
    pub fn availability(&self) -> Option<f64> {
        if self.len == 0 {
            return None;
        }
        Some(self.running as f64 / self.len as f64)
    }

    pub fn aggregates(&self) -> Option<Aggregates> {
        Aggregates::of(self.iter())
    }
}

/// avg / min / max / p95 of one quantity.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Stats {
    pub avg: f64,
    pub min: f64,
    pub max: f64,
    pub p95: f64,
}

impl Stats {
    /// None for no values. p95 is nearest-rank: the value at rank ceil(0.95 n).
    pub fn of(values: &mut [f64]) -> Option<Stats> {
        if values.is_empty() {
            return None;
        }
        let n = values.len();
        let sum: f64 = values.iter().sum();
        let min = values.iter().copied().fold(f64::INFINITY, f64::min);
        let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let rank = ((0.95 * n as f64).ceil() as usize).clamp(1, n);
        let (_, p95, _) = values.select_nth_unstable_by(rank - 1, f64::total_cmp);
        Some(Stats { avg: sum / n as f64, min, max, p95: *p95 })
    }

    fn rounded(self) -> Stats {
        let r = |v: f64| (v * 100.0).round() / 100.0;
        Stats { avg: r(self.avg), min: r(self.min), max: r(self.max), p95: r(self.p95) }
    }
}

/// Aggregates over a window of samples, as the seed's `aggregates_1h` reports them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Aggregates {
    pub sample_count: usize,
    pub time_span: Duration,
    pub cpu: Stats,
    pub memory_mb: Stats,
}

impl Aggregates {
    pub fn of<'a>(samples: impl Iterator<Item = &'a Sample>) -> Option<Aggregates> {
        let mut cpu = Vec::with_capacity(720);
        let mut memory = Vec::with_capacity(720);
        let (mut first, mut last) = (None, 0);
        for s in samples {
            first.get_or_insert(s.at_ms);
            last = s.at_ms;
            cpu.push(f64::from(s.cpu_percent));
            memory.push(s.memory_mb());
        }
        Some(Aggregates {
            sample_count: cpu.len(),
            time_span: Duration::from_millis(last.saturating_sub(first?)),
            cpu: Stats::of(&mut cpu)?.rounded(),
            memory_mb: Stats::of(&mut memory)?.rounded(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(at_s: u64, cpu: f32) -> Sample {
        Sample {
            at_ms: at_s * 1000,
            events: 0,
            cpu_percent: cpu,
            memory_kib: 1024,
            response_ms: 0.0,
            state: PluginState::Running,
        }
    }

    #[test]
    fn seed_aggregates_on_known_values() {
        let mut values = [10.0, 20.0, 30.0, 40.0, 50.0];
        let stats = Stats::of(&mut values).expect("five values");
        assert_eq!(stats, Stats { avg: 30.0, min: 10.0, max: 50.0, p95: 50.0 });
    }

    #[test]
    fn p95_is_nearest_rank() {
        let mut values: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(Stats::of(&mut values).map(|s| s.p95), Some(95.0));
        assert_eq!(Stats::of(&mut []), None);
    }

    #[test]
    fn window_never_holds_more_than_its_capacity() {
        // A 10 s window at 1 s polls.
        let mut series = Series::new(10);
        for t in 0..200 {
            series.push(sample(t, t as f32));
            let view = series.view();
            assert!(view.len() <= 10);
            assert_eq!(view.iter().count(), view.len());
            assert_eq!(view.iter().last().map(|s| s.at_ms), Some(t * 1000));
        }
        let view = series.view();
        let oldest = view.iter().next().map(|s| s.at_ms / 1000);
        assert_eq!(oldest, Some(190), "the oldest of 10 samples at 1 s is 9 s older than the newest");
        // Memory stays bounded: the window plus at most one chunk.
        assert!(series.sealed_len + series.open.len() <= 10 + CHUNK);
    }

    #[test]
    fn views_are_unaffected_by_later_writes() {
        let mut series = Series::new(100);
        for t in 0..40 {
            series.push(sample(t, 1.0));
        }
        let before = series.view();
        for t in 40..200 {
            series.push(sample(t, 2.0));
        }
        assert_eq!(before.len(), 40);
        assert!(before.iter().all(|s| s.cpu_percent == 1.0));
    }

    #[test]
    fn aggregates_cover_the_window_and_its_span() {
        let mut series = Series::new(720);
        for (t, cpu) in [(0, 10.0), (5, 20.0), (10, 30.0), (15, 40.0), (20, 50.0)] {
            series.push(sample(t, cpu));
        }
        let agg = series.view().aggregates().expect("samples exist");
        assert_eq!(agg.sample_count, 5);
        assert_eq!(agg.time_span, Duration::from_secs(20));
        assert_eq!(agg.cpu, Stats { avg: 30.0, min: 10.0, max: 50.0, p95: 50.0 });
        assert_eq!(agg.memory_mb.avg, 1.0);
    }

    #[test]
    fn within_limits_by_duration_and_last_by_count() {
        let mut series = Series::new(720);
        for t in 0..100 {
            series.push(sample(t * 5, 0.0));
        }
        let view = series.view();
        assert_eq!(view.within(Duration::from_secs(60)).count(), 13);
        assert_eq!(view.last(60).count(), 60);
        assert_eq!(view.last(60).next().map(|s| s.at_ms), Some(40 * 5000));
    }

    #[test]
    fn availability_counts_running_samples() {
        let mut series = Series::new(10);
        for t in 0..4 {
            let mut s = sample(t, 0.0);
            if t == 0 {
                s.state = PluginState::Crashed;
            }
            series.push(s);
        }
        assert_eq!(series.view().availability(), Some(0.75));
    }

    /// The count kept as samples come and go is the count of the window, as it rolls over
    /// chunk boundaries and for windows shorter and longer than a chunk.
    #[test]
    fn availability_follows_the_rolling_window() {
        for capacity in [1, 5, CHUNK, CHUNK + 7, 3 * CHUNK] {
            let mut series = Series::new(capacity);
            for t in 0..(5 * CHUNK as u64) {
                let mut s = sample(t, 0.0);
                if t % 3 == 0 || t % 7 == 0 {
                    s.state = PluginState::Crashed;
                }
                series.push(s);
                let view = series.view();
                let counted = view.iter().filter(|s| s.state == PluginState::Running).count();
                assert_eq!(view.availability(), Some(counted as f64 / view.len() as f64), "capacity {capacity}, t {t}");
            }
        }
    }
}
