//! Transport and server tests against a real server on ephemeral ports: the RawSocket handshake
//! and framing, WebSocket subprotocol negotiation and limits, static files on a `web` transport,
//! Unix sockets, bind errors, and the first WAMP exchange (ABORT before a session, WELCOME,
//! GOODBYE at shutdown).

mod common;

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use turnstile::limits::ConnectionLimits;
use turnstile::server::Server;
use turnstile::transport::LocalAddr;
use turnstile_config::{Endpoint, TransportConfig};

use common::{load_config, read_exact, read_to_eof, realm1, Router, TempDir};

/// Upper bound for anything a test waits for.
const WAIT: Duration = Duration::from_secs(10);

/// The name of this file's temporary directories.
const DIR_PREFIX: &str = "turnstile-test";

// ---------------------------------------------------------------------------------------------
// Harness

/// A node config with realm `realm1` (anonymous may do everything) and `transports`.
fn node(transports: Value) -> Value {
    json!({
        "version": 2,
        "workers": [{
            "type": "router",
            "realms": [realm1()],
            "transports": transports
        }]
    })
}

fn tcp(port: u16) -> Value {
    json!({"type": "tcp", "port": port})
}

fn rawsocket(port: u16, serializers: &[&str], max_message_size: usize) -> Value {
    json!({
        "type": "rawsocket",
        "endpoint": tcp(port),
        "serializers": serializers,
        "max_message_size": max_message_size
    })
}

/// A router with one RawSocket/TCP transport.
async fn rawsocket_router(serializers: &[&str], max_message_size: usize) -> Router {
    Router::start(node(json!([rawsocket(1, serializers, max_message_size)]))).await
}

fn ws_path(serializers: &[&str], max_message_size: usize) -> Value {
    json!({
        "type": "websocket",
        "serializers": serializers,
        "options": {"max_message_size": max_message_size}
    })
}

/// How this file starts and stops the shared [`Router`].
impl Router {
    /// Starts a router for `json` in a fresh directory.
    async fn start(json: Value) -> Router {
        Router::start_in(json, TempDir::new(DIR_PREFIX)).await
    }

    /// Shuts the router down and checks that it stops in time and cleanly.
    async fn stop(mut self) {
        self.begin_shutdown();
        self.stopped(WAIT).await;
    }
}

// ---------------------------------------------------------------------------------------------
// RawSocket

/// Handshake with `serializer` id (JSON = 1), asking for 16 MiB messages; returns the reply.
async fn rs_handshake<S: AsyncRead + AsyncWrite + Unpin>(s: &mut S, serializer: u8) -> [u8; 4] {
    s.write_all(&[0x7F, 0xF0 | serializer, 0, 0]).await.unwrap();
    read_exact(s, 4).await.try_into().unwrap()
}

/// Connects to `addr` and does the handshake for JSON (the reply is not checked).
async fn rs_connect_json(addr: std::net::SocketAddr) -> TcpStream {
    let mut s = TcpStream::connect(addr).await.unwrap();
    rs_handshake(&mut s, 1).await;
    s
}

async fn rs_send<S: AsyncWrite + Unpin>(s: &mut S, kind: u8, payload: &[u8]) {
    let len = payload.len();
    s.write_all(&[kind, (len >> 16) as u8, (len >> 8) as u8, len as u8])
        .await
        .unwrap();
    s.write_all(payload).await.unwrap();
}

/// Reads one frame: (type, payload).
async fn rs_recv<S: AsyncRead + Unpin>(s: &mut S) -> (u8, Vec<u8>) {
    let h = read_exact(s, 4).await;
    let len = ((h[1] as usize) << 16) | ((h[2] as usize) << 8) | h[3] as usize;
    (h[0], read_exact(s, len).await)
}

async fn rs_recv_json<S: AsyncRead + Unpin>(s: &mut S) -> Value {
    let (kind, payload) = rs_recv(s).await;
    assert_eq!(kind, 0, "a message frame");
    serde_json::from_slice(&payload).expect("JSON message")
}

fn assert_abort(msg: &Value, reason: &str) {
    assert_eq!(msg[0], json!(3), "ABORT expected, got {msg}");
    assert_eq!(msg[2], json!(reason), "ABORT reason in {msg}");
    assert!(
        msg[1]["message"].is_string(),
        "ABORT explains itself: {msg}"
    );
}

#[tokio::test]
async fn rawsocket_handshake_echoes_serializer_and_max_length() {
    let server = rawsocket_router(&["json", "msgpack"], 65536).await;
    let addr = server.tcp(0);

    // 65536 = 2^(9+7): our length nibble is 7.
    let mut s = TcpStream::connect(addr).await.unwrap();
    assert_eq!(rs_handshake(&mut s, 2).await, [0x7F, 0x72, 0, 0]);
    let mut s = TcpStream::connect(addr).await.unwrap();
    assert_eq!(rs_handshake(&mut s, 1).await, [0x7F, 0x71, 0, 0]);

    // A max length that is not a power of two rounds down: 100000 -> 65536.
    let server2 = rawsocket_router(&["json"], 100_000).await;
    let mut s2 = TcpStream::connect(server2.tcp(0)).await.unwrap();
    assert_eq!(rs_handshake(&mut s2, 1).await, [0x7F, 0x71, 0, 0]);

    drop((s, s2));
    server.stop().await;
    server2.stop().await;
}

