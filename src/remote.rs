//! The commands that talk to the running bot through its dashboard API, like `supervisorctl`
//! and `pm2` do with theirs: `rosey status [NAME]`, `rosey start|stop|restart NAME`,
//! `rosey reload [NAME]` (the config, or one plugin), `rosey logs NAME` and `rosey events`.
//! They share one [`client::Client`] (address, credentials, TLS, refusals in words) and one
//! set of exit codes: 0 done, 1 refused or not reachable, 2 configuration or usage error.

mod actions;
mod client;
mod feed;
mod sse;
mod status;
mod terminal;
mod url;

use crate::cli::ControlCommand;
use crate::config::DashboardConfig;
use crate::control::Action;
use actions::Request;
pub use client::{FoundBy, local_url};
pub use url::BotUrl;

/// Why a control command did not do what was asked. (`main` puts `error: ` in front.)
#[derive(Debug, thiserror::Error)]
pub enum RemoteError {
    #[error(
        "the dashboard is disabled (dashboard.enabled = false), and rosey asks the bot through it; \
         enable it, or send the bot SIGHUP to reload its config (kill -HUP PID)"
    )]
    DashboardDisabled,
    #[error("cannot reach the bot at {url}: {reason}; {}", .found_by.hint())]
    Unreachable { url: String, reason: String, found_by: FoundBy },
    #[error("the bot refused (HTTP {status}): {message}")]
    Refused { status: u16, message: String },
    #[error("the bot at {url} answered 404 Not Found: it may run an older rosey without this route (rosey --version)")]
    NoSuchRoute { url: String },
    #[error("the bot refused the new config; nothing was changed:\n{}", .problems.join("\n"))]
    InvalidConfig { problems: Vec<String> },
    #[error("not everything took effect (see above)")]
    NotAllDone,
    #[error("the bot at {url} answered what is not a report: {body}")]
    BadAnswer { url: String, body: String },
    #[error("--ca-file {path}: {reason}")]
    CaFile { path: String, reason: String },
    #[error("the stream {url} ended: {reason}")]
    StreamEnded { url: String, reason: String },
    #[error("cannot write to standard output: {0}")]
    Output(std::io::Error),
    /// Standard output was closed (`rosey logs -f | head`): not a failure.
    #[error("standard output was closed")]
    OutputClosed,
}

impl RemoteError {
    /// 2 for what the command line or the config got wrong, 1 for everything else.
    pub fn exit_code(&self) -> u8 {
        match self {
            RemoteError::DashboardDisabled => 2,
            _ => 1,
        }
    }
}

/// Carry out `command` against the bot this config (or `--url`) names.
pub fn run(dashboard: &DashboardConfig, command: &ControlCommand) -> Result<(), RemoteError> {
    let options = command.bot();
    let reach =
        client::Reach { url: options.url.as_ref(), timeout: command.timeout(), ca_file: options.ca_file.as_deref() };
    let client = client::Client::new(dashboard, &reach)?;
    let done = match command {
        ControlCommand::Status { plugin, json, .. } => {
            let request = status::StatusRequest { plugin: plugin.as_ref(), json: *json };
            status::show(&client, &request).and_then(|text| emit(&text))
        }
        ControlCommand::Reload { plugin: None, .. } => actions::ask(&client, &Request::ReloadConfig),
        ControlCommand::Reload { plugin: Some(name), .. } => {
            actions::ask(&client, &Request::Plugin(name.clone(), Action::Reload))
        }
        ControlCommand::Start(a) => actions::ask(&client, &Request::Plugin(a.plugin.clone(), Action::Start)),
        ControlCommand::Stop(a) => actions::ask(&client, &Request::Plugin(a.plugin.clone(), Action::Stop)),
        ControlCommand::Restart(a) => actions::ask(&client, &Request::Plugin(a.plugin.clone(), Action::Restart)),
        ControlCommand::Logs { plugin, lines, follow, .. } => {
            feed::logs(&client, &feed::LogsRequest { plugin, tail: *lines, follow: *follow })
        }
        ControlCommand::Events { plugin, kind, follow, .. } => {
            let request = feed::EventsRequest { plugin: plugin.as_ref(), kinds: kind.as_deref(), follow: *follow };
            feed::events(&client, &request)
        }
    };
    match done {
        Err(RemoteError::OutputClosed) => Ok(()),
        other => other,
    }
}

/// Print `text` on standard output at once.
fn emit(text: &str) -> Result<(), RemoteError> {
    terminal::print(text).map_err(|closed| match closed {
        terminal::Closed::Quietly => RemoteError::OutputClosed,
        terminal::Closed::Failed(e) => RemoteError::Output(e),
    })
}
