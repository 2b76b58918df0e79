//! RawSocket findings of a black-box probe, each reproduced against a real router over TCP:
//! reserved frame header bits, the smallest maximum length a client may announce, outgoing
//! messages larger than the client accepts, and the handshake and frame completion deadlines.

mod common;

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use turnstile::limits::{self, RawSocketTimeouts};

use common::{read_exact, read_to_eof, realm1, Router, TempDir};

/// Upper bound for anything a test waits for.
const WAIT: Duration = Duration::from_secs(10);

const DIR_PREFIX: &str = "turnstile-rawsocket-test";

// ---------------------------------------------------------------------------------------------
// Harness

fn node(max_message_size: usize) -> Value {
    json!({
        "version": 2,
        "workers": [{
            "type": "router",
            "realms": [realm1()],
            "transports": [{
                "type": "rawsocket",
                "endpoint": {"type": "tcp", "port": 1},
                "serializers": ["json"],
                "max_message_size": max_message_size
            }]
        }]
    })
}

async fn router(max_message_size: usize) -> Router {
    Router::start_in(node(max_message_size), TempDir::new(DIR_PREFIX)).await
}

async fn router_with(max_message_size: usize, timeouts: RawSocketTimeouts) -> Router {
    Router::start_with_timeouts(node(max_message_size), TempDir::new(DIR_PREFIX), timeouts).await
}

async fn stop(mut r: Router) {
    r.begin_shutdown();
    r.stopped(WAIT).await;
}

/// Connects and does the JSON handshake announcing 2^(9+`exponent`) bytes; returns the reply.
async fn connect(addr: std::net::SocketAddr, exponent: u8) -> (TcpStream, [u8; 4]) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(&[0x7F, (exponent << 4) | 1, 0, 0])
        .await
        .unwrap();
    let reply = read_exact(&mut s, 4).await.try_into().unwrap();
    (s, reply)
}

async fn send<S: AsyncWrite + Unpin>(s: &mut S, payload: &[u8]) {
    let len = payload.len();
    s.write_all(&[0, (len >> 16) as u8, (len >> 8) as u8, len as u8])
        .await
        .unwrap();
    s.write_all(payload).await.unwrap();
}

async fn send_json<S: AsyncWrite + Unpin>(s: &mut S, msg: Value) {
    send(s, msg.to_string().as_bytes()).await;
}

/// Reads one frame: (header octet 0, payload).
async fn recv<S: AsyncRead + Unpin>(s: &mut S) -> (u8, Vec<u8>) {
    let h = read_exact(s, 4).await;
    let len = ((h[1] as usize) << 16) | ((h[2] as usize) << 8) | h[3] as usize;
    (h[0], read_exact(s, len).await)
}

async fn recv_json<S: AsyncRead + Unpin>(s: &mut S) -> Value {
    let (kind, payload) = recv(s).await;
    assert_eq!(kind, 0, "a message frame");
    serde_json::from_slice(&payload).expect("JSON message")
}

/// Parses the frames of `bytes` (what came before a close) as JSON messages.
fn frames(mut bytes: &[u8]) -> Vec<Value> {
    let mut out = Vec::new();
    while bytes.len() >= 4 {
        let len = ((bytes[1] as usize) << 16) | ((bytes[2] as usize) << 8) | bytes[3] as usize;
        out.push(serde_json::from_slice(&bytes[4..4 + len]).expect("JSON message"));
        bytes = &bytes[4 + len..];
    }
    assert!(bytes.is_empty(), "whole frames only");
    out
}

fn assert_abort(msg: &Value, reason: &str) {
    assert_eq!(msg[0], json!(3), "ABORT expected, got {msg}");
    assert_eq!(msg[2], json!(reason), "ABORT reason in {msg}");
    assert!(
        msg[1]["message"].is_string(),
        "ABORT explains itself: {msg}"
    );
}

/// Sends HELLO for `realm1` and returns the WELCOME (and its length).
async fn join<S: AsyncRead + AsyncWrite + Unpin>(s: &mut S) -> (Value, usize) {
    send_json(
        s,
        json!([1, "realm1", {"roles": {"subscriber": {}, "publisher": {}, "caller": {}, "callee": {}}}]),
    )
    .await;
    let (kind, payload) = recv(s).await;
    assert_eq!(kind, 0);
    let welcome: Value = serde_json::from_slice(&payload).unwrap();
    assert_eq!(welcome[0], json!(2), "WELCOME expected, got {welcome}");
    (welcome, payload.len())
}

