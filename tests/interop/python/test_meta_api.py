"""The WAMP meta API (docs/meta-api.md) with Autobahn|Python 26.10.2 (asyncio): every
session, subscription and registration procedure and event with its errors, the testament
procedures, subscription and registration revocation, visibility of `wamp.` URIs, authorization
of meta calls, a realm with `enable_meta_api: false`, and the features announced in WELCOME.

Session statistics (`wamp.session.on_stats`) and the monitor's view of on_join/on_leave are in
test_meta_stats.py. Tests that count or kill sessions get a router of their own.
"""

from __future__ import annotations

import asyncio
import re

import pytest
from autobahn.wamp.message import Unregistered
from autobahn.wamp.types import PublishOptions, RegisterOptions, SubscribeOptions

from advanced import (
    BARE_ROLES,
    EVENT,
    UNSUBSCRIBED,
    RecordingClient,
    adv_realms,
    adv_ws_paths,
    authid,
    error_of,
    module_router,
    raw_session,
    session_id,
    settle,
)
from interop import AUTHID_RE, eventually, within

ACK = PublishOptions(acknowledge=True)
ISO_MS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
SESSION_DETAILS_KEYS = {"realm", "session", "authid", "authrole", "authmethod", "authprovider",
                        "authextra", "serializer", "transport", "resumed", "resumable",
                        "resume_token"}
SERVICE = ("turnstile-service", "trusted")


@pytest.fixture(scope="module")
def router(tmp_path_factory):
    yield from module_router(tmp_path_factory, "adv-meta")


@pytest.fixture
def own_router(start_router):
    """A router of its own (the advanced configuration), for tests that count or kill sessions."""
    return start_router(realms=adv_realms(), ws_paths=adv_ws_paths())


class Watcher:
    """Subscribes to meta topics and records (topic, args, details) in arrival order."""

    def __init__(self, session):
        self.session = session
        self.events: list[tuple] = []

    @classmethod
    async def start(cls, session, *topics):
        w = cls(session)
        for t in topics:
            await within(session.subscribe(
                lambda *a, details=None, t=t: w.events.append((t, list(a), details)), t,
                options=SubscribeOptions(details=True)))
        return w

    def of(self, topic, pred=lambda args: True) -> list:
        return [a for t, a, _ in self.events if t == topic and pred(a)]

    def about(self, session_ids) -> list:
        """(topic-suffix, args) of the events whose first argument is one of `session_ids`."""
        return [(t.rsplit(".", 1)[1], a) for t, a, _ in self.events
                if a and a[0] in session_ids]


# ----------------------------------------------------------------------------------------------
# WELCOME features
# ----------------------------------------------------------------------------------------------

BROKER_FEATURES = {
    "publisher_exclusion", "publisher_identification", "subscriber_blackwhite_listing",
    "pattern_based_subscription", "event_retention", "subscription_revocation",
    "payload_passthru_mode", "session_meta_api", "subscription_meta_api", "event_history",
}
DEALER_FEATURES = {
    "caller_identification", "pattern_based_registration", "shared_registration",
    "progressive_call_results", "progressive_call_invocations", "call_timeout",
    "call_canceling", "registration_revocation", "payload_passthru_mode", "session_meta_api",
    "registration_meta_api", "testament_meta_api",
}
META_FEATURES = {"session_meta_api", "subscription_meta_api", "event_history",
                 "registration_meta_api", "testament_meta_api"}


async def test_welcome_announces_exactly_the_tested_features(router, raw):
    """WELCOME.Details.roles announces `broker` and `dealer` with exactly the features that work
    (each one has a test in this suite, see the README's feature table), all `true`; with
    `enable_meta_api: false` the meta API features (and event history, read through it) are
    not announced."""
    r = await raw_session(raw, router, "ws", "json")
    roles = r.details["roles"]
    assert set(roles) == {"broker", "dealer"}, roles
    assert roles["broker"]["features"] == dict.fromkeys(BROKER_FEATURES, True)
    assert roles["dealer"]["features"] == dict.fromkeys(DEALER_FEATURES, True)
    n = await raw_session(raw, router, "rs", "cbor", realm="nometa")
    roles = n.details["roles"]
    assert roles["broker"]["features"] == dict.fromkeys(BROKER_FEATURES - META_FEATURES, True)
    assert roles["dealer"]["features"] == dict.fromkeys(DEALER_FEATURES - META_FEATURES, True)


# ----------------------------------------------------------------------------------------------
# Session procedures
# ----------------------------------------------------------------------------------------------


