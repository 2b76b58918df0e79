//! Configurations that are refused: one test per class of error, each checking the key path
//! and the message.

use std::path::Path;

use serde_json::{json, Value};
use turnstile_config::{load_file, load_str, load_str_with_env, ConfigError, Format, Problem};

/// A valid configuration to break: one realm with a role and stats, a web transport with a
/// static and a WebSocket path, and a rawsocket transport.
fn base() -> Value {
    json!({
        "version": 2,
        "workers": [{
            "type": "router",
            "realms": [{
                "name": "realm1",
                "roles": [{"name": "anonymous", "permissions": [
                    {"uri": "", "match": "prefix", "allow": {"call": true}}
                ]}],
                "stats": {"rated_message_size": 512}
            }],
            "transports": [
                {"type": "web",
                 "endpoint": {"type": "tcp", "port": 8080},
                 "paths": {"/": {"type": "static", "directory": "web"},
                           "ws": {"type": "websocket"}}},
                {"type": "rawsocket", "endpoint": {"type": "tcp", "port": 8081}}
            ]
        }]
    })
}

/// `base()` with the value at JSON pointer `pointer` replaced (or added) by `value`.
fn set(pointer: &str, value: Value) -> Value {
    let mut doc = base();
    let (parent, key) = pointer.rsplit_once('/').unwrap();
    let key = key.replace("~1", "/").replace("~0", "~");
    match doc.pointer_mut(parent).unwrap() {
        Value::Object(map) => {
            map.insert(key, value);
        }
        Value::Array(items) => items[key.parse::<usize>().unwrap()] = value,
        _ => panic!("{parent} is not a container"),
    }
    doc
}

/// `base()` without the key at `pointer`.
fn without(pointer: &str) -> Value {
    let mut doc = base();
    let (parent, key) = pointer.rsplit_once('/').unwrap();
    doc.pointer_mut(parent)
        .unwrap()
        .as_object_mut()
        .unwrap()
        .remove(key)
        .unwrap();
    doc
}

/// Loads `doc` with an empty environment.
fn load(doc: &Value) -> Result<turnstile_config::NodeConfig, ConfigError> {
    load_str_with_env(
        &doc.to_string(),
        Format::Json,
        Path::new("/x/config.json"),
        &|_| None,
    )
}

/// The message of loading `doc`, which must fail.
fn error(doc: &Value) -> String {
    load(doc)
        .expect_err("configuration should be refused")
        .to_string()
}

/// The message without the common `config error in /x/config.json at ` prefix.
fn at(doc: &Value) -> String {
    let message = error(doc);
    message
        .strip_prefix("config error in /x/config.json at ")
        .unwrap_or_else(|| panic!("unexpected message: {message}"))
        .to_owned()
}

#[test]
fn base_is_valid() {
    load(&base()).unwrap();
}

#[test]
fn wrong_type() {
    assert_eq!(
        error(&set(
            "/workers/0/realms/0/stats/trigger_on_join",
            json!("yes")
        )),
        "config error in /x/config.json at workers[0].realms[0].stats.trigger_on_join: \
         found \"yes\", expected true or false"
    );
    assert_eq!(
        at(&set("/workers/0/realms", json!({"name": "realm1"}))),
        "workers[0].realms: found {\"name\":\"realm1\"}, expected a list (realms)"
    );
    assert_eq!(
        at(&set("/workers/0/transports/1/endpoint/port", json!(8081.5))),
        "workers[0].transports[1].endpoint.port: found 8081.5, expected an integer between 1 \
         and 65535 (a TCP port)"
    );
    assert_eq!(
        at(&set(
            "/workers/0/realms/0/stats/rated_message_size",
            json!("512")
        )),
        "workers[0].realms[0].stats.rated_message_size: found \"512\", expected a power of two \
         between 1 and 1073741824"
    );
    assert_eq!(
        at(&set(
            "/workers/0/transports/0/paths/ws/serializers",
            json!(["json", "ubjson2"])
        )),
        "workers[0].transports[0].paths.ws.serializers[1]: found \"ubjson2\", expected one of \
         \"json\", \"msgpack\" or \"cbor\""
    );
    assert_eq!(
        at(&set(
            "/workers/0/realms/0/roles/0/permissions/0/match",
            json!("regex")
        )),
        "workers[0].realms[0].roles[0].permissions[0].match: found \"regex\", expected one of \
         \"exact\", \"prefix\" or \"wildcard\""
    );
    assert_eq!(
        at(&json!([1, 2])),
        "(top level): found [1,2], expected an object (a node configuration)"
    );
}

