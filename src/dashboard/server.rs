//! The connection loop: accepts TCP connections, at most [`ConnectionCaps::connections`] at a
//! time, and serves each with hyper's HTTP/1 (over TLS when `dashboard.tls` is set, the
//! handshake in the connection's own task), handing every request to the poem routes. The
//! caps themselves live here too: connections, and live-update clients ([`ClientCap`]).
//!
//! Written here rather than using `poem::Server` because that server wraps each connection in
//! a boxed stream that hides vectored writes from hyper. Without them hyper copies every
//! response body into a buffer of its own per connection, and keeps that buffer: with 1,000
//! live dashboards, 1,000 copies of the latest SSE frame (over 100 KB each at 100 plugins).
//! Over the plain `TcpStream`, hyper queues the shared `Bytes` and writes headers and body in
//! one `writev`, with no copy (docs/performance.md has the before and after).
//!
//! HTTP/1 only: browsers, Prometheus and curl all speak it, and no browser speaks HTTP/2
//! without TLS. Serving h2c too meant hyper-util's protocol detection, which waits for a
//! client's first bytes with no timer: a client that connected and sent nothing, or only the
//! h2 preface, held its connection forever. hyper's HTTP/1 starts the request-head timer as
//! soon as the connection is served.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use poem::http::uri::Scheme;
use poem::{Addr, Endpoint, Request};
use tokio::net::TcpListener;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use super::burst_trim::{self, BurstTrim};

/// A client that has not sent a whole request head within this time is disconnected, so idle
/// sockets cannot pile up. The timer runs from the moment a connection is served, and again
/// while a kept-alive connection waits for its next request.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// The largest request head (request line and headers), Node.js' default. This API takes no
/// request bodies and its longest header is a basic-auth line; 16 KiB still leaves room for a
/// browser's cookies for the host. Beyond it the client gets `431` and the connection is
/// closed. The read buffer is capped at the same size: hyper's default (about 408 KiB) let
/// 1,000 unfinished heads hold over 300 MB.
const MAX_REQUEST_HEAD: usize = 16 * 1024;
/// Connections served at once besides the live-update streams: page loads, API calls,
/// scrapes, health probes, and refused live-update clients on their way out.
const OTHER_CONNECTIONS: usize = 64;

/// How many connections, and how many of them live-update streams, the server takes at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionCaps {
    pub connections: usize,
    pub sse_clients: usize,
}

impl ConnectionCaps {
    /// `max_sse_clients` streams plus room for everything else, within `descriptors` (what
    /// the open-files limit leaves for connections; None when unknown). When the limit is too
    /// low for that, fewer of both, with a warning naming the numbers and the remedy.
    pub fn fit(max_sse_clients: usize, descriptors: Option<u64>) -> ConnectionCaps {
        let wanted = ConnectionCaps { connections: max_sse_clients + OTHER_CONNECTIONS, sse_clients: max_sse_clients };
        let Some(descriptors) = descriptors.map(|d| usize::try_from(d).unwrap_or(usize::MAX)) else {
            return wanted;
        };
        if descriptors >= wanted.connections {
            return wanted;
        }
        // Keep at least one connection, and half of them for the routes other than /events.
        let connections = descriptors.max(1);
        let sse_clients = connections - OTHER_CONNECTIONS.min(connections / 2);
        warn!(
            "the open-files limit leaves descriptors for {connections} dashboard connections: serving at most \
             {sse_clients} live-update clients instead of dashboard.max_sse_clients = {max_sse_clients} (raise \
             LimitNOFILE= in the systemd unit or `ulimit -n`, or lower dashboard.max_sse_clients)"
        );
        ConnectionCaps { connections, sse_clients }
    }
}

