//! The WAMP project's single-message test vectors (shipped in the `autobahn` source distribution
//! under `.proto/testsuite/`) against our JSON, MessagePack and CBOR serializers.
//!
//! The vectors are not committed: on first use they are downloaded with
//! `python3 -m pip download --no-deps --no-binary :all: autobahn==26.10.2` and their
//! `.proto/testsuite/` is extracted into `<target dir>/wamp-testsuite/`, where later runs find
//! them. Set `WAMP_TESTSUITE_DIR` to use a testsuite directory that is already on disk.
//!
//! Each serialization sample's bytes, for each of our serializers, must decode to the expected
//! message type and attributes, and the decoded message must survive a round trip through every
//! serializer. Serializers we do not support (ubjson, flatbuffers) are skipped and counted; so
//! are the EVENT_RECEIVED (337) samples, a provisional Autobahn message type that [`Message`]
//! does not have (their decoding must fail with "unknown message type 337"). Validation samples
//! (`wmsg`) without `expected_error` must decode in every serializer and encode back to the same
//! wire list; those with `expected_error` check the types of Options/Details entries, which is
//! the router's job and not the decoder's: they are skipped and counted.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value as J;
use wamp_proto::message::is_passthru;
use wamp_proto::{Dict, Message, Serializer, Value};

const AUTOBAHN_VERSION: &str = "26.10.2";

fn workspace_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(d) if Path::new(&d).is_absolute() => PathBuf::from(d),
        Some(d) => workspace_dir().join(d),
        None => workspace_dir().join("target"),
    }
}

/// The testsuite directory, downloading and extracting it first if needed.
fn testsuite_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("WAMP_TESTSUITE_DIR") {
        return PathBuf::from(d);
    }
    let dir = target_dir().join("wamp-testsuite");
    if !dir.join("singlemessage").is_dir() {
        fetch(&dir);
    }
    dir
}

const EXTRACT: &str = r#"
import os, sys, tarfile
sdist, dest = sys.argv[1], sys.argv[2]
marker = "/.proto/testsuite/"
n = 0
with tarfile.open(sdist) as t:
    for m in t.getmembers():
        i = m.name.find(marker)
        if i < 0 or not m.isfile():
            continue
        rel = m.name[i + len(marker):]
        if not rel or rel.startswith("/") or ".." in rel.split("/"):
            continue
        out = os.path.join(dest, rel)
        os.makedirs(os.path.dirname(out), exist_ok=True)
        with t.extractfile(m) as src, open(out, "wb") as f:
            f.write(src.read())
        n += 1
if n == 0:
    sys.exit("no .proto/testsuite/ files in " + sdist)
print(f"extracted {n} testsuite files")
"#;

/// Downloads the autobahn sdist and extracts its `.proto/testsuite/` into `dir`.
fn fetch(dir: &Path) {
    let tmp = target_dir().join(format!("wamp-testsuite.tmp-{}", std::process::id()));
    let _ = fs::remove_dir_all(&tmp);
    fs::create_dir_all(&tmp).expect("create a temporary directory in the target dir");
    eprintln!("downloading autobahn=={AUTOBAHN_VERSION} (sdist) for the WAMP test vectors");
    let status = Command::new("python3")
        .args([
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--no-binary",
            ":all:",
            "--quiet",
        ])
        .arg(format!("autobahn=={AUTOBAHN_VERSION}"))
        .arg("-d")
        .arg(&tmp)
        .status()
        .expect("run `python3 -m pip download` (python3 with pip is needed for the test vectors)");
    assert!(
        status.success(),
        "`python3 -m pip download autobahn=={AUTOBAHN_VERSION}` failed"
    );
    let sdist = tmp.join(format!("autobahn-{AUTOBAHN_VERSION}.tar.gz"));
    let extracted = tmp.join("testsuite");
    let status = Command::new("python3")
        .arg("-c")
        .arg(EXTRACT)
        .arg(&sdist)
        .arg(&extracted)
        .status()
        .expect("run python3 to extract the sdist");
    assert!(
        status.success(),
        "extracting .proto/testsuite/ from {} failed",
        sdist.display()
    );
    // Another test run may have got there first: keep whichever is in place.
    if fs::rename(&extracted, dir).is_err() && !dir.join("singlemessage").is_dir() {
        panic!("could not move the testsuite into {}", dir.display());
    }
    let _ = fs::remove_dir_all(&tmp);
}

fn json_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            json_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "json") {
            out.push(p);
        }
    }
}