/// A joined session subscribed to `topic`.
async fn subscriber(addr: std::net::SocketAddr, exponent: u8, topic: &str) -> TcpStream {
    let (mut s, reply) = connect(addr, exponent).await;
    assert_eq!(reply[0], 0x7F);
    assert_ne!(reply[1] & 0x0F, 0, "accepted: {reply:?}");
    join(&mut s).await;
    send_json(&mut s, json!([32, 1, {}, topic])).await;
    let subscribed = recv_json(&mut s).await;
    assert_eq!(
        subscribed[0],
        json!(33),
        "SUBSCRIBED expected, got {subscribed}"
    );
    s
}

// ---------------------------------------------------------------------------------------------
// a. Reserved bits of the frame header

/// `0x08 0 0 0` was read as a 16 MiB frame (bit 3 taken for a 25th length bit), so the router
/// waited for 16 MiB. All 5 upper bits are reserved: it is a protocol violation.
#[tokio::test]
async fn reserved_bit_3_is_refused_not_read_as_a_length_bit() {
    let server = router(16 << 20).await;
    let (mut s, _) = connect(server.tcp(0), 15).await;
    s.write_all(&[0x08, 0, 0, 0]).await.unwrap();
    let rest = frames(&read_to_eof(&mut s).await);
    assert_eq!(rest.len(), 1, "one ABORT, then the close: {rest:?}");
    assert_abort(&rest[0], "wamp.error.protocol_violation");
    let text = rest[0][1]["message"].as_str().unwrap();
    assert!(text.contains("reserved bits"), "{text}");
    stop(server).await;
}

/// In a joined session, every reserved bit fails the session with ABORT protocol_violation
/// (sent by the realm, as for a malformed message), then the connection is closed.
#[tokio::test]
async fn reserved_bits_abort_a_joined_session() {
    let server = router(65536).await;
    for bit in 3..8 {
        let (mut s, _) = connect(server.tcp(0), 15).await;
        join(&mut s).await;
        s.write_all(&[1 << bit, 0, 0, 2, b'[', b']']).await.unwrap();
        let rest = frames(&read_to_eof(&mut s).await);
        assert_eq!(
            rest.len(),
            1,
            "bit {bit}: one ABORT, then the close: {rest:?}"
        );
        assert_abort(&rest[0], "wamp.error.protocol_violation");
    }
    stop(server).await;
}

// ---------------------------------------------------------------------------------------------
// b. The client's maximum message length

/// A client announcing 512 or 1024 bytes was accepted but could never receive WELCOME: it is
/// refused with handshake error 2 instead. The smallest accepted maximum gets its WELCOME.
#[tokio::test]
async fn too_small_client_maximum_is_refused_with_error_2() {
    let server = router(65536).await;
    let min = limits::RAWSOCKET_MIN_CLIENT_MAX_MESSAGE_SIZE;
    let min_exponent = (0..=15u8).find(|l| 1usize << (9 + l) >= min).unwrap();
    for exponent in 0..min_exponent {
        let (mut s, reply) = connect(server.tcp(0), exponent).await;
        assert_eq!(reply, [0x7F, 0x20, 0, 0], "LLLL = {exponent}");
        assert!(
            read_to_eof(&mut s).await.is_empty(),
            "closed after the refusal"
        );
    }
    let (mut s, reply) = connect(server.tcp(0), min_exponent).await;
    assert_eq!(reply, [0x7F, 0x71, 0, 0]);
    let (welcome, len) = join(&mut s).await;
    assert!(
        len <= min,
        "WELCOME of {len} bytes fits in {min}: {welcome}"
    );
    eprintln!("WELCOME (JSON) is {len} bytes");
    drop(s);
    stop(server).await;
}

/// An outgoing message larger than the client announced used to close the connection without a
/// word: now the session is ended with ABORT `wamp.error.payload_size_exceeded`, then closed.
#[tokio::test]
async fn outgoing_message_over_the_client_maximum_aborts_the_session() {
    let server = router(65536).await;
    let min = limits::RAWSOCKET_MIN_CLIENT_MAX_MESSAGE_SIZE;
    let exponent = (0..=15u8).find(|l| 1usize << (9 + l) >= min).unwrap();
    let mut small = subscriber(server.tcp(0), exponent, "com.example.big").await;

    let (mut publisher, _) = connect(server.tcp(0), 15).await;
    join(&mut publisher).await;
    let big = "x".repeat(min);
    send_json(
        &mut publisher,
        json!([16, 1, {"acknowledge": true}, "com.example.big", [big]]),
    )
    .await;
    assert_eq!(recv_json(&mut publisher).await[0], json!(17), "PUBLISHED");

    let rest = frames(&read_to_eof(&mut small).await);
    assert_eq!(rest.len(), 1, "one ABORT, then the close: {rest:?}");
    assert_abort(&rest[0], "wamp.error.payload_size_exceeded");
    let text = rest[0][1]["message"].as_str().unwrap();
    assert!(text.contains(&min.to_string()), "{text}");
    drop(publisher);
    stop(server).await;
}

