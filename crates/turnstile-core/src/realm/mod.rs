//! A realm: its sessions, broker, dealer, authorization, metering and meta API, driven by
//! `handle_*` inputs and queueing serialized messages to the sessions' connections.
//!
//! Everything here runs on the realm's own task (the runtime's realm task), so no state is shared
//! and nothing is locked. Every message to a client goes through `Realm::send` or
//! `Realm::send_bytes`, which is where sent messages are metered; received ones are metered in
//! the `handle_*` entry points, so each message is counted exactly once.
//!
//! # What each part owns
//! [`Realm`] composes its parts; this file has the `handle_*`/`poll_*` entry points, dispatch and
//! sending, and each other file handles one part:
//! - the sessions (`Sessions`, by connection and by id) and their life cycle
//!   (`SessionState`: authentication, WELCOME, GOODBYE, leaving): `life_cycle.rs`;
//! - pub/sub (the `Broker`: subscriptions, retained events, histories): `pubsub.rs`;
//! - RPC (`rpc::Rpc`: the `Dealer`, the `Calls` in flight, the router's own calls): `rpc.rs`;
//! - the authorization step (static `permissions` or a dynamic authorizer): `authorize.rs`;
//! - metering (`wamp.session.on_stats`): `metering.rs`;
//! - the per-session message rate limit: `rate_limit.rs`;
//! - the meta API (procedures reading the other parts): `meta.rs`;
//! - a new configuration while running (`handle_config`, `handle_removed`): `reload.rs`.
//!
//! A request's session is resolved once when it is dispatched (`Origin`); a session that
//! leaves is removed from each part by that part (`Broker::detach`, `Dealer::detach`,
//! `end_calls_of`): detached at once, its subscriptions and registrations are then removed in
//! bounded steps driven by `poll_timeout`/`handle_timeout` (`life_cycle.rs`, `clean_up`).

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use tracing::{debug, info, warn};
use turnstile_config::{RealmConfig, RealmOptions, StatsConfig};
use wamp_proto::message::code;
use wamp_proto::uri::is_valid_uri;
use wamp_proto::{dict, random_id, uris, Dict, Id, List, MatchPolicy, Message, Value};

use crate::auth::{AuthAction, AuthFlow, AuthRequest};
use crate::broker::Broker;
use crate::clock::Clock;
use crate::dealer::InternalCallOutcome;
use crate::dealer::{InvokePolicy, RegisterError};
use crate::departures::Removal;
use crate::limits;
use crate::meter::{CountKind, Meter};
use crate::peer::ConnId;
use crate::peer::{close_text, CloseReason, PeerSender, SendError, TransportInfo};
use crate::permissions::{Action, Decision, Roles, TRUSTED_ROLE};
use crate::session::{Identity, Session, SessionState, Sessions};
use crate::timer::{Timer, TimerKind, TimerTable};

mod authorize;
mod life_cycle;
mod meta;
mod metering;
mod options;
mod pubsub;
pub(crate) mod rate_limit;
mod reload;
mod rpc;

pub use metering::UsageRow;

/// Topics of the session meta events.
pub(crate) mod topic {
    pub(crate) const ON_JOIN: &str = "wamp.session.on_join";
    pub(crate) const ON_LEAVE: &str = "wamp.session.on_leave";
    pub(crate) const ON_STATS: &str = "wamp.session.on_stats";
    pub(crate) const SUB_ON_CREATE: &str = "wamp.subscription.on_create";
    pub(crate) const SUB_ON_SUBSCRIBE: &str = "wamp.subscription.on_subscribe";
    pub(crate) const SUB_ON_UNSUBSCRIBE: &str = "wamp.subscription.on_unsubscribe";
    pub(crate) const SUB_ON_DELETE: &str = "wamp.subscription.on_delete";
    pub(crate) const REG_ON_CREATE: &str = "wamp.registration.on_create";
    pub(crate) const REG_ON_REGISTER: &str = "wamp.registration.on_register";
    pub(crate) const REG_ON_UNREGISTER: &str = "wamp.registration.on_unregister";
    pub(crate) const REG_ON_DELETE: &str = "wamp.registration.on_delete";
}

