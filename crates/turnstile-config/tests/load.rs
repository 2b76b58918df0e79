//! Configurations that load: the example configuration (`tests/data/config-example.json`, and
//! the same in YAML), the `stats` example of `docs/session-statistics.md`,
//! the built-in default, and the defaults the loader fills in.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use turnstile_config::*;
use wamp_proto::{MatchPolicy, Serializer, UriRules};

/// `tests/data` of this crate, which holds the example configuration (paths in a configuration
/// are resolved against its directory, lexically).
fn example_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data")
}

/// The example node configuration of the docs (`docs/README.md`).
fn example_path() -> PathBuf {
    example_dir().join("config-example.json")
}

fn tcp(port: u16) -> Endpoint {
    Endpoint::Tcp {
        port,
        interface: Some("127.0.0.1".into()),
        version: 4,
        backlog: 1024,
        tls: None,
    }
}

fn expected_example() -> NodeConfig {
    let all_allowed = Allow {
        call: true,
        register: true,
        publish: true,
        subscribe: true,
    };
    let realm = RealmConfig {
        name: "realm1".into(),
        roles: vec![RoleConfig {
            name: "anonymous".into(),
            permissions: vec![Permission {
                uri: String::new(),
                match_policy: MatchPolicy::Prefix,
                allow: all_allowed,
                disclose: Disclose::default(),
                cache: true,
            }],
            authorizer: None,
        }],
        options: RealmOptions::default(),
        stats: Some(StatsConfig {
            rated_message_size: 256,
            trigger_after_rated_messages: 10,
            trigger_after_duration: 0,
            trigger_on_join: true,
            trigger_on_leave: true,
        }),
        event_history: vec![],
        limits: SessionLimitsConfig::default(),
    };
    let mut paths = BTreeMap::new();
    paths.insert(
        "/".to_owned(),
        WebPath::Static {
            directory: example_dir().parent().unwrap().join("web"),
        },
    );
    paths.insert(
        "ws".to_owned(),
        WebPath::WebSocket(WebSocketService {
            serializers: Serializer::ALL.to_vec(),
            options: WebSocketOptions::default(),
            auth: None,
        }),
    );
    NodeConfig {
        node_id: None,
        node_title: None,
        workers: vec![RouterWorker {
            id: None,
            title: None,
            realms: vec![realm],
            transports: vec![
                TransportConfig::Web {
                    id: None,
                    endpoint: tcp(8080),
                    max_connections: None,
                    paths,
                    hsts_max_age: None,
                },
                TransportConfig::RawSocket {
                    id: None,
                    endpoint: tcp(8081),
                    max_connections: None,
                    serializers: Serializer::ALL.to_vec(),
                    max_message_size: DEFAULT_MAX_MESSAGE_SIZE,
                    auth: None,
                },
                TransportConfig::RawSocket {
                    id: None,
                    endpoint: Endpoint::Unix {
                        path: example_dir().join("router.sock"),
                        backlog: 1024,
                    },
                    max_connections: None,
                    serializers: vec![Serializer::MsgPack],
                    max_message_size: DEFAULT_MAX_MESSAGE_SIZE,
                    auth: None,
                },
            ],
            limits: WorkerLimits::default(),
            ledger: None,
        }],
        inapplicable: vec![],
    }
}

#[test]
fn example_config_loads() {
    let config = load_file(&example_path()).unwrap();
    let worker = &config.workers[0];
    let realm = &worker.realms[0];
    assert_eq!(realm.name, "realm1");
    let stats = realm.stats.unwrap();
    assert_eq!(
        (stats.rated_message_size, stats.trigger_after_rated_messages),
        (256, 10)
    );
    assert_eq!(worker.transports.len(), 3);
    assert_eq!(
        worker.transports[2].endpoint(),
        &Endpoint::Unix {
            path: example_dir().join("router.sock"),
            backlog: 1024,
        }
    );
    let TransportConfig::Web { paths, .. } = &worker.transports[0] else {
        panic!("web first")
    };
    assert_eq!(
        paths["/"],
        WebPath::Static {
            directory: example_dir().with_file_name("web")
        }
    );
    assert_eq!(config, expected_example());
}

