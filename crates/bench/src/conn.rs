//! The benchmark's own thin connection: WebSocket (plain or over TLS) or RawSocket (TCP or
//! Unix), one serializer,
//! with buffered sending (many messages per system call, written when the buffer fills or
//! before the connection waits for input) and batched receiving.
//!
//! `turnstile_client::Transport` writes and flushes each message on its own and logs every
//! message it carries, which is right for tests and wrong for a load generator; the RawSocket
//! handshake and framing come from `turnstile_client::rawsocket`.

use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use bytes::{Bytes, BytesMut};
use futures_util::{FutureExt, SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{self, Message as WsMessage};
use tokio_tungstenite::WebSocketStream;
use turnstile_client::rawsocket::{self, FrameType, HandshakeReply};
use wamp_proto::{dict, Dict, Id, Message, Serializer, Value};

/// Bytes of outgoing RawSocket frames collected before they are written.
const WRITE_BUFFER: usize = 64 << 10;
/// Initial RawSocket read buffer (it grows for larger messages).
const READ_BUFFER: usize = 8 << 10;
/// WebSocket read chunk (tungstenite's default is 128 KiB per connection, too much for 10,000
/// sessions).
const WS_READ_BUFFER: usize = 8 << 10;

/// Where to connect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// `ws://host:port/path`, or `wss://host:port/path` (`tls`: over TLS, trusting the CA given
    /// to [`set_tls_ca`])
    WebSocket {
        url: String,
        host: String,
        port: u16,
        tls: bool,
    },
    /// `rs://host:port` or `tcp://host:port`
    RawTcp { host: String, port: u16 },
    /// `unix:///path`
    RawUnix(String),
}

impl Target {
    pub fn parse(url: &str) -> Result<Target> {
        let bad = || {
            anyhow!("invalid router URL {url:?}: expected ws://host:port/path, wss://host:port/path, rs://host:port or unix:///path")
        };
        let host_port = |authority: &str, default: Option<u16>| -> Result<(String, u16)> {
            let (host, port) = match authority.rsplit_once(':') {
                Some((h, p)) if !h.ends_with(']') || h.starts_with('[') => {
                    (h, p.parse::<u16>().map_err(|_| bad())?)
                }
                _ => (authority, default.ok_or_else(bad)?),
            };
            let host = host.trim_start_matches('[').trim_end_matches(']');
            if host.is_empty() {
                return Err(bad());
            }
            Ok((host.to_owned(), port))
        };
        let ws = url
            .strip_prefix("ws://")
            .map(|rest| (rest, false, 80))
            .or_else(|| url.strip_prefix("wss://").map(|rest| (rest, true, 443)));
        if let Some((rest, tls, default_port)) = ws {
            let authority = rest.split('/').next().unwrap_or("");
            let (host, port) = host_port(authority, Some(default_port))?;
            Ok(Target::WebSocket {
                url: url.to_owned(),
                host,
                port,
                tls,
            })
        } else if let Some(rest) = url
            .strip_prefix("rs://")
            .or_else(|| url.strip_prefix("tcp://"))
        {
            let authority = rest.trim_end_matches('/');
            if authority.contains('/') {
                return Err(bad());
            }
            let (host, port) = host_port(authority, None)?;
            Ok(Target::RawTcp { host, port })
        } else if let Some(path) = url.strip_prefix("unix://") {
            if path.is_empty() {
                return Err(bad());
            }
            Ok(Target::RawUnix(path.to_owned()))
        } else {
            Err(bad())
        }
    }

    /// The TCP port, if any.
    pub fn port(&self) -> Option<u16> {
        match self {
            Target::WebSocket { port, .. } | Target::RawTcp { port, .. } => Some(*port),
            Target::RawUnix(_) => None,
        }
    }

    /// `"websocket"` or `"rawsocket"`.
    pub fn framing(&self) -> &'static str {
        match self {
            Target::WebSocket { .. } => "websocket",
            _ => "rawsocket",
        }
    }
}

