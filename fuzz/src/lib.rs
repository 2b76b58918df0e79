//! The properties the fuzz targets check, as plain functions of the input bytes.
//!
//! Each target in `fuzz_targets/` is one line that calls one of these, so that the same checks
//! run (without libFuzzer) over the committed corpora and regressions in this crate's tests
//! (`cargo test` in `fuzz/`), and so that a new target is a copy of an existing one plus a
//! function here:
//!
//! - [`decode`]: a WAMP serializer's decoders on arbitrary bytes (targets `decode_json`,
//!   `decode_msgpack`, `decode_cbor`).
//! - [`config`]: loading and validating a node configuration text (targets `config_json`,
//!   `config_yaml`).
//! - [`rawsocket`]: the RawSocket handshake and framing codec on a stream arriving in pieces
//!   (target `rawsocket`).
//! - [`websocket_upgrade`]: what the router reads from a WebSocket upgrade request (target
//!   `websocket_upgrade`).
//! - [`session`]: the sans-IO realm driven by several fake clients and a fake clock, with
//!   invariants checked after every step (target `session`).
//!
//! A check reports a broken property by panicking with a message that says which property, as
//! libFuzzer treats a panic as a crash and saves the input.
//!
//! To add a target for another sans-IO API: write a
//! `pub fn check(data: &[u8])` in a new module here, a `fuzz_targets/NAME.rs` calling it, a
//! `[[bin]]` block in `Cargo.toml`, seeds in `examples/seeds.rs`, and list it in
//! `tests/replay.rs`, `scripts/fuzz` and `docs/fuzzing.md` (see its "Adding a target").

pub mod config;
pub mod decode;
pub mod rawsocket;
pub mod session;
pub mod websocket_upgrade;
