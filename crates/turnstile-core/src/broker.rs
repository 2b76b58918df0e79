//! The broker's state: subscriptions (exact, prefix and wildcard) and their subscribers. Pure
//! data: the realm decides what to send.
//!
//! The subscribers of a session that left are detached at once and removed in batches
//! ([`crate::departures`]); meanwhile every reader here skips them, and a subscription only they
//! hold is not shown.

use std::collections::{HashMap, HashSet};

use std::collections::VecDeque;

use wamp_proto::{Dict, Id, List, MatchPolicy};

use crate::departures::{Departures, Removal};
use crate::limits;
use crate::peer::ConnId;
use crate::uri_table::{UriPattern, UriTable};

/// One subscription: a URI and policy shared by all of its subscribers (one id per topic).
#[derive(Debug, Clone)]
pub(crate) struct Subscription {
    pub id: Id,
    pub uri: String,
    pub policy: MatchPolicy,
    /// ISO-8601 creation time, for the meta API.
    pub created: String,
    pub subscribers: Vec<ConnId>,
}

/// What a SUBSCRIBE did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Subscribed {
    pub id: Id,
    /// The subscription did not exist before (first subscriber).
    pub created: bool,
    /// The session was added (false when it was already a subscriber).
    pub added: bool,
}

/// What removing a subscriber did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Unsubscribed {
    pub id: Id,
    /// The last subscriber is gone and the subscription with it.
    pub deleted: bool,
}

/// The last event published with `retain` on a topic, for subscribers asking `get_retained`.
#[derive(Debug, Clone)]
pub(crate) struct RetainedEvent {
    pub publication: Id,
    /// Publisher disclosure and pass-through keys, as in the original EVENTs.
    pub details: Dict,
    pub args: Option<List>,
    pub kwargs: Option<Dict>,
    /// The publication's black- and whitelists (not the publisher exclusion).
    pub eligibility: Eligibility,
}

/// Black- and whitelists of a publication (`exclude`, `eligible`, ... options).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Eligibility {
    pub exclude_conn: Option<ConnId>,
    pub exclude: Option<Vec<Id>>,
    pub exclude_authid: Option<Vec<String>>,
    pub exclude_authrole: Option<Vec<String>>,
    pub eligible: Option<Vec<Id>>,
    pub eligible_authid: Option<Vec<String>>,
    pub eligible_authrole: Option<Vec<String>>,
}

impl Eligibility {
    /// Whether a receiver with this identity may get the publication.
    pub(crate) fn admits(&self, conn: ConnId, id: Id, authid: &str, authrole: &str) -> bool {
        let has =
            |l: &Option<Vec<String>>, v: &str| l.as_ref().is_some_and(|l| l.iter().any(|x| x == v));
        let allows =
            |l: &Option<Vec<String>>, v: &str| l.as_ref().is_none_or(|l| l.iter().any(|x| x == v));
        self.exclude_conn != Some(conn)
            && !self.exclude.as_ref().is_some_and(|l| l.contains(&id))
            && !has(&self.exclude_authid, authid)
            && !has(&self.exclude_authrole, authrole)
            && self.eligible.as_ref().is_none_or(|l| l.contains(&id))
            && allows(&self.eligible_authid, authid)
            && allows(&self.eligible_authrole, authrole)
    }
}

/// One stored event of an event history.
#[derive(Debug, Clone)]
pub(crate) struct StoredEvent {
    pub timestamp: String,
    pub publication: Id,
    pub topic: String,
    pub args: Option<List>,
    pub kwargs: Option<Dict>,
}

/// The event history of one (URI, match policy), bounded to `limit` events.
#[derive(Debug, Clone)]
pub(crate) struct History {
    pub uri: String,
    pub policy: MatchPolicy,
    pub limit: usize,
    pub events: VecDeque<StoredEvent>,
}

/// All subscriptions of a realm.
#[derive(Debug, Default)]
pub(crate) struct Broker {
    /// Retained events by topic, with their insertion order for eviction.
    retained: HashMap<String, RetainedEvent>,
    retained_order: VecDeque<String>,
    /// Configured event histories (realm `store.event-history`).
    histories: Vec<History>,
    subscriptions: UriTable<Subscription>,
    /// Per subscriber: its subscriptions. An index of the subscriber lists, changed only with
    /// them (a detached subscriber has left the index, not yet the lists).
    by_subscriber: HashMap<ConnId, HashSet<Id>>,
    /// Subscribers of sessions that left, still in some subscriber lists.
    departures: Departures,
}

