//! The shape of the configuration: [`RawConfig`], what the user may write (every unknown key is
//! an error, every single-key rule is in a field's type), and [`Config`], what the program runs
//! on once [`RawConfig::check`](super::check) has applied the rules that span keys.

use std::collections::BTreeMap;
use std::fmt;
use std::num::{NonZeroU16, NonZeroU32, NonZeroU64, NonZeroUsize};
use std::path::PathBuf;
use std::time::Duration;

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize};

use super::events::{NotifyConfig, RawNotify, RawTimeline, TimelineConfig};
use super::ip_range::IpRange;
use super::irc::IrcSettings;
use super::login::Login;
use super::numbers::{ChatRange, DelayRange, HistoryRange, NonNegative, PollRange, ReloadRange, Seconds};
use crate::plugins::output_log::{FileSettings, LogSettings};
use crate::plugins::spec::{
    DEFAULT_COMMAND_TIMEOUT, DEFAULT_MEMORY_RECYCLES, DEFAULT_MEMORY_SAMPLES, DEFAULT_MEMORY_WINDOW,
    DEFAULT_PROBE_TIMEOUT, PluginConfig, ReloadPolicy, RestartPolicy,
};

/// The configuration as written: defaults, file and environment merged, not yet checked.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct RawConfig {
    pub dashboard: RawDashboard,
    pub metrics: RawMetrics,
    pub plugins: Vec<RawPlugin>,
    pub chat: RawChat,
    pub timeline: RawTimeline,
    pub notify: RawNotify,
    /// Chat accounts allowed to use `!admin` on every chat network (PRD Appendix A).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub admins: Vec<String>,
    /// One more admin, the bot's owner (Sortie 4).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    pub logs: RawLogs,
}

/// `chat`: the console and the chat networks.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawChat {
    /// Read chat from stdin; off for a service, whose stdin is `/dev/null`.
    pub console: bool,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub irc: Vec<RawIrc>,
}

impl Default for RawChat {
    fn default() -> Self {
        RawChat { console: true, irc: Vec::new() }
    }
}

/// `chat.irc[N]`: one IRC (or Twitch chat) connection, as written.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawIrc {
    pub name: String,
    pub server: String,
    /// 6697 with TLS, 6667 without.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<NonZeroU16>,
    pub tls: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_ca: Option<PathBuf>,
    pub nick: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub alt_nicks: Vec<String>,
    /// The user name (ident); the nick when not given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub realname: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password_env: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password_file: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sasl: Option<RawSasl>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub channels: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub admins: Vec<String>,
    /// Twitch chat: its capabilities, user ids as accounts, its flood limit.
    pub twitch: bool,
    pub max_reply_lines: NonZeroUsize,
    /// Lines sent at once before the pace applies (default 4, Twitch 5).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub flood_burst: Option<NonZeroU32>,
    /// Seconds between lines after the burst (default 2).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub flood_interval: Option<Seconds<ChatRange>>,
    pub queue: NonZeroUsize,
    pub idle_ping: Seconds<ChatRange>,
    pub ping_timeout: Seconds<ChatRange>,
    pub reconnect_delay: Seconds<ChatRange>,
    pub reconnect_max_delay: Seconds<ChatRange>,
}

impl Default for RawIrc {
    fn default() -> Self {
        RawIrc {
            name: String::new(),
            server: String::new(),
            port: None,
            tls: true,
            tls_ca: None,
            nick: String::new(),
            alt_nicks: Vec::new(),
            user: None,
            realname: None,
            password: None,
            password_env: None,
            password_file: None,
            sasl: None,
            channels: Vec::new(),
            admins: Vec::new(),
            twitch: false,
            max_reply_lines: NonZeroUsize::new(4).expect("4 is not zero"),
            flood_burst: None,
            flood_interval: None,
            queue: NonZeroUsize::new(64).expect("64 is not zero"),
            idle_ping: Seconds::builtin(Duration::from_secs(120)),
            ping_timeout: Seconds::builtin(Duration::from_secs(60)),
            reconnect_delay: Seconds::builtin(Duration::from_secs(2)),
            reconnect_max_delay: Seconds::builtin(Duration::from_secs(300)),
        }
    }
}

