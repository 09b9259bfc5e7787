//! `/events`: server-sent events, one `snapshot` event per published snapshot.
//!
//! Written by hand rather than with poem's `SSE` type because that type takes each event's
//! data as an owned `String`: here every client is sent the same pre-encoded frame (`Bytes`,
//! reference-counted), so 1,000 clients cost one serialisation and no copies. Each client
//! follows a `watch` receiver, which holds only the latest snapshot: a slow client skips
//! snapshots instead of queueing them, so it cannot make the host buffer without bound.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use tokio::sync::watch;
use tokio_stream::wrappers::{IntervalStream, WatchStream};
use tokio_util::sync::CancellationToken;

use super::render::{RenderContext, Rendered};

/// How long a browser waits before reconnecting.
const RETRY: &[u8] = b"retry: 3000\n\n";
/// Comment lines that keep proxies from closing an idle stream.
pub const KEEP_ALIVE: Duration = Duration::from_secs(15);
const KEEP_ALIVE_FRAME: &[u8] = b": keep-alive\n\n";

/// Holds one slot of the client cap; frees it when the stream is dropped (client gone).
pub struct ClientSlot {
    context: Arc<RenderContext>,
}

impl ClientSlot {
    /// Take a slot, or None when `max` clients are connected.
    pub fn acquire(context: &Arc<RenderContext>, max: usize) -> Option<ClientSlot> {
        let taken = context
            .sse_clients
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| (n < max).then_some(n + 1))
            .is_ok();
        taken.then(|| ClientSlot { context: context.clone() })
    }
}

impl Drop for ClientSlot {
    fn drop(&mut self) {
        self.context.sse_clients.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The byte stream of one client: retry hint, current snapshot at once, then every new one,
/// with keep-alive comments between; it ends when the server stops.
pub fn stream(
    pages: watch::Receiver<Arc<Rendered>>,
    plugin: Option<String>,
    slot: ClientSlot,
    stop: CancellationToken,
) -> impl futures_util::Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static {
    let frames = WatchStream::new(pages).filter_map(move |rendered| {
        let frame = match &plugin {
            None => Some(rendered.sse_frame()),
            // A plugin that vanished from the snapshot simply gets no more detail frames.
            Some(name) => rendered.plugin_index(name).map(|i| rendered.plugin_sse_frame(i)),
        };
        std::future::ready(frame)
    });
    let mut keep_alive = tokio::time::interval(KEEP_ALIVE);
    keep_alive.reset(); // the first tick would otherwise fire at once
    let keep_alives = IntervalStream::new(keep_alive).map(|_| Bytes::from_static(KEEP_ALIVE_FRAME));
    futures_util::stream::once(std::future::ready(Bytes::from_static(RETRY)))
        .chain(futures_util::stream::select(frames, keep_alives))
        .take_until(stop.cancelled_owned())
        .map(move |frame| {
            let _slot = &slot; // the slot lives exactly as long as the stream
            Ok(frame)
        })
}
