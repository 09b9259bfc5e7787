//! `rosey logs NAME [-n N] [-f]` and `rosey events [-f] [--plugin NAME] [--kind KINDS]`:
//! print a plugin's newest log lines (`/api/plugin/NAME/logs`) or the bot's timeline
//! (`/api/events`), oldest first, one line each; with `-f`, keep printing what the live routes
//! (`…/logs/live`, `/api/events/live`) send until Ctrl-C. When following, the stream is
//! opened before the history is asked for and anything already printed is skipped by its
//! sequence number or id, so no line falls between the two and none is printed twice.

use std::io::BufRead;

use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use serde::Deserialize;
use serde::de::DeserializeOwned;

use super::client::{Client, read};
use super::sse::SseReader;
use super::terminal::{self, Style, escaped};
use super::{RemoteError, emit};
use crate::display::thousands;
use crate::plugins::spec::PluginName;

/// What `rosey logs` prints.
pub struct LogsRequest<'a> {
    pub plugin: &'a PluginName,
    /// How many of the newest lines to print first.
    pub tail: u32,
    pub follow: bool,
}

/// What `rosey events` prints.
pub struct EventsRequest<'a> {
    pub plugin: Option<&'a PluginName>,
    /// Comma-separated event kinds, as the API takes them.
    pub kinds: Option<&'a str>,
    pub follow: bool,
}

/// `/api/plugin/NAME/logs`, and each `lines` event of the live route.
#[derive(Debug, Deserialize)]
struct LogsAnswer {
    lines: Vec<LogLine>,
}

#[derive(Debug, Deserialize)]
struct LogLine {
    seq: u64,
    time: String,
    stream: String,
    pid: Option<u32>,
    text: String,
    #[serde(default)]
    dropped_before: u64,
}

/// `/api/events`.
#[derive(Debug, Deserialize)]
struct EventsAnswer {
    events: Vec<Event>,
}

/// One event, in a page or as the data of an `event` event of the live route.
#[derive(Debug, Deserialize)]
struct Event {
    id: u64,
    time: String,
    kind: String,
    plugin: Option<String>,
    who: Option<String>,
    message: String,
}

/// Something printed in order, once: a log line by its `seq`, an event by its `id`.
trait Entry {
    fn key(&self) -> u64;
    fn text(&self) -> String;
}

impl Entry for LogLine {
    fn key(&self) -> u64 {
        self.seq
    }

    /// `TIME [PID STREAM] TEXT`, after a line saying how many were dropped before it.
    fn text(&self) -> String {
        let mut out = String::new();
        if self.dropped_before > 0 {
            let lines = if self.dropped_before == 1 { "line" } else { "lines" };
            out.push_str(&format!("… {} {lines} dropped\n", thousands(self.dropped_before)));
        }
        let pid = self.pid.map_or_else(|| "-".to_owned(), |pid| pid.to_string());
        out.push_str(&format!("{} [{pid} {}] {}\n", escaped(&self.time), escaped(&self.stream), escaped(&self.text)));
        out
    }
}

impl Entry for Event {
    fn key(&self) -> u64 {
        self.id
    }

    /// `TIME KIND PLUGIN: MESSAGE (WHO)`; who asked is added when the message does not say.
    fn text(&self) -> String {
        let mut out = format!("{} {}", escaped(&self.time), escaped(&self.kind));
        if let Some(plugin) = &self.plugin {
            out.push(' ');
            out.push_str(&escaped(plugin));
        }
        out.push_str(": ");
        out.push_str(&escaped(&self.message));
        if let Some(who) = self.who.as_deref().filter(|who| !self.message.contains(who)) {
            out.push_str(&format!(" ({})", escaped(who)));
        }
        out.push('\n');
        out
    }
}

/// Print entries not printed yet, in order; `last` is the newest key printed.
fn print_new<E: Entry>(entries: &[E], last: &mut Option<u64>) -> Result<(), RemoteError> {
    let text = fresh_text(entries, last);
    if text.is_empty() { Ok(()) } else { emit(&text) }
}

/// The text of the entries newer than `last`, which becomes the newest of them.
fn fresh_text<E: Entry>(entries: &[E], last: &mut Option<u64>) -> String {
    let mut text = String::new();
    for entry in entries {
        if last.is_none_or(|last| entry.key() > last) {
            text.push_str(&entry.text());
            *last = Some(entry.key());
        }
    }
    text
}

pub fn logs(client: &Client, request: &LogsRequest<'_>) -> Result<(), RemoteError> {
    let LogsRequest { plugin, tail, follow } = request;
    let live = format!("api/plugin/{plugin}/logs/live?tail={tail}");
    let stream = follow_from_here(client, *follow, &live)?;
    let path = format!("api/plugin/{plugin}/logs?tail={tail}");
    let page: LogsAnswer = answer(client, &path)?;
    let mut last = None;
    print_new(&page.lines, &mut last)?;
    let Some(stream) = stream else { return Ok(()) };
    follow_stream(client, stream, &live, "lines", |data| {
        let page: LogsAnswer = read(data).ok_or_else(|| bad_answer(client, &live, data))?;
        print_new(&page.lines, &mut last)
    })
}

