//! What a webhook is sent: one event, or a crash loop folded into one; as Rosey's JSON or as
//! a chat-webhook text body (docs/api.md, "Webhook notifications").

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use crate::config::WebhookFormat;
use crate::timeline::{Event, Kind};

/// One message to a webhook.
#[derive(Debug, Clone)]
pub struct Message {
    /// The event, or the newest of those folded.
    event: Arc<Event>,
    /// How many events it stands for (1 unless folded).
    count: usize,
    /// Crashes folded, of those events (the scheduled restarts are not counted).
    crashes: usize,
    first_id: u64,
    /// The window the events were folded over.
    window: Option<Duration>,
}

/// Rosey's JSON body (`format: json`).
#[derive(Serialize)]
struct JsonBody<'a> {
    /// The message in one line, as the chat format sends it.
    text: String,
    /// The event, as `GET /api/events` has it; the newest one when folded.
    event: &'a Event,
    /// Events this message stands for (more than 1 for a folded crash loop).
    count: usize,
    /// The id of the first event folded (the event's own id when not folded).
    first_id: u64,
}

/// Slack and Mattermost read `text`; Discord reads `content` (and ignores `text`).
#[derive(Serialize)]
struct ChatBody<'a> {
    text: &'a str,
    content: &'a str,
}

impl Message {
    pub fn single(event: Arc<Event>) -> Message {
        Message { first_id: event.id, crashes: usize::from(event.kind == Kind::Crashed), event, count: 1, window: None }
    }

    /// `held` (oldest first) as one message; None when it holds no crash (only the scheduled
    /// restart of a crash that went out alone).
    pub fn folded(held: Vec<Arc<Event>>, window: Duration) -> Option<Message> {
        let crashes = held.iter().filter(|e| e.kind == Kind::Crashed).count();
        let first_id = held.first().map_or(0, |e| e.id);
        let count = held.len();
        let event = held.into_iter().rev().find(|e| e.kind == Kind::Crashed)?;
        Some(Message { event, count, crashes, first_id, window: Some(window) })
    }

    /// Crashes folded into this message.
    #[cfg(test)]
    pub fn crashes(&self) -> usize {
        self.crashes
    }

    pub fn event(&self) -> &Event {
        &self.event
    }

    /// The message in one line.
    pub fn text(&self) -> String {
        let plugin = self.event.plugin.as_deref().map(|p| format!("{p}: ")).unwrap_or_default();
        match self.window {
            Some(window) => format!(
                "[rosey] {plugin}crashed {} more times in {} s (last: {})",
                self.crashes,
                window.as_secs_f64(),
                self.event.message
            ),
            None => format!("[rosey] {plugin}{}", self.event.message),
        }
    }

    /// The exact bytes sent (and signed).
    pub fn body(&self, format: WebhookFormat) -> Vec<u8> {
        let text = self.text();
        // Serialising plain data into memory cannot fail.
        match format {
            WebhookFormat::Json => {
                serde_json::to_vec(&JsonBody { text, event: &self.event, count: self.count, first_id: self.first_id })
            }
            WebhookFormat::Slack => serde_json::to_vec(&ChatBody { text: &text, content: &text }),
        }
        .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::timeline::{Note, Timeline};

    #[test]
    fn both_formats_carry_the_line_and_json_the_event() {
        let timeline = Timeline::new(10);
        let event = timeline.record(Note::new(Kind::Crashed, "crashed: exited with code 3 after 0.1 s").plugin("<p>"));
        let message = Message::single(event);
        let json: serde_json::Value = serde_json::from_slice(&message.body(WebhookFormat::Json)).expect("JSON");
        assert_eq!(json["text"], "[rosey] <p>: crashed: exited with code 3 after 0.1 s");
        assert_eq!((json["event"]["kind"].as_str(), json["count"].as_u64()), (Some("crashed"), Some(1)));
        let chat: serde_json::Value = serde_json::from_slice(&message.body(WebhookFormat::Slack)).expect("JSON");
        assert_eq!(chat["text"], json["text"]);
        assert_eq!(chat["content"], json["text"]);
    }
}