/// `chat.irc[N].sasl`: SASL PLAIN.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct RawSasl {
    pub account: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password_env: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password_file: Option<PathBuf>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawDashboard {
    pub enabled: bool,
    pub host: Host,
    pub port: NonZeroU16,
    pub warn_cpu_percent: NonNegative,
    pub warn_memory_mb: NonNegative,
    pub warn_response_ms: NonNegative,
    pub max_sse_clients: NonZeroUsize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auth: Option<RawAuth>,
    /// More users, each a viewer or an operator; `auth` is one more operator.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub users: Vec<RawUser>,
    /// Reverse proxies whose `X-Forwarded-For` names the client (addresses or CIDR ranges).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub trusted_proxies: Vec<IpRange>,
    /// Serve HTTPS with this certificate chain and key (PEM files).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsFiles>,
}

/// `dashboard.tls`: the PEM files of the certificate chain and its private key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
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
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password_hash: Option<String>,
}

/// One entry of `dashboard.users`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawUser {
    pub username: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_hash: Option<String>,
    pub role: Role,
}

/// What a dashboard user may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Read the pages, the API, the live updates and the metrics.
    Viewer,
    /// Also act on the plugins and reload the config.
    Operator,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawMetrics {
    pub poll_interval: Seconds<PollRange>,
    pub history_duration: Seconds<HistoryRange>,
    /// Serve `/metrics` (Prometheus text); false answers 404.
    pub prometheus_enabled: bool,
}

/// `logs`: each plugin's output log (src/plugins/output_log.rs).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawLogs {
    /// Lines kept in memory per plugin…
    pub max_lines: NonZeroUsize,
    /// …and bytes of text, whichever limit is reached first.
    pub max_bytes: NonZeroUsize,
    /// Lines per second a plugin may log before further lines are dropped and counted.
    pub lines_per_second: NonZeroU32,
    /// Also write each plugin's lines to `DIR/NAME.log`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dir: Option<PathBuf>,
    /// A log file is rotated before it would grow past this many bytes.
    pub file_max_bytes: NonZeroU64,
    /// Rotated files kept per plugin (`NAME.log.1` … `NAME.log.N`).
    pub file_backups: u32,
}

impl Default for RawLogs {
    /// The log's own defaults, so the two cannot drift apart.
    fn default() -> Self {
        let settings = LogSettings::default();
        RawLogs {
            max_lines: NonZeroUsize::new(settings.max_lines).expect("the default is not zero"),
            max_bytes: NonZeroUsize::new(settings.max_bytes).expect("the default is not zero"),
            lines_per_second: NonZeroU32::new(settings.lines_per_second).expect("the default is not zero"),
            dir: None,
            file_max_bytes: NonZeroU64::new(10 * 1024 * 1024).expect("10 MiB is not zero"),
            file_backups: 5,
        }
    }
}

impl From<&RawLogs> for LogSettings {
    fn from(raw: &RawLogs) -> Self {
        LogSettings {
            max_lines: raw.max_lines.get(),
            max_bytes: raw.max_bytes.get(),
            lines_per_second: raw.lines_per_second.get(),
            files: raw.dir.as_ref().map(|dir| FileSettings {
                dir: dir.clone(),
                max_bytes: raw.file_max_bytes.get(),
                backups: raw.file_backups,
            }),
        }
    }
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
    /// Recycle the plugin (a hot reload) when its process tree stays above this many MB.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_memory_mb: Option<NonZeroU32>,
    pub max_memory_samples: NonZeroU32,
    pub max_memory_recycles: NonZeroU32,
    pub max_memory_window: Seconds<DelayRange>,
    /// Paths or globs whose change reloads the plugin.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub watch: Vec<PathBuf>,
    /// After a reload's switch, keep the old process this long to go back to if the new one
    /// crashes; 0 turns it off.
    pub rollback_window: Seconds<DelayRange>,
    /// A command a reload's new process must answer before the switch.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub probe: Option<RawProbe>,
}

/// `plugins[N].probe`: the readiness probe of a reload, as written.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawProbe {
    /// The chat command, with or without its `!` (required: checked with the other rules, so
    /// that a missing one is told like an empty one).
    #[serde(default)]
    pub command: String,
    #[serde(default)]
    pub args: String,
    /// Text the reply must contain; empty takes any reply.
    #[serde(default)]
    pub expect: String,
    #[serde(default = "default_probe_timeout")]
    pub timeout: Seconds<ReloadRange>,
}

fn default_probe_timeout() -> Seconds<ReloadRange> {
    Seconds::builtin(DEFAULT_PROBE_TIMEOUT)
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
            warn_response_ms: NonNegative::of(1000),
            max_sse_clients: NonZeroUsize::new(1024).expect("1024 is not zero"),
            auth: None,
            users: Vec::new(),
            trusted_proxies: Vec::new(),
            tls: None,
        }
    }
}

