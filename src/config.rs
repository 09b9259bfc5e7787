//! Configuration: the layered `rosey.json` + `ROSEY_*` environment, checked once at start-up.
//!
//! Layers, lowest first: built-in defaults, the config file, environment variables
//! (`ROSEY_<SECTION>__<KEY>`). What the user wrote is deserialised into [`RawConfig`]
//! (every unknown key is an error), then [`RawConfig::check`] turns it into the typed
//! [`Config`] the program runs on, collecting *every* problem with the key, the source it
//! came from and what was expected.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::Figment;
use figment::providers::{Env, Format, Json, Serialized};
use serde::{Deserialize, Serialize};

use crate::plugins::builtin::Builtin;

/// The config file read when none is named.
pub const DEFAULT_CONFIG_FILE: &str = "rosey.json";
/// Prefix of every environment override.
pub const ENV_PREFIX: &str = "ROSEY_";
/// `ROSEY_` variables that are not config keys.
const ENV_NOT_KEYS: [&str; 2] = ["CONFIG", "LOG"];

/// Where the config file comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigFile {
    /// `rosey.json` in the working directory; its absence means "defaults".
    Default,
    /// Named by `--config` or `ROSEY_CONFIG`; its absence is an error.
    Named(PathBuf),
}

/// Where a configuration value came from, for error messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ValueSource {
    Default,
    File(PathBuf),
    Env(String),
}

impl fmt::Display for ValueSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ValueSource::Default => f.write_str("the built-in default"),
            ValueSource::File(path) => write!(f, "{}", path.display()),
            ValueSource::Env(var) => f.write_str(var),
        }
    }
}

/// One thing wrong with the configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigProblem {
    /// Dotted key such as `dashboard.port` (None when the whole file is unreadable).
    pub key: Option<String>,
    pub source: ValueSource,
    pub message: String,
}

impl fmt::Display for ConfigProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.key {
            Some(key) => write!(f, "config error: {key} from {}: {}", self.source, self.message),
            None => write!(f, "config error: {}: {}", self.source, self.message),
        }
    }
}

/// Why the configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("config error: config file {} not found", path.display())]
    MissingFile { path: PathBuf },
    #[error("{}", problems.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
    Invalid { problems: Vec<ConfigProblem> },
}

