//! A realm: its sessions, broker, dealer, authorization, metering and meta API, driven by
//! `handle_*` inputs and queueing serialized messages to the sessions' connections.
//!
//! Everything here runs on the realm's own task (see [`super::realm_task`]), so no state is shared
//! and nothing is locked. Every message to a client goes through [`Realm::send`] or
//! [`Realm::send_bytes`], which is where sent messages are metered; received ones are metered in
//! the `handle_*` entry points, so each message is counted exactly once.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use tracing::{debug, info, warn};
use turnstile_config::{RealmConfig, RealmOptions, StatsConfig};
use wamp_proto::message::code;
use wamp_proto::uri::is_valid_uri;
use wamp_proto::{dict, random_id, uris, Dict, Id, List, MatchPolicy, Message, Value};

use crate::core::authorization::{Action, Authorizer, TRUSTED_ROLE};
use crate::core::broker::Broker;
use crate::core::clock::Clock;
use crate::core::dealer::{Dealer, Invocation, InvokePolicy, RegisterError};
use crate::core::meter::{session_info, CountKind, Meter};
use crate::core::peer::{CloseReason, PeerSender, SendError, TransportInfo};
use crate::core::router::ConnId;
use crate::core::session::{random_authid, Identity, Session, SessionState};
use crate::core::timer::{Timer, TimerKind, TimerTable};
use crate::limits;

/// Topics of the session meta events.
pub mod topic {
    pub const ON_JOIN: &str = "wamp.session.on_join";
    pub const ON_LEAVE: &str = "wamp.session.on_leave";
    pub const ON_STATS: &str = "wamp.session.on_stats";
    pub const SUB_ON_CREATE: &str = "wamp.subscription.on_create";
    pub const SUB_ON_SUBSCRIBE: &str = "wamp.subscription.on_subscribe";
    pub const SUB_ON_UNSUBSCRIBE: &str = "wamp.subscription.on_unsubscribe";
    pub const SUB_ON_DELETE: &str = "wamp.subscription.on_delete";
    pub const REG_ON_CREATE: &str = "wamp.registration.on_create";
    pub const REG_ON_REGISTER: &str = "wamp.registration.on_register";
    pub const REG_ON_UNREGISTER: &str = "wamp.registration.on_unregister";
    pub const REG_ON_DELETE: &str = "wamp.registration.on_delete";
}

/// The authid of the realm's own service session, which publishes meta events.
pub const SERVICE_AUTHID: &str = "turnstile-service";

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
}

/// One realm of the router.
#[derive(Debug)]
pub struct Realm {
    name: String,
    options: RealmOptions,
    stats: Option<StatsConfig>,
    authorizer: Authorizer,
    clock: Clock,
    /// The time of the input being handled.
    now: Instant,
    sessions: HashMap<ConnId, Session>,
    by_session_id: HashMap<Id, ConnId>,
    broker: Broker,
    dealer: Dealer,
    timers: TimerTable,
    /// The session id of the realm's service session (publisher of meta events).
    service_id: Id,
    shutting_down: bool,
    /// Sessions whose connection failed while something was queued for it; ended after the
    /// current input, so that no handler sees a session vanish under it.
    doomed: Vec<(ConnId, EndCause)>,
    welcome_roles: Value,
}

impl Realm {
    pub fn new(config: RealmConfig, now: Instant) -> Self {
        let welcome_roles = Value::Dict(dict! {
            "broker" => Value::Dict(dict! {"features" => Value::Dict(broker_features(&config.options))}),
            "dealer" => Value::Dict(dict! {"features" => Value::Dict(dealer_features(&config.options))}),
        });
        Self {
            authorizer: Authorizer::new(&config.roles),
            name: config.name,
            options: config.options,
            stats: config.stats,
            clock: Clock::anchored(now),
            now,
            sessions: HashMap::new(),
            by_session_id: HashMap::new(),
            broker: Broker::default(),
            dealer: Dealer::default(),
            timers: TimerTable::default(),
            service_id: random_id(),
            shutting_down: false,
            doomed: Vec::new(),
            welcome_roles,
        }
    }

    /// The realm's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Number of sessions (joined or closing).
    pub fn session_count(&self) -> usize {
        self.sessions.len()
    }

    /// Whether shutdown has completed: no session left.
    pub fn is_drained(&self) -> bool {
        self.shutting_down && self.sessions.is_empty()
    }

    // ===== inputs =====

