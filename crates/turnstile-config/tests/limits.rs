//! The `limits` sections (a Turnstile extension): a router worker's, a realm's (over the
//! worker's `session` defaults) and a transport's `max_connections`; each key loads, and each is
//! refused past its range with the file, the key path and the rule.

use std::path::Path;
use std::time::Duration;

use serde_json::{json, Value};
use turnstile_config::{
    load_str, ConfigError, Format, Problem, SessionLimitsConfig, TransportConfig, WorkerLimits,
};

/// One worker with two realms and one transport of each type.
fn base() -> Value {
    json!({
        "version": 2,
        "workers": [{
            "type": "router",
            "realms": [{"name": "realm1"}, {"name": "realm2"}],
            "transports": [
                {"type": "websocket", "endpoint": {"type": "tcp", "port": 8080}},
                {"type": "web", "endpoint": {"type": "tcp", "port": 8082},
                 "paths": {"ws": {"type": "websocket"}}},
                {"type": "rawsocket", "endpoint": {"type": "tcp", "port": 8081}}
            ]
        }]
    })
}

fn with(pointer: &str, value: Value) -> Value {
    let mut doc = base();
    let (parent, key) = pointer.rsplit_once('/').unwrap();
    doc.pointer_mut(parent)
        .unwrap()
        .as_object_mut()
        .unwrap()
        .insert(key.to_owned(), value);
    doc
}

fn load(doc: &Value) -> Result<turnstile_config::NodeConfig, ConfigError> {
    load_str(&doc.to_string(), Format::Json, Path::new("/x/config.json"))
}

/// The key path and problem of a refused document.
fn refused(doc: &Value) -> (String, Problem, String) {
    match load(doc) {
        Err(e @ ConfigError::Invalid { .. }) => {
            let shown = e.to_string();
            assert!(
                shown.starts_with("config error in /x/config.json at "),
                "{shown}"
            );
            let ConfigError::Invalid { at, problem, .. } = e else {
                unreachable!()
            };
            (at, problem, shown)
        }
        other => panic!("expected an invalid configuration, got {other:?}"),
    }
}

#[test]
fn without_limits_everything_is_the_default() {
    let config = load(&base()).unwrap();
    let worker = &config.workers[0];
    assert_eq!(worker.limits, WorkerLimits::default());
    assert!(worker
        .realms
        .iter()
        .all(|r| r.limits == SessionLimitsConfig::default()));
    assert!(worker
        .transports
        .iter()
        .all(|t| t.max_connections().is_none()));
}

#[test]
fn worker_limits_load() {
    let doc = with(
        "/workers/0/limits",
        json!({
            "max_connections": 5000,
            "max_connections_per_ip": 20,
            "handshake_timeout": 5,
            "http_request_header_timeout": 7,
            "message_completion_timeout": 30,
            "frame_completion_timeout": 15,
            "max_outgoing_queue_bytes": 1048576,
            "session": {"max_subscriptions": 100, "max_messages_per_second": 50}
        }),
    );
    let limits = load(&doc).unwrap().workers[0].limits.clone();
    assert_eq!(
        limits,
        WorkerLimits {
            max_connections: Some(5000),
            max_connections_per_ip: Some(20),
            handshake_timeout: Some(Duration::from_secs(5)),
            http_request_header_timeout: Some(Duration::from_secs(7)),
            message_completion_timeout: Some(Duration::from_secs(30)),
            frame_completion_timeout: Some(Duration::from_secs(15)),
            max_outgoing_queue_bytes: Some(1 << 20),
            session: SessionLimitsConfig {
                max_subscriptions: Some(100),
                max_messages_per_second: Some(50),
                ..SessionLimitsConfig::default()
            },
        }
    );
}

/// A realm's `limits` override its worker's `limits.session` key by key; a realm without
/// `limits` has the worker's.
#[test]
fn realm_limits_override_the_workers_key_by_key() {
    let mut doc = with(
        "/workers/0/limits",
        json!({"session": {"max_subscriptions": 100, "max_registrations": 10,
                           "max_messages_per_second": 50, "message_burst": 200}}),
    );
    doc["workers"][0]["realms"][0]["limits"] = json!({
        "max_subscriptions": 5, "max_calls_in_flight": 3, "max_messages_per_second": 0
    });
    let config = load(&doc).unwrap();
    let realms = &config.workers[0].realms;
    assert_eq!(
        realms[0].limits,
        SessionLimitsConfig {
            max_subscriptions: Some(5),
            max_registrations: Some(10),
            max_calls_in_flight: Some(3),
            max_messages_per_second: Some(0),
            message_burst: Some(200),
        }
    );
    assert_eq!(realms[1].limits, config.workers[0].limits.session);
}

