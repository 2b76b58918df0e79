"""Authentication and dynamic authorization seen by a real client (autobahn 26.10.2, asyncio),
over WebSocket (a `web` path and a standalone `websocket` transport) and RawSocket (TCP):
`anonymous`, `ticket`, `wampcra` (plain and salted) and `cryptosign`, each static and dynamic;
several methods on one transport; refusals that tell nothing about what was wrong; principals
bound to another realm; a stalled handshake; dynamic authorizers that allow, deny, throw and
cache; and no secret in the router's log.

One router serves the module (`arouter`, see authsupport.AuthRouter): its auth sections are
AUTHS below. Dynamic authenticators and authorizers are autobahn sessions of the test that join
anonymously on the default `/ws` transport and register the procedures.
"""

from __future__ import annotations

import asyncio
import json
import time

import pytest
from autobahn.asyncio.component import Component
from autobahn.wamp.exception import ApplicationError
from autobahn.wamp.types import PublishOptions, RegisterOptions, SubscribeOptions

from authsupport import (
    AuthRouter,
    answer_any,
    answer_cryptosign,
    answer_ticket,
    answer_wampcra,
    auth_connect,
    derive_key,
    keypair,
    refused,
)
from interop import (
    ALLOW_ALL,
    ALLOW_SUBSCRIBE_ONLY,
    AUTHID_RE,
    HELLO_ROLES,
    RawSocketConn,
    RawWebSocketConn,
    eventually,
    realm,
    role,
    serve_module,
    start_or_fail,
    within,
)

FAILED = "wamp.error.authentication_failed"
NOT_AUTHORIZED = "wamp.error.not_authorized"

# ----------------------------------------------------------------------------------------------
# Credentials (each secret is a distinctive string, so the log test can look for it)
# ----------------------------------------------------------------------------------------------

TICKET_ALICE = "tkt-Alice-9c1e77a2"
TICKET_BOB = "tkt-Bob-4f0d2b19"  # realm2 only
TICKET_ZED = "tkt-Zed-61aa0c3e"  # role with a dynamic authorizer
CRA_CAROL = "cra-Carol-d81f3b05"
CRA_ERIN = "cra-Erin-77c2a9d1"  # realm2 only
DAVE_PASSWORD = "pw-Dave-0b7e5c44"
DAVE_SALT, DAVE_ITERATIONS, DAVE_KEYLEN = "salt-Dave-x1", 100, 32
DAVE_KEY = derive_key(DAVE_PASSWORD, DAVE_SALT, DAVE_ITERATIONS, DAVE_KEYLEN)

FRANK = keypair(1)
FRANK_2 = keypair(3)  # frank's second key (configured in upper case)
GRACE = keypair(2)  # realm2 only
STRANGER = keypair(9)  # nobody's
DYN_KEY = keypair(5)  # known to the dynamic authenticator

# the dynamic authenticator's principals
DYN_TICKETS = {"dyn-alice": "dyn-tkt-Alice-3e5f9b20"}
DYN_CRA_PLAIN = {"dyn-carol": "dyn-cra-Carol-a4c6e8f0"}
DYN_DAVE_PASSWORD = "dyn-pw-Dave-55aa33cc"
DYN_DAVE_SALT, DYN_DAVE_ITERATIONS, DYN_DAVE_KEYLEN = "dyn-salt-Dave", 50, 24
DYN_DAVE_KEY = derive_key(DYN_DAVE_PASSWORD, DYN_DAVE_SALT, DYN_DAVE_ITERATIONS, DYN_DAVE_KEYLEN)

WRONG = "wrong-Secret-cafe1234"

SECRETS = [TICKET_ALICE, TICKET_BOB, TICKET_ZED, CRA_CAROL, CRA_ERIN, DAVE_PASSWORD, DAVE_KEY,
           *DYN_TICKETS.values(), *DYN_CRA_PLAIN.values(), DYN_DAVE_PASSWORD, DYN_DAVE_KEY, WRONG,
           FRANK[0], FRANK_2[0], GRACE[0], STRANGER[0], DYN_KEY[0]]

AUTHENTICATE = "com.test.authenticate"
AUTHENTICATE_REMOTE = "com.test.authenticate.remote"
AUTHORIZE = "com.test.authorize"


def _dynamic(procedure: str = AUTHENTICATE, realm_name: str | None = None) -> dict:
    d = {"type": "dynamic", "authenticator": procedure}
    if realm_name:
        d["authenticator-realm"] = realm_name
    return d


AUTHS = {
    # every method, static, on one transport
    "static": {
        "anonymous": {"type": "static", "role": "guest", "authid": "the-guest"},
        "ticket": {"type": "static", "principals": {
            "alice": {"ticket": TICKET_ALICE, "role": "user"},
            "bob": {"ticket": TICKET_BOB, "role": "user", "realm": "realm2"},
            "zed": {"ticket": TICKET_ZED, "role": "authorized"},
        }},
        "wampcra": {"type": "static", "users": {
            "carol": {"secret": CRA_CAROL, "role": "user"},
            "dave": {"secret": DAVE_PASSWORD, "role": "user", "salt": DAVE_SALT,
                     "iterations": DAVE_ITERATIONS, "keylen": DAVE_KEYLEN},
            "erin": {"secret": CRA_ERIN, "role": "user", "realm": "realm2"},
        }},
        "cryptosign": {"type": "static", "principals": {
            "frank": {"authorized_keys": [FRANK[1], FRANK_2[1].upper()], "role": "user"},
            "grace": {"authorized_keys": [GRACE[1]], "role": "user", "realm": "realm2"},
        }},
    },
    "ticketonly": {
        "ticket": {"type": "static", "principals": {"alice": {"ticket": TICKET_ALICE,
                                                              "role": "user"}}},
    },
    # every method, dynamic, one authenticator
    "dynamic": {
        "anonymous": _dynamic(),
        "ticket": _dynamic(),
        "wampcra": _dynamic(),
        "cryptosign": _dynamic(),
    },
    # an authenticator registered on another realm
    "remote": {"ticket": _dynamic(AUTHENTICATE_REMOTE, "authrealm")},
}

