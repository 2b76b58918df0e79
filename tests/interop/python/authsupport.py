"""Helpers for the authentication interop tests (test_auth.py): a router whose WebSocket and
RawSocket transports carry `auth` sections, autobahn sessions that authenticate, and the
credentials the tests use.

`AuthRouter(workdir, auths={NAME: auth_section, ...}, wst_auth=NAME, realms=...)` is the
conftest `Router` plus, for every NAME:
- a WebSocket path `/NAME` on the `web` transport (`router.ws_url(NAME)`),
- a RawSocket TCP transport of its own (`router.auth_rs_ports[NAME]`),
and, for `wst_auth`, a standalone `websocket` transport at `ws://127.0.0.1:{router.wst_port}/auth`.
The default transports of the conftest router (`/ws`, RawSocket TCP and Unix, no `auth`:
anonymous with role `anonymous`) stay, so components (authenticators, authorizers) join there.
"""

from __future__ import annotations

import asyncio
import binascii
import json
import socket
import time

import txaio
from autobahn.asyncio.rawsocket import WampRawSocketClientFactory
from autobahn.asyncio.websocket import WampWebSocketClientFactory
from autobahn.wamp import auth as wauth
from autobahn.wamp.cryptosign import CryptosignKey
from autobahn.wamp.types import ComponentConfig

from interop import (
    SERIALIZERS,
    STARTUP_TIMEOUT,
    T,
    Aborted,
    Client,
    Router,
    RouterError,
    free_ports,
    make_serializer,
    node_config,
    websocket_path,
    within,
)

# ----------------------------------------------------------------------------------------------
# Credentials
# ----------------------------------------------------------------------------------------------


def derive_key(password: str, salt: str, iterations: int, keylen: int) -> str:
    """autobahn's derive_key: the key both sides sign a salted WAMP-CRA challenge with (the
    configuration holds the password, as in Crossbar)."""
    return wauth.derive_key(password.encode(), salt.encode(), iterations, keylen).decode("ascii")


def keypair(n: int) -> tuple[str, str]:
    """A deterministic Ed25519 key pair: (private seed hex, public key hex)."""
    seed = bytes([n]) * 32
    return seed.hex(), CryptosignKey.from_bytes(seed).public_key()


# ----------------------------------------------------------------------------------------------
# The router
# ----------------------------------------------------------------------------------------------


class AuthRouter(Router):
    def __init__(self, workdir, auths: dict[str, dict], wst_auth: str | None = None, **kw):
        super().__init__(workdir, **kw)
        self.auths = auths
        self.wst_auth = wst_auth
        self.auth_rs_ports: dict[str, int] = {}
        self.wst_port = 0

    def write_config(self) -> None:
        ports = free_ports(3 + len(self.auths))
        self.ws_port, self.rs_port, self.wst_port = ports[:3]
        self.auth_rs_ports = dict(zip(self.auths, ports[3:]))
        paths = dict(self.ws_paths or {})
        for name, section in self.auths.items():
            paths[name] = websocket_path(section)
        config = node_config(ws_port=self.ws_port, rs_port=self.rs_port,
                             unix_path=self.unix_path, realms=self.realms, ws_paths=paths)
        transports = config["workers"][0]["transports"]
        for name, section in self.auths.items():
            transports.append({
                "type": "rawsocket",
                "id": f"rs-{name}",
                "endpoint": {"type": "tcp", "interface": "127.0.0.1",
                             "port": self.auth_rs_ports[name]},
                "serializers": list(SERIALIZERS),
                "auth": section,
            })
        if self.wst_auth:
            transports.append({
                "type": "websocket",
                "id": "ws-standalone",
                "endpoint": {"type": "tcp", "interface": "127.0.0.1", "port": self.wst_port},
                "url": f"ws://127.0.0.1:{self.wst_port}/auth",
                "serializers": list(SERIALIZERS),
                "auth": self.auths[self.wst_auth],
            })
        self.config = config
        self.config_path.write_text(json.dumps(config, indent=2))

    def _wait_ready(self) -> None:
        super()._wait_ready()
        pending = set(self.auth_rs_ports.values())
        if self.wst_auth:
            pending.add(self.wst_port)
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while pending:
            if self.proc.poll() is not None:
                raise RouterError(f"router exited early with code {self.proc.returncode}; "
                                  f"stderr:\n{self.stderr_tail()}")
            for port in list(pending):
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                    pending.discard(port)
                except OSError:
                    pass
            if pending and time.monotonic() > deadline:
                raise RouterError(f"router not listening on {sorted(pending)}; stderr:\n"
                                  f"{self.stderr_tail()}")
            if pending:
                time.sleep(0.05)

    def endpoint(self, transport: str, where: str | None):
        """(url, host, port) of a transport: `ws` (web path), `wst` (standalone websocket
        transport) or `rs` (RawSocket TCP) of the auth section `where` (None: the default,
        unauthenticated transports)."""
        if transport == "ws":
            return self.ws_url(where or "ws"), self.ws_port
        if transport == "wst":
            assert where == self.wst_auth, f"the standalone websocket transport has {self.wst_auth}"
            return f"ws://127.0.0.1:{self.wst_port}/auth", self.wst_port
        if transport == "rs":
            port = self.auth_rs_ports[where] if where else self.rs_port
            return f"rs://127.0.0.1:{port}", port
        raise ValueError(transport)


