//! Unit tests of the serializers: round trips, binary, integers, floats, shape errors, ids,
//! payload passthru, hostile input, and cross-checks against rmp-serde and ciborium.

use super::*;
use crate::message::code;
use crate::{dict, Dict, List, Value, MAX_ID};

const ALL: [Serializer; 3] = Serializer::ALL;

fn args() -> List {
    vec![
        Value::Null,
        true.into(),
        (-5).into(),
        Value::from(u64::MAX),
        1.5.into(),
        "héllo \"quoted\" \\ \u{1}".into(),
        Value::Bytes(vec![0, 1, 2, 255]),
        Value::List(vec![1.into(), Value::List(vec![])]),
        Value::Dict(dict! {"nested" => dict! {"x" => Value::Null}}),
    ]
}

fn kwargs() -> Dict {
    dict! {"a" => 1, "b" => "two", "bin" => vec![9u8, 8, 7], "" => Value::Null}
}

/// Every payload shape: none, args, empty args, args + kwargs.
fn payloads() -> Vec<(Option<List>, Option<Dict>)> {
    vec![
        (None, None),
        (Some(args()), None),
        (Some(vec![]), None),
        (Some(args()), Some(kwargs())),
        (Some(vec![]), Some(Dict::new())),
        (Some(vec![]), Some(kwargs())),
    ]
}

/// At least one message of every type, with every payload shape where the type has one.
fn all_messages() -> Vec<Message> {
    let d = dict! {"roles" => dict! {"caller" => Dict::new()}, "n" => 3};
    let mut v = vec![
        Message::Hello {
            realm: "realm1".into(),
            details: d.clone(),
        },
        Message::Welcome {
            session: MAX_ID,
            details: d.clone(),
        },
        Message::Challenge {
            authmethod: "wampcra".into(),
            extra: d.clone(),
        },
        Message::Authenticate {
            signature: "sig".into(),
            extra: Dict::new(),
        },
        Message::Goodbye {
            details: Dict::new(),
            reason: "wamp.close.normal".into(),
        },
        Message::Published {
            request: 1,
            publication: 2,
        },
        Message::Subscribe {
            request: 3,
            options: dict! {"match" => "prefix"},
            topic: "a.".into(),
        },
        Message::Subscribed {
            request: 3,
            subscription: 4,
        },
        Message::Unsubscribe {
            request: 5,
            subscription: 4,
        },
        Message::Unsubscribed {
            request: 5,
            details: None,
        },
        Message::Unsubscribed {
            request: 5,
            details: Some(dict! {"reason" => "x"}),
        },
        Message::Cancel {
            request: 6,
            options: dict! {"mode" => "kill"},
        },
        Message::Register {
            request: 7,
            options: Dict::new(),
            procedure: "p".into(),
        },
        Message::Registered {
            request: 7,
            registration: 8,
        },
        Message::Unregister {
            request: 9,
            registration: 8,
        },
        Message::Unregistered {
            request: 9,
            details: None,
        },
        Message::Unregistered {
            request: 9,
            details: Some(Dict::new()),
        },
        Message::Interrupt {
            request: 10,
            options: Dict::new(),
        },
    ];
    for (args, kwargs) in payloads() {
        v.push(Message::Abort {
            details: d.clone(),
            reason: "wamp.error.no_such_realm".into(),
            args: args.clone(),
            kwargs: kwargs.clone(),
        });
        v.push(Message::Error {
            request_type: code::CALL,
            request: 11,
            details: Dict::new(),
            error: "wamp.error.runtime_error".into(),
            args: args.clone(),
            kwargs: kwargs.clone(),
        });
        v.push(Message::Publish {
            request: 12,
            options: d.clone(),
            topic: "com.topic".into(),
            args: args.clone(),
            kwargs: kwargs.clone(),
        });
        v.push(Message::Event {
            subscription: 13,
            publication: MAX_ID,
            details: Dict::new(),
            args: args.clone(),
            kwargs: kwargs.clone(),
        });
        v.push(Message::Call {
            request: 14,
            options: Dict::new(),
            procedure: "com.proc".into(),
            args: args.clone(),
            kwargs: kwargs.clone(),
        });
        v.push(Message::Result {
            request: 14,
            details: dict! {"progress" => true},
            args: args.clone(),
            kwargs: kwargs.clone(),
        });
        v.push(Message::Invocation {
            request: 15,
            registration: 8,
            details: Dict::new(),
            args: args.clone(),
            kwargs: kwargs.clone(),
        });
        v.push(Message::Yield {
            request: 15,
            options: Dict::new(),
            args,
            kwargs,
        });
    }
    v
}

/// `v` in `s`'s format, written by an independent encoder (serde_json, rmp-serde, ciborium).
fn foreign(s: Serializer, v: &Value) -> Vec<u8> {
    match s {
        Serializer::Json => serde_json::to_vec(v).unwrap(),
        Serializer::MsgPack => rmp_serde::to_vec(v).unwrap(),
        Serializer::Cbor => {
            let mut out = Vec::new();
            ciborium::into_writer(v, &mut out).unwrap();
            out
        }
    }
}