/// Why a realm closes all its sessions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Closing {
    /// The router stops.
    Shutdown,
    /// A configuration reload removed the realm.
    Removed,
}

impl Closing {
    /// The reason of the GOODBYE to its sessions.
    fn goodbye_reason(self) -> &'static str {
        match self {
            Closing::Shutdown => uris::CLOSE_SYSTEM_SHUTDOWN,
            Closing::Removed => uris::CLOSE_REALM,
        }
    }

    /// The reason of the ABORT to a HELLO (or a session still authenticating).
    fn abort_reason(self) -> &'static str {
        match self {
            Closing::Shutdown => uris::CLOSE_SYSTEM_SHUTDOWN,
            Closing::Removed => uris::NO_SUCH_REALM,
        }
    }

    /// The message of both, and the close reason of the connections.
    fn text(self) -> &'static str {
        match self {
            Closing::Shutdown => "the router is shutting down",
            Closing::Removed => "the realm was removed from the router's configuration",
        }
    }
}

/// The authid of the realm's own service session, which publishes meta events.
pub(crate) const SERVICE_AUTHID: &str = "turnstile-service";

/// Why a session ended, for the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum EndCause {
    /// The client said GOODBYE (and got our reply), or answered ours.
    Goodbye,
    ConnectionLost,
    ProtocolViolation,
    SlowConsumer,
    GoodbyeTimeout,
    ClientAbort,
}

impl EndCause {
    fn as_str(self) -> &'static str {
        match self {
            EndCause::Goodbye => "goodbye",
            EndCause::ConnectionLost => "connection lost",
            EndCause::ProtocolViolation => "protocol violation",
            EndCause::SlowConsumer => "slow consumer",
            EndCause::GoodbyeTimeout => "no reply to GOODBYE",
            EndCause::ClientAbort => "client sent ABORT",
        }
    }

    /// How the session ended, as its final [`UsageRow`] records it (one of
    /// [`UsageRow::ENDINGS`]).
    fn ledger_name(self) -> &'static str {
        match self {
            EndCause::Goodbye => "goodbye",
            EndCause::ConnectionLost => "connection_lost",
            EndCause::ProtocolViolation => "protocol_violation",
            EndCause::SlowConsumer => "slow_consumer",
            EndCause::GoodbyeTimeout => "goodbye_timeout",
            EndCause::ClientAbort => "client_abort",
        }
    }
}

/// A request-scoped failure: answered with ERROR, the session goes on.
#[derive(Debug)]
struct RequestError {
    uri: &'static str,
    text: String,
}

impl RequestError {
    fn new(uri: &'static str, text: impl Into<String>) -> Self {
        Self {
            uri,
            text: text.into(),
        }
    }

    /// A request refused because session `s` holds `limit` `what` already (logged as a warning,
    /// at most once every [`limits::LIMIT_LOG_INTERVAL`] per session, with the count since the
    /// last line); `remedy` tells the client how to get under the limit again.
    fn limit_exceeded(s: &Session, what: &str, limit: usize, remedy: &str, now: Instant) -> Self {
        if let Some(refused) = s.limit_warnings.due(now) {
            warn!(
                session = s.id,
                authid = %s.identity.authid,
                limit,
                refused,
                "session reached its limit of {what}; request refused"
            );
        }
        Self::new(
            limits::LIMIT_EXCEEDED,
            format!("session has reached its limit of {limit} {what}: {remedy}"),
        )
    }
}

/// A request being handled, its session resolved once when it is dispatched: the session's
/// connection and id, and the dynamic authorizer's decision on the request when it had to wait
/// for one (else the decision is taken when the request is checked).
#[derive(Debug, Clone, Copy)]
struct Origin {
    conn: ConnId,
    session: Id,
    decided: Option<Decision>,
}