    /// A HELLO from a connection without a session.
    pub fn handle_hello(
        &mut self,
        conn: ConnId,
        peer: PeerSender,
        info: Arc<TransportInfo>,
        details: Dict,
        len: usize,
        now: Instant,
    ) {
        self.now = now;
        if self.sessions.contains_key(&conn) {
            self.protocol_violation(conn, "received HELLO while a session is open");
            self.reap();
            return;
        }
        // The session's accounting starts with its HELLO: cycle 1 starts now.
        let mut meter = self.stats.as_ref().map(|s| Meter::new(s, now));
        if let Some(m) = meter.as_mut() {
            m.count(len, CountKind::Checked);
        }
        let refuse = |reason: &str, text: &str| {
            abort_unjoined(&peer, &info, reason, text);
        };
        if self.shutting_down {
            return refuse(uris::CLOSE_SYSTEM_SHUTDOWN, "the router is shutting down");
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
        let identity = match authenticate(&details, &info) {
            Ok(identity) => identity,
            Err((reason, text)) => return refuse(reason, &text),
        };
        if !self.authorizer.has_role(&identity.authrole) {
            let text = format!(
                "role \"{}\" does not exist on realm \"{}\"",
                identity.authrole, self.name
            );
            return refuse(uris::NO_SUCH_ROLE, &text);
        }
        let id = loop {
            let id = random_id();
            if id != self.service_id && !self.by_session_id.contains_key(&id) {
                break id;
            }
        };
        let session = Session {
            conn,
            id,
            state: SessionState::Joining,
            peer,
            info,
            identity,
            client_roles,
            meter,
            stats_timer: 0,
            goodbye_timer: 0,
            subscriptions: HashSet::new(),
            registrations: HashSet::new(),
            invocation_ids: Default::default(),
            pending_invocations: HashSet::new(),
            pending_calls: HashMap::new(),
            doomed: false,
        };
        let mut welcome = dict! {
            "realm" => self.name.as_str(),
            "authid" => session.identity.authid.as_str(),
            "authrole" => session.identity.authrole.as_str(),
            "authmethod" => session.identity.authmethod.as_str(),
            "authprovider" => session.identity.authprovider.as_str(),
            "authextra" => Value::Dict(session.identity.authextra.clone()),
        };
        welcome.insert("roles".into(), self.welcome_roles.clone());
        self.sessions.insert(conn, session);
        self.by_session_id.insert(id, conn);
        self.send(
            conn,
            &Message::Welcome {
                session: id,
                details: welcome,
            },
        );
        self.after_join(conn);
        self.reap();
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
            self.take_snapshot(conn, false);
        }
        match state {
            SessionState::Joined | SessionState::Joining => self.on_message(conn, msg),
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
        self.shutting_down = true;
        let conns: Vec<ConnId> =
            self.sessions.keys().copied().filter(|c| !self.is_session_monitor(*c)).collect();
        for conn in conns {
            self.say_goodbye(conn, uris::CLOSE_SYSTEM_SHUTDOWN, "the router is shutting down");
        }
        self.reap();
    }

    /// Whether the session subscribes to any `wamp.session.` meta topic.
    fn is_session_monitor(&self, conn: ConnId) -> bool {
        self.sessions[&conn].subscriptions.iter().any(|id| {
            self.broker.get(*id).is_some_and(|s| s.uri.starts_with("wamp.session."))
        })
    }

    /// At shutdown, once only monitors are left, says GOODBYE to them too.
    fn continue_shutdown(&mut self) {
        if !self.shutting_down
            || self.sessions.keys().any(|c| !self.is_session_monitor(*c))
        {
            return;
        }
        let conns: Vec<ConnId> = self
            .sessions
            .values()
            .filter(|s| s.state == SessionState::Joined)
            .map(|s| s.conn)
            .collect();
        for conn in conns {
            self.say_goodbye(conn, uris::CLOSE_SYSTEM_SHUTDOWN, "the router is shutting down");
        }
    }

    /// The earliest timer deadline, for the shell's sleep.
    pub fn poll_timeout(&mut self) -> Option<Instant> {
        self.timers.next_deadline()
    }

    /// Fires every timer due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.now = now;
        while let Some(timer) = self.timers.pop_due(now) {
            let Some(s) = self.sessions.get(&timer.conn) else {
                continue;
            };
            match timer.kind {
                TimerKind::StatsDuration => {
                    if s.stats_timer == timer.generation && s.state == SessionState::Joined {
                        self.take_snapshot(timer.conn, false);
                    }
                }
                TimerKind::GoodbyeReply => {
                    if s.goodbye_timer == timer.generation && s.state == SessionState::Closing {
                        let reason = CloseReason::going_away("no reply to GOODBYE");
                        self.end_session(timer.conn, EndCause::GoodbyeTimeout, Some(reason));
                    }
                }
                TimerKind::Handshake => {}
            }
            self.reap();
        }
    }

    // ===== session life cycle =====

    /// What follows WELCOME: `on_join`, the join snapshot, the duration timer.
    fn after_join(&mut self, conn: ConnId) {
        let s = &self.sessions[&conn];
        info!(
            realm = %self.name,
            session = s.id,
            authid = %s.identity.authid,
            authrole = %s.identity.authrole,
            serializer = s.info.serializer.name(),
            peer = %s.info.peer,
            "session joined"
        );
        let details = s.details(&self.name);
        self.publish_meta(
            topic::ON_JOIN,
            vec![Value::Dict(details)],
            CountKind::Checked,
        );
        let Some(s) = self.sessions.get_mut(&conn) else {
            return;
        };
        s.state = SessionState::Joined;
        let Some(stats) = self.stats else { return };
        let rated_due = s.meter.as_ref().is_some_and(Meter::rated_due);
        if stats.trigger_on_join || rated_due {
            // With the join trigger off, a handshake that already crossed the rated threshold is
            // reported now: the threshold is not checked before the session has joined.
            self.take_snapshot(conn, false);
        } else {
            self.arm_stats_timer(conn);
        }
    }

    /// (Re)arms the session's duration trigger for its current cycle.
    fn arm_stats_timer(&mut self, conn: ConnId) {
        let Some(s) = self.sessions.get_mut(&conn) else {
            return;
        };
        s.stats_timer += 1;
        if let Some(at) = s.meter.as_ref().and_then(Meter::duration_deadline) {
            self.timers.insert(Timer {
                at,
                conn,
                kind: TimerKind::StatsDuration,
                generation: s.stats_timer,
            });
        }
    }

    /// Closes the session's current cycle and publishes it as `wamp.session.on_stats`.
    fn take_snapshot(&mut self, conn: ConnId, last: bool) {
        let Some(s) = self.sessions.get_mut(&conn) else {
            return;
        };
        let Some(meter) = s.meter.as_mut() else {
            return;
        };
        let snap = meter.snapshot(self.now, &self.clock, last);
        let info = session_info(&self.name, s.id, &s.identity.authid, &s.identity.authrole);
        let stats = Value::Dict(snap.to_dict(s.info.serializer.name()));
        self.arm_stats_timer(conn);
        self.publish_meta(
            topic::ON_STATS,
            vec![info, stats],
            CountKind::FeedbackGuarded,
        );
    }

    /// Sends GOODBYE from the router and waits for the client's reply (bounded).
    fn say_goodbye(&mut self, conn: ConnId, reason: &str, message: &str) {
        let Some(s) = self.sessions.get(&conn) else {
            return;
        };
        if s.state != SessionState::Joined {
            return;
        }
        self.send(
            conn,
            &Message::Goodbye {
                details: dict! {"message" => message},
                reason: reason.into(),
            },
        );
        // No more events or invocations for it: it is leaving.
        self.detach(conn);
        let Some(s) = self.sessions.get_mut(&conn) else {
            return;
        };
        s.state = SessionState::Closing;
        s.goodbye_timer += 1;
        self.timers.insert(Timer {
            at: self.now + limits::GOODBYE_REPLY_TIMEOUT,
            conn,
            kind: TimerKind::GoodbyeReply,
            generation: s.goodbye_timer,
        });
    }