impl Default for RawMetrics {
    fn default() -> Self {
        RawMetrics {
            poll_interval: Seconds::builtin(Duration::from_secs(5)),
            history_duration: Seconds::builtin(Duration::from_secs(3600)),
            prometheus_enabled: true,
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
            max_memory_mb: None,
            max_memory_samples: NonZeroU32::new(DEFAULT_MEMORY_SAMPLES).expect("the default is not zero"),
            max_memory_recycles: NonZeroU32::new(DEFAULT_MEMORY_RECYCLES).expect("the default is not zero"),
            max_memory_window: Seconds::builtin(DEFAULT_MEMORY_WINDOW),
            watch: Vec::new(),
            rollback_window: Seconds::builtin(reload.rollback_window),
            probe: None,
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
    /// The merged config as an operator should see it: the password and its hash are never printed.
    pub fn redacted(&self) -> RawConfig {
        let mut copy = self.clone();
        if let Some(auth) = copy.dashboard.auth.as_mut() {
            // A hash is no password, but it lets anyone who sees it guess offline.
            redact([&mut auth.password, &mut auth.password_hash]);
        }
        for user in &mut copy.dashboard.users {
            redact([&mut user.password, &mut user.password_hash]);
        }
        for irc in &mut copy.chat.irc {
            let sasl = irc.sasl.as_mut().map(|sasl| &mut sasl.password);
            for password in [Some(&mut irc.password), sasl].into_iter().flatten() {
                if password.is_some() {
                    *password = Some("<redacted>".to_owned());
                }
            }
        }
        copy.notify.redact();
        copy
    }
}

fn redact(secrets: [&mut Option<String>; 2]) {
    for secret in secrets.into_iter().filter(|s| s.is_some()) {
        *secret = Some("<redacted>".to_owned());
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
    pub chat: ChatConfig,
    pub timeline: TimelineConfig,
    pub notify: NotifyConfig,
    /// `logs`: what is kept of each plugin's output, and where.
    pub logs: LogSettings,
    /// `metrics.prometheus_enabled`: serve `/metrics`. Kept beside, not in, [`MetricsConfig`]:
    /// that is the collector's, and the collector does not serve Prometheus.
    pub prometheus_enabled: bool,
}

/// The checked `chat` section, with the top-level `admins` and `owner`.
#[derive(Debug, Clone, PartialEq)]
pub struct ChatConfig {
    pub console: bool,
    pub irc: Vec<IrcSettings>,
    /// Top-level `admins` plus `owner`: accounts that may use `!admin` on every network.
    pub admins: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct DashboardConfig {
    pub enabled: bool,
    pub host: String,
    pub port: u16,
    pub warn_cpu_percent: f64,
    pub warn_memory_mb: f64,
    /// A running plugin whose 5-minute p95 response time is above this shows yellow.
    pub warn_response_ms: f64,
    pub max_sse_clients: usize,
    pub auth: Option<Login>,
    /// The users of `dashboard.users`, in order.
    pub users: Vec<User>,
    pub trusted_proxies: Vec<IpRange>,
    pub tls: Option<TlsFiles>,
}

/// A dashboard user and what it may do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub login: Login,
    pub role: Role,
}

impl DashboardConfig {
    /// Does every route but `/health` need credentials?
    pub fn guarded(&self) -> bool {
        self.auth.is_some() || !self.users.is_empty()
    }

    /// Everyone who may log in: `auth` (an operator) first, then `users`.
    pub fn accounts(&self) -> Vec<User> {
        let auth = self.auth.iter().map(|login| User { login: login.clone(), role: Role::Operator });
        auth.chain(self.users.iter().cloned()).collect()
    }

    /// May anyone act? Actions need an operator.
    pub fn has_operator(&self) -> bool {
        self.accounts().iter().any(|user| user.role == Role::Operator)
    }
}

/// HTTP basic-auth credentials as a client sends them (`rosey reload`). `Debug` never shows
/// the password.
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
    pub(super) fn checked(&self, auth: Option<Login>, users: Vec<User>) -> DashboardConfig {
        DashboardConfig {
            enabled: self.enabled,
            host: self.host.0.clone(),
            port: self.port.get(),
            warn_cpu_percent: self.warn_cpu_percent.get(),
            warn_memory_mb: self.warn_memory_mb.get(),
            warn_response_ms: self.warn_response_ms.get(),
            max_sse_clients: self.max_sse_clients.get(),
            auth,
            users,
            trusted_proxies: self.trusted_proxies.clone(),
            tls: self.tls.clone(),
        }
    }
}