fn hex(s: &str) -> Vec<u8> {
    assert_eq!(s.len() % 2, 0, "odd hex length");
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// The bytes of one serialized variant.
fn variant_bytes(v: &J) -> Vec<u8> {
    if let Some(h) = v.get("bytes_hex").and_then(J::as_str) {
        hex(h)
    } else if let Some(s) = v.get("bytes").and_then(J::as_str) {
        s.as_bytes().to_vec()
    } else if let Some(b) = v.get("bytes_base64").and_then(J::as_str) {
        // Not used by the current vectors; decode through our JSON binary reading.
        let s = format!("\"\\u0000{b}\"");
        Serializer::Json
            .decode_value(s.as_bytes())
            .unwrap()
            .as_bytes()
            .unwrap()
            .to_vec()
    } else {
        panic!("variant without bytes: {v}")
    }
}

/// An expected attribute (plain JSON) as a [`Value`].
fn to_value(j: &J) -> Value {
    match j {
        J::Null => Value::Null,
        J::Bool(b) => Value::Bool(*b),
        J::Number(n) => {
            if let Some(i) = n.as_i64() {
                Value::Int(i)
            } else if let Some(u) = n.as_u64() {
                Value::from(u)
            } else {
                Value::Float(n.as_f64().unwrap())
            }
        }
        J::String(s) => Value::Str(s.clone()),
        J::Array(a) => Value::List(a.iter().map(to_value).collect()),
        J::Object(o) => Value::Dict(o.iter().map(|(k, v)| (k.clone(), to_value(v))).collect()),
    }
}

fn opt_list(l: &Option<Vec<Value>>) -> Value {
    l.clone().map_or(Value::Null, Value::List)
}

fn opt_dict(d: &Option<Dict>) -> Value {
    d.clone().map_or(Value::Null, Value::Dict)
}

/// The named attributes of a message, in the vectors' vocabulary.
fn attributes(msg: &Message) -> BTreeMap<&'static str, Value> {
    let mut a = BTreeMap::new();
    a.insert("message_type", Value::from(msg.code()));
    let payload = |a: &mut BTreeMap<&'static str, Value>,
                   dict: &Dict,
                   args: &Option<Vec<Value>>,
                   kwargs: &Option<Dict>| {
        match (args.as_deref(), kwargs) {
            (Some([p @ (Value::Bytes(_) | Value::Str(_))]), None) if is_passthru(dict) => {
                a.insert("payload", p.clone());
                a.insert("args", Value::Null);
                a.insert("kwargs", Value::Null);
            }
            _ => {
                a.insert("payload", Value::Null);
                a.insert("args", opt_list(args));
                a.insert("kwargs", opt_dict(kwargs));
            }
        }
    };
    let id = |u: u64| Value::from(u);
    match msg {
        Message::Hello { realm, details } => {
            a.insert("realm", realm.as_str().into());
            a.insert("roles", details.get("roles").cloned().unwrap_or_default());
            a.insert("details", details.clone().into());
        }
        Message::Welcome { session, details } => {
            a.insert("session_id", id(*session));
            a.insert("roles", details.get("roles").cloned().unwrap_or_default());
            a.insert("details", details.clone().into());
        }
        Message::Abort {
            details,
            reason,
            args,
            kwargs,
        } => {
            a.insert("details", details.clone().into());
            a.insert("reason", reason.as_str().into());
            payload(&mut a, &Dict::new(), args, kwargs);
        }
        Message::Challenge { authmethod, extra } => {
            a.insert("method", authmethod.as_str().into());
            a.insert("extra", extra.clone().into());
        }
        Message::Authenticate { signature, extra } => {
            a.insert("signature", signature.as_str().into());
            a.insert("extra", extra.clone().into());
        }
        Message::Goodbye { details, reason } => {
            a.insert("details", details.clone().into());
            a.insert("reason", reason.as_str().into());
        }
        Message::Error {
            request_type,
            request,
            details,
            error,
            args,
            kwargs,
        } => {
            a.insert("request_type", id(*request_type));
            a.insert("request_id", id(*request));
            a.insert("details", details.clone().into());
            a.insert("error", error.as_str().into());
            payload(&mut a, details, args, kwargs);
        }
        Message::Publish {
            request,
            options,
            topic,
            args,
            kwargs,
        } => {
            a.insert("request_id", id(*request));
            a.insert("options", options.clone().into());
            a.insert("topic", topic.as_str().into());
            payload(&mut a, options, args, kwargs);
        }
        Message::Published {
            request,
            publication,
        } => {
            a.insert("request_id", id(*request));
            a.insert("publication_id", id(*publication));
        }
        Message::Subscribe {
            request,
            options,
            topic,
        } => {
            a.insert("request_id", id(*request));
            a.insert("options", options.clone().into());
            a.insert("topic", topic.as_str().into());
        }
        Message::Subscribed {
            request,
            subscription,
        }
        | Message::Unsubscribe {
            request,
            subscription,
        } => {
            a.insert("request_id", id(*request));
            a.insert("subscription_id", id(*subscription));
        }
        Message::Unsubscribed { request, details } | Message::Unregistered { request, details } => {
            a.insert("request_id", id(*request));
            a.insert("details", opt_dict(details));
        }
        Message::Event {
            subscription,
            publication,
            details,
            args,
            kwargs,
        } => {
            a.insert("subscription", id(*subscription));
            a.insert("publication", id(*publication));
            a.insert("subscription_id", id(*subscription));
            a.insert("publication_id", id(*publication));
            a.insert("details", details.clone().into());
            payload(&mut a, details, args, kwargs);
        }
        Message::Call {
            request,
            options,
            procedure,
            args,
            kwargs,
        } => {
            a.insert("request_id", id(*request));
            a.insert("options", options.clone().into());
            a.insert("procedure", procedure.as_str().into());
            payload(&mut a, options, args, kwargs);
        }
        Message::Cancel { request, options } | Message::Interrupt { request, options } => {
            a.insert("request_id", id(*request));
            a.insert("options", options.clone().into());
        }
        Message::Result {
            request,
            details,
            args,
            kwargs,
        } => {
            a.insert("request_id", id(*request));
            a.insert("details", details.clone().into());
            payload(&mut a, details, args, kwargs);
        }
        Message::Register {
            request,
            options,
            procedure,
        } => {
            a.insert("request_id", id(*request));
            a.insert("options", options.clone().into());
            a.insert("procedure", procedure.as_str().into());
        }
        Message::Registered {
            request,
            registration,
        }
        | Message::Unregister {
            request,
            registration,
        } => {
            a.insert("request_id", id(*request));
            a.insert("registration_id", id(*registration));
        }
        Message::Invocation {
            request,
            registration,
            details,
            args,
            kwargs,
        } => {
            a.insert("request_id", id(*request));
            a.insert("registration_id", id(*registration));
            a.insert("details", details.clone().into());
            payload(&mut a, details, args, kwargs);
        }
        Message::Yield {
            request,
            options,
            args,
            kwargs,
        } => {
            a.insert("request_id", id(*request));
            a.insert("options", options.clone().into());
            payload(&mut a, options, args, kwargs);
        }
    }
    a
}