    /// ABORT `wamp.error.protocol_violation` (counted in the session), then the session ends and
    /// the connection closes.
    fn protocol_violation(&mut self, conn: ConnId, text: &str) {
        if !self.sessions.contains_key(&conn) {
            return;
        }
        debug!(conn, %text, "protocol violation");
        self.send(
            conn,
            &Message::Abort {
                details: dict! {"message" => text},
                reason: uris::PROTOCOL_VIOLATION.into(),
                args: None,
                kwargs: None,
            },
        );
        let reason = CloseReason::protocol_error(truncate(text, 120));
        self.end_session(conn, EndCause::ProtocolViolation, Some(reason));
    }

    /// Removes the session from the broker and dealer: subscriptions and registrations go, calls
    /// it is serving fail with `wamp.error.canceled`, calls it made are forgotten. Returns the
    /// meta events to publish once the session has left.
    fn detach(&mut self, conn: ConnId) -> Vec<(&'static str, List)> {
        let mut removal_events = Vec::new();
        let Some(s) = self.sessions.get_mut(&conn) else {
            return removal_events;
        };
        let session_id = s.id;
        let subscriptions: Vec<Id> = s.subscriptions.drain().collect();
        let registrations: Vec<Id> = s.registrations.drain().collect();
        let served: Vec<Id> = s.pending_invocations.drain().collect();
        let made: Vec<(ConnId, Id)> = s.pending_calls.drain().map(|(_, v)| v).collect();
        for sub in subscriptions {
            let meta = self
                .broker
                .get(sub)
                .is_some_and(|s| !s.uri.starts_with("wamp."));
            if let Some(u) = self.broker.unsubscribe(conn, sub) {
                if meta {
                    let args = vec![Value::from(session_id), Value::from(sub)];
                    removal_events.push((topic::SUB_ON_UNSUBSCRIBE, args.clone()));
                    if u.deleted {
                        removal_events.push((topic::SUB_ON_DELETE, args));
                    }
                }
            }
        }
        for reg in registrations {
            if let Some(deleted) = self.dealer.unregister(conn, reg) {
                let args = vec![Value::from(session_id), Value::from(reg)];
                removal_events.push((topic::REG_ON_UNREGISTER, args.clone()));
                if deleted {
                    removal_events.push((topic::REG_ON_DELETE, args));
                }
            }
        }
        for inv in served {
            if let Some(call) = self.dealer.invocations.remove(&(conn, inv)) {
                if let Some(caller) = self.sessions.get_mut(&call.caller) {
                    caller.pending_calls.remove(&call.call_request);
                }
                self.send_error(
                    call.caller,
                    code::CALL,
                    call.call_request,
                    uris::CANCELED,
                    "the callee left before it answered",
                );
            }
        }
        for (callee, inv) in made {
            self.dealer.invocations.remove(&(callee, inv));
            if let Some(c) = self.sessions.get_mut(&callee) {
                c.pending_invocations.remove(&inv);
            }
        }
        removal_events
    }

    /// Ends a session: it leaves the broker and dealer, its final statistics and `on_leave` are
    /// published, then the removal meta events; `close` closes the connection too.
    fn end_session(&mut self, conn: ConnId, cause: EndCause, close: Option<CloseReason>) {
        let removal_events = self.detach(conn);
        let Some(mut s) = self.sessions.remove(&conn) else {
            return;
        };
        self.by_session_id.remove(&s.id);
        if let (Some(meter), Some(stats)) = (s.meter.as_mut(), self.stats) {
            if stats.trigger_on_leave {
                let snap = meter.snapshot(self.now, &self.clock, true);
                let info = session_info(&self.name, s.id, &s.identity.authid, &s.identity.authrole);
                let stats = Value::Dict(snap.to_dict(s.info.serializer.name()));
                self.publish_meta(
                    topic::ON_STATS,
                    vec![info, stats],
                    CountKind::FeedbackGuarded,
                );
            }
        }
        self.publish_meta(topic::ON_LEAVE, vec![Value::from(s.id)], CountKind::Checked);
        for (topic, args) in removal_events {
            self.publish_meta(topic, args, CountKind::Checked);
        }
        if let Some(reason) = close {
            s.peer.close(reason);
        } else if self.shutting_down {
            s.peer
                .close(CloseReason::going_away("the router is shutting down"));
        }
        info!(realm = %self.name, session = s.id, cause = cause.as_str(), "session left");
    }