/// Serve `app` on `listener` until `stop`, at most `max_connections` at once; then let open
/// requests finish for up to `grace`.
pub async fn serve<E>(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    app: E,
    max_connections: usize,
    stop: CancellationToken,
    grace: Duration,
) where
    E: Endpoint + 'static,
{
    let scheme = if tls.is_some() { Scheme::HTTPS } else { Scheme::HTTP };
    let app = Arc::new(app);
    let local = poem::web::LocalAddr(Addr::SocketAddr(
        listener.local_addr().unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0))),
    ));
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .max_header_size(MAX_REQUEST_HEAD)
        .max_buf_size(MAX_REQUEST_HEAD);
    // mini-redis' `limit_connections`: a permit is taken before accepting and given back when
    // the connection ends. Beyond the cap, new clients wait in the listen backlog instead of
    // costing a descriptor and memory each.
    let permits = Arc::new(Semaphore::new(max_connections));
    let burst = Arc::new(BurstTrim::default());
    let graceful = GracefulShutdown::new();
    loop {
        let permit = tokio::select! {
            permit = permits.clone().acquire_owned() => permit.expect("the connection semaphore is never closed"),
            () = stop.cancelled() => break,
        };
        let (stream, remote) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // A connection reset before accept, or descriptors taken by something the
                    // reserve did not foresee: keep serving the others, and give the condition
                    // a moment to pass instead of spinning.
                    warn!("dashboard: accepting a connection failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = stop.cancelled() => break,
        };
        // Responses are written whole; waiting for ACKs (Nagle) would only add latency.
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        let local = local.clone();
        let scheme = scheme.clone();
        let service = service_fn(move |req: hyper::Request<Incoming>| {
            let app = app.clone();
            let request =
                Request::from((req, local.clone(), poem::web::RemoteAddr(Addr::SocketAddr(remote)), scheme.clone()));
            async move { Ok::<_, Infallible>(hyper::Response::from(app.get_response(request).await)) }
        });
        burst.opened(max_connections - permits.available_permits());
        let (permits, burst) = (permits.clone(), burst.clone());
        let (builder, watcher, tls) = (builder.clone(), graceful.watcher(), tls.clone());
        tokio::spawn(async move {
            let ended = match tls {
                None => watcher.watch(builder.serve_connection(TokioIo::new(stream), service)).await,
                // The handshake runs here, not in the accept loop, so a slow client holds
                // only its own connection; the request-head timer bounds it too.
                Some(acceptor) => match tokio::time::timeout(HEADER_READ_TIMEOUT, acceptor.accept(stream)).await {
                    Ok(Ok(stream)) => watcher.watch(builder.serve_connection(TokioIo::new(stream), service)).await,
                    Ok(Err(e)) => {
                        debug!("dashboard: TLS handshake with {remote} failed: {e}");
                        Ok(())
                    }
                    Err(_) => Ok(()),
                },
            };
            if let Err(e) = ended {
                debug!("dashboard connection from {remote} ended: {e}");
            }
            drop(permit);
            if burst.closed(max_connections - permits.available_permits()) {
                tokio::task::spawn_blocking(burst_trim::release_freed_memory);
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(grace, graceful.shutdown()).await.is_err() {
        debug!("dashboard: connections still open after {grace:?} were dropped");
    }
}

/// The cap on live-update clients: one semaphore permit per open stream, the same tool as the
/// server's connection cap. The permit travels with the stream and is given back when the
/// stream is dropped (client gone, or server stopping).
pub struct ClientCap {
    slots: Arc<Semaphore>,
    max: usize,
}

impl ClientCap {
    pub fn new(max: usize) -> ClientCap {
        ClientCap { slots: Arc::new(Semaphore::new(max)), max }
    }

    /// A slot for one more client, or None when `max` clients are connected.
    pub fn try_join(&self) -> Option<OwnedSemaphorePermit> {
        self.slots.clone().try_acquire_owned().ok()
    }

    /// Clients connected now, for the `rosey_sse_clients` gauge.
    pub fn live(&self) -> usize {
        self.max - self.slots.available_permits()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enough_descriptors_give_the_configured_caps() {
        let wanted = ConnectionCaps { connections: 1024 + OTHER_CONNECTIONS, sse_clients: 1024 };
        assert_eq!(ConnectionCaps::fit(1024, None), wanted);
        assert_eq!(ConnectionCaps::fit(1024, Some(1_000_000)), wanted);
        assert_eq!(ConnectionCaps::fit(1024, Some(1024 + OTHER_CONNECTIONS as u64)), wanted);
    }

    #[test]
    fn too_few_descriptors_shrink_the_streams_first() {
        // The common 1,024 limit minus the bot's reserve.
        let caps = ConnectionCaps::fit(1024, Some(954));
        assert_eq!(caps, ConnectionCaps { connections: 954, sse_clients: 954 - OTHER_CONNECTIONS });
        // Very few: half stay for the other routes; never zero connections.
        assert_eq!(ConnectionCaps::fit(1024, Some(10)), ConnectionCaps { connections: 10, sse_clients: 5 });
        assert_eq!(ConnectionCaps::fit(1024, Some(0)), ConnectionCaps { connections: 1, sse_clients: 1 });
    }

    #[test]
    fn a_client_that_leaves_frees_its_slot() {
        let cap = ClientCap::new(2);
        let first = cap.try_join().expect("a first slot");
        let _second = cap.try_join().expect("a second slot");
        assert!(cap.try_join().is_none(), "the cap holds");
        assert_eq!(cap.live(), 2);
        drop(first);
        assert_eq!(cap.live(), 1);
        assert!(cap.try_join().is_some(), "the freed slot is taken again");
    }
}
