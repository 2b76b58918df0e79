//! Realms: names, options, roles (static permissions or a dynamic authorizer), and the `stats`
//! section (`docs/session-statistics.md` §5).

use wamp_proto::uri::is_valid_uri;
use wamp_proto::{MatchPolicy, UriRules};

use super::limits::session_limits;
use super::{all_of, Collect, Ctx};
use crate::cursor::{Keys, Node, VResult};
use crate::model::{
    Allow, Disclose, EventHistoryConfig, Permission, RealmConfig, RealmOptions, RoleConfig,
    SessionLimitsConfig, StatsConfig,
};

const REALM: Keys = Keys {
    what: "a realm",
    allowed: &["name", "roles", "options", "stats", "store", "limits"],
    unsupported: &[
        ("rlinks", "router-to-router links are not supported yet"),
        (
            "inventory",
            "type inventories (payload validation) are not supported yet",
        ),
    ],
};

/// Realm keys Crossbar accepts (it does not check a realm's keys) and does not read either.
const REALM_INAPPLICABLE: &[(&str, &str)] = &[(
    "trace",
    "Crossbar 26.10 does not read it either, and Turnstile has no message tracing",
)];

const REALM_OPTIONS: Keys = Keys {
    what: "realm options",
    allowed: &[
        "enable_meta_api",
        "uri_check",
        "event_dispatching_chunk_size",
    ],
    unsupported: &[(
        "bridge_meta_api",
        "bridging the meta API is not supported yet",
    )],
};

const ROLE: Keys = Keys {
    what: "a role",
    allowed: &["name", "permissions", "authorizer", "allow-by-default"],
    unsupported: &[],
};

const PERMISSION: Keys = Keys {
    what: "a permission",
    allowed: &["uri", "match", "allow", "disclose", "cache"],
    unsupported: &[(
        "validate",
        "payload validation against a type inventory is not supported yet",
    )],
};

const ALLOW: Keys = Keys {
    what: "allowed actions",
    allowed: &["call", "register", "publish", "subscribe"],
    unsupported: &[],
};

const DISCLOSE: Keys = Keys {
    what: "disclosure settings",
    allowed: &["caller", "publisher"],
    unsupported: &[],
};

const STORE: Keys = Keys {
    what: "a realm store",
    allowed: &["type", "limit", "event-history", "call-queue"],
    unsupported: &[],
};

const CALL_QUEUE: Keys = Keys {
    what: "a call queue",
    allowed: &["uri", "match", "limit"],
    unsupported: &[],
};

const EVENT_HISTORY: Keys = Keys {
    what: "an event history",
    allowed: &["uri", "match", "limit"],
    unsupported: &[],
};

/// Events kept per history when neither it nor the store gives a `limit`.
const DEFAULT_HISTORY_LIMIT: u64 = 100;
/// The most events one history may keep (they are held in memory).
const MAX_HISTORY_LIMIT: u64 = 100_000;

const STATS: Keys = Keys {
    what: "session statistics settings",
    allowed: &[
        "rated_message_size",
        "trigger_after_rated_messages",
        "trigger_after_duration",
        "trigger_on_join",
        "trigger_on_leave",
    ],
    unsupported: &[],
};

/// The largest `rated_message_size`: 2^30.
const MAX_RATED_MESSAGE_SIZE: u64 = 1 << 30;