/// The token with which the runtime hands the realm a call of its own
/// ([`Realm::handle_internal_call`]) and recognises the answer ([`Effect::Answer`]).
pub type ReplyToken = u64;

/// A side effect the realm asks its shell to carry out.
#[derive(Debug)]
pub enum Effect {
    /// Call `procedure` in `realm` (maybe this one) as the router; the outcome comes back
    /// through [`Realm::handle_call_done`] with `purpose`.
    Call {
        /// The realm the procedure is registered in.
        realm: String,
        /// The procedure URI (a dynamic authenticator or authorizer).
        procedure: String,
        /// The call's positional arguments.
        args: List,
        /// What the answer is for, handed back with it.
        purpose: CallPurpose,
    },
    /// The outcome of the call handed in by [`Realm::handle_internal_call`] with `reply`.
    Answer {
        /// The token the call was handed in with.
        reply: ReplyToken,
        /// The call's result or error.
        outcome: InternalCallOutcome,
    },
}

/// Why the router called a procedure, and for which session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallPurpose {
    /// A dynamic authenticator deciding about a session being established.
    Authenticate {
        /// The connection whose HELLO is being authenticated.
        conn: ConnId,
        /// The id of the session being established.
        session: Id,
    },
    /// A dynamic authorizer deciding about a session's pending action.
    Authorize {
        /// The connection of the session whose action waits.
        conn: ConnId,
        /// The id of that session.
        session: Id,
    },
}

/// How many entries each table of a realm holds ([`Realm::table_sizes`]), indexes included:
/// what the realm keeps per session, subscription, registration, call and deadline. In a realm
/// without sessions every field is 0 but `retained_topics`: a retained event outlives its
/// publisher by design (at most [`limits::MAX_RETAINED_TOPICS`] of them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TableSizes {
    /// Sessions, by connection and by session id.
    pub sessions: usize,
    /// Subscriptions (by URI, by id, patterns) and the per-subscriber index.
    pub subscriptions: usize,
    /// Registrations (by URI, by id, patterns) and the per-callee index.
    pub registrations: usize,
    /// Calls in flight.
    pub calls_in_flight: usize,
    /// The per-caller and per-callee indexes of the calls in flight.
    pub call_indexes: usize,
    /// Calls the router made itself (dynamic authenticators, authorizers) not answered yet.
    pub internal_calls: usize,
    /// Deadlines, including those that will do nothing when they fire.
    pub timers: usize,
    /// Effects not polled yet, and sessions to end after the current input.
    pub pending: usize,
    /// Topics with a retained event.
    pub retained_topics: usize,
}

impl TableSizes {
    /// Whether everything a session can leave behind is gone: every field but
    /// `retained_topics` is 0.
    pub fn is_empty_but_retained(&self) -> bool {
        *self
            == Self {
                retained_topics: self.retained_topics,
                ..Self::default()
            }
    }
}

/// One realm of the router.
#[derive(Debug)]
pub struct Realm {
    name: String,
    options: RealmOptions,
    stats: Option<StatsConfig>,
    /// The roles of the realm and their static permissions (or dynamic authorizer).
    roles: Roles,
    clock: Clock,
    /// The time of the input being handled.
    now: Instant,
    sessions: Sessions,
    /// The pub/sub side: subscriptions, retained events, event histories.
    broker: Broker,
    /// The RPC side: registrations, calls in flight, the router's own calls.
    rpc: rpc::Rpc,
    timers: TimerTable,
    /// The session id of the realm's service session (publisher of meta events).
    service_id: Id,
    shutting_down: bool,
    /// Why the sessions are told to go once `shutting_down`.
    closing: Closing,
    /// Sessions whose connection failed while something was queued for it; ended after the
    /// current input, so that no handler sees a session vanish under it.
    doomed: Vec<(ConnId, EndCause)>,
    welcome_roles: Value,
    /// Side effects for the shell, in order: calls into other realms (dynamic authenticators,
    /// authorizers) and answers to the calls the shell handed in.
    effects: VecDeque<Effect>,
    /// The per-session limits (subscriptions, registrations, calls in flight).
    session_limits: limits::SessionLimits,
    /// HELLOs of connections whose previous session is still being cleaned up: subscriber and
    /// callee lists hold connections, so a connection's next session starts once its previous
    /// one is out of them (`start_deferred_hellos`).
    deferred_hellos: Vec<DeferredHello>,
    /// Closed statistics cycles for the shell's usage ledger, oldest first; `None` while the
    /// shell does not record usage ([`Realm::record_usage`]).
    usage: Option<VecDeque<UsageRow>>,
}

