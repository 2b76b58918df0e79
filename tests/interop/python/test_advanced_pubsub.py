"""Advanced Profile publish & subscribe with Autobahn|Python 26.10.2 (asyncio), several sessions at
once over mixed transports and serializers: pattern-based subscriptions, publisher
identification, publisher exclusion, subscriber black- and whitelisting, event retention, event
history, payload pass-through.

Autobahn|Python 26.10.2 has no `disclose_me` publish option: that one is sent from a raw session
(`advanced.RawSession`); the receivers are autobahn sessions. A "barrier" (a last publication that
every subscriber must see) proves that nothing else is still on its way: the router handles a
realm's messages in order and every connection delivers in order.
"""

from __future__ import annotations

import pytest
from autobahn.wamp.message import Event
from autobahn.wamp.types import PublishOptions, SubscribeOptions

from advanced import (
    ERROR,
    EVENT,
    PUBLISH,
    PUBLISHED,
    SUBSCRIBE,
    RecordingClient,
    authid,
    error_of,
    module_router,
    raw_session,
    session_id,
)
from interop import eventually, within

ACK = PublishOptions(acknowledge=True)


@pytest.fixture(scope="module")
def router(tmp_path_factory):
    yield from module_router(tmp_path_factory, "adv-pubsub")


class Inbox:
    """Handler recording (args, kwargs, details) of the events of one subscription."""

    def __init__(self):
        self.events: list[tuple] = []

    def __call__(self, *args, details=None, **kwargs):
        self.events.append((args, kwargs, details))

    @property
    def args(self) -> list:
        return [a for a, _, _ in self.events]

    def firsts(self) -> list:
        return [a[0] for a, _, _ in self.events]

    async def wait_for(self, value, what=""):
        await eventually(lambda: any(a and a[0] == value for a, _, _ in self.events),
                         what=what or f"event {value!r}")


async def subscribe(session, topic, match=None, get_retained=None) -> tuple[Inbox, object]:
    inbox = Inbox()
    sub = await within(session.subscribe(
        inbox, topic, options=SubscribeOptions(match=match, details=True,
                                               get_retained=get_retained)))
    return inbox, sub


# ----------------------------------------------------------------------------------------------
# Pattern-based subscriptions
# ----------------------------------------------------------------------------------------------


async def test_prefix_subscription(router, clients):
    """pattern_based_subscription, prefix: a `prefix` subscription gets every event whose topic
    starts with the prefix (the prefix itself included) and no other; its EVENT.Details carry
    `topic` (the concrete topic), an exact subscription's EVENTs carry no `topic`."""
    sub = await clients.connect(router, "ws", "json", cls=RecordingClient)
    exact = await clients.connect(router, "rs", "msgpack", cls=RecordingClient)
    pub = await clients.connect(router, "unix", "cbor")
    pfx, psub = await subscribe(sub, "com.adv.pfx", match="prefix")
    ex, esub = await subscribe(exact, "com.adv.pfx.a")
    topics = ["com.adv.pfx", "com.adv.pfx.a", "com.adv.pfx.a.b.c", "com.adv.other",
              "com.adv.pf", "com.adv.pfx.z"]
    for i, t in enumerate(topics):
        await within(pub.publish(t, i, options=ACK))
    await pfx.wait_for(5, "barrier at the prefix subscriber")
    await ex.wait_for(1, "the exact event")
    assert pfx.firsts() == [0, 1, 2, 5]
    assert ex.firsts() == [1]
    sent = [(m.args[0], m.topic, m.subscription) for m in sub.received(Event)]
    assert sent == [(0, "com.adv.pfx", psub.id), (1, "com.adv.pfx.a", psub.id),
                    (2, "com.adv.pfx.a.b.c", psub.id), (5, "com.adv.pfx.z", psub.id)]
    sent = [(m.args[0], m.topic, m.subscription) for m in exact.received(Event)]
    assert sent == [(1, None, esub.id)], "an exact subscription's EVENT must not carry `topic`"