#[test]
fn unknown_keys_at_several_depths() {
    assert_eq!(
        at(&set("/workers/0/realms/0/stats/rated_size", json!(512))),
        "workers[0].realms[0].stats.rated_size: unknown key, allowed keys here: \
         rated_message_size, trigger_after_rated_messages, trigger_after_duration, \
         trigger_on_join, trigger_on_leave"
    );
    assert_eq!(
        at(&set("/versoin", json!(2))),
        "versoin: unknown key, did you mean `version`? allowed keys here: $schema, version, \
         controller, workers"
    );
    assert_eq!(
        at(&set("/workers/0/transports/1/endpoint/prot", json!(1))),
        "workers[0].transports[1].endpoint.prot: unknown key, did you mean `port`? allowed keys \
         here: type, port, interface, version, backlog, shared, tls"
    );
    assert_eq!(
        at(&set(
            "/workers/0/realms/0/roles/0/permissions/0/allow/cal",
            json!(true)
        )),
        "workers[0].realms[0].roles[0].permissions[0].allow.cal: unknown key, did you mean \
         `call`? allowed keys here: call, register, publish, subscribe"
    );
    assert!(
        at(&set("/workers/0/transports/0/paths/~1/dir", json!("x"))).starts_with(
            "workers[0].transports[0].paths[\"/\"].dir: unknown key, allowed keys here: type, \
         directory, options"
        )
    );
    assert_eq!(
        at(&set("/controller", json!({"options": {"titel": "node 1"}}))),
        "controller.options.titel: unknown key, did you mean `title`? allowed keys here: title, \
         shutdown, enable_parallel_worker_start"
    );
    assert_eq!(
        at(&set("/workers/0/realms/0/roles/0/permisions", json!([]))),
        "workers[0].realms[0].roles[0].permisions: unknown key, did you mean `permissions`? \
         allowed keys here: name, permissions, authorizer, allow-by-default"
    );
}

#[test]
fn missing_required_keys() {
    assert_eq!(
        at(&without("/version")),
        "version: missing required key, expected 2 (the configuration format version)"
    );
    assert_eq!(
        at(&without("/workers/0/realms/0/name")),
        "workers[0].realms[0].name: missing required key, expected the realm name, a URI such \
         as \"realm1\""
    );
    assert_eq!(
        at(&without("/workers/0/transports/1/endpoint/port")),
        "workers[0].transports[1].endpoint.port: missing required key, expected the TCP port \
         to listen on, 1 to 65535"
    );
    assert_eq!(
        at(&without("/workers/0/transports/0/paths")),
        "workers[0].transports[0].paths: missing required key, expected an object of path \
         services, such as {\"ws\": {...}}"
    );
    assert_eq!(
        at(&without("/workers/0/type")),
        "workers[0].type: missing required key, expected the type of a worker"
    );
}

#[test]
fn negative_numbers() {
    assert_eq!(
        at(&set(
            "/workers/0/realms/0/stats/trigger_after_rated_messages",
            json!(-1)
        )),
        "workers[0].realms[0].stats.trigger_after_rated_messages: found -1, expected an \
         integer >= 0 (rated messages; 0 = off)"
    );
    assert_eq!(
        at(&set(
            "/workers/0/realms/0/stats/trigger_after_duration",
            json!(-5)
        )),
        "workers[0].realms[0].stats.trigger_after_duration: found -5, expected an integer \
         between 0 and 4294967295 (seconds, not nanoseconds; 0 = off)"
    );
    assert_eq!(
        at(&set("/workers/0/transports/1/endpoint/backlog", json!(-1))),
        "workers[0].transports[1].endpoint.backlog: found -1, expected an integer between 1 and \
         65535"
    );
}

