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
use figment::value::Value;
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
    /// A file named by `--config` or `ROSEY_CONFIG` is missing (a missing default file is fine).
    #[error("config error: config file {} (named by {named_by}) {problem}", path.display())]
    MissingFile { path: PathBuf, named_by: &'static str, problem: &'static str },
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
    #[serde(serialize_with = "whole_as_integer")]
    pub warn_cpu_percent: f64,
    #[serde(serialize_with = "whole_as_integer")]
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
    #[serde(serialize_with = "whole_as_integer")]
    pub poll_interval: f64,
    #[serde(serialize_with = "whole_as_integer")]
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
    #[serde(serialize_with = "whole_as_integer")]
    pub initial_delay: f64,
    #[serde(serialize_with = "whole_as_integer")]
    pub max_delay: f64,
    #[serde(serialize_with = "whole_as_integer")]
    pub reset_window: f64,
}

/// Whole numbers are printed as integers (`5`, not `5.0`), as rosey.json writes them.
fn whole_as_integer<S: serde::Serializer>(value: &f64, serializer: S) -> Result<S::Ok, S::Error> {
    // Below 2^53 every whole f64 is exactly an i64.
    if value.fract() == 0.0 && value.abs() < 9.0e15 {
        serializer.serialize_i64(*value as i64)
    } else {
        serializer.serialize_f64(*value)
    }
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

/// At most this many problems are reported in one run (each pass below finds one bad key).
const MAX_PROBLEMS: usize = 64;

/// String keys an environment variable may set. figment parses every variable's text (so
/// `0123` would become the number 123 and `true` a bool); these keys take the text as written.
const ENV_STRING_KEYS: [&str; 4] =
    ["dashboard.host", "dashboard.auth.username", "dashboard.auth.password", "dashboard.auth.password_file"];

/// Merge defaults, the config file and the `ROSEY_*` environment; check the result.
pub fn load(file: &ConfigFile) -> Result<Loaded, ConfigError> {
    load_figment(&build_figment(file)?)
}

/// Extract and check a figment, reporting every problem, each with its key and source.
fn load_figment(figment: &Figment) -> Result<Loaded, ConfigError> {
    // A broken file fails here, before any key is read.
    let mut merged = figment.find_value("").map_err(|e| ConfigError::Invalid { problems: unreadable(e) })?;
    let sources = Sources { figment, merged: merged.clone() };
    for key in ENV_STRING_KEYS {
        if !matches!(sources.of(key), ValueSource::Env(_)) {
            continue;
        }
        if let (Some((_, text)), Some(slot)) = (env_var_exact(key), find_mut(&mut merged, &split_key(key))) {
            *slot = Value::String(slot.tag(), text);
        }
    }
    let (raw, mut problems) = extract_all(&mut merged, &sources);
    if let Some(raw) = raw {
        match raw.check(&|key| sources.of(key)) {
            Ok(config) if problems.is_empty() => return Ok(Loaded { config, raw }),
            Ok(_) => {}
            Err(ConfigError::Invalid { problems: found }) => {
                // A key already reported took its default; what check() says about it is noise.
                let reported: Vec<String> = problems.iter().filter_map(|p| p.key.clone()).collect();
                problems.extend(
                    found.into_iter().filter(|p| !p.key.as_deref().is_some_and(|k| follows_from(k, &reported))),
                );
            }
            Err(other) => return Err(other),
        }
    }
    // In key order, as the user reads the file; `plugins[10]` after `plugins[9]`.
    problems.sort_by_cached_key(|p| {
        let segments = split_key(p.key.as_deref().unwrap_or_default());
        segments.into_iter().map(|s| (s.parse::<usize>().unwrap_or(usize::MAX), s)).collect::<Vec<_>>()
    });
    Err(ConfigError::Invalid { problems })
}

fn build_figment(file: &ConfigFile) -> Result<Figment, ConfigError> {
    let mut figment = Figment::from(Serialized::defaults(RawConfig::default()));
    let path = describe_file(file);
    if path.is_file() {
        // figment would call an unreadable file "invalid JSON"; say what is wrong instead.
        if let Err(e) = std::fs::File::open(path) {
            let problem = ConfigProblem {
                key: None,
                source: ValueSource::File(path.to_owned()),
                message: format!("cannot read: {e}"),
            };
            return Err(ConfigError::Invalid { problems: vec![problem] });
        }
        // `file_exact`: figment's `file` would silently search parent directories.
        figment = figment.merge(Json::file_exact(path));
    } else if let ConfigFile::Named(path) = file {
        let named_by = match std::env::var_os("ROSEY_CONFIG") {
            Some(value) if Path::new(&value) == path => "ROSEY_CONFIG",
            _ => "--config",
        };
        let problem = if path.exists() { "is not a file" } else { "does not exist" };
        return Err(ConfigError::MissingFile { path: path.clone(), named_by, problem });
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

/// `ROSEY_*` variables as (name as written, dotted key as figment reads it, value).
fn rosey_vars() -> impl Iterator<Item = (String, String, String)> {
    std::env::vars_os().filter_map(|(name, value)| {
        let name = name.into_string().ok()?;
        let rest = name
            .get(..ENV_PREFIX.len())
            .filter(|p| p.eq_ignore_ascii_case(ENV_PREFIX))
            .map(|_| &name[ENV_PREFIX.len()..])?;
        let key = rest.trim().replace("__", ".").to_ascii_lowercase();
        Some((name, key, value.to_string_lossy().into_owned()))
    })
}

/// The variable that sets exactly `key`, and its text.
fn env_var_exact(key: &str) -> Option<(String, String)> {
    rosey_vars().find(|(_, k, _)| k == key).map(|(name, _, value)| (name, value))
}

/// The variable, as the user spelled it, that put `key` (or a value containing it) in the config.
fn env_var_name(key: &str) -> String {
    let mut near = None;
    for (name, k, _) in rosey_vars() {
        if k == key {
            return name;
        }
        if k.starts_with(&format!("{key}.")) || key.starts_with(&format!("{k}.")) {
            near.get_or_insert(name);
        }
    }
    near.unwrap_or_else(|| env_var_for(key))
}

/// Answers "where did this key's value come from?" for error messages.
struct Sources<'a> {
    figment: &'a Figment,
    /// The merged value as figment built it; every value carries the tag of its provider.
    merged: Value,
}

impl Sources<'_> {
    /// The source of `key` (`plugins[0].name` style), or of its nearest ancestor present when
    /// the key itself took a default (a plugin's missing `name` comes from that plugin's file).
    fn of(&self, key: &str) -> ValueSource {
        let segments = split_key(key);
        let mut value = &self.merged;
        for segment in &segments {
            match child(value, segment) {
                Some(next) => value = next,
                None => break,
            }
        }
        let Some(metadata) = self.figment.get_metadata(value.tag()) else { return ValueSource::Default };
        match &metadata.source {
            Some(figment::Source::File(path)) => ValueSource::File(path.clone()),
            _ if metadata.name.contains("environment") => ValueSource::Env(env_var_name(&segments.join("."))),
            _ => ValueSource::Default,
        }
    }
}

fn child<'v>(value: &'v Value, segment: &str) -> Option<&'v Value> {
    match value {
        Value::Dict(_, dict) => dict.get(segment),
        Value::Array(_, list) => list.get(segment.parse::<usize>().ok()?),
        _ => None,
    }
}

