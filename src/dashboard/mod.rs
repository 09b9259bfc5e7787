//! The dashboard: an HTTP server (poem) over the collector's snapshots.
//!
//! Every route is in [`routes`]. Handlers only look up bodies that [`render::Rendered`] made
//! once for the current snapshot; they never sample and never take a lock the collector
//! holds. Optional HTTP basic auth guards every route but `/health`.

pub mod actions;
pub mod api;
mod memory;
pub mod prometheus;
pub mod render;
pub mod server;
pub mod sse;
pub mod view;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use poem::http::{StatusCode, header};
use poem::web::headers::authorization::Basic;
use poem::web::headers::{Authorization, HeaderMapExt};
use poem::web::{Data, Path, Query};
use poem::{Body, Endpoint, EndpointExt, IntoResponse, Request, Response, Route, get, handler, post};
use serde::Deserialize;
use subtle::ConstantTimeEq;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::config::{BasicAuth, DashboardConfig};
use crate::control::ActionDoor;
use crate::display::host_port;
use crate::limits;
use crate::metrics::Snapshot;
use render::{RenderContext, Rendered};
use server::ConnectionCaps;
use view::Thresholds;

/// How long open connections get to finish when the server stops.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(2);
const JS: &str = include_str!("../../static/dashboard.js");
const CSS: &str = include_str!("../../static/dashboard.css");
const FAVICON: &str = include_str!("../../static/favicon.svg");

/// Why the dashboard could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot listen on {addr} (dashboard.host / dashboard.port): {source}")]
    Bind { addr: String, source: std::io::Error },
    #[error("the dashboard templates are invalid: {0}")]
    Templates(String),
}

/// What every handler shares.
struct Shared {
    pages: watch::Receiver<Arc<Rendered>>,
    context: Arc<RenderContext>,
    stop: CancellationToken,
}

impl Shared {
    /// The bodies of the current snapshot. The watch's read lock is held only for the clone.
    fn current(&self) -> Arc<Rendered> {
        self.pages.borrow().clone()
    }
}

/// A running dashboard server.
pub struct Dashboard {
    stop: CancellationToken,
    server: JoinHandle<()>,
    renderer: JoinHandle<()>,
    pub local_addr: SocketAddr,
}

/// The dashboard's socket and templates, ready before anything else starts: a port in use
/// stops the bot before any plugin has been started.
pub struct BoundDashboard {
    listener: tokio::net::TcpListener,
    templates: tera::Tera,
    local_addr: SocketAddr,
}

impl Dashboard {
    /// Bind `dashboard.host:dashboard.port` and load the templates.
    pub async fn bind(config: &DashboardConfig) -> Result<BoundDashboard, StartError> {
        let templates = render::templates().map_err(|e| StartError::Templates(e.to_string()))?;
        let addr = host_port(&config.host, config.port);
        let listener = tokio::net::TcpListener::bind(&addr)
            .await
            .map_err(|source| StartError::Bind { addr: addr.clone(), source })?;
        let local_addr = listener.local_addr().map_err(|source| StartError::Bind { addr: addr.clone(), source })?;
        Ok(BoundDashboard { listener, templates, local_addr })
    }

    /// Serve the snapshots on the bound socket.
    pub fn start(
        bound: BoundDashboard,
        config: &DashboardConfig,
        snapshots: watch::Receiver<Arc<Snapshot>>,
        controls: ActionDoor,
    ) -> Dashboard {
        let BoundDashboard { listener, templates, local_addr } = bound;
        // The first snapshot lists every configured plugin, each holding descriptors of its own.
        let plugins = snapshots.borrow().plugins.len();
        let caps = ConnectionCaps::fit(config.max_sse_clients, limits::descriptors_for_connections(plugins));
        let context = Arc::new(RenderContext {
            templates,
            actions_enabled: config.auth.is_some(),
            thresholds: Thresholds { cpu_percent: config.warn_cpu_percent, memory_mb: config.warn_memory_mb },
            sse_clients: Arc::new(server::ClientCap::new(caps.sse_clients)),
        });
        announce(config, local_addr);

        let stop = CancellationToken::new();
        let (pages, renderer) = follow_snapshots(snapshots, context.clone(), stop.clone());
        let shared = Arc::new(Shared { pages, context, stop: stop.clone() });
        let auth = config.auth.clone().map(Arc::new);
        let actions = actions::Actions::new(controls, config.auth.is_some());
        let app = routes(actions).data(shared).around(move |ep, req| guard(ep, req, auth.clone()));
        let server = tokio::spawn(server::serve(listener, app, caps.connections, stop.clone(), SHUTDOWN_TIMEOUT));
        Dashboard { stop, server, renderer, local_addr }
    }

