//! Session statistics (`docs/session-statistics.md`) end to end: a router started in
//! process on ephemeral ports, measured clients (`turnstile-client`, which records every message
//! it sends and receives with its exact serialized length) and monitor sessions subscribed to
//! `wamp.session.on_stats`, `on_join` and `on_leave`. Every test names the rule it checks.
//!
//! What a monitor receives counts in the monitor's own session, never in the measured one, so
//! the measured client's own log is the exact expectation for the measured session's events.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use serde_json::{json, Value as Json};
use tokio::time::Instant;
use turnstile_client::{
    dict, Dict, Direction, Error, Id, List, Message, Record, Serializer, Session, Traffic, Value,
};
use wamp_proto::message::code;

use common::{realm1, Router, TempDir};

/// Upper bound for anything a test waits for.
const WAIT: Duration = Duration::from_secs(10);

const ON_JOIN: &str = "wamp.session.on_join";
const ON_STATS: &str = "wamp.session.on_stats";
const ON_LEAVE: &str = "wamp.session.on_leave";
const ON_UNSUBSCRIBE: &str = "wamp.subscription.on_unsubscribe";
const ON_UNREGISTER: &str = "wamp.registration.on_unregister";

const SESSION_TOPICS: [&str; 3] = [ON_JOIN, ON_STATS, ON_LEAVE];

// =============================================================================================
// Harness: a router in process

/// The three ways to reach the router.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Via {
    WebSocket,
    RawTcp,
    RawUnix,
}

const ALL_VIA: [Via; 3] = [Via::WebSocket, Via::RawTcp, Via::RawUnix];

/// The node configuration of this file's routers: realm `realm1` (anonymous may do
/// everything) with the given `stats` section (none: no metering), a WebSocket on `/ws`,
/// RawSocket on TCP and on a Unix socket, all three serializers everywhere.
fn node(stats: Option<Json>) -> Json {
    let mut realm = realm1();
    if let Some(stats) = stats {
        realm["stats"] = stats;
    }
    let all = ["json", "msgpack", "cbor"];
    json!({
        "version": 2,
        "workers": [{
            "type": "router",
            "realms": [realm],
            "transports": [
                {
                    "type": "web",
                    "endpoint": {"type": "tcp", "port": 1},
                    "paths": {"ws": {"type": "websocket", "serializers": all}}
                },
                {"type": "rawsocket", "endpoint": {"type": "tcp", "port": 2}, "serializers": all},
                {"type": "rawsocket", "endpoint": {"type": "unix", "path": "router.sock"}, "serializers": all}
            ]
        }]
    })
}

/// How this file starts the shared [`Router`] and reaches it.
impl Router {
    /// Starts a router on [`node`]`(stats)` in a fresh directory.
    async fn start(stats: Option<Json>) -> Router {
        Router::start_in(node(stats), TempDir::new("turnstile-metering")).await
    }

    fn url(&self, via: Via) -> String {
        match via {
            Via::WebSocket => format!("ws://{}/ws", self.tcp(0)),
            Via::RawTcp => format!("rs://{}", self.tcp(1)),
            Via::RawUnix => format!("unix://{}", self.addrs[2].unix().unwrap().display()),
        }
    }
}

/// A joined client session.
async fn client(router: &Router, via: Via, ser: Serializer) -> (Session, Id) {
    let mut s = Session::connect(&router.url(via), ser).await.unwrap();
    let w = s.join("realm1").await.unwrap();
    (s, w.session)
}

// =============================================================================================
// Harness: monitors and the events they see

/// One meta event as a monitor received it.
#[derive(Debug, Clone)]
struct Meta {
    topic: &'static str,
    args: List,
    kwargs: Dict,
}

impl Meta {
    /// The session the event is about.
    fn session(&self) -> Option<Id> {
        match self.topic {
            ON_JOIN | ON_STATS => self.args.first()?.as_dict()?.get("session")?.as_u64(),
            _ => self.args.first()?.as_u64(),
        }
    }
}

/// The `stats` of an `on_stats` event, after its shape was checked.
#[derive(Debug, Clone, PartialEq)]
struct Stats {
    session: Id,
    cycle: u64,
    serializer: String,
    timestamp: u64,
    duration: u64,
    bytes: u64,
    messages: u64,
    rated: u64,
    first: bool,
    last: bool,
}

fn int(d: &Dict, key: &str) -> u64 {
    match d.get(key) {
        Some(v @ (Value::Int(_) | Value::UInt(_))) => v
            .as_u64()
            .unwrap_or_else(|| panic!("{key} is a negative integer: {d:?}")),
        other => panic!("{key} must be an integer, found {other:?} in {d:?}"),
    }
}

fn string(d: &Dict, key: &str) -> String {
    match d.get(key) {
        Some(Value::Str(s)) => s.clone(),
        other => panic!("{key} must be a string, found {other:?} in {d:?}"),
    }
}

fn boolean(d: &Dict, key: &str) -> bool {
    match d.get(key) {
        Some(Value::Bool(b)) => *b,
        other => panic!("{key} must be a boolean, found {other:?} in {d:?}"),
    }
}

fn keys(d: &Dict) -> Vec<&str> {
    d.keys().map(String::as_str).collect()
}

