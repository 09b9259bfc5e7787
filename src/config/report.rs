//! Problem reporting: every config problem as one line naming the key, the source its value came
//! from (file, environment variable or default) and what was expected, in words a user can act on.

use std::fmt;
use std::path::PathBuf;

use figment::error::{Actual, Kind};

use super::numbers::compact;

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
    /// Dotted key such as `dashboard.port` (None when the problem is with a whole file or variable).
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

/// Who named the config file; a named file that is missing is an error, and the message says
/// which of the two to fix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NamedBy {
    Flag,
    EnvVar,
}

impl fmt::Display for NamedBy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            NamedBy::Flag => "--config",
            NamedBy::EnvVar => "ROSEY_CONFIG",
        })
    }
}

/// Why the configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A file named by `--config` or `ROSEY_CONFIG` is missing (a missing default file is fine).
    #[error("config error: config file {} (named by {named_by}) {problem}", path.display())]
    MissingFile { path: PathBuf, named_by: NamedBy, problem: &'static str },
    #[error("{}", self.problem_lines().join("\n"))]
    Invalid { problems: Vec<ConfigProblem> },
}

impl ConfigError {
    /// Every problem in words, one each: what the error shows, still a list for callers that
    /// answer in one (the API's `problems`, one log line per problem).
    pub fn problem_lines(&self) -> Vec<String> {
        match self {
            ConfigError::MissingFile { .. } => vec![self.to_string()],
            ConfigError::Invalid { problems } => problems.iter().map(ToString::to_string).collect(),
        }
    }
}

/// The message for one bad key found by deserialisation.
pub(super) fn key_message(key: &str, kind: &Kind) -> String {
    match kind {
        Kind::UnknownField(field, expected) => {
            let hint = did_you_mean(field, expected).map(|s| format!(", did you mean \"{s}\"?")).unwrap_or_default();
            format!("unknown key \"{field}\"{hint} (expected one of: {})", expected.join(", "))
        }
        Kind::InvalidType(actual, expected) | Kind::InvalidValue(actual, expected) => {
            let expected = expectation(key).map_or_else(|| serde_words(expected), str::to_owned);
            // Even a mistyped password is not echoed to a log.
            let found = if key.ends_with("password") { "a value of another type".to_owned() } else { found(actual) };
            format!("expected {expected}, found {found}")
        }
        other => other.to_string(),
    }
}

/// The message for a file figment could not read (broken JSON, or not an object).
pub(super) fn unreadable_message(kind: &Kind) -> String {
    match kind {
        // serde_json's "invalid type: sequence, expected a map at line 1 column 0": the file is
        // JSON, but not an object.
        Kind::Message(msg) if msg.starts_with("invalid type: ") => {
            let actual = msg["invalid type: ".len()..].split(", expected").next().unwrap_or_default();
            let actual = if actual == "sequence" { "a list" } else { actual };
            let at = msg.rfind(" at line ").map_or("", |i| &msg[i..]);
            format!("expected a JSON object at the top level, found {actual}{at}")
        }
        Kind::Message(msg) => format!("invalid JSON: {msg}"),
        other => other.to_string(),
    }
}

