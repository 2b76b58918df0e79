//! The client's transports against scripted fake routers (no Turnstile): RawSocket handshake and
//! framing over TCP and Unix sockets, PING/PONG, WebSocket subprotocol and frame types, the
//! traffic log's exact lengths, and the session's inbox.

#![allow(clippy::result_large_err)] // tungstenite's handshake callback signature

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use turnstile_client::rawsocket::{self, FrameType};
use turnstile_client::{dict, Direction, Error, Message, Serializer, Session, Transport};
use wamp_proto::message::code;

const LIMIT: Duration = Duration::from_secs(5);

fn welcome(session: u64) -> Message {
    Message::Welcome {
        session,
        details: dict! {"realm" => "realm1"},
    }
}

async fn read_frame<S: AsyncRead + Unpin>(s: &mut S) -> (u8, Vec<u8>) {
    let mut h = [0u8; 4];
    s.read_exact(&mut h).await.unwrap();
    let len = (usize::from(h[1]) << 16) | (usize::from(h[2]) << 8) | usize::from(h[3]);
    let mut payload = vec![0; len];
    s.read_exact(&mut payload).await.unwrap();
    (h[0] & 7, payload)
}

/// A fake RawSocket router: checks the handshake, accepts it, sends a PING (expects the PONG),
/// expects HELLO, answers WELCOME, then echoes the next message and closes.
async fn fake_rawsocket_router<S: AsyncRead + AsyncWrite + Unpin>(mut s: S, ser: Serializer) {
    let mut hs = [0u8; 4];
    s.read_exact(&mut hs).await.unwrap();
    assert_eq!(hs, [0x7F, 0xF0 | ser.rawsocket_id(), 0, 0]);
    s.write_all(&[0x7F, 0x90 | ser.rawsocket_id(), 0, 0])
        .await
        .unwrap();
    s.write_all(&rawsocket::encode_frame(FrameType::Ping, b"are you there").unwrap())
        .await
        .unwrap();
    // The client sends HELLO, then answers the PING when it reads (waiting for WELCOME).
    let (t, hello) = read_frame(&mut s).await;
    assert_eq!(t, 0);
    assert!(matches!(ser.decode(&hello).unwrap(), Message::Hello { .. }));
    let (t, pong) = read_frame(&mut s).await;
    assert_eq!((t, &pong[..]), (2, &b"are you there"[..]));
    let w = ser.encode(&welcome(42)).unwrap();
    s.write_all(&rawsocket::encode_frame(FrameType::Message, &w).unwrap())
        .await
        .unwrap();
    let (t, next) = read_frame(&mut s).await;
    assert_eq!(t, 0);
    s.write_all(&rawsocket::encode_frame(FrameType::Message, &next).unwrap())
        .await
        .unwrap();
    s.shutdown().await.unwrap();
}

/// Joins, publishes, reads the echo, and checks the traffic log against the encoded lengths.
async fn run_rawsocket_client(url: &str, ser: Serializer) {
    let mut s = Session::connect(url, ser).await.unwrap();
    assert_eq!(s.transport().framing(), "rawsocket");
    assert_eq!(s.transport().router_max_message_size(), Some(1 << 18));
    let w = s.join("realm1").await.unwrap();
    assert_eq!(w.session, 42);
    let publish = Message::Publish {
        request: 7,
        options: dict! {},
        topic: "com.example.t".into(),
        args: Some(vec![1.into(), "x".into()]),
        kwargs: None,
    };
    s.send(&publish).await.unwrap();
    let echoed = s.recv_timeout(LIMIT).await.unwrap().unwrap();
    assert_eq!(echoed, publish);
    assert_eq!(s.recv_timeout(LIMIT).await.unwrap(), None, "closed");
    let t = s.traffic();
    let hello_len = ser
        .encode(&Message::Hello {
            realm: "realm1".into(),
            details: turnstile_client::session::hello_details(),
        })
        .unwrap()
        .len();
    let welcome_len = ser.encode(&welcome(42)).unwrap().len();
    let publish_len = ser.encode(&publish).unwrap().len();
    let log: Vec<_> = t
        .per_message
        .iter()
        .map(|r| (r.direction, r.code, r.len))
        .collect();
    assert_eq!(
        log,
        vec![
            (Direction::Sent, code::HELLO, hello_len),
            (Direction::Received, code::WELCOME, welcome_len),
            (Direction::Sent, code::PUBLISH, publish_len),
            (Direction::Received, code::PUBLISH, publish_len),
        ]
    );
    assert_eq!(t.sent_messages, 2);
    assert_eq!(t.received_messages, 2);
    assert_eq!(t.sent_bytes, (hello_len + publish_len) as u64);
    assert_eq!(t.received_bytes, (welcome_len + publish_len) as u64);
}