/// Checks the exact shape of an `on_stats` event (§4) and returns its `stats`.
fn parse_stats(m: &Meta) -> Stats {
    assert_eq!(m.topic, ON_STATS);
    assert!(m.kwargs.is_empty(), "positional arguments only: {m:?}");
    assert_eq!(m.args.len(), 2, "args = [session_info, stats]: {m:?}");
    let info = m.args[0].as_dict().expect("session_info is a dict");
    let stats = m.args[1].as_dict().expect("stats is a dict");
    let mut info_keys = keys(info);
    info_keys.sort_unstable();
    assert_eq!(info_keys, ["authid", "authrole", "realm", "session"]);
    assert_eq!(string(info, "realm"), "realm1");
    assert_eq!(string(info, "authrole"), "anonymous");
    assert!(!string(info, "authid").is_empty());
    let session = int(info, "session");
    let mut stats_keys = keys(stats);
    stats_keys.sort_unstable();
    assert_eq!(
        stats_keys,
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
    Stats {
        session,
        cycle: int(stats, "cycle"),
        serializer: string(stats, "serializer"),
        timestamp: int(stats, "timestamp"),
        duration: int(stats, "duration"),
        bytes: int(stats, "bytes"),
        messages: int(stats, "messages"),
        rated: int(stats, "rated_messages"),
        first: boolean(stats, "first"),
        last: boolean(stats, "last"),
    }
}

/// A session subscribed to meta topics, logging every event it receives in order.
struct Monitor {
    s: Session,
    id: Id,
    subs: HashMap<Id, &'static str>,
    log: Vec<Meta>,
}

impl Monitor {
    async fn start(router: &Router, via: Via, ser: Serializer, topics: &[&'static str]) -> Monitor {
        let (mut s, id) = client(router, via, ser).await;
        let mut subs = HashMap::new();
        for t in topics {
            subs.insert(s.subscribe(t, Dict::new()).await.unwrap(), *t);
        }
        Monitor {
            s,
            id,
            subs,
            log: Vec::new(),
        }
    }

    async fn session_monitor(router: &Router) -> Monitor {
        Monitor::start(router, Via::RawTcp, Serializer::Json, &SESSION_TOPICS).await
    }

    fn push(&mut self, ev: turnstile_client::Event) {
        let topic = self.subs[&ev.subscription];
        self.log.push(Meta {
            topic,
            args: ev.args,
            kwargs: ev.kwargs,
        });
    }

    /// Logs events until `done(log)` holds; panics with the log after [`WAIT`].
    async fn until(&mut self, what: &str, done: impl Fn(&[Meta]) -> bool) {
        let deadline = Instant::now() + WAIT;
        while !done(&self.log) {
            match tokio::time::timeout_at(deadline, self.s.next_event()).await {
                Ok(Ok(ev)) => self.push(ev),
                Ok(Err(Error::Timeout(_))) | Err(_) => {
                    panic!("monitor timed out waiting for {what}; log: {:#?}", self.log)
                }
                Ok(Err(e)) => panic!(
                    "monitor failed waiting for {what}: {e}; log: {:#?}",
                    self.log
                ),
            }
        }
    }

    /// Logs events until `wamp.session.on_leave` of `session`.
    async fn until_left(&mut self, session: Id) {
        self.until(&format!("on_leave of {session}"), |log| {
            log.iter()
                .any(|m| m.topic == ON_LEAVE && m.session() == Some(session))
        })
        .await;
    }

    /// Logs every event that arrives within `window`; returns how many came.
    async fn drain_for(&mut self, window: Duration) -> usize {
        let before = self.log.len();
        let deadline = Instant::now() + window;
        while let Ok(r) = tokio::time::timeout_at(deadline, self.s.next_event()).await {
            self.push(r.expect("monitor receives events"));
        }
        self.log.len() - before
    }

    fn of(&self, session: Id) -> Vec<&Meta> {
        self.log
            .iter()
            .filter(|m| m.session() == Some(session))
            .collect()
    }

    fn stats_of(&self, session: Id) -> Vec<Stats> {
        self.log
            .iter()
            .filter(|m| m.topic == ON_STATS && m.session() == Some(session))
            .map(parse_stats)
            .collect()
    }

    /// §3.4: the last two events about `session` are its final snapshot and its `on_leave`.
    fn assert_final_snapshot_then_leave(&self, session: Id, ctx: &str) {
        let events = self.of(session);
        let n = events.len();
        assert_eq!(events[n - 1].topic, ON_LEAVE);
        assert!(
            parse_stats(events[n - 2]).last,
            "{ctx}: final snapshot right before on_leave"
        );
    }

    /// Calls `wamp.session.kill` on `session`; returns the RESULT's arguments.
    async fn kill(&mut self, session: Id) -> List {
        let result = self
            .s
            .call(
                "wamp.session.kill",
                Some(vec![session.into()]),
                None,
                Dict::new(),
            )
            .await
            .unwrap();
        result.args
    }
}

// =============================================================================================
// Harness: checks

/// §1, §2: the events of one session add up exactly to what its client sent and received.
fn assert_totals(stats: &[Stats], traffic: &Traffic, rated_size: u64, ctx: &str) {
    let bytes: u64 = stats.iter().map(|s| s.bytes).sum();
    let messages: u64 = stats.iter().map(|s| s.messages).sum();
    let rated: u64 = stats.iter().map(|s| s.rated).sum();
    assert_eq!(
        (messages, bytes, rated),
        (
            traffic.messages(),
            traffic.bytes(),
            traffic.rated_messages(rated_size)
        ),
        "{ctx}: (messages, bytes, rated) of the events vs the client's log; events {stats:#?}; log {:?}",
        traffic.per_message
    );
}

/// Splits the client's log into the cycles of `stats` by their message counts, checking that
/// each cycle's bytes and rated messages are exactly those of its messages (valid when the
/// client and the router see the messages in the same order: a lock-step workload).
fn partition<'a>(
    stats: &[Stats],
    log: &'a [Record],
    rated_size: u64,
    ctx: &str,
) -> Vec<&'a [Record]> {
    let mut out = Vec::new();
    let mut at = 0usize;
    for s in stats {
        let n = s.messages as usize;
        assert!(
            at + n <= log.len(),
            "{ctx}: cycle {} claims more messages than the client saw; events {stats:#?}; log {log:?}",
            s.cycle
        );
        let part = &log[at..at + n];
        let bytes: u64 = part.iter().map(|r| r.len as u64).sum();
        let rated: u64 = part.iter().map(|r| r.rated(rated_size)).sum();
        assert_eq!(
            (s.bytes, s.rated),
            (bytes, rated),
            "{ctx}: cycle {} vs the client's messages {part:?}; events {stats:#?}",
            s.cycle
        );
        out.push(part);
        at += n;
    }
    out
}

/// §2, §4: cycles 1..n without gaps, time stamps chained exactly, `first` only on the first,
/// `last` only on the final (if `has_final`), the serializer's name and the session id.
fn assert_chain(stats: &[Stats], session: Id, ser: Serializer, has_final: bool, ctx: &str) {
    assert!(!stats.is_empty(), "{ctx}: no on_stats events");
    for (k, s) in stats.iter().enumerate() {
        assert_eq!(s.session, session, "{ctx}: session id in every event");
        assert_eq!(s.cycle, k as u64 + 1, "{ctx}: cycles 1..n: {stats:#?}");
        assert_eq!(s.serializer, ser.name(), "{ctx}: serializer");
        assert_eq!(
            s.first,
            k == 0,
            "{ctx}: first only on the first: {stats:#?}"
        );
        let is_final = has_final && k == stats.len() - 1;
        assert_eq!(
            s.last, is_final,
            "{ctx}: last only on the final: {stats:#?}"
        );
        if k > 0 {
            let p = &stats[k - 1];
            assert_eq!(
                s.timestamp,
                p.timestamp + p.duration,
                "{ctx}: timestamp of cycle {} = timestamp + duration of cycle {}",
                s.cycle,
                p.cycle
            );
        }
    }
    // Wall clock, nanoseconds: within a minute of now.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    assert!(
        now.abs_diff(stats[0].timestamp) < 60_000_000_000,
        "{ctx}: timestamp in ns"
    );
}