fn find_mut<'v>(value: &'v mut Value, segments: &[String]) -> Option<&'v mut Value> {
    let Some((first, rest)) = segments.split_first() else { return Some(value) };
    let next = match value {
        Value::Dict(_, dict) => dict.get_mut(first)?,
        Value::Array(_, list) => list.get_mut(first.parse::<usize>().ok()?)?,
        _ => return None,
    };
    find_mut(next, rest)
}

/// Remove the key at `path` so that it takes its default; false if it cannot be removed.
fn remove(value: &mut Value, path: &[String]) -> bool {
    let Some((last, parents)) = path.split_last() else { return false };
    match find_mut(value, parents) {
        Some(Value::Dict(_, dict)) => dict.remove(last).is_some(),
        // A bad list element cannot go without renumbering the ones after it.
        _ => false,
    }
}

/// Deserialise the merged value, collecting every bad key: after each error the bad key is
/// dropped (so it takes its valid default) and deserialisation runs again.
fn extract_all(merged: &mut Value, sources: &Sources) -> (Option<RawConfig>, Vec<ConfigProblem>) {
    let mut problems = Vec::new();
    while problems.len() < MAX_PROBLEMS {
        let error = match RawConfig::deserialize(&*merged) {
            Ok(raw) => return (Some(raw), problems),
            Err(error) => error,
        };
        problems.push(key_problem(&error, sources));
        if !remove(merged, &error.path) {
            break;
        }
    }
    (None, problems)
}

