"""Reference values for the tests of crates/turnstile-core/src/auth, computed with the real
Autobahn|Python client code (so the Rust tests need no Python).

    python3 -m venv target/auth-venv
    target/auth-venv/bin/pip install "autobahn[encryption]==26.10.2"
    target/auth-venv/bin/python scripts/auth_vectors.py

The Rust tests drive the authentication flow with a deterministic random source, `PatternRng`,
that fills every buffer with `start, start + 1, ...` (mod 256); `pattern()` below is the same.
"""

import asyncio
import json
from datetime import datetime, timezone

import txaio

txaio.use_asyncio()

from autobahn.util import utcstr  # noqa: E402
from autobahn.wamp import auth  # noqa: E402
from autobahn.wamp.cryptosign import CryptosignKey  # noqa: E402
from autobahn.wamp.types import Challenge  # noqa: E402
from nacl.signing import SigningKey  # noqa: E402

RNG_START = 7
SESSION = 1234567890123
# now_unix_ns = 1_700_000_000_123_456_789
NOW = datetime(2023, 11, 14, 22, 13, 20, 123456, tzinfo=timezone.utc)


def pattern(start, n):
    return bytes((start + i) % 256 for i in range(n))


def cra_challenge(authid, authrole, authprovider):
    # As Crossbar builds it (crossbar/router/auth/wampcra.py): key order, json.dumps defaults.
    nonce = __import__("base64").b64encode(pattern(RNG_START, 48)).decode("ascii")[:64]
    obj = {
        "authid": authid,
        "authrole": authrole,
        "authmethod": "wampcra",
        "authprovider": authprovider,
        "session": SESSION,
        "nonce": nonce,
        "timestamp": utcstr(NOW.replace(tzinfo=None)),
    }
    return json.dumps(obj, ensure_ascii=False)


def client_cra(authid, secret, extra):
    client = auth.AuthWampCra(authid=authid, secret=secret)
    return client.on_challenge(None, Challenge("wampcra", extra))


def show(name, value):
    print(f"{name} = {json.dumps(value, ensure_ascii=False)}")


# WAMP-CRA, unsalted: the configured secret is the HMAC key.
c1 = cra_challenge("joe", "frontend", "static")
show("CRA_CHALLENGE", c1)
show("CRA_SIGNATURE", client_cra("joe", "secret123", {"challenge": c1}))
assert client_cra("joe", "secret123", {"challenge": c1}) == auth.compute_wcs(
    b"secret123", c1.encode()
).decode()

# WAMP-CRA, salted: Crossbar's configured secret is derive_key(password, salt, ...), used as is
# as the HMAC key; the client derives the same key from its password and the CHALLENGE extra.
derived = auth.derive_key("secret1", "salt123", 100, 16).decode("ascii")
show("CRA_SALTED_SECRET", derived)
c2 = cra_challenge("peter", "frontend", "static")
extra2 = {"challenge": c2, "salt": "salt123", "iterations": 100, "keylen": 16}
show("CRA_SALTED_CHALLENGE", c2)
show("CRA_SALTED_SIGNATURE", client_cra("peter", "secret1", extra2))
show("DERIVE_KEY_DEFAULTS", auth.derive_key("password", "pepper").decode("ascii"))

# Non-ASCII authid: json.dumps(ensure_ascii=False) keeps it raw.
c3 = cra_challenge("jöe \"q\"", "frontend", "dynamic")
show("CRA_UNICODE_CHALLENGE", c3)
show("CRA_UNICODE_SIGNATURE", client_cra("jöe", "s3cr3t", {"challenge": c3}))

# WAMP-Cryptosign: signature = hex(ed25519 signature (64 bytes) || signed challenge (32 bytes)).
challenge_hex = pattern(RNG_START, 32).hex()
show("CS_CHALLENGE", challenge_hex)
for name, seed_start in (("CS_KEY", 100), ("CS_OTHER_KEY", 200)):
    seed = pattern(seed_start, 32)
    key = CryptosignKey.from_bytes(seed)
    show(f"{name}_SEED", seed.hex())
    show(f"{name}_PUB", key.public_key())

    async def sign():
        return await key.sign_challenge(Challenge("cryptosign", {"challenge": challenge_hex}))

    sig = asyncio.run(sign())
    direct = SigningKey(seed).sign(bytes.fromhex(challenge_hex)).signature.hex() + challenge_hex
    assert sig == direct and len(sig) == 192
    show(f"{name}_SIGNATURE", sig)
