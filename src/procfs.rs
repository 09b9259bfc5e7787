//! What the kernel says about a process: reading `/proc` with as few system calls as it
//! takes, for the plugins' tree walks and reaping and the sampler's readings of 1,000 plugins
//! alike.
//!
//! One read of `/proc/PID/stat` gives all the host needs of a process: its identity (PID and
//! start time), group, state, thread count, CPU time and resident memory. A process's children
//! come from `/proc/PID/task/TID/children`; a single-threaded process has only its main thread,
//! so its task directory is not listed. Files are read into one reused buffer, each with a
//! single `read` when it fits (a short read from a `/proc` file is its end).
//!
//! A plugin's own process is read every second for as long as it runs, so its files are held
//! open ([`OpenProcess::hold`]) and re-read from offset 0: no path lookup, open or close.
//! Every walk from that PID (the reaper's refresh and the sampler alike) uses the held files.
//! An open `/proc/PID` file stays bound to the process it was opened for: once that process
//! is reaped, reading fails (`ESRCH`) instead of reading another process that reused the PID.
//!
//! The once-a-second question "has this plugin any child?" needs the thread count (every
//! thread has its own `children` file), and `stat` is the dearest file to read: the kernel
//! formats 52 fields for it. The held task directory answers it instead: procfs counts a
//! directory's threads in its link count (`nlink` is 2 plus the threads).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs::File;
use std::io::ErrorKind;
use std::os::unix::fs::FileExt;
use std::sync::{Arc, Mutex, Weak};

use crate::sync::lock;

/// A walk of a tree stops here: a fork bomb must not make it unbounded.
pub const MAX_TREE: usize = 4096;

/// The buffer grows by this much when a file does not fit (a host with 1,000 children has a
/// `children` file of about 7 KB; a `stat` line is a few hundred bytes).
const READ_CHUNK: usize = 4096;

/// What `/proc/PID/stat` says about a process that matters here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcStat {
    pub pid: u32,
    pub pgid: u32,
    pub zombie: bool,
    pub threads: u32,
    /// Clock ticks after boot: with the PID, the identity of a process.
    pub start_time: u64,
    /// User plus system CPU time, in clock ticks.
    pub cpu_ticks: u64,
    pub resident_pages: u64,
}

impl ProcStat {
    /// Parse one `stat` line. The command name may hold spaces and parentheses; the fields
    /// after the last ')' are state, ppid, pgrp, ... (see proc(5); starttime is the 20th).
    fn parse(pid: u32, line: &[u8]) -> Option<ProcStat> {
        let close = line.iter().rposition(|&b| b == b')')?;
        let rest = std::str::from_utf8(&line[close + 1..]).ok()?;
        let fields: Vec<&str> = rest.split_ascii_whitespace().take(22).collect();
        let number = |i: usize| fields.get(i)?.parse::<u64>().ok();
        Some(ProcStat {
            pid,
            pgid: u32::try_from(number(2)?).ok()?,
            zombie: *fields.first()? == "Z",
            threads: u32::try_from(number(17)?).ok()?,
            start_time: number(19)?,
            cpu_ticks: number(11)? + number(12)?,
            resident_pages: number(21)?,
        })
    }

    pub fn identity(self) -> (u32, u64) {
        (self.pid, self.start_time)
    }
}

/// The processes whose files are held open, by PID: two descriptors per plugin, shared by
/// every reader instead of each holding its own.
static HELD_OPEN: Mutex<BTreeMap<u32, Weak<OpenProcess>>> = Mutex::new(BTreeMap::new());

fn held_open() -> std::sync::MutexGuard<'static, BTreeMap<u32, Weak<OpenProcess>>> {
    // Every change is one insert or remove: the map is consistent even if a holder panicked.
    lock(&HELD_OPEN)
}

/// A process's `stat` file, its main thread's `children` file and its task directory, held
/// open for re-reading.
#[derive(Debug)]
pub struct OpenProcess {
    pid: u32,
    stat: File,
    children: File,
    tasks: File,
}

