//! Reading processes from `/proc` with as few system calls as it takes, for the supervisors'
//! tree walks and the sampler's readings of 1,000 plugins alike.
//!
//! One read of `/proc/PID/stat` gives all the host needs of a process: its identity (PID and
//! start time), group, state, thread count, CPU time and resident memory. A process's children
//! come from `/proc/PID/task/TID/children`; a single-threaded process has only its main thread,
//! so its task directory is not listed. Files are read into one reused buffer, each with a
//! single `read` when it fits (a short read from a `/proc` file is its end).

use std::fmt::Write as _;
use std::fs::File;
use std::io::{ErrorKind, Read};

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
        let pid = process.pid;
        if process.threads <= 1 {
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

    /// `root` (first, when it exists) and every live process below it, each read once.
    pub fn tree(&mut self, root: u32) -> Vec<ProcStat> {
        let mut tree = Vec::new();
        let mut pending = vec![root];
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
            let list = std::str::from_utf8(&self.buf).unwrap_or_default();
            into.extend(list.split_ascii_whitespace().filter_map(|c| c.parse::<u32>().ok()));
        }
    }

    /// Read the file at `self.path` whole into `self.buf`.
    fn read(&mut self) -> Option<()> {
        self.buf.clear();
        let mut file = File::open(&self.path).ok()?;
        loop {
            let filled = self.buf.len();
            if self.buf.capacity() - filled < READ_CHUNK / 2 {
                self.buf.reserve(READ_CHUNK);
            }
            self.buf.resize(self.buf.capacity(), 0);
            let room = self.buf.len() - filled;
            match file.read(&mut self.buf[filled..]) {
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
        if let Some(sleep) = sleep {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(sleep as i32), nix::sys::signal::SIGKILL);
        }
        let _ = shell.kill();
        let _ = shell.wait();
        let sleep = sleep.expect("the shell started its sleep");
        assert_eq!(tree[0].pid, std::process::id(), "the root comes first");
        assert!(tree[0].threads > 1, "the test harness runs this test on a thread of its own");
        for pid in [shell.id(), sleep] {
            assert!(tree.iter().any(|p| p.pid == pid), "{tree:?} should hold {pid}");
        }
    }
}
