//! The commands a plugin owes answers for, and the one bound on them.
//!
//! A command enters the ledger when it is accepted for the plugin, holding one of the plugin's
//! [`COMMAND_SLOTS`]; with every slot taken, the command is refused at once (the user is told
//! the plugin is busy). The slot covers the command's whole stay: queued for the process,
//! written to it, awaiting its reply. So what is queued and what is in flight are one bound, and
//! the ledger never has to forget a command to make room. A command leaves the ledger exactly
//! once: answered by its reply, answered by the host when `command_timeout` has passed since it
//! was accepted, or answered by the host when the process it was written to ended. Its slot is
//! freed as it leaves.
//!
//! A reload's readiness probe is the host's own command: it takes no slot, has no user to
//! answer and no deadline here (the reload waits for it), and its reply goes to the reload,
//! never to chat nor into the response times.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, oneshot};
use tokio::time::Instant;

use crate::sync::lock;

/// Commands one plugin may hold at once, queued and awaiting a reply together.
pub const COMMAND_SLOTS: usize = 256;
/// Ids answered by the host that are remembered, to tell a late reply from a wrong id.
const LATE_IDS: usize = 4 * COMMAND_SLOTS;

/// Every slot is taken: the command is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NoSlot;

/// A command the host answered itself, for the user who asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unanswered {
    pub id: u64,
    pub user: String,
}

/// What a reply's id matched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Matched {
    /// An open command: who asked, and how long since it was written to the process.
    Open { user: String, waited: Option<Duration> },
    /// A command the host already answered (timed out): the reply comes too late.
    Late,
    /// No command the host remembers.
    Unknown,
}

struct Entry {
    id: u64,
    user: String,
    deadline: Instant,
    /// The process it was written to, and when.
    written: Option<(u32, Instant)>,
    /// Freed when the entry leaves the ledger.
    _slot: OwnedSemaphorePermit,
}

#[derive(Default)]
struct Entries {
    /// In the order accepted.
    open: VecDeque<Entry>,
    late: VecDeque<u64>,
    /// Probes awaiting their reply: the id, and where the reply text goes.
    probes: Vec<(u64, oneshot::Sender<String>)>,
}

impl Entries {
    fn take(&mut self, id: u64) -> Option<Entry> {
        let index = self.open.iter().position(|e| e.id == id)?;
        self.open.remove(index)
    }

    fn remember_late(&mut self, id: u64) {
        if self.late.len() == LATE_IDS {
            self.late.pop_front();
        }
        self.late.push_back(id);
    }
}

/// One plugin's open commands.
pub struct Ledger {
    slots: Arc<Semaphore>,
    entries: Mutex<Entries>,
    /// Wakes [`Ledger::expired`] when a deadline earlier than those it waits for appears.
    sooner: Notify,
    /// Probe ids count down from the top while chat's count up from 1, so they never meet.
    next_probe: AtomicU64,
}

impl Ledger {
    pub fn new(slots: usize) -> Ledger {
        Ledger {
            slots: Arc::new(Semaphore::new(slots)),
            entries: Mutex::default(),
            sooner: Notify::new(),
            next_probe: AtomicU64::new(u64::MAX),
        }
    }

    /// Open a probe: its id (for the command to send) and where its reply will arrive. Dropping
    /// the receiver gives it up; its reply, if one comes later, is then a reply to an unknown id.
    pub fn probe(&self) -> (u64, oneshot::Receiver<String>) {
        let id = self.next_probe.fetch_sub(1, Ordering::Relaxed);
        let (reply, answer) = oneshot::channel();
        let mut entries = lock(&self.entries);
        entries.probes.retain(|(_, waiting)| !waiting.is_closed());
        entries.probes.push((id, reply));
        (id, answer)
    }

    /// A reply to `id` arrived: true when it answers a probe (then `text` has gone to it).
    pub fn probed(&self, id: u64, text: &str) -> bool {
        let mut entries = lock(&self.entries);
        let Some(index) = entries.probes.iter().position(|(probe, _)| *probe == id) else { return false };
        let (_, reply) = entries.probes.swap_remove(index);
        // A probe given up meanwhile needs no reply; the reply is still not chat's.
        let _ = reply.send(text.to_owned());
        true
    }