trait RawStream: AsyncRead + AsyncWrite + Unpin + Send + Sync {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + Sync> RawStream for T {}

enum Io {
    Raw {
        stream: Box<dyn RawStream>,
        read_buf: BytesMut,
        write_buf: Vec<u8>,
        max_recv: usize,
    },
    /// Plain TCP or TLS: one indirection per read or write, negligible next to the system call.
    Ws(Box<WebSocketStream<Box<dyn RawStream>>>),
}

/// The TLS client of `wss://` targets, set once by [`set_tls_ca`].
static TLS: std::sync::OnceLock<tokio_rustls::TlsConnector> = std::sync::OnceLock::new();

/// Trusts the CA certificate(s) in the PEM file `path` for `wss://` targets.
pub fn set_tls_ca(path: &std::path::Path) -> Result<()> {
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls::pki_types::CertificateDer::pem_file_iter(path)
        .with_context(|| format!("cannot read {}", path.display()))?
    {
        let cert = cert.with_context(|| format!("{}: invalid PEM", path.display()))?;
        roots
            .add(cert)
            .with_context(|| format!("{}: not a CA certificate", path.display()))?;
    }
    let config = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_root_certificates(roots)
    .with_no_client_auth();
    let _ = TLS.set(tokio_rustls::TlsConnector::from(std::sync::Arc::new(
        config,
    )));
    Ok(())
}

/// One connection to the router.
pub struct Conn {
    io: Io,
    serializer: Serializer,
    /// Messages were queued since the last flush.
    dirty: bool,
    encode_buf: Vec<u8>,
    /// The TCP socket, for [`Conn::reset`] (none over a Unix socket).
    tcp_fd: Option<std::os::fd::RawFd>,
}

impl std::fmt::Debug for Conn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Conn")
            .field("serializer", &self.serializer)
            .finish_non_exhaustive()
    }
}

/// HELLO.Details: the four client roles, anonymous authentication.
fn hello_details() -> Dict {
    let role = || Value::Dict(dict! {"features" => Value::Dict(Dict::new())});
    dict! {
        "roles" => Value::Dict(dict! {
            "publisher" => role(), "subscriber" => role(), "caller" => role(), "callee" => role(),
        }),
        "authmethods" => Value::List(vec!["anonymous".into()]),
        "agent" => "turnstile-bench",
    }
}

/// A short text for an ABORT/GOODBYE/ERROR's details: its `message`, if any.
fn details_message(details: &Dict) -> String {
    match details.get("message") {
        Some(Value::Str(m)) => format!(": {m}"),
        _ => String::new(),
    }
}

impl Conn {
    /// Connects and completes the transport handshake within `limit`.
    pub async fn connect(target: &Target, serializer: Serializer, limit: Duration) -> Result<Conn> {
        tokio::time::timeout(limit, Self::connect_inner(target, serializer))
            .await
            .map_err(|_| anyhow!("connecting to the router timed out after {limit:?}"))?
    }

    async fn connect_inner(target: &Target, serializer: Serializer) -> Result<Conn> {
        use std::os::fd::AsRawFd;
        let mut tcp_fd = None;
        let io = match target {
            Target::WebSocket {
                url,
                host,
                port,
                tls,
            } => {
                let stream = TcpStream::connect((host.as_str(), *port))
                    .await
                    .with_context(|| format!("cannot connect to {host}:{port}"))?;
                stream.set_nodelay(true)?;
                tcp_fd = Some(stream.as_raw_fd());
                let stream: Box<dyn RawStream> = if *tls {
                    let connector = TLS.get().ok_or_else(|| {
                        anyhow!(
                            "{url}: wss:// needs --ca-file (the CA of the router's certificate)"
                        )
                    })?;
                    let name = rustls::pki_types::ServerName::try_from(host.clone())
                        .with_context(|| format!("{url}: invalid TLS server name {host:?}"))?;
                    Box::new(
                        connector
                            .connect(name, stream)
                            .await
                            .with_context(|| format!("{url}: TLS handshake failed"))?,
                    )
                } else {
                    Box::new(stream)
                };
                Io::Ws(Box::new(ws_handshake(url, stream, serializer).await?))
            }
            Target::RawTcp { host, port } => {
                let stream = TcpStream::connect((host.as_str(), *port))
                    .await
                    .with_context(|| format!("cannot connect to {host}:{port}"))?;
                stream.set_nodelay(true)?;
                tcp_fd = Some(stream.as_raw_fd());
                raw_handshake(Box::new(stream), serializer).await?
            }
            Target::RawUnix(path) => {
                let stream = tokio::net::UnixStream::connect(path)
                    .await
                    .with_context(|| format!("cannot connect to the Unix socket {path}"))?;
                raw_handshake(Box::new(stream), serializer).await?
            }
        };
        Ok(Conn {
            io,
            serializer,
            dirty: false,
            encode_buf: Vec::with_capacity(256),
            tcp_fd,
        })
    }

