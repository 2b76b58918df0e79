//! WAMP over WebSocket: the upgrade (subprotocol negotiation, by the sans-IO
//! `wamp_proto::websocket`, and size limits), the connection's framing (text for JSON, binary
//! otherwise; a frame of the other kind is a protocol violation), ping/pong keepalive, the
//! message completion deadline and the close handshake.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, Extension};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, MethodRouter};
use bytes::Bytes;
use futures_util::SinkExt;
use tokio::time::Instant;
use tracing::debug;
use tungstenite::error::CapacityError;
use turnstile_config::{WebSocketOptions, WebSocketService};
use wamp_proto::{websocket, Serializer};

use crate::limits;
use crate::runtime::router::Router;
use crate::transport::admission::{MessageTimeout, SocketControl};
use crate::transport::driver::{drive, Conns, Incoming, WampSocket, WriteError};
use crate::transport::listener::PeerAddr;
use crate::transport::tls::Secured;
use crate::transport::AuthSlot;
use turnstile_core::peer::{ChannelType, CloseReason, Framing, TransportInfo};

/// A WebSocket service ready to be mounted on a path.
#[derive(Debug)]
pub(crate) struct WsEndpoint {
    pub router: Arc<Router>,
    pub service: WebSocketService,
    /// The service's `auth`, replaced by a configuration reload (`service.auth` is the one at
    /// start).
    pub auth: AuthSlot,
    pub conns: Conns,
    /// [`limits::MESSAGE_COMPLETION_TIMEOUT`] or the server's replacement.
    pub message_timeout: Duration,
    /// [`limits::HANDSHAKE_TIMEOUT`] or the server's replacement.
    pub hello_timeout: Duration,
    /// [`limits::MAX_OUTGOING_QUEUE_BYTES`] or the server's replacement.
    pub max_outgoing_queue_bytes: usize,
}