/// True when a problem at `key` is a consequence of a problem already reported.
fn follows_from(key: &str, reported: &[String]) -> bool {
    let plugin = |k: &str| k.strip_prefix("plugins[").and_then(|r| r.split_once(']')).map(|(i, _)| i.to_owned());
    reported.iter().any(|r| {
        r == key
            || key.starts_with(&format!("{r}."))
            || key.starts_with(&format!("{r}["))
            || plugin(r).is_some_and(|i| plugin(key) == Some(i))
            || (key == "metrics.history_duration" && r == "metrics.poll_interval")
    })
}

/// `["plugins", "0", "name"]` as `plugins[0].name`.
fn display_key(path: &[String]) -> String {
    let mut key = String::new();
    for segment in path {
        if segment.parse::<usize>().is_ok() {
            key.push_str(&format!("[{segment}]"));
        } else {
            if !key.is_empty() {
                key.push('.');
            }
            key.push_str(segment);
        }
    }
    key
}

/// `plugins[0].name` as `["plugins", "0", "name"]`.
fn split_key(key: &str) -> Vec<String> {
    key.replace('[', ".").replace(']', "").split('.').filter(|s| !s.is_empty()).map(str::to_owned).collect()
}

/// The problems of a file figment could not read (broken JSON).
fn unreadable(error: figment::Error) -> Vec<ConfigProblem> {
    error
        .into_iter()
        .map(|e| {
            let source = match e.metadata.as_ref().and_then(|m| m.source.as_ref()) {
                Some(figment::Source::File(path)) => ValueSource::File(path.clone()),
                _ => ValueSource::Default,
            };
            let message = match &e.kind {
                // serde_json's "invalid type: sequence, expected a map at line 1 column 0": the
                // file is JSON, but not an object.
                figment::error::Kind::Message(msg) if msg.starts_with("invalid type: ") => {
                    let actual = msg["invalid type: ".len()..].split(", expected").next().unwrap_or_default();
                    let actual = if actual == "sequence" { "a list" } else { actual };
                    let at = msg.rfind(" at line ").map_or("", |i| &msg[i..]);
                    format!("expected a JSON object at the top level, found {actual}{at}")
                }
                figment::error::Kind::Message(msg) => format!("invalid JSON: {msg}"),
                other => other.to_string(),
            };
            ConfigProblem { key: None, source, message }
        })
        .collect()
}

/// One bad key found by deserialisation.
fn key_problem(error: &figment::Error, sources: &Sources) -> ConfigProblem {
    use figment::error::Kind;
    let key = display_key(&error.path);
    let message = match &error.kind {
        Kind::UnknownField(field, expected) => {
            let hint = did_you_mean(field, expected).map(|s| format!(", did you mean \"{s}\"?")).unwrap_or_default();
            format!("unknown key \"{field}\"{hint} (expected one of: {})", expected.join(", "))
        }
        Kind::InvalidType(actual, expected) | Kind::InvalidValue(actual, expected) => {
            let expected = expectation(&key).map_or_else(|| serde_words(expected), str::to_owned);
            // Even a mistyped password is not echoed to a log.
            let found = if key.ends_with("password") { "a value of another type".to_owned() } else { found(actual) };
            format!("expected {expected}, found {found}")
        }
        other => other.to_string(),
    };
    ConfigProblem { source: sources.of(&key), key: (!key.is_empty()).then_some(key), message }
}

