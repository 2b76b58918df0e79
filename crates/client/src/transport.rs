//! One connection to a router: WebSocket or RawSocket (TCP or Unix), one serializer, sending and
//! receiving single WAMP messages, and the [`Traffic`] log of everything sent and received.
//!
//! URLs: `ws://host:port/path` (WebSocket, subprotocol `wamp.2.<serializer>`, text frames for
//! JSON and binary frames otherwise), `rs://host:port` or `tcp://host:port` (RawSocket over TCP),
//! `unix:///path/to.sock` (RawSocket over a Unix socket).
//!
//! Receiving is cancel-safe (a `recv` dropped by a timeout loses nothing), so it can be raced
//! against timers. RawSocket PINGs are answered with PONGs, WebSocket pings by tungstenite.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{self, Message as WsMessage};
use tokio_tungstenite::WebSocketStream;
use wamp_proto::{Message, Serializer};

use crate::error::{Error, Result};
use crate::rawsocket::{self, FrameType, HandshakeReply};
use crate::traffic::{Direction, Traffic, TrafficMark};

/// How a connection is opened.
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    /// RawSocket: the `LLLL` of the handshake, the largest message the client accepts
    /// (2^(9+L) bytes). Default 15 (16 MiB).
    pub rawsocket_max_length_exponent: u8,
    /// WebSocket: extra HTTP headers of the upgrade request.
    pub http_headers: Vec<(String, String)>,
    /// How long connecting and the transport handshake may take. Default 10 s.
    pub connect_timeout: Duration,
}

impl Default for ConnectOptions {
    fn default() -> Self {
        Self {
            rawsocket_max_length_exponent: rawsocket::MAX_LENGTH_EXPONENT,
            http_headers: Vec::new(),
            connect_timeout: Duration::from_secs(10),
        }
    }
}

/// Any byte stream a RawSocket runs on.
trait RawStream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> RawStream for T {}

struct RawSocket {
    stream: Box<dyn RawStream>,
    read_buf: BytesMut,
    /// The largest frame we accept (what our handshake announced).
    max_recv: usize,
    /// The largest message the router accepts (from its handshake reply).
    router_max: usize,
}

enum Inner {
    WebSocket(Box<WebSocketStream<TcpStream>>),
    RawSocket(RawSocket),
}

/// A connection to a router.
pub struct Transport {
    inner: Inner,
    serializer: Serializer,
    traffic: Traffic,
    /// The close frame the router sent, if any (WebSocket only).
    close_frame: Option<(u16, String)>,
    closed: bool,
}

impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transport")
            .field("framing", &self.framing())
            .field("serializer", &self.serializer)
            .field("closed", &self.closed)
            .finish_non_exhaustive()
    }
}

/// A parsed connection URL.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Target {
    WebSocket(String),
    RawTcp(String),
    RawUnix(String),
}

fn parse_url(url: &str) -> Result<Target> {
    let bad = || Error::InvalidUrl(url.to_owned());
    if let Some(rest) = url.strip_prefix("ws://") {
        let authority = rest.split('/').next().unwrap_or("");
        if authority.is_empty() {
            return Err(bad());
        }
        Ok(Target::WebSocket(url.to_owned()))
    } else if let Some(rest) = url
        .strip_prefix("rs://")
        .or_else(|| url.strip_prefix("tcp://"))
    {
        let addr = rest.trim_end_matches('/');
        if addr.is_empty() || addr.contains('/') {
            return Err(bad());
        }
        Ok(Target::RawTcp(addr.to_owned()))
    } else if let Some(path) = url.strip_prefix("unix://") {
        if path.is_empty() {
            return Err(bad());
        }
        Ok(Target::RawUnix(path.to_owned()))
    } else {
        Err(bad())
    }
}

impl Transport {
    /// Connects to `url` with `serializer` and default options.
    pub async fn connect(url: &str, serializer: Serializer) -> Result<Transport> {
        Self::connect_with(url, serializer, &ConnectOptions::default()).await
    }