async def test_session_count_and_list(own_router, clients, raw):
    """wamp.session.count / wamp.session.list count and list the joined sessions (the caller
    included, the router's service session never), optionally only those whose authrole is in
    `filter_authroles`; a filter that is not a list of strings gets wamp.error.invalid_argument;
    a session that left is no longer counted."""
    r = own_router
    caller = await clients.connect(r, "ws", "json")
    others = [await clients.connect(r, "rs", "msgpack"),
              await clients.connect(r, "ws", "cbor", path="bob"),
              await clients.connect(r, "ws", "json", path="carol")]
    rawone = await raw_session(raw, r, "unix", "cbor")
    ids = {session_id(s) for s in [caller, *others]} | {rawone.id}
    assert await within(caller.call("wamp.session.count")) == 5
    assert set(await within(caller.call("wamp.session.list"))) == ids
    assert await within(caller.call("wamp.session.count", ["other"])) == 2
    assert set(await within(caller.call("wamp.session.list", ["other"]))) == \
        {session_id(others[1]), session_id(others[2])}
    assert await within(caller.call("wamp.session.count", ["other", "anonymous"])) == 5
    assert await within(caller.call("wamp.session.count", ["nobody"])) == 0
    assert await within(caller.call("wamp.session.list", ["nobody"])) == []
    for bad in ("other", [1, 2], {"a": 1}):
        e = await error_of(caller.call("wamp.session.count", bad))
        assert e.error == "wamp.error.invalid_argument", bad
        e = await error_of(caller.call("wamp.session.list", bad))
        assert e.error == "wamp.error.invalid_argument", bad
    await rawone.leave()
    await within(others[0].leave())
    await within(others[0].disconnected)
    assert await within(caller.call("wamp.session.count")) == 3
    assert set(await within(caller.call("wamp.session.list"))) == \
        ids - {rawone.id, session_id(others[0])}


async def test_session_get(router, clients, raw):
    """wamp.session.get returns a session's details (realm, session, authid, authrole,
    authmethod, authprovider, authextra, serializer as a string, transport with Crossbar's keys,
    resumed/resumable/resume_token), for the caller itself and for others on every transport;
    an unknown or departed session gets wamp.error.no_such_session ("no session with ID N
    exists on this router"), a non-integer id wamp.error.invalid_argument."""
    caller = await clients.connect(router, "ws", "json")
    bob = await clients.connect(router, "ws", "msgpack", path="bob")
    rs = await clients.connect(router, "rs", "cbor")
    unix = await raw_session(raw, router, "unix", "json")
    d = await within(caller.call("wamp.session.get", session_id(caller)))
    assert set(d) == SESSION_DETAILS_KEYS, set(d) ^ SESSION_DETAILS_KEYS
    assert (d["realm"], d["session"], d["authrole"], d["authmethod"], d["authprovider"],
            d["serializer"]) == ("realm1", session_id(caller), "anonymous", "anonymous",
                                 "static", "json")
    assert AUTHID_RE.match(d["authid"]) and d["authid"] == authid(caller)
    assert (d["resumed"], d["resumable"], d["resume_token"]) == (False, False, None)
    t = d["transport"]
    assert (t["channel_type"], t["channel_framing"], t["channel_serializer"],
            t["websocket_protocol"], t["is_secure"]) == ("tcp", "websocket", "json",
                                                         "wamp.2.json", False), t
    assert re.match(r"^tcp4:127\.0\.0\.1:\d+$", t["peer"]), t
    assert isinstance(t.get("http_headers_received"), dict), t
    d = await within(caller.call("wamp.session.get", session_id(bob)))
    assert (d["authid"], d["authrole"], d["serializer"]) == ("bob", "other", "msgpack")
    d = await within(caller.call("wamp.session.get", session_id(rs)))
    assert (d["serializer"], d["transport"]["channel_framing"],
            d["transport"]["websocket_protocol"]) == ("cbor", "rawsocket", "wamp.2.cbor")
    d = await within(caller.call("wamp.session.get", unix.id))
    assert (d["transport"]["channel_type"], d["transport"]["peer"]) == ("unix", "unix")
    e = await error_of(caller.call("wamp.session.get", 123456789))
    assert e.error == "wamp.error.no_such_session"
    assert e.args == ("no session with ID 123456789 exists on this router",)
    e = await error_of(caller.call("wamp.session.get", "abc"))
    assert e.error == "wamp.error.invalid_argument" and "session_id" in e.args[0]
    await unix.leave()

    async def gone():
        while True:
            try:
                await caller.call("wamp.session.get", unix.id)
            except Exception as ex:  # noqa: BLE001
                return ex
            await asyncio.sleep(0.01)

    e = await within(gone())
    assert e.error == "wamp.error.no_such_session"


async def test_session_kill(router, clients):
    """wamp.session.kill(session_id, reason=, message=) sends the session GOODBYE with that
    reason and message (default reason wamp.close.killed), returns null, and publishes its
    on_leave; it never kills the caller itself (wamp.error.no_such_session), an unknown id gets
    wamp.error.no_such_session, a reason that is not a URI wamp.error.invalid_argument."""
    admin = await clients.connect(router, "ws", "json")
    watcher = await Watcher.start(await clients.connect(router, "rs", "msgpack"),
                                  "wamp.session.on_leave")
    victim = await clients.connect(router, "unix", "cbor")
    victim2 = await clients.connect(router, "ws", "msgpack")
    assert await within(admin.call("wamp.session.kill", session_id(victim),
                                   reason="com.adv.kicked", message="go away")) is None
    left = await within(victim.left, what="GOODBYE at the killed session")
    assert (left.reason, left.message) == ("com.adv.kicked", "go away")
    await within(admin.call("wamp.session.kill", session_id(victim2)))
    assert (await within(victim2.left)).reason == "wamp.close.killed"
    await eventually(lambda: watcher.of("wamp.session.on_leave",
                                        lambda a: a == [session_id(victim2)]),
                     what="on_leave of the killed session")
    assert watcher.of("wamp.session.on_leave", lambda a: a == [session_id(victim)])
    e = await error_of(admin.call("wamp.session.kill", session_id(admin)))
    assert e.error == "wamp.error.no_such_session"
    assert admin.is_attached()
    e = await error_of(admin.call("wamp.session.kill", 987654321))
    assert e.error == "wamp.error.no_such_session"
    e = await error_of(admin.call("wamp.session.kill", session_id(watcher.session),
                                  reason="not a uri"))
    assert e.error == "wamp.error.invalid_argument"
    assert watcher.session.is_attached()


