//! Tests of the routing core without sockets: fake clients exchange encoded messages with a
//! [`Realm`] through its `handle_*` inputs, and time is advanced by hand.

use std::sync::Arc;
use std::time::{Duration, Instant};

use turnstile_config::{
    Allow, Disclose, Permission, RealmConfig, RealmOptions, RoleConfig, StatsConfig,
};
use wamp_proto::message::code;
use wamp_proto::{dict, uris, Dict, Id, List, MatchPolicy, Message, Serializer, Value};

use std::collections::VecDeque;
use std::sync::Mutex;

use bytes::Bytes;

use crate::limits;
use crate::peer::{
    ChannelType, CloseReason, ConnId, Framing, Outbound, Outbox, PeerSender, SendError,
    TransportInfo,
};
use crate::realm::{Effect, Realm, ReplyToken};

/// A new configuration handed to a running realm (`Realm::handle_config`, `handle_removed`).
mod reload;
/// The usage rows of closed statistics cycles (`Realm::poll_usage`).
mod usage;

/// A fake connection's outgoing queue: what the realm queued, bounded in bytes like the
/// runtime's, with a kill taking precedence over what is queued.
#[derive(Debug)]
struct FakeOutbox {
    max_queued_bytes: usize,
    state: Mutex<FakeQueue>,
}

#[derive(Debug, Default)]
struct FakeQueue {
    items: VecDeque<Outbound>,
    queued_bytes: usize,
    killed: Option<CloseReason>,
}

impl Outbox for FakeOutbox {
    fn push(&self, message: Bytes) -> Result<(), SendError> {
        let mut q = self.state.lock().unwrap();
        if q.queued_bytes > self.max_queued_bytes {
            return Err(SendError::QueueFull(self.max_queued_bytes));
        }
        q.queued_bytes += message.len();
        q.items.push_back(Outbound::Message(message));
        Ok(())
    }
    fn close(&self, reason: CloseReason) {
        self.state
            .lock()
            .unwrap()
            .items
            .push_back(Outbound::Close(reason));
    }
    fn kill(&self, reason: CloseReason) {
        self.state.lock().unwrap().killed.get_or_insert(reason);
    }
}

/// The client's end of a [`FakeOutbox`].
struct PeerReceiver(Arc<FakeOutbox>);

impl PeerReceiver {
    fn try_recv(&mut self) -> Option<Outbound> {
        let mut q = self.0.state.lock().unwrap();
        if let Some(reason) = &q.killed {
            return Some(Outbound::Close(reason.clone()));
        }
        let item = q.items.pop_front();
        if let Some(Outbound::Message(b)) = &item {
            q.queued_bytes -= b.len();
        }
        item
    }
}

fn peer_channel(max_queued_bytes: usize) -> (PeerSender, PeerReceiver) {
    let outbox = Arc::new(FakeOutbox {
        max_queued_bytes,
        state: Mutex::default(),
    });
    (PeerSender::new(outbox.clone()), PeerReceiver(outbox))
}

/// A fake client: what it sent and received, with exact serialized lengths.
struct Client {
    conn: ConnId,
    serializer: Serializer,
    rx: PeerReceiver,
    peer: PeerSender,
    /// (sent?, length) of every message, in order.
    log: Vec<(bool, usize)>,
    inbox: Vec<Message>,
    closed: bool,
    session: Id,
}

impl Client {
    fn totals(&self) -> (u64, u64) {
        (
            self.log.len() as u64,
            self.log.iter().map(|(_, l)| *l as u64).sum(),
        )
    }
    fn rated(&self, size: u64) -> u64 {
        self.log
            .iter()
            .map(|(_, l)| (*l as u64).div_ceil(size))
            .sum()
    }
}

struct Harness {
    realm: Realm,
    now: Instant,
    next_conn: ConnId,
    /// Answers to calls handed in with `handle_internal_call`, by token, as the shell keeps them.
    answers: std::collections::HashMap<ReplyToken, crate::dealer::InternalCallOutcome>,
    next_token: ReplyToken,
}

fn allow_all_role(name: &str) -> RoleConfig {
    RoleConfig {
        name: name.into(),
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
    }
}

fn realm_config(stats: Option<StatsConfig>) -> RealmConfig {
    RealmConfig {
        name: "realm1".into(),
        roles: vec![allow_all_role("anonymous")],
        options: RealmOptions::default(),
        stats,
        event_history: vec![],
        limits: Default::default(),
    }
}

fn stats(f: impl FnOnce(&mut StatsConfig)) -> Option<StatsConfig> {
    let mut s = StatsConfig::default();
    f(&mut s);
    Some(s)
}

impl Harness {
    fn new(config: RealmConfig) -> Self {
        let now = Instant::now();
        Self {
            realm: Realm::new(config, now),
            now,
            next_conn: 1,
            answers: Default::default(),
            next_token: 0,
        }
    }

    /// Takes the realm's effects as the shell would: answers are kept by token, calls are
    /// returned as (procedure, args, purpose).
    fn poll_effects(&mut self) -> Vec<(String, List, crate::realm::CallPurpose)> {
        let mut calls = Vec::new();
        while let Some(effect) = self.realm.poll_effect() {
            match effect {
                Effect::Answer { reply, outcome } => {
                    assert!(self.answers.insert(reply, outcome).is_none(), "one answer");
                }
                Effect::Call {
                    procedure,
                    args,
                    purpose,
                    ..
                } => calls.push((procedure, args, purpose)),
            }
        }
        calls
    }

    /// Hands the realm a call of the router's own; returns its reply token.
    fn internal_call(&mut self, procedure: &str, args: List) -> ReplyToken {
        self.next_token += 1;
        self.realm
            .handle_internal_call(procedure, args, None, self.next_token, self.now);
        self.next_token
    }

    /// The answer to the internal call with `reply`, once the realm has given it.
    fn answer(&mut self, reply: ReplyToken) -> Option<crate::dealer::InternalCallOutcome> {
        let calls = self.poll_effects();
        assert!(calls.is_empty(), "unexpected calls: {calls:?}");
        self.answers.remove(&reply)
    }