#[tokio::test]
async fn rawsocket_tcp_handshake_ping_and_traffic() {
    for ser in Serializer::ALL {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("rs://{}", listener.local_addr().unwrap());
        let server = tokio::spawn(async move {
            let (s, _) = listener.accept().await.unwrap();
            fake_rawsocket_router(s, ser).await;
        });
        run_rawsocket_client(&url, ser).await;
        server.await.unwrap();
    }
}

#[tokio::test]
async fn rawsocket_unix_handshake_ping_and_traffic() {
    let dir = std::env::temp_dir().join(format!("turnstile-client-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("fake.sock");
    let _ = std::fs::remove_file(&path);
    let listener = tokio::net::UnixListener::bind(&path).unwrap();
    let url = format!("unix://{}", path.display());
    let server = tokio::spawn(async move {
        let (s, _) = listener.accept().await.unwrap();
        fake_rawsocket_router(s, Serializer::Cbor).await;
    });
    run_rawsocket_client(&url, Serializer::Cbor).await;
    server.await.unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn rawsocket_refusal_and_raw_frames() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("rs://{}", listener.local_addr().unwrap());
    let server = tokio::spawn(async move {
        // First connection: refused, serializer unsupported.
        let (mut s, _) = listener.accept().await.unwrap();
        let mut hs = [0u8; 4];
        s.read_exact(&mut hs).await.unwrap();
        s.write_all(&[0x7F, 0x10, 0, 0]).await.unwrap();
        drop(s);
        // Second: accepted; the client sends raw frames, which arrive untouched.
        let (mut s, _) = listener.accept().await.unwrap();
        s.read_exact(&mut hs).await.unwrap();
        assert_eq!(hs, [0x7F, 0x02, 0, 0], "exponent 0 asked for");
        s.write_all(&[0x7F, 0xF2, 0, 0]).await.unwrap();
        assert_eq!(read_frame(&mut s).await, (5, b"odd".to_vec()));
        assert_eq!(read_frame(&mut s).await, (0, b"\xc1garbage".to_vec()));
        // A frame over the client's announced 512 bytes is a framing error for the client.
        s.write_all(&rawsocket::frame_header(0, 513).unwrap())
            .await
            .unwrap();
        s.write_all(&[0u8; 513]).await.unwrap();
    });
    let err = Transport::connect(&url, Serializer::MsgPack)
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::RawSocketRefused { code: 1, .. }),
        "{err}"
    );
    let options = turnstile_client::ConnectOptions {
        rawsocket_max_length_exponent: 0,
        ..Default::default()
    };
    let mut t = Transport::connect_with(&url, Serializer::MsgPack, &options)
        .await
        .unwrap();
    t.send_raw_frame(5, b"odd").await.unwrap();
    t.send_raw(b"\xc1garbage").await.unwrap();
    assert!(
        t.traffic().per_message.is_empty(),
        "raw sends are not recorded"
    );
    let err = t.recv_timeout(LIMIT).await.unwrap_err();
    assert!(matches!(err, Error::Framing(_)), "{err}");
    server.await.unwrap();
}

/// A fake WebSocket router selecting the requested subprotocol; echoes every data message back
/// with the same frame type, after a ping.
async fn fake_ws_router(listener: TcpListener, expect: &'static str) {
    let (s, _) = listener.accept().await.unwrap();
    let callback = |req: &Request, mut resp: Response| {
        let asked = req
            .headers()
            .get("Sec-WebSocket-Protocol")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        assert_eq!(asked, expect);
        resp.headers_mut().insert(
            "Sec-WebSocket-Protocol",
            HeaderValue::from_str(&asked).unwrap(),
        );
        Ok(resp)
    };
    let mut ws = tokio_tungstenite::accept_hdr_async(s, callback)
        .await
        .unwrap();
    ws.send(WsMessage::Ping("p".into())).await.unwrap();
    while let Some(Ok(m)) = ws.next().await {
        match m {
            WsMessage::Text(t) => {
                assert_eq!(expect, "wamp.2.json", "text frames only for JSON");
                ws.send(WsMessage::Text(t)).await.unwrap();
            }
            WsMessage::Binary(b) => {
                assert_ne!(
                    expect, "wamp.2.json",
                    "binary frames for MessagePack and CBOR"
                );
                ws.send(WsMessage::Binary(b)).await.unwrap();
            }
            WsMessage::Close(_) => break,
            _ => {}
        }
    }
}

