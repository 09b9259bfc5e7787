//! The timeline over HTTP: `GET /api/events` (JSON), `GET /api/events/live` (server-sent
//! events, one `event` per new event, only to the clients connected to it), the `/timeline`
//! page, and the recent-events sections of the overview and plugin pages. Everything is read
//! from the [`Timeline`] handle, whose lock is held only to copy the events out.

use std::sync::Arc;

use bytes::Bytes;
use futures_util::StreamExt;
use poem::http::StatusCode;
use poem::web::{Data, Query};
use poem::{Body, Response, handler};
use serde::{Deserialize, Serialize};
use tera::Context;
use tokio_stream::wrappers::{BroadcastStream, IntervalStream};

use super::Shared;
use super::render::RenderContext;
use super::responses::{html, json, json_response, respond, uncached};
use super::sse::KEEP_ALIVE;
use crate::timeline::{Event, Filter, Kind, Timeline};

const JS: &str = include_str!("../../static/timeline.js");
/// Events a page lists (and keeps when live).
const PAGE_EVENTS: usize = 200;
/// Events in the recent sections of the overview and a plugin's page.
const RECENT_ON_OVERVIEW: usize = 8;
const RECENT_ON_PLUGIN: usize = 20;
/// `limit` when not given.
const DEFAULT_LIMIT: usize = 1000;

/// The query of every timeline route; `kind` is a comma-separated list.
#[derive(Debug, Default, Deserialize)]
pub struct TimelineQuery {
    since: Option<u64>,
    plugin: Option<String>,
    kind: Option<String>,
    limit: Option<usize>,
}

impl TimelineQuery {
    /// The filter asked for; an unknown kind is the client's mistake (boxed: a response is large).
    fn filter(&self) -> Result<Filter, Box<Response>> {
        let mut kinds = Vec::new();
        for name in self.kind.as_deref().unwrap_or("").split(',').map(str::trim).filter(|k| !k.is_empty()) {
            match name.parse::<Kind>() {
                Ok(kind) => kinds.push(kind),
                Err(e) => {
                    let error = serde_json::json!({ "error": e.to_string() });
                    return Err(Box::new(json_response(StatusCode::BAD_REQUEST, &error)));
                }
            }
        }
        let plugin = self.plugin.clone().filter(|p| !p.is_empty());
        Ok(Filter { since: self.since, plugin, kinds, limit: self.limit.unwrap_or(DEFAULT_LIMIT) })
    }
}

#[handler]
pub fn api_events(shared: Data<&Arc<Shared>>, Query(query): Query<TimelineQuery>) -> Response {
    match query.filter() {
        Ok(filter) => {
            json(Bytes::from(serde_json::to_vec(&shared.context.timeline.query(&filter)).unwrap_or_default()))
        }
        Err(refusal) => *refusal,
    }
}

#[handler]
pub fn live_events(shared: Data<&Arc<Shared>>, Query(query): Query<TimelineQuery>) -> Response {
    let filter = match query.filter() {
        Ok(filter) => filter,
        Err(refusal) => return *refusal,
    };
    let Some(slot) = shared.context.sse_clients.try_join() else { return super::sse::too_many_clients() };
    // A client that falls behind by more than the broadcast holds skips ahead (the page can be
    // reloaded for the full list); it never makes the host buffer for it.
    let events = BroadcastStream::new(shared.context.timeline.subscribe()).filter_map(move |received| {
        let frame = received.ok().filter(|event| filter.matches(event)).map(|event| frame(&event));
        std::future::ready(frame)
    });
    let mut keep_alive = tokio::time::interval(KEEP_ALIVE);
    keep_alive.reset();
    let keep_alives = IntervalStream::new(keep_alive).map(|_| Bytes::from_static(b": keep-alive\n\n"));
    let stream = futures_util::stream::once(std::future::ready(Bytes::from_static(b"retry: 3000\n\n")))
        .chain(futures_util::stream::select(events, keep_alives))
        .take_until(shared.stop.clone().cancelled_owned())
        .map(move |bytes| {
            let _slot = &slot; // the slot lives exactly as long as the stream
            Ok::<_, std::io::Error>(bytes)
        });
    uncached().content_type("text/event-stream").header("x-accel-buffering", "no").body(Body::from_bytes_stream(stream))
}

