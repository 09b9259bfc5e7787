//! The command line: `rosey [--config PATH] [run | config | reload [--url URL] [NAME] | hash-password |
//! plugin NAME]`.

pub mod hash_password;

use std::ffi::OsStr;
use std::path::PathBuf;

use clap::builder::TypedValueParser;
use clap::error::ErrorKind;
use clap::parser::ValueSource;
use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

use crate::config::{ConfigFile, NamedBy};
use crate::plugins::spec::{InvalidPluginName, PluginName};
use crate::remote::BotUrl;

/// Shown after the options: the environment the bot reads.
const ENVIRONMENT: &str = "\
Environment:
  ROSEY_<SECTION>__<KEY>  override one config key, e.g. ROSEY_DASHBOARD__PORT=9090,
                          ROSEY_METRICS__POLL_INTERVAL=1 (see `rosey config`)
  ROSEY_CONFIG            config file, as --config
  ROSEY_LOG               log level or filter (default: info)";

/// Rosey: a chat-bot host with supervised subprocess plugins and a live metrics dashboard.
///
/// Chat comes from standard input, one message per line (`alice: !roll 2d6`); replies go to
/// standard output; logs go to standard error. Exit codes: 0 ok, 1 runtime failure (such as
/// the dashboard port being in use), 2 configuration or usage error.
#[derive(Debug, Parser)]
#[command(name = "rosey", version, about, long_about, after_help = ENVIRONMENT)]
pub struct Cli {
    /// Config file [default: rosey.json in the working directory, if present]
    #[arg(long, short = 'c', global = true, env = "ROSEY_CONFIG", value_name = "PATH")]
    pub config: Option<PathBuf>,

    /// Who gave `config`; clap knows, and a message about a missing file says which to fix.
    #[arg(skip)]
    pub config_named_by: Option<NamedBy>,

    #[command(subcommand)]
    pub command: Option<Command>,
}

impl Cli {
    /// Parse the process's arguments (exiting with usage on a mistake), noting where the
    /// config path came from.
    pub fn from_env_and_args() -> Cli {
        let matches = Cli::command().get_matches();
        let mut cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
        cli.config_named_by = match matches.value_source("config") {
            Some(ValueSource::EnvVariable) => Some(NamedBy::EnvVar),
            Some(_) => Some(NamedBy::Flag),
            None => None,
        };
        cli
    }

    /// The config file to read.
    pub fn config_file(&self) -> ConfigFile {
        match &self.config {
            Some(path) => {
                ConfigFile::Named { path: path.clone(), named_by: self.config_named_by.unwrap_or(NamedBy::Flag) }
            }
            None => ConfigFile::Default,
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the bot, its plugins and its dashboard (the default).
    Run {
        /// Stop (cleanly, exit code 0) once standard input ends and its replies are printed,
        /// instead of running on as a service: for scripts and load tests.
        #[arg(long)]
        exit_at_eof: bool,
    },
    /// Print the effective configuration (defaults < file < ROSEY_* environment) as JSON.
    Config,
    /// Ask the running bot to re-read its config file (as SIGHUP does), or to hot-reload one
    /// plugin; print what changed. The bot is reached through its dashboard API, at --url or
    /// else at the address of this config (with this shell's ROSEY_* overrides), with the
    /// credentials of --url or else of this config (dashboard.auth). Exit codes: 0 done, 1
    /// refused, rolled back or not reachable, 2 configuration or usage error.
    Reload {
        /// Reload only this plugin (blue-green: its new process starts beside the old one)
        #[arg(value_parser = plugin_name)]
        plugin: Option<PluginName>,
        /// The bot's dashboard, e.g. http://127.0.0.1:8080/, instead of dashboard.host and
        /// dashboard.port of the config; http://USER:PASSWORD@HOST:PORT/ also replaces
        /// dashboard.auth (but shows the password in the process list)
        #[arg(long, value_name = "URL", value_parser = BotUrlParser)]
        url: Option<BotUrl>,
        /// How long to wait for the bot's answer, in seconds
        #[arg(long, default_value_t = 120, value_name = "SECONDS")]
        timeout: u64,
        /// For an https dashboard: trust the CA certificates in this PEM file (a self-signed
        /// or private CA) instead of the built-in public ones
        #[arg(long, value_name = "PATH")]
        ca_file: Option<PathBuf>,
    },
    /// Read a password (without echo, asked twice, from a terminal; else the first line of
    /// standard input) and print its argon2id hash, for dashboard.auth.password_hash.
    HashPassword,
    /// Run a built-in plugin on stdin/stdout (this is how the bot starts its built-ins).
    Plugin {
        /// dice-roller or 8ball
        name: String,
    },
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
