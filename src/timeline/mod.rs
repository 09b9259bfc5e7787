//! The timeline: one bounded, in-memory list of everything the host knows happened (a plugin
//! started, said hello, crashed, was reloaded; an operator's action; a config reload; a card
//! that turned yellow; a chat connection lost…), each [`Event`] with an increasing id.
//!
//! [`Timeline`] is a cheap handle: any part of the bot records an event with one call that
//! takes a lock only for the push, never across an await. Live subscribers (the `/timeline`
//! page, `/api/events/live`, the notifier) get every new event over a broadcast; the list
//! itself answers `GET /api/events`. With `timeline.file` set, every event is also appended to
//! a JSON-lines file ([`file`]) that is read back at start, so the history survives a restart.
//! What the snapshots alone reveal (thresholds crossed, stale figures, chat connections) is
//! turned into events by [`watch`].

mod file;
mod kind;
pub mod notes;
pub mod watch;

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::broadcast;

use crate::config::TimelineConfig;
use crate::display::rfc3339;
use crate::sync::lock;
pub use kind::{Kind, UnknownKind};

/// Events a live subscriber may fall behind by before it skips ahead.
const LIVE_BUFFER: usize = 1024;
/// The most events one answer of `GET /api/events` holds.
pub const MAX_LIMIT: usize = 10_000;

/// One thing that happened.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Increasing, also across restarts when the timeline is kept in a file.
    pub id: u64,
    /// RFC 3339, UTC.
    pub time: String,
    pub kind: Kind,
    /// The plugin it happened to, if any.
    pub plugin: Option<String>,
    /// Who asked, for actions and config reloads (`api user "admin"`, `signal SIGHUP`).
    pub who: Option<String>,
    /// One line for a person.
    pub message: String,
    /// The facts, by kind (docs/api.md, "The timeline").
    pub details: Value,
}

/// An event before it has an id and a time.
#[derive(Debug, Clone)]
pub struct Note {
    kind: Kind,
    plugin: Option<String>,
    who: Option<String>,
    message: String,
    details: Value,
}

impl Note {
    pub fn new(kind: Kind, message: impl Into<String>) -> Note {
        Note { kind, plugin: None, who: None, message: message.into(), details: Value::Object(Default::default()) }
    }

    pub fn plugin(mut self, plugin: impl Into<String>) -> Note {
        self.plugin = Some(plugin.into());
        self
    }

    pub fn who(mut self, who: impl ToString) -> Note {
        self.who = Some(who.to_string());
        self
    }

    pub fn details(mut self, details: Value) -> Note {
        self.details = details;
        self
    }
}

/// What `GET /api/events` asks for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    /// Only events after this id; without it, the newest `limit` events.
    pub since: Option<u64>,
    pub plugin: Option<String>,
    /// Only these kinds (empty: all).
    pub kinds: Vec<Kind>,
    pub limit: usize,
}

impl Filter {
    /// Does `event` pass the plugin and kind filters?
    pub fn matches(&self, event: &Event) -> bool {
        self.plugin.as_ref().is_none_or(|p| event.plugin.as_deref() == Some(p.as_str()))
            && (self.kinds.is_empty() || self.kinds.contains(&event.kind))
    }
}

/// An answer of `GET /api/events`: oldest first, and the id to pass as `since` next time.
#[derive(Debug, Clone, Serialize)]
pub struct Page {
    #[serde(serialize_with = "shared_events")]
    pub events: Vec<Arc<Event>>,
    pub next: u64,
}

/// Shared events serialise as the events themselves.
pub fn shared_events<S: serde::Serializer>(events: &[Arc<Event>], serializer: S) -> Result<S::Ok, S::Error> {
    serializer.collect_seq(events.iter().map(|e| &**e))
}

/// The timeline; clones share it.
#[derive(Clone)]
pub struct Timeline(Arc<Shared>);

struct Shared {
    ring: Mutex<Ring>,
    live: broadcast::Sender<Arc<Event>>,
    file: Option<file::Appender>,
}

struct Ring {
    events: VecDeque<Arc<Event>>,
    next_id: u64,
    capacity: usize,
}

impl std::fmt::Debug for Timeline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Timeline").field("newest_id", &(lock(&self.0.ring).next_id - 1)).finish_non_exhaustive()
    }
}

impl Timeline {
    /// A timeline in memory only, holding the newest `capacity` events.
    pub fn new(capacity: usize) -> Timeline {
        Timeline::with(Vec::new(), capacity, None)
    }

    /// The timeline `config` asks for: with a file, what it holds is read back first (a line
    /// that cannot be read is skipped with a warning; a file that cannot be opened is logged
    /// and the timeline stays in memory).
    pub fn open(config: &TimelineConfig) -> Timeline {
        let capacity = config.capacity.max(1);
        match &config.file {
            None => Timeline::new(capacity),
            Some(path) => {
                let kept = file::read_back(path, capacity);
                let appender = file::Appender::start(path.clone(), capacity);
                Timeline::with(kept, capacity, appender)
            }
        }
    }

    fn with(kept: Vec<Event>, capacity: usize, file: Option<file::Appender>) -> Timeline {
        let next_id = kept.iter().map(|e| e.id).max().unwrap_or(0) + 1;
        let events = kept.into_iter().map(Arc::new).collect();
        let ring = Ring { events, next_id, capacity };
        let (live, _) = broadcast::channel(LIVE_BUFFER);
        Timeline(Arc::new(Shared { ring: Mutex::new(ring), live, file }))
    }