REALMS = [
    realm("realm1", roles=[
        role("anonymous", ALLOW_ALL),
        role("user", ALLOW_ALL),
        role("guest", ALLOW_SUBSCRIBE_ONLY),
        {"name": "authorized", "authorizer": AUTHORIZE},
    ]),
    realm("realm2", roles=[role("anonymous", ALLOW_ALL), role("user", ALLOW_ALL)]),
    realm("authrealm", roles=[role("anonymous", ALLOW_ALL)]),
]

#: (transport, serializer) for the successful joins: a `web` WebSocket path, RawSocket over TCP,
#: and a standalone `websocket` transport
JOIN_TS = [("ws", "json"), ("rs", "cbor"), ("wst", "msgpack")]
#: (transport, serializer) for the rest
TS2 = [("ws", "msgpack"), ("rs", "json")]


def _ids(ts):
    return [f"{t}-{s}" for t, s in ts]


def _router(tmp_path_factory) -> AuthRouter:
    return AuthRouter(tmp_path_factory.mktemp("authrouter"), auths=AUTHS, wst_auth="static",
                      realms=REALMS)


@pytest.fixture(scope="module")
def arouter(tmp_path_factory):
    yield from serve_module(_router(tmp_path_factory))


class _Auth:
    """Authenticating connects whose sessions the `clients` fixture closes after the test."""

    def __init__(self, router, clients):
        self.router = router
        self.clients = clients

    async def join(self, transport="ws", serializer="json", realm="realm1", **kw):
        s = await auth_connect(self.router, transport, serializer, realm, **kw)
        self.clients.sessions.append(s)
        return s

    async def refuse(self, transport="ws", serializer="json", realm="realm1", *,
                     reason: str | None = FAILED, **kw):
        """The ABORT of a join that must fail; asserts its reason and a non-empty message."""
        e = await refused(self.join(transport, serializer, realm, **kw))
        d = e.details
        if reason is not None:
            assert d.reason == reason, f"ABORT {d.reason}: {d.message}"
        assert isinstance(d.message, str) and d.message.strip(), d
        return e


@pytest.fixture
async def auth(arouter, clients):
    return _Auth(arouter, clients)


def _check_welcome(s, authid, authrole, authmethod, authprovider, authextra=None):
    d = s.joined.result()
    assert (d.authid, d.authrole, d.authmethod, d.authprovider) == \
        (authid, authrole, authmethod, authprovider), d
    assert (d.authextra or {}) == (authextra or {}), d.authextra
    w = s.welcome  # the WELCOME message itself
    assert (w.authid, w.authrole, w.authmethod, w.authprovider) == \
        (authid, authrole, authmethod, authprovider)
    return d


def _no_secret_in(text: str):
    for secret in SECRETS:
        assert secret not in text, f"a secret appears in {text!r}"


# ----------------------------------------------------------------------------------------------
# Static: every method, over every kind of transport
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("ts", JOIN_TS, ids=_ids(JOIN_TS))
async def test_static_anonymous(auth, ts):
    """Static anonymous with a configured role and authid; HELLO without authmethods means
    anonymous; the authid asked for in HELLO is not taken."""
    s = await auth.join(*ts, authmethods=["anonymous"])
    _check_welcome(s, "the-guest", "guest", "anonymous", "static")
    s = await auth.join(*ts, authid="mallory")
    _check_welcome(s, "the-guest", "guest", "anonymous", "static")
    assert s.challenges == []


@pytest.mark.parametrize("ts", JOIN_TS, ids=_ids(JOIN_TS))
async def test_static_ticket(auth, ts):
    """Static ticket: CHALLENGE ticket with empty extra, the right ticket gets WELCOME with the
    principal's role; the session works."""
    s = await auth.join(*ts, authmethods=["ticket"], authid="alice",
                        on_challenge=answer_ticket(TICKET_ALICE))
    _check_welcome(s, "alice", "user", "ticket", "static")
    assert [(c.method, c.extra) for c in s.challenges] == [("ticket", {})]
    proc = f"com.test.auth.ticket.{ts[0]}"
    await within(s.register(lambda x: x + 1, proc))
    assert await within(s.call(proc, 41)) == 42


@pytest.mark.parametrize("ts", JOIN_TS, ids=_ids(JOIN_TS))
async def test_static_wampcra(auth, ts):
    """Static WAMP-CRA: the challenge is Crossbar's JSON (authid, authrole, authmethod,
    authprovider, the session id WELCOME then gives, nonce, timestamp) and autobahn's
    compute_wcs answer is accepted; a salted user gets salt/iterations/keylen in CHALLENGE.extra
    and autobahn derives the key from the password."""
    s = await auth.join(*ts, authmethods=["wampcra"], authid="carol",
                        on_challenge=answer_wampcra(CRA_CAROL))
    d = _check_welcome(s, "carol", "user", "wampcra", "static")
    [c] = s.challenges
    assert c.method == "wampcra" and set(c.extra) == {"challenge"}, c.extra
    challenge = json.loads(c.extra["challenge"])
    assert list(challenge) == ["authid", "authrole", "authmethod", "authprovider", "session",
                               "nonce", "timestamp"], challenge
    assert challenge["authid"] == "carol" and challenge["authrole"] == "user"
    assert challenge["authmethod"] == "wampcra" and challenge["authprovider"] == "static"
    assert challenge["session"] == d.session
    assert isinstance(challenge["nonce"], str) and len(challenge["nonce"]) == 64

    s = await auth.join(*ts, authmethods=["wampcra"], authid="dave",
                        on_challenge=answer_wampcra(DAVE_PASSWORD))
    _check_welcome(s, "dave", "user", "wampcra", "static")
    [c] = s.challenges
    assert (c.extra["salt"], c.extra["iterations"], c.extra["keylen"]) == \
        (DAVE_SALT, DAVE_ITERATIONS, DAVE_KEYLEN), c.extra


