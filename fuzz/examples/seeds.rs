//! Writes the seed inputs of every fuzz target into `OUT/<target>/` (default `OUT` is
//! `fuzz/seeds`, which is not committed): `scripts/fuzz seeds` then minimizes them into the
//! committed `fuzz/corpus/<target>/` with `cargo fuzz cmin`.
//!
//! ```text
//! cargo run --manifest-path fuzz/Cargo.toml --example seeds -- [OUT] [TESTSUITE_DIR]
//! ```
//!
//! Seeds:
//! - `decode_*`: one sample of every WAMP message type (with and without Args/KwArgs, binary,
//!   payload passthru, floats, nesting) encoded by our own encoder in that serializer; and, if
//!   a WAMP testsuite directory is given (or `WAMP_TESTSUITE_DIR` is set; it is the autobahn
//!   sdist's `.proto/testsuite/`, which `cargo test -p wamp-proto --test test_vectors` downloads
//!   into `target/wamp-testsuite`), every serialization sample of that serializer and every
//!   validation sample's wire message (as JSON, and re-encoded when it decodes).
//! - `config_json`, `config_yaml`: the configurations of turnstile-config's tests and the
//!   default configuration (JSON documents are valid YAML too, so they seed both).

use std::fs;
use std::path::{Path, PathBuf};

use wamp_proto::message::code;
use wamp_proto::{Dict, Message, Serializer, Value};

fn main() {
    let mut args = std::env::args_os().skip(1);
    let out = args
        .next()
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("seeds"));
    let testsuite = args
        .next()
        .or_else(|| std::env::var_os("WAMP_TESTSUITE_DIR"))
        .map(PathBuf::from);

    let mut seeds = Seeds { out, n: 0 };
    for ser in Serializer::ALL {
        let target = decode_target(ser);
        for msg in sample_messages() {
            match ser.encode(&msg) {
                Ok(bytes) => seeds.add(target, &format!("own-{}", msg.name()), &bytes),
                Err(e) => eprintln!("skipped: {e}"),
            }
        }
    }
    match testsuite {
        Some(dir) => testsuite_seeds(&mut seeds, &dir),
        None => eprintln!("no testsuite directory given: seeds from our own encoder only"),
    }
    for (name, text) in CONFIGS {
        if name.ends_with(".json") {
            seeds.add("config_json", name, text.as_bytes());
        }
        seeds.add("config_yaml", name, text.as_bytes());
    }
    eprintln!("wrote {} seeds under {}", seeds.n, seeds.out.display());
}

struct Seeds {
    out: PathBuf,
    n: usize,
}

impl Seeds {
    fn add(&mut self, target: &str, name: &str, bytes: &[u8]) {
        let dir = self.out.join(target);
        fs::create_dir_all(&dir).expect("create the seed directory");
        let name: String = name
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
            .collect();
        fs::write(dir.join(format!("{name}-{}", self.n)), bytes).expect("write a seed");
        self.n += 1;
    }
}

fn decode_target(ser: Serializer) -> &'static str {
    match ser {
        Serializer::Json => "decode_json",
        Serializer::MsgPack => "decode_msgpack",
        Serializer::Cbor => "decode_cbor",
    }
}

fn dict(entries: &[(&str, Value)]) -> Dict {
    entries
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect()
}

fn s(v: &str) -> Value {
    Value::Str(v.to_owned())
}

/// A value with every variant, nested.
fn rich() -> Value {
    Value::Dict(dict(&[
        ("null", Value::Null),
        ("bool", Value::Bool(true)),
        ("int", Value::Int(-42)),
        ("big", Value::UInt(u64::MAX)),
        ("min", Value::Int(i64::MIN)),
        ("float", Value::Float(1.5e-7)),
        ("str", s("héllo \"wörld\"\n")),
        ("bytes", Value::Bytes(vec![0, 1, 2, 255])),
        (
            "list",
            Value::List(vec![
                Value::List(vec![Value::Int(1), s("two")]),
                Value::Dict(dict(&[("k", Value::Null)])),
            ]),
        ),
    ]))
}

