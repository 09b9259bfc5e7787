//! Sending to one webhook: the messages in order, each POSTed with up to [`ATTEMPTS`] tries
//! and a doubling pause between them (a 5xx or 429 answer, or no answer, is tried again; any
//! other 4xx is not). ureq is blocking: each try runs on a blocking thread. The body is signed
//! with HMAC-SHA256 when the webhook has a secret, as GitHub signs its webhooks.

use std::sync::Arc;
use std::time::Duration;

use hmac::{Hmac, Mac};
use serde_json::json;
use sha2::Sha256;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use super::{Counts, Message, Outcome};
use crate::config::{Secret, Webhook, WebhookFormat};
use crate::timeline::{Kind, Note, Timeline};

/// Tries per message.
pub const ATTEMPTS: u32 = 5;
/// The pause after the first failed try; it doubles after each.
const FIRST_PAUSE: Duration = Duration::from_secs(1);
/// One try's limit, connecting included.
const TRY_TIMEOUT: Duration = Duration::from_secs(10);
/// The header that carries the signature.
pub const SIGNATURE_HEADER: &str = "X-Rosey-Signature-256";

/// `sha256=<hex>` of `body` under `secret`.
pub fn signature(secret: &Secret, body: &[u8]) -> String {
    // HMAC takes a key of any length.
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.expose().as_bytes()).expect("HMAC accepts any key length");
    mac.update(body);
    let digest = mac.finalize().into_bytes();
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256={hex}")
}

/// Why one try failed.
#[derive(Debug)]
enum TryError {
    /// Worth another try: no answer, a 5xx or a 429.
    Transient(String),
    /// Another try would get the same answer.
    Refused(String),
}

pub(super) struct Sender {
    url: String,
    sink: String,
    format: WebhookFormat,
    secret: Option<Secret>,
    agent: ureq::Agent,
    counts: Counts,
    index: usize,
    timeline: Timeline,
}

impl Sender {
    pub(super) fn new(webhook: &Webhook, counts: Counts, index: usize, timeline: Timeline) -> Sender {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            // Only the configured URL is ever contacted.
            .max_redirects(0)
            .proxy(None)
            .timeout_global(Some(TRY_TIMEOUT))
            .user_agent(concat!("rosey/", env!("CARGO_PKG_VERSION")))
            .build()
            .into();
        Sender {
            url: webhook.url.clone(),
            sink: webhook.sink.clone(),
            format: webhook.format,
            secret: webhook.secret.clone(),
            agent,
            counts,
            index,
            timeline,
        }
    }

    /// Send the queued messages until `stop`; then what is queued still gets one try each.
    pub(super) async fn run(self, mut messages: mpsc::Receiver<Message>, stop: CancellationToken) {
        let this = Arc::new(self);
        loop {
            let message = tokio::select! {
                message = messages.recv() => message,
                () = stop.cancelled() => break,
            };
            let Some(message) = message else { return };
            this.deliver(&message, &stop).await;
        }
        while let Ok(message) = messages.try_recv() {
            this.deliver(&message, &stop).await;
        }
    }

    async fn deliver(self: &Arc<Self>, message: &Message, stop: &CancellationToken) {
        let body = Arc::new(message.body(self.format));
        let mut pause = FIRST_PAUSE;
        let mut attempt = 1;
        let error = loop {
            let this = self.clone();
            let sent = body.clone();
            let kind = message.event().kind;
            let result = tokio::task::spawn_blocking(move || this.try_once(&sent, kind)).await;
            let error = match result {
                Ok(Ok(())) => {
                    self.counts[self.index].add(Outcome::Sent);
                    debug!(sink = self.sink, event = message.event().id, "notification sent");
                    return;
                }
                Ok(Err(error)) => error,
                Err(e) => TryError::Transient(format!("the sending thread failed: {e}")),
            };
            let reason = match error {
                TryError::Refused(reason) => break reason,
                TryError::Transient(reason) if attempt >= ATTEMPTS || stop.is_cancelled() => break reason,
                TryError::Transient(reason) => reason,
            };
            self.counts[self.index].add(Outcome::Retried);
            debug!(
                sink = self.sink,
                "notification try {attempt} failed ({reason}); again in {} s",
                pause.as_secs_f64()
            );
            tokio::select! {
                () = tokio::time::sleep(pause) => {}
                () = stop.cancelled() => {}
            }
            pause *= 2;
            attempt += 1;
        };
        self.counts[self.index].add(Outcome::Failed);
        warn!(
            sink = self.sink,
            event = message.event().id,
            "notification not delivered after {attempt} tries: {error}"
        );
        let details =
            json!({ "sink": self.sink, "event_id": message.event().id, "attempts": attempt, "reason": error });
        let note =
            Note::new(Kind::NotifyFailed, format!("webhook {} not delivered: {error}", self.sink)).details(details);
        self.timeline.record(note);
    }

    /// One POST; blocking.
    fn try_once(&self, body: &[u8], kind: Kind) -> Result<(), TryError> {
        let mut request = self
            .agent
            .post(&self.url)
            .header("Content-Type", "application/json")
            .header("X-Rosey-Event", kind.as_str());
        if let Some(secret) = &self.secret {
            request = request.header(SIGNATURE_HEADER, signature(secret, body));
        }
        // ureq's errors name the failure (refused, timed out, TLS), not the URL.
        let response = request.send(body).map_err(|e| TryError::Transient(e.to_string()))?;
        let status = response.status().as_u16();
        match status {
            200..=299 => Ok(()),
            429 | 500..=599 => Err(TryError::Transient(format!("answered {status}"))),
            _ => Err(TryError::Refused(format!("answered {status}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_is_githubs_hmac_sha256_hex() {
        // RFC 4231 test case 2.
        let secret = Secret::new("Jefe");
        assert_eq!(
            signature(&secret, b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