@pytest.mark.parametrize("ts", JOIN_TS, ids=_ids(JOIN_TS))
async def test_static_cryptosign(auth, ts):
    """Static WAMP-Cryptosign: pubkey in HELLO.authextra, a 32-byte hex challenge with
    channel_binding null, autobahn's signature accepted; a principal's second key (configured in
    upper case) works; without authid the principal is found by its key."""
    s = await auth.join(*ts, authmethods=["cryptosign"], authid="frank",
                        authextra={"pubkey": FRANK[1]}, on_challenge=answer_cryptosign(FRANK[0]))
    _check_welcome(s, "frank", "user", "cryptosign", "static")
    [c] = s.challenges
    assert c.method == "cryptosign"
    assert len(bytes.fromhex(c.extra["challenge"])) == 32, c.extra
    assert c.extra.get("channel_binding") is None, c.extra

    s = await auth.join(*ts, authmethods=["cryptosign"], authid="frank",
                        authextra={"pubkey": FRANK_2[1]},
                        on_challenge=answer_cryptosign(FRANK_2[0]))
    _check_welcome(s, "frank", "user", "cryptosign", "static")

    s = await auth.join(*ts, authmethods=["cryptosign"], authextra={"pubkey": FRANK_2[1]},
                        on_challenge=answer_cryptosign(FRANK_2[0]))
    _check_welcome(s, "frank", "user", "cryptosign", "static")


CREDS = {
    "ticket": {"authid": "alice", "on_challenge": answer_ticket(TICKET_ALICE)},
    "wampcra": {"authid": "dave", "on_challenge": answer_wampcra(DAVE_PASSWORD)},
    "cryptosign": {"authid": "frank", "authextra": {"pubkey": FRANK[1]},
                   "on_challenge": answer_cryptosign(FRANK[0])},
}


@pytest.mark.parametrize("kind", ["ws", "rs"])
@pytest.mark.parametrize("method", ["anonymous", "ticket", "wampcra", "cryptosign"])
async def test_component_authentication(arouter, kind, method):
    """autobahn's Component with an `authentication` section, as applications configure it
    (autobahn's own AuthAnonymous / AuthTicket / AuthWampCra / AuthCryptoSign)."""
    url, _ = arouter.endpoint(kind, "static")
    transport = {"type": "websocket", "url": url, "serializers": ["cbor"]} if kind == "ws" \
        else {"type": "rawsocket", "url": url, "serializer": "msgpack"}
    transport["max_retries"] = 0
    authentication = {
        "anonymous": {},
        "ticket": {"authid": "alice", "ticket": TICKET_ALICE},
        "wampcra": {"authid": "dave", "secret": DAVE_PASSWORD},
        "cryptosign": {"authid": "frank", "privkey": FRANK[0]},
    }[method]
    comp = Component(transports=[transport], realm="realm1",
                     authentication={method: authentication})
    result = {}

    @comp.on_join
    async def joined(session, details):
        result["who"] = (details.authid, details.authrole, details.authmethod,
                         details.authprovider)
        session.leave()

    @comp.on_leave
    def left(session, details):
        result["leave"] = details.reason

    try:
        await within(comp.start(asyncio.get_running_loop()), what="Component run")
    except RuntimeError as e:
        # autobahn quirk (asyncio Component + rawsocket), see test_basic
        if kind == "ws" or "leave" not in result:
            raise AssertionError(f"Component failed: {e}; progress: {result}") from e
    expected = {
        "anonymous": ("the-guest", "guest"),
        "ticket": ("alice", "user"),
        "wampcra": ("dave", "user"),
        "cryptosign": ("frank", "user"),
    }[method]
    assert result.get("who") == (*expected, method, "static"), result
    assert result.get("leave", "").startswith("wamp.close."), result


# ----------------------------------------------------------------------------------------------
# Several methods on one transport
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("ts", TS2, ids=_ids(TS2))
async def test_methods_in_client_order(auth, ts):
    """The first of the client's authmethods that the transport offers is used; names it does not
    offer are skipped; the chosen method's failure is final (no fall back to the next one)."""
    answers = answer_any(ticket=answer_ticket(TICKET_ALICE), wampcra=answer_wampcra(CRA_CAROL),
                         cryptosign=answer_cryptosign(FRANK[0]))
    cases = [
        (["ticket", "wampcra"], "alice", "ticket", "alice"),
        (["wampcra", "ticket"], "carol", "wampcra", "carol"),
        (["scram", "tls", "cryptosign-proxy", "wampcra", "ticket"], "carol", "wampcra", "carol"),
        (["cryptosign", "ticket"], "frank", "cryptosign", "frank"),
        (["anonymous", "ticket"], "alice", "anonymous", "the-guest"),
    ]
    for methods, authid, method, welcome_authid in cases:
        s = await auth.join(*ts, authmethods=methods, authid=authid,
                            authextra={"pubkey": FRANK[1]}, on_challenge=answers)
        d = s.joined.result()
        assert (d.authmethod, d.authid) == (method, welcome_authid), (methods, d)
        assert [c.method for c in s.challenges] == ([] if method == "anonymous" else [method])

    # alice's wrong ticket is not retried as anonymous
    e = await auth.refuse(*ts, authmethods=["ticket", "anonymous"], authid="alice",
                          on_challenge=answer_ticket(WRONG))
    assert [c.method for c in e.session.challenges] == ["ticket"]


@pytest.mark.parametrize("ts", TS2, ids=_ids(TS2))
async def test_no_matching_auth_method(auth, ts):
    """A transport offering ticket only refuses HELLO without authmethods (anonymous) and HELLO
    with methods it does not offer, with wamp.error.no_matching_auth_method."""
    e = await auth.refuse(*ts, where="ticketonly", reason="wamp.error.no_matching_auth_method")
    assert e.session.challenges == []
    await auth.refuse(*ts, where="ticketonly", authmethods=["wampcra", "cryptosign"],
                      authid="alice", reason="wamp.error.no_matching_auth_method")
    s = await auth.join(*ts, where="ticketonly", authmethods=["anonymous", "ticket"],
                        authid="alice", on_challenge=answer_ticket(TICKET_ALICE))
    _check_welcome(s, "alice", "user", "ticket", "static")


@pytest.mark.parametrize("where", [None, "static"])
async def test_empty_authmethods_mean_anonymous(auth, where):
    """HELLO with an empty authmethods list is anonymous, as without authmethods (Crossbar)."""
    s = await auth.join("ws", "json", where=where, authmethods=[], authid="someone")
    assert s.joined.result().authmethod == "anonymous"