async def test_wildcard_subscription(router, clients):
    """pattern_based_subscription, wildcard: empty URI components match exactly one component
    of any value; the number of components must be equal; EVENT.Details carry `topic`."""
    a = await clients.connect(router, "ws", "cbor", cls=RecordingClient)
    b = await clients.connect(router, "unix", "json", cls=RecordingClient)
    pub = await clients.connect(router, "rs", "msgpack")
    w1, s1 = await subscribe(a, "com.adv.wc..x", match="wildcard")
    w2, s2 = await subscribe(b, "com.adv...", match="wildcard")  # any 5-component com.adv.*.*.*
    topics = ["com.adv.wc.1.x", "com.adv.wc.2.x", "com.adv.wc.1.y", "com.adv.wc.x",
              "com.adv.wc.1.2.x", "com.adv.zz.1.x", "com.adv.wc.end.x"]
    for i, t in enumerate(topics):
        await within(pub.publish(t, i, options=ACK))
    await w1.wait_for(6, "barrier at the first wildcard subscriber")
    await w2.wait_for(6, "barrier at the second wildcard subscriber")
    assert w1.firsts() == [0, 1, 6]
    assert w2.firsts() == [0, 1, 2, 5, 6]
    assert [m.topic for m in a.received(Event)] == [topics[0], topics[1], topics[6]]
    assert {m.subscription for m in b.received(Event)} == {s2.id}


async def test_overlapping_patterns_one_event_per_subscription(router, clients):
    """A publication is delivered once per matching subscription: a session holding an exact,
    a prefix and a wildcard subscription that all match gets three EVENTs with the same
    publication id (one per subscription id, `topic` only on the pattern ones); sessions sharing
    one (uri, match) subscription get the same subscription id and one EVENT each; subscribing
    twice to the same (uri, match) returns the same subscription and does not double events."""
    topic = "com.adv.ovl.a.b"
    many = await clients.connect(router, "ws", "msgpack", cls=RecordingClient)
    p1 = await clients.connect(router, "rs", "json", cls=RecordingClient)
    p2 = await clients.connect(router, "unix", "cbor", cls=RecordingClient)
    pub = await clients.connect(router, "ws", "json")
    _, se = await subscribe(many, topic)
    _, sp = await subscribe(many, "com.adv.ovl", match="prefix")
    _, sw = await subscribe(many, "com.adv.ovl..b", match="wildcard")
    _, sp1 = await subscribe(p1, "com.adv.ovl", match="prefix")
    _, sp1_again = await subscribe(p1, "com.adv.ovl", match="prefix")
    _, sp2 = await subscribe(p2, "com.adv.ovl", match="prefix")
    assert len({se.id, sp.id, sw.id}) == 3
    assert sp.id == sp1.id == sp1_again.id == sp2.id, "one subscription per (uri, match)"
    publication = await within(pub.publish(topic, "x", options=ACK))
    await within(pub.publish("com.adv.ovl.end", "end", options=ACK))

    def events(s):
        return [m for m in s.received(Event) if m.args == ["x"]]

    await eventually(lambda: all(any(m.args == ["end"] for m in s.received(Event))
                                 for s in (many, p1, p2)), what="barrier everywhere")
    got = events(many)
    assert sorted(m.subscription for m in got) == sorted([se.id, sp.id, sw.id])
    assert {m.publication for m in got} == {publication.id}
    assert {m.subscription: m.topic for m in got} == {se.id: None, sp.id: topic, sw.id: topic}
    for s in (p1, p2):
        assert [(m.subscription, m.publication) for m in events(s)] == [(sp.id, publication.id)]


