//! The sans-IO realm (`turnstile_core::realm::Realm`) driven by arbitrary sequences of
//! operations from 2 to 4 fake client connections, a monitor session and a fake clock, the way
//! the runtime drives it (`turnstile::runtime`): HELLO from a connection without a realm goes
//! to `handle_hello`, everything else to `handle_message` until the client's GOODBYE; a lost
//! connection is `handle_disconnected`; the clock advances by `handle_timeout`. Every message
//! is encoded with its connection's serializer and decoded again, so lengths are exact.
//!
//! The input (read with `arbitrary::Unstructured`) sets up the realm (statistics triggers, the
//! per-session limits), the connections (serializer, outgoing queue bound), then is a list of
//! operations, each from one connection: HELLO, SUBSCRIBE, UNSUBSCRIBE, PUBLISH (with and
//! without acknowledge, excluding itself or not, retained or not), REGISTER (match and invoke
//! policies), UNREGISTER, CALL (timeout, progressive results, a few meta procedures including
//! `wamp.session.kill`), YIELD (progressive or final), ERROR, CANCEL (each mode), GOODBYE,
//! an undecodable message, a disconnect; or a clock advance. At the end every connection is
//! dropped, then the monitor's.
//!
//! A monitor session (JSON) subscribed to `wamp.session.on_stats` joins first and stays to
//! the end. After EVERY step [`check`] requires (a panic names the invariant):
//!
//! 1. No panic in the realm.
//! 2. Calls: every CALL is answered at most once (a final RESULT or an ERROR); a CALL not yet
//!    answered is held by a callee session that is still there and owes the INVOCATION for
//!    it, unless its caller left or is leaving (the router said GOODBYE to it). So a call
//!    whose callee leaves, or that nobody serves, is answered in that same step.
//! 3. Requests: SUBSCRIBE, UNSUBSCRIBE, REGISTER, UNREGISTER and acknowledged PUBLISH of a
//!    joined session are answered exactly once, in the same step.
//! 4. No EVENT to a session for a subscription id it does not hold (SUBSCRIBED gives one,
//!    UNSUBSCRIBED takes it away), no INVOCATION for a registration it does not hold.
//! 5. Statistics: the monitor's `on_stats` cycles of each session are numbered 1, 2, ...,
//!    only the last is `last`, and their messages, bytes and rated messages never exceed what
//!    the session sent plus what its outbox accepted; once it has left they are equal.
//! 6. Memory: whenever no client session is open, the realm's tables
//!    (`Realm::table_sizes`) are as they were with the monitor alone; at the end, with no
//!    session at all, they are empty (retained events excepted, which outlive sessions by
//!    design) and no deadline is left.
//! 7. Time: after every step the harness calls `handle_timeout(now)` while the realm's deadline
//!    is due, as the runtime's realm task does (a leaving session's entries are removed in
//!    steps); the realm stops being due within 10,000 rounds.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arbitrary::Unstructured;
use bytes::Bytes;
use turnstile_config::{
    Allow, Disclose, Permission, RealmConfig, RealmOptions, RoleConfig, StatsConfig,
};
use turnstile_core::limits::{SessionLimits, HANDSHAKE_TIMEOUT};
use turnstile_core::peer::{
    ChannelType, CloseReason, ConnId, Framing, Outbound, Outbox, PeerSender, SendError,
    TransportInfo,
};
use turnstile_core::realm::{Realm, TableSizes};
use wamp_proto::message::code;
use wamp_proto::{Dict, Id, MatchPolicy, Message, Serializer, Value};

/// Runs the operations `data` describes, checking the invariants above after every step.
pub fn check(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let Ok(setup) = Setup::read(&mut u) else {
        return;
    };
    let mut h = Harness::new(setup);
    while !u.is_empty() {
        let Ok(op) = Op::read(&mut u) else { break };
        h.step(op);
    }
    h.finish();
}

// ===== input =====

/// The realm and the connections.
#[derive(Debug)]
struct Setup {
    stats: StatsConfig,
    limits: SessionLimits,
    /// Per connection: its serializer and its outgoing queue bound (0: none).
    slots: Vec<(Serializer, usize)>,
}

impl Setup {
    fn read(u: &mut Unstructured<'_>) -> arbitrary::Result<Self> {
        let stats = StatsConfig {
            rated_message_size: *u.choose(&[16, 64, 512])?,
            trigger_after_rated_messages: *u.choose(&[0, 1, 3, 10])?,
            trigger_after_duration: *u.choose(&[0, 1, 5])?,
            trigger_on_join: u.arbitrary()?,
            trigger_on_leave: true,
        };
        let limits = if u.arbitrary()? {
            SessionLimits {
                max_subscriptions: u.int_in_range(1..=3)?,
                max_registrations: u.int_in_range(1..=3)?,
                max_calls_in_flight: u.int_in_range(1..=3)?,
                // 0: no rate limit; else a rate the fake clock's steps can cross.
                max_messages_per_second: *u.choose(&[0, 0, 1, 5, 50])?,
                message_burst: u.int_in_range(1..=4)?,
            }
        } else {
            SessionLimits::default()
        };
        let n = u.int_in_range(2..=4)?;
        let mut slots = Vec::new();
        for _ in 0..n {
            let ser = *u.choose(&Serializer::ALL)?;
            let bound = *u.choose(&[0, 0, 0, 400, 2000])?;
            slots.push((ser, bound));
        }
        Ok(Self {
            stats,
            limits,
            slots,
        })
    }
}

