"""Helpers for the real-client interop tests: router process control, config generation,
Autobahn client sessions, and raw WebSocket / RawSocket connections that send bytes as they are.

Everything that awaits goes through `within()` (default 5 s, env INTEROP_TIMEOUT), so a router
that does not answer makes a test fail fast instead of hanging.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import cbor2
import msgpack
import pytest
import txaio

txaio.use_asyncio()

from autobahn.asyncio.rawsocket import WampRawSocketClientFactory  # noqa: E402
from autobahn.asyncio.wamp import ApplicationSession  # noqa: E402
from autobahn.asyncio.websocket import WampWebSocketClientFactory  # noqa: E402
from autobahn.wamp.serializer import (  # noqa: E402
    CBORSerializer,
    JsonSerializer,
    MsgPackSerializer,
)
from autobahn.wamp.types import ComponentConfig  # noqa: E402

REPO = Path(__file__).resolve().parents[3]

#: seconds for any single await in a test (connect, call, an expected event, ...)
T = float(os.environ.get("INTEROP_TIMEOUT", "5"))
#: seconds to wait for the router to listen after spawning it
STARTUP_TIMEOUT = float(os.environ.get("INTEROP_STARTUP_TIMEOUT", "10"))

SERIALIZERS = ("json", "msgpack", "cbor")
#: ws = WebSocket on the `web` transport, rs = RawSocket over TCP, unix = RawSocket over a Unix socket
TRANSPORTS = ("ws", "rs", "unix")
RAWSOCKET_SERIALIZER_ID = {"json": 1, "msgpack": 2, "cbor": 3}

#: after this many timed-out waits on a router that never answered any WAMP message, further
#: waits on it fail at once
MAX_SILENT_TIMEOUTS = 3

AUTHID_RE = re.compile(r"^[A-Z0-9]{4}(-[A-Z0-9]{4}){5}$")
MAX_ID = 2**53


async def within(aw, timeout: float = T, what: str = ""):
    """Await `aw` with a timeout; a timeout fails with a readable message."""
    try:
        return await asyncio.wait_for(aw, timeout)
    except asyncio.TimeoutError:
        raise AssertionError(f"timed out after {timeout:g}s{': ' + what if what else ''}") from None


async def eventually(predicate, timeout: float = T, what: str = "", interval: float = 0.01):
    """Poll `predicate()` until it is true, or fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for: {what or predicate}")
        await asyncio.sleep(interval)


# ----------------------------------------------------------------------------------------------
# Router binary, ports, configuration
# ----------------------------------------------------------------------------------------------


def router_binary() -> str:
    """`TURNSTILE_BIN`, else `$CARGO_TARGET_DIR/debug/turnstile`, else `target/debug/turnstile`."""
    env = os.environ.get("TURNSTILE_BIN")
    if env:
        return env
    target = Path(os.environ.get("CARGO_TARGET_DIR") or "target")
    if not target.is_absolute():
        target = REPO / target
    return str(target / "debug" / "turnstile")


