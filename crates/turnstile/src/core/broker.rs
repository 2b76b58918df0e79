//! The broker's state: subscriptions (exact, prefix and wildcard) and their subscribers. Pure
//! data: the realm decides what to send.

use std::collections::HashMap;

use wamp_proto::{random_id, Id, MatchPolicy};

use crate::core::router::ConnId;

/// One subscription: a URI and policy shared by all of its subscribers (one id per topic).
#[derive(Debug, Clone)]
pub struct Subscription {
    pub id: Id,
    pub uri: String,
    pub policy: MatchPolicy,
    /// ISO-8601 creation time, for the meta API.
    pub created: String,
    pub subscribers: Vec<ConnId>,
}

/// What a SUBSCRIBE did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Subscribed {
    pub id: Id,
    /// The subscription did not exist before (first subscriber).
    pub created: bool,
    /// The session was added (false when it was already a subscriber).
    pub added: bool,
}

/// What removing a subscriber did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unsubscribed {
    pub id: Id,
    /// The last subscriber is gone and the subscription with it.
    pub deleted: bool,
}

/// All subscriptions of a realm.
#[derive(Debug, Default)]
pub struct Broker {
    by_uri: HashMap<(MatchPolicy, String), Id>,
    subscriptions: HashMap<Id, Subscription>,
    /// Prefix and wildcard subscriptions, checked against every publication.
    patterns: Vec<Id>,
}

impl Broker {
    /// Adds `conn` to the subscription of (`uri`, `policy`), creating it if needed.
    pub fn subscribe(
        &mut self,
        conn: ConnId,
        uri: &str,
        policy: MatchPolicy,
        created_at: impl FnOnce() -> String,
    ) -> Subscribed {
        let key = (policy, uri.to_owned());
        if let Some(&id) = self.by_uri.get(&key) {
            let sub = self
                .subscriptions
                .get_mut(&id)
                .expect("index and table agree");
            let added = !sub.subscribers.contains(&conn);
            if added {
                sub.subscribers.push(conn);
            }
            return Subscribed {
                id,
                created: false,
                added,
            };
        }
        let id = loop {
            let id = random_id();
            if !self.subscriptions.contains_key(&id) {
                break id;
            }
        };
        self.by_uri.insert(key, id);
        if policy != MatchPolicy::Exact {
            self.patterns.push(id);
        }
        let sub = Subscription {
            id,
            uri: uri.to_owned(),
            policy,
            created: created_at(),
            subscribers: vec![conn],
        };
        self.subscriptions.insert(id, sub);
        Subscribed {
            id,
            created: true,
            added: true,
        }
    }

    /// Removes `conn` from subscription `id`. `None` if it was not a subscriber.
    pub fn unsubscribe(&mut self, conn: ConnId, id: Id) -> Option<Unsubscribed> {
        let sub = self.subscriptions.get_mut(&id)?;
        let pos = sub.subscribers.iter().position(|&c| c == conn)?;
        sub.subscribers.swap_remove(pos);
        let deleted = sub.subscribers.is_empty();
        if deleted {
            let sub = self.subscriptions.remove(&id).expect("present");
            self.by_uri.remove(&(sub.policy, sub.uri));
            self.patterns.retain(|&p| p != id);
        }
        Some(Unsubscribed { id, deleted })
    }

    pub fn get(&self, id: Id) -> Option<&Subscription> {
        self.subscriptions.get(&id)
    }

    /// The subscription of exactly (`uri`, `policy`), if any.
    pub fn lookup(&self, uri: &str, policy: MatchPolicy) -> Option<&Subscription> {
        self.by_uri
            .get(&(policy, uri.to_owned()))
            .and_then(|id| self.subscriptions.get(id))
    }

    /// Ids of every subscription that matches `topic`: the exact one first, then patterns.
    pub fn matching(&self, topic: &str) -> Vec<Id> {
        let mut out = Vec::with_capacity(1);
        if let Some(&id) = self.by_uri.get(&(MatchPolicy::Exact, topic.to_owned())) {
            out.push(id);
        }
        for &id in &self.patterns {
            let sub = &self.subscriptions[&id];
            if sub.policy.matches(&sub.uri, topic) {
                out.push(id);
            }
        }
        out
    }

    pub fn iter(&self) -> impl Iterator<Item = &Subscription> {
        self.subscriptions.values()
    }
}