async def test_session_kill_by_authid_and_authrole(router, clients):
    """wamp.session.kill_by_authid / kill_by_authrole kill every joined session with that
    authid / authrole except the caller, each getting GOODBYE with the given reason, and return
    the list of killed session ids (empty when none matched)."""
    admin = await clients.connect(router, "ws", "json", path="alice")
    alices = [await clients.connect(router, "ws", t, path="alice") for t in ("msgpack", "cbor")]
    others = [await clients.connect(router, "ws", "json", path=p) for p in ("bob", "carol")]
    bystander = await clients.connect(router, "rs", "json")
    killed = await within(admin.call("wamp.session.kill_by_authid", "alice",
                                     reason="com.adv.by_authid", message="all alices"))
    assert sorted(killed) == sorted(session_id(s) for s in alices)
    for s in alices:
        d = await within(s.left)
        assert (d.reason, d.message) == ("com.adv.by_authid", "all alices")
    killed = await within(admin.call("wamp.session.kill_by_authrole", "other"))
    assert sorted(killed) == sorted(session_id(s) for s in others)
    for s in others:
        assert (await within(s.left)).reason == "wamp.close.killed"
    assert await within(admin.call("wamp.session.kill_by_authid", "nobody")) == []
    assert await within(admin.call("wamp.session.kill_by_authrole", "nobody")) == []
    assert admin.is_attached() and bystander.is_attached()
    e = await error_of(admin.call("wamp.session.kill_by_authid", 5))
    assert e.error == "wamp.error.invalid_argument"


async def test_session_kill_all(own_router, clients, raw):
    """wamp.session.kill_all(reason=, message=) kills every other joined session (GOODBYE with
    the reason; raw sessions too) and returns how many; the caller stays."""
    r = own_router
    admin = await clients.connect(r, "ws", "cbor")
    victims = [await clients.connect(r, t, s)
               for t, s in (("ws", "json"), ("rs", "msgpack"), ("unix", "cbor"))]
    rawone = await raw_session(raw, r, "ws", "msgpack")
    n = await within(admin.call("wamp.session.kill_all", reason="com.adv.all", message="bye"))
    assert n == 4
    for v in victims:
        assert (await within(v.left)).reason == "com.adv.all"
    bye = await rawone.expect(6)
    assert bye[2] == "com.adv.all" and bye[1].get("message") == "bye", bye
    await eventually(lambda: all(v.disconnected.done() for v in victims), what="disconnects")
    assert await within(admin.call("wamp.session.count")) == 1
    assert admin.is_attached()


async def test_session_meta_events(router, clients):
    """wamp.session.on_join carries the new session's details (as wamp.session.get), on_leave
    its session id (one argument); meta events disclose the router's service session as their
    publisher (authid turnstile-service, authrole trusted), also to the subject session."""
    watcher = await Watcher.start(await clients.connect(router, "ws", "json"),
                                  "wamp.session.on_join", "wamp.session.on_leave")
    s = await clients.connect(router, "unix", "cbor")
    sid = session_id(s)
    await eventually(lambda: watcher.of("wamp.session.on_join", lambda a: a[0]["session"] == sid),
                     what="on_join")
    details = watcher.of("wamp.session.on_join", lambda a: a[0]["session"] == sid)[0][0]
    assert set(details) == SESSION_DETAILS_KEYS
    assert details == await within(s.call("wamp.session.get", sid))
    await within(s.leave())
    await eventually(lambda: watcher.of("wamp.session.on_leave", lambda a: a == [sid]),
                     what="on_leave")
    for t, _, d in watcher.events:
        assert (d.publisher_authid, d.publisher_authrole) == SERVICE, (t, d)
        assert isinstance(d.publisher, int)