    /// Ends the sessions whose connection failed during the last input.
    fn reap(&mut self) {
        while let Some((conn, cause)) = self.doomed.pop() {
            if self.sessions.contains_key(&conn) {
                self.end_session(conn, cause, None);
            }
        }
        self.continue_shutdown();
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
            self.take_snapshot(conn, false);
        }
    }

    fn send_error(&mut self, conn: ConnId, request_type: u64, request: Id, uri: &str, text: &str) {
        self.send(
            conn,
            &Message::Error {
                request_type,
                request,
                details: Dict::new(),
                error: uri.into(),
                args: Some(vec![Value::from(text)]),
                kwargs: None,
            },
        );
    }

    // ===== broker =====

    /// Publishes an event from the realm's service session, if the meta API is on.
    fn publish_meta(&mut self, topic: &str, args: List, kind: CountKind) {
        if !self.options.enable_meta_api {
            return;
        }
        let details = dict! {
            "publisher" => self.service_id,
            "publisher_authid" => SERVICE_AUTHID,
            "publisher_authrole" => TRUSTED_ROLE,
        };
        self.dispatch_event(
            topic,
            details,
            Some(args),
            None,
            &Eligibility::default(),
            kind,
        );
    }

    /// Delivers one publication to every eligible subscriber of every matching subscription,
    /// serializing each EVENT once per serializer. Returns the publication id.
    fn dispatch_event(
        &mut self,
        topic: &str,
        details: Dict,
        args: Option<List>,
        kwargs: Option<Dict>,
        eligibility: &Eligibility,
        kind: CountKind,
    ) -> Id {
        let publication = random_id();
        for sub_id in self.broker.matching(topic) {
            let Some(sub) = self.broker.get(sub_id) else {
                continue;
            };
            let mut details = details.clone();
            if sub.policy != MatchPolicy::Exact {
                details.insert("topic".into(), Value::from(topic));
            }
            let receivers: Vec<ConnId> = sub
                .subscribers
                .iter()
                .copied()
                .filter(|c| eligibility.admits(*c, &self.sessions))
                .collect();
            if receivers.is_empty() {
                continue;
            }
            let event = Message::Event {
                subscription: sub_id,
                publication,
                details,
                args: args.clone(),
                kwargs: kwargs.clone(),
            };
            let mut encoded: [Option<Bytes>; 3] = Default::default();
            for conn in receivers {
                let Some(s) = self.sessions.get(&conn) else {
                    continue;
                };
                let serializer = s.info.serializer;
                let bytes = match &encoded[serializer.index()] {
                    Some(b) => b.clone(),
                    None => match serializer.encode(&event) {
                        Ok(b) => {
                            let b = Bytes::from(b);
                            encoded[serializer.index()] = Some(b.clone());
                            b
                        }
                        Err(e) => {
                            warn!(session = s.id, error = %e, "cannot serialize an event");
                            continue;
                        }
                    },
                };
                self.send_bytes(conn, bytes, kind);
            }
        }
        publication
    }

    fn on_publish(
        &mut self,
        conn: ConnId,
        request: Id,
        options: Dict,
        topic: String,
        args: Option<List>,
        kwargs: Option<Dict>,
    ) {
        let acknowledge = match opt_bool(&options, "acknowledge", "PUBLISH") {
            Ok(a) => a.unwrap_or(false),
            Err(e) => return self.send_error(conn, code::PUBLISH, request, e.uri, &e.text),
        };
        match self.publish(conn, &options, &topic, args, kwargs) {
            Ok(publication) => {
                if acknowledge {
                    self.send(
                        conn,
                        &Message::Published {
                            request,
                            publication,
                        },
                    );
                }
            }
            Err(e) => {
                if acknowledge {
                    self.send_error(conn, code::PUBLISH, request, e.uri, &e.text);
                } else {
                    debug!(conn, topic, error = %e.text, "unacknowledged publication refused");
                }
            }
        }
    }

    fn publish(
        &mut self,
        conn: ConnId,
        options: &Dict,
        topic: &str,
        args: Option<List>,
        kwargs: Option<Dict>,
    ) -> Result<Id, RequestError> {
        self.check_uri(topic, MatchPolicy::Exact)?;
        if topic.starts_with("wamp.") {
            return Err(RequestError::new(
                uris::INVALID_URI,
                format!("cannot publish to topic \"{topic}\": the wamp. prefix is reserved"),
            ));
        }
        let s = &self.sessions[&conn];
        let decision = self
            .authorizer
            .authorize(&s.identity.authrole, topic, Action::Publish);
        if !decision.allow {
            return Err(RequestError::new(
                uris::NOT_AUTHORIZED,
                format!(
                    "session is not authorized to publish to topic \"{topic}\" (role \"{}\")",
                    s.identity.authrole
                ),
            ));
        }
        let exclude_me = opt_bool(options, "exclude_me", "PUBLISH")?.unwrap_or(true);
        let disclose_me = opt_bool(options, "disclose_me", "PUBLISH")?.unwrap_or(false);
        let mut eligibility = Eligibility::from_options(options)?;
        if exclude_me {
            eligibility.exclude_conn = Some(conn);
        }
        let mut details = Dict::new();
        if disclose_me || decision.disclose {
            details.insert("publisher".into(), Value::from(s.id));
            details.insert(
                "publisher_authid".into(),
                Value::from(s.identity.authid.as_str()),
            );
            details.insert(
                "publisher_authrole".into(),
                Value::from(s.identity.authrole.as_str()),
            );
        }
        Ok(self.dispatch_event(
            topic,
            details,
            args,
            kwargs,
            &eligibility,
            CountKind::Checked,
        ))
    }

    fn on_subscribe(&mut self, conn: ConnId, request: Id, options: Dict, topic: String) {
        match self.subscribe(conn, &options, &topic) {
            Ok(outcome) => {
                self.send(
                    conn,
                    &Message::Subscribed {
                        request,
                        subscription: outcome.id,
                    },
                );
                // The meta events follow the SUBSCRIBED reply, never for wamp. topics.
                if outcome.added && !topic.starts_with("wamp.") {
                    let session_id = self.sessions.get(&conn).map_or(0, |s| s.id);
                    if outcome.created {
                        let info = self.broker.get(outcome.id).map(subscription_info);
                        let args = vec![Value::from(session_id), Value::from(info)];
                        self.publish_meta(topic::SUB_ON_CREATE, args, CountKind::Checked);
                    }
                    let args = vec![Value::from(session_id), Value::from(outcome.id)];
                    self.publish_meta(topic::SUB_ON_SUBSCRIBE, args, CountKind::Checked);
                }
            }
            Err(e) => self.send_error(conn, code::SUBSCRIBE, request, e.uri, &e.text),
        }
    }

    fn subscribe(
        &mut self,
        conn: ConnId,
        options: &Dict,
        topic: &str,
    ) -> Result<crate::core::broker::Subscribed, RequestError> {
        let policy = match_policy(options, "SUBSCRIBE")?;
        self.check_uri(topic, policy)?;
        let s = &self.sessions[&conn];
        if !self
            .authorizer
            .authorize(&s.identity.authrole, topic, Action::Subscribe)
            .allow
        {
            return Err(RequestError::new(
                uris::NOT_AUTHORIZED,
                format!(
                    "session is not authorized to subscribe to topic \"{topic}\" (role \"{}\")",
                    s.identity.authrole
                ),
            ));
        }
        let (clock, now) = (self.clock, self.now);
        let outcome = self
            .broker
            .subscribe(conn, topic, policy, || clock.iso8601(now));
        if let Some(s) = self.sessions.get_mut(&conn) {
            s.subscriptions.insert(outcome.id);
        }
        Ok(outcome)
    }

    fn on_unsubscribe(&mut self, conn: ConnId, request: Id, subscription: Id) {
        let is_mine = self.sessions[&conn].subscriptions.contains(&subscription);
        let uri_is_meta = self
            .broker
            .get(subscription)
            .is_some_and(|s| s.uri.starts_with("wamp."));
        let outcome = if is_mine {
            self.broker.unsubscribe(conn, subscription)
        } else {
            None
        };
        let Some(outcome) = outcome else {
            let text = format!("session has no subscription with ID {subscription}");
            return self.send_error(
                conn,
                code::UNSUBSCRIBE,
                request,
                uris::NO_SUCH_SUBSCRIPTION,
                &text,
            );
        };
        let session_id = match self.sessions.get_mut(&conn) {
            Some(s) => {
                s.subscriptions.remove(&subscription);
                s.id
            }
            None => return,
        };
        self.send(
            conn,
            &Message::Unsubscribed {
                request,
                details: None,
            },
        );
        if !uri_is_meta {
            let args = vec![Value::from(session_id), Value::from(subscription)];
            self.publish_meta(topic::SUB_ON_UNSUBSCRIBE, args.clone(), CountKind::Checked);
            if outcome.deleted {
                self.publish_meta(topic::SUB_ON_DELETE, args, CountKind::Checked);
            }
        }
    }

    // ===== dealer =====

    fn on_register(&mut self, conn: ConnId, request: Id, options: Dict, procedure: String) {
        match self.register(conn, &options, &procedure) {
            Ok(outcome) => {
                self.send(
                    conn,
                    &Message::Registered {
                        request,
                        registration: outcome.id,
                    },
                );
                let session_id = self.sessions.get(&conn).map_or(0, |s| s.id);
                if outcome.created {
                    let info = self.dealer.get(outcome.id).map(registration_info);
                    let args = vec![Value::from(session_id), Value::from(info)];
                    self.publish_meta(topic::REG_ON_CREATE, args, CountKind::Checked);
                }
                let args = vec![Value::from(session_id), Value::from(outcome.id)];
                self.publish_meta(topic::REG_ON_REGISTER, args, CountKind::Checked);
            }
            Err(e) => self.send_error(conn, code::REGISTER, request, e.uri, &e.text),
        }
    }

    fn register(
        &mut self,
        conn: ConnId,
        options: &Dict,
        procedure: &str,
    ) -> Result<crate::core::dealer::Registered, RequestError> {
        let policy = match_policy(options, "REGISTER")?;
        self.check_uri(procedure, policy)?;
        if procedure.starts_with("wamp.") {
            return Err(RequestError::new(
                uris::INVALID_URI,
                format!("cannot register procedure \"{procedure}\": the wamp. prefix is reserved"),
            ));
        }
        let invoke = match options.get("invoke") {
            None => InvokePolicy::Single,
            Some(Value::Str(s)) => InvokePolicy::parse(s).ok_or_else(|| {
                RequestError::new(
                    uris::INVALID_ARGUMENT,
                    format!(
                        "REGISTER option invoke must be one of single, roundrobin, random, first, last; found \"{s}\""
                    ),
                )
            })?,
            Some(other) => {
                return Err(RequestError::new(
                    uris::INVALID_ARGUMENT,
                    format!("REGISTER option invoke must be a string, found {}", other.type_name()),
                ))
            }
        };
        let s = &self.sessions[&conn];
        if !self
            .authorizer
            .authorize(&s.identity.authrole, procedure, Action::Register)
            .allow
        {
            return Err(RequestError::new(
                uris::NOT_AUTHORIZED,
                format!(
                    "session is not authorized to register procedure \"{procedure}\" (role \"{}\")",
                    s.identity.authrole
                ),
            ));
        }
        let (clock, now) = (self.clock, self.now);
        let outcome = self
            .dealer
            .register(conn, procedure, policy, invoke, || clock.iso8601(now))
            .map_err(|e| match e {
                RegisterError::AlreadyExists => RequestError::new(
                    uris::PROCEDURE_ALREADY_EXISTS,
                    format!("procedure \"{procedure}\" is already registered"),
                ),
                RegisterError::DifferentPolicy => RequestError::new(
                    uris::PROCEDURE_ALREADY_EXISTS,
                    format!(
                        "procedure \"{procedure}\" is already registered with another invocation policy than \"{}\"",
                        invoke.as_str()
                    ),
                ),
            })?;
        if let Some(s) = self.sessions.get_mut(&conn) {
            s.registrations.insert(outcome.id);
        }
        Ok(outcome)
    }

    fn on_unregister(&mut self, conn: ConnId, request: Id, registration: Id) {
        let is_mine = self.sessions[&conn].registrations.contains(&registration);
        let deleted = if is_mine {
            self.dealer.unregister(conn, registration)
        } else {
            None
        };
        let Some(deleted) = deleted else {
            let text = format!("session has no registration with ID {registration}");
            return self.send_error(
                conn,
                code::UNREGISTER,
                request,
                uris::NO_SUCH_REGISTRATION,
                &text,
            );
        };
        let session_id = match self.sessions.get_mut(&conn) {
            Some(s) => {
                s.registrations.remove(&registration);
                s.id
            }
            None => return,
        };
        self.send(
            conn,
            &Message::Unregistered {
                request,
                details: None,
            },
        );
        let args = vec![Value::from(session_id), Value::from(registration)];
        self.publish_meta(topic::REG_ON_UNREGISTER, args.clone(), CountKind::Checked);
        if deleted {
            self.publish_meta(topic::REG_ON_DELETE, args, CountKind::Checked);
        }
    }

    fn on_call(
        &mut self,
        conn: ConnId,
        request: Id,
        options: Dict,
        procedure: String,
        args: Option<List>,
        kwargs: Option<Dict>,
    ) {
        if let Err(e) = self.call(conn, request, options, &procedure, args, kwargs) {
            self.send_error(conn, code::CALL, request, e.uri, &e.text);
        }
    }

    fn call(
        &mut self,
        conn: ConnId,
        request: Id,
        options: Dict,
        procedure: &str,
        args: Option<List>,
        kwargs: Option<Dict>,
    ) -> Result<(), RequestError> {
        self.check_uri(procedure, MatchPolicy::Exact)?;
        let s = &self.sessions[&conn];
        let decision = self
            .authorizer
            .authorize(&s.identity.authrole, procedure, Action::Call);
        if !decision.allow {
            return Err(RequestError::new(
                uris::NOT_AUTHORIZED,
                format!(
                    "session is not authorized to call procedure \"{procedure}\" (role \"{}\")",
                    s.identity.authrole
                ),
            ));
        }
        if s.pending_calls.contains_key(&request) {
            return Err(RequestError::new(
                uris::INVALID_ARGUMENT,
                format!("a call with request ID {request} is already in flight on this session"),
            ));
        }
        if procedure.starts_with("wamp.") && self.options.enable_meta_api {
            if let Some(result) = self.meta_call(conn, procedure, args, kwargs) {
                let value = result?;
                self.send(
                    conn,
                    &Message::Result {
                        request,
                        details: Dict::new(),
                        args: Some(vec![value]),
                        kwargs: None,
                    },
                );
                return Ok(());
            }
            return Err(RequestError::new(
                uris::NO_SUCH_PROCEDURE,
                format!("no callee registered for procedure \"{procedure}\""),
            ));
        }
        let receive_progress = opt_bool(&options, "receive_progress", "CALL")?.unwrap_or(false);
        let disclose_me = opt_bool(&options, "disclose_me", "CALL")?.unwrap_or(false);
        let no_callee = || {
            RequestError::new(
                uris::NO_SUCH_PROCEDURE,
                format!("no callee registered for procedure \"{procedure}\""),
            )
        };
        let registration = self.dealer.matching(procedure).ok_or_else(no_callee)?;
        let callee = self
            .dealer
            .pick_callee(registration)
            .ok_or_else(no_callee)?;
        let reg = self.dealer.get(registration).expect("matched");
        let mut details = Dict::new();
        if reg.policy != MatchPolicy::Exact {
            details.insert("procedure".into(), Value::from(procedure));
        }
        let caller = &self.sessions[&conn];
        if disclose_me || decision.disclose {
            details.insert("caller".into(), Value::from(caller.id));
            details.insert(
                "caller_authid".into(),
                Value::from(caller.identity.authid.as_str()),
            );
            details.insert(
                "caller_authrole".into(),
                Value::from(caller.identity.authrole.as_str()),
            );
        }
        let Some(callee_session) = self.sessions.get_mut(&callee) else {
            return Err(no_callee());
        };
        if receive_progress && callee_session.supports("callee", "progressive_call_results") {
            details.insert("receive_progress".into(), Value::Bool(true));
        }
        let invocation_id = callee_session.invocation_ids.next();
        callee_session.pending_invocations.insert(invocation_id);
        self.dealer.invocations.insert(
            (callee, invocation_id),
            Invocation {
                caller: conn,
                call_request: request,
                registration,
                receive_progress,
            },
        );
        if let Some(c) = self.sessions.get_mut(&conn) {
            c.pending_calls.insert(request, (callee, invocation_id));
        }
        self.send(
            callee,
            &Message::Invocation {
                request: invocation_id,
                registration,
                details,
                args,
                kwargs,
            },
        );
        Ok(())
    }

    fn on_yield(
        &mut self,
        conn: ConnId,
        request: Id,
        options: Dict,
        args: Option<List>,
        kwargs: Option<Dict>,
    ) {
        let progress = options
            .get("progress")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let Some(call) = self.dealer.invocations.get(&(conn, request)) else {
            // The caller left or the call was canceled: a late YIELD is dropped without harm.
            debug!(conn, request, "YIELD for an invocation no longer pending");
            return;
        };
        let (caller, call_request) = (call.caller, call.call_request);
        let mut details = Dict::new();
        if progress && call.receive_progress {
            details.insert("progress".into(), Value::Bool(true));
        } else {
            if progress {
                // The caller did not ask for progressive results: drop the progress.
                return;
            }
            self.finish_invocation(conn, request);
        }
        self.send(
            caller,
            &Message::Result {
                request: call_request,
                details,
                args,
                kwargs,
            },
        );
    }

    fn on_invocation_error(
        &mut self,
        conn: ConnId,
        request: Id,
        error: String,
        args: Option<List>,
        kwargs: Option<Dict>,
    ) {
        let Some(call) = self.dealer.invocations.get(&(conn, request)) else {
            debug!(conn, request, "ERROR for an invocation no longer pending");
            return;
        };
        let (caller, call_request) = (call.caller, call.call_request);
        self.finish_invocation(conn, request);
        self.send(
            caller,
            &Message::Error {
                request_type: code::CALL,
                request: call_request,
                details: Dict::new(),
                error,
                args,
                kwargs,
            },
        );
    }

    /// Forgets a finished invocation on both sides.
    fn finish_invocation(&mut self, callee: ConnId, request: Id) {
        if let Some(call) = self.dealer.invocations.remove(&(callee, request)) {
            if let Some(c) = self.sessions.get_mut(&call.caller) {
                c.pending_calls.remove(&call.call_request);
            }
        }
        if let Some(c) = self.sessions.get_mut(&callee) {
            c.pending_invocations.remove(&request);
        }
    }

    // ===== dispatch =====

    fn on_message(&mut self, conn: ConnId, msg: Message) {
        match msg {
            Message::Publish {
                request,
                options,
                topic,
                args,
                kwargs,
            } => self.on_publish(conn, request, options, topic, args, kwargs),
            Message::Subscribe {
                request,
                options,
                topic,
            } => self.on_subscribe(conn, request, options, topic),
            Message::Unsubscribe {
                request,
                subscription,
            } => self.on_unsubscribe(conn, request, subscription),
            Message::Call {
                request,
                options,
                procedure,
                args,
                kwargs,
            } => self.on_call(conn, request, options, procedure, args, kwargs),
            Message::Register {
                request,
                options,
                procedure,
            } => self.on_register(conn, request, options, procedure),
            Message::Unregister {
                request,
                registration,
            } => self.on_unregister(conn, request, registration),
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
            Message::Cancel { request, .. } => {
                // Call canceling is not announced; a CANCEL is answered by nothing but a debug
                // line rather than a protocol violation, as the call completes normally.
                debug!(
                    conn,
                    request, "CANCEL ignored: call canceling is not supported"
                );
            }
            Message::Goodbye { .. } => {
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

    // ===== meta API =====

    /// Runs a meta procedure, if `procedure` is one. Authorization was checked by the caller.
    fn meta_call(
        &mut self,
        conn: ConnId,
        procedure: &str,
        args: Option<List>,
        kwargs: Option<Dict>,
    ) -> Option<Result<Value, RequestError>> {
        let args = args.unwrap_or_default();
        let kwargs = kwargs.unwrap_or_default();
        let result = match procedure {
            "wamp.session.count" => {
                filter_authroles(&args).map(|roles| Value::from(self.listed_sessions(roles).len()))
            }
            "wamp.session.list" => filter_authroles(&args).map(|roles| {
                Value::List(
                    self.listed_sessions(roles)
                        .into_iter()
                        .map(Value::from)
                        .collect(),
                )
            }),
            "wamp.session.get" => id_arg(&args, 0, "session_id").and_then(|id| {
                self.by_session_id
                    .get(&id)
                    .and_then(|c| self.sessions.get(c))
                    .filter(|s| s.state == SessionState::Joined)
                    .map(|s| Value::Dict(s.details(&self.name)))
                    .ok_or_else(|| no_such_session(id))
            }),
            "wamp.session.kill" => id_arg(&args, 0, "session_id").and_then(|id| {
                let (reason, message) = kill_reason(&kwargs)?;
                let target = self.by_session_id.get(&id).copied();
                match target {
                    Some(t) if t != conn && self.sessions[&t].state == SessionState::Joined => {
                        self.say_goodbye(t, &reason, &message);
                        Ok(Value::Null)
                    }
                    _ => Err(no_such_session(id)),
                }
            }),
            "wamp.session.kill_by_authid" | "wamp.session.kill_by_authrole" => {
                let by_role = procedure.ends_with("authrole");
                let name = if by_role { "authrole" } else { "authid" };
                str_arg(&args, 0, name).and_then(|wanted| {
                    let (reason, message) = kill_reason(&kwargs)?;
                    let targets: Vec<(ConnId, Id)> = self
                        .sessions
                        .values()
                        .filter(|s| s.conn != conn && s.state == SessionState::Joined)
                        .filter(|s| {
                            let have = if by_role {
                                &s.identity.authrole
                            } else {
                                &s.identity.authid
                            };
                            *have == wanted
                        })
                        .map(|s| (s.conn, s.id))
                        .collect();
                    for (t, _) in &targets {
                        self.say_goodbye(*t, &reason, &message);
                    }
                    Ok(Value::List(
                        targets.into_iter().map(|(_, id)| Value::from(id)).collect(),
                    ))
                })
            }
            "wamp.session.kill_all" => kill_reason(&kwargs).map(|(reason, message)| {
                let targets: Vec<ConnId> = self
                    .sessions
                    .values()
                    .filter(|s| s.conn != conn && s.state == SessionState::Joined)
                    .map(|s| s.conn)
                    .collect();
                for t in &targets {
                    self.say_goodbye(*t, &reason, &message);
                }
                Value::from(targets.len())
            }),
            _ => return None,
        };
        Some(result)
    }

    /// Joined sessions, optionally only those whose authrole is in `roles`.
    fn listed_sessions(&self, roles: Option<Vec<String>>) -> Vec<Id> {
        self.sessions
            .values()
            .filter(|s| s.state == SessionState::Joined)
            .filter(|s| {
                roles
                    .as_ref()
                    .is_none_or(|r| r.contains(&s.identity.authrole))
            })
            .map(|s| s.id)
            .collect()
    }

    // ===== checks =====

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

/// Who receives a publication: black- and whitelists from PUBLISH options, and publisher
/// exclusion.
#[derive(Debug, Default)]
struct Eligibility {
    exclude_conn: Option<ConnId>,
    exclude: Option<Vec<Id>>,
    exclude_authid: Option<Vec<String>>,
    exclude_authrole: Option<Vec<String>>,
    eligible: Option<Vec<Id>>,
    eligible_authid: Option<Vec<String>>,
    eligible_authrole: Option<Vec<String>>,
}

impl Eligibility {
    fn from_options(options: &Dict) -> Result<Self, RequestError> {
        Ok(Self {
            exclude_conn: None,
            exclude: opt_ids(options, "exclude")?,
            exclude_authid: opt_strings(options, "exclude_authid")?,
            exclude_authrole: opt_strings(options, "exclude_authrole")?,
            eligible: opt_ids(options, "eligible")?,
            eligible_authid: opt_strings(options, "eligible_authid")?,
            eligible_authrole: opt_strings(options, "eligible_authrole")?,
        })
    }

    fn admits(&self, conn: ConnId, sessions: &HashMap<ConnId, Session>) -> bool {
        if self.exclude_conn == Some(conn) {
            return false;
        }
        let Some(s) = sessions.get(&conn) else {
            return false;
        };
        if s.state != SessionState::Joined {
            return false;
        }
        let (id, authid, authrole) = (s.id, &s.identity.authid, &s.identity.authrole);
        if self.exclude.as_ref().is_some_and(|l| l.contains(&id))
            || self
                .exclude_authid
                .as_ref()
                .is_some_and(|l| l.contains(authid))
            || self
                .exclude_authrole
                .as_ref()
                .is_some_and(|l| l.contains(authrole))
        {
            return false;
        }
        self.eligible.as_ref().is_none_or(|l| l.contains(&id))
            && self
                .eligible_authid
                .as_ref()
                .is_none_or(|l| l.contains(authid))
            && self
                .eligible_authrole
                .as_ref()
                .is_none_or(|l| l.contains(authrole))
    }
}

/// Establishes who the client is. Only anonymous authentication exists so far: the transport's
/// `auth.anonymous` (role and optional authid), or Crossbar's default of role `anonymous`.
fn authenticate(details: &Dict, info: &TransportInfo) -> Result<Identity, (&'static str, String)> {
    let methods: Vec<&str> = match details.get("authmethods") {
        None => vec!["anonymous"],
        Some(Value::List(l)) => l.iter().filter_map(Value::as_str).collect(),
        Some(other) => {
            return Err((
                uris::PROTOCOL_VIOLATION,
                format!(
                    "HELLO.Details.authmethods must be a list, found {}",
                    other.type_name()
                ),
            ))
        }
    };
    if !methods.contains(&"anonymous") {
        return Err((
            uris::NO_MATCHING_AUTH_METHOD,
            format!(
                "none of the offered authentication methods {methods:?} is configured on this transport (available: anonymous)"
            ),
        ));
    }
    let (role, authid) = match &info.anonymous {
        Some(a) => (a.role.clone(), a.authid.clone()),
        None => ("anonymous".to_owned(), None),
    };
    Ok(Identity {
        authid: authid.unwrap_or_else(random_authid),
        authrole: role,
        authmethod: "anonymous".into(),
        authprovider: "static".into(),
        authextra: Dict::new(),
    })
}

/// ABORT to a client whose HELLO was refused, then close. Nothing is metered: no session exists.
fn abort_unjoined(peer: &PeerSender, info: &TransportInfo, reason: &str, text: &str) {
    debug!(peer = %info.peer, reason, text, "HELLO refused");
    let abort = Message::Abort {
        details: dict! {"message" => text},
        reason: reason.into(),
        args: None,
        kwargs: None,
    };
    if let Ok(bytes) = info.serializer.encode(&abort) {
        let _ = peer.send(Bytes::from(bytes));
    }
    peer.close(CloseReason::policy(truncate(text, 120)));
}

/// Features announced in WELCOME: exactly those that work.
fn broker_features(options: &RealmOptions) -> Dict {
    let mut f = dict! {
        "publisher_exclusion" => true,
        "publisher_identification" => true,
        "subscriber_blackwhite_listing" => true,
        "pattern_based_subscription" => true,
    };
    if options.enable_meta_api {
        f.insert("session_meta_api".into(), Value::Bool(true));
    }
    f
}

fn dealer_features(options: &RealmOptions) -> Dict {
    let mut f = dict! {
        "caller_identification" => true,
        "pattern_based_registration" => true,
        "shared_registration" => true,
        "progressive_call_results" => true,
    };
    if options.enable_meta_api {
        f.insert("session_meta_api".into(), Value::Bool(true));
    }
    f
}

fn subscription_info(s: &crate::core::broker::Subscription) -> Dict {
    dict! {
        "id" => s.id,
        "created" => s.created.as_str(),
        "uri" => s.uri.as_str(),
        "match" => s.policy.as_str(),
    }
}

fn registration_info(r: &crate::core::dealer::Registration) -> Dict {
    dict! {
        "id" => r.id,
        "created" => r.created.as_str(),
        "uri" => r.uri.as_str(),
        "match" => r.policy.as_str(),
        "invoke" => r.invoke.as_str(),
    }
}

fn opt_bool(options: &Dict, key: &str, message: &str) -> Result<Option<bool>, RequestError> {
    match options.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(other) => Err(RequestError::new(
            uris::INVALID_ARGUMENT,
            format!(
                "{message} option {key} must be a boolean, found {}",
                other.type_name()
            ),
        )),
    }
}

fn opt_ids(options: &Dict, key: &str) -> Result<Option<Vec<Id>>, RequestError> {
    match options.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::List(l)) => l
            .iter()
            .map(|v| v.as_u64())
            .collect::<Option<Vec<_>>>()
            .map(Some)
            .ok_or_else(|| bad_list(key, "session IDs")),
        Some(_) => Err(bad_list(key, "session IDs")),
    }
}