/// A value as the user wrote it: strings quoted, numbers bare.
fn found(actual: &figment::error::Actual) -> String {
    use figment::error::Actual;
    match actual {
        Actual::Str(s) => format!("{s:?}"),
        Actual::Char(c) => format!("{:?}", c.to_string()),
        Actual::Bool(b) => b.to_string(),
        Actual::Unsigned(n) => n.to_string(),
        Actual::Signed(n) => n.to_string(),
        Actual::Float(n) => n.to_string(),
        Actual::Unit | Actual::Option => "null".to_owned(),
        Actual::Seq => "a list".to_owned(),
        Actual::Map => "an object".to_owned(),
        other => other.to_string(),
    }
}

/// serde's name for a type, in words, for keys [`expectation`] does not know.
fn serde_words(expected: &str) -> String {
    match expected {
        "i8" | "i16" | "i32" | "i64" | "u8" | "u16" | "u32" | "u64" | "usize" => "an integer".to_owned(),
        "f32" | "f64" => "a number".to_owned(),
        "a sequence" => "a list".to_owned(),
        "a map" => "an object".to_owned(),
        other if other.starts_with("struct ") => "an object".to_owned(),
        other => other.to_owned(),
    }
}

/// What a key accepts, in words, for type errors.
fn expectation(key: &str) -> Option<&'static str> {
    // `plugins[3].restart.enabled` -> `plugins[].restart.enabled`
    let mut generic = String::with_capacity(key.len());
    let mut in_index = false;
    for c in key.chars() {
        match c {
            '[' => {
                in_index = true;
                generic.push('[');
            }
            ']' => {
                in_index = false;
                generic.push(']');
            }
            _ if in_index => {}
            _ => generic.push(c),
        }
    }
    Some(match generic.as_str() {
        "dashboard.port" => "an integer 1..65535",
        "dashboard.enabled" | "plugins[].restart.enabled" => "true or false",
        "dashboard.host" => "a host name or IP address",
        "dashboard.warn_cpu_percent" | "dashboard.warn_memory_mb" => "a number >= 0",
        "dashboard.max_sse_clients" => "a positive integer",
        "dashboard.auth" => "an object with username and password (or password_file)",
        "dashboard" | "metrics" | "plugins[].restart" => "an object",
        "metrics.poll_interval" => "a number of seconds > 0",
        "metrics.history_duration" => "a number of seconds >= metrics.poll_interval",
        "plugins" => "a list of plugin objects",
        "plugins[]" => "a plugin object such as {\"name\": \"dice\", \"builtin\": \"dice-roller\"}",
        "plugins[].restart.max_attempts" => "an integer >= 0",
        "plugins[].restart.initial_delay" | "plugins[].restart.max_delay" | "plugins[].restart.reset_window" => {
            "a number of seconds >= 0"
        }
        "plugins[].command" | "plugins[].commands" => "a list of strings",
        "plugins[].env" => "an object of string values",
        "plugins[].name" | "plugins[].builtin" | "plugins[].version" | "plugins[].cwd" => "a string",
        "dashboard.auth.username" | "dashboard.auth.password" | "dashboard.auth.password_file" => "a string",
        _ => return None,
    })
}

