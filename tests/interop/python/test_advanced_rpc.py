"""Advanced Profile remote procedure calls with Autobahn|Python 26.10.2 (asyncio), several sessions
at once over mixed transports and serializers: pattern-based and shared registrations, caller
identification, progressive call results and invocations, call timeouts, call canceling, payload
pass-through, and the edge cases (a callee leaving with calls in flight, a cancel racing a YIELD,
a timeout while progressive results flow).

Autobahn|Python 26.10.2 cannot send `disclose_me` on CALL, progressive CALLs (`progress`), nor a
CANCEL with a `mode` (its CANCEL has no options: the router's default mode applies), and its
callee does not announce `progressive_call_invocations`. Those are driven from raw sessions
(`advanced.RawSession`); the other side is autobahn wherever it can be.
"""

from __future__ import annotations

import asyncio
import time

import pytest
from autobahn.wamp.exception import ApplicationError
from autobahn.wamp.message import Invocation
from autobahn.wamp.types import CallOptions, RegisterOptions

from advanced import (
    BARE_ROLES,
    CALL,
    CANCEL,
    ERROR,
    FULL_ROLES,
    HELLO,
    INTERRUPT,
    INVOCATION,
    REGISTER,
    RESULT,
    WELCOME,
    YIELD,
    RecordingClient,
    authid,
    error_of,
    module_router,
    raw_session,
    session_id,
    settle,
)
from interop import eventually, within


@pytest.fixture(scope="module")
def router(tmp_path_factory):
    yield from module_router(tmp_path_factory, "adv-rpc")


def named(name):
    """A procedure that answers with the callee's name."""
    return lambda *a, **kw: name


class Blocking:
    """An autobahn endpoint that blocks until released, and records interrupts (autobahn cancels
    the endpoint's task when it receives INTERRUPT)."""

    def __init__(self, on_interrupt=None):
        self.invoked: list = []
        self.interrupted: list = []
        self.release = asyncio.Event()
        self.on_interrupt = on_interrupt
        self.progress_sent = 0

    async def __call__(self, *args, details=None, **kwargs):
        self.invoked.append(args)
        try:
            await self.release.wait()
            return f"released {args}"
        except asyncio.CancelledError:
            self.interrupted.append(args)
            if self.on_interrupt is not None:
                raise self.on_interrupt
            raise


async def register(session, endpoint, procedure, **options):
    return await within(session.register(endpoint, procedure,
                                         options=RegisterOptions(details=True, **options)))


# ----------------------------------------------------------------------------------------------
# Pattern-based registrations
# ----------------------------------------------------------------------------------------------


async def test_prefix_and_wildcard_registration(router, clients):
    """pattern_based_registration: a `prefix` registration serves every procedure starting with
    the prefix, a `wildcard` one every procedure whose non-empty components match (same
    number of components); INVOCATION.Details carry `procedure` (the URI called) for pattern
    registrations only; a URI matching nothing gets wamp.error.no_such_procedure."""
    callee = await clients.connect(router, "ws", "cbor", cls=RecordingClient)
    caller = await clients.connect(router, "rs", "json")
    seen = []

    def record(*args, details=None):
        seen.append((args, details.procedure))
        return details.procedure

    await register(callee, record, "com.adv.rpc.pfx", match="prefix")
    await register(callee, record, "com.adv.rpc..w", match="wildcard")
    await register(callee, record, "com.adv.rpc.exact")
    for uri in ("com.adv.rpc.pfx", "com.adv.rpc.pfx.a.b", "com.adv.rpc.pfxx", "com.adv.rpc.x.w",
                "com.adv.rpc.exact"):
        assert await within(caller.call(uri, 1)) == uri
    for uri in ("com.adv.rpc.pf", "com.adv.rpc.x.y.w", "com.adv.rpc.w", "com.adv.rpc.x.v"):
        e = await error_of(caller.call(uri))
        assert e.error == "wamp.error.no_such_procedure", uri
    sent = [m.procedure for m in callee.received(Invocation)]
    assert sent == ["com.adv.rpc.pfx", "com.adv.rpc.pfx.a.b", "com.adv.rpc.pfxx",
                    "com.adv.rpc.x.w", None], "`procedure` must be sent for pattern registrations only"


async def test_overlapping_registrations_precedence(router, clients):
    """With overlapping registrations a CALL goes to the exact one, else the longest matching
    prefix, else a matching wildcard; when a registration goes away the next best one takes over;
    wamp.registration.match names the same registration."""
    base = "com.adv.prec"
    exact = await clients.connect(router, "ws", "json")
    pfx_long = await clients.connect(router, "rs", "msgpack")
    pfx_short = await clients.connect(router, "unix", "cbor")
    wild = await clients.connect(router, "ws", "msgpack")
    caller = await clients.connect(router, "rs", "cbor")
    r_exact = await register(exact, named("exact"), f"{base}.a.b")
    r_long = await register(pfx_long, named("prefix-long"), f"{base}.a", match="prefix")
    r_short = await register(pfx_short, named("prefix-short"), base, match="prefix")
    r_wild = await register(wild, named("wildcard"), f"{base}..b", match="wildcard")

    async def route(uri):
        return await within(caller.call(uri))

    async def match(uri):
        return await within(caller.call("wamp.registration.match", uri))

    assert await route(f"{base}.a.b") == "exact"
    assert await match(f"{base}.a.b") == r_exact.id
    assert await route(f"{base}.a.c") == "prefix-long"
    assert await route(f"{base}.x.b") == "prefix-short", "prefix must win over wildcard"
    assert await match(f"{base}.x.b") == r_short.id
    await within(exact.leave())
    await within(exact.disconnected)
    assert await route(f"{base}.a.b") == "prefix-long"
    assert await match(f"{base}.a.b") == r_long.id
    await within(r_short.unregister())
    assert await route(f"{base}.x.b") == "wildcard"
    assert await match(f"{base}.x.b") == r_wild.id
    assert await match("com.adv.nothing") is None


