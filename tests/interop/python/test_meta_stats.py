"""Session meta events and session statistics (docs/session-statistics.md, docs/meta-api.md),
observed the way existing Crossbar monitoring clients observe them: an autobahn session that
subscribes to wamp.session.on_join (session_details), wamp.session.on_stats (session_details,
stats) and wamp.session.on_leave (session_id)."""

from __future__ import annotations

import asyncio
import math
import time

import pytest
from autobahn.wamp.types import PublishOptions

from interop import (
    RawSocketConn,
    RawWebSocketConn,
    Router,
    eventually,
    hello,
    realm,
    start_or_fail,
    within,
)

RATED_SIZE = 512
THRESHOLD = 5  # trigger_after_rated_messages in realm1

SESSION_INFO_KEYS = {"realm", "session", "authid", "authrole"}
STATS_KEYS = {"cycle", "serializer", "timestamp", "duration", "bytes", "messages",
              "rated_messages", "first", "last"}
SESSION_DETAILS_KEYS = {"realm", "session", "authid", "authrole", "authmethod", "authprovider",
                        "authextra", "serializer", "transport", "resumed", "resumable",
                        "resume_token"}


@pytest.fixture(scope="module")
def router(tmp_path_factory):
    """realm1: metering with a rated-messages trigger; realm2: no `stats` (no metering);
    realm3: trigger after every rated message (feedback guard); realm4: 1 s duration trigger."""
    r = Router(tmp_path_factory.mktemp("stats-router"), realms=[
        realm("realm1", stats={"rated_message_size": RATED_SIZE,
                               "trigger_after_rated_messages": THRESHOLD,
                               "trigger_after_duration": 0,
                               "trigger_on_join": True, "trigger_on_leave": True}),
        realm("realm2"),
        realm("realm3", stats={"rated_message_size": RATED_SIZE,
                               "trigger_after_rated_messages": 1}),
        realm("realm4", stats={"trigger_after_duration": 1}),
    ])
    yield start_or_fail(r)
    r.stop()


class Monitor:
    """Records session meta events in arrival order, with the handler signatures that existing
    Crossbar monitors use."""

    def __init__(self, session):
        self.session = session
        self.events: list[tuple] = []

    @classmethod
    async def start(cls, clients, router, realm_name="realm1", transport="ws", serializer="json"):
        s = await clients.connect(router, transport, serializer, realm_name)
        m = cls(s)

        def on_join(session_details):
            m.events.append(("join", session_details))

        def on_stats(session_details, stats):
            m.events.append(("stats", session_details, stats))

        def on_leave(session_id):
            m.events.append(("leave", session_id))

        await within(s.subscribe(on_join, "wamp.session.on_join"))
        await within(s.subscribe(on_stats, "wamp.session.on_stats"))
        await within(s.subscribe(on_leave, "wamp.session.on_leave"))
        return m

    def history(self, sid: int) -> list[tuple]:
        out = []
        for e in self.events:
            if e[0] == "leave":
                if e[1] == sid:
                    out.append(e)
            elif isinstance(e[1], dict) and e[1].get("session") == sid:
                out.append(e)
        return out

    def left(self, sid: int) -> bool:
        return any(e[0] == "leave" and e[1] == sid for e in self.events)

    async def wait_left(self, sid: int):
        await eventually(lambda: self.left(sid), what=f"wamp.session.on_leave for {sid}")
        await asyncio.sleep(0.2)  # anything (wrongly) published after on_leave arrives too


