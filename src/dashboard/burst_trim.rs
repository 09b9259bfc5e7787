//! Trimming the allocator once a burst of connections has ended, giving their freed memory
//! back to the system.
//!
//! Each connection allocates its own buffers and task state, tens of KB. After 1,000 dashboard
//! clients left, glibc's allocator kept the freed memory: 20 rounds of 2,000 `/events`
//! connects and disconnects left the host at 80 MB instead of 9 MB, for good. The freed
//! chunks lie between live ones, so glibc's automatic trimming (only the top of a heap) never
//! returns them; `malloc_trim(0)` also releases whole free pages inside the heaps.
//! Measured with `scripts/connection_probe.py churn` (docs/performance.md): fewer arenas
//! (`M_ARENA_MAX` = 1) still kept 37 MB; a trim when a burst ends brings it back near the
//! start. Trimming costs a walk of the heaps, so it runs once per burst, on a blocking thread.

use std::sync::atomic::{AtomicUsize, Ordering};

/// Bursts smaller than this leave too little behind to be worth a trim.
const BURST: usize = 256;

/// Watches how many connections are open and trims once most of a burst has gone.
#[derive(Default)]
pub struct BurstTrim {
    /// The most connections open at once since the last trim.
    high_water: AtomicUsize,
}

impl BurstTrim {
    /// A connection opened; `open` are open now.
    pub fn opened(&self, open: usize) {
        self.high_water.fetch_max(open, Ordering::Relaxed);
    }

    /// A connection closed; `open` are still open. True when it is time to trim: at most a
    /// quarter of a burst is left. Only the first closing connection to see that gets true
    /// (it resets the high-water mark).
    pub fn closed(&self, open: usize) -> bool {
        let high = self.high_water.load(Ordering::Relaxed);
        high >= BURST
            && open <= high / 4
            && self.high_water.compare_exchange(high, open, Ordering::Relaxed, Ordering::Relaxed).is_ok()
    }
}

/// Give freed memory back to the system (blocking: it walks the heaps).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub fn release_freed_memory() {
    // SAFETY: malloc_trim takes the allocator's own locks and touches only free memory; it
    // returns 1 when it released any.
    let released = unsafe { libc::malloc_trim(0) };
    tracing::debug!("after a burst of connections, malloc_trim released memory: {}", released == 1);
}

/// Other allocators (musl's, macOS') return freed memory on their own.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn release_freed_memory() {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trims_once_when_a_burst_has_mostly_gone() {
        let trim = BurstTrim::default();
        trim.opened(BURST);
        assert!(!trim.closed(BURST / 2), "half a burst left: no trim yet");
        assert!(trim.closed(BURST / 4));
        assert!(!trim.closed(BURST / 4 - 1), "once per burst: the mark started again");
    }

    #[test]
    fn small_bursts_are_not_trimmed() {
        let trim = BurstTrim::default();
        trim.opened(BURST - 1);
        assert!(!trim.closed(0));
    }
}