fn json(text: &str) -> Value {
    Serializer::Json.decode_value(text.as_bytes()).unwrap()
}

/// The shape error of the JSON text `text` (transcoded to every serializer: same text for all).
fn shape_err(text: &str) -> String {
    let v = json(text);
    let mut texts = ALL.map(|s| match s.decode(&foreign(s, &v)) {
        Err(DecodeError::Shape(t)) => t,
        other => panic!("{text} as {s:?}: expected a shape error, got {other:?}"),
    });
    texts.sort();
    assert_eq!(
        texts[0], texts[2],
        "{text}: the same error for all serializers"
    );
    texts[0].clone()
}

fn ok(text: &str) -> Message {
    let v = json(text);
    let msgs = ALL.map(|s| {
        s.decode(&foreign(s, &v))
            .unwrap_or_else(|e| panic!("{text}: {e}"))
    });
    assert!(msgs.iter().all(|m| m == &msgs[0]));
    msgs[0].clone()
}

#[test]
fn every_message_round_trips_in_every_serializer() {
    let msgs = all_messages();
    let mut codes: Vec<u64> = msgs.iter().map(Message::code).collect();
    codes.sort();
    codes.dedup();
    assert_eq!(codes.len(), 24, "every message type is covered");
    for m in &msgs {
        for s in ALL {
            let bytes = s.encode(m).unwrap_or_else(|e| panic!("{m:?} {s:?}: {e}"));
            let back = s
                .decode(&bytes)
                .unwrap_or_else(|e| panic!("{m:?} {s:?}: {e}"));
            if let Some(a) = with_empty_args(m.clone()) {
                // kwargs without args: written with an empty args list, read back as such.
                assert_eq!(back, a, "{s:?}");
            } else {
                assert_eq!(&back, m, "{s:?}");
            }
        }
    }
}

/// For a message with kwargs but no args: the same message with `args: Some(vec![])`.
fn with_empty_args(m: Message) -> Option<Message> {
    {
        let fix = |args: &mut Option<List>, kwargs: &Option<Dict>| {
            if args.is_none() && kwargs.is_some() {
                *args = Some(vec![]);
                true
            } else {
                false
            }
        };
        let mut m = m;
        let changed = match &mut m {
            Message::Abort { args, kwargs, .. }
            | Message::Error { args, kwargs, .. }
            | Message::Publish { args, kwargs, .. }
            | Message::Event { args, kwargs, .. }
            | Message::Call { args, kwargs, .. }
            | Message::Result { args, kwargs, .. }
            | Message::Invocation { args, kwargs, .. }
            | Message::Yield { args, kwargs, .. } => fix(args, kwargs),
            _ => false,
        };
        changed.then_some(m)
    }
}

#[test]
fn kwargs_without_args_writes_an_empty_args_list() {
    let m = Message::Yield {
        request: 1,
        options: Dict::new(),
        args: None,
        kwargs: Some(kwargs()),
    };
    let text = String::from_utf8(Serializer::Json.encode(&m).unwrap()).unwrap();
    assert_eq!(
        text,
        r#"[70,1,{},[],{"":null,"a":1,"b":"two","bin":"\u0000CQgH"}]"#
    );
    for s in ALL {
        let back = s.decode(&s.encode(&m).unwrap()).unwrap();
        assert_eq!(back, with_empty_args(m.clone()).unwrap());
    }
}

