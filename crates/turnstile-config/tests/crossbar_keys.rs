//! Keys Crossbar accepts (checked in Crossbar 26.10.1's `crossbar/common/checkconfig.py` and where
//! its router reads them): each either does what it does in Crossbar, or is accepted and listed
//! in `NodeConfig::inapplicable` with the reason it does nothing in Turnstile (the router logs
//! each once at start). Nothing accepted is silently ignored.

use std::path::Path;

use serde_json::{json, Value};
use turnstile_config::{
    load_str_with_env, Allow, Endpoint, Format, Inapplicable, NodeConfig, Permission,
    TransportConfig,
};
use wamp_proto::MatchPolicy;

fn load(doc: &Value) -> NodeConfig {
    load_str_with_env(
        &doc.to_string(),
        Format::Json,
        Path::new("/x/config.json"),
        &|_| None,
    )
    .unwrap_or_else(|e| panic!("{e}"))
}

fn error(doc: &Value) -> String {
    load_str_with_env(
        &doc.to_string(),
        Format::Json,
        Path::new("/x/config.json"),
        &|_| None,
    )
    .expect_err("should be refused")
    .to_string()
}

fn router(realms: Value, transports: Value) -> Value {
    json!({"type": "router", "realms": realms, "transports": transports})
}

fn node(workers: Value) -> Value {
    json!({"version": 2, "workers": workers})
}

fn paths(config: &NodeConfig) -> Vec<&str> {
    config.inapplicable.iter().map(|i| i.at.as_str()).collect()
}

#[test]
fn roles_without_permissions_and_allow_by_default() {
    let doc = node(json!([router(
        json!([{"name": "realm1", "roles": [
            {"name": "nobody"},
            {"name": "everybody", "allow-by-default": true},
            {"name": "strict", "allow-by-default": false},
            {"name": "listed", "allow-by-default": true,
             "permissions": [{"uri": "com.x.", "allow": {"call": true}}]}
        ]}]),
        json!([])
    )]));
    let config = load(&doc);
    let roles = &config.workers[0].realms[0].roles;
    // No permissions: everything is denied (Crossbar's plain RouterRole, allow_by_default false).
    assert!(roles[0].permissions.is_empty() && roles[0].authorizer.is_none());
    assert!(roles[2].permissions.is_empty());
    // allow-by-default: everything is allowed.
    assert_eq!(
        roles[1].permissions,
        [Permission {
            uri: String::new(),
            match_policy: MatchPolicy::Prefix,
            allow: Allow {
                call: true,
                register: true,
                publish: true,
                subscribe: true
            },
            disclose: Default::default(),
            cache: true,
        }]
    );
    // With permissions Crossbar never reads the flag: accepted, and said so.
    assert_eq!(roles[3].permissions.len(), 1);
    assert_eq!(
        paths(&config),
        ["workers[0].realms[0].roles[3].allow-by-default"]
    );
    assert!(error(&node(json!([router(
        json!([{"name": "r", "roles": [{"name": "a", "allow-by-default": "yes"}]}]),
        json!([])
    )])))
    .contains("roles[0].allow-by-default: found \"yes\", expected true or false"));
}

#[test]
fn realm_trace_store_call_queue_and_chunk_size_are_accepted_and_reported() {
    let doc = node(json!([router(
        json!([{"name": "realm1", "trace": true,
                "options": {"event_dispatching_chunk_size": 100},
                "store": {"type": "memory", "limit": 1000,
                          "call-queue": [{"uri": "com.example.compute", "match": "exact",
                                          "limit": 10000}],
                          "event-history": [{"uri": "com.example.oncounter"}]}}]),
        json!([])
    )]));
    let config = load(&doc);
    let realm = &config.workers[0].realms[0];
    assert_eq!(realm.event_history.len(), 1);
    assert_eq!(realm.event_history[0].limit, 1000);
    assert_eq!(
        paths(&config),
        [
            "workers[0].realms[0].trace",
            "workers[0].realms[0].options.event_dispatching_chunk_size",
            "workers[0].realms[0].store.call-queue",
        ]
    );
    assert!(config.inapplicable[1]
        .reason
        .contains("delivers a publication to all subscribers in one step"));
    assert!(config.inapplicable[2].reason.contains("concurrency"));
    // The entries are still checked.
    let bad = node(json!([router(
        json!([{"name": "realm1", "store": {"type": "memory",
                "call-queue": [{"uri": "com.x", "match": "regex"}]}}]),
        json!([])
    )]));
    assert!(error(&bad).contains(
        "workers[0].realms[0].store.call-queue[0].match: found \"regex\", expected one of"
    ));
}