const EXAMPLE_YAML: &str = r#"
version: 2
controller: {}
workers:
  - type: router
    realms:
      - name: realm1
        roles:
          - name: anonymous
            permissions:
              - uri: ""
                match: prefix
                allow: {call: true, register: true, publish: true, subscribe: true}
                disclose: {caller: false, publisher: false}
                cache: true
        stats:
          rated_message_size: 256
          trigger_after_rated_messages: 10
          trigger_after_duration: 0
          trigger_on_join: true
          trigger_on_leave: true
    transports:
      - type: web
        endpoint: {type: tcp, interface: "127.0.0.1", port: 8080, backlog: 1024}
        paths:
          /: {type: static, directory: ../web}
          ws:
            type: websocket
            serializers: [json, msgpack, cbor]
            options:
              max_frame_size: 1048576
              max_message_size: 1048576
              auto_ping_interval: 0
      - type: rawsocket
        endpoint: {type: tcp, interface: "127.0.0.1", port: 8081}
        serializers: [json, msgpack, cbor]
      - type: rawsocket
        endpoint:
          type: unix
          path: router.sock
        serializers: [msgpack]
"#;

#[test]
fn yaml_equivalent_of_example_loads_the_same() {
    let origin = example_dir().join("config.yaml");
    let config = load_str(EXAMPLE_YAML, Format::Yaml, &origin).unwrap();
    assert_eq!(config, expected_example());
}

#[test]
fn yaml_file_loads_by_extension() {
    let dir = temp_dir("yaml-file");
    let path = dir.join("config.yml");
    std::fs::write(&path, EXAMPLE_YAML).unwrap();
    let config = load_file(&path).unwrap();
    assert_eq!(config.workers[0].transports.len(), 3);
    assert_eq!(
        config.workers[0].transports[2].endpoint(),
        &Endpoint::Unix {
            path: dir.join("router.sock"),
            backlog: 1024,
        }
    );
}

/// A one-realm configuration with `stats` set to `stats` (no `stats` key for `None`).
fn with_stats(stats: Option<&str>) -> String {
    let stats = stats
        .map(|s| format!(r#", "stats": {s}"#))
        .unwrap_or_default();
    format!(
        r#"{{"version": 2, "workers": [{{"type": "router", "realms": [{{"name": "realm1"{stats}}}]}}]}}"#
    )
}

fn stats_of(text: &str) -> Option<StatsConfig> {
    let config = load_str(text, Format::Json, Path::new("/x/config.json")).unwrap();
    config.workers[0].realms[0].stats
}

#[test]
fn stats_example_of_the_docs_loads() {
    // The example of docs/session-statistics.md section 5, verbatim.
    let spec = r#"{
        "rated_message_size": 512,
        "trigger_after_rated_messages": 0,
        "trigger_after_duration": 0,
        "trigger_on_join": true,
        "trigger_on_leave": true
    }"#;
    assert_eq!(
        stats_of(&with_stats(Some(spec))),
        Some(StatsConfig::default())
    );
    // An empty section turns metering on with the defaults; no section turns it off.
    assert_eq!(
        stats_of(&with_stats(Some("{}"))),
        Some(StatsConfig::default())
    );
    assert_eq!(stats_of(&with_stats(None)), None);
    let custom = r#"{"rated_message_size": 1073741824, "trigger_after_duration": 60,
                     "trigger_on_join": false}"#;
    assert_eq!(
        stats_of(&with_stats(Some(custom))),
        Some(StatsConfig {
            rated_message_size: 1 << 30,
            trigger_after_duration: 60,
            trigger_on_join: false,
            ..StatsConfig::default()
        })
    );
    assert_eq!(
        stats_of(&with_stats(Some(r#"{"rated_message_size": 1}"#)))
            .unwrap()
            .rated_message_size,
        1
    );
}

#[test]
fn default_config_is_as_documented() {
    let config = default_config();
    let worker = &config.workers[0];
    let realm = &worker.realms[0];
    assert_eq!(realm.name, "realm1");
    assert_eq!(realm.stats, Some(StatsConfig::default()));
    let role = &realm.roles[0];
    assert_eq!(role.name, "anonymous");
    assert_eq!(
        role.permissions,
        vec![Permission {
            uri: String::new(),
            match_policy: MatchPolicy::Prefix,
            allow: Allow {
                call: true,
                register: true,
                publish: true,
                subscribe: true
            },
            disclose: Disclose {
                caller: false,
                publisher: false
            },
            cache: true,
        }]
    );
    let TransportConfig::Web {
        endpoint, paths, ..
    } = &worker.transports[0]
    else {
        panic!("web transport first")
    };
    assert_eq!(endpoint, &tcp(8080));
    assert_eq!(paths.keys().collect::<Vec<_>>(), ["ws"]);
    let WebPath::WebSocket(ws) = &paths["ws"] else {
        panic!("websocket at ws")
    };
    assert_eq!(ws.serializers, Serializer::ALL);
    let TransportConfig::RawSocket {
        endpoint,
        serializers,
        max_message_size,
        auth,
        ..
    } = &worker.transports[1]
    else {
        panic!("rawsocket second")
    };
    assert_eq!(endpoint, &tcp(8081));
    assert_eq!(serializers, &Serializer::ALL);
    assert_eq!((*max_message_size, auth), (DEFAULT_MAX_MESSAGE_SIZE, &None));
}

#[test]
fn default_config_round_trips_through_a_cbdir() {
    let dir = temp_dir("init").join(".crossbar");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("config.json"), DEFAULT_CONFIG_JSON).unwrap();
    let path = find_in_cbdir(&dir).unwrap();
    assert_eq!(path, dir.join("config.json"));
    assert_eq!(load_file(&path).unwrap(), default_config());
}

#[test]
fn find_in_cbdir_prefers_json_then_yaml() {
    let dir = temp_dir("cbdir");
    let err = find_in_cbdir(&dir).unwrap_err().to_string();
    assert_eq!(
        err,
        format!(
            "no config file in {}: neither {} nor {} exists",
            dir.display(),
            dir.join("config.json").display(),
            dir.join("config.yaml").display()
        )
    );
    std::fs::write(dir.join("config.yaml"), EXAMPLE_YAML).unwrap();
    assert_eq!(find_in_cbdir(&dir).unwrap(), dir.join("config.yaml"));
    std::fs::write(dir.join("config.json"), DEFAULT_CONFIG_JSON).unwrap();
    assert_eq!(find_in_cbdir(&dir).unwrap(), dir.join("config.json"));
}

#[test]
fn relative_origin_resolves_against_the_current_directory() {
    let text = r#"{"version": 2, "workers": [{"type": "router", "transports": [
        {"type": "rawsocket", "endpoint": {"type": "unix", "path": "./sock/../router.sock"}}]}]}"#;
    let config = load_str(text, Format::Json, Path::new("node/.crossbar/config.json")).unwrap();
    let cwd = std::env::current_dir().unwrap();
    assert_eq!(
        config.workers[0].transports[0].endpoint(),
        &Endpoint::Unix {
            path: cwd.join("node/.crossbar/router.sock"),
            backlog: 1024,
        }
    );
    let absolute = r#"{"version": 2, "workers": [{"type": "router", "transports": [
        {"type": "rawsocket", "endpoint": {"type": "unix", "path": "/run/t.sock"}}]}]}"#;
    let config = load_str(absolute, Format::Json, Path::new("config.json")).unwrap();
    assert_eq!(
        config.workers[0].transports[0].endpoint(),
        &Endpoint::Unix {
            path: PathBuf::from("/run/t.sock"),
            backlog: 1024,
        }
    );
}