#[test]
fn empty_args_and_kwargs_are_kept_as_received() {
    assert_eq!(
        ok(r#"[50, 1, {}]"#),
        Message::Result {
            request: 1,
            details: Dict::new(),
            args: None,
            kwargs: None
        }
    );
    assert_eq!(
        ok(r#"[50, 1, {}, []]"#),
        Message::Result {
            request: 1,
            details: Dict::new(),
            args: Some(vec![]),
            kwargs: None
        }
    );
    let m = ok(r#"[50, 1, {}, [], {}]"#);
    assert_eq!(
        m,
        Message::Result {
            request: 1,
            details: Dict::new(),
            args: Some(vec![]),
            kwargs: Some(Dict::new())
        }
    );
    assert_eq!(Serializer::Json.encode(&m).unwrap(), b"[50,1,{},[],{}]");
}

#[test]
fn json_encoding_is_compact() {
    let m = Message::Publish {
        request: 239714735,
        options: Dict::new(),
        topic: "com.myapp.mytopic1".into(),
        args: Some(vec!["Hello, world!".into()]),
        kwargs: None,
    };
    assert_eq!(
        Serializer::Json.encode(&m).unwrap(),
        br#"[16,239714735,{},"com.myapp.mytopic1",["Hello, world!"]]"#
    );
    let m = Message::Unsubscribed {
        request: 85346237,
        details: None,
    };
    assert_eq!(Serializer::Json.encode(&m).unwrap(), b"[35,85346237]");
    assert_eq!(
        Serializer::MsgPack.encode(&m).unwrap(),
        [0x92, 0x23, 0xce, 0x05, 0x16, 0x47, 0xbd]
    );
    assert_eq!(
        Serializer::Cbor.encode(&m).unwrap(),
        [0x82, 0x18, 0x23, 0x1a, 0x05, 0x16, 0x47, 0xbd]
    );
}

fn event_with(args: List) -> Message {
    Message::Event {
        subscription: 1,
        publication: 2,
        details: Dict::new(),
        args: Some(args),
        kwargs: None,
    }
}

fn first_arg(m: &Message) -> &Value {
    match m {
        Message::Event { args: Some(a), .. } => &a[0],
        other => panic!("{other:?}"),
    }
}

#[test]
fn json_binary_is_nul_and_base64() {
    let m = event_with(vec![
        Value::Bytes(vec![1, 2, 3]),
        Value::Bytes(vec![]),
        vec![1u8, 2].into(),
    ]);
    let text = Serializer::Json.encode(&m).unwrap();
    assert_eq!(text, br#"[36,1,2,{},["\u0000AQID","\u0000","\u0000AQI="]]"#);
    assert_eq!(Serializer::Json.decode(&text).unwrap(), m);
    // Decoding also accepts missing padding; a NUL-prefixed string with bad base64 is an error.
    let m2 = Serializer::Json
        .decode(br#"[36,1,2,{},["\u0000AQI"]]"#)
        .unwrap();
    assert_eq!(first_arg(&m2), &Value::Bytes(vec![1, 2]));
    let err = Serializer::Json
        .decode(br#"[36,1,2,{},["\u0000!!"]]"#)
        .unwrap_err();
    assert!(
        matches!(
            err,
            DecodeError::Syntax {
                serializer: "JSON",
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("base64"), "{err}");
    // A NUL in the middle, or a plain string, stays a string.
    let m3 = Serializer::Json
        .decode(br#"[36,1,2,{},["a\u0000b"]]"#)
        .unwrap();
    assert_eq!(first_arg(&m3), &Value::from("a\0b"));
    // Binary inside dicts and nested lists too.
    let m4 = Serializer::Json
        .decode(br#"[36,1,2,{"k":["\u0000/w=="]}]"#)
        .unwrap();
    let Message::Event { details, .. } = m4 else {
        panic!()
    };
    assert_eq!(details["k"], Value::List(vec![Value::Bytes(vec![255])]));
}

#[test]
fn msgpack_and_cbor_binary_is_native() {
    let m = event_with(vec![Value::Bytes(vec![1, 2, 3]), Value::from("\0AQID")]);
    let mp = Serializer::MsgPack.encode(&m).unwrap();
    assert!(
        mp.ends_with(&[0x92, 0xc4, 3, 1, 2, 3, 0xa5, 0, b'A', b'Q', b'I', b'D']),
        "{mp:x?}"
    );
    let cb = Serializer::Cbor.encode(&m).unwrap();
    assert!(
        cb.ends_with(&[0x82, 0x43, 1, 2, 3, 0x65, 0, b'A', b'Q', b'I', b'D']),
        "{cb:x?}"
    );
    // A string starting with NUL stays a string in the binary formats.
    for (s, b) in [(Serializer::MsgPack, mp), (Serializer::Cbor, cb)] {
        assert_eq!(s.decode(&b).unwrap(), m);
    }
}

#[test]
fn big_integers_are_normalized() {
    let ints: List = vec![
        Value::Int(i64::MIN),
        Value::Int(-1),
        Value::Int(0),
        Value::Int(i64::MAX),
        Value::UInt(i64::MAX as u64 + 1),
        Value::UInt(u64::MAX),
        Value::Int(-33),
        Value::Int(-129),
        Value::Int(-32769),
        Value::Int(-2147483649),
        Value::Int(255),
        Value::Int(65536),
        Value::Int(4294967296),
    ];
    let m = event_with(ints.clone());
    for s in ALL {
        assert_eq!(s.decode(&s.encode(&m).unwrap()).unwrap(), m, "{s:?}");
        // The same from an independent encoder.
        let v = Value::List(vec![
            36.into(),
            1.into(),
            2.into(),
            Dict::new().into(),
            ints.clone().into(),
        ]);
        assert_eq!(s.decode(&foreign(s, &v)).unwrap(), m, "{s:?} foreign");
    }
    let text = Serializer::Json.encode(&m).unwrap();
    assert_eq!(
        std::str::from_utf8(&text).unwrap(),
        "[36,1,2,{},[-9223372036854775808,-1,0,9223372036854775807,9223372036854775808,\
         18446744073709551615,-33,-129,-32769,-2147483649,255,65536,4294967296]]"
    );
    // Wide encodings of small values decode as Int.
    let mp = [0x95, 0x24, 1, 2, 0x80, 0x91, 0xcf, 0, 0, 0, 0, 0, 0, 0, 5];
    assert_eq!(
        first_arg(&Serializer::MsgPack.decode(&mp).unwrap()),
        &Value::Int(5)
    );
    let cb = [
        0x85, 0x18, 0x24, 1, 2, 0xa0, 0x81, 0x1b, 0, 0, 0, 0, 0, 0, 0, 5,
    ];
    assert_eq!(
        first_arg(&Serializer::Cbor.decode(&cb).unwrap()),
        &Value::Int(5)
    );
    // CBOR negative integers below -2^63 cannot be held.
    let cb = [
        0x85, 0x18, 0x24, 1, 2, 0xa0, 0x81, 0x3b, 0x80, 0, 0, 0, 0, 0, 0, 0,
    ];
    let err = Serializer::Cbor.decode(&cb).unwrap_err();
    assert!(err.to_string().contains("out of range"), "{err}");
}

#[test]
fn floats() {
    let m = Serializer::Json
        .decode(b"[36,1,2,{},[1.0,1e3,-0.5,1,2.5E-1]]")
        .unwrap();
    let Message::Event { args: Some(a), .. } = &m else {
        panic!()
    };
    assert_eq!(
        a,
        &vec![
            Value::Float(1.0),
            Value::Float(1000.0),
            Value::Float(-0.5),
            Value::Int(1),
            Value::Float(0.25)
        ]
    );
    for s in ALL {
        assert_eq!(s.decode(&s.encode(&m).unwrap()).unwrap(), m, "{s:?}");
    }
    for f in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
        let m = event_with(vec![Value::Float(f)]);
        let err = Serializer::Json.encode(&m).unwrap_err();
        assert_eq!((err.message, err.serializer), ("EVENT", "JSON"));
        assert!(
            err.to_string().starts_with("cannot encode EVENT as JSON: "),
            "{err}"
        );
        // A failed encode_into leaves the buffer as it was.
        let mut buf = b"prefix".to_vec();
        assert!(Serializer::Json.encode_into(&m, &mut buf).is_err());
        assert_eq!(buf, b"prefix");
        for s in [Serializer::MsgPack, Serializer::Cbor] {
            let back = s.decode(&s.encode(&m).unwrap()).unwrap();
            let got = first_arg(&back).as_f64().unwrap();
            assert!(
                got.is_nan() == f.is_nan() && (f.is_nan() || got == f),
                "{s:?} {f}"
            );
        }
    }
    // MessagePack float 32 and CBOR half and single floats.
    let mp = [0x95, 0x24, 1, 2, 0x80, 0x91, 0xca, 0x3f, 0xc0, 0, 0];
    assert_eq!(
        first_arg(&Serializer::MsgPack.decode(&mp).unwrap()),
        &Value::Float(1.5)
    );
    for (bytes, f) in [
        (vec![0xf9, 0x3e, 0x00], 1.5),
        (vec![0xf9, 0xc4, 0x00], -4.0),
        (vec![0xf9, 0x00, 0x01], 5.960464477539063e-8),
        (vec![0xf9, 0x7c, 0x00], f64::INFINITY),
        (vec![0xfa, 0x3f, 0xc0, 0, 0], 1.5),
    ] {
        let mut cb = vec![0x85, 0x18, 0x24, 1, 2, 0xa0, 0x81];
        cb.extend(bytes);
        assert_eq!(
            first_arg(&Serializer::Cbor.decode(&cb).unwrap()),
            &Value::Float(f)
        );
    }
}

#[test]
fn encode_into_appends() {
    let m = Message::Published {
        request: 1,
        publication: 2,
    };
    for s in ALL {
        let mut buf = vec![0xaa];
        s.encode_into(&m, &mut buf).unwrap();
        assert_eq!(buf[0], 0xaa);
        assert_eq!(buf[1..], s.encode(&m).unwrap()[..]);
    }
}

#[test]
fn shape_errors() {
    let cases = [
        ("{}", "message must be a non-empty list, found dict"),
        ("\"x\"", "message must be a non-empty list, found string"),
        (
            "[]",
            "message must be a non-empty list, found an empty list",
        ),
        (
            r#"["x"]"#,
            "message type (element 0) must be an integer, found string",
        ),
        (
            "[1.0]",
            "message type (element 0) must be an integer, found float",
        ),
        ("[99]", "unknown message type 99"),
        ("[-1]", "unknown message type -1"),
        (
            "[18446744073709551615]",
            "unknown message type 18446744073709551615",
        ),
        (r#"[32, 1, {}]"#, "SUBSCRIBE: expected 4 elements, found 3"),
        (
            r#"[32, 1, {}, "t", []]"#,
            "SUBSCRIBE: expected 4 elements, found 5",
        ),
        (
            r#"[16, 1, {}]"#,
            "PUBLISH: expected 4 to 6 elements, found 3",
        ),
        (
            r#"[16, 1, {}, "t", [], {}, 1]"#,
            "PUBLISH: expected 4 to 6 elements, found 7",
        ),
        (r#"[35]"#, "UNSUBSCRIBED: expected 2 or 3 elements, found 1"),
        (
            r#"[35, 1, {}, 1]"#,
            "UNSUBSCRIBED: expected 2 or 3 elements, found 4",
        ),
        (
            r#"[67, 1, {}, 1]"#,
            "UNREGISTERED: expected 2 or 3 elements, found 4",
        ),
        (
            r#"[6, {}, "r", []]"#,
            "GOODBYE: expected 3 elements, found 4",
        ),
        (
            r#"[16, 1, {}, 5]"#,
            "PUBLISH: element 3 (Topic) must be a string, found integer",
        ),
        (
            r#"[16, 1, [], "t"]"#,
            "PUBLISH: element 2 (Options) must be a dict, found list",
        ),
        (
            r#"[16, 1, {}, "t", {}]"#,
            "PUBLISH: element 4 (Args) must be a list, found dict",
        ),
        (
            r#"[16, 1, {}, "t", [], []]"#,
            "PUBLISH: element 5 (KwArgs) must be a dict, found list",
        ),
        (
            r#"[16, 1, {}, "t", null, {}]"#,
            "PUBLISH: element 4 (Args) must be a list, found null",
        ),
        (
            r#"[16, "1", {}, "t"]"#,
            "PUBLISH: element 1 (Request) must be an id (an integer in [1, 2^53]), found string",
        ),
        (
            r#"[16, 1.0, {}, "t"]"#,
            "PUBLISH: element 1 (Request) must be an id (an integer in [1, 2^53]), found float",
        ),
        (
            r#"[1, 5, {}]"#,
            "HELLO: element 1 (Realm) must be a string, found integer",
        ),
        (
            r#"[1, "r", null]"#,
            "HELLO: element 2 (Details) must be a dict, found null",
        ),
        (
            r#"[3, {}, true]"#,
            "ABORT: element 2 (Reason) must be a string, found boolean",
        ),
        (
            r#"[4, {}, {}]"#,
            "CHALLENGE: element 1 (AuthMethod) must be a string, found dict",
        ),
        (
            r#"[5, "s", []]"#,
            "AUTHENTICATE: element 2 (Extra) must be a dict, found list",
        ),
        (
            r#"[8, "x", 1, {}, "e"]"#,
            "ERROR: element 1 (REQUEST.Type) must be a non-negative integer, found string",
        ),
        (
            r#"[8, -1, 1, {}, "e"]"#,
            "ERROR: element 1 (REQUEST.Type) must be a non-negative integer, found -1",
        ),
        (
            r#"[8, 48, 1, {}, 7]"#,
            "ERROR: element 4 (Error) must be a string, found integer",
        ),
        (
            r#"[35, 1, []]"#,
            "UNSUBSCRIBED: element 2 (Details) must be a dict, found list",
        ),
        (
            r#"[67, 1, "x"]"#,
            "UNREGISTERED: element 2 (Details) must be a dict, found string",
        ),
        (
            r#"[36, 1, 2, []]"#,
            "EVENT: element 3 (Details) must be a dict, found list",
        ),
        (
            r#"[48, 1, {}, ["p"]]"#,
            "CALL: element 3 (Procedure) must be a string, found list",
        ),
        (
            r#"[64, 1, {}, 1]"#,
            "REGISTER: element 3 (Procedure) must be a string, found integer",
        ),
        (
            r#"[70, 1, {}, {}]"#,
            "YIELD: element 3 (Args) must be a list, found dict",
        ),
        (
            r#"[50, 1, {}, [], 1]"#,
            "RESULT: element 4 (KwArgs) must be a dict, found integer",
        ),
        (
            r#"[3, {}, "r", "payload"]"#,
            "ABORT: element 3 (Args) must be a list, found string",
        ),
        (
            r#"[16, 1, {}, "t", "payload"]"#,
            "PUBLISH: element 4 (Args) must be a list, found string (a passthru payload needs \
             ppt_scheme or enc_algo in Options/Details)",
        ),
    ];
    for (text, want) in cases {
        assert_eq!(shape_err(text), want, "{text}");
    }
    // Valid edge shapes.
    ok(r#"[8, 0, 1, {}, "e"]"#);
    ok(r#"[35, 1, {"reason": "revoked"}]"#);
    ok(r#"[67, 1]"#);
}

#[test]
fn shape_error_display_is_the_text() {
    let err = Serializer::Json.decode(br#"[32, 1, {}]"#).unwrap_err();
    assert_eq!(err.to_string(), "SUBSCRIBE: expected 4 elements, found 3");
    let err = Serializer::Json.decode(b"[32, 1,").unwrap_err();
    assert!(matches!(
        err,
        DecodeError::Syntax {
            serializer: "JSON",
            ..
        }
    ));
    assert!(err.to_string().starts_with("invalid JSON: "), "{err}");
    let err = Serializer::Json.decode(b"[67, 1] x").unwrap_err();
    assert!(
        err.to_string()
            .starts_with("invalid JSON: trailing characters"),
        "{err}"
    );
    for s in [Serializer::MsgPack, Serializer::Cbor] {
        let mut b = s
            .encode(&Message::Unregistered {
                request: 1,
                details: None,
            })
            .unwrap();
        b.push(0);
        let err = s.decode(&b).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "invalid {}: 1 trailing bytes after the message",
                s.display_name()
            )
        );
    }
}

#[test]
fn id_range() {
    // (template with {} where an id goes, name of the element)
    let templates = [
        ("[2, {}, {{}}]", "WELCOME: element 1 (Session)"),
        (
            r#"[8, 48, {}, {{}}, "e"]"#,
            "ERROR: element 2 (REQUEST.Request)",
        ),
        (r#"[16, {}, {{}}, "t"]"#, "PUBLISH: element 1 (Request)"),
        ("[17, {}, 1]", "PUBLISHED: element 1 (PUBLISH.Request)"),
        ("[17, 1, {}]", "PUBLISHED: element 2 (Publication)"),
        (r#"[32, {}, {{}}, "t"]"#, "SUBSCRIBE: element 1 (Request)"),
        ("[33, 1, {}]", "SUBSCRIBED: element 2 (Subscription)"),
        (
            "[34, 1, {}]",
            "UNSUBSCRIBE: element 2 (SUBSCRIBED.Subscription)",
        ),
        ("[35, {}]", "UNSUBSCRIBED: element 1 (UNSUBSCRIBE.Request)"),
        (
            "[36, {}, 1, {{}}]",
            "EVENT: element 1 (SUBSCRIBED.Subscription)",
        ),
        (
            "[36, 1, {}, {{}}]",
            "EVENT: element 2 (PUBLISHED.Publication)",
        ),
        (r#"[48, {}, {{}}, "p"]"#, "CALL: element 1 (Request)"),
        ("[49, {}, {{}}]", "CANCEL: element 1 (CALL.Request)"),
        ("[50, {}, {{}}]", "RESULT: element 1 (CALL.Request)"),
        (r#"[64, {}, {{}}, "p"]"#, "REGISTER: element 1 (Request)"),
        ("[65, 1, {}]", "REGISTERED: element 2 (Registration)"),
        (
            "[66, 1, {}]",
            "UNREGISTER: element 2 (REGISTERED.Registration)",
        ),
        ("[67, {}]", "UNREGISTERED: element 1 (UNREGISTER.Request)"),
        (
            "[68, 1, {}, {{}}]",
            "INVOCATION: element 2 (REGISTERED.Registration)",
        ),
        (
            "[69, {}, {{}}]",
            "INTERRUPT: element 1 (INVOCATION.Request)",
        ),
        ("[70, {}, {{}}]", "YIELD: element 1 (INVOCATION.Request)"),
    ];
    for (template, element) in templates {
        let with = |id: &str| template.replacen("{}", id, 1).replace("{{}}", "{}");
        ok(&with("1"));
        ok(&with("9007199254740992")); // 2^53
        for bad in ["0", "9007199254740993", "-1", "18446744073709551615"] {
            assert_eq!(
                shape_err(&with(bad)),
                format!("{element} must be an id (an integer in [1, 2^53]), found {bad}"),
            );
        }
    }
}

#[test]
fn non_string_dict_keys_are_rejected() {
    // {1: 2} as Options, in MessagePack and CBOR.
    let mp = [0x94, 0x20, 0x01, 0x81, 0x01, 0x02, 0xa1, b't'];
    let cb = [0x84, 0x18, 0x20, 0x01, 0xa1, 0x01, 0x02, 0x61, b't'];
    for (s, b) in [(Serializer::MsgPack, &mp[..]), (Serializer::Cbor, &cb[..])] {
        let err = s.decode(b).unwrap_err();
        assert_eq!(
            err,
            DecodeError::Shape("dict keys must be strings, found a integer key".into())
        );
    }
    // A binary key.
    let mp = [0x94, 0x20, 0x01, 0x81, 0xc4, 0x01, 0x61, 0x02, 0xa1, b't'];
    assert!(Serializer::MsgPack
        .decode(&mp)
        .unwrap_err()
        .to_string()
        .contains("binary key"));
}

#[test]
fn payload_passthru() {
    for key in ["ppt_scheme", "enc_algo"] {
        let m = Message::Publish {
            request: 1,
            options: dict! {key => "x"},
            topic: "t".into(),
            args: Some(vec![Value::Bytes(vec![1, 2, 3])]),
            kwargs: None,
        };
        let text = String::from_utf8(Serializer::Json.encode(&m).unwrap()).unwrap();
        assert_eq!(text, format!(r#"[16,1,{{"{key}":"x"}},"t","\u0000AQID"]"#));
        let mp = Serializer::MsgPack.encode(&m).unwrap();
        assert!(mp.ends_with(&[0xa1, b't', 0xc4, 3, 1, 2, 3]), "{mp:x?}");
        let cb = Serializer::Cbor.encode(&m).unwrap();
        assert!(cb.ends_with(&[0x61, b't', 0x43, 1, 2, 3]), "{cb:x?}");
        for s in ALL {
            assert_eq!(s.decode(&s.encode(&m).unwrap()).unwrap(), m, "{s:?}");
        }
        // A string payload (accepted by Autobahn) stays a bare string.
        let m = ok(&format!(r#"[36, 1, 2, {{"{key}": "x"}}, "a1b2"]"#));
        assert_eq!(first_arg(&m), &Value::from("a1b2"));
        assert_eq!(
            Serializer::Json.encode(&m).unwrap(),
            format!(r#"[36,1,2,{{"{key}":"x"}},"a1b2"]"#).into_bytes()
        );
        // Nothing may follow the payload.
        assert_eq!(
            shape_err(&format!(r#"[48, 1, {{"{key}": "x"}}, "p", "a1b2", {{}}]"#)),
            "CALL: element 5 is not allowed after a passthru payload"
        );
        // Passthru messages may still carry ordinary args (and no payload).
        ok(&format!(r#"[70, 1, {{"{key}": "x"}}, [1, 2]]"#));
        ok(&format!(r#"[70, 1, {{"{key}": "x"}}]"#));
    }
    // Without the passthru key, a single binary argument is an ordinary args list.
    let m = event_with(vec![Value::Bytes(vec![1])]);
    assert_eq!(
        Serializer::Json.encode(&m).unwrap(),
        br#"[36,1,2,{},["\u0000AQ=="]]"#
    );
}

#[test]
fn nesting_is_limited() {
    fn nested(open: u8, depth: usize, leaf: u8) -> Vec<u8> {
        // [36, 1, 2, {}, [[[...]]]]
        let mut v = vec![0x95, 36, 1, 2];
        v.push(if open == 0x91 { 0x80 } else { 0xa0 });
        v.extend(std::iter::repeat_n(open, depth));
        v.push(leaf);
        v
    }
    for (s, open, leaf) in [
        (Serializer::MsgPack, 0x91, 0xc0),
        (Serializer::Cbor, 0x81, 0xf6),
    ] {
        let mut b = nested(open, 100, leaf);
        if s == Serializer::Cbor {
            b[0] = 0x85;
            b[1] = 0x18;
            b.insert(2, 36);
        }
        assert!(s.decode(&b).is_ok(), "{s:?} depth 100");
        let mut b = nested(open, 100_000, leaf);
        if s == Serializer::Cbor {
            b[0] = 0x85;
            b[1] = 0x18;
            b.insert(2, 36);
        }
        let err = s.decode(&b).unwrap_err();
        assert!(
            err.to_string().contains("nesting deeper than 128"),
            "{s:?}: {err}"
        );
    }
    let deep = format!(
        "[36,1,2,{{}},{}1{}]",
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    let err = Serializer::Json.decode(deep.as_bytes()).unwrap_err();
    assert!(err.to_string().contains("recursion limit"), "{err}");
}

#[test]
fn truncated_and_hostile_input_fails_cleanly() {
    let m = Message::Call {
        request: 14,
        options: dict! {"timeout" => 1000, "x" => 1.5},
        procedure: "com.proc".into(),
        args: Some(args()),
        kwargs: Some(kwargs()),
    };
    for s in ALL {
        let b = s.encode(&m).unwrap();
        for n in 0..b.len() {
            assert!(s.decode(&b[..n]).is_err(), "{s:?} prefix {n}");
        }
    }
    // Huge announced lengths with no data: an error, not a huge allocation.
    for b in [
        &[0xdd, 0xff, 0xff, 0xff, 0xff][..],
        &[0xdf, 0xff, 0xff, 0xff, 0xff],
        &[0xdb, 0xff, 0xff, 0xff, 0xff],
        &[0xc6, 0xff, 0xff, 0xff, 0xff],
    ] {
        let err = Serializer::MsgPack.decode(b).unwrap_err();
        assert!(err.to_string().contains("unexpected end of data"), "{err}");
    }
    for b in [
        &[0x9b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff][..],
        &[0x5b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
        &[0xbb, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
    ] {
        assert!(Serializer::Cbor.decode(b).is_err());
    }
    // Invalid UTF-8, reserved and unsupported bytes.
    assert!(Serializer::MsgPack
        .decode(&[0x92, 0x43, 0xa1, 0xff])
        .unwrap_err()
        .to_string()
        .contains("UTF-8"));
    assert!(Serializer::Cbor
        .decode(&[0x82, 0x18, 0x43, 0x61, 0xff])
        .unwrap_err()
        .to_string()
        .contains("UTF-8"));
    assert!(Serializer::MsgPack.decode(&[0xc1]).is_err());
    assert!(Serializer::MsgPack
        .decode(&[0xd4, 0x01, 0x00])
        .unwrap_err()
        .to_string()
        .contains("extension"));
    assert!(Serializer::Cbor
        .decode(&[0x1c])
        .unwrap_err()
        .to_string()
        .contains("reserved"));
    assert!(Serializer::Cbor
        .decode(&[0xff])
        .unwrap_err()
        .to_string()
        .contains("break"));
    assert!(Serializer::Cbor
        .decode(&[0xc2, 0x41, 0x01])
        .unwrap_err()
        .to_string()
        .contains("bignum"));
    assert!(Serializer::Cbor
        .decode(&[0xf8, 0x20])
        .unwrap_err()
        .to_string()
        .contains("simple"));
    assert!(Serializer::Json.decode(b"[1, \"\\udc00\", {}]").is_err());
}

#[test]
fn cbor_indefinite_lengths_tags_and_undefined() {
    // 55799([_ 67, 1, {_ "a": (_ h'01', h'02'), "b": undefined}]) with a chunked text... as
    // UNREGISTERED [67, 1, {"a": h'0102', "b": null, "c": "xy"}].
    let b = [
        0xd9, 0xd9, 0xf7, // tag 55799 (self-described CBOR)
        0x9f, 0x18, 0x43, 0x01, // [_ 67, 1,
        0xbf, // {_
        0x61, b'a', 0x5f, 0x41, 0x01, 0x41, 0x02, 0xff, // "a": (_ h'01', h'02')
        0x61, b'b', 0xf7, // "b": undefined
        0x61, b'c', 0x7f, 0x61, b'x', 0x61, b'y', 0xff, // "c": (_ "x", "y")
        0xff, 0xff,
    ];
    assert_eq!(
        Serializer::Cbor.decode(&b).unwrap(),
        Message::Unregistered {
            request: 1,
            details: Some(dict! {"a" => vec![1u8, 2], "b" => Value::Null, "c" => "xy"}),
        }
    );
    // A chunk of the wrong type.
    assert!(Serializer::Cbor.decode(&[0x5f, 0x61, b'x', 0xff]).is_err());
}

#[test]
fn cross_check_with_rmp_serde_and_ciborium() {
    for m in all_messages() {
        let as_value = Serializer::Json
            .decode_value(&Serializer::Json.encode(&m).unwrap())
            .unwrap();
        let mp = Serializer::MsgPack.encode(&m).unwrap();
        assert_eq!(
            rmp_serde::from_slice::<Value>(&mp).unwrap(),
            as_value,
            "{m:?}"
        );
        assert_eq!(
            Serializer::MsgPack
                .decode(&foreign(Serializer::MsgPack, &as_value))
                .unwrap(),
            Serializer::MsgPack.decode(&mp).unwrap()
        );
        let cb = Serializer::Cbor.encode(&m).unwrap();
        assert_eq!(
            ciborium::from_reader::<Value, _>(&cb[..]).unwrap(),
            as_value,
            "{m:?}"
        );
        assert_eq!(
            Serializer::Cbor
                .decode(&foreign(Serializer::Cbor, &as_value))
                .unwrap(),
            Serializer::Cbor.decode(&cb).unwrap()
        );
    }
}

#[test]
fn value_serde_impls() {
    let v = Value::List(vec![
        Value::Bytes(vec![1, 2, 3]),
        "s".into(),
        Value::UInt(u64::MAX),
    ]);
    let text = serde_json::to_string(&v).unwrap();
    assert_eq!(text, r#"["\u0000AQID","s",18446744073709551615]"#);
    assert_eq!(serde_json::from_str::<Value>(&text).unwrap(), v);
    assert!(serde_json::to_string(&Value::Float(f64::NAN)).is_err());
    let mp = rmp_serde::to_vec(&v).unwrap();
    assert_eq!(rmp_serde::from_slice::<Value>(&mp).unwrap(), v);
    assert_eq!(Serializer::MsgPack.decode_value(&mp).unwrap(), v);
}

/// A float read from JSON is the float nearest to its text (correctly rounded, as Python's
/// `float()` reads it), so a JSON publisher's float reaches MessagePack and CBOR subscribers
/// unchanged and survives a JSON round trip (fuzz finding F1, docs/fuzzing.md).
#[test]
fn json_floats_are_read_correctly_rounded() {
    // Python: float('9.09909007199244e51').hex() == '0x1.851d99e3a75b0p+172'
    let nearest = f64::from_bits(0x4AB8_51D9_9E3A_75B0);
    for text in [
        "9.09909007199244e51",
        "9099090071992440719925474099200719924407199254740992",
    ] {
        let Value::List(items) = json(&format!("[{text}]")) else {
            panic!("not a list")
        };
        assert_eq!(items, vec![Value::Float(nearest)], "{text}");
    }
    let encoded = Serializer::Json
        .encode(&Message::Publish {
            request: 1,
            options: Dict::new(),
            topic: "com.example.float".into(),
            args: Some(vec![Value::Float(nearest)]),
            kwargs: None,
        })
        .expect("encodes");
    let Message::Publish { args, .. } = Serializer::Json.decode(&encoded).expect("decodes") else {
        panic!("not a PUBLISH")
    };
    assert_eq!(args, Some(vec![Value::Float(nearest)]));
}
