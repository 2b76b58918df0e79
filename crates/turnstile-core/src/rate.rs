//! Rates, with time coming in as `now` so tests drive them with a fake clock: a token bucket,
//! the per-session message rate limit ([`crate::limits::MAX_MESSAGES_PER_SECOND`]), which holds
//! up to `burst` tokens, refills at `per_second` tokens a second, and each message takes one;
//! and a throttle for a session's warnings, so a client cannot flood the log.

use std::cell::Cell;
use std::time::Instant;

use crate::limits::LIMIT_LOG_INTERVAL;

/// One line per [`LIMIT_LOG_INTERVAL`] at most, counting what it did not log. In `Cell`s, so
/// it can be used through a shared session.
#[derive(Debug, Default)]
pub(crate) struct WarnThrottle {
    logged_at: Cell<Option<Instant>>,
    unlogged: Cell<u64>,
}

impl WarnThrottle {
    /// One more event at `now`: `Some(n)` when it is to be logged, `n` the events since the
    /// last line (this one included); `None` when it is only counted.
    pub(crate) fn due(&self, now: Instant) -> Option<u64> {
        let n = self.unlogged.get() + 1;
        let due = self
            .logged_at
            .get()
            .is_none_or(|at| now.saturating_duration_since(at) >= LIMIT_LOG_INTERVAL);
        if due {
            self.logged_at.set(Some(now));
            self.unlogged.set(0);
            Some(n)
        } else {
            self.unlogged.set(n);
            None
        }
    }
}

/// A token bucket; full when created.
#[derive(Debug, Clone)]
pub(crate) struct TokenBucket {
    per_second: u32,
    burst: u32,
    tokens: f64,
    refilled: Instant,
}

impl TokenBucket {
    /// A full bucket of `burst` tokens (at least 1) refilled at `per_second` (at least 1).
    pub(crate) fn new(per_second: u32, burst: u32, now: Instant) -> Self {
        Self {
            per_second: per_second.max(1),
            burst: burst.max(1),
            tokens: f64::from(burst.max(1)),
            refilled: now,
        }
    }

    /// Whether the bucket was made for this rate and burst.
    pub(crate) fn is_for(&self, per_second: u32, burst: u32) -> bool {
        (self.per_second, self.burst) == (per_second.max(1), burst.max(1))
    }

    /// Takes a token if there is one at `now` (an earlier `now` than before refills nothing).
    pub(crate) fn try_take(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.refilled).as_secs_f64();
        self.refilled = self.refilled.max(now);
        let refilled = self.tokens + elapsed * f64::from(self.per_second);
        self.tokens = refilled.min(f64::from(self.burst));
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn warnings_are_throttled_and_counted() {
        let t0 = Instant::now();
        let w = WarnThrottle::default();
        assert_eq!(w.due(t0), Some(1), "the first is logged");
        assert_eq!(w.due(t0 + Duration::from_secs(1)), None);
        assert_eq!(w.due(t0 + Duration::from_secs(9)), None);
        assert_eq!(
            w.due(t0 + LIMIT_LOG_INTERVAL),
            Some(3),
            "with the two not logged"
        );
        assert_eq!(w.due(t0 + LIMIT_LOG_INTERVAL), None);
    }

    #[test]
    fn burst_then_the_rate() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(10, 5, t0);
        assert_eq!((0..8).filter(|_| b.try_take(t0)).count(), 5, "the burst");
        assert!(!b.try_take(t0 + Duration::from_millis(99)));
        assert!(
            b.try_take(t0 + Duration::from_millis(100)),
            "one per 100 ms"
        );
        assert!(!b.try_take(t0 + Duration::from_millis(150)));
        // Refills up to the burst only.
        let later = t0 + Duration::from_secs(60);
        assert_eq!((0..10).filter(|_| b.try_take(later)).count(), 5);
        // Time going backwards refills nothing.
        assert!(!b.try_take(t0));
        assert!(b.is_for(10, 5) && !b.is_for(10, 6));
    }
}
