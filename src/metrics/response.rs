//! Response-time quantiles over recent windows. The host's bucket counters only grow; the
//! collector keeps a reading of them every [`MARK_EVERY`] for the last hour, so a window's
//! histogram is the reading now minus the one taken at the window's start, and its quantiles
//! are estimated from those summed buckets (linear within a bucket, like Prometheus's
//! `histogram_quantile`). The window's start is the newest reading at or before it, so a
//! window may reach up to [`MARK_EVERY`] further back than it says. The last reading of all is
//! kept too, so each history sample can say what the answers since the previous one took.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::plugins::timing::Buckets;

/// How often a reading of a plugin's bucket counters is kept.
pub const MARK_EVERY: Duration = Duration::from_secs(30);
/// The windows reported, shortest first.
pub const WINDOWS: [(&str, Duration); 2] = [("5m", Duration::from_secs(300)), ("1h", Duration::from_secs(3600))];

/// Readings of one plugin's counters, oldest first, and the latest reading.
#[derive(Debug, Default)]
pub struct Marks {
    kept: VecDeque<(Instant, Buckets)>,
    latest: Buckets,
}

impl Marks {
    /// Keep `now`'s reading if the newest kept is [`MARK_EVERY`] old and differs from it; forget
    /// those no window needs. A reading equal to the newest kept stands for it, so a window
    /// starting between the two finds the same counts: a quiet plugin (most of a thousand) keeps
    /// one reading instead of an hour of equal ones. Returns what was recorded since the
    /// previous call (a history sample's answers).
    pub fn record(&mut self, now: Instant, reading: Buckets) -> Buckets {
        let interval = reading.since(&self.latest);
        self.latest = reading;
        if self.kept.back().is_some_and(|(at, kept)| now.duration_since(*at) < MARK_EVERY || *kept == reading) {
            return interval;
        }
        self.kept.push_back((now, reading));
        let longest = WINDOWS[WINDOWS.len() - 1].1;
        // The oldest is kept while the next one is still inside the longest window.
        while self.kept.get(1).is_some_and(|(at, _)| now.duration_since(*at) >= longest) {
            self.kept.pop_front();
        }
        interval
    }

    /// What was recorded in the last `window` before `now`, given the counters read `now`.
    /// Without a reading that old, everything counted so far (the plugin is younger).
    pub fn window(&self, now: Instant, window: Duration, reading: &Buckets) -> Buckets {
        let start = self.kept.iter().rev().find(|(at, _)| now.duration_since(*at) >= window);
        match start {
            Some((_, earlier)) => reading.since(earlier),
            None => *reading,
        }
    }
}

/// p50, p95 and p99 of one window, in seconds (None without answers in it).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Quantiles {
    pub count: u64,
    pub p50: Option<f64>,
    pub p95: Option<f64>,
    pub p99: Option<f64>,
}

impl Quantiles {
    pub fn of(buckets: &Buckets) -> Quantiles {
        Quantiles {
            count: buckets.count(),
            p50: buckets.quantile(0.5),
            p95: buckets.quantile(0.95),
            p99: buckets.quantile(0.99),
        }
    }
}

/// A plugin's response times: everything since it was added, and each of [`WINDOWS`].
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ResponseSummary {
    pub total: Buckets,
    pub windows: [Quantiles; WINDOWS.len()],
}

impl ResponseSummary {
    pub fn new(marks: &Marks, now: Instant, reading: Buckets) -> ResponseSummary {
        ResponseSummary {
            total: reading,
            windows: WINDOWS.map(|(_, window)| Quantiles::of(&marks.window(now, window, &reading))),
        }
    }

    /// The 5-minute p95, for cards, the listing and the warning threshold.
    pub fn recent_p95(&self) -> Option<f64> {
        self.windows[0].p95
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugins::timing::ResponseTimes;

    #[test]
    fn a_window_counts_only_what_came_after_its_start() {
        let times = ResponseTimes::default();
        let mut marks = Marks::default();
        let t0 = Instant::now();
        // An hour of slow answers, then ten minutes of fast ones.
        for minute in 0..70u64 {
            let now = t0 + Duration::from_secs(minute * 60);
            let took = if minute < 60 { 2_000 } else { 3 };
            for _ in 0..10 {
                times.record(Duration::from_millis(took));
            }
            marks.record(now, times.read());
        }
        times.record(Duration::from_millis(300));
        let interval = marks.record(t0 + Duration::from_secs(69 * 60 + 5), times.read());
        assert_eq!(interval.count(), 1, "a sample's answers are those since the previous one");
        let now = t0 + Duration::from_secs(69 * 60);
        let summary = ResponseSummary::new(&marks, now, times.read());
        let [recent, hour] = summary.windows;
        assert_eq!(recent.count, 51, "the readings at 64..=69 minutes: 5 minutes of answers, and the last one");
        assert!(recent.p95.is_some_and(|p| p <= 0.005), "{recent:?}");
        assert_eq!(hour.count, 601);
        assert!(hour.p50.is_some_and(|p| p > 1.0), "most of the hour was slow: {hour:?}");
        assert_eq!(summary.total.count(), 701);
        assert!(marks.kept.len() <= 62, "an hour of minute readings, not all: {}", marks.kept.len());
    }

    #[test]
    fn a_quiet_plugin_keeps_one_reading_and_its_windows_still_count_right() {
        let times = ResponseTimes::default();
        let mut marks = Marks::default();
        let t0 = Instant::now();
        times.record(Duration::from_millis(20));
        // Quiet for two hours after one answer, then one more answer.
        for minute in 0..120u64 {
            marks.record(t0 + Duration::from_secs(minute * 60), times.read());
        }
        assert_eq!(marks.kept.len(), 1, "equal readings are not kept again");
        times.record(Duration::from_millis(20));
        let now = t0 + Duration::from_secs(121 * 60);
        marks.record(now, times.read());
        let summary = ResponseSummary::new(&marks, now, times.read());
        let [recent, hour] = summary.windows;
        assert_eq!((recent.count, hour.count), (1, 1), "only the new answer is in either window");
    }
}