impl WsEndpoint {
    /// The axum route of this service (any method: a request that is not an upgrade gets a short
    /// explanation).
    pub(crate) fn route<S: Clone + Send + Sync + 'static>(self: Arc<Self>) -> MethodRouter<S> {
        any(
            move |ConnectInfo(peer): ConnectInfo<PeerAddr>,
                  control: Option<Extension<Arc<SocketControl>>>,
                  secured: Option<Extension<Arc<Secured>>>,
                  headers: HeaderMap,
                  ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>| {
                let endpoint = self.clone();
                let control = control.map(|Extension(c)| c);
                let secured = secured.map(|Extension(s)| s);
                async move { endpoint.upgrade(peer, control, secured, headers, ws) }
            },
        )
    }

    /// `wamp.2.json, wamp.2.msgpack`: what this endpoint accepts, in its order.
    fn accepted(&self) -> String {
        let names: Vec<&str> = self
            .service
            .serializers
            .iter()
            .map(|s| s.ws_subprotocol())
            .collect();
        names.join(", ")
    }

    fn upgrade(
        self: Arc<Self>,
        peer: PeerAddr,
        control: Option<Arc<SocketControl>>,
        secured: Option<Arc<Secured>>,
        headers: HeaderMap,
        ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
    ) -> Response {
        let mut ws = match ws {
            Ok(ws) => ws,
            Err(rejection) => return self.not_an_upgrade(rejection),
        };
        let offered = websocket::offered_subprotocols(
            headers
                .get_all(header::SEC_WEBSOCKET_PROTOCOL)
                .iter()
                .map(HeaderValue::as_bytes),
        );
        let serializer = match websocket::choose_subprotocol(&offered, &self.service.serializers) {
            Ok(serializer) => serializer,
            Err(refused) => {
                debug!(peer = %peer.peer_string(), "websocket: refused: {refused}");
                return (StatusCode::BAD_REQUEST, format!("{refused}\n")).into_response();
            }
        };
        ws.set_selected_protocol(HeaderValue::from_static(serializer.ws_subprotocol()));
        // Copied out now: the request's header values point into hyper's read buffer, which
        // would otherwise stay allocated for the whole life of the connection.
        let http_headers = websocket::combine_headers(
            headers
                .iter()
                .map(|(name, value)| (name.as_str(), value.as_bytes())),
        );
        drop(headers);
        let opened = tokio::time::Instant::now();
        let options = &self.service.options;
        let token = self.conns.tracker.token();
        let label = peer.peer_string();
        let failed_label = label.clone();
        ws.read_buffer_size(limits::WS_READ_BUFFER_SIZE)
            .write_buffer_size(limits::WS_WRITE_BUFFER_SIZE)
            .max_message_size(options.max_message_size)
            .max_frame_size(options.max_frame_size)
            .on_failed_upgrade(move |e| {
                debug!(peer = %failed_label, error = %e, "websocket: upgrade failed");
            })
            .on_upgrade(move |socket| async move {
                let info = TransportInfo {
                    channel_type: if secured.is_some() { ChannelType::Tls } else { peer.channel_type() },
                    framing: Framing::WebSocket,
                    serializer,
                    peer: label.clone(),
                    http_headers: Some(http_headers),
                    auth: self.auth.current(),
                    peer_cert: secured.and_then(|s| s.peer_cert.clone()),
                };
                debug!(conn = %label, protocol = serializer.ws_subprotocol(), "websocket: connection open");
                if let Some(control) = &control {
                    control.arm_message_timeout(self.message_timeout);
                }
                let (conn, rx) = self.router.connect(
                    info,
                    self.max_outgoing_queue_bytes,
                    self.auth.clone(),
                );
                let sock = WsSocket::new(socket, serializer, &self.service.options, control);
                let label = format!("websocket {label}");
                let closing = self.conns.closing.clone();
                drive(sock, conn, rx, closing, (opened, self.hello_timeout), label).await;
                drop(token);
            })
    }

    /// The answer to a request on the WebSocket path that is not a WebSocket upgrade.
    fn not_an_upgrade(&self, rejection: WebSocketUpgradeRejection) -> Response {
        let plain_http = matches!(
            rejection,
            WebSocketUpgradeRejection::MethodNotGet(_)
                | WebSocketUpgradeRejection::InvalidConnectionHeader(_)
                | WebSocketUpgradeRejection::InvalidUpgradeHeader(_)
        );
        let text = format!(
            "This is a WAMP WebSocket endpoint of the Turnstile router: connect with a WAMP client \
             using one of the WebSocket subprotocols {}.\n",
            self.accepted()
        );
        if plain_http {
            let upgrade = [(header::UPGRADE, HeaderValue::from_static("websocket"))];
            (StatusCode::UPGRADE_REQUIRED, upgrade, text).into_response()
        } else {
            let status = rejection.status();
            (
                status,
                format!("{text}Upgrade refused: {}\n", rejection.body_text()),
            )
                .into_response()
        }
    }
}

/// A control input of a WebSocket connection.
pub(crate) enum WsControl {
    /// Time to send an auto-ping.
    Ping,
}

/// An upgraded WebSocket carrying WAMP.
struct WsSocket {
    inner: WebSocket,
    binary: bool,
    max_message_size: usize,
    ping_interval: Option<Duration>,
    ping_timeout: Option<Duration>,
    /// When the next auto-ping is due.
    next_ping: Option<Instant>,
    /// When the connection is closed unless a pong arrives.
    pong_deadline: Option<Instant>,
    ping_seq: u64,
    /// When the socket was set up: a fixed instant for disabled timer branches.
    opened_at: Instant,
    /// The socket's switches (absent when served other than by `web::serve`).
    control: Option<Arc<SocketControl>>,
    /// Reading failed: tungstenite reads nothing more, so no close reply can be awaited.
    input_failed: bool,
}

