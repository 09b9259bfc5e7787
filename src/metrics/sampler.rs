//! Reading CPU and memory of plugin process trees (and of the host itself) with sysinfo.
//!
//! Only the plugins' PIDs and their descendants are refreshed, never the whole process table.
//! CPU percent is the growth of the tree's CPU time between two ticks divided by the wall time
//! between them, so the first reading of a new process is "no figure yet", never a spike.

use std::collections::HashMap;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use sysinfo::{Pid, ProcessRefreshKind, ProcessesToUpdate, System};

/// What one plugin's process tree used.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct TreeUsage {
    /// Percent of one core since the previous reading; None on the first reading.
    pub cpu_percent: Option<f64>,
    /// CPU seconds consumed by the processes now in the tree.
    pub cpu_seconds: f64,
    pub memory_bytes: u64,
    pub processes: u32,
}

/// The host process's own figures, for the standard `process_*` metrics.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct HostUsage {
    pub cpu_seconds: f64,
    pub resident_bytes: u64,
    pub virtual_bytes: u64,
    pub start_time_seconds: u64,
    pub open_fds: u64,
    pub max_fds: u64,
}

struct PreviousReading {
    at: Instant,
    /// CPU milliseconds per (pid, start time): a reused PID is not mistaken for the old process.
    cpu_ms: HashMap<(u32, u64), u64>,
}

/// Keeps one `System` and the previous readings across ticks.
pub struct Sampler {
    system: System,
    previous: HashMap<u32, PreviousReading>,
    own_pid: Pid,
}

impl Sampler {
    pub fn new() -> Result<Sampler, sysinfo::Error> {
        Ok(Sampler { system: System::new()?, previous: HashMap::new(), own_pid: Pid::from_u32(std::process::id()) })
    }

    /// Read every root's process tree. Roots not given are forgotten.
    pub fn sample(&mut self, roots: &[u32]) -> (HashMap<u32, TreeUsage>, HostUsage) {
        let trees: Vec<(u32, Vec<u32>)> = roots.iter().map(|&root| (root, descendants_and_self(root))).collect();
        let mut pids: Vec<Pid> = trees.iter().flat_map(|(_, tree)| tree.iter().map(|&p| Pid::from_u32(p))).collect();
        pids.push(self.own_pid);
        self.system.refresh_processes_specifics(
            ProcessesToUpdate::Some(&pids),
            true,
            ProcessRefreshKind::nothing().with_cpu().with_memory(),
        );
        let now = Instant::now();
        let mut usage = HashMap::with_capacity(trees.len());
        let mut previous = HashMap::with_capacity(trees.len());
        for (root, tree) in trees {
            let mut reading = PreviousReading { at: now, cpu_ms: HashMap::with_capacity(tree.len()) };
            let mut tree_usage = TreeUsage::default();
            let mut grown_ms = 0u64;
            let before = self.previous.get(&root);
            for pid in tree {
                let Some(process) = self.system.process(Pid::from_u32(pid)) else { continue };
                let key = (pid, process.start_time());
                let cpu_ms = process.accumulated_cpu_time();
                tree_usage.processes += 1;
                tree_usage.memory_bytes += process.memory();
                tree_usage.cpu_seconds += cpu_ms as f64 / 1000.0;
                // A process new since the last tick counts from its start: its whole CPU time
                // was spent within the interval (it did not exist before).
                grown_ms += cpu_ms.saturating_sub(before.and_then(|b| b.cpu_ms.get(&key)).copied().unwrap_or(0));
                reading.cpu_ms.insert(key, cpu_ms);
            }
            tree_usage.cpu_percent =
                before.filter(|b| b.cpu_ms.contains_key(&(root, self.start_time(root)))).map(|b| {
                    let elapsed_ms = now.duration_since(b.at).as_secs_f64() * 1000.0;
                    if elapsed_ms > 0.0 { grown_ms as f64 / elapsed_ms * 100.0 } else { 0.0 }
                });
            if tree_usage.processes > 0 {
                usage.insert(root, tree_usage);
                previous.insert(root, reading);
            }
        }
        self.previous = previous;
        (usage, self.host_usage())
    }

    fn start_time(&self, pid: u32) -> u64 {
        self.system.process(Pid::from_u32(pid)).map_or(0, |p| p.start_time())
    }

    fn host_usage(&self) -> HostUsage {
        let mut host = HostUsage { open_fds: count_open_fds(), max_fds: max_fds(), ..HostUsage::default() };
        if let Some(me) = self.system.process(self.own_pid) {
            host.cpu_seconds = me.accumulated_cpu_time() as f64 / 1000.0;
            host.resident_bytes = me.memory();
            host.virtual_bytes = me.virtual_memory();
            host.start_time_seconds = me.start_time();
        }
        host
    }
}

/// `root` and every process below it, from `/proc/PID/task/TID/children` (no table scan).
fn descendants_and_self(root: u32) -> Vec<u32> {
    let mut tree = vec![root];
    let mut next = 0;
    while next < tree.len() {
        let pid = tree[next];
        next += 1;
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else { continue };
        for task in tasks.flatten() {
            let Ok(children) = std::fs::read_to_string(task.path().join("children")) else { continue };
            tree.extend(children.split_ascii_whitespace().filter_map(|c| c.parse::<u32>().ok()));
        }
        // A pathological fork bomb must not make sampling unbounded.
        if tree.len() > 4096 {
            break;
        }
    }
    tree
}

fn count_open_fds() -> u64 {
    std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count() as u64)
}

fn max_fds() -> u64 {
    nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE).map_or(0, |(soft, _)| soft)
}

/// Seconds since the Unix epoch, as a float.
pub fn unix_seconds(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64())
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
    fn first_reading_has_no_cpu_figure_and_the_second_has_one() {
        let mut sampler = Sampler::new().expect("sysinfo works on Linux");
        let me = std::process::id();
        let (first, host) = sampler.sample(&[me]);
        assert_eq!(first.get(&me).map(|u| u.cpu_percent), Some(None));
        assert!(host.resident_bytes > 0 && host.open_fds > 0);
        std::thread::sleep(std::time::Duration::from_millis(300));
        let (second, _) = sampler.sample(&[me]);
        let usage = second.get(&me).expect("this process is alive");
        assert!(usage.cpu_percent.is_some());
        assert!(usage.memory_bytes > 1024 * 1024);
    }
}