# ----------------------------------------------------------------------------------------------
# Authenticating autobahn sessions
# ----------------------------------------------------------------------------------------------


class AuthClient(Client):
    """A `Client` whose HELLO carries authmethods/authid/authrole/authextra and which answers
    CHALLENGE with `on_challenge(challenge)` (autobahn's `Challenge`), recording every one."""

    def __init__(self, config, futures, hello: dict, on_challenge):
        super().__init__(config, futures)
        self.hello = hello
        self.on_challenge = on_challenge
        self.challenges = []

    def onConnect(self):
        self.join(self.config.realm, **self.hello)

    def onChallenge(self, challenge):
        self.challenges.append(challenge)
        if self.on_challenge is None:
            raise RuntimeError(f"unexpected CHALLENGE {challenge.method}")
        return self.on_challenge(challenge)


def answer_ticket(ticket: str):
    def answer(challenge):
        assert challenge.method == "ticket", challenge
        return ticket
    return answer


def answer_wampcra(secret: str):
    """autobahn's WAMP-CRA: derive the key when CHALLENGE has a salt, then compute_wcs."""
    def answer(challenge):
        assert challenge.method == "wampcra", challenge
        key = secret.encode()
        extra = challenge.extra
        if "salt" in extra:
            key = wauth.derive_key(key, extra["salt"], extra["iterations"], extra["keylen"])
        return wauth.compute_wcs(key, extra["challenge"].encode()).decode("ascii")
    return answer


def answer_cryptosign(seed_hex: str):
    key = CryptosignKey.from_bytes(binascii.a2b_hex(seed_hex))

    def answer(challenge):
        assert challenge.method == "cryptosign", challenge
        return key.sign_challenge(challenge)
    return answer


def answer_any(**answers):
    """Answers whichever method is challenged: answer_any(ticket=..., wampcra=...)."""
    def answer(challenge):
        return answers[challenge.method](challenge)
    return answer


async def auth_connect(router: AuthRouter, transport: str = "ws", serializer: str = "json",
                       realm: str = "realm1", *, where: str | None = "static",
                       authmethods: list[str] | None = None, authid: str | None = None,
                       authrole: str | None = None, authextra: dict | None = None,
                       on_challenge=None) -> AuthClient:
    """Connects an autobahn asyncio session over `transport` (ws | wst | rs) of the auth section
    `where` and waits for WELCOME (returns the session) or ABORT (raises `Aborted`, with the
    session as `.session` for its recorded challenges)."""
    loop = asyncio.get_running_loop()
    txaio.config.loop = loop
    futures = (loop.create_future(), loop.create_future(), loop.create_future())
    hello = {"authmethods": authmethods, "authid": authid, "authrole": authrole,
             "authextra": authextra}
    holder: list[AuthClient] = []

    def make():
        s = AuthClient(ComponentConfig(realm, {}), futures, hello, on_challenge)
        holder.append(s)
        return s

    url, port = router.endpoint(transport, where)
    ser = make_serializer(serializer)
    if transport in ("ws", "wst"):
        factory = WampWebSocketClientFactory(make, url=url, serializers=[ser])
        factory.setProtocolOptions(openHandshakeTimeout=T, closeHandshakeTimeout=1.0)
    else:
        factory = WampRawSocketClientFactory(make, serializer=ser)
    router.check_responsive()
    tr, _ = await within(loop.create_connection(factory, "127.0.0.1", port),
                         what=f"connect {url}")
    joined, left, disconnected = futures
    try:
        await within(asyncio.wait([joined, left, disconnected],
                                  return_when=asyncio.FIRST_COMPLETED),
                     what=f"WELCOME/ABORT over {url} ({serializer})")
    except AssertionError:
        router.note_timeout()
        tr.abort()
        raise
    if joined.done() or left.done():
        router.answered = True
    assert holder, f"{url}: closed before the WAMP session started"
    s = holder[0]
    s.tr = tr
    if joined.done():
        return s
    tr.abort()
    if left.done():
        e = Aborted(left.result())
        e.session = s
        raise e
    raise AssertionError(f"{url}/{serializer}: connection closed before WELCOME")


async def refused(aw) -> Aborted:
    """The `Aborted` of a connect that must be refused."""
    try:
        s = await aw
    except Aborted as e:
        return e
    d = s.joined.result()
    s.drop()
    raise AssertionError(f"expected ABORT, the session joined as {d.authid}/{d.authrole} "
                         f"({d.authmethod}/{d.authprovider})")
