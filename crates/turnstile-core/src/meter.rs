//! Per-session usage metering (`docs/session-statistics.md`): counters of the current
//! cycle, rated messages, and the snapshots that close a cycle.
//!
//! The meter is plain data inside the session, bumped by the realm each time it decodes or
//! encodes a message for the session: no lock, no allocation per counted message.

use std::time::{Duration, Instant};

use turnstile_config::StatsConfig;
use wamp_proto::{dict, Dict, Value};

use crate::clock::Clock;

/// Counters of one cycle, both directions added up.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct CycleCounters {
    pub bytes: u64,
    pub messages: u64,
    pub rated_messages: u64,
}

/// A closed cycle, ready to publish as the `stats` argument of `wamp.session.on_stats`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Snapshot {
    pub cycle: u64,
    /// Start of the cycle, nanoseconds since the Unix epoch.
    pub timestamp: u64,
    /// Nanoseconds from `timestamp` to the snapshot.
    pub duration: u64,
    pub counters: CycleCounters,
    pub first: bool,
    pub last: bool,
}

impl Snapshot {
    /// The `stats` dict of the event, with exactly the keys of the spec.
    pub(crate) fn to_dict(self, serializer: &str) -> Dict {
        dict! {
            "cycle" => self.cycle,
            "serializer" => serializer,
            "timestamp" => self.timestamp,
            "duration" => self.duration,
            "bytes" => self.counters.bytes,
            "messages" => self.counters.messages,
            "rated_messages" => self.counters.rated_messages,
            "first" => self.first,
            "last" => self.last,
        }
    }
}

/// Whether counting a message may trigger a rated-messages snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CountKind {
    /// Any message: checked against the threshold.
    Checked,
    /// An `on_stats` EVENT delivered to this session: counted, never triggers by itself (the
    /// feedback guard of the spec, §3).
    FeedbackGuarded,
}

/// The meter of one session.
#[derive(Debug, Clone)]
pub(crate) struct Meter {
    /// log2 of `rated_message_size`.
    rated_shift: u32,
    rated_threshold: u64,
    /// `trigger_after_duration`, if on.
    pub period: Option<Duration>,
    cycle: u64,
    cycle_start: Instant,
    counters: CycleCounters,
    snapshots_taken: u64,
}

impl Meter {
    /// A meter whose cycle 1 starts at `now` (the session's HELLO).
    pub(crate) fn new(config: &StatsConfig, now: Instant) -> Self {
        Self {
            rated_shift: config.rated_message_size.trailing_zeros(),
            rated_threshold: config.trigger_after_rated_messages,
            period: (config.trigger_after_duration > 0)
                .then(|| Duration::from_secs(config.trigger_after_duration)),
            cycle: 1,
            cycle_start: now,
            counters: CycleCounters::default(),
            snapshots_taken: 0,
        }
    }

    /// Takes new settings (a configuration reload) without closing the current cycle: what it
    /// counted so far stays; messages from now on are rated with the new unit, and the
    /// thresholds and the duration (from the cycle's start) are the new ones.
    pub(crate) fn reconfigure(&mut self, config: &StatsConfig) {
        let fresh = Meter::new(config, self.cycle_start);
        self.rated_shift = fresh.rated_shift;
        self.rated_threshold = fresh.rated_threshold;
        self.period = fresh.period;
    }

    /// Counts one message of `len` serialized bytes. Returns true when the rated-messages
    /// trigger fires (the caller then takes a snapshot).
    #[inline]
    pub(crate) fn count(&mut self, len: usize, kind: CountKind) -> bool {
        let len = len as u64;
        let rated = (len + (1u64 << self.rated_shift) - 1) >> self.rated_shift;
        self.counters.bytes += len;
        self.counters.messages += 1;
        self.counters.rated_messages += rated;
        kind == CountKind::Checked && self.rated_due()
    }

    /// Whether the current cycle has reached the rated-messages threshold.
    pub(crate) fn rated_due(&self) -> bool {
        self.rated_threshold > 0 && self.counters.rated_messages >= self.rated_threshold
    }

    /// When the duration trigger of the current cycle fires, if on.
    pub(crate) fn duration_deadline(&self) -> Option<Instant> {
        self.period.map(|p| self.cycle_start + p)
    }

    /// The counters of the current cycle so far.
    #[cfg(test)]
    pub(crate) fn counters(&self) -> CycleCounters {
        self.counters
    }

    /// Closes the current cycle at `now` and starts the next one with zero counters.
    pub(crate) fn snapshot(&mut self, now: Instant, clock: &Clock, last: bool) -> Snapshot {
        let start_ns = clock.unix_ns(self.cycle_start);
        let now = now.max(self.cycle_start);
        let end_ns = clock.unix_ns(now);
        let snap = Snapshot {
            cycle: self.cycle,
            timestamp: start_ns,
            duration: end_ns - start_ns,
            counters: self.counters,
            first: self.snapshots_taken == 0,
            last,
        };
        self.snapshots_taken += 1;
        self.cycle += 1;
        self.cycle_start = now;
        self.counters = CycleCounters::default();
        snap
    }
}

/// The `session_info` argument of `wamp.session.on_stats`.
pub(crate) fn session_info(realm: &str, session: u64, authid: &str, authrole: &str) -> Value {
    Value::Dict(dict! {
        "realm" => realm,
        "session" => session,
        "authid" => authid,
        "authrole" => authrole,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(size: u32, threshold: u64) -> StatsConfig {
        StatsConfig {
            rated_message_size: size,
            trigger_after_rated_messages: threshold,
            ..StatsConfig::default()
        }
    }

    #[test]
    fn rated_messages_are_the_ceiling_of_bytes_over_size() {
        let now = Instant::now();
        let mut m = Meter::new(&config(512, 0), now);
        for len in [1, 512, 513, 1024, 1025] {
            m.count(len, CountKind::Checked);
        }
        // 1 + 1 + 2 + 2 + 3
        assert_eq!(m.counters().rated_messages, 9);
        assert_eq!(m.counters().messages, 5);
        assert_eq!(m.counters().bytes, 1 + 512 + 513 + 1024 + 1025);
        let mut one = Meter::new(&config(1, 0), now);
        one.count(37, CountKind::Checked);
        assert_eq!(one.counters().rated_messages, 37);
    }

    #[test]
    fn threshold_fires_at_or_above_and_guard_defers_the_check() {
        let now = Instant::now();
        let mut m = Meter::new(&config(16, 3), now);
        assert!(!m.count(16, CountKind::Checked));
        assert!(!m.count(16, CountKind::FeedbackGuarded));
        // The guarded message brought the cycle to 2; a big one overshoots to 5.
        assert!(!m.count(10, CountKind::FeedbackGuarded) && m.rated_due());
        assert!(m.count(1, CountKind::Checked));
    }

    #[test]
    fn snapshots_chain_and_reset() {
        let t0 = Instant::now();
        let clock = Clock::with_anchor(t0, 1_000);
        let mut m = Meter::new(&config(512, 0), t0);
        m.count(100, CountKind::Checked);
        let a = m.snapshot(t0 + Duration::from_nanos(500), &clock, false);
        let b = m.snapshot(t0 + Duration::from_nanos(900), &clock, true);
        assert_eq!((a.cycle, b.cycle), (1, 2));
        assert!(a.first && !a.last && !b.first && b.last);
        assert_eq!(a.timestamp, 1_000);
        assert_eq!(a.timestamp + a.duration, b.timestamp);
        assert_eq!(a.counters.bytes, 100);
        assert_eq!(b.counters, CycleCounters::default());
    }
}