/// Checks every expected attribute against the decoded message.
fn check_attributes(msg: &Message, expected: &J, ctx: &str) {
    let attrs = attributes(msg);
    let expected = expected
        .as_object()
        .expect("expected_attributes is an object");
    for (k, v) in expected {
        let Some(actual) = attrs.get(k.as_str()) else {
            panic!("{ctx}: expected attribute {k:?} is not one of {msg:?}'s attributes")
        };
        let want = if k == "payload" && v.is_string() {
            Value::Bytes(hex(v.as_str().unwrap()))
        } else {
            to_value(v)
        };
        assert_eq!(actual, &want, "{ctx}: attribute {k:?} of {msg:?}");
    }
}

/// Every serializer round-trips `msg` exactly.
fn check_round_trip(msg: &Message, ctx: &str) {
    for s in Serializer::ALL {
        let bytes = s
            .encode(msg)
            .unwrap_or_else(|e| panic!("{ctx}: encode as {s:?}: {e}"));
        let back = s
            .decode(&bytes)
            .unwrap_or_else(|e| panic!("{ctx}: decode our {s:?}: {e}"));
        assert_eq!(&back, msg, "{ctx}: {s:?} round trip");
    }
}

fn serializer(name: &str) -> Option<Serializer> {
    match name {
        "json" => Some(Serializer::Json),
        "msgpack" => Some(Serializer::MsgPack),
        "cbor" => Some(Serializer::Cbor),
        _ => None,
    }
}

/// `wmsg` (a plain JSON list) in each of our formats: JSON as is, MessagePack and CBOR written by
/// independent encoders (rmp-serde, ciborium).
fn wmsg_bytes(wmsg: &J) -> [(Serializer, Vec<u8>); 3] {
    let v = to_value(wmsg);
    let mut cbor = Vec::new();
    ciborium::into_writer(&v, &mut cbor).unwrap();
    [
        (Serializer::Json, serde_json::to_vec(wmsg).unwrap()),
        (Serializer::MsgPack, rmp_serde::to_vec(&v).unwrap()),
        (Serializer::Cbor, cbor),
    ]
}

