"""TLS seen by real clients (autobahn 26.10.2, asyncio): WebSocket over TLS (`wss://`) and
RawSocket over TLS (`rss://`) with every serializer, client certificates and the `tls`
authentication method (static principals by certificate fingerprint, a dynamic authenticator
that gets the certificate's details), what a session sees of its TLS connection, and clients
that do not speak TLS to a TLS port.

The CA, the server certificate (localhost / 127.0.0.1) and the client certificates are made by
the test with `cryptography` (already an autobahn dependency) in the router's node directory;
the configuration names them relative to it, as Crossbar configurations do.
"""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import json
import ssl

import pytest
import txaio
from autobahn.asyncio.component import Component
from autobahn.asyncio.rawsocket import WampRawSocketClientFactory
from autobahn.asyncio.websocket import WampWebSocketClientFactory
from autobahn.wamp.types import ComponentConfig, PublishOptions
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from authsupport import AuthClient, refused
from interop import (
    SERIALIZERS,
    T,
    Aborted,
    Router,
    free_ports,
    make_serializer,
    node_config,
    start_or_fail,
    within,
)

AUTHENTICATOR = "com.example.tls_authenticate"

# ----------------------------------------------------------------------------------------------
# Certificates
# ----------------------------------------------------------------------------------------------


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Turnstile tests")])


