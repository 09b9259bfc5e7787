//! Start-up and shutdown: components start in data-flow order (plugins, collector, dashboard,
//! chat) and stop in reverse, each waited for before the next.

use std::time::Duration;

use tokio::signal::unix::{Signal, SignalKind, signal};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::chat::AtEndOfInput;
use crate::chat::admin::{AdminDesk, Authority};
use crate::cli::{Cli, Command};
use crate::config::{self, Config, ConfigError, ConfigFile};
use crate::control::{self, ConfigReloadError, Controls, Trigger};
use crate::dashboard::{self, Dashboard};
use crate::metrics::Collector;
use crate::plugins::builtin::{self, Builtin};
use crate::plugins::{Launcher, PluginHost};
use crate::remote::{self, ReloadTarget};
use crate::{chat, limits, logging};

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
    #[error("{0}")]
    Remote(#[from] remote::RemoteError),
}

impl Error {
    /// 2 for configuration and usage errors, 1 for failures at run time.
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Config(_) | Error::UnknownBuiltin(_) | Error::Remote(remote::RemoteError::DashboardDisabled) => 2,
            Error::Dashboard(_) | Error::Io { .. } | Error::Remote(_) => 1,
        }
    }
}

/// Everything `main` does after parsing the command line.
pub fn main(cli: Cli) -> Result<(), Error> {
    let file = cli.config_file();
    match cli.command.unwrap_or(Command::Run { exit_at_eof: false }) {
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
        Command::Reload { plugin, timeout, url } => {
            let dashboard = config::load_dashboard(&file)?;
            let target = plugin.map_or(ReloadTarget::Config, ReloadTarget::Plugin);
            Ok(remote::reload(&dashboard, url.as_ref(), &target, Duration::from_secs(timeout))?)
        }
        Command::Run { exit_at_eof } => {
            let loaded = config::load(&file)?;
            logging::init();
            loaded.log_summary();
            let open_files = limits::raise_open_files_limit();
            let runtime = tokio::runtime::Runtime::new()
                .map_err(|source| Error::Io { context: "starting the runtime", source })?;
            let at_end = if exit_at_eof { AtEndOfInput::Finish } else { AtEndOfInput::KeepRunning };
            let result = runtime
                .block_on(async { run(loaded.config, file, ControlSignals::listen(), at_end, open_files).await });
            // The console reader thread may sit in a blocking read; do not wait for it.
            runtime.shutdown_timeout(std::time::Duration::from_millis(100));
            result
        }
    }
}

