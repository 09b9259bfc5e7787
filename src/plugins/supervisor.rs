//! The supervisor of one plugin: spawn, feed, read, notice death, restart with backoff, stop.

use std::collections::VecDeque;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::io::{AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStderr, ChildStdin, ChildStdout, Command};
use tokio::sync::{Notify, mpsc};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use super::protocol::{HostMessage, MAX_LINE_BYTES, PluginMessage};
use super::stream::{Line, read_line};
use super::{
    CRASH_LOG_LEN, ChatReply, CrashRecord, ExitReason, Launcher, PluginCounters, PluginHandle, PluginState,
    PluginStatus, ProcessInfo,
};
use crate::config::{Launch, RestartPolicy};

/// How long a plugin may take to exit after SIGTERM before it is killed.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);
/// How many stderr lines are kept for the crash log, and how long each may be.
const STDERR_TAIL_LINES: usize = 20;
const STDERR_LINE_BYTES: usize = 512;
/// After the process exits, how long its pipes may take to drain.
const DRAIN_TIMEOUT: Duration = Duration::from_millis(500);
/// Requests remembered for matching replies to the user who asked.
const PENDING_REQUESTS: usize = 256;
/// Log lines per second per plugin stream before further lines are only counted.
const LOG_LINES_PER_SECOND: u32 = 20;

pub(super) struct Supervisor {
    pub handle: Arc<PluginHandle>,
    pub launcher: Launcher,
    pub commands: mpsc::Receiver<HostMessage>,
    pub replies: mpsc::Sender<ChatReply>,
    pub changed: Arc<Notify>,
    pub stop: CancellationToken,
    /// Cancelled when the operator will not wait for the stop grace period.
    pub kill: CancellationToken,
}

/// How one run of the process ended.
enum Outcome {
    Stopped,
    Exited { reason: ExitReason, uptime: Duration, stderr_tail: Vec<String> },
}

/// The context shared by the tasks attached to one running process.
#[derive(Clone)]
struct Io {
    handle: Arc<PluginHandle>,
    changed: Arc<Notify>,
    replies: mpsc::Sender<ChatReply>,
    /// (request id, user) of recent requests, to address replies.
    pending: Arc<Mutex<VecDeque<(u64, String)>>>,
}

impl Supervisor {
    pub async fn run(self) {
        let Supervisor { handle, launcher, commands, replies, changed, stop, kill } = self;
        let io = Io { handle, changed, replies, pending: Arc::new(Mutex::new(VecDeque::new())) };
        let commands = Arc::new(tokio::sync::Mutex::new(commands));
        let policy = io.handle.config.restart;
        loop {
            let outcome = run_once(&io, &launcher, &commands, &stop, &kill).await;
            let Outcome::Exited { reason, uptime, stderr_tail } = outcome else {
                io.publish(|s| {
                    s.state = PluginState::Stopped;
                    s.process = None;
                });
                return;
            };
            let name = io.handle.name();
            let previous = io.handle.status.borrow().restart_attempt;
            let Restart { attempt, give_up, delay } = Restart::after_crash(&policy, previous, uptime);
            if give_up {
                error!(
                    plugin = name,
                    "{reason} after {:.1}s; giving up after {} consecutive crashes",
                    uptime.as_secs_f64(),
                    attempt
                );
            } else {
                warn!(
                    plugin = name,
                    "{reason} after {:.1}s; restart {attempt} in {:.1}s",
                    uptime.as_secs_f64(),
                    delay.as_secs_f64()
                );
            }
            let record = CrashRecord { at: SystemTime::now(), reason, uptime, stderr_tail };
            io.publish(|s| {
                let mut log = (*s.crash_log).clone();
                log.push_front(record);
                log.truncate(CRASH_LOG_LEN);
                s.crash_log = Arc::new(log);
                s.crash_count += 1;
                s.restart_attempt = attempt;
                s.process = None;
                s.state = if give_up { PluginState::Failed } else { PluginState::Crashed };
                // checked: a policy may ask for a delay longer than an `Instant` can hold.
                s.next_restart_at = if give_up { None } else { Instant::now().checked_add(delay) };
            });
            if give_up {
                // FAILED stays visible until the host stops; nothing more to supervise.
                stop.cancelled().await;
                return;
            }
            tokio::select! {
                () = tokio::time::sleep(delay) => {}
                () = stop.cancelled() => {
                    io.publish(|s| { s.state = PluginState::Stopped; s.next_restart_at = None; });
                    return;
                }
            }
            io.publish(|s| s.restart_count += 1);
        }
    }
}

/// What to do after a crash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Restart {
    /// Consecutive crashes, this one included.
    attempt: u32,
    give_up: bool,
    delay: Duration,
}