#[tokio::test]
async fn rawsocket_refuses_unsupported_serializer() {
    let server = rawsocket_router(&["json"], 65536).await;
    for serializer in [2u8, 3, 5, 0] {
        let mut s = TcpStream::connect(server.tcp(0)).await.unwrap();
        assert_eq!(
            rs_handshake(&mut s, serializer).await,
            [0x7F, 0x10, 0, 0],
            "serializer {serializer}"
        );
        assert!(
            read_to_eof(&mut s).await.is_empty(),
            "closed after the refusal"
        );
    }
    server.stop().await;
}

#[tokio::test]
async fn rawsocket_refuses_reserved_bits_and_bad_magic() {
    let server = rawsocket_router(&["json"], 65536).await;
    let mut s = TcpStream::connect(server.tcp(0)).await.unwrap();
    s.write_all(&[0x7F, 0xF1, 0x00, 0x01]).await.unwrap();
    assert_eq!(read_exact(&mut s, 4).await, [0x7F, 0x30, 0, 0]);
    assert!(read_to_eof(&mut s).await.is_empty());

    // Not RawSocket at all (an HTTP request): closed without a reply.
    let mut s = TcpStream::connect(server.tcp(0)).await.unwrap();
    s.write_all(b"GET / HTTP/1.1\r\n\r\n").await.unwrap();
    assert!(read_to_eof(&mut s).await.is_empty());
    server.stop().await;
}

#[tokio::test]
async fn rawsocket_ping_gets_pong_with_same_payload() {
    let server = rawsocket_router(&["json"], 65536).await;
    let mut s = rs_connect_json(server.tcp(0)).await;
    rs_send(&mut s, 1, b"are you there?").await;
    assert_eq!(rs_recv(&mut s).await, (2, b"are you there?".to_vec()));
    rs_send(&mut s, 1, b"").await;
    assert_eq!(rs_recv(&mut s).await, (2, Vec::new()));
    // An unsolicited PONG is ignored; the connection still works.
    rs_send(&mut s, 2, b"x").await;
    rs_send(&mut s, 1, b"again").await;
    assert_eq!(rs_recv(&mut s).await, (2, b"again".to_vec()));
    server.stop().await;
}

#[tokio::test]
async fn rawsocket_oversized_frame_fails_the_connection() {
    let server = rawsocket_router(&["json"], 1024).await;
    let mut s = rs_connect_json(server.tcp(0)).await;
    // Announce 4096 bytes but send only a few: the router must not wait for the rest.
    s.write_all(&[0, 0, 0x10, 0x00]).await.unwrap();
    s.write_all(b"[1,\"realm1\"").await.unwrap();
    let rest = read_to_eof(&mut s).await;
    // What came before the close is an ABORT protocol_violation naming the limit.
    let len = u32::from_be_bytes(rest[..4].try_into().unwrap()) as usize;
    let abort: Value = serde_json::from_slice(&rest[4..4 + len]).unwrap();
    assert_abort(&abort, "wamp.error.protocol_violation");
    assert!(
        abort[1]["message"].as_str().unwrap().contains("1024"),
        "{abort}"
    );
    server.stop().await;
}