#[derive(Default)]
struct Counts {
    /// Serialization samples' byte variants decoded and checked, per serializer index.
    decoded: [usize; 3],
    /// Of those, how many our encoder reproduces byte for byte.
    identical: [usize; 3],
    /// Validation samples (`wmsg`) decoded, per serializer index.
    wmsg_decoded: [usize; 3],
    skipped: BTreeMap<String, usize>,
}

impl Counts {
    fn skip(&mut self, why: impl Into<String>, n: usize) {
        *self.skipped.entry(why.into()).or_default() += n;
    }
}

#[test]
fn wamp_test_vectors() {
    let dir = testsuite_dir().join("singlemessage");
    let mut files = Vec::new();
    json_files(&dir, &mut files);
    assert!(!files.is_empty(), "no test vectors under {}", dir.display());

    let mut n = Counts::default();
    for file in &files {
        let rel = file.strip_prefix(&dir).unwrap().display().to_string();
        let doc: J = serde_json::from_slice(&fs::read(file).unwrap())
            .unwrap_or_else(|e| panic!("{rel}: {e}"));
        let code = doc["wamp_message_code"]
            .as_u64()
            .expect("wamp_message_code");
        let known = wamp_proto::message::code_name(code).is_some();
        for (i, sample) in doc["samples"]
            .as_array()
            .expect("samples")
            .iter()
            .enumerate()
        {
            let ctx = format!("{rel} sample {i} ({})", sample["description"]);
            if let Some(wmsg) = sample.get("wmsg") {
                if sample.get("expected_error").is_some() {
                    n.skip(
                        "validation samples of Options/Details entry types (router's job)",
                        1,
                    );
                    continue;
                }
                for (s, bytes) in wmsg_bytes(wmsg) {
                    let msg = s
                        .decode(&bytes)
                        .unwrap_or_else(|e| panic!("{ctx}: valid wmsg as {s:?}: {e}"));
                    let again: J =
                        serde_json::from_slice(&Serializer::Json.encode(&msg).unwrap()).unwrap();
                    assert_eq!(&again, wmsg, "{ctx}: {s:?} wmsg re-encoded");
                    check_round_trip(&msg, &ctx);
                    n.wmsg_decoded[s.index()] += 1;
                }
                continue;
            }
            let expected = &sample["expected_attributes"];
            assert_eq!(
                expected["message_type"].as_u64(),
                Some(code),
                "{ctx}: message_type"
            );
            for (ser_name, variants) in sample["serializers"].as_object().expect("serializers") {
                let variants = variants.as_array().expect("variants");
                let Some(s) = serializer(ser_name) else {
                    n.skip(
                        format!("{ser_name} variants (serializer not supported)"),
                        variants.len(),
                    );
                    continue;
                };
                for (j, variant) in variants.iter().enumerate() {
                    let ctx = format!("{ctx} {ser_name} variant {j}");
                    let bytes = variant_bytes(variant);
                    if !known {
                        let err = s.decode(&bytes).expect_err(&ctx).to_string();
                        assert_eq!(err, format!("unknown message type {code}"), "{ctx}");
                        n.skip(
                            format!("message type {code} variants (not a Message variant)"),
                            1,
                        );
                        continue;
                    }
                    let msg = s
                        .decode(&bytes)
                        .unwrap_or_else(|e| panic!("{ctx}: decode: {e}"));
                    assert_eq!(msg.code(), code, "{ctx}: message type");
                    check_attributes(&msg, expected, &ctx);
                    check_round_trip(&msg, &ctx);
                    n.decoded[s.index()] += 1;
                    if s.encode(&msg).unwrap() == bytes {
                        n.identical[s.index()] += 1;
                    }
                }
            }
        }
    }

    println!(
        "WAMP test vectors ({} files under {}):",
        files.len(),
        dir.display()
    );
    for s in Serializer::ALL {
        let i = s.index();
        println!(
            "  {:<8} decoded {:>3} sample variants ({} re-encoded byte for byte), {} valid wmsg",
            s.name(),
            n.decoded[i],
            n.identical[i],
            n.wmsg_decoded[i]
        );
    }
    for (why, count) in &n.skipped {
        println!("  skipped {count:>3} {why}");
    }
    for s in Serializer::ALL {
        assert!(
            n.decoded[s.index()] > 0,
            "no {} sample was decoded",
            s.name()
        );
        assert!(
            n.wmsg_decoded[s.index()] > 0,
            "no {} wmsg was decoded",
            s.name()
        );
    }
}