fn opt_strings(options: &Dict, key: &str) -> Result<Option<Vec<String>>, RequestError> {
    match options.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::List(l)) => l
            .iter()
            .map(|v| v.as_str().map(str::to_owned))
            .collect::<Option<Vec<_>>>()
            .map(Some)
            .ok_or_else(|| bad_list(key, "strings")),
        Some(_) => Err(bad_list(key, "strings")),
    }
}

fn bad_list(key: &str, what: &str) -> RequestError {
    RequestError::new(
        uris::INVALID_ARGUMENT,
        format!("PUBLISH option {key} must be a list of {what}"),
    )
}

fn match_policy(options: &Dict, message: &str) -> Result<MatchPolicy, RequestError> {
    match options.get("match") {
        None | Some(Value::Null) => Ok(MatchPolicy::Exact),
        Some(Value::Str(s)) => MatchPolicy::parse(s).ok_or_else(|| {
            RequestError::new(
                uris::INVALID_ARGUMENT,
                format!("{message} option match must be exact, prefix or wildcard; found \"{s}\""),
            )
        }),
        Some(other) => Err(RequestError::new(
            uris::INVALID_ARGUMENT,
            format!(
                "{message} option match must be a string, found {}",
                other.type_name()
            ),
        )),
    }
}

fn filter_authroles(args: &List) -> Result<Option<Vec<String>>, RequestError> {
    match args.first() {
        None | Some(Value::Null) => Ok(None),
        Some(Value::List(l)) => l
            .iter()
            .map(|v| v.as_str().map(str::to_owned))
            .collect::<Option<Vec<_>>>()
            .map(Some)
            .ok_or_else(|| {
                RequestError::new(
                    uris::INVALID_ARGUMENT,
                    "argument filter_authroles must be a list of strings",
                )
            }),
        Some(other) => Err(RequestError::new(
            uris::INVALID_ARGUMENT,
            format!(
                "argument filter_authroles must be a list of strings, found {}",
                other.type_name()
            ),
        )),
    }
}

