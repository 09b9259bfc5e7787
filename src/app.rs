//! Start-up and shutdown: components start in data-flow order (plugins, collector, dashboard,
//! chat) and stop in reverse, each waited for before the next. [`run`] is told to stop by a
//! [`Shutdown`]; the process's edge ([`main`]) turns the operator's signals into it, so the
//! whole lifecycle also runs inside a test.

use tokio::signal::unix::{Signal, SignalKind, signal};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::chat::AtEndOfInput;
use crate::chat::admin::{AdminDesk, Authority};
use crate::cli::{Cli, Command};
use crate::config::{self, Config, ConfigError, ConfigFile};
use crate::control::{self, ActionDoor, ConfigReloadError, ControlRequest, Trigger};
use crate::dashboard::{self, Dashboard};
use crate::metrics::Collector;
use crate::plugins::builtin::{self, Builtin};
use crate::plugins::output_log::LogBook;
use crate::plugins::{Launcher, PluginHost};
use crate::remote;
use crate::timeline::{self, Timeline};
use crate::{chat, heal, limits, logging, notify};

/// Replies waiting to be printed before a plugin's further replies are dropped.
const REPLY_QUEUE: usize = 1024;
/// Memory readings waiting for the memory guard; a tick beyond this is dropped, not waited for.
const MEMORY_TICKS: usize = 4;