    /// Stop accepting, end the live streams, wait for the server.
    pub async fn stop(self) {
        self.stop.cancel();
        let _ = self.server.await;
        let _ = self.renderer.await;
        info!("dashboard stopped");
    }
}

fn announce(config: &DashboardConfig, local: SocketAddr) {
    let shown_host = if local.ip().is_unspecified() { "localhost".to_owned() } else { local.ip().to_string() };
    info!("dashboard: http://{}", host_port(&shown_host, local.port()));
    if !local.ip().is_loopback() {
        warn!(
            "the dashboard listens on {local}, reachable from other machines (set dashboard.host to 127.0.0.1 to keep it local)"
        );
        if config.auth.is_none() {
            warn!("no dashboard.auth is set: anyone who can reach {local} can read the metrics");
        }
    }
}

/// Turn each snapshot into its shared, lazily rendered bodies.
fn follow_snapshots(
    mut snapshots: watch::Receiver<Arc<Snapshot>>,
    context: Arc<RenderContext>,
    stop: CancellationToken,
) -> (watch::Receiver<Arc<Rendered>>, JoinHandle<()>) {
    let first = Rendered::new(snapshots.borrow_and_update().clone(), context.clone());
    let (tx, rx) = watch::channel(Arc::new(first));
    let task = tokio::spawn(async move {
        loop {
            tokio::select! {
                changed = snapshots.changed() => {
                    if changed.is_err() { return; }
                    let snapshot = snapshots.borrow_and_update().clone();
                    let next = tx.borrow().next(snapshot);
                    tx.send_replace(Arc::new(next));
                }
                () = stop.cancelled() => return,
            }
        }
    });
    (rx, task)
}

/// Every route the dashboard serves. Any other path is 404; a method other than GET/HEAD is 405
/// (POST only on the action routes).
fn routes(actions: Arc<actions::Actions>) -> Route {
    let act = || post(actions::plugin_action).data(actions.clone());
    Route::new()
        .at("/api/plugin/:name/reload", act())
        .at("/api/plugin/:name/restart", act())
        .at("/api/plugin/:name/stop", act())
        .at("/api/plugin/:name/start", act())
        .at("/api/reload", post(actions::reload_config).data(actions.clone()))
        .at("/", get(index))
        .at("/plugin/:name", get(plugin_page))
        .at("/events", get(events))
        .at("/api/metrics", get(api_metrics))
        .at("/api/plugin/:name", get(api_plugin))
        .at("/metrics", get(metrics))
        .at("/health", get(health))
        .at("/static/dashboard.js", get(static_js))
        .at("/static/dashboard.css", get(static_css))
        .at("/static/favicon.svg", get(static_favicon))
        // Browsers ask for it on pages without an icon link (the JSON and text routes).
        .at("/favicon.ico", get(static_favicon))
}

/// Pages load only this server's own script, style and icon; no inline script runs, so even
/// a markup injection that slipped past escaping could not execute.
const CONTENT_SECURITY_POLICY: &str =
    "default-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'; object-src 'none'";

fn respond(content_type: &'static str, bytes: Bytes) -> Response {
    Response::builder().content_type(content_type).header(header::CACHE_CONTROL, "no-store").body(bytes)
}

fn html_response(status: StatusCode, bytes: Bytes) -> Response {
    Response::builder()
        .status(status)
        .content_type("text/html; charset=utf-8")
        .header(header::CACHE_CONTROL, "no-store")
        .header(header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY)
        .body(bytes)
}

fn json(bytes: Bytes) -> Response {
    respond("application/json", bytes)
}

fn html(page: Option<Bytes>) -> Response {
    match page {
        Some(bytes) => html_response(StatusCode::OK, bytes),
        None => Response::builder()
            .status(StatusCode::INTERNAL_SERVER_ERROR)
            .body("the page could not be rendered; see the log"),
    }
}

fn plugin_not_found(name: &str) -> Response {
    let message = serde_json::json!({ "error": format!("Plugin {name} not found") });
    Response::builder().status(StatusCode::NOT_FOUND).content_type("application/json").body(message.to_string())
}

/// Does the client take a gzip body (`Accept-Encoding: gzip`, not `gzip;q=0`)?
fn accepts_gzip(req: &Request) -> bool {
    let Some(accepted) = req.headers().get(header::ACCEPT_ENCODING).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    accepted.split(',').any(|item| {
        let mut parts = item.split(';').map(str::trim);
        let coding_is_gzip = parts.next().is_some_and(|c| c.eq_ignore_ascii_case("gzip"));
        let refused = parts.any(|p| p.strip_prefix("q=").and_then(|q| q.parse::<f32>().ok()) == Some(0.0));
        coding_is_gzip && !refused
    })
}