// ---------------------------------------------------------------------------------------------
// Raw config: exactly what the user may write.

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
    pub host: String,
    /// Wider than `u16` so that 0 and 70000 reach the range check with a clear message.
    pub port: i64,
    pub warn_cpu_percent: f64,
    pub warn_memory_mb: f64,
    pub max_sse_clients: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auth: Option<RawAuth>,
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
    pub poll_interval: f64,
    pub history_duration: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct RawPlugin {
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
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawRestart {
    pub enabled: bool,
    pub max_attempts: i64,
    pub initial_delay: f64,
    pub max_delay: f64,
    pub reset_window: f64,
}

impl Default for RawDashboard {
    fn default() -> Self {
        RawDashboard {
            enabled: true,
            host: "0.0.0.0".to_owned(),
            port: 8080,
            warn_cpu_percent: 50.0,
            warn_memory_mb: 100.0,
            max_sse_clients: 1024,
            auth: None,
        }
    }
}

impl Default for RawMetrics {
    fn default() -> Self {
        RawMetrics { poll_interval: 5.0, history_duration: 3600.0 }
    }
}

impl Default for RawRestart {
    fn default() -> Self {
        RawRestart { enabled: true, max_attempts: 5, initial_delay: 1.0, max_delay: 30.0, reset_window: 60.0 }
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

#[derive(Debug, Clone)]
pub struct PluginConfig {
    pub name: String,
    pub launch: Launch,
    pub env: BTreeMap<String, String>,
    pub cwd: Option<PathBuf>,
    /// Shown when the plugin does not report a version itself.
    pub version: Option<String>,
    /// Commands routed to it even if it never says hello.
    pub commands: Vec<String>,
    pub restart: RestartPolicy,
}

/// How a plugin's process is started.
#[derive(Debug, Clone, PartialEq)]
pub enum Launch {
    Builtin(Builtin),
    Command { program: String, args: Vec<String> },
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RestartPolicy {
    pub enabled: bool,
    pub max_attempts: u32,
    pub initial_delay: Duration,
    pub max_delay: Duration,
    pub reset_window: Duration,
}

impl RestartPolicy {
    /// Delay before restart attempt `attempt` (1-based): initial, doubled each time, capped.
    pub fn backoff(&self, attempt: u32) -> Duration {
        let factor = 2f64.powi(attempt.saturating_sub(1).min(62) as i32);
        let secs = (self.initial_delay.as_secs_f64() * factor).min(self.max_delay.as_secs_f64());
        Duration::from_secs_f64(secs)
    }
}

impl Default for RestartPolicy {
    fn default() -> Self {
        let raw = RawRestart::default();
        RestartPolicy {
            enabled: raw.enabled,
            max_attempts: raw.max_attempts as u32,
            initial_delay: Duration::from_secs_f64(raw.initial_delay),
            max_delay: Duration::from_secs_f64(raw.max_delay),
            reset_window: Duration::from_secs_f64(raw.reset_window),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Loading.

/// The merged, checked configuration and the raw form it came from (for `rosey config`).
pub struct Loaded {
    pub config: Config,
    pub raw: RawConfig,
}

/// Merge defaults, the config file and the `ROSEY_*` environment; check the result.
pub fn load(file: &ConfigFile) -> Result<Loaded, ConfigError> {
    let figment = build_figment(file)?;
    let raw: RawConfig = figment.extract().map_err(|e| ConfigError::Invalid { problems: figment_problems(e) })?;
    let config = raw.check(&|key| classify(figment.find_metadata(key), key))?;
    Ok(Loaded { config, raw })
}

fn build_figment(file: &ConfigFile) -> Result<Figment, ConfigError> {
    let mut figment = Figment::from(Serialized::defaults(RawConfig::default()));
    let path = describe_file(file);
    if path.is_file() {
        // `file_exact`: figment's `file` would silently search parent directories.
        figment = figment.merge(Json::file_exact(path));
    } else if let ConfigFile::Named(path) = file {
        return Err(ConfigError::MissingFile { path: path.clone() });
    }
    let env = Env::prefixed(ENV_PREFIX)
        .split("__")
        .filter(|key| !ENV_NOT_KEYS.iter().any(|k| key.as_str().eq_ignore_ascii_case(k)));
    Ok(figment.merge(env))
}

/// The environment variable that sets a dotted key.
pub fn env_var_for(key: &str) -> String {
    format!("{ENV_PREFIX}{}", key.replace('.', "__").to_ascii_uppercase())
}

fn classify(metadata: Option<&figment::Metadata>, key: &str) -> ValueSource {
    match metadata {
        Some(m) => match &m.source {
            Some(figment::Source::File(path)) => ValueSource::File(path.clone()),
            _ if m.name.contains("environment") => ValueSource::Env(env_var_for(key)),
            _ => ValueSource::Default,
        },
        None => ValueSource::Default,
    }
}

fn figment_problems(error: figment::Error) -> Vec<ConfigProblem> {
    use figment::error::Kind;
    error
        .into_iter()
        .map(|e| {
            let mut path = e.path.clone();
            let message = match &e.kind {
                Kind::UnknownField(field, expected) => {
                    path.push(field.clone());
                    format!("unknown key \"{field}\" (expected one of: {})", expected.join(", "))
                }
                Kind::InvalidType(actual, expected) => {
                    let key = path.join(".");
                    format!("expected {}, found {actual}", expectation(&key).unwrap_or(expected))
                }
                Kind::Message(msg) if path.is_empty() => format!("invalid JSON: {msg}"),
                other => other.to_string(),
            };
            let key = path.join(".");
            let source = classify(e.metadata.as_ref(), &key);
            ConfigProblem { key: (!key.is_empty()).then_some(key), source, message }
        })
        .collect()
}

/// What a key accepts, in words, for type errors.
fn expectation(key: &str) -> Option<&'static str> {
    let generic = key.rsplit('.').next().unwrap_or(key);
    Some(match key {
        "dashboard.port" => "an integer 1..65535",
        "dashboard.enabled" | "plugins.restart.enabled" => "true or false",
        "dashboard.host" => "a host name or IP address",
        "metrics.poll_interval" => "a number of seconds > 0",
        "metrics.history_duration" => "a number of seconds >= metrics.poll_interval",
        "plugins" => "a list of plugin objects",
        _ => match generic {
            "enabled" => "true or false",
            "max_attempts" | "max_sse_clients" => "a positive integer",
            "initial_delay" | "max_delay" | "reset_window" => "a number of seconds >= 0",
            "command" | "commands" => "a list of strings",
            "env" => "an object of string values",
            "name" | "builtin" | "version" | "username" | "password" | "password_file" | "cwd" => "a string",
            _ => return None,
        },
    })
}

impl RawConfig {
    /// Check every value; `source` says where a dotted key's value came from.
    pub fn check(&self, source: &dyn Fn(&str) -> ValueSource) -> Result<Config, ConfigError> {
        let mut problems = Vec::new();
        let mut problem = |key: String, message: String| {
            let src = source(&key);
            problems.push(ConfigProblem { key: Some(key), source: src, message });
        };

        let d = &self.dashboard;
        if !(1..=65535).contains(&d.port) {
            problem("dashboard.port".into(), format!("expected an integer 1..65535, found {}", d.port));
        }
        if d.host.trim().is_empty() {
            problem("dashboard.host".into(), "expected a host name or IP address, found an empty string".into());
        }
        if !(d.warn_cpu_percent.is_finite() && d.warn_cpu_percent >= 0.0) {
            problem(
                "dashboard.warn_cpu_percent".into(),
                format!("expected a number >= 0, found {}", d.warn_cpu_percent),
            );
        }
        if !(d.warn_memory_mb.is_finite() && d.warn_memory_mb >= 0.0) {
            problem("dashboard.warn_memory_mb".into(), format!("expected a number >= 0, found {}", d.warn_memory_mb));
        }
        if d.max_sse_clients < 1 {
            problem(
                "dashboard.max_sse_clients".into(),
                format!("expected a positive integer, found {}", d.max_sse_clients),
            );
        }
        let auth = match &d.auth {
            None => None,
            Some(a) => check_auth(a, &mut problem),
        };

        let m = &self.metrics;
        let poll_ok = m.poll_interval.is_finite() && m.poll_interval > 0.0;
        if !poll_ok {
            problem(
                "metrics.poll_interval".into(),
                format!("expected a number of seconds > 0, found {}", m.poll_interval),
            );
        }
        if !(m.history_duration.is_finite() && (!poll_ok || m.history_duration >= m.poll_interval)) {
            problem(
                "metrics.history_duration".into(),
                format!(
                    "expected a number of seconds >= metrics.poll_interval ({}), found {}",
                    m.poll_interval, m.history_duration
                ),
            );
        }

        let mut plugins = Vec::with_capacity(self.plugins.len());
        let mut seen = std::collections::HashSet::new();
        for (index, raw) in self.plugins.iter().enumerate() {
            let Some(plugin) = check_plugin(index, raw, &mut problem) else { continue };
            if seen.insert(plugin.name.clone()) {
                plugins.push(plugin);
            } else {
                problem(
                    format!("plugins[{index}].name"),
                    format!("duplicate plugin name \"{}\": names must be unique", plugin.name),
                );
            }
        }

        if !problems.is_empty() {
            return Err(ConfigError::Invalid { problems });
        }
        Ok(Config {
            dashboard: DashboardConfig {
                enabled: d.enabled,
                host: d.host.clone(),
                port: d.port as u16,
                warn_cpu_percent: d.warn_cpu_percent,
                warn_memory_mb: d.warn_memory_mb,
                max_sse_clients: d.max_sse_clients as usize,
                auth,
            },
            metrics: MetricsConfig {
                poll_interval: Duration::from_secs_f64(m.poll_interval),
                history_duration: Duration::from_secs_f64(m.history_duration),
            },
            plugins,
        })
    }

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

fn check_auth(a: &RawAuth, problem: &mut impl FnMut(String, String)) -> Option<BasicAuth> {
    let username = match a.username.as_deref() {
        Some(u) if !u.is_empty() && !u.contains(':') => u.to_owned(),
        _ => {
            problem("dashboard.auth.username".into(), "expected a non-empty user name without ':'".into());
            return None;
        }
    };
    let password = match (&a.password, &a.password_file) {
        (Some(p), None) if !p.is_empty() => p.clone(),
        (None, Some(path)) => match std::fs::read_to_string(path) {
            Ok(p) if !p.trim_end_matches(['\n', '\r']).is_empty() => p.trim_end_matches(['\n', '\r']).to_owned(),
            Ok(_) => {
                problem("dashboard.auth.password_file".into(), format!("the file {} is empty", path.display()));
                return None;
            }
            Err(e) => {
                problem("dashboard.auth.password_file".into(), format!("cannot read {}: {e}", path.display()));
                return None;
            }
        },
        (Some(_), Some(_)) => {
            problem("dashboard.auth.password".into(), "set either password or password_file, not both".into());
            return None;
        }
        _ => {
            problem("dashboard.auth.password".into(), "expected a non-empty password (or password_file)".into());
            return None;
        }
    };
    Some(BasicAuth { username, password })
}

/// True when `name` is 1..64 characters of `a-z A-Z 0-9 . _ -`.
pub fn valid_plugin_name(name: &str) -> bool {
    (1..=64).contains(&name.len()) && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

fn check_plugin(index: usize, raw: &RawPlugin, problem: &mut impl FnMut(String, String)) -> Option<PluginConfig> {
    let at = |key: &str| format!("plugins[{index}].{key}");
    let mut ok = true;
    if !valid_plugin_name(&raw.name) {
        problem(
            at("name"),
            format!("plugin name {:?} is invalid: expected 1..64 characters of a-z A-Z 0-9 . _ -", raw.name),
        );
        ok = false;
    }
    match (&raw.builtin, &raw.command) {
        (Some(_), Some(_)) => {
            problem(at("builtin"), format!("plugin \"{}\": set either builtin or command, not both", raw.name));
            ok = false;
        }
        (None, None) => {
            problem(at("command"), format!("plugin \"{}\": expected a builtin name or a command list", raw.name));
            ok = false;
        }
        (Some(b), None) if Builtin::from_name(b).is_none() => {
            let known: Vec<_> = Builtin::ALL.iter().map(|b| b.name()).collect();
            problem(
                at("builtin"),
                format!("plugin \"{}\": unknown builtin \"{b}\" (expected one of: {})", raw.name, known.join(", ")),
            );
            ok = false;
        }
        (None, Some(cmd)) if cmd.first().is_none_or(|p| p.is_empty()) => {
            problem(
                at("command"),
                format!("plugin \"{}\": expected a non-empty list: program, then its arguments", raw.name),
            );
            ok = false;
        }
        _ => {}
    }
    let r = &raw.restart;
    if r.max_attempts < 0 || r.max_attempts > u32::MAX as i64 {
        problem(at("restart.max_attempts"), format!("expected an integer >= 0, found {}", r.max_attempts));
        ok = false;
    }
    for (key, value) in
        [("initial_delay", r.initial_delay), ("max_delay", r.max_delay), ("reset_window", r.reset_window)]
    {
        if !(value.is_finite() && value >= 0.0) {
            problem(at(&format!("restart.{key}")), format!("expected a number of seconds >= 0, found {value}"));
            ok = false;
        }
    }
    if ok { convert_plugin(raw) } else { None }
}

/// Convert a raw plugin already checked to be valid.
fn convert_plugin(raw: &RawPlugin) -> Option<PluginConfig> {
    let launch = match (&raw.builtin, &raw.command) {
        (Some(b), None) => Launch::Builtin(Builtin::from_name(b)?),
        (None, Some(cmd)) => {
            let (program, args) = cmd.split_first()?;
            Launch::Command { program: program.clone(), args: args.to_vec() }
        }
        _ => return None,
    };
    let r = &raw.restart;
    Some(PluginConfig {
        name: raw.name.clone(),
        launch,
        env: raw.env.clone(),
        cwd: raw.cwd.clone(),
        version: raw.version.clone(),
        commands: raw.commands.clone(),
        restart: RestartPolicy {
            enabled: r.enabled,
            max_attempts: u32::try_from(r.max_attempts).ok()?,
            initial_delay: Duration::try_from_secs_f64(r.initial_delay).ok()?,
            max_delay: Duration::try_from_secs_f64(r.max_delay).ok()?,
            reset_window: Duration::try_from_secs_f64(r.reset_window).ok()?,
        },
    })
}

/// The path a config-file choice refers to.
pub fn describe_file(file: &ConfigFile) -> &Path {
    match file {
        ConfigFile::Default => Path::new(DEFAULT_CONFIG_FILE),
        ConfigFile::Named(p) => p,
    }
}