async def test_pattern_uri_rules(router, clients, raw):
    """Empty URI components are allowed only in pattern subscriptions: an exact SUBSCRIBE to
    `com..x` gets wamp.error.invalid_uri, a wildcard one succeeds; an unknown match policy gets
    wamp.error.invalid_argument."""
    s = await clients.connect(router, "ws", "json")
    e = await error_of(s.subscribe(lambda: None, "com.adv..bad"))
    assert e.error == "wamp.error.invalid_uri"
    await within(s.subscribe(lambda: None, "com.adv..ok", options=SubscribeOptions(match="wildcard")))
    r = await raw_session(raw, router, "rs", "cbor")
    req = r.request_id()
    await r.send(SUBSCRIBE, req, {"match": "fuzzy"}, "com.adv.fuzzy")
    m = await r.error_for(SUBSCRIBE, req)
    assert m[0] == ERROR and m[4] == "wamp.error.invalid_argument", m


# ----------------------------------------------------------------------------------------------
# Publisher identification and exclusion
# ----------------------------------------------------------------------------------------------


async def test_publisher_identification_disclose_me(router, clients, raw):
    """publisher_identification: PUBLISH with `disclose_me` gives the subscribers' EVENT.Details
    `publisher` (session id), `publisher_authid` and `publisher_authrole`; without it (and a role
    that does not disclose) none of them is sent."""
    topic = "com.adv.ident"
    subs = [await clients.connect(router, t, s, cls=RecordingClient)
            for t, s in (("ws", "json"), ("rs", "msgpack"), ("unix", "cbor"))]
    inboxes = [(await subscribe(s, topic))[0] for s in subs]
    pub = await raw_session(raw, router, "ws", "msgpack")
    await pub.publish(topic, ["disclosed"], disclose_me=True)
    await pub.publish(topic, ["anonymous"])
    await pub.publish(topic, ["explicit-false"], disclose_me=False)
    for s, inbox in zip(subs, inboxes):
        await inbox.wait_for("explicit-false")
        d = {a[0]: det for a, _, det in inbox.events}
        assert (d["disclosed"].publisher, d["disclosed"].publisher_authid,
                d["disclosed"].publisher_authrole) == (pub.id, pub.details["authid"], "anonymous")
        for key in ("anonymous", "explicit-false"):
            assert (d[key].publisher, d[key].publisher_authid, d[key].publisher_authrole) == \
                (None, None, None), f"{key}: publisher disclosed without disclose_me"
        # what the router sent, not what autobahn made of it
        raw_details = [m.publisher for m in s.received(Event)]
        assert raw_details == [pub.id, None, None]


async def test_publisher_identification_by_role(router, clients):
    """publisher_identification by configuration: a role whose permission has
    `disclose.publisher: true` has every publication disclosed without `disclose_me`; a role
    without it is not disclosed."""
    topic = "com.adv.ident.role"
    sub = await clients.connect(router, "rs", "cbor")
    inbox, _ = await subscribe(sub, topic)
    disclosed = await clients.connect(router, "ws", "msgpack", path="disclosed")
    alice = await clients.connect(router, "ws", "json", path="alice")
    await within(disclosed.publish(topic, "d", options=ACK))
    await within(alice.publish(topic, "a", options=ACK))
    await inbox.wait_for("a")
    d = {a[0]: det for a, _, det in inbox.events}
    assert (d["d"].publisher, d["d"].publisher_authid, d["d"].publisher_authrole) == \
        (session_id(disclosed), authid(disclosed), "disclosed")
    assert (d["a"].publisher, d["a"].publisher_authid, d["a"].publisher_authrole) == \
        (None, None, None)