#[test]
fn rated_message_size_must_be_a_power_of_two() {
    for bad in [
        json!(300),
        json!(0),
        json!(1u64 << 31),
        json!(512.0),
        json!(-512),
    ] {
        assert_eq!(
            error(&set(
                "/workers/0/realms/0/stats/rated_message_size",
                bad.clone()
            )),
            format!(
                "config error in /x/config.json at workers[0].realms[0].stats.rated_message_size: \
                 found {bad}, expected a power of two between 1 and 1073741824"
            )
        );
    }
    // Crossbar's nanoseconds in trigger_after_duration are caught by the range.
    assert!(at(&set(
        "/workers/0/realms/0/stats/trigger_after_duration",
        json!(60_000_000_000u64)
    ))
    .contains("found 60000000000, expected an integer between 0 and 4294967295 (seconds"));
}

#[test]
fn unsupported_features() {
    let scram = json!({"scram": {"type": "static", "principals": {"joe": {"salt": "secret123"}}}});
    let message = at(&set("/workers/0/transports/1/auth", scram));
    assert_eq!(
        message,
        "workers[0].transports[1].auth.scram: found {\"principals\": ..., \"type\": ...}: \
         WAMP-SCRAM authentication is not supported yet"
    );
    assert!(
        !message.contains("secret123"),
        "secrets must not be shown: {message}"
    );
    assert_eq!(
        at(&set(
            "/workers/0/transports/1/endpoint/tls",
            json!({"key": "k.pem"})
        )),
        "workers[0].transports[1].endpoint.tls.certificate: missing required key, expected the \
         server's certificate file (PEM)"
    );
    assert_eq!(
        at(&set("/workers/0/type", json!("container"))),
        "workers[0].type: found \"container\": worker type \"container\" is not supported yet \
         (only \"router\")"
    );
    assert_eq!(
        at(&set("/workers/0/type", json!("routr"))),
        "workers[0].type: found \"routr\", expected \"router\""
    );
    assert_eq!(
        at(&set("/workers/0/transports/1/type", json!("mqtt"))),
        "workers[0].transports[1].type: found \"mqtt\": transport type \"mqtt\" is not \
         supported yet (supported: websocket, web, rawsocket)"
    );
    assert_eq!(
        at(&set(
            "/workers/0/transports/0/paths/ws",
            json!({"type": "wsgi", "module": "m"})
        )),
        "workers[0].transports[0].paths.ws.type: found \"wsgi\": path service type \"wsgi\" is \
         not supported yet (supported: static, websocket)"
    );
    assert_eq!(
        at(&set(
            "/workers/0/transports/0/paths/ws/options",
            json!({"compression": {"deflate": {}}})
        )),
        "workers[0].transports[0].paths.ws.options.compression: found {\"deflate\":{}}: \
         WebSocket compression (permessage-deflate) is not supported yet (only {} is accepted \
         here)"
    );
    assert_eq!(
        at(&set(
            "/workers/0/transports/0/paths/ws/options",
            json!({"fail_by_drop": true})
        )),
        "workers[0].transports[0].paths.ws.options.fail_by_drop: found true: this WebSocket \
         option is not supported yet"
    );
    assert_eq!(
        at(&set(
            "/workers/0/components",
            json!([{"type": "class", "classname": "x.Y"}])
        )),
        "workers[0].components[0]: found {\"classname\":\"x.Y\",\"type\":\"class\"}: router \
         components are not supported yet"
    );
    assert_eq!(
        at(&set("/workers/0/transports/1/debug", json!(true))),
        "workers[0].transports[1].debug: found true: per-transport debug logging is not \
         supported yet; use the log level (only false is accepted here)"
    );
    assert_eq!(
        at(&set(
            "/workers/0/transports/1/endpoint/port",
            json!("$PORT")
        )),
        "workers[0].transports[1].endpoint.port: found \"$PORT\", expected the environment \
         variable PORT to be set (it is not)"
    );
}

#[test]
fn duplicates() {
    let mut doc = base();
    let realm = doc.pointer("/workers/0/realms/0").unwrap().clone();
    doc.pointer_mut("/workers/0/realms")
        .unwrap()
        .as_array_mut()
        .unwrap()
        .push(realm);
    assert_eq!(
        at(&doc),
        "workers[0].realms[1].name: found \"realm1\": realm names must be unique, also defined \
         at workers[0].realms[0].name"
    );

    let role = json!({"name": "anonymous", "permissions": []});
    let roles = json!([role.clone(), role]);
    assert_eq!(
        at(&set("/workers/0/realms/0/roles", roles)),
        "workers[0].realms[0].roles[1].name: found \"anonymous\": role names must be unique in a \
         realm, also defined at workers[0].realms[0].roles[0].name"
    );

    assert_eq!(
        at(&set(
            "/workers/0/transports/1/serializers",
            json!(["json", "cbor", "json"])
        )),
        "workers[0].transports[1].serializers[2]: found \"json\": each serializer may be listed \
         once, \"json\" is also at index 0"
    );
}