/// One or more messages of every type.
fn sample_messages() -> Vec<Message> {
    let roles = dict(&[(
        "roles",
        Value::Dict(dict(&[
            ("caller", Value::Dict(Dict::new())),
            ("subscriber", Value::Dict(Dict::new())),
        ])),
    )]);
    let args = Some(vec![Value::Int(1), s("two"), Value::Float(3.25)]);
    let kwargs = Some(dict(&[("a", rich())]));
    let ppt = dict(&[("ppt_scheme", s("x_custom")), ("ppt_serializer", s("cbor"))]);
    let payload = Some(vec![Value::Bytes(b"opaque payload".to_vec())]);
    let id = 9_007_199_254_740_992; // 2^53, the largest id
    vec![
        Message::Hello {
            realm: "realm1".into(),
            details: roles.clone(),
        },
        Message::Welcome {
            session: id,
            details: roles,
        },
        Message::abort("wamp.error.no_such_realm", "no such realm"),
        Message::Abort {
            details: Dict::new(),
            reason: "wamp.error.protocol_violation".into(),
            args: args.clone(),
            kwargs: kwargs.clone(),
        },
        Message::Challenge {
            authmethod: "wampcra".into(),
            extra: dict(&[("challenge", s("{}")), ("iterations", Value::Int(1000))]),
        },
        Message::Authenticate {
            signature: "c2lnbmF0dXJl".into(),
            extra: Dict::new(),
        },
        Message::Goodbye {
            details: dict(&[("message", s("bye"))]),
            reason: "wamp.close.close_realm".into(),
        },
        Message::error(code::CALL, 7, "wamp.error.no_such_procedure", "none"),
        Message::Error {
            request_type: code::INVOCATION,
            request: 8,
            details: ppt.clone(),
            error: "com.example.error".into(),
            args: payload.clone(),
            kwargs: None,
        },
        Message::Publish {
            request: 1,
            options: dict(&[("acknowledge", Value::Bool(true))]),
            topic: "com.example.topic".into(),
            args: args.clone(),
            kwargs: kwargs.clone(),
        },
        Message::Publish {
            request: 2,
            options: Dict::new(),
            topic: "com.example.topic".into(),
            args: None,
            kwargs: Some(Dict::new()),
        },
        Message::Publish {
            request: 3,
            options: ppt.clone(),
            topic: "com.example.ppt".into(),
            args: payload.clone(),
            kwargs: None,
        },
        Message::Published {
            request: 1,
            publication: id,
        },
        Message::Subscribe {
            request: 4,
            options: dict(&[("match", s("wildcard"))]),
            topic: "com..topic".into(),
        },
        Message::Subscribed {
            request: 4,
            subscription: 5,
        },
        Message::Unsubscribe {
            request: 6,
            subscription: 5,
        },
        Message::Unsubscribed {
            request: 6,
            details: None,
        },
        Message::Unsubscribed {
            request: 0,
            details: Some(dict(&[
                ("subscription", Value::Int(5)),
                ("reason", s("wamp.close.revoked")),
            ])),
        },
        Message::Event {
            subscription: 5,
            publication: 10,
            details: dict(&[("topic", s("com.a.topic"))]),
            args: args.clone(),
            kwargs: None,
        },
        Message::Event {
            subscription: 5,
            publication: 11,
            details: ppt.clone(),
            args: Some(vec![s("string payload")]),
            kwargs: None,
        },
        Message::Call {
            request: 12,
            options: dict(&[("timeout", Value::Int(1000))]),
            procedure: "com.example.add".into(),
            args: Some(vec![Value::Int(2), Value::Int(3)]),
            kwargs: kwargs.clone(),
        },
        Message::Cancel {
            request: 12,
            options: dict(&[("mode", s("kill"))]),
        },
        Message::Result {
            request: 12,
            details: dict(&[("progress", Value::Bool(true))]),
            args: Some(vec![Value::Int(5)]),
            kwargs: None,
        },
        Message::Register {
            request: 13,
            options: dict(&[("match", s("prefix")), ("invoke", s("roundrobin"))]),
            procedure: "com.example.".into(),
        },
        Message::Registered {
            request: 13,
            registration: 14,
        },
        Message::Unregister {
            request: 15,
            registration: 14,
        },
        Message::Unregistered {
            request: 15,
            details: None,
        },
        Message::Unregistered {
            request: 0,
            details: Some(dict(&[("registration", Value::Int(14))])),
        },
        Message::Invocation {
            request: 16,
            registration: 14,
            details: Dict::new(),
            args: Some(vec![Value::Int(2), Value::Int(3)]),
            kwargs: None,
        },
        Message::Interrupt {
            request: 16,
            options: dict(&[("mode", s("killnowait"))]),
        },
        Message::Yield {
            request: 16,
            options: Dict::new(),
            args: Some(vec![Value::Null, Value::Bytes(vec![])]),
            kwargs: Some(dict(&[("x", Value::Float(-0.0))])),
        },
        Message::Yield {
            request: 17,
            options: ppt,
            args: payload,
            kwargs: None,
        },
    ]
}

