//! How much a plugin needs a look: the colour of its card (green, yellow above a
//! `dashboard.warn_*` threshold, red when crashed or failed), read from its snapshot. The one
//! rule for the dashboard's cards, the API's `health`, the timeline's "card turned yellow" and
//! the terminal's `rosey status`.

use serde::Serialize;

use super::PluginSnapshot;
use crate::config::DashboardConfig;
use crate::plugins::PluginState;

/// When a running plugin's card turns yellow.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Thresholds {
    pub cpu_percent: f64,
    pub memory_mb: f64,
    /// Of the p95 response time over the last 5 minutes.
    pub response_ms: f64,
}

impl Thresholds {
    /// The config's `dashboard.warn_*`.
    pub fn of(config: &DashboardConfig) -> Thresholds {
        Thresholds {
            cpu_percent: config.warn_cpu_percent,
            memory_mb: config.warn_memory_mb,
            response_ms: config.warn_response_ms,
        }
    }
}

/// The card's colour: how much a plugin needs a look.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Health {
    /// RUNNING within the thresholds.
    Healthy,
    /// RUNNING above the CPU, memory or response-time threshold.
    Warning,
    /// CRASHED or FAILED.
    Error,
    /// STARTING or STOPPED.
    #[default]
    Idle,
}

impl Health {
    pub fn as_str(self) -> &'static str {
        match self {
            Health::Healthy => "healthy",
            Health::Warning => "warning",
            Health::Error => "error",
            Health::Idle => "idle",
        }
    }

    /// A plugin's colour and badge ("RUNNING · high CPU and memory"): the one rule for the
    /// cards, the API's `health` and the terminal's `rosey status`.
    pub fn of(p: &PluginSnapshot, thresholds: Thresholds) -> (Health, String) {
        let highs: Vec<&str> = [
            ("CPU", p.cpu_percent > thresholds.cpu_percent),
            ("memory", p.memory_mb() > thresholds.memory_mb),
            ("response time", p.response.recent_p95().is_some_and(|s| s * 1000.0 > thresholds.response_ms)),
        ]
        .into_iter()
        .filter_map(|(what, high)| high.then_some(what))
        .collect();
        match p.state {
            PluginState::Running if !highs.is_empty() => {
                (Health::Warning, format!("RUNNING · high {}", in_words(&highs)))
            }
            PluginState::Running => (Health::Healthy, "RUNNING".to_owned()),
            PluginState::Crashed | PluginState::Failed => (Health::Error, p.state.as_str().to_owned()),
            PluginState::Starting | PluginState::Stopped => (Health::Idle, p.state.as_str().to_owned()),
        }
    }

    /// Worst first, for sorting problems first: 0 for errors, 1 for warnings (and for stale
    /// figures, which need a look whatever the health), 2 for idle, 3 for healthy.
    pub fn problem_rank(self, stale: bool) -> u8 {
        let rank = match self {
            Health::Error => 0,
            Health::Warning => 1,
            Health::Idle => 2,
            Health::Healthy => 3,
        };
        if stale { rank.min(1) } else { rank }
    }
}

/// "CPU", "CPU and memory", "CPU, memory and response time".
fn in_words(items: &[&str]) -> String {
    match items {
        [] => String::new(),
        [one] => (*one).to_owned(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warnings_read_as_words() {
        assert_eq!(in_words(&["CPU"]), "CPU");
        assert_eq!(in_words(&["CPU", "memory"]), "CPU and memory");
        assert_eq!(in_words(&["CPU", "memory", "response time"]), "CPU, memory and response time");
    }
}
