//! Reading CPU and memory of plugin process trees, and of the host itself (with sysinfo).
//!
//! Only the plugins' processes and their descendants are read, never the whole process table,
//! and each of them with one read of `/proc/PID/stat` (see [`crate::procfs::ProcReader`]):
//! through sysinfo each also cost its `status` and `statm` files and a walk of its task
//! directory, 29.6 ms a tick at 1,000 plugins.
//! CPU percent is the growth of the tree's CPU time between two readings divided by the wall
//! time between them, over at least [`MIN_CPU_WINDOW`]: the first reading of a new process is
//! "no figure yet", and a reading soon after another repeats its figure; never a spike.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use sysinfo::{Pid, ProcessRefreshKind, ProcessesToUpdate, System};

use crate::procfs::{ProcReader, ProcStat};

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

/// The shortest interval a CPU figure is computed over. The kernel counts CPU time in 10 ms
/// clock ticks, so over a few milliseconds one tick more or less reads as hundreds of percent;
/// sysinfo's own `MINIMUM_CPU_UPDATE_INTERVAL` is 200 ms for the same reason.
pub const MIN_CPU_WINDOW: Duration = Duration::from_millis(500);

/// The baseline a tree's CPU figure is computed from.
#[derive(Debug, Clone)]
struct PreviousReading {
    at: Instant,
    /// The root's identity: a reused PID is not mistaken for the old process.
    root_start_time: u64,
    /// CPU milliseconds per (pid, start time).
    cpu_ms: HashMap<(u32, u64), u64>,
    /// The figure computed when this baseline was taken (None for a new process).
    cpu_percent: Option<f64>,
}

/// Keeps the previous readings across ticks, and one `System` for the host's own figures.
pub struct Sampler {
    system: System,
    reader: ProcReader,
    units: Units,
    previous: HashMap<u32, PreviousReading>,
    own_pid: Pid,
}

/// What `/proc/PID/stat` counts in: clock ticks and pages.
#[derive(Debug, Clone, Copy)]
struct Units {
    ticks_per_second: u64,
    page_bytes: u64,
}

impl Units {
    fn of_this_machine() -> Units {
        use nix::unistd::{SysconfVar, sysconf};
        let positive = |var| sysconf(var).ok().flatten().and_then(|v| u64::try_from(v).ok()).filter(|&v| v > 0);
        // Linux's USER_HZ and page size on every common architecture, should sysconf fail.
        Units {
            ticks_per_second: positive(SysconfVar::CLK_TCK).unwrap_or(100),
            page_bytes: positive(SysconfVar::PAGE_SIZE).unwrap_or(4096),
        }
    }

    fn cpu_ms(self, process: &ProcStat) -> u64 {
        process.cpu_ticks * 1000 / self.ticks_per_second
    }
}

impl Sampler {
    pub fn new() -> Result<Sampler, sysinfo::Error> {
        Ok(Sampler {
            system: System::new()?,
            reader: ProcReader::default(),
            units: Units::of_this_machine(),
            previous: HashMap::new(),
            own_pid: Pid::from_u32(std::process::id()),
        })
    }

    /// Read every root's process tree. Roots not given are forgotten.
    ///
    /// Readings may come at any pace (the collector also samples when a plugin changes state):
    /// a reading less than [`MIN_CPU_WINDOW`] after the baseline repeats the last CPU figure and
    /// keeps the baseline, so every figure covers at least that much time.
    pub fn sample(&mut self, roots: &[u32]) -> (HashMap<u32, TreeUsage>, HostUsage) {
        let trees: Vec<(u32, Vec<ProcStat>)> = roots.iter().map(|&root| (root, self.reader.tree(root))).collect();
        // Only the host's own process is left to sysinfo, so its table holds nothing else.
        self.system.refresh_processes_specifics(
            ProcessesToUpdate::Some(&[self.own_pid]),
            true,
            ProcessRefreshKind::nothing().with_cpu().with_memory(),
        );
        let now = Instant::now();
        let mut usage = HashMap::with_capacity(trees.len());
        let mut previous = HashMap::with_capacity(trees.len());
        for (root, tree) in trees {
            // The walk lists the root first, unless it is gone.
            let Some(root_start_time) = tree.first().filter(|p| p.pid == root).map(|p| p.start_time) else { continue };
            let mut reading = PreviousReading {
                at: now,
                root_start_time,
                cpu_ms: HashMap::with_capacity(tree.len()),
                cpu_percent: None,
            };
            let mut tree_usage = TreeUsage::default();
            for process in &tree {
                let cpu_ms = self.units.cpu_ms(process);
                tree_usage.processes += 1;
                tree_usage.memory_bytes += process.resident_pages * self.units.page_bytes;
                tree_usage.cpu_seconds += cpu_ms as f64 / 1000.0;
                reading.cpu_ms.insert(process.identity(), cpu_ms);
            }
            // The baseline belongs to this very process, not to an earlier holder of its PID.
            let baseline = self.previous.remove(&root).filter(|b| b.root_start_time == root_start_time);
            let next = match baseline {
                Some(b) if now.duration_since(b.at) < MIN_CPU_WINDOW => b,
                Some(b) => {
                    reading.cpu_percent = Some(cpu_percent(&b, &reading));
                    reading
                }
                // A new process: no figure yet, and this reading is its baseline.
                None => reading,
            };
            tree_usage.cpu_percent = next.cpu_percent;
            usage.insert(root, tree_usage);
            previous.insert(root, next);
        }
        self.previous = previous;
        (usage, self.host_usage())
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

/// Percent of one core used by a tree between two readings. A process absent from the baseline
/// started after it, so all of its CPU time falls within the interval; a process that ended
/// in between takes its last slice with it (a small undercount, never a spike).
fn cpu_percent(before: &PreviousReading, now: &PreviousReading) -> f64 {
    let grown_ms: u64 =
        now.cpu_ms.iter().map(|(key, &ms)| ms.saturating_sub(before.cpu_ms.get(key).copied().unwrap_or(0))).sum();
    let elapsed_ms = now.at.duration_since(before.at).as_secs_f64() * 1000.0;
    if elapsed_ms > 0.0 { grown_ms as f64 / elapsed_ms * 100.0 } else { 0.0 }
}

/// Since Linux 6.2 the size of `/proc/self/fd` is the count: listing the directory instead cost
/// a look-up of every descriptor, six per plugin, each poll. Older kernels report 0.
fn count_open_fds() -> u64 {
    match std::fs::metadata("/proc/self/fd").map(|m| m.len()) {
        Ok(count) if count > 0 => count,
        _ => std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count() as u64),
    }
}

fn max_fds() -> u64 {
    nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE).map_or(0, |(soft, _)| soft)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_reading_has_no_cpu_figure_and_the_second_has_one() {
        let mut sampler = Sampler::new().expect("sysinfo works on Linux");
        let me = std::process::id();
        let (first, host) = sampler.sample(&[me]);
        assert_eq!(first.get(&me).map(|u| u.cpu_percent), Some(None));
        assert!(host.resident_bytes > 0 && host.open_fds > 0);
        std::thread::sleep(MIN_CPU_WINDOW + Duration::from_millis(50));
        let (second, _) = sampler.sample(&[me]);
        let usage = second.get(&me).expect("this process is alive");
        assert!(usage.cpu_percent.is_some());
        assert!(usage.memory_bytes > 1024 * 1024);
    }

