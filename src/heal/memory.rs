//! The memory limit that heals (`max_memory_mb`). The collector sends every tick's process-tree
//! memory of the running plugins; a plugin over its limit for `max_memory_samples` ticks in a
//! row is recycled by a hot reload (a new process beside the old one, so no command is lost).
//! A plugin already recycled `max_memory_recycles` times within `max_memory_window` that is
//! over again is not recycled once more: it is stopped and left FAILED with the reason
//! ("recycled 3 times in 10 min for memory over 200 MB") until an operator starts it.
//!
//! This is a leak's remedy, not a hard cap: a plugin may grow past its limit between two
//! samples. The hard limit for the whole bot belongs to the service manager (systemd's
//! `MemoryMax=`, docs/operations.md).

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{error, warn};

use crate::control::{Action, ActionDoor, Trigger};
use crate::metrics::MemoryReading;
use crate::plugins::spec::MemoryLimit;

/// What to do about one plugin after a sample.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Over the limit for long enough: reload it (`mb` at the last sample).
    Recycle { mb: u64 },
    /// Over again after too many recycles: stop it and leave it FAILED with `reason`.
    GiveUp { mb: u64, reason: String },
}

/// What the guard remembers about one plugin with a limit.
#[derive(Debug)]
struct Watched {
    /// The process the count of samples belongs to.
    pid: u32,
    /// Samples over the limit in a row.
    over: u32,
    /// When it was recycled, oldest first, within the window.
    recycles: VecDeque<Instant>,
    /// A recycle (or giving up) is under way: no verdict until it has finished.
    busy: bool,
}

/// Counts samples over the limit and recycles per plugin; pure, so it is tested without a bot.
#[derive(Debug, Default)]
pub struct MemoryGuard {
    plugins: HashMap<String, Watched>,
}

impl MemoryGuard {
    /// One sample of `name`'s process `pid` at `bytes`; `limit` as its entry says now.
    pub fn observe(
        &mut self,
        name: &str,
        pid: u32,
        bytes: u64,
        limit: Option<&MemoryLimit>,
        now: Instant,
    ) -> Option<Verdict> {
        let Some(limit) = limit else {
            self.plugins.remove(name);
            return None;
        };
        let watched = self.plugins.entry(name.to_owned()).or_insert_with(|| Watched {
            pid,
            over: 0,
            recycles: VecDeque::new(),
            busy: false,
        });
        if watched.pid != pid {
            // A new process (recycled, restarted, reloaded) starts counting afresh.
            watched.pid = pid;
            watched.over = 0;
        }
        if watched.busy {
            return None;
        }
        if bytes <= limit.max_bytes() {
            watched.over = 0;
            return None;
        }
        watched.over += 1;
        if watched.over < limit.samples {
            return None;
        }
        watched.over = 0;
        watched.busy = true;
        let mb = bytes / (1024 * 1024);
        while watched.recycles.front().is_some_and(|at| now.duration_since(*at) >= limit.window) {
            watched.recycles.pop_front();
        }
        let recent = watched.recycles.len();
        if !limit.window.is_zero() && recent >= limit.recycles as usize {
            // An operator's start brings it back with a fresh allowance.
            watched.recycles.clear();
            let reason =
                format!("recycled {recent} times in {} for memory over {} MB", span(limit.window), limit.max_mb);
            return Some(Verdict::GiveUp { mb, reason });
        }
        watched.recycles.push_back(now);
        Some(Verdict::Recycle { mb })
    }

    /// The recycle (or giving up) of `name` has finished; `refused` when the door did not
    /// carry it out (another action held the plugin): then it does not count.
    pub fn finished(&mut self, name: &str, refused: bool) {
        if let Some(watched) = self.plugins.get_mut(name) {
            watched.busy = false;
            if refused {
                watched.recycles.pop_back();
            }
        }
    }
}

/// A window in words: `10 min` for 600 s, `90 s` otherwise.
fn span(window: Duration) -> String {
    let secs = window.as_secs_f64();
    if secs >= 60.0 && secs % 60.0 == 0.0 { format!("{} min", secs / 60.0) } else { format!("{secs} s") }
}

/// Take the collector's readings until `stop`; recycle or give up on plugins through `door`.
/// Every request runs on its own task, so a slow reload holds up no other plugin's verdict.
pub async fn guard_memory(mut readings: mpsc::Receiver<Vec<MemoryReading>>, door: ActionDoor, stop: CancellationToken) {
    let mut guard = MemoryGuard::default();
    let (done, mut finished) = mpsc::unbounded_channel::<(String, bool)>();
    loop {
        tokio::select! {
            Some(batch) = readings.recv() => {
                let now = Instant::now();
                for reading in batch {
                    let name = reading.handle.name().to_owned();
                    let limit = reading.handle.config().memory_limit;
                    if let Some(verdict) = guard.observe(&name, reading.pid, reading.bytes, limit.as_ref(), now)
                        && let Some(limit) = limit
                    {
                        tokio::spawn(heal(door.clone(), name, limit, verdict, done.clone()));
                    }
                }
            }
            Some((name, refused)) = finished.recv() => guard.finished(&name, refused),
            () = stop.cancelled() => return,
            else => return,
        }
    }
}

