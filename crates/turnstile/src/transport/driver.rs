//! The life of one WAMP connection, common to WebSocket and RawSocket: feeds received messages to
//! the [`Connection`], writes what the core queues (batched, one flush per batch), enforces the
//! HELLO deadline, and closes the socket the way the core, the peer or a shutdown asks.

use std::time::Duration;

use bytes::Bytes;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::debug;

use crate::limits;
use crate::runtime::connection::Connection;
use crate::runtime::outbox::PeerReceiver;
use turnstile_core::peer::{CloseReason, Outbound};

/// The connection tasks of a server, and the signal that tells them to close (at shutdown).
#[derive(Debug, Clone, Default)]
pub(crate) struct Conns {
    pub tracker: TaskTracker,
    pub closing: CancellationToken,
}

/// What a socket read yields.
pub(super) enum Incoming<C> {
    /// One complete WAMP message.
    Message(Bytes),
    /// Something only the transport acts on (a RawSocket PING to answer, a WebSocket ping due).
    Control(C),
    /// The peer closed the connection, or the socket failed: nothing more can be written.
    Gone(String),
    /// The peer broke the protocol (for example an oversized message): fail the connection with
    /// ABORT `wamp.error.protocol_violation` and `text`, then close with `close`.
    Violation { text: String, close: CloseReason },
    /// The transport closes the connection (for example no pong in time) without an ABORT.
    Close(CloseReason),
}

/// Why an outgoing message was not written.
pub(super) enum WriteError {
    /// The socket failed.
    Gone(String),
    /// The message cannot be sent on this connection: close it with this reason.
    Close(CloseReason),
}

/// One transport's socket as the driver uses it.
pub(super) trait WampSocket: Send {
    type Control: Send;

    /// The next input. Must be cancel-safe: it is raced against outgoing messages.
    async fn next(&mut self) -> Incoming<Self::Control>;
    /// Acts on a control input (may write and flush).
    async fn control(&mut self, control: Self::Control) -> Result<(), WriteError>;
    /// Writes one message; it reaches the socket at the latest on [`WampSocket::flush`].
    async fn write(&mut self, msg: Bytes) -> Result<(), WriteError>;
    async fn flush(&mut self) -> Result<(), String>;
    /// Closes the connection after everything written so far (bounded in time).
    async fn close(&mut self, reason: &CloseReason);
}

/// How the connection loop ended.
enum End {
    /// Close now with this reason.
    Close(CloseReason),
    /// The connection was failed (ABORT queued or asked of the realm): write what the core still
    /// queues until its close or a short timeout, then close with this reason.
    Failing(CloseReason),
    /// Server shutdown: write what is queued, then close.
    Shutdown,
    /// The socket is gone.
    Gone(String),
}