    /// Regression: the collector also samples on every plugin state change, and each reading
    /// used to become the next baseline, so a tick soon after a change divided a 10 ms clock
    /// tick by a few milliseconds and showed a busy plugin at 3000 % CPU.
    #[test]
    fn readings_close_together_keep_the_baseline_and_repeat_the_figure() {
        let mut sampler = Sampler::new().expect("sysinfo works on Linux");
        let me = std::process::id();
        let spin = |d: Duration| {
            let start = Instant::now();
            while start.elapsed() < d {
                std::hint::black_box(0u64);
            }
        };
        sampler.sample(&[me]);
        spin(MIN_CPU_WINDOW + Duration::from_millis(100));
        let figure = sampler.sample(&[me]).0[&me].cpu_percent.expect("a figure after a full window");
        let baseline = Instant::now();
        // Back-to-back readings while spinning: each would be pure clock-tick noise.
        while baseline.elapsed() < MIN_CPU_WINDOW / 2 {
            spin(Duration::from_millis(3));
            let (usage, _) = sampler.sample(&[me]);
            assert_eq!(usage[&me].cpu_percent, Some(figure), "the figure waits for a full window");
        }
        spin(MIN_CPU_WINDOW);
        assert!(sampler.sample(&[me]).0[&me].cpu_percent.is_some());
    }

    /// A plugin that ended leaves no figures and no baseline behind (sysinfo's table once
    /// kept every process it had read).
    #[test]
    fn ended_processes_are_forgotten() {
        let mut sampler = Sampler::new().expect("sysinfo works on Linux");
        let mut child = std::process::Command::new("sleep").arg("30").spawn().expect("sleep runs");
        let pid = child.id();
        let (alive, _) = sampler.sample(&[pid]);
        child.kill().expect("sleep can be killed");
        child.wait().expect("sleep is reaped");
        let (ended, _) = sampler.sample(&[pid]);
        assert_eq!(alive.get(&pid).map(|u| u.processes), Some(1));
        assert_eq!(ended.get(&pid), None);
        assert!(sampler.previous.is_empty(), "no baseline is kept for an ended process");
        assert_eq!(sampler.system.processes().len(), 1, "sysinfo reads the host alone");
    }

    /// The tree's figures are its processes' own: memory in bytes, CPU time in seconds.
    #[test]
    fn a_tree_counts_every_process_in_it() {
        let mut sampler = Sampler::new().expect("sysinfo works on Linux");
        let mut shell = std::process::Command::new("sh").args(["-c", "sleep 30 & wait"]).spawn().expect("sh runs");
        let pid = shell.id();
        let mut usage = TreeUsage::default();
        for _ in 0..500 {
            usage = sampler.sample(&[pid]).0.get(&pid).copied().unwrap_or_default();
            if usage.processes == 2 {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = std::process::Command::new("pkill").args(["-P", &pid.to_string()]).status();
        let _ = shell.kill();
        let _ = shell.wait();
        assert_eq!(usage.processes, 2, "the shell and its sleep");
        // Each of them is a real program with at least a few hundred KiB resident.
        assert!(usage.memory_bytes > 2 * 256 * 1024, "{usage:?}");
    }

    #[test]
    fn a_new_process_in_the_tree_counts_from_its_start() {
        let before = PreviousReading {
            at: Instant::now(),
            root_start_time: 1,
            cpu_ms: HashMap::from([((1, 1), 1000), ((2, 5), 200)]),
            cpu_percent: None,
        };
        let now = PreviousReading {
            at: before.at + Duration::from_secs(1),
            root_start_time: 1,
            // pid 1 used 300 ms, pid 2 ended, pid 3 is new and used 200 ms, pid 2 was reused.
            cpu_ms: HashMap::from([((1, 1), 1300), ((3, 9), 200), ((2, 7), 100)]),
            cpu_percent: None,
        };
        assert!((cpu_percent(&before, &now) - 60.0).abs() < 1e-9);
    }
}