    /// Connects to `url` with `serializer`.
    pub async fn connect_with(
        url: &str,
        serializer: Serializer,
        options: &ConnectOptions,
    ) -> Result<Transport> {
        let target = parse_url(url)?;
        let limit = options.connect_timeout;
        let inner = crate::timeout(limit, async {
            Ok(match target {
                Target::WebSocket(url) => {
                    Inner::WebSocket(Box::new(connect_ws(&url, serializer, options).await?))
                }
                Target::RawTcp(addr) => {
                    let stream = TcpStream::connect(&addr).await?;
                    stream.set_nodelay(true)?;
                    Inner::RawSocket(
                        rawsocket_handshake(Box::new(stream), serializer, options).await?,
                    )
                }
                Target::RawUnix(path) => {
                    let stream = connect_unix(&path).await?;
                    Inner::RawSocket(rawsocket_handshake(stream, serializer, options).await?)
                }
            })
        })
        .await?;
        Ok(Transport {
            inner,
            serializer,
            traffic: Traffic::default(),
            close_frame: None,
            closed: false,
        })
    }

    /// The serializer of this connection.
    pub fn serializer(&self) -> Serializer {
        self.serializer
    }

    /// `"websocket"` or `"rawsocket"`.
    pub fn framing(&self) -> &'static str {
        match self.inner {
            Inner::WebSocket(_) => "websocket",
            Inner::RawSocket(_) => "rawsocket",
        }
    }

    /// RawSocket: the largest message the router said it accepts.
    pub fn router_max_message_size(&self) -> Option<usize> {
        match &self.inner {
            Inner::RawSocket(r) => Some(r.router_max),
            Inner::WebSocket(_) => None,
        }
    }

    /// Whether the connection has been seen closed (or closed by us).
    pub fn is_closed(&self) -> bool {
        self.closed
    }

    /// The WebSocket close frame the router sent: code and reason.
    pub fn close_frame(&self) -> Option<&(u16, String)> {
        self.close_frame.as_ref()
    }

    // ----- traffic -----

    /// Everything sent and received so far.
    pub fn traffic(&self) -> &Traffic {
        &self.traffic
    }

    /// The current position in the traffic log.
    pub fn mark(&self) -> TrafficMark {
        self.traffic.mark()
    }

    /// The traffic after `mark`.
    pub fn traffic_since(&self, mark: TrafficMark) -> Traffic {
        self.traffic.since(mark)
    }

    /// Returns the log and starts a new, empty one.
    pub fn take_traffic(&mut self) -> Traffic {
        std::mem::take(&mut self.traffic)
    }

    // ----- sending -----

    /// Serializes and sends one message; it is recorded once written.
    pub async fn send(&mut self, msg: &Message) -> Result<()> {
        let bytes = self.serializer.encode(msg)?;
        self.write_payload(&bytes).await?;
        self.traffic
            .record(Direction::Sent, msg.code(), bytes.len());
        Ok(())
    }

    /// Sends `payload` as one WAMP transport message (a WebSocket message, text for JSON when it
    /// is valid UTF-8 and binary otherwise, or a RawSocket message frame) without checking or
    /// recording it: for protocol-violation tests.
    pub async fn send_raw(&mut self, payload: &[u8]) -> Result<()> {
        self.write_payload(payload).await
    }

    /// RawSocket only: sends a frame of any type (0..=7, reserved ones included) with `payload`,
    /// not recorded.
    pub async fn send_raw_frame(&mut self, frame_type: u8, payload: &[u8]) -> Result<()> {
        let Inner::RawSocket(r) = &mut self.inner else {
            return Err(Error::Unsupported(
                "RawSocket frames on a WebSocket connection",
            ));
        };
        let header = rawsocket::frame_header(frame_type, payload.len())?;
        r.stream.write_all(&header).await?;
        r.stream.write_all(payload).await?;
        r.stream.flush().await?;
        Ok(())
    }

    async fn write_payload(&mut self, payload: &[u8]) -> Result<()> {
        match &mut self.inner {
            Inner::WebSocket(ws) => {
                let msg = match (self.serializer, std::str::from_utf8(payload)) {
                    (Serializer::Json, Ok(text)) => WsMessage::text(text),
                    _ => WsMessage::binary(Bytes::copy_from_slice(payload)),
                };
                ws.send(msg).await?;
            }
            Inner::RawSocket(r) => {
                let header = rawsocket::frame_header(FrameType::Message as u8, payload.len())?;
                let mut frame = Vec::with_capacity(payload.len() + rawsocket::HEADER_LEN);
                frame.extend_from_slice(&header);
                frame.extend_from_slice(payload);
                r.stream.write_all(&frame).await?;
                r.stream.flush().await?;
            }
        }
        Ok(())
    }

    // ----- receiving -----

    /// The next WAMP message, decoded and recorded; `None` once the connection is closed.
    /// Cancel-safe.
    pub async fn recv(&mut self) -> Result<Option<Message>> {
        let Some(payload) = self.recv_raw().await? else {
            return Ok(None);
        };
        let msg = self.serializer.decode(&payload)?;
        self.traffic
            .record(Direction::Received, msg.code(), payload.len());
        Ok(Some(msg))
    }

    /// [`Transport::recv`] for at most `limit`: [`Error::Timeout`] after that.
    pub async fn recv_timeout(&mut self, limit: Duration) -> Result<Option<Message>> {
        crate::timeout(limit, self.recv()).await
    }

    /// The next WAMP transport message's payload as received, not decoded and not recorded;
    /// `None` once the connection is closed. Cancel-safe.
    pub async fn recv_raw(&mut self) -> Result<Option<Bytes>> {
        if self.closed {
            return Ok(None);
        }
        let r = match &mut self.inner {
            Inner::WebSocket(ws) => recv_ws(ws, &mut self.close_frame).await,
            Inner::RawSocket(r) => recv_rawsocket(r).await,
        };
        if matches!(r, Ok(None)) {
            self.closed = true;
        }
        r
    }

    /// Closes the connection: a WebSocket close handshake (waiting at most 1 s for the
    /// router's close), or a RawSocket write shutdown. To drop a connection abruptly, drop the
    /// transport instead.
    pub async fn close(&mut self) -> Result<()> {
        if self.closed {
            return Ok(());
        }
        self.closed = true;
        match &mut self.inner {
            Inner::WebSocket(ws) => {
                let _ = WebSocketStream::close(ws, None).await;
                let drain = async { while let Some(Ok(_)) = ws.next().await {} };
                let _ = tokio::time::timeout(Duration::from_secs(1), drain).await;
            }
            Inner::RawSocket(r) => {
                let _ = r.stream.shutdown().await;
            }
        }
        Ok(())
    }
}

