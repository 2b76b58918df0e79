//! Dynamic authorizers, as in Crossbar.io: a role configured with `"authorizer": URI` instead of
//! `permissions` has each action of its sessions decided by calling that procedure on the realm
//! with `(session_details, uri, action, options)`.
//!
//! The realm does the calling; this module builds the arguments ([`call_args`]), reads the
//! answer ([`parse_result`]) and keeps the per-session cache of decisions the authorizer allowed
//! to be cached ([`DecisionCache`]). Any error, timeout or malformed answer means "denied".

use std::collections::HashMap;

use wamp_proto::{Dict, List, Value};

use crate::permissions::{Action, Decision};

/// The keys of the session details Crossbar passes to an authorizer.
const DETAIL_KEYS: &[&str] = &[
    "session",
    "authid",
    "authrole",
    "authmethod",
    "authprovider",
    "authextra",
    "transport",
];

/// What an authorizer answered: a decision, and whether the router may reuse it for the same
/// URI and action of the same session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct AuthorizerDecision {
    pub allow: bool,
    /// Disclose the caller (for `call`) or publisher (for `publish`).
    pub disclose: bool,
    pub cache: bool,
}

impl AuthorizerDecision {
    pub(crate) fn decision(self) -> Decision {
        Decision {
            allow: self.allow,
            disclose: self.disclose,
        }
    }
}

/// The positional arguments of the authorizer call: `[session_details, uri, action, options]`.
/// `session_details` is the session's details dict (as in `wamp.session.get`), of which the keys
/// Crossbar passes are kept: `session`, `authid`, `authrole`, `authmethod`, `authprovider`,
/// `authextra`, `transport`.
pub(crate) fn call_args(session_details: &Dict, uri: &str, action: Action, options: &Dict) -> List {
    let details: Dict = session_details
        .iter()
        .filter(|(k, _)| DETAIL_KEYS.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    vec![
        Value::Dict(details),
        Value::from(uri),
        Value::from(action.as_str()),
        Value::Dict(options.clone()),
    ]
}

/// Reads the authorizer's answer (the first positional argument of its RESULT): `true`/`false`,
/// or a dict `{"allow": bool, "disclose": bool?, "cache": bool?}` (Crossbar also accepts
/// `validate` and `meta`, dicts or null, which are ignored). Anything else is an error, which the
/// realm treats as a denial.
pub(crate) fn parse_result(result: &Value) -> Result<AuthorizerDecision, String> {
    match result {
        Value::Bool(allow) => Ok(AuthorizerDecision {
            allow: *allow,
            ..AuthorizerDecision::default()
        }),
        Value::Dict(d) => {
            for (key, value) in d {
                match key.as_str() {
                    "allow" | "disclose" | "cache" if value.as_bool().is_none() => {
                        return Err(format!(
                            "the authorizer's \"{key}\" must be true or false, found {}",
                            value.type_name()
                        ))
                    }
                    "allow" | "disclose" | "cache" => {}
                    "validate" | "meta" if !matches!(value, Value::Dict(_) | Value::Null) => {
                        return Err(format!(
                            "the authorizer's \"{key}\" must be a dict or null, found {}",
                            value.type_name()
                        ))
                    }
                    "validate" | "meta" => {}
                    other => {
                        return Err(format!(
                            "the authorizer returned an unknown key \"{other}\""
                        ))
                    }
                }
            }
            let flag = |k: &str| d.get(k).and_then(Value::as_bool).unwrap_or(false);
            match d.get("allow") {
                Some(_) => Ok(AuthorizerDecision {
                    allow: flag("allow"),
                    disclose: flag("disclose"),
                    cache: flag("cache"),
                }),
                None => Err("the authorizer's answer has no \"allow\"".to_owned()),
            }
        }
        other => Err(format!(
            "the authorizer must return a bool or a dict, found {}",
            other.type_name()
        )),
    }
}

/// A session's cached authorization decisions, by URI and action: those a dynamic authorizer
/// allowed to be cached, and those of static permissions with `cache: true`. Looking up takes
/// no allocation (it is on the path of every PUBLISH and CALL). Bounded: when it holds
/// [`DecisionCache::CAPACITY`] URIs, it is emptied before the next one goes in, so a session
/// using ever new URIs cannot grow it without limit.
#[derive(Debug, Clone, Default)]
pub(crate) struct DecisionCache {
    entries: HashMap<String, [Option<Decision>; 4]>,
}

fn slot(action: Action) -> usize {
    match action {
        Action::Call => 0,
        Action::Register => 1,
        Action::Publish => 2,
        Action::Subscribe => 3,
    }
}

impl DecisionCache {
    pub(crate) const CAPACITY: usize = 4096;

    /// The cached decision for `action` on `uri`, if any.
    pub(crate) fn get(&self, uri: &str, action: Action) -> Option<Decision> {
        self.entries.get(uri).and_then(|d| d[slot(action)])
    }

    /// Remembers `decision` if the authorizer allowed caching it.
    pub(crate) fn insert(&mut self, uri: &str, action: Action, decision: AuthorizerDecision) {
        if decision.cache {
            self.put(uri, action, decision.decision());
        }
    }

    /// Remembers `decision` for `action` on `uri`.
    pub(crate) fn put(&mut self, uri: &str, action: Action, decision: Decision) {
        if let Some(slots) = self.entries.get_mut(uri) {
            slots[slot(action)] = Some(decision);
            return;
        }
        if self.entries.len() >= Self::CAPACITY {
            self.entries.clear();
        }
        let mut slots = [None; 4];
        slots[slot(action)] = Some(decision);
        self.entries.insert(uri.to_owned(), slots);
    }

    /// Number of URIs with a cached decision.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    #[cfg(test)]
    pub(crate) fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Forgets every decision (the session's role changed in a configuration reload).
    pub(crate) fn clear(&mut self) {
        self.entries.clear();
    }
}