#[tokio::test]
async fn websocket_subprotocol_frames_and_traffic() {
    for ser in Serializer::ALL {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("ws://{}/ws", listener.local_addr().unwrap());
        let server = tokio::spawn(fake_ws_router(listener, ser.ws_subprotocol()));
        let mut t = Transport::connect(&url, ser).await.unwrap();
        assert_eq!(t.framing(), "websocket");
        let msg = Message::Call {
            request: 1,
            options: dict! {},
            procedure: "com.example.add".into(),
            args: Some(vec![2.into(), 3.into(), vec![0u8, 1, 255].into()]),
            kwargs: Some(dict! {"k" => "v"}),
        };
        t.send(&msg).await.unwrap();
        assert_eq!(t.recv_timeout(LIMIT).await.unwrap(), Some(msg.clone()));
        let len = ser.encode(&msg).unwrap().len();
        let tr = t.traffic();
        assert_eq!((tr.sent_messages, tr.sent_bytes), (1, len as u64));
        assert_eq!((tr.received_messages, tr.received_bytes), (1, len as u64));
        t.close().await.unwrap();
        server.await.unwrap();
    }
}

#[tokio::test]
async fn websocket_wrong_subprotocol_is_refused() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}/", listener.local_addr().unwrap());
    let server = tokio::spawn(async move {
        let (s, _) = listener.accept().await.unwrap();
        let callback = |_: &Request, mut resp: Response| {
            resp.headers_mut().insert(
                "Sec-WebSocket-Protocol",
                HeaderValue::from_static("wamp.2.cbor"),
            );
            Ok(resp)
        };
        let _ = tokio_tungstenite::accept_hdr_async(s, callback).await;
    });
    assert!(Transport::connect(&url, Serializer::Json).await.is_err());
    server.await.unwrap();
}

#[tokio::test]
async fn session_buffers_what_arrives_while_waiting() {
    let ser = Serializer::Json;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("rs://{}", listener.local_addr().unwrap());
    let server = tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.unwrap();
        let mut hs = [0u8; 4];
        s.read_exact(&mut hs).await.unwrap();
        s.write_all(&[0x7F, 0xF1, 0, 0]).await.unwrap();
        let send = |m: Message| {
            rawsocket::encode_frame(FrameType::Message, &ser.encode(&m).unwrap()).unwrap()
        };
        let _hello = read_frame(&mut s).await;
        s.write_all(&send(welcome(1))).await.unwrap();
        let (_, sub) = read_frame(&mut s).await;
        let Message::Subscribe { request, .. } = ser.decode(&sub).unwrap() else {
            panic!("expected SUBSCRIBE")
        };
        // An event and an invocation arrive before the reply.
        let event = Message::Event {
            subscription: 9,
            publication: 10,
            details: dict! {},
            args: Some(vec!["early".into()]),
            kwargs: None,
        };
        let invocation = Message::Invocation {
            request: 1,
            registration: 5,
            details: dict! {},
            args: None,
            kwargs: None,
        };
        s.write_all(&send(event)).await.unwrap();
        s.write_all(&send(invocation)).await.unwrap();
        s.write_all(&send(Message::Subscribed {
            request,
            subscription: 11,
        }))
        .await
        .unwrap();
        let (_, y) = read_frame(&mut s).await;
        assert!(matches!(
            ser.decode(&y).unwrap(),
            Message::Yield { request: 1, .. }
        ));
        // The router says GOODBYE (a kill); the client answers it.
        s.write_all(&send(Message::Goodbye {
            details: dict! {"message" => "bye"},
            reason: "wamp.close.killed".into(),
        }))
        .await
        .unwrap();
        let (_, g) = read_frame(&mut s).await;
        assert_eq!(
            ser.decode(&g).unwrap(),
            Message::Goodbye {
                details: dict! {},
                reason: "wamp.close.goodbye_and_out".into()
            }
        );
    });
    let mut s = Session::connect(&url, ser).await.unwrap();
    s.join("realm1").await.unwrap();
    assert_eq!(s.subscribe("t", dict! {}).await.unwrap(), 11);
    assert_eq!(s.inbox().len(), 2);
    let inv = s.next_invocation().await.unwrap();
    s.yield_result(inv.request, None, None).await.unwrap();
    let ev = s.next_event().await.unwrap();
    assert_eq!((ev.subscription, ev.args), (9, vec!["early".into()]));
    // A wait ends with the router's GOODBYE, which stays in the inbox.
    let err = s.next_event().await.unwrap_err();
    assert!(matches!(err, Error::Goodbye { ref reason, .. } if reason == "wamp.close.killed"));
    let (reason, _) = s.wait_goodbye().await.unwrap();
    assert_eq!(reason, "wamp.close.killed");
    s.answer_goodbye().await.unwrap();
    assert_eq!(s.id(), None);
    server.await.unwrap();
}