#[test]
fn permissions_default_their_match_policy() {
    let text = r#"{"version": 2, "workers": [{"type": "router", "realms": [{"name": "r1",
        "options": {"uri_check": "strict", "enable_meta_api": false, "event_dispatching_chunk_size": 50},
        "roles": [{"name": "user", "permissions": [
            {"uri": "com.example.add"},
            {"uri": "com.example."},
            {"uri": "com.example.*"},
            {"uri": "com.*.update"},
            {"uri": "com..update", "match": "wildcard", "cache": false,
             "allow": {"call": true}, "disclose": {"caller": true}}
        ]}]}]}]}"#;
    let config = load_str(text, Format::Json, Path::new("/x/config.json")).unwrap();
    let realm = &config.workers[0].realms[0];
    assert_eq!(
        realm.options,
        RealmOptions {
            enable_meta_api: false,
            uri_check: UriRules::Strict,
            event_dispatching_chunk_size: Some(50)
        }
    );
    let got: Vec<(&str, MatchPolicy)> = realm.roles[0]
        .permissions
        .iter()
        .map(|p| (p.uri.as_str(), p.match_policy))
        .collect();
    assert_eq!(
        got,
        [
            ("com.example.add", MatchPolicy::Exact),
            ("com.example.", MatchPolicy::Prefix),
            ("com.example.", MatchPolicy::Prefix),
            ("com..update", MatchPolicy::Wildcard),
            ("com..update", MatchPolicy::Wildcard),
        ]
    );
    let last = &realm.roles[0].permissions[4];
    assert_eq!(
        last.allow,
        Allow {
            call: true,
            ..Allow::default()
        }
    );
    assert_eq!(
        last.disclose,
        Disclose {
            caller: true,
            publisher: false
        }
    );
    assert!(!last.cache);
    assert!(realm.roles[0].permissions[0].cache);
}

