//! The dealer's state: registrations (exact, prefix, wildcard; shared with an invocation policy)
//! Pure data: the realm decides what to send.

use std::collections::{HashMap, HashSet};

use wamp_proto::{Dict, Id, List, MatchPolicy};

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
    /// Per callee: its registrations. An index of the callee lists, changed only with them.
    by_callee: HashMap<ConnId, HashSet<Id>>,
}

impl Dealer {
    /// Entries of the registration table and the per-callee index, inner sets included (for
    /// [`crate::realm::TableSizes`]).
    pub(crate) fn entries(&self) -> usize {
        let callees: usize = self.by_callee.values().map(|regs| 1 + regs.len()).sum();
        self.registrations.footprint() + callees
    }

    pub(crate) fn register(
        &mut self,
        conn: ConnId,
        uri: &str,
        policy: MatchPolicy,
        invoke: InvokePolicy,
        created_at: impl FnOnce() -> String,
    ) -> Result<Registered, RegisterError> {
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

    /// Forgets `conn` as a callee (it is leaving) and returns the registrations it had, for the
    /// caller to [`Dealer::unregister`] it from.
    pub(crate) fn take_registrations(&mut self, conn: ConnId) -> Vec<Id> {
        self.by_callee
            .remove(&conn)
            .map(|mine| mine.into_iter().collect())
            .unwrap_or_default()
    }

    pub(crate) fn get(&self, id: Id) -> Option<&Registration> {
        self.registrations.get(id)
    }

    pub(crate) fn lookup(&self, uri: &str, policy: MatchPolicy) -> Option<&Registration> {
        self.registrations
            .find(uri, policy)
            .and_then(|id| self.registrations.get(id))
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = &Registration> {
        self.registrations.iter()
    }

    /// The registration a CALL of `procedure` goes to: exact, else the longest matching prefix,
    /// else the matching wildcard with the most fixed components.
    pub(crate) fn matching(&self, procedure: &str) -> Option<Id> {
        self.registrations.best_match(procedure)
    }

    /// Picks the callee of registration `id` for one call, per its invocation policy.
    pub(crate) fn pick_callee(&mut self, id: Id) -> Option<ConnId> {
        let reg = self.registrations.get_mut(id)?;
        let n = reg.callees.len();
        if n == 0 {
            return None;
        }
        Some(match reg.invoke {
            InvokePolicy::Single | InvokePolicy::First => reg.callees[0],
            InvokePolicy::Last => reg.callees[n - 1],
            InvokePolicy::Random => reg.callees[rand::random_range(0..n)],
            InvokePolicy::RoundRobin => {
                let c = reg.callees[reg.next_round_robin % n];
                reg.next_round_robin = (reg.next_round_robin + 1) % n;
                c
            }
        })
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
        d.register(1, "a.b", MatchPolicy::Exact, InvokePolicy::Single, now)
            .unwrap();
        assert_eq!(
            d.register(2, "a.b", MatchPolicy::Exact, InvokePolicy::Single, now),
            Err(RegisterError::AlreadyExists)
        );
        // The same URI with another match policy is another registration.
        assert!(d
            .register(2, "a.b", MatchPolicy::Prefix, InvokePolicy::Single, now)
            .is_ok());
    }

    #[test]
    fn shared_registration_policies() {
        let mut d = Dealer::default();
        let r = d
            .register(1, "p", MatchPolicy::Exact, InvokePolicy::RoundRobin, now)
            .unwrap();
        d.register(2, "p", MatchPolicy::Exact, InvokePolicy::RoundRobin, now)
            .unwrap();
        assert_eq!(
            d.register(3, "p", MatchPolicy::Exact, InvokePolicy::Random, now),
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
            .register(1, "a", MatchPolicy::Exact, InvokePolicy::First, now)
            .unwrap();
        d.register(2, "a", MatchPolicy::Exact, InvokePolicy::First, now)
            .unwrap();
        let b = d
            .register(1, "b", MatchPolicy::Prefix, InvokePolicy::Single, now)
            .unwrap();
        assert!(d.is_callee(1, a.id) && d.is_callee(2, a.id) && !d.is_callee(2, b.id));
        d.unregister(2, a.id);
        assert!(!d.is_callee(2, a.id));
        let mut mine = d.take_registrations(1);
        mine.sort();
        let mut want = vec![a.id, b.id];
        want.sort();
        assert_eq!(mine, want);
        assert!(!d.is_callee(1, a.id));
        for id in mine {
            d.unregister(1, id);
        }
        assert_eq!(d.iter().count(), 0);
    }

    #[test]
    fn exact_then_longest_prefix_then_wildcard() {
        let mut d = Dealer::default();
        let w = d
            .register(1, "a..c", MatchPolicy::Wildcard, InvokePolicy::Single, now)
            .unwrap();
        let p1 = d
            .register(1, "a.", MatchPolicy::Prefix, InvokePolicy::Single, now)
            .unwrap();
        let p2 = d
            .register(1, "a.b", MatchPolicy::Prefix, InvokePolicy::Single, now)
            .unwrap();
        let e = d
            .register(1, "a.b.c", MatchPolicy::Exact, InvokePolicy::Single, now)
            .unwrap();
        assert_eq!(d.matching("a.b.c"), Some(e.id));
        assert_eq!(d.matching("a.b.x"), Some(p2.id));
        assert_eq!(d.matching("a.x.c"), Some(p1.id));
        assert_eq!(d.matching("z.x.c"), None);
        d.unregister(1, p1.id);
        assert_eq!(d.matching("a.x.c"), Some(w.id));
    }
}
