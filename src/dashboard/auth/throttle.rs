//! [`Throttle`]: failed logins slowed down per client address. After [`FAILURES_BEFORE_HOLD`]
//! failures within [`FAILURE_WINDOW`], the address is held off for [`FIRST_HOLD`]: every
//! request from it is answered `429` with `Retry-After`, the right password included, so
//! guessing cannot go on through the hold. Each later hold is twice as long (up to
//! [`LONGEST_HOLD`]) until the address has had no failure for [`FORGET_AFTER`], or logs in.
//! Other addresses are never affected.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Failures within [`FAILURE_WINDOW`] that start a hold.
pub const FAILURES_BEFORE_HOLD: u32 = 5;
pub const FAILURE_WINDOW: Duration = Duration::from_secs(60);
/// The first hold: long enough to cut guessing to a few tries a second at most, short enough
/// that a person who mistyped waits only a moment.
pub const FIRST_HOLD: Duration = Duration::from_secs(5);
pub const LONGEST_HOLD: Duration = Duration::from_secs(15 * 60);
/// An address with no failure for this long (after its hold) starts afresh.
pub const FORGET_AFTER: Duration = Duration::from_secs(15 * 60);
/// Addresses tracked at once; beyond it the stale ones are forgotten, then the least suspect.
const MAX_TRACKED: usize = 10_000;

/// What one address has done lately.
#[derive(Debug, Clone, Copy)]
struct Record {
    /// Failures since `window_start`.
    failures: u32,
    window_start: Instant,
    last_failure: Instant,
    /// Holds so far: the next one lasts `FIRST_HOLD * 2^holds`.
    holds: u32,
    held_until: Option<Instant>,
}

impl Record {
    /// Quiet for [`FORGET_AFTER`] since its last failure or the end of its last hold.
    fn stale(&self, now: Instant) -> bool {
        let quiet_since = self.held_until.map_or(self.last_failure, |until| until.max(self.last_failure));
        now.saturating_duration_since(quiet_since) >= FORGET_AFTER
    }
}

/// A new hold, for the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hold {
    pub length: Duration,
}

#[derive(Debug, Default)]
pub struct Throttle {
    records: Mutex<HashMap<IpAddr, Record>>,
}

impl Throttle {
    /// How long `client` is still held off, if it is.
    pub fn held(&self, client: IpAddr, now: Instant) -> Option<Duration> {
        let records = self.records.lock().expect("the throttle's lock is never held across a panic");
        let until = records.get(&client)?.held_until?;
        (until > now).then(|| until - now)
    }

    /// `client` logged in: it starts afresh.
    pub fn succeeded(&self, client: IpAddr) {
        let mut records = self.records.lock().expect("the throttle's lock is never held across a panic");
        records.remove(&client);
    }

    /// `client` failed to log in; `Some` when this failure starts a hold.
    pub fn failed(&self, client: IpAddr, now: Instant) -> Option<Hold> {
        let mut records = self.records.lock().expect("the throttle's lock is never held across a panic");
        if records.len() >= MAX_TRACKED && !records.contains_key(&client) {
            make_room(&mut records, now);
        }
        let record = records.entry(client).or_insert(Record {
            failures: 0,
            window_start: now,
            last_failure: now,
            holds: 0,
            held_until: None,
        });
        if record.stale(now) {
            record.holds = 0;
        }
        if now.duration_since(record.window_start) >= FAILURE_WINDOW {
            record.failures = 0;
            record.window_start = now;
        }
        record.failures += 1;
        record.last_failure = now;
        if record.failures < FAILURES_BEFORE_HOLD {
            return None;
        }
        let length = FIRST_HOLD.saturating_mul(1 << record.holds.min(16)).min(LONGEST_HOLD);
        record.holds += 1;
        record.failures = 0;
        record.window_start = now;
        record.held_until = Some(now + length);
        Some(Hold { length })
    }
}

/// Forget the stale records; if none is stale, the one with the fewest holds and failures.
fn make_room(records: &mut HashMap<IpAddr, Record>, now: Instant) {
    records.retain(|_, record| !record.stale(now));
    if records.len() >= MAX_TRACKED
        && let Some(least) = records
            .iter()
            .filter(|(_, r)| r.held_until.is_none_or(|until| until <= now))
            .min_by_key(|(_, r)| (r.holds, r.failures))
            .map(|(ip, _)| *ip)
    {
        records.remove(&least);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([192, 0, 2, last])
    }

    #[test]
    fn a_few_failures_hold_the_address_and_no_other() {
        let throttle = Throttle::default();
        let start = Instant::now();
        for _ in 1..FAILURES_BEFORE_HOLD {
            assert_eq!(throttle.failed(ip(1), start), None);
            assert_eq!(throttle.held(ip(1), start), None, "a mistyped password is not held off");
        }
        assert_eq!(throttle.failed(ip(1), start), Some(Hold { length: FIRST_HOLD }));
        assert_eq!(throttle.held(ip(1), start), Some(FIRST_HOLD));
        assert_eq!(throttle.held(ip(2), start), None, "another address is served");
        assert_eq!(throttle.held(ip(1), start + FIRST_HOLD), None, "the hold ends");
    }

    #[test]
    fn each_later_hold_is_longer_until_the_address_logs_in() {
        let throttle = Throttle::default();
        let mut now = Instant::now();
        let mut holds = Vec::new();
        for _ in 0..12 {
            let hold = (0..FAILURES_BEFORE_HOLD).find_map(|_| throttle.failed(ip(1), now)).expect("a hold");
            holds.push(hold.length.as_secs());
            now += hold.length;
        }
        assert_eq!(holds[..5], [5, 10, 20, 40, 80]);
        assert_eq!(*holds.last().expect("twelve"), LONGEST_HOLD.as_secs(), "capped");
        throttle.succeeded(ip(1));
        let after_login = (0..FAILURES_BEFORE_HOLD).find_map(|_| throttle.failed(ip(1), now));
        assert_eq!(after_login, Some(Hold { length: FIRST_HOLD }), "a login starts afresh");
    }

    #[test]
    fn failures_spread_out_never_hold() {
        let throttle = Throttle::default();
        let mut now = Instant::now();
        for _ in 0..20 {
            assert_eq!(throttle.failed(ip(1), now), None);
            now += FAILURE_WINDOW / (FAILURES_BEFORE_HOLD - 1);
        }
    }

    #[test]
    fn a_flood_of_addresses_keeps_the_held_ones() {
        let throttle = Throttle::default();
        let now = Instant::now();
        let held = IpAddr::from([198, 51, 100, 1]);
        for _ in 0..FAILURES_BEFORE_HOLD {
            let _ = throttle.failed(held, now);
        }
        for n in 0..(MAX_TRACKED as u32 + 100) {
            throttle.failed(IpAddr::from((0x0a00_0000 + n).to_be_bytes()), now);
        }
        let tracked = throttle.records.lock().expect("not poisoned").len();
        assert!(tracked <= MAX_TRACKED, "{tracked} addresses tracked");
        assert!(throttle.held(held, now).is_some(), "the held address is still held");
    }
}
