//! The calls in flight of a realm: one table keyed by invocation (callee connection, INVOCATION
//! request id), which also answers "which call is this CALL request id of that caller" and
//! "which invocations does that callee owe", so nothing is kept in step by hand.

use std::collections::{HashMap, HashSet};

use wamp_proto::{Dict, Id, IdSequence};

use crate::dealer::Caller;
use crate::peer::ConnId;

/// Which invocation: the callee's connection and the INVOCATION's request id (session scope of
/// the callee).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct InvocationKey {
    pub callee: ConnId,
    pub request: Id,
}

/// A call in flight.
#[derive(Debug, Clone)]
pub(crate) struct Invocation {
    pub caller: Caller,
    /// The CALL's request id (session scope of the caller), or for a call the router made, the
    /// token its answer is found by.
    pub call_request: Id,
    pub registration: Id,
    /// The caller asked for progressive results.
    pub receive_progress: bool,
    /// The caller is still sending progressive CALLs for this invocation.
    pub caller_progress: bool,
    /// An INTERRUPT was sent (cancel mode `kill`): the callee's answer still goes to the caller.
    pub interrupted: bool,
    /// For a progressive call invocation: the details of its first INVOCATION, which every
    /// following INVOCATION repeats (the options are frozen by the first CALL).
    pub frozen_details: Option<Dict>,
}

/// All calls in flight of a realm, with their indexes by caller and by callee.
///
/// The per-session maps are created at a session's first call and kept until it leaves
/// ([`Calls::served_by`], [`Calls::made_by`]), so a call allocates nothing in steady state.
#[derive(Debug, Default)]
pub(crate) struct Calls {
    invocations: HashMap<InvocationKey, Invocation>,
    /// Per caller session: its CALL request ids in flight and their invocation.
    by_caller: HashMap<ConnId, HashMap<Id, InvocationKey>>,
    /// Per callee: the INVOCATION request ids it has not answered yet, and the sequence they
    /// are drawn from.
    by_callee: HashMap<ConnId, Owed>,
}

/// What one callee owes: its unanswered INVOCATIONs, and the sequence of its INVOCATION request
/// ids (session scope: it starts again for a new session on the connection, since the entry goes
/// when the callee leaves).
#[derive(Debug, Default)]
struct Owed {
    next_request: IdSequence,
    requests: HashSet<Id>,
}

impl Calls {
    /// Records a call about to be sent to `callee`, under the next INVOCATION request id of the
    /// callee's session, and returns its key.
    pub(crate) fn start(&mut self, callee: ConnId, invocation: Invocation) -> InvocationKey {
        let owed = self.by_callee.entry(callee).or_default();
        let key = InvocationKey {
            callee,
            request: owed.next_request.next(),
        };
        owed.requests.insert(key.request);
        if let Caller::Session(caller) = invocation.caller {
            self.by_caller
                .entry(caller)
                .or_default()
                .insert(invocation.call_request, key);
        }
        self.invocations.insert(key, invocation);
        key
    }

    pub(crate) fn get(&self, key: InvocationKey) -> Option<&Invocation> {
        self.invocations.get(&key)
    }

    pub(crate) fn get_mut(&mut self, key: InvocationKey) -> Option<&mut Invocation> {
        self.invocations.get_mut(&key)
    }

    /// The invocation of the call `caller` made with CALL request id `request`, if in flight.
    pub(crate) fn of_call(&self, caller: ConnId, request: Id) -> Option<InvocationKey> {
        self.by_caller.get(&caller)?.get(&request).copied()
    }

    /// How many calls `caller` has in flight.
    pub(crate) fn in_flight_of(&self, caller: ConnId) -> usize {
        self.by_caller.get(&caller).map_or(0, HashMap::len)
    }

    /// Forgets a finished call (answered, canceled, timed out), on both sides.
    pub(crate) fn remove(&mut self, key: InvocationKey) -> Option<Invocation> {
        let invocation = self.invocations.remove(&key)?;
        if let Caller::Session(caller) = invocation.caller {
            if let Some(calls) = self.by_caller.get_mut(&caller) {
                calls.remove(&invocation.call_request);
            }
        }
        if let Some(owed) = self.by_callee.get_mut(&key.callee) {
            owed.requests.remove(&key.request);
        }
        Some(invocation)
    }

    /// Removes every call `callee` is serving (it is leaving), returning them.
    pub(crate) fn served_by(&mut self, callee: ConnId) -> Vec<(InvocationKey, Invocation)> {
        let owed = self.by_callee.remove(&callee).unwrap_or_default();
        owed.requests
            .into_iter()
            .filter_map(|request| {
                let key = InvocationKey { callee, request };
                self.remove(key).map(|inv| (key, inv))
            })
            .collect()
    }