/// Rounds of `handle_timeout` a realm may need after one step before nothing is due: a session
/// leaving with everything the harness lets it hold is removed in far fewer steps.
const MAX_DUE_ROUNDS: usize = 10_000;

const TOPICS: &[&str] = &["com.a", "com.a.b", "com.b", "com", "wamp.session.on_stats"];
const PROCEDURES: &[&str] = &["com.p", "com.p.a", "com.p.b", "com..a"];
const META: &[&str] = &[
    "wamp.session.count",
    "wamp.registration.list",
    "wamp.subscription.match",
    "wamp.session.kill",
];
const POLICIES: &[MatchPolicy] = &[
    MatchPolicy::Exact,
    MatchPolicy::Prefix,
    MatchPolicy::Wildcard,
];
const INVOKE: &[&str] = &["single", "roundrobin", "random", "first", "last"];
const CANCEL_MODES: &[Option<&str>] = &[None, Some("skip"), Some("kill"), Some("killnowait")];

/// One step.
#[derive(Debug)]
enum Op {
    /// An operation of connection `slot` (modulo the number of connections).
    Client { slot: usize, action: Action },
    /// The clock advances by this many milliseconds; then `handle_timeout`.
    Advance(u64),
}

/// What a client does. Indexes pick among what it holds (modulo), or an id it never got.
#[derive(Debug)]
enum Action {
    Hello,
    Subscribe {
        topic: usize,
        policy: usize,
    },
    Unsubscribe {
        pick: usize,
    },
    Publish {
        topic: usize,
        acknowledge: bool,
        exclude_me: bool,
        retain: bool,
    },
    Register {
        procedure: usize,
        policy: usize,
        invoke: usize,
    },
    Unregister {
        pick: usize,
    },
    Call {
        procedure: usize,
        meta: Option<usize>,
        timeout_ms: u64,
        receive_progress: bool,
    },
    Yield {
        pick: usize,
        progress: bool,
    },
    Error {
        pick: usize,
    },
    Cancel {
        pick: usize,
        mode: usize,
    },
    Goodbye,
    Garbage,
    Disconnect,
}

impl Op {
    fn read(u: &mut Unstructured<'_>) -> arbitrary::Result<Self> {
        let slot = usize::from(u.arbitrary::<u8>()? % 4);
        let pick = |u: &mut Unstructured<'_>| -> arbitrary::Result<usize> {
            Ok(usize::from(u.arbitrary::<u8>()?))
        };
        let action = match u.int_in_range(0..=15u8)? {
            0 => Action::Hello,
            1 => Action::Subscribe {
                topic: u.choose_index(TOPICS.len())?,
                policy: u.choose_index(POLICIES.len())?,
            },
            2 => Action::Unsubscribe { pick: pick(u)? },
            3 | 4 => Action::Publish {
                topic: u.choose_index(TOPICS.len())?,
                acknowledge: u.arbitrary()?,
                exclude_me: u.arbitrary()?,
                retain: u.ratio(1, 8)?,
            },
            5 => Action::Register {
                procedure: u.choose_index(PROCEDURES.len())?,
                policy: u.choose_index(POLICIES.len())?,
                invoke: u.choose_index(INVOKE.len())?,
            },
            6 => Action::Unregister { pick: pick(u)? },
            7 | 8 => Action::Call {
                procedure: u.choose_index(PROCEDURES.len())?,
                meta: if u.ratio(1, 6)? {
                    Some(u.choose_index(META.len())?)
                } else {
                    None
                },
                timeout_ms: *u.choose(&[0, 0, 500, 3000])?,
                receive_progress: u.arbitrary()?,
            },
            9 | 10 => Action::Yield {
                pick: pick(u)?,
                progress: u.ratio(1, 4)?,
            },
            11 => Action::Error { pick: pick(u)? },
            12 => Action::Cancel {
                pick: pick(u)?,
                mode: u.choose_index(CANCEL_MODES.len())?,
            },
            13 => Action::Goodbye,
            14 => {
                if u.ratio(1, 2)? {
                    Action::Disconnect
                } else {
                    Action::Garbage
                }
            }
            _ => return Ok(Op::Advance(*u.choose(&[1, 499, 500, 1000, 3000, 10_000])?)),
        };
        Ok(Op::Client { slot, action })
    }
}

// ===== the fake connections =====

/// A connection's outgoing queue: what the realm pushed, bounded like the runtime's (a push is
/// refused once more than `max_queued` bytes are queued; 0: unbounded), drained every step.
#[derive(Debug, Default)]
struct FuzzOutbox {
    max_queued: usize,
    queue: Mutex<Queue>,
}