fn opts_exclude_me_false() -> Dict {
    dict! {"exclude_me" => false}
}

fn payload(n: usize) -> List {
    vec![
        Value::Str("x".repeat(n)),
        Value::Int(n as i64),
        Value::Bytes((0..n as u8).collect()),
    ]
}

/// The workload of a measured client `c`, lock-step (each step waits for all it causes, so the
/// client and the router see the messages in the same order): subscribe, register, publish to
/// itself without and with acknowledgement, events from `helper`, a call to itself, a call from
/// `helper`, unsubscribe, unregister.
async fn workload(c: &mut Session, helper: &mut Session) {
    let sub = c.subscribe("com.test.topic", Dict::new()).await.unwrap();
    let reg = c.register("com.test.proc", Dict::new()).await.unwrap();

    c.publish(
        "com.test.topic",
        Some(payload(3)),
        None,
        opts_exclude_me_false(),
    )
    .await
    .unwrap();
    let ev = c.next_event().await.unwrap();
    assert_eq!(ev.subscription, sub);

    let mut ack = opts_exclude_me_false();
    ack.insert("acknowledge".into(), Value::Bool(true));
    let kwargs = Some(dict! {"k" => "value", "n" => 17});
    let publication = c
        .publish("com.test.topic", Some(payload(40)), kwargs, ack)
        .await
        .unwrap();
    assert!(publication.is_some());
    c.next_event().await.unwrap();

    for n in [0, 5, 200] {
        helper
            .publish("com.test.topic", Some(payload(n)), None, Dict::new())
            .await
            .unwrap();
        let ev = c.next_event().await.unwrap();
        assert_eq!(ev.args.len(), 3);
    }

    let call = c
        .start_call("com.test.proc", Some(payload(10)), None, Dict::new())
        .await
        .unwrap();
    let inv = c.next_invocation().await.unwrap();
    assert_eq!(inv.registration, reg);
    c.yield_result(inv.request, Some(payload(20)), Some(dict! {"ok" => true}))
        .await
        .unwrap();
    c.call_result(call).await.unwrap();

    let call = helper
        .start_call("com.test.proc", Some(payload(1)), None, Dict::new())
        .await
        .unwrap();
    let inv = c.next_invocation().await.unwrap();
    c.yield_result(inv.request, Some(payload(2)), None)
        .await
        .unwrap();
    helper.call_result(call).await.unwrap();

    c.unsubscribe(sub).await.unwrap();
    c.unregister(reg).await.unwrap();
}

// =============================================================================================
// Tests

/// §1 (what is metered, bytes, rated messages) and §2 (per-cycle deltas that sum to the
/// session's exact total): the events of a measured session add up exactly to the client's own
/// log (sent + received, exact lengths, ceil(len / rated_message_size) per message), for JSON,
/// MessagePack and CBOR over WebSocket, RawSocket/TCP and RawSocket/Unix, with
/// rated_message_size 16 (and a rated-messages trigger, so there are many cycles) and 1.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exact_totals_for_every_serializer_and_transport() {
    for (size, threshold) in [(16u64, 20u64), (1, 0)] {
        let router = Router::start(Some(json!({
            "rated_message_size": size,
            "trigger_after_rated_messages": threshold
        })))
        .await;
        let mut monitor = Monitor::session_monitor(&router).await;
        let (mut helper, _) = client(&router, Via::RawTcp, Serializer::MsgPack).await;
        for via in ALL_VIA {
            for ser in Serializer::ALL {
                let ctx = format!("{via:?}/{} size {size} threshold {threshold}", ser.name());
                let (mut c, id) = client(&router, via, ser).await;
                workload(&mut c, &mut helper).await;
                c.leave().await.unwrap();
                monitor.until_left(id).await;
                let stats = monitor.stats_of(id);
                assert_totals(&stats, c.traffic(), size, &ctx);
                partition(&stats, &c.traffic().per_message, size, &ctx);
                assert_chain(&stats, id, ser, true, &ctx);
                if threshold > 0 {
                    assert!(
                        stats.len() > 3,
                        "{ctx}: the threshold makes cycles: {stats:#?}"
                    );
                }
            }
        }
    }
}

/// §2 and §4: cycle numbering 1..n without gaps, `timestamp[k+1] == timestamp[k] +
/// duration[k]`, `first` only on the first event and `last` only on the final one, the exact
/// key sets and types of `session_info` and `stats`, the `serializer` value, and the session id
/// (not null) in the final event after GOODBYE; for monitors of every serializer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cycles_chain_and_event_shape() {
    let router = Router::start(Some(json!({
        "rated_message_size": 16,
        "trigger_after_rated_messages": 25
    })))
    .await;
    let mut monitors = Vec::new();
    for ser in Serializer::ALL {
        monitors.push(Monitor::start(&router, Via::WebSocket, ser, &SESSION_TOPICS).await);
    }
    let (mut helper, _) = client(&router, Via::RawTcp, Serializer::Json).await;
    for ser in Serializer::ALL {
        let (mut c, id) = client(&router, Via::RawUnix, ser).await;
        workload(&mut c, &mut helper).await;
        c.leave().await.unwrap();
        let mut seen = Vec::new();
        for m in &mut monitors {
            m.until_left(id).await;
            let stats = m.stats_of(id);
            assert_chain(&stats, id, ser, true, ser.name());
            assert!(stats.len() >= 3);
            assert_totals(&stats, c.traffic(), 16, ser.name());
            seen.push(stats);
        }
        // Every monitor, whatever its serializer, sees the same events.
        assert_eq!(seen[0], seen[1]);
        assert_eq!(seen[0], seen[2]);
    }
}