fn id_arg(args: &List, index: usize, name: &str) -> Result<Id, RequestError> {
    args.get(index).and_then(Value::as_u64).ok_or_else(|| {
        RequestError::new(
            uris::INVALID_ARGUMENT,
            format!("argument {name} (position {index}) must be an integer ID"),
        )
    })
}

fn str_arg(args: &List, index: usize, name: &str) -> Result<String, RequestError> {
    args.get(index)
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| {
            RequestError::new(
                uris::INVALID_ARGUMENT,
                format!("argument {name} (position {index}) must be a string"),
            )
        })
}

fn kill_reason(kwargs: &Dict) -> Result<(String, String), RequestError> {
    let reason = match kwargs.get("reason") {
        None | Some(Value::Null) => uris::CLOSE_KILLED.to_owned(),
        Some(Value::Str(s)) if is_valid_uri(s, Default::default(), false) => s.clone(),
        Some(_) => {
            return Err(RequestError::new(
                uris::INVALID_ARGUMENT,
                "keyword argument reason must be a URI",
            ))
        }
    };
    let message = match kwargs.get("message") {
        None | Some(Value::Null) => "killed by the router's meta API".to_owned(),
        Some(Value::Str(s)) => s.clone(),
        Some(_) => {
            return Err(RequestError::new(
                uris::INVALID_ARGUMENT,
                "keyword argument message must be a string",
            ))
        }
    };
    Ok((reason, message))
}

fn no_such_session(id: Id) -> RequestError {
    RequestError::new(
        uris::NO_SUCH_SESSION,
        format!("no session with ID {id} exists on this router"),
    )
}

fn truncate(text: &str, max_chars: usize) -> String {
    text.chars().take(max_chars).collect()
}
