//! The `timeline` and `notify` sections: where the bot's history is kept and who is told about
//! it. Raw (as written) and checked here, like every section; the timeline itself is in
//! [`crate::timeline`], the sending in [`crate::notify`].

use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::numbers::{ReloadRange, Seconds};
use super::secret::{self, Secret};
use crate::timeline::Kind;

/// `timeline`: the bounded list of what happened, optionally kept in a file across restarts.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawTimeline {
    /// Events kept in memory (and read back from the file at start).
    pub capacity: NonZeroUsize,
    /// A JSON-lines file the events are appended to, and read back from at start.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<PathBuf>,
}

impl Default for RawTimeline {
    fn default() -> Self {
        RawTimeline { capacity: NonZeroUsize::new(10_000).expect("10000 is not zero"), file: None }
    }
}

/// The checked `timeline` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimelineConfig {
    pub capacity: usize,
    pub file: Option<PathBuf>,
}

impl RawTimeline {
    pub(super) fn checked(&self) -> TimelineConfig {
        TimelineConfig { capacity: self.capacity.get(), file: self.file.clone() }
    }
}

/// `notify`: webhooks told about timeline events.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawNotify {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub webhooks: Vec<RawWebhook>,
    /// Crashes of one plugin within this window go out as one message.
    pub coalesce_window: Seconds<ReloadRange>,
}

impl Default for RawNotify {
    fn default() -> Self {
        RawNotify { webhooks: Vec::new(), coalesce_window: Seconds::builtin(Duration::from_secs(60)) }
    }
}

/// `notify.webhooks[N]`, as written.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct RawWebhook {
    pub url: String,
    /// Timeline kinds this webhook wants (`crashed`, `failed`, `rolled_back`, …).
    pub events: Vec<String>,
    pub format: WebhookFormat,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret_env: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret_file: Option<PathBuf>,
}

/// What a webhook's body looks like.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WebhookFormat {
    /// Rosey's own JSON (docs/api.md, "Webhook notifications").
    #[default]
    Json,
    /// `{"text": …, "content": …}`: what Slack, Mattermost and Discord incoming webhooks read.
    Slack,
}

/// The checked `notify` section.
#[derive(Debug, Clone, PartialEq)]
pub struct NotifyConfig {
    pub webhooks: Vec<Webhook>,
    pub coalesce_window: Duration,
}

/// One checked webhook.
#[derive(Debug, Clone, PartialEq)]
pub struct Webhook {
    pub url: String,
    /// For the `sink` label and the log: `N:host`, never the path, query or credentials.
    pub sink: String,
    pub events: Vec<Kind>,
    pub format: WebhookFormat,
    pub secret: Option<Secret>,
}

impl RawNotify {
    /// The checked section; each problem as `(key, message)`.
    pub(super) fn checked(&self, problems: &mut Vec<(String, String)>) -> NotifyConfig {
        let mut webhooks = Vec::with_capacity(self.webhooks.len());
        for (index, raw) in self.webhooks.iter().enumerate() {
            let at = |key: &str| format!("notify.webhooks[{index}].{key}");
            let host = match webhook_host(&raw.url) {
                Ok(host) => Some(host),
                Err(why) => {
                    problems.push((at("url"), why));
                    None
                }
            };
            let mut events = Vec::with_capacity(raw.events.len());
            for (n, kind) in raw.events.iter().enumerate() {
                match kind.parse::<Kind>() {
                    Ok(kind) => events.push(kind),
                    Err(e) => problems.push((format!("notify.webhooks[{index}].events[{n}]"), e.to_string())),
                }
            }
            if raw.events.is_empty() {
                problems
                    .push((at("events"), "expected a list of timeline kinds, e.g. [\"crashed\", \"failed\"]".into()));
            }
            let secret =
                match secret::resolve(raw.secret.as_deref(), raw.secret_env.as_deref(), raw.secret_file.as_deref()) {
                    Ok(secret) => secret,
                    Err((form, why)) => {
                        problems.push((at(&format!("secret{form}")), why));
                        None
                    }
                };
            if let Some(host) = host {
                let sink = format!("{index}:{host}");
                webhooks.push(Webhook { url: raw.url.clone(), sink, events, format: raw.format, secret });
            }
        }
        NotifyConfig { webhooks, coalesce_window: self.coalesce_window.duration() }
    }
}

/// The host of an `http://` or `https://` URL, or why it is not one.
fn webhook_host(url: &str) -> Result<String, String> {
    let expected = "expected an http:// or https:// URL";
    let uri: ureq::http::Uri = url.parse().map_err(|_| format!("{expected}, found something that is not a URL"))?;
    match uri.scheme_str() {
        Some("http" | "https") => {}
        _ => return Err(format!("{expected} (no other scheme)")),
    }
    match uri.host() {
        Some(host) if !host.is_empty() => Ok(host.to_owned()),
        _ => Err(format!("{expected} with a host")),
    }
}

impl RawNotify {
    /// The section as an operator should see it: secrets replaced.
    pub(super) fn redact(&mut self) {
        for hook in &mut self.webhooks {
            if hook.secret.is_some() {
                hook.secret = Some("<redacted>".to_owned());
            }
            // The URL's own credentials or token (Slack's are in the path) are secrets too.
            if let Ok(host) = webhook_host(&hook.url) {
                hook.url = format!("<redacted URL on {host}>");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_webhook_url_must_be_http_with_a_host() {
        assert_eq!(webhook_host("https://hooks.example.com/T0/B0/xyz").as_deref(), Ok("hooks.example.com"));
        assert_eq!(webhook_host("http://user:pw@127.0.0.1:9/x").as_deref(), Ok("127.0.0.1"));
        assert!(webhook_host("ftp://example.com/").is_err());
        assert!(webhook_host("not a url").is_err());
    }

    #[test]
    fn unknown_kinds_and_bad_urls_are_named_with_their_key() {
        let raw = RawNotify {
            webhooks: vec![RawWebhook {
                url: "gopher://x".into(),
                events: vec!["crashed".into(), "crashd".into()],
                ..RawWebhook::default()
            }],
            ..RawNotify::default()
        };
        let mut problems = Vec::new();
        let checked = raw.checked(&mut problems);
        assert!(checked.webhooks.is_empty());
        let keys: Vec<&str> = problems.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["notify.webhooks[0].url", "notify.webhooks[0].events[1]"]);
    }

    #[test]
    fn the_secret_is_never_shown() {
        let mut raw = RawNotify {
            webhooks: vec![RawWebhook {
                url: "https://hooks.example.com/token".into(),
                events: vec!["crashed".into()],
                secret: Some("s3cret".into()),
                ..RawWebhook::default()
            }],
            ..RawNotify::default()
        };
        let mut problems = Vec::new();
        let checked = raw.checked(&mut problems);
        assert!(!format!("{checked:?}").contains("s3cret"));
        raw.redact();
        let shown = serde_json::to_string(&raw).expect("plain data");
        assert!(!shown.contains("s3cret") && !shown.contains("token"), "{shown}");
    }
}
