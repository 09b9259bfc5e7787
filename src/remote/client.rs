//! The connection to the running bot that every control command shares: where the bot is
//! (`--url`, or where the config says its dashboard listens; a wildcard address means this
//! machine), which credentials to send (the URL's, or else those of `dashboard.auth`), how an
//! https bot's certificate is checked (`--ca-file`, or the built-in roots), and how a refusal
//! reads. Requests carry no `Origin` or `Sec-Fetch-Site`, so the action routes' cross-site
//! check sees what it is: a client that is not a browser.

use std::io::BufReader;
use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use ureq::tls::{Certificate, PemItem, RootCerts, TlsConfig, parse_pem};

use super::RemoteError;
use super::sse::SseReader;
use super::url::BotUrl;
use crate::config::{BasicAuth, DashboardConfig, Password};
use crate::display::host_port;

/// The longest answer read whole (`/api/metrics` at 1,000 plugins is about 300 KB).
const MAX_ANSWER: u64 = 64 * 1024 * 1024;

/// Where the address of the bot came from, for the hints of the messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FoundBy {
    Config,
    UrlOption,
}

impl FoundBy {
    pub fn hint(self) -> &'static str {
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

/// How to reach the bot: from the command line's `--url`, `--timeout` and `--ca-file`.
pub struct Reach<'a> {
    pub url: Option<&'a BotUrl>,
    /// How long to wait for an answer (for a stream: for it to start).
    pub timeout: Duration,
    pub ca_file: Option<&'a Path>,
}

/// A connection to the running bot, kept alive from one request to the next.
pub struct Client {
    bot: Bot,
    agent: ureq::Agent,
    /// For streams, which last as long as the operator watches: no overall deadline.
    streaming: ureq::Agent,
    timeout: Duration,
}

impl Client {
    pub fn new(dashboard: &DashboardConfig, reach: &Reach<'_>) -> Result<Client, RemoteError> {
        let bot = Bot::find(dashboard, reach.url)?;
        let tls = tls_config(reach.ca_file)?;
        let agent = |overall: Option<Duration>| -> ureq::Agent {
            ureq::Agent::config_builder()
                .http_status_as_error(false)
                .tls_config(tls.clone())
                .timeout_connect(Some(Duration::from_secs(5)))
                .timeout_recv_response(Some(reach.timeout))
                .timeout_global(overall)
                .build()
                .into()
        };
        Ok(Client { agent: agent(Some(reach.timeout)), streaming: agent(None), bot, timeout: reach.timeout })
    }

    /// The full URL of `path` (which has no leading `/`), as messages name it.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.bot.base)
    }

    /// `GET path`: the body of a 200 answer, or why there is none.
    pub fn get(&self, path: &str) -> Result<String, RemoteError> {
        self.exchange(path, self.authorised(self.agent.get(self.url(path))).call())
    }

    /// `POST path` with no body: the body of a 200 answer, or why there is none.
    pub fn post(&self, path: &str) -> Result<String, RemoteError> {
        self.exchange(path, self.authorised(self.agent.post(self.url(path))).send_empty())
    }

    /// `GET path` as a server-sent event stream, read as it comes.
    pub fn stream(&self, path: &str) -> Result<SseReader<impl std::io::BufRead>, RemoteError> {
        let url = self.url(path);
        let request = self.authorised(self.streaming.get(&url)).header("Accept", "text/event-stream");
        let response = request.call().map_err(|e| self.unreachable(&url, e))?;
        let status = response.status().as_u16();
        let mut body = response.into_body();
        if status != 200 {
            let text = body.with_config().limit(MAX_ANSWER).read_to_string().unwrap_or_default();
            return Err(self.refusal(&url, status, &text));
        }
        Ok(SseReader::new(BufReader::new(body.into_reader())))
    }

    fn authorised<B>(&self, request: ureq::RequestBuilder<B>) -> ureq::RequestBuilder<B> {
        match &self.bot.auth {
            Some(auth) => {
                let token = BASE64.encode(format!("{}:{}", auth.username, auth.password));
                request.header("Authorization", format!("Basic {token}"))
            }
            None => request,
        }
    }

    fn exchange(
        &self,
        path: &str,
        sent: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    ) -> Result<String, RemoteError> {
        let url = self.url(path);
        let mut response = sent.map_err(|e| self.unreachable(&url, e))?;
        let status = response.status().as_u16();
        let body = response
            .body_mut()
            .with_config()
            .limit(MAX_ANSWER)
            .read_to_string()
            .map_err(|e| self.unreachable(&url, e))?;
        if status == 200 { Ok(body) } else { Err(self.refusal(&url, status, &body)) }
    }

    fn unreachable(&self, url: &str, e: ureq::Error) -> RemoteError {
        let reason = match e {
            ureq::Error::Timeout(_) => format!(
                "no answer within {} s (an action may still be under way; see the dashboard)",
                self.timeout.as_secs()
            ),
            other => other.to_string(),
        };
        RemoteError::Unreachable { url: url.to_owned(), reason, found_by: self.bot.found_by }
    }

    fn refusal(&self, url: &str, status: u16, body: &str) -> RemoteError {
        refusal(url, status, body, self.bot.wrong_credentials)
    }
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

/// The bot's refusal of `url`; `wrong_credentials` is what a 401 adds.
fn refusal(url: &str, status: u16, body: &str, wrong_credentials: &str) -> RemoteError {
    let refused = read::<RefusalAnswer>(body).unwrap_or_default();
    if let Some(problems) = refused.problems {
        return RemoteError::InvalidConfig { problems };
    }
    // The bot names what it does not have (`Plugin x not found`); a bare 404 is a route this
    // bot does not serve.
    if status == 404 && refused.error.is_none() {
        return RemoteError::NoSuchRoute { url: url.to_owned() };
    }
    let mut message = refused.error.unwrap_or_else(|| body.trim().to_owned());
    if status == 401 {
        message.push_str(&format!(" ({wrong_credentials})"));
    }
    RemoteError::Refused { status, message }
}

/// `body` as the shape the API sends, if it is that.
pub fn read<T: DeserializeOwned>(body: &str) -> Option<T> {
    serde_json::from_str(body).ok()
}

/// A refusal as the API sends it: `error` in words, and `problems` when the config is invalid.
#[derive(Debug, Default, Deserialize)]
struct RefusalAnswer {
    error: Option<String>,
    problems: Option<Vec<String>>,
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
    fn refusals_carry_the_problems_or_the_message() {
        let url = "http://127.0.0.1:8080/api/reload";
        let invalid =
            json!({ "error": "the config is invalid; nothing was changed", "problems": ["a: bad", "b: worse"] });
        assert!(
            matches!(refusal(url, 422, &invalid.to_string(), ""), RemoteError::InvalidConfig { problems } if problems == ["a: bad", "b: worse"])
        );
        let busy = json!({ "error": "a config reload is already in progress" });
        assert_eq!(
            refusal(url, 409, &busy.to_string(), "").to_string(),
            "the bot refused (HTTP 409): a config reload is already in progress"
        );
        let unknown = json!({ "error": "Plugin nope not found" });
        assert_eq!(
            refusal(url, 404, &unknown.to_string(), "").to_string(),
            "the bot refused (HTTP 404): Plugin nope not found"
        );
        assert!(matches!(refusal(url, 404, "", ""), RemoteError::NoSuchRoute { .. }));
        assert_eq!(
            refusal(url, 401, "authentication required", "the credentials in --url are wrong").to_string(),
            "the bot refused (HTTP 401): authentication required (the credentials in --url are wrong)"
        );
    }
}