impl Restart {
    /// `previous` consecutive crashes came before this one, after which the process had run
    /// for `uptime`; a run of `reset_window` or more starts the count afresh.
    fn after_crash(policy: &RestartPolicy, previous: u32, uptime: Duration) -> Restart {
        let previous = if uptime >= policy.reset_window { 0 } else { previous };
        let attempt = previous.saturating_add(1);
        let give_up = !policy.enabled || attempt > policy.max_attempts;
        Restart { attempt, give_up, delay: if give_up { Duration::ZERO } else { policy.backoff(attempt) } }
    }
}

impl Io {
    /// Change the status and tell the collector at once.
    fn publish(&self, change: impl FnOnce(&mut PluginStatus)) {
        self.handle.status.send_modify(change);
        self.changed.notify_one();
    }
}

fn command_for(handle: &PluginHandle, launcher: &Launcher) -> Command {
    let config = &handle.config;
    let mut cmd = match &config.launch {
        Launch::Builtin(builtin) => {
            let mut cmd = Command::new(&launcher.rosey_exe);
            cmd.arg("plugin").arg(builtin.name());
            cmd
        }
        Launch::Command { program, args } => {
            let mut cmd = Command::new(program);
            cmd.args(args);
            cmd
        }
    };
    cmd.envs(&config.env)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Its own process group: the host signals the plugin and everything it started at once,
        // and a Ctrl-C in the host's terminal reaches only the host, which then stops plugins in order.
        .process_group(0)
        .kill_on_drop(true);
    if let Some(cwd) = &config.cwd {
        cmd.current_dir(cwd);
    }
    cmd
}

async fn run_once(
    io: &Io,
    launcher: &Launcher,
    commands: &Arc<tokio::sync::Mutex<mpsc::Receiver<HostMessage>>>,
    stop: &CancellationToken,
    kill: &CancellationToken,
) -> Outcome {
    if stop.is_cancelled() {
        return Outcome::Stopped;
    }
    io.publish(|s| {
        s.state = PluginState::Starting;
        s.next_restart_at = None;
    });
    let mut child = match command_for(&io.handle, launcher).spawn() {
        Ok(child) => child,
        Err(e) => {
            return Outcome::Exited {
                reason: ExitReason::SpawnFailed(e.to_string()),
                uptime: Duration::ZERO,
                stderr_tail: Vec::new(),
            };
        }
    };
    let Some(pid) = child.id() else {
        return Outcome::Exited {
            reason: ExitReason::SpawnFailed("exited at once".into()),
            uptime: Duration::ZERO,
            stderr_tail: Vec::new(),
        };
    };
    let process = ProcessInfo { pid, started: Instant::now(), started_at: SystemTime::now() };
    info!(plugin = io.handle.name(), pid, "started");
    io.publish(|s| {
        s.state = PluginState::Running;
        s.process = Some(process);
        s.loaded_at = Some(process.started_at);
        s.said_hello = false;
    });

    let stderr_tail = Arc::new(Mutex::new(VecDeque::with_capacity(STDERR_TAIL_LINES)));
    let (stdin, stdout, stderr) = (child.stdin.take(), child.stdout.take(), child.stderr.take());
    let writer = stdin.map(|stdin| tokio::spawn(write_commands(io.clone(), commands.clone(), stdin)));
    let mut readers: Vec<JoinHandle<()>> = Vec::new();
    if let Some(stdout) = stdout {
        readers.push(tokio::spawn(read_messages(io.clone(), stdout)));
    }
    if let Some(stderr) = stderr {
        readers.push(tokio::spawn(read_stderr(io.clone(), stderr, stderr_tail.clone())));
    }

    // Once the process has stayed up for the reset window, its earlier crashes no longer count
    // towards giving up; say so at once rather than at the next crash.
    let reset_window = tokio::time::sleep(io.handle.config.restart.reset_window);
    tokio::pin!(reset_window);
    let mut reset_pending = io.handle.status.borrow().restart_attempt > 0;
    let status = loop {
        tokio::select! {
            status = child.wait() => break status,
            () = &mut reset_window, if reset_pending => {
                reset_pending = false;
                io.publish(|s| s.restart_attempt = 0);
            }
            () = stop.cancelled() => {
                if let Some(writer) = writer { writer.abort(); }
                terminate(&mut child, pid, io.handle.name(), kill).await;
                drain(readers).await;
                return Outcome::Stopped;
            }
        }
    };
    let uptime = process.started.elapsed();
    if let Some(writer) = writer {
        writer.abort();
    }
    // Whatever the plugin started dies with it, so a restart never runs beside its orphans.
    let _ = killpg(Pid::from_raw(pid as i32), Signal::SIGKILL);
    drain(readers).await;
    let reason = match status {
        Ok(status) => exit_reason(status),
        Err(e) => ExitReason::SpawnFailed(format!("could not wait for the process: {e}")),
    };
    let tail = stderr_tail.lock().map(|t| t.iter().cloned().collect()).unwrap_or_default();
    Outcome::Exited { reason, uptime, stderr_tail: tail }
}

