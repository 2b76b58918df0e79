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
//! - `rawsocket`: a client's handshake for each serializer and length, then frames (our own
//!   sample messages, PING, PONG, empty ones, one at the maximum, one over it, reserved bits
//!   and types); a router's replies (accepted, each refusal) then frames; each whole and in
//!   small pieces.
//! - `websocket_upgrade`: upgrade requests as browsers and WAMP clients send them (one or
//!   several `Sec-WebSocket-Protocol` fields, unknown subprotocols, odd spacing, non-ASCII),
//!   for endpoints accepting different serializers.
//! - `session`: scripted scenarios in the target's input format (pub/sub with and without
//!   acknowledge, retained events, RPC with progressive results, errors, timeouts, each cancel
//!   mode, `wamp.session.kill`, GOODBYE, disconnects, per-session limits, a bounded queue).

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
    rawsocket_seeds(&mut seeds);
    websocket_upgrade_seeds(&mut seeds);
    session_seeds(&mut seeds);
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

// ===== rawsocket =====

/// Streams for the `rawsocket` target: `[flags, split, stream...]` (see its module).
fn rawsocket_seeds(seeds: &mut Seeds) {
    use wamp_proto::rawsocket::{
        encode_frame, raw_frame_header, FrameType, HandshakeReply, HandshakeRequest, Refusal,
    };
    let mut frames = Vec::new();
    for msg in sample_messages().iter().take(6) {
        if let Ok(bytes) = Serializer::Json.encode(msg) {
            frames.extend(encode_frame(FrameType::Message, &bytes).unwrap());
        }
    }
    frames.extend(encode_frame(FrameType::Ping, b"ping?").unwrap());
    frames.extend(encode_frame(FrameType::Pong, b"").unwrap());
    frames.extend(encode_frame(FrameType::Message, b"").unwrap());
    let at_max = encode_frame(FrameType::Message, &[b'x'; 512]).unwrap();
    let over_max = raw_frame_header(0, 513).unwrap();
    let bad: [[u8; 4]; 3] = [[0x08, 0, 0, 0], [0x03, 0, 0, 1], [0xF9, 0, 0, 0]];

    let mut add = |name: &str, flags: u8, stream: &[u8]| {
        for split in [0u8, 1, 7, 200] {
            let data = [&[flags, split][..], stream].concat();
            seeds.add("rawsocket", name, &data);
        }
    };
    for ser in Serializer::ALL {
        for l in [0u8, 1, 7, 15] {
            let hello = HandshakeRequest::new(l, ser).encode();
            add("router-frames", l, &[&hello[..], &frames[..]].concat());
        }
    }
    let hello = HandshakeRequest::new(0, Serializer::Cbor).encode();
    add("router-at-max", 0, &[&hello[..], &at_max].concat());
    add("router-over-max", 0, &[&hello[..], &over_max[..]].concat());
    for b in bad {
        add("router-bad-header", 3, &[&hello[..], &b[..]].concat());
    }
    add(
        "router-partial",
        3,
        &[&hello[..], &frames[..frames.len() - 3]].concat(),
    );
    add("router-bad-magic", 0, b"GET / HTTP/1.1\r\n");
    add("router-reserved-octets", 0, &[0x7F, 0xF1, 0, 1]);
    for ser in Serializer::ALL {
        let reply = HandshakeReply::accept(9, ser);
        add(
            "client-frames",
            0x10 | 9,
            &[&reply[..], &frames[..]].concat(),
        );
    }
    for r in [
        Refusal::SerializerUnsupported,
        Refusal::MaxLengthUnacceptable,
        Refusal::ReservedBits,
        Refusal::ConnectionLimit,
    ] {
        add("client-refused", 0x10, &HandshakeReply::refuse(r));
    }
    add("client-refused-unknown", 0x10, &[0x7F, 0x90, 0, 0]);
    add("client-unknown-serializer", 0x10, &[0x7F, 0x17, 0, 0]);
}

// ===== websocket_upgrade =====

