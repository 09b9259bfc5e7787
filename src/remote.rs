//! `rosey reload [NAME]`: ask the running bot, through its API, to re-read its config
//! (`POST /api/reload`) or to hot-reload one plugin (`POST /api/plugin/NAME/reload`), and print
//! what it did. The bot is found at `--url` ([`BotUrl`]) or else where the config says its
//! dashboard listens (a wildcard address means this machine); the credentials are the URL's,
//! or else those of `dashboard.auth`.

mod url;

use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::Deserialize;
use serde::de::DeserializeOwned;

use ureq::tls::{Certificate, PemItem, RootCerts, TlsConfig, parse_pem};

use crate::config::{BasicAuth, DashboardConfig, Password};
use crate::control::text::{ActionSummary, ConfigSummary};
use crate::control::{Action, ActionOutcome};
use crate::display::host_port;
use crate::plugins::spec::PluginName;
pub use url::BotUrl;

/// What to reload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReloadTarget {
    /// The config file and environment, as SIGHUP does.
    Config,
    Plugin(PluginName),
}

/// Why `rosey reload` did not reload. (`main` puts `error: ` in front.)
#[derive(Debug, thiserror::Error)]
pub enum RemoteError {
    #[error(
        "the dashboard is disabled (dashboard.enabled = false), and rosey reload asks the bot through it; \
         send the bot SIGHUP instead (kill -HUP PID)"
    )]
    DashboardDisabled,
    #[error("cannot reach the bot at {url}: {reason}; {}", .found_by.hint())]
    Unreachable { url: String, reason: String, found_by: FoundBy },
    #[error("the bot refused (HTTP {status}): {message}")]
    Refused { status: u16, message: String },
    #[error("the bot refused the new config; nothing was changed:\n{}", .problems.join("\n"))]
    InvalidConfig { problems: Vec<String> },
    #[error("not everything took effect (see above)")]
    NotAllDone,
    #[error("the bot at {url} answered what is not a report: {body}")]
    BadAnswer { url: String, body: String },
    #[error("--ca-file {path}: {reason}")]
    CaFile { path: String, reason: String },
}

/// Where the address of the bot came from, for the hints of the messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FoundBy {
    Config,
    UrlOption,
}

impl FoundBy {
    fn hint(self) -> &'static str {
        match self {
            FoundBy::Config => "is it running with this config?",
            FoundBy::UrlOption => "is it running, and is --url its dashboard's address?",
        }
    }
}

/// The bot to ask: where, and with which credentials.
struct Bot {
    base: String,
    auth: Option<BasicAuth>,
    found_by: FoundBy,
    /// What a 401 says: whose credentials the bot did not take.
    wrong_credentials: &'static str,
}

impl Bot {
    /// The bot at `url` if given, else the one the config describes.
    fn find(dashboard: &DashboardConfig, url: Option<&BotUrl>) -> Result<Bot, RemoteError> {
        // A hash in the config cannot be sent: the password must come with --url.
        let from_config = match &dashboard.auth {
            Some(login) if !login.secret.is_plain() => {
                "dashboard.auth in this config holds a password hash, not the password: give the credentials in \
                 --url (http://USER:PASSWORD@HOST:PORT/)"
            }
            _ => "dashboard.auth in this config is not what the running bot has",
        };
        let config_auth = dashboard.auth.as_ref().and_then(|login| match &login.secret {
            Password::Plain(password) => {
                Some(BasicAuth { username: login.username.clone(), password: password.clone() })
            }
            Password::Argon2(_) | Password::Bcrypt(_) => None,
        });
        match url {
            Some(url) => Ok(Bot {
                base: url.base().to_owned(),
                auth: url.auth().cloned().or(config_auth),
                found_by: FoundBy::UrlOption,
                wrong_credentials: match url.auth() {
                    Some(_) => "the credentials in --url are not what the running bot has",
                    None => from_config,
                },
            }),
            None if !dashboard.enabled => Err(RemoteError::DashboardDisabled),
            None => Ok(Bot {
                base: local_url(dashboard),
                auth: config_auth,
                found_by: FoundBy::Config,
                wrong_credentials: from_config,
            }),
        }
    }
}

/// Where the dashboard of a bot with this config is reached from this machine:
/// `http://127.0.0.1:8080/` for `0.0.0.0:8080`, `http://[::1]:8080/` for `:::8080`.
pub fn local_url(dashboard: &DashboardConfig) -> String {
    let host = dashboard.host.trim_start_matches('[').trim_end_matches(']');
    // Listening on every address includes loopback, which is always reachable from here.
    let host = match host.parse::<IpAddr>() {
        Ok(IpAddr::V4(ip)) if ip.is_unspecified() => "127.0.0.1",
        Ok(IpAddr::V6(ip)) if ip.is_unspecified() => "::1",
        _ => host,
    };
    let scheme = if dashboard.tls.is_some() { "https" } else { "http" };
    format!("{scheme}://{}/", host_port(host, dashboard.port))
}