# ----------------------------------------------------------------------------------------------
# Static refusals: nothing tells what was wrong
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("ts", TS2, ids=_ids(TS2))
async def test_static_ticket_refusals(auth, ts):
    """A wrong ticket and an unknown authid get the same ABORT wamp.error.authentication_failed
    (same message, naming neither the authid nor the ticket); an unknown authid is challenged
    all the same. A ticket HELLO without authid is refused too."""
    wrong = await auth.refuse(*ts, authmethods=["ticket"], authid="alice",
                              on_challenge=answer_ticket(WRONG))
    other = await auth.refuse(*ts, authmethods=["ticket"], authid="alice",
                              on_challenge=answer_ticket(TICKET_BOB))
    unknown = await auth.refuse(*ts, authmethods=["ticket"], authid="nobody",
                                on_challenge=answer_ticket(TICKET_ALICE))
    for e in (wrong, other, unknown):
        assert [c.method for c in e.session.challenges] == ["ticket"]
        assert e.details.message == wrong.details.message
        _no_secret_in(e.details.message)
        assert "alice" not in e.details.message and "nobody" not in e.details.message
    await auth.refuse(*ts, authmethods=["ticket"], on_challenge=answer_ticket(TICKET_ALICE))


@pytest.mark.parametrize("ts", TS2, ids=_ids(TS2))
async def test_static_wampcra_refusals(auth, ts):
    """A wrong secret, a wrong salted password, a signature that is not base64, and an unknown
    authid all get the same ABORT wamp.error.authentication_failed."""
    cases = [
        ("carol", answer_wampcra(WRONG)),
        ("carol", answer_wampcra(DAVE_PASSWORD)),
        ("dave", answer_wampcra(WRONG)),
        ("dave", answer_wampcra(DAVE_KEY)),  # the derived key is not the password
        ("carol", lambda c: "not base64 at all!"),
        ("nobody", answer_wampcra(CRA_CAROL)),
    ]
    messages = set()
    for authid, answer in cases:
        e = await auth.refuse(*ts, authmethods=["wampcra"], authid=authid, on_challenge=answer)
        messages.add(e.details.message)
        _no_secret_in(e.details.message)
        assert authid not in e.details.message
    assert len(messages) == 1, messages


@pytest.mark.parametrize("ts", TS2, ids=_ids(TS2))
async def test_static_cryptosign_refusals(auth, ts):
    """A key not authorized for the principal, a key of nobody, an unknown authid, and a
    signature by another key than the one announced all get the same ABORT
    wamp.error.authentication_failed; a HELLO without pubkey or with a malformed one is refused
    too, and channel binding tls-unique is refused with a message saying so."""
    cases = [
        ("frank", GRACE, GRACE),  # grace's key for frank
        ("frank", STRANGER, STRANGER),
        (None, STRANGER, STRANGER),
        ("nobody", FRANK, FRANK),
        ("frank", FRANK, STRANGER),  # announces frank's key, signs with another
        ("frank", FRANK, FRANK_2),  # signs with frank's other key
    ]
    messages = set()
    for authid, announced, signer in cases:
        e = await auth.refuse(*ts, authmethods=["cryptosign"], authid=authid,
                              authextra={"pubkey": announced[1]},
                              on_challenge=answer_cryptosign(signer[0]))
        messages.add(e.details.message)
        _no_secret_in(e.details.message)
    assert len(messages) == 1, messages

    await auth.refuse(*ts, authmethods=["cryptosign"], authid="frank",
                      on_challenge=answer_cryptosign(FRANK[0]))
    await auth.refuse(*ts, authmethods=["cryptosign"], authid="frank",
                      authextra={"pubkey": "00" * 31}, on_challenge=answer_cryptosign(FRANK[0]))
    e = await auth.refuse(*ts, authmethods=["cryptosign"], authid="frank",
                          authextra={"pubkey": FRANK[1], "channel_binding": "tls-unique"},
                          on_challenge=answer_cryptosign(FRANK[0]))
    assert "tls-unique" in e.details.message and "TLS" in e.details.message, e.details.message
    assert e.session.challenges == []


@pytest.mark.parametrize("ts", TS2, ids=_ids(TS2))
async def test_static_principal_bound_to_another_realm(auth, ts):
    """A principal with a `realm` joins that realm, and is refused elsewhere with
    wamp.error.not_authorized (ticket, wampcra and cryptosign)."""
    who = {
        "ticket": {"authid": "bob", "on_challenge": answer_ticket(TICKET_BOB)},
        "wampcra": {"authid": "erin", "on_challenge": answer_wampcra(CRA_ERIN)},
        "cryptosign": {"authid": "grace", "authextra": {"pubkey": GRACE[1]},
                       "on_challenge": answer_cryptosign(GRACE[0])},
    }
    for method, kw in who.items():
        s = await auth.join(*ts, "realm2", authmethods=[method], **kw)
        d = s.joined.result()
        assert (d.realm, d.authid, d.authrole, d.authmethod) == \
            ("realm2", kw["authid"], "user", method)
        await auth.refuse(*ts, "realm1", authmethods=[method], reason=NOT_AUTHORIZED, **kw)
    # alice (no realm given) may join any realm that has her role
    s = await auth.join(*ts, "realm2", authmethods=["ticket"], authid="alice",
                        on_challenge=answer_ticket(TICKET_ALICE))
    assert s.joined.result().realm == "realm2"




# ----------------------------------------------------------------------------------------------
# Dynamic authentication
# ----------------------------------------------------------------------------------------------


class Authenticator:
    """The dynamic authenticator: called with (realm, authid, details)."""

    def __init__(self):
        self.calls: list[tuple] = []
        self.never = asyncio.get_running_loop().create_future()

    async def __call__(self, realm_name, authid, details):
        self.calls.append((realm_name, authid, details))
        method = details["authmethod"]
        if authid == "raise":
            raise ApplicationError("com.test.go_away", "you are not welcome here")
        if authid == "other-realm":
            return {"role": "user", "realm": "realm2"}
        if authid == "no-role":
            return {"role": "no-such-role"}
        if authid == "garbage":
            return 42
        if authid == "slow":
            await self.never
        if method == "anonymous":
            if authid == "role-only":
                return "user"  # just a role
            return {"role": "user", "extra": {"greeting": "hello", "n": 1}}
        if method == "ticket":
            if authid and authid.startswith("many-") and details.get("ticket") == f"t-{authid}":
                n = int(authid[5:])
                await asyncio.sleep((n % 5) * 0.005)  # answers come back out of order
                return {"role": "user", "extra": {"n": n}}
            if DYN_TICKETS.get(authid) == details.get("ticket"):
                return {"role": "user", "authid": f"{authid}-checked", "extra": {"via": "ticket"}}
            raise ApplicationError("com.test.bad_ticket")
        if method == "wampcra":
            if authid in DYN_CRA_PLAIN:
                return {"role": "user", "secret": DYN_CRA_PLAIN[authid]}
            if authid == "dyn-dave":
                return {"role": "user", "secret": DYN_DAVE_PASSWORD, "salt": DYN_DAVE_SALT,
                        "iterations": DYN_DAVE_ITERATIONS, "keylen": DYN_DAVE_KEYLEN,
                        "extra": {"via": "wampcra"}}
            if authid == "no-secret":
                return {"role": "user"}
            raise ApplicationError("com.test.no_such_user")
        if method == "cryptosign":
            if authid == "pinned":  # the authenticator names the key to verify with
                return {"role": "user", "pubkey": DYN_KEY[1]}
            pubkey = (details.get("authextra") or {}).get("pubkey")
            if pubkey == DYN_KEY[1]:
                return {"role": "user", "authid": "dyn-frank", "extra": {"via": "cryptosign"}}
            raise ApplicationError("com.test.unknown_key")
        raise ApplicationError("com.test.unexpected", method)


