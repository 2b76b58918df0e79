//! The dealer's state: registrations (exact, prefix, wildcard; shared with an invocation policy)
//! Pure data: the realm decides what to send.
//!
//! The callees of a session that left are detached at once and removed in batches
//! ([`crate::departures`]); meanwhile no call is routed to them, a registration only they hold
//! is not matched or shown, and registering its URI again replaces it.

use std::collections::{HashMap, HashSet};

use wamp_proto::{Dict, Id, List, MatchPolicy};

use crate::departures::{Departures, Removal};
use crate::peer::ConnId;
use crate::uri_table::{UriPattern, UriTable};

/// How a shared registration picks a callee.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum InvokePolicy {
    Single,
    RoundRobin,
    Random,
    First,
    Last,
}

impl InvokePolicy {
    pub(crate) fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "single" => Self::Single,
            "roundrobin" => Self::RoundRobin,
            "random" => Self::Random,
            "first" => Self::First,
            "last" => Self::Last,
            _ => return None,
        })
    }
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Single => "single",
            Self::RoundRobin => "roundrobin",
            Self::Random => "random",
            Self::First => "first",
            Self::Last => "last",
        }
    }
}

/// A registration and its callees (one unless shared).
#[derive(Debug, Clone)]
pub(crate) struct Registration {
    pub id: Id,
    pub uri: String,
    pub policy: MatchPolicy,
    pub invoke: InvokePolicy,
    pub created: String,
    /// In registration order.
    pub callees: Vec<ConnId>,
    next_round_robin: usize,
}

impl UriPattern for Registration {
    fn uri(&self) -> &str {
        &self.uri
    }
    fn policy(&self) -> MatchPolicy {
        self.policy
    }
}

/// Why a REGISTER was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum RegisterError {
    #[error("the procedure is already registered")]
    AlreadyExists,
    #[error("the procedure is registered with a different invocation policy")]
    DifferentPolicy,
}

/// What a REGISTER did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Registered {
    pub id: Id,
    pub created: bool,
}

/// Who made a call: a session, or the router itself (a dynamic authenticator or authorizer),
/// whose waiter is found by the invocation's `call_request` token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Caller {
    Session(ConnId),
    Router,
}

/// A successful answer to a call the router made: the RESULT's payload.
#[derive(Debug, Clone, PartialEq)]
pub struct CallReturn {
    /// RESULT.Arguments, if the callee sent any.
    pub args: Option<List>,
    /// RESULT.ArgumentsKw, if the callee sent any.
    pub kwargs: Option<Dict>,
}

/// A failed call the router made: the ERROR's URI and payload.
#[derive(Debug, Clone, PartialEq)]
pub struct CallFailure {
    /// ERROR.Error: the error URI (`wamp.error.no_such_procedure`, `wamp.error.canceled`, …).
    pub error: String,
    /// ERROR.Arguments, if any.
    pub args: Option<List>,
    /// ERROR.ArgumentsKw, if any.
    pub kwargs: Option<Dict>,
}

/// What a call the router made came to.
pub type InternalCallOutcome = Result<CallReturn, CallFailure>;

/// How a CANCEL treats the invocation (`CANCEL.Options.mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CancelMode {
    /// Answer the caller at once; the callee is not told and its answer is dropped.
    Skip,
    /// INTERRUPT the callee and pass on whatever it answers.
    Kill,
    /// INTERRUPT the callee and answer the caller at once.
    KillNoWait,
}

impl CancelMode {
    pub(crate) fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "skip" => Self::Skip,
            "kill" => Self::Kill,
            "killnowait" => Self::KillNoWait,
            _ => return None,
        })
    }
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Skip => "skip",
            Self::Kill => "kill",
            Self::KillNoWait => "killnowait",
        }
    }
}

/// All registrations of a realm.
#[derive(Debug, Default)]
pub(crate) struct Dealer {
    registrations: UriTable<Registration>,
    /// Per callee: its registrations. An index of the callee lists, changed only with them (a
    /// detached callee has left the index, not yet the lists).
    by_callee: HashMap<ConnId, HashSet<Id>>,
    /// Callees of sessions that left, still in some callee lists.
    departures: Departures,
}

impl Dealer {
    /// Entries of the registration table and the per-callee index, inner sets included (for
    /// [`crate::realm::TableSizes`]).
    pub(crate) fn entries(&self) -> usize {
        let callees: usize = self.by_callee.values().map(|regs| 1 + regs.len()).sum();
        self.registrations.footprint() + callees
    }

