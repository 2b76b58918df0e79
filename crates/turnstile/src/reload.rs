//! Configuration reload without a restart: what a new configuration changes compared with the
//! running one, which of it a running node can take (realms, roles, permissions, statistics and
//! limits of each realm, and the `auth` sections of transports), which needs a restart
//! (transports, endpoints, workers), and the report of a reload.
//!
//! A reload takes a configuration already validated by [`turnstile_config`]: an invalid file
//! is refused before it gets here, and the running configuration stays.

use std::collections::BTreeMap;

use turnstile_config::{
    AuthConfig, NodeConfig, RouterWorker, TransportConfig, WebPath, WorkerLimits,
};

/// What a reload did. Names are key paths of the configuration, e.g.
/// `workers[0].transports[1].endpoint`, or realm names with their worker, e.g.
/// `workers[0] realm2`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ReloadReport {
    /// Realms that started serving.
    pub realms_added: Vec<String>,
    /// Realms that were removed: their sessions got GOODBYE `wamp.close.close_realm`.
    pub realms_removed: Vec<String>,
    /// Realms that were handed a changed configuration.
    pub realms_changed: Vec<String>,
    /// `auth` sections replaced (for sessions established from now on).
    pub auth_replaced: Vec<String>,
    /// Key paths that changed but need a restart: left as they run.
    pub needs_restart: Vec<String>,
}

impl ReloadReport {
    /// Whether the reload changed nothing (and nothing waits for a restart).
    pub fn is_empty(&self) -> bool {
        *self == ReloadReport::default()
    }
}

/// Where a reloadable `auth` section sits: worker, transport, and the path key for a WebSocket
/// path of a `web` transport.
pub(crate) type AuthPlace = (usize, usize, Option<String>);

/// `workers[0].transports[1]` or `workers[0].transports[1].paths.ws`.
pub(crate) fn auth_place_name((w, t, key): &AuthPlace) -> String {
    match key {
        Some(key) => format!("workers[{w}].transports[{t}].paths.{key}.auth"),
        None => format!("workers[{w}].transports[{t}].auth"),
    }
}

/// Every `auth` section of `config` by place (absent sections included, as `None`).
pub(crate) fn auth_places(config: &NodeConfig) -> BTreeMap<AuthPlace, Option<&AuthConfig>> {
    let mut places = BTreeMap::new();
    for (w, worker) in config.workers.iter().enumerate() {
        for (t, transport) in worker.transports.iter().enumerate() {
            match transport {
                TransportConfig::WebSocket { service, .. } => {
                    places.insert((w, t, None), service.auth.as_ref());
                }
                TransportConfig::RawSocket { auth, .. } => {
                    places.insert((w, t, None), auth.as_ref());
                }
                TransportConfig::Web { paths, .. } => {
                    for (key, path) in paths {
                        if let WebPath::WebSocket(service) = path {
                            places.insert((w, t, Some(key.clone())), service.auth.as_ref());
                        }
                    }
                }
            }
        }
    }
    places
}

/// The `auth` sections a reload from `old` to `new` replaces: those that changed in a
/// transport (or WebSocket path) of the same type at the same place. A transport of another
/// type is a different transport: it needs a restart, its `auth` included.
pub(crate) fn auth_changes<'a>(
    old: &NodeConfig,
    new: &'a NodeConfig,
) -> Vec<(AuthPlace, Option<&'a AuthConfig>)> {
    let before = auth_places(old);
    auth_places(new)
        .into_iter()
        .filter(|(place, auth)| {
            let (w, t, _) = place;
            let same_type = match (transport_at(old, *w, *t), transport_at(new, *w, *t)) {
                (Some(a), Some(b)) => std::mem::discriminant(a) == std::mem::discriminant(b),
                _ => false,
            };
            same_type && before.get(place).is_some_and(|was| was != auth)
        })
        .collect()
}

fn transport_at(config: &NodeConfig, w: usize, t: usize) -> Option<&TransportConfig> {
    config.workers.get(w)?.transports.get(t)
}