/// Ask the bot (at `url`, or where `dashboard` says), print the outcome on stdout one line per
/// change.
pub fn reload(
    dashboard: &DashboardConfig,
    url: Option<&BotUrl>,
    target: &ReloadTarget,
    timeout: Duration,
    ca_file: Option<&Path>,
) -> Result<(), RemoteError> {
    let bot = Bot::find(dashboard, url)?;
    let tls = tls_config(ca_file)?;
    let url = match target {
        ReloadTarget::Config => format!("{}api/reload", bot.base),
        ReloadTarget::Plugin(name) => format!("{}api/plugin/{name}/reload", bot.base),
    };
    let answer = post(&url, &bot, timeout, tls)?;
    if answer.status != 200 {
        return Err(refusal(answer.status, &answer.body, bot.wrong_credentials));
    }
    let summary = match target {
        ReloadTarget::Config => {
            read::<ConfigAnswer>(&answer.body).map(|report| (report.summary().lines(), report.summary().succeeded()))
        }
        ReloadTarget::Plugin(_) => read::<ActionAnswer>(&answer.body)
            .map(|report| (vec![report.summary().line()], report.summary().succeeded())),
    };
    let Some((lines, succeeded)) = summary else { return Err(RemoteError::BadAnswer { url, body: answer.body }) };
    for line in lines {
        println!("{line}");
    }
    if succeeded { Ok(()) } else { Err(RemoteError::NotAllDone) }
}

struct Answer {
    status: u16,
    body: String,
}

/// How an https bot's certificate is checked: against the CA certificates of `ca_file` (a
/// self-signed or private CA), or else the built-in public roots.
fn tls_config(ca_file: Option<&Path>) -> Result<TlsConfig, RemoteError> {
    let Some(path) = ca_file else { return Ok(TlsConfig::default()) };
    let failed = |reason: String| RemoteError::CaFile { path: path.display().to_string(), reason };
    let pem = std::fs::read(path).map_err(|e| failed(e.to_string()))?;
    let certs: Vec<Certificate<'static>> = parse_pem(&pem)
        .filter_map(|item| match item {
            Ok(PemItem::Certificate(cert)) => Some(cert),
            _ => None,
        })
        .collect();
    if certs.is_empty() {
        return Err(failed("no CERTIFICATE block in the file".into()));
    }
    Ok(TlsConfig::builder().root_certs(RootCerts::new_with_certs(&certs)).build())
}

fn post(url: &str, bot: &Bot, timeout: Duration, tls: TlsConfig) -> Result<Answer, RemoteError> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .tls_config(tls)
        .timeout_connect(Some(Duration::from_secs(5)))
        .timeout_global(Some(timeout))
        .build()
        .into();
    let mut request = agent.post(url);
    if let Some(auth) = &bot.auth {
        let token = BASE64.encode(format!("{}:{}", auth.username, auth.password));
        request = request.header("Authorization", format!("Basic {token}"));
    }
    let unreachable = |e: ureq::Error| {
        let reason = match e {
            ureq::Error::Timeout(_) => {
                format!(
                    "no answer within {} s (an action may still be under way; see the dashboard)",
                    timeout.as_secs()
                )
            }
            other => other.to_string(),
        };
        RemoteError::Unreachable { url: url.to_owned(), reason, found_by: bot.found_by }
    };
    let mut response = request.send_empty().map_err(unreachable)?;
    let status = response.status().as_u16();
    let body = response.body_mut().read_to_string().map_err(unreachable)?;
    Ok(Answer { status, body })
}

/// The bot's refusal; `wrong_credentials` is what a 401 adds.
fn refusal(status: u16, body: &str, wrong_credentials: &str) -> RemoteError {
    let refused = read::<RefusalAnswer>(body).unwrap_or_default();
    if let Some(problems) = refused.problems {
        return RemoteError::InvalidConfig { problems };
    }
    let mut message = refused.error.unwrap_or_else(|| body.trim().to_owned());
    if status == 401 {
        message.push_str(&format!(" ({wrong_credentials})"));
    }
    RemoteError::Refused { status, message }
}

/// `body` as the shape the API sends, if it is that.
fn read<T: DeserializeOwned>(body: &str) -> Option<T> {
    serde_json::from_str(body).ok()
}

