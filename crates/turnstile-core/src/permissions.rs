//! Static authorization as in Crossbar: each role's permissions, the most specific matching one
//! decides (exact over the longest prefix over the most specific wildcard); none matching means
//! denied.

use std::collections::HashMap;

use turnstile_config::{Permission, RoleConfig};
use wamp_proto::MatchPolicy;

/// An action a session asks to perform on a URI.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Action {
    Call,
    Register,
    Publish,
    Subscribe,
}

impl Action {
    /// What the action does to its URI, for the text of a refusal ("call procedure", ...).
    pub(crate) fn phrase(self) -> &'static str {
        match self {
            Action::Call => "call procedure",
            Action::Register => "register procedure",
            Action::Publish => "publish to topic",
            Action::Subscribe => "subscribe to topic",
        }
    }

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Action::Call => "call",
            Action::Register => "register",
            Action::Publish => "publish",
            Action::Subscribe => "subscribe",
        }
    }
}

/// The outcome of an authorization check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Decision {
    pub allow: bool,
    /// Disclose the caller (for `call`) or publisher (for `publish`) to the receivers.
    pub disclose: bool,
}

/// The built-in role of the router's own service session, allowed everything.
pub(crate) const TRUSTED_ROLE: &str = "trusted";

/// The roles of a realm: the static permissions of each, or the dynamic authorizer deciding for
/// it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Roles {
    roles: HashMap<String, Vec<Permission>>,
    /// Roles whose actions a dynamic authorizer decides: role to the authorizer's URI.
    dynamic: HashMap<String, String>,
}

impl Roles {
    pub(crate) fn new(roles: &[RoleConfig]) -> Self {
        Self {
            roles: roles
                .iter()
                .map(|r| (r.name.clone(), r.permissions.clone()))
                .collect(),
            dynamic: roles
                .iter()
                .filter_map(|r| Some((r.name.clone(), r.authorizer.clone()?)))
                .collect(),
        }
    }

    /// Whether `role` is configured the same way here and in `other` (the same permissions, or
    /// the same dynamic authorizer; absent from both counts as the same).
    pub(crate) fn same_role(&self, other: &Roles, role: &str) -> bool {
        self.roles.get(role) == other.roles.get(role)
            && self.dynamic.get(role) == other.dynamic.get(role)
    }

    /// The configured role names, sorted (for the log).
    pub(crate) fn names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self
            .roles
            .keys()
            .chain(self.dynamic.keys())
            .map(String::as_str)
            .collect();
        names.sort_unstable();
        names.dedup();
        names
    }

    /// Whether the realm knows `role` (the built-in `trusted` role always exists).
    pub(crate) fn has_role(&self, role: &str) -> bool {
        role == TRUSTED_ROLE || self.roles.contains_key(role) || self.dynamic.contains_key(role)
    }

    /// The dynamic authorizer of `role`, if its actions are decided by one.
    pub(crate) fn dynamic_authorizer(&self, role: &str) -> Option<&str> {
        self.dynamic.get(role).map(String::as_str)
    }

    /// Decides whether `role` may perform `action` on `uri` (static permissions only: a role with
    /// a dynamic authorizer is denied here; the realm asks its authorizer).
    #[cfg(test)]
    pub(crate) fn authorize(&self, role: &str, uri: &str, action: Action) -> Decision {
        self.authorize_cacheable(role, uri, action).0
    }

    /// As [`Roles::authorize`], and whether the deciding permission allows the decision to
    /// be cached for the session (`cache`, default true).
    pub(crate) fn authorize_cacheable(
        &self,
        role: &str,
        uri: &str,
        action: Action,
    ) -> (Decision, bool) {
        if role == TRUSTED_ROLE && !self.roles.contains_key(role) {
            let allow_all = Decision {
                allow: true,
                disclose: false,
            };
            return (allow_all, true);
        }
        let Some(perms) = self.roles.get(role) else {
            return (Decision::default(), false);
        };
        let Some(p) = most_specific(perms, uri) else {
            return (Decision::default(), false);
        };
        let (allow, disclose) = match action {
            Action::Call => (p.allow.call, p.disclose.caller),
            Action::Register => (p.allow.register, false),
            Action::Publish => (p.allow.publish, p.disclose.publisher),
            Action::Subscribe => (p.allow.subscribe, false),
        };
        (Decision { allow, disclose }, p.cache)
    }
}

