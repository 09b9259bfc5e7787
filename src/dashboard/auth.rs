//! The guard around every route: who may ask (HTTP basic auth, when `dashboard.auth` is set,
//! on every route but `/health`), failed logins slowed down per client address and logged,
//! and the headers every answer carries whatever the route (`nosniff`, and `Allow` on a 405).
//! Ways of proving who asks go in [`Guard::admits`].
//!
//! Each failed login is one log line in a stable format that fail2ban can match
//! (docs/operations.md has the filter):
//! `dashboard login failed: client=<address> user="<name tried>" route="<path>"`, at most
//! [`FAILURE_LINES_PER_SECOND`] a second. The name and path are quoted and escaped as Rust
//! strings, so whatever a client sends stays on one line and inside its quotes.

mod client;
mod password;
mod throttle;

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use poem::http::{StatusCode, header};
use poem::web::headers::authorization::Basic;
use poem::web::headers::{Authorization, HeaderMapExt};
use poem::{Endpoint, IntoResponse, Request, Response};
use tracing::warn;

use super::render::Audience;
use crate::config::{DashboardConfig, IpRange, Role};
use crate::logging::LogBudget;
use password::Checker;
use throttle::Throttle;

/// The failed-login lines logged per second at most; the rest are counted in the next one.
pub const FAILURE_LINES_PER_SECOND: u32 = 10;

/// What the guard checks a request against.
pub struct Guard {
    /// Checks the credentials every request but `/health`'s must carry (`dashboard.auth` and
    /// `dashboard.users`); None: anyone may ask.
    credentials: Option<Checker>,
    trusted_proxies: Vec<IpRange>,
    throttle: Throttle,
    /// `rosey_auth_failures_total`.
    failures: Arc<AtomicU64>,
    failure_lines: Mutex<LogBudget>,
    /// Serving HTTPS: every answer says to keep to it (`Strict-Transport-Security`).
    hsts: bool,
    /// Failed logins go on the timeline too, at most one event per window.
    timeline: crate::timeline::notes::AuthFailures,
}

/// What the guard decided about a request.
enum Verdict {
    /// Served; as this user when the dashboard has users.
    Admitted(Option<Visitor>),
    /// No credentials at all: the browser has not asked its user yet. Not a failure.
    Challenge,
    /// Wrong credentials, from this address, with this user name.
    Failed { client: Option<IpAddr>, user: String },
    /// The address is held off after failures, for this long yet.
    Held(Duration),
}

impl Guard {
    /// The guard for `config`; it counts failed logins in `failures`.
    pub fn new(config: &DashboardConfig, failures: Arc<AtomicU64>, timeline: crate::timeline::Timeline) -> Arc<Guard> {
        Arc::new(Guard {
            credentials: config.guarded().then(|| Checker::new(config.accounts())),
            trusted_proxies: config.trusted_proxies.clone(),
            throttle: Throttle::default(),
            failures,
            failure_lines: Mutex::new(LogBudget::new(FAILURE_LINES_PER_SECOND, Duration::from_secs(1))),
            hsts: config.tls.is_some(),
            timeline: crate::timeline::notes::AuthFailures::new(timeline),
        })
    }

