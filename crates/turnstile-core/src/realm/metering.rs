//! The realm's metering (`wamp.session.on_stats`): when a session's usage cycle closes (join,
//! thresholds, duration timer, leave) and publishing it. The counting itself is in
//! [`crate::meter`]; messages are counted where they are sent and received (`realm/mod.rs`).

use std::time::Instant;

use wamp_proto::{List, Value};

use super::*;
use crate::meter::{session_info, CountKind, Meter};
use crate::timer::{Timer, TimerKind};

impl Realm {
    /// Starts metering a session that has just joined: the join snapshot, or the duration timer.
    pub(super) fn start_metering(&mut self, conn: ConnId) {
        let Some(stats) = self.stats else { return };
        let Some(s) = self.sessions.get(&conn) else {
            return;
        };
        let rated_due = s.meter.as_ref().is_some_and(Meter::rated_due);
        if stats.trigger_on_join || rated_due {
            // With the join trigger off, a handshake that already crossed the rated threshold is
            // reported now: the threshold is not checked before the session has joined.
            self.take_snapshot(conn, false);
        } else {
            self.arm_stats_timer(conn);
        }
    }

    /// Publishes the last cycle of a session that has ended, if the realm reports on leave.
    pub(super) fn final_stats(&mut self, s: &mut Session) {
        if self.stats.is_some_and(|stats| stats.trigger_on_leave) {
            if let Some(args) = close_stats_cycle(&self.name, s, self.now, &self.clock, true) {
                self.publish_stats(args);
            }
        }
    }

    /// (Re)arms the session's duration trigger for its current cycle.
    pub(super) fn arm_stats_timer(&mut self, conn: ConnId) {
        let Some(s) = self.sessions.get_mut(&conn) else {
            return;
        };
        s.stats_timer += 1;
        if let Some(at) = s.meter.as_ref().and_then(Meter::duration_deadline) {
            self.timers.insert(Timer {
                at,
                conn,
                session: s.id,
                kind: TimerKind::StatsDuration,
                generation: s.stats_timer,
            });
        }
    }

    /// Closes the session's current cycle and publishes it as `wamp.session.on_stats`.
    pub(super) fn take_snapshot(&mut self, conn: ConnId, last: bool) {
        let Some(s) = self.sessions.get_mut(&conn) else {
            return;
        };
        let Some(args) = close_stats_cycle(&self.name, s, self.now, &self.clock, last) else {
            return;
        };
        self.arm_stats_timer(conn);
        self.publish_stats(args);
    }

    /// Publishes a closed metering cycle (see [`close_stats_cycle`]) as `wamp.session.on_stats`.
    /// Each delivered EVENT counts in its receiver's meter but never triggers a snapshot by itself
    /// (the spec's feedback guard).
    pub(super) fn publish_stats(&mut self, args: List) {
        self.publish_meta(topic::ON_STATS, args, CountKind::FeedbackGuarded);
    }
}

/// Closes the current metering cycle of `s` at `now` (the last one if `last`) and returns the
/// arguments of its `wamp.session.on_stats` event; `None` if the realm does not meter.
pub(super) fn close_stats_cycle(
    realm: &str,
    s: &mut Session,
    now: Instant,
    clock: &Clock,
    last: bool,
) -> Option<List> {
    let snap = s.meter.as_mut()?.snapshot(now, clock, last);
    let info = session_info(realm, s.id, &s.identity.authid, &s.identity.authrole);
    let stats = Value::Dict(snap.to_dict(s.info.serializer.name()));
    Some(vec![info, stats])
}