/// §4: a session with a single event (trigger_on_join false, no other trigger) has `first`
/// and `last` both true, and it holds the whole session.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn single_event_session_is_first_and_last() {
    let router = Router::start(Some(json!({"trigger_on_join": false}))).await;
    let mut monitor = Monitor::session_monitor(&router).await;
    let (mut helper, _) = client(&router, Via::RawTcp, Serializer::Json).await;
    let (mut c, id) = client(&router, Via::WebSocket, Serializer::Cbor).await;
    workload(&mut c, &mut helper).await;
    c.leave().await.unwrap();
    monitor.until_left(id).await;
    let stats = monitor.stats_of(id);
    assert_eq!(stats.len(), 1, "{stats:#?}");
    assert!(stats[0].first && stats[0].last);
    assert_eq!(stats[0].cycle, 1);
    assert_totals(&stats, c.traffic(), 512, "single event");
}

/// §4 (ordering): per subscriber, `on_join`, then the join snapshot, then the cycles in order,
/// then the final snapshot (`last`), then `on_leave`, then the subscription/registration
/// removal events; and §3.1: the join snapshot holds exactly HELLO and WELCOME.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn event_order_per_subscriber() {
    let router = Router::start(Some(json!({
        "rated_message_size": 16,
        "trigger_after_rated_messages": 60
    })))
    .await;
    let topics = [ON_JOIN, ON_STATS, ON_LEAVE, ON_UNSUBSCRIBE, ON_UNREGISTER];
    let mut monitor = Monitor::start(&router, Via::RawTcp, Serializer::MsgPack, &topics).await;
    let (mut c, id) = client(&router, Via::RawTcp, Serializer::Json).await;
    // Things the session still owns when it leaves: their removal events follow on_leave.
    c.subscribe("com.test.kept", Dict::new()).await.unwrap();
    c.register("com.test.kept", Dict::new()).await.unwrap();
    for n in 0..10 {
        // The session calls itself, lock-step.
        let call = c
            .start_call("com.test.kept", Some(payload(n)), None, Dict::new())
            .await
            .unwrap();
        let inv = c.next_invocation().await.unwrap();
        c.yield_result(inv.request, None, None).await.unwrap();
        c.call_result(call).await.unwrap();
    }
    c.leave().await.unwrap();
    monitor.until_left(id).await;
    monitor.drain_for(Duration::from_millis(200)).await;
    let events = monitor.of(id);
    let order: Vec<String> = events
        .iter()
        .map(|m| match m.topic {
            ON_STATS => {
                let s = parse_stats(m);
                format!("stats {}{}", s.cycle, if s.last { " last" } else { "" })
            }
            t => t.to_owned(),
        })
        .collect();
    let n_stats = events.iter().filter(|m| m.topic == ON_STATS).count();
    assert!(n_stats >= 3, "{order:?}");
    let mut expected = vec![ON_JOIN.to_owned()];
    for k in 1..n_stats {
        expected.push(format!("stats {k}"));
    }
    expected.push(format!("stats {n_stats} last"));
    expected.push(ON_LEAVE.to_owned());
    expected.push(ON_UNSUBSCRIBE.to_owned());
    expected.push(ON_UNREGISTER.to_owned());
    let mut removal_sorted = order.clone();
    // The two removal events may come in either order.
    let tail = removal_sorted.len().saturating_sub(2);
    removal_sorted[tail..].sort();
    let mut expected_sorted = expected.clone();
    expected_sorted[tail..].sort();
    assert_eq!(removal_sorted, expected_sorted, "order seen: {order:#?}");
    // The join snapshot: HELLO and WELCOME.
    let stats = monitor.stats_of(id);
    let log = &c.traffic().per_message;
    assert_eq!(stats[0].messages, 2);
    assert_eq!(
        (log[0].code, log[1].code),
        (code::HELLO, code::WELCOME),
        "{log:?}"
    );
    assert_eq!(stats[0].bytes, (log[0].len + log[1].len) as u64);
    assert_totals(&stats, c.traffic(), 16, "order");
}

/// §3.2: the rated-messages trigger fires as soon as the cycle's rated total reaches the
/// threshold: every cycle between the join snapshot and the final one has at least the
/// threshold, and without its last message it would have less (derived from the client's own
/// per-message log, a lock-step workload so both sides see the same order).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rated_trigger_fires_as_soon_as_threshold_is_reached() {
    // The handshake stays under the threshold (HELLO + WELCOME are about 30-60 rated messages of
    // 16 bytes), so the join snapshot is the join trigger's.
    let (size, threshold) = (16u64, 100u64);
    let router = Router::start(Some(json!({
        "rated_message_size": size,
        "trigger_after_rated_messages": threshold
    })))
    .await;
    let mut monitor = Monitor::session_monitor(&router).await;
    let (mut helper, _) = client(&router, Via::RawTcp, Serializer::Json).await;
    for ser in Serializer::ALL {
        let ctx = ser.name();
        let (mut c, id) = client(&router, Via::WebSocket, ser).await;
        workload(&mut c, &mut helper).await;
        for n in [0usize, 100, 3000, 7] {
            c.call("com.none", Some(payload(n)), None, Dict::new())
                .await
                .unwrap_err();
        }
        c.leave().await.unwrap();
        monitor.until_left(id).await;
        let stats = monitor.stats_of(id);
        let log = c.traffic().per_message.clone();
        let cycles = partition(&stats, &log, size, ctx);
        assert_totals(&stats, c.traffic(), size, ctx);
        assert!(stats.len() >= 4, "{ctx}: {stats:#?}");
        assert!(
            stats[0].rated < threshold,
            "{ctx}: test assumes the handshake is under the threshold"
        );
        for (s, msgs) in stats.iter().zip(&cycles).skip(1) {
            if s.last {
                assert!(
                    s.rated < threshold,
                    "{ctx}: the final cycle is below the threshold"
                );
                continue;
            }
            let last = msgs.last().expect("a rated cycle has messages");
            assert!(
                s.rated >= threshold && s.rated - last.rated(size) < threshold,
                "{ctx}: cycle {} with {} rated messages, its last message {last:?}, threshold {threshold}",
                s.cycle,
                s.rated
            );
        }
    }
}

