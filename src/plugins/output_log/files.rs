//! The plugins' log files (`logs.dir`): one `NAME.log` per plugin, rotated before it would
//! grow past `logs.file_max_bytes` to `NAME.log.1` … `NAME.log.N` (`logs.file_backups`), the
//! way supervisord's `stdout_logfile_maxbytes`/`backups` do.
//!
//! One thread writes every file, fed through a bounded queue that the plugins' readers never
//! wait on: a line that finds the queue full, or that cannot be written (a full disk, a
//! directory gone), is counted in the plugin's `rosey_plugin_log_file_errors_total` and logged,
//! at most once a minute per plugin, so the disk never fills or fails in silence.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::time::Duration;

use tracing::warn;

use super::{FileSettings, LogLine};
use crate::display::rfc3339;
use crate::logging::LogBudget;

/// Lines waiting for the writer before more are counted as errors.
const QUEUE: usize = 16 * 1024;
/// Per plugin, at most one warning about its file per this long.
const WARN_EVERY: Duration = Duration::from_secs(60);

/// One line for a plugin's file, formatted `TIME STREAM PID TEXT`.
pub(super) struct FileLine {
    plugin: Arc<str>,
    text: String,
    errors: Arc<AtomicU64>,
}

impl FileLine {
    pub(super) fn of(plugin: &Arc<str>, line: &LogLine, errors: &Arc<AtomicU64>) -> FileLine {
        let text = format!("{} {} {} {}\n", rfc3339(line.time), line.stream.as_str(), line.writer.pid, line.text);
        FileLine { plugin: plugin.clone(), text, errors: errors.clone() }
    }
}

/// The way into the writer thread.
#[derive(Debug, Clone)]
pub(super) struct FileWriter {
    queue: SyncSender<FileLine>,
    /// Lines refused because the queue was full, not yet reported.
    behind: Arc<AtomicU64>,
}

impl FileWriter {
    /// Start the thread; it ends when the last writer is dropped.
    pub(super) fn start(settings: FileSettings) -> FileWriter {
        let (queue, lines) = sync_channel(QUEUE);
        let behind = Arc::new(AtomicU64::new(0));
        let reported = behind.clone();
        let spawned = std::thread::Builder::new()
            .name("rosey-log-files".to_owned())
            .spawn(move || Files { settings, open: HashMap::new() }.run(&lines, &reported));
        if let Err(e) = spawned {
            // The queue's receiver is gone with the closure: every line is then counted.
            warn!("cannot start the thread that writes the plugins' log files ({e}); lines are kept in memory only");
        }
        FileWriter { queue, behind }
    }