async fn connect_ws(
    url: &str,
    serializer: Serializer,
    options: &ConnectOptions,
) -> Result<WebSocketStream<TcpStream>> {
    let mut request = url.into_client_request()?;
    let protocol = serializer.ws_subprotocol();
    let headers = request.headers_mut();
    headers.insert("Sec-WebSocket-Protocol", HeaderValue::from_static(protocol));
    for (name, value) in &options.http_headers {
        let name = tungstenite::http::HeaderName::from_bytes(name.as_bytes())
            .map_err(|e| Error::Handshake(format!("bad header name {name:?}: {e}")))?;
        let value = HeaderValue::from_str(value)
            .map_err(|e| Error::Handshake(format!("bad header value {value:?}: {e}")))?;
        headers.insert(name, value);
    }
    let host = request
        .uri()
        .host()
        .ok_or_else(|| Error::InvalidUrl(url.to_owned()))?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    let port = request.uri().port_u16().unwrap_or(80);
    let stream = TcpStream::connect((host.as_str(), port)).await?;
    stream.set_nodelay(true)?;
    let config = WebSocketConfig::default().max_message_size(Some(64 << 20));
    let (ws, response) =
        tokio_tungstenite::client_async_with_config(request, stream, Some(config)).await?;
    let chosen = response
        .headers()
        .get("Sec-WebSocket-Protocol")
        .and_then(|v| v.to_str().ok());
    if chosen != Some(protocol) {
        return Err(Error::Handshake(format!(
            "asked for subprotocol {protocol}, the router selected {chosen:?}"
        )));
    }
    Ok(ws)
}

#[cfg(unix)]
async fn connect_unix(path: &str) -> Result<Box<dyn RawStream>> {
    Ok(Box::new(tokio::net::UnixStream::connect(path).await?))
}

#[cfg(not(unix))]
async fn connect_unix(_path: &str) -> Result<Box<dyn RawStream>> {
    Err(Error::Unsupported("Unix sockets on this platform"))
}

