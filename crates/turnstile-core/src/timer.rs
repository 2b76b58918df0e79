//! One table of deadlines for a realm: statistics duration triggers, GOODBYE reply waits,
//! handshake deadlines and call timeouts. The realm exposes only the earliest one, so its shell
//! keeps one sleep.
//!
//! Each deadline has a key ([`TimerKey`]): arming a timer replaces the one with the same key,
//! and a deadline is removed when what it was for ends (a call answered, a session welcomed or
//! gone), so that the table holds only live deadlines: at most one of each kind per session
//! plus one per call it serves with a timeout (fuzz finding F2, docs/fuzzing.md).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use crate::peer::ConnId;

/// What a deadline is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum TimerKind {
    /// The statistics cycle of the session reached `trigger_after_duration`.
    StatsDuration,
    /// The client did not answer the router's GOODBYE in time.
    GoodbyeReply,
    /// The client did not finish the opening handshake (HELLO to WELCOME) in time.
    Handshake,
    /// A call's `timeout` expired; `conn` is the callee and `generation` the INVOCATION request
    /// id (unique per callee session, so never stale by accident).
    CallTimeout,
}

/// A deadline for one session. `generation` makes re-armed timers cheap: the session keeps the
/// generation of its live timer of each kind, and a fired entry of an older one is ignored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Timer {
    pub at: Instant,
    pub conn: ConnId,
    /// The WAMP session the timer is for: a connection that re-joins has a new session, which a
    /// timer of the old one must not touch.
    pub session: wamp_proto::Id,
    pub kind: TimerKind,
    pub generation: u64,
}

/// Which deadline: a connection has at most one of each kind, but one call timeout per
/// invocation it serves (`invocation` is its request id; 0 for the other kinds).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct TimerKey {
    conn: ConnId,
    kind: TimerKind,
    invocation: u64,
}

impl TimerKey {
    /// The key of `conn`'s deadline of `kind` (not a call timeout).
    pub(crate) fn of(conn: ConnId, kind: TimerKind) -> Self {
        Self {
            conn,
            kind,
            invocation: 0,
        }
    }

    /// The key of the timeout of the call `callee` serves as INVOCATION `invocation`.
    pub(crate) fn call(callee: ConnId, invocation: u64) -> Self {
        Self {
            conn: callee,
            kind: TimerKind::CallTimeout,
            invocation,
        }
    }
}

impl Timer {
    fn key(&self) -> TimerKey {
        match self.kind {
            TimerKind::CallTimeout => TimerKey::call(self.conn, self.generation),
            kind => TimerKey::of(self.conn, kind),
        }
    }
}

/// The armed deadlines, by key and in time order.
#[derive(Debug, Default)]
pub(crate) struct TimerTable {
    armed: BTreeMap<TimerKey, Timer>,
    by_time: BTreeSet<(Instant, TimerKey)>,
}

impl TimerTable {
    /// Arms `timer`, replacing the armed timer with the same key.
    pub(crate) fn insert(&mut self, timer: Timer) {
        let key = timer.key();
        if let Some(old) = self.armed.insert(key, timer) {
            self.by_time.remove(&(old.at, key));
        }
        self.by_time.insert((timer.at, key));
    }

    /// Disarms the timer with `key`, if one is armed.
    pub(crate) fn remove(&mut self, key: TimerKey) {
        if let Some(old) = self.armed.remove(&key) {
            self.by_time.remove(&(old.at, key));
        }
    }

    /// Disarms every timer of `conn` (its session has ended).
    pub(crate) fn remove_conn(&mut self, conn: ConnId) {
        let keys: Vec<TimerKey> = self
            .armed
            .range(TimerKey::of(conn, TimerKind::StatsDuration)..)
            .map(|(k, _)| *k)
            .take_while(|k| k.conn == conn)
            .collect();
        for key in keys {
            self.remove(key);
        }
    }

    /// The earliest deadline.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.by_time.first().map(|(at, _)| *at)
    }

    /// Number of armed timers.
    pub(crate) fn len(&self) -> usize {
        self.armed.len()
    }

    /// Removes and returns the earliest timer if it is due at `now`.
    pub(crate) fn pop_due(&mut self, now: Instant) -> Option<Timer> {
        let &(at, key) = self.by_time.first()?;
        if at > now {
            return None;
        }
        self.by_time.pop_first();
        self.armed.remove(&key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn timer(at: Instant, conn: ConnId, kind: TimerKind, generation: u64) -> Timer {
        Timer {
            at,
            conn,
            session: 1,
            kind,
            generation,
        }
    }

    #[test]
    fn rearming_replaces_and_removal_disarms() {
        let t0 = Instant::now();
        let s = Duration::from_secs(1);
        let mut table = TimerTable::default();
        for g in 1..=100 {
            table.insert(timer(t0 + s * g, 7, TimerKind::StatsDuration, u64::from(g)));
        }
        assert_eq!(table.len(), 1, "one statistics deadline per connection");
        assert_eq!(table.next_deadline(), Some(t0 + s * 100));
        table.insert(timer(t0 + s, 7, TimerKind::CallTimeout, 5));
        table.insert(timer(t0 + s * 2, 7, TimerKind::CallTimeout, 6));
        table.insert(timer(t0 + s * 3, 8, TimerKind::Handshake, 0));
        assert_eq!(table.len(), 4);
        table.remove(TimerKey::call(7, 5));
        assert_eq!(table.next_deadline(), Some(t0 + s * 2));
        table.remove_conn(7);
        assert_eq!(table.len(), 1);
        assert_eq!(table.pop_due(t0 + s * 2), None);
        let fired = table.pop_due(t0 + s * 3).expect("due");
        assert_eq!((fired.conn, fired.kind), (8, TimerKind::Handshake));
        assert_eq!((table.len(), table.next_deadline()), (0, None));
    }
}
