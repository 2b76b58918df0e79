//! websocket_upgrade: arbitrary header fields of a WebSocket upgrade request into what the
//! router reads itself (`wamp_proto::websocket`). Checks (see `turnstile_fuzz::websocket_upgrade`):
//! no panic; a chosen subprotocol is offered by the client, accepted by the endpoint and the
//! client's first such; a refusal names what was offered and accepted; the same results as the
//! router's code before it was taken out of the async handler.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| turnstile_fuzz::websocket_upgrade::check(data));
