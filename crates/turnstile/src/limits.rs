//! Named limits of the router, each with its default and what happens when it is reached.
//!
//! The limits the sans-IO core enforces live in `turnstile_core::limits` and are re-exported
//! here, so this module lists every limit of the router. The configuration sets most of them
//! (a router worker's `limits`, a realm's `limits`, a transport's `max_connections`; see
//! [`ConnectionLimits::configured`] and `SessionLimits::from_config`); the README's Limits
//! section lists the keys.

use std::time::Duration;

/// The limits the routing core enforces (handshake and GOODBYE deadlines, retained topics,
/// per-session subscriptions, registrations and calls in flight).
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

/// Rows of the usage ledger committed in one transaction at most. More rows waiting are
/// written by the next transactions, one after the other.
pub const LEDGER_BATCH_ROWS: usize = 2000;

/// How long the usage ledger waits after a failed write (the database is down or refuses)
/// before it tries again; the rows wait in the spill file meanwhile.
pub const LEDGER_RETRY_INTERVAL: Duration = Duration::from_secs(1);

/// At a clean stop, how long the usage ledger tries to commit what it still holds. Rows it
/// could not commit by then stay in the spill file for the next start.
pub const LEDGER_STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// How often, at most, the usage ledger logs its backlog (rows not yet committed) while the
/// database is slow or down.
pub const LEDGER_BACKLOG_LOG_INTERVAL: Duration = Duration::from_secs(10);

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

/// Bytes of outgoing RawSocket frames collected before they are written to the socket (a flush
/// writes whatever is collected); a frame that does not fit goes to the socket directly. Only a
/// threshold: the buffer is allocated when a batch is written and released after its flush, so
/// an idle connection holds none.
pub const RAWSOCKET_WRITE_BUFFER_SIZE: usize = 16 << 10;

/// Bytes a RawSocket connection reads at once. The read buffer is allocated when input is
/// ready and released once the frames in it are handed on, so an idle connection holds none. A
/// frame's payload larger than this arrives in several reads, the buffer growing with it, never
/// beyond the transport's `max_message_size`.
pub const RAWSOCKET_READ_BUFFER_SIZE: usize = 4 << 10;

/// How long a RawSocket client may take, from connecting, to send its 4 handshake octets. A
/// connection that has not sent them by then is closed without a reply (logged at debug level).
/// The WAMP HELLO deadline ([`HANDSHAKE_TIMEOUT`]) counts from the same moment. On a TLS
/// endpoint the TLS handshake counts against it too: TLS and RawSocket handshakes together must
/// be done this long after the accept.
pub const RAWSOCKET_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a RawSocket frame may take to arrive completely once its 4-octet header has been
/// read. Past it the connection is closed (close reason logged at debug level, no ABORT: the
/// peer is mid-frame) and its session, if any, ends as for a lost connection, with its final
/// statistics. Without it a client could keep a frame of up to `max_message_size` bytes
/// buffered in the router for as long as it liked. 30 s lets the largest frame (16 MiB) arrive
/// at about 4.5 Mbit/s.
pub const FRAME_COMPLETION_TIMEOUT: Duration = Duration::from_secs(30);

/// The smallest maximum message length a RawSocket client may announce in its handshake
/// (`LLLL` = 2, 2^11 bytes). A client announcing less is refused with handshake error 2
/// ("maximum message length unacceptable"): the router could not even send it WELCOME, whose
/// details (the router's roles and their features, the session's auth fields) take about
/// 850 bytes in JSON for an anonymous session, more with a long authid or authextra; 2048
/// leaves room for those. Later messages larger than what a client announced end its session with
/// ABORT `wamp.error.payload_size_exceeded` (when that fits) and a close.
pub const RAWSOCKET_MIN_CLIENT_MAX_MESSAGE_SIZE: usize = 2 << 10;

/// The deadlines of a RawSocket connection. `Default` gives the named limits
/// ([`RAWSOCKET_HANDSHAKE_TIMEOUT`], [`FRAME_COMPLETION_TIMEOUT`]); a server takes them from its
/// [`ConnectionLimits`], and tests shorten them through `Server::set_rawsocket_timeouts`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawSocketTimeouts {
    /// See [`RAWSOCKET_HANDSHAKE_TIMEOUT`].
    pub handshake: Duration,
    /// See [`FRAME_COMPLETION_TIMEOUT`].
    pub frame_completion: Duration,
}