# ----------------------------------------------------------------------------------------------
# Testaments
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("how", ["goodbye", "disconnect", "killed"])
async def test_testament_published_when_session_ends(router, clients, how):
    """wamp.session.add_testament(topic, args, kwargs, publish_options=) returns an id; when the
    session ends (GOODBYE, lost connection, or killed) the testament is published as the
    session would have published it (publish_options apply: `disclose_me` discloses the
    departed session, an `exclude_authid` list is honoured)."""
    topic = f"com.adv.testament.{how}"
    sub = await clients.connect(router, "ws", "msgpack")
    bob = await clients.connect(router, "ws", "cbor", path="bob")
    got, bob_got = [], []
    await within(sub.subscribe(lambda *a, details=None, **kw: got.append((a, kw, details)),
                               topic, options=SubscribeOptions(details=True)))
    await within(bob.subscribe(lambda *a, **kw: bob_got.append(a), topic))
    dying = await clients.connect(router, "rs", "json")
    tid = await within(dying.call("wamp.session.add_testament", topic, ["gone", how],
                                  {"why": how},
                                  publish_options={"disclose_me": True,
                                                   "exclude_authid": ["bob"]}))
    assert isinstance(tid, int)
    assert got == []
    if how == "goodbye":
        await within(dying.leave())
    elif how == "disconnect":
        dying.drop()
    else:
        await within(sub.call("wamp.session.kill", session_id(dying)))
    await eventually(lambda: got, what="the testament")
    (args, kwargs, details), = got
    assert (args, kwargs) == (("gone", how), {"why": how})
    assert details.publisher == session_id(dying)
    await within(sub.publish(topic, "barrier", options=PublishOptions(acknowledge=True,
                                                                      exclude_me=False)))
    await eventually(lambda: ("barrier",) in bob_got, what="barrier at bob")
    assert bob_got == [("barrier",)], "exclude_authid of the testament ignored"


async def test_flush_testaments(router, clients):
    """wamp.session.flush_testaments(scope=) removes the caller's testaments of that scope
    (default `destroyed`) and returns how many; only the remaining ones are published when the
    session ends."""
    topic = "com.adv.testament.flush"
    sub = await clients.connect(router, "ws", "json")
    got = []
    await within(sub.subscribe(lambda x: got.append(x), topic))
    s = await clients.connect(router, "unix", "msgpack")
    for name in ("d1", "d2"):
        await within(s.call("wamp.session.add_testament", topic, [name], {}))
    await within(s.call("wamp.session.add_testament", topic, ["x1"], {}, scope="detached"))
    assert await within(s.call("wamp.session.flush_testaments")) == 2
    assert await within(s.call("wamp.session.flush_testaments")) == 0
    await within(s.call("wamp.session.add_testament", topic, ["d3"], {}, scope="destroyed"))
    await within(s.call("wamp.session.add_testament", topic, ["x2"], {}, scope="detached"))
    assert await within(s.call("wamp.session.flush_testaments", scope="detached")) == 2
    await within(s.leave())
    await eventually(lambda: got, what="the remaining testament")
    await within(sub.publish(topic, "barrier", options=PublishOptions(acknowledge=True,
                                                                      exclude_me=False)))
    await eventually(lambda: "barrier" in got)
    assert got == ["d3", "barrier"]


async def test_testament_order(router, clients):
    """Testaments are published in the order they were added within a scope, and, as Turnstile
    has no session resumption, every `detached` testament before the `destroyed` ones."""
    topic = "com.adv.testament.order"
    sub = await clients.connect(router, "ws", "cbor")
    got = []
    await within(sub.subscribe(lambda x: got.append(x), topic))
    s = await clients.connect(router, "rs", "json")
    for name, scope in (("d1", "destroyed"), ("x1", "detached"), ("d2", "destroyed"),
                        ("x2", "detached")):
        await within(s.call("wamp.session.add_testament", topic, [name], {}, scope=scope))
    s.drop()
    await eventually(lambda: len(got) == 4, what="4 testaments")
    assert got == ["x1", "x2", "d1", "d2"]


async def test_testament_errors(router, clients):
    """wamp.session.add_testament refuses a topic that is not a valid URI or under `wamp.` and
    a scope other than destroyed/detached with wamp.error.testament_error, args that are not a
    list with wamp.error.invalid_argument; flush_testaments refuses a bad scope with
    wamp.error.testament_error; nothing refused is published later."""
    s = await clients.connect(router, "ws", "cbor")
    for topic in ("wamp.session.fake", "com..bad", "has space"):
        e = await error_of(s.call("wamp.session.add_testament", topic, [], {}))
        assert e.error == "wamp.error.testament_error", topic
    e = await error_of(s.call("wamp.session.add_testament", "com.adv.t", [], {}, scope="forever"))
    assert e.error == "wamp.error.testament_error"
    e = await error_of(s.call("wamp.session.add_testament", "com.adv.t", "notalist", {}))
    assert e.error == "wamp.error.invalid_argument"
    e = await error_of(s.call("wamp.session.flush_testaments", scope="forever"))
    assert e.error == "wamp.error.testament_error"
    assert await within(s.call("wamp.session.flush_testaments")) == 0


# ----------------------------------------------------------------------------------------------
# Subscription meta API
# ----------------------------------------------------------------------------------------------