@pytest.fixture
async def authenticator(arouter, clients):
    """An Authenticator registered as com.test.authenticate on realm1 and as
    com.test.authenticate.remote on authrealm, by anonymous sessions on the default /ws."""
    a = Authenticator()
    comp = await clients.connect(arouter, "ws", "json", "realm1")
    await within(comp.register(a, AUTHENTICATE))
    remote = await clients.connect(arouter, "rs", "msgpack", "authrealm")
    await within(remote.register(a, AUTHENTICATE_REMOTE))
    yield a
    if not a.never.done():
        a.never.set_result(None)  # let a pending call finish (nobody waits for it any more)


def _check_details(details, session_id, method, authid, framing, authextra=None):
    assert details["session"] == session_id
    assert details["authmethod"] == method
    assert details["authid"] == authid
    assert details.get("authextra") == authextra
    assert details["transport"]["channel_framing"] == framing, details["transport"]


@pytest.mark.parametrize("ts", TS2, ids=_ids(TS2))
async def test_dynamic_anonymous(auth, authenticator, ts):
    """Dynamic anonymous: the authenticator decides the role; without an authid from it or HELLO
    the router makes one; its `extra` is WELCOME's authextra; authprovider is dynamic."""
    s = await auth.join(*ts, where="dynamic", authmethods=["anonymous"])
    d = _check_welcome(s, s.joined.result().authid, "user", "anonymous", "dynamic",
                       {"greeting": "hello", "n": 1})
    assert AUTHID_RE.match(d.authid), d.authid
    [(realm_name, authid, details)] = authenticator.calls
    assert (realm_name, authid) == ("realm1", None)
    framing = "websocket" if ts[0] == "ws" else "rawsocket"
    _check_details(details, d.session, "anonymous", None, framing)

    s = await auth.join(*ts, where="dynamic", authid="role-only", authmethods=["anonymous"])
    _check_welcome(s, "role-only", "user", "anonymous", "dynamic")


@pytest.mark.parametrize("ts", TS2, ids=_ids(TS2))
async def test_dynamic_ticket(auth, authenticator, ts):
    """Dynamic ticket: the authenticator gets the ticket in details.ticket and may rename the
    authid; a ticket it rejects (by raising) is refused with wamp.error.authentication_failed."""
    s = await auth.join(*ts, where="dynamic", authmethods=["ticket"], authid="dyn-alice",
                        on_challenge=answer_ticket(DYN_TICKETS["dyn-alice"]))
    d = _check_welcome(s, "dyn-alice-checked", "user", "ticket", "dynamic", {"via": "ticket"})
    [(realm_name, authid, details)] = authenticator.calls
    assert (realm_name, authid, details["ticket"]) == ("realm1", "dyn-alice",
                                                       DYN_TICKETS["dyn-alice"])
    _check_details(details, d.session, "ticket", "dyn-alice",
                   "websocket" if ts[0] == "ws" else "rawsocket")

    wrong = await auth.refuse(*ts, where="dynamic", authmethods=["ticket"], authid="dyn-alice",
                              on_challenge=answer_ticket(WRONG))
    unknown = await auth.refuse(*ts, where="dynamic", authmethods=["ticket"], authid="nobody",
                                on_challenge=answer_ticket(WRONG))
    assert wrong.details.message == unknown.details.message
    _no_secret_in(wrong.details.message)

    # 20 sessions authenticating at once, answered out of order: each gets its own answer
    sessions = await within(asyncio.gather(*[
        auth.join(*ts, where="dynamic", authmethods=["ticket"], authid=f"many-{n}",
                  on_challenge=answer_ticket(f"t-many-{n}")) for n in range(20)]))
    assert [(s.joined.result().authid, s.joined.result().authextra) for s in sessions] == \
        [(f"many-{n}", {"n": n}) for n in range(20)]


@pytest.mark.parametrize("ts", TS2, ids=_ids(TS2))
async def test_dynamic_wampcra(auth, authenticator, ts):
    """Dynamic WAMP-CRA: the authenticator returns the secret (plain, or a derived key with
    salt/iterations/keylen, which CHALLENGE then carries); wrong secrets, unknown users and an
    answer without a secret are refused."""
    s = await auth.join(*ts, where="dynamic", authmethods=["wampcra"], authid="dyn-carol",
                        on_challenge=answer_wampcra(DYN_CRA_PLAIN["dyn-carol"]))
    _check_welcome(s, "dyn-carol", "user", "wampcra", "dynamic")
    challenge = json.loads(s.challenges[0].extra["challenge"])
    assert challenge["authprovider"] == "dynamic" and challenge["authid"] == "dyn-carol"

    s = await auth.join(*ts, where="dynamic", authmethods=["wampcra"], authid="dyn-dave",
                        on_challenge=answer_wampcra(DYN_DAVE_PASSWORD))
    _check_welcome(s, "dyn-dave", "user", "wampcra", "dynamic", {"via": "wampcra"})
    extra = s.challenges[0].extra
    assert (extra["salt"], extra["iterations"], extra["keylen"]) == \
        (DYN_DAVE_SALT, DYN_DAVE_ITERATIONS, DYN_DAVE_KEYLEN)

    for authid, answer in [("dyn-carol", answer_wampcra(WRONG)),
                           ("dyn-dave", answer_wampcra(DYN_DAVE_KEY)),
                           ("nobody", answer_wampcra(WRONG)),
                           ("no-secret", answer_wampcra(WRONG))]:
        e = await auth.refuse(*ts, where="dynamic", authmethods=["wampcra"], authid=authid,
                              on_challenge=answer)
        _no_secret_in(e.details.message)