/// §3.2 with §3.1 and §4 ordering: when the handshake alone reaches the rated threshold, the
/// subscriber still sees `on_join` first and then the join snapshot holding HELLO and WELCOME;
/// no cycle is empty before the final one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handshake_over_threshold_keeps_join_order() {
    let router = Router::start(Some(json!({
        "rated_message_size": 16,
        "trigger_after_rated_messages": 10
    })))
    .await;
    let mut monitor = Monitor::session_monitor(&router).await;
    let (mut c, id) = client(&router, Via::RawTcp, Serializer::Json).await;
    c.leave().await.unwrap();
    monitor.until_left(id).await;
    let events = monitor.of(id);
    let order: Vec<String> = events
        .iter()
        .map(|m| match m.topic {
            ON_STATS => {
                let s = parse_stats(m);
                format!("stats {} ({} messages)", s.cycle, s.messages)
            }
            t => t.to_owned(),
        })
        .collect();
    assert_eq!(events[0].topic, ON_JOIN, "on_join comes first: {order:#?}");
    let stats = monitor.stats_of(id);
    assert_eq!(
        stats[0].messages, 2,
        "join snapshot = HELLO + WELCOME: {order:#?}"
    );
    for s in &stats[..stats.len() - 1] {
        assert!(
            s.messages > 0,
            "no empty cycle before the final one: {order:#?}"
        );
    }
    assert_totals(&stats, c.traffic(), 16, "handshake over threshold");
}

/// §3.3 (duration trigger, seconds, with a timer): an idle session with
/// trigger_after_duration 1 reports zero-traffic cycles of about 1e9 ns each.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duration_trigger_on_idle_session() {
    let router = Router::start(Some(json!({"trigger_after_duration": 1}))).await;
    let mut monitor = Monitor::session_monitor(&router).await;
    let (mut c, id) = client(&router, Via::RawUnix, Serializer::MsgPack).await;
    let started = Instant::now();
    let idle = |log: &[Meta]| {
        log.iter()
            .filter(|m| m.topic == ON_STATS && m.session() == Some(id))
            .map(parse_stats)
            .filter(|s| s.messages == 0 && !s.last)
            .count()
            >= 2
    };
    monitor.until("two idle cycles", idle).await;
    let elapsed = started.elapsed();
    assert!(
        elapsed < Duration::from_millis(3000),
        "two idle cycles within ~3 s, took {elapsed:?}"
    );
    let stats = monitor.stats_of(id);
    assert_eq!(stats[0].messages, 2, "join snapshot first");
    for s in &stats[1..] {
        assert_eq!((s.bytes, s.messages, s.rated), (0, 0, 0), "{stats:#?}");
        assert!(
            (1_000_000_000..1_200_000_000).contains(&s.duration),
            "duration ~1 s in ns: {stats:#?}"
        );
    }
    c.leave().await.unwrap();
    monitor.until_left(id).await;
    let stats = monitor.stats_of(id);
    assert_chain(&stats, id, Serializer::MsgPack, true, "idle");
    assert_totals(&stats, c.traffic(), 512, "idle");
}

/// §3.1 with `trigger_on_join: false`: no join snapshot; the first event is a later cycle that
/// still starts at HELLO and holds the handshake.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_join_snapshot_when_trigger_on_join_is_false() {
    let router = Router::start(Some(json!({
        "rated_message_size": 16,
        "trigger_after_rated_messages": 150,
        "trigger_on_join": false
    })))
    .await;
    let mut monitor = Monitor::session_monitor(&router).await;
    let (mut helper, _) = client(&router, Via::RawTcp, Serializer::Json).await;
    let (mut c, id) = client(&router, Via::RawTcp, Serializer::Cbor).await;
    // on_join arrived; no snapshot right after it.
    monitor
        .until("on_join", |log| {
            log.iter()
                .any(|m| m.topic == ON_JOIN && m.session() == Some(id))
        })
        .await;
    monitor.drain_for(Duration::from_millis(200)).await;
    assert!(monitor.stats_of(id).is_empty(), "no join snapshot");
    workload(&mut c, &mut helper).await;
    c.leave().await.unwrap();
    monitor.until_left(id).await;
    let stats = monitor.stats_of(id);
    assert!(stats.len() >= 2);
    assert!(
        stats[0].messages > 2,
        "the first cycle goes on past WELCOME"
    );
    partition(&stats, &c.traffic().per_message, 16, "no join");
    assert_chain(&stats, id, Serializer::Cbor, true, "no join");
    assert_totals(&stats, c.traffic(), 16, "no join");
}

/// §3.4 and §4 with `trigger_on_leave: false`: no final event, no event with `last`; the
/// reported cycles are an exact prefix of the session's traffic.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_final_event_when_trigger_on_leave_is_false() {
    let router = Router::start(Some(json!({
        "rated_message_size": 16,
        "trigger_after_rated_messages": 50,
        "trigger_on_leave": false
    })))
    .await;
    let mut monitor = Monitor::session_monitor(&router).await;
    let (mut helper, _) = client(&router, Via::RawTcp, Serializer::Json).await;
    let (mut c, id) = client(&router, Via::WebSocket, Serializer::Json).await;
    workload(&mut c, &mut helper).await;
    c.leave().await.unwrap();
    monitor.until_left(id).await;
    monitor.drain_for(Duration::from_millis(200)).await;
    let stats = monitor.stats_of(id);
    assert!(stats.len() >= 2, "{stats:#?}");
    assert_chain(&stats, id, Serializer::Json, false, "no leave");
    assert!(stats.iter().all(|s| !s.last));
    let cycles = partition(&stats, &c.traffic().per_message, 16, "no leave");
    let reported: usize = cycles.iter().map(|c| c.len()).sum();
    assert!(
        reported < c.traffic().per_message.len(),
        "the final cycle is not reported"
    );
    // Nothing about the session after on_leave.
    let events = monitor.of(id);
    assert_eq!(events.last().unwrap().topic, ON_LEAVE);
}

/// §5: no `stats` section, no `on_stats` events at all (on_join and on_leave still come).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_stats_section_no_on_stats() {
    let router = Router::start(None).await;
    let mut monitor = Monitor::session_monitor(&router).await;
    let (mut helper, _) = client(&router, Via::RawTcp, Serializer::Json).await;
    let (mut c, id) = client(&router, Via::RawTcp, Serializer::MsgPack).await;
    workload(&mut c, &mut helper).await;
    c.leave().await.unwrap();
    drop(c);
    monitor.until_left(id).await;
    monitor.drain_for(Duration::from_millis(300)).await;
    assert!(
        monitor.log.iter().all(|m| m.topic != ON_STATS),
        "no on_stats: {:#?}",
        monitor.log
    );
    let topics: Vec<_> = monitor.of(id).iter().map(|m| m.topic).collect();
    assert_eq!(topics, [ON_JOIN, ON_LEAVE]);
}