    fn connect(&mut self, serializer: Serializer) -> Client {
        let conn = self.next_conn;
        self.next_conn += 1;
        // As large as the runtime's default (`turnstile::limits::MAX_OUTGOING_QUEUE_BYTES`).
        let (peer, rx) = peer_channel(16 << 20);
        Client {
            conn,
            serializer,
            rx,
            peer,
            log: Vec::new(),
            inbox: Vec::new(),
            closed: false,
            session: 0,
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

    /// HELLO, then reads the WELCOME. Returns the session id.
    fn join(&mut self, c: &mut Client) -> Id {
        let details = dict! {"roles" => Value::Dict(dict! {
            "subscriber" => Value::Dict(Dict::new()),
            "publisher" => Value::Dict(Dict::new()),
            "caller" => Value::Dict(Dict::new()),
            "callee" => Value::Dict(dict!{"features" => Value::Dict(dict!{"progressive_call_results" => true})}),
        })};
        let hello = Message::Hello {
            realm: "realm1".into(),
            details,
        };
        let bytes = c.serializer.encode(&hello).unwrap();
        c.log.push((true, bytes.len()));
        self.realm.handle_hello(
            c.conn,
            c.peer.clone(),
            Self::info(c.serializer),
            match hello {
                Message::Hello { details, .. } => details,
                _ => unreachable!(),
            },
            bytes.len(),
            self.now + limits::HANDSHAKE_TIMEOUT,
            self.now,
        );
        self.pump(c);
        let pos = c
            .inbox
            .iter()
            .position(|m| matches!(m, Message::Welcome { .. }));
        let Some(Message::Welcome { session, .. }) = pos.map(|p| c.inbox.remove(p)) else {
            panic!("no WELCOME: {:?}", c.inbox)
        };
        c.session = session;
        session
    }

    /// Sends one message from the client to the realm.
    fn send(&mut self, c: &mut Client, msg: Message) {
        let bytes = c.serializer.encode(&msg).unwrap();
        c.log.push((true, bytes.len()));
        let decoded = c.serializer.decode(&bytes).unwrap();
        self.realm
            .handle_message(c.conn, decoded, bytes.len(), self.now);
    }

    /// Moves everything queued for the client into its inbox, logging lengths.
    fn pump(&mut self, c: &mut Client) {
        while let Some(item) = c.rx.try_recv() {
            match item {
                Outbound::Message(bytes) => {
                    c.log.push((false, bytes.len()));
                    c.inbox.push(c.serializer.decode(&bytes).unwrap());
                }
                Outbound::Close(_) => c.closed = true,
            }
        }
    }

    fn take(&mut self, c: &mut Client) -> Vec<Message> {
        self.pump(c);
        std::mem::take(&mut c.inbox)
    }

    fn advance(&mut self, d: Duration) {
        self.now += d;
        self.realm.handle_timeout(self.now);
    }

    fn subscribe(&mut self, c: &mut Client, topic: &str) -> Id {
        self.send(
            c,
            Message::Subscribe {
                request: 1,
                options: Dict::new(),
                topic: topic.into(),
            },
        );
        self.pump(c);
        let pos = c
            .inbox
            .iter()
            .position(|m| matches!(m, Message::Subscribed { .. }));
        match pos.map(|p| c.inbox.remove(p)) {
            Some(Message::Subscribed { subscription, .. }) => subscription,
            other => panic!("no SUBSCRIBED: {other:?} {:?}", c.inbox),
        }
    }
}

/// Meta events a monitor received, as (topic-ish tag, args).
fn meta_events(msgs: &[Message], subs: &[(Id, &'static str)]) -> Vec<(&'static str, List)> {
    msgs.iter()
        .filter_map(|m| match m {
            Message::Event {
                subscription, args, ..
            } => subs
                .iter()
                .find(|(id, _)| id == subscription)
                .map(|(_, t)| (*t, args.clone().unwrap_or_default())),
            _ => None,
        })
        .collect()
}

fn stats_of(args: &List) -> (&Dict, &Dict) {
    (args[0].as_dict().unwrap(), args[1].as_dict().unwrap())
}

fn int(d: &Dict, k: &str) -> u64 {
    d[k].as_u64()
        .unwrap_or_else(|| panic!("{k} is not an integer: {:?}", d[k]))
}

/// A monitor subscribed to the three session topics.
fn monitor(h: &mut Harness) -> (Client, Vec<(Id, &'static str)>) {
    let mut m = h.connect(Serializer::Json);
    h.join(&mut m);
    let subs = vec![
        (h.subscribe(&mut m, "wamp.session.on_join"), "join"),
        (h.subscribe(&mut m, "wamp.session.on_stats"), "stats"),
        (h.subscribe(&mut m, "wamp.session.on_leave"), "leave"),
    ];
    h.take(&mut m);
    (m, subs)
}

/// The on_stats events of `session` among `events`.
fn stats_for(events: &[(&'static str, List)], session: Id) -> Vec<Dict> {
    events
        .iter()
        .filter(|(t, a)| *t == "stats" && int(stats_of(a).0, "session") == session)
        .map(|(_, a)| stats_of(a).1.clone())
        .collect()
}

/// §1, §2: the sum over a session's events equals the client's own totals, for every
/// serializer; rated messages are the sum of the per-message ceilings.
#[test]
fn totals_over_events_equal_the_clients_own_counts() {
    for serializer in Serializer::ALL {
        let mut h = Harness::new(realm_config(stats(|s| {
            s.rated_message_size = 16;
            s.trigger_after_rated_messages = 7;
        })));
        let (mut m, subs) = monitor(&mut h);
        let mut c = h.connect(serializer);
        let mut other = h.connect(Serializer::Cbor);
        h.join(&mut other);
        h.subscribe(&mut other, "com.topic");
        let sid = h.join(&mut c);
        h.subscribe(&mut c, "com.topic");
        for i in 0..10 {
            let options = dict! {"acknowledge" => i % 2 == 0, "exclude_me" => false};
            let args = Some(vec![Value::from(i), Value::Bytes(vec![7; i as usize * 30])]);
            let publish = Message::Publish {
                request: 10 + i as u64,
                options,
                topic: "com.topic".into(),
                args,
                kwargs: None,
            };
            h.send(&mut c, publish);
            h.pump(&mut c);
        }
        h.send(
            &mut c,
            Message::Goodbye {
                details: Dict::new(),
                reason: uris::CLOSE_NORMAL.into(),
            },
        );
        h.pump(&mut c);
        let events = meta_events(&h.take(&mut m), &subs);
        let cycles = stats_for(&events, sid);
        assert!(
            cycles.len() > 3,
            "{serializer:?}: rated trigger should cut several cycles"
        );
        let (messages, bytes) = c.totals();
        let sum = |k: &str| cycles.iter().map(|s| int(s, k)).sum::<u64>();
        assert_eq!(sum("messages"), messages, "{serializer:?}");
        assert_eq!(sum("bytes"), bytes, "{serializer:?}");
        assert_eq!(sum("rated_messages"), c.rated(16), "{serializer:?}");
        for (k, s) in cycles.iter().enumerate() {
            assert_eq!(int(s, "cycle"), k as u64 + 1);
            assert_eq!(s["serializer"].as_str(), Some(serializer.name()));
            assert_eq!(s["first"].as_bool(), Some(k == 0));
            assert_eq!(s["last"].as_bool(), Some(k == cycles.len() - 1));
            if k > 0 {
                let prev = &cycles[k - 1];
                assert_eq!(
                    int(prev, "timestamp") + int(prev, "duration"),
                    int(s, "timestamp")
                );
            }
            // Every cycle closed by the rated trigger reached the threshold.
            if k > 0 && k < cycles.len() - 1 {
                assert!(int(s, "rated_messages") >= 7, "cycle {k}: {s:?}");
            }
        }
    }
}

/// §4: exact key sets and types of `session_info` and `stats`.
#[test]
fn event_has_exactly_the_specified_keys() {
    let mut h = Harness::new(realm_config(stats(|_| {})));
    let (mut m, subs) = monitor(&mut h);
    let mut c = h.connect(Serializer::MsgPack);
    let sid = h.join(&mut c);
    let events = meta_events(&h.take(&mut m), &subs);
    let (_, args) = events.iter().find(|(t, _)| *t == "stats").unwrap();
    assert_eq!(args.len(), 2);
    let (info, stats) = stats_of(args);
    let keys = |d: &Dict| d.keys().cloned().collect::<Vec<_>>();
    assert_eq!(keys(info), ["authid", "authrole", "realm", "session"]);
    assert_eq!(
        keys(stats),
        [
            "bytes",
            "cycle",
            "duration",
            "first",
            "last",
            "messages",
            "rated_messages",
            "serializer",
            "timestamp"
        ]
    );
    assert_eq!(int(info, "session"), sid);
    assert_eq!(info["realm"].as_str(), Some("realm1"));
    assert_eq!(info["authrole"].as_str(), Some("anonymous"));
    for k in [
        "bytes",
        "cycle",
        "duration",
        "messages",
        "rated_messages",
        "timestamp",
    ] {
        assert!(matches!(stats[k], Value::Int(_)), "{k} must be an integer");
    }
    // The join snapshot holds HELLO and WELCOME: 2 messages.
    assert_eq!(int(stats, "messages"), 2);
    assert_eq!(int(stats, "bytes"), c.totals().1);
}

/// §4 ordering: on_join, join snapshot, cycles, final snapshot (last), on_leave, then the
/// subscription removal events.
#[test]
fn events_come_in_the_specified_order() {
    let mut h = Harness::new(realm_config(stats(|s| s.trigger_after_rated_messages = 3)));
    let (mut m, mut subs) = monitor(&mut h);
    subs.push((
        h.subscribe(&mut m, "wamp.subscription.on_unsubscribe"),
        "unsub",
    ));
    let mut c = h.connect(Serializer::Json);
    let sid = h.join(&mut c);
    h.subscribe(&mut c, "com.x");
    h.send(
        &mut c,
        Message::Goodbye {
            details: Dict::new(),
            reason: uris::CLOSE_NORMAL.into(),
        },
    );
    // Only the events about c's session (the monitor's own statistics are interleaved).
    let about_c = |(tag, args): &(&'static str, List)| match *tag {
        "join" => int(args[0].as_dict().unwrap(), "session") == sid,
        "stats" => int(stats_of(args).0, "session") == sid,
        _ => args[0].as_u64() == Some(sid),
    };
    let events: Vec<_> = meta_events(&h.take(&mut m), &subs)
        .into_iter()
        .filter(about_c)
        .collect();
    let tags: Vec<&str> = events.iter().map(|(t, _)| *t).collect();
    assert_eq!(tags.first(), Some(&"join"), "{tags:?}");
    assert_eq!(tags[1], "stats");
    let leave = tags.iter().position(|t| *t == "leave").unwrap();
    assert!(tags[1..leave].iter().all(|t| *t == "stats"), "{tags:?}");
    assert_eq!(&tags[leave + 1..], ["unsub"]);
    assert_eq!(events[leave].1, vec![Value::from(sid)]);
    let cycles = stats_for(&events, sid);
    assert!(cycles.len() >= 3, "join, a rated cycle, final");
    assert_eq!(cycles.last().unwrap()["last"], Value::Bool(true));
}

/// §3.3 and Crossbar defect 2: an idle session reports a zero-traffic cycle every period, by
/// timer; durations are exact and timestamps chain.
#[test]
fn duration_trigger_fires_for_an_idle_session() {
    let mut h = Harness::new(realm_config(stats(|s| s.trigger_after_duration = 2)));
    let (mut m, subs) = monitor(&mut h);
    let mut c = h.connect(Serializer::Json);
    let sid = h.join(&mut c);
    h.take(&mut m);
    for _ in 0..3 {
        h.advance(Duration::from_millis(1999));
        assert!(stats_for(&meta_events(&h.take(&mut m), &subs), sid).is_empty());
        h.advance(Duration::from_millis(1));
        let cycles = stats_for(&meta_events(&h.take(&mut m), &subs), sid);
        assert_eq!(cycles.len(), 1);
        assert_eq!(int(&cycles[0], "duration"), 2_000_000_000);
        assert_eq!(int(&cycles[0], "messages"), 0);
        assert_eq!(int(&cycles[0], "bytes"), 0);
    }
}

/// §3: a snapshot by one trigger restarts the duration clock.
#[test]
fn any_snapshot_restarts_the_duration_clock() {
    let mut h = Harness::new(realm_config(stats(|s| {
        s.trigger_after_duration = 2;
        s.trigger_after_rated_messages = 1;
    })));
    let (mut m, subs) = monitor(&mut h);
    let mut c = h.connect(Serializer::Json);
    let sid = h.join(&mut c);
    h.advance(Duration::from_millis(1500));
    h.subscribe(&mut c, "com.a"); // SUBSCRIBE and SUBSCRIBED: two rated snapshots
    h.take(&mut m);
    h.advance(Duration::from_millis(1000));
    assert!(
        stats_for(&meta_events(&h.take(&mut m), &subs), sid).is_empty(),
        "clock restarted"
    );
    h.advance(Duration::from_millis(1000));
    assert_eq!(
        stats_for(&meta_events(&h.take(&mut m), &subs), sid).len(),
        1
    );
}

/// §3 feedback guard: a monitor subscribed to on_stats under threshold 1 does not trigger
/// itself; its next other message does.
#[test]
fn feedback_guard_stops_self_triggering() {
    let mut h = Harness::new(realm_config(stats(|s| s.trigger_after_rated_messages = 1)));
    let (mut m, subs) = monitor(&mut h);
    let mut c = h.connect(Serializer::Json);
    h.join(&mut c);
    let events = meta_events(&h.take(&mut m), &subs);
    // The monitor receives on_join and c's stats; its own snapshots were triggered by the
    // on_join EVENT only, never by the on_stats EVENTs it received.
    let own = stats_for(&events, m.session);
    assert!(own.len() <= 2, "monitor triggered itself: {own:?}");
    h.send(
        &mut m,
        Message::Publish {
            request: 99,
            options: Dict::new(),
            topic: "com.x".into(),
            args: None,
            kwargs: None,
        },
    );
    let own_after = stats_for(&meta_events(&h.take(&mut m), &subs), m.session);
    assert_eq!(own_after.len(), 1, "the next other message triggers");
}

/// §2: a connection that leaves and joins again starts a new session; the GOODBYE reply
/// belongs to the old one.
#[test]
fn rejoin_on_the_same_connection_starts_new_cycles() {
    let mut h = Harness::new(realm_config(stats(|_| {})));
    let (mut m, subs) = monitor(&mut h);
    let mut c = h.connect(Serializer::Cbor);
    let first = h.join(&mut c);
    h.send(
        &mut c,
        Message::Goodbye {
            details: Dict::new(),
            reason: uris::CLOSE_NORMAL.into(),
        },
    );
    assert!(matches!(
        h.take(&mut c).as_slice(),
        [Message::Goodbye { reason, .. }] if reason == uris::CLOSE_GOODBYE_AND_OUT
    ));
    let old_totals = c.totals();
    c.log.clear();
    let second = h.join(&mut c);
    assert_ne!(first, second);
    let events = meta_events(&h.take(&mut m), &subs);
    let old = stats_for(&events, first);
    assert_eq!(
        old.iter().map(|s| int(s, "messages")).sum::<u64>(),
        old_totals.0
    );
    assert_eq!(old.last().unwrap()["last"], Value::Bool(true));
    let new = stats_for(&events, second);
    assert_eq!(int(&new[0], "cycle"), 1);
    assert_eq!(int(&new[0], "messages"), 2);
}

/// §4: with only leave on, the single event is both first and last; with leave off there is no
/// final event; without `stats` there are no events at all.
#[test]
fn trigger_switches_and_no_stats_section() {
    let mut h = Harness::new(realm_config(stats(|s| s.trigger_on_join = false)));
    let (mut m, subs) = monitor(&mut h);
    let mut c = h.connect(Serializer::Json);
    let sid = h.join(&mut c);
    h.realm.handle_disconnected(c.conn, h.now);
    let cycles = stats_for(&meta_events(&h.take(&mut m), &subs), sid);
    assert_eq!(cycles.len(), 1);
    assert_eq!(
        (cycles[0]["first"].clone(), cycles[0]["last"].clone()),
        (Value::Bool(true), Value::Bool(true))
    );
    assert_eq!(int(&cycles[0], "messages"), 2);

    let mut h = Harness::new(realm_config(stats(|s| s.trigger_on_leave = false)));
    let (mut m, subs) = monitor(&mut h);
    let mut c = h.connect(Serializer::Json);
    let sid = h.join(&mut c);
    h.realm.handle_disconnected(c.conn, h.now);
    let events = meta_events(&h.take(&mut m), &subs);
    let cycles = stats_for(&events, sid);
    assert_eq!(cycles.len(), 1);
    assert_eq!(cycles[0]["last"], Value::Bool(false));
    assert!(events.iter().any(|(t, _)| *t == "leave"));

    let mut h = Harness::new(realm_config(None));
    let (mut m, subs) = monitor(&mut h);
    let mut c = h.connect(Serializer::Json);
    h.join(&mut c);
    h.realm.handle_disconnected(c.conn, h.now);
    let events = meta_events(&h.take(&mut m), &subs);
    assert!(events.iter().all(|(t, _)| *t != "stats"));
    assert_eq!(events.iter().filter(|(t, _)| *t != "stats").count(), 2);
}

/// §3.4: kill and shutdown end with the GOODBYE exchange counted in the final snapshot.
#[test]
fn kill_and_shutdown_count_the_goodbye_exchange() {
    let mut h = Harness::new(realm_config(stats(|_| {})));
    let (mut m, subs) = monitor(&mut h);
    let mut c = h.connect(Serializer::Json);
    let sid = h.join(&mut c);
    let kill = Message::Call {
        request: 5,
        options: Dict::new(),
        procedure: "wamp.session.kill".into(),
        args: Some(vec![Value::from(sid)]),
        kwargs: None,
    };
    h.send(&mut m, kill);
    let got = h.take(&mut c);
    assert!(
        matches!(got.as_slice(), [Message::Goodbye { reason, .. }] if reason == uris::CLOSE_KILLED)
    );
    h.send(
        &mut c,
        Message::Goodbye {
            details: Dict::new(),
            reason: uris::CLOSE_GOODBYE_AND_OUT.into(),
        },
    );
    let msgs = h.take(&mut m);
    assert!(msgs
        .iter()
        .any(|x| matches!(x, Message::Result { request: 5, .. })));
    let cycles = stats_for(&meta_events(&msgs, &subs), sid);
    assert_eq!(
        cycles.iter().map(|s| int(s, "messages")).sum::<u64>(),
        c.totals().0
    );
    assert_eq!(c.totals().0, 4);

    // Shutdown: every session gets GOODBYE system_shutdown; one answers, one never does.
    let mut a = h.connect(Serializer::MsgPack);
    let aid = h.join(&mut a);
    h.take(&mut m);
    h.realm.handle_shutdown(h.now);
    assert!(
        matches!(h.take(&mut a).as_slice(), [Message::Goodbye { reason, .. }] if reason == uris::CLOSE_SYSTEM_SHUTDOWN)
    );
    h.send(
        &mut a,
        Message::Goodbye {
            details: Dict::new(),
            reason: uris::CLOSE_GOODBYE_AND_OUT.into(),
        },
    );
    h.pump(&mut a);
    assert!(
        a.closed,
        "the connection closes after the GOODBYE exchange at shutdown"
    );
    let cycles = stats_for(&meta_events(&h.take(&mut m), &subs), aid);
    // The join snapshot (HELLO, WELCOME) was read before; the final one holds both GOODBYEs.
    assert_eq!(cycles.len(), 1);
    assert_eq!(int(&cycles[0], "messages"), 2);
    assert_eq!(cycles[0]["last"], Value::Bool(true));
    assert_eq!(a.totals().0, 4);
    assert!(!h.realm.is_drained(), "the monitor has not answered yet");
    h.advance(limits::GOODBYE_REPLY_TIMEOUT);
    assert!(h.realm.is_drained());
}

/// Broker and dealer basics: exclude_me, invalid_uri, not_authorized, RPC round trip, errors,
/// a callee leaving with a call in flight.
#[test]
fn routing_basics() {
    let mut config = realm_config(None);
    config.roles.push(RoleConfig {
        name: "nothing".into(),
        permissions: vec![],
        authorizer: None,
    });
    let mut h = Harness::new(config);
    let mut a = h.connect(Serializer::Json);
    let mut b = h.connect(Serializer::MsgPack);
    h.join(&mut a);
    h.join(&mut b);
    let sub = h.subscribe(&mut a, "com.t");
    h.subscribe(&mut b, "com.t");
    h.send(
        &mut a,
        Message::Publish {
            request: 2,
            options: dict! {"acknowledge" => true},
            topic: "com.t".into(),
            args: Some(vec![Value::from(1)]),
            kwargs: None,
        },
    );
    assert!(
        matches!(
            h.take(&mut a).as_slice(),
            [Message::Published { request: 2, .. }]
        ),
        "exclude_me defaults to true"
    );
    assert!(matches!(h.take(&mut b).as_slice(), [Message::Event { .. }]));
    h.send(
        &mut b,
        Message::Publish {
            request: 3,
            options: dict! {"acknowledge" => true},
            topic: "wamp.x".into(),
            args: None,
            kwargs: None,
        },
    );
    assert!(
        matches!(h.take(&mut b).as_slice(), [Message::Error { error, .. }] if error == uris::INVALID_URI)
    );
    h.send(
        &mut a,
        Message::Unsubscribe {
            request: 4,
            subscription: sub,
        },
    );
    h.send(
        &mut a,
        Message::Unsubscribe {
            request: 5,
            subscription: sub,
        },
    );
    let got = h.take(&mut a);
    assert!(matches!(got[0], Message::Unsubscribed { request: 4, .. }));
    assert!(matches!(&got[1], Message::Error { error, .. } if error == uris::NO_SUCH_SUBSCRIPTION));

    // RPC
    h.send(
        &mut b,
        Message::Register {
            request: 6,
            options: Dict::new(),
            procedure: "com.echo".into(),
        },
    );
    assert!(matches!(
        h.take(&mut b).as_slice(),
        [Message::Registered { .. }]
    ));
    h.send(
        &mut a,
        Message::Register {
            request: 7,
            options: Dict::new(),
            procedure: "com.echo".into(),
        },
    );
    assert!(
        matches!(h.take(&mut a).as_slice(), [Message::Error { error, .. }] if error == uris::PROCEDURE_ALREADY_EXISTS)
    );
    h.send(
        &mut a,
        Message::Call {
            request: 8,
            options: Dict::new(),
            procedure: "com.echo".into(),
            args: Some(vec![Value::Bytes(vec![0, 1, 2])]),
            kwargs: Some(dict! {"k" => "v"}),
        },
    );
    let Some(Message::Invocation {
        request: inv,
        args,
        kwargs,
        ..
    }) = h.take(&mut b).pop()
    else {
        panic!()
    };
    h.send(
        &mut b,
        Message::Yield {
            request: inv,
            options: Dict::new(),
            args,
            kwargs,
        },
    );
    assert!(
        matches!(h.take(&mut a).as_slice(), [Message::Result { request: 8, args: Some(a), kwargs: Some(_), .. }] if a[0] == Value::Bytes(vec![0, 1, 2]))
    );
    h.send(
        &mut a,
        Message::Call {
            request: 9,
            options: Dict::new(),
            procedure: "com.echo".into(),
            args: None,
            kwargs: None,
        },
    );
    let Some(Message::Invocation { request: inv, .. }) = h.take(&mut b).pop() else {
        panic!()
    };
    h.send(
        &mut b,
        Message::Error {
            request_type: code::INVOCATION,
            request: inv,
            details: Dict::new(),
            error: "com.err".into(),
            args: Some(vec![Value::from("why")]),
            kwargs: None,
        },
    );
    assert!(
        matches!(h.take(&mut a).as_slice(), [Message::Error { request: 9, error, args: Some(_), .. }] if error == "com.err")
    );
    h.send(
        &mut a,
        Message::Call {
            request: 10,
            options: Dict::new(),
            procedure: "com.echo".into(),
            args: None,
            kwargs: None,
        },
    );
    h.realm.handle_disconnected(b.conn, h.now);
    assert!(
        matches!(h.take(&mut a).as_slice(), [Message::Error { request: 10, error, .. }] if error == uris::CANCELED)
    );
    h.send(
        &mut a,
        Message::Call {
            request: 11,
            options: Dict::new(),
            procedure: "com.echo".into(),
            args: None,
            kwargs: None,
        },
    );
    assert!(
        matches!(h.take(&mut a).as_slice(), [Message::Error { request: 11, error, .. }] if error == uris::NO_SUCH_PROCEDURE)
    );

    // A protocol violation ends the session and closes the connection.
    h.send(
        &mut a,
        Message::Welcome {
            session: 1,
            details: Dict::new(),
        },
    );
    assert!(
        matches!(h.take(&mut a).as_slice(), [Message::Abort { reason, .. }] if reason == uris::PROTOCOL_VIOLATION)
    );
    assert!(a.closed);
}

/// Authorization: a role without permissions is refused every action with not_authorized.
#[test]
fn denied_actions_get_not_authorized() {
    let mut config = realm_config(None);
    config.roles = vec![RoleConfig {
        name: "anonymous".into(),
        permissions: vec![],
        authorizer: None,
    }];
    let mut h = Harness::new(config);
    let mut a = h.connect(Serializer::Json);
    h.join(&mut a);
    h.send(
        &mut a,
        Message::Subscribe {
            request: 1,
            options: Dict::new(),
            topic: "com.t".into(),
        },
    );
    h.send(
        &mut a,
        Message::Publish {
            request: 2,
            options: dict! {"acknowledge" => true},
            topic: "com.t".into(),
            args: None,
            kwargs: None,
        },
    );
    h.send(
        &mut a,
        Message::Register {
            request: 3,
            options: Dict::new(),
            procedure: "com.p".into(),
        },
    );
    h.send(
        &mut a,
        Message::Call {
            request: 4,
            options: Dict::new(),
            procedure: "com.p".into(),
            args: None,
            kwargs: None,
        },
    );
    let got = h.take(&mut a);
    assert_eq!(got.len(), 4);
    assert!(got
        .iter()
        .all(|m| matches!(m, Message::Error { error, .. } if error == uris::NOT_AUTHORIZED)));
}

fn callee_roles() -> Dict {
    dict! {"roles" => Value::Dict(dict! {
        "caller" => Value::Dict(dict!{"features" => Value::Dict(dict!{"call_canceling" => true, "progressive_call_results" => true})}),
        "callee" => Value::Dict(dict!{"features" => Value::Dict(dict!{
            "call_canceling" => true,
            "progressive_call_results" => true,
            "progressive_call_invocations" => true,
        })}),
        "subscriber" => Value::Dict(Dict::new()),
        "publisher" => Value::Dict(Dict::new()),
    })}
}

impl Harness {
    /// Joins with roles announcing the advanced RPC features.
    fn join_advanced(&mut self, c: &mut Client) -> Id {
        let hello = Message::Hello {
            realm: "realm1".into(),
            details: callee_roles(),
        };
        let bytes = c.serializer.encode(&hello).unwrap();
        self.realm.handle_hello(
            c.conn,
            c.peer.clone(),
            Self::info(c.serializer),
            callee_roles(),
            bytes.len(),
            self.now + limits::HANDSHAKE_TIMEOUT,
            self.now,
        );
        match self.take(c).first() {
            Some(Message::Welcome { session, .. }) => {
                c.session = *session;
                *session
            }
            other => panic!("no WELCOME: {other:?}"),
        }
    }

    fn register(&mut self, c: &mut Client, procedure: &str) -> Id {
        self.send(
            c,
            Message::Register {
                request: 1,
                options: Dict::new(),
                procedure: procedure.into(),
            },
        );
        match self.take(c).pop() {
            Some(Message::Registered { registration, .. }) => registration,
            other => panic!("no REGISTERED: {other:?}"),
        }
    }

    fn call(
        &mut self,
        c: &mut Client,
        request: Id,
        procedure: &str,
        options: Dict,
        args: Option<List>,
    ) {
        self.send(
            c,
            Message::Call {
                request,
                options,
                procedure: procedure.into(),
                args,
                kwargs: None,
            },
        );
    }
}

/// Call timeout: the caller gets wamp.error.canceled and the callee an INTERRUPT; a late YIELD
/// is dropped.
#[test]
fn call_timeout_cancels_and_interrupts() {
    let mut h = Harness::new(realm_config(None));
    let (mut caller, mut callee) = (h.connect(Serializer::Json), h.connect(Serializer::Json));
    h.join_advanced(&mut caller);
    h.join_advanced(&mut callee);
    h.register(&mut callee, "com.slow");
    h.call(&mut caller, 7, "com.slow", dict! {"timeout" => 500}, None);
    let Some(Message::Invocation {
        request: inv,
        details,
        ..
    }) = h.take(&mut callee).pop()
    else {
        panic!()
    };
    assert_eq!(details.get("timeout"), Some(&Value::from(500)));
    h.advance(Duration::from_millis(499));
    assert!(h.take(&mut caller).is_empty());
    h.advance(Duration::from_millis(1));
    assert!(
        matches!(h.take(&mut caller).as_slice(), [Message::Error { request: 7, error, .. }] if error == uris::CANCELED)
    );
    assert!(
        matches!(h.take(&mut callee).as_slice(), [Message::Interrupt { request, .. }] if *request == inv)
    );
    h.send(
        &mut callee,
        Message::Yield {
            request: inv,
            options: Dict::new(),
            args: None,
            kwargs: None,
        },
    );
    assert!(h.take(&mut caller).is_empty(), "late YIELD dropped");
}

/// Call canceling: skip answers at once without INTERRUPT, kill waits for the callee, killnowait
/// interrupts and answers at once.
#[test]
fn cancel_modes() {
    let mut h = Harness::new(realm_config(None));
    let (mut caller, mut callee) = (h.connect(Serializer::MsgPack), h.connect(Serializer::Cbor));
    h.join_advanced(&mut caller);
    h.join_advanced(&mut callee);
    h.register(&mut callee, "com.work");
    for (req, mode) in [(1, "skip"), (2, "kill"), (3, "killnowait")] {
        h.call(&mut caller, req, "com.work", Dict::new(), None);
        let Some(Message::Invocation { request: inv, .. }) = h.take(&mut callee).pop() else {
            panic!()
        };
        h.send(
            &mut caller,
            Message::Cancel {
                request: req,
                options: dict! {"mode" => mode},
            },
        );
        let to_caller = h.take(&mut caller);
        let to_callee = h.take(&mut callee);
        match mode {
            "skip" => {
                assert!(
                    matches!(to_caller.as_slice(), [Message::Error { error, .. }] if error == uris::CANCELED)
                );
                assert!(to_callee.is_empty());
            }
            "kill" => {
                assert!(to_caller.is_empty(), "kill waits for the callee");
                assert!(matches!(to_callee.as_slice(), [Message::Interrupt { .. }]));
                h.send(
                    &mut callee,
                    Message::Error {
                        request_type: code::INVOCATION,
                        request: inv,
                        details: Dict::new(),
                        error: uris::CANCELED.into(),
                        args: None,
                        kwargs: None,
                    },
                );
                assert!(
                    matches!(h.take(&mut caller).as_slice(), [Message::Error { request: 2, error, .. }] if error == uris::CANCELED)
                );
            }
            _ => {
                assert!(
                    matches!(to_caller.as_slice(), [Message::Error { error, .. }] if error == uris::CANCELED)
                );
                assert!(matches!(to_callee.as_slice(), [Message::Interrupt { .. }]));
            }
        }
    }
}

/// Calls in flight end with either side: a callee that leaves fails them with
/// wamp.error.canceled; a caller that leaves has its callees interrupted, and their late answers
/// are dropped.
#[test]
fn calls_in_flight_end_when_either_side_leaves() {
    let mut h = Harness::new(realm_config(None));
    let (mut caller, mut callee) = (h.connect(Serializer::Json), h.connect(Serializer::Json));
    h.join_advanced(&mut caller);
    h.join_advanced(&mut callee);
    h.register(&mut callee, "com.work");
    h.call(&mut caller, 1, "com.work", Dict::new(), None);
    assert!(matches!(
        h.take(&mut callee).as_slice(),
        [Message::Invocation { .. }]
    ));
    h.realm.handle_disconnected(callee.conn, h.now);
    assert!(
        matches!(h.take(&mut caller).as_slice(), [Message::Error { request: 1, error, .. }] if error == uris::CANCELED)
    );

    let mut callee = h.connect(Serializer::Json);
    h.join_advanced(&mut callee);
    h.register(&mut callee, "com.work");
    h.call(&mut caller, 2, "com.work", Dict::new(), None);
    let Some(Message::Invocation { request: inv, .. }) = h.take(&mut callee).pop() else {
        panic!()
    };
    h.realm.handle_disconnected(caller.conn, h.now);
    assert!(
        matches!(h.take(&mut callee).as_slice(), [Message::Interrupt { request, .. }] if *request == inv)
    );
    h.send(
        &mut callee,
        Message::Yield {
            request: inv,
            options: Dict::new(),
            args: None,
            kwargs: None,
        },
    );
    assert!(h.take(&mut callee).is_empty(), "late YIELD dropped");
    assert_eq!(h.realm.session_count(), 1);
}

/// Progressive call results and progressive call invocations on one request.
#[test]
fn progressive_results_and_invocations() {
    let mut h = Harness::new(realm_config(None));
    let (mut caller, mut callee) = (h.connect(Serializer::Json), h.connect(Serializer::Json));
    h.join_advanced(&mut caller);
    h.join_advanced(&mut callee);
    h.register(&mut callee, "com.stream");
    h.call(
        &mut caller,
        5,
        "com.stream",
        dict! {"progress" => true, "receive_progress" => true},
        Some(vec![Value::from(1)]),
    );
    h.call(
        &mut caller,
        5,
        "com.stream",
        dict! {"progress" => true},
        Some(vec![Value::from(2)]),
    );
    h.call(
        &mut caller,
        5,
        "com.stream",
        Dict::new(),
        Some(vec![Value::from(3)]),
    );
    let invs = h.take(&mut callee);
    assert_eq!(invs.len(), 3);
    let ids: Vec<(Id, bool)> = invs
        .iter()
        .map(|m| match m {
            Message::Invocation {
                request, details, ..
            } => (
                *request,
                details.get("progress") == Some(&Value::Bool(true)),
            ),
            _ => panic!(),
        })
        .collect();
    assert!(ids.iter().all(|(i, _)| *i == ids[0].0), "one invocation id");
    assert_eq!(
        ids.iter().map(|(_, p)| *p).collect::<Vec<_>>(),
        [true, true, false]
    );
    let inv = ids[0].0;
    h.send(
        &mut callee,
        Message::Yield {
            request: inv,
            options: dict! {"progress" => true},
            args: Some(vec![Value::from("a")]),
            kwargs: None,
        },
    );
    h.send(
        &mut callee,
        Message::Yield {
            request: inv,
            options: Dict::new(),
            args: Some(vec![Value::from("b")]),
            kwargs: None,
        },
    );
    let results = h.take(&mut caller);
    assert!(
        matches!(&results[0], Message::Result { request: 5, details, .. } if details.get("progress") == Some(&Value::Bool(true)))
    );
    assert!(
        matches!(&results[1], Message::Result { request: 5, details, .. } if details.is_empty())
    );
}

/// Event retention: the last retained event of a topic reaches later subscribers asking for it,
/// marked `retained`.
#[test]
fn retained_events_reach_late_subscribers() {
    let mut h = Harness::new(realm_config(None));
    let (mut p, mut s) = (h.connect(Serializer::Json), h.connect(Serializer::Cbor));
    h.join(&mut p);
    h.join(&mut s);
    for i in 0..3 {
        h.send(
            &mut p,
            Message::Publish {
                request: i + 1,
                options: dict! {"retain" => true},
                topic: "com.state".into(),
                args: Some(vec![Value::from(i)]),
                kwargs: None,
            },
        );
    }
    h.send(
        &mut s,
        Message::Subscribe {
            request: 9,
            options: dict! {"get_retained" => true},
            topic: "com.state".into(),
        },
    );
    let got = h.take(&mut s);
    assert!(matches!(got[0], Message::Subscribed { .. }));
    assert!(
        matches!(&got[1], Message::Event { details, args: Some(a), .. } if details.get("retained") == Some(&Value::Bool(true)) && a[0] == Value::from(2))
    );
    assert_eq!(got.len(), 2, "only the last retained event");
}

/// Testaments are published when the session ends; flushed ones are not.
#[test]
fn testaments_publish_at_leave() {
    let mut h = Harness::new(realm_config(None));
    let (mut a, mut b) = (h.connect(Serializer::Json), h.connect(Serializer::Json));
    h.join(&mut a);
    h.join(&mut b);
    h.subscribe(&mut b, "com.gone");
    let add = |topic: &str| Message::Call {
        request: 3,
        options: Dict::new(),
        procedure: "wamp.session.add_testament".into(),
        args: Some(vec![
            Value::from(topic),
            Value::List(vec![Value::from("bye")]),
            Value::Dict(Dict::new()),
        ]),
        kwargs: None,
    };
    h.send(&mut a, add("com.gone"));
    assert!(matches!(
        h.take(&mut a).as_slice(),
        [Message::Result { .. }]
    ));
    h.realm.handle_disconnected(a.conn, h.now);
    assert!(
        matches!(h.take(&mut b).as_slice(), [Message::Event { args: Some(x), .. }] if x[0] == Value::from("bye"))
    );
}

/// Subscription meta procedures: list, lookup, match, get, list/count subscribers, and the
/// wamp.-URI hiding for non-trusted callers.
#[test]
fn subscription_meta_procedures() {
    let mut h = Harness::new(realm_config(None));
    let (mut a, mut b) = (h.connect(Serializer::Json), h.connect(Serializer::Json));
    h.join(&mut a);
    let bid = h.join(&mut b);
    let sub = h.subscribe(&mut b, "com.x");
    h.subscribe(&mut b, "wamp.session.on_join");
    let mut ask = |h: &mut Harness, proc_: &str, args: Vec<Value>| {
        h.send(
            &mut a,
            Message::Call {
                request: 1,
                options: Dict::new(),
                procedure: proc_.into(),
                args: Some(args),
                kwargs: None,
            },
        );
        match h.take(&mut a).pop() {
            Some(Message::Result {
                args: Some(mut r), ..
            }) => Ok(r.remove(0)),
            Some(Message::Error { error, .. }) => Err(error),
            other => panic!("{other:?}"),
        }
    };
    let list = ask(&mut h, "wamp.subscription.list", vec![]).unwrap();
    assert_eq!(
        list.as_dict().unwrap()["exact"],
        Value::List(vec![Value::from(sub)]),
        "wamp. subscriptions hidden"
    );
    assert_eq!(
        ask(&mut h, "wamp.subscription.lookup", vec!["com.x".into()]).unwrap(),
        Value::from(sub)
    );
    assert_eq!(
        ask(&mut h, "wamp.subscription.match", vec!["com.x".into()]).unwrap(),
        Value::List(vec![Value::from(sub)])
    );
    assert_eq!(
        ask(&mut h, "wamp.subscription.match", vec!["com.y".into()]).unwrap(),
        Value::Null
    );
    assert_eq!(
        ask(
            &mut h,
            "wamp.subscription.list_subscribers",
            vec![sub.into()]
        )
        .unwrap(),
        Value::List(vec![Value::from(bid)])
    );
    assert_eq!(
        ask(
            &mut h,
            "wamp.subscription.count_subscribers",
            vec![sub.into()]
        )
        .unwrap(),
        Value::from(1)
    );
    let got = ask(&mut h, "wamp.subscription.get", vec![sub.into()]).unwrap();
    assert_eq!(got.as_dict().unwrap()["uri"], Value::from("com.x"));
    assert_eq!(
        ask(&mut h, "wamp.subscription.get", vec![12345.into()]),
        Err(uris::NO_SUCH_SUBSCRIPTION.to_owned())
    );
    assert_eq!(
        ask(&mut h, "wamp.subscription.get_events", vec![sub.into()]),
        Err("wamp.error.history_unavailable".to_owned())
    );
    assert_eq!(
        ask(&mut h, "wamp.session.get", vec!["x".into()]),
        Err(uris::INVALID_ARGUMENT.to_owned())
    );
    assert_eq!(
        ask(&mut h, "wamp.session.count", vec![]).unwrap(),
        Value::from(2)
    );
}

/// A call made by the router itself (dynamic authenticators) reaches the callee and its answer
/// comes back; no callee gets no_such_procedure at once.
#[test]
fn internal_calls_reach_callees_and_come_back() {
    let mut h = Harness::new(realm_config(None));
    let mut callee = h.connect(Serializer::Json);
    h.join(&mut callee);
    h.register(&mut callee, "com.auth");
    let first = h.internal_call("com.auth", vec![Value::from("realm1")]);
    let Some(Message::Invocation { request, args, .. }) = h.take(&mut callee).pop() else {
        panic!()
    };
    assert_eq!(args, Some(vec![Value::from("realm1")]));
    h.send(
        &mut callee,
        Message::Yield {
            request,
            options: Dict::new(),
            args: Some(vec![Value::from("role1")]),
            kwargs: None,
        },
    );
    let got = h.answer(first).unwrap().unwrap();
    assert_eq!(got.args, Some(vec![Value::from("role1")]));
    let second = h.internal_call("com.none", vec![]);
    assert_eq!(
        h.answer(second).unwrap().unwrap_err().error,
        uris::NO_SUCH_PROCEDURE
    );
}

/// Authentication through the realm, with a transport's `auth` configuration.
mod authentication {
    use super::*;
    use crate::realm::CallPurpose;
    use turnstile_config::{AuthConfig, DynamicAuth, Secret, TicketAuth, TicketPrincipal};

    fn info_with(auth: AuthConfig) -> Arc<TransportInfo> {
        Arc::new(TransportInfo {
            channel_type: ChannelType::Tcp,
            framing: Framing::RawSocket,
            serializer: Serializer::Json,
            peer: "tcp4:127.0.0.1:2".into(),
            http_headers: None,
            auth: Some(Arc::new(auth)),
            peer_cert: None,
        })
    }

    fn hello(h: &mut Harness, c: &mut Client, info: Arc<TransportInfo>, details: Dict) {
        let msg = Message::Hello {
            realm: "realm1".into(),
            details: details.clone(),
        };
        let len = c.serializer.encode(&msg).unwrap().len();
        c.log.push((true, len));
        let deadline = h.now + limits::HANDSHAKE_TIMEOUT;
        h.realm
            .handle_hello(c.conn, c.peer.clone(), info, details, len, deadline, h.now);
    }

    fn ticket_details(authid: &str) -> Dict {
        let mut d = callee_roles();
        d.insert(
            "authmethods".into(),
            Value::List(vec![Value::from("ticket")]),
        );
        d.insert("authid".into(), Value::from(authid));
        d
    }

    fn static_ticket() -> AuthConfig {
        let mut principals = std::collections::BTreeMap::new();
        principals.insert(
            "alice".to_owned(),
            TicketPrincipal {
                ticket: Secret::new("s3cret"),
                role: "anonymous".into(),
                realm: None,
            },
        );
        AuthConfig {
            ticket: Some(TicketAuth::Static { principals }),
            ..AuthConfig::default()
        }
    }

    /// Static ticket: the right ticket joins with authmethod/authprovider set; a wrong one gets
    /// ABORT authentication_failed and the connection closes; anonymous is not offered.
    #[test]
    fn static_ticket_accepts_the_right_ticket_only() {
        let mut h = Harness::new(realm_config(None));
        let mut c = h.connect(Serializer::Json);
        hello(
            &mut h,
            &mut c,
            info_with(static_ticket()),
            ticket_details("alice"),
        );
        assert!(
            matches!(h.take(&mut c).as_slice(), [Message::Challenge { authmethod, .. }] if authmethod == "ticket")
        );
        h.send(
            &mut c,
            Message::Authenticate {
                signature: "s3cret".into(),
                extra: Dict::new(),
            },
        );
        match h.take(&mut c).as_slice() {
            [Message::Welcome { details, .. }] => {
                assert_eq!(details["authid"], Value::from("alice"));
                assert_eq!(details["authmethod"], Value::from("ticket"));
                assert_eq!(details["authprovider"], Value::from("static"));
            }
            other => panic!("{other:?}"),
        }

        let mut bad = h.connect(Serializer::Json);
        hello(
            &mut h,
            &mut bad,
            info_with(static_ticket()),
            ticket_details("alice"),
        );
        h.take(&mut bad);
        h.send(
            &mut bad,
            Message::Authenticate {
                signature: "wrong".into(),
                extra: Dict::new(),
            },
        );
        assert!(
            matches!(h.take(&mut bad).as_slice(), [Message::Abort { reason, .. }] if reason == uris::AUTHENTICATION_FAILED)
        );
        assert!(bad.closed);

        let mut anon = h.connect(Serializer::Json);
        hello(
            &mut h,
            &mut anon,
            info_with(static_ticket()),
            callee_roles(),
        );
        assert!(
            matches!(h.take(&mut anon).as_slice(), [Message::Abort { reason, .. }] if reason == uris::NO_MATCHING_AUTH_METHOD)
        );
    }

    /// A client that never answers the CHALLENGE is dropped after the handshake timeout.
    #[test]
    fn stalled_handshake_is_dropped() {
        let mut h = Harness::new(realm_config(None));
        let mut c = h.connect(Serializer::Json);
        hello(
            &mut h,
            &mut c,
            info_with(static_ticket()),
            ticket_details("alice"),
        );
        h.take(&mut c);
        h.advance(limits::HANDSHAKE_TIMEOUT);
        assert!(matches!(h.take(&mut c).as_slice(), [Message::Abort { .. }]));
        assert!(c.closed);
        assert_eq!(h.realm.session_count(), 0);
    }

    /// The handshake deadline counts from the connection's opening, not from HELLO: a client
    /// that took most of it to send HELLO has only the rest to authenticate.
    #[test]
    fn handshake_deadline_counts_from_the_opening() {
        let mut h = Harness::new(realm_config(None));
        let mut c = h.connect(Serializer::Json);
        let opened = h.now;
        h.advance(limits::HANDSHAKE_TIMEOUT - Duration::from_secs(1));
        let details = ticket_details("alice");
        let msg = Message::Hello {
            realm: "realm1".into(),
            details: details.clone(),
        };
        let len = c.serializer.encode(&msg).unwrap().len();
        c.log.push((true, len));
        let info = info_with(static_ticket());
        let deadline = opened + limits::HANDSHAKE_TIMEOUT;
        h.realm
            .handle_hello(c.conn, c.peer.clone(), info, details, len, deadline, h.now);
        assert!(matches!(
            h.take(&mut c).as_slice(),
            [Message::Challenge { .. }]
        ));
        h.advance(Duration::from_secs(1));
        assert!(
            matches!(h.take(&mut c).as_slice(), [Message::Abort { reason, .. }] if reason == uris::AUTHENTICATION_FAILED)
        );
        assert!(c.closed);
        assert_eq!(h.realm.session_count(), 0);
    }

    /// Runs the effects the realm asks for (calls into this same realm), as the shell would.
    fn run_effects(h: &mut Harness) -> Vec<(CallPurpose, ReplyToken)> {
        let mut pending = Vec::new();
        for (procedure, args, purpose) in h.poll_effects() {
            pending.push((purpose, h.internal_call(&procedure, args)));
        }
        pending
    }

    /// Dynamic ticket authenticator: called with (realm, authid, details incl. ticket); its role
    /// is granted with authprovider dynamic; an error refuses the session.
    #[test]
    fn dynamic_authenticator_decides() {
        let mut h = Harness::new(realm_config(None));
        let mut auth = h.connect(Serializer::Json);
        h.join(&mut auth);
        h.register(&mut auth, "com.example.authenticate");
        let config = AuthConfig {
            ticket: Some(TicketAuth::Dynamic(DynamicAuth {
                authenticator: "com.example.authenticate".into(),
                authenticator_realm: None,
            })),
            ..AuthConfig::default()
        };
        for (ticket, ok) in [("good", true), ("bad", false)] {
            let mut c = h.connect(Serializer::Json);
            hello(
                &mut h,
                &mut c,
                info_with(config.clone()),
                ticket_details("bob"),
            );
            h.take(&mut c);
            h.send(
                &mut c,
                Message::Authenticate {
                    signature: ticket.into(),
                    extra: Dict::new(),
                },
            );
            let mut pending = run_effects(&mut h);
            assert_eq!(pending.len(), 1);
            let Some(Message::Invocation {
                request,
                args: Some(args),
                ..
            }) = h.take(&mut auth).pop()
            else {
                panic!()
            };
            assert_eq!(args[0], Value::from("realm1"));
            assert_eq!(args[1], Value::from("bob"));
            assert_eq!(args[2].as_dict().unwrap()["ticket"], Value::from(ticket));
            if ok {
                h.send(
                    &mut auth,
                    Message::Yield {
                        request,
                        options: Dict::new(),
                        args: Some(vec![Value::from("anonymous")]),
                        kwargs: None,
                    },
                );
            } else {
                h.send(
                    &mut auth,
                    Message::Error {
                        request_type: code::INVOCATION,
                        request,
                        details: Dict::new(),
                        error: "com.example.denied".into(),
                        args: None,
                        kwargs: None,
                    },
                );
            }
            let (purpose, reply) = pending.remove(0);
            let outcome = h.answer(reply).unwrap();
            h.realm.handle_call_done(purpose, outcome, h.now);
            match (ok, h.take(&mut c).as_slice()) {
                (true, [Message::Welcome { details, .. }]) => {
                    assert_eq!(details["authprovider"], Value::from("dynamic"));
                    assert_eq!(details["authrole"], Value::from("anonymous"));
                }
                (false, [Message::Abort { reason, .. }]) => {
                    assert_eq!(reason, uris::AUTHENTICATION_FAILED)
                }
                (_, other) => panic!("{other:?}"),
            }
        }
    }

    /// Dynamic authorizer: each action waits for the authorizer; later messages queue behind it
    /// in order; a cached decision is reused without a call; a denial gives not_authorized.
    #[test]
    fn dynamic_authorizer_decides_and_caches() {
        let mut config = realm_config(None);
        config.roles.push(RoleConfig {
            name: "guarded".into(),
            permissions: vec![],
            authorizer: Some("com.example.authorize".into()),
        });
        let mut h = Harness::new(config);
        let mut authz = h.connect(Serializer::Json);
        h.join(&mut authz);
        h.register(&mut authz, "com.example.authorize");
        let mut c = h.connect(Serializer::Json);
        let anon = AuthConfig {
            anonymous: Some(turnstile_config::AnonymousAuth {
                role: "guarded".into(),
                authid: None,
            }),
            ..AuthConfig::default()
        };
        hello(&mut h, &mut c, info_with(anon), callee_roles());
        assert!(matches!(
            h.take(&mut c).as_slice(),
            [Message::Welcome { .. }]
        ));
        // Two publications: the second queues behind the first's decision.
        for request in [1, 2] {
            h.send(
                &mut c,
                Message::Publish {
                    request,
                    options: dict! {"acknowledge" => true},
                    topic: "com.t".into(),
                    args: None,
                    kwargs: None,
                },
            );
        }
        assert!(h.take(&mut c).is_empty(), "waiting for the authorizer");
        let mut pending = run_effects(&mut h);
        assert_eq!(
            pending.len(),
            1,
            "one call: the second publication waits in the queue"
        );
        let Some(Message::Invocation {
            request,
            args: Some(args),
            ..
        }) = h.take(&mut authz).pop()
        else {
            panic!()
        };
        assert_eq!(args[1], Value::from("com.t"));
        assert_eq!(args[2], Value::from("publish"));
        let answer = Value::Dict(dict! {"allow" => true, "cache" => true});
        h.send(
            &mut authz,
            Message::Yield {
                request,
                options: Dict::new(),
                args: Some(vec![answer]),
                kwargs: None,
            },
        );
        let (purpose, reply) = pending.remove(0);
        let outcome = h.answer(reply).unwrap();
        h.realm.handle_call_done(purpose, outcome, h.now);
        let got = h.take(&mut c);
        assert!(
            matches!(
                got.as_slice(),
                [
                    Message::Published { request: 1, .. },
                    Message::Published { request: 2, .. }
                ]
            ),
            "{got:?}"
        );
        assert!(
            run_effects(&mut h).is_empty(),
            "the cached decision served the second"
        );
        // Subscribing is another action: denied by the authorizer.
        h.send(
            &mut c,
            Message::Subscribe {
                request: 3,
                options: Dict::new(),
                topic: "com.t".into(),
            },
        );
        let mut pending = run_effects(&mut h);
        let Some(Message::Invocation { request, .. }) = h.take(&mut authz).pop() else {
            panic!()
        };
        h.send(
            &mut authz,
            Message::Yield {
                request,
                options: Dict::new(),
                args: Some(vec![Value::Bool(false)]),
                kwargs: None,
            },
        );
        let (purpose, reply) = pending.remove(0);
        let outcome = h.answer(reply).unwrap();
        h.realm.handle_call_done(purpose, outcome, h.now);
        assert!(
            matches!(h.take(&mut c).as_slice(), [Message::Error { error, .. }] if error == uris::NOT_AUTHORIZED)
        );
    }
}

/// Event history: configured topics keep their last `limit` events, newest first from
/// `wamp.subscription.get_events`.
#[test]
fn event_history_keeps_the_last_events() {
    let mut config = realm_config(None);
    config.event_history = vec![turnstile_config::EventHistoryConfig {
        uri: "com.hist".into(),
        match_policy: MatchPolicy::Exact,
        limit: 3,
    }];
    let mut h = Harness::new(config);
    let mut c = h.connect(Serializer::Json);
    h.join(&mut c);
    let sub = h.subscribe(&mut c, "com.hist");
    for i in 0..5 {
        h.send(
            &mut c,
            Message::Publish {
                request: i + 1,
                options: Dict::new(),
                topic: "com.hist".into(),
                args: Some(vec![Value::from(i)]),
                kwargs: None,
            },
        );
    }
    h.send(
        &mut c,
        Message::Call {
            request: 9,
            options: Dict::new(),
            procedure: "wamp.subscription.get_events".into(),
            args: Some(vec![Value::from(sub)]),
            kwargs: Some(dict! {"limit" => 2}),
        },
    );
    let Some(Message::Result { args: Some(r), .. }) = h.take(&mut c).pop() else {
        panic!()
    };
    let events = r[0].as_list().unwrap();
    let firsts: Vec<Value> = events
        .iter()
        .map(|e| e.as_dict().unwrap()["args"].as_list().unwrap()[0].clone())
        .collect();
    assert_eq!(firsts, vec![Value::from(4), Value::from(3)]);
}

/// §3.3 with re-join: a timer of the connection's earlier session never fires for the new one
/// (timers are bound to the WAMP session, not the connection).
#[test]
fn timers_of_an_earlier_session_do_not_touch_the_next() {
    let mut h = Harness::new(realm_config(stats(|s| s.trigger_after_duration = 2)));
    let (mut m, subs) = monitor(&mut h);
    let mut c = h.connect(Serializer::Json);
    h.join(&mut c);
    h.advance(Duration::from_secs(1));
    h.send(
        &mut c,
        Message::Goodbye {
            details: Dict::new(),
            reason: uris::CLOSE_NORMAL.into(),
        },
    );
    h.take(&mut c);
    let second = h.join(&mut c);
    h.take(&mut m);
    h.advance(Duration::from_secs(1)); // the first session's deadline
    assert!(stats_for(&meta_events(&h.take(&mut m), &subs), second).is_empty());
    h.advance(Duration::from_secs(1)); // the second session's own deadline
    let cycles = stats_for(&meta_events(&h.take(&mut m), &subs), second);
    assert_eq!(cycles.len(), 1);
    assert_eq!(int(&cycles[0], "duration"), 2_000_000_000);
}

/// A slow consumer: a subscriber whose outgoing queue passes its byte limit is disconnected
/// (its session ends with final statistics and on_leave), and the publisher and other
/// subscribers are not held up.
#[test]
fn slow_consumer_is_disconnected_without_holding_up_others() {
    let mut h = Harness::new(realm_config(stats(|_| {})));
    let (mut m, subs) = monitor(&mut h);
    let mut publisher = h.connect(Serializer::Json);
    let mut healthy = h.connect(Serializer::Json);
    h.join(&mut publisher);
    h.join(&mut healthy);
    h.subscribe(&mut healthy, "com.flood");
    // The slow client: a 4 KiB queue that nobody drains.
    let (peer, rx) = peer_channel(4096);
    let mut slow = Client {
        peer,
        rx,
        ..h.connect(Serializer::Json)
    };
    let slow_id = h.join(&mut slow);
    h.subscribe(&mut slow, "com.flood");
    for i in 0..100 {
        let publish = Message::Publish {
            request: i + 1,
            options: Dict::new(),
            topic: "com.flood".into(),
            args: Some(vec![Value::from("x".repeat(100))]),
            kwargs: None,
        };
        h.send(&mut publisher, publish);
        h.pump(&mut healthy);
    }
    let events = h.take(&mut healthy);
    assert_eq!(
        events
            .iter()
            .filter(|m| matches!(m, Message::Event { .. }))
            .count(),
        100,
        "every event reached the healthy subscriber"
    );
    // The slow session is gone: its final statistics and on_leave were published.
    let meta = meta_events(&h.take(&mut m), &subs);
    assert!(meta
        .iter()
        .any(|(t, a)| *t == "leave" && a[0] == Value::from(slow_id)));
    assert_eq!(
        stats_for(&meta, slow_id).last().unwrap()["last"],
        Value::Bool(true)
    );
    // Its connection was told to close at once.
    assert!(
        matches!(slow.rx.try_recv(), Some(Outbound::Close(reason)) if reason.text.contains("slow consumer"))
    );
}

/// A realm with small per-session limits, from its configuration (`realms[j].limits`).
fn limited_harness() -> Harness {
    Harness::new(RealmConfig {
        limits: turnstile_config::SessionLimitsConfig {
            max_subscriptions: Some(2),
            max_registrations: Some(2),
            max_calls_in_flight: Some(2),
            ..Default::default()
        },
        ..realm_config(None)
    })
}

/// Whether `msgs` is exactly one ERROR for `request_type` with the limit URI.
/// The ERROR of a request refused at a per-session limit: the limit's URI, and a text that names
/// the limit (2 in `limited_harness`) and says what to do ("... before ...").
fn is_limit_error(msgs: &[Message], request_type: u64, req: Id) -> bool {
    matches!(msgs, [Message::Error { request_type: t, request, error, args, .. }]
        if *t == request_type && *request == req && error == limits::LIMIT_EXCEEDED
            && args.as_ref().and_then(|a| a.first()).and_then(Value::as_str)
                .is_some_and(|text| text.contains("limit of 2") && text.contains(" before ")))
}

/// Beyond its subscription limit a SUBSCRIBE gets ERROR limit_exceeded; subscribing again to a
/// subscription it holds still works, and after an UNSUBSCRIBE a new one does.
#[test]
fn subscriptions_per_session_are_limited() {
    let mut h = limited_harness();
    let mut c = h.connect(Serializer::Json);
    h.join(&mut c);
    let a = h.subscribe(&mut c, "com.a");
    h.subscribe(&mut c, "com.b");
    let sub = |topic: &str| Message::Subscribe {
        request: 7,
        options: Dict::new(),
        topic: topic.into(),
    };
    h.send(&mut c, sub("com.c"));
    let msgs = h.take(&mut c);
    assert!(is_limit_error(&msgs, code::SUBSCRIBE, 7), "{msgs:?}");
    assert_eq!(
        h.subscribe(&mut c, "com.a"),
        a,
        "an existing subscription is no new one"
    );
    // Another session is not limited by this one's subscriptions.
    let mut other = h.connect(Serializer::Json);
    h.join(&mut other);
    h.subscribe(&mut other, "com.c");
    h.send(
        &mut c,
        Message::Unsubscribe {
            request: 8,
            subscription: a,
        },
    );
    assert!(matches!(
        h.take(&mut c).as_slice(),
        [Message::Unsubscribed { request: 8, .. }]
    ));
    h.subscribe(&mut c, "com.c");
    assert_eq!(h.realm.session_count(), 2, "the session goes on");
}

/// Beyond its registration limit a REGISTER gets ERROR limit_exceeded; after an UNREGISTER a
/// new one succeeds.
#[test]
fn registrations_per_session_are_limited() {
    let mut h = limited_harness();
    let mut c = h.connect(Serializer::Json);
    h.join_advanced(&mut c);
    let a = h.register(&mut c, "com.a");
    h.register(&mut c, "com.b");
    h.send(
        &mut c,
        Message::Register {
            request: 7,
            options: Dict::new(),
            procedure: "com.c".into(),
        },
    );
    let msgs = h.take(&mut c);
    assert!(is_limit_error(&msgs, code::REGISTER, 7), "{msgs:?}");
    h.send(
        &mut c,
        Message::Unregister {
            request: 8,
            registration: a,
        },
    );
    assert!(matches!(
        h.take(&mut c).as_slice(),
        [Message::Unregistered { request: 8, .. }]
    ));
    h.register(&mut c, "com.c");
    assert_eq!(h.realm.session_count(), 1, "the session goes on");
}

/// Beyond its limit of calls in flight a CALL gets ERROR limit_exceeded and reaches no callee;
/// once a call has finished a new one goes through.
#[test]
fn calls_in_flight_per_caller_are_limited() {
    let mut h = limited_harness();
    let (mut caller, mut callee) = (h.connect(Serializer::Json), h.connect(Serializer::Json));
    h.join_advanced(&mut caller);
    h.join_advanced(&mut callee);
    h.register(&mut callee, "com.work");
    h.call(&mut caller, 1, "com.work", Dict::new(), None);
    h.call(&mut caller, 2, "com.work", Dict::new(), None);
    let invocations: Vec<Id> = h
        .take(&mut callee)
        .into_iter()
        .filter_map(|m| match m {
            Message::Invocation { request, .. } => Some(request),
            _ => None,
        })
        .collect();
    assert_eq!(invocations.len(), 2);
    h.call(&mut caller, 3, "com.work", Dict::new(), None);
    let msgs = h.take(&mut caller);
    assert!(is_limit_error(&msgs, code::CALL, 3), "{msgs:?}");
    assert!(
        h.take(&mut callee).is_empty(),
        "the refused call reached no callee"
    );
    h.send(
        &mut callee,
        Message::Yield {
            request: invocations[0],
            options: Dict::new(),
            args: None,
            kwargs: None,
        },
    );
    assert!(matches!(
        h.take(&mut caller).as_slice(),
        [Message::Result { request: 1, .. }]
    ));
    h.call(&mut caller, 4, "com.work", Dict::new(), None);
    assert!(matches!(
        h.take(&mut callee).as_slice(),
        [Message::Invocation { .. }]
    ));
    assert_eq!(h.realm.session_count(), 2, "the sessions go on");
}

/// A realm whose sessions may hold `n` subscriptions and `n` registrations.
fn harness_for(n: usize) -> Harness {
    let mut h = Harness::new(realm_config(None));
    h.realm.set_session_limits(limits::SessionLimits {
        max_subscriptions: n,
        max_registrations: n,
        max_calls_in_flight: n,
        ..limits::SessionLimits::default()
    });
    h
}

/// Makes `c` subscribe to `n` topics `com.topic.{i}` and register `n` procedures
/// `com.proc.{i}`, with match policy `policy`. The messages go to the realm as decoded values and
/// the replies are dropped unread, so that a large setup stays quick.
fn hold_many(h: &mut Harness, c: &mut Client, n: usize, policy: &str) {
    let options = if policy == "exact" {
        Dict::new()
    } else {
        dict! {"match" => policy}
    };
    for i in 0..n {
        let subscribe = Message::Subscribe {
            request: 1,
            options: options.clone(),
            topic: format!("com.topic.{i}"),
        };
        h.realm.handle_message(c.conn, subscribe, 0, h.now);
        let register = Message::Register {
            request: 2,
            options: options.clone(),
            procedure: format!("com.proc.{i}"),
        };
        h.realm.handle_message(c.conn, register, 0, h.now);
        while c.rx.try_recv().is_some() {}
    }
}

impl Harness {
    /// Runs the realm's due work (timers, cleanup steps) until none is due; returns the
    /// number of `handle_timeout` calls and the longest one (real time).
    fn settle(&mut self) -> (usize, Duration) {
        let (mut steps, mut longest) = (0, Duration::ZERO);
        while self.realm.poll_timeout().is_some_and(|t| t <= self.now) {
            let start = Instant::now();
            self.realm.handle_timeout(self.now);
            longest = longest.max(start.elapsed());
            steps += 1;
            assert!(steps < 1_000_000, "the realm keeps asking for a timeout");
        }
        (steps, longest)
    }

    /// Calls `procedure` from `c` and returns the first argument of its RESULT, or the ERROR's
    /// URI.
    fn ask(&mut self, c: &mut Client, procedure: &str, args: Vec<Value>) -> Result<Value, String> {
        self.call(c, 77, procedure, Dict::new(), Some(args));
        match self.take(c).pop() {
            Some(Message::Result {
                args: Some(mut r), ..
            }) => Ok(r.remove(0)),
            Some(Message::Error { error, .. }) => Err(error),
            other => panic!("{other:?}"),
        }
    }
}

/// A session leaving with more subscriptions and registrations than one cleanup step removes:
/// from the moment it leaves nothing of it is routed or shown; the removals follow a step
/// ([`limits::CLEANUP_BATCH`]) at a time, each announced with the meta events of a removal, all
/// after its `on_leave`.
#[test]
fn leaving_session_is_detached_at_once_and_cleaned_up_in_steps() {
    let n = 3 * limits::CLEANUP_BATCH;
    let mut h = harness_for(n);
    let mut m = h.connect(Serializer::Json);
    h.join(&mut m);
    let tags = [
        ("wamp.session.on_leave", "leave"),
        ("wamp.subscription.on_unsubscribe", "unsubscribe"),
        ("wamp.subscription.on_delete", "sub-delete"),
        ("wamp.registration.on_unregister", "unregister"),
        ("wamp.registration.on_delete", "reg-delete"),
    ];
    let subs: Vec<(Id, &'static str)> = tags
        .iter()
        .map(|(topic, tag)| (h.subscribe(&mut m, topic), *tag))
        .collect();
    let mut big = h.connect(Serializer::Json);
    let big_id = h.join_advanced(&mut big);
    hold_many(&mut h, &mut big, n, "exact");
    let mut other = h.connect(Serializer::Json);
    h.join_advanced(&mut other);
    let last_topic = format!("com.topic.{}", n - 1);
    let sub = h.ask(
        &mut other,
        "wamp.subscription.lookup",
        vec![last_topic.as_str().into()],
    );
    assert!(sub.as_ref().is_ok_and(|v| v.as_u64().is_some()), "{sub:?}");
    h.take(&mut m);

    h.realm.handle_disconnected(big.conn, h.now);
    // At once: no call reaches it, no meta procedure shows what it held.
    h.call(
        &mut other,
        5,
        &format!("com.proc.{}", n - 1),
        Dict::new(),
        None,
    );
    assert!(
        matches!(h.take(&mut other).as_slice(), [Message::Error { error, .. }] if error == uris::NO_SUCH_PROCEDURE)
    );
    for (procedure, uri) in [
        ("wamp.subscription.lookup", last_topic.clone()),
        ("wamp.subscription.match", last_topic.clone()),
        ("wamp.registration.lookup", "com.proc.0".to_owned()),
        ("wamp.registration.match", "com.proc.0".to_owned()),
    ] {
        assert_eq!(
            h.ask(&mut other, procedure, vec![uri.into()]),
            Ok(Value::Null),
            "{procedure}"
        );
    }
    let list = h.ask(&mut other, "wamp.registration.list", vec![]).unwrap();
    assert_eq!(list.as_dict().unwrap()["exact"], Value::List(vec![]));
    // The removal goes on a step at a time: one step was taken when it left.
    let (steps, _) = h.settle();
    assert_eq!(steps, 2 * n / limits::CLEANUP_BATCH - 1);
    let events = meta_events(&h.take(&mut m), &subs);
    assert_eq!(events[0], ("leave", vec![Value::from(big_id)]));
    for tag in ["unsubscribe", "sub-delete", "unregister", "reg-delete"] {
        let of_big = events
            .iter()
            .filter(|(t, a)| *t == tag && a[0] == Value::from(big_id))
            .count();
        assert_eq!(of_big, n, "{tag}");
    }
    assert_eq!(events.len(), 1 + 4 * n);
    assert_eq!(h.realm.poll_timeout().filter(|t| *t <= h.now), None);
    // Routing goes on: the same topics and procedures are new ones for the next holder.
    h.register(&mut other, "com.proc.0");
    h.subscribe(&mut other, "com.topic.0");
}

/// A HELLO on a connection whose previous session is still being cleaned up waits until it is
/// (subscriber and callee lists hold connections); then the new session joins, and holds
/// nothing of the old one.
#[test]
fn next_session_on_a_connection_waits_for_the_cleanup() {
    let n = 2 * limits::CLEANUP_BATCH;
    let mut h = harness_for(n);
    let mut c = h.connect(Serializer::Json);
    h.join(&mut c);
    hold_many(&mut h, &mut c, n, "exact");
    h.send(
        &mut c,
        Message::Goodbye {
            details: Dict::new(),
            reason: uris::CLOSE_GOODBYE_AND_OUT.into(),
        },
    );
    assert!(matches!(
        h.take(&mut c).as_slice(),
        [Message::Goodbye { .. }]
    ));
    let details = dict! {"roles" => Value::Dict(dict! {"subscriber" => Value::Dict(Dict::new())})};
    h.realm.handle_hello(
        c.conn,
        c.peer.clone(),
        Harness::info(c.serializer),
        details,
        10,
        h.now + limits::HANDSHAKE_TIMEOUT,
        h.now,
    );
    assert!(h.take(&mut c).is_empty(), "no WELCOME before the cleanup");
    h.settle();
    let msgs = h.take(&mut c);
    assert!(
        matches!(msgs.as_slice(), [Message::Welcome { .. }]),
        "{msgs:?}"
    );
    // The new session starts with nothing: subscribing is no "already subscribed".
    let mut other = h.connect(Serializer::Json);
    h.join(&mut other);
    let sub = h.subscribe(&mut c, "com.topic.0");
    let subscribers = h.ask(
        &mut other,
        "wamp.subscription.list_subscribers",
        vec![sub.into()],
    );
    assert_eq!(
        subscribers,
        Ok(Value::List(vec![Value::from(h_session(&msgs))]))
    );
}

fn h_session(msgs: &[Message]) -> Id {
    match msgs {
        [Message::Welcome { session, .. }] => *session,
        other => panic!("{other:?}"),
    }
}

/// No single input stalls the realm while a session holding many subscriptions and
/// registrations leaves: real time around each `handle_*` call of the leave and of its cleanup,
/// with events still routed between the steps. The bound is generous (a debug build on a busy
/// machine); `leaving_with_many_subscriptions_and_registrations` measures a release build.
#[test]
fn no_step_of_a_large_leave_stalls_the_realm() {
    let n = 80 * limits::CLEANUP_BATCH;
    let measured = time_leave(n, "exact", true);
    assert!(
        measured.longest < Duration::from_millis(500),
        "the longest call took {:?}",
        measured.longest
    );
    assert_eq!(measured.steps, 2 * n / limits::CLEANUP_BATCH - 1);
}

/// What [`time_leave`] measured.
#[derive(Debug)]
struct LeaveTimes {
    /// The longest single `handle_*` call from the leave to the end of its cleanup.
    longest: Duration,
    /// The `handle_disconnected` call itself.
    leave: Duration,
    /// All of them together.
    total: Duration,
    /// `handle_timeout` steps after the leave.
    steps: usize,
    /// The median and the 99th percentile of the steps.
    step_p50: Duration,
    step_p99: Duration,
    /// The most time on the CPU of any of those calls (from the thread's `schedstat`): the wall
    /// time above also counts time this thread waited while other processes of a busy host
    /// ran. `None` where Linux's `/proc/thread-self/schedstat` cannot be read.
    longest_on_cpu: Option<Duration>,
}

/// Time this thread has spent on a CPU, from Linux's `/proc/thread-self/schedstat` (its first
/// field, in nanoseconds).
fn thread_cpu_time() -> Option<Duration> {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let ns: u64 = text.split_whitespace().next()?.parse().ok()?;
    Some(Duration::from_nanos(ns))
}

/// How long the calls into the realm take while a session holding `n` subscriptions (distinct
/// topics, with `policy`) and `n` registrations leaves and is cleaned up; with `route`, a
/// publication to another session between every two steps, checked to arrive. Run in release
/// mode: `cargo test --release -p turnstile-core -- --ignored --nocapture leaving_with_many`.
fn time_leave(n: usize, policy: &str, route: bool) -> LeaveTimes {
    let mut h = harness_for(n);
    let mut c = h.connect(Serializer::Json);
    h.join_advanced(&mut c);
    hold_many(&mut h, &mut c, n, policy);
    let (mut publisher, mut subscriber) =
        (h.connect(Serializer::Json), h.connect(Serializer::Json));
    h.join(&mut publisher);
    h.join(&mut subscriber);
    h.subscribe(&mut subscriber, "com.live");
    let on_cpu = |before: Option<Duration>| Some(thread_cpu_time()?.saturating_sub(before?));
    let mut longest_on_cpu = None::<Duration>;
    let cpu = thread_cpu_time();
    let start = Instant::now();
    h.realm.handle_disconnected(c.conn, h.now);
    let leave = start.elapsed();
    longest_on_cpu = longest_on_cpu.max(on_cpu(cpu));
    let (mut longest, mut total, mut steps) = (leave, leave, 0);
    let mut step_times = Vec::new();
    while h.realm.poll_timeout().is_some_and(|t| t <= h.now) {
        let cpu = thread_cpu_time();
        let start = Instant::now();
        h.realm.handle_timeout(h.now);
        let took = start.elapsed();
        longest_on_cpu = longest_on_cpu.max(on_cpu(cpu));
        longest = longest.max(took);
        total += took;
        steps += 1;
        step_times.push(took);
        if route {
            h.send(
                &mut publisher,
                Message::Publish {
                    request: steps as Id,
                    options: Dict::new(),
                    topic: "com.live".into(),
                    args: None,
                    kwargs: None,
                },
            );
            assert!(matches!(
                h.take(&mut subscriber).as_slice(),
                [Message::Event { .. }]
            ));
        }
    }
    assert_eq!(h.realm.session_count(), 2);
    step_times.sort();
    let at = |p: usize| {
        step_times
            .get(step_times.len() * p / 100)
            .copied()
            .unwrap_or_default()
    };
    LeaveTimes {
        longest,
        leave,
        total,
        steps,
        step_p50: at(50),
        step_p99: at(99),
        longest_on_cpu,
    }
}

#[test]
#[ignore = "a measurement: run in release mode with --ignored --nocapture"]
fn leaving_with_many_subscriptions_and_registrations() {
    for (n, policy) in [
        (100_000, "exact"),
        (100_000, "prefix"),
        (100_000, "wildcard"),
        (limits::MAX_SUBSCRIPTIONS_PER_SESSION, "exact"),
    ] {
        let t = time_leave(n, policy, false);
        println!(
            "leave with {n} {policy} subscriptions + {n} registrations: longest call {:?} \
             ({:?} of it on the CPU at most; the leave itself {:?}); {} cleanup steps, median \
             {:?}, p99 {:?}; {:?} in all",
            t.longest, t.longest_on_cpu, t.leave, t.steps, t.step_p50, t.step_p99, t.total
        );
    }
}

/// A realm metering every session, with a message rate of 10 per second and a burst of 3.
fn rate_limited_harness() -> Harness {
    Harness::new(RealmConfig {
        limits: turnstile_config::SessionLimitsConfig {
            max_messages_per_second: Some(10),
            message_burst: Some(3),
            ..Default::default()
        },
        ..realm_config(stats(|_| {}))
    })
}

/// Whether `msgs` is exactly one ERROR limit_exceeded for the request, naming the rate.
fn is_rate_error(msgs: &[Message], request_type: u64, req: Id) -> bool {
    matches!(msgs, [Message::Error { request_type: t, request, error, args, .. }]
        if *t == request_type && *request == req && error == limits::LIMIT_EXCEEDED
            && args.as_ref().and_then(|a| a.first()).and_then(Value::as_str)
                .is_some_and(|text| text.contains("10 messages per second (burst 3)")))
}

/// Beyond its burst a session's requests are refused until the bucket refills at the rate:
/// SUBSCRIBE, REGISTER, CALL and acknowledged PUBLISH get ERROR limit_exceeded, an
/// unacknowledged PUBLISH is dropped; other sessions are not limited by it, and it goes on.
#[test]
fn message_rate_is_limited_after_the_burst() {
    let mut h = rate_limited_harness();
    let mut c = h.connect(Serializer::Json);
    let mut watcher = h.connect(Serializer::Json);
    h.join(&mut watcher);
    let watched = h.subscribe(&mut watcher, "com.t");
    h.join(&mut c);
    // The burst: three messages at once.
    for topic in ["com.a", "com.b", "com.c"] {
        h.subscribe(&mut c, topic);
    }
    let subscribe = |request: Id| Message::Subscribe {
        request,
        options: Dict::new(),
        topic: "com.d".into(),
    };
    h.send(&mut c, subscribe(7));
    let msgs = h.take(&mut c);
    assert!(is_rate_error(&msgs, code::SUBSCRIBE, 7), "{msgs:?}");
    let publish = |request: Id, acknowledge: bool| Message::Publish {
        request,
        options: dict! {"acknowledge" => acknowledge},
        topic: "com.t".into(),
        args: None,
        kwargs: None,
    };
    h.send(&mut c, publish(8, true));
    let msgs = h.take(&mut c);
    assert!(is_rate_error(&msgs, code::PUBLISH, 8), "{msgs:?}");
    h.send(&mut c, publish(9, false));
    assert!(
        h.take(&mut c).is_empty(),
        "an unacknowledged PUBLISH is dropped"
    );
    assert!(h.take(&mut watcher).is_empty(), "and reaches no subscriber");
    let register = Message::Register {
        request: 10,
        options: Dict::new(),
        procedure: "com.p".into(),
    };
    h.send(&mut c, register);
    let msgs = h.take(&mut c);
    assert!(is_rate_error(&msgs, code::REGISTER, 10), "{msgs:?}");
    h.call(&mut c, 11, "com.p", Dict::new(), None);
    let msgs = h.take(&mut c);
    assert!(is_rate_error(&msgs, code::CALL, 11), "{msgs:?}");
    // Another session has its own bucket.
    h.send(&mut watcher, publish(12, true));
    assert!(matches!(
        h.take(&mut watcher).as_slice(),
        [Message::Published { request: 12, .. }]
    ));
    // 100 ms later one more token: one publication goes through, the next does not.
    h.advance(Duration::from_millis(100));
    h.send(&mut c, publish(13, false));
    h.send(&mut c, publish(14, false));
    let events = h.take(&mut watcher);
    assert!(
        matches!(events.as_slice(), [Message::Event { subscription, .. }] if *subscription == watched),
        "{events:?}"
    );
    // After a second the whole burst again, never more.
    h.advance(Duration::from_secs(1));
    for request in 20..24 {
        h.send(&mut c, publish(request, true));
    }
    let msgs = h.take(&mut c);
    assert_eq!(msgs.len(), 4);
    assert!(msgs[..3]
        .iter()
        .all(|m| matches!(m, Message::Published { .. })));
    assert!(is_rate_error(&msgs[3..], code::PUBLISH, 23), "{msgs:?}");
    assert_eq!(h.realm.session_count(), 2, "the sessions go on");
}

/// Over the rate, answers and endings still pass: a limited callee's YIELD reaches its caller,
/// UNSUBSCRIBE is answered, a further chunk of a progressive call is not refused, and GOODBYE
/// ends the session. Every message, refused or not, is metered.
#[test]
fn over_the_rate_answers_and_endings_pass_and_everything_is_metered() {
    let mut h = rate_limited_harness();
    let (mut m, subs) = monitor(&mut h);
    let (mut caller, mut callee) = (h.connect(Serializer::Json), h.connect(Serializer::Cbor));
    h.join_advanced(&mut caller);
    let callee_id = h.join_advanced(&mut callee);
    h.register(&mut callee, "com.work");
    let sub = h.subscribe(&mut callee, "com.t");
    h.call(&mut caller, 1, "com.work", Dict::new(), None);
    // The caller starts a progressive call while it has tokens.
    h.call(&mut caller, 2, "com.work", dict! {"progress" => true}, None);
    let invocations: Vec<Id> = h
        .take(&mut callee)
        .into_iter()
        .filter_map(|m| match m {
            Message::Invocation { request, .. } => Some(request),
            _ => None,
        })
        .collect();
    assert_eq!(invocations.len(), 2);
    // The callee spends its last token; then it is over the rate.
    h.send(
        &mut callee,
        Message::Subscribe {
            request: 5,
            options: Dict::new(),
            topic: "com.u".into(),
        },
    );
    h.take(&mut callee);
    h.send(
        &mut callee,
        Message::Subscribe {
            request: 6,
            options: Dict::new(),
            topic: "com.v".into(),
        },
    );
    let msgs = h.take(&mut callee);
    assert!(is_rate_error(&msgs, code::SUBSCRIBE, 6), "{msgs:?}");
    h.send(
        &mut callee,
        Message::Yield {
            request: invocations[0],
            options: Dict::new(),
            args: None,
            kwargs: None,
        },
    );
    assert!(matches!(
        h.take(&mut caller).as_slice(),
        [Message::Result { request: 1, .. }]
    ));
    h.send(
        &mut callee,
        Message::Unsubscribe {
            request: 7,
            subscription: sub,
        },
    );
    assert!(matches!(
        h.take(&mut callee).as_slice(),
        [Message::Unsubscribed { request: 7, .. }]
    ));
    // The caller spends its last token, then is over the rate too: a new CALL is refused, the
    // progressive call's next chunk is not.
    h.send(
        &mut caller,
        Message::Publish {
            request: 9,
            options: Dict::new(),
            topic: "com.x".into(),
            args: None,
            kwargs: None,
        },
    );
    h.call(&mut caller, 3, "com.work", Dict::new(), None);
    let msgs = h.take(&mut caller);
    assert!(is_rate_error(&msgs, code::CALL, 3), "{msgs:?}");
    h.call(
        &mut caller,
        2,
        "com.work",
        dict! {"progress" => false},
        None,
    );
    assert!(h.take(&mut caller).is_empty());
    assert!(
        matches!(h.take(&mut callee).as_slice(), [Message::Invocation { request, .. }] if *request == invocations[1]),
        "the last chunk reached the callee"
    );
    h.send(
        &mut callee,
        Message::Goodbye {
            details: Dict::new(),
            reason: uris::CLOSE_NORMAL.into(),
        },
    );
    h.pump(&mut callee);
    assert!(
        callee.closed || h.realm.session_count() == 2,
        "the callee left"
    );
    let events = meta_events(&h.take(&mut m), &subs);
    let cycles = stats_for(&events, callee_id);
    // `join_advanced` does not log its HELLO in the client's totals; the meter counts it.
    let hello = Message::Hello {
        realm: "realm1".into(),
        details: callee_roles(),
    };
    let hello_len = Serializer::Cbor.encode(&hello).unwrap().len() as u64;
    let (messages, bytes) = callee.totals();
    let sum = |k: &str| cycles.iter().map(|s| int(s, k)).sum::<u64>();
    assert_eq!(
        sum("messages"),
        messages + 1,
        "refused messages are metered too"
    );
    assert_eq!(sum("bytes"), bytes + hello_len);
}

/// A rate set while sessions are joined applies to them at once (with a full bucket), and
/// removing it lifts it.
#[test]
fn a_changed_rate_applies_to_joined_sessions() {
    let mut h = Harness::new(realm_config(None));
    let mut c = h.connect(Serializer::Json);
    h.join(&mut c);
    let publish = |request: Id| Message::Publish {
        request,
        options: dict! {"acknowledge" => true},
        topic: "com.t".into(),
        args: None,
        kwargs: None,
    };
    for request in 1..50 {
        h.send(&mut c, publish(request));
    }
    assert_eq!(h.take(&mut c).len(), 49, "no rate by default");
    h.realm.set_session_limits(limits::SessionLimits {
        max_messages_per_second: 1,
        ..limits::SessionLimits::default()
    });
    h.send(&mut c, publish(60));
    h.send(&mut c, publish(61));
    let msgs = h.take(&mut c);
    assert!(
        matches!(msgs[0], Message::Published { request: 60, .. }),
        "{msgs:?}"
    );
    assert!(
        matches!(&msgs[1..], [Message::Error { request: 61, error, .. }] if error == limits::LIMIT_EXCEEDED),
        "burst defaults to one second's worth: {msgs:?}"
    );
    h.realm.set_session_limits(limits::SessionLimits::default());
    h.send(&mut c, publish(62));
    assert!(matches!(
        h.take(&mut c).as_slice(),
        [Message::Published { request: 62, .. }]
    ));
}

/// Fuzz finding F2 (`session` target, docs/fuzzing.md): deadlines outlived what they were for.
/// The handshake deadline stayed after WELCOME, every statistics snapshot added a duration
/// deadline without removing the one it replaced, and a call's timeout stayed after the call
/// was answered, each until its time came (for a call timeout that a client chooses: days). A
/// realm whose sessions had all left still held them. Now each session holds at most one
/// deadline of each kind plus one per call it serves with a timeout, and nothing once it left.
#[test]
fn deadlines_go_with_what_they_were_for() {
    let mut h = Harness::new(realm_config(stats(|s| {
        s.trigger_after_rated_messages = 1;
        s.trigger_after_duration = 60;
    })));
    let mut callee = h.connect(Serializer::Json);
    let mut caller = h.connect(Serializer::MsgPack);
    h.join(&mut callee);
    h.join(&mut caller);
    // Each has its statistics deadline, and the handshake deadlines are gone.
    assert_eq!(
        h.realm.table_sizes().timers,
        2,
        "{:?}",
        h.realm.table_sizes()
    );
    h.send(
        &mut callee,
        Message::Register {
            request: 1,
            options: Dict::new(),
            procedure: "com.p".into(),
        },
    );
    h.take(&mut callee);
    for request in 10..60 {
        // Every message closes a cycle (rated trigger 1) and re-arms the duration trigger.
        let call = Message::Call {
            request,
            options: dict! {"timeout" => 86_400_000u64},
            procedure: "com.p".into(),
            args: None,
            kwargs: None,
        };
        h.send(&mut caller, call);
        let invocation = match h.take(&mut callee).as_slice() {
            [Message::Invocation { request, .. }] => *request,
            other => panic!("an INVOCATION expected: {other:?}"),
        };
        let answer = Message::Yield {
            request: invocation,
            options: Dict::new(),
            args: None,
            kwargs: None,
        };
        h.send(&mut callee, answer);
        assert!(matches!(
            h.take(&mut caller).as_slice(),
            [Message::Result { request: r, .. }] if *r == request
        ));
    }
    let sizes = h.realm.table_sizes();
    assert_eq!(sizes.timers, 2, "one statistics deadline each: {sizes:?}");
    assert_eq!(sizes.calls_in_flight, 0);
    h.realm.handle_disconnected(callee.conn, h.now);
    h.realm.handle_disconnected(caller.conn, h.now);
    let sizes = h.realm.table_sizes();
    assert!(sizes.is_empty_but_retained(), "{sizes:?}");
    assert_eq!(h.realm.poll_timeout(), None);
}

/// A call's timeout goes when its caller is killed; a killed session waiting for its GOODBYE
/// reply, and a callee, leave nothing behind either.
#[test]
fn leaving_sessions_take_their_deadlines() {
    let mut h = Harness::new(realm_config(stats(|s| s.trigger_after_duration = 5)));
    let mut callee = h.connect(Serializer::Json);
    let mut caller = h.connect(Serializer::Cbor);
    let mut killer = h.connect(Serializer::Json);
    h.join(&mut callee);
    let caller_id = h.join(&mut caller);
    h.join(&mut killer);
    h.send(
        &mut callee,
        Message::Register {
            request: 1,
            options: Dict::new(),
            procedure: "com.p".into(),
        },
    );
    let call = Message::Call {
        request: 2,
        options: dict! {"timeout" => 3_600_000u64},
        procedure: "com.p".into(),
        args: None,
        kwargs: None,
    };
    h.send(&mut caller, call);
    // Three statistics deadlines and the call's timeout.
    assert_eq!(
        h.realm.table_sizes().timers,
        4,
        "{:?}",
        h.realm.table_sizes()
    );
    let kill = Message::Call {
        request: 3,
        options: Dict::new(),
        procedure: "wamp.session.kill".into(),
        args: Some(vec![Value::from(caller_id)]),
        kwargs: None,
    };
    h.send(&mut killer, kill);
    // The killed caller's call ended with it, and its timeout; the GOODBYE reply wait came.
    assert_eq!(
        h.realm.table_sizes().timers,
        4,
        "{:?}",
        h.realm.table_sizes()
    );
    h.realm.handle_disconnected(callee.conn, h.now);
    h.realm.handle_disconnected(caller.conn, h.now);
    assert_eq!(
        h.realm.table_sizes().timers,
        1,
        "{:?}",
        h.realm.table_sizes()
    );
    h.realm.handle_disconnected(killer.conn, h.now);
    let sizes = h.realm.table_sizes();
    assert!(sizes.is_empty_but_retained(), "{sizes:?}");
    assert_eq!(h.realm.poll_timeout(), None);
}