@pytest.mark.parametrize("ts", TS2, ids=_ids(TS2))
async def test_dynamic_cryptosign(auth, authenticator, ts):
    """Dynamic WAMP-Cryptosign: the authenticator sees HELLO's pubkey and decides (and may assign
    the authid); or it names the key to verify with, even when HELLO has none; unknown keys and
    signatures by another key are refused."""
    s = await auth.join(*ts, where="dynamic", authmethods=["cryptosign"], authid="someone",
                        authextra={"pubkey": DYN_KEY[1]},
                        on_challenge=answer_cryptosign(DYN_KEY[0]))
    _check_welcome(s, "dyn-frank", "user", "cryptosign", "dynamic", {"via": "cryptosign"})
    [(_, authid, details)] = authenticator.calls
    assert authid == "someone" and details["authextra"] == {"pubkey": DYN_KEY[1]}

    # no authid in HELLO: the authenticator assigns it
    s = await auth.join(*ts, where="dynamic", authmethods=["cryptosign"],
                        authextra={"pubkey": DYN_KEY[1]},
                        on_challenge=answer_cryptosign(DYN_KEY[0]))
    _check_welcome(s, "dyn-frank", "user", "cryptosign", "dynamic", {"via": "cryptosign"})
    assert authenticator.calls[-1][1] is None

    s = await auth.join(*ts, where="dynamic", authmethods=["cryptosign"], authid="pinned",
                        on_challenge=answer_cryptosign(DYN_KEY[0]))
    _check_welcome(s, "pinned", "user", "cryptosign", "dynamic")

    await auth.refuse(*ts, where="dynamic", authmethods=["cryptosign"], authid="someone",
                      authextra={"pubkey": STRANGER[1]},
                      on_challenge=answer_cryptosign(STRANGER[0]))
    await auth.refuse(*ts, where="dynamic", authmethods=["cryptosign"], authid="someone",
                      authextra={"pubkey": DYN_KEY[1]},
                      on_challenge=answer_cryptosign(STRANGER[0]))
    # HELLO announces its own key, the authenticator pins another: verified against the pinned one
    await auth.refuse(*ts, where="dynamic", authmethods=["cryptosign"], authid="pinned",
                      authextra={"pubkey": STRANGER[1]},
                      on_challenge=answer_cryptosign(STRANGER[0]))


@pytest.mark.parametrize("ts", TS2, ids=_ids(TS2))
async def test_dynamic_authenticator_refusals(auth, authenticator, ts):
    """An authenticator that raises refuses the session (wamp.error.authentication_failed), a
    principal it binds to another realm gets wamp.error.not_authorized, a role the realm lacks
    wamp.error.no_such_role, an answer that is no principal wamp.error.authentication_failed."""
    for method, kw in [("anonymous", {}),
                       ("ticket", {"on_challenge": answer_ticket(WRONG)})]:
        await auth.refuse(*ts, where="dynamic", authmethods=[method], authid="raise", **kw)
        await auth.refuse(*ts, where="dynamic", authmethods=[method], authid="other-realm",
                          reason=NOT_AUTHORIZED, **kw)
        await auth.refuse(*ts, where="dynamic", authmethods=[method], authid="no-role",
                          reason="wamp.error.no_such_role", **kw)
        await auth.refuse(*ts, where="dynamic", authmethods=[method], authid="garbage", **kw)


async def test_dynamic_without_authenticator(auth):
    """No authenticator registered: the session is refused (wamp.error.authentication_failed)."""
    await auth.refuse("ws", "json", where="dynamic", authmethods=["anonymous"])
    await auth.refuse("rs", "cbor", where="dynamic", authmethods=["ticket"], authid="dyn-alice",
                      on_challenge=answer_ticket(DYN_TICKETS["dyn-alice"]))


@pytest.mark.parametrize("ts", TS2, ids=_ids(TS2))
async def test_authenticator_on_another_realm(auth, authenticator, ts):
    """`authenticator-realm`: the authenticator registered on authrealm decides about a session
    joining realm1."""
    s = await auth.join(*ts, where="remote", authmethods=["ticket"], authid="dyn-alice",
                        on_challenge=answer_ticket(DYN_TICKETS["dyn-alice"]))
    _check_welcome(s, "dyn-alice-checked", "user", "ticket", "dynamic", {"via": "ticket"})
    [(realm_name, _, _)] = authenticator.calls
    assert realm_name == "realm1"
    await auth.refuse(*ts, where="remote", authmethods=["ticket"], authid="dyn-alice",
                      on_challenge=answer_ticket(WRONG))


async def test_session_details_in_meta_api(auth, clients, arouter, authenticator):
    """wamp.session.get and wamp.session.on_join carry authid, authrole, authmethod,
    authprovider and authextra of authenticated sessions (static and dynamic)."""
    monitor = await clients.connect(arouter, "ws", "json")
    joins = []
    await within(monitor.subscribe(lambda d: joins.append(d), "wamp.session.on_join"))
    keys = ("session", "authid", "authrole", "authmethod", "authprovider", "authextra")
    static = await auth.join("rs", "cbor", authmethods=["wampcra"], authid="dave",
                             on_challenge=answer_wampcra(DAVE_PASSWORD))
    dynamic = await auth.join("ws", "msgpack", where="dynamic", authmethods=["ticket"],
                              authid="dyn-alice",
                              on_challenge=answer_ticket(DYN_TICKETS["dyn-alice"]))
    for s, expected in [
        (static, ("dave", "user", "wampcra", "static", {})),
        (dynamic, ("dyn-alice-checked", "user", "ticket", "dynamic", {"via": "ticket"})),
    ]:
        sid = s.joined.result().session
        want = dict(zip(keys, (sid, *expected)))
        got = await within(monitor.call("wamp.session.get", sid))
        assert {k: got.get(k) for k in keys} == want, got
        await eventually(lambda: any(j.get("session") == sid for j in joins), what="on_join")
        [j] = [j for j in joins if j.get("session") == sid]
        assert {k: j.get(k) for k in keys} == want, j


