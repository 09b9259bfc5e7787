//! Events that only the snapshots reveal: a card turning yellow (CPU or memory over the
//! dashboard's thresholds) and back, a running plugin's figures going stale and fresh again,
//! a chat connection logging in or being lost. One task compares each snapshot with the one
//! before, with the same classification the cards use ([`Health::of`]).

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::json;
use tokio::sync::watch;

use super::{Kind, Note, Timeline};
use crate::chat::irc::connection::LinkState;
use crate::metrics::Snapshot;
use crate::metrics::health::{Health, Thresholds};

/// What was seen of a plugin last time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Seen {
    health: Health,
    stale: bool,
}

/// The previous snapshot, as far as the events go.
#[derive(Default)]
struct Previous {
    plugins: HashMap<String, Seen>,
    /// Connection name → logged in?
    chat: HashMap<String, bool>,
}

/// Record what changed from snapshot to snapshot, until the snapshots end.
pub async fn follow(mut snapshots: watch::Receiver<Arc<Snapshot>>, thresholds: Thresholds, timeline: Timeline) {
    let mut watcher = Watcher::new(thresholds, timeline);
    loop {
        let snapshot = snapshots.borrow_and_update().clone();
        watcher.observe(&snapshot);
        if snapshots.changed().await.is_err() {
            return;
        }
    }
}

/// Compares each snapshot with the one before and records the differences.
pub struct Watcher {
    previous: Previous,
    thresholds: Thresholds,
    timeline: Timeline,
}

impl Watcher {
    pub fn new(thresholds: Thresholds, timeline: Timeline) -> Watcher {
        Watcher { previous: Previous::default(), thresholds, timeline }
    }

    /// Record what changed since the last snapshot observed.
    pub fn observe(&mut self, snapshot: &Snapshot) {
        let previous = std::mem::take(&mut self.previous);
        self.previous = compare(previous, snapshot, self.thresholds, &self.timeline);
    }
}

fn compare(previous: Previous, snapshot: &Snapshot, thresholds: Thresholds, timeline: &Timeline) -> Previous {
    let mut now = Previous::default();
    for p in &snapshot.plugins {
        let (health, badge) = Health::of(p, thresholds);
        let seen = Seen { health, stale: snapshot.is_stale(p) };
        if let Some(before) = previous.plugins.get(&p.name) {
            // Red (CRASHED, FAILED) has events of its own; yellow is what the thresholds say.
            let threshold = before.health == Health::Warning || seen.health == Health::Warning;
            if before.health != seen.health && threshold {
                let message = format!("card {} → {} ({})", colour(before.health), colour(seen.health), badge);
                let details = json!({
                    "from": before.health.as_str(),
                    "to": seen.health.as_str(),
                    "badge": badge,
                    "cpu_percent": p.cpu_percent,
                    "memory_mb": p.memory_mb(),
                });
                timeline.record(Note::new(Kind::HealthChanged, message).plugin(&p.name).details(details));
            }
            if before.stale != seen.stale {
                let message = if seen.stale {
                    "figures are stale (no sample for two poll intervals)"
                } else {
                    "figures are fresh again"
                };
                timeline
                    .record(Note::new(Kind::Stale, message).plugin(&p.name).details(json!({ "stale": seen.stale })));
            }
        }
        now.plugins.insert(p.name.clone(), seen);
    }
    for connection in &snapshot.chat.connections {
        let logged_in = connection.state == LinkState::Registered;
        let before = previous.chat.get(&connection.name).copied().unwrap_or(false);
        if logged_in != before {
            let (kind, message) = if logged_in {
                (Kind::ChatConnected, format!("chat {} connected to {}", connection.name, connection.server))
            } else {
                let why = connection.last_error.as_deref().unwrap_or("no reason given");
                (Kind::ChatDisconnected, format!("chat {} disconnected: {why}", connection.name))
            };
            let details = json!({
                "connection": connection.name,
                "server": connection.server,
                "nick": connection.nick,
                "last_error": connection.last_error,
                "reconnects": connection.reconnects,
            });
            timeline.record(Note::new(kind, message).details(details));
        }
        now.chat.insert(connection.name.clone(), logged_in);
    }
    now
}

/// A card's colour in words.
fn colour(health: Health) -> &'static str {
    match health {
        Health::Healthy => "green",
        Health::Warning => "yellow",
        Health::Error => "red",
        Health::Idle => "grey",
    }
}
