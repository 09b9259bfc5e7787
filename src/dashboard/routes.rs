//! Every route the dashboard serves, and the GET handlers. Any other path is 404; a method
//! other than GET/HEAD is 405 (POST only on the action routes, in [`super::action_routes`]).
//! Handlers only look up bodies that [`Rendered`](super::render::Rendered) made once for the
//! current snapshot; they never sample and never take a lock the collector holds.

use std::sync::Arc;

use bytes::Bytes;
use poem::http::StatusCode;
use poem::web::{Data, Path, Query};
use poem::{Body, EndpointExt, Request, Response, Route, get, handler};
use serde::Deserialize;

use super::auth::audience;
use super::refusal::Refusal;
use super::responses::{accepts_gzip, html, html_response, json, negotiated, respond, uncached};
use super::{Shared, action_routes, logs, prometheus, sse, timeline, view};

const JS: &str = include_str!("../../static/dashboard.js");
const PLUGIN_LOG_JS: &str = include_str!("../../static/plugin_log.js");
const CSS: &str = include_str!("../../static/dashboard.css");
const FAVICON: &str = include_str!("../../static/favicon.svg");

/// The route table.
pub fn routes(actions: Arc<action_routes::Actions>) -> Route {
    Route::new()
        // The action routes check their method themselves (action_routes::PostOnly), after the
        // action's name: an unknown action is 404 whatever the method.
        .at("/api/plugin/:name/:action", action_routes::plugin_action.data(actions.clone()))
        .at("/api/reload", action_routes::reload_config.data(actions))
        .at("/", get(index))
        .at("/plugin/:name", get(plugin_page))
        .at("/events", get(events))
        .at("/api/metrics", get(api_metrics))
        .at("/api/plugin/:name", get(api_plugin))
        .at("/api/plugin/:name/logs", get(logs::api_logs))
        .at("/api/plugin/:name/logs/live", get(logs::live_logs))
        .at("/api/chat", get(api_chat))
        .at("/chat-panel", get(chat_panel))
        .at("/api/audit", get(api_audit))
        .at("/metrics", get(metrics))
        .at("/health", get(health))
        .at("/api/events", get(timeline::api_events))
        .at("/api/events/live", get(timeline::live_events))
        .at("/timeline", get(timeline::page))
        .at("/static/timeline.js", get(timeline::static_js))
        .at("/static/dashboard.js", get(static_js))
        .at("/static/dashboard.css", get(static_css))
        .at("/static/plugin_log.js", get(static_plugin_log_js))
        .at("/static/favicon.svg", get(static_favicon))
        // Browsers ask for it on pages without an icon link (the JSON and text routes).
        .at("/favicon.ico", get(static_favicon))
}

#[handler]
fn index(shared: Data<&Arc<Shared>>, req: &Request, Query(query): Query<view::PageQuery>) -> Response {
    let page = shared.current();
    let gzipped = accepts_gzip(req);
    let audience = audience(req);
    let body = if gzipped { page.index_html_gzip(&query, audience) } else { page.index_html(&query, audience) };
    match body {
        Some(bytes) => negotiated(html_response(StatusCode::OK, bytes), gzipped),
        None => html(None),
    }
}

#[handler]
fn plugin_page(shared: Data<&Arc<Shared>>, req: &Request, Path(name): Path<String>) -> Response {
    let page = shared.current();
    match page.plugin_index(&name) {
        Some(i) => html(page.plugin_html(i, audience(req)).and_then(|body| logs::with_tail(&shared, &name, body))),
        None => match shared.context.not_found_html(&name) {
            Some(bytes) => html_response(StatusCode::NOT_FOUND, bytes),
            None => Response::builder()
                .status(StatusCode::NOT_FOUND)
                .content_type("text/plain; charset=utf-8")
                .body(format!("Plugin {name} not found")),
        },
    }
}

#[handler]
fn api_metrics(shared: Data<&Arc<Shared>>) -> Response {
    json(shared.current().api_metrics())
}

#[handler]
fn api_chat(shared: Data<&Arc<Shared>>) -> Response {
    json(shared.current().api_chat())
}

#[handler]
fn chat_panel(shared: Data<&Arc<Shared>>) -> Response {
    html(shared.current().chat_html())
}

#[handler]
fn api_audit(shared: Data<&Arc<Shared>>) -> Response {
    json(shared.current().api_audit())
}

#[handler]
fn api_plugin(shared: Data<&Arc<Shared>>, Path(name): Path<String>) -> Response {
    let page = shared.current();
    match page.plugin_index(&name) {
        Some(i) => json(page.api_plugin(i)),
        None => Refusal::UnknownPlugin(name).json(),
    }
}

#[handler]
fn metrics(shared: Data<&Arc<Shared>>, req: &Request) -> Response {
    if !shared.prometheus_enabled {
        return Response::builder()
            .status(StatusCode::NOT_FOUND)
            .content_type("text/plain; charset=utf-8")
            .body("/metrics is turned off in the config (metrics.prometheus_enabled = false)\n");
    }
    let page = shared.current();
    let gzipped = accepts_gzip(req);
    let body = if gzipped { page.prometheus_gzip() } else { page.prometheus() };
    negotiated(respond(prometheus::CONTENT_TYPE, body), gzipped)
}

#[handler]
fn health() -> Response {
    json(Bytes::from_static(br#"{"status":"ok"}"#))
}

#[handler]
fn static_js() -> Response {
    respond("text/javascript; charset=utf-8", Bytes::from_static(JS.as_bytes()))
}

#[handler]
fn static_plugin_log_js() -> Response {
    respond("text/javascript; charset=utf-8", Bytes::from_static(PLUGIN_LOG_JS.as_bytes()))
}

#[handler]
fn static_css() -> Response {
    respond("text/css; charset=utf-8", Bytes::from_static(CSS.as_bytes()))
}

#[handler]
fn static_favicon() -> Response {
    respond("image/svg+xml", Bytes::from_static(FAVICON.as_bytes()))
}

#[derive(Debug, Deserialize)]
struct EventsQuery {
    plugin: Option<String>,
}

#[handler]
fn events(shared: Data<&Arc<Shared>>, req: &Request, Query(query): Query<EventsQuery>) -> Response {
    if let Some(name) = &query.plugin
        && shared.current().plugin_index(name).is_none()
    {
        return Refusal::UnknownPlugin(name.clone()).json();
    }
    let Some(slot) = shared.context.sse_clients.try_join() else { return sse::too_many_clients() };
    let last_event_id = req.headers().get("last-event-id").and_then(|v| v.to_str().ok()?.trim().parse().ok());
    let stream = sse::stream(shared.pages.clone(), query.plugin, last_event_id, slot, shared.stop.clone());
    uncached().content_type("text/event-stream").header("x-accel-buffering", "no").body(Body::from_bytes_stream(stream))
}
