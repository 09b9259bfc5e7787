//! The commands that talk to the running bot through its dashboard API, like `supervisorctl`
//! or `pm2`: `status`, `start`, `stop`, `restart`, `reload`, `logs`, `events`. Each takes the
//! same options for finding the bot ([`BotOptions`]); `src/remote.rs` carries them out.

use std::ffi::OsStr;
use std::path::PathBuf;
use std::time::Duration;

use clap::builder::TypedValueParser;
use clap::error::ErrorKind;
use clap::{Args, Subcommand};

use crate::plugins::spec::{InvalidPluginName, PluginName};
use crate::remote::BotUrl;

/// How long an action may take by default: a reload waits for the new process's hello and
/// the old one's drain.
const ACTION_TIMEOUT: Duration = Duration::from_secs(120);
/// How long a question (status, a log, the events) waits for its answer by default.
const QUERY_TIMEOUT: Duration = Duration::from_secs(10);

/// Shown after each control command's options.
const EXIT_CODES: &str = "\
Exit codes: 0 done; 1 the bot refused (unknown plugin, actions disabled, wrong credentials,
a reload rolled back, …) or cannot be reached; 2 configuration or usage error.";

#[derive(Debug, Subcommand)]
pub enum ControlCommand {
    /// Show every plugin (or one) as a table: name, state, pid, uptime, CPU, memory,
    /// restarts, version.
    #[command(after_help = EXIT_CODES)]
    Status {
        /// Only this plugin
        #[arg(value_parser = plugin_name, value_name = "NAME")]
        plugin: Option<PluginName>,
        /// Print the API's JSON instead (/api/metrics, or /api/plugin/NAME with a name)
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        bot: BotOptions,
    },
    /// Start a STOPPED or FAILED plugin.
    #[command(after_help = EXIT_CODES)]
    Start(PluginAction),
    /// Stop a plugin and keep it STOPPED (no automatic restart) until started.
    #[command(after_help = EXIT_CODES)]
    Stop(PluginAction),
    /// Stop a plugin, then start it again (no overlap).
    #[command(after_help = EXIT_CODES)]
    Restart(PluginAction),
    /// Ask the running bot to re-read its config file (as SIGHUP does), or to hot-reload one
    /// plugin (blue-green: its new process starts beside the old one, which keeps serving if
    /// the new one fails); print what changed.
    #[command(after_help = EXIT_CODES)]
    Reload {
        /// Reload only this plugin
        #[arg(value_parser = plugin_name, value_name = "NAME")]
        plugin: Option<PluginName>,
        #[command(flatten)]
        bot: BotOptions,
    },
    /// Print a plugin's newest log lines (its stderr, and stdout lines that are not protocol
    /// messages), oldest first; with -f, keep printing new ones until Ctrl-C.
    #[command(after_help = EXIT_CODES)]
    Logs {
        /// The plugin
        #[arg(value_parser = plugin_name, value_name = "NAME")]
        plugin: PluginName,
        /// How many of the newest lines to print first
        #[arg(short = 'n', long = "lines", default_value_t = 20, value_name = "N")]
        lines: u32,
        /// Keep printing lines as the plugin writes them, until Ctrl-C
        #[arg(short, long)]
        follow: bool,
        #[command(flatten)]
        bot: BotOptions,
    },
    /// Print the bot's timeline: crashes, restarts, reloads, actions and who asked, config
    /// reloads, …; with -f, keep printing new events until Ctrl-C.
    #[command(after_help = EXIT_CODES)]
    Events {
        /// Only the events of this plugin
        #[arg(long, value_parser = plugin_name, value_name = "NAME")]
        plugin: Option<PluginName>,
        /// Only these kinds of event, comma-separated (e.g. crashed,failed)
        #[arg(long, value_name = "KINDS")]
        kind: Option<String>,
        /// Keep printing events as they happen, until Ctrl-C
        #[arg(short, long)]
        follow: bool,
        #[command(flatten)]
        bot: BotOptions,
    },
}

impl ControlCommand {
    pub fn bot(&self) -> &BotOptions {
        match self {
            ControlCommand::Status { bot, .. }
            | ControlCommand::Reload { bot, .. }
            | ControlCommand::Logs { bot, .. }
            | ControlCommand::Events { bot, .. } => bot,
            ControlCommand::Start(action) | ControlCommand::Stop(action) | ControlCommand::Restart(action) => {
                &action.bot
            }
        }
    }

    /// How long to wait for the bot's answer: `--timeout`, or the command's default.
    pub fn timeout(&self) -> Duration {
        let default = match self {
            ControlCommand::Start(_)
            | ControlCommand::Stop(_)
            | ControlCommand::Restart(_)
            | ControlCommand::Reload { .. } => ACTION_TIMEOUT,
            ControlCommand::Status { .. } | ControlCommand::Logs { .. } | ControlCommand::Events { .. } => {
                QUERY_TIMEOUT
            }
        };
        self.bot().timeout.map_or(default, Duration::from_secs)
    }
}

/// `start`, `stop` or `restart` of one plugin.
#[derive(Debug, Args)]
pub struct PluginAction {
    /// The plugin
    #[arg(value_parser = plugin_name, value_name = "NAME")]
    pub plugin: PluginName,
    #[command(flatten)]
    pub bot: BotOptions,
}

/// Where the running bot is and how to talk to it. Without --url: at the address of the
/// config (with this shell's ROSEY_* overrides; a wildcard host means this machine) with the
/// credentials of its dashboard.auth.
#[derive(Debug, Args)]
pub struct BotOptions {
    /// The bot's dashboard, e.g. http://127.0.0.1:8080/, instead of dashboard.host and
    /// dashboard.port of the config; http://USER:PASSWORD@HOST:PORT/ also replaces
    /// dashboard.auth (but shows the password in the process list)
    #[arg(long, value_name = "URL", value_parser = BotUrlParser)]
    pub url: Option<BotUrl>,
    /// How long to wait for the bot's answer, in seconds [default: 120 for start, stop,
    /// restart and reload; 10 for status, logs and events (with -f: for the stream to start)]
    #[arg(long, value_name = "SECONDS")]
    pub timeout: Option<u64>,
    /// For an https dashboard: trust the CA certificates in this PEM file (a self-signed or
    /// private CA) instead of the built-in public ones
    #[arg(long, value_name = "PATH")]
    pub ca_file: Option<PathBuf>,
}

fn plugin_name(text: &str) -> Result<PluginName, InvalidPluginName> {
    PluginName::new(text)
}

/// Reads `--url`. Its error is written in full here: clap's own would repeat the value as
/// given, and a URL may hold a password.
#[derive(Debug, Clone, Copy)]
struct BotUrlParser;

impl TypedValueParser for BotUrlParser {
    type Value = BotUrl;

    fn parse_ref(&self, cmd: &clap::Command, _: Option<&clap::Arg>, value: &OsStr) -> Result<BotUrl, clap::Error> {
        BotUrl::parse(&value.to_string_lossy())
            .map_err(|e| clap::Error::raw(ErrorKind::ValueValidation, format!("{e}\n")).with_cmd(cmd))
    }
}
