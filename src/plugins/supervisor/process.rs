//! One process generation of a plugin: spawn it, feed it commands, read its replies and
//! stderr, wait for it, terminate it. A generation borrows its command queue and owns
//! everything else it uses, so a supervisor could run two side by side (a new process
//! started beside the old one) without either knowing of the other.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

use nix::sys::signal::Signal;
use tokio::io::{AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStderr, ChildStdin, ChildStdout};
use tokio::sync::{Notify, mpsc, watch};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::spawn::{SpawnError, command_for};
use crate::logging::LogBudget;
use crate::plugins::command_table::HOST_NAME;
use crate::plugins::ledger::{Ledger, Matched, Unanswered};
use crate::plugins::lines::{Line, LineSplitter};
use crate::plugins::output_log::{PluginLog, Stream, Writer};
use crate::plugins::protocol::{HostMessage, MAX_LINE_BYTES, PluginMessage, ProtocolError};
use crate::plugins::spec::PluginConfig;
use crate::plugins::tree::{Family, Reaper};
use crate::plugins::{ChatReply, ExitReason, Launcher, PluginCounters, PluginHandle, PluginStatus, ProcessInfo};
use crate::timeline::{Timeline, notes};

/// How long a plugin may take to exit after SIGTERM before it is killed.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);
/// How many stderr lines are kept for the crash log, and how long each may be.
const STDERR_TAIL_LINES: usize = 20;
const STDERR_LINE_BYTES: usize = 512;
/// After the process exits, how long its pipes may take to drain.
const PIPE_DRAIN_TIMEOUT: Duration = Duration::from_millis(500);
/// While an old process is drained, how often the host looks whether it has answered everything.
const DRAIN_CHECK: Duration = Duration::from_millis(20);
/// Log lines per second per plugin stream before further lines are only counted.
const LOG_LINES_PER_SECOND: u32 = 20;

/// Where a plugin's processes report to: its published status, the collector's wake-up and
/// the chat's reply queue. Shared by every generation of the plugin.
pub(in crate::plugins) struct HostLink {
    pub handle: Arc<PluginHandle>,
    pub changed: Arc<Notify>,
    pub replies: mpsc::Sender<ChatReply>,
    pub timeline: Timeline,
    /// Has any process of this plugin said hello? One that never did is not waited for.
    said_hello: AtomicBool,
}

impl HostLink {
    pub fn new(
        handle: Arc<PluginHandle>,
        changed: Arc<Notify>,
        replies: mpsc::Sender<ChatReply>,
        timeline: Timeline,
    ) -> HostLink {
        HostLink { handle, changed, replies, timeline, said_hello: AtomicBool::new(false) }
    }

    pub fn speaks_protocol(&self) -> bool {
        self.said_hello.load(Ordering::Relaxed)
    }

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

/// What a process said in its hello.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Greeting {
    pub version: Option<String>,
    pub commands: Arc<[String]>,
}

/// What one process has said, and whether it speaks for the plugin. During a reload the new
/// process is not current until the switch (its hello must not change the status if it is
/// rolled back) and the old one stops being current at the switch.
pub(super) struct Voice {
    pub current: AtomicBool,
    pub hello: watch::Sender<Option<Greeting>>,
}

impl Voice {
    pub fn is_current(&self) -> bool {
        self.current.load(Ordering::SeqCst)
    }