#[derive(Debug, Default)]
struct Queue {
    items: Vec<Outbound>,
    queued: usize,
    killed: bool,
    /// The connection is gone: pushes fail, as the runtime's queue does once its connection's
    /// task has ended.
    gone: bool,
}

impl Outbox for FuzzOutbox {
    fn push(&self, message: Bytes) -> Result<(), SendError> {
        let mut q = self.queue.lock().expect("outbox lock");
        if q.killed || q.gone {
            return Err(SendError::Closed);
        }
        if self.max_queued > 0 && q.queued > self.max_queued {
            return Err(SendError::QueueFull(self.max_queued));
        }
        q.queued += message.len();
        q.items.push(Outbound::Message(message));
        Ok(())
    }
    fn close(&self, reason: CloseReason) {
        let mut q = self.queue.lock().expect("outbox lock");
        q.items.push(Outbound::Close(reason));
    }
    fn kill(&self, reason: CloseReason) {
        let mut q = self.queue.lock().expect("outbox lock");
        q.killed = true;
        q.items.push(Outbound::Close(reason));
    }
}

impl FuzzOutbox {
    /// The connection drops: nothing can be queued for it any more.
    fn disconnect(&self) {
        self.queue.lock().expect("outbox lock").gone = true;
    }

    fn drain(&self) -> Vec<Outbound> {
        let mut q = self.queue.lock().expect("outbox lock");
        q.queued = 0;
        std::mem::take(&mut q.items)
    }
}

/// Where a connection's messages go, as the runtime's `Connection` tracks it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route {
    /// The next message must be HELLO (`handle_hello`).
    NoRealm,
    /// Messages go to `handle_message`, until the client's GOODBYE.
    Realm,
    /// Closed by the router: a new connection replaces it at its next operation.
    Closed,
}

/// One of the fake clients' connections.
#[derive(Debug)]
struct Slot {
    conn: ConnId,
    serializer: Serializer,
    max_queued: usize,
    outbox: Arc<FuzzOutbox>,
    route: Route,
    /// The record of its open session.
    session: Option<usize>,
}

/// A session as its client sees it.
#[derive(Debug, Default)]
struct Record {
    slot: usize,
    /// The WAMP session id, from WELCOME (0 before).
    id: Id,
    open: bool,
    /// The router said GOODBYE: it no longer serves this session, which is leaving.
    closing: bool,
    /// This client said GOODBYE (it expects a GOODBYE in reply).
    said_goodbye: bool,
    next_request: Id,
    /// Messages, bytes and rated messages sent and accepted by its outbox.
    messages: u64,
    bytes: u64,
    rated: u64,
    subscriptions: Vec<Id>,
    registrations: Vec<Id>,
    /// Requests sent and not answered, by request id: the message type answered.
    requests: BTreeMap<Id, u64>,
    unsubscribing: BTreeMap<Id, Id>,
    unregistering: BTreeMap<Id, Id>,
    /// Calls not answered: request id -> tag.
    calls: BTreeMap<Id, u64>,
    /// Invocations it owes: INVOCATION request id -> tag of the call.
    owes: BTreeMap<Id, u64>,
}

/// The monitor: a JSON session subscribed to `wamp.session.on_stats`.
#[derive(Debug)]
struct Monitor {
    conn: ConnId,
    outbox: Arc<FuzzOutbox>,
    subscription: Id,
    /// The on_stats cycles it received, by session id.
    cycles: HashMap<Id, Vec<Dict>>,
}

struct Harness {
    realm: Realm,
    now: Instant,
    stats: StatsConfig,
    slots: Vec<Slot>,
    records: Vec<Record>,
    monitor: Monitor,
    next_conn: ConnId,
    next_tag: u64,
    /// Per call tag: the callee record and INVOCATION request id, once invoked.
    invoked: HashMap<u64, (usize, Id)>,
    /// The tables with the monitor alone.
    baseline: TableSizes,
    /// Print every step and every message (`SESSION_FUZZ_TRACE` set), to read a finding.
    trace: bool,
}

fn realm_config(stats: StatsConfig) -> RealmConfig {
    RealmConfig {
        name: "realm1".into(),
        roles: vec![RoleConfig {
            name: "anonymous".into(),
            permissions: vec![Permission {
                uri: String::new(),
                match_policy: MatchPolicy::Prefix,
                allow: Allow {
                    call: true,
                    register: true,
                    publish: true,
                    subscribe: true,
                },
                disclose: Disclose::default(),
                cache: true,
            }],
            authorizer: None,
        }],
        options: RealmOptions::default(),
        stats: Some(stats),
        event_history: vec![],
        // The harness sets the limits it draws with `Realm::set_session_limits`.
        limits: Default::default(),
    }
}

fn info(serializer: Serializer) -> Arc<TransportInfo> {
    Arc::new(TransportInfo {
        channel_type: ChannelType::Tcp,
        framing: Framing::WebSocket,
        serializer,
        peer: "tcp4:127.0.0.1:1".into(),
        http_headers: None,
        auth: None,
        peer_cert: None,
    })
}