/// What the operator asks of the running bot, by signal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ControlEvent {
    /// SIGINT or SIGTERM: stop, giving plugins their grace period (a second one cuts it short).
    Stop(&'static str),
    /// SIGQUIT: stop without waiting for the plugins (they are killed at once).
    StopNow(&'static str),
    /// SIGHUP: reload the configuration (closing the terminal sends it too).
    Reload,
}

/// The signals the bot handles, as a stream of [`ControlEvent`]s. Any of them left to its
/// default action would end the process without the clean shutdown, leaving plugins behind.
pub struct ControlSignals {
    interrupt: Option<Signal>,
    terminate: Option<Signal>,
    quit: Option<Signal>,
    hangup: Option<Signal>,
}

impl ControlSignals {
    pub fn listen() -> ControlSignals {
        let interrupt = signal(SignalKind::interrupt()).ok();
        let terminate = signal(SignalKind::terminate()).ok();
        let quit = signal(SignalKind::quit()).ok();
        let hangup = signal(SignalKind::hangup()).ok();
        if interrupt.is_none() || terminate.is_none() {
            tracing::error!("cannot listen for SIGINT/SIGTERM; stop the bot with SIGKILL");
        }
        ControlSignals { interrupt, terminate, quit, hangup }
    }

    /// The next event.
    pub async fn recv(&mut self) -> ControlEvent {
        async fn next(signal: &mut Option<Signal>) {
            match signal {
                Some(signal) => _ = signal.recv().await,
                None => std::future::pending().await,
            }
        }
        tokio::select! {
            () = next(&mut self.interrupt) => ControlEvent::Stop("SIGINT"),
            () = next(&mut self.terminate) => ControlEvent::Stop("SIGTERM"),
            () = next(&mut self.quit) => ControlEvent::StopNow("SIGQUIT"),
            () = next(&mut self.hangup) => ControlEvent::Reload,
        }
    }

    /// The next request to stop. A reload asked for meanwhile is started and not waited for
    /// (a stop must not wait behind it); without `controls` (during shutdown) it is ignored.
    async fn next_stop(&mut self, controls: Option<&Controls>) -> StopRequest {
        loop {
            match (self.recv().await, controls) {
                (ControlEvent::Stop(signal), _) => return StopRequest { signal, at_once: false },
                (ControlEvent::StopNow(signal), _) => return StopRequest { signal, at_once: true },
                (ControlEvent::Reload, Some(controls)) => {
                    tokio::spawn(reload_config(controls.clone()));
                }
                (ControlEvent::Reload, None) => warn!("SIGHUP received while shutting down; ignored"),
            }
        }
    }
}

/// A signal asking the bot to stop.
struct StopRequest {
    signal: &'static str,
    /// Kill the plugins without their grace period.
    at_once: bool,
}

/// SIGHUP reloads the configuration; an invalid file changes nothing and logs every problem.
async fn reload_config(controls: Controls) {
    info!("SIGHUP received; reloading the config");
    // Controls writes the audit line; the problems get one log line each here.
    if let Err(ConfigReloadError::Invalid(error)) = controls.reload_config(Trigger::Signal("SIGHUP")).await {
        for problem in error.to_string().lines() {
            tracing::error!("config reload refused: {problem}");
        }
    }
}

/// Run the bot until a stop signal (or, with [`AtEndOfInput::Finish`], the end of console
/// input), then stop every component in reverse start order; a second signal during that kills
/// the plugins at once instead of waiting out their grace. `file` is read again on every
/// config reload (SIGHUP, `POST /api/reload`).
pub async fn run(
    config: Config,
    file: ConfigFile,
    mut signals: ControlSignals,
    at_end: AtEndOfInput,
    open_files: Option<limits::InheritedLimit>,
) -> Result<(), Error> {
    let rosey_exe =
        std::env::current_exe().map_err(|source| Error::Io { context: "locating the rosey executable", source })?;
    // Bound before any plugin starts: a port in use must not start and stop every plugin.
    let bound = if config.dashboard.enabled {
        Some(Dashboard::bind(&config.dashboard).await?)
    } else {
        info!("dashboard disabled (dashboard.enabled = false)");
        None
    };
    let (reply_tx, reply_rx) = mpsc::channel(REPLY_QUEUE);
    info!(plugins = config.plugins.len(), "starting");
    let host = PluginHost::start(config.plugins.clone(), Launcher { rosey_exe, open_files }, reply_tx);
    let (controls, control_requests) = Controls::channel();

    let collector = Collector::new(host.registry(), config.metrics);
    let snapshots = collector.subscribe();
    let collector_stop = CancellationToken::new();
    let collector_task = tokio::spawn(collector.run(host.changed(), collector_stop.clone()));
    let dashboard_url = config.dashboard.enabled.then(|| remote::local_url(&config.dashboard));
    let desk = AdminDesk::new(Authority::console(), controls.clone(), snapshots.clone(), dashboard_url);
    let dashboard = bound.map(|bound| Dashboard::start(bound, &config.dashboard, snapshots, controls.clone()));

    let chat_stop = CancellationToken::new();
    // The dashboard's chat panel will subscribe here (chat_status.subscribe()).
    let chat_status = tokio::sync::watch::Sender::new(chat::ChatStatus::default());
    let chat = chat::run(host.registry(), reply_rx, desk, at_end, config.chat.clone(), chat_status, chat_stop.clone());
    let mut chat_task = tokio::spawn(chat);

    let kill = host.kill_switch();
    let control_stop = CancellationToken::new();
    let load: control::LoadConfig = Box::new(move || config::load(&file).map(|loaded| loaded.config));
    let control_task = tokio::spawn(control::serve(host, control_requests, load, config, control_stop.clone()));

    // Never await inside a log macro: a filtered-out level skips evaluating its arguments.
    tokio::select! {
        request = signals.next_stop(Some(&controls)) => {
            if request.at_once {
                info!("{} received; stopping now (plugins are killed without their grace period)", request.signal);
                kill.cancel();
            } else {
                info!("{} received; shutting down (send it again to kill the plugins at once)", request.signal);
            }
            chat_stop.cancel();
            let _ = chat_task.await;
        }
        _ = &mut chat_task => info!("shutting down"),
    }
    let second_signal = tokio::spawn(async move {
        let second = signals.next_stop(None).await;
        warn!("{} received again; killing the plugins now", second.signal);
        kill.cancel();
    });
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
