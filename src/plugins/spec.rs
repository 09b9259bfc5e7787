//! What the host needs to run one plugin: a valid name, how to launch it, its environment and
//! its restart policy. The config module builds these from the file (after its own checks);
//! the plugins module runs them and never reads the config itself.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use crate::plugins::builtin::Builtin;

/// A plugin name: 1..64 characters of `a-z A-Z 0-9 . _ -`, and neither `.` nor `..`.
///
/// Holding one is the proof of the rule, which the rest of the program relies on: the name is
/// used as a URL path segment (`/plugin/NAME`) and a Prometheus label value without escaping.
/// `.` and `..` are refused because as path segments they would name another page.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PluginName(String);

/// A name that breaks the [`PluginName`] rule; shown quoted, so a hostile name prints literally.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid plugin name {0:?}: expected 1..64 characters of a-z A-Z 0-9 . _ - (not . or ..)")]
pub struct InvalidPluginName(pub String);

impl PluginName {
    pub fn new(name: impl Into<String>) -> Result<PluginName, InvalidPluginName> {
        let name = name.into();
        let allowed = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-');
        if (1..=64).contains(&name.len()) && name.bytes().all(allowed) && name != "." && name != ".." {
            Ok(PluginName(name))
        } else {
            Err(InvalidPluginName(name))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for PluginName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One plugin as configured. `PartialEq` lets a config reload tell a changed entry from an
/// unchanged one.
#[derive(Debug, Clone, PartialEq)]
pub struct PluginConfig {
    pub name: PluginName,
    pub launch: Launch,
    pub env: BTreeMap<String, String>,
    /// Absolute when it came from a config file (relative ones are resolved against its directory).
    pub cwd: Option<PathBuf>,
    /// Shown when the plugin does not report a version itself.
    pub version: Option<String>,
    /// Commands routed to it even if it never says hello.
    pub commands: Vec<String>,
    pub restart: RestartPolicy,
    pub reload: ReloadPolicy,
    /// A command not answered within this is answered by the host (`command_timeout`).
    pub command_timeout: Duration,
    /// Recycle the plugin when its process tree stays above a limit (`max_memory_mb`).
    pub memory_limit: Option<MemoryLimit>,
    /// Reload it when one of these changes (`watch`); empty: no watching.
    pub watch: Vec<WatchPattern>,
}

/// `command_timeout` unless the config says otherwise.
pub const DEFAULT_COMMAND_TIMEOUT: Duration = Duration::from_secs(10);

/// How a plugin's process is started.
#[derive(Debug, Clone, PartialEq)]
pub enum Launch {
    Builtin(Builtin),
    /// `program` is looked up in `PATH` unless it contains a `/`.
    Command {
        program: String,
        args: Vec<String>,
    },
}

/// When and how often a crashed plugin is started again.
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
        // Both delays are finite and non-negative, so the capped product converts.
        Duration::try_from_secs_f64(secs).unwrap_or(self.max_delay)
    }
}

impl Default for RestartPolicy {
    fn default() -> Self {
        RestartPolicy {
            enabled: true,
            max_attempts: 5,
            initial_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(30),
            reset_window: Duration::from_secs(60),
        }
    }
}

/// How long a reload waits for the new process and for the old one to finish its work, how it
/// checks the new one before the switch, and how long it can still go back after it.
#[derive(Debug, Clone, PartialEq)]
pub struct ReloadPolicy {
    /// The new process must say hello within this (`reload_timeout`).
    pub ready_timeout: Duration,
    /// The old process gets this long to answer what it already received (`drain_timeout`).
    pub drain_timeout: Duration,
    /// After the switch the old process is kept, idle, this long; a crash of the new one
    /// meanwhile switches back to it (`rollback_window`; zero keeps nothing).
    pub rollback_window: Duration,
    /// A command the new process must answer before the switch (`probe`).
    pub probe: Option<Probe>,
}

/// `rollback_window` unless the config says otherwise.
pub const DEFAULT_ROLLBACK_WINDOW: Duration = Duration::from_secs(10);
/// A probe's `timeout` unless the config says otherwise.
pub const DEFAULT_PROBE_TIMEOUT: Duration = Duration::from_secs(5);

impl Default for ReloadPolicy {
    fn default() -> Self {
        ReloadPolicy {
            ready_timeout: Duration::from_secs(10),
            drain_timeout: Duration::from_secs(30),
            rollback_window: DEFAULT_ROLLBACK_WINDOW,
            probe: None,
        }
    }
}

/// A readiness probe: `!command args` sent to a reload's new process after its hello; it is
/// ready when the reply contains `expect` (any reply, when `expect` is empty) within `timeout`.
#[derive(Debug, Clone, PartialEq)]
pub struct Probe {
    /// Without the `!`.
    pub command: String,
    pub args: String,
    pub expect: String,
    pub timeout: Duration,
}

impl Probe {
    /// Does `reply` pass? A plain substring: what an operator writes is what is looked for.
    pub fn accepts(&self, reply: &str) -> bool {
        reply.contains(&self.expect)
    }
}

/// The probe as chat shows a command: `!roll 1d1`.
impl fmt::Display for Probe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "!{}", self.command)?;
        if !self.args.is_empty() {
            write!(f, " {}", self.args)?;
        }
        Ok(())
    }
}