/// §2 (re-join): GOODBYE then HELLO on the same connection starts a new session with a new id
/// and its own cycles from 1; the old session's final event holds everything up to and
/// including the GOODBYE reply, the new one everything from its HELLO.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejoin_on_same_connection_is_a_new_session() {
    let router = Router::start(Some(json!({
        "rated_message_size": 16,
        "trigger_after_rated_messages": 80
    })))
    .await;
    let mut monitor = Monitor::session_monitor(&router).await;
    let (mut helper, _) = client(&router, Via::RawTcp, Serializer::Json).await;
    for via in ALL_VIA {
        let ctx = format!("{via:?}");
        let (mut c, first) = client(&router, via, Serializer::MsgPack).await;
        workload(&mut c, &mut helper).await;
        assert_eq!(c.leave().await.unwrap(), "wamp.close.goodbye_and_out");
        let mark = c.transport().mark();
        let second = c.join("realm1").await.unwrap().session;
        assert_ne!(first, second, "{ctx}: a new session id");
        workload(&mut c, &mut helper).await;
        c.leave().await.unwrap();
        monitor.until_left(first).await;
        monitor.until_left(second).await;

        let traffic = c.traffic();
        let old = traffic.between(Default::default(), mark);
        let new = traffic.since(mark);
        assert_eq!(
            old.per_message.last().map(|r| (r.direction, r.code)),
            Some((Direction::Received, code::GOODBYE)),
            "{ctx}: the old session ends with the GOODBYE reply"
        );
        let old_stats = monitor.stats_of(first);
        let new_stats = monitor.stats_of(second);
        assert_chain(&old_stats, first, Serializer::MsgPack, true, &ctx);
        assert_chain(&new_stats, second, Serializer::MsgPack, true, &ctx);
        assert_totals(&old_stats, &old, 16, &ctx);
        assert_totals(&new_stats, &new, 16, &ctx);
        partition(&old_stats, &old.per_message, 16, &ctx);
        partition(&new_stats, &new.per_message, 16, &ctx);
        assert!(new_stats[0].timestamp >= old_stats.last().unwrap().timestamp);
    }
}

/// §3.4 (leave on connection loss): dropping the socket ends the session with a final
/// snapshot, then `on_leave`, with exact totals.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_loss_final_snapshot() {
    let router = Router::start(Some(json!({
        "rated_message_size": 16,
        "trigger_after_rated_messages": 70
    })))
    .await;
    let mut monitor = Monitor::session_monitor(&router).await;
    let (mut helper, _) = client(&router, Via::RawTcp, Serializer::Json).await;
    for via in ALL_VIA {
        for ser in Serializer::ALL {
            let ctx = format!("{via:?}/{}", ser.name());
            let (mut c, id) = client(&router, via, ser).await;
            workload(&mut c, &mut helper).await;
            let traffic = c.traffic().clone();
            drop(c);
            monitor.until_left(id).await;
            let stats = monitor.stats_of(id);
            assert_chain(&stats, id, ser, true, &ctx);
            assert_totals(&stats, &traffic, 16, &ctx);
            monitor.assert_final_snapshot_then_leave(id, &ctx);
        }
    }
}

/// §3.4 (leave on kill): `wamp.session.kill` called by a monitor; the killed client gets
/// GOODBYE `wamp.close.killed` and answers it; the final snapshot (with both GOODBYEs) comes
/// before `on_leave`, with exact totals; the monitor gets its RESULT.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_final_snapshot() {
    let router = Router::start(Some(json!({
        "rated_message_size": 16,
        "trigger_after_rated_messages": 70
    })))
    .await;
    let mut monitor = Monitor::session_monitor(&router).await;
    let (mut helper, _) = client(&router, Via::RawTcp, Serializer::Json).await;
    for via in ALL_VIA {
        let ctx = format!("{via:?}");
        let (mut c, id) = client(&router, via, Serializer::Cbor).await;
        workload(&mut c, &mut helper).await;
        assert_eq!(monitor.kill(id).await, vec![Value::Null]);
        let (reason, _) = c.wait_goodbye().await.unwrap();
        assert_eq!(reason, "wamp.close.killed");
        c.answer_goodbye().await.unwrap();
        monitor.until_left(id).await;
        let stats = monitor.stats_of(id);
        assert_chain(&stats, id, Serializer::Cbor, true, &ctx);
        assert_totals(&stats, c.traffic(), 16, &ctx);
        let log = &c.traffic().per_message;
        assert_eq!(
            log[log.len() - 2..]
                .iter()
                .map(|r| (r.direction, r.code))
                .collect::<Vec<_>>(),
            [
                (Direction::Received, code::GOODBYE),
                (Direction::Sent, code::GOODBYE)
            ]
        );
        monitor.assert_final_snapshot_then_leave(id, &ctx);
        // The connection can carry a new session after the kill.
        let again = c.join("realm1").await.unwrap().session;
        assert_ne!(again, id);
        c.leave().await.unwrap();
    }
}

