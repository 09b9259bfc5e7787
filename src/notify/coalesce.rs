//! Crash loops folded: the first crash of a plugin goes out at once and opens a window
//! (`notify.coalesce_window`); further crashes (and their scheduled restarts) within it are
//! held, and when it ends they go out as one message ("crashed 7 times in 60 s"), which opens
//! the next window. A plugin crashing without end thus sends one message per window.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::Message;
use crate::timeline::{Event, Kind};

/// Per plugin: the open window, and the crashes held in it.
struct Window {
    ends: Instant,
    held: Vec<Arc<Event>>,
}

pub(super) struct Coalescer {
    window: Duration,
    open: HashMap<String, Window>,
}

impl Coalescer {
    pub(super) fn new(window: Duration) -> Coalescer {
        Coalescer { window, open: HashMap::new() }
    }

    /// The message to send now for `event`, or None when it is held for its window.
    pub(super) fn admit(&mut self, event: &Arc<Event>, now: Instant) -> Option<Message> {
        let plugin = match (&event.plugin, event.kind) {
            (Some(plugin), Kind::Crashed | Kind::RestartScheduled) => plugin,
            _ => return Some(Message::single(event.clone())),
        };
        match self.open.get_mut(plugin) {
            Some(window) if now < window.ends => {
                window.held.push(event.clone());
                None
            }
            _ => {
                self.open.insert(plugin.clone(), Window { ends: now + self.window, held: Vec::new() });
                Some(Message::single(event.clone()))
            }
        }
    }

    /// The folded messages of the windows that ended by `now`.
    pub(super) fn due(&mut self, now: Instant) -> Vec<Message> {
        let mut messages = Vec::new();
        let window = self.window;
        self.open.retain(|_, open| {
            if now < open.ends {
                return true;
            }
            if open.held.is_empty() {
                return false;
            }
            messages.extend(Message::folded(std::mem::take(&mut open.held), window));
            // The folded message opens the next window, so a loop sends one per window.
            open.ends = now + window;
            true
        });
        messages
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::timeline::{Note, Timeline};

    #[test]
    fn a_crash_loop_sends_the_first_crash_then_one_message_per_window() {
        let timeline = Timeline::new(100);
        let mut coalescer = Coalescer::new(Duration::from_secs(60));
        let start = Instant::now();
        let crash = |n: u64| timeline.record(Note::new(Kind::Crashed, format!("crash {n}")).plugin("loop"));
        assert!(coalescer.admit(&crash(0), start).is_some(), "the first goes out at once");
        for n in 1..20 {
            assert!(coalescer.admit(&crash(n), start + Duration::from_secs(n)).is_none());
        }
        let other = timeline.record(Note::new(Kind::Crashed, "x").plugin("other"));
        assert!(coalescer.admit(&other, start).is_some(), "windows are per plugin");
        assert!(coalescer.due(start + Duration::from_secs(59)).is_empty());
        let folded = coalescer.due(start + Duration::from_secs(60));
        assert_eq!(folded.len(), 1);
        assert_eq!(folded[0].crashes(), 19);
        assert!(coalescer.admit(&crash(21), start + Duration::from_secs(61)).is_none(), "the next window is open");
        let failed = timeline.record(Note::new(Kind::Failed, "gave up").plugin("loop"));
        assert!(coalescer.admit(&failed, start + Duration::from_secs(62)).is_some(), "FAILED is never held");
    }
}