/// The permission that decides for `uri`: an exact one, else the longest matching prefix, else
/// the matching wildcard with the most fixed components (then the longest pattern).
fn most_specific<'a>(perms: &'a [Permission], uri: &str) -> Option<&'a Permission> {
    let mut best: Option<(&Permission, (u8, usize, usize))> = None;
    for p in perms {
        if !p.match_policy.matches(&p.uri, uri) {
            continue;
        }
        let rank = match p.match_policy {
            MatchPolicy::Exact => (3, 0, 0),
            MatchPolicy::Prefix => (2, p.uri.len(), 0),
            MatchPolicy::Wildcard => (
                1,
                p.uri.split('.').filter(|c| !c.is_empty()).count(),
                p.uri.len(),
            ),
        };
        if best.as_ref().is_none_or(|(_, r)| rank > *r) {
            best = Some((p, rank));
        }
    }
    best.map(|(p, _)| p)
}

#[cfg(test)]
mod tests {
    use super::*;
    use turnstile_config::{Allow, Disclose};

    fn perm(uri: &str, m: MatchPolicy, publish: bool) -> Permission {
        Permission {
            uri: uri.into(),
            match_policy: m,
            allow: Allow {
                publish,
                ..Allow::default()
            },
            disclose: Disclose {
                publisher: publish,
                ..Disclose::default()
            },
            cache: true,
        }
    }

    fn authorizer(perms: Vec<Permission>) -> Roles {
        Roles::new(&[RoleConfig {
            name: "r".into(),
            permissions: perms,
            authorizer: None,
        }])
    }

    #[test]
    fn exact_beats_prefix_beats_wildcard() {
        let a = authorizer(vec![
            perm("com.app.", MatchPolicy::Prefix, true),
            perm("com.app.secret", MatchPolicy::Exact, false),
            perm("com..secret", MatchPolicy::Wildcard, false),
        ]);
        assert!(a.authorize("r", "com.app.x", Action::Publish).allow);
        assert!(!a.authorize("r", "com.app.secret", Action::Publish).allow);
        // The prefix is more specific than the wildcard.
        assert!(a.authorize("r", "com.app.secret2", Action::Publish).allow);
        assert!(!a.authorize("r", "com.other.secret", Action::Publish).allow);
    }

    #[test]
    fn longest_prefix_decides() {
        let a = authorizer(vec![
            perm("", MatchPolicy::Prefix, true),
            perm("com.private.", MatchPolicy::Prefix, false),
        ]);
        assert!(a.authorize("r", "com.public.x", Action::Publish).allow);
        assert!(!a.authorize("r", "com.private.x", Action::Publish).allow);
    }

    #[test]
    fn nothing_matching_or_unknown_role_is_denied() {
        let a = authorizer(vec![perm("com.a", MatchPolicy::Exact, true)]);
        assert!(!a.authorize("r", "com.b", Action::Publish).allow);
        assert!(!a.authorize("r", "com.a", Action::Subscribe).allow);
        assert!(!a.authorize("nobody", "com.a", Action::Publish).allow);
        assert!(a.authorize(TRUSTED_ROLE, "com.a", Action::Call).allow);
    }

    #[test]
    fn the_deciding_permission_says_whether_to_cache() {
        let mut uncached = perm("com.live.", MatchPolicy::Prefix, true);
        uncached.cache = false;
        let a = authorizer(vec![perm("com.", MatchPolicy::Prefix, true), uncached]);
        assert!(a.authorize_cacheable("r", "com.x", Action::Publish).1);
        assert!(!a.authorize_cacheable("r", "com.live.x", Action::Publish).1);
        // Nothing matching: denied, and not cached (a later configuration could not change it,
        // but there is nothing to save either).
        assert_eq!(
            a.authorize_cacheable("r", "org.x", Action::Publish),
            (Decision::default(), false)
        );
    }
}