#[tokio::test]
async fn rawsocket_hello_for_unknown_realm_gets_no_such_realm() {
    let server = rawsocket_router(&["json"], 65536).await;
    let mut s = rs_connect_json(server.tcp(0)).await;
    rs_send(&mut s, 0, br#"[1,"no.such.realm",{"roles":{"caller":{}}}]"#).await;
    assert_abort(&rs_recv_json(&mut s).await, "wamp.error.no_such_realm");
    assert!(read_to_eof(&mut s).await.is_empty());
    server.stop().await;
}

#[tokio::test]
async fn rawsocket_garbage_before_hello_is_a_protocol_violation() {
    let server = rawsocket_router(&["json"], 65536).await;
    for garbage in [
        &b"this is not JSON"[..],
        br#"[32,1,{},"com.example.topic"]"#,
    ] {
        let mut s = rs_connect_json(server.tcp(0)).await;
        rs_send(&mut s, 0, garbage).await;
        assert_abort(&rs_recv_json(&mut s).await, "wamp.error.protocol_violation");
        assert!(read_to_eof(&mut s).await.is_empty());
    }
    // Bad framing: reserved bits in a frame header.
    let mut s = rs_connect_json(server.tcp(0)).await;
    s.write_all(&[0x80, 0, 0, 2, b'[', b']']).await.unwrap();
    let rest = read_to_eof(&mut s).await;
    let abort: Value = serde_json::from_slice(&rest[4..]).unwrap();
    assert_abort(&abort, "wamp.error.protocol_violation");
    server.stop().await;
}

#[tokio::test]
async fn rawsocket_hello_gets_welcome() {
    let server = rawsocket_router(&["json"], 65536).await;
    let mut s = rs_connect_json(server.tcp(0)).await;
    rs_send(&mut s, 0, br#"[1,"realm1",{"roles":{"caller":{}}}]"#).await;
    let welcome = rs_recv_json(&mut s).await;
    assert_eq!(welcome[0], json!(2), "WELCOME expected, got {welcome}");
    drop(s);
    server.stop().await;
}

#[tokio::test]
async fn rawsocket_over_unix_socket_replaces_stale_file_and_cleans_up() {
    let dir = TempDir::new(DIR_PREFIX);
    let sock = dir.path().join("rs.sock");
    // A socket file left by a process that is gone.
    drop(std::os::unix::net::UnixListener::bind(&sock).unwrap());
    assert!(sock.exists());
    let transports = json!([{
        "type": "rawsocket",
        "endpoint": {"type": "unix", "path": "rs.sock"},
        "serializers": ["json"],
        "max_message_size": 65536
    }]);
    let mut server = Router::start_in(node(transports), dir).await;
    assert_eq!(server.addrs[0], LocalAddr::Unix(sock.clone()));
    let mut s = tokio::net::UnixStream::connect(&sock).await.unwrap();
    assert_eq!(rs_handshake(&mut s, 1).await, [0x7F, 0x71, 0, 0]);
    rs_send(&mut s, 1, b"ping").await;
    assert_eq!(rs_recv(&mut s).await, (2, b"ping".to_vec()));
    drop(s);
    // The TempDir is still held by the server handle, so the file's absence is the server's work.
    server.begin_shutdown();
    server.stopped(WAIT).await;
    assert!(!sock.exists(), "socket file removed at shutdown");
    drop(server);
}

#[tokio::test]
async fn unix_socket_that_is_not_a_socket_is_refused() {
    let dir = TempDir::new(DIR_PREFIX);
    std::fs::write(dir.path().join("rs.sock"), b"precious").unwrap();
    let transports = json!([{
        "type": "rawsocket",
        "endpoint": {"type": "unix", "path": "rs.sock"},
        "serializers": ["json"]
    }]);
    let err = Server::bind(load_config(&node(transports), dir.path()))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("workers[0].transports[0]") && err.contains("not a socket"),
        "{err}"
    );
    assert_eq!(
        std::fs::read(dir.path().join("rs.sock")).unwrap(),
        b"precious"
    );
}

#[tokio::test]
async fn port_in_use_names_the_transport_and_address() {
    let dir = TempDir::new(DIR_PREFIX);
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let json = node(json!([
        rawsocket(1, &["json"], 65536),
        rawsocket(2, &["json"], 65536),
    ]));
    let mut config = load_config(&json, dir.path());
    if let TransportConfig::RawSocket {
        endpoint: Endpoint::Tcp { port: p, .. },
        ..
    } = &mut config.workers[0].transports[1]
    {
        *p = port;
    }
    let err = Server::bind(config).await.unwrap_err().to_string();
    assert!(err.contains("workers[0].transports[1]"), "{err}");
    assert!(err.contains(&format!("127.0.0.1:{port}")), "{err}");
}

// ---------------------------------------------------------------------------------------------
// HTTP and WebSocket

/// A minimal HTTP/1.1 exchange: returns (status, lower-cased head, body).
async fn http(
    addr: std::net::SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
) -> (u16, String, String) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let mut req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    if !headers
        .iter()
        .any(|(k, _)| k.eq_ignore_ascii_case("connection"))
    {
        req.push_str("Connection: close\r\n");
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
        let mut chunk = [0u8; 4096];
        let n = tokio::time::timeout(WAIT, s.read(&mut chunk))
            .await
            .unwrap()
            .unwrap();
        assert!(
            n > 0,
            "response head incomplete: {:?}",
            String::from_utf8_lossy(&buf)
        );
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_lowercase();
    let status: u16 = head.split(' ').nth(1).unwrap().parse().unwrap();
    let len: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .map(|v| v.trim().parse().unwrap())
        .unwrap_or(0);
    let mut body = buf[head_end + 4..].to_vec();
    if body.len() < len {
        body.extend(read_exact(&mut s, len - body.len()).await);
    }
    (status, head, String::from_utf8_lossy(&body).into_owned())
}

const UPGRADE: [(&str, &str); 4] = [
    ("Connection", "Upgrade"),
    ("Upgrade", "websocket"),
    ("Sec-WebSocket-Version", "13"),
    ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
];

type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<TcpStream>>;

/// Connects offering `protocols`; returns the socket and the protocol the server chose.
async fn ws_connect(url: &str, protocols: &str) -> (Ws, Option<String>) {
    let mut req = url.into_client_request().unwrap();
    req.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        HeaderValue::from_str(protocols).unwrap(),
    );
    let (ws, resp) = tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(req))
        .await
        .unwrap()
        .expect("websocket connect");
    let chosen = resp
        .headers()
        .get("sec-websocket-protocol")
        .map(|v| v.to_str().unwrap().to_owned());
    (ws, chosen)
}