async def test_registration_precedence_spec_examples(router, clients):
    """The spec's "calls matching multiple registrations" examples: exact, else the longest
    prefix (most components), else the wildcard with the longest portion before each wildcard
    (compared portion by portion: y.a1.b2.c3..e5 beats y.a1.b2..d4.e5, y.a1.b2..d4.e5..g7 beats
    y.a1.b2..d4..f6.g7); no match gives wamp.error.no_such_procedure. The wildcards are
    registered in the order that a registration-order tie-break gets wrong."""
    callee = await clients.connect(router, "ws", "msgpack")
    caller = await clients.connect(router, "rs", "json")
    # the spec's example set, split in two namespaces: its list also has the prefixes a1.b2.c3
    # and a1.b2.c3.d4, which (prefix matching being string matching) would also match its
    # wildcard example calls
    regs = [("x.a1.b2.c3.d4.e55", "exact", 1), ("x.a1.b2.c3", "prefix", 2),
            ("x.a1.b2.c3.d4", "prefix", 3), ("y.a1.b2..d4.e5", "wildcard", 4),
            ("y.a1.b2.c3..e5", "wildcard", 5), ("y.a1.b2..d4..f6.g7", "wildcard", 7),
            ("y.a1.b2..d4.e5..g7", "wildcard", 6)]
    for uri, match, n in regs:
        await register(callee, named(n), uri, match=match)
    for uri, expected in (("x.a1.b2.c3.d4.e55", 1), ("x.a1.b2.c3.d98.e74", 2),
                          ("x.a1.b2.c3.d4.e325", 3), ("y.a1.b2.c55.d4.e5", 4),
                          ("y.a1.b2.c3.d4.e5", 5), ("y.a1.b2.c88.d4.e5.f6.g7", 6)):
        assert await within(caller.call(uri)) == expected, uri
    e = await error_of(caller.call("x.a2.b2.c2.d2.e2"))
    assert e.error == "wamp.error.no_such_procedure"


# ----------------------------------------------------------------------------------------------
# Shared registrations
# ----------------------------------------------------------------------------------------------


async def test_shared_registration_roundrobin(router, clients):
    """shared_registration, `roundrobin`: callees registered with the same policy share one
    registration id and take calls in turn, in registration order; a callee joining later enters
    the rotation; one leaving drops out of it."""
    proc = "com.adv.shared.rr"
    callees = [await clients.connect(router, t, s)
               for t, s in (("ws", "json"), ("rs", "msgpack"), ("unix", "cbor"))]
    caller = await clients.connect(router, "ws", "cbor")
    regs = [await register(c, named(i), proc, invoke="roundrobin") for i, c in enumerate(callees)]
    assert len({r.id for r in regs}) == 1
    got = [await within(caller.call(proc)) for _ in range(6)]
    assert got == [0, 1, 2, 0, 1, 2]
    await within(regs[1].unregister())
    got = [await within(caller.call(proc)) for _ in range(4)]
    assert sorted(got) == [0, 0, 2, 2] and got[0] != got[1] and got[1] != got[2], got
    late = await clients.connect(router, "ws", "msgpack")
    await register(late, named(3), proc, invoke="roundrobin")
    got = [await within(caller.call(proc)) for _ in range(6)]
    assert sorted(got) == [0, 0, 2, 2, 3, 3], got