    /// Queue `line` without waiting.
    pub(super) fn send(&self, line: FileLine) {
        match self.queue.try_send(line) {
            Ok(()) => {}
            Err(TrySendError::Full(line) | TrySendError::Disconnected(line)) => {
                line.errors.fetch_add(1, Ordering::Relaxed);
                self.behind.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// One plugin's open file.
struct OpenLog {
    file: Option<BufWriter<File>>,
    size: u64,
    warnings: LogBudget,
    /// The plugin's count of lines not written.
    errors: Arc<AtomicU64>,
}

struct Files {
    settings: FileSettings,
    open: HashMap<Arc<str>, OpenLog>,
}

impl Files {
    fn run(mut self, lines: &Receiver<FileLine>, behind: &AtomicU64) {
        if let Err(e) = std::fs::create_dir_all(&self.settings.dir) {
            // Each line that cannot be written is then counted and logged per plugin.
            warn!("cannot create logs.dir {}: {e}", self.settings.dir.display());
        }
        let mut behind_warnings = LogBudget::new(1, WARN_EVERY);
        while let Ok(first) = lines.recv() {
            self.write(first);
            // Write what else is queued, then flush once: one syscall per batch, not per line.
            while let Ok(line) = lines.try_recv() {
                self.write(line);
            }
            self.flush();
            let lost = behind.swap(0, Ordering::Relaxed);
            if lost > 0
                && let Some(suppressed) = behind_warnings.admit()
            {
                warn!("the plugins' log files fell behind: {lost} lines were not written{suppressed}");
            }
        }
        self.flush();
    }

    fn path(&self, plugin: &str) -> PathBuf {
        self.settings.dir.join(format!("{plugin}.log"))
    }

    fn write(&mut self, line: FileLine) {
        let path = self.path(&line.plugin);
        let (max_bytes, backups) = (self.settings.max_bytes, self.settings.backups);
        let log = self.open.entry(line.plugin.clone()).or_insert_with(|| OpenLog {
            file: None,
            size: 0,
            warnings: LogBudget::new(1, WARN_EVERY),
            errors: line.errors.clone(),
        });
        let len = line.text.len() as u64;
        let result = (|| {
            if log.file.is_none() {
                let file = OpenOptions::new().create(true).append(true).open(&path)?;
                log.size = file.metadata()?.len();
                log.file = Some(BufWriter::new(file));
            }
            if log.size > 0 && log.size + len > max_bytes {
                if let Some(mut file) = log.file.take() {
                    file.flush()?;
                }
                rotate(&path, backups)?;
                log.file = Some(BufWriter::new(File::create(&path)?));
                log.size = 0;
            }
            if let Some(file) = log.file.as_mut() {
                file.write_all(line.text.as_bytes())?;
                log.size += len;
            }
            Ok::<(), std::io::Error>(())
        })();
        if let Err(e) = result {
            log.file = None; // opened again for the next line
            failed(&line.plugin, &path, log, &e);
        }
    }

    fn flush(&mut self) {
        for (plugin, log) in &mut self.open {
            if let Some(file) = log.file.as_mut()
                && let Err(e) = file.flush()
            {
                log.file = None;
                let path = self.settings.dir.join(format!("{plugin}.log"));
                failed(plugin, &path, log, &e);
            }
        }
    }
}

/// Count and (rate-limited) log a line that could not be written.
fn failed(plugin: &str, path: &Path, log: &mut OpenLog, error: &std::io::Error) {
    log.errors.fetch_add(1, Ordering::Relaxed);
    if let Some(suppressed) = log.warnings.admit() {
        warn!(
            plugin,
            "cannot write its log file {}: {error}; the line is kept in memory only{suppressed}",
            path.display()
        );
    }
}

/// `NAME.log` becomes `NAME.log.1`, each `.N` becomes `.N+1`, the oldest beyond `backups` goes.
fn rotate(path: &Path, backups: u32) -> std::io::Result<()> {
    let numbered = |n: u32| {
        let mut name = path.as_os_str().to_owned();
        name.push(format!(".{n}"));
        PathBuf::from(name)
    };
    if backups == 0 {
        return std::fs::remove_file(path);
    }
    match std::fs::remove_file(numbered(backups)) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    for n in (1..backups).rev() {
        match std::fs::rename(numbered(n), numbered(n + 1)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
    }
    std::fs::rename(path, numbered(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotation_keeps_the_newest_backups() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let mut files = Files {
            settings: FileSettings { dir: dir.path().to_owned(), max_bytes: 20, backups: 2 },
            open: HashMap::new(),
        };
        let plugin: Arc<str> = Arc::from("p");
        let errors = Arc::new(AtomicU64::new(0));
        for i in 0..5 {
            // 10 bytes each: two lines per file.
            files.write(FileLine { plugin: plugin.clone(), text: format!("line {i:04}\n"), errors: errors.clone() });
        }
        files.flush();
        let read = |name: &str| std::fs::read_to_string(dir.path().join(name)).expect("the file exists");
        assert_eq!(read("p.log"), "line 0004\n");
        assert_eq!(read("p.log.1"), "line 0002\nline 0003\n");
        assert_eq!(read("p.log.2"), "line 0000\nline 0001\n");
        assert!(!dir.path().join("p.log.3").exists());
        assert_eq!(errors.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn a_line_that_cannot_be_written_is_counted() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let missing = dir.path().join("gone");
        let mut files =
            Files { settings: FileSettings { dir: missing, max_bytes: 100, backups: 1 }, open: HashMap::new() };
        let errors = Arc::new(AtomicU64::new(0));
        files.write(FileLine { plugin: Arc::from("p"), text: "x\n".to_owned(), errors: errors.clone() });
        assert_eq!(errors.load(Ordering::Relaxed), 1);
    }
}
