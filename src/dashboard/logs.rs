//! Each plugin's log over HTTP: `GET /api/plugin/{name}/logs` (JSON, or plain text for `curl`),
//! `GET /api/plugin/{name}/logs/live` (server-sent events, `lines` frames of the same JSON),
//! and the server-rendered tail of the plugin page's log panel. The lines come straight from
//! the plugin's ring ([`crate::plugins::output_log`]), not from the snapshots: a log is read
//! only by whoever asks for it, and the `/events` stream never carries a log line.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use poem::http::header;
use poem::web::{Data, Path, Query};
use poem::{Body, Request, Response, handler};
use serde::{Deserialize, Serialize};
use tera::Context;
use tokio::sync::{OwnedSemaphorePermit, watch};
use tokio_stream::wrappers::IntervalStream;
use tokio_util::sync::CancellationToken;

use super::Shared;
use super::refusal::Refusal;
use super::responses::{respond, uncached};
use super::sse::KEEP_ALIVE;
use crate::display::rfc3339;
use crate::plugins::output_log::{LogLine, LogPage, PluginLog, Stream};

/// A live stream sends at most one frame per this long, with every line that came meanwhile.
const FRAME_INTERVAL: Duration = Duration::from_millis(250);
/// Lines a live stream starts with when the client does not say.
const LIVE_TAIL: usize = 100;
/// Lines the plugin page shows before its script takes over.
const PAGE_TAIL: usize = 200;
/// Where the plugin page's template leaves room for the tail (escaped data cannot contain it).
const TAIL_MARK: &str = "<!--plugin-log-tail-->";

#[derive(Debug, Deserialize)]
pub(super) struct LogsQuery {
    tail: Option<usize>,
    since: Option<u64>,
    format: Option<String>,
}

/// One line as the API gives it (docs/api.md).
#[derive(Debug, Serialize)]
struct LineJson<'a> {
    seq: u64,
    time: String,
    stream: Stream,
    pid: u32,
    version: Option<&'a str>,
    text: &'a str,
    dropped_before: u64,
}

/// `GET /api/plugin/{name}/logs`, and each `lines` frame of the live stream.
#[derive(Debug, Serialize)]
struct PageJson<'a> {
    plugin: &'a str,
    lines: Vec<LineJson<'a>>,
    dropped: u64,
    next: u64,
}

impl<'a> PageJson<'a> {
    fn of(plugin: &'a str, page: &'a LogPage) -> Self {
        let lines = page
            .lines
            .iter()
            .map(|l| LineJson {
                seq: l.seq,
                time: rfc3339(l.time),
                stream: l.stream,
                pid: l.writer.pid,
                version: l.writer.version.as_deref(),
                text: &l.text,
                dropped_before: l.dropped_before,
            })
            .collect();
        PageJson { plugin, lines, dropped: page.dropped, next: page.next }
    }