impl WsSocket {
    fn new(
        inner: WebSocket,
        serializer: Serializer,
        options: &WebSocketOptions,
        control: Option<Arc<SocketControl>>,
    ) -> Self {
        let ms = |v: u64| (v > 0).then(|| Duration::from_millis(v));
        let ping_interval = ms(options.auto_ping_interval_ms);
        let opened_at = Instant::now();
        Self {
            inner,
            binary: serializer.is_binary(),
            max_message_size: options.max_message_size,
            ping_interval,
            ping_timeout: ms(options.auto_ping_timeout_ms),
            next_ping: ping_interval.map(|i| opened_at + i),
            opened_at,
            pong_deadline: None,
            ping_seq: 0,
            control,
            input_failed: false,
        }
    }

    /// A whole message or control frame was read: the completion deadline no longer runs.
    fn completed(&self) {
        if let Some(control) = &self.control {
            control.message_completed();
        }
    }

    /// A data message in the wrong kind of frame for this session's serializer: JSON travels in
    /// text frames, msgpack and CBOR in binary ones (WAMP's WebSocket transport). RFC 6455's
    /// 1003 says "cannot accept this type of data".
    fn wrong_frame_type(&self, got: &str) -> Incoming<WsControl> {
        let want = if self.binary { "binary" } else { "text" };
        let text = format!("{got} WebSocket frame on a session that uses {want} frames");
        Incoming::Violation {
            close: CloseReason {
                code: 1003,
                text: text.clone(),
            },
            text,
        }
    }

    fn error_input(&mut self, e: axum::Error) -> Incoming<WsControl> {
        self.input_failed = true;
        let e = match e.into_inner().downcast::<tungstenite::Error>() {
            Ok(e) => *e,
            Err(e) => return Incoming::Gone(format!("websocket error: {e}")),
        };
        match e {
            tungstenite::Error::Capacity(CapacityError::MessageTooLong { size, max_size }) => {
                let option = if max_size == self.max_message_size {
                    "max_message_size"
                } else {
                    "max_frame_size"
                };
                let text = format!(
                    "WebSocket message of {size} bytes exceeds this transport's {option} of {max_size} bytes"
                );
                Incoming::Violation {
                    close: CloseReason {
                        code: 1009,
                        text: text.clone(),
                    },
                    text,
                }
            }
            tungstenite::Error::Utf8(why) => {
                let text = format!("invalid UTF-8 in a WebSocket text message: {why}");
                Incoming::Violation {
                    close: CloseReason {
                        code: 1007,
                        text: text.clone(),
                    },
                    text,
                }
            }
            tungstenite::Error::Protocol(p) => Incoming::Close(CloseReason::protocol_error(
                format!("WebSocket protocol error: {p}"),
            )),
            tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed => {
                Incoming::Gone("closed".into())
            }
            tungstenite::Error::Io(e)
                if e.get_ref()
                    .is_some_and(|inner| inner.is::<MessageTimeout>()) =>
            {
                Incoming::Close(CloseReason::policy(format!("WebSocket {e}")))
            }
            other => Incoming::Gone(format!("websocket error: {other}")),
        }
    }
}

impl WampSocket for WsSocket {
    type Control = WsControl;

