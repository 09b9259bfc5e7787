//! The connection loop: accepts TCP connections and serves each with hyper, handing every
//! request to the poem routes.
//!
//! Written here rather than using `poem::Server` because that server wraps each connection in
//! a boxed stream that hides vectored writes from hyper. Without them hyper copies every
//! response body into a buffer of its own per connection, and keeps that buffer: with 1,000
//! live dashboards, 1,000 copies of the latest SSE frame (over 100 KB each at 100 plugins).
//! Over the plain `TcpStream`, hyper queues the shared `Bytes` and writes headers and body in
//! one `writev`, with no copy (docs/performance.md has the before and after).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use poem::http::uri::Scheme;
use poem::{Addr, Endpoint, Request};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

/// A client that has not sent a whole request head within this time is disconnected, so idle
/// sockets cannot pile up (hyper's own default; it needs a timer to take effect).
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// Serve `app` on `listener` until `stop`; then let open requests finish for up to `grace`.
pub async fn serve<E>(listener: TcpListener, app: E, stop: CancellationToken, grace: Duration)
where
    E: Endpoint + 'static,
{
    let app = Arc::new(app);
    let local = poem::web::LocalAddr(Addr::SocketAddr(
        listener.local_addr().unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0))),
    ));
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder.http1().timer(TokioTimer::new()).header_read_timeout(HEADER_READ_TIMEOUT);
    let graceful = GracefulShutdown::new();
    loop {
        let (stream, remote) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of descriptors or a connection reset before accept: keep serving the
                    // others, and give the condition a moment to pass instead of spinning.
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
        let service = service_fn(move |req: hyper::Request<Incoming>| {
            let app = app.clone();
            let request =
                Request::from((req, local.clone(), poem::web::RemoteAddr(Addr::SocketAddr(remote)), Scheme::HTTP));
            async move { Ok::<_, Infallible>(hyper::Response::from(app.get_response(request).await)) }
        });
        let connection = builder.serve_connection_with_upgrades(TokioIo::new(stream), service).into_owned();
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                debug!("dashboard connection from {remote} ended: {e}");
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(grace, graceful.shutdown()).await.is_err() {
        debug!("dashboard: connections still open after {grace:?} were dropped");
    }
}