/// Carry out one verdict through the door (which audits it) and say when it is done.
async fn heal(
    door: ActionDoor,
    name: String,
    limit: MemoryLimit,
    verdict: Verdict,
    done: mpsc::UnboundedSender<(String, bool)>,
) {
    let refused = match verdict {
        Verdict::Recycle { mb } => {
            warn!(
                plugin = name,
                memory_mb = mb,
                max_memory_mb = limit.max_mb,
                samples = limit.samples,
                "process tree at {mb} MB, over max_memory_mb {} for {} samples in a row: recycling it with a hot reload",
                limit.max_mb,
                limit.samples
            );
            let trigger = Trigger::Memory { mb, limit_mb: limit.max_mb };
            // Refused (busy with an operator's action, shutting down): the next samples decide again.
            door.act(&name, Action::Reload, trigger).await.is_err()
        }
        Verdict::GiveUp { mb, reason } => {
            error!(plugin = name, memory_mb = mb, max_memory_mb = limit.max_mb, "{reason}: FAILED until started again");
            door.give_up(&name, &reason, Trigger::Memory { mb, limit_mb: limit.max_mb }).await.is_err()
        }
    };
    let _ = done.send((name, refused));
}

#[cfg(test)]
mod tests {
    use super::*;

    const MB: u64 = 1024 * 1024;

    fn limit(window: u64) -> MemoryLimit {
        MemoryLimit { max_mb: 200, samples: 3, recycles: 3, window: Duration::from_secs(window) }
    }

    /// Feed `n` samples of `mb` for `pid` at `at`; the verdicts that came.
    fn feed(guard: &mut MemoryGuard, pid: u32, mb: u64, n: usize, limit: &MemoryLimit, at: Instant) -> Vec<Verdict> {
        (0..n).filter_map(|_| guard.observe("p", pid, mb * MB, Some(limit), at)).collect()
    }

    #[test]
    fn a_plugin_over_its_limit_for_n_samples_in_a_row_is_recycled_once() {
        let (mut guard, limit, now) = (MemoryGuard::default(), limit(600), Instant::now());
        assert!(feed(&mut guard, 1, 300, 2, &limit, now).is_empty(), "not before the third sample");
        assert!(feed(&mut guard, 1, 100, 1, &limit, now).is_empty(), "a sample under the limit starts again");
        assert!(feed(&mut guard, 1, 300, 2, &limit, now).is_empty());
        assert_eq!(feed(&mut guard, 1, 300, 1, &limit, now), [Verdict::Recycle { mb: 300 }]);
        assert!(feed(&mut guard, 1, 300, 10, &limit, now).is_empty(), "nothing more while the recycle runs");
        guard.finished("p", false);
        assert!(feed(&mut guard, 2, 300, 2, &limit, now).is_empty(), "the new process counts afresh");
    }

    #[test]
    fn a_recycle_the_door_refused_does_not_count_towards_giving_up() {
        let (mut guard, limit, now) = (MemoryGuard::default(), limit(600), Instant::now());
        for pid in 1..=3 {
            assert_eq!(feed(&mut guard, pid, 300, 3, &limit, now), [Verdict::Recycle { mb: 300 }]);
            guard.finished("p", pid == 3);
        }
        assert_eq!(feed(&mut guard, 3, 300, 3, &limit, now), [Verdict::Recycle { mb: 300 }], "two counted");
    }

    #[test]
    fn over_again_after_the_allowed_recycles_in_the_window_gives_up_with_the_reason() {
        let (mut guard, limit, start) = (MemoryGuard::default(), limit(600), Instant::now());
        for pid in 1..=3 {
            assert_eq!(feed(&mut guard, pid, 300, 3, &limit, start), [Verdict::Recycle { mb: 300 }]);
            guard.finished("p", false);
        }
        let reason = "recycled 3 times in 10 min for memory over 200 MB".to_owned();
        assert_eq!(feed(&mut guard, 4, 300, 3, &limit, start), [Verdict::GiveUp { mb: 300, reason }]);
        guard.finished("p", false);
        assert_eq!(
            feed(&mut guard, 5, 300, 3, &limit, start),
            [Verdict::Recycle { mb: 300 }],
            "started again, it gets a fresh allowance"
        );
    }

    #[test]
    fn recycles_older_than_the_window_do_not_count_and_a_zero_window_never_gives_up() {
        let (mut guard, hour, start) = (MemoryGuard::default(), limit(600), Instant::now());
        for (pid, minutes) in [(1, 0), (2, 4), (3, 8), (4, 12)] {
            let at = start + Duration::from_secs(minutes * 60);
            assert_eq!(feed(&mut guard, pid, 300, 3, &hour, at), [Verdict::Recycle { mb: 300 }], "at {minutes} min");
            guard.finished("p", false);
        }
        let (mut guard, never) = (MemoryGuard::default(), limit(0));
        for pid in 1..=10 {
            assert_eq!(feed(&mut guard, pid, 300, 3, &never, start), [Verdict::Recycle { mb: 300 }]);
            guard.finished("p", false);
        }
    }

    #[test]
    fn a_plugin_without_a_limit_is_not_watched() {
        let mut guard = MemoryGuard::default();
        assert_eq!(guard.observe("p", 1, 10_000 * MB, None, Instant::now()), None);
        assert!(guard.plugins.is_empty());
    }

    #[test]
    fn windows_read_in_minutes_when_whole() {
        assert_eq!(span(Duration::from_secs(600)), "10 min");
        assert_eq!(span(Duration::from_secs(90)), "90 s");
    }
}