async def test_shared_registration_first_and_last(router, clients):
    """shared_registration, `first` / `last`: every call goes to the callee registered first
    (last); when it leaves, the next one in registration order takes over; a newly registered
    callee becomes the `last`."""
    callees = [await clients.connect(router, t, s)
               for t, s in (("ws", "json"), ("rs", "msgpack"), ("unix", "cbor"))]
    caller = await clients.connect(router, "ws", "msgpack")
    first = [await register(c, named(f"f{i}"), "com.adv.shared.first", invoke="first")
             for i, c in enumerate(callees)]
    last = [await register(c, named(f"l{i}"), "com.adv.shared.last", invoke="last")
            for i, c in enumerate(callees)]
    assert [await within(caller.call("com.adv.shared.first")) for _ in range(3)] == ["f0"] * 3
    assert [await within(caller.call("com.adv.shared.last")) for _ in range(3)] == ["l2"] * 3
    await within(first[0].unregister())
    await within(last[2].unregister())
    assert await within(caller.call("com.adv.shared.first")) == "f1"
    assert await within(caller.call("com.adv.shared.last")) == "l1"
    newcomer = await clients.connect(router, "rs", "cbor")
    await register(newcomer, named("f3"), "com.adv.shared.first", invoke="first")
    await register(newcomer, named("l3"), "com.adv.shared.last", invoke="last")
    assert await within(caller.call("com.adv.shared.first")) == "f1"
    assert await within(caller.call("com.adv.shared.last")) == "l3"
    callees[1].drop()  # f1 / l1 leave by losing the connection
    await within(callees[1].disconnected)

    async def first_is_f2():
        while True:
            try:
                if await caller.call("com.adv.shared.first") == "f2":
                    return
            except ApplicationError as e:  # the call reached f1 just before it was gone
                assert e.error == "wamp.error.canceled", e
            await asyncio.sleep(0.01)

    await within(first_is_f2(), what="`first` moves on when the first callee leaves")
    assert await within(caller.call("com.adv.shared.last")) == "l3"


async def test_shared_registration_random(router, clients):
    """shared_registration, `random`: calls are spread over all callees (60 calls over 3
    callees reach each of them; the chance that a fair random pick misses one is ~1e-10)."""
    proc = "com.adv.shared.random"
    callees = [await clients.connect(router, t, s)
               for t, s in (("ws", "json"), ("rs", "msgpack"), ("unix", "cbor"))]
    caller = await clients.connect(router, "ws", "cbor")
    for i, c in enumerate(callees):
        await register(c, named(i), proc, invoke="random")
    got = await within(asyncio.gather(*(caller.call(proc) for _ in range(60))))
    counts = {i: got.count(i) for i in range(3)}
    assert all(n > 0 for n in counts.values()), counts


async def test_shared_registration_policy_mismatch(router, clients, raw):
    """A REGISTER whose invocation policy differs from the existing registration's is refused
    with wamp.error.procedure_already_exists (roundrobin vs random, roundrobin vs single, single
    vs roundrobin); the existing registration keeps working; an unknown policy gets
    wamp.error.invalid_argument."""
    a = await clients.connect(router, "ws", "json")
    b = await clients.connect(router, "rs", "msgpack")
    await register(a, named("a"), "com.adv.mismatch.rr", invoke="roundrobin")
    await register(a, named("a"), "com.adv.mismatch.single")
    for proc, invoke in (("com.adv.mismatch.rr", "random"), ("com.adv.mismatch.rr", "single"),
                         ("com.adv.mismatch.rr", "first"),
                         ("com.adv.mismatch.single", "roundrobin")):
        e = await error_of(b.register(named("b"), proc, options=RegisterOptions(invoke=invoke)))
        assert e.error == "wamp.error.procedure_already_exists", (proc, invoke, e.error)
    assert await within(b.call("com.adv.mismatch.rr")) == "a"
    assert await within(b.call("com.adv.mismatch.single")) == "a"
    r = await raw_session(raw, router, "ws", "cbor")
    req = r.request_id()
    await r.send(REGISTER, req, {"invoke": "sometimes"}, "com.adv.mismatch.bogus")
    m = await r.error_for(REGISTER, req)
    assert m[4] == "wamp.error.invalid_argument", m


# ----------------------------------------------------------------------------------------------
# Caller identification
# ----------------------------------------------------------------------------------------------


async def test_caller_identification_disclose_me(router, clients, raw):
    """caller_identification: CALL with `disclose_me` gives the callee's INVOCATION.Details
    `caller` (session id), `caller_authid` and `caller_authrole`; without it (and a role that does
    not disclose) none of them is sent."""
    callee = await clients.connect(router, "unix", "msgpack", cls=RecordingClient)

    def who(details=None):
        return [details.caller, details.caller_authid, details.caller_authrole]

    await register(callee, who, "com.adv.ident.who")
    caller = await raw_session(raw, router, "rs", "json")
    res = await caller.call_result("com.adv.ident.who", disclose_me=True)
    assert res[3] == [[caller.id, caller.details["authid"], "anonymous"]]
    res = await caller.call_result("com.adv.ident.who")
    assert res[3] == [[None, None, None]]
    res = await caller.call_result("com.adv.ident.who", disclose_me=False)
    assert res[3] == [[None, None, None]]
    assert [m.caller for m in callee.received(Invocation)] == [caller.id, None, None]


async def test_caller_identification_by_role(router, clients):
    """caller_identification by configuration: a role whose permission has `disclose.caller:
    true` has every call disclosed without `disclose_me`; other roles are not disclosed."""
    callee = await clients.connect(router, "ws", "cbor")

    def who(details=None):
        return [details.caller, details.caller_authid, details.caller_authrole]

    await register(callee, who, "com.adv.ident.role")
    disclosed = await clients.connect(router, "ws", "json", path="disclosed")
    bob = await clients.connect(router, "ws", "msgpack", path="bob")
    assert await within(disclosed.call("com.adv.ident.role")) == \
        [session_id(disclosed), authid(disclosed), "disclosed"]
    assert await within(bob.call("com.adv.ident.role")) == [None, None, None]


