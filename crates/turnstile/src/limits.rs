//! Named limits of the router, each with its default and what happens when it is reached.

use std::time::Duration;

/// Bytes that may wait in one connection's outgoing queue. A session whose client does not read
/// fast enough to stay under this is disconnected (slow consumer) with a logged reason, so a
/// stalled client cannot make the router's memory grow.
pub const MAX_OUTGOING_QUEUE_BYTES: usize = 16 << 20;

/// Messages a connection may have handed to its realm that the realm has not processed yet. A
/// connection that sends faster waits (backpressure on its socket), other connections do not.
pub const REALM_INBOX_CAPACITY: usize = 4096;

/// How long the router waits for a client's GOODBYE reply after sending GOODBYE (kill, shutdown)
/// before it ends the session anyway.
pub const GOODBYE_REPLY_TIMEOUT: Duration = Duration::from_secs(3);

/// How long a client may take from opening the connection to WELCOME (HELLO, and any
/// authentication round trip) before it is dropped.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// How long the router waits, at shutdown, for sessions to answer GOODBYE and for final meta
/// events to be written before it exits.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(3);