impl UriPattern for Subscription {
    fn uri(&self) -> &str {
        &self.uri
    }
    fn policy(&self) -> MatchPolicy {
        self.policy
    }
}

impl Broker {
    /// A broker keeping the given event histories (empty at first).
    pub(crate) fn with_histories(histories: Vec<History>) -> Self {
        Self {
            histories,
            ..Self::default()
        }
    }

    /// Replaces the configured event histories (a configuration reload): a history configured
    /// before and after (same URI and match policy) keeps its events, down to its new limit;
    /// the others start empty or are dropped.
    pub(crate) fn reconfigure_histories(&mut self, histories: Vec<History>) {
        let mut old = std::mem::take(&mut self.histories);
        self.histories = histories
            .into_iter()
            .map(|mut h| {
                if let Some(i) = old
                    .iter()
                    .position(|o| o.uri == h.uri && o.policy == h.policy)
                {
                    h.events = old.swap_remove(i).events;
                    while h.events.len() > h.limit {
                        h.events.pop_front();
                    }
                }
                h
            })
            .collect();
    }

    /// The configured event histories.
    pub(crate) fn histories(&self) -> &[History] {
        &self.histories
    }

    /// The configured event histories, taken out of a broker that is not used any more.
    pub(crate) fn into_histories(self) -> Vec<History> {
        self.histories
    }

    /// Entries of the subscription table and the per-subscriber index, subscriber lists and
    /// inner sets included (for [`crate::realm::TableSizes`]).
    pub(crate) fn subscription_entries(&self) -> usize {
        let subscribers: usize = self.by_subscriber.values().map(|subs| 1 + subs.len()).sum();
        self.subscriptions.footprint() + subscribers
    }

    /// Topics with a retained event.
    pub(crate) fn retained_topics(&self) -> usize {
        self.retained.len().max(self.retained_order.len())
    }

    /// Whether a publication to `topic` is recorded in some event history.
    pub(crate) fn keeps_history(&self, topic: &str) -> bool {
        self.histories
            .iter()
            .any(|h| h.policy.matches(&h.uri, topic))
    }

    /// Adds `conn` to the subscription of (`uri`, `policy`), creating it if needed. Detached
    /// subscribers of that subscription are removed first, into `removed`: when only they held
    /// it, it is deleted and a new one created, as if they had been removed already.
    pub(crate) fn subscribe(
        &mut self,
        conn: ConnId,
        uri: &str,
        policy: MatchPolicy,
        created_at: impl FnOnce() -> String,
        removed: &mut Vec<Removal>,
    ) -> Subscribed {
        if let Some(id) = self.subscriptions.find(uri, policy) {
            self.remove_detached(id, removed);
        }
        if let Some(sub) = self.subscriptions.find_mut(uri, policy) {
            let id = sub.id;
            let added = !sub.subscribers.contains(&conn);
            if added {
                sub.subscribers.push(conn);
                self.by_subscriber.entry(conn).or_default().insert(id);
            }
            return Subscribed {
                id,
                created: false,
                added,
            };
        }
        let id = self
            .subscriptions
            .insert_with(uri, policy, |id| Subscription {
                id,
                uri: uri.to_owned(),
                policy,
                created: created_at(),
                subscribers: vec![conn],
            });
        self.by_subscriber.entry(conn).or_default().insert(id);
        Subscribed {
            id,
            created: true,
            added: true,
        }
    }

    /// Detaches `conn` (session `session`), which is leaving: it receives nothing more and no
    /// longer shows as a subscriber; [`Broker::clean_up`] removes it from its subscriptions.
    pub(crate) fn detach(&mut self, conn: ConnId, session: Id) {
        if let Some(mine) = self.by_subscriber.remove(&conn) {
            self.departures
                .detach(conn, session, mine.into_iter().collect());
        }
    }

    /// Whether `conn` is detached, its subscriptions not all cleaned up yet.
    pub(crate) fn is_detached(&self, conn: ConnId) -> bool {
        self.departures.is_detached(conn)
    }

    /// Whether detached subscribers wait for [`Broker::clean_up`].
    pub(crate) fn has_departures(&self) -> bool {
        self.departures.is_pending()
    }

    /// Removes detached subscribers from up to `budget` subscriptions, into `removed`; returns
    /// how many it looked at (each costs about the same, removed or not).
    pub(crate) fn clean_up(&mut self, budget: usize, removed: &mut Vec<Removal>) -> usize {
        let batch = self.departures.take(budget);
        for &(conn, session, id) in &batch {
            let reserved = self.is_reserved(id);
            if let Some(u) = self.unsubscribe(conn, id) {
                removed.push(Removal {
                    session,
                    entry: id,
                    deleted: u.deleted,
                    reserved,
                });
            }
        }
        batch.len()
    }

