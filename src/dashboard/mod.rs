//! The dashboard: an HTTP server (poem) over the collector's snapshots. This module owns its
//! lifecycle: binding the socket, starting the server and the task that renders each snapshot
//! once ([`follow_snapshots`]), and stopping both. Every route is in [`routes`]; the guard
//! around them (basic auth) in [`auth`]; how answers are built in [`responses`].

pub mod action_routes;
pub mod api;
mod auth;
mod burst_trim;
mod logs;
pub mod prometheus;
mod refusal;
pub mod render;
mod responses;
mod routes;
pub mod server;
pub mod sse;
pub mod timeline;
mod tls;
pub mod view;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use poem::EndpointExt;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::config::{ConfigError, DashboardConfig, Loaded, ValueSource};
use crate::control::ActionDoor;
use crate::display::host_port;
use crate::limits;
use crate::metrics::Snapshot;
use crate::metrics::health::Thresholds;
use crate::plugins::output_log::LogBook;
use crate::timeline::Timeline;
use render::{RenderContext, Rendered};
use server::ConnectionCaps;

/// How long open connections get to finish when the server stops.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(2);

/// Why the dashboard could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot listen on {addr} (dashboard.host / dashboard.port): {source}")]
    Bind { addr: String, source: std::io::Error },
    #[error("the dashboard templates are invalid: {0}")]
    Templates(String),
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
}

/// What the dashboard shows: the collector's snapshots, the timeline, the notifier's counts.
pub struct Feeds {
    pub snapshots: watch::Receiver<Arc<Snapshot>>,
    pub timeline: Timeline,
    pub notifications: crate::notify::Counts,
    /// Each plugin's output log, for the log routes.
    pub logs: Arc<LogBook>,
}

/// What every handler shares.
struct Shared {
    pages: watch::Receiver<Arc<Rendered>>,
    context: Arc<RenderContext>,
    stop: CancellationToken,
    /// `metrics.prometheus_enabled`: false, `/metrics` answers 404.
    prometheus_enabled: bool,
    /// Each plugin's output log, read by the log routes only.
    logs: Arc<LogBook>,
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
    /// The certificate, when serving HTTPS.
    certificate: Option<Arc<tls::Certificate>>,
    acceptor: Option<tokio_rustls::TlsAcceptor>,
}

impl BoundDashboard {
    /// The certificate it serves, when serving HTTPS: each config reload re-reads it.
    pub fn certificate(&self) -> Option<ServedCertificate> {
        self.certificate.clone().map(ServedCertificate)
    }
}

/// The dashboard's certificate, as a config reload sees it (the rules are in [`tls`]).
#[derive(Debug, Clone)]
pub struct ServedCertificate(Arc<tls::Certificate>);

impl ServedCertificate {
    /// Read the certificate files that the reloaded config names; an error refuses the reload
    /// (the problem names the key), and the certificate served stays as it was.
    pub fn reread(&self, loaded: &Loaded) -> Result<(), ConfigError> {
        // The files' paths come from the config file, or from ROSEY_DASHBOARD__TLS__* without one.
        let source =
            loaded.file.clone().map_or_else(|| ValueSource::Env("ROSEY_DASHBOARD__TLS".into()), ValueSource::File);
        self.0.reread(loaded.config.dashboard.tls.as_ref()).map_err(|e| e.refusing_reload(source))
    }
}

impl Dashboard {
    /// Bind `dashboard.host:dashboard.port` and load the templates.
    pub async fn bind(config: &DashboardConfig) -> Result<BoundDashboard, StartError> {
        let templates = render::templates().map_err(|e| StartError::Templates(e.to_string()))?;
        let certificate = config.tls.clone().map(tls::Certificate::new).transpose()?;
        let acceptor = certificate.as_ref().map(tls::Certificate::acceptor).transpose()?;
        let addr = host_port(&config.host, config.port);
        let listener = tokio::net::TcpListener::bind(&addr)
            .await
            .map_err(|source| StartError::Bind { addr: addr.clone(), source })?;
        let local_addr = listener.local_addr().map_err(|source| StartError::Bind { addr: addr.clone(), source })?;
        Ok(BoundDashboard { listener, templates, local_addr, certificate, acceptor })
    }

    /// Serve the snapshots on the bound socket.
    pub fn start(
        bound: BoundDashboard,
        config: &DashboardConfig,
        prometheus_enabled: bool,
        feeds: Feeds,
        controls: ActionDoor,
    ) -> Dashboard {
        let Feeds { snapshots, timeline, notifications, logs } = feeds;
        let BoundDashboard { listener, templates, local_addr, certificate: _, acceptor } = bound;
        // The first snapshot lists every configured plugin, each holding descriptors of its own.
        let plugins = snapshots.borrow().plugins.len();
        let caps = ConnectionCaps::fit(config.max_sse_clients, limits::descriptors_for_connections(plugins));
        let auth_failures = Arc::new(AtomicU64::new(0));
        let context = Arc::new(RenderContext {
            templates,
            actions_enabled: config.has_operator(),
            thresholds: Thresholds::of(config),
            sse_clients: Arc::new(server::ClientCap::new(caps.sse_clients)),
            auth_failures: auth_failures.clone(),
            timeline: timeline.clone(),
            notifications,
        });
        announce(config, local_addr);

        let stop = CancellationToken::new();
        let (pages, renderer) = follow_snapshots(snapshots, context.clone(), stop.clone());
        let shared = Arc::new(Shared { pages, context, stop: stop.clone(), prometheus_enabled, logs });
        let guard = auth::Guard::new(config, auth_failures, timeline);
        let actions = action_routes::Actions::new(controls, config.has_operator());
        let app = routes::routes(actions).data(shared).around(move |ep, req| {
            let guard = guard.clone();
            async move { guard.serve(&*ep, req).await }
        });
        let server =
            tokio::spawn(server::serve(listener, acceptor, app, caps.connections, stop.clone(), SHUTDOWN_TIMEOUT));
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
    let scheme = if config.tls.is_some() { "https" } else { "http" };
    info!("dashboard: {scheme}://{}", host_port(&shown_host, local.port()));
    if !local.ip().is_loopback() {
        warn!(
            "the dashboard listens on {local}, reachable from other machines (set dashboard.host to 127.0.0.1 to keep it local)"
        );
        if !config.guarded() {
            warn!("no dashboard.auth is set: anyone who can reach {local} can read the metrics");
        } else if config.tls.is_none() {
            warn!(
                "the dashboard serves plain HTTP on {local}: passwords cross the network in the clear (set \
                 dashboard.tls, or put a TLS proxy in front; docs/operations.md, \"Put it on the network\")"
            );
        }
    }
    if config.auth.as_ref().is_some_and(|login| login.secret.is_plain()) {
        warn!(
            "dashboard.auth holds the password in plaintext: run `rosey hash-password` and put what it prints in \
             dashboard.auth.password_hash instead"
        );
    }
    for user in config.users.iter().filter(|user| user.login.secret.is_plain()) {
        warn!(
            "dashboard.users: the password of {:?} is in plaintext: run `rosey hash-password` and put what it \
             prints in its password_hash instead",
            user.login.username
        );
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