    /// Serve `req` through `ep` if it may be served. `nosniff` goes on every response, errors
    /// included (a 404 that echoes a requested name must never be sniffed as HTML).
    pub async fn serve<E: Endpoint>(&self, ep: &E, req: Request) -> poem::Result<Response> {
        let route = req.uri().path().to_owned();
        let mut response = match self.admits(&req).await {
            Verdict::Admitted(visitor) => match ep.call(with_visitor(req, visitor)).await {
                Ok(response) => response.into_response(),
                Err(error) => error.into_response(),
            },
            Verdict::Challenge => challenge(),
            Verdict::Failed { client, user } => {
                self.failed(client, &user, &route);
                challenge()
            }
            Verdict::Held(left) => {
                // Whole seconds, rounded up: a client that waits exactly this long is served.
                let seconds = left.as_secs() + u64::from(left.subsec_nanos() > 0);
                Response::builder()
                    .status(StatusCode::TOO_MANY_REQUESTS)
                    .header(header::RETRY_AFTER, seconds.to_string())
                    .body(format!("too many failed logins from this address; try again in {seconds} s"))
            }
        };
        let headers = response.headers_mut();
        headers.insert(header::X_CONTENT_TYPE_OPTIONS, header::HeaderValue::from_static("nosniff"));
        if self.hsts {
            // A year, as Mozilla's recommended configuration says; not for subdomains, which
            // this bot cannot speak for.
            headers.insert(header::STRICT_TRANSPORT_SECURITY, header::HeaderValue::from_static("max-age=31536000"));
        }
        // RFC 9110 requires a 405 to say what is allowed. The action routes say it themselves
        // (action_routes::PostOnly); every other route takes GET and HEAD.
        if response.status() == StatusCode::METHOD_NOT_ALLOWED && !response.headers().contains_key(header::ALLOW) {
            response.headers_mut().insert(header::ALLOW, header::HeaderValue::from_static("GET, HEAD"));
        }
        Ok(response)
    }

    /// May `req` be served?
    async fn admits(&self, req: &Request) -> Verdict {
        let Some(credentials) = &self.credentials else { return Verdict::Admitted(None) };
        if req.uri().path() == "/health" {
            return Verdict::Admitted(None);
        }
        let client = client::client_address(req, &self.trusted_proxies);
        if let Some(left) = client.and_then(|ip| self.throttle.held(ip, Instant::now())) {
            return Verdict::Held(left);
        }
        let Some(Authorization(given)) = req.headers().typed_get::<Authorization<Basic>>() else {
            return Verdict::Challenge;
        };
        match credentials.check(given.username(), given.password()).await {
            Some(role) => {
                if let Some(ip) = client {
                    self.throttle.succeeded(ip);
                }
                Verdict::Admitted(Some(Visitor { user: given.username().to_owned(), role }))
            }
            None => Verdict::Failed { client, user: given.username().to_owned() },
        }
    }

    /// Count, throttle and log one failed login.
    fn failed(&self, client: Option<IpAddr>, user: &str, route: &str) {
        self.failures.fetch_add(1, Ordering::Relaxed);
        let hold = client.and_then(|ip| self.throttle.failed(ip, Instant::now()));
        let shown = client.map_or_else(|| "unknown".to_owned(), |ip| ip.to_string());
        self.timeline.failed(&shown, user, route);
        let admitted = self.failure_lines.lock().expect("the log budget's lock is never held across a panic").admit();
        if let Some(suppressed) = admitted {
            warn!("dashboard login failed: client={shown} user={user:?} route={route:?}{suppressed}");
        }
        if let Some(hold) = hold {
            warn!("dashboard logins from {shown} held off for {} s after repeated failures", hold.length.as_secs());
        }
    }
}

fn challenge() -> Response {
    Response::builder()
        .status(StatusCode::UNAUTHORIZED)
        .header(header::WWW_AUTHENTICATE, "Basic realm=\"rosey\", charset=\"UTF-8\"")
        .body("authentication required")
}

/// Who a served request comes from, when the dashboard has users: the guard puts it in the
/// request's extensions, where the action routes read it.
#[derive(Debug, Clone)]
pub struct Visitor {
    pub user: String,
    pub role: Role,
}

fn with_visitor(mut req: Request, visitor: Option<Visitor>) -> Request {
    if let Some(visitor) = visitor {
        req.extensions_mut().insert(visitor);
    }
    req
}

/// The logged-in user of a served request (None when the dashboard has no users).
pub fn visitor(req: &Request) -> Option<&Visitor> {
    req.extensions().get::<Visitor>()
}

/// Whom a served request's pages are rendered for: a viewer's carry no action buttons.
pub fn audience(req: &Request) -> Audience {
    match visitor(req) {
        Some(Visitor { role: Role::Viewer, .. }) => Audience::Viewer,
        Some(Visitor { role: Role::Operator, .. }) | None => Audience::Operator,
    }
}
