"""Fixtures for the real-client interop tests.

- `router`: one router per test module, on free ports, with the default config (realm1 with
  roles `anonymous` = everything and `restricted` = subscribe only; WebSocket at /ws, RawSocket
  over TCP and over a Unix socket; json, msgpack and cbor everywhere). Stopped with SIGTERM
  (SIGKILL after 5 s) at the end of the module.
- `start_router(realms=..., ws_paths=...)`: a router with a custom config for one test, stopped
  at the end of that test.
- `clients`: connect autobahn sessions (`await clients.connect(router, "rs", "cbor")`); all of
  them are closed at the end of the test.
- `raw`: open raw WebSocket / RawSocket connections (`await raw.open(router, "ws", "json")`).

The router binary is $TURNSTILE_BIN, else target/debug/turnstile (honouring CARGO_TARGET_DIR).
A failing test gets the tail of each running router's stderr in its report.
"""

from __future__ import annotations

import asyncio
import itertools

import pytest
import txaio

from interop import (
    SERIALIZERS,
    TRANSPORTS,
    RawConn,
    Router,
    connect,
    open_raw,
    serve_module,
    start_or_fail,
)

_counter = itertools.count()


def _router(tmp_path_factory, **kw) -> Router:
    return Router(tmp_path_factory.mktemp(f"router{next(_counter)}"), **kw)


@pytest.fixture(scope="module")
def router(tmp_path_factory):
    yield from serve_module(_router(tmp_path_factory))


@pytest.fixture
def start_router(tmp_path_factory):
    started: list[Router] = []

    def start(**kw) -> Router:
        r = start_or_fail(_router(tmp_path_factory, **kw))
        started.append(r)
        return r

    yield start
    for r in started:
        r.stop()


@pytest.fixture(autouse=True)
async def _txaio_loop():
    """Every test runs on its own event loop: point txaio (autobahn's futures) at it."""
    txaio.config.loop = asyncio.get_running_loop()
    yield


class _Clients:
    def __init__(self):
        self.sessions = []

    async def connect(self, router, transport="ws", serializer="json", realm="realm1", **kw):
        s = await connect(router, transport, serializer, realm, **kw)
        self.sessions.append(s)
        return s

    async def close_all(self):
        for s in self.sessions:
            try:
                if s.is_attached():
                    await asyncio.wait_for(s.leave(), 2)
                    await asyncio.wait_for(asyncio.shield(s.disconnected), 2)
            except Exception:
                pass
            s.drop()


@pytest.fixture
async def clients():
    c = _Clients()
    yield c
    await c.close_all()


class _Raw:
    def __init__(self):
        self.conns: list[RawConn] = []

    async def open(self, router, transport="ws", serializer="json") -> RawConn:
        c = await open_raw(router, transport, serializer)
        self.conns.append(c)
        return c

    def track(self, c: RawConn) -> RawConn:
        self.conns.append(c)
        return c

    async def close_all(self):
        for c in self.conns:
            await c.close()


@pytest.fixture
async def raw():
    r = _Raw()
    yield r
    await r.close_all()


TS = [(t, s) for t in TRANSPORTS for s in SERIALIZERS]


@pytest.fixture(params=TS, ids=[f"{t}-{s}" for t, s in TS])
def ts(request):
    """(transport, serializer): every combination of ws/rs/unix x json/msgpack/cbor."""
    return request.param


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    if report.failed and Router.running:
        for r in Router.running:
            report.sections.append((f"router stderr ({r.config_path})", r.stderr_tail(60)))
    return report
