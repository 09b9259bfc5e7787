//! `rosey reload [NAME]`: ask the running bot, through its API, to re-read its config
//! (`POST /api/reload`) or to hot-reload one plugin (`POST /api/plugin/NAME/reload`), and print
//! what it did. The bot is found at `--url` ([`BotUrl`]) or else where the config says its
//! dashboard listens (a wildcard address means this machine); the credentials are the URL's,
//! or else those of `dashboard.auth`.

mod url;

use std::net::IpAddr;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::Value;

use crate::config::{BasicAuth, DashboardConfig};
use crate::control::text::{ActionSummary, ConfigSummary};
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

/// Why `rosey reload` did not reload.
#[derive(Debug, thiserror::Error)]
pub enum RemoteError {
    #[error(
        "error: the dashboard is disabled (dashboard.enabled = false), and rosey reload asks the bot through it; \
         send the bot SIGHUP instead (kill -HUP PID)"
    )]
    DashboardDisabled,
    #[error("error: cannot reach the bot at {url}: {reason}; {}", .found_by.hint())]
    Unreachable { url: String, reason: String, found_by: FoundBy },
    #[error("error: the bot refused (HTTP {status}): {message}")]
    Refused { status: u16, message: String },
    #[error("error: the bot refused the new config; nothing was changed:\n{}", .problems.join("\n"))]
    InvalidConfig { problems: Vec<String> },
    #[error("error: not everything took effect (see above)")]
    NotAllDone,
    #[error("error: the bot at {url} answered what is not a report: {body}")]
    BadAnswer { url: String, body: String },
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
struct Bot<'a> {
    base: String,
    auth: Option<&'a BasicAuth>,
    found_by: FoundBy,
    /// What a 401 says: whose credentials the bot did not take.
    wrong_credentials: &'static str,
}

impl<'a> Bot<'a> {
    /// The bot at `url` if given, else the one the config describes.
    fn find(dashboard: &'a DashboardConfig, url: Option<&'a BotUrl>) -> Result<Bot<'a>, RemoteError> {
        let from_config = "dashboard.auth in this config is not what the running bot has";
        match url {
            Some(url) => Ok(Bot {
                base: url.base().to_owned(),
                auth: url.auth().or(dashboard.auth.as_ref()),
                found_by: FoundBy::UrlOption,
                wrong_credentials: match url.auth() {
                    Some(_) => "the credentials in --url are not what the running bot has",
                    None => from_config,
                },
            }),
            None if !dashboard.enabled => Err(RemoteError::DashboardDisabled),
            None => Ok(Bot {
                base: local_url(dashboard),
                auth: dashboard.auth.as_ref(),
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
    format!("http://{}/", host_port(host, dashboard.port))
}

/// Ask the bot (at `url`, or where `dashboard` says), print the outcome on stdout one line per
/// change.
pub fn reload(
    dashboard: &DashboardConfig,
    url: Option<&BotUrl>,
    target: &ReloadTarget,
    timeout: Duration,
) -> Result<(), RemoteError> {
    let bot = Bot::find(dashboard, url)?;
    let url = match target {
        ReloadTarget::Config => format!("{}api/reload", bot.base),
        ReloadTarget::Plugin(name) => format!("{}api/plugin/{name}/reload", bot.base),
    };
    let answer = post(&url, &bot, timeout)?;
    let body: Value = serde_json::from_str(&answer.body).unwrap_or(Value::Null);
    if answer.status != 200 {
        return Err(refusal(answer.status, &body, &answer.body, bot.wrong_credentials));
    }
    let lines = match target {
        ReloadTarget::Config => config_summary(&body).map(|summary| (summary.lines(), summary.succeeded())),
        ReloadTarget::Plugin(_) => action_summary(&body).map(|summary| (vec![summary.line()], summary.succeeded())),
    };
    let Some((lines, succeeded)) = lines else { return Err(RemoteError::BadAnswer { url, body: answer.body }) };
    for line in lines {
        println!("{line}");
    }
    if succeeded { Ok(()) } else { Err(RemoteError::NotAllDone) }
}

struct Answer {
    status: u16,
    body: String,
}

fn post(url: &str, bot: &Bot, timeout: Duration) -> Result<Answer, RemoteError> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_connect(Some(Duration::from_secs(5)))
        .timeout_global(Some(timeout))
        .build()
        .into();
    let mut request = agent.post(url);
    if let Some(auth) = bot.auth {
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
fn refusal(status: u16, body: &Value, text: &str, wrong_credentials: &str) -> RemoteError {
    if let Some(problems) = body["problems"].as_array() {
        let problems = problems.iter().map(|p| p.as_str().map_or_else(|| p.to_string(), str::to_owned)).collect();
        return RemoteError::InvalidConfig { problems };
    }
    let mut message = body["error"].as_str().map_or_else(|| text.trim().to_owned(), str::to_owned);
    if status == 401 {
        message.push_str(&format!(" ({wrong_credentials})"));
    }
    RemoteError::Refused { status, message }
}

fn names(list: &Value) -> Vec<&str> {
    list.as_array().map(|items| items.iter().filter_map(Value::as_str).collect()).unwrap_or_default()
}

fn seconds(value: &Value) -> Duration {
    Duration::try_from_secs_f64(value.as_f64().unwrap_or(0.0)).unwrap_or_default()
}

/// An `ActionReport` as the API sends it.
fn action_summary(report: &Value) -> Option<ActionSummary<'_>> {
    Some(ActionSummary {
        plugin: report["plugin"].as_str()?,
        action: report["action"].as_str()?,
        outcome: report["outcome"].as_str()?,
        from_version: report["from_version"].as_str(),
        to_version: report["to_version"].as_str(),
        duration: seconds(&report["duration_seconds"]),
        reason: report["reason"].as_str(),
    })
}

/// A `ConfigReport` as the API sends it.
fn config_summary(report: &Value) -> Option<ConfigSummary<'_>> {
    let reloaded = report["reloaded"].as_array()?.iter().map(action_summary).collect::<Option<Vec<_>>>()?;
    Some(ConfigSummary {
        started: names(&report["started"]),
        removed: names(&report["removed"]),
        reloaded,
        unchanged: names(&report["unchanged"]),
        needs_restart: names(&report["needs_restart"]),
        duration: seconds(&report["duration_seconds"]),
    })
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
            max_sse_clients: 100,
            auth: None,
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
        let summary = config_summary(&report).expect("a report");
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
            matches!(refusal(422, &invalid, "", ""), RemoteError::InvalidConfig { problems } if problems == ["a: bad", "b: worse"])
        );
        let busy = json!({ "error": "a config reload is already in progress" });
        assert_eq!(
            refusal(409, &busy, "", "").to_string(),
            "error: the bot refused (HTTP 409): a config reload is already in progress"
        );
    }
}