    /// Take a slot for command `id` from `user`, to be answered within `timeout`.
    pub fn accept(&self, id: u64, user: &str, timeout: Duration) -> Result<(), NoSlot> {
        let slot = self.slots.clone().try_acquire_owned().map_err(|_| NoSlot)?;
        let now = Instant::now();
        // A timeout too long for the clock is never reached: the command waits for its reply.
        let deadline = now.checked_add(timeout).unwrap_or_else(|| now + Duration::from_secs(86_400 * 365));
        let mut entries = lock(&self.entries);
        // Deadlines mostly grow in acceptance order; only one sooner than the first open one
        // (a shorter timeout after a reload, or an empty ledger) needs the waiter woken.
        let sooner = entries.open.front().is_none_or(|first| deadline < first.deadline);
        entries.open.push_back(Entry { id, user: user.to_owned(), deadline, written: None, _slot: slot });
        drop(entries);
        if sooner {
            self.sooner.notify_one();
        }
        Ok(())
    }

    /// Forget command `id` unanswered: it never reached the plugin's queue (the caller answers).
    pub fn withdraw(&self, id: u64) {
        lock(&self.entries).take(id);
    }

    /// Command `id` is being written to process `pid`: false when it is no longer open (the
    /// host answered it while it was queued), so it must not be written.
    pub fn written(&self, id: u64, pid: u32) -> bool {
        let mut entries = lock(&self.entries);
        match entries.open.iter_mut().find(|e| e.id == id) {
            Some(entry) => {
                entry.written = Some((pid, Instant::now()));
                true
            }
            None => entries.probes.iter().any(|(probe, waiting)| *probe == id && !waiting.is_closed()),
        }
    }

    /// A reply to `id` arrived: close the command if it is open.
    pub fn answer(&self, id: u64) -> Matched {
        let mut entries = lock(&self.entries);
        match entries.take(id) {
            Some(entry) => Matched::Open { user: entry.user, waited: entry.written.map(|(_, at)| at.elapsed()) },
            None if entries.late.contains(&id) => Matched::Late,
            None => Matched::Unknown,
        }
    }

    /// Close every command written to process `pid` (it has ended): the host answers them.
    pub fn abandon(&self, pid: u32) -> Vec<Unanswered> {
        let mut entries = lock(&self.entries);
        let (gone, kept) = std::mem::take(&mut entries.open)
            .into_iter()
            .partition(|e| matches!(e.written, Some((written_to, _)) if written_to == pid));
        entries.open = kept;
        gone.into_iter().map(|e: Entry| Unanswered { id: e.id, user: e.user }).collect()
    }

    /// How many commands written to process `pid` are still unanswered.
    pub fn owed_by(&self, pid: u32) -> usize {
        lock(&self.entries).open.iter().filter(|e| matches!(e.written, Some((p, _)) if p == pid)).count()
    }