#[test]
fn bad_ports_and_conflicts() {
    for bad in [json!(0), json!(65536), json!("8080"), json!(null)] {
        assert_eq!(
            at(&set("/workers/0/transports/1/endpoint/port", bad.clone())),
            format!(
                "workers[0].transports[1].endpoint.port: found {bad}, expected an integer \
                 between 1 and 65535 (a TCP port)"
            )
        );
    }
    assert_eq!(
        at(&set("/workers/0/transports/1/endpoint/port", json!(8080))),
        "workers[0].transports[1].endpoint.port: found 8080: TCP port 8080 on all IPv4 \
         interfaces is already used by the endpoint at workers[0].transports[0].endpoint (TCP \
         port 8080 on all IPv4 interfaces)"
    );
    let specific = json!({"type": "tcp", "port": 8080, "interface": "127.0.0.1"});
    assert!(at(&set("/workers/0/transports/1/endpoint", specific))
        .contains("TCP port 8080 on 127.0.0.1 is already used by the endpoint at"));
    // Different addresses of the same port can coexist.
    let mut doc = set(
        "/workers/0/transports/0/endpoint/interface",
        json!("127.0.0.1"),
    );
    doc["workers"][0]["transports"][1]["endpoint"] =
        json!({"type": "tcp", "port": 8080, "interface": "127.0.0.2"});
    load(&doc).unwrap();

    let unix = json!({"type": "unix", "path": "a.sock"});
    let mut doc = set("/workers/0/transports/0/endpoint", unix.clone());
    doc["workers"][0]["transports"][1]["endpoint"] = unix;
    assert_eq!(
        at(&doc),
        "workers[0].transports[1].endpoint.path: found \"a.sock\": unix socket /x/a.sock is \
         already used by the endpoint at workers[0].transports[0].endpoint (unix socket \
         /x/a.sock)"
    );

    assert_eq!(
        at(&set(
            "/workers/0/transports/1/endpoint/interface",
            json!("local host")
        )),
        "workers[0].transports[1].endpoint.interface: found \"local host\", expected an IP \
         address such as \"127.0.0.1\" or \"::1\", or a host name such as \"localhost\""
    );
    // A host name (Crossbar's listener resolves it too) clashes with the same name and with all
    // interfaces of its family.
    let mut doc = set(
        "/workers/0/transports/1/endpoint",
        json!({"type": "tcp", "port": 8081, "interface": "localhost"}),
    );
    load(&doc).unwrap();
    doc["workers"][0]["transports"][0]["endpoint"] =
        json!({"type": "tcp", "port": 8081, "interface": "LOCALHOST"});
    assert!(at(&doc).contains("TCP port 8081 on localhost is already used by the endpoint at"));
    doc["workers"][0]["transports"][0]["endpoint"] = json!({"type": "tcp", "port": 8081});
    assert!(at(&doc).contains(
        "TCP port 8081 on localhost is already used by the endpoint at \
         workers[0].transports[0].endpoint (TCP port 8081 on all IPv4 interfaces)"
    ));
    let mismatch = json!({"type": "tcp", "port": 8081, "interface": "::1", "version": 4});
    assert_eq!(
        at(&set("/workers/0/transports/1/endpoint", mismatch)),
        "workers[0].transports[1].endpoint.version: found 4, expected 6 (the version of the \
         address in \"interface\")"
    );
}

