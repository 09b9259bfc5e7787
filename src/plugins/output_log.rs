//! Each plugin's own log: every line it writes to stderr, and every stdout line that is not a
//! protocol message, kept in a bounded ring per plugin ([`PluginLog`]) across its restarts and
//! reloads, each line marked with the process (pid, version) that wrote it. The ring is what
//! `/api/plugin/{name}/logs` and the plugin page's log panel read.
//!
//! A plugin that writes without end must not cost the host more than its budget: the reader
//! always drains the pipe, and past `logs.lines_per_second` lines are counted as dropped, never
//! queued. When `logs.dir` is set the kept lines also go to one file per plugin, rotated by size
//! ([`files`](self::files)): written by one thread off the async runtime, so a slow or full disk
//! never holds back a pipe; a line the writer could not take or write is counted, and logged.
//!
//! A quiet plugin costs nothing: nothing here runs unless a line arrives, and a line wakes the
//! live log streams only when someone is watching.

mod files;

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime};

use serde::Serialize;
use tokio::sync::watch;

use crate::sync::lock;
use files::{FileLine, FileWriter};

/// The longest line kept, in bytes; the rest of a longer one is cut (the cut is marked).
pub const LINE_BYTES: usize = 8 * 1024;

/// `logs`: how much of each plugin's output is kept, and where else it goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogSettings {
    /// Lines kept per plugin…
    pub max_lines: usize,
    /// …and bytes of text kept per plugin, whichever limit is reached first.
    pub max_bytes: usize,
    /// Lines per second a plugin may log (bursts up to one second's worth); more are dropped
    /// and counted.
    pub lines_per_second: u32,
    /// Also write the lines to files, one per plugin.
    pub files: Option<FileSettings>,
}

/// `logs.dir`, `logs.file_max_bytes`, `logs.file_backups`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileSettings {
    pub dir: PathBuf,
    /// A file is rotated before it would grow past this.
    pub max_bytes: u64,
    /// Rotated files kept (`NAME.log.1` the newest).
    pub backups: u32,
}

impl Default for LogSettings {
    fn default() -> Self {
        LogSettings { max_lines: 1000, max_bytes: 256 * 1024, lines_per_second: 1000, files: None }
    }
}

/// Which pipe a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Stream {
    Stdout,
    Stderr,
}

impl Stream {
    pub fn as_str(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }
}

/// The process that wrote a line: its pid and the version its hello gave (or the config's).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Writer {
    pub pid: u32,
    pub version: Option<Arc<str>>,
}

/// One kept line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    /// 1 for the plugin's first kept line, one more for each after it.
    pub seq: u64,
    pub time: SystemTime,
    pub stream: Stream,
    pub writer: Writer,
    pub text: String,
    /// Lines dropped (over the budget) just before this one.
    pub dropped_before: u64,
}

/// A read of the ring: the lines asked for, oldest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogPage {
    pub lines: Vec<LogLine>,
    /// Lines dropped since the bot started.
    pub dropped: u64,
    /// The seq of the newest line kept so far: `since` for a read of only newer lines.
    pub next: u64,
}

/// Lines per second with a burst of one second's worth: a token bucket.
#[derive(Debug)]
struct Budget {
    per_second: f64,
    tokens: f64,
    refilled: Option<Instant>,
}

impl Budget {
    fn new(per_second: u32) -> Budget {
        let per_second = f64::from(per_second);
        Budget { per_second, tokens: per_second, refilled: None }
    }

