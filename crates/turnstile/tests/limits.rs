//! The connection limits of the configuration (a router worker's `limits`, a transport's
//! `max_connections`), each crossed against a real router over TCP: the caps that refuse (with
//! an HTTP 503 or RawSocket handshake error 4), the node-wide cap that makes connections wait,
//! the deadlines and the outgoing queue.

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
use turnstile::server::Server;

use common::{load_config, read_exact, read_to_eof, realm1, Router, TempDir};

/// Upper bound for anything a test waits for.
const WAIT: Duration = Duration::from_secs(10);

const DIR_PREFIX: &str = "turnstile-limits-test";

/// A node with a `websocket` transport (at `/ws`) and a `rawsocket` transport, both JSON, with
/// these worker `limits` and each transport's extra keys.
fn node(limits: Value, ws_extra: Value, rs_extra: Value) -> Value {
    let mut ws = json!({"type": "websocket", "endpoint": {"type": "tcp", "port": 1},
                        "url": "ws://127.0.0.1/ws", "serializers": ["json"]});
    let mut rs = json!({"type": "rawsocket", "endpoint": {"type": "tcp", "port": 2},
                        "serializers": ["json"]});
    for (t, extra) in [(&mut ws, ws_extra), (&mut rs, rs_extra)] {
        if let Value::Object(extra) = extra {
            t.as_object_mut().unwrap().extend(extra);
        }
    }
    json!({"version": 2, "workers": [{
        "type": "router", "limits": limits, "realms": [realm1()], "transports": [ws, rs]
    }]})
}

async fn start(json: Value) -> Router {
    Router::start_in(json, TempDir::new(DIR_PREFIX)).await
}

async fn stop(mut r: Router) {
    r.begin_shutdown();
    r.stopped(WAIT).await;
}

type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<TcpStream>>;

async fn ws_connect(addr: std::net::SocketAddr) -> Ws {
    let mut req = format!("ws://{addr}/ws").into_client_request().unwrap();
    req.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        HeaderValue::from_static("wamp.2.json"),
    );
    let (ws, _) = tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(req))
        .await
        .unwrap()
        .expect("websocket connect");
    ws
}

async fn ws_join(addr: std::net::SocketAddr) -> Ws {
    let mut ws = ws_connect(addr).await;
    let hello = r#"[1,"realm1",{"roles":{"subscriber":{}}}]"#;
    ws.send(WsMessage::text(hello)).await.unwrap();
    let msg = tokio::time::timeout(WAIT, ws.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let welcome: Value = serde_json::from_str(msg.to_text().unwrap()).unwrap();
    assert_eq!(welcome[0], json!(2), "WELCOME expected, got {welcome}");
    ws
}

/// A WebSocket upgrade request for `/ws`, written on a plain socket.
async fn upgrade_request(s: &mut TcpStream, addr: std::net::SocketAddr) {
    let req = format!(
        "GET /ws HTTP/1.1\r\nHost: {addr}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
         Sec-WebSocket-Protocol: wamp.2.json\r\n\r\n"
    );
    // The router may have answered and closed already; the reply is what matters.
    let _ = s.write_all(req.as_bytes()).await;
}

/// Asserts that `reply` is the 503 refusal naming `limit`.
fn assert_503(reply: &[u8], limit: &str) {
    let text = String::from_utf8_lossy(reply);
    assert!(
        text.starts_with("HTTP/1.1 503 Service Unavailable\r\n"),
        "{text}"
    );
    assert!(text.contains("\r\nRetry-After: 5\r\n"), "{text}");
    assert!(text.contains("\r\nConnection: close\r\n"), "{text}");
    let body = text.split("\r\n\r\n").nth(1).unwrap_or_default();
    assert!(body.contains(&format!("({limit})")), "{text}");
    assert!(body.contains("try again later"), "{text}");
}

/// Connects to a RawSocket transport and sends the JSON handshake (16 MiB); returns the reply.
async fn rs_connect(addr: std::net::SocketAddr) -> (TcpStream, [u8; 4]) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(&[0x7F, 0xF1, 0, 0]).await.unwrap();
    let reply = read_exact(&mut s, 4).await.try_into().unwrap();
    (s, reply)
}