    /// Removes the detached subscribers of subscription `id` at once, into `removed`.
    fn remove_detached(&mut self, id: Id, removed: &mut Vec<Removal>) {
        let Some(sub) = self.subscriptions.get(id) else {
            return;
        };
        if !self.departures.has_any() {
            return;
        }
        let gone: Vec<ConnId> = sub
            .subscribers
            .iter()
            .copied()
            .filter(|&c| self.departures.is_detached(c))
            .collect();
        let reserved = self.is_reserved(id);
        for conn in gone {
            let session = self.departures.session_of(conn).unwrap_or_default();
            if let Some(u) = self.unsubscribe(conn, id) {
                removed.push(Removal {
                    session,
                    entry: id,
                    deleted: u.deleted,
                    reserved,
                });
            }
        }
    }

    /// Whether subscription `id` is to a `wamp.` topic (no meta events about those).
    fn is_reserved(&self, id: Id) -> bool {
        self.subscriptions
            .get(id)
            .is_some_and(|s| s.uri.starts_with("wamp."))
    }

    /// Removes `conn` from subscription `id`. `None` if it was not a subscriber.
    pub(crate) fn unsubscribe(&mut self, conn: ConnId, id: Id) -> Option<Unsubscribed> {
        let sub = self.subscriptions.get_mut(id)?;
        let pos = sub.subscribers.iter().position(|&c| c == conn)?;
        sub.subscribers.swap_remove(pos);
        if let Some(mine) = self.by_subscriber.get_mut(&conn) {
            mine.remove(&id);
        }
        let deleted = sub.subscribers.is_empty();
        if deleted {
            self.subscriptions.remove(id);
        }
        Some(Unsubscribed { id, deleted })
    }

    /// Whether `conn` is a subscriber of subscription `id`.
    pub(crate) fn is_subscriber(&self, conn: ConnId, id: Id) -> bool {
        self.by_subscriber
            .get(&conn)
            .is_some_and(|mine| mine.contains(&id))
    }

    /// How many subscriptions `conn` holds.
    pub(crate) fn subscription_count(&self, conn: ConnId) -> usize {
        self.by_subscriber.get(&conn).map_or(0, HashSet::len)
    }

    /// The subscriptions of `conn`.
    pub(crate) fn subscriptions_of(&self, conn: ConnId) -> impl Iterator<Item = &Subscription> {
        self.by_subscriber
            .get(&conn)
            .into_iter()
            .flatten()
            .filter_map(|id| self.subscriptions.get(*id))
    }

    /// Subscription `id`, unless only detached subscribers hold it.
    pub(crate) fn get(&self, id: Id) -> Option<&Subscription> {
        self.subscriptions
            .get(id)
            .filter(|s| self.departures.is_live(&s.subscribers))
    }

    /// The subscription of exactly (`uri`, `policy`), if any.
    pub(crate) fn lookup(&self, uri: &str, policy: MatchPolicy) -> Option<&Subscription> {
        self.subscriptions
            .find(uri, policy)
            .and_then(|id| self.get(id))
    }

    /// Whether some subscription matches `topic` (detached subscribers included: a quick test
    /// before building a meta event, which is then delivered to live subscribers only).
    pub(crate) fn has_match(&self, topic: &str) -> bool {
        self.subscriptions.has_match(topic)
    }