/// Every serialization sample of the testsuite in our serializers, and every validation
/// sample's wire message.
fn testsuite_seeds(seeds: &mut Seeds, dir: &Path) {
    let mut files = Vec::new();
    json_files(dir, &mut files);
    if files.is_empty() {
        eprintln!("no test vectors in {}", dir.display());
    }
    for file in files {
        let stem = file.file_stem().unwrap_or_default().to_string_lossy();
        let text = fs::read(&file).expect("read a test vector file");
        let Ok(Value::Dict(doc)) = Serializer::Json.decode_value(&text) else {
            continue;
        };
        let Some(Value::List(samples)) = doc.get("samples") else {
            continue;
        };
        for sample in samples.iter().filter_map(Value::as_dict) {
            if let Some(Value::Dict(by_ser)) = sample.get("serializers") {
                for ser in Serializer::ALL {
                    let Some(Value::List(variants)) = by_ser.get(ser.name()) else {
                        continue;
                    };
                    for v in variants.iter().filter_map(Value::as_dict) {
                        if let Some(bytes) = variant_bytes(v) {
                            seeds.add(decode_target(ser), &format!("tv-{stem}"), &bytes);
                        }
                    }
                }
            }
            // A validation sample: the wire message as a JSON list.
            if let Some(wmsg @ Value::List(_)) = sample.get("wmsg") {
                let json = wmsg_json(wmsg);
                seeds.add("decode_json", &format!("tv-{stem}-wmsg"), json.as_bytes());
                if let Ok(msg) = Serializer::Json.decode(json.as_bytes()) {
                    for ser in [Serializer::MsgPack, Serializer::Cbor] {
                        if let Ok(bytes) = ser.encode(&msg) {
                            seeds.add(decode_target(ser), &format!("tv-{stem}-wmsg"), &bytes);
                        }
                    }
                }
            }
        }
    }
}

/// A JSON value (as our decoder read it) back as JSON text, by wrapping it as a PUBLISH
/// argument, encoding, and cutting the argument out.
fn wmsg_json(v: &Value) -> String {
    let msg = Message::Publish {
        request: 1,
        options: Dict::new(),
        topic: "t".into(),
        args: Some(vec![v.clone()]),
        kwargs: None,
    };
    let text = Serializer::Json
        .encode(&msg)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default();
    // `[16,1,{},"t",[X]]` -> `X`
    text.strip_prefix(r#"[16,1,{},"t",["#)
        .and_then(|t| t.strip_suffix("]]"))
        .unwrap_or("")
        .to_owned()
}

fn variant_bytes(v: &Dict) -> Option<Vec<u8>> {
    if let Some(h) = v.get("bytes_hex").and_then(Value::as_str) {
        (0..h.len() / 2)
            .map(|i| u8::from_str_radix(h.get(2 * i..2 * i + 2)?, 16).ok())
            .collect()
    } else {
        v.get("bytes")
            .and_then(Value::as_str)
            .map(|s| s.as_bytes().to_vec())
    }
}

fn json_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    let mut paths: Vec<PathBuf> = entries.filter_map(|e| Some(e.ok()?.path())).collect();
    paths.sort();
    for p in paths {
        if p.is_dir() {
            json_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "json") && !p.ends_with("SCHEMA.json") {
            out.push(p);
        }
    }
}