# ----------------------------------------------------------------------------------------------
# Progressive call results and invocations
# ----------------------------------------------------------------------------------------------


async def test_progressive_call_results(router, clients):
    """progressive_call_results: a caller with `receive_progress` gets every progressive YIELD
    as a RESULT with `progress: true`, in order, then the final RESULT; several callers at once
    each get only their own; a caller without `receive_progress` gets only the final RESULT and
    its callee is not offered progress."""
    callee = await clients.connect(router, "ws", "msgpack")

    async def count(n, details=None):
        if details.progress is None:
            return "no progress offered"
        for i in range(n):
            details.progress(i, of=n)
            await asyncio.sleep(0)
        return f"done {n}"

    await register(callee, count, "com.adv.progress")
    callers = [await clients.connect(router, t, s, cls=RecordingClient)
               for t, s in (("ws", "json"), ("rs", "cbor"), ("unix", "msgpack"))]
    progress = {i: [] for i in range(3)}

    def on_progress(i):
        return lambda *a, **kw: progress[i].append((a, kw))

    results = await within(asyncio.gather(*(
        c.call("com.adv.progress", 5 + i, options=CallOptions(on_progress=on_progress(i)))
        for i, c in enumerate(callers))))
    assert results == ["done 5", "done 6", "done 7"]
    for i in range(3):
        assert progress[i] == [((k,), {"of": 5 + i}) for k in range(5 + i)]
        flags = [bool(m.progress) for m in callers[i].inbox if type(m).__name__ == "Result"]
        assert flags == [True] * (5 + i) + [False]
    assert await within(callers[0].call("com.adv.progress", 3)) == "no progress offered"


async def test_progressive_call_invocations(router, raw):
    """progressive_call_invocations: CALLs with `progress: true` and the same request id reach
    the callee as INVOCATIONs with the same request id and `progress: true`, in order; the CALL
    without `progress` is the last (INVOCATION without `progress`); combined with progressive
    results the callee can answer each chunk; the final YIELD is the final RESULT."""
    callee = await raw_session(raw, router, "ws", "msgpack")
    caller = await raw_session(raw, router, "rs", "cbor")
    reg = await callee.register("com.adv.upload")
    req = await caller.call("com.adv.upload", [b"chunk-0"], progress=True, receive_progress=True)
    inv = await callee.expect(INVOCATION)
    inv_id = inv[1]
    assert inv[2] == reg and inv[3].get("progress") is True and \
        inv[3].get("receive_progress") is True and inv[4] == [b"chunk-0"], inv
    await callee.send(YIELD, inv_id, {"progress": True}, ["ack 0"])
    res = await caller.expect(RESULT, req)
    assert res[2].get("progress") is True and res[3] == ["ack 0"], res
    for i in (1, 2):
        await caller.call("com.adv.upload", [f"chunk-{i}".encode()], request=req, progress=True)
        inv = await callee.expect(INVOCATION)
        assert inv[1] == inv_id and inv[3].get("progress") is True and \
            inv[4] == [f"chunk-{i}".encode()], inv
    await caller.call("com.adv.upload", [b"last"], {"final": True}, request=req)
    inv = await callee.expect(INVOCATION)
    assert inv[1] == inv_id and not inv[3].get("progress") and inv[4:] == [[b"last"],
                                                                          {"final": True}], inv
    await callee.send(YIELD, inv_id, {}, ["4 chunks"])
    res = await caller.expect(RESULT, req)
    assert not res[2].get("progress") and res[3] == ["4 chunks"], res
    # the call is over: the same request id starts a new call
    req2 = await caller.call("com.adv.upload", ["again"], request=req)
    inv = await callee.expect(INVOCATION)
    assert inv[1] != inv_id and inv[4] == ["again"]
    await callee.send(YIELD, inv[1], {}, ["ok"])
    assert (await caller.expect(RESULT, req2))[3] == ["ok"]


async def test_progressive_call_invocations_options_frozen(router, raw):
    """progressive_call_invocations, "freezing of options": the options of the initiating
    progressive CALL hold for the whole call, so every INVOCATION of it (not only the first)
    carries the caller's identity when the CALL had `disclose_me`, and the `procedure` of a
    pattern registration (the Details of later INVOCATIONs are based on the initiating CALL)."""
    callee = await raw_session(raw, router, "ws", "json")
    await callee.register("com.adv.frozen", match="prefix")
    caller = await raw_session(raw, router, "unix", "msgpack")
    req = await caller.call("com.adv.frozen.x", [0], progress=True, disclose_me=True)
    details = [(await callee.expect(INVOCATION))[3]]
    for i in (1, 2):
        await caller.call("com.adv.frozen.x", [i], request=req, progress=i < 2)
        details.append((await callee.expect(INVOCATION))[3])
    for i, d in enumerate(details):
        assert (d.get("caller"), d.get("caller_authid"), d.get("caller_authrole")) == \
            (caller.id, caller.details["authid"], "anonymous"), (i, d)
        assert d.get("procedure") == "com.adv.frozen.x", (i, d)