def _issue(subject_cn, key, issuer_cn, issuer_key, *, ca=False, server=False):
    now = datetime.datetime.now(datetime.UTC)
    b = (x509.CertificateBuilder()
         .subject_name(_name(subject_cn))
         .issuer_name(_name(issuer_cn))
         .public_key(key.public_key())
         .serial_number(x509.random_serial_number())
         .not_valid_before(now - datetime.timedelta(minutes=5))
         .not_valid_after(now + datetime.timedelta(days=1))
         .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if server:
        b = b.add_extension(x509.SubjectAlternativeName([
            x509.DNSName("localhost"),
            x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        b = b.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
    elif not ca:
        b = b.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
    return b.sign(issuer_key, hashes.SHA256())


def _write(path, cert=None, key=None):
    if cert is not None:
        path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    if key is not None:
        path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))


def sha1(cert) -> str:
    return ":".join(f"{b:02X}" for b in cert.fingerprint(hashes.SHA1()))


class Pki:
    """CA, server and two client certificates ("device-1", the known principal, and
    "stranger", issued by the same CA but named by no principal) as PEM files in `dir`."""

    def __init__(self, dir):
        self.dir = dir
        ca_key = ec.generate_private_key(ec.SECP256R1())
        ca = _issue("Turnstile test CA", ca_key, "Turnstile test CA", ca_key, ca=True)
        _write(dir / "ca.pem", cert=ca)
        server_key = ec.generate_private_key(ec.SECP256R1())
        _write(dir / "server.crt", cert=_issue("localhost", server_key, "Turnstile test CA",
                                               ca_key, server=True))
        _write(dir / "server.key", key=server_key)
        self.fingerprints = {}
        for name in ("device-1", "stranger"):
            key = ec.generate_private_key(ec.SECP256R1())
            cert = _issue(name, key, "Turnstile test CA", ca_key)
            _write(dir / f"{name}.crt", cert=cert)
            _write(dir / f"{name}.key", key=key)
            self.fingerprints[name] = sha1(cert)

    def context(self, client: str | None = None) -> ssl.SSLContext:
        """A client context that trusts the CA, presenting `client`'s certificate if given."""
        ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(self.dir / "ca.pem"))
        if client:
            ctx.load_cert_chain(str(self.dir / f"{client}.crt"), str(self.dir / f"{client}.key"))
        return ctx


# ----------------------------------------------------------------------------------------------
# The router
# ----------------------------------------------------------------------------------------------


class TlsRouter(Router):
    """The conftest router (plain `/ws`, RawSocket TCP and Unix, where authenticators join)
    plus three TLS transports:
    - `wss`: a `web` transport over TLS without client certificates: `/ws` (anonymous);
    - `rss`: RawSocket over TLS, client certificates required: `tls` (static: device-1 is
      principal `client_0`, role `anonymous`) and `anonymous`;
    - `wss_dyn`: a `websocket` transport over TLS, client certificates required: `tls`
      (dynamic, AUTHENTICATOR).
    """

    def write_config(self) -> None:
        self.pki = getattr(self, "pki", None) or Pki(self.workdir)
        ports = free_ports(5)
        self.ws_port, self.rs_port = ports[:2]
        self.tls_ports = dict(zip(("wss", "rss", "wss_dyn"), ports[2:]))
        config = node_config(ws_port=self.ws_port, rs_port=self.rs_port,
                             unix_path=self.unix_path, realms=self.realms)
        server_tls = {"key": "server.key", "certificate": "server.crt"}
        client_tls = dict(server_tls, ca_certificates=["ca.pem"],
                          ciphers="ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:"
                                  "DHE-RSA-AES128-GCM-SHA256",
                          dhparam="dhparam.pem")

        def endpoint(name, tls):
            return {"type": "tcp", "interface": "127.0.0.1", "port": self.tls_ports[name],
                    "tls": tls}

        config["workers"][0]["transports"] += [
            {"type": "web", "id": "wss", "endpoint": endpoint("wss", server_tls),
             "paths": {"ws": {"type": "websocket", "serializers": list(SERIALIZERS)}}},
            {"type": "rawsocket", "id": "rss", "endpoint": endpoint("rss", client_tls),
             "serializers": list(SERIALIZERS),
             "auth": {"tls": {"type": "static", "principals": {
                          "client_0": {"certificate-sha1": self.pki.fingerprints["device-1"],
                                       "role": "anonymous"}}},
                      "anonymous": {"type": "static"}}},
            {"type": "websocket", "id": "wss_dyn", "endpoint": endpoint("wss_dyn", client_tls),
             "url": f"wss://localhost:{self.tls_ports['wss_dyn']}/",
             "serializers": list(SERIALIZERS),
             "auth": {"tls": {"type": "dynamic", "authenticator": AUTHENTICATOR}}},
        ]
        self.config = config
        self.config_path.write_text(json.dumps(config, indent=2))

    def url(self, name: str) -> str:
        scheme = "rss" if name == "rss" else "wss"
        path = "/ws" if name == "wss" else ("/" if name == "wss_dyn" else "")
        return f"{scheme}://localhost:{self.tls_ports[name]}{path}"


@pytest.fixture(scope="module")
def trouter(tmp_path_factory):
    r = start_or_fail(TlsRouter(tmp_path_factory.mktemp("tlsrouter")))
    yield r
    r.stop()


async def tls_connect(router: TlsRouter, name: str, serializer: str = "json", *,
                      client: str | None = None, authmethods=None, authid=None) -> AuthClient:
    """An autobahn session over TLS transport `name`, presenting `client`'s certificate; returns
    it once joined, raises `Aborted` on ABORT, `ssl.SSLError`/`ConnectionError` when the TLS
    handshake or the connection fails."""
    loop = asyncio.get_running_loop()
    txaio.config.loop = loop
    futures = (loop.create_future(), loop.create_future(), loop.create_future())
    holder: list[AuthClient] = []

    def make():
        s = AuthClient(ComponentConfig("realm1", {}), futures,
                       {"authmethods": authmethods, "authid": authid}, None)
        holder.append(s)
        return s

    ser = make_serializer(serializer)
    if name == "rss":
        factory = WampRawSocketClientFactory(make, serializer=ser)
    else:
        factory = WampWebSocketClientFactory(make, url=router.url(name), serializers=[ser])
        factory.setProtocolOptions(openHandshakeTimeout=T, closeHandshakeTimeout=1.0)
    tr, _ = await within(loop.create_connection(factory, "127.0.0.1", router.tls_ports[name],
                                                ssl=router.pki.context(client),
                                                server_hostname="localhost"),
                         what=f"TLS connect {name}")
    joined, left, disconnected = futures

    async def closed():
        # autobahn's RawSocket client reports nothing when the connection ends before its
        # handshake (e.g. the router refused the TLS client certificate): watch the transport.
        while not tr.is_closing():
            await asyncio.sleep(0.02)

    watch = asyncio.ensure_future(closed())
    try:
        await within(asyncio.wait([joined, left, disconnected, watch],
                                  return_when=asyncio.FIRST_COMPLETED),
                     what=f"WELCOME/ABORT over {name}")
    finally:
        watch.cancel()
    if joined.done():
        s = holder[0]
        s.tr = tr
        return s
    tr.abort()
    if left.done():
        raise Aborted(left.result())
    raise ConnectionError(f"{name}: closed before WELCOME")


async def own_transport(session) -> dict:
    details = await within(session.call("wamp.session.get", session._session_id))
    return details["transport"]


async def close(session) -> None:
    await within(session.leave())
    session.tr.close()


# ----------------------------------------------------------------------------------------------
# Tests
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("serializer", SERIALIZERS)
@pytest.mark.parametrize("name", ["wss", "rss"])
async def test_autobahn_joins_over_tls_with_every_serializer(trouter, name, serializer):
    client = "device-1" if name == "rss" else None
    s = await tls_connect(trouter, name, serializer, client=client, authmethods=["anonymous"])
    transport = await own_transport(s)
    assert transport["channel_type"] == "tls"
    assert transport["is_secure"] is True
    assert transport["channel_framing"] == ("rawsocket" if name == "rss" else "websocket")
    assert transport["channel_serializer"] == serializer
    if name == "rss":
        assert transport["peer_cert"]["subject"]["cn"] == "device-1"
    else:
        assert transport["peer_cert"] is None
    # a round trip through the broker over TLS
    got = asyncio.get_running_loop().create_future()
    await within(s.subscribe(lambda x: got.set_result(x), "com.example.tls"))
    await within(s.publish("com.example.tls", "hello",
                           options=PublishOptions(exclude_me=False, acknowledge=True)))
    assert await within(got) == "hello"
    await close(s)


async def test_static_tls_principal_by_certificate_fingerprint(trouter):
    s = await tls_connect(trouter, "rss", client="device-1", authmethods=["tls"])
    assert s.joined.result().authid == "client_0"
    assert s.joined.result().authmethod == "tls"
    assert s.joined.result().authprovider == "static"
    assert s.joined.result().authrole == "anonymous"
    transport = await own_transport(s)
    assert transport["peer_cert"]["sha1"] == trouter.pki.fingerprints["device-1"]
    await close(s)


async def test_a_certificate_no_principal_names_is_refused(trouter):
    e = await refused(tls_connect(trouter, "rss", client="stranger", authmethods=["tls"]))
    assert e.details.reason == "wamp.error.authentication_failed"
    # the same CA's certificate is good enough for anonymous on that transport
    s = await tls_connect(trouter, "rss", client="stranger", authmethods=["anonymous"])
    await close(s)


async def test_no_client_certificate_no_tls_session(trouter):
    with pytest.raises((ssl.SSLError, ConnectionError, OSError)):
        await tls_connect(trouter, "rss", client=None, authmethods=["anonymous"])
    # the router goes on
    s = await tls_connect(trouter, "rss", client="device-1", authmethods=["tls"])
    await close(s)


async def test_dynamic_tls_authenticator_gets_the_certificate(trouter, clients):
    seen = []

    def authenticate(realm, authid, details):
        seen.append(details)
        return {"role": "anonymous", "extra": {"cn": details["transport"]["peer_cert"]["subject"]["cn"]}}

    component = await clients.connect(trouter, "rs", "json")
    await within(component.register(authenticate, AUTHENTICATOR))
    s = await tls_connect(trouter, "wss_dyn", "msgpack", client="device-1", authmethods=["tls"])
    # no authid from HELLO or the authenticator: the certificate's common name
    assert s.joined.result().authid == "device-1"
    assert s.joined.result().authmethod == "tls"
    assert s.joined.result().authprovider == "dynamic"
    assert s.joined.result().authextra["cn"] == "device-1"
    (details,) = seen
    assert details["authmethod"] == "tls"
    cert = details["transport"]["peer_cert"]
    assert cert["sha1"] == trouter.pki.fingerprints["device-1"]
    assert cert["issuer"]["cn"] == "Turnstile test CA"
    assert cert["issuer"]["o"] == "Turnstile tests"
    await close(s)


async def test_autobahn_component_over_rss_url(trouter):
    """autobahn's Component with an `rss://` URL and an SSLContext as the endpoint's `tls`."""
    port = trouter.tls_ports["rss"]
    joined = asyncio.get_running_loop().create_future()
    component = Component(
        transports=[{"type": "rawsocket", "url": f"rss://localhost:{port}", "serializer": "cbor",
                     "endpoint": {"type": "tcp", "host": "localhost", "port": port,
                                  "tls": trouter.pki.context("device-1")}}],
        realm="realm1",
        authentication={"anonymous": {}},
    )

    @component.on_join
    async def _(session, details):
        transport = (await session.call("wamp.session.get", details.session))["transport"]
        joined.set_result(transport)
        await session.leave()

    done = component.start(asyncio.get_running_loop())
    transport = await within(joined)
    await within(done)
    assert transport["channel_type"] == "tls"
    assert transport["channel_framing"] == "rawsocket"


async def test_plaintext_clients_on_tls_ports_do_no_harm(trouter):
    s = await tls_connect(trouter, "wss", "json")
    for name in ("rss", "wss"):
        reader, writer = await asyncio.open_connection("127.0.0.1", trouter.tls_ports[name])
        hello = b"\x7f\xf1\x00\x00" if name == "rss" else b"GET /ws HTTP/1.1\r\nHost: x\r\n\r\n"
        writer.write(hello)
        reply = b""
        try:
            reply = await within(reader.read(100))
        except ConnectionError:
            pass
        assert not reply.startswith(b"\x7f") and not reply.startswith(b"HTTP/"), reply
        writer.close()
    transport = await own_transport(s)
    assert transport["channel_type"] == "tls"
    await close(s)
