//! One process generation of a plugin: spawn it, feed it commands, read its replies and
//! stderr, wait for it, terminate it. A generation borrows its command queue and owns
//! everything else it uses, so a supervisor could run two side by side (a new process
//! started beside the old one) without either knowing of the other.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use nix::sys::signal::Signal;
use tokio::io::{AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStderr, ChildStdin, ChildStdout, Command};
use tokio::sync::{Notify, mpsc};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::logging::LogBudget;
use crate::plugins::protocol::{HostMessage, MAX_LINE_BYTES, PluginMessage};
use crate::plugins::spec::Launch;
use crate::plugins::stream::{Line, LineSplitter};
use crate::plugins::tree::{Family, Reaper};
use crate::plugins::{ChatReply, ExitReason, Launcher, PluginCounters, PluginHandle, PluginStatus, ProcessInfo};

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
/// How often the plugin's process tree is recorded, so that what it detaches can be found.
const TREE_REFRESH: Duration = Duration::from_secs(1);

/// Where a plugin's processes report to: its published status, the collector's wake-up and
/// the chat's reply queue. Shared by every generation of the plugin.
pub(in crate::plugins) struct HostLink {
    pub handle: Arc<PluginHandle>,
    pub changed: Arc<Notify>,
    pub replies: mpsc::Sender<ChatReply>,
}

impl HostLink {
    /// Change the status and tell the collector.
    pub fn publish(&self, change: impl FnOnce(&mut PluginStatus)) {
        self.handle.status.send_modify(change);
        self.changed.notify_one();
    }

    /// Like [`HostLink::publish`], but only when `change` says it changed something.
    fn publish_if(&self, change: impl FnOnce(&mut PluginStatus) -> bool) -> bool {
        let changed = self.handle.status.send_if_modified(change);
        if changed {
            self.changed.notify_one();
        }
        changed
    }

    fn name(&self) -> &str {
        self.handle.name()
    }
}

/// Why a plugin process could not be started; each names what is missing.
#[derive(Debug, thiserror::Error)]
pub enum SpawnError {
    #[error("working directory {dir:?} does not exist")]
    MissingDirectory { dir: PathBuf },
    #[error("working directory {dir:?} is not a directory")]
    NotADirectory { dir: PathBuf },
    #[error("program {program:?} not found")]
    MissingProgram { program: PathBuf },
    #[error("program {program:?} not found in PATH")]
    NotInPath { program: PathBuf },
    #[error("program {program:?} exists but cannot be run: its #! interpreter or a library it needs is missing")]
    MissingInterpreter { program: PathBuf },
    #[error("cannot run program {program:?}: {source}")]
    Other { program: PathBuf, source: std::io::Error },
}

impl SpawnError {
    /// Tell apart the causes the OS reports all as "No such file or directory".
    fn explain(program: &Path, cwd: Option<&Path>, source: std::io::Error) -> SpawnError {
        if let Some(dir) = cwd {
            match std::fs::metadata(dir) {
                Err(_) => return SpawnError::MissingDirectory { dir: dir.to_owned() },
                Ok(meta) if !meta.is_dir() => return SpawnError::NotADirectory { dir: dir.to_owned() },
                Ok(_) => {}
            }
        }
        if source.kind() != std::io::ErrorKind::NotFound {
            return SpawnError::Other { program: program.to_owned(), source };
        }
        let program = program.to_owned();
        if program.components().count() == 1 && program.is_relative() {
            return SpawnError::NotInPath { program };
        }
        // A relative path with a slash is looked up from the plugin's working directory.
        let resolved = cwd.map_or_else(|| program.clone(), |dir| dir.join(&program));
        if resolved.exists() {
            SpawnError::MissingInterpreter { program }
        } else {
            SpawnError::MissingProgram { program }
        }
    }
}

