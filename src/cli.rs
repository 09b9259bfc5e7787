//! The command line: `rosey [--config PATH] [run | config | hash-password | plugin NAME]`, and
//! the commands that talk to the running bot (`status`, `start`, `stop`, `restart`, `reload`,
//! `logs`, `events`: [`control`]).

pub mod control;
pub mod hash_password;

use std::path::PathBuf;

use clap::parser::ValueSource;
use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

pub use self::control::ControlCommand;
use crate::config::{ConfigFile, NamedBy};

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
    // The running bot's controls: status, start, stop, restart, reload, logs, events.
    #[command(flatten)]
    Control(ControlCommand),
    /// Read a password (without echo, asked twice, from a terminal; else the first line of
    /// standard input) and print its argon2id hash, for dashboard.auth.password_hash.
    HashPassword,
    /// Run a built-in plugin on stdin/stdout (this is how the bot starts its built-ins).
    Plugin {
        /// dice-roller or 8ball
        name: String,
    },
}