async def test_publisher_exclusion_with_patterns(router, clients):
    """publisher_exclusion: `exclude_me` (default true) keeps the publisher's own event from it on
    every subscription it holds, exact and pattern; `exclude_me: false` delivers it on each of
    them; other subscribers get every publication."""
    topic = "com.adv.excl.t"
    me = await clients.connect(router, "ws", "json")
    other = await clients.connect(router, "unix", "msgpack")
    mine_exact, _ = await subscribe(me, topic)
    mine_prefix, _ = await subscribe(me, "com.adv.excl", match="prefix")
    theirs, _ = await subscribe(other, topic)
    await within(me.publish(topic, "default", options=ACK))
    await within(me.publish(topic, "excluded", options=PublishOptions(acknowledge=True,
                                                                      exclude_me=True)))
    await within(me.publish(topic, "included", options=PublishOptions(acknowledge=True,
                                                                      exclude_me=False)))
    await theirs.wait_for("included")
    await mine_exact.wait_for("included")
    await mine_prefix.wait_for("included")
    assert theirs.firsts() == ["default", "excluded", "included"]
    assert mine_exact.firsts() == ["included"]
    assert mine_prefix.firsts() == ["included"]


# ----------------------------------------------------------------------------------------------
# Subscriber black- and whitelisting
# ----------------------------------------------------------------------------------------------


async def test_subscriber_black_and_whitelisting(router, clients):
    """subscriber_blackwhite_listing: `exclude`, `exclude_authid`, `exclude_authrole`,
    `eligible`, `eligible_authid` and `eligible_authrole` select the receivers (a receiver must
    be in every whitelist given and in no blacklist; an empty whitelist admits nobody), also in
    combination; `eligible` can readmit the publisher with `exclude_me: false`. Sessions: alice
    (authid alice, role anonymous), bob and carol (role other), anon (random authid, role
    anonymous)."""
    topic = "com.adv.bwl"
    pub = await clients.connect(router, "ws", "json")
    sessions = {
        "alice": await clients.connect(router, "ws", "msgpack", path="alice"),
        "bob": await clients.connect(router, "ws", "cbor", path="bob"),
        "carol": await clients.connect(router, "ws", "json", path="carol"),
        "anon": await clients.connect(router, "rs", "cbor"),
        "pub": pub,
    }
    inboxes = {n: (await subscribe(s, topic))[0] for n, s in sessions.items()}
    sid = {n: session_id(s) for n, s in sessions.items()}
    assert authid(sessions["alice"]) == "alice" and authid(sessions["bob"]) == "bob"
    assert sessions["bob"].joined.result().authrole == "other"
    cases = [
        (dict(exclude=[sid["bob"]]), {"alice", "carol", "anon"}),
        (dict(exclude=[sid["bob"], sid["anon"]]), {"alice", "carol"}),
        (dict(exclude_authid=["alice"]), {"bob", "carol", "anon"}),
        (dict(exclude_authrole=["other"]), {"alice", "anon"}),
        (dict(eligible=[sid["alice"], sid["carol"]]), {"alice", "carol"}),
        (dict(eligible_authid=["bob", "carol"]), {"bob", "carol"}),
        (dict(eligible_authrole=["anonymous"]), {"alice", "anon"}),
        (dict(eligible=[sid["alice"], sid["bob"], sid["carol"]], exclude=[sid["bob"]]),
         {"alice", "carol"}),
        (dict(eligible_authrole=["other"], exclude_authid=["carol"]), {"bob"}),
        (dict(eligible_authid=["alice", "bob"], eligible_authrole=["other"]), {"bob"}),
        (dict(eligible=[]), set()),
        (dict(eligible=[sid["pub"]], exclude_me=False), {"pub"}),
        (dict(exclude_authrole=["nobody"], exclude_me=False), set(sessions)),
    ]
    for i, (opts, _) in enumerate(cases):
        await within(pub.publish(topic, i, options=PublishOptions(acknowledge=True, **opts)))
    await within(pub.publish(topic, "end", options=PublishOptions(acknowledge=True,
                                                                  exclude_me=False)))
    for n, inbox in inboxes.items():
        await inbox.wait_for("end", f"barrier at {n}")
    for i, (opts, expected) in enumerate(cases):
        got = {n for n, inbox in inboxes.items() if i in inbox.firsts()}
        assert got == expected, f"case {i} {opts}: delivered to {sorted(got)}, expected " \
                                f"{sorted(expected)}"
    for n, inbox in inboxes.items():
        firsts = inbox.firsts()
        assert len(firsts) == len(set(firsts)), f"{n} got a publication twice: {firsts}"