    async fn next(&mut self) -> Incoming<WsControl> {
        loop {
            let ping_at = self.next_ping;
            let pong_by = self.pong_deadline;
            // Disabled branches still build their future: a fixed instant keeps that free of
            // clock reads on every message.
            let far = || self.opened_at + Duration::from_secs(86400);
            tokio::select! {
                msg = self.inner.recv() => {
                    if let Some(Ok(_)) = msg {
                        self.completed();
                    }
                    match msg {
                        Some(Ok(Message::Text(text))) if !self.binary => {
                            return Incoming::Message(Bytes::from(text));
                        }
                        Some(Ok(Message::Binary(bin))) if self.binary => return Incoming::Message(bin),
                        Some(Ok(Message::Text(_))) => return self.wrong_frame_type("text"),
                        Some(Ok(Message::Binary(_))) => return self.wrong_frame_type("binary"),
                        // tungstenite answers pings itself.
                        Some(Ok(Message::Ping(_))) => {}
                        // Any pong proves the peer alive (RFC 6455 allows unsolicited ones).
                        Some(Ok(Message::Pong(_))) => self.pong_deadline = None,
                        Some(Ok(Message::Close(frame))) => {
                            // Send the close reply tungstenite queued.
                            let _ = tokio::time::timeout(limits::CLOSE_TIMEOUT, self.inner.flush()).await;
                            let why = match frame {
                                Some(f) => format!("closed by the peer ({} {})", f.code, f.reason.as_str()),
                                None => "closed by the peer".to_owned(),
                            };
                            return Incoming::Gone(why);
                        }
                        Some(Err(e)) => return self.error_input(e),
                        None => return Incoming::Gone("closed".into()),
                    }
                }
                _ = tokio::time::sleep_until(ping_at.unwrap_or_else(far)), if ping_at.is_some() => {
                    return Incoming::Control(WsControl::Ping);
                }
                _ = tokio::time::sleep_until(pong_by.unwrap_or_else(far)), if pong_by.is_some() => {
                    let ms = self.ping_timeout.unwrap_or_default().as_millis();
                    let text = format!("auto-ping timeout: no pong within {ms} ms");
                    return Incoming::Close(CloseReason::going_away(text));
                }
            }
        }
    }

    async fn control(&mut self, control: WsControl) -> Result<(), WriteError> {
        match control {
            WsControl::Ping => {
                let now = Instant::now();
                self.next_ping = self.ping_interval.map(|i| now + i);
                if let (Some(timeout), None) = (self.ping_timeout, self.pong_deadline) {
                    self.pong_deadline = Some(now + timeout);
                }
                self.ping_seq += 1;
                let payload = Bytes::copy_from_slice(&self.ping_seq.to_be_bytes());
                self.inner
                    .send(Message::Ping(payload))
                    .await
                    .map_err(|e| WriteError::Gone(format!("write failed: {e}")))
            }
        }
    }

    async fn write(&mut self, msg: Bytes) -> Result<(), WriteError> {
        let msg = if self.binary {
            Message::Binary(msg)
        } else {
            match Utf8Bytes::try_from(msg) {
                Ok(text) => Message::Text(text),
                Err(_) => {
                    // The JSON serializer only produces UTF-8; never send a broken text frame.
                    let reason = CloseReason {
                        code: 1011,
                        text: "internal error: non-UTF-8 JSON".into(),
                    };
                    return Err(WriteError::Close(reason));
                }
            }
        };
        self.inner
            .feed(msg)
            .await
            .map_err(|e| WriteError::Gone(format!("write failed: {e}")))
    }

    async fn flush(&mut self) -> Result<(), String> {
        self.inner
            .flush()
            .await
            .map_err(|e| format!("write failed: {e}"))
    }

    async fn close(&mut self, reason: &CloseReason) {
        let frame = CloseFrame {
            code: reason.code,
            reason: Utf8Bytes::from(truncate(&reason.text, 123)),
        };
        let input_failed = self.input_failed;
        let handshake = async {
            if self.inner.send(Message::Close(Some(frame))).await.is_err() {
                return false;
            }
            if input_failed {
                // tungstenite reads nothing after an error: no reply can be seen.
                return false;
            }
            // Wait for the client's close reply (tungstenite ends the stream then).
            loop {
                match self.inner.recv().await {
                    Some(Ok(_)) => {}
                    Some(Err(_)) => return false,
                    None => return true,
                }
            }
        };
        let completed = tokio::time::timeout(limits::CLOSE_TIMEOUT, handshake)
            .await
            .unwrap_or(false);
        if !completed {
            // Unread input may remain: dropping the socket must not reset the connection before
            // the client has read the close frame.
            if let Some(control) = &self.control {
                control.linger_on_close();
            }
        }
    }
}

/// `text` cut to at most `max` bytes on a character boundary (a close reason has 123).
fn truncate(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}