    fn take(&mut self, now: Instant) -> bool {
        if let Some(then) = self.refilled {
            let earned = now.saturating_duration_since(then).as_secs_f64() * self.per_second;
            self.tokens = (self.tokens + earned).min(self.per_second);
        }
        self.refilled = Some(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[derive(Debug)]
struct Ring {
    lines: VecDeque<LogLine>,
    bytes: usize,
    last_seq: u64,
    /// Dropped since the last kept line.
    dropped_pending: u64,
    budget: Budget,
}

/// One plugin's log, shared by every process generation of the plugin and by the readers.
#[derive(Debug)]
pub struct PluginLog {
    name: Arc<str>,
    max_lines: usize,
    max_bytes: usize,
    ring: Mutex<Ring>,
    dropped: AtomicU64,
    file_errors: Arc<AtomicU64>,
    /// The newest seq, sent only while a live stream is watching.
    news: watch::Sender<u64>,
    files: Option<FileWriter>,
}

impl PluginLog {
    fn new(name: &str, settings: &LogSettings, files: Option<FileWriter>) -> PluginLog {
        PluginLog {
            name: Arc::from(name),
            max_lines: settings.max_lines.max(1),
            max_bytes: settings.max_bytes.max(1),
            ring: Mutex::new(Ring {
                lines: VecDeque::new(),
                bytes: 0,
                last_seq: 0,
                dropped_pending: 0,
                budget: Budget::new(settings.lines_per_second),
            }),
            dropped: AtomicU64::new(0),
            file_errors: Arc::new(AtomicU64::new(0)),
            news: watch::Sender::new(0),
            files,
        }
    }

    /// Keep `text`, written by `writer` on `stream`, unless the plugin is over its budget
    /// (then it is only counted). Never waits.
    pub fn record(&self, stream: Stream, writer: &Writer, text: &str) {
        let now = Instant::now();
        let seq = {
            let mut ring = lock(&self.ring);
            if !ring.budget.take(now) {
                ring.dropped_pending += 1;
                drop(ring);
                self.dropped.fetch_add(1, Ordering::Relaxed);
                return;
            }
            let (text, time) = (cut(text), SystemTime::now());
            ring.last_seq += 1;
            let seq = ring.last_seq;
            let dropped_before = std::mem::take(&mut ring.dropped_pending);
            ring.bytes += text.len();
            let line = LogLine { seq, time, stream, writer: writer.clone(), text, dropped_before };
            if let Some(files) = &self.files {
                files.send(FileLine::of(&self.name, &line, &self.file_errors));
            }
            ring.lines.push_back(line);
            while ring.lines.len() > self.max_lines || (ring.bytes > self.max_bytes && ring.lines.len() > 1) {
                if let Some(old) = ring.lines.pop_front() {
                    ring.bytes -= old.text.len();
                }
            }
            seq
        };
        if self.news.receiver_count() > 0 {
            self.news.send_replace(seq);
        }
    }

    /// The lines after `since` (all kept when None), at most the newest `tail` of them.
    pub fn read(&self, since: Option<u64>, tail: usize) -> LogPage {
        let ring = lock(&self.ring);
        let since = since.unwrap_or(0);
        // Kept lines have consecutive seqs, so the first newer one is found by arithmetic.
        let first_kept = ring.lines.front().map_or(ring.last_seq + 1, |l| l.seq);
        let newer = ring.lines.len() - (since.saturating_sub(first_kept - 1) as usize).min(ring.lines.len());
        let skip = ring.lines.len() - newer.min(tail);
        LogPage { lines: ring.lines.iter().skip(skip).cloned().collect(), dropped: self.dropped(), next: ring.last_seq }
    }

    /// Lines dropped over the budget since the bot started.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Lines that could not be written to the plugin's log file.
    pub fn file_errors(&self) -> u64 {
        self.file_errors.load(Ordering::Relaxed)
    }

    /// Changes whenever a line is kept, from now on.
    pub fn watch(&self) -> watch::Receiver<u64> {
        self.news.subscribe()
    }
}

/// `text` cut to [`LINE_BYTES`] at a character boundary, the cut marked.
fn cut(text: &str) -> String {
    if text.len() <= LINE_BYTES {
        return text.to_owned();
    }
    let mut end = LINE_BYTES;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… ({} bytes)", &text[..end], text.len())
}

/// Every plugin's log, by name: kept when a plugin is removed, found again if it comes back.
#[derive(Debug, Default)]
pub struct LogBook {
    settings: LogSettings,
    logs: Mutex<HashMap<String, Arc<PluginLog>>>,
    files: Option<FileWriter>,
}

impl LogBook {
    pub fn new(settings: LogSettings) -> Arc<LogBook> {
        let files = settings.files.clone().map(FileWriter::start);
        Arc::new(LogBook { settings, logs: Mutex::default(), files })
    }

    /// The log of plugin `name`, made on first use.
    pub fn open(&self, name: &str) -> Arc<PluginLog> {
        lock(&self.logs)
            .entry(name.to_owned())
            .or_insert_with(|| Arc::new(PluginLog::new(name, &self.settings, self.files.clone())))
            .clone()
    }

    pub fn get(&self, name: &str) -> Option<Arc<PluginLog>> {
        lock(&self.logs).get(name).cloned()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn writer(pid: u32) -> Writer {
        Writer { pid, version: Some(Arc::from("1.0")) }
    }

    fn log(max_lines: usize, max_bytes: usize, lines_per_second: u32) -> PluginLog {
        PluginLog::new("p", &LogSettings { max_lines, max_bytes, lines_per_second, files: None }, None)
    }

    fn texts(page: &LogPage) -> Vec<&str> {
        page.lines.iter().map(|l| l.text.as_str()).collect()
    }

    #[test]
    fn keeps_the_newest_lines_within_both_limits() {
        let log = log(3, 1000, 1000);
        for i in 1..=5 {
            log.record(Stream::Stderr, &writer(1), &format!("line {i}"));
        }
        let page = log.read(None, usize::MAX);
        assert_eq!(texts(&page), ["line 3", "line 4", "line 5"]);
        assert_eq!((page.lines[0].seq, page.next), (3, 5));

        let log = self::log(100, 10, 1000);
        for text in ["aaaa", "bbbb", "cccc"] {
            log.record(Stream::Stdout, &writer(1), text);
        }
        assert_eq!(texts(&log.read(None, usize::MAX)), ["bbbb", "cccc"], "12 bytes is over 10");
    }

    #[test]
    fn since_is_exclusive_and_tail_takes_the_newest() {
        let log = log(100, 100_000, 1000);
        for i in 1..=10 {
            log.record(Stream::Stderr, &writer(1), &format!("{i}"));
        }
        assert_eq!(texts(&log.read(Some(7), usize::MAX)), ["8", "9", "10"]);
        assert_eq!(texts(&log.read(Some(7), 2)), ["9", "10"]);
        assert_eq!(texts(&log.read(None, 1)), ["10"]);
        let nothing = log.read(Some(10), 100);
        assert!(nothing.lines.is_empty());
        assert_eq!(nothing.next, 10);
        assert!(log.read(Some(99), 100).lines.is_empty(), "a since from the future is no error");
    }

    #[test]
    fn lines_over_the_budget_are_counted_and_marked_on_the_next_kept_one() {
        let log = log(100, 100_000, 3);
        for i in 1..=5 {
            log.record(Stream::Stderr, &writer(1), &format!("{i}"));
        }
        assert_eq!(log.dropped(), 2);
        lock(&log.ring).budget.tokens = 1.0; // as if a third of a second had passed
        log.record(Stream::Stderr, &writer(1), "after");
        let page = log.read(None, 100);
        assert_eq!(texts(&page), ["1", "2", "3", "after"]);
        assert_eq!(page.lines[3].dropped_before, 2);
        assert_eq!((page.lines[3].seq, page.dropped), (4, 2));
    }

    #[test]
    fn the_budget_refills_at_its_rate_up_to_one_second_of_lines() {
        let mut budget = Budget::new(2);
        let start = Instant::now();
        assert!(budget.take(start) && budget.take(start) && !budget.take(start), "a burst of two");
        assert!(!budget.take(start + Duration::from_millis(400)), "0.8 of a line earned");
        assert!(budget.take(start + Duration::from_millis(600)));
        let later = start + Duration::from_secs(60);
        assert!(budget.take(later) && budget.take(later) && !budget.take(later), "never more than the burst");
    }

    #[test]
    fn a_long_line_is_cut_at_a_character_boundary() {
        let long = "🦀".repeat(LINE_BYTES); // 4 bytes each
        let kept = cut(&long);
        assert!(kept.starts_with("🦀🦀") && kept.ends_with(&format!("… ({} bytes)", long.len())));
        assert!(kept.len() < LINE_BYTES + 32);
    }

    #[test]
    fn a_plugin_that_comes_back_finds_its_log() {
        let book = LogBook::new(LogSettings::default());
        book.open("a").record(Stream::Stdout, &writer(7), "hi");
        assert_eq!(book.get("a").map(|l| l.read(None, 10).lines.len()), Some(1));
        assert!(book.get("b").is_none());
    }
}