/// The handshake reply of a refusal at a connection cap: error 4.
const RS_CONNECTION_LIMIT: [u8; 4] = [0x7F, 0x40, 0, 0];

async fn rs_send<S: AsyncWrite + Unpin>(s: &mut S, msg: &Value) {
    let payload = msg.to_string().into_bytes();
    let len = payload.len();
    s.write_all(&[0, (len >> 16) as u8, (len >> 8) as u8, len as u8])
        .await
        .unwrap();
    s.write_all(&payload).await.unwrap();
}

async fn rs_recv<S: AsyncRead + Unpin>(s: &mut S) -> Value {
    let h = read_exact(s, 4).await;
    let len = ((h[1] as usize) << 16) | ((h[2] as usize) << 8) | h[3] as usize;
    serde_json::from_slice(&read_exact(s, len).await).unwrap()
}

async fn rs_join(addr: std::net::SocketAddr) -> TcpStream {
    let (mut s, reply) = rs_connect(addr).await;
    assert_eq!(reply[1] & 0x0F, 1, "accepted with JSON: {reply:?}");
    let roles = json!({"subscriber": {}, "publisher": {}});
    rs_send(&mut s, &json!([1, "realm1", {"roles": roles}])).await;
    assert_eq!(rs_recv(&mut s).await[0], json!(2), "WELCOME");
    s
}

/// When the router closes `s` (end of stream or reset), discarding what it sends; `None` if
/// still open after `within`.
async fn closed_within(s: &mut TcpStream, within: Duration) -> Option<Duration> {
    let start = tokio::time::Instant::now();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout_at(start + within, s.read(&mut buf)).await {
            Err(_) => return None,
            Ok(Ok(0)) | Ok(Err(_)) => return Some(start.elapsed()),
            Ok(Ok(_)) => {}
        }
    }
}