    fn to_json(&self) -> String {
        // Plain data of strings and numbers: serialising it cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// The log of `name`, or the 404 every `/api/plugin` route gives for a plugin not configured.
fn plugin_log(shared: &Shared, name: &str) -> Result<Arc<PluginLog>, Refusal> {
    if shared.current().plugin_index(name).is_none() {
        return Err(Refusal::UnknownPlugin(name.to_owned()));
    }
    Ok(shared.logs.open(name))
}

fn wants_text(req: &Request, query: &LogsQuery) -> bool {
    match query.format.as_deref() {
        Some(format) => format == "text",
        None => req
            .headers()
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|accept| accept.split(',').any(|t| t.trim().starts_with("text/plain"))),
    }
}

/// One line of the plain-text answer: `TIME STREAM PID TEXT`.
fn text_line(out: &mut String, line: &LogLine) {
    use std::fmt::Write;
    let _ = writeln!(out, "{} {} {} {}", rfc3339(line.time), line.stream.as_str(), line.writer.pid, line.text);
}

#[handler]
pub(super) fn api_logs(
    shared: Data<&Arc<Shared>>,
    req: &Request,
    Path(name): Path<String>,
    Query(query): Query<LogsQuery>,
) -> Response {
    let log = match plugin_log(&shared, &name) {
        Ok(log) => log,
        Err(refused) => return refused.json(),
    };
    let page = log.read(query.since, query.tail.unwrap_or(usize::MAX));
    if wants_text(req, &query) {
        let mut out = String::new();
        for line in &page.lines {
            text_line(&mut out, line);
        }
        return respond("text/plain; charset=utf-8", Bytes::from(out));
    }
    respond("application/json", Bytes::from(PageJson::of(&name, &page).to_json()))
}

#[handler]
pub(super) fn live_logs(
    shared: Data<&Arc<Shared>>,
    Path(name): Path<String>,
    Query(query): Query<LogsQuery>,
) -> Response {
    let log = match plugin_log(&shared, &name) {
        Ok(log) => log,
        Err(refused) => return refused.json(),
    };
    let Some(slot) = shared.context.sse_clients.try_join() else { return super::sse::too_many_clients() };
    let changes = log.watch();
    let first = log.read(query.since, query.tail.unwrap_or(LIVE_TAIL));
    let stream = live_stream(Follow { log, name, changes, next: first.next }, first, slot, shared.stop.clone());
    uncached().content_type("text/event-stream").header("x-accel-buffering", "no").body(Body::from_bytes_stream(stream))
}

fn frame(name: &str, page: &LogPage) -> Bytes {
    Bytes::from(format!("event: lines\ndata: {}\n\n", PageJson::of(name, page).to_json()))
}

/// One live client's place in its plugin's log.
struct Follow {
    log: Arc<PluginLog>,
    name: String,
    changes: watch::Receiver<u64>,
    next: u64,
}

impl Follow {
    /// The next frame: the lines kept since the last one, gathered for [`FRAME_INTERVAL`]
    /// after the first of them; None when the plugin's log is gone.
    async fn next_frame(&mut self) -> Option<Bytes> {
        loop {
            self.changes.changed().await.ok()?;
            tokio::time::sleep(FRAME_INTERVAL).await;
            self.changes.mark_unchanged();
            let page = self.log.read(Some(self.next), usize::MAX);
            self.next = page.next;
            if !page.lines.is_empty() {
                return Some(frame(&self.name, &page));
            }
        }
    }
}

fn live_stream(
    follow: Follow,
    first: LogPage,
    slot: OwnedSemaphorePermit,
    stop: CancellationToken,
) -> impl futures_util::Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static {
    let opening = [Bytes::from_static(b"retry: 3000\n\n"), frame(&follow.name, &first)];
    let updates = futures_util::stream::unfold(follow, |mut follow| async move {
        let frame = follow.next_frame().await?;
        Some((frame, follow))
    });
    let mut keep_alive = tokio::time::interval(KEEP_ALIVE);
    keep_alive.reset(); // the first tick would otherwise fire at once
    let keep_alives = IntervalStream::new(keep_alive).map(|_| Bytes::from_static(b": keep-alive\n\n"));
    futures_util::stream::iter(opening)
        .chain(futures_util::stream::select(updates, keep_alives))
        .take_until(stop.cancelled_owned())
        .map(move |frame| {
            let _slot = &slot; // the slot lives exactly as long as the stream
            Ok(frame)
        })
}

/// A line as the page shows it: colour and cursor codes removed, and the characters that would
/// reorder or hide text (bidi controls, other control characters) shown as `[U+XXXX]`. The
/// browser's script does the same (static/plugin_log.js, `shown`).
pub fn shown(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\u{1b}' => skip_escape(&mut chars),
            '\t' => out.push(c),
            c if c.is_control() || is_bidi_control(c) => out.push_str(&format!("[U+{:04X}]", c as u32)),
            c => out.push(c),
        }
    }
    out
}

fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{061c}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// Skip the rest of an escape sequence whose ESC was just read: CSI (`ESC [ … final`), OSC
/// (`ESC ] … BEL` or `ESC ] … ESC \`), or a two-character one.
fn skip_escape(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) {
    match chars.next() {
        Some('[') => {
            for c in chars.by_ref() {
                if ('\u{40}'..='\u{7e}').contains(&c) {
                    break;
                }
            }
        }
        Some(']') => {
            while let Some(c) = chars.next() {
                if c == '\u{7}' || (c == '\u{1b}' && chars.next_if_eq(&'\\').is_some()) {
                    break;
                }
            }
        }
        _ => {}
    }
}

/// One line of the server-rendered tail.
#[derive(Serialize)]
struct TailLine {
    seq: u64,
    time: String,
    stream: &'static str,
    pid: u32,
    version: String,
    text: String,
    dropped_before: u64,
}

/// The plugin page `html` with the newest lines of the plugin's log in its log panel.
pub(super) fn with_tail(shared: &Shared, name: &str, html: Bytes) -> Option<Bytes> {
    let page = shared.logs.open(name).read(None, PAGE_TAIL);
    let lines: Vec<TailLine> = page
        .lines
        .iter()
        .map(|l| TailLine {
            seq: l.seq,
            time: rfc3339(l.time),
            stream: l.stream.as_str(),
            pid: l.writer.pid,
            version: l.writer.version.as_deref().unwrap_or("").to_owned(),
            text: shown(&l.text),
            dropped_before: l.dropped_before,
        })
        .collect();
    let mut context = Context::new();
    context.insert("lines", &lines);
    context.insert("next", &page.next);
    context.insert("dropped", &page.dropped);
    let tail = shared.context.render_page("plugin_log.html", &context)?;
    let page = std::str::from_utf8(&html).ok()?;
    Some(Bytes::from(page.replacen(TAIL_MARK, std::str::from_utf8(&tail).ok()?, 1)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colours_go_and_hidden_characters_show() {
        assert_eq!(shown("\u{1b}[1;31mred\u{1b}[0m plain"), "red plain");
        assert_eq!(shown("\u{1b}]0;title\u{7}after"), "after");
        assert_eq!(shown("a\u{202e}b\u{2066}c"), "a[U+202E]b[U+2066]c");
        assert_eq!(shown("bell\u{7} nul\u{0}"), "bell[U+0007] nul[U+0000]");
        assert_eq!(shown("<b>&\"'</b>\ttab"), "<b>&\"'</b>\ttab", "markup is the template's to escape");
    }
}
