"""Graceful shutdown: SIGTERM makes the router say GOODBYE wamp.close.system_shutdown to every
session and exit with status 0 within a few seconds."""

from __future__ import annotations

import asyncio
import signal
import time

from autobahn.wamp.types import PublishOptions

from interop import RawSocketConn, within

SHUTDOWN_DEADLINE = 5.0


async def _wait_exit(router, deadline=SHUTDOWN_DEADLINE):
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(None, router.wait, deadline)


async def test_sigterm_goodbye_to_every_session(start_router, clients):
    """On SIGTERM every connected autobahn session (WebSocket, RawSocket TCP, RawSocket Unix; all
    three serializers) receives GOODBYE with reason wamp.close.system_shutdown (autobahn's
    onLeave details.reason), and the router exits with status 0 within a few seconds."""
    r = start_router()
    sessions = [await clients.connect(r, t, s) for t, s in
                [("ws", "json"), ("ws", "msgpack"), ("rs", "cbor"), ("rs", "json"),
                 ("unix", "msgpack"), ("unix", "cbor")]]
    # some state in the router: a subscription and a registration
    await within(sessions[0].subscribe(lambda *a: None, "com.test.shutdown"))
    await within(sessions[1].register(lambda: None, "com.test.shutdown.proc"))
    await within(sessions[2].publish("com.test.shutdown", 1, options=PublishOptions(acknowledge=True)))

    t0 = time.monotonic()
    r.signal(signal.SIGTERM)
    for s in sessions:
        details = await within(asyncio.shield(s.left), SHUTDOWN_DEADLINE,
                               "GOODBYE after SIGTERM")
        assert details.reason == "wamp.close.system_shutdown", details
    code = await _wait_exit(r)
    assert code is not None, f"router still running {SHUTDOWN_DEADLINE}s after SIGTERM"
    assert code == 0, f"router exited with {code}; stderr:\n{r.stderr_tail()}"
    assert time.monotonic() - t0 < SHUTDOWN_DEADLINE


async def test_sigterm_raw_session_gets_goodbye(start_router, raw):
    """On SIGTERM a raw RawSocket session receives GOODBYE [6, {}, "wamp.close.system_shutdown"];
    a connection that has not sent HELLO yet is simply closed; the router exits 0."""
    r = start_router()
    c = raw.track(await RawSocketConn.open(port=r.rs_port, serializer="json"))
    await c.join()
    idle = raw.track(await RawSocketConn.open(path=r.unix_path, serializer="cbor"))
    r.signal(signal.SIGTERM)
    msg = await c.recv_msg(SHUTDOWN_DEADLINE)
    assert msg[0] == 6 and isinstance(msg[1], dict) and msg[2] == "wamp.close.system_shutdown", msg
    assert await idle.wait_closed(SHUTDOWN_DEADLINE), "pre-HELLO connection not closed"
    code = await _wait_exit(r)
    assert code == 0, f"router exit code {code}; stderr:\n{r.stderr_tail()}"


async def test_sigterm_idle_router_exits_zero(start_router):
    """SIGTERM with no client connected: the router exits with status 0 within a few seconds."""
    r = start_router()
    r.signal(signal.SIGTERM)
    code = await _wait_exit(r)
    assert code == 0, f"router exit code {code}; stderr:\n{r.stderr_tail()}"