async fn rawsocket_handshake(
    mut stream: Box<dyn RawStream>,
    serializer: Serializer,
    options: &ConnectOptions,
) -> Result<RawSocket> {
    let exponent = options
        .rawsocket_max_length_exponent
        .min(rawsocket::MAX_LENGTH_EXPONENT);
    stream
        .write_all(&rawsocket::handshake_request(exponent, serializer))
        .await?;
    stream.flush().await?;
    let mut reply = [0u8; 4];
    stream.read_exact(&mut reply).await?;
    match rawsocket::parse_handshake_reply(reply)? {
        HandshakeReply::Refused { code } => Err(Error::RawSocketRefused {
            code,
            reason: rawsocket::refusal_reason(code),
        }),
        HandshakeReply::Accepted {
            serializer: echoed,
            max_message_size,
        } => {
            if echoed != serializer {
                return Err(Error::Framing(format!(
                    "asked for serializer {}, the router echoed {}",
                    serializer.name(),
                    echoed.name()
                )));
            }
            Ok(RawSocket {
                stream,
                read_buf: BytesMut::with_capacity(16 << 10),
                max_recv: rawsocket::max_message_size(exponent),
                router_max: max_message_size,
            })
        }
    }
}

/// Whether an I/O error means the peer is gone (treated as the end of the connection).
fn is_disconnect(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(
        e.kind(),
        ConnectionReset | ConnectionAborted | BrokenPipe | UnexpectedEof
    )
}

async fn recv_ws(
    ws: &mut WebSocketStream<TcpStream>,
    close_frame: &mut Option<(u16, String)>,
) -> Result<Option<Bytes>> {
    use tungstenite::error::ProtocolError;
    loop {
        match ws.next().await {
            None => return Ok(None),
            Some(Ok(WsMessage::Text(t))) => return Ok(Some(Bytes::from(t))),
            Some(Ok(WsMessage::Binary(b))) => return Ok(Some(b)),
            Some(Ok(WsMessage::Close(frame))) => {
                if let Some(f) = frame {
                    *close_frame = Some((u16::from(f.code), f.reason.to_string()));
                }
            }
            Some(Ok(_)) => {}
            Some(Err(
                tungstenite::Error::ConnectionClosed
                | tungstenite::Error::AlreadyClosed
                | tungstenite::Error::Protocol(ProtocolError::ResetWithoutClosingHandshake),
            )) => return Ok(None),
            Some(Err(tungstenite::Error::Io(e))) if is_disconnect(&e) => return Ok(None),
            Some(Err(e)) => return Err(e.into()),
        }
    }
}

async fn recv_rawsocket(r: &mut RawSocket) -> Result<Option<Bytes>> {
    loop {
        while let Some(frame) = rawsocket::decode_frame(&mut r.read_buf, r.max_recv)? {
            match frame.frame_type {
                FrameType::Message => return Ok(Some(frame.payload)),
                FrameType::Ping => {
                    let pong = rawsocket::encode_frame(FrameType::Pong, &frame.payload)?;
                    r.stream.write_all(&pong).await?;
                    r.stream.flush().await?;
                }
                FrameType::Pong => {}
            }
        }
        match r.stream.read_buf(&mut r.read_buf).await {
            Ok(0) if r.read_buf.is_empty() => return Ok(None),
            Ok(0) => {
                return Err(Error::Framing(format!(
                    "connection closed in the middle of a frame ({} bytes pending)",
                    r.read_buf.len()
                )))
            }
            Ok(_) => {}
            Err(e) if is_disconnect(&e) => return Ok(None),
            Err(e) => return Err(e.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert_eq!(
            parse_url("ws://127.0.0.1:8080/ws").unwrap(),
            Target::WebSocket("ws://127.0.0.1:8080/ws".into())
        );
        assert_eq!(
            parse_url("rs://127.0.0.1:8081").unwrap(),
            Target::RawTcp("127.0.0.1:8081".into())
        );
        assert_eq!(
            parse_url("tcp://localhost:1/").unwrap(),
            Target::RawTcp("localhost:1".into())
        );
        assert_eq!(
            parse_url("unix:///tmp/x.sock").unwrap(),
            Target::RawUnix("/tmp/x.sock".into())
        );
        for bad in ["http://x", "ws://", "rs://", "rs://a/b", "unix://", "x"] {
            assert!(parse_url(bad).is_err(), "{bad}");
        }
    }
}