/// A realm; `worker_limits` are its worker's per-session limits, which its own `limits`
/// override key by key.
pub(super) fn realm(
    node: &Node,
    ctx: &mut Ctx,
    worker_limits: SessionLimitsConfig,
) -> VResult<RealmConfig> {
    let obj = node.object_noting(&REALM, REALM_INAPPLICABLE)?;

    let name_node = obj.required("name", "the realm name, a URI such as \"realm1\"")?;
    let name = name_node.str("the realm name")?;
    if !is_valid_uri(name, UriRules::Loose, false) {
        return Err(name_node.invalid("a realm name that is a valid WAMP URI, such as \"realm1\""));
    }
    if let Some((_, first)) = ctx.realms.iter().find(|(n, _)| n == name) {
        return Err(name_node.conflict(format!(
            "realm names must be unique, also defined at {first}"
        )));
    }
    ctx.realms.push((name.to_owned(), name_node.path()));

    // The options first: the URI rules apply to the rest.
    let options = obj.opt("options", RealmOptions::default(), realm_options)?;

    let mut collect = Collect::default();
    let roles = collect.keep(obj.opt("roles", Vec::new(), |n| {
        let mut roles: Vec<RoleConfig> = Vec::new();
        let mut name_paths: Vec<String> = Vec::new();
        let mut roles_collect = Collect::default();
        for item in n.list("roles")? {
            let Some((role, name_node)) = roles_collect.keep(role(&item, options.uri_check)) else {
                continue;
            };
            if let Some(i) = roles.iter().position(|r| r.name == role.name) {
                roles_collect.keep::<()>(Err(name_node.conflict(format!(
                    "role names must be unique in a realm, also defined at {}",
                    name_paths[i]
                ))));
                continue;
            }
            roles.push(role);
            name_paths.push(name_node.path());
        }
        roles_collect.finish()?;
        Ok(roles)
    }));

    let stats = collect.keep(obj.opt("stats", None, |n| stats(n).map(Some)));
    let event_history = collect.keep(obj.opt("store", Vec::new(), |n| store(n, options.uri_check)));
    let limits = collect.keep(obj.opt("limits", worker_limits, |n| {
        session_limits(n, worker_limits)
    }));
    collect.finish()?;

    Ok(RealmConfig {
        name: name.to_owned(),
        roles: roles.expect("no error was kept"),
        options,
        stats: stats.expect("no error was kept"),
        event_history: event_history.expect("no error was kept"),
        limits: limits.expect("no error was kept"),
    })
}

/// `store`: an in-memory store with its event histories (Crossbar's `memory` store type).
fn store(node: &Node, rules: UriRules) -> VResult<Vec<EventHistoryConfig>> {
    // The type first: a cfxdb store has keys of its own (`path`, `maxsize`).
    let (kind, ty) = node.tagged("a realm store")?;
    match ty {
        "memory" => {}
        "cfxdb" => {
            return Err(
                kind.unsupported("persistent (cfxdb) stores are not supported yet; use \"memory\"")
            )
        }
        _ => return Err(kind.invalid("\"memory\"")),
    }
    let obj = node.object(&STORE)?;
    let limit_rule = format!("an integer between 1 and {MAX_HISTORY_LIMIT} (events kept)");
    let default_limit = obj.opt("limit", DEFAULT_HISTORY_LIMIT, |n| {
        n.int_in(1, MAX_HISTORY_LIMIT, &limit_rule)
    })?;
    obj.opt("call-queue", (), |n| {
        all_of(n.list("call queues")?.iter(), |item| {
            let q = item.object(&CALL_QUEUE)?;
            let uri_node = q.required(
                "uri",
                "the procedure or procedure pattern whose calls queue",
            )?;
            let uri = uri_node.str("a URI or URI pattern")?;
            let match_policy = q.opt("match", MatchPolicy::Exact, |n| {
                Ok(
                    MatchPolicy::parse(n.choice(&["exact", "prefix", "wildcard"])?)
                        .expect("listed"),
                )
            })?;
            if !is_valid_uri(uri, rules, match_policy != MatchPolicy::Exact) {
                return Err(uri_node.invalid(format!(
                    "a valid URI for {} matching",
                    match_policy.as_str()
                )));
            }
            q.opt("limit", 0, |n| {
                n.int_in(1, u64::from(u32::MAX), "a positive integer (calls queued)")
            })?;
            Ok(())
        })?;
        n.note_inapplicable(
            "Crossbar queues a call when its callee reached the REGISTER option \"concurrency\", \
             which Turnstile does not have, so no call ever waits in a queue (Crossbar 26.10 \
             does not read these entries either)",
        );
        Ok(())
    })?;
    obj.opt("event-history", Vec::new(), |n| {
        all_of(n.list("event histories")?.iter(), |item| {
            let h = item.object(&EVENT_HISTORY)?;
            let uri_node = h.required("uri", "the topic or topic pattern whose events are kept")?;
            let uri = uri_node.str("a URI or URI pattern")?.to_owned();
            let match_policy = h.opt("match", MatchPolicy::Exact, |n| {
                Ok(
                    MatchPolicy::parse(n.choice(&["exact", "prefix", "wildcard"])?)
                        .expect("listed"),
                )
            })?;
            if !is_valid_uri(&uri, rules, match_policy != MatchPolicy::Exact) {
                return Err(uri_node.invalid(format!(
                    "a valid URI for {} matching",
                    match_policy.as_str()
                )));
            }
            let limit = h.opt("limit", default_limit, |n| {
                n.int_in(1, MAX_HISTORY_LIMIT, &limit_rule)
            })?;
            Ok(EventHistoryConfig {
                uri,
                match_policy,
                limit: limit as usize,
            })
        })
    })
}

