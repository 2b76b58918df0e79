//! One table of deadlines for a realm: statistics duration triggers, GOODBYE reply waits and
//! handshake deadlines. The realm exposes only the earliest one, so its shell keeps one sleep.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::Instant;

use crate::peer::ConnId;

/// What a deadline is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
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

/// A min-heap of deadlines, with lazy removal: stale entries are skipped when they fire.
#[derive(Debug, Default)]
pub(crate) struct TimerTable {
    heap: BinaryHeap<Reverse<Timer>>,
}

impl TimerTable {
    pub(crate) fn insert(&mut self, timer: Timer) {
        self.heap.push(Reverse(timer));
    }

    /// The earliest deadline (possibly stale: firing a stale timer does nothing).
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.heap.peek().map(|Reverse(t)| t.at)
    }

    /// Removes and returns the earliest timer if it is due at `now`.
    pub(crate) fn pop_due(&mut self, now: Instant) -> Option<Timer> {
        match self.heap.peek() {
            Some(Reverse(t)) if t.at <= now => self.heap.pop().map(|Reverse(t)| t),
            _ => None,
        }
    }
}