# ----------------------------------------------------------------------------------------------
# Dynamic authorization
# ----------------------------------------------------------------------------------------------


class Authorizer:
    """The dynamic authorizer of role `authorized`: (session_details, uri, action, options)."""

    def __init__(self):
        self.calls: list[tuple] = []
        self.never = asyncio.get_running_loop().create_future()

    async def __call__(self, session, uri, action, options):
        self.calls.append((session, uri, action, options))
        if uri.startswith("com.authz.allow."):
            return True
        if uri.startswith("com.authz.deny."):
            return False
        if uri.startswith("com.authz.throw."):
            raise ApplicationError("com.test.authorizer_broke", "boom")
        if uri.startswith("com.authz.cache."):
            return {"allow": True, "cache": True}
        if uri.startswith("com.authz.denycache."):
            return {"allow": False, "cache": True}
        if uri.startswith("com.authz.nocache."):
            return {"allow": True, "disclose": False, "cache": False}
        if uri.startswith("com.authz.disclose."):
            return {"allow": True, "disclose": True}
        if uri.startswith("com.authz.garbage."):
            return "yes"
        if uri.startswith("com.authz.slow."):
            await self.never
        return False

    def count(self, uri, action):
        return sum(1 for _, u, a, _ in self.calls if (u, a) == (uri, action))


@pytest.fixture
async def authorizer(arouter, clients):
    """An Authorizer registered as com.test.authorize on realm1, plus callee procedures (by the
    same anonymous session, whose role has static permissions)."""
    a = Authorizer()
    comp = await clients.connect(arouter, "ws", "cbor", "realm1")
    await within(comp.register(a, AUTHORIZE))

    def echo(*args, details=None):
        return {"args": list(args), "caller": details.caller,
                "caller_authid": details.caller_authid}

    for p in ("allow", "deny", "throw", "cache", "denycache", "nocache", "disclose", "garbage",
              "slow"):
        await within(comp.register(echo, f"com.authz.{p}.echo",
                                   options=RegisterOptions(details_arg="details")))
    a.component = comp
    yield a
    if not a.never.done():
        a.never.set_result(None)  # let a pending call finish (nobody waits for it any more)


async def _zed(auth, ts):
    return await auth.join(*ts, authmethods=["ticket"], authid="zed",
                           on_challenge=answer_ticket(TICKET_ZED))


async def _denied(aw, timeout: float | None = None):
    try:
        r = await (within(aw, timeout) if timeout else within(aw))
    except ApplicationError as e:
        assert e.error == NOT_AUTHORIZED, e
        return e
    raise AssertionError(f"expected ERROR {NOT_AUTHORIZED}, got {r!r}")


@pytest.mark.parametrize("ts", TS2, ids=_ids(TS2))
async def test_authorizer_allows(auth, authorizer, ts):
    """An authorizer answering true lets call, register, subscribe and publish through; it is
    called with the session's details (authid, authrole, authmethod, authprovider, session),
    the URI, the action and the message's options. Messages sent while a decision is pending
    are handled in order."""
    zed = await _zed(auth, ts)
    d = zed.joined.result()
    assert (d.authid, d.authrole) == ("zed", "authorized")
    r = await within(zed.call("com.authz.allow.echo", 1, 2))
    assert r["args"] == [1, 2] and r["caller"] is None  # not disclosed
    await within(zed.register(lambda x: -x, "com.authz.allow.neg"))
    got = []
    await within(zed.subscribe(lambda x: got.append(x), "com.authz.allow.topic"))
    await within(zed.publish("com.authz.allow.topic", "hi",
                             options=PublishOptions(acknowledge=True, exclude_me=False)))
    await eventually(lambda: got == ["hi"], what="the event")
    assert await within(authorizer.component.call("com.authz.allow.neg", 5)) == -5

    session, uri, action, options = authorizer.calls[0]
    assert (uri, action) == ("com.authz.allow.echo", "call")
    assert isinstance(options, dict)
    assert {k: session[k] for k in ("session", "authid", "authrole", "authmethod",
                                    "authprovider")} == {
        "session": d.session, "authid": "zed", "authrole": "authorized",
        "authmethod": "ticket", "authprovider": "static"}
    assert [(u, a) for _, u, a, _ in authorizer.calls] == [
        ("com.authz.allow.echo", "call"), ("com.authz.allow.neg", "register"),
        ("com.authz.allow.topic", "subscribe"), ("com.authz.allow.topic", "publish")]

    # ten calls without waiting: all decided, all answered, in order
    results = await within(asyncio.gather(*[zed.call("com.authz.nocache.echo", i)
                                            for i in range(10)]))
    assert [r["args"] for r in results] == [[i] for i in range(10)]


@pytest.mark.parametrize("ts", TS2, ids=_ids(TS2))
async def test_authorizer_denies_and_throws(auth, authorizer, ts):
    """An authorizer answering false, raising an error, or answering something that is no
    decision denies the action (ERROR wamp.error.not_authorized); the session goes on."""
    zed = await _zed(auth, ts)
    for prefix in ("deny", "throw", "garbage"):
        await _denied(zed.call(f"com.authz.{prefix}.echo", 1))
        await _denied(zed.register(lambda: None, f"com.authz.{prefix}.mine"))
        await _denied(zed.subscribe(lambda: None, f"com.authz.{prefix}.topic"))
        await _denied(zed.publish(f"com.authz.{prefix}.topic", 1,
                                  options=PublishOptions(acknowledge=True)))
    assert zed.is_attached()
    assert (await within(zed.call("com.authz.allow.echo", 7)))["args"] == [7]