async def test_blackwhite_listing_bad_option_type(router, raw):
    """A black- or whitelist that is not a list of the right type is refused with
    wamp.error.invalid_argument (PUBLISH with acknowledge)."""
    r = await raw_session(raw, router, "ws", "json")
    for opts in ({"exclude": "x"}, {"eligible": ["not-an-id"]}, {"exclude_authid": [1]},
                 {"eligible_authrole": "role"}):
        req = r.request_id()
        await r.send(PUBLISH, req, {"acknowledge": True, **opts}, "com.adv.bwl.bad")
        m = await r.error_for(PUBLISH, req)
        assert m[4] == "wamp.error.invalid_argument", (opts, m)


# ----------------------------------------------------------------------------------------------
# Event retention
# ----------------------------------------------------------------------------------------------


async def test_event_retention(router, clients):
    """event_retention: the last event published with `retain: true` on a topic is kept (also
    with no subscriber at the time; a later publication without `retain` does not replace it)
    and sent to a new subscriber that asks `get_retained`, right after SUBSCRIBED, with
    EVENT.Details `retained: true`; a subscriber that does not ask gets nothing old; a pattern
    subscription with `get_retained` gets the retained event of every matching topic, with
    `topic`."""
    t1, t2 = "com.adv.ret1.a", "com.adv.ret1.b"
    pub = await clients.connect(router, "ws", "cbor")
    await within(pub.publish(t1, "first", options=PublishOptions(acknowledge=True, retain=True)))
    await within(pub.publish(t1, "second", k=2,
                             options=PublishOptions(acknowledge=True, retain=True)))
    await within(pub.publish(t1, "not retained", options=ACK))
    await within(pub.publish(t2, "other topic", options=PublishOptions(acknowledge=True,
                                                                       retain=True)))

    late = await clients.connect(router, "rs", "json", cls=RecordingClient)
    plain = await clients.connect(router, "unix", "msgpack")
    pattern = await clients.connect(router, "ws", "json", cls=RecordingClient)
    got_late, _ = await subscribe(late, t1, get_retained=True)
    got_plain, _ = await subscribe(plain, t1)
    got_pattern, _ = await subscribe(pattern, "com.adv.ret1", match="prefix", get_retained=True)
    await within(pub.publish(t1, "live", options=ACK))
    for inbox in (got_late, got_plain, got_pattern):
        await inbox.wait_for("live")

    assert [(a, kw, d.retained) for a, kw, d in got_late.events] == \
        [(("second",), {"k": 2}, True), (("live",), {}, None)]
    assert got_plain.firsts() == ["live"]
    assert sorted(got_pattern.firsts()[:2]) == ["other topic", "second"]
    assert got_pattern.firsts()[2:] == ["live"]
    retained_msgs = [m for m in pattern.received(Event) if m.retained]
    assert {(m.args[0], m.topic) for m in retained_msgs} == {("second", t1), ("other topic", t2)}
    assert not any(m.retained for m in late.received(Event) if m.args[0] == "live")


async def test_event_retention_keeps_black_and_whitelists(router, clients):
    """A retained event keeps its publication's whitelist: a later subscriber outside it does not
    get the event with `get_retained`, one inside does; it keeps the publisher disclosure."""
    topic = "com.adv.ret.bwl"
    pub = await clients.connect(router, "ws", "json", path="disclosed")
    await within(pub.publish(topic, "for alice", options=PublishOptions(
        acknowledge=True, retain=True, eligible_authid=["alice"])))
    bob = await clients.connect(router, "ws", "msgpack", path="bob")
    alice = await clients.connect(router, "ws", "cbor", path="alice")
    got_bob, _ = await subscribe(bob, topic, get_retained=True)
    got_alice, _ = await subscribe(alice, topic, get_retained=True)
    await within(pub.publish(topic, "end", options=ACK))
    await got_bob.wait_for("end")
    await got_alice.wait_for("end")
    assert got_bob.firsts() == ["end"]
    assert got_alice.firsts() == ["for alice", "end"]
    d = got_alice.events[0][2]
    assert (d.retained, d.publisher, d.publisher_authrole) == \
        (True, session_id(pub), "disclosed")