    /// Add an event; it goes to the live subscribers and the file at once.
    pub fn record(&self, note: Note) -> Arc<Event> {
        let mut ring = lock(&self.0.ring);
        let event = Arc::new(Event {
            id: ring.next_id,
            time: rfc3339(SystemTime::now()),
            kind: note.kind,
            plugin: note.plugin,
            who: note.who,
            message: note.message,
            details: note.details,
        });
        ring.next_id += 1;
        if ring.events.len() >= ring.capacity {
            ring.events.pop_front();
        }
        ring.events.push_back(event.clone());
        // Under the lock, so that subscribers and the file see the events in id order.
        let _ = self.0.live.send(event.clone());
        if let Some(file) = &self.0.file {
            file.append(&event);
        }
        drop(ring);
        event
    }

    /// New events as they are recorded.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Event>> {
        self.0.live.subscribe()
    }

    /// The events `filter` asks for, oldest first.
    pub fn query(&self, filter: &Filter) -> Page {
        let limit = filter.limit.clamp(1, MAX_LIMIT);
        let ring = lock(&self.0.ring);
        let newest = ring.next_id - 1;
        let since = filter.since.unwrap_or(0);
        let after = ring.events.partition_point(|e| e.id <= since);
        let candidates = ring.events.range(after..).filter(|e| filter.matches(e));
        let events: Vec<Arc<Event>> = if filter.since.is_some() {
            candidates.take(limit).cloned().collect()
        } else {
            let mut newest_first: Vec<Arc<Event>> =
                ring.events.iter().rev().filter(|e| filter.matches(e)).take(limit).cloned().collect();
            newest_first.reverse();
            newest_first
        };
        drop(ring);
        // Cut short by the limit: continue after the last one sent; else after all there is.
        let next = if events.len() == limit { events.last().map_or(newest, |e| e.id) } else { newest.max(since) };
        Page { events, next }
    }

    /// The newest `count` events of `plugin` (all plugins when None), newest first.
    pub fn newest(&self, plugin: Option<&str>, count: usize) -> Vec<Arc<Event>> {
        let ring = lock(&self.0.ring);
        let wanted = |e: &&Arc<Event>| plugin.is_none_or(|p| e.plugin.as_deref() == Some(p));
        ring.events.iter().rev().filter(wanted).take(count).cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn note(kind: Kind, plugin: &str) -> Note {
        Note::new(kind, format!("{kind} {plugin}")).plugin(plugin)
    }

    #[test]
    fn ids_increase_and_the_oldest_go_beyond_the_capacity() {
        let timeline = Timeline::new(3);
        for _ in 0..5 {
            timeline.record(note(Kind::Crashed, "a"));
        }
        let page = timeline.query(&Filter { limit: 100, ..Filter::default() });
        let ids: Vec<u64> = page.events.iter().map(|e| e.id).collect();
        assert_eq!((ids, page.next), (vec![3, 4, 5], 5));
    }

    #[test]
    fn since_is_exclusive_and_filters_apply() {
        let timeline = Timeline::new(100);
        timeline.record(note(Kind::Started, "a"));
        timeline.record(note(Kind::Crashed, "b"));
        timeline.record(note(Kind::Crashed, "a"));
        timeline.record(Note::new(Kind::ConfigRefused, "bad"));
        let by = |filter: Filter| -> (Vec<u64>, u64) {
            let page = timeline.query(&Filter { limit: 100, ..filter });
            (page.events.iter().map(|e| e.id).collect(), page.next)
        };
        assert_eq!(by(Filter { since: Some(1), ..Filter::default() }), (vec![2, 3, 4], 4));
        assert_eq!(by(Filter { plugin: Some("a".into()), ..Filter::default() }), (vec![1, 3], 4));
        assert_eq!(by(Filter { kinds: vec![Kind::Crashed], since: Some(2), ..Filter::default() }), (vec![3], 4));
        assert_eq!(by(Filter { since: Some(4), ..Filter::default() }), (vec![], 4));
        // Paging: the limit cuts, `next` continues from the last one sent.
        let page = timeline.query(&Filter { since: Some(0), limit: 2, ..Filter::default() });
        assert_eq!((page.events.len(), page.next), (2, 2));
    }

    #[tokio::test]
    async fn subscribers_get_new_events_in_order() {
        let timeline = Timeline::new(10);
        let mut live = timeline.subscribe();
        timeline.record(note(Kind::Hello, "a"));
        timeline.record(note(Kind::Crashed, "a"));
        assert_eq!(live.recv().await.expect("sent").kind, Kind::Hello);
        assert_eq!(live.recv().await.expect("sent").id, 2);
    }

    #[test]
    fn an_event_serialises_as_the_api_documents() {
        let timeline = Timeline::new(10);
        let event = timeline.record(note(Kind::RestartScheduled, "<b>\"x\"</b>").who("signal SIGHUP"));
        let json = serde_json::to_value(&*event).expect("plain data");
        assert_eq!(json["kind"], "restart_scheduled");
        assert_eq!(json["plugin"], "<b>\"x\"</b>");
        assert_eq!(json["who"], "signal SIGHUP");
        assert!(json["details"].is_object());
        assert!(json["time"].as_str().expect("a string").ends_with('Z'));
    }
}
