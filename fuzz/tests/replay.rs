//! Replays the committed inputs through the targets' checks, without libFuzzer (on any
//! toolchain: `cargo test --manifest-path fuzz/Cargo.toml`):
//!
//! - `corpus/TARGET/*`: the minimized corpora must pass every check;
//! - `regressions/TARGET/*`: inputs of findings that were fixed must pass;
//! - `regressions/open/TARGET/*`: inputs of findings not fixed yet are run and reported (a
//!   panic is expected); one that passes is reported so that it can be moved up a level. The
//!   decode targets' inputs are run without the tolerance for the open finding F1
//!   (`decode::check_strict`).

use std::fs;
use std::panic;
use std::path::{Path, PathBuf};

use turnstile_config::Format;
use wamp_proto::Serializer;

fn check(target: &str, data: &[u8]) {
    match target {
        "strict/decode_json" => turnstile_fuzz::decode::check_strict(Serializer::Json, data),
        "strict/decode_msgpack" => turnstile_fuzz::decode::check_strict(Serializer::MsgPack, data),
        "strict/decode_cbor" => turnstile_fuzz::decode::check_strict(Serializer::Cbor, data),
        "decode_json" => turnstile_fuzz::decode::check(Serializer::Json, data),
        "decode_msgpack" => turnstile_fuzz::decode::check(Serializer::MsgPack, data),
        "decode_cbor" => turnstile_fuzz::decode::check(Serializer::Cbor, data),
        "config_json" => turnstile_fuzz::config::check(Format::Json, data),
        "config_yaml" => turnstile_fuzz::config::check(Format::Yaml, data),
        "rawsocket" => turnstile_fuzz::rawsocket::check(data),
        "websocket_upgrade" => turnstile_fuzz::websocket_upgrade::check(data),
        "session" => turnstile_fuzz::session::check(data),
        other => panic!("unknown target directory {other}"),
    }
}

fn dir(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

/// (target, file) for every file under `dir/TARGET/`.
fn inputs(dir: &Path) -> Vec<(String, PathBuf)> {
    let mut out = Vec::new();
    let Ok(targets) = fs::read_dir(dir) else {
        return out;
    };
    for t in targets.flatten() {
        let name = t.file_name().to_string_lossy().into_owned();
        if !t.path().is_dir() || name == "open" {
            continue;
        }
        for f in fs::read_dir(t.path()).into_iter().flatten().flatten() {
            if f.path().is_file() && f.file_name() != "README.md" {
                out.push((name.clone(), f.path()));
            }
        }
    }
    out.sort();
    out
}

#[test]
fn corpora_pass() {
    let all = inputs(&dir("corpus"));
    assert!(!all.is_empty(), "no corpus committed");
    for (target, file) in all {
        let data = fs::read(&file).unwrap();
        check(&target, &data);
    }
}

#[test]
fn fixed_regressions_pass() {
    for (target, file) in inputs(&dir("regressions")) {
        let data = fs::read(&file).unwrap();
        check(&target, &data);
    }
}

#[test]
fn open_regressions_are_reported() {
    for (target, file) in inputs(&dir("regressions/open")) {
        let data = fs::read(&file).unwrap();
        let strict = format!("strict/{target}");
        let checks = if target.starts_with("decode_") {
            &strict
        } else {
            &target
        };
        let outcome = panic::catch_unwind(|| check(checks, &data));
        match outcome {
            Err(_) => eprintln!("still open: {}", file.display()),
            Ok(()) => eprintln!(
                "now passes (move it to regressions/{target}/): {}",
                file.display()
            ),
        }
    }
}