    /// Adds `conn` as a callee of (`uri`, `policy`), creating the registration if needed.
    /// Detached callees of that registration are removed first, into `removed`: when only they
    /// held it, it is deleted and a new one created, as if they had been removed already.
    pub(crate) fn register(
        &mut self,
        conn: ConnId,
        uri: &str,
        policy: MatchPolicy,
        invoke: InvokePolicy,
        created_at: impl FnOnce() -> String,
        removed: &mut Vec<Removal>,
    ) -> Result<Registered, RegisterError> {
        if let Some(id) = self.registrations.find(uri, policy) {
            self.remove_detached(id, removed);
        }
        if let Some(reg) = self.registrations.find_mut(uri, policy) {
            let id = reg.id;
            if reg.invoke == InvokePolicy::Single || invoke == InvokePolicy::Single {
                return Err(RegisterError::AlreadyExists);
            }
            if reg.invoke != invoke {
                return Err(RegisterError::DifferentPolicy);
            }
            if reg.callees.contains(&conn) {
                return Err(RegisterError::AlreadyExists);
            }
            reg.callees.push(conn);
            self.by_callee.entry(conn).or_default().insert(id);
            return Ok(Registered { id, created: false });
        }
        let id = self
            .registrations
            .insert_with(uri, policy, |id| Registration {
                id,
                uri: uri.to_owned(),
                policy,
                invoke,
                created: created_at(),
                callees: vec![conn],
                next_round_robin: 0,
            });
        self.by_callee.entry(conn).or_default().insert(id);
        Ok(Registered { id, created: true })
    }

    /// Detaches `conn` (session `session`), which is leaving: no call goes to it and it no
    /// longer shows as a callee; [`Dealer::clean_up`] removes it from its registrations.
    pub(crate) fn detach(&mut self, conn: ConnId, session: Id) {
        if let Some(mine) = self.by_callee.remove(&conn) {
            self.departures
                .detach(conn, session, mine.into_iter().collect());
        }
    }

    /// Whether `conn` is detached, its registrations not all cleaned up yet.
    pub(crate) fn is_detached(&self, conn: ConnId) -> bool {
        self.departures.is_detached(conn)
    }

    /// Whether detached callees wait for [`Dealer::clean_up`].
    pub(crate) fn has_departures(&self) -> bool {
        self.departures.is_pending()
    }

    /// Removes detached callees from up to `budget` registrations, into `removed`; returns how
    /// many it looked at.
    pub(crate) fn clean_up(&mut self, budget: usize, removed: &mut Vec<Removal>) -> usize {
        let batch = self.departures.take(budget);
        for &(conn, session, id) in &batch {
            if let Some(deleted) = self.unregister(conn, id) {
                removed.push(Removal {
                    session,
                    entry: id,
                    deleted,
                    reserved: false,
                });
            }
        }
        batch.len()
    }

    /// Removes the detached callees of registration `id` at once, into `removed`.
    fn remove_detached(&mut self, id: Id, removed: &mut Vec<Removal>) {
        if !self.departures.has_any() {
            return;
        }
        let Some(reg) = self.registrations.get(id) else {
            return;
        };
        let gone: Vec<ConnId> = reg
            .callees
            .iter()
            .copied()
            .filter(|&c| self.departures.is_detached(c))
            .collect();
        for conn in gone {
            let session = self.departures.session_of(conn).unwrap_or_default();
            if let Some(deleted) = self.unregister(conn, id) {
                removed.push(Removal {
                    session,
                    entry: id,
                    deleted,
                    reserved: false,
                });
            }
        }
    }

    /// Removes `conn` as a callee of `id`; `Some(deleted)` if it was one.
    pub(crate) fn unregister(&mut self, conn: ConnId, id: Id) -> Option<bool> {
        let reg = self.registrations.get_mut(id)?;
        let pos = reg.callees.iter().position(|&c| c == conn)?;
        reg.callees.remove(pos);
        if let Some(mine) = self.by_callee.get_mut(&conn) {
            mine.remove(&id);
        }
        let deleted = reg.callees.is_empty();
        if deleted {
            self.registrations.remove(id);
        }
        Some(deleted)
    }

    /// How many registrations `conn` holds.
    pub(crate) fn registration_count(&self, conn: ConnId) -> usize {
        self.by_callee.get(&conn).map_or(0, HashSet::len)
    }

