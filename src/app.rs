//! Start-up and shutdown: components start in data-flow order (plugins, collector, dashboard,
//! chat) and stop in reverse, each waited for before the next.

use tokio::signal::unix::{Signal, SignalKind, signal};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::cli::{Cli, Command};
use crate::config::{self, Config, ConfigError, ConfigFile};
use crate::control::{self, ConfigReloadError, Controls, Trigger};
use crate::dashboard::{self, Dashboard};
use crate::metrics::Collector;
use crate::plugins::builtin::{self, Builtin};
use crate::plugins::{Launcher, PluginHost};
use crate::{chat, logging};

/// Replies waiting to be printed before a plugin's further replies are dropped.
const REPLY_QUEUE: usize = 1024;

/// Why the program stopped with a failure.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Config(#[from] ConfigError),
    #[error("error: {0}")]
    Dashboard(#[from] dashboard::StartError),
    #[error("error: unknown built-in plugin \"{0}\" (expected dice-roller or 8ball)")]
    UnknownBuiltin(String),
    #[error("error: {context}: {source}")]
    Io { context: &'static str, source: std::io::Error },
}

impl Error {
    /// 2 for configuration and usage errors, 1 for failures at run time.
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Config(_) | Error::UnknownBuiltin(_) => 2,
            Error::Dashboard(_) | Error::Io { .. } => 1,
        }
    }
}

/// Everything `main` does after parsing the command line.
pub fn main(cli: Cli) -> Result<(), Error> {
    let file = cli.config_file();
    match cli.command.unwrap_or(Command::Run) {
        Command::Plugin { name } => {
            let builtin = Builtin::from_name(&name).ok_or(Error::UnknownBuiltin(name))?;
            builtin::run(builtin).map_err(|source| Error::Io { context: "plugin input/output", source })
        }
        Command::Config => {
            let loaded = config::load(&file)?;
            let json = serde_json::to_string_pretty(&loaded.raw.redacted()).unwrap_or_default();
            println!("{json}");
            Ok(())
        }
        Command::Run => {
            let loaded = config::load(&file)?;
            logging::init();
            loaded.log_summary();
            let runtime = tokio::runtime::Runtime::new()
                .map_err(|source| Error::Io { context: "starting the runtime", source })?;
            let result = runtime.block_on(async { run(loaded.config, file, StopSignals::listen()).await });
            // The console reader thread may sit in a blocking read; do not wait for it.
            runtime.shutdown_timeout(std::time::Duration::from_millis(100));
            result
        }
    }
}

/// SIGINT and SIGTERM, as a stream: the first asks for a graceful stop, a second one for an
/// immediate one (the operator who presses Ctrl-C again does not want to wait out the grace).
pub struct StopSignals {
    interrupt: Option<Signal>,
    terminate: Option<Signal>,
}

impl StopSignals {
    pub fn listen() -> StopSignals {
        let interrupt = signal(SignalKind::interrupt()).ok();
        let terminate = signal(SignalKind::terminate()).ok();
        if interrupt.is_none() || terminate.is_none() {
            tracing::error!("cannot listen for SIGINT/SIGTERM; stop the bot with SIGKILL");
        }
        StopSignals { interrupt, terminate }
    }

    /// The next SIGINT or SIGTERM; its name.
    pub async fn recv(&mut self) -> &'static str {
        async fn next(signal: &mut Option<Signal>) {
            match signal {
                Some(signal) => _ = signal.recv().await,
                None => std::future::pending().await,
            }
        }
        tokio::select! {
            () = next(&mut self.interrupt) => "SIGINT",
            () = next(&mut self.terminate) => "SIGTERM",
        }
    }
}

/// SIGHUP reloads the configuration; an invalid file changes nothing and logs every problem.
async fn reload_on_hangup(controls: Controls) {
    let Ok(mut hangups) = signal(SignalKind::hangup()) else {
        tracing::error!("cannot listen for SIGHUP; reload the config through the API instead");
        return;
    };
    while hangups.recv().await.is_some() {
        info!("SIGHUP received; reloading the config");
        // Controls writes the audit line; the problems get one log line each here.
        if let Err(ConfigReloadError::Invalid(error)) = controls.reload_config(Trigger::Signal("SIGHUP")).await {
            for problem in error.to_string().lines() {
                tracing::error!("config reload refused: {problem}");
            }
        }
    }
}

/// Run the bot until the first stop signal, then stop every component in reverse start order;
/// a second signal during that kills the plugins at once instead of waiting out their grace.
/// `file` is read again on SIGHUP and on every other config reload.
pub async fn run(config: Config, file: ConfigFile, mut signals: StopSignals) -> Result<(), Error> {
    let rosey_exe =
        std::env::current_exe().map_err(|source| Error::Io { context: "locating the rosey executable", source })?;
    let (reply_tx, reply_rx) = mpsc::channel(REPLY_QUEUE);
    info!(plugins = config.plugins.len(), "starting");
    let host = PluginHost::start(config.plugins.clone(), Launcher { rosey_exe }, reply_tx);
    let (controls, control_requests) = Controls::channel();

    let collector = Collector::new(host.registry(), config.metrics);
    let snapshots = collector.subscribe();
    let collector_stop = CancellationToken::new();
    let collector_task = tokio::spawn(collector.run(host.changed(), collector_stop.clone()));

    let dashboard = if config.dashboard.enabled {
        match Dashboard::start(&config.dashboard, snapshots, controls.clone()).await {
            Ok(dashboard) => Some(dashboard),
            Err(e) => {
                collector_stop.cancel();
                let _ = collector_task.await;
                host.stop().await;
                return Err(e.into());
            }
        }
    } else {
        info!("dashboard disabled (dashboard.enabled = false)");
        None
    };

    let chat_stop = CancellationToken::new();
    let chat_task = tokio::spawn(chat::run_console(host.registry(), reply_rx, chat_stop.clone()));

    let kill = host.kill_switch();
    let control_stop = CancellationToken::new();
    let load: control::LoadConfig = Box::new(move || config::load(&file).map(|loaded| loaded.config));
    let control_task = tokio::spawn(control::serve(host, control_requests, load, config, control_stop.clone()));
    let hangups = tokio::spawn(reload_on_hangup(controls));

    // Never await inside a log macro: a filtered-out level skips evaluating its arguments.
    let first = signals.recv().await;
    info!("{first} received; shutting down (send it again to kill the plugins at once)");
    hangups.abort();
    let second_signal = tokio::spawn(async move {
        let second = signals.recv().await;
        warn!("{second} received again; killing the plugins now");
        kill.cancel();
    });
    chat_stop.cancel();
    let _ = chat_task.await;
    if let Some(dashboard) = dashboard {
        dashboard.stop().await;
    }
    collector_stop.cancel();
    let _ = collector_task.await;
    control_stop.cancel();
    match control_task.await {
        Ok(host) => host.stop().await,
        Err(e) => tracing::error!("the control task failed ({e}); plugins are stopped as the bot exits"),
    }
    second_signal.abort();
    info!("stopped");
    Ok(())
}
