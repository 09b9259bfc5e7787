//! The shape of the configuration: [`RawConfig`], what the user may write (every unknown key is
//! an error, every single-key rule is in a field's type), and [`Config`], what the program runs
//! on once [`RawConfig::check`](super::check) has applied the rules that span keys.

use std::collections::BTreeMap;
use std::fmt;
use std::num::{NonZeroU16, NonZeroUsize};
use std::path::PathBuf;
use std::time::Duration;

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize};

use super::numbers::{DelayRange, HistoryRange, NonNegative, PollRange, ReloadRange, Seconds};
use crate::plugins::spec::{DEFAULT_COMMAND_TIMEOUT, PluginConfig, ReloadPolicy, RestartPolicy};

/// The configuration as written: defaults, file and environment merged, not yet checked.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct RawConfig {
    pub dashboard: RawDashboard,
    pub metrics: RawMetrics,
    pub plugins: Vec<RawPlugin>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawDashboard {
    pub enabled: bool,
    pub host: Host,
    pub port: NonZeroU16,
    pub warn_cpu_percent: NonNegative,
    pub warn_memory_mb: NonNegative,
    pub max_sse_clients: NonZeroUsize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auth: Option<RawAuth>,
}

/// A host name or address to listen on: not blank.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(transparent)]
pub struct Host(String);

impl<'de> Deserialize<'de> for Host {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let host = String::deserialize(deserializer)?;
        if host.trim().is_empty() {
            return Err(D::Error::custom("expected a host name or IP address, found an empty string"));
        }
        Ok(Host(host))
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct RawAuth {
    pub username: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password_file: Option<PathBuf>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawMetrics {
    pub poll_interval: Seconds<PollRange>,
    pub history_duration: Seconds<HistoryRange>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawPlugin {
    /// Text, not yet a `PluginName`: every message about this plugin quotes it as written.
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub builtin: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub command: Option<Vec<String>>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cwd: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub commands: Vec<String>,
    pub restart: RawRestart,
    pub reload_timeout: Seconds<ReloadRange>,
    pub drain_timeout: Seconds<ReloadRange>,
    pub command_timeout: Seconds<ReloadRange>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawRestart {
    pub enabled: bool,
    pub max_attempts: u32,
    pub initial_delay: Seconds<DelayRange>,
    pub max_delay: Seconds<DelayRange>,
    pub reset_window: Seconds<DelayRange>,
}

impl Default for RawDashboard {
    fn default() -> Self {
        RawDashboard {
            enabled: true,
            host: Host("0.0.0.0".to_owned()),
            port: NonZeroU16::new(8080).expect("8080 is not zero"),
            warn_cpu_percent: NonNegative::of(50),
            warn_memory_mb: NonNegative::of(100),
            max_sse_clients: NonZeroUsize::new(1024).expect("1024 is not zero"),
            auth: None,
        }
    }
}

impl Default for RawMetrics {
    fn default() -> Self {
        RawMetrics {
            poll_interval: Seconds::builtin(Duration::from_secs(5)),
            history_duration: Seconds::builtin(Duration::from_secs(3600)),
        }
    }
}

impl Default for RawPlugin {
    /// The plugins' own default reload policy, so the two cannot drift apart.
    fn default() -> Self {
        let reload = ReloadPolicy::default();
        RawPlugin {
            name: String::new(),
            builtin: None,
            command: None,
            env: BTreeMap::new(),
            cwd: None,
            version: None,
            commands: Vec::new(),
            restart: RawRestart::default(),
            reload_timeout: Seconds::builtin(reload.ready_timeout),
            drain_timeout: Seconds::builtin(reload.drain_timeout),
            command_timeout: Seconds::builtin(DEFAULT_COMMAND_TIMEOUT),
        }
    }
}

impl Default for RawRestart {
    /// The plugins' own default policy, so the two cannot drift apart.
    fn default() -> Self {
        let policy = RestartPolicy::default();
        RawRestart {
            enabled: policy.enabled,
            max_attempts: policy.max_attempts,
            initial_delay: Seconds::builtin(policy.initial_delay),
            max_delay: Seconds::builtin(policy.max_delay),
            reset_window: Seconds::builtin(policy.reset_window),
        }
    }
}

impl From<&RawRestart> for RestartPolicy {
    fn from(raw: &RawRestart) -> Self {
        RestartPolicy {
            enabled: raw.enabled,
            max_attempts: raw.max_attempts,
            initial_delay: raw.initial_delay.duration(),
            max_delay: raw.max_delay.duration(),
            reset_window: raw.reset_window.duration(),
        }
    }
}

impl RawConfig {
    /// The merged config as an operator should see it: the password is never printed.
    pub fn redacted(&self) -> RawConfig {
        let mut copy = self.clone();
        if let Some(auth) = copy.dashboard.auth.as_mut()
            && auth.password.is_some()
        {
            auth.password = Some("<redacted>".to_owned());
        }
        copy
    }
}

// ---------------------------------------------------------------------------------------------
// Checked config: what the program runs on.

/// The checked configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub dashboard: DashboardConfig,
    pub metrics: MetricsConfig,
    pub plugins: Vec<PluginConfig>,
}

#[derive(Debug, Clone)]
pub struct DashboardConfig {
    pub enabled: bool,
    pub host: String,
    pub port: u16,
    pub warn_cpu_percent: f64,
    pub warn_memory_mb: f64,
    pub max_sse_clients: usize,
    pub auth: Option<BasicAuth>,
}

/// HTTP basic-auth credentials. `Debug` never shows the password.
#[derive(Clone)]
pub struct BasicAuth {
    pub username: String,
    pub password: String,
}

impl fmt::Debug for BasicAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BasicAuth").field("username", &self.username).field("password", &"<redacted>").finish()
    }
}

#[derive(Debug, Clone, Copy)]
pub struct MetricsConfig {
    pub poll_interval: Duration,
    pub history_duration: Duration,
}

impl MetricsConfig {
    /// How many samples the history window holds per plugin.
    pub fn history_capacity(&self) -> usize {
        (self.history_duration.as_secs_f64() / self.poll_interval.as_secs_f64()).floor().max(1.0) as usize
    }
}

impl RawDashboard {
    /// The checked form, given the credentials checked beside it.
    pub(super) fn checked(&self, auth: Option<BasicAuth>) -> DashboardConfig {
        DashboardConfig {
            enabled: self.enabled,
            host: self.host.0.clone(),
            port: self.port.get(),
            warn_cpu_percent: self.warn_cpu_percent.get(),
            warn_memory_mb: self.warn_memory_mb.get(),
            max_sse_clients: self.max_sse_clients.get(),
            auth,
        }
    }
}