#[test]
fn other_value_rules() {
    assert_eq!(
        at(&set("/version", json!(1))),
        "version: found 1, expected 2 (the only configuration format version supported)"
    );
    assert_eq!(
        at(&set("/workers", json!({}))),
        "workers: found {}, expected a list (workers)"
    );
    assert_eq!(
        at(&set("/workers/0/realms/0/name", json!("my realm"))),
        "workers[0].realms[0].name: found \"my realm\", expected a realm name that is a valid \
         WAMP URI, such as \"realm1\""
    );
    assert_eq!(
        at(&set(
            "/workers/0/realms/0/roles/0/permissions/0/uri",
            json!("com.#bad")
        )),
        "workers[0].realms[0].roles[0].permissions[0].uri: found \"com.#bad\", expected a valid \
         URI pattern (loose rules) for prefix matching"
    );
    let exact_empty = json!({"uri": "", "match": "exact"});
    assert!(at(&set("/workers/0/realms/0/roles/0/permissions/0", exact_empty))
        .starts_with("workers[0].realms[0].roles[0].permissions[0].uri: found \"\", expected a valid URI (loose rules) for exact matching"));
    assert_eq!(
        at(&set("/workers/0/transports/1/max_message_size", json!(100))),
        "workers[0].transports[1].max_message_size: found 100, expected an integer between 512 \
         and 16777216 (bytes; RawSocket lengths are 2^(9+L) up to 2^24)"
    );
    let mut both = set("/workers/0/transports/1/max_message_size", json!(4096));
    both["workers"][0]["transports"][1]["options"] = json!({"max_message_size": 4096});
    assert_eq!(
        at(&both),
        "workers[0].transports[1].options.max_message_size: found 4096: max_message_size is \
         also given at workers[0].transports[1].max_message_size; give it once"
    );
    assert_eq!(
        at(&set(
            "/workers/0/transports/0/paths/~1",
            json!({"type": "websocket"})
        )),
        "workers[0].transports[0].paths[\"/\"].type: found \"websocket\", expected \"static\" at \
         the root path \"/\" (mount WebSocket at a segment such as \"ws\", or use a \
         \"websocket\" transport)"
    );
    assert_eq!(
        at(&set(
            "/workers/0/transports/0/paths/a~1b",
            json!({"type": "static", "directory": "d"})
        )),
        "workers[0].transports[0].paths[\"a/b\"]: found the path \"a/b\", expected \"/\" or one \
         path segment of letters, digits, \"_\" and \"-\" (such as \"ws\")"
    );
    let ws = json!({"type": "websocket", "endpoint": {"type": "tcp", "port": 9000},
                    "url": "https://example.com/ws"});
    assert_eq!(
        at(&set("/workers/0/transports/1", ws)),
        "workers[0].transports[1].url: found \"https://example.com/ws\", expected a WebSocket \
         URL such as \"ws://127.0.0.1:8080/ws\""
    );
    assert_eq!(
        at(&set(
            "/workers/0/transports/0/paths/ws/options",
            json!({"auto_ping_timeout": 5000})
        )),
        "workers[0].transports[0].paths.ws.options.auto_ping_timeout: found 5000, expected 0 \
         while \"auto_ping_interval\" is 0 or absent (a ping timeout needs pings)"
    );
    assert_eq!(
        at(&set(
            "/workers/0/transports/0/paths/ws/serializers",
            json!([])
        )),
        "workers[0].transports[0].paths.ws.serializers: found [], expected a non-empty list of \
         serializers: \"json\", \"msgpack\", \"cbor\""
    );
}