    pub fn serializer(&self) -> Serializer {
        self.serializer
    }

    /// Queues one message; it is written when the buffer fills, on [`Conn::flush`], or before
    /// [`Conn::recv`] waits for input.
    pub async fn send(&mut self, msg: &Message) -> Result<()> {
        self.dirty = true;
        match &mut self.io {
            Io::Raw {
                stream, write_buf, ..
            } => {
                let start = write_buf.len();
                write_buf.extend_from_slice(&[0; rawsocket::HEADER_LEN]);
                self.serializer
                    .encode_into(msg, write_buf)
                    .map_err(|e| anyhow!("{e}"))?;
                let len = write_buf.len() - start - rawsocket::HEADER_LEN;
                let header = rawsocket::frame_header(FrameType::Message as u8, len)?;
                write_buf[start..start + rawsocket::HEADER_LEN].copy_from_slice(&header);
                if write_buf.len() >= WRITE_BUFFER {
                    stream.write_all(write_buf).await?;
                    write_buf.clear();
                }
            }
            Io::Ws(ws) => {
                self.encode_buf.clear();
                self.serializer
                    .encode_into(msg, &mut self.encode_buf)
                    .map_err(|e| anyhow!("{e}"))?;
                let frame = if self.serializer == Serializer::Json {
                    let text = std::str::from_utf8(&self.encode_buf)?;
                    WsMessage::text(text)
                } else {
                    WsMessage::binary(Bytes::copy_from_slice(&self.encode_buf))
                };
                ws.feed(frame).await.map_err(ws_error)?;
            }
        }
        Ok(())
    }

    /// Writes everything queued.
    pub async fn flush(&mut self) -> Result<()> {
        if !self.dirty {
            return Ok(());
        }
        self.dirty = false;
        match &mut self.io {
            Io::Raw {
                stream, write_buf, ..
            } => {
                if !write_buf.is_empty() {
                    stream.write_all(write_buf).await?;
                    write_buf.clear();
                }
                stream.flush().await?;
            }
            Io::Ws(ws) => ws.flush().await.map_err(ws_error)?,
        }
        Ok(())
    }