# ----------------------------------------------------------------------------------------------
# Event history (realm store)
# ----------------------------------------------------------------------------------------------


async def test_event_history_exact(router, clients):
    """event_history: for a topic with a configured history (store `event-history`, exact,
    limit 12), wamp.subscription.get_events(subscription_id) returns the stored events newest
    first with timestamp, publication, subscription, topic, args and kwargs; 10 by default,
    `limit` fewer, and never more than the configured limit (bounded memory)."""
    topic = "com.hist.exact"
    sub = await clients.connect(router, "rs", "msgpack")
    pub = await clients.connect(router, "ws", "json")
    _, s = await subscribe(sub, topic)
    pubs = []
    for i in range(15):
        p = await within(pub.publish(topic, i, k=i, options=ACK))
        pubs.append(p.id)
    events = await within(sub.call("wamp.subscription.get_events", s.id))
    assert [e["args"] for e in events] == [[i] for i in range(14, 4, -1)]
    e = events[0]
    assert set(e) >= {"timestamp", "publication", "subscription", "topic", "args", "kwargs"}, e
    assert (e["publication"], e["subscription"], e["topic"], e["kwargs"]) == \
        (pubs[14], s.id, topic, {"k": 14})
    assert isinstance(e["timestamp"], str) and e["timestamp"].endswith("Z"), e["timestamp"]
    assert [e["publication"] for e in events] == pubs[14:4:-1]
    three = await within(sub.call("wamp.subscription.get_events", s.id, limit=3))
    assert [e["args"] for e in three] == [[14], [13], [12]]
    everything = await within(sub.call("wamp.subscription.get_events", s.id, limit=1000))
    assert [e["args"][0] for e in everything] == list(range(14, 2, -1)), "history not bounded"
    # another session may read it too
    assert await within(pub.call("wamp.subscription.get_events", s.id, limit=1)) == three[:1]


async def test_event_history_patterns(router, clients):
    """event_history for pattern histories: a prefix history (limit 3) and a wildcard history
    (limit 4) keep the newest events of every matching topic, each with its concrete `topic`;
    get_events works on the pattern subscription of the same (uri, match)."""
    sub = await clients.connect(router, "unix", "cbor")
    pub = await clients.connect(router, "ws", "msgpack")
    _, sp = await subscribe(sub, "com.hist.pfx.", match="prefix")
    _, sw = await subscribe(sub, "com.hist..w", match="wildcard")
    pfx_topics = ["com.hist.pfx.a", "com.hist.pfx.b", "com.hist.pfx.c.d", "com.hist.pfx.a",
                  "com.hist.pfx.e"]
    for i, t in enumerate(pfx_topics):
        await within(pub.publish(t, i, options=ACK))
    w_topics = ["com.hist.x.w", "com.hist.y.w", "com.hist.x.v", "com.hist.z.w", "com.hist.y.w",
                "com.hist.q.w", "com.hist.a.b.w"]
    for i, t in enumerate(w_topics):
        await within(pub.publish(t, i, options=ACK))
    got = await within(sub.call("wamp.subscription.get_events", sp.id))
    assert [(e["topic"], e["args"]) for e in got] == \
        [("com.hist.pfx.e", [4]), ("com.hist.pfx.a", [3]), ("com.hist.pfx.c.d", [2])]
    got = await within(sub.call("wamp.subscription.get_events", sw.id))
    assert [(e["topic"], e["args"]) for e in got] == \
        [("com.hist.q.w", [5]), ("com.hist.y.w", [4]), ("com.hist.z.w", [3]),
         ("com.hist.y.w", [1])]


