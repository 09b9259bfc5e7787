//! Pacing: the token bucket that keeps the bot from being killed for flooding, and the
//! reconnect backoff (exponential, with jitter so that many bots cut off together do not
//! return together).

use std::time::Duration;

use rand::RngExt;
use tokio::time::Instant;

use crate::config::FloodLimit;

/// A token bucket: `burst` lines at once, then one per `interval`.
#[derive(Debug)]
pub struct Bucket {
    limit: FloodLimit,
    tokens: u32,
    /// When the next token is added (while the bucket is not full).
    refill_at: Instant,
}

impl Bucket {
    pub fn new(limit: FloodLimit, now: Instant) -> Bucket {
        Bucket { limit, tokens: limit.burst, refill_at: now + limit.interval }
    }

    fn refill(&mut self, now: Instant) {
        while self.tokens < self.limit.burst && now >= self.refill_at {
            self.tokens += 1;
            self.refill_at += self.limit.interval;
        }
        if self.tokens == self.limit.burst && now >= self.refill_at {
            // Full: the next token is due one interval after the next line is sent.
            self.refill_at = now + self.limit.interval;
        }
    }

    /// Take a token for one line: Ok, or the time when one will be there.
    pub fn take(&mut self, now: Instant) -> Result<(), Instant> {
        self.refill(now);
        if self.tokens == 0 {
            return Err(self.refill_at);
        }
        if self.tokens == self.limit.burst {
            self.refill_at = now + self.limit.interval;
        }
        self.tokens -= 1;
        Ok(())
    }

    /// Count `lines` that were sent without waiting (registration, JOIN, PONG): the server's
    /// flood counter sees them too, so the replies after them wait for the tokens they used.
    pub fn charge(&mut self, lines: usize, now: Instant) {
        for _ in 0..lines {
            if self.take(now).is_err() {
                return;
            }
        }
    }
}

/// Reconnect delays: `initial`, doubling to `max`, each drawn between half and all of it.
#[derive(Debug)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    next: Duration,
}

impl Backoff {
    pub fn new(initial: Duration, max: Duration) -> Backoff {
        Backoff { initial, max, next: initial }
    }

    /// The delay before the next attempt.
    pub fn delay(&mut self) -> Duration {
        let ceiling = self.next;
        self.next = (self.next * 2).min(self.max);
        let floor = ceiling / 2;
        floor + (ceiling - floor).mul_f64(rand::rng().random_range(0.0..=1.0))
    }

    /// A failure the operator must fix: wait the longest delay at once (no tight loop on a
    /// wrong password; the server may also be counting failed logins).
    pub fn give_up_for_now(&mut self) -> Duration {
        self.next = self.max;
        self.delay()
    }

    /// The link worked: the next failure starts from `initial` again.
    pub fn reset(&mut self) {
        self.next = self.initial;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn the_bucket_allows_a_burst_then_one_line_per_interval() {
        let limit = FloodLimit { burst: 3, interval: Duration::from_secs(2) };
        let t0 = Instant::now();
        let mut bucket = Bucket::new(limit, t0);
        for _ in 0..3 {
            assert_eq!(bucket.take(t0), Ok(()));
        }
        assert_eq!(bucket.take(t0), Err(t0 + Duration::from_secs(2)));
        assert_eq!(bucket.take(t0 + Duration::from_millis(1999)), Err(t0 + Duration::from_secs(2)));
        assert_eq!(bucket.take(t0 + Duration::from_secs(2)), Ok(()));
        assert_eq!(bucket.take(t0 + Duration::from_secs(3)), Err(t0 + Duration::from_secs(4)));
        // Idle long enough, the burst is back, and no more.
        let later = t0 + Duration::from_secs(60);
        for _ in 0..3 {
            assert_eq!(bucket.take(later), Ok(()));
        }
        assert!(bucket.take(later).is_err());
    }

    #[tokio::test(start_paused = true)]
    async fn lines_sent_unpaced_use_up_the_burst_the_replies_would_have_had() {
        let limit = FloodLimit { burst: 4, interval: Duration::from_secs(2) };
        let t0 = Instant::now();
        let mut bucket = Bucket::new(limit, t0);
        // CAP, NICK, USER, JOIN, …: six lines at once leave no burst for the first replies.
        bucket.charge(6, t0);
        assert_eq!(bucket.take(t0), Err(t0 + Duration::from_secs(2)));
        assert_eq!(bucket.take(t0 + Duration::from_secs(2)), Ok(()));
    }

    #[test]
    fn sending_n_lines_takes_at_least_the_paced_time() {
        let limit = FloodLimit::TWITCH;
        let t0 = Instant::now();
        let mut bucket = Bucket::new(limit, t0);
        let mut now = t0;
        let mut sent = Vec::new();
        while sent.len() < 40 {
            match bucket.take(now) {
                Ok(()) => sent.push(now),
                Err(at) => now = at,
            }
        }
        // Twitch: never more than 20 lines in any 30 s window.
        for (i, at) in sent.iter().enumerate() {
            let in_window = sent[i..].iter().take_while(|t| t.duration_since(*at) < Duration::from_secs(30)).count();
            assert!(in_window <= 20, "{in_window} lines within 30 s from line {i}");
        }
    }

    #[test]
    fn backoff_doubles_with_jitter_up_to_its_maximum() {
        let mut backoff = Backoff::new(Duration::from_secs(2), Duration::from_secs(10));
        let delays: Vec<Duration> = (0..5).map(|_| backoff.delay()).collect();
        let ceilings = [2, 4, 8, 10, 10];
        for (delay, ceiling) in delays.iter().zip(ceilings) {
            let ceiling = Duration::from_secs(ceiling);
            assert!(*delay >= ceiling / 2 && *delay <= ceiling, "{delay:?} not within {ceiling:?}");
        }
        backoff.reset();
        assert!(backoff.delay() <= Duration::from_secs(2));
        assert!(backoff.give_up_for_now() >= Duration::from_secs(5));
    }
}