#[test]
fn transport_max_connections_loads_on_every_transport_type() {
    let mut doc = base();
    for (i, n) in [(0, 10), (1, 20), (2, 30)] {
        doc["workers"][0]["transports"][i]["max_connections"] = json!(n);
    }
    let config = load(&doc).unwrap();
    let caps: Vec<Option<usize>> = config.workers[0]
        .transports
        .iter()
        .map(TransportConfig::max_connections)
        .collect();
    assert_eq!(caps, [Some(10), Some(20), Some(30)]);
}

/// Each key crossed: below or above its range, or of the wrong type.
#[test]
fn out_of_range_values_are_refused_with_the_rule() {
    let cases: &[(&str, Value, &str, &str)] = &[
        (
            "/workers/0/limits",
            json!({"max_connections": 0}),
            "workers[0].limits.max_connections",
            "an integer between 1 and 4294967295 (connections)",
        ),
        (
            "/workers/0/limits",
            json!({"max_connections_per_ip": -1}),
            "workers[0].limits.max_connections_per_ip",
            "an integer between 1 and 4294967295 (connections)",
        ),
        (
            "/workers/0/limits",
            json!({"handshake_timeout": 0}),
            "workers[0].limits.handshake_timeout",
            "an integer between 1 and 3600 (seconds)",
        ),
        (
            "/workers/0/limits",
            json!({"http_request_header_timeout": 3601}),
            "workers[0].limits.http_request_header_timeout",
            "an integer between 1 and 3600 (seconds)",
        ),
        (
            "/workers/0/limits",
            json!({"message_completion_timeout": 1.5}),
            "workers[0].limits.message_completion_timeout",
            "an integer between 1 and 3600 (seconds)",
        ),
        (
            "/workers/0/limits",
            json!({"frame_completion_timeout": "30"}),
            "workers[0].limits.frame_completion_timeout",
            "an integer between 1 and 3600 (seconds)",
        ),
        (
            "/workers/0/limits",
            json!({"max_outgoing_queue_bytes": 1023}),
            "workers[0].limits.max_outgoing_queue_bytes",
            "an integer between 1024 and 1073741824 (bytes)",
        ),
        (
            "/workers/0/limits",
            json!({"session": {"max_subscriptions": 0}}),
            "workers[0].limits.session.max_subscriptions",
            "an integer between 1 and 4294967295 (subscriptions)",
        ),
        (
            "/workers/0/realms/0/limits",
            json!({"max_registrations": 0}),
            "workers[0].realms[0].limits.max_registrations",
            "an integer between 1 and 4294967295 (registrations)",
        ),
        (
            "/workers/0/realms/1/limits",
            json!({"max_calls_in_flight": 4294967296u64}),
            "workers[0].realms[1].limits.max_calls_in_flight",
            "an integer between 1 and 4294967295 (calls)",
        ),
        (
            "/workers/0/realms/0/limits",
            json!({"max_messages_per_second": 1000001}),
            "workers[0].realms[0].limits.max_messages_per_second",
            "an integer between 0 and 1000000 (messages per second; 0 = no limit)",
        ),
        (
            "/workers/0/realms/0/limits",
            json!({"max_messages_per_second": 10, "message_burst": 0}),
            "workers[0].realms[0].limits.message_burst",
            "an integer between 1 and 1000000 (messages)",
        ),
        (
            "/workers/0/transports/2/max_connections",
            json!(0),
            "workers[0].transports[2].max_connections",
            "an integer between 1 and 4294967295 (connections)",
        ),
    ];
    for (pointer, value, path, rule) in cases {
        let (at, problem, shown) = refused(&with(pointer, value.clone()));
        assert_eq!(&at, path, "{shown}");
        let Problem::Invalid { expected, .. } = problem else {
            panic!("{shown}")
        };
        assert_eq!(&expected, rule, "{shown}");
    }
}

