//! `timeline.file`: the events as JSON lines, appended by a thread of their own so that
//! recording never waits for the disk, and read back at start. The file is bounded: when it
//! holds `capacity` lines it becomes `FILE.1` (replacing the one before) and a new file starts,
//! so at most twice the capacity is on disk and the newest `capacity` events are always there.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, SyncSender, TrySendError};
use std::time::Duration;

use tracing::{error, warn};

use super::Event;
use crate::logging::LogBudget;
use crate::sync::lock;

/// Lines waiting for the writer; beyond it an event is kept in memory only (and counted).
const QUEUE: usize = 4096;

/// The previous file, kept when the current one is full.
fn previous(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".1");
    PathBuf::from(name)
}

/// The newest `capacity` events of the file (and of its predecessor), oldest first. A line
/// that is not an event is skipped with a warning; a missing file is an empty timeline.
pub(super) fn read_back(path: &Path, capacity: usize) -> Vec<Event> {
    let mut events = Vec::new();
    for file in [previous(path), path.to_owned()] {
        let reader = match File::open(&file) {
            Ok(f) => BufReader::new(f),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => {
                warn!("timeline.file: cannot read {} ({e}); the timeline starts without it", file.display());
                continue;
            }
        };
        let mut skipped = 0usize;
        for (number, line) in reader.split(b'\n').enumerate() {
            let Ok(line) = line else { break };
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            match serde_json::from_slice::<Event>(&line) {
                Ok(event) => events.push(event),
                Err(e) => {
                    skipped += 1;
                    if skipped <= 3 {
                        warn!("timeline.file: {} line {} is not an event ({e}); skipped", file.display(), number + 1);
                    }
                }
            }
        }
        if skipped > 3 {
            warn!("timeline.file: {} lines of {} skipped in all", skipped, file.display());
        }
    }
    // Ids increase through the file; a file edited by hand is put back in order.
    events.sort_by_key(|e| e.id);
    events.dedup_by_key(|e| e.id);
    let extra = events.len().saturating_sub(capacity);
    events.drain(..extra);
    events
}

/// The writer thread's front end.
pub(super) struct Appender {
    lines: SyncSender<Vec<u8>>,
    dropped: std::sync::Mutex<LogBudget>,
}

impl Appender {
    /// Start appending to `path`; None (logged) when it cannot be opened.
    pub(super) fn start(path: PathBuf, capacity: usize) -> Option<Appender> {
        let (file, lines_in_file) = match open(&path) {
            Ok(opened) => opened,
            Err(e) => {
                error!(
                    "timeline.file: cannot open {} for appending ({e}); events are kept in memory only",
                    path.display()
                );
                return None;
            }
        };
        let (lines, receiver) = mpsc::sync_channel::<Vec<u8>>(QUEUE);
        let writer = Writer { path, file, lines_in_file, capacity };
        let spawned = std::thread::Builder::new().name("timeline-file".into()).spawn(move || writer.run(receiver));
        if let Err(e) = spawned {
            error!("timeline.file: cannot start its writer ({e}); events are kept in memory only");
            return None;
        }
        Some(Appender { lines, dropped: std::sync::Mutex::new(LogBudget::new(1, Duration::from_secs(60))) })
    }

    /// Queue `event` for the file; never blocks.
    pub(super) fn append(&self, event: &Event) {
        let mut line = serde_json::to_vec(event).unwrap_or_default();
        line.push(b'\n');
        match self.lines.try_send(line) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                if let Some(suppressed) = lock(&self.dropped).admit() {
                    warn!("timeline.file: the disk is behind; event {} kept in memory only{suppressed}", event.id);
                }
            }
            Err(TrySendError::Disconnected(_)) => {}
        }
    }
}

fn open(path: &Path) -> std::io::Result<(File, usize)> {
    let lines = match File::open(path) {
        Ok(f) => BufReader::new(f).split(b'\n').count(),
        Err(_) => 0,
    };
    Ok((OpenOptions::new().create(true).append(true).open(path)?, lines))
}

struct Writer {
    path: PathBuf,
    file: File,
    lines_in_file: usize,
    capacity: usize,
}

impl Writer {
    fn run(mut self, lines: mpsc::Receiver<Vec<u8>>) {
        let mut failures = LogBudget::new(1, Duration::from_secs(60));
        while let Ok(line) = lines.recv() {
            if let Err(e) = self.write(&line)
                && let Some(suppressed) = failures.admit()
            {
                error!(
                    "timeline.file: cannot write {} ({e}); events are kept in memory{suppressed}",
                    self.path.display()
                );
            }
        }
    }

    fn write(&mut self, line: &[u8]) -> std::io::Result<()> {
        if self.lines_in_file >= self.capacity {
            std::fs::rename(&self.path, previous(&self.path))?;
            self.file = OpenOptions::new().create(true).append(true).open(&self.path)?;
            self.lines_in_file = 0;
        }
        // One write per line: a crash leaves at most one partial line, skipped when read back.
        self.file.write_all(line)?;
        self.lines_in_file += 1;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Kind, Note, Timeline};
    use super::*;
    use crate::config::TimelineConfig;

    fn wait_for_lines(path: &Path, lines: usize) {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while std::fs::read_to_string(path).unwrap_or_default().lines().count() < lines {
            assert!(std::time::Instant::now() < deadline, "the writer never wrote {lines} lines");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    #[test]
    fn events_survive_a_restart_and_ids_go_on() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let path = dir.path().join("events.jsonl");
        let config = TimelineConfig { capacity: 10, file: Some(path.clone()) };
        let first = Timeline::open(&config);
        first.record(Note::new(Kind::Crashed, "one").plugin("a"));
        first.record(Note::new(Kind::Started, "two").plugin("a"));
        wait_for_lines(&path, 2);
        drop(first);

        let second = Timeline::open(&config);
        let newest = second.newest(None, 10);
        assert_eq!(newest.iter().map(|e| e.message.as_str()).collect::<Vec<_>>(), ["two", "one"]);
        assert_eq!(second.record(Note::new(Kind::Hello, "three")).id, 3);
    }

    #[test]
    fn a_corrupt_line_is_skipped_and_the_file_rotates_at_its_capacity() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let path = dir.path().join("events.jsonl");
        let config = TimelineConfig { capacity: 3, file: Some(path.clone()) };
        let timeline = Timeline::open(&config);
        for n in 0..5 {
            timeline.record(Note::new(Kind::Crashed, format!("crash {n}")));
        }
        wait_for_lines(&path, 2);
        assert_eq!(std::fs::read_to_string(previous(&path)).expect("rotated").lines().count(), 3);
        drop(timeline);
        let mut file = OpenOptions::new().append(true).open(&path).expect("the file");
        file.write_all(b"{not json\n\xff\xfe\n").expect("written");
        let events = read_back(&path, 3);
        assert_eq!(events.iter().map(|e| e.id).collect::<Vec<_>>(), [3, 4, 5]);
    }
}