/// The expected key closest to a mistyped one, if it is close enough to be a typo.
fn did_you_mean(typed: &str, expected: &[&'static str]) -> Option<&'static str> {
    let typed = typed.to_ascii_lowercase();
    expected
        .iter()
        .map(|&candidate| (typo_distance(&typed, candidate), candidate))
        .filter(|&(d, candidate)| d <= (candidate.len() / 3).clamp(1, 2))
        .min_by_key(|&(d, _)| d)
        .map(|(_, candidate)| candidate)
}

/// Edit distance counting a swap of two neighbours as one edit (optimal string alignment).
fn typo_distance(a: &str, b: &str) -> usize {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            d[i][j] = (d[i - 1][j] + 1).min(d[i][j - 1] + 1).min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                d[i][j] = d[i][j].min(d[i - 2][j - 2] + 1);
            }
        }
    }
    d[a.len()][b.len()]
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
        let mut seen = std::collections::HashMap::new();
        for (index, raw) in self.plugins.iter().enumerate() {
            let plugin = check_plugin(index, raw, &mut problem);
            if let Some(first) = seen.get(&raw.name) {
                problem(
                    format!("plugins[{index}].name"),
                    format!(
                        "duplicate plugin name \"{}\" (plugins[{first}] has it too): names must be unique",
                        raw.name
                    ),
                );
            } else {
                seen.insert(raw.name.clone(), index);
                plugins.extend(plugin);
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
            let found = a.username.as_deref().map_or_else(|| "nothing".to_owned(), |u| format!("{u:?}"));
            problem(
                "dashboard.auth.username".into(),
                format!("expected a non-empty user name without ':', found {found}"),
            );
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
/// `.` and `..` are refused: as URL path segments (`/plugin/..`) they would name another page.
pub fn valid_plugin_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        && name != "."
        && name != ".."
}

fn check_plugin(index: usize, raw: &RawPlugin, problem: &mut impl FnMut(String, String)) -> Option<PluginConfig> {
    let at = |key: &str| format!("plugins[{index}].{key}");
    let mut ok = true;
    if !valid_plugin_name(&raw.name) {
        problem(
            at("name"),
            format!("invalid plugin name {:?}: expected 1..64 characters of a-z A-Z 0-9 . _ - (not . or ..)", raw.name),
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Load defaults plus `json` (standing in for the file; no environment layer).
    fn load_json(json: &str) -> Result<Loaded, ConfigError> {
        load_figment(&Figment::from(Serialized::defaults(RawConfig::default())).merge(Json::string(json)))
    }

    #[test]
    fn plugin_names_are_url_safe_path_segments() {
        for good in ["dice-roller", "8ball", "a.b_c-D", "..x", &"x".repeat(64)] {
            assert!(valid_plugin_name(good), "{good} should be valid");
        }
        for bad in ["", ".", "..", "a b", "a/b", "<x>", "é", &"x".repeat(65)] {
            assert!(!valid_plugin_name(bad), "{bad} should be invalid");
        }
    }

    /// `key: message` of every problem `json` has.
    fn problems(json: &str) -> Vec<String> {
        match load_json(json) {
            Err(ConfigError::Invalid { problems }) => {
                problems.into_iter().map(|p| format!("{}: {}", p.key.unwrap_or_default(), p.message)).collect()
            }
            Err(other) => panic!("unexpected error: {other}"),
            Ok(_) => panic!("{json} was accepted"),
        }
    }

    #[test]
    fn every_bad_key_is_reported_in_key_order_with_the_value_quoted() {
        assert_eq!(
            problems(r#"{"metrics": {"poll_interval": "x"}, "dashboard": {"port": "abc", "host": 5, "prot": 1}}"#),
            [
                "dashboard.host: expected a host name or IP address, found 5",
                "dashboard.port: expected an integer 1..65535, found \"abc\"",
                "dashboard.prot: unknown key \"prot\", did you mean \"port\"? (expected one of: enabled, host, \
                 port, warn_cpu_percent, warn_memory_mb, max_sse_clients, auth)",
                "metrics.poll_interval: expected a number of seconds > 0, found \"x\"",
            ]
        );
    }

    #[test]
    fn a_key_that_took_its_default_does_not_cause_follow_up_problems() {
        // poll_interval falls back to 5 after its type error; history_duration 2 < 5 is not news.
        assert_eq!(
            problems(r#"{"metrics": {"poll_interval": "x", "history_duration": 2}}"#),
            ["metrics.poll_interval: expected a number of seconds > 0, found \"x\""]
        );
        // A plugin whose builtin has the wrong type is not also "missing a builtin or command".
        assert_eq!(
            problems(r#"{"plugins": [{"name": "a", "builtin": 5}]}"#),
            ["plugins[0].builtin: expected a string, found 5"]
        );
    }

    #[test]
    fn check_problems_come_with_type_problems() {
        assert_eq!(
            problems(
                r#"{"dashboard": {"port": 0, "enabled": "yes"}, "plugins": [{"name": "bad name!", "builtin": "x"}]}"#
            ),
            [
                "dashboard.enabled: expected true or false, found \"yes\"",
                "dashboard.port: expected an integer 1..65535, found 0",
                "plugins[0].builtin: plugin \"bad name!\": unknown builtin \"x\" (expected one of: dice-roller, 8ball)",
                "plugins[0].name: invalid plugin name \"bad name!\": expected 1..64 characters of a-z A-Z 0-9 . _ - (not . or ..)",
            ]
        );
    }

    #[test]
    fn a_mistyped_password_is_not_echoed() {
        assert_eq!(
            problems(r#"{"dashboard": {"auth": {"username": "admin", "password": 12345}}}"#),
            ["dashboard.auth.password: expected a string, found a value of another type"]
        );
    }

    #[test]
    fn plugin_problems_name_the_plugin_and_its_index() {
        assert_eq!(
            problems(r#"{"plugins": [{"name": "d", "builtin": "8ball"}, {"name": "d", "builtin": "dice-roller"}]}"#),
            ["plugins[1].name: duplicate plugin name \"d\" (plugins[0] has it too): names must be unique"]
        );
        assert_eq!(
            problems(r#"{"plugins": [{"name": "a", "builtin": "8ball", "restart": {"max_attempts": -1}}]}"#),
            ["plugins[0].restart.max_attempts: expected an integer >= 0, found -1"]
        );
        assert_eq!(
            problems(r#"{"plugins": ["dice-roller"]}"#),
            [
                "plugins[0]: expected a plugin object such as {\"name\": \"dice\", \"builtin\": \"dice-roller\"}, found \"dice-roller\""
            ]
        );
    }

    #[test]
    fn broken_json_names_the_line() {
        let problems = problems("{\n  \"dashboard\": {\n    \"port\": 8080,\n  }\n}\n");
        assert_eq!(problems, [": invalid JSON: trailing comma at line 4 column 3"]);
    }

    #[test]
    fn history_must_cover_one_poll() {
        assert_eq!(
            problems(r#"{"metrics": {"poll_interval": 10, "history_duration": 5}}"#),
            ["metrics.history_duration: expected a number of seconds >= metrics.poll_interval (10), found 5"]
        );
        let loaded = load_json(r#"{"metrics": {"poll_interval": 10, "history_duration": 10}}"#).expect("valid");
        assert_eq!(loaded.config.metrics.history_capacity(), 1);
    }

    #[test]
    fn keys_print_and_parse_alike() {
        let path: Vec<String> = ["plugins", "12", "restart", "max_delay"].map(str::to_owned).into();
        assert_eq!(display_key(&path), "plugins[12].restart.max_delay");
        assert_eq!(split_key("plugins[12].restart.max_delay"), path);
        assert_eq!(expectation("plugins[12].restart.max_delay"), Some("a number of seconds >= 0"));
    }

    #[test]
    fn typos_get_a_suggestion_and_strangers_do_not() {
        assert_eq!(did_you_mean("prot", &["enabled", "host", "port"]), Some("port"));
        assert_eq!(did_you_mean("dashbord", &["dashboard", "metrics", "plugins"]), Some("dashboard"));
        assert_eq!(did_you_mean("Metrics", &["dashboard", "metrics", "plugins"]), Some("metrics"));
        assert_eq!(did_you_mean("colour", &["dashboard", "metrics", "plugins"]), None);
        assert_eq!(did_you_mean("x", &["env", "cwd"]), None);
    }

    #[test]
    fn rosey_config_prints_whole_numbers_as_integers_and_no_password() {
        let loaded = load_json(
            r#"{"metrics": {"poll_interval": 0.5, "history_duration": 60},
                "dashboard": {"auth": {"username": "admin", "password": "s3cret"}}}"#,
        )
        .expect("valid");
        let printed = serde_json::to_value(loaded.raw.redacted()).expect("serialisable");
        assert_eq!(printed["metrics"], serde_json::json!({"poll_interval": 0.5, "history_duration": 60}));
        assert_eq!(printed["dashboard"]["auth"]["password"], "<redacted>");
        assert_eq!(loaded.config.dashboard.auth.expect("auth").password, "s3cret");
    }
}