fn hello_details() -> Dict {
    let features = |names: &[&str]| {
        let f: Dict = names
            .iter()
            .map(|n| ((*n).to_owned(), Value::Bool(true)))
            .collect();
        let mut role = Dict::new();
        role.insert("features".into(), Value::Dict(f));
        Value::Dict(role)
    };
    let mut roles = Dict::new();
    roles.insert("subscriber".into(), features(&[]));
    roles.insert("publisher".into(), features(&[]));
    roles.insert(
        "caller".into(),
        features(&["progressive_call_results", "call_canceling"]),
    );
    roles.insert(
        "callee".into(),
        features(&["progressive_call_results", "call_canceling"]),
    );
    let mut details = Dict::new();
    details.insert("roles".into(), Value::Dict(roles));
    details
}

fn dict(entries: &[(&str, Value)]) -> Dict {
    entries
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect()
}

impl Harness {
    fn new(setup: Setup) -> Self {
        let now = Instant::now();
        let mut realm = Realm::new(realm_config(setup.stats), now);
        realm.set_session_limits(setup.limits);
        let monitor_outbox = Arc::new(FuzzOutbox::default());
        let mut h = Self {
            realm,
            now,
            stats: setup.stats,
            slots: Vec::new(),
            records: Vec::new(),
            monitor: Monitor {
                conn: 1,
                outbox: monitor_outbox,
                subscription: 0,
                cycles: HashMap::new(),
            },
            next_conn: 2,
            next_tag: 1,
            invoked: HashMap::new(),
            baseline: TableSizes::default(),
            trace: std::env::var_os("SESSION_FUZZ_TRACE").is_some(),
        };
        for (serializer, max_queued) in setup.slots {
            let conn = h.new_conn();
            h.slots.push(Slot {
                conn,
                serializer,
                max_queued,
                outbox: Arc::new(FuzzOutbox {
                    max_queued,
                    ..FuzzOutbox::default()
                }),
                route: Route::NoRealm,
                session: None,
            });
        }
        h.start_monitor();
        h
    }

    fn new_conn(&mut self) -> ConnId {
        self.next_conn += 1;
        self.next_conn
    }

    /// The monitor joins and subscribes to `wamp.session.on_stats`.
    fn start_monitor(&mut self) {
        let m = &self.monitor;
        let hello = Message::Hello {
            realm: "realm1".into(),
            details: hello_details(),
        };
        let len = Serializer::Json.encode(&hello).expect("encode HELLO").len();
        self.realm.handle_hello(
            m.conn,
            PeerSender::new(m.outbox.clone()),
            info(Serializer::Json),
            hello_details(),
            len,
            self.now + HANDSHAKE_TIMEOUT,
            self.now,
        );
        let subscribe = Message::Subscribe {
            request: 1,
            options: Dict::new(),
            topic: "wamp.session.on_stats".into(),
        };
        let len = Serializer::Json.encode(&subscribe).expect("encode").len();
        self.realm
            .handle_message(self.monitor.conn, subscribe, len, self.now);
        for item in self.monitor.outbox.drain() {
            if let Outbound::Message(bytes) = item {
                if let Ok(Message::Subscribed { subscription, .. }) =
                    Serializer::Json.decode(&bytes)
                {
                    self.monitor.subscription = subscription;
                }
            }
        }
        assert_ne!(
            self.monitor.subscription, 0,
            "setup: the monitor did not subscribe"
        );
        self.baseline = self.realm.table_sizes();
    }

    // ===== steps =====

    fn step(&mut self, op: Op) {
        if self.trace {
            eprintln!("step: {op:?}");
        }
        match op {
            Op::Advance(ms) => {
                self.now += Duration::from_millis(ms);
                self.realm.handle_timeout(self.now);
            }
            Op::Client { slot, action } => {
                let slot = slot % self.slots.len();
                self.client_step(slot, action);
            }
        }
        self.after_step();
    }

    fn client_step(&mut self, slot: usize, action: Action) {
        if self.slots[slot].route == Route::Closed {
            // The router closed it: the client connects again.
            let conn = self.new_conn();
            let s = &mut self.slots[slot];
            s.conn = conn;
            s.outbox = Arc::new(FuzzOutbox {
                max_queued: s.max_queued,
                ..FuzzOutbox::default()
            });
            s.route = Route::NoRealm;
        }
        let route = self.slots[slot].route;
        match action {
            Action::Disconnect => {
                // What was queued before is delivered; what the realm queues on hearing of
                // the disconnect is not (the runtime's queue is gone with the connection).
                self.drain_slot(slot);
                self.slots[slot].outbox.disconnect();
                if route == Route::Realm {
                    self.realm
                        .handle_disconnected(self.slots[slot].conn, self.now);
                }
                self.end_session(slot);
                self.slots[slot].route = Route::Closed;
                return;
            }
            Action::Garbage => {
                if route == Route::Realm {
                    let text = "undecodable message (fuzz)";
                    self.realm
                        .handle_protocol_violation(self.slots[slot].conn, text, self.now);
                    self.slots[slot].route = Route::Closed;
                    self.drain_slot(slot);
                    self.end_session(slot);
                }
                return;
            }
            Action::Hello if route == Route::NoRealm => {
                self.hello(slot);
                return;
            }
            _ => {}
        }
        if route != Route::Realm {
            // Before HELLO the runtime answers anything with ABORT itself; not the realm's.
            return;
        }
        let Some(msg) = self.message(slot, action) else {
            return;
        };
        self.send(slot, msg);
    }

