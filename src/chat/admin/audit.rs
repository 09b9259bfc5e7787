//! The last admin commands and refusals, in memory (`!admin audit`, and `GET /api/audit`
//! through the collector's snapshot); the `audit` log target keeps the full history.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use serde::Serialize;

use crate::display::rfc3339;
use crate::sync::lock;

/// How many entries are kept.
pub const AUDIT_ENTRIES: usize = 100;

/// One admin command, or its refusal, or an action's outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditEntry {
    /// RFC 3339, UTC.
    pub at: String,
    /// `console user "console"`, `irc nick "alice" account "alice" on connection 0`.
    pub who: String,
    /// The words after `!admin` (or the action, for an outcome).
    pub command: String,
    /// `accepted`, `refused: …`, or the action's outcome.
    pub outcome: String,
}

/// A shared ring of the last [`AUDIT_ENTRIES`] entries, and the count of `!admin` commands
/// by command and user (`rosey_admin_commands_total{command,user}`).
#[derive(Debug, Clone, Default)]
pub struct AuditLog {
    entries: Arc<Mutex<VecDeque<AuditEntry>>>,
    counts: Arc<Mutex<BTreeMap<(&'static str, String), u64>>>,
}

impl AuditLog {
    /// Count one `!admin` command. `user` is an admin's name, or `refused` for everyone
    /// refused (so the label values stay bounded by the configured admins).
    pub fn count(&self, command: &'static str, user: &str) {
        *lock(&self.counts).entry((command, user.to_owned())).or_default() += 1;
    }

    /// `((command, user), count)`, sorted.
    pub fn counts(&self) -> Vec<((&'static str, String), u64)> {
        lock(&self.counts).iter().map(|(k, v)| (k.clone(), *v)).collect()
    }

    pub fn record(&self, who: &str, command: &str, outcome: &str) {
        let entry = AuditEntry {
            at: rfc3339(SystemTime::now()),
            who: who.to_owned(),
            command: command.to_owned(),
            outcome: outcome.to_owned(),
        };
        let mut entries = lock(&self.entries);
        if entries.len() == AUDIT_ENTRIES {
            entries.pop_front();
        }
        entries.push_back(entry);
    }

    /// Oldest first.
    pub fn entries(&self) -> Vec<AuditEntry> {
        lock(&self.entries).iter().cloned().collect()
    }

    /// The latest `n`, one line each, newest last.
    pub fn summary(&self, n: usize) -> String {
        let entries = self.entries();
        if entries.is_empty() {
            return "no admin commands yet".to_owned();
        }
        let start = entries.len().saturating_sub(n);
        entries[start..]
            .iter()
            .map(|e| format!("{} {}: !admin {} → {}", e.at, e.who, e.command.escape_debug(), e.outcome))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ring_keeps_the_last_hundred() {
        let log = AuditLog::default();
        for i in 0..150 {
            log.record("console user \"console\"", &format!("status {i}"), "accepted");
        }
        let entries = log.entries();
        assert_eq!(entries.len(), AUDIT_ENTRIES);
        assert_eq!(entries[0].command, "status 50");
        assert_eq!(log.summary(2).lines().count(), 2);
        assert!(log.summary(1).ends_with("!admin status 149 → accepted"));
    }
}