fn exit_reason(status: std::process::ExitStatus) -> ExitReason {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => ExitReason::Code(code),
        (None, Some(signal)) => ExitReason::Signal(signal),
        (None, None) => ExitReason::Code(-1),
    }
}

/// Let the pipe readers finish what the process wrote, but not forever.
async fn drain(readers: Vec<JoinHandle<()>>) {
    for reader in readers {
        let abort = reader.abort_handle();
        if tokio::time::timeout(DRAIN_TIMEOUT, reader).await.is_err() {
            abort.abort();
        }
    }
}

/// SIGTERM to the plugin's process group, a grace period (cut short by `kill`), then SIGKILL.
async fn terminate(child: &mut Child, pid: u32, name: &str, kill: &CancellationToken) {
    let group = Pid::from_raw(pid as i32);
    let _ = killpg(group, Signal::SIGTERM);
    let gone = tokio::select! {
        exited = tokio::time::timeout(SHUTDOWN_GRACE, child.wait()) => {
            if exited.is_err() {
                warn!(plugin = name, "did not stop within {}s of SIGTERM; killing it", SHUTDOWN_GRACE.as_secs());
            }
            exited.is_ok()
        }
        () = kill.cancelled() => false,
    };
    if !gone {
        let _ = killpg(group, Signal::SIGKILL);
        let _ = child.wait().await;
    }
    // Descendants that ignored SIGTERM must not outlive the host either.
    let _ = killpg(group, Signal::SIGKILL);
    info!(plugin = name, "stopped");
}

async fn write_commands(io: Io, commands: Arc<tokio::sync::Mutex<mpsc::Receiver<HostMessage>>>, mut stdin: ChildStdin) {
    let mut commands = commands.lock().await;
    while let Some(message) = commands.recv().await {
        let HostMessage::Command { id, user, .. } = &message;
        if let Ok(mut pending) = io.pending.lock() {
            if pending.len() == PENDING_REQUESTS {
                pending.pop_front();
            }
            pending.push_back((*id, user.clone()));
        }
        let line = message.to_line();
        if stdin.write_all(line.as_bytes()).await.is_err() || stdin.flush().await.is_err() {
            // The process closed its input (it is exiting); the supervisor sees the exit.
            return;
        }
    }
}

/// Reads protocol messages from the plugin's stdout.
async fn read_messages(io: Io, stdout: ChildStdout) {
    let name = io.handle.name().to_owned();
    let mut reader = BufReader::new(stdout);
    let mut buf = Vec::new();
    let mut budget = LogBudget::new();
    loop {
        let problem = match read_line(&mut reader, &mut buf, MAX_LINE_BYTES).await {
            Ok(Line::Eof) | Err(_) => return,
            Ok(Line::TooLong { len }) => format!("line of {len} bytes is over the {MAX_LINE_BYTES}-byte limit"),
            Ok(Line::NotUtf8) => "line is not UTF-8".to_owned(),
            Ok(Line::Text(text)) if text.trim().is_empty() => continue,
            Ok(Line::Text(text)) => match PluginMessage::parse(&text) {
                Ok(message) => match handle_message(&io, message) {
                    Ok(()) => continue,
                    Err(problem) => problem,
                },
                Err(e) => e.to_string(),
            },
        };
        PluginCounters::bump(&io.handle.counters.protocol_errors);
        if budget.allow(&name) {
            warn!(plugin = %name, "protocol error: {problem}");
        }
    }
}

fn handle_message(io: &Io, message: PluginMessage) -> Result<(), String> {
    match message {
        PluginMessage::Hello { version, commands } => {
            info!(plugin = io.handle.name(), version = version.as_deref().unwrap_or("?"), ?commands, "hello");
            io.publish(|s| {
                s.reported_version = version;
                s.announced_commands = Arc::from(commands);
                s.said_hello = true;
            });
            Ok(())
        }
        PluginMessage::Reply { id, text } => {
            let user = io.pending.lock().ok().and_then(|mut pending| {
                let index = pending.iter().position(|(pending_id, _)| *pending_id == id)?;
                pending.remove(index).map(|(_, user)| user)
            });
            let Some(user) = user else {
                return Err(format!("reply to unknown request id {id}"));
            };
            let reply = ChatReply { plugin: io.handle.name().to_owned(), user: Some(user), text };
            // A full chat output drops the reply rather than stalling this plugin's reader.
            io.replies.try_send(reply).map_err(|_| "chat output is full; reply dropped".to_owned())
        }
    }
}