impl Default for RawSocketTimeouts {
    fn default() -> Self {
        Self {
            handshake: RAWSOCKET_HANDSHAKE_TIMEOUT,
            frame_completion: FRAME_COMPLETION_TIMEOUT,
        }
    }
}

/// How long an accept loop pauses after an accept error that is not about one connection (for
/// example out of file descriptors), so the error cannot spin a core. Logged at error level.
pub const ACCEPT_ERROR_BACKOFF: Duration = Duration::from_millis(500);

/// How long the router waits for a procedure it calls itself (a dynamic authenticator or
/// authorizer) to answer; past it, the authentication fails or the action is denied.
pub const ROUTER_CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// How long an HTTP connection (on a `web` or `websocket` transport) may take to send a complete
/// request head: its first request (for a WebSocket, the upgrade request) counting from the
/// accept (on a TLS endpoint: the TLS handshake must be done this long after the accept, and the
/// first request head this long after the handshake), and each later request on a kept-alive connection counting from the end of the
/// previous response, so it is also the keep-alive idle timeout. At the deadline the connection
/// is closed without a response. This is what frees the file descriptors of connections that
/// never upgrade: idle ones, slowloris ones sending a byte now and then, and kept-alive ones
/// after an error reply. Upgraded WebSocket connections are not affected (the HELLO deadline,
/// [`HANDSHAKE_TIMEOUT`], takes over from the upgrade).
///
/// What a not-yet-upgraded connection costs until then: one file descriptor and one admission
/// slot ([`ConnectionLimits::max_connections`]), the kernel's socket buffers, one task and hyper's
/// connection state with its read buffer. Measured (RSS of a debug build, 1,000 connections):
/// about 10 KiB each when idle, about 22 KiB each once a partial request head has arrived.
pub const HTTP_REQUEST_HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a WebSocket message (or control frame) may take to arrive once its first bytes have
/// been read. Past it, the connection is closed (1008, policy violation) and its session ends,
/// so a peer cannot hold a partial message, and the memory buffered for it, forever. Long
/// enough for a maximum-size message over a slow link. See `transport::admission::Admitted` for
/// how the start of a message is seen.
pub const MESSAGE_COMPLETION_TIMEOUT: Duration = Duration::from_secs(60);

/// File descriptors kept out of [`ConnectionLimits::max_connections`] for everything that is not
/// a connection: listeners, log files, static files being served, the runtime's own. The default
/// maximum is the open-file limit minus this, or minus an eighth of the limit if that is more.
pub const FD_RESERVE: u64 = 64;

/// The default node-wide maximum of open connections for an open-file limit of `nofile`: the
/// limit less a reserve ([`FD_RESERVE`] or an eighth, whichever is larger), at least 1.
pub fn default_max_connections(nofile: u64) -> usize {
    let reserve = FD_RESERVE.max(nofile / 8);
    let max = nofile.saturating_sub(reserve).max(1);
    usize::try_from(max)
        .unwrap_or(usize::MAX)
        .min(tokio::sync::Semaphore::MAX_PERMITS)
}

/// How long a connection refused at a connection cap ([`ConnectionLimits::max_connections_per_ip`],
/// a transport's `max_connections`) is kept: its refusal (an HTTP 503 response, a RawSocket
/// handshake error 4) is written at once after the accept, then the router closes lingering
/// (shuts down its side and discards input until the client closes too, so the client reads
/// the refusal instead of a reset), all within this deadline. Meanwhile the connection holds
/// its node-wide slot: refusals cost at most this long of a bounded number of file descriptors.
pub const REFUSAL_TIMEOUT: Duration = Duration::from_secs(1);

/// The `Retry-After` of the HTTP 503 a refused web or WebSocket connection gets.
pub const REFUSAL_RETRY_AFTER: Duration = Duration::from_secs(5);