async def test_subscription_meta_events(router, clients):
    """wamp.subscription.on_create [session, {id, created, uri, match}] (first subscriber),
    on_subscribe [session, id], on_unsubscribe [session, id] (UNSUBSCRIBE or leaving, with the
    real session id), on_delete [session, id] (last subscriber gone), in that order, after the
    SUBSCRIBED/UNSUBSCRIBED reply (also to the subject session itself); none for subscriptions
    to `wamp.` topics."""
    watcher = await Watcher.start(await clients.connect(router, "ws", "json",
                                                        cls=RecordingClient),
                                  "wamp.subscription.on_create", "wamp.subscription.on_subscribe",
                                  "wamp.subscription.on_unsubscribe",
                                  "wamp.subscription.on_delete")
    a = await clients.connect(router, "rs", "msgpack")
    b = await clients.connect(router, "unix", "cbor")
    ida, idb = session_id(a), session_id(b)
    sa = await within(a.subscribe(lambda *x: None, "com.adv.metasub",
                                  options=SubscribeOptions(match="prefix")))
    sb = await within(b.subscribe(lambda *x: None, "com.adv.metasub",
                                  options=SubscribeOptions(match="prefix")))
    assert sa.id == sb.id
    await within(b.subscribe(lambda *x: None, "wamp.session.on_join"))
    await within(sa.unsubscribe())
    b.drop()
    await eventually(lambda: len(watcher.about({ida, idb})) >= 6, what="6 meta events")
    await settle(0.05)
    ev = watcher.about({ida, idb})
    assert ev[0][0] == "on_create", ev
    created = ev[0][1]
    assert created[0] == ida
    info = created[1]
    assert (info["id"], info["uri"], info["match"]) == (sa.id, "com.adv.metasub", "prefix")
    assert ISO_MS.match(info["created"]), info
    assert ev[1:] == [("on_subscribe", [ida, sa.id]), ("on_subscribe", [idb, sa.id]),
                      ("on_unsubscribe", [ida, sa.id]), ("on_unsubscribe", [idb, sa.id]),
                      ("on_delete", [idb, sa.id])]
    assert not any(isinstance(a_[1], dict) and a_[1]["uri"].startswith("wamp.")
                   for a_ in watcher.of("wamp.subscription.on_create"))
    # the subject session is not excluded, and gets its SUBSCRIBED before the meta events
    me = watcher.session
    own = await within(me.subscribe(lambda *x: None, "com.adv.metasub.self"))
    mine = {session_id(me)}
    await eventually(lambda: len(watcher.about(mine)) == 2, what="own on_create/on_subscribe")
    assert [e[0] for e in watcher.about(mine)] == ["on_create", "on_subscribe"]
    kinds = [(type(m).__name__, getattr(m, "subscription", None) or getattr(m, "request", None))
             for m in me.inbox if type(m).__name__ in ("Subscribed", "Event")]
    pos_subscribed = next(i for i, m in enumerate(me.inbox)
                          if type(m).__name__ == "Subscribed" and m.subscription == own.id)
    pos_events = [i for i, m in enumerate(me.inbox) if type(m).__name__ == "Event"
                  and m.args and m.args[0] == session_id(me)]
    assert pos_events and all(pos_subscribed < i for i in pos_events), kinds


async def test_subscription_procedures(router, clients):
    """wamp.subscription.list (all, or of one session; exact/prefix/wildcard), lookup (by uri
    and match; null when none), match (ids of every matching subscription; null when none), get
    ({id, created, uri, match}), list_subscribers and count_subscribers; unknown ids get
    wamp.error.no_such_subscription (get, list_subscribers, count_subscribers,
    remove_subscriber), an unknown session wamp.error.no_such_session."""
    q = await clients.connect(router, "ws", "json")
    a = await clients.connect(router, "rs", "cbor")
    b = await clients.connect(router, "unix", "msgpack")
    se = await within(a.subscribe(lambda *x: None, "com.adv.sp.t"))
    await within(b.subscribe(lambda *x: None, "com.adv.sp.t"))
    sp = await within(a.subscribe(lambda *x: None, "com.adv.sp",
                                  options=SubscribeOptions(match="prefix")))
    sw = await within(b.subscribe(lambda *x: None, "com.adv..t",
                                  options=SubscribeOptions(match="wildcard")))
    all_ = await within(q.call("wamp.subscription.list"))
    assert set(all_) == {"exact", "prefix", "wildcard"}
    assert se.id in all_["exact"] and sp.id in all_["prefix"] and sw.id in all_["wildcard"]
    of_a = await within(q.call("wamp.subscription.list", session_id(a)))
    assert of_a == {"exact": [se.id], "prefix": [sp.id], "wildcard": []}
    of_b = await within(q.call("wamp.subscription.list", session_id(b)))
    assert of_b == {"exact": [se.id], "prefix": [], "wildcard": [sw.id]}
    assert await within(q.call("wamp.subscription.list", session_id(q))) == \
        {"exact": [], "prefix": [], "wildcard": []}
    assert await within(q.call("wamp.subscription.lookup", "com.adv.sp.t")) == se.id
    assert await within(q.call("wamp.subscription.lookup", "com.adv.sp.t", {"match": "exact"})) \
        == se.id
    assert await within(q.call("wamp.subscription.lookup", "com.adv.sp", {"match": "prefix"})) \
        == sp.id
    assert await within(q.call("wamp.subscription.lookup", "com.adv..t",
                               {"match": "wildcard"})) == sw.id
    assert await within(q.call("wamp.subscription.lookup", "com.adv.sp")) is None
    assert sorted(await within(q.call("wamp.subscription.match", "com.adv.sp.t"))) == \
        sorted([se.id, sp.id, sw.id])
    assert await within(q.call("wamp.subscription.match", "com.adv.sp.x")) == [sp.id]
    assert await within(q.call("wamp.subscription.match", "org.none")) is None
    info = await within(q.call("wamp.subscription.get", sw.id))
    assert set(info) == {"id", "created", "uri", "match"}
    assert (info["id"], info["uri"], info["match"]) == (sw.id, "com.adv..t", "wildcard")
    assert ISO_MS.match(info["created"])
    assert sorted(await within(q.call("wamp.subscription.list_subscribers", se.id))) == \
        sorted([session_id(a), session_id(b)])
    assert await within(q.call("wamp.subscription.count_subscribers", se.id)) == 2
    assert await within(q.call("wamp.subscription.count_subscribers", sp.id)) == 1
    for proc, args in (("get", [4711]), ("list_subscribers", [4711]),
                       ("count_subscribers", [4711]),
                       ("remove_subscriber", [4711, session_id(a)])):
        e = await error_of(q.call(f"wamp.subscription.{proc}", *args))
        assert e.error == "wamp.error.no_such_subscription", proc
    e = await error_of(q.call("wamp.subscription.list", 4711))
    assert e.error == "wamp.error.no_such_session"
    e = await error_of(q.call("wamp.subscription.remove_subscriber", se.id, 4711))
    assert e.error == "wamp.error.no_such_session"
    e = await error_of(q.call("wamp.subscription.get", "x"))
    assert e.error == "wamp.error.invalid_argument"
    e = await error_of(q.call("wamp.subscription.lookup", 5))
    assert e.error == "wamp.error.invalid_argument"