/// Logs the plugin's stderr, tagged with its name, and keeps the tail for the crash log.
async fn read_stderr(io: Io, stderr: ChildStderr, tail: Arc<Mutex<VecDeque<String>>>) {
    let name = io.handle.name().to_owned();
    let mut reader = BufReader::new(stderr);
    let mut buf = Vec::new();
    let mut budget = LogBudget::new();
    loop {
        // Read generously, keep STDERR_LINE_BYTES: the tail shows the start of long lines.
        let line = match read_line(&mut reader, &mut buf, MAX_LINE_BYTES).await {
            Ok(Line::Eof) | Err(_) => return,
            Ok(Line::Text(text)) => text,
            Ok(Line::NotUtf8) => String::from_utf8_lossy(&buf).into_owned(),
            Ok(Line::TooLong { len }) => format!("<{len}-byte line>"),
        };
        let line = truncate_utf8(line, STDERR_LINE_BYTES);
        if budget.allow(&name) {
            info!(plugin = %name, "stderr: {}", line.escape_debug());
        }
        if let Ok(mut tail) = tail.lock() {
            if tail.len() == STDERR_TAIL_LINES {
                tail.pop_front();
            }
            tail.push_back(line);
        }
    }
}

fn truncate_utf8(mut s: String, max: usize) -> String {
    if s.len() > max {
        let mut cut = max;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
    }
    s
}

/// Keeps a flooding plugin from flooding the host's log: a few lines a second, then a count.
struct LogBudget {
    window: Instant,
    used: u32,
    suppressed: u64,
}

impl LogBudget {
    fn new() -> Self {
        LogBudget { window: Instant::now(), used: 0, suppressed: 0 }
    }

    fn allow(&mut self, plugin: &str) -> bool {
        if self.window.elapsed() >= Duration::from_secs(1) {
            if self.suppressed > 0 {
                warn!(plugin, "{} log lines suppressed in the last second", self.suppressed);
            }
            *self = LogBudget::new();
        }
        self.used += 1;
        if self.used > LOG_LINES_PER_SECOND {
            self.suppressed += 1;
            return false;
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncation_respects_char_boundaries() {
        let s = "ab🦀".to_owned(); // the crab is 4 bytes, starting at byte 2
        assert_eq!(truncate_utf8(s.clone(), 3), "ab");
        assert_eq!(truncate_utf8(s.clone(), 6), s);
    }

    fn policy(max_attempts: u32) -> RestartPolicy {
        RestartPolicy {
            enabled: true,
            max_attempts,
            initial_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(30),
            reset_window: Duration::from_secs(60),
        }
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let delays: Vec<u64> = (1..=8).map(|n| policy(10).backoff(n).as_secs()).collect();
        assert_eq!(delays, [1, 2, 4, 8, 16, 30, 30, 30]);
    }

    #[test]
    fn consecutive_crashes_back_off_then_give_up() {
        let policy = policy(5);
        let short = Duration::from_secs(2);
        let mut previous = 0;
        let mut delays = Vec::new();
        loop {
            let restart = Restart::after_crash(&policy, previous, short);
            assert_eq!(restart.attempt, previous + 1);
            if restart.give_up {
                break;
            }
            delays.push(restart.delay.as_secs());
            previous = restart.attempt;
        }
        assert_eq!(delays, [1, 2, 4, 8, 16], "five restarts, then FAILED on the sixth crash");
        assert_eq!(previous, 5);
    }

    #[test]
    fn a_long_run_resets_the_count() {
        let policy = policy(5);
        let restart = Restart::after_crash(&policy, 5, policy.reset_window);
        assert_eq!(restart, Restart { attempt: 1, give_up: false, delay: Duration::from_secs(1) });
        let restart = Restart::after_crash(&policy, 5, policy.reset_window - Duration::from_millis(1));
        assert!(restart.give_up);
    }

    #[test]
    fn disabled_restarts_give_up_at_once() {
        let policy = RestartPolicy { enabled: false, ..policy(5) };
        assert!(Restart::after_crash(&policy, 0, Duration::from_secs(600)).give_up);
        assert!(Restart::after_crash(&self::policy(0), 0, Duration::ZERO).give_up, "max_attempts 0");
    }

    #[test]
    fn exit_reasons_read_as_words() {
        assert_eq!(ExitReason::Code(3).to_string(), "exited with code 3");
        assert_eq!(ExitReason::Signal(9).to_string(), "killed by SIGKILL");
        assert_eq!(ExitReason::Signal(9).signal_name().as_deref(), Some("SIGKILL"));
    }
}
