//! Plugin process trees: which processes belong to a plugin, signalling all of them, and
//! reaping the orphans that the host adopts as a child subreaper.
//!
//! The host marks itself a child subreaper (`PR_SET_CHILD_SUBREAPER`), so a process whose
//! parent dies — a plugin's grandchild after a double fork, even one that called `setsid()` —
//! is re-parented to the host instead of to init. The host can then find it (its parent is the
//! host) and kill it, and must reap it. Reaping never uses `waitpid(-1)`: that would steal the
//! exit status of a plugin that tokio is waiting for. Only children that are not plugin
//! processes are reaped, each by its own PID, and a plugin is registered under the same lock
//! it is spawned under, so no plugin is ever mistaken for an orphan.
//!
//! Processes are signalled by PID only after re-reading their start time, so a PID reused by
//! an unrelated process after the original died is left alone.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use crate::procfs::{OpenProcess, ProcReader, ProcStat};
use crate::sync::lock;
use nix::sys::signal::{Signal, kill, killpg};
use nix::sys::wait::{WaitPidFlag, waitpid};
use nix::unistd::Pid;
use tokio::process::{Child, Command};
use tokio::signal::unix::{SignalKind, signal};
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

/// How often every family's members are recorded: a process a plugin starts and abandons
/// within this time before the plugin crashes is not yet known to belong to it.
pub const REFRESH_INTERVAL: Duration = Duration::from_secs(1);

/// The host's plugin processes, the orphans it adopted, and every plugin's family.
#[derive(Debug, Default)]
pub struct Reaper {
    /// PIDs of plugin processes not yet reaped by their supervisors; tokio reaps those.
    plugins: Mutex<HashSet<u32>>,
    /// Every family, refreshed together in one pass: a pass reads the adopted orphans (every
    /// host thread's `children` file, which lists every plugin) once, where a refresh of each
    /// family on its own timer read them once per plugin, plugins x plugins a second, and woke
    /// the runtime once per plugin.
    families: Mutex<Vec<Weak<Members>>>,
}

impl Reaper {
    /// Make this process the subreaper of everything its plugins start.
    pub fn adopt_orphans() -> Arc<Reaper> {
        if let Err(e) = nix::sys::prctl::set_child_subreaper(true) {
            warn!("cannot become a child subreaper ({e}); processes that plugins detach may outlive them");
        }
        Arc::new(Reaper::default())
    }