/// Configuration texts: the files turnstile-config's tests load, and texts from its tests.
const CONFIGS: &[(&str, &str)] = &[
    (
        "config-example.json",
        include_str!("../../crates/turnstile-config/tests/data/config-example.json"),
    ),
    (
        "default_config.json",
        include_str!("../../crates/turnstile-config/src/default_config.json"),
    ),
    (
        "unix-socket.json",
        r#"{"version": 2, "workers": [{"type": "router", "transports": [
        {"type": "rawsocket", "endpoint": {"type": "unix", "path": "./sock/../router.sock"}}]}]}"#,
    ),
    (
        "permissions.json",
        r#"{"version": 2, "workers": [{"type": "router", "realms": [{"name": "r1",
        "options": {"uri_check": "strict", "enable_meta_api": false, "event_dispatching_chunk_size": 50},
        "roles": [{"name": "user", "permissions": [
            {"uri": "com.example.add"},
            {"uri": "com.example."},
            {"uri": "com.example.*"},
            {"uri": "com.*.update"},
            {"uri": "com..update", "match": "wildcard", "cache": false,
             "allow": {"call": true}, "disclose": {"caller": true}}
        ]}]}]}]}"#,
    ),
    (
        "stats.json",
        r#"{"version": 2, "workers": [{"type": "router", "realms": [{"name": "realm1", "stats":
        {"rated_message_size": 1073741824, "trigger_after_duration": 60,
         "trigger_after_rated_messages": 0, "trigger_on_join": false, "trigger_on_leave": true}}]}]}"#,
    ),
    (
        "auth.json",
        r#"{"version": 2, "workers": [{"type": "router",
        "realms": [{"name": "realm1", "roles": [{"name": "user", "permissions":
            [{"uri": "", "match": "prefix", "allow": {"call": true}}]}]}],
        "transports": [
            {"type": "web", "endpoint": {"type": "tcp", "port": 8080},
             "paths": {"ws": {"type": "websocket", "auth": {"anonymous": {"type": "static", "role": "guest"}}}}},
            {"type": "websocket", "endpoint": {"type": "tcp", "port": 8081},
             "auth": {"ticket": {"type": "static", "principals": {
                "joe": {"ticket": "secret!", "role": "user"},
                "ann": {"ticket": "t2", "role": "admin", "realm": "realm1"}}}}},
            {"type": "rawsocket", "endpoint": {"type": "tcp", "port": 8082},
             "auth": {"wampcra": {"type": "static", "users": {
                "peter": {"secret": "prq7+YkJ1/KlW1X0YczMHw==", "role": "user", "salt": "salt123",
                          "iterations": 100, "keylen": 16}}},
                      "cryptosign": {"type": "static", "principals": {"client1": {"authorized_keys":
                ["32B53E882E3DAAC180D7A5F6224D61B6401B43F901DB09F0E4D84CE4E4A2718B"],
                "role": "user", "realm": "realm1"}}}}}
        ]}]}"#,
    ),
    (
        "example.yaml",
        r#"
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
"#,
    ),
    (
        "anchors.yaml",
        "version: 2\nworkers:\n  - &w\n    type: router\n    realms: [{name: r1}]\n# a comment\n",
    ),
    (
        "unclosed.yaml",
        "version: 2\nworkers:\n  - type: router\n    realms: [\n",
    ),
    ("duplicate.yaml", "version: 2\nversion: 2\nworkers: []\n"),
];
