//! Named limits the routing core enforces, each with its default and what happens when it is
//! reached. The runtime's own limits (queues, buffers, I/O deadlines) are in `turnstile::limits`.

use std::time::Duration;

/// How long the router waits for a client's GOODBYE reply after sending GOODBYE (kill, shutdown)
/// before it ends the session anyway.
pub const GOODBYE_REPLY_TIMEOUT: Duration = Duration::from_secs(3);

/// How long a client may take from opening the connection to WELCOME (HELLO, and any
/// authentication round trip). One deadline, counted from the opening and enforced once for each
/// part of the handshake: the transport closes a connection that has sent no HELLO by then;
/// after HELLO the realm refuses a session it has not welcomed by then (ABORT
/// `wamp.error.authentication_failed`). A later session on the same connection (after GOODBYE)
/// gets this long from its HELLO.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Topics whose last `retain` event a realm keeps. Beyond this the topic retained longest ago
/// is forgotten, so retention cannot make memory grow without bound.
pub const MAX_RETAINED_TOPICS: usize = 10_000;
