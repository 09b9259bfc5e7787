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
use std::sync::{Arc, Mutex, PoisonError};

use nix::sys::signal::{Signal, kill, killpg};
use nix::sys::wait::{WaitPidFlag, waitpid};
use nix::unistd::Pid;
use tokio::process::{Child, Command};
use tokio::signal::unix::{SignalKind, signal};
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

/// A walk of a tree stops here: a fork bomb must not make it unbounded.
const MAX_TREE: usize = 4096;

/// `root` and every process below it, from `/proc/PID/task/TID/children` (no table scan).
pub fn descendants_and_self(root: u32) -> Vec<u32> {
    let mut tree = vec![root];
    let mut next = 0;
    while next < tree.len() && tree.len() < MAX_TREE {
        tree.extend(children_of(tree[next]));
        next += 1;
    }
    tree
}

fn children_of(pid: u32) -> Vec<u32> {
    let mut children = Vec::new();
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else { return children };
    for task in tasks.flatten() {
        let Ok(list) = std::fs::read_to_string(task.path().join("children")) else { continue };
        children.extend(list.split_ascii_whitespace().filter_map(|c| c.parse::<u32>().ok()));
    }
    children
}

/// What `/proc/PID/stat` says about a process that matters here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ProcStat {
    pid: u32,
    pgid: u32,
    zombie: bool,
    /// Clock ticks after boot: with the PID, the identity of a process.
    start_time: u64,
}

impl ProcStat {
    fn read(pid: u32) -> Option<ProcStat> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        // The command name may hold spaces and parentheses; the fields after the last ')' are
        // state, ppid, pgrp, session, ... with starttime the 20th of them.
        let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_ascii_whitespace().collect();
        Some(ProcStat {
            pid,
            pgid: fields.get(2)?.parse().ok()?,
            zombie: *fields.first()? == "Z",
            start_time: fields.get(19)?.parse().ok()?,
        })
    }

    fn identity(self) -> (u32, u64) {
        (self.pid, self.start_time)
    }
}

/// The host's plugin processes, and the orphans it adopted.
#[derive(Debug, Default)]
pub struct Reaper {
    /// PIDs of plugin processes not yet reaped by their supervisors; tokio reaps those.
    plugins: Mutex<HashSet<u32>>,
}

impl Reaper {
    /// Make this process the subreaper of everything its plugins start.
    pub fn adopt_orphans() -> Arc<Reaper> {
        if let Err(e) = nix::sys::prctl::set_child_subreaper(true) {
            warn!("cannot become a child subreaper ({e}); processes that plugins detach may outlive them");
        }
        Arc::new(Reaper::default())
    }

    fn plugins(&self) -> std::sync::MutexGuard<'_, HashSet<u32>> {
        // The set stays consistent even if a holder panicked: every change is one insert or remove.
        self.plugins.lock().unwrap_or_else(PoisonError::into_inner)
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
    fn orphans(&self, plugins: &HashSet<u32>) -> Vec<ProcStat> {
        let me = std::process::id();
        children_of(me).into_iter().filter(|pid| !plugins.contains(pid)).filter_map(ProcStat::read).collect()
    }

    /// Reap every adopted orphan that has exited.
    pub fn reap_orphans(&self) {
        let plugins = self.plugins();
        for orphan in self.orphans(&plugins).into_iter().filter(|o| o.zombie) {
            let status = waitpid(Pid::from_raw(orphan.pid as i32), Some(WaitPidFlag::WNOHANG));
            debug!(pid = orphan.pid, ?status, "reaped an orphan of a plugin");
        }
    }

    /// Reap orphans as they exit, until `stop`.
    pub async fn run(self: Arc<Self>, stop: CancellationToken) {
        let Ok(mut exits) = signal(SignalKind::child()) else {
            warn!("cannot watch for exiting processes; orphans of plugins are reaped only at shutdown");
            return;
        };
        loop {
            tokio::select! {
                _ = exits.recv() => self.reap_orphans(),
                () = stop.cancelled() => return,
            }
        }
    }