async def test_subscription_revocation(router, clients, raw):
    """wamp.subscription.remove_subscriber(subscription, session) removes one subscriber: it
    gets no more events, a subscriber announcing subscription_revocation is told with
    UNSUBSCRIBED [35, 0, {"subscription": id, "reason": "wamp.error.removed"}], one without the
    feature is told nothing; on_unsubscribe (and on_delete for the last one) are published;
    removing it again gets wamp.error.no_such_subscription.

    (Autobahn|Python 26.10.2 announces subscription_revocation but treats that UNSUBSCRIBED as a
    protocol error and drops its connection, with Crossbar too: the subscribers here are raw.)"""
    admin = await clients.connect(router, "ws", "json")
    watcher = await Watcher.start(admin, "wamp.subscription.on_unsubscribe",
                                  "wamp.subscription.on_delete")
    topic = "com.adv.revoke.sub"
    full = await raw_session(raw, router, "rs", "msgpack")
    bare = await raw_session(raw, router, "unix", "cbor", roles=BARE_ROLES)
    sub = await full.subscribe(topic)
    assert await bare.subscribe(topic) == sub
    assert await within(admin.call("wamp.subscription.remove_subscriber", sub, full.id)) is None
    m = await full.expect(UNSUBSCRIBED)
    assert m == [UNSUBSCRIBED, 0, {"subscription": sub, "reason": "wamp.error.removed"}], m
    await within(admin.publish(topic, "after full removed", options=ACK))
    assert (await bare.expect(EVENT))[4] == ["after full removed"]
    await within(admin.call("wamp.subscription.remove_subscriber", sub, bare.id))
    await within(admin.publish(topic, "after both removed", options=ACK))
    # barrier: a subscription that still exists gets its event; the removed ones get nothing
    await full.subscribe(topic + ".still")
    await within(admin.publish(topic + ".still", "barrier", options=ACK))
    assert (await full.expect(EVENT))[4] == ["barrier"]
    assert [m for m in full.pending if m[0] == EVENT] == []
    assert await bare.drain(0.1) == [], "a subscriber without the feature got a message"
    await eventually(lambda: len(watcher.about({full.id, bare.id})) == 3, what="meta events")
    assert watcher.about({full.id, bare.id}) == [
        ("on_unsubscribe", [full.id, sub]), ("on_unsubscribe", [bare.id, sub]),
        ("on_delete", [bare.id, sub])]
    e = await error_of(admin.call("wamp.subscription.remove_subscriber", sub, full.id))
    assert e.error == "wamp.error.no_such_subscription"


# ----------------------------------------------------------------------------------------------
# Registration meta API
# ----------------------------------------------------------------------------------------------


async def test_registration_meta_events(router, clients):
    """wamp.registration.on_create [session, {id, created, uri, match, invoke}] (first callee),
    on_register [session, id], on_unregister [session, id] (UNREGISTER or leaving, with the
    real session id), on_delete [session, id] (last callee gone), in that order."""
    watcher = await Watcher.start(await clients.connect(router, "ws", "json"),
                                  "wamp.registration.on_create", "wamp.registration.on_register",
                                  "wamp.registration.on_unregister",
                                  "wamp.registration.on_delete")
    a = await clients.connect(router, "rs", "msgpack")
    b = await clients.connect(router, "unix", "cbor")
    ida, idb = session_id(a), session_id(b)
    opts = RegisterOptions(match="wildcard", invoke="roundrobin")
    ra = await within(a.register(lambda: "a", "com.adv.metareg..x", options=opts))
    rb = await within(b.register(lambda: "b", "com.adv.metareg..x", options=opts))
    assert ra.id == rb.id
    await within(ra.unregister())
    b.drop()
    await eventually(lambda: len(watcher.about({ida, idb})) == 6, what="6 meta events")
    ev = watcher.about({ida, idb})
    assert ev[0][0] == "on_create" and ev[0][1][0] == ida
    info = ev[0][1][1]
    assert (info["id"], info["uri"], info["match"], info["invoke"]) == \
        (ra.id, "com.adv.metareg..x", "wildcard", "roundrobin")
    assert ISO_MS.match(info["created"])
    assert ev[1:] == [("on_register", [ida, ra.id]), ("on_register", [idb, ra.id]),
                      ("on_unregister", [ida, ra.id]), ("on_unregister", [idb, ra.id]),
                      ("on_delete", [idb, ra.id])]