async def test_progressive_call_invocations_caller_leaves(router, raw):
    """progressive_call_invocations, "progressive call cancellation": when the caller of a
    progressive call in flight goes away, the dealer sends the callee INTERRUPT with mode
    `killnowait` for that invocation."""
    callee = await raw_session(raw, router, "ws", "cbor")
    await callee.register("com.adv.upload.gone")
    caller = await raw_session(raw, router, "rs", "json")
    await caller.call("com.adv.upload.gone", [b"chunk-0"], progress=True)
    inv = await callee.expect(INVOCATION)
    await caller.close()
    intr = await callee.expect(INTERRUPT, inv[1], timeout=1,
                                what="INTERRUPT after the caller left")
    assert intr[2].get("mode") == "killnowait", intr


async def test_progressive_call_invocations_need_callee_canceling(router, raw):
    """progressive_call_invocations: a callee that announces progressive_call_invocations but
    not call_canceling counts as not supporting progressive call invocations: a progressive CALL
    to it gets wamp.error.feature_not_supported."""
    roles = {"callee": {"features": {"progressive_call_invocations": True}}}
    callee = await raw_session(raw, router, "ws", "json", roles=roles)
    await callee.register("com.adv.upload.nocancel")
    caller = await raw_session(raw, router, "rs", "cbor")
    req = await caller.call("com.adv.upload.nocancel", ["chunk"], progress=True)
    m = await caller.answer_for_call(req, timeout=1)
    assert m[0] == ERROR and m[4] == "wamp.error.feature_not_supported", m


async def test_progressive_call_invocations_unsupported_callee(router, clients, raw):
    """A progressive CALL (`progress: true`) to a callee that does not announce
    progressive_call_invocations (autobahn) is refused with wamp.error.feature_not_supported and
    the callee is not invoked."""
    callee = await clients.connect(router, "ws", "json")
    invoked = []
    await register(callee, lambda *a, **kw: invoked.append(a), "com.adv.upload.ab")
    caller = await raw_session(raw, router, "rs", "msgpack")
    req = await caller.call("com.adv.upload.ab", ["chunk"], progress=True)
    m = await caller.error_for(CALL, req)
    assert m[4] == "wamp.error.feature_not_supported", m
    assert (await caller.call_result("com.adv.upload.ab", ["plain"]))[3] == [None]
    assert invoked == [("plain",)]


# ----------------------------------------------------------------------------------------------
# Call timeouts
# ----------------------------------------------------------------------------------------------


async def test_call_timeout(router, clients, raw):
    """call_timeout: a CALL with `timeout` (ms) that the callee does not answer in time is ended
    by the router: the caller gets ERROR wamp.error.canceled (after the timeout, not before),
    the callee an INTERRUPT (mode killnowait) for that invocation, whose details carried
    `timeout`; the callee's late answer is dropped."""
    ab_callee = await clients.connect(router, "ws", "msgpack")
    blocking = Blocking()
    await register(ab_callee, blocking, "com.adv.timeout.ab")
    raw_callee = await raw_session(raw, router, "unix", "json")
    await raw_callee.register("com.adv.timeout.raw")
    caller = await clients.connect(router, "rs", "cbor")
    t0 = time.monotonic()
    calls = [caller.call("com.adv.timeout.ab", 1, options=CallOptions(timeout=300)),
             caller.call("com.adv.timeout.raw", 2, options=CallOptions(timeout=300))]
    errors = await within(asyncio.gather(*(error_of(c) for c in calls)))
    elapsed = time.monotonic() - t0
    assert [e.error for e in errors] == ["wamp.error.canceled"] * 2
    assert 0.25 <= elapsed < 3, f"timeout of 300 ms fired after {elapsed:.3f}s"
    await eventually(lambda: blocking.interrupted == [(1,)], what="autobahn callee interrupted")
    inv = await raw_callee.expect(INVOCATION)
    assert inv[3].get("timeout") == 300, inv
    intr = await raw_callee.expect(INTERRUPT)
    assert intr[1] == inv[1] and intr[2].get("mode") == "killnowait", intr
    await raw_callee.send(YIELD, inv[1], {}, ["too late"])
    # both still work, and the late YIELD reached nobody
    blocking.release.set()
    assert await within(caller.call("com.adv.timeout.ab", 3, options=CallOptions(timeout=2000))) \
        == "released (3,)"


async def test_call_timeout_not_reached(router, clients, raw):
    """A call answered before its `timeout` returns its RESULT, and the callee gets no
    INTERRUPT later."""
    callee = await raw_session(raw, router, "ws", "cbor")
    await callee.register("com.adv.timeout.fast")
    caller = await clients.connect(router, "unix", "json")
    call = asyncio.ensure_future(caller.call("com.adv.timeout.fast", options=CallOptions(timeout=200)))
    inv = await callee.expect(INVOCATION)
    await callee.send(YIELD, inv[1], {}, ["quick"])
    assert await within(call) == "quick"
    late = await callee.drain(0.35)
    assert [m for m in late if m[0] == INTERRUPT] == [], late


