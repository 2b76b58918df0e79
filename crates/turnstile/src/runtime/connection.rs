//! One client connection's front door: decodes each received message and hands it to the realm
//! of the connection's current session. Runs in the connection's own task, so decoding happens
//! in parallel across connections; the realm only sees typed messages.
//!
//! The session's life cycle (authenticating, joined, closing) is tracked once, by the realm
//! (`turnstile_core::session::SessionState`); the connection only remembers which realm its
//! messages go to, or that it has failed.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tracing::debug;
use wamp_proto::{uris, Message};

use turnstile_core::peer::{ConnId, PeerSender, TransportInfo};

use crate::limits;
use crate::runtime::realm_task::RealmInput;
use crate::runtime::router::{RealmTx, Router};
use crate::transport::AuthSlot;

/// Where the connection's messages go. Not a session life cycle: whether the session in that
/// realm is authenticating, joined or closing is the realm's business.
#[derive(Debug)]
enum Route {
    /// No realm: the next message must be HELLO.
    NoRealm,
    /// A HELLO was handed to this realm; everything goes there until the client's GOODBYE.
    Realm(RealmTx),
    /// The connection was failed; nothing more is processed.
    Failed,
}

/// A client connection, owned by its transport task.
///
/// Dropping it tells the realm that the connection is gone (after every message handed over
/// before), so the session ends with its final statistics.
#[derive(Debug)]
pub(crate) struct Connection {
    id: ConnId,
    router: Arc<Router>,
    info: Arc<TransportInfo>,
    /// The transport's `auth` section now: a configuration reload may have replaced the one
    /// in `info` since the connection opened.
    auth: AuthSlot,
    sender: PeerSender,
    route: Route,
    /// When the first session must be welcomed: [`limits::HANDSHAKE_TIMEOUT`] after the
    /// connection opened, set by the transport (which itself closes a connection that sends no
    /// HELLO by then). Taken by the first HELLO; later sessions count from their HELLO.
    handshake_deadline: Option<Instant>,
    /// How long a session has from its HELLO when it is not the first one of the connection.
    handshake_timeout: Duration,
}

impl Connection {
    pub(crate) fn new(
        id: ConnId,
        router: Arc<Router>,
        info: Arc<TransportInfo>,
        auth: AuthSlot,
        sender: PeerSender,
    ) -> Self {
        Self {
            id,
            router,
            info,
            auth,
            sender,
            route: Route::NoRealm,
            handshake_deadline: None,
            handshake_timeout: limits::HANDSHAKE_TIMEOUT,
        }
    }

    /// Sets the deadline of the first session's handshake (see [`limits::HANDSHAKE_TIMEOUT`]),
    /// which the realm enforces from HELLO to WELCOME, and the time later sessions of the
    /// connection get from their HELLO.
    pub(crate) fn set_handshake_deadline(&mut self, deadline: Instant, timeout: Duration) {
        self.handshake_deadline = Some(deadline);
        self.handshake_timeout = timeout;
    }

    /// Whether a HELLO has been handed to a realm (whose session may still be authenticating)
    /// and the client has not said GOODBYE since.
    pub(crate) fn in_realm(&self) -> bool {
        matches!(self.route, Route::Realm(_))
    }

    /// Handles one complete WAMP message received from the client (a WebSocket message payload or
    /// a RawSocket frame payload). Waits only when the realm's inbox is full (backpressure).
    pub(crate) async fn handle_message(&mut self, payload: &[u8]) {
        if matches!(self.route, Route::Failed) {
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
        match (&self.route, msg) {
            (Route::NoRealm, Message::Hello { realm, details }) => {
                let Some(handle) = self.router.realm(&realm) else {
                    let text = format!("no realm \"{realm}\" exists on this router");
                    self.abort_here(uris::NO_SUCH_REALM, &text);
                    return;
                };
                let tx = handle.tx;
                self.refresh_auth();
                let input = RealmInput::Hello {
                    conn: self.id,
                    peer: self.sender.clone(),
                    info: self.info.clone(),
                    details,
                    len,
                    handshake_deadline: self
                        .handshake_deadline
                        .take()
                        .unwrap_or_else(|| Instant::now() + self.handshake_timeout),
                };
                self.route = Route::Realm(tx.clone());
                if tx.send(input).await.is_err() {
                    self.abort_here(uris::CLOSE_SYSTEM_SHUTDOWN, "the realm is shutting down");
                }
            }
            (Route::NoRealm, other) => {
                let text = format!(
                    "received {} before the session was established (expected HELLO)",
                    other.name()
                );
                self.abort_here(uris::PROTOCOL_VIOLATION, &text);
            }
            (Route::Realm(tx), msg) => {
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
                    self.route = Route::NoRealm;
                }
            }
            (Route::Failed, _) => {}
        }
    }

    /// Takes the transport's `auth` section as it is now, for the session about to start.
    fn refresh_auth(&mut self) {
        let auth = self.auth.current();
        let same = match (&auth, &self.info.auth) {
            (Some(a), Some(b)) => Arc::ptr_eq(a, b),
            (None, None) => true,
            _ => false,
        };
        if !same {
            let mut info = TransportInfo::clone(&self.info);
            info.auth = auth;
            self.info = Arc::new(info);
        }
    }

    /// Fails the connection with ABORT `wamp.error.protocol_violation` and `text`, then closes.
    /// Use for transport-level violations too (for example an oversized message).
    pub(crate) async fn fail(&mut self, text: String) {
        match std::mem::replace(&mut self.route, Route::Failed) {
            Route::Realm(tx) => {
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
        self.route = Route::Failed;
        self.sender
            .abort_and_close(self.info.serializer, reason, text, 1002);
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        let tx = match std::mem::replace(&mut self.route, Route::Failed) {
            Route::Realm(tx) => tx,
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
