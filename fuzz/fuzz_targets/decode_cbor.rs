//! decode_cbor: arbitrary bytes into the WAMP CBOR decoders (`Serializer::Cbor.decode` and
//! `decode_value`). Checks (see `turnstile_fuzz::decode`): no panic; non-empty error texts;
//! a decoded message re-encodes with CBOR (and without panicking in the other serializers) and
//! decodes back to an equal message; a decoded value survives the same round trip inside a
//! PUBLISH.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wamp_proto::Serializer;

fuzz_target!(|data: &[u8]| turnstile_fuzz::decode::check(Serializer::Cbor, data));