async def test_call_timeout_callee_without_canceling(router, clients, raw):
    """A call timing out at a callee that does not announce call_canceling: the caller gets
    wamp.error.canceled, the callee gets no INTERRUPT (mode skip), and its late YIELD is dropped
    without harm."""
    callee = await raw_session(raw, router, "rs", "json", roles=BARE_ROLES)
    await callee.register("com.adv.timeout.bare")
    caller = await raw_session(raw, router, "ws", "msgpack")
    req = await caller.call("com.adv.timeout.bare", [1], timeout=150)
    inv = await callee.expect(INVOCATION)
    m = await caller.error_for(CALL, req)
    assert m[4] == "wamp.error.canceled", m
    await callee.send(YIELD, inv[1], {}, ["late"])
    # a barrier: the next call is answered, and nothing for the first one came in between
    req2 = await caller.call("com.adv.timeout.bare", [2])
    inv2 = await callee.expect(INVOCATION)
    await callee.send(YIELD, inv2[1], {}, ["second"])
    assert (await caller.expect(RESULT, req2))[3] == ["second"]
    assert [m for m in callee.pending if m[0] == INTERRUPT] == []
    assert [m for m in caller.pending if m[1] == req or (m[0] == ERROR and m[2] == req)] == []


async def test_timeout_while_progressive_results_flow(router, clients):
    """A `timeout` firing while progressive results flow ends the call: the caller got some
    progressive results, then ERROR wamp.error.canceled, and no progressive result after it;
    the callee is interrupted and its further progress is dropped."""
    callee = await clients.connect(router, "ws", "json")
    interrupted = asyncio.Event()

    async def stream(details=None):
        try:
            for i in range(1000):
                details.progress(i)
                await asyncio.sleep(0.02)
        except asyncio.CancelledError:
            interrupted.set()
            raise
        return "never"

    await register(callee, stream, "com.adv.timeout.stream")
    caller = await clients.connect(router, "rs", "msgpack")
    progress = []
    t0 = time.monotonic()
    e = await error_of(caller.call("com.adv.timeout.stream", options=CallOptions(
        timeout=400, on_progress=lambda i: progress.append(i))))
    assert e.error == "wamp.error.canceled"
    assert time.monotonic() - t0 >= 0.35
    n = len(progress)
    assert n >= 3 and progress == list(range(n)), progress
    await within(interrupted.wait(), what="INTERRUPT at the streaming callee")
    await settle(0.1)
    assert len(progress) == n, "progressive results arrived after the call timed out"


async def test_stale_timeout_does_not_hit_a_later_session(router, clients, raw):
    """A call `timeout` belongs to its call only: a callee that leaves (GOODBYE) with a timed
    call in flight and joins again on the same connection starts numbering its INVOCATIONs
    anew; the old call's timer must not cancel the new session's invocation that happens to
    have the same request id (the call, made without a timeout, is answered after the old
    deadline and its RESULT reaches the caller; the callee gets no INTERRUPT)."""
    callee = await raw_session(raw, router, "rs", "json")
    await callee.register("com.adv.stale.p")
    caller = await clients.connect(router, "ws", "msgpack")
    first = asyncio.ensure_future(caller.call("com.adv.stale.p", 1,
                                              options=CallOptions(timeout=400)))
    inv = await callee.expect(INVOCATION)
    await callee.leave()
    assert (await error_of(first)).error == "wamp.error.canceled"
    # the same connection joins again as a new session and registers the procedure again
    await callee.send(HELLO, "realm1", {"roles": FULL_ROLES})
    welcome = await callee.expect(WELCOME)
    assert welcome[1] != callee.id
    await callee.register("com.adv.stale.p")
    second = asyncio.ensure_future(caller.call("com.adv.stale.p", 2))  # no timeout
    inv2 = await callee.expect(INVOCATION)
    assert inv2[1] == inv[1], "test premise: the new session reuses the INVOCATION id"
    # well past the old call's deadline (400 ms after the first call), then answer
    late = await callee.drain(0.6)
    await callee.send(YIELD, inv2[1], {}, ["answered"])
    outcome = await within(asyncio.gather(second, return_exceptions=True))
    assert outcome == ["answered"], f"the new call ended with {outcome!r}"
    assert [m for m in late if m[0] == INTERRUPT] == [], late


