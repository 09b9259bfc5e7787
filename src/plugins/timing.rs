//! How long a plugin takes to answer: a histogram of response times (from the moment a command
//! is written to the plugin's stdin until its reply is read), kept in atomic bucket counters so
//! that timing every command costs a few relaxed atomic adds, and the quantile estimate read
//! from bucket counts (as Prometheus's `histogram_quantile` does). Reload durations use the same
//! buckets: a reload takes from tens of milliseconds (a built-in) to the seconds a plugin may
//! need to say hello and drain.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds of the buckets, in seconds: chat answers take milliseconds to tens of seconds.
/// A last, unbounded bucket (`+Inf`) follows.
pub const BUCKET_BOUNDS: [f64; 12] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];
const BUCKETS: usize = BUCKET_BOUNDS.len() + 1;

/// Response times as they are recorded.
#[derive(Debug, Default)]
pub struct ResponseTimes {
    /// Per bucket (not cumulative), the last one unbounded.
    counts: [AtomicU64; BUCKETS],
    sum_micros: AtomicU64,
}

impl ResponseTimes {
    pub fn record(&self, took: Duration) {
        self.counts[bucket_of(took)].fetch_add(1, Ordering::Relaxed);
        self.sum_micros.fetch_add(micros(took), Ordering::Relaxed);
    }

    /// The counts so far.
    pub fn read(&self) -> Buckets {
        Buckets {
            counts: std::array::from_fn(|i| self.counts[i].load(Ordering::Relaxed)),
            sum_micros: self.sum_micros.load(Ordering::Relaxed),
        }
    }
}

/// The bucket a duration falls in (the last, unbounded one beyond every bound).
fn bucket_of(took: Duration) -> usize {
    let seconds = took.as_secs_f64();
    BUCKET_BOUNDS.iter().position(|&bound| seconds <= bound).unwrap_or(BUCKET_BOUNDS.len())
}

fn micros(took: Duration) -> u64 {
    u64::try_from(took.as_micros()).unwrap_or(u64::MAX)
}

/// Bucket counts at one moment (or the difference between two moments).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Buckets {
    /// Per bucket (not cumulative), the last one unbounded.
    pub counts: [u64; BUCKETS],
    pub sum_micros: u64,
}

impl Buckets {
    /// Count one duration, for a histogram kept under a lock rather than in atomics (reloads).
    pub fn record(&mut self, took: Duration) {
        self.counts[bucket_of(took)] += 1;
        self.sum_micros = self.sum_micros.saturating_add(micros(took));
    }

    pub fn count(&self) -> u64 {
        self.counts.iter().sum()
    }

    pub fn sum_seconds(&self) -> f64 {
        self.sum_micros as f64 / 1e6
    }

    /// `(upper bound, cumulative count)` per bucket, as Prometheus writes `_bucket{le}`; the
    /// unbounded one's bound is `None`.
    pub fn cumulative(&self) -> impl Iterator<Item = (Option<f64>, u64)> + '_ {
        let bounds = BUCKET_BOUNDS.iter().map(|&b| Some(b)).chain([None]);
        bounds.zip(self.counts.iter().scan(0u64, |total, &c| {
            *total += c;
            Some(*total)
        }))
    }

    /// What was recorded after `earlier` (a reading of the same counters).
    pub fn since(&self, earlier: &Buckets) -> Buckets {
        Buckets {
            counts: std::array::from_fn(|i| self.counts[i].saturating_sub(earlier.counts[i])),
            sum_micros: self.sum_micros.saturating_sub(earlier.sum_micros),
        }
    }

    /// The `q` quantile (0..1) in seconds, estimated as `histogram_quantile` does: the bucket
    /// holding the rank, linear within it (the first from 0); a rank in the unbounded bucket
    /// reads as the highest bound. None without samples.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        let total = self.count();
        if total == 0 {
            return None;
        }
        let rank = q.clamp(0.0, 1.0) * total as f64;
        let mut below = 0u64;
        for (i, &count) in self.counts.iter().enumerate() {
            let Some(&upper) = BUCKET_BOUNDS.get(i) else { break };
            if count > 0 && (below + count) as f64 >= rank {
                let lower = if i == 0 { 0.0 } else { BUCKET_BOUNDS[i - 1] };
                return Some(lower + (upper - lower) * ((rank - below as f64) / count as f64).max(0.0));
            }
            below += count;
        }
        Some(BUCKET_BOUNDS[BUCKET_BOUNDS.len() - 1])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recorded(millis: &[u64]) -> Buckets {
        let times = ResponseTimes::default();
        for &ms in millis {
            times.record(Duration::from_millis(ms));
        }
        times.read()
    }

    #[test]
    fn quantiles_interpolate_within_the_bucket_like_prometheus() {
        // 100 answers of 300 ms: all in (0.25, 0.5]; the median is halfway through it.
        let b = recorded(&[300; 100]);
        assert_eq!(b.count(), 100);
        assert!((b.sum_seconds() - 30.0).abs() < 1e-9);
        assert_eq!(b.quantile(0.5), Some(0.375));
        assert_eq!(b.quantile(0.95), Some(0.25 + 0.25 * 0.95));
        assert_eq!(Buckets::default().quantile(0.5), None, "no samples, no estimate");
        assert_eq!(recorded(&[60_000]).quantile(0.99), Some(30.0), "beyond the last bound reads as it");
    }

    #[test]
    fn cumulative_counts_and_differences() {
        let early = recorded(&[1, 7]);
        let later = recorded(&[1, 7, 7, 2_000]);
        let window = later.since(&early);
        assert_eq!(window.count(), 2);
        let cumulative: Vec<(Option<f64>, u64)> = window.cumulative().collect();
        assert_eq!(cumulative[0], (Some(0.005), 0));
        assert_eq!(cumulative[1], (Some(0.01), 1));
        assert_eq!(cumulative[8], (Some(2.5), 2));
        assert_eq!(cumulative.last(), Some(&(None, 2)));
    }

    #[test]
    fn a_histogram_under_a_lock_counts_like_the_atomic_one() {
        let mut reloads = Buckets::default();
        for ms in [1, 7, 7, 2_000] {
            reloads.record(Duration::from_millis(ms));
        }
        assert_eq!(reloads, recorded(&[1, 7, 7, 2_000]));
    }
}