    /// Wait until at least one command's deadline has passed; close and return those.
    pub async fn expired(&self) -> Vec<Unanswered> {
        loop {
            let next = lock(&self.entries).open.iter().map(|e| e.deadline).min();
            match next {
                None => self.sooner.notified().await,
                Some(deadline) => tokio::select! {
                    () = tokio::time::sleep_until(deadline) => {}
                    () = self.sooner.notified() => {}
                },
            }
            let now = Instant::now();
            let mut entries = lock(&self.entries);
            let (gone, kept): (VecDeque<Entry>, VecDeque<Entry>) =
                std::mem::take(&mut entries.open).into_iter().partition(|e| e.deadline <= now);
            entries.open = kept;
            if gone.is_empty() {
                continue;
            }
            for entry in &gone {
                entries.remember_late(entry.id);
            }
            return gone.into_iter().map(|e| Unanswered { id: e.id, user: e.user }).collect();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TIMEOUT: Duration = Duration::from_secs(10);

    #[test]
    fn the_bound_covers_queued_and_awaiting_commands_alike() {
        let ledger = Ledger::new(3);
        assert_eq!(ledger.accept(1, "a", TIMEOUT), Ok(()));
        assert_eq!(ledger.accept(2, "b", TIMEOUT), Ok(()));
        assert!(ledger.written(1, 100), "one written, one still queued");
        assert_eq!(ledger.accept(3, "c", TIMEOUT), Ok(()));
        assert_eq!(ledger.accept(4, "d", TIMEOUT), Err(NoSlot), "over the bound: refused, nothing forgotten");
        assert!(matches!(ledger.answer(1), Matched::Open { user, waited: Some(_) } if user == "a"));
        assert_eq!(ledger.accept(4, "d", TIMEOUT), Ok(()), "an answer frees its slot");
        assert_eq!(ledger.answer(2), Matched::Open { user: "b".into(), waited: None });
        assert_eq!(ledger.answer(2), Matched::Unknown, "answered once only");
    }

    #[tokio::test(start_paused = true)]
    async fn an_unanswered_command_expires_at_its_deadline_and_its_late_reply_is_recognised() {
        let ledger = Ledger::new(4);
        let start = Instant::now();
        ledger.accept(1, "alice", TIMEOUT).expect("a free slot");
        assert!(ledger.written(1, 100));
        tokio::time::sleep(Duration::from_secs(3)).await;
        ledger.accept(2, "bob", TIMEOUT).expect("a free slot");
        assert_eq!(ledger.expired().await, [Unanswered { id: 1, user: "alice".into() }]);
        assert_eq!(start.elapsed(), TIMEOUT, "not a moment before");
        assert_eq!(ledger.answer(1), Matched::Late, "the reply after the host's answer is late, not delivered");
        assert!(!ledger.written(1, 100), "nor is it written again");
        assert_eq!(ledger.expired().await, [Unanswered { id: 2, user: "bob".into() }]);
        assert_eq!(start.elapsed(), TIMEOUT + Duration::from_secs(3));
        assert_eq!(ledger.accept(3, "c", TIMEOUT), Ok(()));
        assert_eq!(ledger.slots.available_permits(), 3, "expired commands free their slots");
    }

    #[tokio::test(start_paused = true)]
    async fn a_sooner_deadline_wakes_the_waiter() {
        let ledger = Arc::new(Ledger::new(4));
        ledger.accept(1, "slow", Duration::from_secs(60)).expect("a free slot");
        let waiter = tokio::spawn({
            let ledger = ledger.clone();
            async move { ledger.expired().await }
        });
        tokio::task::yield_now().await;
        let start = Instant::now();
        // A shorter timeout arrives (say, after a reload).
        ledger.accept(2, "quick", Duration::from_secs(1)).expect("a free slot");
        let expired = waiter.await.expect("the waiter finishes");
        assert_eq!(expired, [Unanswered { id: 2, user: "quick".into() }]);
        assert_eq!(start.elapsed(), Duration::from_secs(1));
    }

    #[test]
    fn a_process_that_ends_leaves_the_commands_written_to_it_for_the_host_to_answer() {
        let ledger = Ledger::new(4);
        for id in 1..=3 {
            ledger.accept(id, "u", TIMEOUT).expect("a free slot");
        }
        assert!(ledger.written(1, 100));
        assert!(ledger.written(2, 200));
        assert_eq!(ledger.owed_by(100), 1);
        assert_eq!(ledger.abandon(100), [Unanswered { id: 1, user: "u".into() }]);
        assert_eq!(ledger.owed_by(100), 0);
        assert_eq!(ledger.owed_by(200), 1, "another process's commands stay");
        assert!(ledger.written(3, 200), "a queued one goes to the next process");
    }

    #[test]
    fn a_probe_takes_no_slot_and_its_reply_goes_to_the_reload_only() {
        let ledger = Ledger::new(1);
        ledger.accept(1, "u", TIMEOUT).expect("a free slot");
        let (id, mut reply) = ledger.probe();
        assert_ne!(id, 1, "probe ids are apart from chat's");
        assert!(ledger.written(id, 100), "it is written to the process");
        assert_eq!(ledger.owed_by(100), 0, "nothing owed to a user: a drain does not wait for it");
        assert!(!ledger.probed(1, "a chat reply"), "a chat command's reply is not a probe's");
        assert!(ledger.probed(id, "pong"));
        assert_eq!(reply.try_recv().as_deref(), Ok("pong"));
        assert!(!ledger.probed(id, "again"), "answered once");
        assert!(ledger.abandon(100).is_empty(), "the host owes no user an answer for a probe");

        let (given_up, reply) = ledger.probe();
        drop(reply);
        assert!(!ledger.written(given_up, 100), "a probe given up is not written");
        assert_eq!(ledger.answer(given_up), Matched::Unknown, "and a late reply is nobody's");
    }
}