    /// Ids of every subscription that matches `topic`: the exact one first, then patterns.
    pub(crate) fn matching(&self, topic: &str) -> Vec<Id> {
        let mut ids = self.subscriptions.matching(topic);
        if self.departures.has_any() {
            ids.retain(|&id| self.get(id).is_some());
        }
        ids
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = &Subscription> {
        self.subscriptions
            .iter()
            .filter(|s| self.departures.is_live(&s.subscribers))
    }

    /// Keeps `event` as the retained event of `topic`, evicting the oldest topic's beyond
    /// [`limits::MAX_RETAINED_TOPICS`].
    pub(crate) fn retain(&mut self, topic: &str, event: RetainedEvent) {
        if self.retained.insert(topic.to_owned(), event).is_none() {
            self.retained_order.push_back(topic.to_owned());
            while self.retained_order.len() > limits::MAX_RETAINED_TOPICS {
                if let Some(old) = self.retained_order.pop_front() {
                    self.retained.remove(&old);
                }
            }
        }
    }

    /// The retained events whose topic `policy`/`uri` matches, as (topic, event).
    pub(crate) fn retained_matching(
        &self,
        uri: &str,
        policy: MatchPolicy,
    ) -> Vec<(String, RetainedEvent)> {
        match policy {
            MatchPolicy::Exact => self
                .retained
                .get(uri)
                .map(|e| vec![(uri.to_owned(), e.clone())])
                .unwrap_or_default(),
            _ => self
                .retained_order
                .iter()
                .filter(|t| policy.matches(uri, t))
                .filter_map(|t| self.retained.get(t).map(|e| (t.clone(), e.clone())))
                .collect(),
        }
    }

    /// Records a publication in every configured history whose pattern matches its topic.
    pub(crate) fn record_history(&mut self, event: &StoredEvent) {
        for h in &mut self.histories {
            if h.policy.matches(&h.uri, &event.topic) {
                h.events.push_back(event.clone());
                while h.events.len() > h.limit {
                    h.events.pop_front();
                }
            }
        }
    }

    /// The history kept for exactly (`uri`, `policy`), if configured.
    pub(crate) fn history(&self, uri: &str, policy: MatchPolicy) -> Option<&History> {
        self.histories
            .iter()
            .find(|h| h.uri == uri && h.policy == policy)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subscriptions_are_indexed_by_subscriber() {
        let mut b = Broker::default();
        let t = || "t".to_owned();
        let x = b.subscribe(1, "x", MatchPolicy::Exact, t, &mut vec![]);
        assert!(x.created && x.added);
        let again = b.subscribe(1, "x", MatchPolicy::Exact, t, &mut vec![]);
        assert!(!again.created && !again.added);
        b.subscribe(2, "x", MatchPolicy::Exact, t, &mut vec![]);
        let y = b.subscribe(1, "y.", MatchPolicy::Prefix, t, &mut vec![]);
        assert!(b.is_subscriber(2, x.id) && !b.is_subscriber(2, y.id));
        assert_eq!(b.subscriptions_of(1).count(), 2);
        assert_eq!(b.unsubscribe(2, x.id).map(|u| u.deleted), Some(false));
        assert!(!b.is_subscriber(2, x.id));
        assert_eq!(b.matching("y.z"), vec![y.id]);
        b.detach(1, 100);
        assert_eq!(b.subscriptions_of(1).count(), 0);
        // Detached, 1 is hidden at once, and with it x and y, which only 1 holds now.
        assert_eq!(b.iter().count(), 0);
        assert!(b.matching("y.z").is_empty() && b.get(x.id).is_none());
        let mut removed = Vec::new();
        assert_eq!(b.clean_up(1, &mut removed), 1);
        assert!(b.has_departures() && b.is_detached(1));
        assert_eq!(b.clean_up(10, &mut removed), 1);
        assert!(!b.has_departures() && !b.is_detached(1));
        removed.sort_by_key(|r| r.entry);
        let mut want = vec![x.id, y.id];
        want.sort();
        assert_eq!(removed.iter().map(|r| r.entry).collect::<Vec<_>>(), want);
        assert!(removed
            .iter()
            .all(|r| r.deleted && r.session == 100 && !r.reserved));
        assert_eq!(b.subscriptions.iter().count(), 0);
    }

    /// Subscribing to a subscription that only detached subscribers hold removes them first: the
    /// old subscription is deleted, a new one created.
    #[test]
    fn subscribing_removes_detached_subscribers_first() {
        let mut b = Broker::default();
        let t = || "t".to_owned();
        let mut removed = Vec::new();
        let old = b.subscribe(1, "x", MatchPolicy::Exact, t, &mut removed);
        b.subscribe(
            1,
            "wamp.session.on_join",
            MatchPolicy::Exact,
            t,
            &mut removed,
        );
        b.detach(1, 100);
        let new = b.subscribe(2, "x", MatchPolicy::Exact, t, &mut removed);
        assert!(new.created && new.id != old.id);
        assert_eq!(
            removed,
            vec![Removal {
                session: 100,
                entry: old.id,
                deleted: true,
                reserved: false
            }]
        );
        removed.clear();
        b.clean_up(10, &mut removed);
        assert_eq!(removed.len(), 1, "only the wamp. subscription was left");
        assert!(removed[0].reserved && removed[0].deleted);
        assert_eq!(b.get(new.id).map(|s| s.subscribers.clone()), Some(vec![2]));
    }
}