/// A HELLO waiting for its connection's previous session to be cleaned up.
#[derive(Debug)]
struct DeferredHello {
    conn: ConnId,
    peer: PeerSender,
    info: Arc<TransportInfo>,
    details: Dict,
    len: usize,
    handshake_deadline: Instant,
}

impl Realm {
    /// A realm with no session yet, configured by `config`; its wall clock is anchored at `now`.
    pub fn new(config: RealmConfig, now: Instant) -> Self {
        let welcome_roles = Value::Dict(dict! {
            "broker" => Value::Dict(dict! {"features" => Value::Dict(broker_features(&config.options))}),
            "dealer" => Value::Dict(dict! {"features" => Value::Dict(dealer_features(&config.options))}),
        });
        let broker = Broker::with_histories(
            config
                .event_history
                .iter()
                .map(|h| crate::broker::History {
                    uri: h.uri.clone(),
                    policy: h.match_policy,
                    limit: h.limit,
                    events: Default::default(),
                })
                .collect(),
        );
        Self {
            roles: Roles::new(&config.roles),
            name: config.name,
            options: config.options,
            stats: config.stats,
            clock: Clock::anchored(now),
            now,
            sessions: Sessions::default(),
            broker,
            rpc: rpc::Rpc::default(),
            timers: TimerTable::default(),
            service_id: random_id(),
            shutting_down: false,
            closing: Closing::Shutdown,
            doomed: Vec::new(),
            welcome_roles,
            effects: VecDeque::new(),
            session_limits: limits::SessionLimits::from_config(&config.limits),
            deferred_hellos: Vec::new(),
            usage: None,
        }
    }

    /// Replaces the per-session limits (at first those of the realm's configuration,
    /// [`limits::SessionLimits::from_config`]). Applies to requests from now on; nothing a
    /// session already holds is taken away, and a changed message rate starts each session
    /// with a full bucket at the new rate.
    pub fn set_session_limits(&mut self, session_limits: limits::SessionLimits) {
        self.session_limits = session_limits;
    }

    /// Number of sessions (joined or closing).
    #[cfg(test)]
    pub(crate) fn session_count(&self) -> usize {
        self.sessions.len()
    }

    /// The sizes of the realm's tables: for tests and fuzzing to check that what sessions
    /// leave behind is removed with them.
    pub fn table_sizes(&self) -> TableSizes {
        TableSizes {
            sessions: self.sessions.entries(),
            subscriptions: self.broker.subscription_entries(),
            registrations: self.rpc.dealer.entries(),
            calls_in_flight: self.rpc.calls.len(),
            call_indexes: self.rpc.calls.index_entries(),
            internal_calls: self.rpc.internal_calls_in_flight(),
            timers: self.timers.len(),
            pending: self.effects.len() + self.doomed.len(),
            retained_topics: self.broker.retained_topics(),
        }
    }

    /// Whether shutdown has completed: no session left.
    pub fn is_drained(&self) -> bool {
        self.shutting_down && self.sessions.is_empty()
    }

    // ===== inputs =====