def check_history(h, *, sid, realm_name, authid, serializer, t0_ns, t1_ns):
    """The common rules for one session's meta history; returns the list of stats dicts."""
    kinds = [e[0] for e in h]
    assert kinds[0] == "join", f"first meta event is not on_join: {kinds}"
    assert kinds[-1] == "leave", f"last meta event is not on_leave: {kinds}"
    assert kinds.count("join") == 1 and kinds.count("leave") == 1, kinds
    assert set(kinds[1:-1]) == {"stats"}, f"expected only on_stats between join and leave: {kinds}"

    details = h[0][1]
    assert SESSION_DETAILS_KEYS <= set(details), \
        f"on_join details lack {SESSION_DETAILS_KEYS - set(details)}"
    assert details["session"] == sid and details["realm"] == realm_name
    assert details["authid"] == authid and details["authrole"] == "anonymous"
    assert details["serializer"] == serializer

    stats = []
    for _, info, st in h[1:-1]:
        assert set(info) == SESSION_INFO_KEYS, f"session_info keys {sorted(info)}"
        assert info == {"realm": realm_name, "session": sid, "authid": authid,
                        "authrole": "anonymous"}
        assert set(st) == STATS_KEYS, f"stats keys {sorted(st)}"
        for k in ("cycle", "timestamp", "duration", "bytes", "messages", "rated_messages"):
            assert type(st[k]) is int, f"stats.{k} is {type(st[k]).__name__}: {st}"
            assert st[k] >= 0, st
        for k in ("first", "last"):
            assert type(st[k]) is bool, f"stats.{k} is {type(st[k]).__name__}: {st}"
        assert st["serializer"] == serializer
        stats.append(st)

    assert [s["cycle"] for s in stats] == list(range(1, len(stats) + 1)), \
        f"cycles {[s['cycle'] for s in stats]}"
    assert [s["first"] for s in stats] == [True] + [False] * (len(stats) - 1)
    assert [s["last"] for s in stats] == [False] * (len(stats) - 1) + [True]
    for a, b in zip(stats, stats[1:]):
        assert b["timestamp"] == a["timestamp"] + a["duration"], \
            f"cycle {b['cycle']} starts at {b['timestamp']}, cycle {a['cycle']} ended at " \
            f"{a['timestamp'] + a['duration']}"
    # cycle 1 starts at HELLO (not at listener start), in ns since the epoch
    assert t0_ns - 1_000_000_000 <= stats[0]["timestamp"] <= t1_ns + 1_000_000_000, \
        f"cycle 1 timestamp {stats[0]['timestamp']} not between {t0_ns} and {t1_ns}"
    end = stats[-1]["timestamp"] + stats[-1]["duration"]
    assert end <= time.time_ns() + 1_000_000_000
    return stats


@pytest.mark.parametrize("transport,serializer", [
    ("ws", "json"), ("ws", "msgpack"), ("ws", "cbor"),
    ("rs", "json"), ("rs", "msgpack"), ("unix", "cbor"),
])
async def test_monitor_sees_complete_history(router, clients, transport, serializer):
    """A monitor sees another client's complete, ordered history: on_join (session details),
    on_stats cycle 1 (first=True, exactly HELLO + WELCOME), the rated-message cycles, the final
    on_stats (last=True), then on_leave (the session id); exact key sets and types; cycles 1..n
    without gaps; timestamp[k+1] == timestamp[k] + duration[k]; the message counts add up to
    exactly the messages exchanged."""
    mon = await Monitor.start(clients, router)
    t0 = time.time_ns()
    subject = await clients.connect(router, transport, serializer)
    t1 = time.time_ns()
    d = subject.joined.result()
    n_pub = 8
    for i in range(n_pub):
        await within(subject.publish("com.test.stats.topic", i, "payload",
                                     options=PublishOptions(acknowledge=True)))
    await within(subject.leave())
    await mon.wait_left(d.session)

    h = mon.history(d.session)
    stats = check_history(h, sid=d.session, realm_name="realm1", authid=d.authid,
                          serializer=serializer, t0_ns=t0, t1_ns=t1)
    assert h[0][1]["authmethod"] == "anonymous" and h[0][1]["authprovider"] == "static"
    tr = h[0][1]["transport"]
    assert tr["channel_framing"] == ("websocket" if transport == "ws" else "rawsocket")
    assert tr["channel_type"] == ("unix" if transport == "unix" else "tcp")
    assert tr["channel_serializer"] == serializer
    assert tr["websocket_protocol"] == f"wamp.2.{serializer}"

    # join snapshot: HELLO + WELCOME
    assert stats[0]["messages"] == 2, stats[0]
    # HELLO, WELCOME, n x (PUBLISH, PUBLISHED), GOODBYE, GOODBYE
    assert sum(s["messages"] for s in stats) == 4 + 2 * n_pub, stats
    assert len(stats) >= 3, f"expected rated-message cycles between join and leave: {stats}"
    for s in stats:
        assert s["rated_messages"] >= s["messages"], s
        assert s["bytes"] >= s["messages"], s
    # every cycle closed by the rated trigger holds exactly THRESHOLD small messages
    for s in stats[1:-1]:
        assert s["rated_messages"] == THRESHOLD and s["messages"] == THRESHOLD, s
    assert 0 < stats[-1]["rated_messages"] <= THRESHOLD + 1, stats[-1]