    pub fn set_current(&self, current: bool) {
        self.current.store(current, Ordering::SeqCst);
    }
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

/// One running process of a plugin and every process it started.
pub(super) struct Generation {
    child: Child,
    info: ProcessInfo,
    family: Family,
    voice: Arc<Voice>,
    reset_window: Duration,
    drain_timeout: Duration,
    /// The version the config gives, for the log lines written before the hello.
    config_version: Option<Arc<str>>,
}

impl Generation {
    /// Start the plugin's program as `config` says; `current` when it speaks for the plugin
    /// from the start (not a reload's new process).
    pub fn spawn(
        config: &PluginConfig,
        launcher: &Launcher,
        reaper: &Arc<Reaper>,
        current: bool,
    ) -> Result<Generation, SpawnError> {
        let (mut command, program) = command_for(config, launcher);
        let child = reaper.spawn(&mut command).map_err(|e| SpawnError::explain(&program, config.cwd.as_deref(), e))?;
        // Invariant: `id()` is None only once the child has been reaped, and nothing has waited yet.
        let pid = child.id().expect("a just-spawned child has not been reaped");
        let info = ProcessInfo { pid, started: Instant::now(), started_at: SystemTime::now() };
        Ok(Generation {
            child,
            info,
            family: Family::new(pid, reaper.clone()),
            voice: Arc::new(Voice { current: AtomicBool::new(current), hello: watch::Sender::new(None) }),
            reset_window: config.restart.reset_window,
            drain_timeout: config.reload.drain_timeout,
            config_version: config.version.as_deref().map(Arc::from),
        })
    }

    pub fn info(&self) -> ProcessInfo {
        self.info
    }

    pub fn voice(&self) -> Arc<Voice> {
        self.voice.clone()
    }

