"""Helpers for the Advanced Profile and meta API interop tests (test_advanced_pubsub.py,
test_advanced_rpc.py, test_meta_api.py).

- `adv_config()` / `adv_router()` / `module_router()`: a router whose realm `realm1` has the
  roles and identities these tests need (fixed authids and roles on separate WebSocket paths, a
  role that discloses callers and publishers, a `trusted` role), an in-memory event history
  store, and a second realm `nometa` with `enable_meta_api: false`.
- `RecordingClient`: an autobahn session that also keeps every WAMP message it received, so a test
  can look at what the router sent (autobahn fills in some details itself, e.g. an event's topic).
- `RawSession`: a WAMP session without a client library (over `interop`'s raw connections), for
  what Autobahn|Python 26.10.2 cannot send: `disclose_me` (PUBLISH and CALL), progressive call
  invocations (CALL with `progress`), CANCEL with a `mode`, and exact checks of the messages a
  router sends.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from typing import Any

import pytest

from interop import (
    ALLOW_ALL,
    ALLOW_SUBSCRIBE_ONLY,
    SERIALIZERS,
    Client,
    RawConn,
    RawSocketConn,
    RawWebSocketConn,
    Router,
    T,
    decode,
    serve_module,
    within,
)

# WAMP message codes
HELLO, WELCOME, ABORT, GOODBYE, ERROR = 1, 2, 3, 6, 8
PUBLISH, PUBLISHED = 16, 17
SUBSCRIBE, SUBSCRIBED, UNSUBSCRIBE, UNSUBSCRIBED, EVENT = 32, 33, 34, 35, 36
CALL, CANCEL, RESULT = 48, 49, 50
REGISTER, REGISTERED, UNREGISTER, UNREGISTERED, INVOCATION, INTERRUPT, YIELD = (
    64, 65, 66, 67, 68, 69, 70)

# ----------------------------------------------------------------------------------------------
# Router configuration
# ----------------------------------------------------------------------------------------------

#: realm1's event histories (realm `store`): (uri, match, limit)
HISTORIES = [
    ("com.hist.exact", "exact", 12),
    ("com.hist.pfx.", "prefix", 3),
    ("com.hist..w", "wildcard", 4),
]

#: WebSocket paths that authenticate anonymous clients as a fixed (authrole, authid); authid None
#: = a random one
IDENTITY_PATHS = {
    "alice": ("anonymous", "alice"),
    "bob": ("other", "bob"),
    "carol": ("other", "carol"),
    "disclosed": ("disclosed", None),
    "trusted": ("trusted", None),
    "restricted": ("restricted", None),
}


def adv_role(name: str, allow: dict = ALLOW_ALL, *, caller: bool = False,
             publisher: bool = False) -> dict:
    return {
        "name": name,
        "permissions": [{
            "uri": "", "match": "prefix", "allow": dict(allow),
            "disclose": {"caller": caller, "publisher": publisher}, "cache": True,
        }],
    }


def adv_roles() -> list:
    return [
        adv_role("anonymous"),
        adv_role("other"),
        adv_role("restricted", ALLOW_SUBSCRIBE_ONLY),
        adv_role("disclosed", caller=True, publisher=True),
        adv_role("trusted"),
    ]


def adv_realms() -> list:
    return [
        {
            "name": "realm1",
            "roles": adv_roles(),
            "options": {"enable_meta_api": True},
            "store": {
                "type": "memory",
                "event-history": [{"uri": u, "match": m, "limit": n} for u, m, n in HISTORIES],
            },
        },
        {"name": "nometa", "roles": adv_roles(), "options": {"enable_meta_api": False}},
    ]


def adv_ws_paths() -> dict:
    paths = {}
    for name, (authrole, authid) in IDENTITY_PATHS.items():
        anon: dict[str, Any] = {"type": "static", "role": authrole}
        if authid is not None:
            anon["authid"] = authid
        paths[name] = {"type": "websocket", "serializers": list(SERIALIZERS),
                       "auth": {"anonymous": anon}}
    return paths


def adv_router(tmp_path_factory, name: str = "adv-router") -> Router:
    """A router on the advanced configuration, not started yet."""
    return Router(tmp_path_factory.mktemp(name), realms=adv_realms(), ws_paths=adv_ws_paths())


def module_router(tmp_path_factory, name: str):
    """Generator body for a module-scoped `router` fixture on the advanced configuration."""
    yield from serve_module(adv_router(tmp_path_factory, name))


# ----------------------------------------------------------------------------------------------
# Autobahn
# ----------------------------------------------------------------------------------------------


class RecordingClient(Client):
    """An autobahn session that keeps every WAMP message it received (autobahn message objects)."""

    def __init__(self, config, futures):
        super().__init__(config, futures)
        self.inbox: list = []

    def onMessage(self, msg):
        self.inbox.append(msg)
        return super().onMessage(msg)

    def received(self, cls) -> list:
        return [m for m in self.inbox if isinstance(m, cls)]


def session_id(s) -> int:
    return s.joined.result().session


def authid(s) -> str:
    return s.joined.result().authid


# ----------------------------------------------------------------------------------------------
# Raw sessions
# ----------------------------------------------------------------------------------------------

#: client roles announcing every feature the router offers to clients
FULL_ROLES = {
    "caller": {"features": {
        "caller_identification": True, "progressive_call_results": True,
        "progressive_call_invocations": True, "call_timeout": True, "call_canceling": True,
        "payload_passthru_mode": True}},
    "callee": {"features": {
        "caller_identification": True, "pattern_based_registration": True,
        "shared_registration": True, "progressive_call_results": True,
        "progressive_call_invocations": True, "call_timeout": True, "call_canceling": True,
        "registration_revocation": True, "payload_passthru_mode": True}},
    "publisher": {"features": {
        "publisher_identification": True, "subscriber_blackwhite_listing": True,
        "publisher_exclusion": True, "payload_passthru_mode": True}},
    "subscriber": {"features": {
        "publisher_identification": True, "pattern_based_subscription": True,
        "subscription_revocation": True, "payload_passthru_mode": True}},
}

#: client roles without any feature (a Basic Profile client)
BARE_ROLES = {"caller": {}, "callee": {}, "publisher": {}, "subscriber": {}}


class RawSession:
    """A joined WAMP session over a raw connection. Incoming messages are decoded lists; the ones
    a test has not asked for yet wait in `self.pending`."""

    def __init__(self, conn: RawConn, welcome: list):
        self.conn = conn
        self.welcome = welcome
        self.id: int = welcome[1]
        self.details: dict = welcome[2]
        self.pending: list[list] = []
        self._ids = itertools.count(1)

    @classmethod
    async def join(cls, router: Router, transport: str = "ws", serializer: str = "json", *,
                   realm: str = "realm1", roles: dict | None = None, path: str = "ws",
                   tracker=None) -> "RawSession":
        """Connect (WebSocket on `path`, RawSocket TCP or Unix), HELLO with `roles` (default
        FULL_ROLES), and wait for WELCOME. `tracker` (the `raw` fixture) closes it at the end."""
        router.check_responsive()
        if transport == "ws":
            conn = await RawWebSocketConn.open(router.ws_url(path), serializer)
        elif transport == "rs":
            conn = await RawSocketConn.open(port=router.rs_port, serializer=serializer)
        elif transport == "unix":
            conn = await RawSocketConn.open(path=router.unix_path, serializer=serializer)
        else:
            raise ValueError(transport)
        conn.router = router
        if tracker is not None:
            tracker.track(conn)
        await conn.send_msg([HELLO, realm, {"roles": roles if roles is not None else FULL_ROLES}])
        welcome = await conn.recv_msg()
        assert welcome[0] == WELCOME, f"expected WELCOME, got {welcome!r}"
        return cls(conn, welcome)

    def request_id(self) -> int:
        return next(self._ids)

    async def send(self, *msg) -> None:
        await self.conn.send_msg(list(msg))

    async def wait_for(self, match, *, timeout: float = T, what: str = "a message") -> list:
        """The first message (pending, or arriving within `timeout`) for which `match(msg)` is
        true; the others stay pending. Fails on timeout or when the connection closes."""
        for i, m in enumerate(self.pending):
            if match(m):
                return self.pending.pop(i)
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"timed out after {timeout:g}s waiting for {what}; "
                                     f"pending: {self.pending!r}")
            try:
                data = await self.conn.recv_payload(left)
            except AssertionError:
                continue  # timeout: the loop reports it
            if data is None:
                raise AssertionError(f"connection closed while waiting for {what}; "
                                     f"pending: {self.pending!r}")
            m = decode(self.conn.serializer, data)
            if match(m):
                return m
            self.pending.append(m)

    async def expect(self, code: int, request: int | None = None, *, timeout: float = T,
                     what: str = "") -> list:
        """The first message of type `code` (whose second element is `request`, if given)."""
        return await self.wait_for(
            lambda m: m[0] == code and (request is None or m[1] == request), timeout=timeout,
            what=what or f"message type {code}" + (f" for {request}" if request is not None else ""))

    async def drain(self, seconds: float) -> list[list]:
        """Everything pending plus whatever arrives within `seconds`; clears `pending`."""
        out, self.pending = self.pending, []
        deadline = time.monotonic() + seconds
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return out
            try:
                data = await self.conn.recv_payload(left)
            except AssertionError:
                return out
            if data is None:
                return out
            out.append(decode(self.conn.serializer, data))

    # -- requests -------------------------------------------------------------------------------
    async def subscribe(self, topic: str, **options) -> int:
        r = self.request_id()
        await self.send(SUBSCRIBE, r, options, topic)
        m = await self._reply(r, SUBSCRIBED, SUBSCRIBE)
        return m[2]

    async def register(self, procedure: str, **options) -> int:
        r = self.request_id()
        await self.send(REGISTER, r, options, procedure)
        m = await self._reply(r, REGISTERED, REGISTER)
        return m[2]

    async def publish(self, topic: str, args=None, kwargs=None, **options) -> int:
        """PUBLISH with acknowledge; returns the publication id."""
        r = self.request_id()
        await self.send(*self._with_payload([PUBLISH, r, {"acknowledge": True, **options}, topic],
                                            args, kwargs))
        m = await self._reply(r, PUBLISHED, PUBLISH)
        return m[2]

    async def call(self, procedure: str, args=None, kwargs=None, *, request: int | None = None,
                   **options) -> int:
        """Sends a CALL and returns its request id (the answer is read with `expect`)."""
        r = request if request is not None else self.request_id()
        await self.send(*self._with_payload([CALL, r, options, procedure], args, kwargs))
        return r

    async def call_result(self, procedure: str, args=None, kwargs=None, **options) -> list:
        """A CALL that must succeed: the RESULT message."""
        r = await self.call(procedure, args, kwargs, **options)
        return await self._reply(r, RESULT, CALL)

    async def _reply(self, request: int, ok: int, request_type: int) -> list:
        m = await self.wait_for(
            lambda m: (m[0] == ok and m[1] == request)
            or (m[0] == ERROR and m[1] == request_type and m[2] == request),
            what=f"the reply to request {request} (type {request_type})")
        assert m[0] == ok, f"request {request} (type {request_type}) failed: {m!r}"
        return m

    async def error_for(self, request_type: int, request: int, *, timeout: float = T) -> list:
        """The ERROR answering request `request` of type `request_type`."""
        return await self.wait_for(
            lambda m: m[0] == ERROR and m[1] == request_type and m[2] == request,
            timeout=timeout, what=f"ERROR for request {request} (type {request_type})")

    async def answer_for_call(self, request: int, *, timeout: float = T) -> list:
        """The RESULT or ERROR answering CALL `request`."""
        return await self.wait_for(
            lambda m: (m[0] == RESULT and m[1] == request)
            or (m[0] == ERROR and m[1] == CALL and m[2] == request),
            timeout=timeout, what=f"the answer to CALL {request}")

    @staticmethod
    def _with_payload(msg: list, args, kwargs) -> list:
        if kwargs is not None:
            return msg + [list(args or []), kwargs]
        if args is not None:
            return msg + [list(args)]
        return msg

    async def leave(self) -> None:
        await self.send(GOODBYE, {}, "wamp.close.close_realm")
        await self.expect(GOODBYE)

    async def close(self) -> None:
        await self.conn.close()


async def raw_session(raw_fixture, router, transport="ws", serializer="json", **kw) -> RawSession:
    return await RawSession.join(router, transport, serializer, tracker=raw_fixture, **kw)


async def error_of(aw, timeout: float = T):
    """The ApplicationError an awaitable fails with (fails if it succeeds)."""
    from autobahn.wamp.exception import ApplicationError

    try:
        result = await within(aw, timeout)
    except ApplicationError as e:
        return e
    raise AssertionError(f"expected an ERROR, got result {result!r}")


async def settle(seconds: float = 0.05) -> None:
    """A short pause for "nothing more arrives" checks that follow an explicit barrier."""
    await asyncio.sleep(seconds)