impl OpenProcess {
    /// Open the files of `pid` for every walk from it, until the returned value is dropped.
    /// `pid` must not be reaped meanwhile (a child not yet waited for): the files then belong
    /// to that very process for as long as they are open.
    pub fn hold(pid: u32) -> std::io::Result<Arc<OpenProcess>> {
        let open = Arc::new(OpenProcess {
            pid,
            stat: File::open(format!("/proc/{pid}/stat"))?,
            children: File::open(format!("/proc/{pid}/task/{pid}/children"))?,
            tasks: File::open(format!("/proc/{pid}/task"))?,
        });
        held_open().insert(pid, Arc::downgrade(&open));
        Ok(open)
    }

    /// How many threads the process has; 0 once it has been reaped (procfs then counts none).
    fn threads(&self) -> u32 {
        use std::os::unix::fs::MetadataExt;
        let links = self.tasks.metadata().map_or(0, |m| m.nlink());
        u32::try_from(links.saturating_sub(2)).unwrap_or(u32::MAX)
    }
}

impl Drop for OpenProcess {
    fn drop(&mut self) {
        let mut held = held_open();
        // The PID may be held again by now, for a newer process: that entry stays.
        if held.get(&self.pid).is_some_and(|w| std::ptr::eq(w.as_ptr(), self)) {
            held.remove(&self.pid);
        }
    }
}

/// Reads `/proc` files into one reused buffer.
#[derive(Debug, Default)]
pub struct ProcReader {
    buf: Vec<u8>,
    path: String,
}

impl ProcReader {
    /// The process `pid` as it is now; None once it is gone (or unreadable).
    pub fn stat(&mut self, pid: u32) -> Option<ProcStat> {
        self.set_path(format_args!("/proc/{pid}/stat"));
        self.read()?;
        ProcStat::parse(pid, &self.buf)
    }

    /// Append the children of `process` (read a moment ago) to `into`.
    pub fn children(&mut self, process: &ProcStat, into: &mut Vec<u32>) {
        self.children_of_threads(process.pid, process.threads, into);
    }

    /// Append the children of `pid`, which has `threads` threads, to `into`.
    fn children_of_threads(&mut self, pid: u32, threads: u32, into: &mut Vec<u32>) {
        if threads <= 1 {
            self.set_path(format_args!("/proc/{pid}/task/{pid}/children"));
            self.read_pids(into);
            return;
        }
        // A child belongs to the thread that forked it: every thread's list counts.
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else { return };
        for task in tasks.flatten() {
            let Some(tid) = task.file_name().to_str().and_then(|t| t.parse::<u32>().ok()) else { continue };
            self.set_path(format_args!("/proc/{pid}/task/{tid}/children"));
            self.read_pids(into);
        }
    }

    /// Append the children of the main thread of `pid` only.
    pub fn main_thread_children(&mut self, pid: u32, into: &mut Vec<u32>) {
        self.set_path(format_args!("/proc/{pid}/task/{pid}/children"));
        self.read_pids(into);
    }

    /// Whether `root` has a child now; None once it is gone. A held root is asked through its
    /// open files, without reading its `stat`.
    pub fn has_children(&mut self, root: u32) -> Option<bool> {
        let held = held_open().get(&root).and_then(Weak::upgrade);
        let mut children = Vec::new();
        match held {
            Some(open) => match open.threads() {
                0 => return None,
                threads => self.open_children(&open, threads, &mut children)?,
            },
            None => {
                let process = self.stat(root)?;
                self.children(&process, &mut children);
            }
        }
        Some(!children.is_empty())
    }

    /// `root` (first, when it exists) and every live process below it, each read once. A held
    /// root is read through its open files (and is gone once reaped, whoever has its PID now).
    pub fn tree(&mut self, root: u32) -> Vec<ProcStat> {
        let held = held_open().get(&root).and_then(Weak::upgrade);
        match held {
            Some(open) => self.open_tree(&open),
            None => self.walk(Vec::new(), vec![root]),
        }
    }