    /// At shutdown, once no plugin runs: kill every adopted orphan and all below it, and reap.
    pub async fn kill_all_orphans(&self) {
        let orphans: Vec<ProcStat> = self.orphans(&self.plugins()).into_iter().filter(|o| !o.zombie).collect();
        if !orphans.is_empty() {
            warn!(count = orphans.len(), "killing processes that plugins left behind");
        }
        signal_each(&with_descendants(&orphans), Signal::SIGKILL, None);
        for _ in 0..20 {
            self.reap_orphans();
            if self.orphans(&self.plugins()).is_empty() {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(25)).await;
        }
    }
}

/// Every process in the trees under `roots` (the roots included), read afresh.
fn with_descendants(roots: &[ProcStat]) -> Vec<ProcStat> {
    roots.iter().flat_map(|root| descendants_and_self(root.pid)).filter_map(ProcStat::read).collect()
}

/// Signal each process by PID; with `group`, skip its members (the group is signalled at once).
fn signal_each(processes: &[ProcStat], signal: Signal, group: Option<u32>) {
    for process in processes.iter().filter(|p| !p.zombie && Some(p.pgid) != group) {
        // Still the very process that was read: a PID freed and reused since is left alone.
        if ProcStat::read(process.pid).is_some_and(|now| now.start_time == process.start_time) {
            let _ = kill(Pid::from_raw(process.pid as i32), signal);
        }
    }
}

/// The processes that belong to one plugin process: its tree while it lives, and afterwards
/// whatever of it the host adopted (known members, or members of its process group).
#[derive(Debug)]
pub struct Family {
    root: u32,
    /// Set once the root has been reaped: from then on its PID may name another process.
    root_reaped: bool,
    /// (pid, start time) of every process seen in the tree.
    known: HashSet<(u32, u64)>,
    reaper: Arc<Reaper>,
}

impl Family {
    pub fn new(root: u32, reaper: Arc<Reaper>) -> Family {
        Family { root, root_reaped: false, known: HashSet::new(), reaper }
    }

    /// Remember who is in the tree now, so they can be found after their parent died. The
    /// dead are forgotten, or a plugin that runs many short commands would grow the set.
    pub fn refresh(&mut self) {
        self.known = self.members().iter().map(|m| m.identity()).collect();
    }

    /// The root process has been reaped (by tokio): never signal its PID or group again.
    pub fn root_reaped(&mut self) {
        self.root_reaped = true;
        self.reaper.forget(self.root);
    }

    /// Every live process of this family.
    fn members(&self) -> Vec<ProcStat> {
        let mut found: HashMap<u32, ProcStat> = HashMap::new();
        if !self.root_reaped {
            found.extend(descendants_and_self(self.root).into_iter().filter_map(|p| Some((p, ProcStat::read(p)?))));
        }
        for &(pid, start_time) in &self.known {
            if let Some(stat) = ProcStat::read(pid).filter(|s| s.start_time == start_time) {
                found.insert(pid, stat);
            }
        }
        let plugins = self.reaper.plugins();
        let adopted: Vec<ProcStat> = self
            .reaper
            .orphans(&plugins)
            .into_iter()
            .filter(|o| o.pgid == self.root || self.known.contains(&o.identity()))
            .collect();
        drop(plugins);
        found.extend(with_descendants(&adopted).into_iter().map(|s| (s.pid, s)));
        found.into_values().collect()
    }

    /// Send `signal` to every process of the family: to the root's process group at once while
    /// the root is unreaped (its PID cannot have been reused), and to each member by PID.
    pub fn signal(&self, signal: Signal) {
        let group = (!self.root_reaped).then_some(self.root);
        if let Some(group) = group {
            let _ = killpg(Pid::from_raw(group as i32), signal);
        }
        signal_each(&self.members(), signal, group);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_a_child_process_in_the_tree() {
        let mut child = std::process::Command::new("sleep").arg("5").spawn().expect("sleep runs");
        let tree = descendants_and_self(std::process::id());
        let _ = child.kill();
        let _ = child.wait();
        assert!(tree.contains(&child.id()), "{tree:?} should contain {}", child.id());
    }

    #[test]
    fn reads_identity_and_group_from_proc() {
        let me = ProcStat::read(std::process::id()).expect("this process has a /proc entry");
        assert!(!me.zombie);
        assert_eq!(me.pgid, nix::unistd::getpgrp().as_raw() as u32);
        assert_eq!(ProcStat::read(std::process::id()), Some(me), "the start time does not change");
    }
}