/// Header fields for the `websocket_upgrade` target: `[accepted, fields...]` (see its module).
fn websocket_upgrade_seeds(seeds: &mut Seeds) {
    let base = "Host: localhost:8080\nUpgrade: websocket\nConnection: Upgrade\n\
                Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\nSec-WebSocket-Version: 13\n\
                Origin: http://localhost:8080\nUser-Agent: Mozilla/5.0";
    let offers: &[&str] = &[
        "Sec-WebSocket-Protocol: wamp.2.json",
        "Sec-WebSocket-Protocol: wamp.2.cbor, wamp.2.msgpack, wamp.2.json",
        "Sec-WebSocket-Protocol: wamp.2.json.batched,wamp.2.json",
        "sec-websocket-protocol: graphql-ws\nSEC-WEBSOCKET-PROTOCOL:  wamp.2.msgpack ,",
        "Sec-WebSocket-Protocol: ,, ,\t",
        "Sec-WebSocket-Protocol: wamp.2.jsön, wamp.2.cbor",
        "Sec-WebSocket-Protocol: WAMP.2.JSON",
        "",
    ];
    for (i, offer) in offers.iter().enumerate() {
        for accepted in [0b001u8, 0b111, 0b110, 0b1011, 0] {
            let text = format!("{base}\n{offer}");
            let data = [&[accepted][..], text.as_bytes()].concat();
            seeds.add("websocket_upgrade", &format!("request-{i}"), &data);
        }
    }
    let lines = "wamp.2.cbor\nwamp.2.json, wamp.2.msgpack\n\x7fwamp.2.json";
    seeds.add(
        "websocket_upgrade",
        "protocol-lines",
        &[&[0x17u8][..], lines.as_bytes()].concat(),
    );
    let odd: &[u8] =
        b"X-Tag: 1\nx-tag: 2\nX-Bin: \xff\xfe\nno-colon\n:empty-name\nCookie: a=b; c=d";
    seeds.add(
        "websocket_upgrade",
        "odd-fields",
        &[&[0x07u8][..], odd].concat(),
    );
}

// ===== session =====

/// An operation of the `session` target's input, written in its byte format (see
/// `turnstile_fuzz::session`: one byte per choice).
#[derive(Clone, Copy)]
enum S {
    Hello(u8),
    Subscribe(u8, u8, u8),
    Unsubscribe(u8, u8),
    /// slot, topic, acknowledge, exclude_me, retain
    Publish(u8, u8, bool, bool, bool),
    /// slot, procedure, policy, invoke
    Register(u8, u8, u8, u8),
    Unregister(u8, u8),
    /// slot, procedure, meta procedure (index), timeout choice, receive_progress
    Call(u8, u8, Option<u8>, u8, bool),
    Yield(u8, u8, bool),
    Error(u8, u8),
    /// slot, pick, mode (0 default, 1 skip, 2 kill, 3 killnowait)
    Cancel(u8, u8, u8),
    Goodbye(u8),
    Disconnect(u8),
    Garbage(u8),
    /// choice among 1, 499, 500, 1000, 3000, 10000 ms
    Advance(u8),
}

impl S {
    fn bytes(self) -> Vec<u8> {
        let b = |x: bool| u8::from(x);
        match self {
            S::Hello(s) => vec![s, 0],
            S::Subscribe(s, topic, policy) => vec![s, 1, topic, policy],
            S::Unsubscribe(s, pick) => vec![s, 2, pick],
            // retain is ratio(1, 8): the byte 0 is true.
            S::Publish(s, topic, ack, ex, retain) => vec![s, 3, topic, b(ack), b(ex), b(!retain)],
            S::Register(s, p, policy, invoke) => vec![s, 5, p, policy, invoke],
            S::Unregister(s, pick) => vec![s, 6, pick],
            S::Call(s, p, meta, timeout, progress) => match meta {
                // meta is ratio(1, 6): the byte 0 is true.
                Some(m) => vec![s, 7, p, 0, m, timeout, b(progress)],
                None => vec![s, 7, p, 1, timeout, b(progress)],
            },
            // progress is ratio(1, 4): the byte 0 is true.
            S::Yield(s, pick, progress) => vec![s, 9, pick, b(!progress)],
            S::Error(s, pick) => vec![s, 11, pick],
            S::Cancel(s, pick, mode) => vec![s, 12, pick, mode],
            S::Goodbye(s) => vec![s, 13],
            // ratio(1, 2): the byte 0 is a disconnect.
            S::Disconnect(s) => vec![s, 14, 0],
            S::Garbage(s) => vec![s, 14, 1],
            S::Advance(choice) => vec![0, 15, choice],
        }
    }
}