/// A refusal as the API sends it: `error` in words, and `problems` when the config is invalid.
#[derive(Debug, Default, Deserialize)]
struct RefusalAnswer {
    error: Option<String>,
    problems: Option<Vec<String>>,
}

/// An `ActionReport` as the API sends it, which [`ActionSummary`] words.
#[derive(Debug, Deserialize)]
struct ActionAnswer {
    plugin: String,
    action: Action,
    outcome: ActionOutcome,
    from_version: Option<String>,
    to_version: Option<String>,
    duration_seconds: Option<f64>,
    reason: Option<String>,
}

impl ActionAnswer {
    fn summary(&self) -> ActionSummary<'_> {
        ActionSummary {
            plugin: &self.plugin,
            action: self.action,
            outcome: self.outcome,
            from_version: self.from_version.as_deref(),
            to_version: self.to_version.as_deref(),
            duration: seconds(self.duration_seconds),
            reason: self.reason.as_deref(),
        }
    }
}

/// A `ConfigReport` as the API sends it.
#[derive(Debug, Deserialize)]
struct ConfigAnswer {
    #[serde(default)]
    started: Vec<String>,
    #[serde(default)]
    removed: Vec<String>,
    reloaded: Vec<ActionAnswer>,
    #[serde(default)]
    unchanged: Vec<String>,
    #[serde(default)]
    needs_restart: Vec<String>,
    duration_seconds: Option<f64>,
}

impl ConfigAnswer {
    fn summary(&self) -> ConfigSummary<'_> {
        ConfigSummary {
            started: names(&self.started),
            removed: names(&self.removed),
            reloaded: self.reloaded.iter().map(ActionAnswer::summary).collect(),
            unchanged: names(&self.unchanged),
            needs_restart: names(&self.needs_restart),
            duration: seconds(self.duration_seconds),
        }
    }
}

fn names(list: &[String]) -> Vec<&str> {
    list.iter().map(String::as_str).collect()
}

/// A `duration_seconds`; one that is absent or no duration reads as zero.
fn seconds(value: Option<f64>) -> Duration {
    value.and_then(|secs| Duration::try_from_secs_f64(secs).ok()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn dashboard(host: &str) -> DashboardConfig {
        DashboardConfig {
            enabled: true,
            host: host.into(),
            port: 8080,
            warn_cpu_percent: 80.0,
            warn_memory_mb: 500.0,
            warn_response_ms: 1000.0,
            max_sse_clients: 100,
            auth: None,
            users: Vec::new(),
            trusted_proxies: Vec::new(),
            tls: None,
        }
    }

    #[test]
    fn wildcard_addresses_mean_this_machine() {
        assert_eq!(local_url(&dashboard("0.0.0.0")), "http://127.0.0.1:8080/");
        assert_eq!(local_url(&dashboard("::")), "http://[::1]:8080/");
        assert_eq!(local_url(&dashboard("[::]")), "http://[::1]:8080/");
        assert_eq!(local_url(&dashboard("::1")), "http://[::1]:8080/");
        assert_eq!(local_url(&dashboard("bot.example")), "http://bot.example:8080/");
    }

    #[test]
    fn a_config_report_reads_as_the_chat_reads_it() {
        let report = json!({
            "started": ["echo"], "removed": [], "unchanged": ["8ball"], "needs_restart": [],
            "reloaded": [{ "plugin": "dice", "action": "reload", "outcome": "rolled_back", "from_version": "1",
                           "to_version": null, "duration_seconds": 2.5, "reason": "exited with code 3 before hello" }],
            "duration_seconds": 2.75,
        });
        let report: ConfigAnswer = serde_json::from_value(report).expect("a report");
        let summary = report.summary();
        assert!(!summary.succeeded(), "a rollback is not success");
        assert_eq!(
            summary.lines(),
            [
                "config reloaded in 2.75 s",
                "started echo (new in the config)",
                "reload of dice rolled back after 2.50 s (exited with code 3 before hello); 1 keeps serving",
                "unchanged: 8ball",
            ]
        );
    }

    #[test]
    fn refusals_carry_the_problems_or_the_message() {
        let invalid =
            json!({ "error": "the config is invalid; nothing was changed", "problems": ["a: bad", "b: worse"] });
        assert!(
            matches!(refusal(422, &invalid.to_string(), ""), RemoteError::InvalidConfig { problems } if problems == ["a: bad", "b: worse"])
        );
        let busy = json!({ "error": "a config reload is already in progress" });
        assert_eq!(
            refusal(409, &busy.to_string(), "").to_string(),
            "the bot refused (HTTP 409): a config reload is already in progress"
        );
    }
}
