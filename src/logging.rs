//! Logging to stderr through `tracing`; the level comes from `ROSEY_LOG` (default `info`).
//! [`LogBudget`] rate-limits the log lines that a plugin or a chat flood can cause.

use std::fmt;
use std::io::IsTerminal;
use std::time::{Duration, Instant};

use tracing_subscriber::EnvFilter;

/// The environment variable holding the log filter, e.g. `debug` or `rosey=debug,poem=warn`.
pub const LOG_ENV: &str = "ROSEY_LOG";

/// Log to stderr at the level `ROSEY_LOG` asks for. A filter that does not parse is reported
/// (once logging works) rather than silently replaced by `info`.
pub fn init() {
    let spec = std::env::var(LOG_ENV).ok().filter(|s| !s.trim().is_empty());
    let parsed = spec.as_deref().map(EnvFilter::try_new);
    let (filter, problem) = match parsed {
        None => (EnvFilter::new("info"), None),
        Some(Ok(filter)) => (filter, None),
        Some(Err(e)) => (EnvFilter::new("info"), Some(e)),
    };
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .init();
    if let (Some(spec), Some(e)) = (spec, problem) {
        tracing::warn!("{LOG_ENV}={spec:?} is not a valid log filter ({e}); logging at info");
    }
}

/// Keeps one source of log lines (a plugin's stderr, its protocol errors, dropped chat
/// commands) from flooding the log: at most `per_window` lines per window, the rest counted and
/// reported with the next line that is logged.
#[derive(Debug)]
pub struct LogBudget {
    per_window: u32,
    window: Duration,
    window_start: Option<Instant>,
    used: u32,
    suppressed: u64,
}

/// How many lines were left out before the one being logged; displays as a note to append
/// to it (nothing when none were).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Suppressed(pub u64);

impl fmt::Display for Suppressed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            0 => Ok(()),
            1 => f.write_str(" (1 similar line before this one was not logged)"),
            n => write!(f, " ({n} similar lines before this one were not logged)"),
        }
    }
}

impl LogBudget {
    pub fn new(per_window: u32, window: Duration) -> Self {
        LogBudget { per_window, window, window_start: None, used: 0, suppressed: 0 }
    }

    /// May the next line be logged? `Some` with the count of lines left out since the last
    /// logged one, or `None`: count it, do not log it.
    pub fn admit(&mut self) -> Option<Suppressed> {
        self.admit_at(Instant::now())
    }

    fn admit_at(&mut self, now: Instant) -> Option<Suppressed> {
        if self.window_start.is_none_or(|start| now.duration_since(start) >= self.window) {
            self.window_start = Some(now);
            self.used = 0;
        }
        if self.used >= self.per_window {
            self.suppressed += 1;
            return None;
        }
        self.used += 1;
        Some(Suppressed(std::mem::take(&mut self.suppressed)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flood_is_cut_to_the_budget_and_the_rest_is_counted() {
        let mut budget = LogBudget::new(3, Duration::from_secs(1));
        let start = Instant::now();
        let first: Vec<Option<Suppressed>> = (0..10).map(|_| budget.admit_at(start)).collect();
        assert_eq!(first[..3], [Some(Suppressed(0)); 3]);
        assert!(first[3..].iter().all(Option::is_none));
        let later = start + Duration::from_secs(1);
        assert_eq!(budget.admit_at(later), Some(Suppressed(7)), "the next logged line reports the gap");
        assert_eq!(budget.admit_at(later), Some(Suppressed(0)));
        assert_eq!(Suppressed(7).to_string(), " (7 similar lines before this one were not logged)");
        assert_eq!(Suppressed(0).to_string(), "");
    }
}