fn command_for(handle: &PluginHandle, launcher: &Launcher) -> (Command, PathBuf) {
    let config = &handle.config;
    let (program, mut cmd) = match &config.launch {
        Launch::Builtin(builtin) => {
            let mut cmd = Command::new(&launcher.rosey_exe);
            cmd.arg("plugin").arg(builtin.name());
            (launcher.rosey_exe.clone(), cmd)
        }
        Launch::Command { program, args } => {
            let mut cmd = Command::new(program);
            cmd.args(args);
            (PathBuf::from(program), cmd)
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
    (cmd, program)
}

/// How one generation ended.
pub(super) enum Outcome {
    /// The host stopped it.
    Stopped,
    /// It ended on its own (or never started).
    Exited(Exit),
}

/// An exit the host did not ask for.
pub(super) struct Exit {
    pub reason: ExitReason,
    pub uptime: Duration,
    pub stderr_tail: Vec<String>,
}

impl Exit {
    pub fn spawn_failed(error: &SpawnError) -> Exit {
        Exit { reason: ExitReason::SpawnFailed(error.to_string()), uptime: Duration::ZERO, stderr_tail: Vec::new() }
    }
}

/// What ends the wait for a running process.
enum Ending {
    Exited(std::io::Result<std::process::ExitStatus>),
    StopRequested,
}

/// A request awaiting its reply: who asked.
struct Pending {
    id: u64,
    user: String,
}

/// One running process of a plugin and every process it started.
pub(super) struct Generation {
    child: Child,
    info: ProcessInfo,
    family: Family,
    /// Recent requests, to address replies to the user who asked.
    pending: Mutex<VecDeque<Pending>>,
}

impl Generation {
    /// Start the plugin's program.
    pub fn spawn(link: &HostLink, launcher: &Launcher, reaper: &Arc<Reaper>) -> Result<Generation, SpawnError> {
        let (mut command, program) = command_for(&link.handle, launcher);
        let cwd = link.handle.config.cwd.as_deref();
        let child = reaper.spawn(&mut command).map_err(|e| SpawnError::explain(&program, cwd, e))?;
        // Invariant: `id()` is None only once the child has been reaped, and nothing has waited yet.
        let pid = child.id().expect("a just-spawned child has not been reaped");
        let info = ProcessInfo { pid, started: Instant::now(), started_at: SystemTime::now() };
        Ok(Generation { child, info, family: Family::new(pid, reaper.clone()), pending: Mutex::new(VecDeque::new()) })
    }

    pub fn info(&self) -> ProcessInfo {
        self.info
    }

    /// Feed the process from `commands` until it exits or `stop` asks it to (then terminate it:
    /// SIGTERM, a grace period cut short by `kill`, SIGKILL). Either way, everything it started
    /// is killed before this returns.
    pub async fn run(
        mut self,
        link: &HostLink,
        commands: &mut mpsc::Receiver<HostMessage>,
        stop: &CancellationToken,
        kill: &CancellationToken,
    ) -> Outcome {
        let (stdin, stdout, stderr) = (self.child.stdin.take(), self.child.stdout.take(), self.child.stderr.take());
        let mut stderr_tail = VecDeque::with_capacity(STDERR_TAIL_LINES);
        let ending = {
            let pending = &self.pending;
            // Boxed so that it can be dropped, closing the plugin's stdin, before a stop.
            let mut writer = Box::pin(async {
                if let Some(stdin) = stdin {
                    write_commands(pending, commands, stdin).await;
                }
            });
            let readers = async {
                let messages = async {
                    if let Some(stdout) = stdout {
                        read_messages(link, pending, stdout).await;
                    }
                };
                let logs = async {
                    if let Some(stderr) = stderr {
                        read_stderr(link.name(), stderr, &mut stderr_tail).await;
                    }
                };
                tokio::join!(messages, logs);
            };
            tokio::pin!(readers);
            let (mut writing, mut reading) = (true, true);
            let mut refresh = tokio::time::interval(TREE_REFRESH);
            // Once the process has stayed up for the reset window, its earlier crashes no longer
            // count towards giving up; say so at once rather than at the next crash.
            let reset_window = tokio::time::sleep(link.handle.config.restart.reset_window);
            tokio::pin!(reset_window);
            let mut reset_pending = link.handle.status.borrow().restart_attempt > 0;
            let ending = loop {
                tokio::select! {
                    status = self.child.wait() => break Ending::Exited(status),
                    () = &mut writer, if writing => writing = false,
                    () = &mut readers, if reading => reading = false,
                    _ = refresh.tick() => self.family.refresh(),
                    () = &mut reset_window, if reset_pending => {
                        reset_pending = false;
                        link.publish(|s| s.restart_attempt = 0);
                    }
                    () = stop.cancelled() => break Ending::StopRequested,
                }
            };
            drop(writer);
            if let Ending::StopRequested = ending {
                terminate(&mut self.child, &mut self.family, link.name(), kill).await;
            }
            // Whatever the plugin started dies with it, so a restart never runs beside its orphans.
            self.family.root_reaped();
            self.family.signal(Signal::SIGKILL);
            // Let the readers take what the process wrote before it died, but not forever.
            if reading {
                let _ = tokio::time::timeout(DRAIN_TIMEOUT, &mut readers).await;
            }
            ending
        };
        match ending {
            Ending::StopRequested => Outcome::Stopped,
            Ending::Exited(status) => Outcome::Exited(Exit {
                reason: match status {
                    Ok(status) => exit_reason(status),
                    Err(e) => ExitReason::SpawnFailed(format!("could not wait for the process: {e}")),
                },
                uptime: self.info.started.elapsed(),
                stderr_tail: stderr_tail.into(),
            }),
        }
    }
}

/// SIGTERM to the whole family, a grace period (cut short by `kill`), then SIGKILL.
/// Returns once the plugin process itself has been reaped.
async fn terminate(child: &mut Child, family: &mut Family, name: &str, kill: &CancellationToken) {
    family.refresh();
    family.signal(Signal::SIGTERM);
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
        family.refresh();
        family.signal(Signal::SIGKILL);
        let _ = child.wait().await;
    }
    info!(plugin = name, "stopped");
}

fn exit_reason(status: std::process::ExitStatus) -> ExitReason {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => ExitReason::Code(code),
        (None, Some(signal)) => ExitReason::Signal(signal),
        (None, None) => ExitReason::Code(-1),
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Every holder leaves the queue consistent (one push or remove), even if it panicked.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Write queued commands to the plugin's stdin, until it closes its input or the queue ends.
async fn write_commands(
    pending: &Mutex<VecDeque<Pending>>,
    commands: &mut mpsc::Receiver<HostMessage>,
    mut stdin: ChildStdin,
) {
    while let Some(message) = commands.recv().await {
        let HostMessage::Command { id, user, .. } = &message;
        {
            let mut pending = lock(pending);
            if pending.len() == PENDING_REQUESTS {
                pending.pop_front();
            }
            pending.push_back(Pending { id: *id, user: user.clone() });
        }
        let line = message.to_line();
        if stdin.write_all(line.as_bytes()).await.is_err() || stdin.flush().await.is_err() {
            // The process closed its input (it is exiting); the supervisor sees the exit.
            return;
        }
    }
}

/// Reads protocol messages from the plugin's stdout.
async fn read_messages(link: &HostLink, pending: &Mutex<VecDeque<Pending>>, stdout: ChildStdout) {
    let mut reader = BufReader::new(stdout);
    let mut lines = LineSplitter::new(MAX_LINE_BYTES);
    let mut budget = LogBudget::new(LOG_LINES_PER_SECOND, Duration::from_secs(1));
    while let Ok(Some(line)) = lines.next_line(&mut reader).await {
        let problem = match line {
            Line::TooLong { len, .. } => format!("line of {len} bytes is over the {MAX_LINE_BYTES}-byte limit"),
            Line::NotUtf8(_) => "line is not UTF-8".to_owned(),
            Line::Text(text) if text.trim().is_empty() => continue,
            Line::Text(text) => match PluginMessage::parse(&text) {
                Ok(message) => match handle_message(link, pending, message, &mut budget) {
                    Ok(()) => continue,
                    Err(problem) => problem,
                },
                Err(e) => e.to_string(),
            },
        };
        PluginCounters::bump(&link.handle.counters.protocol_errors);
        if let Some(suppressed) = budget.admit() {
            warn!(plugin = link.name(), "protocol error: {problem}{suppressed}");
        }
    }
}

fn handle_message(
    link: &HostLink,
    pending: &Mutex<VecDeque<Pending>>,
    message: PluginMessage,
    budget: &mut LogBudget,
) -> Result<(), String> {
    match message {
        PluginMessage::Hello { version, commands } => {
            let shown = version.clone();
            // A hello that repeats what is known changes nothing: no snapshot, no log line.
            let changed = link.publish_if(|s| {
                if s.said_hello && s.reported_version == version && *s.announced_commands == *commands {
                    return false;
                }
                s.said_hello = true;
                s.reported_version = version;
                s.announced_commands = Arc::from(commands.clone());
                true
            });
            if changed && let Some(suppressed) = budget.admit() {
                info!(plugin = link.name(), version = shown.as_deref().unwrap_or("?"), ?commands, "hello{suppressed}");
            }
            Ok(())
        }
        PluginMessage::Reply { id, text } => {
            let user = {
                let mut pending = lock(pending);
                let index = pending.iter().position(|p| p.id == id);
                index.and_then(|i| pending.remove(i)).map(|p| p.user)
            };
            let Some(user) = user else {
                return Err(format!("reply to unknown request id {id}"));
            };
            let reply = ChatReply { plugin: link.name().to_owned(), user: Some(user), text };
            // A full chat output drops the reply rather than stalling this plugin's reader.
            link.replies.try_send(reply).map_err(|_| "chat output is full; reply dropped".to_owned())
        }
    }
}

/// Logs the plugin's stderr, tagged with its name, and keeps the tail for the crash log.
async fn read_stderr(name: &str, stderr: ChildStderr, tail: &mut VecDeque<String>) {
    let mut reader = BufReader::new(stderr);
    // Read generously, keep STDERR_LINE_BYTES: the tail shows the start of long lines.
    let mut lines = LineSplitter::new(MAX_LINE_BYTES);
    let mut budget = LogBudget::new(LOG_LINES_PER_SECOND, Duration::from_secs(1));
    while let Ok(Some(line)) = lines.next_line(&mut reader).await {
        let line = truncate_utf8(line.lossy().into_owned(), STDERR_LINE_BYTES);
        if let Some(suppressed) = budget.admit() {
            info!(plugin = name, "stderr: {}{suppressed}", line.escape_debug());
        }
        if tail.len() == STDERR_TAIL_LINES {
            tail.pop_front();
        }
        tail.push_back(line);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncation_respects_char_boundaries() {
        let s = "ab🦀".to_owned(); // the crab is 4 bytes, starting at byte 2
        assert_eq!(truncate_utf8(s.clone(), 3), "ab");
        assert_eq!(truncate_utf8(s.clone(), 6), s);
    }

    #[test]
    fn spawn_errors_name_what_is_missing() {
        let enoent = || std::io::Error::from(std::io::ErrorKind::NotFound);
        let temp = tempfile::tempdir().expect("a temporary directory");
        let dir = temp.path().to_owned();
        let missing_dir = dir.join("nope");
        let error = SpawnError::explain(Path::new("python3"), Some(&missing_dir), enoent());
        assert_eq!(error.to_string(), format!("working directory {missing_dir:?} does not exist"));
        let error = SpawnError::explain(Path::new("/nonexistent/prog"), None, enoent());
        assert_eq!(error.to_string(), "program \"/nonexistent/prog\" not found");
        let error = SpawnError::explain(Path::new("no-such-tool"), Some(&dir), enoent());
        assert_eq!(error.to_string(), "program \"no-such-tool\" not found in PATH");
        let script = dir.join("script.sh");
        std::fs::write(&script, "#!/nonexistent/sh\n").expect("the temp dir is writable");
        assert!(matches!(SpawnError::explain(&script, None, enoent()), SpawnError::MissingInterpreter { .. }));
    }
}