    /// HELLO from a connection without realm: a new session.
    fn hello(&mut self, slot: usize) {
        let rec = self.records.len();
        self.records.push(Record {
            slot,
            open: true,
            next_request: 1,
            ..Record::default()
        });
        let s = &mut self.slots[slot];
        s.session = Some(rec);
        s.route = Route::Realm;
        let hello = Message::Hello {
            realm: "realm1".into(),
            details: hello_details(),
        };
        let bytes = s.serializer.encode(&hello).expect("encode HELLO");
        let (conn, serializer, outbox) = (s.conn, s.serializer, s.outbox.clone());
        self.count_sent(rec, bytes.len());
        self.realm.handle_hello(
            conn,
            PeerSender::new(outbox),
            info(serializer),
            hello_details(),
            bytes.len(),
            self.now + HANDSHAKE_TIMEOUT,
            self.now,
        );
        self.drain_slot(slot);
        let r = &self.records[rec];
        assert!(
            r.id != 0 || !r.open,
            "HELLO: a session neither welcomed nor refused"
        );
    }

    /// The message `action` sends, with the client's bookkeeping of what it expects back.
    fn message(&mut self, slot: usize, action: Action) -> Option<Message> {
        let tag = self.next_tag;
        self.next_tag += 1;
        // For wamp.session.kill: another client's session (never the monitor's).
        let kill_target = self
            .records
            .iter()
            .rev()
            .find(|r| r.open && r.slot != slot && r.id != 0)
            .map_or(4242, |r| r.id);
        let Some(rec) = self.slots[slot].session.map(|r| &mut self.records[r]) else {
            // A session ended by the router, whose connection is not closed yet: the message
            // reaches no session; sending nothing keeps the model simple.
            return None;
        };
        let request = rec.next_request;
        rec.next_request += 1;
        // A session the router said GOODBYE to gets no answers any more.
        let expect = !rec.closing;
        let pick = |ids: &[Id], pick: usize| -> Id {
            // Beyond what it holds: an id it never got.
            ids.get(pick % (ids.len() + 1)).copied().unwrap_or(4242)
        };
        let msg = match action {
            Action::Hello => Message::Hello {
                realm: "realm1".into(),
                details: hello_details(),
            },
            Action::Subscribe { topic, policy } => {
                if expect {
                    rec.requests.insert(request, code::SUBSCRIBE);
                }
                let mut options = Dict::new();
                if POLICIES[policy] != MatchPolicy::Exact {
                    options.insert("match".into(), Value::Str(POLICIES[policy].as_str().into()));
                }
                options.insert("get_retained".into(), Value::Bool(true));
                Message::Subscribe {
                    request,
                    options,
                    topic: TOPICS[topic].into(),
                }
            }
            Action::Unsubscribe { pick: p } => {
                let subscription = pick(&rec.subscriptions, p);
                if expect {
                    rec.requests.insert(request, code::UNSUBSCRIBE);
                    rec.unsubscribing.insert(request, subscription);
                }
                Message::Unsubscribe {
                    request,
                    subscription,
                }
            }
            Action::Publish {
                topic,
                acknowledge,
                exclude_me,
                retain,
            } => {
                if acknowledge && expect {
                    rec.requests.insert(request, code::PUBLISH);
                }
                Message::Publish {
                    request,
                    options: dict(&[
                        ("acknowledge", Value::Bool(acknowledge)),
                        ("exclude_me", Value::Bool(exclude_me)),
                        ("retain", Value::Bool(retain)),
                    ]),
                    topic: TOPICS[topic].into(),
                    args: Some(vec![Value::from(request)]),
                    kwargs: None,
                }
            }
            Action::Register {
                procedure,
                policy,
                invoke,
            } => {
                if expect {
                    rec.requests.insert(request, code::REGISTER);
                }
                let mut options = dict(&[("invoke", Value::Str(INVOKE[invoke].into()))]);
                if POLICIES[policy] != MatchPolicy::Exact {
                    options.insert("match".into(), Value::Str(POLICIES[policy].as_str().into()));
                }
                Message::Register {
                    request,
                    options,
                    procedure: PROCEDURES[procedure].into(),
                }
            }
            Action::Unregister { pick: p } => {
                let registration = pick(&rec.registrations, p);
                if expect {
                    rec.requests.insert(request, code::UNREGISTER);
                    rec.unregistering.insert(request, registration);
                }
                Message::Unregister {
                    request,
                    registration,
                }
            }
            Action::Call {
                procedure,
                meta,
                timeout_ms,
                receive_progress,
            } => {
                let mut options = Dict::new();
                if timeout_ms > 0 {
                    options.insert("timeout".into(), Value::from(timeout_ms));
                }
                if receive_progress {
                    options.insert("receive_progress".into(), Value::Bool(true));
                }
                let (procedure, args) = match meta.map(|m| META[m]) {
                    Some("wamp.session.kill") => {
                        ("wamp.session.kill", vec![Value::from(kill_target)])
                    }
                    Some("wamp.subscription.match") => {
                        ("wamp.subscription.match", vec![Value::Str("com.a".into())])
                    }
                    Some(m) => (m, vec![]),
                    None => (PROCEDURES[procedure], vec![Value::from(tag)]),
                };
                if expect {
                    rec.calls.insert(request, tag);
                }
                Message::Call {
                    request,
                    options,
                    procedure: procedure.into(),
                    args: Some(args),
                    kwargs: None,
                }
            }
            Action::Yield { pick: p, progress } => {
                let owed: Vec<Id> = rec.owes.keys().copied().collect();
                let invocation = pick(&owed, p);
                if !progress {
                    rec.owes.remove(&invocation);
                }
                let options = if progress {
                    dict(&[("progress", Value::Bool(true))])
                } else {
                    Dict::new()
                };
                Message::Yield {
                    request: invocation,
                    options,
                    args: Some(vec![Value::Str("result".into())]),
                    kwargs: None,
                }
            }
            Action::Error { pick: p } => {
                let owed: Vec<Id> = rec.owes.keys().copied().collect();
                let invocation = pick(&owed, p);
                rec.owes.remove(&invocation);
                Message::Error {
                    request_type: code::INVOCATION,
                    request: invocation,
                    details: Dict::new(),
                    error: "com.error.failed".into(),
                    args: None,
                    kwargs: None,
                }
            }
            Action::Cancel { pick: p, mode } => {
                let calls: Vec<Id> = rec.calls.keys().copied().collect();
                let call = pick(&calls, p);
                let options = match CANCEL_MODES[mode] {
                    Some(m) => dict(&[("mode", Value::Str(m.into()))]),
                    None => Dict::new(),
                };
                Message::Cancel {
                    request: call,
                    options,
                }
            }
            Action::Goodbye => {
                rec.said_goodbye = true;
                Message::Goodbye {
                    details: Dict::new(),
                    reason: "wamp.close.normal".into(),
                }
            }
            Action::Garbage | Action::Disconnect => return None,
        };
        Some(msg)
    }