def free_ports(n: int) -> list[int]:
    """n distinct free TCP ports on 127.0.0.1 (all sockets held open until all are chosen)."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def free_port() -> int:
    return free_ports(1)[0]


ALLOW_ALL = {"call": True, "register": True, "publish": True, "subscribe": True}
ALLOW_SUBSCRIBE_ONLY = {"call": False, "register": False, "publish": False, "subscribe": True}


def role(name: str, allow: dict, uri: str = "", match: str = "prefix") -> dict:
    return {
        "name": name,
        "permissions": [
            {
                "uri": uri,
                "match": match,
                "allow": dict(allow),
                "disclose": {"caller": False, "publisher": False},
                "cache": True,
            }
        ],
    }


def realm(name: str = "realm1", roles: list | None = None, stats: dict | None = None,
          options: dict | None = None) -> dict:
    """A realm with role `anonymous` (everything on prefix "") and `restricted` (subscribe only)."""
    r: dict[str, Any] = {
        "name": name,
        "roles": roles if roles is not None else [
            role("anonymous", ALLOW_ALL),
            role("restricted", ALLOW_SUBSCRIBE_ONLY),
        ],
        "options": options if options is not None else {"enable_meta_api": True},
    }
    if stats is not None:
        r["stats"] = stats
    return r


def websocket_path(auth: dict | None = None) -> dict:
    p: dict[str, Any] = {"type": "websocket", "serializers": list(SERIALIZERS)}
    if auth is not None:
        p["auth"] = auth
    return p


def node_config(*, ws_port: int, rs_port: int, unix_path: str, realms: list | None = None,
                ws_paths: dict | None = None) -> dict:
    """A Crossbar-style node config: web transport with `ws` (=> ws://127.0.0.1:P/ws), RawSocket
    over TCP and RawSocket over a Unix socket, all with json/msgpack/cbor."""
    paths = {"ws": websocket_path()}
    if ws_paths:
        paths.update(ws_paths)
    return {
        "version": 2,
        "controller": {},
        "workers": [
            {
                "type": "router",
                "realms": realms if realms is not None else [realm("realm1")],
                "transports": [
                    {
                        "type": "web",
                        "endpoint": {"type": "tcp", "interface": "127.0.0.1", "port": ws_port},
                        "paths": paths,
                    },
                    {
                        "type": "rawsocket",
                        "endpoint": {"type": "tcp", "interface": "127.0.0.1", "port": rs_port},
                        "serializers": list(SERIALIZERS),
                    },
                    {
                        "type": "rawsocket",
                        "endpoint": {"type": "unix", "path": unix_path},
                        "serializers": list(SERIALIZERS),
                    },
                ],
            }
        ],
    }


class RouterError(Exception):
    pass


class Router:
    """One `turnstile start --config FILE` process on free ports, stderr captured to a file."""

    #: all routers alive right now (conftest attaches their stderr to failing tests' reports)
    running: list["Router"] = []

    def __init__(self, workdir: Path, realms: list | None = None, ws_paths: dict | None = None,
                 binary: str | None = None):
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.realms = realms
        self.ws_paths = ws_paths
        self.binary = binary or router_binary()
        # a short directory for the Unix socket (sun_path is limited to 108 bytes)
        self.sockdir = tempfile.mkdtemp(prefix="ts-", dir="/tmp")
        self.unix_path = os.path.join(self.sockdir, "router.sock")
        self.proc: subprocess.Popen | None = None
        self.config: dict = {}
        self.config_path = self.workdir / "config.json"
        self.stderr_path = self.workdir / "router.stderr"
        self.ws_port = self.rs_port = 0
        self.returncode: int | None = None
        # fail-fast bookkeeping: a router that never answers WAMP would otherwise cost every
        # test its full timeout
        self.answered = False
        self.silent_timeouts = 0

    def check_responsive(self) -> None:
        """Fail at once if this router has never answered a WAMP message and already let
        MAX_SILENT_TIMEOUTS waits time out (it is not routing yet, or is wedged)."""
        if not self.answered and self.silent_timeouts >= MAX_SILENT_TIMEOUTS:
            raise AssertionError(
                f"router has not answered a single WAMP message ({self.silent_timeouts} waits "
                f"timed out): failing fast; stderr:\n{self.stderr_tail(15)}")

    def note_timeout(self) -> None:
        if not self.answered:
            self.silent_timeouts += 1

    # -- addresses ---------------------------------------------------------------------------
    def ws_url(self, path: str = "ws") -> str:
        return f"ws://127.0.0.1:{self.ws_port}/{path}"

    @property
    def rs_url(self) -> str:
        return f"rs://127.0.0.1:{self.rs_port}"

    # -- lifecycle -----------------------------------------------------------------------------
    def write_config(self) -> None:
        self.ws_port, self.rs_port = free_ports(2)
        self.config = node_config(ws_port=self.ws_port, rs_port=self.rs_port,
                                  unix_path=self.unix_path, realms=self.realms,
                                  ws_paths=self.ws_paths)
        self.config_path.write_text(json.dumps(self.config, indent=2))

    def start(self, attempts: int = 3) -> "Router":
        if not os.path.exists(self.binary):
            raise RouterError(f"router binary {self.binary} does not exist: run `cargo build -p "
                              f"turnstile` or set TURNSTILE_BIN")
        last = ""
        for _ in range(attempts):
            self.write_config()
            if os.path.exists(self.unix_path):
                os.unlink(self.unix_path)
            with open(self.stderr_path, "wb") as err:
                self.proc = subprocess.Popen(
                    [self.binary, "start", "--config", str(self.config_path)],
                    stdin=subprocess.DEVNULL, stdout=err, stderr=err, cwd=self.workdir,
                    env={**os.environ, "RUST_BACKTRACE": "1"},
                )
            Router.running.append(self)
            try:
                self._wait_ready()
                return self
            except RouterError as e:
                last = str(e)
                self.kill()
                # a free port taken between choosing it and binding it: try new ports
                if "in use" not in self.stderr().lower():
                    break
        raise RouterError(last)

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        pending = {("tcp", self.ws_port), ("tcp", self.rs_port), ("unix", self.unix_path)}
        while pending:
            if self.proc.poll() is not None:
                raise RouterError(
                    f"router exited early with code {self.proc.returncode} "
                    f"(config {self.config_path}); stderr:\n{self.stderr_tail()}")
            for kind, addr in list(pending):
                try:
                    if kind == "tcp":
                        s = socket.create_connection(("127.0.0.1", addr), timeout=0.2)
                    else:
                        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                        s.settimeout(0.2)
                        s.connect(addr)
                    s.close()
                    pending.discard((kind, addr))
                except OSError:
                    pass
            if pending and time.monotonic() > deadline:
                raise RouterError(
                    f"router not listening on {sorted(map(str, pending))} after "
                    f"{STARTUP_TIMEOUT:g}s; stderr:\n{self.stderr_tail()}")
            if pending:
                time.sleep(0.05)

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def signal(self, sig: int) -> None:
        if self.alive:
            self.proc.send_signal(sig)

    def wait(self, timeout: float) -> int | None:
        """The exit code, or None if still running after `timeout` seconds."""
        try:
            self.returncode = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None
        return self.returncode

    def stop(self, timeout: float = 5.0) -> int | None:
        """SIGTERM, then SIGKILL after `timeout`; returns the exit code of the SIGTERM stop (None
        if it had to be killed). Idempotent; always removes the socket directory."""
        code = None
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.send_signal(signal.SIGTERM)
                code = self.wait(timeout)
                if code is None:
                    self.kill()
            else:
                code = self.proc.returncode
        if self in Router.running:
            Router.running.remove(self)
        shutil.rmtree(self.sockdir, ignore_errors=True)
        return code

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)
        if self in Router.running:
            Router.running.remove(self)

    def stderr(self) -> str:
        try:
            return self.stderr_path.read_text(errors="replace")
        except OSError:
            return ""

    def stderr_tail(self, lines: int = 40) -> str:
        return "\n".join(self.stderr().splitlines()[-lines:]) or "(empty)"


def start_or_fail(r: Router) -> Router:
    """`r` started; if it does not start, it is stopped and the test fails (without a traceback)
    with the RouterError's message."""
    try:
        return r.start()
    except RouterError as e:
        r.stop()
        pytest.fail(str(e), pytrace=False)


def serve_module(r: Router):
    """Generator body for a module-scoped router fixture (`yield from serve_module(Router(...))`):
    yields `r` started (see `start_or_fail`), then stops it, and fails if it had died during the
    module, with its exit code and stderr."""
    start_or_fail(r)
    yield r
    crashed = not r.alive
    code = r.stop()
    if crashed:
        pytest.fail(f"router died during the module with exit code {code}; stderr:\n"
                    f"{r.stderr_tail()}", pytrace=False)


# ----------------------------------------------------------------------------------------------
# Autobahn clients
# ----------------------------------------------------------------------------------------------


def make_serializer(name: str):
    return {"json": JsonSerializer, "msgpack": MsgPackSerializer, "cbor": CBORSerializer}[name]()


class Aborted(Exception):
    """The router refused the session (ABORT); `.details` is autobahn's CloseDetails."""

    def __init__(self, details):
        super().__init__(f"session aborted: {details.reason}: {details.message}")
        self.details = details


class Client(ApplicationSession):
    """An autobahn session exposing futures for join / leave / disconnect and the WELCOME."""

    def __init__(self, config, futures):
        super().__init__(config)
        self.joined, self.left, self.disconnected = futures
        self.welcome = None
        self.tr = None  # the asyncio transport

    def onWelcome(self, msg):
        self.welcome = msg
        return super().onWelcome(msg)

    async def onJoin(self, details):
        if not self.joined.done():
            self.joined.set_result(details)

    def onLeave(self, details):
        if not self.left.done():
            self.left.set_result(details)
        super().onLeave(details)  # disconnects

    def onDisconnect(self):
        if not self.disconnected.done():
            self.disconnected.set_result(True)

    def drop(self) -> None:
        """Close the TCP/Unix connection without GOODBYE."""
        if self.tr is not None and not self.tr.is_closing():
            self.tr.abort()


async def connect(router: Router, transport: str = "ws", serializer: str = "json",
                  realm: str = "realm1", *, path: str = "ws", cls=Client,
                  expect_join: bool = True) -> Client:
    """Connect an autobahn asyncio session over `transport` (ws | rs | unix) with `serializer`,
    the way ApplicationRunner / Component do it, and wait for WELCOME (or ABORT => Aborted)."""
    loop = asyncio.get_running_loop()
    txaio.config.loop = loop
    futures = (loop.create_future(), loop.create_future(), loop.create_future())
    holder: list[Client] = []

    def make():
        s = cls(ComponentConfig(realm, {}), futures)
        holder.append(s)
        return s

    ser = make_serializer(serializer)
    if transport == "ws":
        factory = WampWebSocketClientFactory(make, url=router.ws_url(path), serializers=[ser])
        factory.setProtocolOptions(openHandshakeTimeout=T, closeHandshakeTimeout=1.0)
        coro = loop.create_connection(factory, "127.0.0.1", router.ws_port)
    elif transport == "rs":
        factory = WampRawSocketClientFactory(make, serializer=ser)
        coro = loop.create_connection(factory, "127.0.0.1", router.rs_port)
    elif transport == "unix":
        factory = WampRawSocketClientFactory(make, serializer=ser)
        coro = loop.create_unix_connection(factory, router.unix_path)
    else:
        raise ValueError(transport)
    router.check_responsive()
    tr, _proto = await within(coro, what=f"connect {transport}")
    joined, left, disconnected = futures
    try:
        await within(asyncio.wait([joined, left, disconnected], return_when=asyncio.FIRST_COMPLETED),
                     what=f"WELCOME/ABORT over {transport}/{serializer}")
    except AssertionError:
        router.note_timeout()
        tr.abort()
        raise
    if joined.done() or left.done():
        router.answered = True
    if not holder:
        tr.abort()
        raise AssertionError(f"{transport}/{serializer}: transport closed before the WAMP session "
                             "started (WebSocket/RawSocket handshake refused?)")
    s = holder[0]
    s.tr = tr
    if joined.done():
        return s
    tr.abort()
    if left.done():
        raise Aborted(left.result())
    raise AssertionError(f"{transport}/{serializer}: connection closed before WELCOME")


# ----------------------------------------------------------------------------------------------
# Codecs and raw connections
# ----------------------------------------------------------------------------------------------


def _json_default(o):
    if isinstance(o, (bytes, bytearray)):
        return "\0" + base64.b64encode(bytes(o)).decode()
    raise TypeError(o)


def _json_unbin(o):
    if isinstance(o, str) and o.startswith("\0"):
        return base64.b64decode(o[1:])
    if isinstance(o, list):
        return [_json_unbin(x) for x in o]
    if isinstance(o, dict):
        return {k: _json_unbin(v) for k, v in o.items()}
    return o


def encode(serializer: str, msg) -> bytes:
    if serializer == "json":
        return json.dumps(msg, separators=(",", ":"), ensure_ascii=False,
                          default=_json_default).encode()
    if serializer == "msgpack":
        return msgpack.packb(msg, use_bin_type=True)
    if serializer == "cbor":
        return cbor2.dumps(msg)
    raise ValueError(serializer)


def decode(serializer: str, data: bytes):
    if serializer == "json":
        return _json_unbin(json.loads(data.decode() if isinstance(data, bytes) else data))
    if serializer == "msgpack":
        return msgpack.unpackb(data, raw=False, strict_map_key=False)
    if serializer == "cbor":
        return cbor2.loads(data)
    raise ValueError(serializer)


HELLO_ROLES = {"publisher": {}, "subscriber": {}, "caller": {}, "callee": {}}


def hello(realm_name: str = "realm1") -> list:
    return [1, realm_name, {"roles": HELLO_ROLES}]


class RawConn:
    """A WAMP connection without a client library: send any bytes, read what comes back.
    `sent` / `received` list every WAMP payload (bytes) in order, for exact metering checks."""

    serializer: str

    def __init__(self):
        self.sent: list[bytes] = []
        self.received: list[bytes] = []
        self.router: Router | None = None

    async def recv_payload(self, timeout: float = T) -> bytes | None:
        """The next WAMP payload, or None once the peer closed the connection."""
        if self.router is not None:
            self.router.check_responsive()
        try:
            data = await self._recv_payload(timeout)
        except AssertionError:
            if self.router is not None:
                self.router.note_timeout()
            raise
        if data is not None and self.router is not None:
            self.router.answered = True
        return data

    async def send_msg(self, msg) -> None:
        await self.send_payload(encode(self.serializer, msg))

    async def recv_msg(self, timeout: float = T):
        data = await self.recv_payload(timeout)
        if data is None:
            raise AssertionError("connection closed while waiting for a message")
        return decode(self.serializer, data)

    async def join(self, realm_name: str = "realm1") -> list:
        await self.send_msg(hello(realm_name))
        welcome = await self.recv_msg()
        assert welcome[0] == 2, f"expected WELCOME, got {welcome!r}"
        return welcome

    async def expect_abort(self, reason: str = "wamp.error.protocol_violation") -> list:
        """The next message is ABORT `reason` with a non-empty details.message, and then the
        connection closes."""
        data = await self.recv_payload()
        assert data is not None, f"connection closed without ABORT {reason}"
        msg = decode(self.serializer, data)
        assert isinstance(msg, list) and msg and msg[0] == 3, f"expected ABORT, got {msg!r}"
        assert len(msg) >= 3, f"short ABORT {msg!r}"
        assert isinstance(msg[1], dict), f"ABORT details not a dict: {msg!r}"
        assert msg[2] == reason, f"ABORT reason {msg[2]!r}, expected {reason!r}"
        message = msg[1].get("message")
        assert isinstance(message, str) and message.strip(), \
            f"ABORT details.message missing or empty: {msg!r}"
        assert await self.wait_closed(), "connection still open after ABORT"
        return msg

    async def send_payload(self, data: bytes) -> None:
        raise NotImplementedError

    async def _recv_payload(self, timeout: float) -> bytes | None:
        raise NotImplementedError

    async def wait_closed(self, timeout: float = T) -> bool:
        """True once the peer has closed the connection (discarding anything it still sends)."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            try:
                data = await self._recv_payload(left)
            except AssertionError:  # timeout
                return False
            if data is None:
                return True

    async def close(self) -> None:
        raise NotImplementedError


class RawSocketConn(RawConn):
    """RawSocket over TCP or a Unix socket with plain asyncio streams."""

    @classmethod
    async def open(cls, *, port: int | None = None, path: str | None = None,
                   serializer: str = "json", handshake: bool = True,
                   length_exp: int = 15) -> "RawSocketConn":
        self = cls()
        self.serializer = serializer
        if path is not None:
            self.reader, self.writer = await within(asyncio.open_unix_connection(path))
        else:
            self.reader, self.writer = await within(asyncio.open_connection("127.0.0.1", port))
        self.handshake_reply = None
        if handshake:
            ser_id = RAWSOCKET_SERIALIZER_ID[serializer]
            self.writer.write(bytes([0x7F, (length_exp << 4) | ser_id, 0, 0]))
            await self.writer.drain()
            reply = await within(self.reader.readexactly(4), what="RawSocket handshake reply")
            self.handshake_reply = reply
            assert reply[0] == 0x7F and reply[1] & 0x0F == ser_id and reply[2:] == b"\0\0", \
                f"RawSocket handshake refused: {reply.hex()}"
        return self

    async def send_raw(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def send_payload(self, data: bytes, frame_type: int = 0) -> None:
        self.sent.append(data)
        await self.send_raw(struct.pack(">I", (frame_type << 24) | len(data)) + data)

    async def _recv_payload(self, timeout: float) -> bytes | None:
        """The next regular frame's payload; answers PINGs; None at EOF / reset."""
        while True:
            try:
                head = await within(self.reader.readexactly(4), timeout, "RawSocket frame")
                ftype, length = head[0] & 0x07, int.from_bytes(head[1:], "big") | ((head[0] & 0x08) << 21)
                data = await within(self.reader.readexactly(length), timeout, "RawSocket payload")
            except (asyncio.IncompleteReadError, ConnectionError):
                return None
            if ftype == 0:
                self.received.append(data)
                return data
            if ftype == 1:  # PING => PONG with the same payload
                await self.send_raw(struct.pack(">I", (2 << 24) | len(data)) + data)

    async def close(self) -> None:
        try:
            self.writer.close()
            await within(self.writer.wait_closed(), 1)
        except Exception:
            pass


class RawWebSocketConn(RawConn):
    """WAMP over WebSocket with the `websockets` package: JSON as text messages, the binary
    serializers as binary messages (as the WAMP spec says)."""

    @classmethod
    async def open(cls, url: str, serializer: str = "json") -> "RawWebSocketConn":
        from websockets.asyncio.client import connect as ws_connect

        self = cls()
        self.serializer = serializer
        self.ws = await within(ws_connect(url, subprotocols=[f"wamp.2.{serializer}"],
                                          open_timeout=T, close_timeout=1, compression=None,
                                          max_size=None, ping_interval=None))
        assert self.ws.subprotocol == f"wamp.2.{serializer}", \
            f"router chose subprotocol {self.ws.subprotocol!r}"
        return self

    async def send_payload(self, data: bytes, text: bool | None = None) -> None:
        self.sent.append(data)
        if text is None:
            text = self.serializer == "json"
        if text:
            await self.ws.send(data.decode("utf-8"), text=True)
        else:
            await self.ws.send(data, text=False)

    async def _recv_payload(self, timeout: float) -> bytes | None:
        from websockets.exceptions import ConnectionClosed

        try:
            data = await within(self.ws.recv(), timeout, "WebSocket message")
        except ConnectionClosed:
            return None
        if isinstance(data, str):
            data = data.encode()
        self.received.append(data)
        return data

    async def close(self) -> None:
        try:
            await within(self.ws.close(), 2)
        except Exception:
            pass


async def open_raw(router: Router, transport: str, serializer: str) -> RawConn:
    router.check_responsive()
    try:
        if transport == "ws":
            c = await RawWebSocketConn.open(router.ws_url(), serializer)
        elif transport == "rs":
            c = await RawSocketConn.open(port=router.rs_port, serializer=serializer)
        elif transport == "unix":
            c = await RawSocketConn.open(path=router.unix_path, serializer=serializer)
        else:
            raise ValueError(transport)
    except (AssertionError, asyncio.TimeoutError, TimeoutError):
        router.note_timeout()
        raise
    c.router = router
    return c