async def test_registration_procedures(router, clients):
    """wamp.registration.list (all, or of one session), lookup (by uri and match; null when
    none), match (the registration a CALL would go to; null when none), get ({id, created, uri,
    match, invoke}), list_callees and count_callees; unknown ids get
    wamp.error.no_such_registration (get, list_callees, count_callees, remove_callee)."""
    q = await clients.connect(router, "ws", "json")
    a = await clients.connect(router, "rs", "cbor")
    b = await clients.connect(router, "unix", "msgpack")
    re_ = await within(a.register(lambda: 1, "com.adv.rp.exact"))
    rp = await within(a.register(lambda: 2, "com.adv.rp", options=RegisterOptions(match="prefix")))
    rs = await within(a.register(lambda: 3, "com.adv.rp.shared",
                                 options=RegisterOptions(invoke="last")))
    await within(b.register(lambda: 4, "com.adv.rp.shared", options=RegisterOptions(invoke="last")))
    rw = await within(b.register(lambda: 5, "com.adv.rp..w",
                                 options=RegisterOptions(match="wildcard")))
    all_ = await within(q.call("wamp.registration.list"))
    assert {re_.id, rs.id} <= set(all_["exact"]) and rp.id in all_["prefix"] and \
        rw.id in all_["wildcard"]
    assert await within(q.call("wamp.registration.list", session_id(b))) == \
        {"exact": [rs.id], "prefix": [], "wildcard": [rw.id]}
    assert await within(q.call("wamp.registration.lookup", "com.adv.rp.exact")) == re_.id
    assert await within(q.call("wamp.registration.lookup", "com.adv.rp", {"match": "prefix"})) \
        == rp.id
    assert await within(q.call("wamp.registration.lookup", "com.adv.rp..w",
                               {"match": "wildcard"})) == rw.id
    assert await within(q.call("wamp.registration.lookup", "com.adv.rp")) is None
    assert await within(q.call("wamp.registration.match", "com.adv.rp.exact")) == re_.id
    assert await within(q.call("wamp.registration.match", "com.adv.rp.x.w")) == rp.id
    assert await within(q.call("wamp.registration.match", "org.none")) is None
    info = await within(q.call("wamp.registration.get", rs.id))
    assert set(info) == {"id", "created", "uri", "match", "invoke"}
    assert (info["id"], info["uri"], info["match"], info["invoke"]) == \
        (rs.id, "com.adv.rp.shared", "exact", "last")
    assert ISO_MS.match(info["created"])
    assert await within(q.call("wamp.registration.list_callees", rs.id)) == \
        [session_id(a), session_id(b)]
    assert await within(q.call("wamp.registration.count_callees", rs.id)) == 2
    assert await within(q.call("wamp.registration.count_callees", re_.id)) == 1
    for proc, args in (("get", [4711]), ("list_callees", [4711]), ("count_callees", [4711]),
                       ("remove_callee", [4711, session_id(a)])):
        e = await error_of(q.call(f"wamp.registration.{proc}", *args))
        assert e.error == "wamp.error.no_such_registration", proc
    e = await error_of(q.call("wamp.registration.list", 4711))
    assert e.error == "wamp.error.no_such_session"
    e = await error_of(q.call("wamp.registration.match", 17))
    assert e.error == "wamp.error.invalid_argument"


async def test_registration_revocation(router, clients, raw):
    """wamp.registration.remove_callee(registration, session) removes one callee: an autobahn
    callee (it announces registration_revocation) gets UNREGISTERED [67, 0, {"registration": id,
    "reason": "wamp.error.removed"}] and stays joined, a callee without the feature is told
    nothing; calls then go to the remaining callee, and after the last one is removed get
    wamp.error.no_such_procedure; on_unregister / on_delete are published."""
    admin = await clients.connect(router, "ws", "json")
    watcher = await Watcher.start(admin, "wamp.registration.on_unregister",
                                  "wamp.registration.on_delete")
    proc = "com.adv.revoke.reg"
    ab = await clients.connect(router, "rs", "msgpack", cls=RecordingClient)
    reg = await within(ab.register(lambda: "autobahn", proc,
                                   options=RegisterOptions(invoke="first")))
    bare = await raw_session(raw, router, "unix", "cbor", roles=BARE_ROLES)
    assert await bare.register(proc, invoke="first") == reg.id
    assert await within(admin.call(proc)) == "autobahn"
    assert await within(admin.call("wamp.registration.remove_callee", reg.id,
                                   session_id(ab))) is None
    await eventually(lambda: ab.received(Unregistered), what="UNREGISTERED at autobahn")
    u = ab.received(Unregistered)[0]
    assert (u.request, u.registration, u.reason) == (0, reg.id, "wamp.error.removed")
    assert ab.is_attached()
    call = asyncio.ensure_future(admin.call(proc))
    inv = await bare.expect(68)
    await bare.send(70, inv[1], {}, ["bare"])
    assert await within(call) == "bare"
    await within(admin.call("wamp.registration.remove_callee", reg.id, bare.id))
    e = await error_of(admin.call(proc))
    assert e.error == "wamp.error.no_such_procedure"
    assert await bare.drain(0.05) == []
    await eventually(lambda: len(watcher.about({session_id(ab), bare.id})) == 3)
    assert watcher.about({session_id(ab), bare.id}) == [
        ("on_unregister", [session_id(ab), reg.id]), ("on_unregister", [bare.id, reg.id]),
        ("on_delete", [bare.id, reg.id])]
    assert ab.is_attached()