/// `max_connections_per_ip` from the configuration: counted over all transports of the node; a
/// further connection gets an HTTP 503 on the WebSocket transport and handshake error 4 on the
/// RawSocket one, then is closed; once a connection closes there is room again.
#[tokio::test]
async fn per_address_cap_refuses_with_503_and_rawsocket_error_4() {
    let router = start(node(
        json!({"max_connections_per_ip": 2}),
        json!({}),
        json!({}),
    ))
    .await;
    let (ws_addr, rs_addr) = (router.tcp(0), router.tcp(1));
    let ws = ws_join(ws_addr).await;
    let rs = rs_join(rs_addr).await;

    let mut third = TcpStream::connect(ws_addr).await.unwrap();
    upgrade_request(&mut third, ws_addr).await;
    assert_503(&read_to_eof(&mut third).await, "max_connections_per_ip");

    let (mut fourth, reply) = rs_connect(rs_addr).await;
    assert_eq!(reply, RS_CONNECTION_LIMIT);
    assert!(read_to_eof(&mut fourth).await.is_empty(), "then closed");

    // The two sessions were not disturbed; closing one makes room.
    drop(ws);
    let mut admitted = false;
    for _ in 0..50 {
        let (s, reply) = rs_connect(rs_addr).await;
        if reply != RS_CONNECTION_LIMIT {
            assert_eq!(reply[1] & 0x0F, 1, "{reply:?}");
            admitted = true;
            drop(s);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(admitted, "room again after a connection closed");
    drop(rs);
    stop(router).await;
}

/// A transport's `max_connections`: a further connection to that transport is refused (503,
/// RawSocket error 4) while the other transport still admits; room again once one closes.
#[tokio::test]
async fn transport_max_connections_refuses_beyond_the_transports_cap() {
    let config = node(
        json!({}),
        json!({"max_connections": 1}),
        json!({"max_connections": 2}),
    );
    let router = start(config).await;
    let (ws_addr, rs_addr) = (router.tcp(0), router.tcp(1));
    let ws = ws_join(ws_addr).await;

    let mut refused = TcpStream::connect(ws_addr).await.unwrap();
    upgrade_request(&mut refused, ws_addr).await;
    let reply = read_to_eof(&mut refused).await;
    assert_503(&reply, "max_connections");
    assert!(
        String::from_utf8_lossy(&reply).contains("maximum connection count"),
        "{}",
        String::from_utf8_lossy(&reply)
    );

    // The RawSocket transport has its own cap of 2.
    let one = rs_join(rs_addr).await;
    let two = rs_join(rs_addr).await;
    let (mut three, reply) = rs_connect(rs_addr).await;
    assert_eq!(reply, RS_CONNECTION_LIMIT);
    assert!(read_to_eof(&mut three).await.is_empty());
    drop((one, two));

    // The WebSocket session goes on; once it leaves, another client is admitted.
    drop(ws);
    let mut joined = None;
    for _ in 0..50 {
        let mut s = TcpStream::connect(ws_addr).await.unwrap();
        upgrade_request(&mut s, ws_addr).await;
        let head = read_exact(&mut s, 12).await;
        if head == b"HTTP/1.1 101" {
            joined = Some(s);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(joined.is_some(), "room again after the session closed");
    stop(router).await;
}

/// The node-wide `max_connections` from the configuration (and the server's precedence: the
/// configuration over the default, an embedder's or the command line's over both): at the cap
/// the listeners stop accepting, so a further client waits, and is served once one closes.
#[tokio::test]
async fn node_wide_max_connections_from_the_configuration_makes_clients_wait() {
    let dir = TempDir::new(DIR_PREFIX);
    let config = load_config(
        &node(json!({"max_connections": 1}), json!({}), json!({})),
        dir.path(),
    );
    let server = Server::bind(config.clone()).await.unwrap();
    assert_eq!(server.connection_limits().max_connections, 1);
    let overridden = server.connection_limits().clone();
    let server = server.with_connection_limits(turnstile::limits::ConnectionLimits {
        max_connections: 7,
        ..overridden
    });
    assert_eq!(server.connection_limits().max_connections, 7);
    drop(server);

    let router = start(node(json!({"max_connections": 1}), json!({}), json!({}))).await;
    let rs_addr = router.tcp(1);
    let holder = rs_join(rs_addr).await;
    let waiting = tokio::spawn(async move {
        let (s, reply) = rs_connect(rs_addr).await;
        (s, reply, tokio::time::Instant::now())
    });
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert!(!waiting.is_finished(), "no reply while the node is full");
    let released = tokio::time::Instant::now();
    drop(holder);
    let (_s, reply, at) = tokio::time::timeout(WAIT, waiting).await.unwrap().unwrap();
    assert_eq!(reply[1] & 0x0F, 1, "accepted: {reply:?}");
    assert!(at >= released);
    stop(router).await;
}

/// The deadlines from the configuration, each set to 1 s and crossed at once: the HTTP request
/// head, the RawSocket handshake, the HELLO (WebSocket and RawSocket), a RawSocket frame and a
/// WebSocket message once started.
#[tokio::test]
async fn deadlines_from_the_configuration() {
    let limits = json!({
        "handshake_timeout": 1,
        "http_request_header_timeout": 1,
        "frame_completion_timeout": 1,
        "message_completion_timeout": 1
    });
    let router = start(node(limits, json!({}), json!({}))).await;
    let (ws_addr, rs_addr) = (router.tcp(0), router.tcp(1));
    // Each closed between 0.9 s and 3 s (the default deadlines are 10 s and more).
    let in_time = |d: Option<Duration>, what: &str| {
        let d = d.unwrap_or_else(|| panic!("{what}: still open"));
        assert!(
            d >= Duration::from_millis(900) && d < Duration::from_secs(3),
            "{what}: closed after {d:?}"
        );
    };

    let http_idle = async {
        let mut s = TcpStream::connect(ws_addr).await.unwrap();
        in_time(closed_within(&mut s, WAIT).await, "idle HTTP connection");
    };
    let rs_silent = async {
        let mut s = TcpStream::connect(rs_addr).await.unwrap();
        in_time(closed_within(&mut s, WAIT).await, "no RawSocket handshake");
    };
    let rs_no_hello = async {
        let (mut s, _) = rs_connect(rs_addr).await;
        in_time(closed_within(&mut s, WAIT).await, "RawSocket without HELLO");
    };
    let ws_no_hello = async {
        let mut ws = ws_connect(ws_addr).await;
        let start = tokio::time::Instant::now();
        let closed = tokio::time::timeout(WAIT, async {
            while let Some(Ok(msg)) = ws.next().await {
                if let WsMessage::Close(frame) = msg {
                    return frame.map(|f| f.code);
                }
            }
            None
        })
        .await
        .expect("closed");
        assert_eq!(closed, Some(CloseCode::Policy));
        in_time(Some(start.elapsed()), "WebSocket without HELLO");
    };
    let rs_partial_frame = async {
        let mut s = rs_join(rs_addr).await;
        s.write_all(&[0, 0, 0, 10, b'[']).await.unwrap();
        in_time(closed_within(&mut s, WAIT).await, "partial RawSocket frame");
    };
    let ws_partial_message = async {
        let mut ws = ws_join(ws_addr).await;
        let tokio_tungstenite::MaybeTlsStream::Plain(tcp) = ws.get_mut() else {
            panic!("plain TCP")
        };
        // A masked text frame announcing 100 bytes, of which 10 come.
        let mut partial = vec![0x81, 0x80 | 100, 0, 0, 0, 0];
        partial.extend_from_slice(b"[32,9,{},\"");
        tcp.write_all(&partial).await.unwrap();
        let start = tokio::time::Instant::now();
        let code = tokio::time::timeout(WAIT, async {
            while let Some(Ok(msg)) = ws.next().await {
                if let WsMessage::Close(frame) = msg {
                    return frame.map(|f| f.code);
                }
            }
            None
        })
        .await
        .expect("closed");
        assert_eq!(code, Some(CloseCode::Policy));
        in_time(Some(start.elapsed()), "partial WebSocket message");
    };
    tokio::join!(
        http_idle,
        rs_silent,
        rs_no_hello,
        ws_no_hello,
        rs_partial_frame,
        ws_partial_message
    );
    stop(router).await;
}

/// `max_outgoing_queue_bytes` from the configuration: a subscriber that does not read is
/// disconnected as a slow consumer once its queue holds more than that (here 1 KiB), and the
/// publisher goes on.
#[tokio::test]
async fn outgoing_queue_bytes_from_the_configuration() {
    let router = start(node(
        json!({"max_outgoing_queue_bytes": 1024}),
        json!({}),
        json!({}),
    ))
    .await;
    let rs_addr = router.tcp(1);
    let mut subscriber = rs_join(rs_addr).await;
    rs_send(&mut subscriber, &json!([32, 1, {}, "com.example.big"])).await;
    assert_eq!(rs_recv(&mut subscriber).await[0], json!(33), "SUBSCRIBED");
    let mut publisher = rs_join(rs_addr).await;
    let payload = "x".repeat(64 << 10);
    let events = 20;
    for i in 0..events {
        rs_send(
            &mut publisher,
            &json!([16, i + 1, {}, "com.example.big", [payload]]),
        )
        .await;
    }
    rs_send(
        &mut publisher,
        &json!([16, 99999, {"acknowledge": true}, "com.example.other"]),
    )
    .await;
    assert_eq!(rs_recv(&mut publisher).await[0], json!(17), "PUBLISHED");
    // Everything the subscriber got before its connection was closed.
    let mut received = 0;
    let read_all = async {
        loop {
            let mut h = [0u8; 4];
            if subscriber.read_exact(&mut h).await.is_err() {
                break;
            }
            let len = ((h[1] as usize) << 16) | ((h[2] as usize) << 8) | h[3] as usize;
            let mut body = vec![0u8; len];
            if subscriber.read_exact(&mut body).await.is_err() {
                break;
            }
            received += 1;
        }
    };
    tokio::time::timeout(WAIT, read_all)
        .await
        .expect("the slow subscriber is disconnected");
    // With the default queue (16 MiB) all 20 (1.3 MB) would arrive: a queue of 1 KiB is over
    // its limit as soon as one event waits behind another.
    assert!(received < events, "received all {received} events");
    stop(router).await;
}