    fn plugins(&self) -> MutexGuard<'_, HashSet<u32>> {
        lock(&self.plugins)
    }

    /// Spawn a plugin process, registered before any orphan sweep can see it.
    pub fn spawn(&self, command: &mut Command) -> std::io::Result<Child> {
        let mut plugins = self.plugins();
        let child = command.spawn()?;
        if let Some(pid) = child.id() {
            plugins.insert(pid);
        }
        Ok(child)
    }

    /// The plugin process `pid` has been reaped by its supervisor.
    pub fn forget(&self, pid: u32) {
        self.plugins().remove(&pid);
    }

    /// The host's children that are not plugin processes: adopted orphans.
    fn orphans(&self) -> Vec<ProcStat> {
        read_orphans(&self.plugins())
    }

    /// The orphans the host adopted, read more cheaply than [`Reaper::orphans`]: the kernel
    /// hands an orphan to the first live thread of its subreaper, the host's main thread, which
    /// spawns no plugin (they are spawned on the runtime's workers). Its `children` file lists
    /// the orphans alone, where reading every thread's lists all 1,000 plugins besides: that
    /// was a fifth of the host's idle CPU at 1,000 plugins, once a second.
    fn adopted_orphans(&self) -> Vec<ProcStat> {
        let mut reader = ProcReader::default();
        let mut children = Vec::new();
        reader.main_thread_children(std::process::id(), &mut children);
        let plugins = self.plugins();
        children.into_iter().filter(|pid| !plugins.contains(pid)).filter_map(|pid| reader.stat(pid)).collect()
    }

    /// Reap every adopted orphan that has exited.
    pub fn reap_orphans(&self) {
        // Held throughout, so that no plugin spawned meanwhile is taken for an orphan.
        let plugins = self.plugins();
        for orphan in read_orphans(&plugins).into_iter().filter(|o| o.zombie) {
            let status = waitpid(Pid::from_raw(orphan.pid as i32), Some(WaitPidFlag::WNOHANG));
            debug!(pid = orphan.pid, ?status, "reaped an orphan of a plugin");
        }
    }

    /// Record who belongs to every family now, in one pass.
    pub fn refresh_families(&self) {
        let families: Vec<Arc<Members>> = {
            let mut families = lock(&self.families);
            families.retain(|f| f.strong_count() > 0);
            families.iter().filter_map(Weak::upgrade).collect()
        };
        if families.is_empty() {
            return;
        }
        let orphans = self.adopted_orphans();
        let mut reader = ProcReader::default();
        for family in families {
            family.refresh(&mut reader, &orphans);
        }
    }

    /// Reap orphans as they exit and refresh every family each [`REFRESH_INTERVAL`], until `stop`.
    pub async fn run(self: Arc<Self>, stop: CancellationToken) {
        let mut exits = signal(SignalKind::child())
            .map_err(|e| {
                warn!("cannot watch for exiting processes ({e}); orphans of plugins are reaped only at shutdown")
            })
            .ok();
        let mut refresh = tokio::time::interval(REFRESH_INTERVAL);
        refresh.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                Some(()) = async { exits.as_mut()?.recv().await } => self.reap_orphans(),
                _ = refresh.tick() => {
                    // Reading /proc for 1,000 plugins takes milliseconds: not on the runtime's threads.
                    let reaper = self.clone();
                    let _ = tokio::task::spawn_blocking(move || reaper.refresh_families()).await;
                }
                () = stop.cancelled() => return,
            }
        }
    }

    /// At shutdown, once no plugin runs: kill every adopted orphan and all below it, and reap.
    pub async fn kill_all_orphans(&self) {
        let orphans: Vec<ProcStat> = self.orphans().into_iter().filter(|o| !o.zombie).collect();
        if !orphans.is_empty() {
            warn!(count = orphans.len(), "killing processes that plugins left behind");
        }
        signal_each(&with_descendants(&orphans), Signal::SIGKILL, None);
        for _ in 0..20 {
            self.reap_orphans();
            if self.orphans().is_empty() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
}

/// The host's children that are not among `plugins`.
fn read_orphans(plugins: &HashSet<u32>) -> Vec<ProcStat> {
    let mut reader = ProcReader::default();
    let mut children = Vec::new();
    if let Some(host) = reader.stat(std::process::id()) {
        reader.children(&host, &mut children);
    }
    children.into_iter().filter(|pid| !plugins.contains(pid)).filter_map(|pid| reader.stat(pid)).collect()
}

/// Every process in the trees under `roots` (the roots included), read afresh; a root that is
/// no longer the process it was read as (it ended, its PID perhaps reused) is left out.
fn with_descendants(roots: &[ProcStat]) -> Vec<ProcStat> {
    let mut reader = ProcReader::default();
    roots
        .iter()
        .flat_map(|root| {
            let tree = reader.tree(root.pid);
            let same = tree.first().is_some_and(|now| now.identity() == root.identity());
            if same { tree } else { Vec::new() }
        })
        .collect()
}

/// Signal each process by PID; with `group`, skip its members (the group is signalled at once).
fn signal_each(processes: &[ProcStat], signal: Signal, group: Option<u32>) {
    let mut reader = ProcReader::default();
    for process in processes.iter().filter(|p| !p.zombie && Some(p.pgid) != group) {
        // Still the very process that was read: a PID freed and reused since is left alone.
        if reader.stat(process.pid).is_some_and(|now| now.start_time == process.start_time) {
            let _ = kill(Pid::from_raw(process.pid as i32), signal);
        }
    }
}

/// Who belongs to one plugin process, shared between its [`Family`] and the reaper's refresh.
#[derive(Debug)]
struct Members {
    root: u32,
    /// Set once the root has been reaped: from then on its PID may name another process.
    root_reaped: AtomicBool,
    /// The root's files, held open while it is unreaped: walks from the root (the refresh every
    /// second, the sampler) re-read them instead of opening two files (None if they could not
    /// be opened).
    root_files: Mutex<Option<Arc<OpenProcess>>>,
    /// (pid, start time) of every process seen in the tree.
    known: Mutex<HashSet<(u32, u64)>>,
}

impl Members {
    /// Remember who is in the tree now, so they can be found after their parent died. The
    /// dead are forgotten, or a plugin that runs many short commands would grow the set.
    fn refresh(&self, reader: &mut ProcReader, orphans: &[ProcStat]) {
        if self.is_root_alone(reader, orphans) {
            return;
        }
        let now = self.read(reader, orphans).iter().map(|m| m.identity()).collect();
        *lock(&self.known) = now;
    }

    /// Is the family its live root and nothing else, as most plugins are? Then there is nothing
    /// new to remember (the root itself needs no record: it is never looked for after it is
    /// reaped), and this costs two small system calls instead of reading the root's `stat`,
    /// the most of the host's idle CPU at 1,000 plugins.
    fn is_root_alone(&self, reader: &mut ProcReader, orphans: &[ProcStat]) -> bool {
        if self.root_reaped.load(Ordering::Acquire) {
            return false;
        }
        let nothing_else_known = {
            let known = lock(&self.known);
            known.iter().all(|&(pid, _)| pid == self.root)
                && !orphans.iter().any(|o| o.pgid == self.root || known.contains(&o.identity()))
        };
        nothing_else_known && reader.has_children(self.root) == Some(false)
    }

    /// Every live process of this family, given the host's adopted orphans.
    fn read(&self, reader: &mut ProcReader, orphans: &[ProcStat]) -> Vec<ProcStat> {
        let known = lock(&self.known).clone();
        let mut found: HashMap<u32, ProcStat> = HashMap::new();
        if !self.root_reaped.load(Ordering::Acquire) {
            found.extend(reader.tree(self.root).into_iter().map(|p| (p.pid, p)));
        }
        for &(pid, start_time) in &known {
            if found.get(&pid).is_some_and(|p| p.start_time == start_time) {
                continue;
            }
            if let Some(stat) = reader.stat(pid).filter(|s| s.start_time == start_time) {
                found.insert(pid, stat);
            }
        }
        let adopted: Vec<ProcStat> =
            orphans.iter().filter(|o| o.pgid == self.root || known.contains(&o.identity())).copied().collect();
        found.extend(with_descendants(&adopted).into_iter().map(|s| (s.pid, s)));
        found.into_values().collect()
    }
}

/// The processes that belong to one plugin process: its tree while it lives, and afterwards
/// whatever of it the host adopted (known members, or members of its process group). The
/// reaper records its members every [`REFRESH_INTERVAL`].
#[derive(Debug)]
pub struct Family {
    members: Arc<Members>,
    reaper: Arc<Reaper>,
}

impl Family {
    /// `root` is a child of the host not yet reaped.
    pub fn new(root: u32, reaper: Arc<Reaper>) -> Family {
        let root_files = OpenProcess::hold(root)
            .map_err(|e| debug!(pid = root, "cannot hold the plugin's /proc files open ({e}); reading them by path"))
            .ok();
        let members = Arc::new(Members {
            root,
            root_reaped: AtomicBool::new(false),
            root_files: Mutex::new(root_files),
            known: Mutex::new(HashSet::new()),
        });
        lock(&reaper.families).push(Arc::downgrade(&members));
        Family { members, reaper }
    }

    /// Record who is in the tree now (as the reaper does every [`REFRESH_INTERVAL`]).
    pub fn refresh(&self) {
        self.members.refresh(&mut ProcReader::default(), &self.reaper.orphans());
    }

    /// The root process has been reaped (by tokio): never signal its PID or group again.
    pub fn root_reaped(&mut self) {
        self.members.root_reaped.store(true, Ordering::Release);
        *lock(&self.members.root_files) = None;
        self.reaper.forget(self.members.root);
    }

    /// Send `signal` to every process of the family: to the root's process group at once while
    /// the root is unreaped (its PID cannot have been reused), and to each member by PID.
    pub fn signal(&self, signal: Signal) {
        let root_reaped = self.members.root_reaped.load(Ordering::Acquire);
        let group = (!root_reaped).then_some(self.members.root);
        if let Some(group) = group {
            let _ = killpg(Pid::from_raw(group as i32), signal);
        }
        let members = self.members.read(&mut ProcReader::default(), &self.reaper.orphans());
        signal_each(&members, signal, group);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sleeper() -> std::process::Child {
        std::process::Command::new("sleep").arg("30").spawn().expect("sleep runs")
    }

    /// The reaper's one pass records every family's members, so a process is still found after
    /// its parent died and it left the plugin's process group; the host's own children that are
    /// not plugins are its adopted orphans.
    #[tokio::test]
    async fn the_shared_refresh_remembers_members_whose_parent_died() {
        let reaper = Arc::new(Reaper::default());
        let mut plugin =
            reaper.spawn(Command::new("sh").args(["-c", "setsid sleep 30 & wait"]).process_group(0)).expect("sh runs");
        let root = plugin.id().expect("running");
        let family = Family::new(root, reaper.clone());
        let mut stray = sleeper();
        let mut detached = None;
        for _ in 0..500 {
            reaper.refresh_families();
            detached = lock(&family.members.known).iter().find(|(pid, _)| *pid != root).copied();
            if detached.is_some() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let orphans = reaper.orphans();
        let _ = plugin.kill().await;
        let (pid, start_time) = detached.expect("the refresh found the detached sleep");
        // Its parent is gone; without the record it could no longer be found.
        let mut family = family;
        family.root_reaped();
        family.signal(Signal::SIGKILL);
        let mut gone = false;
        for _ in 0..500 {
            gone = ProcReader::default().stat(pid).is_none_or(|s| s.start_time != start_time || s.zombie);
            if gone {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let _ = stray.kill();
        let _ = stray.wait();
        assert!(gone, "the detached sleep {pid} was killed with its family");
        assert!(orphans.iter().any(|o| o.pid == stray.id()), "a child that is not a plugin is an orphan");
        assert!(!orphans.iter().any(|o| o.pid == root), "a plugin process is never an orphan");
    }

    /// A family that is its root alone records nothing; once the root has a child, both are
    /// recorded; a family that is dropped leaves the reaper's pass.
    #[tokio::test]
    async fn a_family_records_its_members_once_it_has_any_and_leaves_when_dropped() {
        let reaper = Arc::new(Reaper::default());
        let mut shell = Command::new("sh")
            .args(["-c", "read _; sleep 30 & wait"])
            .stdin(std::process::Stdio::piped())
            .spawn()
            .expect("sh runs");
        let root = shell.id().expect("running");
        let family = Family::new(root, reaper.clone());
        reaper.refresh_families();
        let alone = lock(&family.members.known).clone();
        drop(shell.stdin.take());
        let mut grown = HashSet::new();
        for _ in 0..500 {
            reaper.refresh_families();
            grown = lock(&family.members.known).clone();
            if grown.len() == 2 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        family.signal(Signal::SIGKILL);
        let _ = shell.wait().await;
        drop(family);
        reaper.refresh_families();
        assert_eq!(alone, HashSet::new(), "nothing to record for a root alone");
        assert_eq!(grown.len(), 2, "the shell and its sleep: {grown:?}");
        assert!(grown.iter().any(|&(pid, _)| pid == root));
        assert!(lock(&reaper.families).is_empty());
    }

    /// A process read earlier whose PID no longer names it is not walked: its PID may be reused.
    #[test]
    fn descendants_are_walked_only_from_the_process_that_was_read() {
        let mut child = sleeper();
        let stat = ProcReader::default().stat(child.id()).expect("sleep has a /proc entry");
        let impostor = ProcStat { start_time: stat.start_time + 1, ..stat };
        let walked = with_descendants(&[stat]);
        let refused = with_descendants(&[impostor]);
        let _ = child.kill();
        let _ = child.wait();
        assert_eq!(walked.iter().map(|p| p.identity()).collect::<Vec<_>>(), vec![stat.identity()]);
        assert_eq!(refused, Vec::new());
    }
}