# ----------------------------------------------------------------------------------------------
# Visibility, authorization, disabling
# ----------------------------------------------------------------------------------------------


async def test_wamp_uris_hidden_from_untrusted(router, clients):
    """Subscriptions to `wamp.` topics are hidden from the list/lookup/match/get results of
    callers whose role is not `trusted`, and visible to a `trusted` caller."""
    s = await clients.connect(router, "ws", "json")
    sub = await within(s.subscribe(lambda *a: None, "wamp.session.on_join"))
    anon = await clients.connect(router, "rs", "cbor")
    trusted = await clients.connect(router, "ws", "msgpack", path="trusted")
    assert trusted.joined.result().authrole == "trusted"
    listed = await within(anon.call("wamp.subscription.list"))
    assert sub.id not in listed["exact"]
    assert await within(anon.call("wamp.subscription.lookup", "wamp.session.on_join")) is None
    assert await within(anon.call("wamp.subscription.match", "wamp.session.on_join")) is None
    e = await error_of(anon.call("wamp.subscription.get", sub.id))
    assert e.error == "wamp.error.no_such_subscription"
    assert sub.id in (await within(trusted.call("wamp.subscription.list")))["exact"]
    assert await within(trusted.call("wamp.subscription.lookup", "wamp.session.on_join")) == sub.id
    assert sub.id in await within(trusted.call("wamp.subscription.match", "wamp.session.on_join"))
    assert (await within(trusted.call("wamp.subscription.get", sub.id)))["uri"] == \
        "wamp.session.on_join"


async def test_meta_calls_are_authorized(router, clients):
    """Calling a meta procedure goes through authorization: a role that may not `call` gets
    wamp.error.not_authorized; it may still subscribe to meta events and receives them."""
    r = await clients.connect(router, "ws", "json", path="restricted")
    e = await error_of(r.call("wamp.session.count"))
    assert e.error == "wamp.error.not_authorized"
    got = []
    await within(r.subscribe(lambda d: got.append(d["session"]), "wamp.session.on_join"))
    s = await clients.connect(router, "unix", "cbor")
    await eventually(lambda: session_id(s) in got, what="on_join at the restricted session")


async def test_meta_api_disabled(router, clients):
    """With realm option `enable_meta_api: false` every meta procedure gets
    wamp.error.no_such_procedure and no meta event is published (session, subscription,
    registration); the realm otherwise works."""
    obs = await clients.connect(router, "ws", "json", realm="nometa")
    meta_events = []
    for t in ("wamp.session.on_join", "wamp.session.on_leave", "wamp.subscription.on_create",
              "wamp.subscription.on_subscribe", "wamp.registration.on_create",
              "wamp.registration.on_register", "wamp.session.on_stats"):
        await within(obs.subscribe(lambda *a, t=t: meta_events.append((t, a)), t))
    barrier = []
    await within(obs.subscribe(lambda x: barrier.append(x), "com.adv.nometa.barrier"))
    for proc, args in (("wamp.session.count", []), ("wamp.session.list", []),
                       ("wamp.session.get", [1]), ("wamp.session.kill", [1]),
                       ("wamp.session.kill_all", []), ("wamp.session.add_testament",
                                                       ["com.x", [], {}]),
                       ("wamp.session.flush_testaments", []), ("wamp.subscription.list", []),
                       ("wamp.subscription.get_events", [1]), ("wamp.registration.list", []),
                       ("wamp.registration.match", ["com.x"])):
        e = await error_of(obs.call(proc, *args))
        assert e.error == "wamp.error.no_such_procedure", proc
    other = await clients.connect(router, "rs", "msgpack", realm="nometa")
    await within(other.subscribe(lambda *a: None, "com.adv.nometa.t"))
    await within(other.register(lambda: "works", "com.adv.nometa.p"))
    assert await within(obs.call("com.adv.nometa.p")) == "works"
    await within(other.leave())
    third = await clients.connect(router, "unix", "cbor", realm="nometa")
    await within(third.publish("com.adv.nometa.barrier", "end", options=ACK))
    await eventually(lambda: barrier == ["end"], what="barrier")
    await settle(0.05)
    assert meta_events == []