    /// Whether `conn` is a callee of registration `id`.
    pub(crate) fn is_callee(&self, conn: ConnId, id: Id) -> bool {
        self.by_callee
            .get(&conn)
            .is_some_and(|mine| mine.contains(&id))
    }

    /// Registration `id`, unless only detached callees hold it.
    pub(crate) fn get(&self, id: Id) -> Option<&Registration> {
        self.registrations
            .get(id)
            .filter(|r| self.departures.is_live(&r.callees))
    }

    pub(crate) fn lookup(&self, uri: &str, policy: MatchPolicy) -> Option<&Registration> {
        self.registrations
            .find(uri, policy)
            .and_then(|id| self.get(id))
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = &Registration> {
        self.registrations
            .iter()
            .filter(|r| self.departures.is_live(&r.callees))
    }

    /// The registration a CALL of `procedure` goes to: exact, else the longest matching prefix,
    /// else the matching wildcard with the most fixed components; registrations only detached
    /// callees hold are passed over.
    pub(crate) fn matching(&self, procedure: &str) -> Option<Id> {
        if !self.departures.has_any() {
            return self.registrations.best_match(procedure, |_| true);
        }
        self.registrations
            .best_match(procedure, |r| self.departures.is_live(&r.callees))
    }

    /// Picks the callee of registration `id` for one call, per its invocation policy, among
    /// the callees that are not detached.
    pub(crate) fn pick_callee(&mut self, id: Id) -> Option<ConnId> {
        let reg = self.registrations.get_mut(id)?;
        let departures = &self.departures;
        let live = |c: &&ConnId| !departures.is_detached(**c);
        let n = reg.callees.len();
        if n == 0 {
            return None;
        }
        match reg.invoke {
            InvokePolicy::Single | InvokePolicy::First => reg.callees.iter().find(live).copied(),
            InvokePolicy::Last => reg.callees.iter().rev().find(live).copied(),
            InvokePolicy::Random => {
                let c = reg.callees[rand::random_range(0..n)];
                if !departures.is_detached(c) {
                    return Some(c);
                }
                let live: Vec<ConnId> = reg.callees.iter().filter(live).copied().collect();
                (!live.is_empty()).then(|| live[rand::random_range(0..live.len())])
            }
            InvokePolicy::RoundRobin => {
                for _ in 0..n {
                    let c = reg.callees[reg.next_round_robin % n];
                    reg.next_round_robin = (reg.next_round_robin + 1) % n;
                    if !departures.is_detached(c) {
                        return Some(c);
                    }
                }
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> String {
        "t".into()
    }

    #[test]
    fn single_registration_refuses_a_second_callee() {
        let mut d = Dealer::default();
        d.register(
            1,
            "a.b",
            MatchPolicy::Exact,
            InvokePolicy::Single,
            now,
            &mut vec![],
        )
        .unwrap();
        assert_eq!(
            d.register(
                2,
                "a.b",
                MatchPolicy::Exact,
                InvokePolicy::Single,
                now,
                &mut vec![]
            ),
            Err(RegisterError::AlreadyExists)
        );
        // The same URI with another match policy is another registration.
        assert!(d
            .register(
                2,
                "a.b",
                MatchPolicy::Prefix,
                InvokePolicy::Single,
                now,
                &mut vec![]
            )
            .is_ok());
    }

    #[test]
    fn shared_registration_policies() {
        let mut d = Dealer::default();
        let r = d
            .register(
                1,
                "p",
                MatchPolicy::Exact,
                InvokePolicy::RoundRobin,
                now,
                &mut vec![],
            )
            .unwrap();
        d.register(
            2,
            "p",
            MatchPolicy::Exact,
            InvokePolicy::RoundRobin,
            now,
            &mut vec![],
        )
        .unwrap();
        assert_eq!(
            d.register(
                3,
                "p",
                MatchPolicy::Exact,
                InvokePolicy::Random,
                now,
                &mut vec![]
            ),
            Err(RegisterError::DifferentPolicy)
        );
        let picks: Vec<_> = (0..4).map(|_| d.pick_callee(r.id).unwrap()).collect();
        assert_eq!(picks, vec![1, 2, 1, 2]);
        assert_eq!(d.unregister(1, r.id), Some(false));
        assert_eq!(d.unregister(2, r.id), Some(true));
        assert!(d.get(r.id).is_none());
    }

    #[test]
    fn registrations_are_indexed_by_callee() {
        let mut d = Dealer::default();
        let a = d
            .register(
                1,
                "a",
                MatchPolicy::Exact,
                InvokePolicy::First,
                now,
                &mut vec![],
            )
            .unwrap();
        d.register(
            2,
            "a",
            MatchPolicy::Exact,
            InvokePolicy::First,
            now,
            &mut vec![],
        )
        .unwrap();
        let b = d
            .register(
                1,
                "b",
                MatchPolicy::Prefix,
                InvokePolicy::Single,
                now,
                &mut vec![],
            )
            .unwrap();
        assert!(d.is_callee(1, a.id) && d.is_callee(2, a.id) && !d.is_callee(2, b.id));
        d.unregister(2, a.id);
        assert!(!d.is_callee(2, a.id));
        d.detach(1, 100);
        assert!(!d.is_callee(1, a.id) && d.is_detached(1));
        // Hidden at once: nothing routes to 1.
        assert_eq!(d.iter().count(), 0);
        assert_eq!(d.matching("a"), None);
        assert_eq!(d.pick_callee(a.id), None);
        let mut removed = Vec::new();
        assert_eq!(d.clean_up(10, &mut removed), 2);
        assert!(!d.is_detached(1) && !d.has_departures());
        removed.sort_by_key(|r| r.entry);
        let mut want = vec![a.id, b.id];
        want.sort();
        assert_eq!(removed.iter().map(|r| r.entry).collect::<Vec<_>>(), want);
        assert!(removed.iter().all(|r| r.deleted && r.session == 100));
        assert_eq!(d.registrations.iter().count(), 0);
    }

    /// A detached callee of a shared registration gets no call; registering a single one's URI
    /// again replaces the registration only the detached callee held.
    #[test]
    fn detached_callees_get_no_calls_and_are_replaced() {
        let mut d = Dealer::default();
        let mut removed = Vec::new();
        let shared = d
            .register(
                1,
                "s",
                MatchPolicy::Exact,
                InvokePolicy::RoundRobin,
                now,
                &mut removed,
            )
            .unwrap();
        d.register(
            2,
            "s",
            MatchPolicy::Exact,
            InvokePolicy::RoundRobin,
            now,
            &mut removed,
        )
        .unwrap();
        let single = d
            .register(
                1,
                "p",
                MatchPolicy::Exact,
                InvokePolicy::Single,
                now,
                &mut removed,
            )
            .unwrap();
        let fallback = d
            .register(
                3,
                "p",
                MatchPolicy::Prefix,
                InvokePolicy::Single,
                now,
                &mut removed,
            )
            .unwrap();
        d.detach(1, 100);
        let picks: Vec<_> = (0..3).map(|_| d.pick_callee(shared.id).unwrap()).collect();
        assert_eq!(picks, vec![2, 2, 2]);
        // The exact registration is hidden: a call goes to the prefix one.
        assert_eq!(d.matching("p"), Some(fallback.id));
        let again = d
            .register(
                4,
                "p",
                MatchPolicy::Exact,
                InvokePolicy::Single,
                now,
                &mut removed,
            )
            .unwrap();
        assert!(again.created && again.id != single.id);
        assert_eq!(removed.len(), 1);
        assert!(removed[0].entry == single.id && removed[0].deleted);
        assert_eq!(d.matching("p"), Some(again.id));
    }

    #[test]
    fn exact_then_longest_prefix_then_wildcard() {
        let mut d = Dealer::default();
        let w = d
            .register(
                1,
                "a..c",
                MatchPolicy::Wildcard,
                InvokePolicy::Single,
                now,
                &mut vec![],
            )
            .unwrap();
        let p1 = d
            .register(
                1,
                "a.",
                MatchPolicy::Prefix,
                InvokePolicy::Single,
                now,
                &mut vec![],
            )
            .unwrap();
        let p2 = d
            .register(
                1,
                "a.b",
                MatchPolicy::Prefix,
                InvokePolicy::Single,
                now,
                &mut vec![],
            )
            .unwrap();
        let e = d
            .register(
                1,
                "a.b.c",
                MatchPolicy::Exact,
                InvokePolicy::Single,
                now,
                &mut vec![],
            )
            .unwrap();
        assert_eq!(d.matching("a.b.c"), Some(e.id));
        assert_eq!(d.matching("a.b.x"), Some(p2.id));
        assert_eq!(d.matching("a.x.c"), Some(p1.id));
        assert_eq!(d.matching("z.x.c"), None);
        d.unregister(1, p1.id);
        assert_eq!(d.matching("a.x.c"), Some(w.id));
    }
}
