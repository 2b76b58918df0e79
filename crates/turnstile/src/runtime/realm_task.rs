//! The thin async shell around a [`Realm`]: one task per realm that feeds it inputs from its
//! connections and wakes it at its next timer deadline. All routing state lives in the realm and
//! is touched only by this task, so the routing path takes no lock.

use std::sync::{Arc, RwLock};
use std::time::Instant;

use std::collections::HashMap;

use tokio::sync::{mpsc, oneshot};
use turnstile_config::RealmConfig;
use turnstile_core::dealer::{CallFailure, InternalCallOutcome};
use turnstile_core::peer::{ConnId, PeerSender, TransportInfo};
use turnstile_core::realm::{CallPurpose, Effect, Realm, ReplyToken};
use wamp_proto::{Dict, List, Message};

use crate::ledger::LedgerSink;
use crate::limits;

/// What connections and the router tell a realm.
#[derive(Debug)]
pub(crate) enum RealmInput {
    /// A HELLO for this realm from a connection without a session.
    Hello {
        conn: ConnId,
        peer: PeerSender,
        info: Arc<TransportInfo>,
        details: Dict,
        /// Serialized length of the HELLO, for metering.
        len: usize,
        /// When the session must have been welcomed (see `limits::HANDSHAKE_TIMEOUT`).
        handshake_deadline: Instant,
    },
    /// Any other message from a connection in a session of this realm.
    Message {
        conn: ConnId,
        msg: Message,
        len: usize,
    },
    /// The connection received something it could not decode: ABORT and close.
    ProtocolViolation { conn: ConnId, text: String },
    /// The connection is gone.
    Disconnected { conn: ConnId },
    /// Say GOODBYE to every session; answer `done` when the last one has left.
    Shutdown { done: oneshot::Sender<()> },
    /// A configuration reload changed this realm's configuration.
    Config(Box<RealmConfig>),
    /// A configuration reload removed this realm: end its sessions (GOODBYE
    /// `wamp.close.close_realm`), then stop the task.
    Removed,
    /// The answer to a call this realm asked its shell to make.
    CallDone {
        purpose: CallPurpose,
        outcome: InternalCallOutcome,
    },
    /// Call a procedure registered in this realm on the router's behalf (dynamic authenticators
    /// and authorizers, possibly for another realm).
    InternalCall {
        procedure: String,
        args: List,
        kwargs: Option<Dict>,
        reply: oneshot::Sender<InternalCallOutcome>,
    },
}

/// A connection's way into a realm.
#[derive(Debug, Clone)]
pub(crate) struct RealmHandle {
    pub tx: mpsc::Sender<RealmInput>,
}

/// The realms of a router worker by name: where connections find the realm of their HELLO, and
/// calls from one realm into another. Read at HELLO (not on the routing path) and changed only
/// by a configuration reload, hence a plain lock.
pub(crate) type RealmRegistry = Arc<RwLock<HashMap<String, RealmHandle>>>;

/// Creates the inbox of a realm; the task is started by [`spawn_realm`] once every realm's
/// inbox exists (so that realms can call each other).
pub(crate) fn realm_inbox() -> (RealmHandle, mpsc::Receiver<RealmInput>) {
    let (tx, rx) = mpsc::channel(limits::REALM_INBOX_CAPACITY);
    (RealmHandle { tx }, rx)
}

/// Starts the task of one realm; with a `ledger`, its closed statistics cycles are recorded
/// there.
pub(crate) fn spawn_realm(
    config: RealmConfig,
    me: RealmHandle,
    inbox: mpsc::Receiver<RealmInput>,
    registry: RealmRegistry,
    ledger: Option<LedgerSink>,
) {
    let mut realm = Realm::new(config, Instant::now());
    if ledger.is_some() {
        realm.record_usage();
    }
    tokio::spawn(run(
        realm,
        inbox,
        Shell {
            me,
            registry,
            ledger,
        },
    ));
}

/// What the shell needs to carry out a realm's effects.
struct Shell {
    me: RealmHandle,
    registry: RealmRegistry,
    /// Where closed statistics cycles go, if the node keeps a usage ledger.
    ledger: Option<LedgerSink>,
}

impl Shell {
    /// Carries out one effect of the realm: a call into a realm, or the answer to a call made
    /// into this one (handed to its waiter in `replies`).
    fn carry_out(&self, effect: Effect, replies: &mut Replies) {
        match effect {
            Effect::Call {
                realm,
                procedure,
                args,
                purpose,
            } => self.call(realm, procedure, args, purpose),
            Effect::Answer { reply, outcome } => {
                if let Some(waiter) = replies.waiting.remove(&reply) {
                    let _ = waiter.send(outcome);
                }
            }
        }
    }