/// Sends `text` in a text frame.
async fn ws_send_text(ws: &mut Ws, text: &str) {
    ws.send(WsMessage::text(text)).await.unwrap();
}

/// The next data message as JSON (text frames only: the JSON serializer uses them).
async fn ws_recv_json(ws: &mut Ws) -> Value {
    loop {
        let msg = tokio::time::timeout(WAIT, ws.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        match msg {
            WsMessage::Text(t) => return serde_json::from_str(t.as_str()).unwrap(),
            WsMessage::Ping(_) | WsMessage::Pong(_) => continue,
            other => panic!("expected a text message, got {other:?}"),
        }
    }
}

/// Reads until the close frame; returns it (code, reason).
async fn ws_recv_close(ws: &mut Ws) -> (CloseCode, String) {
    loop {
        let msg = tokio::time::timeout(WAIT, ws.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        if let WsMessage::Close(frame) = msg {
            let frame = frame.expect("a close frame with a code");
            return (frame.code, frame.reason.as_str().to_owned());
        }
    }
}

fn web(port: u16, paths: Value) -> Value {
    json!({"type": "web", "endpoint": tcp(port), "paths": paths})
}

/// A router with one `web` transport whose path `/ws` is a WebSocket service.
async fn ws_router(serializers: &[&str], max_message_size: usize) -> Router {
    Router::start(node(json!([web(
        1,
        json!({"ws": ws_path(serializers, max_message_size)})
    )])))
    .await
}

#[tokio::test]
async fn websocket_without_wamp_subprotocol_is_refused_with_explanation() {
    let server = ws_router(&["json", "msgpack"], 65536).await;
    let addr = server.tcp(0);

    let (status, _, body) = http(addr, "/ws", &UPGRADE).await;
    assert_eq!(status, 400);
    assert!(
        body.contains("no supported WAMP subprotocol offered: offered []"),
        "{body}"
    );
    assert!(
        body.contains("this endpoint accepts wamp.2.json, wamp.2.msgpack"),
        "{body}"
    );

    let mut headers = UPGRADE.to_vec();
    headers.push(("Sec-WebSocket-Protocol", "wamp.2.cbor, graphql-ws"));
    let (status, _, body) = http(addr, "/ws", &headers).await;
    assert_eq!(status, 400);
    assert!(body.contains("offered [wamp.2.cbor, graphql-ws]"), "{body}");

    // A plain GET is told what the path is.
    let (status, _, body) = http(addr, "/ws", &[]).await;
    assert_eq!(status, 426);
    assert!(body.contains("WAMP WebSocket endpoint"), "{body}");
    server.stop().await;
}

#[tokio::test]
async fn websocket_chooses_the_clients_first_supported_subprotocol() {
    let server = ws_router(&["json", "msgpack"], 65536).await;
    let url = format!("ws://{}/ws", server.tcp(0));

    let (_ws, chosen) = ws_connect(&url, "wamp.2.json").await;
    assert_eq!(chosen.as_deref(), Some("wamp.2.json"));
    let (_ws2, chosen) = ws_connect(&url, "wamp.2.cbor, wamp.2.msgpack, wamp.2.json").await;
    assert_eq!(chosen.as_deref(), Some("wamp.2.msgpack"));
    drop((_ws, _ws2));
    server.stop().await;
}

#[tokio::test]
async fn websocket_first_messages_get_abort_or_welcome() {
    let server = ws_router(&["json"], 65536).await;
    let url = format!("ws://{}/ws", server.tcp(0));

    let (mut ws, _) = ws_connect(&url, "wamp.2.json").await;
    ws_send_text(&mut ws, r#"[1,"no.such.realm",{"roles":{"caller":{}}}]"#).await;
    assert_abort(&ws_recv_json(&mut ws).await, "wamp.error.no_such_realm");
    ws_recv_close(&mut ws).await;

    // Garbage in a binary frame: frames of either type are accepted and decoded.
    let (mut ws, _) = ws_connect(&url, "wamp.2.json").await;
    ws.send(WsMessage::binary(b"\x00\x01 not json".to_vec()))
        .await
        .unwrap();
    assert_abort(
        &ws_recv_json(&mut ws).await,
        "wamp.error.protocol_violation",
    );
    ws_recv_close(&mut ws).await;

    let (mut ws, _) = ws_connect(&url, "wamp.2.json").await;
    ws_send_text(&mut ws, r#"[1,"realm1",{"roles":{"caller":{}}}]"#).await;
    let welcome = ws_recv_json(&mut ws).await;
    assert_eq!(welcome[0], json!(2), "WELCOME expected, got {welcome}");
    drop(ws);
    server.stop().await;
}

#[tokio::test]
async fn websocket_oversized_message_closes_with_1009() {
    let server = ws_router(&["json"], 1024).await;
    let url = format!("ws://{}/ws", server.tcp(0));
    let (mut ws, _) = ws_connect(&url, "wamp.2.json").await;
    let big = format!(r#"[1,"realm1",{{"x":"{}"}}]"#, "a".repeat(4000));
    ws_send_text(&mut ws, &big).await;
    // An ABORT may come first; then the close frame with 1009 naming the limit.
    let (code, reason) = ws_recv_close(&mut ws).await;
    assert_eq!(code, CloseCode::Size);
    assert!(reason.contains("1024"), "{reason}");
    server.stop().await;
}

/// Over several sizes (one read, many reads, more than the socket buffers hold), the client gets
/// the close frame with 1009 rather than a reset: the router must not drop the socket while the
/// rest of the oversized message is unread.
#[tokio::test]
async fn websocket_oversized_message_always_gets_close_1009_not_a_reset() {
    let server = ws_router(&["json", "msgpack"], 1024).await;
    let url = format!("ws://{}/ws", server.tcp(0));
    for size in [1025, 4000, 5000, 64 << 10, 300 << 10, 2 << 20, 16 << 20] {
        for protocol in ["wamp.2.json", "wamp.2.msgpack"] {
            let (mut ws, _) = ws_connect(&url, protocol).await;
            let msg = if protocol == "wamp.2.json" {
                WsMessage::text("a".repeat(size))
            } else {
                WsMessage::binary(vec![0x90u8; size])
            };
            let sent = tokio::time::timeout(WAIT, ws.send(msg)).await.unwrap();
            sent.unwrap_or_else(|e| panic!("sending {size} bytes ({protocol}): {e}"));
            let (code, reason) = ws_recv_close(&mut ws).await;
            assert_eq!(code, CloseCode::Size, "{size} bytes ({protocol}): {reason}");
        }
    }
    server.stop().await;
}

/// WAMP's WebSocket transport: JSON in text frames, msgpack and CBOR in binary ones. A frame of
/// the other kind is a protocol violation (ABORT, then close 1003), not a message.
#[tokio::test]
async fn websocket_frame_of_the_wrong_kind_is_a_protocol_violation() {
    let server = ws_router(&["json", "msgpack", "cbor"], 1 << 20).await;
    let url = format!("ws://{}/ws", server.tcp(0));
    let hello = r#"[1,"realm1",{"roles":{"caller":{}}}]"#;

    // Binary frame on a JSON session, before and after joining.
    let (mut ws, _) = ws_connect(&url, "wamp.2.json").await;
    ws.send(WsMessage::binary(hello.as_bytes().to_vec()))
        .await
        .unwrap();
    assert_abort(
        &ws_recv_json(&mut ws).await,
        "wamp.error.protocol_violation",
    );
    let (code, reason) = ws_recv_close(&mut ws).await;
    assert_eq!(code, CloseCode::Unsupported, "{reason}");
    assert!(reason.contains("binary"), "{reason}");

    let (mut ws, _) = ws_connect(&url, "wamp.2.json").await;
    ws_send_text(&mut ws, hello).await;
    assert_eq!(ws_recv_json(&mut ws).await[0], json!(2), "WELCOME");
    ws.send(WsMessage::binary(br#"[32,1,{},"com.x"]"#.to_vec()))
        .await
        .unwrap();
    assert_abort(
        &ws_recv_json(&mut ws).await,
        "wamp.error.protocol_violation",
    );
    let (code, _) = ws_recv_close(&mut ws).await;
    assert_eq!(code, CloseCode::Unsupported);

    // Text frames on msgpack and CBOR sessions.
    for protocol in ["wamp.2.msgpack", "wamp.2.cbor"] {
        let (mut ws, chosen) = ws_connect(&url, protocol).await;
        assert_eq!(chosen.as_deref(), Some(protocol));
        ws_send_text(&mut ws, hello).await;
        let (code, reason) = ws_recv_close(&mut ws).await;
        assert_eq!(code, CloseCode::Unsupported, "{protocol}: {reason}");
        assert!(reason.contains("text"), "{reason}");
    }
    server.stop().await;
}

#[tokio::test]
async fn websocket_auto_ping_keeps_live_peers_and_drops_silent_ones() {
    let service = json!({
        "type": "websocket",
        "serializers": ["json"],
        "options": {"auto_ping_interval": 100, "auto_ping_timeout": 200}
    });
    let server = Router::start(node(json!([web(1, json!({"ws": service}))]))).await;
    let addr = server.tcp(0);

    // A client that reads answers the pings (tungstenite does) and stays connected.
    let (mut ws, _) = ws_connect(&format!("ws://{addr}/ws"), "wamp.2.json").await;
    let mut pings = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_millis(700);
    while let Ok(msg) = tokio::time::timeout_at(deadline, ws.next()).await {
        match msg.expect("open").expect("no error") {
            WsMessage::Ping(_) => pings += 1,
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(pings >= 3, "{pings} pings in 700 ms at a 100 ms interval");

    // A client that never reads (so never answers) is closed.
    let mut s = TcpStream::connect(addr).await.unwrap();
    let req = format!(
        "GET /ws HTTP/1.1\r\nHost: {addr}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
         Sec-WebSocket-Protocol: wamp.2.json\r\n\r\n"
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let started = std::time::Instant::now();
    let all = read_to_eof(&mut s).await;
    let text = String::from_utf8_lossy(&all);
    assert!(text.starts_with("HTTP/1.1 101"), "{text}");
    assert!(started.elapsed() < Duration::from_secs(5));
    drop(ws);
    server.stop().await;
}

#[tokio::test]
async fn web_transport_serves_static_files_beside_websocket() {
    let dir = TempDir::new(DIR_PREFIX);
    let www = dir.path().join("www");
    std::fs::create_dir_all(www.join("sub")).unwrap();
    std::fs::write(www.join("index.html"), "<h1>turnstile</h1>").unwrap();
    std::fs::write(www.join("hello.txt"), "hello, static").unwrap();
    std::fs::write(www.join("sub/index.html"), "sub index").unwrap();
    let paths = json!({
        "/": {"type": "static", "directory": "www"},
        "ws": ws_path(&["json"], 65536),
        "docs": {"type": "static", "directory": "www/sub"},
    });
    let server = Router::start_in(node(json!([web(1, paths)])), dir).await;
    let addr = server.tcp(0);

    let (status, _, body) = http(addr, "/", &[]).await;
    assert_eq!((status, body.as_str()), (200, "<h1>turnstile</h1>"));
    let (status, head, body) = http(addr, "/hello.txt", &[]).await;
    assert_eq!((status, body.as_str()), (200, "hello, static"));
    assert!(head.contains("content-type: text/plain"), "{head}");
    let (status, _, body) = http(addr, "/sub/", &[]).await;
    assert_eq!((status, body.as_str()), (200, "sub index"));
    // A static directory mounted on a path.
    let (status, _, body) = http(addr, "/docs/index.html", &[]).await;
    assert_eq!((status, body.as_str()), (200, "sub index"));
    let (status, _, body) = http(addr, "/docs/", &[]).await;
    assert_eq!((status, body.as_str()), (200, "sub index"));
    let (status, _, _) = http(addr, "/missing.txt", &[]).await;
    assert_eq!(status, 404);
    // The WebSocket service shares the port.
    let (status, _, _) = http(addr, "/ws", &[]).await;
    assert_eq!(status, 426);
    let (_ws, chosen) = ws_connect(&format!("ws://{addr}/ws"), "wamp.2.json").await;
    assert_eq!(chosen.as_deref(), Some("wamp.2.json"));
    drop(_ws);
    server.stop().await;
}

#[tokio::test]
async fn websocket_transport_serves_its_path_only() {
    let transports = json!([{
        "type": "websocket",
        "endpoint": tcp(1),
        "url": "ws://localhost:1/wamp",
        "serializers": ["json"]
    }]);
    let server = Router::start(node(transports)).await;
    let addr = server.tcp(0);
    let (_ws, chosen) = ws_connect(&format!("ws://{addr}/wamp"), "wamp.2.json").await;
    assert_eq!(chosen.as_deref(), Some("wamp.2.json"));
    assert_eq!(http(addr, "/", &[]).await.0, 404);
    assert_eq!(http(addr, "/ws", &UPGRADE).await.0, 404);
    drop(_ws);
    server.stop().await;
}

#[tokio::test]
async fn shutdown_says_goodbye_to_sessions() {
    let mut server = ws_router(&["json"], 65536).await;
    let (mut ws, _) = ws_connect(&format!("ws://{}/ws", server.tcp(0)), "wamp.2.json").await;
    ws_send_text(&mut ws, r#"[1,"realm1",{"roles":{"subscriber":{}}}]"#).await;
    assert_eq!(ws_recv_json(&mut ws).await[0], json!(2));

    server.begin_shutdown();
    let goodbye = ws_recv_json(&mut ws).await;
    assert_eq!(goodbye[0], json!(6), "GOODBYE expected, got {goodbye}");
    assert_eq!(goodbye[2], json!("wamp.close.system_shutdown"));
    ws_send_text(&mut ws, r#"[6,{},"wamp.close.goodbye_and_out"]"#).await;
    ws_recv_close(&mut ws).await;
    server.stopped(WAIT).await;
}

#[tokio::test]
async fn session_details_describe_the_transport() {
    let server = ws_router(&["json"], 65536).await;
    let (mut ws, _) = ws_connect(&format!("ws://{}/ws", server.tcp(0)), "wamp.2.json").await;
    ws_send_text(&mut ws, r#"[1,"realm1",{"roles":{"caller":{}}}]"#).await;
    let welcome = ws_recv_json(&mut ws).await;
    let session = welcome[1].clone();
    let call = json!([48, 1, {}, "wamp.session.get", [session]]);
    ws_send_text(&mut ws, &call.to_string()).await;
    let result = ws_recv_json(&mut ws).await;
    assert_eq!(result[0], json!(50), "RESULT expected, got {result}");
    let transport = &result[3][0]["transport"];
    assert_eq!(transport["channel_type"], json!("tcp"), "{transport}");
    assert_eq!(
        transport["channel_framing"],
        json!("websocket"),
        "{transport}"
    );
    let peer = transport["peer"].as_str().unwrap();
    assert!(peer.starts_with("tcp4:127.0.0.1:"), "{peer}");
    let headers = &transport["http_headers_received"];
    assert_eq!(
        headers["sec-websocket-protocol"],
        json!("wamp.2.json"),
        "{headers}"
    );
    assert_eq!(headers["upgrade"], json!("websocket"), "{headers}");
    drop(ws);
    server.stop().await;
}

// ---------------------------------------------------------------------------------------------
// Denial of service: connections that hold file descriptors or buffers without finishing

/// Limits with short deadlines, for tests that wait for them.
fn short_limits(max_connections: usize) -> ConnectionLimits {
    ConnectionLimits {
        max_connections,
        max_connections_per_ip: None,
        http_request_header_timeout: Duration::from_secs(1),
        message_completion_timeout: Duration::from_secs(1),
        ..ConnectionLimits::default()
    }
}

async fn ws_router_with(limits: ConnectionLimits) -> Router {
    let json = node(json!([web(1, json!({"ws": ws_path(&["json"], 1 << 20)}))]));
    Router::start_in_with(json, TempDir::new(DIR_PREFIX), Some(limits)).await
}

/// Waits until the router closes `s` (end of stream or reset), discarding what it sends; returns
/// when, or `None` if it is still open at `by`.
async fn closed_by(mut s: TcpStream, by: tokio::time::Instant) -> Option<tokio::time::Instant> {
    let mut buf = [0u8; 1024];
    loop {
        match tokio::time::timeout_at(by, s.read(&mut buf)).await {
            Err(_) => return None,
            Ok(Ok(0)) | Ok(Err(_)) => return Some(tokio::time::Instant::now()),
            Ok(Ok(_)) => {}
        }
    }
}

/// Connects, says HELLO and checks the WELCOME; returns the joined session's socket.
async fn ws_join(addr: std::net::SocketAddr) -> Ws {
    let (mut ws, _) = ws_connect(&format!("ws://{addr}/ws"), "wamp.2.json").await;
    ws_send_text(&mut ws, r#"[1,"realm1",{"roles":{"subscriber":{}}}]"#).await;
    let welcome = ws_recv_json(&mut ws).await;
    assert_eq!(welcome[0], json!(2), "WELCOME expected, got {welcome}");
    ws
}

/// Connections that never complete a request head (idle, slowloris at a byte per 200 ms, kept
/// alive after a 404) are closed at the request-head deadline, and a WebSocket client
/// can connect and join while they are open (and stays joined past that deadline).
#[tokio::test]
async fn http_connections_that_never_finish_a_request_are_closed_at_the_deadline() {
    // Two seconds: time to set everything up (on a loaded machine) before the first deadline.
    let server = ws_router_with(ConnectionLimits {
        http_request_header_timeout: Duration::from_secs(2),
        ..short_limits(1000)
    })
    .await;
    let addr = server.tcp(0);
    let start = tokio::time::Instant::now();

    let mut idle = Vec::new();
    for _ in 0..150 {
        idle.push(TcpStream::connect(addr).await.unwrap());
    }
    let mut kept_alive = Vec::new();
    for _ in 0..20 {
        let mut s = TcpStream::connect(addr).await.unwrap();
        let req = format!("GET /nothing-here HTTP/1.1\r\nHost: {addr}\r\n\r\n");
        s.write_all(req.as_bytes()).await.unwrap();
        let mut head = [0u8; 12];
        tokio::time::timeout(WAIT, s.read_exact(&mut head))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(&head, b"HTTP/1.1 404");
        kept_alive.push(s);
    }
    let slowloris: Vec<_> = (0..20)
        .map(|_| {
            tokio::spawn(async move {
                let mut s = TcpStream::connect(addr).await.unwrap();
                let req = format!("GET /ws HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\n");
                for b in req.bytes().cycle() {
                    if s.write_all(&[b]).await.is_err() {
                        break;
                    }
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_millis(200)) => {}
                        _ = s.readable() => break,
                    }
                }
                tokio::time::Instant::now()
            })
        })
        .collect();

    // While they are all open, a real client joins.
    let mut ws = ws_join(addr).await;
    let joined = tokio::time::Instant::now();

    let by = joined + Duration::from_secs(5);
    let mut closed = Vec::new();
    for s in idle.into_iter().chain(kept_alive) {
        closed.push(closed_by(s, by).await.expect("closed by the deadline"));
    }
    for task in slowloris {
        let at = tokio::time::timeout_at(by, task)
            .await
            .expect("slowloris closed");
        closed.push(at.unwrap());
    }
    let first = *closed.iter().min().unwrap();
    let last = *closed.iter().max().unwrap();
    // Each is closed a second after it connected (the kept-alive ones a second after their
    // response): none before the client joined or a second after the start, all soon after.
    assert!(first > joined, "one was closed before the client joined");
    let first = first.duration_since(start);
    assert!(
        first >= Duration::from_millis(950),
        "first closed at {first:?}"
    );
    let last = last.duration_since(joined);
    assert!(
        last < Duration::from_secs(3),
        "last closed {last:?} after the join"
    );

    // The joined session is not subject to that deadline.
    ws_send_text(&mut ws, r#"[32,1,{},"com.example.topic"]"#).await;
    assert_eq!(ws_recv_json(&mut ws).await[0], json!(33), "SUBSCRIBED");
    drop(ws);
    server.stop().await;
}

/// At the node's connection limit the listener stops accepting: further connections wait in the
/// backlog (not accepted and failed), and are served once idle ones are closed.
#[tokio::test]
async fn at_the_connection_limit_connections_wait_in_the_backlog() {
    let server = ws_router_with(ConnectionLimits {
        http_request_header_timeout: Duration::from_secs(2),
        ..short_limits(20)
    })
    .await;
    let addr = server.tcp(0);
    let start = tokio::time::Instant::now();
    let mut idle = Vec::new();
    for _ in 0..30 {
        idle.push(TcpStream::connect(addr).await.unwrap());
    }
    // A WebSocket client behind them waits until the first 20 are closed at their deadline.
    let ws = tokio::spawn(async move {
        let ws = ws_join(addr).await;
        (ws, tokio::time::Instant::now())
    });
    let by = start + Duration::from_secs(8);
    let closed = futures_util::future::join_all(idle.into_iter().map(|s| closed_by(s, by))).await;
    let closed: Vec<Duration> = closed
        .into_iter()
        .map(|at| at.expect("closed in time").duration_since(start))
        .collect();
    // 20 accepted at once and closed at about 2 s; the other 10 accepted then, closed at ~4 s.
    let first_wave = closed
        .iter()
        .filter(|d| **d < Duration::from_secs(3))
        .count();
    assert_eq!(first_wave, 20, "closed at {closed:?}");
    let (ws, joined_at) = tokio::time::timeout(WAIT, ws).await.unwrap().unwrap();
    let joined = joined_at.duration_since(start);
    assert!(
        joined >= Duration::from_millis(1800),
        "the client was admitted beyond the limit at {joined:?}"
    );
    drop(ws);
    server.stop().await;
}

/// With a per-address cap, a connection beyond it is refused (HTTP 503) and closed at once; the
/// others stay.
#[tokio::test]
async fn connections_beyond_the_per_address_cap_are_refused() {
    let server = ws_router_with(ConnectionLimits {
        max_connections_per_ip: Some(3),
        ..short_limits(1000)
    })
    .await;
    let addr = server.tcp(0);
    let mut open = Vec::new();
    for _ in 0..3 {
        open.push(TcpStream::connect(addr).await.unwrap());
    }
    let mut fourth = TcpStream::connect(addr).await.unwrap();
    let reply = tokio::time::timeout(Duration::from_millis(500), read_to_eof(&mut fourth))
        .await
        .expect("fourth refused and closed at once");
    assert!(reply.starts_with(b"HTTP/1.1 503 "), "{reply:?}");
    let start = tokio::time::Instant::now();
    for s in open.drain(1..) {
        let quick = closed_by(s, start + Duration::from_millis(300)).await;
        assert!(quick.is_none(), "the first three stay open");
    }
    // The two closed ones made room for two more (the third being a WebSocket client).
    tokio::time::sleep(Duration::from_millis(200)).await;
    open.push(TcpStream::connect(addr).await.unwrap());
    let ws = ws_join(addr).await;
    drop(ws);
    drop(open);
    server.stop().await;
}

/// A joined session that starts a message and never finishes it is closed (1008) at the message
/// completion deadline.
#[tokio::test]
async fn websocket_message_not_completed_in_time_closes_the_connection() {
    let server = ws_router_with(short_limits(1000)).await;
    let mut ws = ws_join(server.tcp(0)).await;
    // Messages that arrive whole keep the session going past the deadline.
    for i in 0..3 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        ws_send_text(
            &mut ws,
            &format!(r#"[32,{},{{}},"com.example.t{i}"]"#, i + 1),
        )
        .await;
        assert_eq!(ws_recv_json(&mut ws).await[0], json!(33), "SUBSCRIBED");
    }
    // A masked text frame announcing 100 bytes, of which only 10 come.
    let tokio_tungstenite::MaybeTlsStream::Plain(tcp) = ws.get_mut() else {
        panic!("plain TCP")
    };
    let mut partial = vec![0x81, 0x80 | 100, 0, 0, 0, 0];
    partial.extend_from_slice(b"[32,9,{},\"");
    tcp.write_all(&partial).await.unwrap();
    let sent = tokio::time::Instant::now();
    let (code, reason) = ws_recv_close(&mut ws).await;
    let after = sent.elapsed();
    assert_eq!(code, CloseCode::Policy, "{reason}");
    assert!(reason.contains("not completed"), "{reason}");
    assert!(
        after >= Duration::from_millis(900) && after < Duration::from_secs(4),
        "closed {after:?} after the partial frame"
    );
    server.stop().await;
}