    /// The next message's payload; `None` once the router closed the connection. Writes what
    /// is queued before it waits for input. Cancel-safe as long as nothing is queued.
    pub async fn recv(&mut self) -> Result<Option<Bytes>> {
        loop {
            match &mut self.io {
                Io::Raw { .. } => {
                    if let Some(payload) = self.next_raw_frame()? {
                        return Ok(Some(payload));
                    }
                    if self.dirty {
                        self.flush().await?;
                        continue;
                    }
                    let Io::Raw {
                        stream, read_buf, ..
                    } = &mut self.io
                    else {
                        unreachable!("a RawSocket connection")
                    };
                    if read_buf.capacity() - read_buf.len() < 1024 {
                        read_buf.reserve(READ_BUFFER);
                    }
                    match stream.read_buf(read_buf).await {
                        Ok(0) if read_buf.is_empty() => return Ok(None),
                        Ok(0) => bail!("the router closed the connection in the middle of a frame"),
                        Ok(_) => {}
                        Err(e) if is_disconnect(&e) => return Ok(None),
                        Err(e) => return Err(e.into()),
                    }
                }
                Io::Ws(ws) => {
                    let item = if self.dirty {
                        match ws.next().now_or_never() {
                            Some(item) => item,
                            None => {
                                self.flush().await?;
                                continue;
                            }
                        }
                    } else {
                        ws.next().await
                    };
                    match item {
                        None => return Ok(None),
                        Some(Ok(WsMessage::Text(t))) => return Ok(Some(Bytes::from(t))),
                        Some(Ok(WsMessage::Binary(b))) => return Ok(Some(b)),
                        Some(Ok(WsMessage::Close(_))) => return Ok(None),
                        Some(Ok(_)) => {}
                        Some(Err(
                            tungstenite::Error::ConnectionClosed
                            | tungstenite::Error::AlreadyClosed
                            | tungstenite::Error::Protocol(
                                tungstenite::error::ProtocolError::ResetWithoutClosingHandshake,
                            ),
                        )) => return Ok(None),
                        Some(Err(tungstenite::Error::Io(e))) if is_disconnect(&e) => {
                            return Ok(None)
                        }
                        Some(Err(e)) => return Err(ws_error(e)),
                    }
                }
            }
        }
    }

    /// RawSocket: the next complete message frame already read, answering PINGs (the PONG is
    /// queued).
    fn next_raw_frame(&mut self) -> Result<Option<Bytes>> {
        let Io::Raw {
            read_buf,
            write_buf,
            max_recv,
            ..
        } = &mut self.io
        else {
            return Ok(None);
        };
        while let Some(frame) = rawsocket::decode_frame(read_buf, *max_recv)? {
            match frame.frame_type {
                FrameType::Message => return Ok(Some(frame.payload)),
                FrameType::Ping => {
                    let pong = rawsocket::encode_frame(FrameType::Pong, &frame.payload)?;
                    write_buf.extend_from_slice(&pong);
                    self.dirty = true;
                }
                FrameType::Pong => {}
            }
        }
        Ok(None)
    }

    /// The next message, decoded; an error if the connection closed.
    pub async fn recv_msg(&mut self) -> Result<Message> {
        let payload = self
            .recv()
            .await?
            .ok_or_else(|| anyhow!("the router closed the connection"))?;
        self.decode(&payload)
    }

    pub fn decode(&self, payload: &[u8]) -> Result<Message> {
        self.serializer
            .decode(payload)
            .map_err(|e| anyhow!("cannot decode a message from the router: {e}"))
    }

    /// HELLO; waits for WELCOME and returns the session id. A clear error on ABORT (for
    /// example a realm that does not exist or that anonymous may not join).
    pub async fn join(&mut self, realm: &str) -> Result<Id> {
        self.send(&Message::Hello {
            realm: realm.to_owned(),
            details: hello_details(),
        })
        .await?;
        self.flush().await?;
        match self.recv_msg().await? {
            Message::Welcome { session, .. } => Ok(session),
            Message::Abort {
                reason, details, ..
            } => bail!(
                "the router refused to join realm {realm:?}: ABORT {reason}{}",
                details_message(&details)
            ),
            Message::Challenge { authmethod, .. } => bail!(
                "the router asks for authentication ({authmethod}) on realm {realm:?}; the \
                 benchmark joins as anonymous"
            ),
            other => bail!("expected WELCOME, the router sent {}", other.name()),
        }
    }

    /// Sends a request and waits for its reply; anything else arriving meanwhile is an error
    /// (setup happens before any load).
    async fn request(&mut self, msg: Message, what: &str) -> Result<Message> {
        self.send(&msg).await?;
        self.flush().await?;
        match self.recv_msg().await? {
            Message::Error {
                error,
                details,
                args,
                ..
            } => bail!(
                "the router refused to {what}: ERROR {error}{}{}",
                details_message(&details),
                args.map(|a| format!(" {a:?}")).unwrap_or_default()
            ),
            Message::Goodbye { reason, details }
            | Message::Abort {
                reason, details, ..
            } => {
                bail!(
                    "the router closed the session when asked to {what}: {reason}{}",
                    details_message(&details)
                )
            }
            reply => Ok(reply),
        }
    }