// ---------------------------------------------------------------------------------------------
// c. Deadlines

const SHORT: Duration = Duration::from_millis(400);

fn short_timeouts() -> RawSocketTimeouts {
    RawSocketTimeouts {
        handshake: SHORT,
        frame_completion: SHORT,
    }
}

/// A connection that never completes its 4 handshake octets is closed after the handshake
/// deadline, without a reply.
#[tokio::test]
async fn handshake_deadline_closes_silent_connections() {
    let server = router_with(65536, short_timeouts()).await;
    for sent in [&[][..], &[0x7F, 0xF1, 0][..]] {
        let started = Instant::now();
        let mut s = TcpStream::connect(server.tcp(0)).await.unwrap();
        s.write_all(sent).await.unwrap();
        assert!(
            read_to_eof(&mut s).await.is_empty(),
            "closed without a reply"
        );
        let took = started.elapsed();
        assert!(took >= SHORT, "not before the deadline: {took:?}");
        assert!(took < SHORT * 5, "soon after the deadline: {took:?}");
    }
    stop(server).await;
}

/// A joined session that holds a partial frame is closed once the frame deadline passes, even
/// if the client trickles bytes, and its session ends (`on_leave`) as for a lost connection.
#[tokio::test]
async fn frame_deadline_closes_a_session_holding_a_partial_frame() {
    let server = router_with(1 << 20, short_timeouts()).await;
    let mut observer = subscriber(server.tcp(0), 15, "wamp.session.on_leave").await;

    let (mut s, _) = connect(server.tcp(0), 15).await;
    let (welcome, _) = join(&mut s).await;
    let session = welcome[1].clone();
    // Announce (1 MiB - 1) bytes and send a few, then a byte every 50 ms.
    let started = Instant::now();
    s.write_all(&[0, 0x0F, 0xFF, 0xFF]).await.unwrap();
    s.write_all(b"[16,1,{},").await.unwrap();
    let trickle = async {
        loop {
            tokio::time::sleep(Duration::from_millis(50)).await;
            if s.write_all(b" ").await.is_err() {
                break;
            }
            let mut probe = [0u8; 1];
            // The router closes: a read sees EOF (nothing was sent to us).
            if let Ok(r) = tokio::time::timeout(Duration::from_millis(1), s.read(&mut probe)).await
            {
                assert_eq!(r.unwrap_or(0), 0, "no message before the close");
                break;
            }
        }
    };
    tokio::time::timeout(WAIT, trickle)
        .await
        .expect("closed in time");
    let took = started.elapsed();
    assert!(took >= SHORT, "not before the deadline: {took:?}");
    assert!(took < SHORT * 5, "soon after the deadline: {took:?}");

    // The session ended: the observer sees its on_leave.
    let event = recv_json(&mut observer).await;
    assert_eq!(event[0], json!(36), "EVENT expected, got {event}");
    assert_eq!(
        event[4][0], session,
        "on_leave of the closed session: {event}"
    );
    drop(observer);
    stop(server).await;
}

/// Before HELLO too: a partial frame does not hold the connection past the deadline; whole
/// frames that arrive in pieces within it are fine.
#[tokio::test]
async fn frame_deadline_before_hello_and_frames_in_pieces() {
    let server = router_with(65536, short_timeouts()).await;
    // In pieces, within the deadline: a PING gets its PONG.
    let (mut s, _) = connect(server.tcp(0), 15).await;
    s.write_all(&[1, 0, 0, 4, b'p']).await.unwrap();
    tokio::time::sleep(SHORT / 4).await;
    s.write_all(b"ing").await.unwrap();
    assert_eq!(recv(&mut s).await, (2, b"ping".to_vec()));
    // A header, then nothing: closed without a message.
    let started = Instant::now();
    s.write_all(&[0, 0, 1, 0]).await.unwrap();
    assert!(read_to_eof(&mut s).await.is_empty());
    let took = started.elapsed();
    assert!(took >= SHORT && took < SHORT * 5, "{took:?}");
    stop(server).await;
}
