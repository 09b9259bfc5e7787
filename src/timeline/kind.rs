//! What kind of thing happened: snake_case names used as they are by the API
//! (`kind=crashed,failed`), the webhooks' `events` lists and the CLI.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

macro_rules! kinds {
    ($($variant:ident => $name:literal, $doc:literal;)*) => {
        /// The kind of an [`Event`](super::Event).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum Kind {
            $(#[doc = $doc] $variant,)*
        }

        impl Kind {
            pub const ALL: &[Kind] = &[$(Kind::$variant,)*];

            pub fn as_str(self) -> &'static str {
                match self {
                    $(Kind::$variant => $name,)*
                }
            }
        }
    };
}

kinds! {
    Started => "started", "A plugin process started (pid).";
    Hello => "hello", "A plugin said hello (its version and commands).";
    Crashed => "crashed", "A plugin process ended on its own (exit code or signal, stderr tail).";
    RestartScheduled => "restart_scheduled", "A crashed plugin will be started again after its backoff.";
    Failed => "failed", "A plugin crashed too often and is given up on (FAILED).";
    Reloaded => "reloaded", "A hot reload's new process took over.";
    RolledBack => "rolled_back", "A hot reload's new process failed; the old one kept serving.";
    ReloadFailed => "reload_failed", "A reload of a plugin with no process running could not start it.";
    Action => "action", "A restart, stop or start asked for by someone (who).";
    ConfigReloaded => "config_reloaded", "The config was read again: plugins added, removed, changed.";
    ConfigRefused => "config_refused", "A config reload changed nothing: the new config is invalid.";
    HealthChanged => "health_changed", "A card turned yellow (CPU or memory over the threshold) or back.";
    Stale => "stale", "A running plugin's figures went stale, or fresh again.";
    AuthFailed => "auth_failed", "Failed dashboard logins (rate-limited: one event per window).";
    ChatConnected => "chat_connected", "A chat connection logged in.";
    ChatDisconnected => "chat_disconnected", "A logged-in chat connection was lost.";
    NotifyFailed => "notify_failed", "A webhook could not be delivered.";
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Text that names no kind.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown event kind {0:?} (expected one of: {list})", list = Kind::ALL.iter().map(|k| k.as_str()).collect::<Vec<_>>().join(", "))]
pub struct UnknownKind(pub String);

impl FromStr for Kind {
    type Err = UnknownKind;

    fn from_str(s: &str) -> Result<Kind, UnknownKind> {
        Kind::ALL.iter().copied().find(|k| k.as_str() == s).ok_or_else(|| UnknownKind(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_read_back_and_match_serde() {
        for kind in Kind::ALL {
            assert_eq!(kind.as_str().parse::<Kind>(), Ok(*kind));
            assert_eq!(serde_json::to_value(kind).expect("a name"), kind.as_str());
        }
        assert!("crash".parse::<Kind>().expect_err("unknown").to_string().contains("crashed"));
    }
}
