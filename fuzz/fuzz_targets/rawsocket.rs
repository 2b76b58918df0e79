//! rawsocket: a byte stream, arriving in arbitrary pieces, into the RawSocket handshake and
//! framing codec (`wamp_proto::rawsocket`) on the router's or the client's side. Checks (see
//! `turnstile_fuzz::rawsocket`): no panic; no frame over the receiver's maximum; the same
//! outcome however the stream is split; frames and handshakes survive re-encoding; errors are
//! typed and have text.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| turnstile_fuzz::rawsocket::check(data));
