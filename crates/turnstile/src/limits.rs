//! Named limits of the router, each with its default and what happens when it is reached.
//!
//! The limits the sans-IO core enforces live in `turnstile_core::limits` and are re-exported
//! here, so this module lists every limit of the router.

use std::time::Duration;

/// The limits the routing core enforces (handshake and GOODBYE deadlines, retained topics).
pub use turnstile_core::limits::*;

/// Bytes that may wait in one connection's outgoing queue. A session whose client does not read
/// fast enough to stay under this is disconnected (slow consumer) with a logged reason, so a
/// stalled client cannot make the router's memory grow.
pub const MAX_OUTGOING_QUEUE_BYTES: usize = 16 << 20;

/// Messages a connection may have handed to its realm that the realm has not processed yet. A
/// connection that sends faster waits (backpressure on its socket), other connections do not.
pub const REALM_INBOX_CAPACITY: usize = 4096;

/// How long the router waits, at shutdown, for sessions to answer GOODBYE and for final meta
/// events to be written before it exits.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(3);

/// How long a connection that the router is closing waits for its last messages (an ABORT, a
/// GOODBYE) to be queued and written, and for the client's WebSocket close reply, before the
/// socket is dropped anyway.
pub const CLOSE_TIMEOUT: Duration = Duration::from_secs(1);

/// How long the server waits, at shutdown and after the realms are done, for connection tasks to
/// write what they still hold and close their sockets. Tasks still running then are left to the
/// runtime's end.
pub const SHUTDOWN_FLUSH_TIMEOUT: Duration = Duration::from_secs(2);

/// Outgoing messages a connection writes before it flushes the socket and looks at its input
/// again. Batching cuts system calls under load; the cap keeps reading fair.
pub const WRITE_BATCH_MAX_MESSAGES: usize = 256;

/// Read buffer of one WebSocket connection. tungstenite allocates it per connection (128 KiB by
/// default) and zero-fills it, so all of it is resident: a small one keeps idle sessions small
/// (measured: 4 KiB instead of 16 KiB saves about 12 KiB per session, with no change in
/// throughput); larger messages arrive in several reads.
pub const WS_READ_BUFFER_SIZE: usize = 4 << 10;

/// Bytes of outgoing WebSocket frames collected before they are written to the socket (a flush
/// writes whatever is collected). Only a threshold: nothing is allocated up front.
pub const WS_WRITE_BUFFER_SIZE: usize = 64 << 10;

/// Buffer for the outgoing RawSocket frames of one connection, written at once on flush. Larger
/// frames go to the socket directly.
pub const RAWSOCKET_WRITE_BUFFER_SIZE: usize = 16 << 10;

/// How long an accept loop pauses after an accept error that is not about one connection (for
/// example out of file descriptors), so the error cannot spin a core. Logged at error level.
pub const ACCEPT_ERROR_BACKOFF: Duration = Duration::from_millis(500);

/// How long the router waits for a procedure it calls itself (a dynamic authenticator or
/// authorizer) to answer; past it, the authentication fails or the action is denied.
pub const ROUTER_CALL_TIMEOUT: Duration = Duration::from_secs(10);