    /// Sends `msg` from the connection of `slot` to the realm, as the runtime would.
    fn send(&mut self, slot: usize, msg: Message) {
        let s = &self.slots[slot];
        let Ok(bytes) = s.serializer.encode(&msg) else {
            return;
        };
        let decoded = s
            .serializer
            .decode(&bytes)
            .expect("a message we encoded decodes");
        let goodbye = matches!(decoded, Message::Goodbye { .. });
        let conn = s.conn;
        if let Some(rec) = s.session {
            self.count_sent(rec, bytes.len());
        }
        self.realm
            .handle_message(conn, decoded, bytes.len(), self.now);
        if goodbye {
            // The runtime sends whatever follows the client's GOODBYE to handle_hello.
            self.slots[slot].route = Route::NoRealm;
        }
        self.drain_slot(slot);
        if goodbye {
            // Answered (a GOODBYE in reply) or not (it answered the router's GOODBYE): the
            // session is over either way.
            self.end_session(slot);
        }
    }

    fn count_sent(&mut self, rec: usize, len: usize) {
        let size = u64::from(self.stats.rated_message_size);
        let r = &mut self.records[rec];
        r.messages += 1;
        r.bytes += len as u64;
        r.rated += (len as u64).div_ceil(size);
    }

    /// Ends the open session of `slot`, if any: its calls no longer need an answer.
    fn end_session(&mut self, slot: usize) {
        if let Some(rec) = self.slots[slot].session.take() {
            let r = &mut self.records[rec];
            r.open = false;
            r.calls.clear();
        }
    }

    // ===== what the clients receive =====

    /// Everything queued for every connection and the monitor since the last step.
    fn after_step(&mut self) {
        self.run_due_work();
        for slot in 0..self.slots.len() {
            self.drain_slot(slot);
        }
        self.drain_monitor();
        self.check_calls();
        self.check_requests();
        self.check_stats();
        self.check_memory();
    }

    /// What the runtime's realm task does after every input: while the realm's deadline is due
    /// (a timer, or work it does in steps such as removing what a leaving session held), call
    /// `handle_timeout`. Each call must make progress: the work ends within a bound.
    fn run_due_work(&mut self) {
        for _ in 0..MAX_DUE_ROUNDS {
            match self.realm.poll_timeout() {
                Some(at) if at <= self.now => self.realm.handle_timeout(self.now),
                _ => return,
            }
        }
        panic!("time: the realm is still due after {MAX_DUE_ROUNDS} rounds of handle_timeout");
    }

