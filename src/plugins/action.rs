//! What an operator can do to one plugin ([`Action`]), who asked ([`Trigger`]) and how it went
//! ([`ActionReport`], [`ActionError`]). Plain data, shared by the host that carries actions out
//! and by every place that asks for them (API, console, signals, config reload).

use std::fmt;
use std::str::FromStr;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use super::timing::Buckets;

/// An operation on one plugin.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Blue-green: start a new process beside the old one, switch routing when it is ready,
    /// drain and stop the old one; roll back if the new one fails.
    Reload,
    /// Stop, then start (no overlap, for plugins that cannot run twice).
    Restart,
    /// Stop and stay STOPPED (no automatic restart).
    Stop,
    /// Start a STOPPED or FAILED plugin.
    Start,
}

impl Action {
    pub const ALL: [Action; 4] = [Action::Reload, Action::Restart, Action::Stop, Action::Start];

    pub fn as_str(self) -> &'static str {
        match self {
            Action::Reload => "reload",
            Action::Restart => "restart",
            Action::Stop => "stop",
            Action::Start => "start",
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Text that names no action.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown action {0:?} (expected reload, restart, stop or start)")]
pub struct UnknownAction(pub String);

impl FromStr for Action {
    type Err = UnknownAction;

    fn from_str(s: &str) -> Result<Action, UnknownAction> {
        Action::ALL.into_iter().find(|a| a.as_str() == s).ok_or_else(|| UnknownAction(s.to_owned()))
    }
}

/// Who or what asked for an action: written to the audit log and to a plugin's reload log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trigger {
    /// An HTTP request; the basic-auth user when there is one.
    Api { user: Option<String> },
    /// The operator's console (or a chat user typing there).
    Console { user: String },
    /// A chat network's admin, vouched for by the server: `nick` logged in as `account` on
    /// the connection named `network`.
    Chat { network: String, nick: String, account: String },
    /// A process signal, e.g. `SIGHUP`.
    Signal(&'static str),
    /// A config reload that found this plugin's entry changed.
    Config,
    /// The plugin's process tree stayed above its `max_memory_mb` (`mb` at the last sample).
    Memory { mb: u64, limit_mb: u32 },
    /// A file under one of the plugin's `watch` entries changed.
    Watch { path: String },
}

impl Trigger {
    /// `api`, `console`, `chat`, `signal`, `config`, `memory` or `watch`: the `trigger` field
    /// of a reload-log entry.
    pub fn kind(&self) -> &'static str {
        match self {
            Trigger::Api { .. } => "api",
            Trigger::Console { .. } => "console",
            Trigger::Chat { .. } => "chat",
            Trigger::Signal(_) => "signal",
            Trigger::Config => "config",
            Trigger::Memory { .. } => "memory",
            Trigger::Watch { .. } => "watch",
        }
    }

    /// Why the host reloaded on its own, for the card's last-reload line (`memory over
    /// 200 MB`); None when a person asked.
    pub fn automatic(&self) -> Option<String> {
        match self {
            Trigger::Memory { limit_mb, .. } => Some(format!("memory over {limit_mb} MB")),
            Trigger::Watch { .. } => Some("a watched file changed".to_owned()),
            _ => None,
        }
    }
}

/// For the audit log: `api user "admin"`, `console user "console"`, `signal SIGHUP`.
impl fmt::Display for Trigger {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Trigger::Api { user: Some(user) } => write!(f, "api user {user:?}"),
            Trigger::Api { user: None } => f.write_str("api"),
            Trigger::Console { user } => write!(f, "console user {user:?}"),
            Trigger::Chat { network, nick, account } => {
                write!(f, "chat nick {nick:?} account {account:?} on {network:?}")
            }
            Trigger::Signal(name) => write!(f, "signal {name}"),
            Trigger::Config => f.write_str("config reload"),
            Trigger::Memory { mb, limit_mb } => write!(f, "memory limit ({mb} MB over max_memory_mb {limit_mb})"),
            Trigger::Watch { path } => write!(f, "file change {path:?}"),
        }
    }
}

/// How a finished action went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActionOutcome {
    /// A restart, stop or start that did what was asked.
    Done,
    /// A reload whose new process took over.
    Reloaded,
    /// A reload whose new process failed; the old one kept serving.
    RolledBack,
    /// A restart or start whose process could not be started.
    Failed,
}

impl ActionOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            ActionOutcome::Done => "done",
            ActionOutcome::Reloaded => "reloaded",
            ActionOutcome::RolledBack => "rolled_back",
            ActionOutcome::Failed => "failed",
        }
    }
}