    /// Feed the process from `commands` until it exits or `stop` asks it to (then terminate it:
    /// SIGTERM, a grace period cut short by `kill`, SIGKILL). Either way, everything it started
    /// is killed before this returns.
    ///
    /// When `commands` closes (a reload switched the plugin to a new process), the process is
    /// drained: its input is closed once the queue is written, and it is terminated as soon as
    /// every command it received is answered, or after `drain_timeout`.
    pub async fn run(
        mut self,
        link: &HostLink,
        commands: &mut mpsc::Receiver<HostMessage>,
        stop: &CancellationToken,
        kill: &CancellationToken,
    ) -> Outcome {
        let (stdin, stdout, stderr) = (self.child.stdin.take(), self.child.stdout.take(), self.child.stderr.take());
        let mut stderr_tail = VecDeque::with_capacity(STDERR_TAIL_LINES);
        let (ledger, pid) = (&link.handle.ledger, self.info.pid);
        let scribe = || Scribe::new(&link.handle.log, pid, &self.voice, self.config_version.clone());
        let ending = {
            // Boxed so that it can be dropped, closing the plugin's stdin, before a stop.
            let mut writer = Box::pin(async {
                match stdin {
                    Some(stdin) => write_commands(ledger, pid, commands, stdin).await,
                    None => QueueEnd::InputClosed,
                }
            });
            let readers = async {
                let messages = async {
                    if let Some(stdout) = stdout {
                        read_messages(link, &self.voice, stdout, scribe()).await;
                    }
                };
                let logs = async {
                    if let Some(stderr) = stderr {
                        read_stderr(link.name(), stderr, &mut stderr_tail, scribe()).await;
                    }
                };
                tokio::join!(messages, logs);
            };
            tokio::pin!(readers);
            let (mut writing, mut reading) = (true, true);
            // Once the process has stayed up for the reset window, its earlier crashes no longer
            // count towards giving up; say so at once rather than at the next crash.
            let reset_window = tokio::time::sleep(self.reset_window);
            tokio::pin!(reset_window);
            let mut reset_pending = link.handle.status.borrow().restart_attempt > 0;
            // Polled only once the queue has switched: its clock starts then.
            let mut draining = false;
            let drain = drained(ledger, pid, self.drain_timeout);
            tokio::pin!(drain);
            let ending = loop {
                tokio::select! {
                    status = self.child.wait() => break Ending::Exited(status),
                    end = &mut writer, if writing => {
                        writing = false;
                        draining = end == QueueEnd::Switched;
                    }
                    drained = &mut drain, if draining => {
                        match drained {
                            Drained::Answered => info!(plugin = link.name(), pid = self.info.pid, "old process drained"),
                            Drained::TimedOut { unanswered } => warn!(
                                plugin = link.name(),
                                pid = self.info.pid,
                                "old process still owes {unanswered} replies after drain_timeout ({}s); stopping it",
                                self.drain_timeout.as_secs_f64()
                            ),
                        }
                        break Ending::StopRequested;
                    }
                    () = &mut readers, if reading => reading = false,
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
                let _ = tokio::time::timeout(PIPE_DRAIN_TIMEOUT, &mut readers).await;
            }
            ending
        };
        // What this process was given and did not answer, it never will: the host answers.
        let why = match &ending {
            Ending::StopRequested => "was stopped before answering".to_owned(),
            Ending::Exited(Ok(status)) => format!("ended before answering ({})", exit_reason(*status)),
            Ending::Exited(Err(_)) => "ended before answering".to_owned(),
        };
        answer_for(link, ledger.abandon(pid), &why).await;
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

/// How draining an old process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Drained {
    /// Every request it received is answered.
    Answered,
    /// `drain_timeout` passed first.
    TimedOut { unanswered: usize },
}

/// Wait until every command written to process `pid` is answered (looked at every
/// [`DRAIN_CHECK`]) or `timeout` has passed, counted from the first poll.
async fn drained(ledger: &Ledger, pid: u32, timeout: Duration) -> Drained {
    let deadline = tokio::time::sleep(timeout);
    tokio::pin!(deadline);
    let mut check = tokio::time::interval(DRAIN_CHECK);
    loop {
        tokio::select! {
            _ = check.tick() => {
                if ledger.owed_by(pid) == 0 {
                    return Drained::Answered;
                }
            }
            () = &mut deadline => return Drained::TimedOut { unanswered: ledger.owed_by(pid) },
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

/// Why the writer stopped feeding the process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum QueueEnd {
    /// The process closed its input (it is exiting).
    InputClosed,
    /// The queue closed: new commands go to another process now.
    Switched,
}

/// Write queued commands to the plugin's stdin (process `pid`), until it closes its input or
/// the queue ends (then its input is closed: the end of its work). A command the host answered
/// while it was queued is skipped.
async fn write_commands(
    ledger: &Ledger,
    pid: u32,
    commands: &mut mpsc::Receiver<HostMessage>,
    mut stdin: ChildStdin,
) -> QueueEnd {
    while let Some(message) = commands.recv().await {
        let HostMessage::Command { id, .. } = &message;
        if !ledger.written(*id, pid) {
            continue;
        }
        let line = message.to_line();
        if stdin.write_all(line.as_bytes()).await.is_err() || stdin.flush().await.is_err() {
            // The process closed its input (it is exiting); the supervisor sees the exit.
            return QueueEnd::InputClosed;
        }
    }
    QueueEnd::Switched
}

/// What was wrong with a line a plugin wrote to stdout (counted as a protocol error and logged
/// for the plugin's author).
#[derive(Debug, thiserror::Error)]
enum StdoutProblem {
    #[error("line of {len} bytes is over the {MAX_LINE_BYTES}-byte limit")]
    TooLong { len: usize },
    #[error("line is not UTF-8")]
    NotUtf8,
    #[error(transparent)]
    Invalid(#[from] ProtocolError),
    #[error("reply to unknown request id {0}")]
    UnknownRequest(u64),
}

/// The host's answer, for each of `unanswered`: the plugin's name, then `why`.
pub(in crate::plugins) async fn answer_for(link: &HostLink, unanswered: Vec<Unanswered>, why: &str) {
    for Unanswered { id, user } in unanswered {
        let text = format!("{} {why}", link.name());
        tracing::debug!(plugin = link.name(), id, "answered by the host: {why}");
        let reply = ChatReply { plugin: HOST_NAME.to_owned(), user: Some(user), text, request: Some(id) };
        // Waiting (not dropping) keeps the promise of one answer per command; a closed chat
        // output means the bot is stopping and nobody is left to tell.
        if link.replies.send(reply).await.is_err() {
            return;
        }
    }
}

/// Answer, on the plugin's behalf, each command it has not answered within `command_timeout`,
/// until the plugin is retired. A reply that comes after is dropped ([`Matched::Late`]).
pub(in crate::plugins) async fn answer_timeouts(link: Arc<HostLink>, retire: CancellationToken) {
    let ledger = &link.handle.ledger;
    loop {
        let expired = tokio::select! {
            expired = ledger.expired() => expired,
            () = retire.cancelled() => return,
        };
        for _ in &expired {
            PluginCounters::bump(&link.handle.counters.command_timeouts);
        }
        let timeout = link.handle.config().command_timeout;
        let why = format!("did not answer within {} s", timeout.as_secs_f64());
        answer_for(&link, expired, &why).await;
    }
}

/// Reads protocol messages from the plugin's stdout.
async fn read_messages(link: &HostLink, voice: &Voice, stdout: ChildStdout, mut scribe: Scribe) {
    let mut reader = BufReader::new(stdout);
    let mut lines = LineSplitter::new(MAX_LINE_BYTES);
    let mut budget = LogBudget::new(LOG_LINES_PER_SECOND, Duration::from_secs(1));
    let mut late_log = LogBudget::new(1, Duration::from_secs(1));
    while let Ok(Some(line)) = lines.next_line(&mut reader).await {
        let problem = match line {
            Line::TooLong { len, .. } => {
                scribe.record(Stream::Stdout, &logged_text(&line));
                StdoutProblem::TooLong { len }
            }
            Line::NotUtf8(_) => {
                scribe.record(Stream::Stdout, &logged_text(&line));
                StdoutProblem::NotUtf8
            }
            Line::Text(text) if text.trim().is_empty() => continue,
            Line::Text(text) => match PluginMessage::parse(&text) {
                // A reload's readiness probe: the reload reads it, chat never sees it.
                Ok(PluginMessage::Reply { id, text }) if link.handle.ledger.probed(id, &text) => continue,
                Ok(PluginMessage::Reply { id, text }) => match link.handle.ledger.answer(id) {
                    Matched::Open { user, waited } => {
                        if let Some(took) = waited {
                            link.handle.counters.response_times.record(took);
                        }
                        let reply =
                            ChatReply { plugin: link.name().to_owned(), user: Some(user), text, request: Some(id) };
                        // Waiting here holds this plugin's reader back, never drops an answer;
                        // the plugin's slots bound how much it can have to say.
                        if link.replies.send(reply).await.is_err() {
                            return;
                        }
                        continue;
                    }
                    Matched::Late => {
                        if let Some(suppressed) = late_log.admit() {
                            warn!(
                                plugin = link.name(),
                                "late reply to request {id}, already answered after command_timeout; dropped{suppressed}"
                            );
                        }
                        continue;
                    }
                    Matched::Unknown => StdoutProblem::UnknownRequest(id),
                },
                Ok(PluginMessage::Hello { version, commands }) => {
                    hello(link, voice, version, commands, &mut budget);
                    continue;
                }
                Err(e) => {
                    scribe.record(Stream::Stdout, &text);
                    StdoutProblem::Invalid(e)
                }
            },
        };

        PluginCounters::bump(&link.handle.counters.protocol_errors);
        if let Some(suppressed) = budget.admit() {
            warn!(plugin = link.name(), "protocol error: {problem}{suppressed}");
        }
    }
}

/// A hello: what the process says it is and handles; published when it speaks for the plugin.
fn hello(link: &HostLink, voice: &Voice, version: Option<String>, commands: Vec<String>, budget: &mut LogBudget) {
    link.said_hello.store(true, Ordering::Relaxed);
    let greeting = Greeting { version: version.clone(), commands: Arc::from(commands.clone()) };
    voice.hello.send_if_modified(|known| {
        let news = known.as_ref() != Some(&greeting);
        *known = Some(greeting);
        news
    });
    let shown = version.clone();
    // A hello that repeats what is known changes nothing: no snapshot, no log line.
    let changed = voice.is_current()
        && link.publish_if(|s| {
            if s.said_hello && s.reported_version == version && *s.announced_commands == *commands {
                return false;
            }
            s.said_hello = true;
            s.reported_version = version;
            s.announced_commands = Arc::from(commands.clone());
            true
        });
    if changed {
        link.timeline.record(notes::hello(link.name(), shown.as_deref()));
    }
    if changed && let Some(suppressed) = budget.admit() {
        info!(plugin = link.name(), version = shown.as_deref().unwrap_or("?"), ?commands, "hello{suppressed}");
    }
}

/// Logs the plugin's stderr, tagged with its name, keeps it in the plugin's log, and keeps the
/// tail for the crash log. Never waits for anything but the pipe: a plugin is never blocked
/// on a full stderr.
async fn read_stderr(name: &str, stderr: ChildStderr, tail: &mut VecDeque<String>, mut scribe: Scribe) {
    let mut reader = BufReader::new(stderr);
    // Read generously, keep STDERR_LINE_BYTES: the tail shows the start of long lines.
    let mut lines = LineSplitter::new(MAX_LINE_BYTES);
    let mut budget = LogBudget::new(LOG_LINES_PER_SECOND, Duration::from_secs(1));
    while let Ok(Some(line)) = lines.next_line(&mut reader).await {
        scribe.record(Stream::Stderr, &logged_text(&line));
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

/// Writes one process's lines into the plugin's log, marked with its pid and its version (the
/// hello's once it has said one, the config's before).
struct Scribe {
    log: Arc<PluginLog>,
    hello: watch::Receiver<Option<Greeting>>,
    config_version: Option<Arc<str>>,
    writer: Writer,
}

impl Scribe {
    fn new(log: &Arc<PluginLog>, pid: u32, voice: &Voice, config_version: Option<Arc<str>>) -> Scribe {
        let writer = Writer { pid, version: config_version.clone() };
        Scribe { log: log.clone(), hello: voice.hello.subscribe(), config_version, writer }
    }

    fn record(&mut self, stream: Stream, text: &str) {
        if self.hello.has_changed().unwrap_or(false) {
            let said = self.hello.borrow_and_update().as_ref().and_then(|g| g.version.as_deref().map(Arc::from));
            self.writer.version = said.or_else(|| self.config_version.clone());
        }
        self.log.record(stream, &self.writer, text);
    }
}

/// A line as the plugin's log keeps it: invalid UTF-8 replaced, an overlong line's start kept.
fn logged_text(line: &Line) -> std::borrow::Cow<'_, str> {
    match line {
        Line::TooLong { len, start } => format!("{}… ({len} bytes)", String::from_utf8_lossy(start)).into(),
        line => line.lossy(),
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

    const PID: u32 = 100;

    /// A ledger holding commands `ids`, written to process [`PID`].
    fn awaiting(ids: &[u64]) -> Arc<Ledger> {
        let ledger = Arc::new(Ledger::new(8));
        for &id in ids {
            ledger.accept(id, "alice", Duration::from_secs(3600)).expect("a free slot");
            assert!(ledger.written(id, PID));
        }
        ledger
    }

    const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

    #[tokio::test(start_paused = true)]
    async fn an_old_process_that_owes_nothing_is_drained_at_once() {
        let start = tokio::time::Instant::now();
        assert_eq!(drained(&awaiting(&[]), PID, DRAIN_TIMEOUT).await, Drained::Answered);
        assert_eq!(start.elapsed(), Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn an_old_process_that_never_answers_is_stopped_at_the_drain_timeout() {
        let start = tokio::time::Instant::now();
        assert_eq!(drained(&awaiting(&[1, 2]), PID, DRAIN_TIMEOUT).await, Drained::TimedOut { unanswered: 2 });
        assert_eq!(start.elapsed(), DRAIN_TIMEOUT, "not a moment before");
    }

    #[tokio::test(start_paused = true)]
    async fn an_old_process_is_stopped_soon_after_its_last_answer() {
        let pending = awaiting(&[7]);
        let answerer = pending.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(100)).await;
            answerer.answer(7);
        });
        let start = tokio::time::Instant::now();
        assert_eq!(drained(&pending, PID, DRAIN_TIMEOUT).await, Drained::Answered);
        let waited = start.elapsed();
        assert!(
            (Duration::from_millis(100)..=Duration::from_millis(100) + DRAIN_CHECK).contains(&waited),
            "{waited:?}"
        );
    }
}