/// §3.4 (leave at router shutdown): the client gets GOODBYE `wamp.close.system_shutdown` and
/// answers it; a monitor subscribed to the session meta events receives the client's final
/// snapshot and then its `on_leave`, with exact totals, and its own GOODBYE.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_final_snapshot() {
    let mut router = Router::start(Some(json!({"rated_message_size": 16}))).await;
    let mut monitor = Monitor::session_monitor(&router).await;
    let (mut helper, _) = client(&router, Via::RawTcp, Serializer::Json).await;
    let (mut c, id) = client(&router, Via::WebSocket, Serializer::MsgPack).await;
    workload(&mut c, &mut helper).await;
    router.begin_shutdown();
    let (reason, _) = c.wait_goodbye().await.unwrap();
    assert_eq!(reason, "wamp.close.system_shutdown");
    c.answer_goodbye().await.unwrap();
    let (reason, _) = helper.wait_goodbye().await.unwrap();
    assert_eq!(reason, "wamp.close.system_shutdown");
    helper.answer_goodbye().await.unwrap();

    // The monitor reads until it has both the client's on_leave and its own GOODBYE (the
    // router may say GOODBYE to monitors last, or first and keep them informed while they have
    // not answered).
    let mut goodbye = None;
    let deadline = Instant::now() + WAIT;
    loop {
        let left = monitor
            .log
            .iter()
            .any(|m| m.topic == ON_LEAVE && m.session() == Some(id));
        if left && goodbye.is_some() {
            break;
        }
        let r = tokio::time::timeout_at(deadline, monitor.s.recv()).await;
        let Ok(Ok(Some(msg))) = r else {
            panic!(
                "monitor: {r:?} before both on_leave and GOODBYE; log {:#?}",
                monitor.log
            )
        };
        match msg {
            Message::Goodbye { reason, .. } => goodbye = Some(reason),
            Message::Event {
                subscription,
                args,
                kwargs,
                ..
            } => {
                let topic = monitor.subs[&subscription];
                monitor.log.push(Meta {
                    topic,
                    args: args.unwrap_or_default(),
                    kwargs: kwargs.unwrap_or_default(),
                });
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    let _ = monitor.s.answer_goodbye().await;
    router.stopped(WAIT + WAIT).await;
    let topics: Vec<_> = monitor.of(id).iter().map(|m| m.topic).collect();
    assert_eq!(
        goodbye.as_deref(),
        Some("wamp.close.system_shutdown"),
        "monitor got GOODBYE"
    );
    assert_eq!(
        topics.last().copied(),
        Some(ON_LEAVE),
        "the monitor saw the client's final snapshot and on_leave at shutdown: {topics:?}"
    );
    let stats = monitor.stats_of(id);
    assert!(stats.last().unwrap().last);
    assert_chain(&stats, id, Serializer::MsgPack, true, "shutdown");
    assert_totals(&stats, c.traffic(), 16, "shutdown");
}

/// §3 (feedback guard): a monitor subscribed to `on_stats` under trigger_after_rated_messages
/// 1 does not trigger itself without end: the flow of events stops when the traffic stops,
/// and other sessions keep working meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn feedback_guard_bounds_a_self_monitoring_monitor() {
    let router = Router::start(Some(json!({
        "rated_message_size": 1,
        "trigger_after_rated_messages": 1
    })))
    .await;
    let mut monitor = Monitor::start(&router, Via::RawTcp, Serializer::Json, &[ON_STATS]).await;
    let (mut helper, _) = client(&router, Via::WebSocket, Serializer::Cbor).await;
    let (mut c, id) = client(&router, Via::WebSocket, Serializer::MsgPack).await;
    let started = Instant::now();
    workload(&mut c, &mut helper).await;
    c.leave().await.unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "other sessions keep working"
    );
    monitor.until_left_stats(id).await;
    // Every message of the measured session is its own cycle.
    let stats = monitor.stats_of(id);
    assert_totals(&stats, c.traffic(), 1, "guard");
    assert!(stats.iter().all(|s| s.messages <= 1 || s.cycle == 1));
    // Once the traffic stops, so do the events: the monitor's own on_stats events do not
    // trigger snapshots of the monitor.
    let settled = monitor.drain_for(Duration::from_millis(500)).await;
    assert!(
        settled < 50,
        "bounded: {settled} events after the traffic stopped"
    );
    let quiet = monitor.drain_for(Duration::from_millis(500)).await;
    assert_eq!(quiet, 0, "no events without traffic");
    // The monitor's own cycles: each holds at most one checked message plus guarded events.
    let own = monitor.stats_of(monitor.id);
    assert!(
        own.len() < 200,
        "the monitor's own cycles are bounded: {}",
        own.len()
    );
    // And the router still serves.
    helper
        .call("com.none", None, None, Dict::new())
        .await
        .unwrap_err();
}

/// Crossbar defect 9: every live subscriber gets every `on_stats` event even when another
/// subscriber's connection drops while events are being delivered (the dropping session is
/// itself subscribed to `on_stats`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_live_subscriber_gets_every_event() {
    let router = Router::start(Some(json!({
        "rated_message_size": 16,
        "trigger_after_rated_messages": 5
    })))
    .await;
    let mut m1 = Monitor::session_monitor(&router).await;
    let mut m2 = Monitor::start(&router, Via::RawUnix, Serializer::Cbor, &SESSION_TOPICS).await;
    let mut dropper = Monitor::start(&router, Via::WebSocket, Serializer::Json, &[ON_STATS]).await;
    let (mut helper, _) = client(&router, Via::RawTcp, Serializer::Json).await;
    let (mut c, id) = client(&router, Via::RawTcp, Serializer::MsgPack).await;
    let dropper_id = dropper.id;
    workload(&mut c, &mut helper).await;
    // The dropper goes away without reading, while events for it are in flight.
    dropper.drain_for(Duration::from_millis(10)).await;
    drop(dropper);
    workload(&mut c, &mut helper).await;
    c.leave().await.unwrap();
    for m in [&mut m1, &mut m2] {
        m.until_left(id).await;
        m.until_left(dropper_id).await;
    }
    let s1 = m1.stats_of(id);
    let s2 = m2.stats_of(id);
    assert_eq!(s1, s2, "both monitors saw the same events");
    assert_chain(&s1, id, Serializer::MsgPack, true, "m1");
    assert_totals(&s1, c.traffic(), 16, "m1");
    let d1 = m1.stats_of(dropper_id);
    let d2 = m2.stats_of(dropper_id);
    assert_eq!(d1, d2, "the dropped subscriber's own events reach both");
    assert_chain(&d1, dropper_id, Serializer::Json, true, "dropper");
}

/// Reads what arrives on `s` within `window` (nothing expected).
async fn trailing(s: &mut Session, window: Duration) -> Vec<Message> {
    let mut got = Vec::new();
    let deadline = Instant::now() + window;
    while let Ok(Ok(Some(m))) = tokio::time::timeout_at(deadline, s.transport_mut().recv()).await {
        got.push(m);
    }
    got
}

/// §1 (its own `on_stats` events count in a session that subscribed to them) and §2 (messages
/// up to and including the GOODBYE reply belong to the session): a measured session subscribed
/// to `on_stats` under a low threshold gets nothing after the router's GOODBYE reply, and its
/// events still add up to exactly what it sent and received.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn self_subscribed_session_gets_nothing_after_goodbye_reply() {
    let router = Router::start(Some(json!({
        "rated_message_size": 16,
        "trigger_after_rated_messages": 1
    })))
    .await;
    let mut monitor = Monitor::session_monitor(&router).await;
    let mut c = Monitor::start(&router, Via::RawTcp, Serializer::Json, &[ON_STATS]).await;
    let id = c.id;
    for n in 0..5 {
        c.s.call("com.none", Some(payload(n)), None, Dict::new())
            .await
            .unwrap_err();
    }
    c.s.leave().await.unwrap();
    let after = trailing(&mut c.s, Duration::from_millis(300)).await;
    monitor.until_left(id).await;
    let stats = monitor.stats_of(id);
    assert_totals(&stats, c.s.traffic(), 16, "self-subscribed");
    assert!(
        after.is_empty(),
        "nothing may follow the GOODBYE reply, got {after:?}"
    );
}