/// The configuration a node runs after a reload from `old` to `new`: the realms and the
/// replaced `auth` sections of `new`, everything that needs a restart still as in `old` (so a
/// later reload reports it again until the restart).
pub(crate) fn running_after(old: &NodeConfig, new: &NodeConfig) -> NodeConfig {
    let mut running = old.clone();
    for (worker, after) in running.workers.iter_mut().zip(&new.workers) {
        worker.realms = after.realms.clone();
    }
    for ((w, t, key), auth) in auth_changes(old, new) {
        let Some(transport) = running.workers[w].transports.get_mut(t) else {
            continue;
        };
        let slot = match (transport, key) {
            (TransportConfig::WebSocket { service, .. }, None) => &mut service.auth,
            (TransportConfig::RawSocket { auth, .. }, None) => auth,
            (TransportConfig::Web { paths, .. }, Some(key)) => match paths.get_mut(&key) {
                Some(WebPath::WebSocket(service)) => &mut service.auth,
                _ => continue,
            },
            _ => continue,
        };
        *slot = auth.cloned();
    }
    running
}

/// The key paths where `new` differs from `old` in a way a running node cannot take: the node
/// id, the workers, and everything of a transport but its `auth` sections. Realms are not
/// compared here: all of a realm's configuration applies on reload.
pub(crate) fn needs_restart(old: &NodeConfig, new: &NodeConfig) -> Vec<String> {
    let mut out = Vec::new();
    if old.node_id != new.node_id {
        out.push("controller.id".to_owned());
    }
    if old.workers.len() != new.workers.len() {
        out.push("workers (router workers added or removed)".to_owned());
    }
    for (w, (a, b)) in old.workers.iter().zip(&new.workers).enumerate() {
        if a.id != b.id {
            out.push(format!("workers[{w}].id"));
        }
        if a.title != b.title {
            out.push(format!("workers[{w}].options.title"));
        }
        // The node-wide limits size the listeners and connections already running; the
        // per-session ones (`limits.session`) reach the realms through their configurations.
        let node_wide = |w: &RouterWorker| WorkerLimits {
            session: Default::default(),
            ..w.limits.clone()
        };
        if node_wide(a) != node_wide(b) {
            out.push(format!(
                "workers[{w}].limits (node-wide connection limits and deadlines)"
            ));
        }
        // The usage ledger's task and database connection are the running node's.
        if a.ledger != b.ledger {
            out.push(format!("workers[{w}].ledger (the usage ledger)"));
        }
        // Any other key of the worker (a key added to the model later included): compared as a
        // whole, so that no change is applied or ignored silently.
        let rest = |w: &RouterWorker| {
            let mut rest = w.clone();
            (rest.id, rest.title) = (None, None);
            (rest.realms, rest.transports) = (Vec::new(), Vec::new());
            rest.limits = WorkerLimits::default();
            rest.ledger = None;
            rest
        };
        if rest(a) != rest(b) {
            out.push(format!(
                "workers[{w}] (keys other than realms and transports)"
            ));
        }
        if a.transports.len() != b.transports.len() {
            out.push(format!(
                "workers[{w}].transports (transports added or removed)"
            ));
        }
        for (t, (x, y)) in a.transports.iter().zip(&b.transports).enumerate() {
            transport_changes(&format!("workers[{w}].transports[{t}]"), x, y, &mut out);
        }
    }
    out
}

/// The non-`auth` differences between two transports at `at`.
fn transport_changes(
    at: &str,
    old: &TransportConfig,
    new: &TransportConfig,
    out: &mut Vec<String>,
) {
    let named = out.len();
    named_transport_changes(at, old, new, out);
    // A difference in a key not named there (one added to the model later included) is still
    // reported, as the transport's.
    if out.len() == named && without_auth(old) != without_auth(new) {
        out.push(format!("{at} (other keys)"));
    }
}

