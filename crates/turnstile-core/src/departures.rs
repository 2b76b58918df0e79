//! The subscriptions or registrations of sessions that have left, removed a bounded batch at a
//! time instead of all at once: a session leaving with 100,000 of them would otherwise stall its
//! realm for the whole removal, hundreds of milliseconds.
//!
//! A leaving session's connection is *detached* at once: from then on the broker and the dealer
//! skip it as a subscriber or callee, and hide the entries only it still holds, so nothing is
//! routed to it and the meta procedures no longer show it. Its entries are then removed in
//! batches that the realm drives from its timer ([`crate::realm::Realm::poll_timeout`]); each
//! removal yields a [`Removal`], from which the realm publishes `on_unsubscribe`/`on_delete` or
//! `on_unregister`/`on_delete`. A connection stays detached until its last entry is removed.

use std::collections::{HashMap, VecDeque};

use wamp_proto::Id;

use crate::peer::ConnId;

/// One member removed from one entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Removal {
    /// The session the member was.
    pub session: Id,
    /// The subscription or registration.
    pub entry: Id,
    /// The entry had no other member and is gone.
    pub deleted: bool,
    /// The entry's URI is a `wamp.` one (no meta events for those subscriptions).
    pub reserved: bool,
}

/// Detached members and the entries they are still to be removed from.
#[derive(Debug, Default)]
pub(crate) struct Departures {
    /// Detached connections, with the session each one was.
    detached: HashMap<ConnId, Id>,
    /// Per detached connection, the entries left to remove it from; the latest departure first,
    /// so that a small session leaving is cleaned up at once even behind a large one.
    queue: VecDeque<(ConnId, Vec<Id>)>,
}

impl Departures {
    /// Detaches `conn` (session `session`), a member of `entries`.
    pub(crate) fn detach(&mut self, conn: ConnId, session: Id, entries: Vec<Id>) {
        if entries.is_empty() {
            return;
        }
        self.detached.insert(conn, session);
        self.queue.push_front((conn, entries));
    }

    pub(crate) fn is_detached(&self, conn: ConnId) -> bool {
        self.detached.contains_key(&conn)
    }

    /// The session that detached connection `conn` was.
    pub(crate) fn session_of(&self, conn: ConnId) -> Option<Id> {
        self.detached.get(&conn).copied()
    }

    /// Whether any connection is detached.
    pub(crate) fn has_any(&self) -> bool {
        !self.detached.is_empty()
    }

    /// Whether entries are waiting to be cleaned up.
    pub(crate) fn is_pending(&self) -> bool {
        !self.queue.is_empty()
    }

    /// Whether an entry with these members still has one that is not detached.
    pub(crate) fn is_live(&self, members: &[ConnId]) -> bool {
        self.detached.is_empty() || members.iter().any(|c| !self.detached.contains_key(c))
    }

    /// Takes up to `budget` (member, its session, entry) pairs to remove. A connection whose last
    /// pairs are taken is no longer detached: the caller removes them before anything else runs.
    pub(crate) fn take(&mut self, budget: usize) -> Vec<(ConnId, Id, Id)> {
        let mut out = Vec::with_capacity(budget.min(1024));
        while out.len() < budget {
            let Some((conn, entries)) = self.queue.front_mut() else {
                break;
            };
            let conn = *conn;
            let session = self.detached.get(&conn).copied().unwrap_or_default();
            let n = (budget - out.len()).min(entries.len());
            out.extend(
                entries
                    .drain(entries.len() - n..)
                    .map(|e| (conn, session, e)),
            );
            if entries.is_empty() {
                self.queue.pop_front();
                self.detached.remove(&conn);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latest_departure_first_in_bounded_batches() {
        let mut d = Departures::default();
        d.detach(1, 100, vec![10, 11, 12]);
        d.detach(2, 200, vec![20]);
        d.detach(3, 300, vec![]);
        assert!(d.is_detached(1) && d.is_detached(2) && !d.is_detached(3));
        assert!(!d.is_live(&[1, 2]) && d.is_live(&[1, 3]));
        assert_eq!(d.take(2), vec![(2, 200, 20), (1, 100, 12)]);
        assert!(!d.is_detached(2) && d.is_detached(1));
        assert_eq!(d.session_of(1), Some(100));
        assert_eq!(d.take(5), vec![(1, 100, 10), (1, 100, 11)]);
        assert!(!d.is_pending() && !d.is_detached(1));
        assert!(d.is_live(&[1]));
    }
}