fn realm_options(node: &Node) -> VResult<RealmOptions> {
    let obj = node.object(&REALM_OPTIONS)?;
    let defaults = RealmOptions::default();
    Ok(RealmOptions {
        enable_meta_api: obj.bool_or("enable_meta_api", defaults.enable_meta_api)?,
        uri_check: obj.opt("uri_check", defaults.uri_check, |n| {
            Ok(match n.choice(&["loose", "strict"])? {
                "strict" => UriRules::Strict,
                _ => UriRules::Loose,
            })
        })?,
        event_dispatching_chunk_size: obj.opt("event_dispatching_chunk_size", None, |n| {
            let max = u64::from(u32::MAX);
            let size = n.int_in(1, max, &format!("an integer between 1 and {max}"))?;
            n.note_inapplicable(
                "Turnstile delivers a publication to all subscribers in one step (it serializes \
                 the event once per serializer)",
            );
            Ok(Some(size as u32))
        })?,
    })
}

/// A role and the node of its name (for duplicate messages).
fn role<'v>(node: &Node<'v>, rules: UriRules) -> VResult<(RoleConfig, Node<'v>)> {
    let obj = node.object(&ROLE)?;
    let name_node = obj.required("name", "the role name, such as \"anonymous\"")?;
    let name = name_node.non_empty_str("the role name")?.to_owned();
    let allow_by_default = obj.bool_or("allow-by-default", false)?;
    // At most one of `permissions` (static) and `authorizer` (dynamic); with neither, the role
    // allows everything or nothing by `allow-by-default` (Crossbar's plain `RouterRole`).
    let (permissions, authorizer) = match (obj.get("permissions"), obj.get("authorizer")) {
        (Some(_), Some(a)) => {
            return Err(a.conflict(
                "a role has either \"permissions\" or a dynamic \"authorizer\", not both",
            ))
        }
        (None, Some(a)) => {
            let uri = a.str("the URI of the authorizer procedure")?;
            if !is_valid_uri(uri, rules, false) {
                return Err(a.invalid(format!(
                    "a valid URI ({} rules) of the authorizer procedure, such as \
                     \"com.example.authorize\"",
                    rules_name(rules)
                )));
            }
            (Vec::new(), Some(uri.to_owned()))
        }
        (Some(p), None) => {
            let permissions = all_of(p.list("permissions")?.iter(), |p| permission(p, rules))?;
            (permissions, None)
        }
        (None, None) if allow_by_default => (vec![allow_everything()], None),
        (None, None) => (Vec::new(), None),
    };
    if allow_by_default && (obj.get("permissions").is_some() || authorizer.is_some()) {
        // With permissions or an authorizer, Crossbar builds a role that never reads it.
        obj.get("allow-by-default")
            .expect("given")
            .note_inapplicable(
                "the role has \"permissions\" or an \"authorizer\", which decide alone (as in \
                 Crossbar, which reads allow-by-default only for a role with neither)",
            );
    }
    Ok((
        RoleConfig {
            name,
            permissions,
            authorizer,
        },
        name_node,
    ))
}

/// The permission of a role without `permissions` or `authorizer` whose `allow-by-default` is
/// true: every action on every URI, identities not disclosed (Crossbar's `RouterRole` answers
/// every authorization with that flag).
fn allow_everything() -> Permission {
    Permission {
        uri: String::new(),
        match_policy: MatchPolicy::Prefix,
        allow: Allow {
            call: true,
            register: true,
            publish: true,
            subscribe: true,
        },
        disclose: Disclose::default(),
        cache: true,
    }
}

fn rules_name(rules: UriRules) -> &'static str {
    match rules {
        UriRules::Loose => "loose",
        UriRules::Strict => "strict",
    }
}