#[test]
fn controller_and_worker_options() {
    let doc = json!({
        "version": 2,
        "controller": {"id": "node1", "options": {
            "title": "my node", "shutdown": ["shutdown_on_last_worker_exit"],
            "enable_parallel_worker_start": true}},
        "workers": [
            {"type": "router", "id": "r1", "options": {
                "title": "router 1", "pythonpath": [".."], "cpu_affinity": [0, 1],
                "env": {"inherit": ["PATH"], "vars": {"A": "b"}}, "reactor": {"type": "epoll"},
                "expose_controller": true, "expose_shared": true, "extra": {"k": 1}},
             "realms": [{"name": "realm1"}]},
            // Several router workers, each with its own realms and transports.
            {"type": "router", "id": "r2", "realms": [{"name": "realm2"}],
             "transports": [{"type": "rawsocket", "endpoint": {"type": "unix",
                             "path": "r.sock", "backlog": 50}}]},
            {"type": "router", "options": {"disabled": true}, "realms": [{"name": "realm3"}]}
        ]
    });
    let config = load(&doc);
    assert_eq!(config.node_id.as_deref(), Some("node1"));
    assert_eq!(config.node_title.as_deref(), Some("my node"));
    // The disabled worker is validated, then left out.
    assert_eq!(config.workers.len(), 2);
    assert_eq!(config.workers[0].title.as_deref(), Some("router 1"));
    assert_eq!(config.workers[1].realms[0].name, "realm2");
    assert_eq!(
        config.workers[1].transports[0].endpoint(),
        &Endpoint::Unix {
            path: "/x/r.sock".into(),
            backlog: 50
        }
    );
    assert_eq!(
        paths(&config),
        [
            "controller.options.enable_parallel_worker_start",
            "controller.options.shutdown",
            "workers[0].options.pythonpath",
            "workers[0].options.cpu_affinity",
            "workers[0].options.env",
            "workers[0].options.reactor",
            "workers[0].options.expose_controller",
            "workers[0].options.expose_shared",
            "workers[0].options.extra",
            "workers[2].options.disabled",
        ]
    );
    for Inapplicable { at, reason } in &config.inapplicable {
        assert!(!reason.is_empty(), "{at} without a reason");
    }
    // Crossbar's types are checked.
    for (pointer, value, expected) in [
        (
            "/workers/0/options/cpu_affinity",
            json!(["0"]),
            "workers[0].options.cpu_affinity[0]: found \"0\", expected a CPU number",
        ),
        (
            "/workers/0/options/pythonpath",
            json!(".."),
            "workers[0].options.pythonpath: found \"..\", expected a list (directories)",
        ),
        (
            "/controller/options/shutdown",
            json!("shutdown_on_tuesday"),
            "controller.options.shutdown: found \"shutdown_on_tuesday\", expected one of",
        ),
        (
            "/workers/0/options/env",
            json!({"inherit": true, "vars": {"A": 1}}),
            "workers[0].options.env.vars.A: found 1, expected a string",
        ),
    ] {
        let mut bad = doc.clone();
        *bad.pointer_mut(pointer).unwrap() = value;
        let message = error(&bad);
        assert!(message.contains(expected), "{pointer}: {message}");
    }
}

#[test]
fn anonymous_realm_and_authenticator_role() {
    let doc = node(json!([router(
        json!([{"name": "realm1", "roles": [{"name": "anonymous"}]}]),
        json!([
            {"type": "websocket", "endpoint": {"type": "tcp", "port": 8080},
             "auth": {"anonymous": {"type": "static", "role": "anonymous", "realm": "realm1"}}},
            {"type": "rawsocket", "endpoint": {"type": "tcp", "port": 8081},
             "auth": {"ticket": {"type": "dynamic", "authenticator": "com.x.auth",
                                 "authenticator-realm": "realm1",
                                 "authenticator-role": "authenticator"}}}
        ])
    )]));
    let config = load(&doc);
    let TransportConfig::WebSocket { service, .. } = &config.workers[0].transports[0] else {
        panic!("websocket first")
    };
    assert_eq!(
        service
            .auth
            .as_ref()
            .unwrap()
            .anonymous
            .as_ref()
            .unwrap()
            .role,
        "anonymous"
    );
    assert_eq!(
        paths(&config),
        [
            "workers[0].transports[0].auth.anonymous.realm",
            "workers[0].transports[1].auth.ticket.authenticator-role",
        ]
    );
}

#[test]
fn refused_crossbar_features_name_themselves() {
    for (realm, expected) in [
        (
            json!({"name": "r", "inventory": {"type": "wamp.eth"}}),
            "workers[0].realms[0].inventory: found {\"type\":\"wamp.eth\"}: type inventories \
             (payload validation) are not supported yet",
        ),
        (
            json!({"name": "r", "store": {"type": "cfxdb", "path": ".db", "maxsize": 1}}),
            "workers[0].realms[0].store.type: found \"cfxdb\": persistent (cfxdb) stores are not \
             supported yet; use \"memory\"",
        ),
        (
            json!({"name": "r", "roles": [{"name": "a", "permissions": [
                {"uri": "x", "validate": {"call": "t"}}]}]}),
            "workers[0].realms[0].roles[0].permissions[0].validate: found {\"call\":\"t\"}: \
             payload validation against a type inventory is not supported yet",
        ),
    ] {
        let message = error(&node(json!([router(json!([realm]), json!([]))])));
        assert_eq!(
            message,
            format!("config error in /x/config.json at {expected}")
        );
    }
}

/// As in Crossbar, each router worker has realms of its own: two workers may both have `realm1`
/// (clients reach each through that worker's transports). Within a worker names stay unique.
#[test]
fn router_workers_have_realms_of_their_own() {
    let worker = |port: u16| {
        router(
            json!([{"name": "realm1"}]),
            json!([{"type": "websocket", "endpoint": {"type": "tcp", "port": port}}]),
        )
    };
    let config = load(&node(json!([worker(8080), worker(8081)])));
    assert_eq!(config.workers.len(), 2);
    assert!(config.workers.iter().all(|w| w.realms[0].name == "realm1"));
    assert!(error(&node(json!([router(
        json!([{"name": "realm1"}, {"name": "realm1"}]),
        json!([])
    )])))
    .contains("workers[0].realms[1].name: found \"realm1\": realm names must be unique"));
}