/// One server-sent event; the JSON holds no raw newline, so it is one `data:` line.
fn frame(event: &Event) -> Bytes {
    let data = serde_json::to_string(event).unwrap_or_default();
    Bytes::from(format!("event: event\nid: {}\ndata: {data}\n\n", event.id))
}

#[handler]
pub fn page(shared: Data<&Arc<Shared>>, Query(query): Query<TimelineQuery>) -> Response {
    let filter = match query.filter() {
        Ok(filter) => Filter { since: None, limit: PAGE_EVENTS, ..filter },
        Err(refusal) => return *refusal,
    };
    let mut events: Vec<EventView> =
        shared.context.timeline.query(&filter).events.iter().map(|e| EventView::of(e)).collect();
    events.reverse();
    let mut live = url::Form::new("/api/events/live");
    live.pair("plugin", filter.plugin.as_deref());
    live.pair("kind", query.kind.as_deref().filter(|k| !k.is_empty()));
    let snapshot = shared.current().snapshot.clone();
    let mut context = Context::new();
    context.insert("events", &events);
    context.insert("plugins", &snapshot.plugins.iter().map(|p| p.name.as_str()).collect::<Vec<_>>());
    context.insert("kinds", &Kind::ALL.iter().map(|k| k.as_str()).collect::<Vec<_>>());
    context.insert("filter", &serde_json::json!({ "plugin": filter.plugin, "kind": query.kind }));
    context.insert("live_url", &live.finish());
    context.insert("keep", &PAGE_EVENTS);
    html(shared.context.render_page("timeline.html", &context))
}

#[handler]
pub fn static_js() -> Response {
    respond("text/javascript; charset=utf-8", Bytes::from_static(JS.as_bytes()))
}

/// An event as the pages show it.
#[derive(Debug, Clone, Serialize)]
pub struct EventView {
    id: u64,
    time: String,
    kind: &'static str,
    plugin: Option<String>,
    /// The plugin's page.
    plugin_url: Option<String>,
    who: Option<String>,
    message: String,
    /// The details as indented JSON.
    details: String,
}

impl EventView {
    fn of(event: &Event) -> EventView {
        EventView {
            id: event.id,
            time: event.time.clone(),
            kind: event.kind.as_str(),
            plugin: event.plugin.clone(),
            plugin_url: event.plugin.as_deref().map(|name| url::path("/plugin/", name)),
            who: event.who.clone(),
            message: event.message.clone(),
            details: serde_json::to_string_pretty(&event.details).unwrap_or_default(),
        }
    }
}

/// The recent-events section of the overview (`plugin` None) or of a plugin's page.
#[derive(Debug, Serialize)]
pub struct RecentEvents {
    events: Vec<EventView>,
    all_url: String,
}

impl RecentEvents {
    pub fn of(timeline: &Timeline, plugin: Option<&str>) -> RecentEvents {
        let count = if plugin.is_some() { RECENT_ON_PLUGIN } else { RECENT_ON_OVERVIEW };
        let events = timeline.newest(plugin, count).iter().map(|e| EventView::of(e)).collect();
        let mut all = url::Form::new("/timeline");
        all.pair("plugin", plugin);
        RecentEvents { events, all_url: all.finish() }
    }
}

impl RenderContext {
    /// The recent-events section's data for a page.
    pub fn recent_events(&self, plugin: Option<&str>) -> RecentEvents {
        RecentEvents::of(&self.timeline, plugin)
    }
}

mod url {
    //! A path with a query built from optional pairs, each value percent-encoded.
    use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

    /// Everything but RFC 3986's unreserved characters is encoded.
    const ENCODED: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~');

    /// `prefix` and `segment`, percent-encoded.
    pub fn path(prefix: &str, segment: &str) -> String {
        format!("{prefix}{}", utf8_percent_encode(segment, ENCODED))
    }

    pub struct Form {
        url: String,
        first: bool,
    }

    impl Form {
        pub fn new(path: &str) -> Form {
            Form { url: path.to_owned(), first: true }
        }

        pub fn pair(&mut self, key: &str, value: Option<&str>) {
            if let Some(value) = value {
                self.url.push(if self.first { '?' } else { '&' });
                self.url.push_str(key);
                self.url.push('=');
                self.url.push_str(&utf8_percent_encode(value, ENCODED).to_string());
                self.first = false;
            }
        }

        pub fn finish(self) -> String {
            self.url
        }
    }
}