/// The setup bytes: rated size (16/64/512), rated trigger (0/1/3/10), duration trigger
/// (0/1/5 s), trigger on join, per-session limits (1..=3 each, or the defaults), then per
/// connection its serializer (JSON/MessagePack/CBOR) and queue bound (none/400/2000 bytes).
fn session_setup(
    rated: u8,
    trigger: u8,
    duration: u8,
    limits: Option<[u8; 3]>,
    slots: &[(u8, u8)],
) -> Vec<u8> {
    let mut out = vec![rated, trigger, duration, 1];
    match limits {
        Some(l) => {
            out.push(1);
            out.extend(l);
        }
        None => out.push(0),
    }
    out.push(slots.len() as u8 - 2);
    for (ser, bound) in slots {
        // bound choices: [0, 0, 0, 400, 2000]
        out.extend([*ser, *bound]);
    }
    out
}

fn session_seeds(seeds: &mut Seeds) {
    use S::*;
    let scenarios: Vec<(&str, Vec<u8>, Vec<S>)> = vec![
        (
            "pubsub",
            session_setup(0, 1, 1, None, &[(0, 0), (1, 0)]),
            vec![
                Hello(0),
                Hello(1),
                Subscribe(1, 0, 0),
                Subscribe(1, 3, 1),
                Publish(0, 0, true, false, false),
                Publish(0, 1, false, false, true),
                Publish(1, 0, true, false, false),
                Unsubscribe(1, 0),
                Publish(0, 0, true, true, false),
                Subscribe(0, 1, 0),
                Advance(3),
                Goodbye(0),
                Disconnect(1),
            ],
        ),
        (
            "rpc",
            session_setup(1, 2, 2, None, &[(0, 0), (2, 0), (1, 0)]),
            vec![
                Hello(0),
                Hello(1),
                Hello(2),
                Register(1, 1, 0, 0),
                Register(2, 0, 1, 0),
                Call(0, 1, None, 0, true),
                Yield(1, 0, true),
                Yield(1, 0, false),
                Call(0, 0, None, 2, false),
                Advance(2),
                Call(0, 1, None, 0, false),
                Cancel(0, 0, 2),
                Error(1, 0),
                Call(0, 1, None, 0, false),
                Cancel(0, 0, 1),
                Call(0, 3, None, 0, false),
                Call(2, 0, Some(0), 0, false),
                Call(2, 0, Some(1), 0, false),
                Unregister(1, 0),
                Call(0, 1, None, 0, false),
                Disconnect(1),
                Goodbye(0),
                Hello(0),
            ],
        ),
        (
            "kill-and-timeouts",
            session_setup(2, 0, 0, None, &[(0, 0), (0, 0)]),
            vec![
                Hello(0),
                Hello(1),
                Register(1, 0, 0, 0),
                Call(0, 0, None, 3, false),
                Call(0, 0, Some(3), 0, false),
                Advance(4),
                Hello(1),
                Call(0, 0, None, 0, false),
                Goodbye(1),
                Advance(5),
                Garbage(0),
                Hello(0),
                Advance(5),
            ],
        ),
        (
            "limits-and-slow-consumer",
            session_setup(0, 3, 0, Some([0, 0, 0]), &[(2, 3), (0, 0), (1, 4), (0, 3)]),
            vec![
                Hello(0),
                Hello(1),
                Hello(2),
                Hello(3),
                Subscribe(0, 0, 0),
                Subscribe(0, 2, 0),
                Subscribe(3, 3, 1),
                Subscribe(2, 4, 0),
                Register(1, 0, 0, 1),
                Register(2, 0, 0, 1),
                Register(1, 1, 0, 1),
                Call(0, 0, None, 0, false),
                Call(0, 0, None, 0, false),
                Call(3, 0, None, 0, true),
                Publish(1, 0, false, false, false),
                Publish(1, 0, false, false, false),
                Publish(1, 0, false, false, false),
                Publish(2, 3, true, false, false),
                Advance(0),
                Disconnect(2),
                Yield(1, 0, false),
                Yield(1, 1, false),
                Goodbye(3),
            ],
        ),
    ];
    for (name, setup, ops) in scenarios {
        let mut data = setup;
        for op in ops {
            data.extend(op.bytes());
        }
        seeds.add("session", name, &data);
    }
    // Arbitrary bytes too: the format has no invalid input.
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    for n in [64usize, 256, 1024] {
        let data: Vec<u8> = (0..n)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state as u8
            })
            .collect();
        seeds.add("session", "random", &data);
    }
}