pub fn events(client: &Client, request: &EventsRequest<'_>) -> Result<(), RemoteError> {
    let mut query = Vec::new();
    if let Some(plugin) = request.plugin {
        query.push(format!("plugin={plugin}"));
    }
    if let Some(kinds) = request.kinds {
        query.push(format!("kind={}", utf8_percent_encode(kinds, NON_ALPHANUMERIC)));
    }
    let query = if query.is_empty() { String::new() } else { format!("?{}", query.join("&")) };
    let live = format!("api/events/live{query}");
    let stream = follow_from_here(client, request.follow, &live)?;
    let path = format!("api/events{query}");
    let page: EventsAnswer = answer(client, &path)?;
    let mut last = None;
    print_new(&page.events, &mut last)?;
    let Some(stream) = stream else { return Ok(()) };
    follow_stream(client, stream, &live, "event", |data| {
        let event: Event = read(data).ok_or_else(|| bad_answer(client, &live, data))?;
        print_new(&[event], &mut last)
    })
}

/// When following: Ctrl-C ends the command cleanly, and the live stream is opened now, so
/// nothing that happens while the history is read is missed.
fn follow_from_here(client: &Client, follow: bool, live: &str) -> Result<Option<SseReader<impl BufRead>>, RemoteError> {
    if !follow {
        return Ok(None);
    }
    terminal::exit_quietly_on_interrupt(Style::for_stdout());
    client.stream(live).map(Some)
}

fn answer<T: DeserializeOwned>(client: &Client, path: &str) -> Result<T, RemoteError> {
    let body = client.get(path)?;
    read(&body).ok_or_else(|| bad_answer(client, path, &body))
}

fn bad_answer(client: &Client, path: &str, body: &str) -> RemoteError {
    RemoteError::BadAnswer { url: client.url(path), body: body.to_owned() }
}

/// Hand the data of each event named `name` to `on_data` until the stream ends, which is an
/// error: the bot stopped, or the connection broke.
fn follow_stream(
    client: &Client,
    mut stream: SseReader<impl BufRead>,
    path: &str,
    name: &str,
    mut on_data: impl FnMut(&str) -> Result<(), RemoteError>,
) -> Result<(), RemoteError> {
    let ended = |reason: String| RemoteError::StreamEnded { url: client.url(path), reason };
    loop {
        match stream.next_event() {
            Ok(Some(event)) if event.name == name => on_data(&event.data)?,
            Ok(Some(_)) => {}
            Ok(None) => return Err(ended("the bot closed the connection; did it stop?".to_owned())),
            Err(e) => return Err(ended(e.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn log_lines_show_time_pid_stream_and_escaped_text() {
        let page: LogsAnswer = serde_json::from_value(json!({
            "plugin": "crasher", "dropped": 3, "next": 19,
            "lines": [
                { "seq": 17, "time": "2026-12-02T12:00:00.100Z", "stream": "stderr", "pid": 1234, "version": null,
                  "text": "<script>alert('stderr')</script> & \"quotes\"", "dropped_before": 0 },
                { "seq": 18, "time": "2026-12-02T12:00:01.000Z", "stream": "stdout", "pid": 1240, "version": "1.1",
                  "text": "\u{1b}[31mred\u{1b}[0m\u{202e}", "dropped_before": 3 },
            ],
        }))
        .expect("the contract's shape");
        let text: String = page.lines.iter().map(Entry::text).collect();
        assert_eq!(
            text,
            "2026-12-02T12:00:00.100Z [1234 stderr] <script>alert('stderr')</script> & \"quotes\"\n\
             … 3 lines dropped\n\
             2026-12-02T12:00:01.000Z [1240 stdout] \\u{1b}[31mred\\u{1b}[0m\\u{202e}\n"
        );
    }

    #[test]
    fn events_name_their_plugin_and_who_asked() {
        let page: EventsAnswer = serde_json::from_value(json!({
            "next": 44,
            "events": [
                { "id": 42, "time": "2026-12-02T12:00:00Z", "kind": "crashed", "plugin": "crasher", "who": null,
                  "message": "exited with code 3", "details": { "exit_code": 3 } },
                { "id": 43, "time": "2026-12-02T12:00:05Z", "kind": "stop", "plugin": "8ball", "who": "api user \"admin\"",
                  "message": "stopped 8ball", "details": {} },
                { "id": 44, "time": "2026-12-02T12:00:09Z", "kind": "config_reload", "plugin": null, "who": "signal SIGHUP",
                  "message": "config reloaded by signal SIGHUP", "details": {} },
            ],
        }))
        .expect("the contract's shape");
        let lines: Vec<String> = page.events.iter().map(Entry::text).collect();
        assert_eq!(
            lines,
            [
                "2026-12-02T12:00:00Z crashed crasher: exited with code 3\n",
                "2026-12-02T12:00:05Z stop 8ball: stopped 8ball (api user \"admin\")\n",
                "2026-12-02T12:00:09Z config_reload: config reloaded by signal SIGHUP\n",
            ]
        );
    }

    #[test]
    fn what_was_printed_is_skipped_when_the_stream_repeats_it() {
        let event =
            |id| Event { id, time: "t".into(), kind: "k".into(), plugin: None, who: None, message: format!("{id}") };
        let mut last = None;
        assert_eq!(fresh_text(&[event(4), event(5)], &mut last), "t k: 4\nt k: 5\n", "nothing printed yet: all is new");
        assert_eq!(fresh_text(&[event(4), event(5), event(6), event(7)], &mut last), "t k: 6\nt k: 7\n");
        assert_eq!((fresh_text(&[event(7)], &mut last), last), (String::new(), Some(7)));
    }
}