    /// A HELLO from a connection without a session. `handshake_deadline` is when the session
    /// must have been welcomed: [`limits::HANDSHAKE_TIMEOUT`] after the connection opened (the
    /// shell enforces the part before HELLO), or after this HELLO for a later session of the
    /// same connection.
    #[allow(clippy::too_many_arguments)]
    pub fn handle_hello(
        &mut self,
        conn: ConnId,
        peer: PeerSender,
        info: Arc<TransportInfo>,
        details: Dict,
        len: usize,
        handshake_deadline: Instant,
        now: Instant,
    ) {
        self.now = now;
        if self.sessions.contains_key(&conn) {
            self.protocol_violation(conn, "received HELLO while a session is open");
            self.reap();
            return;
        }
        if self.broker.is_detached(conn) || self.rpc.dealer.is_detached(conn) {
            debug!(
                conn,
                "HELLO waits until the connection's previous session is cleaned up"
            );
            self.deferred_hellos.push(DeferredHello {
                conn,
                peer,
                info,
                details,
                len,
                handshake_deadline,
            });
            return;
        }
        // The session's accounting starts with its HELLO: cycle 1 starts now.
        let mut meter = self.stats.as_ref().map(|s| Meter::new(s, now));
        if let Some(m) = meter.as_mut() {
            m.count(len, CountKind::Checked);
        }
        let refuse = |reason: &str, text: &str| {
            debug!(peer = %info.peer, reason, text, "HELLO refused");
            peer.abort_and_close(info.serializer, reason, text, 1008);
        };
        if self.shutting_down {
            return refuse(self.closing.abort_reason(), self.closing.text());
        }
        let client_roles = match details.get("roles") {
            Some(Value::Dict(r)) if !r.is_empty() => r.clone(),
            Some(other) => {
                let text = format!(
                    "HELLO.Details.roles must be a non-empty dict, found {}",
                    other.type_name()
                );
                return refuse(uris::PROTOCOL_VIOLATION, &text);
            }
            None => return refuse(uris::PROTOCOL_VIOLATION, "HELLO.Details.roles is missing"),
        };
        let id = loop {
            let id = random_id();
            if id != self.service_id && self.sessions.conn_of(id).is_none() {
                break id;
            }
        };
        let transport = Session::transport_details(&info);
        let request = AuthRequest {
            realm: &self.name,
            hello: &details,
            session_id: id,
            transport: &transport,
            now_unix_ns: self.clock.unix_ns(now),
            peer_cert: info.peer_cert.as_deref(),
        };
        let (flow, action) = AuthFlow::start(info.auth.as_deref(), &request, &mut rand::rng());
        let pending = Identity {
            authid: details
                .get("authid")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
            authrole: String::new(),
            authmethod: flow.method().map_or("", |m| m.as_str()).to_owned(),
            authprovider: String::new(),
            authextra: Dict::new(),
        };
        let session = Session {
            conn,
            id,
            state: SessionState::Authenticating,
            peer,
            info,
            identity: pending,
            client_roles,
            meter,
            stats_timer: 0,
            goodbye_timer: 0,
            doomed: false,
            testaments: Vec::new(),
            removal_events: Vec::new(),
            auth: Some(Box::new(flow)),
            blocked: None,
            decision_cache: Default::default(),
            rate: None,
            limit_warnings: Default::default(),
        };
        self.sessions.insert(session);
        self.timers.insert(Timer {
            at: handshake_deadline,
            conn,
            session: id,
            kind: TimerKind::Handshake,
            generation: 0,
        });
        self.carry_out(conn, action);
        self.reap();
    }

    /// The answer of a call the router made on behalf of one of this realm's sessions.
    pub fn handle_call_done(
        &mut self,
        purpose: CallPurpose,
        outcome: InternalCallOutcome,
        now: Instant,
    ) {
        self.now = now;
        match purpose {
            CallPurpose::Authenticate { conn, session } => {
                let Some(s) = self.sessions.get_mut(&conn) else {
                    return;
                };
                if s.id != session || s.state != SessionState::Authenticating {
                    return;
                }
                let Some(flow) = s.auth.as_mut() else { return };
                let result = match outcome {
                    Ok(r) => Ok(r
                        .args
                        .and_then(|a| a.into_iter().next())
                        .unwrap_or(Value::Null)),
                    Err(e) => Err((e.error, e.args)),
                };
                let action = flow.handle_authenticator_result(result);
                self.carry_out(conn, action);
            }
            CallPurpose::Authorize { conn, session } => {
                self.handle_authorizer_result(conn, session, outcome);
            }
        }
        self.reap();
    }