    fn drain_slot(&mut self, slot: usize) {
        let items = self.slots[slot].outbox.drain();
        let serializer = self.slots[slot].serializer;
        for item in items {
            let bytes = match item {
                Outbound::Message(bytes) => bytes,
                Outbound::Close(reason) => {
                    if self.trace {
                        eprintln!(
                            "  slot {slot} (conn {}) closed: {reason:?}",
                            self.slots[slot].conn
                        );
                    }
                    // The transport closes; the runtime then reports the connection gone.
                    if self.slots[slot].route == Route::Realm {
                        self.realm
                            .handle_disconnected(self.slots[slot].conn, self.now);
                    }
                    self.slots[slot].route = Route::Closed;
                    self.end_session(slot);
                    continue;
                }
            };
            let msg = serializer
                .decode(&bytes)
                .unwrap_or_else(|e| panic!("the realm sent a message that does not decode: {e}"));
            if self.trace {
                eprintln!("  slot {slot} (conn {}) got {msg:?}", self.slots[slot].conn);
            }
            let Some(rec) = self.slots[slot].session else {
                panic!("a {} to a connection after its session ended", msg.name());
            };
            let size = u64::from(self.stats.rated_message_size);
            let r = &mut self.records[rec];
            r.messages += 1;
            r.bytes += bytes.len() as u64;
            r.rated += (bytes.len() as u64).div_ceil(size);
            self.receive(slot, rec, msg);
        }
    }

    /// One message to the session `rec`: checked against what it asked for and holds.
    fn receive(&mut self, slot: usize, rec: usize, msg: Message) {
        let r = &mut self.records[rec];
        let name = msg.name();
        let mut ended = false;
        let mut invoked = None;
        let answered = |r: &mut Record, request: Id, kind: u64| {
            match r.requests.remove(&request) {
                Some(k) if k == kind => {}
                other => panic!(
                    "requests: {name} for request {request}, which is {other:?} (not an unanswered request of type {kind})"
                ),
            }
        };
        match msg {
            Message::Welcome { session, .. } => {
                assert_eq!(r.id, 0, "WELCOME twice");
                r.id = session;
            }
            Message::Abort { .. } => ended = true,
            Message::Goodbye { .. } => {
                if r.said_goodbye {
                    // The reply to ours: `send` ends the session.
                } else {
                    assert!(!r.closing, "the router said GOODBYE twice");
                    r.closing = true;
                    // No answers to come for what it asked.
                    r.requests.clear();
                    r.calls.clear();
                }
            }
            Message::Subscribed {
                request,
                subscription,
            } => {
                answered(r, request, code::SUBSCRIBE);
                if !r.subscriptions.contains(&subscription) {
                    r.subscriptions.push(subscription);
                }
            }
            Message::Unsubscribed {
                request: 0,
                details,
            } => {
                let id = details
                    .as_ref()
                    .and_then(|d| d.get("subscription"))
                    .and_then(Value::as_u64)
                    .expect("a revocation names its subscription");
                r.subscriptions.retain(|s| *s != id);
            }
            Message::Unsubscribed { request, .. } => {
                answered(r, request, code::UNSUBSCRIBE);
                let id = r.unsubscribing.remove(&request).expect("unsubscribing");
                assert!(
                    r.subscriptions.contains(&id),
                    "requests: UNSUBSCRIBED for subscription {id}, which the session does not hold"
                );
                r.subscriptions.retain(|s| *s != id);
            }
            Message::Registered {
                request,
                registration,
            } => {
                answered(r, request, code::REGISTER);
                r.registrations.push(registration);
            }
            Message::Unregistered {
                request: 0,
                details,
            } => {
                let id = details
                    .as_ref()
                    .and_then(|d| d.get("registration"))
                    .and_then(Value::as_u64)
                    .expect("a revocation names its registration");
                r.registrations.retain(|s| *s != id);
            }
            Message::Unregistered { request, .. } => {
                answered(r, request, code::UNREGISTER);
                let id = r.unregistering.remove(&request).expect("unregistering");
                r.registrations.retain(|s| *s != id);
            }
            Message::Published { request, .. } => answered(r, request, code::PUBLISH),
            Message::Event { subscription, .. } => {
                assert!(
                    r.subscriptions.contains(&subscription),
                    "events: EVENT for subscription {subscription} to session {} holding {:?}",
                    r.id,
                    r.subscriptions
                );
            }
            Message::Result {
                request, details, ..
            } => {
                let progress = details.get("progress").and_then(Value::as_bool) == Some(true);
                assert!(
                    r.calls.contains_key(&request),
                    "calls: RESULT for request {request}, which is not a call waiting for its answer"
                );
                if !progress {
                    r.calls.remove(&request);
                }
            }
            Message::Error {
                request_type,
                request,
                ..
            } => {
                if request_type == code::CALL {
                    assert!(
                        r.calls.remove(&request).is_some(),
                        "calls: ERROR for CALL {request}, which is not a call waiting for its answer (answered twice?)"
                    );
                } else {
                    answered(r, request, request_type);
                    r.unsubscribing.remove(&request);
                    r.unregistering.remove(&request);
                }
            }
            Message::Invocation {
                request,
                registration,
                args,
                ..
            } => {
                assert!(
                    r.registrations.contains(&registration),
                    "calls: INVOCATION for registration {registration} to session {} holding {:?}",
                    r.id,
                    r.registrations
                );
                let tag = args
                    .as_ref()
                    .and_then(|a| a.first())
                    .and_then(Value::as_u64)
                    .expect("an INVOCATION carries the call's tag");
                assert!(
                    r.owes.insert(request, tag).is_none(),
                    "calls: INVOCATION request id {request} given twice"
                );
                invoked = Some((tag, request));
            }
            Message::Interrupt { .. } => {}
            other => panic!("a {} to a client", other.name()),
        }
        if let Some((tag, request)) = invoked {
            self.invoked.insert(tag, (rec, request));
        }
        if ended {
            self.end_session(slot);
        }
    }