# ----------------------------------------------------------------------------------------------
# Call canceling
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["skip", "kill", "killnowait"])
async def test_cancel_modes(router, clients, raw, mode):
    """call_canceling: CANCEL `skip` answers the caller at once with wamp.error.canceled and
    does not interrupt the callee (whose answer is dropped); `kill` interrupts the callee and
    passes on the callee's own answer (here its ERROR); `killnowait` interrupts the callee and
    answers the caller at once with wamp.error.canceled (dropping the callee's answer)."""
    proc = f"com.adv.cancel.{mode}"
    callee = await clients.connect(router, "ws", "cbor")
    blocking = Blocking(on_interrupt=ApplicationError("com.adv.cleaned_up", "interrupted"))
    await register(callee, blocking, proc)
    await register(callee, lambda x, details=None: x, proc + ".echo")
    caller = await raw_session(raw, router, "rs", "json")
    req = await caller.call(proc, [1])
    await eventually(lambda: blocking.invoked, what="INVOCATION at the callee")
    await caller.send(CANCEL, req, {"mode": mode})
    answer = await caller.answer_for_call(req)
    if mode == "kill":
        assert answer[0] == ERROR and answer[4] == "com.adv.cleaned_up", answer
        assert answer[5] == ["interrupted"], answer
    else:
        assert answer[0] == ERROR and answer[4] == "wamp.error.canceled", answer
    if mode == "skip":
        await settle(0.1)
        assert blocking.interrupted == [], "skip must not interrupt the callee"
        blocking.release.set()  # the callee answers now: that answer must be dropped
    else:
        await eventually(lambda: blocking.interrupted == [(1,)], what="INTERRUPT at the callee")
    await settle(0.05)
    res = await caller.call_result(proc + ".echo", ["barrier"])
    assert res[3] == ["barrier"]
    stray = [m for m in caller.pending if m[1] == req or (m[0] == ERROR and m[2] == req)]
    assert stray == [], f"a second answer for the canceled call: {stray}"


async def test_cancel_from_autobahn(router, clients):
    """call_canceling with autobahn on both sides: cancelling the call's future sends CANCEL
    (without options: the default mode, killnowait); the callee's endpoint is interrupted; both
    sessions go on working."""
    callee = await clients.connect(router, "unix", "msgpack")
    blocking = Blocking()
    await register(callee, blocking, "com.adv.cancel.ab")
    caller = await clients.connect(router, "ws", "json")
    call = caller.call("com.adv.cancel.ab", 7)
    await eventually(lambda: blocking.invoked, what="INVOCATION at the callee")
    call.cancel()
    await eventually(lambda: blocking.interrupted == [(7,)], what="INTERRUPT at the callee")
    blocking.release.set()
    assert await within(caller.call("com.adv.cancel.ab", 8)) == "released (8,)"
    assert caller.is_attached() and callee.is_attached()


async def test_cancel_errors(router, clients, raw):
    """A CANCEL with an unknown mode gets ERROR wamp.error.invalid_argument (for the CANCEL) and
    leaves the call running; a CANCEL for a call that is not in flight is ignored."""
    callee = await raw_session(raw, router, "ws", "json")
    await callee.register("com.adv.cancel.bad")
    caller = await raw_session(raw, router, "unix", "cbor")
    await caller.send(CANCEL, 4242, {"mode": "kill"})  # nothing in flight: ignored
    req = await caller.call("com.adv.cancel.bad")
    inv = await callee.expect(INVOCATION)
    await caller.send(CANCEL, req, {"mode": "politely"})
    m = await caller.error_for(CANCEL, req)
    assert m[4] == "wamp.error.invalid_argument", m
    await callee.send(YIELD, inv[1], {}, ["still running"])
    assert (await caller.expect(RESULT, req))[3] == ["still running"]
    assert [m for m in callee.pending if m[0] == INTERRUPT] == []


@pytest.mark.parametrize("mode", ["skip", "kill", "killnowait"])
async def test_cancel_races_yield(router, raw, mode):
    """A CANCEL that crosses the callee's YIELD: the caller gets exactly one answer for the call
    (the RESULT, or ERROR wamp.error.canceled), never both, and both sessions go on working;
    repeated 10 times."""
    proc = f"com.adv.race.{mode}"
    callee = await raw_session(raw, router, "ws", "msgpack")
    await callee.register(proc)
    caller = await raw_session(raw, router, "rs", "json")
    outcomes = []
    for i in range(10):
        req = await caller.call(proc, [i])
        inv = await callee.expect(INVOCATION)
        await asyncio.gather(callee.send(YIELD, inv[1], {}, [i]),
                             caller.send(CANCEL, req, {"mode": mode}))
        answer = await caller.answer_for_call(req)
        if answer[0] == RESULT:
            assert answer[3] == [i], answer
            outcomes.append("result")
        else:
            assert answer[4] == "wamp.error.canceled", answer
            outcomes.append("canceled")
        # barrier: a fresh call goes through; no second answer for `req` arrives before it
        req2 = await caller.call(proc, ["barrier"])
        inv2 = await callee.expect(INVOCATION)
        await callee.send(YIELD, inv2[1], {}, ["barrier"])
        assert (await caller.expect(RESULT, req2))[3] == ["barrier"]
        stray = [m for m in caller.pending if m[1] == req or (m[0] == ERROR and m[2] == req)]
        assert stray == [], f"round {i}: a second answer for the call: {stray}"
        callee.pending = [m for m in callee.pending if m[0] == INTERRUPT]
    assert len(outcomes) == 10


# ----------------------------------------------------------------------------------------------
# Sessions leaving with calls in flight
# ----------------------------------------------------------------------------------------------