/// Limits on the connections of a node, across all its transports (WebSocket, HTTP, RawSocket;
/// TCP and Unix). The defaults come from the named limits above; the configuration's router
/// worker `limits` replace them ([`ConnectionLimits::configured`]), and the command line's
/// options replace those; tests shorten them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// Connections open at once, node-wide. A listener takes a slot once a connection is
    /// pending, before it accepts it: at the limit it stops accepting and new connections wait in the kernel's listen backlog (or are
    /// refused by the kernel when that is full) until a connection closes, instead of being
    /// accepted and failing for want of file descriptors. Default: [`default_max_connections`]
    /// of the soft open-file limit at start. Logged at warn level when reached.
    pub max_connections: usize,
    /// Connections open at once from one IP address (TCP only); `None` (the default): no cap.
    /// A connection beyond it is refused right after the accept: an HTTP 503 on `web` and
    /// `websocket` transports, handshake error 4 on RawSocket (see [`REFUSAL_TIMEOUT`]).
    /// Off by default because a reverse proxy or a load generator legitimately opens many
    /// connections from one address.
    pub max_connections_per_ip: Option<usize>,
    /// [`HTTP_REQUEST_HEADER_TIMEOUT`].
    pub http_request_header_timeout: Duration,
    /// [`MESSAGE_COMPLETION_TIMEOUT`].
    pub message_completion_timeout: Duration,
    /// [`HANDSHAKE_TIMEOUT`], and also [`RAWSOCKET_HANDSHAKE_TIMEOUT`] (both count from
    /// connecting).
    pub handshake_timeout: Duration,
    /// [`FRAME_COMPLETION_TIMEOUT`].
    pub frame_completion_timeout: Duration,
    /// [`MAX_OUTGOING_QUEUE_BYTES`].
    pub max_outgoing_queue_bytes: usize,
}

impl ConnectionLimits {
    /// These limits with the keys given in a router worker's `limits` section replacing them.
    pub fn configured(mut self, config: &turnstile_config::WorkerLimits) -> Self {
        if let Some(n) = config.max_connections {
            self.max_connections = n.min(tokio::sync::Semaphore::MAX_PERMITS);
        }
        if let Some(n) = config.max_connections_per_ip {
            self.max_connections_per_ip = Some(n);
        }
        if let Some(t) = config.handshake_timeout {
            self.handshake_timeout = t;
        }
        if let Some(t) = config.http_request_header_timeout {
            self.http_request_header_timeout = t;
        }
        if let Some(t) = config.message_completion_timeout {
            self.message_completion_timeout = t;
        }
        if let Some(t) = config.frame_completion_timeout {
            self.frame_completion_timeout = t;
        }
        if let Some(n) = config.max_outgoing_queue_bytes {
            self.max_outgoing_queue_bytes = n;
        }
        self
    }

    /// The RawSocket deadlines these limits give.
    pub fn rawsocket_timeouts(&self) -> RawSocketTimeouts {
        RawSocketTimeouts {
            handshake: self.handshake_timeout,
            frame_completion: self.frame_completion_timeout,
        }
    }
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        let nofile = crate::transport::admission::nofile_limit()
            .map(|(soft, _)| soft)
            .unwrap_or(1024);
        Self {
            max_connections: default_max_connections(nofile),
            max_connections_per_ip: None,
            http_request_header_timeout: HTTP_REQUEST_HEADER_TIMEOUT,
            message_completion_timeout: MESSAGE_COMPLETION_TIMEOUT,
            handshake_timeout: HANDSHAKE_TIMEOUT,
            frame_completion_timeout: FRAME_COMPLETION_TIMEOUT,
            max_outgoing_queue_bytes: MAX_OUTGOING_QUEUE_BYTES,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_max_connections_leaves_headroom() {
        assert_eq!(default_max_connections(1024), 1024 - 128);
        assert_eq!(default_max_connections(256), 256 - 64);
        assert_eq!(default_max_connections(20_000), 20_000 - 2_500);
        assert_eq!(default_max_connections(10), 1);
        assert_eq!(
            default_max_connections(u64::MAX),
            tokio::sync::Semaphore::MAX_PERMITS
        );
    }
}