    /// Calls a procedure in a realm (maybe this one) without blocking this realm's task: the
    /// outcome, or a timeout, comes back to this realm as [`RealmInput::CallDone`].
    fn call(&self, realm: String, procedure: String, args: List, purpose: CallPurpose) {
        let me = self.me.tx.clone();
        let target = self
            .registry
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&realm)
            .map(|h| h.tx.clone());
        tokio::spawn(async move {
            let outcome = match target {
                None => Err(failure(
                    "wamp.error.no_such_realm",
                    format!("no realm \"{realm}\" to call {procedure} in"),
                )),
                Some(target) => {
                    let (reply, answer) = oneshot::channel();
                    let call = RealmInput::InternalCall {
                        procedure: procedure.clone(),
                        args,
                        kwargs: None,
                        reply,
                    };
                    if target.send(call).await.is_err() {
                        Err(failure(
                            wamp_proto::uris::CANCELED,
                            "the realm is shutting down".into(),
                        ))
                    } else {
                        match tokio::time::timeout(limits::ROUTER_CALL_TIMEOUT, answer).await {
                            Ok(Ok(outcome)) => outcome,
                            Ok(Err(_)) => Err(failure(
                                wamp_proto::uris::CANCELED,
                                format!("{procedure} did not answer (its callee left)"),
                            )),
                            Err(_) => Err(failure(
                                wamp_proto::uris::TIMEOUT,
                                format!(
                                    "{procedure} did not answer within {:?}",
                                    limits::ROUTER_CALL_TIMEOUT
                                ),
                            )),
                        }
                    }
                }
            };
            let _ = me.send(RealmInput::CallDone { purpose, outcome }).await;
        });
    }
}

fn failure(error: &str, text: String) -> CallFailure {
    CallFailure {
        error: error.into(),
        args: Some(vec![wamp_proto::Value::from(text)]),
        kwargs: None,
    }
}

/// Inputs handled between two timer checks, so a busy realm still serves its timers.
const INPUT_BATCH: usize = 256;

/// The waiters of calls made into this realm by the router (from this or another realm's task),
/// by the token the realm answers them with.
#[derive(Default)]
struct Replies {
    waiting: HashMap<ReplyToken, oneshot::Sender<InternalCallOutcome>>,
    next: ReplyToken,
}

impl Replies {
    fn add(&mut self, waiter: oneshot::Sender<InternalCallOutcome>) -> ReplyToken {
        self.next += 1;
        self.waiting.insert(self.next, waiter);
        self.next
    }
}

async fn run(mut realm: Realm, mut rx: mpsc::Receiver<RealmInput>, shell: Shell) {
    let mut shutdown_waiters: Vec<oneshot::Sender<()>> = Vec::new();
    // Set when a reload removed the realm: the task ends once its sessions are gone.
    let mut removed = false;
    let mut replies = Replies::default();
    let sleep = tokio::time::sleep_until(tokio::time::Instant::now());
    tokio::pin!(sleep);
    let mut armed: Option<Instant> = None;
    loop {
        let deadline = realm.poll_timeout();
        if deadline != armed {
            if let Some(d) = deadline {
                sleep.as_mut().reset(tokio::time::Instant::from_std(d));
            }
            armed = deadline;
        }
        tokio::select! {
            input = rx.recv() => {
                let Some(input) = input else { break };
                // One clock read per batch: the inputs of a batch arrived together.
                let now = Instant::now();
                dispatch(&mut realm, input, now, &mut shutdown_waiters, &mut replies, &mut removed);
                for _ in 0..INPUT_BATCH {
                    match rx.try_recv() {
                        Ok(input) => dispatch(&mut realm, input, now, &mut shutdown_waiters, &mut replies, &mut removed),
                        Err(_) => break,
                    }
                }
            }
            _ = &mut sleep, if armed.is_some() => {
                armed = None;
                realm.handle_timeout(Instant::now());
            }
        }
        while let Some(effect) = realm.poll_effect() {
            shell.carry_out(effect, &mut replies);
        }
        // Before a shutdown waiter hears that the realm is drained: the server stops the
        // ledger after that, and the final cycles must be in it.
        if let Some(ledger) = &shell.ledger {
            while let Some(row) = realm.poll_usage() {
                ledger.record(row);
            }
        }
        if !shutdown_waiters.is_empty() && realm.is_drained() {
            for w in shutdown_waiters.drain(..) {
                let _ = w.send(());
            }
        }
        if removed && realm.is_drained() {
            // Connections that still hold the inbox only have messages for ended sessions.
            break;
        }
    }
}

fn dispatch(
    realm: &mut Realm,
    input: RealmInput,
    now: Instant,
    waiters: &mut Vec<oneshot::Sender<()>>,
    replies: &mut Replies,
    removed: &mut bool,
) {
    match input {
        RealmInput::Hello {
            conn,
            peer,
            info,
            details,
            len,
            handshake_deadline,
        } => realm.handle_hello(conn, peer, info, details, len, handshake_deadline, now),
        RealmInput::Message { conn, msg, len } => realm.handle_message(conn, msg, len, now),
        RealmInput::ProtocolViolation { conn, text } => {
            realm.handle_protocol_violation(conn, &text, now)
        }
        RealmInput::Disconnected { conn } => realm.handle_disconnected(conn, now),
        RealmInput::InternalCall {
            procedure,
            args,
            kwargs,
            reply,
        } => {
            let token = replies.add(reply);
            realm.handle_internal_call(&procedure, args, kwargs, token, now)
        }
        RealmInput::CallDone { purpose, outcome } => realm.handle_call_done(purpose, outcome, now),
        RealmInput::Shutdown { done } => {
            realm.handle_shutdown(now);
            waiters.push(done);
        }
        RealmInput::Config(config) => realm.handle_config(*config, now),
        RealmInput::Removed => {
            realm.handle_removed(now);
            *removed = true;
        }
    }
}