/// Runs one connection until it is closed. `handshake` is when the client connected and how long
/// it has from then to WELCOME ([`limits::HANDSHAKE_TIMEOUT`] or the server's replacement);
/// `label` names the connection in logs.
pub(super) async fn drive<S: WampSocket>(
    mut sock: S,
    mut conn: Connection,
    mut rx: PeerReceiver,
    closing: CancellationToken,
    handshake: (tokio::time::Instant, Duration),
    label: String,
) {
    // One handshake deadline from the opening: enforced here until HELLO, by the realm after.
    let (opened, handshake_timeout) = handshake;
    let handshake_deadline = opened + handshake_timeout;
    conn.set_handshake_deadline(handshake_deadline.into_std(), handshake_timeout);
    let hello_deadline = tokio::time::sleep_until(handshake_deadline);
    tokio::pin!(hello_deadline);
    let mut hello_seen = false;
    let end = loop {
        tokio::select! {
            out = rx.recv() => match out {
                Some(Outbound::Message(bytes)) => {
                    if let Err(end) = write_batch(&mut sock, &mut rx, bytes).await {
                        break end;
                    }
                }
                Some(Outbound::Close(reason)) => break End::Close(reason),
                None => break End::Close(CloseReason::going_away("router closed the connection")),
            },
            input = sock.next() => match input {
                Incoming::Message(payload) => {
                    conn.handle_message(&payload).await;
                    hello_seen |= conn.in_realm();
                }
                Incoming::Control(c) => {
                    if let Err(e) = sock.control(c).await {
                        break write_error_end(e);
                    }
                }
                Incoming::Gone(why) => break End::Gone(why),
                Incoming::Violation { text, close } => {
                    debug!(conn = %label, reason = %text, "protocol violation by the peer");
                    conn.fail(text).await;
                    break End::Failing(close);
                }
                Incoming::Close(reason) => break End::Close(reason),
            },
            _ = &mut hello_deadline, if !hello_seen => {
                let text = format!("no HELLO within {handshake_timeout:?} of connecting");
                break End::Close(CloseReason::policy(text));
            }
            _ = closing.cancelled() => break End::Shutdown,
        }
    };

    let close = match end {
        End::Gone(why) => {
            debug!(conn = %label, reason = %why, "connection closed");
            return;
        }
        End::Close(reason) => reason,
        End::Failing(reason) => {
            match drain(&mut sock, &mut rx, Some(limits::CLOSE_TIMEOUT)).await {
                Ok(_) => reason,
                Err(why) => {
                    debug!(conn = %label, reason = %why, "connection closed");
                    return;
                }
            }
        }
        End::Shutdown => match drain(&mut sock, &mut rx, None).await {
            Ok(Some(reason)) => reason,
            Ok(None) => CloseReason::going_away("router shutting down"),
            Err(why) => {
                debug!(conn = %label, reason = %why, "connection closed");
                return;
            }
        },
    };
    // The session (if any) ends now; the close handshake below is the socket's business.
    drop(conn);
    debug!(conn = %label, code = close.code, reason = %close.text, "closing connection");
    if let Err(why) = sock.flush().await {
        debug!(conn = %label, reason = %why, "connection lost while closing");
        return;
    }
    sock.close(&close).await;
}

fn write_error_end(e: WriteError) -> End {
    match e {
        WriteError::Gone(why) => End::Gone(why),
        WriteError::Close(reason) => End::Close(reason),
    }
}

/// Writes `first` and whatever else is queued (up to the batch limit), then flushes once.
async fn write_batch<S: WampSocket>(
    sock: &mut S,
    rx: &mut PeerReceiver,
    first: Bytes,
) -> Result<(), End> {
    sock.write(first).await.map_err(write_error_end)?;
    let mut close = None;
    for _ in 1..limits::WRITE_BATCH_MAX_MESSAGES {
        match rx.try_recv() {
            Some(Outbound::Message(bytes)) => sock.write(bytes).await.map_err(write_error_end)?,
            Some(Outbound::Close(reason)) => {
                close = Some(reason);
                break;
            }
            None => break,
        }
    }
    sock.flush().await.map_err(End::Gone)?;
    match close {
        Some(reason) => Err(End::Close(reason)),
        None => Ok(()),
    }
}

/// Writes what the core queues until it asks to close (its reason is returned), the queue ends,
/// or `wait` passes; without `wait`, only what is queued now.
async fn drain<S: WampSocket>(
    sock: &mut S,
    rx: &mut PeerReceiver,
    wait: Option<Duration>,
) -> Result<Option<CloseReason>, String> {
    let deadline = wait.map(|w| tokio::time::Instant::now() + w);
    loop {
        let next = match deadline {
            Some(d) => match tokio::time::timeout_at(d, rx.recv()).await {
                Ok(next) => next,
                Err(_) => return Ok(None),
            },
            None => rx.try_recv(),
        };
        match next {
            Some(Outbound::Message(bytes)) => match sock.write(bytes).await {
                Ok(()) => {}
                Err(WriteError::Gone(why)) => return Err(why),
                Err(WriteError::Close(reason)) => return Ok(Some(reason)),
            },
            Some(Outbound::Close(reason)) => return Ok(Some(reason)),
            None => return Ok(None),
        }
    }
}
