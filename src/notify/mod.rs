//! Notifications: timeline events sent to the configured webhooks (`notify.webhooks`), off the
//! host's hot path. One task follows the timeline and hands each event a webhook wants to that
//! webhook's own bounded queue (a full queue drops the event, counted and logged); one task per
//! webhook sends them in order, retrying with backoff ([`delivery`]). A crash loop is folded
//! into one message per `notify.coalesce_window` per plugin ([`coalesce`]). Every outcome is
//! counted for `rosey_notifications_total{sink,outcome}`, every failed delivery goes on the
//! timeline as `notify_failed`. Only the configured URLs are contacted: no redirects, no proxy.

mod body;
mod coalesce;
mod delivery;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::{broadcast, mpsc};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::config::{NotifyConfig, Webhook};
use crate::logging::LogBudget;
use crate::timeline::{Event, Kind, Timeline};
pub use body::Message;

/// Messages waiting per webhook; beyond it new ones are dropped (and counted).
pub const QUEUE: usize = 256;
/// How long sending may go on after the bot is asked to stop.
const STOP_GRACE: Duration = Duration::from_secs(3);

/// How a message to a webhook ended, the `outcome` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Delivered (a 2xx answer).
    Sent,
    /// One attempt failed and another follows.
    Retried,
    /// Given up on after its attempts (or a 4xx answer, which another try would not change).
    Failed,
    /// Never sent: the queue was full, or the notifier fell behind the timeline.
    Dropped,
    /// Folded into a crash-loop message instead of being sent alone.
    Coalesced,
}

impl Outcome {
    pub const ALL: [Outcome; 5] =
        [Outcome::Sent, Outcome::Retried, Outcome::Failed, Outcome::Dropped, Outcome::Coalesced];

    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Sent => "sent",
            Outcome::Retried => "retried",
            Outcome::Failed => "failed",
            Outcome::Dropped => "dropped",
            Outcome::Coalesced => "coalesced",
        }
    }
}

/// One webhook's counters.
#[derive(Debug)]
pub struct SinkCounts {
    /// `N:host`: the label, never the URL's path, query or credentials.
    pub sink: String,
    counts: [AtomicU64; Outcome::ALL.len()],
}

impl SinkCounts {
    fn new(sink: String) -> SinkCounts {
        SinkCounts { sink, counts: Default::default() }
    }

    fn add(&self, outcome: Outcome) {
        self.counts[outcome as usize].fetch_add(1, Ordering::Relaxed);
    }

    pub fn get(&self, outcome: Outcome) -> u64 {
        self.counts[outcome as usize].load(Ordering::Relaxed)
    }
}

/// Every webhook's counters, in `notify.webhooks` order (for `/metrics`).
pub type Counts = Arc<Vec<SinkCounts>>;

/// The running notifier.
pub struct Notifier {
    counts: Counts,
    stop: CancellationToken,
    tasks: JoinSet<()>,
}

impl Notifier {
    /// Follow `timeline` and send to `config`'s webhooks; nothing runs without webhooks.
    pub fn start(config: &NotifyConfig, timeline: &Timeline) -> Notifier {
        let counts: Counts = Arc::new(config.webhooks.iter().map(|w| SinkCounts::new(w.sink.clone())).collect());
        let stop = CancellationToken::new();
        let mut tasks = JoinSet::new();
        if config.webhooks.is_empty() {
            return Notifier { counts, stop, tasks };
        }
        let mut sinks = Vec::with_capacity(config.webhooks.len());
        for (index, webhook) in config.webhooks.iter().enumerate() {
            let (queue, messages) = mpsc::channel(QUEUE);
            let sender = delivery::Sender::new(webhook, counts.clone(), index, timeline.clone());
            tasks.spawn(sender.run(messages, stop.clone()));
            let coalescer = coalesce::Coalescer::new(config.coalesce_window);
            sinks.push(Sink {
                webhook: webhook.clone(),
                index,
                queue,
                coalescer,
                full: LogBudget::new(1, Duration::from_secs(60)),
            });
        }
        info!(
            webhooks = sinks.len(),
            "notifications: sending to {}",
            sinks.iter().map(|s| s.webhook.sink.as_str()).collect::<Vec<_>>().join(", ")
        );
        tasks.spawn(route(timeline.subscribe(), sinks, counts.clone(), stop.clone()));
        Notifier { counts, stop, tasks }
    }

    pub fn counts(&self) -> Counts {
        self.counts.clone()
    }

    /// Send what is queued (for a moment), then stop.
    pub async fn stop(mut self) {
        self.stop.cancel();
        let drained = tokio::time::timeout(STOP_GRACE, async { while self.tasks.join_next().await.is_some() {} });
        if drained.await.is_err() {
            warn!("notifications: some were still being sent at shutdown and are not");
        }
    }
}

/// One webhook, as the router sees it.
struct Sink {
    webhook: Webhook,
    index: usize,
    queue: mpsc::Sender<Message>,
    coalescer: coalesce::Coalescer,
    full: LogBudget,
}

impl Sink {
    fn wants(&self, event: &Event) -> bool {
        // A webhook is never told that it failed itself: that could go on forever.
        let about_itself = event.kind == Kind::NotifyFailed && event.details["sink"] == self.webhook.sink.as_str();
        self.webhook.events.contains(&event.kind) && !about_itself
    }

    fn enqueue(&mut self, message: Message, counts: &Counts) {
        if self.queue.try_send(message).is_err() {
            counts[self.index].add(Outcome::Dropped);
            if let Some(suppressed) = self.full.admit() {
                warn!(
                    sink = self.webhook.sink,
                    "notifications: the queue is full ({QUEUE}); a message was dropped{suppressed}"
                );
            }
        }
    }
}

/// Hand each new event to the webhooks that want it; flush folded crash loops as their
/// windows end.
async fn route(
    mut events: broadcast::Receiver<Arc<Event>>,
    mut sinks: Vec<Sink>,
    counts: Counts,
    stop: CancellationToken,
) {
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    loop {
        tokio::select! {
            received = events.recv() => match received {
                Ok(event) => {
                    for sink in sinks.iter_mut().filter(|s| s.wants(&event)) {
                        match sink.coalescer.admit(&event, tokio::time::Instant::now()) {
                            Some(message) => sink.enqueue(message, &counts),
                            None => counts[sink.index].add(Outcome::Coalesced),
                        }
                    }
                }
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    warn!("notifications fell behind the timeline; {missed} events were not considered");
                    for sink in &sinks {
                        counts[sink.index].counts[Outcome::Dropped as usize].fetch_add(missed, Ordering::Relaxed);
                    }
                }
                Err(broadcast::error::RecvError::Closed) => return,
            },
            _ = tick.tick() => {
                let now = tokio::time::Instant::now();
                for sink in &mut sinks {
                    for message in sink.coalescer.due(now) {
                        sink.enqueue(message, &counts);
                    }
                }
            }
            () = stop.cancelled() => return,
        }
    }
}