async def test_event_history_errors(router, clients):
    """wamp.subscription.get_events errors: a subscription without a configured history gets
    wamp.error.history_unavailable; an unknown subscription id wamp.error.no_such_subscription;
    a `limit` that is not an integer wamp.error.invalid_argument."""
    s = await clients.connect(router, "ws", "json")
    _, sub = await subscribe(s, "com.adv.nohistory")
    e = await error_of(s.call("wamp.subscription.get_events", sub.id))
    assert e.error == "wamp.error.history_unavailable"
    e = await error_of(s.call("wamp.subscription.get_events", 1234567))
    assert e.error == "wamp.error.no_such_subscription"
    _, hs = await subscribe(s, "com.hist.exact")
    e = await error_of(s.call("wamp.subscription.get_events", hs.id, limit="ten"))
    assert e.error == "wamp.error.invalid_argument"


# ----------------------------------------------------------------------------------------------
# Payload pass-through mode
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("serializer", ["json", "msgpack", "cbor"])
async def test_payload_passthru_publish(router, raw, serializer):
    """payload_passthru_mode (broker): a PUBLISH whose options carry `ppt_scheme`,
    `ppt_serializer`, `ppt_cipher` and `ppt_keyid` and whose Args is one opaque binary payload is
    delivered with those keys in EVENT.Details and the payload unchanged, to a subscriber on
    another serializer too."""
    pub = await raw_session(raw, router, "rs", serializer)
    same = await raw_session(raw, router, "unix", serializer)
    other = await raw_session(raw, router, "ws", "json" if serializer != "json" else "cbor")
    topic = f"com.adv.ppt.{serializer}"
    s1 = await same.subscribe(topic)
    s2 = await other.subscribe(topic)
    ppt = {"ppt_scheme": "x_custom", "ppt_serializer": "native", "ppt_cipher": "xsalsa20poly1305",
           "ppt_keyid": "key-1"}
    payload = bytes(range(200))
    req = pub.request_id()
    # PPT: the Args position holds the bare payload, not a list
    await pub.send(PUBLISH, req, {"acknowledge": True, **ppt}, topic, payload)
    publication = (await pub.expect(PUBLISHED, req))[2]
    for r, sub in ((same, s1), (other, s2)):
        ev = await r.expect(EVENT)
        assert ev[1:3] == [sub, publication]
        assert {k: ev[3].get(k) for k in ppt} == ppt, ev[3]
        assert ev[4:] == [payload], ev


async def test_event_retention_honours_publisher_exclusion(router, clients):
    """event_retention: "the Broker MUST NOT send the Subscriber a Retained Event that they would
    not be eligible to receive if they were subscribing when it was published": the publisher of
    a retained event published with `exclude_me` (the default) does not get it back with
    `get_retained`; with `exclude_me: false` it does; other sessions get it either way."""
    pub = await clients.connect(router, "ws", "json")
    other = await clients.connect(router, "rs", "cbor")
    await within(pub.publish("com.adv.ret.own.a", "excluded",
                             options=PublishOptions(acknowledge=True, retain=True)))
    await within(pub.publish("com.adv.ret.own.b", "included", options=PublishOptions(
        acknowledge=True, retain=True, exclude_me=False)))
    mine, _ = await subscribe(pub, "com.adv.ret.own", match="prefix", get_retained=True)
    theirs, _ = await subscribe(other, "com.adv.ret.own", match="prefix", get_retained=True)
    await within(other.publish("com.adv.ret.own.end", "end", options=ACK))
    await mine.wait_for("end")
    await within(pub.publish("com.adv.ret.own.end", "end2", options=ACK))
    await theirs.wait_for("end2")
    assert sorted(theirs.firsts()[:2]) == ["excluded", "included"]
    assert mine.firsts() == ["included", "end"], \
        "the publisher got its own retained event although it published with exclude_me"