@pytest.mark.parametrize("ts", TS2, ids=_ids(TS2))
async def test_authorizer_caches(auth, authorizer, ts):
    """With cache true the decision (allow or deny) is reused for that session, URI and action:
    the authorizer is called once; without it, every time; another session asks again; disclose
    true discloses the caller to the callee."""
    zed = await _zed(auth, ts)
    for i in range(3):
        assert (await within(zed.call("com.authz.cache.echo", i)))["args"] == [i]
        assert (await within(zed.call("com.authz.nocache.echo", i)))["args"] == [i]
        await _denied(zed.call("com.authz.denycache.echo", i))
    assert authorizer.count("com.authz.cache.echo", "call") == 1
    assert authorizer.count("com.authz.nocache.echo", "call") == 3
    assert authorizer.count("com.authz.denycache.echo", "call") == 1
    # the cache is by action too
    await within(zed.subscribe(lambda: None, "com.authz.cache.echo"))
    assert authorizer.count("com.authz.cache.echo", "subscribe") == 1

    other = await _zed(auth, ts)
    await within(other.call("com.authz.cache.echo", 0))
    assert authorizer.count("com.authz.cache.echo", "call") == 2

    r = await within(zed.call("com.authz.disclose.echo", 1))
    assert (r["caller"], r["caller_authid"]) == (zed.joined.result().session, "zed"), r
    events = []
    await within(authorizer.component.subscribe(
        lambda x, details=None: events.append((x, details.publisher)), "com.authz.",
        options=SubscribeOptions(match="prefix", details_arg="details")))
    await within(zed.publish("com.authz.disclose.topic", 1,
                             options=PublishOptions(acknowledge=True)))
    await within(zed.publish("com.authz.allow.topic", 2, options=PublishOptions(acknowledge=True)))
    await eventually(lambda: len(events) == 2, what="2 events")
    assert events == [(1, zed.joined.result().session), (2, None)], events


# ----------------------------------------------------------------------------------------------
# Timeouts (the one slow test: ~10 s, everything in parallel)
# ----------------------------------------------------------------------------------------------


async def test_stalled_handshake_and_silent_procedures(arouter, auth, authenticator, authorizer,
                                                       raw):
    """Within the 10 s handshake timeout (+2 s): a client that never answers CHALLENGE gets
    ABORT wamp.error.authentication_failed and is disconnected (WebSocket and RawSocket); so does
    one whose dynamic authenticator never answers; an action whose authorizer never answers is
    denied (wamp.error.not_authorized) and the session goes on."""
    zed = await _zed(auth, ("rs", "json"))

    async def stalled(conn, details):
        start = time.monotonic()
        await conn.send_msg([1, "realm1", {"roles": HELLO_ROLES, **details}])
        if details["authmethods"] == ["ticket"]:
            msg = await conn.recv_msg()
            assert msg[:2] == [4, "ticket"], msg
        msg = await conn.recv_msg(timeout=13)
        elapsed = time.monotonic() - start
        assert msg[0] == 3 and msg[2] == FAILED, msg
        assert 8 <= elapsed <= 12, f"ABORT after {elapsed:.1f} s"
        assert await conn.wait_closed(2), "connection still open after ABORT"

    async def silent_authorizer():
        start = time.monotonic()
        await _denied(zed.call("com.authz.slow.echo", 1), timeout=13)
        assert 8 <= time.monotonic() - start <= 12
        assert (await within(zed.call("com.authz.allow.echo", 2)))["args"] == [2]

    ws = raw.track(await RawWebSocketConn.open(arouter.ws_url("static"), "json"))
    rs = raw.track(await RawSocketConn.open(port=arouter.auth_rs_ports["static"],
                                            serializer="msgpack"))
    dyn = raw.track(await RawSocketConn.open(port=arouter.auth_rs_ports["dynamic"],
                                             serializer="cbor"))
    ticket = {"authmethods": ["ticket"], "authid": "alice"}
    await within(asyncio.gather(
        stalled(ws, ticket),
        stalled(rs, ticket),
        stalled(dyn, {"authmethods": ["anonymous"], "authid": "slow"}),
        silent_authorizer(),
    ), timeout=20, what="the timeouts")


# ----------------------------------------------------------------------------------------------
# Secrets stay out of the log
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("level", [
    "debug",
    "trace",
])
async def test_no_secret_in_router_log(tmp_path_factory, monkeypatch, clients, level):
    """With RUST_LOG=debug (and trace), a router that saw right and wrong tickets, WAMP-CRA
    secrets, salted passwords, Ed25519 keys, a dynamic authenticator's tickets and secrets, and
    refusals of all of them, has none of those strings in its log."""
    monkeypatch.setenv("RUST_LOG", level)
    r = start_or_fail(_router(tmp_path_factory))
    try:
        a = _Auth(r, clients)
        authn = Authenticator()
        comp = await clients.connect(r, "ws", "json", "realm1")
        await within(comp.register(authn, AUTHENTICATE))
        for ts in TS2:
            await a.join(*ts, authmethods=["ticket"], authid="alice",
                         on_challenge=answer_ticket(TICKET_ALICE))
            await a.refuse(*ts, authmethods=["ticket"], authid="alice",
                           on_challenge=answer_ticket(WRONG))
            await a.refuse(*ts, "realm1", authmethods=["ticket"], authid="bob",
                           on_challenge=answer_ticket(TICKET_BOB), reason=NOT_AUTHORIZED)
            await a.join(*ts, authmethods=["wampcra"], authid="carol",
                         on_challenge=answer_wampcra(CRA_CAROL))
            await a.join(*ts, authmethods=["wampcra"], authid="dave",
                         on_challenge=answer_wampcra(DAVE_PASSWORD))
            await a.refuse(*ts, authmethods=["wampcra"], authid="dave",
                           on_challenge=answer_wampcra(WRONG))
            await a.join(*ts, authmethods=["cryptosign"], authid="frank",
                         authextra={"pubkey": FRANK[1]},
                         on_challenge=answer_cryptosign(FRANK[0]))
            await a.join(*ts, where="dynamic", authmethods=["ticket"], authid="dyn-alice",
                         on_challenge=answer_ticket(DYN_TICKETS["dyn-alice"]))
            await a.refuse(*ts, where="dynamic", authmethods=["ticket"], authid="dyn-alice",
                           on_challenge=answer_ticket(WRONG))
            await a.join(*ts, where="dynamic", authmethods=["wampcra"], authid="dyn-dave",
                         on_challenge=answer_wampcra(DYN_DAVE_PASSWORD))
            await a.refuse(*ts, where="dynamic", authmethods=["wampcra"], authid="dyn-carol",
                           on_challenge=answer_wampcra(WRONG))
        await clients.close_all()
        clients.sessions.clear()
    finally:
        r.stop()
    log = r.stderr()
    assert level.upper() in log and "session refused" in log, \
        f"{level} logging was not on:\n" + log[-2000:]
    leaked = [s for s in SECRETS if s in log]
    assert not leaked, f"secrets in the router log: {leaked}"