/// §3.4 (kill) and WAMP's closing handshake: a session subscribed to `on_stats` under a low
/// threshold that is killed gets nothing after the router's GOODBYE but the end of the session
/// (its own events are not delivered once the router said GOODBYE), with exact totals.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn self_subscribed_session_gets_nothing_after_router_goodbye() {
    let router = Router::start(Some(json!({
        "rated_message_size": 16,
        "trigger_after_rated_messages": 1
    })))
    .await;
    let mut monitor = Monitor::session_monitor(&router).await;
    let mut c = Monitor::start(&router, Via::WebSocket, Serializer::Cbor, &[ON_STATS]).await;
    let id = c.id;
    c.s.call("com.none", None, None, Dict::new())
        .await
        .unwrap_err();
    monitor.kill(id).await;
    // Read until the GOODBYE, keep what follows it before answering.
    let deadline = Instant::now() + WAIT;
    loop {
        let m = tokio::time::timeout_at(deadline, c.s.recv())
            .await
            .expect("GOODBYE in time")
            .unwrap()
            .expect("open");
        if matches!(m, Message::Goodbye { .. }) {
            break;
        }
    }
    let after = trailing(&mut c.s, Duration::from_millis(300)).await;
    c.s.answer_goodbye().await.unwrap();
    monitor.until_left(id).await;
    let stats = monitor.stats_of(id);
    assert_totals(&stats, c.s.traffic(), 16, "killed self-subscribed");
    assert!(
        after.is_empty(),
        "nothing may follow the router's GOODBYE, got {after:?}"
    );
}

impl Monitor {
    /// Logs events until the final `on_stats` of `session` (for monitors without `on_leave`).
    async fn until_left_stats(&mut self, session: Id) {
        self.until(&format!("final on_stats of {session}"), |log| {
            log.iter()
                .any(|m| m.topic == ON_STATS && m.session() == Some(session) && parse_stats(m).last)
        })
        .await;
    }
}

// =============================================================================================
// The usage ledger (docs/ledger.md)

/// The usage ledger records exactly what is published: after a clean stop, the SQLite ledger
/// holds one row per `on_stats` event of each measured session, with the event's figures, and
/// the rows of a session (and its `turnstile usage --group-by session` line) add up to the
/// client's byte log, for JSON, MessagePack and CBOR; the helper's and the monitor's sessions
/// are in it too, complete, and nothing else.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ledger_rows_equal_events_and_byte_logs() {
    use turnstile::ledger::report::{self, Filter, GroupBy};

    let size = 16;
    let dir = TempDir::new("turnstile-ledger-exact");
    let db = dir.path().join("usage.sqlite");
    let mut config = node(Some(json!({
        "rated_message_size": size,
        "trigger_after_rated_messages": 20
    })));
    config["workers"][0]["ledger"] =
        json!({"type": "sqlite", "path": "usage.sqlite", "flush_interval": 1});
    let mut router = Router::start_in(config, dir).await;
    let mut monitor = Monitor::session_monitor(&router).await;
    let (mut helper, helper_id) = client(&router, Via::RawTcp, Serializer::MsgPack).await;
    let mut measured = Vec::new();
    for ser in Serializer::ALL {
        let (mut c, id) = client(&router, Via::WebSocket, ser).await;
        workload(&mut c, &mut helper).await;
        c.leave().await.unwrap();
        monitor.until_left(id).await;
        measured.push((ser, id, c.traffic().clone(), monitor.stats_of(id)));
    }
    helper.leave().await.unwrap();
    monitor.s.leave().await.unwrap();
    router.begin_shutdown();
    router.stopped(WAIT).await;

    let ledger = turnstile_config::LedgerStore::Sqlite { path: db };
    let rows = report::read(&ledger, &Filter::default()).unwrap();
    let sessions = report::group(&rows, GroupBy::Session);
    for (ser, id, traffic, events) in &measured {
        let ctx = format!("ledger {}", ser.name());
        let mine: Vec<_> = rows.iter().filter(|r| r.session == *id).collect();
        let as_stats: Vec<Stats> = mine
            .iter()
            .map(|r| Stats {
                session: r.session,
                cycle: r.cycle,
                serializer: r.serializer.clone(),
                timestamp: r.started,
                duration: r.duration,
                bytes: r.bytes,
                messages: r.messages,
                rated: r.rated_messages,
                first: r.first,
                last: r.last,
            })
            .collect();
        assert_eq!(&as_stats, events, "{ctx}: one row per event, equal figures");
        assert!(events.len() > 3, "{ctx}: several cycles");
        assert_totals(&as_stats, traffic, size, &ctx);
        let last = mine.last().unwrap();
        assert_eq!(last.ended.as_deref(), Some("goodbye"), "{ctx}");
        assert!(mine[..mine.len() - 1].iter().all(|r| r.ended.is_none()));
        assert_eq!(
            (
                last.realm.as_str(),
                last.authrole.as_str(),
                last.transport.as_str()
            ),
            ("realm1", "anonymous", "websocket"),
            "{ctx}"
        );
        let line = sessions
            .lines
            .iter()
            .find(|l| l["session"] == json!(id))
            .unwrap();
        assert_eq!(
            (
                line["messages"].clone(),
                line["bytes"].clone(),
                line["rated_messages"].clone(),
                line["complete"].clone()
            ),
            (
                json!(traffic.messages()),
                json!(traffic.bytes()),
                json!(traffic.rated_messages(size)),
                json!(true)
            ),
            "{ctx}: the session's report line"
        );
    }
    // Nothing else is in the ledger, and every session is complete.
    let ids: Vec<u64> = sessions
        .lines
        .iter()
        .map(|l| l["session"].as_u64().unwrap())
        .collect();
    assert_eq!(ids.len(), 5, "three measured, helper, monitor: {ids:?}");
    assert!(ids.contains(&helper_id) && ids.contains(&monitor.id));
    for line in &sessions.lines {
        assert_eq!(line["complete"], json!(true), "{line:?}");
        assert_eq!(line["ended_by"], json!("goodbye"), "{line:?}");
    }
}
