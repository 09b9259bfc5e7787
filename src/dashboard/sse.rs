//! `/events`: server-sent events, one `snapshot` event per published snapshot.
//!
//! Written by hand rather than with poem's `SSE` type because that type takes each event's
//! data as an owned `String`: here every client is sent the same pre-encoded frame (`Bytes`,
//! reference-counted), so 1,000 clients cost one serialisation and no copies. Each client
//! follows a `watch` receiver, which holds only the latest snapshot: a slow client skips
//! snapshots instead of queueing them, so it cannot make the host buffer without bound.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio_stream::wrappers::{IntervalStream, WatchStream};
use tokio_util::sync::CancellationToken;

use super::render::Rendered;

/// How long a browser waits before reconnecting.
const RETRY: &[u8] = b"retry: 3000\n\n";
/// Comment lines that keep proxies from closing an idle stream.
pub const KEEP_ALIVE: Duration = Duration::from_secs(15);
const KEEP_ALIVE_FRAME: &[u8] = b": keep-alive\n\n";

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

/// The byte stream of one client: retry hint, current snapshot at once, then every new one,
/// with keep-alive comments between; it ends when the server stops.
pub fn stream(
    pages: watch::Receiver<Arc<Rendered>>,
    plugin: Option<String>,
    slot: OwnedSemaphorePermit,
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

#[cfg(test)]
mod tests {
    use super::*;

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