#[test]
fn bad_json_syntax_names_line_and_column() {
    let text = "{\n  \"version\": 2,\n  \"workers\": [\n}\n";
    let err = load_str(text, Format::Json, Path::new("/x/config.json")).unwrap_err();
    assert!(
        matches!(
            err,
            ConfigError::Syntax {
                location: Some((4, 1)),
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        "config syntax error in /x/config.json (JSON) at line 4, column 1: expected value"
    );

    let duplicate = "{\"version\": 2,\n \"version\": 2, \"workers\": []}";
    let err = load_str(duplicate, Format::Json, Path::new("/x/config.json")).unwrap_err();
    assert!(
        err.to_string().starts_with(
            "config syntax error in /x/config.json (JSON) at line 2, column 10: duplicate key \
             \"version\""
        ),
        "{err}"
    );
}

#[test]
fn bad_yaml_names_the_file_and_line() {
    let text = "version: 2\nworkers:\n  - type: router\n    realms: [\n";
    let err = load_str(text, Format::Yaml, Path::new("/x/config.yaml")).unwrap_err();
    assert_eq!(
        err.to_string(),
        "config syntax error in /x/config.yaml (YAML) at line 4, column 13: unclosed bracket '['"
    );

    let duplicate = "version: 2\nversion: 2\nworkers: []\n";
    let message = load_str(duplicate, Format::Yaml, Path::new("/x/config.yaml"))
        .unwrap_err()
        .to_string();
    assert_eq!(
        message,
        "config syntax error in /x/config.yaml (YAML) at line 2, column 1: duplicate mapping key: \
         version"
    );

    // Valid YAML, invalid configuration: the same path-based message as for JSON.
    let text = "version: 2\nworkers:\n  - type: router\n    realms:\n      - name: r1\n        stats: {rated_message_size: 300}\n";
    assert_eq!(
        load_str(text, Format::Yaml, Path::new("/x/config.yaml"))
            .unwrap_err()
            .to_string(),
        "config error in /x/config.yaml at workers[0].realms[0].stats.rated_message_size: found \
         300, expected a power of two between 1 and 1073741824"
    );
}

#[test]
fn empty_files_are_refused() {
    for format in [Format::Json, Format::Yaml] {
        assert_eq!(
            load_str(" \n", format, Path::new("/x/config"))
                .unwrap_err()
                .to_string(),
            format!("config syntax error in /x/config ({format}): the file is empty")
        );
    }
}

#[test]
fn file_errors_name_the_file() {
    let missing = Path::new("/nonexistent/turnstile/config.json");
    let err = load_file(missing).unwrap_err();
    assert!(matches!(err, ConfigError::Io { .. }));
    assert!(err
        .to_string()
        .starts_with("cannot read config file /nonexistent/turnstile/config.json: "));
    assert_eq!(
        load_file(Path::new("/x/config.toml"))
            .unwrap_err()
            .to_string(),
        "cannot load config file /x/config.toml: unknown file type, expected a name ending in \
         .json, .yaml or .yml"
    );
}

#[test]
fn invalid_errors_are_structured() {
    let err = load(&set(
        "/workers/0/realms/0/stats/rated_message_size",
        json!(300),
    ))
    .unwrap_err();
    let ConfigError::Invalid {
        file,
        at,
        problem,
        more,
    } = err
    else {
        panic!("not Invalid")
    };
    assert!(more.is_empty(), "one mistake, one error: {more:?}");
    assert_eq!(file, Path::new("/x/config.json"));
    assert_eq!(at, "workers[0].realms[0].stats.rated_message_size");
    assert_eq!(
        problem,
        Problem::Invalid {
            found: "300".into(),
            expected: "a power of two between 1 and 1073741824".into()
        }
    );
}

/// Independent mistakes are reported together, each on its own line with the file, the key path,
/// the value and the rule; the document order decides their order.
#[test]
fn every_error_of_a_file_is_reported() {
    let mut doc = base();
    doc["workers"][0]["realms"][0]["roles"] = json!([
        {"name": "a", "permisions": []},
        {"name": "b", "permissions": [{"uri": "x", "match": "regex"}, {"uri": "y", "allow": {"cal": true}}]}
    ]);
    doc["workers"][0]["realms"][0]["stats"]["rated_message_size"] = json!(300);
    doc["workers"][0]["transports"][0]["paths"]["ws"]["serializers"] = json!(["xml"]);
    doc["workers"][0]["transports"][1]["endpoint"]["port"] = json!(0);
    doc["workers"][0]["transports"][1]["auth"] = json!({
        "ticket": {"type": "static"}, "wampcra": {"type": "dynamic"}});
    let err = load(&doc).unwrap_err();
    assert_eq!(
        err.to_string(),
        "config error in /x/config.json at workers[0].realms[0].roles[0].permisions: unknown key, \
         did you mean `permissions`? allowed keys here: name, permissions, authorizer, \
         allow-by-default\n\
         config error in /x/config.json at workers[0].realms[0].roles[1].permissions[0].match: \
         found \"regex\", expected one of \"exact\", \"prefix\" or \"wildcard\"\n\
         config error in /x/config.json at workers[0].realms[0].roles[1].permissions[1].allow.cal: \
         unknown key, did you mean `call`? allowed keys here: call, register, publish, subscribe\n\
         config error in /x/config.json at workers[0].realms[0].stats.rated_message_size: found \
         300, expected a power of two between 1 and 1073741824\n\
         config error in /x/config.json at workers[0].transports[0].paths.ws.serializers[0]: \
         found \"xml\", expected one of \"json\", \"msgpack\" or \"cbor\"\n\
         config error in /x/config.json at workers[0].transports[1].endpoint.port: found 0, \
         expected an integer between 1 and 65535 (a TCP port)\n\
         config error in /x/config.json at workers[0].transports[1].auth.ticket.principals: \
         missing required key, expected ticket principals by authid, such as {\"joe\": \
         {\"ticket\": ..., \"role\": ...}}\n\
         config error in /x/config.json at workers[0].transports[1].auth.wampcra.authenticator: \
         missing required key, expected the URI of the authenticator procedure, such as \
         \"com.example.authenticate\""
    );
    // The same, structured: the first error, then the others in order.
    assert_eq!(err.issues().len(), 8);
    let ConfigError::Invalid { at, more, .. } = &err else {
        panic!("not Invalid")
    };
    assert_eq!(at, "workers[0].realms[0].roles[0].permisions");
    assert_eq!(
        more[7 - 1].at,
        "workers[0].transports[1].auth.wampcra.authenticator"
    );
}

/// Independent workers and realms report their errors too, and an error inside one part does
/// not hide the errors of its siblings.
#[test]
fn errors_of_several_workers_and_realms() {
    let mut doc = base();
    let mut second = doc["workers"][0].clone();
    second["realms"][0]["name"] = json!("realm2");
    second["realms"][0]["stats"] = json!({"trigger_on_join": "yes"});
    second["transports"] = json!([{"type": "rawsocket", "endpoint": {"type": "tcp", "port": 8082},
                                    "serializers": ["json", "json"]}]);
    doc["workers"].as_array_mut().unwrap().push(second);
    doc["workers"][0]["realms"]
        .as_array_mut()
        .unwrap()
        .push(json!({"name": "realm1"}));
    let message = error(&doc);
    let lines: Vec<&str> = message.lines().collect();
    assert_eq!(
        lines,
        [
            "config error in /x/config.json at workers[0].realms[1].name: found \"realm1\": realm \
             names must be unique, also defined at workers[0].realms[0].name",
            "config error in /x/config.json at workers[1].realms[0].stats.trigger_on_join: found \
             \"yes\", expected true or false",
            "config error in /x/config.json at workers[1].transports[0].serializers[1]: found \
             \"json\": each serializer may be listed once, \"json\" is also at index 0",
        ]
    );
}

/// At most `MAX_SHOWN_ERRORS` errors are shown, then how many were left out.
#[test]
fn many_errors_are_capped() {
    let mut doc = base();
    let roles: Vec<Value> = (0..25)
        .map(|i| json!({"name": format!("r{i}"), "permissions": 1}))
        .collect();
    doc["workers"][0]["realms"][0]["roles"] = json!(roles);
    let err = load(&doc).unwrap_err();
    assert_eq!(err.issues().len(), 25);
    let message = err.to_string();
    let lines: Vec<&str> = message.lines().collect();
    assert_eq!(lines.len(), turnstile_config::MAX_SHOWN_ERRORS + 1);
    assert_eq!(
        lines[19],
        "config error in /x/config.json at workers[0].realms[0].roles[19].permissions: found 1, \
         expected a list (permissions)"
    );
    assert_eq!(
        lines[20],
        "... and 5 more config errors in /x/config.json (25 in all; the first 20 are shown)"
    );
}

/// Every offending key of one object is reported, unknown and unsupported alike.
#[test]
fn every_offending_key_of_an_object_is_reported() {
    let options = json!({"fail_by_drop": true, "max_mesage_size": 1, "auto_fragment_size": 1});
    let message = error(&set("/workers/0/transports/0/paths/ws/options", options));
    let lines: Vec<&str> = message.lines().collect();
    assert_eq!(lines.len(), 3, "{message}");
    assert!(lines[0].ends_with(
        "paths.ws.options.auto_fragment_size: found 1: this WebSocket option is not supported yet"
    ));
    assert!(lines[1].ends_with(
        "paths.ws.options.fail_by_drop: found true: this WebSocket option is not supported yet"
    ));
    assert!(
        lines[2].contains(
            "paths.ws.options.max_mesage_size: unknown key, did you mean `max_message_size`?"
        ),
        "{message}"
    );
}