/// `transport` with every `auth` section taken out.
fn without_auth(transport: &TransportConfig) -> TransportConfig {
    let mut t = transport.clone();
    match &mut t {
        TransportConfig::WebSocket { service, .. } => service.auth = None,
        TransportConfig::RawSocket { auth, .. } => *auth = None,
        TransportConfig::Web { paths, .. } => {
            for path in paths.values_mut() {
                if let WebPath::WebSocket(service) = path {
                    service.auth = None;
                }
            }
        }
    }
    t
}

/// The differences of the keys a reload names, one key path each.
fn named_transport_changes(
    at: &str,
    old: &TransportConfig,
    new: &TransportConfig,
    out: &mut Vec<String>,
) {
    use TransportConfig as T;
    if old.id() != new.id() {
        out.push(format!("{at}.id"));
    }
    if old.endpoint() != new.endpoint() {
        out.push(format!("{at}.endpoint"));
    }
    if old.max_connections() != new.max_connections() {
        out.push(format!("{at}.max_connections"));
    }
    match (old, new) {
        (
            T::WebSocket {
                path: p1,
                service: s1,
                ..
            },
            T::WebSocket {
                path: p2,
                service: s2,
                ..
            },
        ) => {
            if p1 != p2 {
                out.push(format!("{at}.url"));
            }
            if s1.serializers != s2.serializers {
                out.push(format!("{at}.serializers"));
            }
            if s1.options != s2.options {
                out.push(format!("{at}.options"));
            }
        }
        (
            T::RawSocket {
                serializers: s1,
                max_message_size: m1,
                ..
            },
            T::RawSocket {
                serializers: s2,
                max_message_size: m2,
                ..
            },
        ) => {
            if s1 != s2 {
                out.push(format!("{at}.serializers"));
            }
            if m1 != m2 {
                out.push(format!("{at}.max_message_size"));
            }
        }
        (T::Web { paths: p1, .. }, T::Web { paths: p2, .. }) => {
            for key in p1.keys().chain(p2.keys().filter(|k| !p1.contains_key(*k))) {
                let at = format!("{at}.paths.{key}");
                match (p1.get(key), p2.get(key)) {
                    (Some(WebPath::WebSocket(s1)), Some(WebPath::WebSocket(s2))) => {
                        if s1.serializers != s2.serializers {
                            out.push(format!("{at}.serializers"));
                        }
                        if s1.options != s2.options {
                            out.push(format!("{at}.options"));
                        }
                    }
                    (Some(a), Some(b)) if a == b => {}
                    _ => out.push(at),
                }
            }
        }
        _ => out.push(format!("{at}.type")),
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use turnstile_config::{load_str, Format};

    fn config(transports: &str) -> NodeConfig {
        let text = format!(
            r#"{{"version": 2, "workers": [{{"type": "router", "realms": [{{"name": "realm1"}}],
                "transports": {transports}}}]}}"#
        );
        load_str(&text, Format::Json, Path::new("/t/config.json")).unwrap()
    }

    /// The rule: node-wide limits and a transport's connection cap size what already runs
    /// (a restart), while per-session limits reach the realms at once (no restart).
    #[test]
    fn node_wide_limits_need_a_restart_but_session_limits_do_not() {
        let with = |limits: &str, cap: &str| {
            let text = format!(
                r#"{{"version": 2, "workers": [{{"type": "router", "realms": [{{"name": "realm1"}}],
                    "limits": {limits},
                    "transports": [{{"type": "rawsocket", "endpoint": {{"type": "tcp", "port": 8081}}
                                     {cap}}}]}}]}}"#
            );
            load_str(&text, Format::Json, Path::new("/t/config.json")).unwrap()
        };
        let old = with(
            r#"{"max_connections": 100, "session": {"max_subscriptions": 5}}"#,
            "",
        );
        let sessions_only = with(
            r#"{"max_connections": 100, "session": {"max_subscriptions": 9}}"#,
            "",
        );
        assert!(needs_restart(&old, &sessions_only).is_empty());
        let node_wide = with(
            r#"{"max_connections": 200, "session": {"max_subscriptions": 5}}"#,
            r#", "max_connections": 10"#,
        );
        assert_eq!(
            needs_restart(&old, &node_wide),
            [
                "workers[0].limits (node-wide connection limits and deadlines)",
                "workers[0].transports[0].max_connections",
            ]
        );
    }

    #[test]
    fn the_usage_ledger_needs_a_restart() {
        let with = |ledger: &str| {
            let text = format!(
                r#"{{"version": 2, "workers": [{{"type": "router", "realms": [{{"name": "realm1"}}]
                    {ledger}}}]}}"#
            );
            load_str(&text, Format::Json, Path::new("/t/config.json")).unwrap()
        };
        let none = with("");
        let sqlite = with(r#", "ledger": {"type": "sqlite"}"#);
        let slower = with(r#", "ledger": {"type": "sqlite", "flush_interval": 5}"#);
        for (old, new) in [(&none, &sqlite), (&sqlite, &slower), (&sqlite, &none)] {
            assert_eq!(
                needs_restart(old, new),
                ["workers[0].ledger (the usage ledger)"]
            );
        }
        assert!(needs_restart(&sqlite, &sqlite).is_empty());
    }

    #[test]
    fn transports_and_endpoints_need_a_restart_but_auth_does_not() {
        let old = config(
            r#"[{"type": "web", "endpoint": {"type": "tcp", "port": 8080},
                 "paths": {"ws": {"type": "websocket"}, "/": {"type": "static", "directory": "."}}},
                {"type": "rawsocket", "endpoint": {"type": "tcp", "port": 8081}}]"#,
        );
        let new = config(
            r#"[{"type": "web", "endpoint": {"type": "tcp", "port": 9090},
                 "paths": {"ws": {"type": "websocket", "serializers": ["json"],
                                  "auth": {"anonymous": {"type": "static", "role": "guest"}}}}},
                {"type": "rawsocket", "endpoint": {"type": "tcp", "port": 8081},
                 "max_message_size": 4096,
                 "auth": {"anonymous": {"type": "static", "role": "guest"}}}]"#,
        );
        assert_eq!(
            needs_restart(&old, &new),
            [
                "workers[0].transports[0].endpoint",
                "workers[0].transports[0].paths./",
                "workers[0].transports[0].paths.ws.serializers",
                "workers[0].transports[1].max_message_size",
            ]
        );
        assert!(needs_restart(&old, &old).is_empty());
        let places: Vec<String> = auth_changes(&old, &new)
            .iter()
            .map(|(place, _)| auth_place_name(place))
            .collect();
        assert_eq!(
            places,
            [
                "workers[0].transports[0].paths.ws.auth",
                "workers[0].transports[1].auth"
            ]
        );
        // What runs afterwards: the new auth sections, the old endpoint and options, so that
        // the next reload of the same file reports them again and replaces nothing more.
        let running = running_after(&old, &new);
        assert_eq!(needs_restart(&running, &new), needs_restart(&old, &new));
        assert!(auth_changes(&running, &new).is_empty());
        assert_eq!(
            running.workers[0].transports[0].endpoint(),
            old.workers[0].transports[0].endpoint()
        );
    }

    #[test]
    fn a_transport_of_another_type_or_a_new_one_needs_a_restart() {
        let old = config(r#"[{"type": "rawsocket", "endpoint": {"type": "tcp", "port": 8081}}]"#);
        let new = config(
            r#"[{"type": "websocket", "endpoint": {"type": "tcp", "port": 8081}},
                {"type": "rawsocket", "endpoint": {"type": "tcp", "port": 8082}}]"#,
        );
        assert_eq!(
            needs_restart(&old, &new),
            [
                "workers[0].transports (transports added or removed)",
                "workers[0].transports[0].type"
            ]
        );
        // The `auth` of a transport of another type is not taken either.
        let with_auth = config(
            r#"[{"type": "websocket", "endpoint": {"type": "tcp", "port": 8081},
                 "auth": {"anonymous": {"type": "static", "role": "guest"}}}]"#,
        );
        assert!(auth_changes(&old, &with_auth).is_empty());
    }
}