async def test_callee_leaves_with_calls_in_flight(router, clients):
    """A callee of a shared (roundrobin) registration that loses its connection with several
    calls in flight from several callers: exactly those calls fail with wamp.error.canceled,
    the calls at the other callee complete normally, and later calls go to the remaining callee;
    a progressive call in flight ends with wamp.error.canceled after its progress."""
    proc = "com.adv.leave.rr"
    a = await clients.connect(router, "ws", "json")
    b = await clients.connect(router, "rs", "msgpack")
    blocking_a, blocking_b = Blocking(), Blocking()
    await register(a, blocking_a, proc, invoke="roundrobin")
    await register(b, blocking_b, proc, invoke="roundrobin")

    async def progressive(details=None):
        details.progress("started")
        await asyncio.sleep(3600)

    await register(a, progressive, proc + ".stream")
    callers = [await clients.connect(router, t, s)
               for t, s in (("unix", "cbor"), ("ws", "msgpack"), ("rs", "json"))]
    calls = []
    for i in range(6):
        calls.append(asyncio.ensure_future(callers[i % 3].call(proc, i)))
        await eventually(lambda: len(blocking_a.invoked) + len(blocking_b.invoked) == i + 1,
                         what=f"call {i} invoked")
    progress = []
    stream = asyncio.ensure_future(callers[0].call(proc + ".stream", options=CallOptions(
        on_progress=lambda x: progress.append(x))))
    await eventually(lambda: progress == ["started"], what="progressive result before the leave")
    at_a = [args[0] for args in blocking_a.invoked]
    at_b = [args[0] for args in blocking_b.invoked]
    assert sorted(at_a + at_b) == list(range(6)) and len(at_a) == 3, (at_a, at_b)
    a.drop()
    for i in at_a:
        e = await error_of(calls[i])
        assert e.error == "wamp.error.canceled", (i, e.error)
    e = await error_of(stream)
    assert e.error == "wamp.error.canceled"
    assert not any(calls[i].done() for i in at_b), "calls at the remaining callee were ended"
    blocking_b.release.set()
    for i in at_b:
        assert await within(calls[i]) == f"released ({i},)"
    for c in callers:
        assert await within(c.call(proc, "after")) == "released ('after',)"


async def test_caller_leaves_with_call_in_flight(router, clients, raw):
    """A caller that loses its connection with a call in flight: the callee's later YIELD is
    dropped without harm; callee and other callers go on working."""
    callee = await raw_session(raw, router, "ws", "cbor")
    await callee.register("com.adv.leave.caller")
    leaving = await clients.connect(router, "rs", "json")
    call = asyncio.ensure_future(leaving.call("com.adv.leave.caller", 1))
    inv = await callee.expect(INVOCATION)
    leaving.drop()
    await within(leaving.disconnected)
    await settle(0.05)
    await callee.send(YIELD, inv[1], {}, ["nobody listens"])
    other = await clients.connect(router, "unix", "msgpack")
    call2 = asyncio.ensure_future(other.call("com.adv.leave.caller", 2))
    inv2 = await callee.expect(INVOCATION)
    assert inv2[4] == [2]
    await callee.send(YIELD, inv2[1], {}, ["ok"])
    assert await within(call2) == "ok"
    call.cancel()


# ----------------------------------------------------------------------------------------------
# Payload pass-through mode
# ----------------------------------------------------------------------------------------------


async def test_payload_passthru_rpc(router, raw):
    """payload_passthru_mode (dealer): `ppt_*` options of a CALL reach the callee in
    INVOCATION.Details with the opaque payload unchanged, and those of the YIELD reach the
    caller in RESULT.Details (json caller, msgpack callee)."""
    callee = await raw_session(raw, router, "unix", "msgpack")
    await callee.register("com.adv.ppt.rpc")
    caller = await raw_session(raw, router, "ws", "json")
    ppt = {"ppt_scheme": "x_custom", "ppt_serializer": "cbor", "ppt_keyid": "k1"}
    req = caller.request_id()
    await caller.send(CALL, req, ppt, "com.adv.ppt.rpc", b"\x00opaque\xff")
    inv = await callee.expect(INVOCATION)
    assert {k: inv[3].get(k) for k in ppt} == ppt and inv[4:] == [b"\x00opaque\xff"], inv
    await callee.send(YIELD, inv[1], dict(ppt, ppt_keyid="k2"), b"\x01reply")
    res = await caller.expect(RESULT, req)
    assert {k: res[2].get(k) for k in ppt} == dict(ppt, ppt_keyid="k2") and \
        res[3:] == [b"\x01reply"], res


async def test_payload_passthru_to_callee_without_ppt(router, raw):
    """payload_passthru_mode: a CALL in payload passthru mode (`ppt_scheme`) that would be routed
    to a callee that does not announce payload_passthru_mode is an application error: the
    caller gets wamp.error.feature_not_supported and the callee is not invoked."""
    callee = await raw_session(raw, router, "unix", "msgpack", roles=BARE_ROLES)
    await callee.register("com.adv.ppt.bare")
    caller = await raw_session(raw, router, "ws", "json")
    req = caller.request_id()
    await caller.send(CALL, req, {"ppt_scheme": "x_custom"}, "com.adv.ppt.bare", b"opaque")
    m = await caller.answer_for_call(req, timeout=1)
    assert m[0] == ERROR and m[4] == "wamp.error.feature_not_supported", m