    /// SUBSCRIBE; returns the subscription id.
    pub async fn subscribe(&mut self, request: Id, topic: &str) -> Result<Id> {
        let msg = Message::Subscribe {
            request,
            options: Dict::new(),
            topic: topic.to_owned(),
        };
        match self.request(msg, &format!("subscribe to {topic}")).await? {
            Message::Subscribed { subscription, .. } => Ok(subscription),
            other => bail!("expected SUBSCRIBED, the router sent {}", other.name()),
        }
    }

    /// REGISTER; returns the registration id.
    pub async fn register(&mut self, request: Id, procedure: &str) -> Result<Id> {
        let msg = Message::Register {
            request,
            options: Dict::new(),
            procedure: procedure.to_owned(),
        };
        match self.request(msg, &format!("register {procedure}")).await? {
            Message::Registered { registration, .. } => Ok(registration),
            other => bail!("expected REGISTERED, the router sent {}", other.name()),
        }
    }

    /// Sends GOODBYE and closes the connection without waiting for the reply.
    pub async fn goodbye_and_close(mut self) -> Result<()> {
        self.send(&Message::Goodbye {
            details: Dict::new(),
            reason: "wamp.close.close_realm".into(),
        })
        .await?;
        self.flush().await?;
        self.close().await
    }

    /// Closes the connection (a WebSocket close frame, or a RawSocket write shutdown).
    pub async fn close(&mut self) -> Result<()> {
        match &mut self.io {
            Io::Raw { stream, .. } => {
                let _ = stream.shutdown().await;
            }
            Io::Ws(ws) => {
                let _ = WebSocketStream::close(ws, None).await;
            }
        }
        Ok(())
    }
}

impl Conn {
    /// Drops the connection abruptly: no GOODBYE, no WebSocket close, and a TCP reset instead of
    /// an orderly close (`SO_LINGER` 0), as a crashed client or a broken network would.
    pub fn reset(self) {
        if let Some(fd) = self.tcp_fd {
            // The socket is still open: `self.io` owns it until the drop below.
            reset_on_close(fd);
        }
        drop(self);
    }
}

/// Makes closing TCP socket `fd` send a reset (`SO_LINGER` with a zero timeout), which also
/// leaves no TIME_WAIT behind. Closing does not block with a zero timeout.
pub fn reset_on_close(fd: std::os::fd::RawFd) {
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: setsockopt reads `size_of::<linger>()` bytes from a valid `linger`; on a bad or
    // closed descriptor it fails with EBADF and changes nothing.
    unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&linger as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        );
    }
}

fn ws_error(e: tungstenite::Error) -> anyhow::Error {
    anyhow!("WebSocket error: {e}")
}

fn is_disconnect(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(
        e.kind(),
        ConnectionReset | ConnectionAborted | BrokenPipe | UnexpectedEof
    )
}