#[test]
fn websocket_transport_and_anonymous_auth_are_stored() {
    let text = r#"{"version": 2, "controller": {"id": "node1", "options": {}},
      "workers": [{"type": "router", "id": "w1", "options": {"title": "main"}, "components": [],
      "transports": [
        {"type": "websocket", "id": "ws1",
         "endpoint": {"type": "tcp", "port": 9000, "interface": "::1"},
         "url": "ws://localhost:9000/wamp",
         "serializers": ["cbor", "json"],
         "options": {"max_message_size": 65536, "auto_ping_interval": 10000,
                     "auto_ping_timeout": 5000, "enable_webstatus": false,
                     "compression": {}, "allowed_origins": ["*"]},
         "auth": {"anonymous": {"type": "static", "role": "guest", "authid": "anon"}},
         "debug": false},
        {"type": "rawsocket", "endpoint": {"type": "tcp", "port": 9000, "version": 4},
         "options": {"max_message_size": 512},
         "auth": {"anonymous": {"type": "static"}}},
        {"type": "websocket", "endpoint": {"type": "tcp", "port": 9001, "version": 6}}
      ]}]}"#;
    let config = load_str(text, Format::Json, Path::new("/x/config.json")).unwrap();
    assert_eq!(config.node_id.as_deref(), Some("node1"));
    let worker = &config.workers[0];
    assert_eq!(
        (worker.id.as_deref(), worker.title.as_deref()),
        (Some("w1"), Some("main"))
    );
    assert_eq!(
        worker.transports[0],
        TransportConfig::WebSocket {
            id: Some("ws1".into()),
            endpoint: Endpoint::Tcp {
                port: 9000,
                interface: Some("::1".into()),
                version: 6,
                backlog: 1024,
                tls: None
            },
            max_connections: None,
            path: "/wamp".into(),
            service: WebSocketService {
                serializers: vec![Serializer::Cbor, Serializer::Json],
                options: WebSocketOptions {
                    max_message_size: 65536,
                    max_frame_size: 65536,
                    auto_ping_interval_ms: 10000,
                    auto_ping_timeout_ms: 5000,
                },
                auth: Some(AuthConfig {
                    anonymous: Some(AnonymousAuth {
                        role: "guest".into(),
                        authid: Some("anon".into())
                    }),
                    ..AuthConfig::default()
                }),
            },
        }
    );
    assert_eq!(
        worker.transports[1],
        TransportConfig::RawSocket {
            id: None,
            endpoint: Endpoint::Tcp {
                port: 9000,
                interface: None,
                version: 4,
                backlog: 1024,
                tls: None
            },
            max_connections: None,
            serializers: Serializer::ALL.to_vec(),
            max_message_size: 512,
            auth: Some(AuthConfig {
                anonymous: Some(AnonymousAuth {
                    role: "anonymous".into(),
                    authid: None
                }),
                ..AuthConfig::default()
            }),
        }
    );
    let TransportConfig::WebSocket { path, endpoint, .. } = &worker.transports[2] else {
        panic!("websocket third")
    };
    assert_eq!(path, "/");
    assert_eq!(
        endpoint,
        &Endpoint::Tcp {
            port: 9001,
            interface: None,
            version: 6,
            backlog: 1024,
            tls: None
        }
    );
}

/// A fresh empty directory under the target's temporary directory.
fn temp_dir(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("turnstile-config-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A realm's in-memory store with its event histories (Crossbar's `store` section).
#[test]
fn realm_store_event_history_loads() {
    let text = r#"{"version": 2, "workers": [{"type": "router", "realms": [{"name": "realm1",
        "roles": [], "store": {"type": "memory", "limit": 50, "event-history": [
            {"uri": "com.example.oncounter", "match": "exact", "limit": 10},
            {"uri": "com.example.", "match": "prefix"}]}}], "transports": []}]}"#;
    let config = load_str(text, Format::Json, Path::new("/x/config.json")).unwrap();
    let h = &config.workers[0].realms[0].event_history;
    assert_eq!(h.len(), 2);
    assert_eq!(
        (h[0].uri.as_str(), h[0].match_policy, h[0].limit),
        ("com.example.oncounter", MatchPolicy::Exact, 10)
    );
    assert_eq!(
        (h[1].match_policy, h[1].limit),
        (MatchPolicy::Prefix, 50),
        "the store's limit is the default"
    );
    let bad = text.replace("\"memory\"", "\"cfxdb\"");
    let err = load_str(&bad, Format::Json, Path::new("/x/config.json"))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("workers[0].realms[0].store.type") && err.contains("not supported yet"),
        "{err}"
    );
    let bad = text.replace("\"limit\": 10", "\"limit\": 0");
    let err = load_str(&bad, Format::Json, Path::new("/x/config.json"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("event-history[0].limit"), "{err}");
}
