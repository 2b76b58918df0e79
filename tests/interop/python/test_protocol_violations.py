"""Protocol violations: a peer that sends something that is not a valid WAMP message in its
state gets ABORT wamp.error.protocol_violation (with a non-empty details.message) and the
connection is closed; other sessions on the router are unaffected."""

from __future__ import annotations

import asyncio

import pytest
from autobahn.wamp.types import PublishOptions

from interop import (
    SERIALIZERS,
    TRANSPORTS,
    RawSocketConn,
    eventually,
    hello,
    open_raw,
    within,
)

#: a payload that does not decode at all in each serializer
GARBAGE = {
    "json": b"this is {not JSON",  # valid UTF-8, so it can go in a WebSocket text message
    "msgpack": b"\xc1\xc1\xc1\xc1",  # 0xc1 is never used in MessagePack
    "cbor": b"\x1c\x00\x01",  # additional information 28 is reserved in CBOR
}


async def _garbage(c):
    await c.send_payload(GARBAGE[c.serializer])


async def _not_a_list(c):
    await c.send_msg({"hello": "world"})


async def _empty_list(c):
    await c.send_msg([])


async def _subscribe_before_hello(c):
    await c.send_msg([32, 1, {}, "com.example.topic"])


async def _second_hello(c):
    await c.join()
    await c.send_msg(hello())


async def _hello_realm_wrong_type(c):
    await c.send_msg([1, 12345, {"roles": {"subscriber": {}}}])


async def _subscribe_request_id_wrong_type(c):
    await c.join()
    await c.send_msg([32, "one", {}, "com.example.topic"])


async def _publish_options_wrong_type(c):
    await c.join()
    await c.send_msg([16, 1, ["not", "a", "dict"], "com.example.topic"])


CASES = {
    "garbage": _garbage,
    "not_a_list": _not_a_list,
    "empty_list": _empty_list,
    "subscribe_before_hello": _subscribe_before_hello,
    "second_hello": _second_hello,
    "hello_realm_wrong_type": _hello_realm_wrong_type,
    "subscribe_request_id_wrong_type": _subscribe_request_id_wrong_type,
    "publish_options_wrong_type": _publish_options_wrong_type,
}
CASE_DOCS = {
    "garbage": "bytes that do not decode in the connection's serializer",
    "not_a_list": "a valid value that is not a WAMP message (a dict, not a list)",
    "empty_list": "an empty list (no message type)",
    "subscribe_before_hello": "SUBSCRIBE before HELLO",
    "second_hello": "a second HELLO in an established session",
    "hello_realm_wrong_type": "HELLO whose realm is an integer",
    "subscribe_request_id_wrong_type": "SUBSCRIBE whose request id is a string",
    "publish_options_wrong_type": "PUBLISH whose options are a list",
}


async def run_case(router, transport, serializer, case):
    c = await open_raw(router, transport, serializer)
    try:
        await CASES[case](c)
        return await c.expect_abort("wamp.error.protocol_violation")
    finally:
        await c.close()


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("serializer", SERIALIZERS)
@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_violation_aborts(router, transport, serializer, case):
    """Each violation (see CASE_DOCS: garbage bytes, a value that is not a WAMP message, a
    message before HELLO, a second HELLO, an element of the wrong type) is answered with ABORT
    wamp.error.protocol_violation carrying a non-empty details.message, then the router closes
    the connection."""
    await run_case(router, transport, serializer, case)


# ----------------------------------------------------------------------------------------------
# RawSocket handshake errors (no serializer agreed yet, so no ABORT is possible)
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("transport", ["rs", "unix"])
async def test_rawsocket_bad_magic_closes(router, transport):
    """A RawSocket handshake whose first octet is not 0x7F makes the router close the
    connection."""
    kw = {"port": router.rs_port} if transport == "rs" else {"path": router.unix_path}
    c = await RawSocketConn.open(handshake=False, **kw)
    try:
        await c.send_raw(b"GET / HTTP/1.1\r\n\r\n")
        assert await c.wait_closed(), "connection still open after a bad RawSocket magic octet"
    finally:
        await c.close()


@pytest.mark.parametrize("first_octet,error,rule", [
    (0xF4, 1, "serializer 4 (UBJSON) not offered => error 1 (serializer unsupported)"),
    (0xF9, 1, "serializer 9 (undefined) => error 1 (serializer unsupported)"),
])
async def test_rawsocket_handshake_error_reply(router, first_octet, error, rule):
    """A RawSocket handshake asking for a serializer the transport does not offer is answered
    with 0x7F, error code in the upper nibble, lower nibble zero, and the connection is then
    closed."""
    c = await RawSocketConn.open(port=router.rs_port, handshake=False)
    try:
        await c.send_raw(bytes([0x7F, first_octet, 0, 0]))
        reply = await within(c.reader.readexactly(4), what="handshake error reply")
        assert reply == bytes([0x7F, error << 4, 0, 0]), f"{rule}: got {reply.hex()}"
        assert await c.wait_closed(), "connection still open after handshake error"
    finally:
        await c.close()


async def test_rawsocket_handshake_reserved_bytes(router):
    """A RawSocket handshake with non-zero reserved octets is answered with error 3 (use of
    reserved bits) and the connection is closed."""
    c = await RawSocketConn.open(port=router.rs_port, handshake=False)
    try:
        await c.send_raw(bytes([0x7F, 0xF1, 0x12, 0x34]))
        reply = await within(c.reader.readexactly(4), what="handshake error reply")
        assert reply == bytes([0x7F, 3 << 4, 0, 0]), reply.hex()
        assert await c.wait_closed()
    finally:
        await c.close()


# ----------------------------------------------------------------------------------------------
# Two clients, one misbehaving, the other unaffected
# ----------------------------------------------------------------------------------------------


async def test_misbehaving_client_does_not_affect_others(router, clients):
    """While other connections commit every protocol violation above (on every transport and
    serializer, concurrently), a well-behaved autobahn publisher/subscriber pair keeps working:
    every event arrives, in order, and both sessions stay joined."""
    sub = await clients.connect(router, "rs", "msgpack")
    pub = await clients.connect(router, "ws", "json")
    topic = "com.test.unaffected"
    got = []
    await within(sub.subscribe(lambda i: got.append(i), topic))
    await within(sub.register(lambda x: x + 1, topic + ".inc"))

    n = 200
    stop = asyncio.Event()

    async def publish_loop():
        for i in range(n):
            await pub.publish(topic, i, options=PublishOptions(acknowledge=True))
            if i % 10 == 0:
                await asyncio.sleep(0.005)
        stop.set()

    async def violations():
        rounds = 0
        while not stop.is_set() or rounds == 0:
            results = await asyncio.gather(*[
                run_case(router, t, s, case)
                for t in TRANSPORTS for s in SERIALIZERS for case in CASES
            ], return_exceptions=True)
            errors = [r for r in results if isinstance(r, BaseException)]
            assert not errors, f"{len(errors)} violations not handled as expected: {errors[:3]}"
            rounds += 1
        return rounds

    pub_task = asyncio.ensure_future(publish_loop())
    rounds = await within(violations(), 30, "violations")
    await within(pub_task, 30, "publish loop")
    await eventually(lambda: len(got) == n, what=f"{n} events (got {len(got)})")
    assert got == list(range(n))
    assert rounds >= 1
    assert sub.is_attached() and pub.is_attached()
    assert await within(pub.call(topic + ".inc", 41)) == 42