    /// The invocations of the calls `caller` made, and forgets that it is a caller (it is
    /// leaving). The calls themselves stay until removed: the caller decides what the callees
    /// are told.
    pub(crate) fn made_by(&mut self, caller: ConnId) -> Vec<InvocationKey> {
        self.by_caller
            .remove(&caller)
            .map(|calls| calls.into_values().collect())
            .unwrap_or_default()
    }

    /// Number of calls in flight.
    pub(crate) fn len(&self) -> usize {
        self.invocations.len()
    }

    /// Entries of the per-caller and per-callee indexes, their inner maps included (for
    /// [`crate::realm::TableSizes`]).
    pub(crate) fn index_entries(&self) -> usize {
        let callers: usize = self.by_caller.values().map(|m| 1 + m.len()).sum();
        let callees: usize = self.by_callee.values().map(|o| 1 + o.requests.len()).sum();
        callers + callees
    }

    #[cfg(test)]
    pub(crate) fn is_empty(&self) -> bool {
        self.invocations.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(caller: Caller, call_request: Id) -> Invocation {
        Invocation {
            caller,
            call_request,
            registration: 1,
            receive_progress: false,
            caller_progress: false,
            interrupted: false,
            frozen_details: None,
        }
    }

    fn key(callee: ConnId, request: Id) -> InvocationKey {
        InvocationKey { callee, request }
    }

    #[test]
    fn a_call_is_found_by_invocation_and_by_caller_request() {
        let mut calls = Calls::default();
        assert_eq!(calls.start(2, call(Caller::Session(1), 10)), key(2, 1));
        assert_eq!(calls.start(2, call(Caller::Session(3), 10)), key(2, 2));
        assert_eq!(calls.of_call(1, 10), Some(key(2, 1)));
        assert_eq!(calls.of_call(3, 10), Some(key(2, 2)));
        assert_eq!(calls.of_call(1, 11), None);
        assert_eq!(calls.get(key(2, 1)).map(|i| i.call_request), Some(10));
        calls.get_mut(key(2, 1)).unwrap().interrupted = true;
        assert!(calls.get(key(2, 1)).unwrap().interrupted);
        assert_eq!(calls.len(), 2);
    }

    #[test]
    fn removing_a_call_removes_it_from_every_index() {
        let mut calls = Calls::default();
        let k = calls.start(2, call(Caller::Session(1), 10));
        assert!(calls.remove(k).is_some());
        assert!(calls.remove(k).is_none());
        assert_eq!(calls.of_call(1, 10), None);
        assert!(calls.served_by(2).is_empty());
        assert!(calls.made_by(1).is_empty());
        assert!(calls.is_empty());
    }

    #[test]
    fn router_calls_have_no_caller_index() {
        let mut calls = Calls::default();
        calls.start(2, call(Caller::Router, 77));
        assert_eq!(calls.of_call(0, 77), None);
        let served = calls.served_by(2);
        assert_eq!(served.len(), 1);
        assert_eq!(served[0].1.caller, Caller::Router);
        assert!(calls.is_empty());
    }

    #[test]
    fn a_leaving_callee_takes_its_calls_and_their_caller_entries() {
        let mut calls = Calls::default();
        calls.start(2, call(Caller::Session(1), 10));
        calls.start(2, call(Caller::Session(1), 11));
        calls.start(3, call(Caller::Session(1), 12));
        let mut served: Vec<_> = calls.served_by(2).into_iter().map(|(k, _)| k).collect();
        served.sort_by_key(|k| k.request);
        assert_eq!(served, vec![key(2, 1), key(2, 2)]);
        assert_eq!(calls.of_call(1, 10), None);
        assert_eq!(calls.of_call(1, 12), Some(key(3, 1)));
        assert_eq!(calls.len(), 1);
        // A new session on the connection numbers its INVOCATIONs from 1 again.
        assert_eq!(calls.start(2, call(Caller::Session(1), 13)), key(2, 1));
    }

    #[test]
    fn a_leaving_caller_lists_its_calls_which_stay_until_removed() {
        let mut calls = Calls::default();
        calls.start(2, call(Caller::Session(1), 10));
        calls.start(3, call(Caller::Session(1), 11));
        calls.start(3, call(Caller::Session(4), 11));
        let mut made = calls.made_by(1);
        made.sort_by_key(|k| k.callee);
        assert_eq!(made, vec![key(2, 1), key(3, 1)]);
        assert_eq!(calls.of_call(1, 10), None);
        assert!(calls.get(key(2, 1)).is_some());
        for k in made {
            calls.remove(k);
        }
        assert_eq!(calls.len(), 1);
        assert_eq!(calls.of_call(4, 11), Some(key(3, 2)));
        let served: Vec<_> = calls.served_by(3).into_iter().map(|(k, _)| k).collect();
        assert_eq!(served, vec![key(3, 2)]);
    }
}