/// Why the program stopped with a failure. The messages carry no `error: ` in front: `main`
/// adds it, except to config errors, which name themselves (`config error: …`, one line per
/// problem).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Config(#[from] ConfigError),
    #[error("{0}")]
    Dashboard(#[from] dashboard::StartError),
    #[error("unknown built-in plugin \"{0}\" (expected dice-roller or 8ball)")]
    UnknownBuiltin(String),
    #[error("{context}: {source}")]
    Io { context: &'static str, source: std::io::Error },
    #[error("{0}")]
    Remote(#[from] remote::RemoteError),
}

impl Error {
    /// 2 for configuration and usage errors, 1 for failures at run time.
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Config(_) | Error::UnknownBuiltin(_) => 2,
            Error::Remote(e) => e.exit_code(),
            Error::Dashboard(_) | Error::Io { .. } => 1,
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
        Command::HashPassword => {
            let hash = crate::cli::hash_password::run()
                .map_err(|source| Error::Io { context: "hashing the password", source })?;
            println!("{hash}");
            Ok(())
        }
        Command::Config => {
            let loaded = config::load(&file)?;
            let json = serde_json::to_string_pretty(&loaded.raw.redacted()).unwrap_or_default();
            println!("{json}");
            Ok(())
        }
        Command::Control(command) => {
            let dashboard = config::load_dashboard(&file)?;
            Ok(remote::run(&dashboard, &command)?)
        }
        Command::Run { exit_at_eof } => {
            let loaded = config::load(&file)?;
            logging::init();
            loaded.log_summary();
            let open_files = limits::raise_open_files_limit();
            let runtime = tokio::runtime::Runtime::new()
                .map_err(|source| Error::Io { context: "starting the runtime", source })?;
            let at_end = if exit_at_eof { AtEndOfInput::Finish } else { AtEndOfInput::KeepRunning };
            let result = runtime.block_on(async {
                let shutdown = Shutdown::default();
                let (door, requests) = ActionDoor::channel();
                let signals = tokio::spawn(obey(ControlSignals::listen(), door.clone(), shutdown.clone()));
                let result = run(loaded.config, file, (door, requests), shutdown, at_end, open_files).await;
                signals.abort();
                result
            });
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
}

/// How a running bot is told to stop. `stop` asks for a clean shutdown (plugins get their
/// grace period); `kill` also cuts the plugins' grace short. [`run`] cancels `stop` itself when
/// it stops for another reason (the end of console input), so a stop asked for after that is
/// known to be a second one.
#[derive(Debug, Clone, Default)]
pub struct Shutdown {
    pub stop: CancellationToken,
    pub kill: CancellationToken,
}

/// Carry out what the operator asks by signal, until the process ends: the first stop signal
/// stops the bot, a second one (or SIGQUIT) kills the plugins at once; SIGHUP reloads the
/// config, and is ignored once the bot is stopping.
async fn obey(mut signals: ControlSignals, door: ActionDoor, shutdown: Shutdown) {
    loop {
        let event = signals.recv().await;
        let stopping = shutdown.stop.is_cancelled();
        match event {
            ControlEvent::Reload if stopping => warn!("SIGHUP received while shutting down; ignored"),
            ControlEvent::Reload => {
                // Not waited for: a stop must not wait behind it.
                tokio::spawn(reload_config(door.clone()));
            }
            ControlEvent::Stop(signal) | ControlEvent::StopNow(signal) if stopping => {
                warn!("{signal} received again; killing the plugins now");
                shutdown.kill.cancel();
            }
            ControlEvent::Stop(signal) => {
                info!("{signal} received; shutting down (send it again to kill the plugins at once)");
                shutdown.stop.cancel();
            }
            ControlEvent::StopNow(signal) => {
                info!("{signal} received; stopping now (plugins are killed without their grace period)");
                shutdown.kill.cancel();
                shutdown.stop.cancel();
            }
        }
    }
}

/// SIGHUP reloads the configuration; an invalid file changes nothing and logs every problem.
async fn reload_config(door: ActionDoor) {
    info!("SIGHUP received; reloading the config");
    // The door writes the audit line; the problems get one log line each here.
    if let Err(ConfigReloadError::Invalid(error)) = door.reload_config(Trigger::Signal("SIGHUP")).await {
        for problem in error.problem_lines() {
            tracing::error!("config reload refused: {problem}");
        }
    }
}

/// Run the bot until `shutdown.stop` (or, with [`AtEndOfInput::Finish`], the end of console
/// input), then stop every component in reverse start order; `shutdown.kill` cancelled at any
/// time kills the plugins at once instead of waiting out their grace. Actions reach the bot
/// through `door`; `file` is read again on every config reload (SIGHUP, `POST /api/reload`).
pub async fn run(
    config: Config,
    file: ConfigFile,
    door: (ActionDoor, mpsc::Receiver<ControlRequest>),
    shutdown: Shutdown,
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
    // The dashboard's certificate is read again with the config: a bad file refuses the reload.
    let certificate = bound.as_ref().and_then(dashboard::BoundDashboard::certificate);
    let (reply_tx, reply_rx) = mpsc::channel(REPLY_QUEUE);
    info!(plugins = config.plugins.len(), "starting");
    let timeline = Timeline::open(&config.timeline);
    let notifier = notify::Notifier::start(&config.notify, &timeline);
    let logs = LogBook::new(config.logs.clone());
    let launcher = Launcher { rosey_exe, open_files, timeline: timeline.clone(), logs: logs.clone() };
    let host = PluginHost::start(config.plugins.clone(), launcher, reply_tx);
    let (door, control_requests) = door;

    let mut collector = Collector::new(host.registry(), config.metrics);
    let snapshots = collector.subscribe();
    let dashboard_url = config.dashboard.enabled.then(|| remote::local_url(&config.dashboard));
    let desk = AdminDesk::new(Authority::console(), door.clone(), snapshots.clone(), dashboard_url);
    // The chat's state and the admin audit reach the dashboard through the snapshots only.
    let chat_status = tokio::sync::watch::Sender::new(chat::ChatStatus::default());
    collector.follow_chat(chat_status.subscribe(), desk.audit_log());
    // The healers ask the door for reloads like an operator; the collector only sends figures.
    let heal_stop = CancellationToken::new();
    let (memory_tx, memory_rx) = mpsc::channel(MEMORY_TICKS);
    collector.report_memory(memory_tx);
    let memory_guard = tokio::spawn(heal::guard_memory(memory_rx, door.clone(), heal_stop.clone()));
    let file_watch = tokio::spawn(heal::watch_files(host.registry(), door.clone(), heal_stop.clone()));
    let collector_stop = CancellationToken::new();
    let collector_task = tokio::spawn(collector.run(host.changed(), collector_stop.clone()));
    let thresholds = crate::metrics::health::Thresholds::of(&config.dashboard);
    let watcher = tokio::spawn(timeline::watch::follow(snapshots.clone(), thresholds, timeline.clone()));
    if config.dashboard.enabled && !config.prometheus_enabled {
        info!("/metrics is off (metrics.prometheus_enabled = false); it answers 404");
    }
    let dashboard = bound.map(|bound| {
        let feeds = dashboard::Feeds { snapshots, timeline: timeline.clone(), notifications: notifier.counts(), logs };
        Dashboard::start(bound, &config.dashboard, config.prometheus_enabled, feeds, door)
    });

    let chat_config = config.chat.clone();
    let chat =
        chat::run(host.registry(), reply_rx, desk, at_end, chat_config, chat_status, shutdown.stop.child_token());
    let mut chat_task = tokio::spawn(chat);

    let kill = host.kill_switch();
    let edge_kill = shutdown.kill.clone();
    let kill_on_request = tokio::spawn(async move {
        edge_kill.cancelled().await;
        kill.cancel();
    });
    let control_stop = CancellationToken::new();
    let load: control::LoadConfig = Box::new(move || {
        let loaded = config::load(&file)?;
        if let Some(certificate) = &certificate {
            certificate.reread(&loaded)?;
        }
        Ok(loaded.config)
    });
    let control_task =
        tokio::spawn(control::serve(host, control_requests, load, config, control_stop.clone(), timeline.clone()));

    tokio::select! {
        () = shutdown.stop.cancelled() => {
            let _ = chat_task.await;
        }
        _ = &mut chat_task => {
            info!("shutting down");
            shutdown.stop.cancel();
        }
    }
    if let Some(dashboard) = dashboard {
        dashboard.stop().await;
    }
    heal_stop.cancel();
    let _ = tokio::join!(memory_guard, file_watch);
    collector_stop.cancel();
    let _ = collector_task.await;
    control_stop.cancel();
    match control_task.await {
        Ok(host) => host.stop().await,
        Err(e) => tracing::error!("the control task failed ({e}); plugins are stopped as the bot exits"),
    }
    kill_on_request.abort();
    watcher.abort();
    // Last: what the shutdown itself recorded is still sent.
    notifier.stop().await;
    info!("stopped");
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::config::NamedBy;

    /// The processes whose command line holds `marker`, zombies included.
    fn processes_with(marker: &str) -> Vec<String> {
        let entries = std::fs::read_dir("/proc").expect("/proc is readable");
        let pids = entries.filter_map(|entry| entry.ok()?.file_name().into_string().ok());
        pids.filter(|pid| {
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            String::from_utf8_lossy(&cmdline).contains(marker)
        })
        .collect()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_cancelled_shutdown_stops_the_bot_and_leaves_no_plugin_process() {
        // A plugin process no other test starts: sleep for an odd time named by this process.
        let marker = format!("31415.{}", std::process::id());
        let dir = tempfile::tempdir().expect("a temporary directory");
        let path = dir.path().join("rosey.json");
        let plugin = serde_json::json!({ "name": "sleeper", "command": ["sleep", marker] });
        let json = serde_json::json!({ "dashboard": { "enabled": false }, "plugins": [plugin] });
        std::fs::write(&path, json.to_string()).expect("written");
        let file = ConfigFile::Named { path, named_by: NamedBy::Flag };
        let config = config::load(&file).expect("a valid config").config;

        let shutdown = Shutdown::default();
        let bot =
            tokio::spawn(run(config, file, ActionDoor::channel(), shutdown.clone(), AtEndOfInput::KeepRunning, None));
        // A deadline only against a hang: the plugin normally starts at once.
        let started = tokio::time::timeout(Duration::from_secs(60), async {
            while processes_with(&marker).is_empty() {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        });
        started.await.expect("the plugin's process starts");

        shutdown.stop.cancel();
        let stopped = tokio::time::timeout(Duration::from_secs(60), bot).await.expect("the bot stops");
        assert!(matches!(stopped.expect("the bot's task"), Ok(())));
        assert_eq!(processes_with(&marker), Vec::<String>::new(), "the plugin's process is gone");
    }
}