#[test]
fn unknown_limit_keys_are_refused() {
    let (at, problem, shown) = refused(&with("/workers/0/limits", json!({"max_sessions": 10})));
    assert_eq!(at, "workers[0].limits.max_sessions", "{shown}");
    assert!(
        matches!(&problem, Problem::UnknownKey { allowed, .. } if allowed.contains(&"max_connections")),
        "{shown}"
    );
    // Connection limits are the worker's, not a realm's.
    let (at, _, shown) = refused(&with(
        "/workers/0/realms/0/limits",
        json!({"max_connections": 10}),
    ));
    assert_eq!(at, "workers[0].realms[0].limits.max_connections", "{shown}");
}

/// A burst without a rate would be accepted and ignored: refused, unless the realm inherits a
/// rate from its worker.
#[test]
fn a_burst_needs_a_rate() {
    let (at, problem, shown) = refused(&with(
        "/workers/0/realms/0/limits",
        json!({"message_burst": 10}),
    ));
    assert_eq!(at, "workers[0].realms[0].limits.message_burst", "{shown}");
    assert!(matches!(problem, Problem::Conflict { .. }), "{shown}");
    assert!(shown.contains("max_messages_per_second"), "{shown}");
    let (at, _, _) = refused(&with(
        "/workers/0/limits",
        json!({"session": {"message_burst": 10, "max_messages_per_second": 0}}),
    ));
    assert_eq!(at, "workers[0].limits.session.message_burst");
    let mut inherited = with(
        "/workers/0/limits",
        json!({"session": {"max_messages_per_second": 5}}),
    );
    inherited["workers"][0]["realms"][0]["limits"] = json!({"message_burst": 10});
    let config = load(&inherited).unwrap();
    assert_eq!(
        config.workers[0].realms[0].limits.message_burst,
        Some(10),
        "the worker's rate applies"
    );
}

/// Crossbar's WebSocket option `max_connections` points to the transport's own key.
#[test]
fn websocket_option_max_connections_points_to_the_transport_key() {
    let (at, problem, shown) = refused(&with(
        "/workers/0/transports/0/options",
        json!({"max_connections": 10}),
    ));
    assert_eq!(at, "workers[0].transports[0].options.max_connections");
    assert!(matches!(problem, Problem::Unsupported { .. }), "{shown}");
    assert!(
        shown.contains("transport's own \"max_connections\""),
        "{shown}"
    );
}

#[test]
fn limits_load_from_yaml_too() {
    let text = r#"
version: 2
workers:
  - type: router
    limits:
      max_connections: 100
      session: {max_messages_per_second: 20, message_burst: 40}
    realms:
      - name: realm1
        limits: {max_subscriptions: 7}
    transports:
      - type: rawsocket
        endpoint: {type: tcp, port: 8081}
        max_connections: 10
"#;
    let config = load_str(text, Format::Yaml, Path::new("/x/config.yaml")).unwrap();
    let worker = &config.workers[0];
    assert_eq!(worker.limits.max_connections, Some(100));
    assert_eq!(
        worker.realms[0].limits,
        SessionLimitsConfig {
            max_subscriptions: Some(7),
            max_messages_per_second: Some(20),
            message_burst: Some(40),
            ..SessionLimitsConfig::default()
        }
    );
    assert_eq!(worker.transports[0].max_connections(), Some(10));
}

/// Connection limits are node-wide: given in one router worker only; per-session defaults may
/// differ between workers.
#[test]
fn node_wide_limits_are_given_once() {
    let mut doc = base();
    let second = json!({"type": "router", "realms": [{"name": "realm3"}],
                        "limits": {"session": {"max_subscriptions": 3}}});
    doc["workers"].as_array_mut().unwrap().push(second);
    doc["workers"][0]["limits"] = json!({"max_connections": 10});
    let config = load(&doc).unwrap();
    assert_eq!(config.connection_limits().max_connections, Some(10));
    assert_eq!(
        config.connection_limits().session,
        SessionLimitsConfig::default()
    );
    assert_eq!(
        config.workers[1].realms[0].limits.max_subscriptions,
        Some(3)
    );
    doc["workers"][1]["limits"]["handshake_timeout"] = json!(5);
    let (at, problem, shown) = refused(&doc);
    assert_eq!(at, "workers[1].limits", "{shown}");
    assert!(matches!(problem, Problem::Conflict { .. }), "{shown}");
    assert!(shown.contains("also given at workers[0].limits"), "{shown}");
}