    fn drain_monitor(&mut self) {
        for item in self.monitor.outbox.drain() {
            let Outbound::Message(bytes) = item else {
                panic!("the monitor's connection was closed");
            };
            let msg = Serializer::Json.decode(&bytes).expect("decodes");
            let Message::Event {
                subscription, args, ..
            } = msg
            else {
                panic!("the monitor got a {}", msg.name());
            };
            assert_eq!(
                subscription, self.monitor.subscription,
                "events: EVENT for subscription {subscription} to the monitor"
            );
            let args = args.unwrap_or_default();
            let (Some(Value::Dict(about)), Some(Value::Dict(stats))) = (args.first(), args.get(1))
            else {
                panic!("an on_stats event without its two dicts: {args:?}");
            };
            let session = about
                .get("session")
                .and_then(Value::as_u64)
                .expect("on_stats names the session");
            self.monitor
                .cycles
                .entry(session)
                .or_default()
                .push(stats.clone());
        }
    }

    // ===== invariants =====

    /// Every unanswered CALL of a session that stays is held by a callee that owes it.
    fn check_calls(&self) {
        for r in self.records.iter().filter(|r| r.open && !r.closing) {
            for (request, tag) in &r.calls {
                let held = self.invoked.get(tag).is_some_and(|&(callee, inv)| {
                    let c = &self.records[callee];
                    c.open && c.owes.contains_key(&inv)
                });
                assert!(
                    held,
                    "calls: CALL {request} of session {} is neither answered nor held by a callee that owes it",
                    r.id
                );
            }
        }
    }

    /// Requests of open sessions were answered in the step they were sent.
    fn check_requests(&self) {
        for r in self.records.iter().filter(|r| r.open && !r.closing) {
            assert!(
                r.requests.is_empty(),
                "requests: session {} has requests without an answer: {:?}",
                r.id,
                r.requests
            );
        }
    }

    /// Each session's cycles are numbered, and sum to at most (after it left: exactly) what it
    /// exchanged.
    fn check_stats(&self) {
        for r in self.records.iter().filter(|r| r.id != 0) {
            let cycles = self
                .monitor
                .cycles
                .get(&r.id)
                .map_or(&[][..], Vec::as_slice);
            let int = |d: &Dict, k: &str| {
                d.get(k)
                    .and_then(Value::as_u64)
                    .unwrap_or_else(|| panic!("stats: {k} is not an integer: {d:?}"))
            };
            let sum = |k: &str| cycles.iter().map(|c| int(c, k)).sum::<u64>();
            for (k, c) in cycles.iter().enumerate() {
                assert_eq!(
                    int(c, "cycle"),
                    k as u64 + 1,
                    "stats: cycles of {} out of order",
                    r.id
                );
                let last = c.get("last").and_then(Value::as_bool);
                assert_eq!(
                    last == Some(true),
                    k + 1 == cycles.len() && !r.open,
                    "stats: cycle {} of {} says last={last:?}",
                    k + 1,
                    r.id
                );
            }
            let (messages, bytes, rated) = (sum("messages"), sum("bytes"), sum("rated_messages"));
            let own = (r.messages, r.bytes, r.rated);
            if r.open {
                assert!(
                    messages <= own.0 && bytes <= own.1 && rated <= own.2,
                    "stats: session {} reported (messages, bytes, rated) {:?} > its own {own:?}",
                    r.id,
                    (messages, bytes, rated)
                );
            } else {
                assert_eq!(
                    (messages, bytes, rated),
                    own,
                    "stats: session {} left; its cycles (messages, bytes, rated) differ from its own count",
                    r.id
                );
            }
        }
    }

    /// With no client session open the tables are as with the monitor alone.
    fn check_memory(&self) {
        if self.records.iter().any(|r| r.open) {
            return;
        }
        let now = TableSizes {
            retained_topics: self.baseline.retained_topics,
            ..self.realm.table_sizes()
        };
        assert_eq!(
            now, self.baseline,
            "memory: every client session left, but the realm's tables are not as with the monitor alone"
        );
    }

    /// Every connection is dropped, then the monitor's; everything must be gone.
    fn finish(&mut self) {
        for slot in 0..self.slots.len() {
            self.step(Op::Client {
                slot,
                action: Action::Disconnect,
            });
        }
        self.realm.handle_disconnected(self.monitor.conn, self.now);
        let sizes = self.realm.table_sizes();
        assert!(
            sizes.is_empty_but_retained(),
            "memory: no session is left but the realm holds {sizes:?}"
        );
        assert_eq!(
            self.realm.poll_timeout(),
            None,
            "memory: no session is left but a deadline is"
        );
    }
}
