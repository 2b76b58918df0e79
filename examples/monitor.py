"""Print every session's join, statistics and leave events, as a Crossbar.io monitor does.

Run the router (`cargo run --release -p turnstile -- start`), then:

    target/interop-venv/bin/python examples/monitor.py [ws://127.0.0.1:8080/ws] [realm1]

(`scripts/test` creates that venv with Autobahn|Python; any Python with `autobahn` works.)
The handlers take `(session_details)`, `(session_details, stats)` and `(session_id)`: the
signatures existing Crossbar monitoring clients use, unchanged.
"""

import sys

from autobahn.asyncio.component import Component, run

URL = sys.argv[1] if len(sys.argv) > 1 else "ws://127.0.0.1:8080/ws"
REALM = sys.argv[2] if len(sys.argv) > 2 else "realm1"

monitor = Component(transports=[{"url": URL, "serializers": ["json"]}], realm=REALM)


def on_join(session_details):
    print(
        f"join   session={session_details['session']} authid={session_details['authid']} "
        f"authrole={session_details['authrole']} serializer={session_details['serializer']} "
        f"peer={session_details['transport']['peer']}",
        flush=True,
    )


def on_stats(session_details, stats):
    flags = "".join(
        flag for flag, on in (("F", stats["first"]), ("L", stats["last"])) if on
    )
    print(
        f"stats  session={session_details['session']} cycle={stats['cycle']} "
        f"messages={stats['messages']} bytes={stats['bytes']} "
        f"rated={stats['rated_messages']} duration={stats['duration'] / 1e9:.3f}s "
        f"serializer={stats['serializer']} {flags}",
        flush=True,
    )


def on_leave(session_id):
    print(f"leave  session={session_id}", flush=True)


@monitor.on_join
async def joined(session, details):
    await session.subscribe(on_join, "wamp.session.on_join")
    await session.subscribe(on_stats, "wamp.session.on_stats")
    await session.subscribe(on_leave, "wamp.session.on_leave")
    print(f"monitoring realm {REALM} at {URL} as session {details.session}", flush=True)


if __name__ == "__main__":
    run([monitor], log_level="warn")