    /// The next side effect the shell must carry out (calls to other realms).
    pub fn poll_effect(&mut self) -> Option<Effect> {
        self.effects.pop_front()
    }

    /// Any message but the first HELLO from a connection in this realm.
    pub fn handle_message(&mut self, conn: ConnId, msg: Message, len: usize, now: Instant) {
        self.now = now;
        let Some(session) = self.sessions.get_mut(&conn) else {
            // A message that crossed the session's end (ABORT, kill, slow consumer): the
            // connection is being closed; nothing to account it to.
            debug!(
                conn,
                message = msg.name(),
                "message for a connection without session"
            );
            return;
        };
        let due = session
            .meter
            .as_mut()
            .is_some_and(|m| m.count(len, CountKind::Checked));
        let state = session.state;
        if due && state == SessionState::Joined {
            self.take_snapshot(conn);
        }
        match state {
            SessionState::Authenticating => self.on_handshake_message(conn, msg),
            SessionState::Joined | SessionState::Joining => {
                if self.within_rate(conn, &msg) {
                    self.on_message(conn, msg)
                }
            }
            SessionState::Closing => {
                // After the router's GOODBYE only the client's GOODBYE matters.
                if let Message::Goodbye { .. } = msg {
                    self.end_session(conn, EndCause::Goodbye, None);
                }
            }
        }
        self.reap();
    }

    /// The connection received bytes it could not decode.
    pub fn handle_protocol_violation(&mut self, conn: ConnId, text: &str, now: Instant) {
        self.now = now;
        self.protocol_violation(conn, text);
        self.reap();
    }

    /// The connection is gone.
    pub fn handle_disconnected(&mut self, conn: ConnId, now: Instant) {
        self.now = now;
        self.deferred_hellos.retain(|h| h.conn != conn);
        if self.sessions.contains_key(&conn) {
            self.end_session(conn, EndCause::ConnectionLost, None);
        }
        self.reap();
    }

    /// The router is stopping: GOODBYE to every session, then wait (bounded) for the replies.
    ///
    /// Sessions that watch the session meta events (monitors, billing collectors) are told last,
    /// once every other session has left, so that they receive everyone's final statistics and
    /// `on_leave`.
    pub fn handle_shutdown(&mut self, now: Instant) {
        self.now = now;
        self.close_all(Closing::Shutdown);
        self.reap();
    }

    /// Starts closing the realm (router shutdown or realm removed): GOODBYE to every session
    /// but the monitors, which `continue_shutdown` tells once the others are gone.
    fn close_all(&mut self, closing: Closing) {
        self.shutting_down = true;
        self.closing = closing;
        let (reason, text) = (closing.goodbye_reason(), closing.text());
        let conns: Vec<ConnId> = self
            .sessions
            .keys()
            .copied()
            .filter(|c| !self.is_session_monitor(*c))
            .collect();
        for conn in conns {
            self.say_goodbye(conn, reason, text);
        }
    }

    /// The earliest timer deadline, for the shell's sleep; the time of the last input (that is,
    /// at once) while sessions that left are being cleaned up.
    pub fn poll_timeout(&mut self) -> Option<Instant> {
        let timer = self.timers.next_deadline();
        let cleanup = (self.broker.has_departures()
            || self.rpc.dealer.has_departures()
            || !self.deferred_hellos.is_empty())
        .then_some(self.now);
        match (timer, cleanup) {
            (Some(t), Some(c)) => Some(t.min(c)),
            (t, c) => t.or(c),
        }
    }

