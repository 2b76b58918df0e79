//! The realm's metering (`wamp.session.on_stats`): when a session's usage cycle closes (join,
//! thresholds, duration timer, leave), publishing it, and handing it to the shell as a
//! [`UsageRow`] for the usage ledger ([`Realm::poll_usage`]). The counting itself is in
//! [`crate::meter`]; messages are counted where they are sent and received (`realm/mod.rs`).

use std::time::Instant;

use wamp_proto::{List, Value};

use super::*;
use crate::meter::{session_info, CountKind, Meter, Snapshot};
use crate::peer::Framing;
use crate::timer::{Timer, TimerKind};

/// One closed statistics cycle of a session: the figures of its `wamp.session.on_stats` event
/// and what a usage ledger records with them. The realm queues one per closed cycle, whether
/// or not anyone subscribes to `on_stats` (and with `enable_meta_api: false` too), once
/// [`Realm::record_usage`] turned recording on; the shell takes them with [`Realm::poll_usage`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageRow {
    /// The realm's name.
    pub realm: String,
    /// The WAMP session id.
    pub session: u64,
    /// The cycle number, 1, 2, 3, ... per session.
    pub cycle: u64,
    /// The session's authid.
    pub authid: String,
    /// The session's authrole.
    pub authrole: String,
    /// How the session authenticated (`anonymous`, `ticket`, `wampcra`, `cryptosign`).
    pub authmethod: String,
    /// `json`, `msgpack` or `cbor`.
    pub serializer: &'static str,
    /// `websocket` or `rawsocket`.
    pub transport: &'static str,
    /// The peer as in session details (`tcp4:127.0.0.1:33512`, `unix`).
    pub peer: String,
    /// Start of the cycle, nanoseconds since the Unix epoch (the event's `timestamp`).
    pub started: u64,
    /// Nanoseconds from `started` to the snapshot.
    pub duration: u64,
    /// Messages of the cycle, both directions.
    pub messages: u64,
    /// Bytes of the cycle, both directions.
    pub bytes: u64,
    /// Rated messages of the cycle, both directions.
    pub rated_messages: u64,
    /// The session's first event.
    pub first: bool,
    /// The session's final event.
    pub last: bool,
    /// On the final row: how the session ended (see [`UsageRow::ENDINGS`]); `None` otherwise.
    pub ended: Option<&'static str>,
}

impl UsageRow {
    /// Every value of [`UsageRow::ended`]: the client said GOODBYE or answered the router's
    /// (kill, shutdown, realm removed); its connection was lost; it broke the protocol; it was
    /// disconnected as a slow consumer; it did not answer the router's GOODBYE in time; it sent
    /// ABORT; a configuration reload removed the realm's `stats` (the session goes on,
    /// unmetered). A ledger adds `unclean` for sessions open when the router died.
    pub const ENDINGS: [&'static str; 7] = [
        "goodbye",
        "connection_lost",
        "protocol_violation",
        "slow_consumer",
        "goodbye_timeout",
        "client_abort",
        "metering_off",
    ];
}

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
            self.take_snapshot(conn);
        } else {
            self.arm_stats_timer(conn);
        }
    }

    /// Publishes the last cycle of a session that has ended (`ended` says how), if the realm
    /// reports on leave.
    pub(super) fn final_stats(&mut self, s: &mut Session, ended: &'static str) {
        if self.stats.is_some_and(|stats| stats.trigger_on_leave) {
            let closed = close_stats_cycle(&self.name, s, self.now, &self.clock, Some(ended));
            self.publish_cycle(closed);
        }
    }

    /// Turns on queueing a [`UsageRow`] for every cycle closed from now on (the runtime does
    /// when the node has a usage ledger); without it the realm builds none.
    pub fn record_usage(&mut self) {
        self.usage.get_or_insert_with(VecDeque::new);
    }

    /// The next closed cycle for the usage ledger, oldest first (see [`Realm::record_usage`]).
    pub fn poll_usage(&mut self) -> Option<UsageRow> {
        self.usage.as_mut()?.pop_front()
    }

    /// Queues a closed cycle for the ledger (if recording) and publishes its `on_stats` event.
    pub(super) fn publish_cycle(&mut self, closed: Option<ClosedCycle>) {
        let Some(closed) = closed else { return };
        if let Some(usage) = self.usage.as_mut() {
            usage.push_back(closed.row);
        }
        self.publish_stats(closed.args);
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

    /// Closes the session's current cycle (not its last) and publishes it as
    /// `wamp.session.on_stats`.
    pub(super) fn take_snapshot(&mut self, conn: ConnId) {
        let Some(s) = self.sessions.get_mut(&conn) else {
            return;
        };
        let Some(closed) = close_stats_cycle(&self.name, s, self.now, &self.clock, None) else {
            return;
        };
        self.arm_stats_timer(conn);
        self.publish_cycle(Some(closed));
    }

    /// Publishes a closed metering cycle (see [`close_stats_cycle`]) as `wamp.session.on_stats`.
    /// Each delivered EVENT counts in its receiver's meter but never triggers a snapshot by itself
    /// (the spec's feedback guard).
    pub(super) fn publish_stats(&mut self, args: List) {
        self.publish_meta(topic::ON_STATS, args, CountKind::FeedbackGuarded);
    }
}

/// A cycle just closed: the arguments of its `on_stats` event and its ledger row.
pub(super) struct ClosedCycle {
    args: List,
    row: UsageRow,
}

/// Closes the current metering cycle of `s` at now; `ended` (how the session ended) makes it
/// the session's last. `None` if the realm does not meter.
pub(super) fn close_stats_cycle(
    realm: &str,
    s: &mut Session,
    now: Instant,
    clock: &Clock,
    ended: Option<&'static str>,
) -> Option<ClosedCycle> {
    let snap = s.meter.as_mut()?.snapshot(now, clock, ended.is_some());
    let serializer = s.info.serializer.name();
    let info = session_info(realm, s.id, &s.identity.authid, &s.identity.authrole);
    let stats = Value::Dict(snap.to_dict(serializer));
    Some(ClosedCycle {
        args: vec![info, stats],
        row: usage_row(realm, s, &snap, ended),
    })
}

fn usage_row(realm: &str, s: &Session, snap: &Snapshot, ended: Option<&'static str>) -> UsageRow {
    UsageRow {
        realm: realm.to_owned(),
        session: s.id,
        cycle: snap.cycle,
        authid: s.identity.authid.clone(),
        authrole: s.identity.authrole.clone(),
        authmethod: s.identity.authmethod.clone(),
        serializer: s.info.serializer.name(),
        transport: match s.info.framing {
            Framing::WebSocket => "websocket",
            Framing::RawSocket => "rawsocket",
        },
        peer: s.info.peer.to_string(),
        started: snap.timestamp,
        duration: snap.duration,
        messages: snap.counters.messages,
        bytes: snap.counters.bytes,
        rated_messages: snap.counters.rated_messages,
        first: snap.first,
        last: snap.last,
        ended,
    }
}