/// A value as the user wrote it: strings quoted, numbers bare (and short).
fn found(actual: &Actual) -> String {
    match actual {
        Actual::Str(s) => format!("{s:?}"),
        Actual::Char(c) => format!("{:?}", c.to_string()),
        Actual::Bool(b) => b.to_string(),
        Actual::Unsigned(n) => n.to_string(),
        Actual::Signed(n) => n.to_string(),
        Actual::Float(n) => compact(*n),
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

/// What a key accepts, in words, for type errors and values out of range.
pub(super) fn expectation(key: &str) -> Option<&'static str> {
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
        "dashboard.warn_cpu_percent" | "dashboard.warn_memory_mb" | "dashboard.warn_response_ms" => "a number >= 0",
        "dashboard.max_sse_clients" => "a positive integer",
        "dashboard.auth" => "an object with username and password (or password_file, or password_hash)",
        "dashboard" | "metrics" | "plugins[].restart" => "an object",
        "dashboard.users" => {
            "a list of users such as {\"username\": \"ann\", \"password_hash\": \"…\", \"role\": \"viewer\"}"
        }
        "dashboard.users[]" => "a user object with username, password or password_hash, and role",
        "dashboard.users[].role" => "\"viewer\" or \"operator\"",
        "dashboard.users[].username" | "dashboard.users[].password" | "dashboard.users[].password_hash" => "a string",
        "dashboard.tls" => "an object with cert and key (PEM file paths)",
        "dashboard.tls.cert" | "dashboard.tls.key" => "a file path",
        "dashboard.trusted_proxies" => "a list of IP addresses or CIDR ranges such as 10.0.0.0/8",
        "metrics.poll_interval" => "a number of seconds > 0",
        "metrics.history_duration" => "a number of seconds >= metrics.poll_interval",
        "plugins" => "a list of plugin objects",
        "plugins[]" => "a plugin object such as {\"name\": \"dice\", \"builtin\": \"dice-roller\"}",
        "plugins[].restart.max_attempts" => "an integer >= 0",
        "plugins[].restart.initial_delay" | "plugins[].restart.max_delay" | "plugins[].restart.reset_window" => {
            "a number of seconds >= 0"
        }
        "plugins[].reload_timeout" | "plugins[].drain_timeout" | "plugins[].command_timeout" => {
            "a number of seconds > 0"
        }
        "plugins[].rollback_window" => "a number of seconds >= 0",
        "plugins[].probe" => "an object such as {\"command\": \"roll\", \"args\": \"1d1\", \"expect\": \"= 1\"}",
        "plugins[].probe.command" | "plugins[].probe.args" | "plugins[].probe.expect" => "a string",
        "plugins[].probe.timeout" => "a number of seconds > 0",
        "plugins[].command" | "plugins[].commands" => "a list of strings",
        "plugins[].watch" => "a list of paths or globs",
        "plugins[].max_memory_mb" | "plugins[].max_memory_samples" | "plugins[].max_memory_recycles" => {
            "an integer > 0"
        }
        "plugins[].max_memory_window" => "a number of seconds >= 0",
        "plugins[].env" => "an object of string values",
        "plugins[].name" | "plugins[].builtin" | "plugins[].version" | "plugins[].cwd" => "a string",
        "dashboard.auth.username"
        | "dashboard.auth.password"
        | "dashboard.auth.password_file"
        | "dashboard.auth.password_hash" => "a string",
        _ => return None,
    })
}

/// The expected key closest to a mistyped one, if it is close enough to be a typo.
pub(super) fn did_you_mean(typed: &str, expected: &[&'static str]) -> Option<&'static str> {
    let typed = typed.to_ascii_lowercase();
    expected
        .iter()
        // Optimal string alignment: a swap of two neighbours counts as one edit.
        .map(|&candidate| (strsim::osa_distance(&typed, candidate), candidate))
        .filter(|&(d, candidate)| d <= (candidate.len() / 3).clamp(1, 2))
        .min_by_key(|&(d, _)| d)
        .map(|(_, candidate)| candidate)
}

/// True when a problem at `key` is a consequence of a problem already reported.
pub(super) fn follows_from(key: &str, reported: &[String]) -> bool {
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
pub(super) fn display_key(path: &[String]) -> String {
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
pub(super) fn split_key(key: &str) -> Vec<String> {
    key.replace('[', ".").replace(']', "").split('.').filter(|s| !s.is_empty()).map(str::to_owned).collect()
}

/// Sort problems in key order, as the user reads the file; `plugins[10]` after `plugins[9]`.
pub(super) fn sort_by_key(problems: &mut [ConfigProblem]) {
    problems.sort_by_cached_key(|p| {
        let segments = split_key(p.key.as_deref().unwrap_or_default());
        segments.into_iter().map(|s| (s.parse::<usize>().unwrap_or(usize::MAX), s)).collect::<Vec<_>>()
    });
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