    /// Fires every timer due at `now`, and takes one step ([`limits::CLEANUP_BATCH`] entries)
    /// of the cleanup of sessions that left.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.now = now;
        while let Some(timer) = self.timers.pop_due(now) {
            let Some(s) = self.sessions.get(&timer.conn) else {
                continue;
            };
            if s.id != timer.session {
                // A timer of an earlier session of the same connection.
                continue;
            }
            match timer.kind {
                TimerKind::StatsDuration => {
                    if s.stats_timer == timer.generation && s.state == SessionState::Joined {
                        self.take_snapshot(timer.conn);
                    }
                }
                TimerKind::GoodbyeReply => {
                    if s.goodbye_timer == timer.generation && s.state == SessionState::Closing {
                        let reason = CloseReason::going_away("no reply to GOODBYE");
                        self.end_session(timer.conn, EndCause::GoodbyeTimeout, Some(reason));
                    }
                }
                TimerKind::Handshake => {
                    if s.state == SessionState::Authenticating {
                        let text = "authentication did not complete in time";
                        self.refuse(timer.conn, uris::AUTHENTICATION_FAILED, text);
                    }
                }
                TimerKind::CallTimeout => self.handle_call_timeout(timer.conn, timer.generation),
            }
            self.reap();
        }
        self.clean_up(limits::CLEANUP_BATCH);
        self.start_deferred_hellos();
        self.reap();
    }

    // ===== sending =====

    /// Serializes `msg` for the session's connection, queues and meters it.
    fn send(&mut self, conn: ConnId, msg: &Message) {
        let Some(s) = self.sessions.get(&conn) else {
            return;
        };
        match s.info.serializer.encode(msg) {
            Ok(bytes) => self.send_bytes(conn, Bytes::from(bytes), CountKind::Checked),
            Err(e) => warn!(session = s.id, error = %e, "cannot serialize a message"),
        }
    }

    /// Queues already-serialized bytes (shared among receivers) and meters them.
    fn send_bytes(&mut self, conn: ConnId, bytes: Bytes, kind: CountKind) {
        let Some(s) = self.sessions.get_mut(&conn) else {
            return;
        };
        if s.doomed {
            return;
        }
        let len = bytes.len();
        if let Err(e) = s.peer.send(bytes) {
            s.doomed = true;
            let cause = match e {
                SendError::QueueFull(_) => {
                    warn!(session = s.id, peer = %s.info.peer, "disconnecting: {e}");
                    s.peer.kill(CloseReason::policy(format!("{e}")));
                    EndCause::SlowConsumer
                }
                SendError::Closed => EndCause::ConnectionLost,
            };
            self.doomed.push((conn, cause));
            return;
        }
        let due = s.meter.as_mut().is_some_and(|m| m.count(len, kind));
        if due && s.state == SessionState::Joined {
            self.take_snapshot(conn);
        }
    }

    fn send_error(&mut self, conn: ConnId, request_type: u64, request: Id, uri: &str, text: &str) {
        self.send(conn, &Message::error(request_type, request, uri, text));
    }

    // ===== dispatch =====

    fn on_message(&mut self, conn: ConnId, msg: Message) {
        // A session of a role with a dynamic authorizer may have to wait for its decision.
        if let Some(msg) = self.must_wait_for_authorizer(conn, msg) {
            self.on_message_authorized(conn, msg, None);
        }
    }

    /// A message allowed to proceed; `decided` is the dynamic authorizer's decision on it, if it
    /// waited for one.
    fn on_message_authorized(&mut self, conn: ConnId, msg: Message, decided: Option<Decision>) {
        let Some(session) = self.sessions.get(&conn).map(|s| s.id) else {
            return;
        };
        let from = Origin {
            conn,
            session,
            decided,
        };
        match msg {
            Message::Publish {
                request,
                options,
                topic,
                args,
                kwargs,
            } => self.on_publish(from, request, options, topic, args, kwargs),
            Message::Subscribe {
                request,
                options,
                topic,
            } => self.on_subscribe(from, request, options, topic),
            Message::Unsubscribe {
                request,
                subscription,
            } => self.on_unsubscribe(from, request, subscription),
            Message::Call {
                request,
                options,
                procedure,
                args,
                kwargs,
            } => self.on_call(from, request, options, procedure, args, kwargs),
            Message::Register {
                request,
                options,
                procedure,
            } => self.on_register(from, request, options, procedure),
            Message::Unregister {
                request,
                registration,
            } => self.on_unregister(from, request, registration),
            Message::Yield {
                request,
                options,
                args,
                kwargs,
            } => self.on_yield(conn, request, options, args, kwargs),
            Message::Error {
                request_type: code::INVOCATION,
                request,
                error,
                args,
                kwargs,
                ..
            } => self.on_invocation_error(conn, request, error, args, kwargs),
            Message::Cancel { request, options } => self.on_cancel(conn, request, options),
            Message::Goodbye { .. } => {
                // Detached first: its last message is the GOODBYE reply.
                self.detach(conn);
                self.send(
                    conn,
                    &Message::Goodbye {
                        details: Dict::new(),
                        reason: uris::CLOSE_GOODBYE_AND_OUT.into(),
                    },
                );
                self.end_session(conn, EndCause::Goodbye, None);
            }
            Message::Abort { .. } => {
                let reason = CloseReason::normal("session aborted by the client");
                self.end_session(conn, EndCause::ClientAbort, Some(reason));
            }
            other => {
                let text = match &other {
                    Message::Hello { .. } => "received HELLO while a session is open".to_owned(),
                    Message::Error { request_type, .. } => {
                        format!("received ERROR for request type {request_type}: only INVOCATION errors may be sent by a client")
                    }
                    m => format!(
                        "received {} from a client: only a router sends it",
                        m.name()
                    ),
                };
                self.protocol_violation(conn, &text);
            }
        }
    }

    // ===== checks =====

    /// The session that sent a request. A request is handled only while its session exists
    /// and no handler ends it before answering; were that to change, the request is refused
    /// instead of the realm panicking.
    fn sender(&self, conn: ConnId) -> Result<&Session, RequestError> {
        self.sessions
            .get(&conn)
            .ok_or_else(|| RequestError::new(uris::NO_SUCH_SESSION, "the session has ended"))
    }

    fn check_uri(&self, uri: &str, policy: MatchPolicy) -> Result<(), RequestError> {
        let allow_empty = policy != MatchPolicy::Exact;
        if is_valid_uri(uri, self.options.uri_check, allow_empty) {
            Ok(())
        } else {
            Err(RequestError::new(
                uris::INVALID_URI,
                format!("invalid URI \"{uri}\" (match policy {})", policy.as_str()),
            ))
        }
    }
}

/// Features announced in WELCOME: exactly those that work.
fn broker_features(options: &RealmOptions) -> Dict {
    let mut f = dict! {
        "publisher_exclusion" => true,
        "publisher_identification" => true,
        "subscriber_blackwhite_listing" => true,
        "pattern_based_subscription" => true,
        "event_retention" => true,
        "subscription_revocation" => true,
        "payload_passthru_mode" => true,
    };
    if options.enable_meta_api {
        for feature in ["session_meta_api", "subscription_meta_api", "event_history"] {
            f.insert(feature.into(), Value::Bool(true));
        }
    }
    f
}

fn dealer_features(options: &RealmOptions) -> Dict {
    let mut f = dict! {
        "caller_identification" => true,
        "pattern_based_registration" => true,
        "shared_registration" => true,
        "progressive_call_results" => true,
        "progressive_call_invocations" => true,
        "call_timeout" => true,
        "call_canceling" => true,
        "registration_revocation" => true,
        "payload_passthru_mode" => true,
    };
    if options.enable_meta_api {
        for feature in [
            "session_meta_api",
            "registration_meta_api",
            "testament_meta_api",
        ] {
            f.insert(feature.into(), Value::Bool(true));
        }
    }
    f
}