impl fmt::Display for ActionOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The result of one finished action, as the API answers it (and a client reads it back).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActionReport {
    pub plugin: String,
    pub action: Action,
    pub outcome: ActionOutcome,
    pub from_version: Option<String>,
    pub to_version: Option<String>,
    #[serde(rename = "duration_seconds", serialize_with = "seconds", deserialize_with = "from_seconds")]
    pub duration: Duration,
    /// Why it rolled back or failed, in words (e.g. "exited with code 3 before hello").
    pub reason: Option<String>,
}

/// A duration as a JSON number of seconds (`duration_seconds` everywhere in the API).
pub(crate) fn seconds<S: serde::Serializer>(d: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_f64(d.as_secs_f64())
}

/// The other way: a JSON number of seconds, refused when negative or not finite.
fn from_seconds<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
    let seconds = f64::deserialize(deserializer)?;
    Duration::try_from_secs_f64(seconds).map_err(serde::de::Error::custom)
}

/// One finished reload, as a plugin's reload log keeps it.
#[derive(Debug, Clone, PartialEq)]
pub struct ReloadRecord {
    pub at: SystemTime,
    /// Who asked.
    pub trigger: Trigger,
    pub from_version: Option<String>,
    pub to_version: Option<String>,
    pub duration: Duration,
    pub outcome: ActionOutcome,
    pub reason: Option<String>,
}

/// Finished reloads of one plugin, by outcome (`rosey_plugin_reloads_total`), and how long
/// they took (`rosey_reload_duration_seconds`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReloadCounts {
    pub reloaded: u64,
    pub rolled_back: u64,
    pub failed: u64,
    pub durations: Buckets,
}

impl ReloadCounts {
    pub fn count(&mut self, outcome: ActionOutcome, took: Duration) {
        self.durations.record(took);
        match outcome {
            ActionOutcome::Reloaded => self.reloaded += 1,
            ActionOutcome::RolledBack => self.rolled_back += 1,
            ActionOutcome::Failed | ActionOutcome::Done => self.failed += 1,
        }
    }

    /// Every outcome a reload can have, with its count.
    pub fn by_outcome(&self) -> [(ActionOutcome, u64); 3] {
        [
            (ActionOutcome::Reloaded, self.reloaded),
            (ActionOutcome::RolledBack, self.rolled_back),
            (ActionOutcome::Failed, self.failed),
        ]
    }
}

/// Why an action was not carried out at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ActionError {
    #[error("Plugin {0} not found")]
    UnknownPlugin(String),
    #[error("{plugin}: a {running} is already in progress; try again when it has finished")]
    Busy { plugin: String, running: Action },
    #[error("the bot is shutting down")]
    ShuttingDown,
    /// A reload re-reads the plugin's entry from the config file, which is now invalid: every
    /// problem, one line each.
    #[error("the config file is invalid, nothing was changed:\n{}", .0.join("\n"))]
    InvalidConfig(Vec<String>),
    /// A reload found no entry for the plugin in the config file.
    #[error("Plugin {0} is no longer in the config file; reload the config to remove it")]
    NotInConfig(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actions_parse_from_their_names_only() {
        for action in Action::ALL {
            assert_eq!(action.as_str().parse::<Action>(), Ok(action));
        }
        assert_eq!("Reload".parse::<Action>(), Err(UnknownAction("Reload".into())));
    }

    #[test]
    fn a_report_serialises_with_seconds_and_snake_case_outcome() {
        let report = ActionReport {
            plugin: "dice".into(),
            action: Action::Reload,
            outcome: ActionOutcome::RolledBack,
            from_version: Some("1".into()),
            to_version: None,
            duration: Duration::from_millis(1500),
            reason: Some("exited with code 3 before hello".into()),
        };
        let json = serde_json::to_value(&report).expect("plain data serialises");
        assert_eq!(json["action"], "reload");
        assert_eq!(json["outcome"], "rolled_back");
        assert_eq!(json["duration_seconds"], 1.5);
        let read: ActionReport = serde_json::from_value(json).expect("what the API sends reads back");
        assert_eq!(read, report);
    }

    #[test]
    fn triggers_name_who_asked() {
        assert_eq!(Trigger::Api { user: Some("admin".into()) }.to_string(), "api user \"admin\"");
        assert_eq!(Trigger::Signal("SIGHUP").kind(), "signal");
        let memory = Trigger::Memory { mb: 312, limit_mb: 200 };
        assert_eq!(
            (memory.kind(), memory.to_string()),
            ("memory", "memory limit (312 MB over max_memory_mb 200)".into())
        );
        assert_eq!(Trigger::Watch { path: "/a/b\"c".into() }.to_string(), "file change \"/a/b\\\"c\"");
        assert_eq!(Trigger::Api { user: None }.automatic(), None);
    }
}
