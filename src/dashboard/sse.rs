//! `/events`: server-sent events: a full frame (`snapshot`) on connect, then one `delta` per
//! published snapshot, or a full frame again whenever the client's last frame is not the
//! delta's base (the frames themselves are made in `render::live`).
//!
//! Written by hand rather than with poem's `SSE` type because that type takes each event's
//! data as an owned `String`: here every client is sent the same pre-encoded frame (`Bytes`,
//! reference-counted), so 1,000 clients cost one serialisation and no copies. Each client
//! follows a `watch` receiver, which holds only the latest snapshot: a slow client skips
//! snapshots instead of queueing them, so it cannot make the host buffer without bound; having
//! skipped one, it gets a full frame, never a delta against a snapshot it did not see.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use tokio::sync::{OwnedSemaphorePermit, watch};
use tokio_stream::wrappers::{IntervalStream, WatchStream};
use tokio_util::sync::CancellationToken;

use super::render::Rendered;

/// The answer to one live client more than `dashboard.max_sse_clients`, a cap every live
/// stream shares (`/events`, a plugin's log, the timeline).
pub fn too_many_clients() -> poem::Response {
    // Closing the refused client's connection gives its slot under the connection cap back at
    // once, instead of after the keep-alive timeout.
    poem::Response::builder()
        .status(poem::http::StatusCode::SERVICE_UNAVAILABLE)
        .header(poem::http::header::RETRY_AFTER, "10")
        .header(poem::http::header::CONNECTION, "close")
        .body("too many live dashboard clients; try again later")
}

/// How long a browser waits before reconnecting.
const RETRY: &[u8] = b"retry: 3000\n\n";
/// Comment lines that keep proxies from closing an idle stream.
pub const KEEP_ALIVE: Duration = Duration::from_secs(15);
const KEEP_ALIVE_FRAME: &[u8] = b": keep-alive\n\n";

/// The frame that brings a client whose last frame was `sent` up to `rendered` (None when it
/// is already there), noting it as sent. `plugin` selects a detail page's frames.
fn next_frame(rendered: &Rendered, plugin: Option<&str>, sent: &mut Option<u64>) -> Option<Bytes> {
    let id = rendered.frame_id();
    if *sent == Some(id) {
        return None;
    }
    let on_base = sent.is_some() && *sent == rendered.base_frame_id();
    let frame = match plugin {
        None => on_base.then(|| rendered.delta_frame()).flatten().unwrap_or_else(|| rendered.full_frame()),
        // A plugin that vanished from the snapshot simply gets no detail frame (and a full one
        // should it come back).
        Some(name) => {
            let index = rendered.plugin_index(name)?;
            on_base
                .then(|| rendered.plugin_delta_frame(index))
                .flatten()
                .unwrap_or_else(|| rendered.plugin_full_frame(index))
        }
    };
    *sent = Some(id);
    Some(frame)
}

/// The byte stream of one client: retry hint, the current snapshot at once (unless
/// `last_event_id`, from a resuming browser, says it has it), then every new one, with
/// keep-alive comments between; it ends when the server stops.
pub fn stream(
    pages: watch::Receiver<Arc<Rendered>>,
    plugin: Option<String>,
    last_event_id: Option<u64>,
    slot: OwnedSemaphorePermit,
    stop: CancellationToken,
) -> impl futures_util::Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static {
    let mut sent = last_event_id;
    let frames = WatchStream::new(pages)
        .filter_map(move |rendered| std::future::ready(next_frame(&rendered, plugin.as_deref(), &mut sent)));
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
    use crate::dashboard::render::{RenderContext, templates};
    use crate::metrics::Snapshot;
    use crate::metrics::health::Thresholds;

    fn snapshot(seq: u64) -> Arc<Snapshot> {
        Snapshot::empty(seq, Duration::from_secs(5), Duration::from_secs(seq))
    }

    fn kind(frame: &Bytes) -> &str {
        let text = std::str::from_utf8(frame).expect("a frame is text");
        text.lines().find_map(|l| l.strip_prefix("event: ")).expect("a frame names its event")
    }

    /// The watch hands a slow client only the latest snapshot: one it skipped means the
    /// latest's delta does not apply to what it has.
    #[test]
    fn a_client_that_skipped_a_snapshot_gets_a_full_frame() {
        let context = Arc::new(RenderContext {
            templates: templates().expect("the templates parse"),
            actions_enabled: false,
            thresholds: Thresholds { cpu_percent: 80.0, memory_mb: 512.0, response_ms: 1000.0 },
            sse_clients: Arc::new(crate::dashboard::server::ClientCap::new(1)),
            auth_failures: Arc::default(),
            timeline: crate::timeline::Timeline::new(1),
            notifications: Arc::default(),
        });
        let first = Rendered::new(snapshot(1), context);
        let second = first.next(snapshot(2));
        let third = second.next(snapshot(3));

        let mut sent = None;
        let frame = next_frame(&first, None, &mut sent).expect("a first frame");
        assert_eq!(kind(&frame), "snapshot");
        assert!(next_frame(&first, None, &mut sent).is_none(), "nothing new, nothing sent");
        let skipping = &mut sent.clone();
        assert_eq!(next_frame(&second, None, &mut sent).as_ref().map(kind), Some("delta"));
        assert_eq!(next_frame(&third, None, skipping).as_ref().map(kind), Some("snapshot"), "skipped the second");
        assert_eq!(next_frame(&third, None, &mut sent).as_ref().map(kind), Some("delta"));
    }
}