/// `response` with the encoding headers of a body that exists plain and gzipped.
fn negotiated(mut response: Response, gzipped: bool) -> Response {
    let headers = response.headers_mut();
    headers.insert(header::VARY, header::HeaderValue::from_static("accept-encoding"));
    if gzipped {
        headers.insert(header::CONTENT_ENCODING, header::HeaderValue::from_static("gzip"));
    }
    response
}

#[handler]
fn index(shared: Data<&Arc<Shared>>, req: &Request, Query(query): Query<view::PageQuery>) -> Response {
    let page = shared.current();
    let gzipped = accepts_gzip(req);
    let body = if gzipped { page.index_html_gzip(&query) } else { page.index_html(&query) };
    match body {
        Some(bytes) => negotiated(html_response(StatusCode::OK, bytes), gzipped),
        None => html(None),
    }
}

#[handler]
fn plugin_page(shared: Data<&Arc<Shared>>, Path(name): Path<String>) -> Response {
    let page = shared.current();
    match page.plugin_index(&name) {
        Some(i) => html(page.plugin_html(i)),
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
fn api_plugin(shared: Data<&Arc<Shared>>, Path(name): Path<String>) -> Response {
    let page = shared.current();
    match page.plugin_index(&name) {
        Some(i) => json(page.api_plugin(i)),
        None => plugin_not_found(&name),
    }
}

#[handler]
fn metrics(shared: Data<&Arc<Shared>>, req: &Request) -> Response {
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
        return plugin_not_found(name);
    }
    let Some(slot) = shared.context.sse_clients.try_join() else {
        // Closing the refused client's connection gives its slot under the connection cap
        // back at once, instead of after the keep-alive timeout.
        return Response::builder()
            .status(StatusCode::SERVICE_UNAVAILABLE)
            .header(header::RETRY_AFTER, "10")
            .header(header::CONNECTION, "close")
            .body("too many live dashboard clients; try again later");
    };
    let last_event_id = req.headers().get("last-event-id").and_then(|v| v.to_str().ok()?.trim().parse().ok());
    let stream = sse::stream(shared.pages.clone(), query.plugin, last_event_id, slot, shared.stop.clone());
    Response::builder()
        .content_type("text/event-stream")
        .header(header::CACHE_CONTROL, "no-store")
        .header("x-accel-buffering", "no")
        .body(Body::from_bytes_stream(stream))
}

/// Wraps every route: basic auth (when configured) on all but `/health`, `Allow` on a 405, and
/// `nosniff` on every response, errors included (a 404 that echoes a requested name must never
/// be sniffed as HTML).
async fn guard<E: Endpoint>(ep: Arc<E>, req: Request, auth: Option<Arc<BasicAuth>>) -> poem::Result<Response> {
    let action_route = is_action_path(req.uri().path());
    let allowed = match &auth {
        None => true,
        Some(auth) => req.uri().path() == "/health" || authorized(&req, auth),
    };
    let mut response = if allowed {
        match ep.call(req).await {
            Ok(response) => response.into_response(),
            Err(error) => error.into_response(),
        }
    } else {
        Response::builder()
            .status(StatusCode::UNAUTHORIZED)
            .header(header::WWW_AUTHENTICATE, "Basic realm=\"rosey\", charset=\"UTF-8\"")
            .body("authentication required")
    };
    response.headers_mut().insert(header::X_CONTENT_TYPE_OPTIONS, header::HeaderValue::from_static("nosniff"));
    if response.status() == StatusCode::METHOD_NOT_ALLOWED {
        // RFC 9110 requires a 405 to say what is allowed.
        let allow = if action_route { "POST" } else { "GET, HEAD" };
        response.headers_mut().insert(header::ALLOW, header::HeaderValue::from_static(allow));
    }
    Ok(response)
}

/// The action routes, which take POST only.
fn is_action_path(path: &str) -> bool {
    path == "/api/reload"
        || path
            .strip_prefix("/api/plugin/")
            .and_then(|rest| rest.split_once('/'))
            .is_some_and(|(_, action)| action.parse::<crate::control::Action>().is_ok())
}

fn authorized(req: &Request, auth: &BasicAuth) -> bool {
    let Some(Authorization(given)) = req.headers().typed_get::<Authorization<Basic>>() else { return false };
    let user_ok = given.username().as_bytes().ct_eq(auth.username.as_bytes());
    let password_ok = given.password().as_bytes().ct_eq(auth.password.as_bytes());
    bool::from(user_ok & password_ok)
}