    fn open_tree(&mut self, root: &OpenProcess) -> Vec<ProcStat> {
        if self.read_open(&root.stat).is_none() {
            return Vec::new();
        }
        let Some(process) = ProcStat::parse(root.pid, &self.buf) else { return Vec::new() };
        let mut pending = Vec::new();
        self.open_children(root, process.threads, &mut pending);
        self.walk(vec![process], pending)
    }

    /// Append the children of the held `root`, which has `threads` threads, to `into`: a
    /// single thread's through the held file.
    fn open_children(&mut self, root: &OpenProcess, threads: u32, into: &mut Vec<u32>) -> Option<()> {
        if threads > 1 {
            self.children_of_threads(root.pid, threads, into);
            return Some(());
        }
        self.read_open(&root.children)?;
        self.parse_pids(into);
        Some(())
    }

    /// Add `pending` and every live process below them to `tree`.
    fn walk(&mut self, mut tree: Vec<ProcStat>, mut pending: Vec<u32>) -> Vec<ProcStat> {
        while let Some(pid) = pending.pop() {
            if tree.len() >= MAX_TREE {
                break;
            }
            let Some(process) = self.stat(pid) else { continue };
            self.children(&process, &mut pending);
            tree.push(process);
        }
        if tree.len() > 1 {
            // A plugin that is itself a subreaper can adopt a process between two reads, which
            // would then be listed under its old parent and under the plugin.
            let mut seen = std::collections::HashSet::with_capacity(tree.len());
            tree.retain(|p| seen.insert(p.pid));
        }
        tree
    }

    fn set_path(&mut self, path: std::fmt::Arguments<'_>) {
        self.path.clear();
        // Invariant: writing to a String cannot fail.
        self.path.write_fmt(path).expect("formatting into a String succeeds");
    }

    fn read_pids(&mut self, into: &mut Vec<u32>) {
        if self.read().is_some() {
            self.parse_pids(into);
        }
    }

    fn parse_pids(&self, into: &mut Vec<u32>) {
        let list = std::str::from_utf8(&self.buf).unwrap_or_default();
        into.extend(list.split_ascii_whitespace().filter_map(|c| c.parse::<u32>().ok()));
    }

    /// Read the file at `self.path` whole into `self.buf`.
    fn read(&mut self) -> Option<()> {
        let file = File::open(&self.path).ok()?;
        self.read_open(&file)
    }