fn permission(node: &Node, rules: UriRules) -> VResult<Permission> {
    let obj = node.object(&PERMISSION)?;
    let uri_node = obj.required("uri", "the URI or URI pattern the permission applies to")?;
    let raw_uri = uri_node.str("a URI or URI pattern")?;
    let explicit = obj.opt("match", None, |n| {
        let policy = n.choice(&["exact", "prefix", "wildcard"])?;
        Ok(MatchPolicy::parse(policy))
    })?;

    let (uri, match_policy) = match explicit {
        Some(_) if raw_uri.contains('*') => {
            return Err(uri_node.invalid(
                "a URI without \"*\" when \"match\" is given (stars are Crossbar's pattern \
                 shorthand: leave \"match\" out to use them)",
            ))
        }
        Some(policy) => (raw_uri.to_owned(), policy),
        None => default_match(raw_uri),
    };
    let allow_empty = match_policy != MatchPolicy::Exact;
    if !is_valid_uri(&uri, rules, allow_empty) {
        let rules = rules_name(rules);
        let expected = match match_policy {
            MatchPolicy::Exact => format!(
                "a valid URI ({rules} rules) for exact matching (use \"match\": \"prefix\" with \
                 \"\" to match every URI)"
            ),
            policy => format!(
                "a valid URI pattern ({rules} rules) for {} matching",
                policy.as_str()
            ),
        };
        return Err(uri_node.invalid(expected));
    }

    let allow = obj.opt("allow", Allow::default(), |n| {
        let a = n.object(&ALLOW)?;
        Ok(Allow {
            call: a.bool_or("call", false)?,
            register: a.bool_or("register", false)?,
            publish: a.bool_or("publish", false)?,
            subscribe: a.bool_or("subscribe", false)?,
        })
    })?;
    let disclose = obj.opt("disclose", Disclose::default(), |n| {
        let d = n.object(&DISCLOSE)?;
        Ok(Disclose {
            caller: d.bool_or("caller", false)?,
            publisher: d.bool_or("publisher", false)?,
        })
    })?;
    let cache = obj.bool_or("cache", true)?;

    Ok(Permission {
        uri,
        match_policy,
        allow,
        disclose,
        cache,
    })
}

/// The match policy of a permission without `match`: Crossbar's starred URIs (`a.b.*` is
/// prefix `a.b.`, other stars make a wildcard with empty components); and, where Crossbar would
/// say exact, prefix for `""` and URIs ending with `.`, which can only mean a prefix.
fn default_match(uri: &str) -> (String, MatchPolicy) {
    let stars = uri.matches('*').count();
    if stars == 1 && uri.ends_with('*') {
        (uri[..uri.len() - 1].to_owned(), MatchPolicy::Prefix)
    } else if stars > 0 {
        (uri.replace('*', ""), MatchPolicy::Wildcard)
    } else if uri.is_empty() || uri.ends_with('.') {
        (uri.to_owned(), MatchPolicy::Prefix)
    } else {
        (uri.to_owned(), MatchPolicy::Exact)
    }
}

fn stats(node: &Node) -> VResult<StatsConfig> {
    let obj = node.object(&STATS)?;
    let defaults = StatsConfig::default();
    let rated_message_size = obj.opt(
        "rated_message_size",
        defaults.rated_message_size,
        |n| match n.value().as_u64() {
            Some(size) if size.is_power_of_two() && size <= MAX_RATED_MESSAGE_SIZE => {
                Ok(size as u32)
            }
            _ => Err(n.invalid(format!(
                "a power of two between 1 and {MAX_RATED_MESSAGE_SIZE}"
            ))),
        },
    )?;
    let trigger_after_rated_messages = obj.opt(
        "trigger_after_rated_messages",
        defaults.trigger_after_rated_messages,
        |n| n.int_in(0, u64::MAX, "an integer >= 0 (rated messages; 0 = off)"),
    )?;
    // Capped so that timers cannot overflow; the cap also catches Crossbar's nanoseconds.
    let max_duration = u64::from(u32::MAX);
    let trigger_after_duration = obj.opt(
        "trigger_after_duration",
        defaults.trigger_after_duration,
        |n| {
            n.int_in(
                0,
                max_duration,
                &format!(
                    "an integer between 0 and {max_duration} (seconds, not nanoseconds; 0 = off)"
                ),
            )
        },
    )?;
    Ok(StatsConfig {
        rated_message_size,
        trigger_after_rated_messages,
        trigger_after_duration,
        trigger_on_join: obj.bool_or("trigger_on_join", defaults.trigger_on_join)?,
        trigger_on_leave: obj.bool_or("trigger_on_leave", defaults.trigger_on_leave)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_match_follows_crossbar_stars() {
        assert_eq!(default_match(""), (String::new(), MatchPolicy::Prefix));
        assert_eq!(
            default_match("com.example."),
            ("com.example.".into(), MatchPolicy::Prefix)
        );
        assert_eq!(
            default_match("com.example.*"),
            ("com.example.".into(), MatchPolicy::Prefix)
        );
        assert_eq!(
            default_match("com.*.update"),
            ("com..update".into(), MatchPolicy::Wildcard)
        );
        assert_eq!(
            default_match("com.*.*"),
            ("com..".into(), MatchPolicy::Wildcard)
        );
        assert_eq!(
            default_match("com.example.add"),
            ("com.example.add".into(), MatchPolicy::Exact)
        );
    }
}