@pytest.mark.parametrize("transport,serializer", [
    ("ws", "json"), ("ws", "msgpack"), ("ws", "cbor"),
    ("rs", "json"), ("rs", "msgpack"), ("rs", "cbor"), ("unix", "json"),
])
async def test_metering_is_exact(router, clients, raw, transport, serializer):
    """Metering is exact: with a raw client that knows every payload it sent and received, each
    cycle's bytes, messages and rated_messages (ceil(bytes / rated_message_size) per message)
    equal what passed, cycle 1 holds exactly HELLO + WELCOME, and every rated-trigger cycle
    closes on the first message that brings it to the threshold."""
    mon = await Monitor.start(clients, router)
    if transport == "ws":
        c = raw.track(await RawWebSocketConn.open(router.ws_url(), serializer))
    elif transport == "rs":
        c = raw.track(await RawSocketConn.open(port=router.rs_port, serializer=serializer))
    else:
        c = raw.track(await RawSocketConn.open(path=router.unix_path, serializer=serializer))

    t0 = time.time_ns()
    wire: list[int] = []  # payload sizes in the order the router counts them

    async def send(msg):
        await c.send_msg(msg)
        wire.append(len(c.sent[-1]))

    async def recv():
        m = await c.recv_msg()
        wire.append(len(c.received[-1]))
        return m

    await send(hello("realm1"))
    welcome = await recv()
    t1 = time.time_ns()
    assert welcome[0] == 2, welcome
    sid, authid = welcome[1], welcome[2]["authid"]
    for i in range(7):
        # one large publication too: 1300 bytes => 3 rated messages
        body = "x" * (1300 if i == 3 else 10)
        await send([16, 100 + i, {"acknowledge": True}, "com.test.exact", [i, body]])
        published = await recv()
        assert published[0] == 17 and published[1] == 100 + i, published
    await send([6, {}, "wamp.close.normal"])
    goodbye = await recv()
    assert goodbye[0] == 6 and goodbye[2] == "wamp.close.goodbye_and_out", goodbye
    await mon.wait_left(sid)

    stats = check_history(mon.history(sid), sid=sid, realm_name="realm1", authid=authid,
                          serializer=serializer, t0_ns=t0, t1_ns=t1)

    # expected cycles: [HELLO, WELCOME] (join), then close a cycle as soon as its rated total
    # reaches THRESHOLD, then the rest (final, on leave)
    def rated(n):
        return math.ceil(n / RATED_SIZE)

    expected = [wire[:2]]
    cur: list[int] = []
    for size in wire[2:]:
        cur.append(size)
        if sum(rated(x) for x in cur) >= THRESHOLD:
            expected.append(cur)
            cur = []
    expected.append(cur)
    got = [(s["messages"], s["bytes"], s["rated_messages"]) for s in stats]
    want = [(len(cy), sum(cy), sum(rated(x) for x in cy)) for cy in expected]
    assert got == want, f"(messages, bytes, rated) per cycle: got {got}, want {want}"


async def test_rejoin_on_same_connection_is_a_new_session(router, clients, raw):
    """A connection that leaves (GOODBYE) and sends HELLO again starts a new session with its
    own cycles: the old session's final on_stats holds everything up to and including the
    GOODBYE reply, the new one starts at cycle 1 (first=True) with exactly HELLO + WELCOME."""
    mon = await Monitor.start(clients, router)
    c = raw.track(await RawSocketConn.open(port=router.rs_port, serializer="msgpack"))
    welcome1 = await c.join()
    sid1 = welcome1[1]
    await c.send_msg([6, {}, "wamp.close.normal"])
    goodbye = await c.recv_msg()
    assert goodbye[0] == 6, goodbye
    await mon.wait_left(sid1)
    welcome2 = await c.join()
    sid2 = welcome2[1]
    assert sid2 != sid1
    await eventually(lambda: any(e[0] == "stats" for e in mon.history(sid2)),
                     what="the new session's join snapshot")
    await c.send_msg([6, {}, "wamp.close.normal"])
    assert (await c.recv_msg())[0] == 6
    await mon.wait_left(sid2)

    old = check_history(mon.history(sid1), sid=sid1, realm_name="realm1",
                        authid=welcome1[2]["authid"], serializer="msgpack", t0_ns=0,
                        t1_ns=time.time_ns())
    new = check_history(mon.history(sid2), sid=sid2, realm_name="realm1",
                        authid=welcome2[2]["authid"], serializer="msgpack", t0_ns=0,
                        t1_ns=time.time_ns())
    assert [s["messages"] for s in old] == [2, 2], old  # HELLO+WELCOME | GOODBYE+GOODBYE
    assert [s["messages"] for s in new] == [2, 2], new
    sizes = [len(b) for b in c.sent[:2]] + [len(b) for b in c.received[:2]]
    assert old[0]["bytes"] == len(c.sent[0]) + len(c.received[0])
    assert old[1]["bytes"] == len(c.sent[1]) + len(c.received[1]), sizes
    assert new[0]["bytes"] == len(c.sent[2]) + len(c.received[2])
    assert new[0]["timestamp"] >= old[-1]["timestamp"] + old[-1]["duration"]