async fn ws_handshake(
    url: &str,
    stream: Box<dyn RawStream>,
    serializer: Serializer,
) -> Result<WebSocketStream<Box<dyn RawStream>>> {
    let protocol = serializer.ws_subprotocol();
    let mut request = url
        .into_client_request()
        .map_err(|e| anyhow!("invalid WebSocket URL {url:?}: {e}"))?;
    request
        .headers_mut()
        .insert("Sec-WebSocket-Protocol", HeaderValue::from_static(protocol));
    let config = WebSocketConfig::default()
        .read_buffer_size(WS_READ_BUFFER)
        .write_buffer_size(64 << 10)
        .max_message_size(Some(64 << 20));
    let refused = |detail: String| {
        anyhow!(
            "the router at {url} does not accept the {} serializer over WebSocket (asked for \
             subprotocol {protocol}): {detail}",
            serializer.name()
        )
    };
    let (ws, response) =
        match tokio_tungstenite::client_async_with_config(request, stream, Some(config)).await {
            Ok(r) => r,
            Err(tungstenite::Error::Protocol(
                tungstenite::error::ProtocolError::SecWebSocketSubProtocolError(e),
            )) => return Err(refused(e.to_string())),
            Err(tungstenite::Error::Http(response)) => {
                let body = response
                    .body()
                    .as_deref()
                    .map(String::from_utf8_lossy)
                    .unwrap_or_default()
                    .trim()
                    .chars()
                    .take(200)
                    .collect::<String>();
                bail!(
                    "the WebSocket handshake with {url} failed: HTTP {} {body} (is the path \
                     right, and does the router accept subprotocol {protocol}?)",
                    response.status()
                )
            }
            Err(e) => bail!("the WebSocket handshake with {url} failed: {e}"),
        };
    let chosen = response
        .headers()
        .get("Sec-WebSocket-Protocol")
        .and_then(|v| v.to_str().ok());
    if chosen != Some(protocol) {
        return Err(refused(format!("it selected {chosen:?}")));
    }
    Ok(ws)
}

async fn raw_handshake(mut stream: Box<dyn RawStream>, serializer: Serializer) -> Result<Io> {
    let exponent = rawsocket::MAX_LENGTH_EXPONENT;
    stream
        .write_all(&rawsocket::handshake_request(exponent, serializer))
        .await?;
    stream.flush().await?;
    let mut reply = [0u8; 4];
    stream
        .read_exact(&mut reply)
        .await
        .context("the router closed the connection during the RawSocket handshake")?;
    match rawsocket::parse_handshake_reply(reply)? {
        HandshakeReply::Refused { code } => bail!(
            "the router refused the RawSocket handshake for the {} serializer: {} (error {code})",
            serializer.name(),
            rawsocket::refusal_reason(code)
        ),
        HandshakeReply::Accepted {
            serializer: echoed, ..
        } => {
            if echoed != serializer {
                bail!(
                    "asked for the {} serializer, the router's RawSocket handshake answered {}",
                    serializer.name(),
                    echoed.name()
                );
            }
            Ok(Io::Raw {
                stream,
                read_buf: BytesMut::with_capacity(READ_BUFFER),
                write_buf: Vec::new(),
                max_recv: rawsocket::max_message_size(exponent),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets() {
        assert_eq!(
            Target::parse("ws://127.0.0.1:8080/ws").unwrap(),
            Target::WebSocket {
                url: "ws://127.0.0.1:8080/ws".into(),
                host: "127.0.0.1".into(),
                port: 8080,
                tls: false
            }
        );
        assert_eq!(Target::parse("ws://localhost/ws").unwrap().port(), Some(80));
        assert_eq!(
            Target::parse("wss://localhost:8443/ws").unwrap(),
            Target::WebSocket {
                url: "wss://localhost:8443/ws".into(),
                host: "localhost".into(),
                port: 8443,
                tls: true
            }
        );
        assert_eq!(
            Target::parse("wss://localhost/ws").unwrap().port(),
            Some(443)
        );
        assert_eq!(
            Target::parse("rs://127.0.0.1:8081").unwrap(),
            Target::RawTcp {
                host: "127.0.0.1".into(),
                port: 8081
            }
        );
        assert_eq!(
            Target::parse("tcp://[::1]:9000/").unwrap(),
            Target::RawTcp {
                host: "::1".into(),
                port: 9000
            }
        );
        assert_eq!(
            Target::parse("unix:///tmp/r.sock").unwrap(),
            Target::RawUnix("/tmp/r.sock".into())
        );
        for bad in [
            "http://x",
            "ws://",
            "rs://host",
            "rs://a:1/b",
            "unix://",
            "x",
            "rs://:1",
        ] {
            assert!(Target::parse(bad).is_err(), "{bad}");
        }
    }
}