    /// Read `file` whole, from its start, into `self.buf`.
    fn read_open(&mut self, file: &File) -> Option<()> {
        self.buf.clear();
        loop {
            let filled = self.buf.len();
            if self.buf.capacity() - filled < READ_CHUNK / 2 {
                self.buf.reserve(READ_CHUNK);
            }
            self.buf.resize(self.buf.capacity(), 0);
            let room = self.buf.len() - filled;
            match file.read_at(&mut self.buf[filled..], filled as u64) {
                Ok(n) => {
                    self.buf.truncate(filled + n);
                    // /proc's files fill a read as far as they reach: a short one is the end.
                    if n < room {
                        return Some(());
                    }
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => self.buf.truncate(filled),
                Err(_) => return None,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::process::{Command, Stdio};

    use super::*;

    #[test]
    fn parses_a_command_name_with_spaces_and_parentheses() {
        let line =
            b"42 (a) b (c)) S 1 40 40 0 -1 4194560 100 0 0 0 7 3 0 0 20 0 2 0 5555 1000000 250 18446744073709551615";
        let stat = ProcStat::parse(42, line).expect("a well-formed line");
        assert_eq!(
            stat,
            ProcStat {
                pid: 42,
                pgid: 40,
                zombie: false,
                threads: 2,
                start_time: 5555,
                cpu_ticks: 10,
                resident_pages: 250
            }
        );
        assert_eq!(ProcStat::parse(42, b"42 (cut short) S 1 40"), None);
    }

    #[test]
    fn reads_identity_and_group_of_this_process() {
        let mut reader = ProcReader::default();
        let me = reader.stat(std::process::id()).expect("this process has a /proc entry");
        assert!(!me.zombie && me.resident_pages > 0 && me.threads >= 1);
        assert_eq!(me.pgid, nix::unistd::getpgrp().as_raw() as u32);
        assert_eq!(reader.stat(std::process::id()).map(ProcStat::identity), Some(me.identity()));
    }

    /// Tests run on threads of their own, not the main one: a child forked by this thread is
    /// listed under this thread's task only, and a grandchild under the child.
    #[test]
    fn a_tree_holds_the_children_of_every_thread_and_their_children() {
        let mut shell =
            Command::new("sh").args(["-c", "sleep 30 & wait"]).stdin(Stdio::null()).spawn().expect("sh runs");
        let mut reader = ProcReader::default();
        let mut sleep = None;
        for _ in 0..500 {
            let mut children = Vec::new();
            if let Some(shell) = reader.stat(shell.id()) {
                reader.children(&shell, &mut children);
            }
            sleep = children.first().copied();
            if sleep.is_some() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        let tree = reader.tree(std::process::id());
        // Held, this process answers through its task directory's thread count.
        let held = OpenProcess::hold(std::process::id()).expect("this process's files open");
        let threads = held.threads();
        let has_children = reader.has_children(std::process::id());
        drop(held);
        if let Some(sleep) = sleep {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(sleep as i32), nix::sys::signal::SIGKILL);
        }
        let _ = shell.kill();
        let _ = shell.wait();
        let sleep = sleep.expect("the shell started its sleep");
        assert_eq!(tree[0].pid, std::process::id(), "the root comes first");
        assert!(tree[0].threads > 1, "the test harness runs this test on a thread of its own");
        assert!(threads > 1, "{threads} threads counted from the task directory");
        assert_eq!(has_children, Some(true), "a child of another thread than the main one counts");
        for pid in [shell.id(), sleep] {
            assert!(tree.iter().any(|p| p.pid == pid), "{tree:?} should hold {pid}");
        }
    }

    /// Held-open files are re-read afresh (the child appears after the first read), and once
    /// the process is reaped they refuse to read rather than show whoever reuses its PID.
    #[test]
    fn an_open_process_is_reread_until_it_is_reaped() {
        let mut shell =
            Command::new("sh").args(["-c", "read _; sleep 30 & wait"]).stdin(Stdio::piped()).spawn().expect("sh runs");
        let open = OpenProcess::hold(shell.id()).expect("an unreaped child's files open");
        let mut reader = ProcReader::default();
        let alone = reader.tree(shell.id());
        let alone_has_children = reader.has_children(shell.id());
        let threads = open.threads();
        drop(shell.stdin.take());
        let mut grown = Vec::new();
        for _ in 0..500 {
            grown = reader.tree(shell.id());
            if grown.len() == 2 {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        let grown_has_children = reader.has_children(shell.id());
        for process in &grown {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(process.pid as i32), nix::sys::signal::SIGKILL);
        }
        let _ = shell.wait();
        let after_reaping = reader.tree(shell.id());
        let children_after_reaping = reader.has_children(shell.id());
        let threads_after_reaping = open.threads();
        let refusal = open.stat.read_at(&mut [0; 64], 0).map_err(|e| e.raw_os_error());
        drop(open);
        assert!(!held_open().contains_key(&shell.id()), "dropped files are no longer held");
        assert_eq!(alone.iter().map(|p| p.pid).collect::<Vec<_>>(), vec![shell.id()]);
        assert_eq!(grown.len(), 2, "the shell and its sleep: {grown:?}");
        assert_eq!(after_reaping, Vec::new());
        assert_eq!((threads, alone_has_children, grown_has_children), (1, Some(false), Some(true)));
        assert_eq!((threads_after_reaping, children_after_reaping), (0, None));
        assert_eq!(refusal, Err(Some(nix::libc::ESRCH)));
    }
}