async def test_realm_without_stats_has_no_on_stats(router, clients):
    """A realm without a `stats` section meters nothing: on_join and on_leave are published,
    on_stats never."""
    mon = await Monitor.start(clients, router, "realm2")
    subject = await clients.connect(router, "rs", "msgpack", "realm2")
    sid = subject.joined.result().session
    await within(subject.publish("com.test.x", 1, options=PublishOptions(acknowledge=True)))
    await within(subject.leave())
    await mon.wait_left(sid)
    assert [e[0] for e in mon.history(sid)] == ["join", "leave"]
    assert not [e for e in mon.events if e[0] == "stats"], "on_stats in a realm without stats"


async def test_on_leave_when_connection_drops(router, clients):
    """A session whose connection drops without GOODBYE still gets its final on_stats
    (last=True) before on_leave."""
    mon = await Monitor.start(clients, router)
    subject = await clients.connect(router, "ws", "cbor")
    d = subject.joined.result()
    await within(subject.publish("com.test.drop", 1, options=PublishOptions(acknowledge=True)))
    subject.drop()
    await mon.wait_left(d.session)
    h = mon.history(d.session)
    stats = check_history(h, sid=d.session, realm_name="realm1", authid=d.authid,
                          serializer="cbor", t0_ns=0, t1_ns=time.time_ns())
    assert sum(s["messages"] for s in stats) == 4  # HELLO, WELCOME, PUBLISH, PUBLISHED


async def test_feedback_guard(router, clients):
    """With trigger_after_rated_messages 1, a monitor subscribed to on_stats does not trigger
    itself: on_stats EVENTs delivered to it never close its cycle by themselves, so the event
    stream stops once the traffic stops (Crossbar floods here)."""
    mon = await Monitor.start(clients, router, "realm3")
    subject = await clients.connect(router, "rs", "json", "realm3")
    sid = subject.joined.result().session
    for i in range(3):
        await within(subject.publish("com.test.guard", i, options=PublishOptions(acknowledge=True)))
    await within(subject.leave())
    await mon.wait_left(sid)
    await asyncio.sleep(0.5)
    n1 = len(mon.events)
    await asyncio.sleep(0.5)
    n2 = len(mon.events)
    assert n1 == n2, f"meta events keep coming without traffic ({n1} -> {n2})"
    assert n2 < 200, f"{n2} meta events for a handful of messages"
    # the subject's own history is complete and ordered
    check_history(mon.history(sid), sid=sid, realm_name="realm3",
                  authid=subject.joined.result().authid, serializer="json",
                  t0_ns=0, t1_ns=time.time_ns())
    assert mon.session.is_attached()


async def test_duration_trigger_reports_idle_sessions(router, clients):
    """trigger_after_duration is in seconds and runs on a timer: an idle session reports a
    zero-traffic cycle about every second (a heartbeat), not only when a message passes."""
    mon = await Monitor.start(clients, router, "realm4")
    subject = await clients.connect(router, "unix", "msgpack", "realm4")
    sid = subject.joined.result().session
    await asyncio.sleep(2.6)

    stats = [e[2] for e in mon.history(sid) if e[0] == "stats"]
    assert len(stats) >= 3, f"expected the join cycle and >= 2 idle cycles, got {stats}"
    assert stats[0]["first"] and stats[0]["messages"] == 2
    for s in stats[1:3]:
        assert s["messages"] == 0 and s["bytes"] == 0 and s["rated_messages"] == 0, s
        assert 0.7e9 <= s["duration"] <= 1.5e9, f"duration {s['duration']} ns, expected ~1 s"
        assert not s["last"]
    await within(subject.leave())
    await mon.wait_left(sid)
    check_history(mon.history(sid), sid=sid, realm_name="realm4",
                  authid=subject.joined.result().authid, serializer="msgpack",
                  t0_ns=0, t1_ns=time.time_ns())

