//! One client connection's front door: decodes each received message and hands it to the realm
//! of the connection's current session. Runs in the connection's own task, so decoding happens
//! in parallel across connections; the realm only sees typed messages.

use std::sync::Arc;

use tracing::debug;
use wamp_proto::{uris, Message, Serializer};

use turnstile_core::peer::{ConnId, PeerSender, TransportInfo};

use crate::runtime::realm_task::RealmInput;
use crate::runtime::router::{RealmTx, Router};

/// Where a connection is in the WAMP session life cycle, as far as routing needs to know.
#[derive(Debug)]
enum State {
    /// No session: the next message must be HELLO.
    Idle,
    /// A HELLO was handed to this realm; everything goes there until the client's GOODBYE.
    InSession(RealmTx),
    /// The connection was failed; nothing more is processed.
    Failed,
}

/// A client connection, owned by its transport task.
///
/// Dropping it tells the realm that the connection is gone (after every message handed over
/// before), so the session ends with its final statistics.
#[derive(Debug)]
pub struct Connection {
    id: ConnId,
    router: Arc<Router>,
    info: Arc<TransportInfo>,
    sender: PeerSender,
    state: State,
}

impl Connection {
    pub(crate) fn new(
        id: ConnId,
        router: Arc<Router>,
        info: Arc<TransportInfo>,
        sender: PeerSender,
    ) -> Self {
        Self {
            id,
            router,
            info,
            sender,
            state: State::Idle,
        }
    }

    /// The serializer negotiated by the transport.
    pub fn serializer(&self) -> Serializer {
        self.info.serializer
    }

    /// Whether a session has been asked for (HELLO seen) and not yet ended by the client.
    pub fn in_session(&self) -> bool {
        matches!(self.state, State::InSession(_))
    }

    /// Handles one complete WAMP message received from the client (a WebSocket message payload or
    /// a RawSocket frame payload). Waits only when the realm's inbox is full (backpressure).
    pub async fn handle_message(&mut self, payload: &[u8]) {
        if matches!(self.state, State::Failed) {
            return;
        }
        let len = payload.len();
        let msg = match self.info.serializer.decode(payload) {
            Ok(msg) => msg,
            Err(e) => {
                debug!(conn = self.id, error = %e, "undecodable message");
                self.fail(format!("{e}")).await;
                return;
            }
        };
        match (&self.state, msg) {
            (State::Idle, Message::Hello { realm, details }) => {
                let Some(handle) = self.router.realm(&realm) else {
                    let text = format!("no realm \"{realm}\" exists on this router");
                    self.abort_here(uris::NO_SUCH_REALM, &text);
                    return;
                };
                let tx = handle.tx.clone();
                let input = RealmInput::Hello {
                    conn: self.id,
                    peer: self.sender.clone(),
                    info: self.info.clone(),
                    details,
                    len,
                };
                self.state = State::InSession(tx.clone());
                if tx.send(input).await.is_err() {
                    self.abort_here(uris::CLOSE_SYSTEM_SHUTDOWN, "the realm is shutting down");
                }
            }
            (State::Idle, other) => {
                let text = format!(
                    "received {} before the session was established (expected HELLO)",
                    other.name()
                );
                self.abort_here(uris::PROTOCOL_VIOLATION, &text);
            }
            (State::InSession(tx), msg) => {
                let tx = tx.clone();
                let ends_session = matches!(msg, Message::Goodbye { .. });
                let _ = tx
                    .send(RealmInput::Message {
                        conn: self.id,
                        msg,
                        len,
                    })
                    .await;
                if ends_session {
                    self.state = State::Idle;
                }
            }
            (State::Failed, _) => {}
        }
    }

    /// Fails the connection with ABORT `wamp.error.protocol_violation` and `text`, then closes.
    /// Use for transport-level violations too (for example an oversized message).
    pub async fn fail(&mut self, text: String) {
        match std::mem::replace(&mut self.state, State::Failed) {
            State::InSession(tx) => {
                // The realm sends the ABORT, so it is counted in the session's statistics.
                let _ = tx
                    .send(RealmInput::ProtocolViolation {
                        conn: self.id,
                        text,
                    })
                    .await;
            }
            _ => self.abort_here(uris::PROTOCOL_VIOLATION, &text),
        }
    }

    /// ABORT sent by the connection itself, when there is no session to account it to.
    fn abort_here(&mut self, reason: &str, text: &str) {
        self.state = State::Failed;
        self.sender
            .abort_and_close(self.info.serializer, reason, text, 1002);
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        let tx = match std::mem::replace(&mut self.state, State::Failed) {
            State::InSession(tx) => tx,
            // A connection that failed while in a session already told its realm.
            _ => return,
        };
        let conn = self.id;
        // The realm must see the disconnect after every message this connection handed over,
        // so it goes through the same inbox; sending may wait, hence a task.
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                let _ = tx.send(RealmInput::Disconnected { conn }).await;
            });
        }
    }
}