/// `max_memory_mb` and its companions: when the process tree stays above `max_bytes` for
/// `samples` samples in a row it is recycled by a hot reload; when that has happened `recycles`
/// times within `window` and it is over again, the plugin is FAILED instead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemoryLimit {
    pub max_mb: u32,
    pub samples: u32,
    pub recycles: u32,
    /// Zero: never give up, recycle every time.
    pub window: Duration,
}

impl MemoryLimit {
    pub fn max_bytes(&self) -> u64 {
        u64::from(self.max_mb) * 1024 * 1024
    }
}

/// `max_memory_samples`, `max_memory_recycles` and `max_memory_window` unless the config says otherwise.
pub const DEFAULT_MEMORY_SAMPLES: u32 = 3;
pub const DEFAULT_MEMORY_RECYCLES: u32 = 3;
pub const DEFAULT_MEMORY_WINDOW: Duration = Duration::from_secs(600);

/// One entry of `watch`: a path (file or directory) or a glob (`plugins/*.py`, `lib/**`),
/// absolute (a relative one in the file is resolved against the config file's directory).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchPattern(pub PathBuf);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plugin_names_are_url_safe_path_segments() {
        for good in ["dice-roller", "8ball", "a.b_c-D", "..x", &"x".repeat(64)] {
            assert_eq!(PluginName::new(good).map(|n| n.to_string()), Ok(good.to_owned()));
        }
        for bad in ["", ".", "..", "a b", "a/b", "<x>", "é", &"x".repeat(65)] {
            assert_eq!(PluginName::new(bad), Err(InvalidPluginName(bad.to_owned())), "{bad} should be invalid");
        }
    }

    #[test]
    fn a_probe_reads_as_its_chat_command_and_looks_for_a_plain_substring() {
        let probe = |args: &str, expect: &str| Probe {
            command: "roll".into(),
            args: args.into(),
            expect: expect.into(),
            timeout: DEFAULT_PROBE_TIMEOUT,
        };
        assert_eq!(probe("1d1", "").to_string(), "!roll 1d1");
        assert_eq!(probe("", "").to_string(), "!roll");
        assert!(probe("1d1", "= 1").accepts("🎲 1d1: [1] = 1"));
        assert!(!probe("1d1", "= 1").accepts("error"));
        assert!(probe("1d1", "").accepts("anything"), "an empty expect takes any reply");
        assert!(!probe("", "[1]").accepts("1"), "not a pattern: brackets are literal");
    }
}
