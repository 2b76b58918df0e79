//! WAMP RawSocket over TCP and Unix sockets: the accept loop of a `rawsocket` transport, and
//! each connection's handshake, buffering and deadlines around the sans-IO codec of
//! [`wamp_proto::rawsocket`].

use std::sync::Arc;
use std::time::Duration;

use axum::serve::Listener;
use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::Instant;
use tracing::{debug, warn};
use wamp_proto::rawsocket::{
    self as codec, Check, FrameError, FrameHeader, FrameType, HandshakeError, HandshakeReply,
    HandshakeRequest, Refusal, HEADER_LEN,
};
use wamp_proto::{uris, Message, Serializer};

use crate::limits;
use crate::runtime::router::Router;
use crate::transport::driver::{drive, Conns, Incoming, WampSocket, WriteError};
use crate::transport::listener::{PeerAddr, SplitStream};
use crate::transport::tls::{Secured, ServerTls};
use turnstile_core::peer::{ChannelType, CloseReason, Framing, TransportInfo};

/// What a `rawsocket` transport accepts.
#[derive(Debug, Clone)]
pub(crate) struct RawSocketService {
    pub serializers: Vec<Serializer>,
    pub max_message_size: usize,
    /// The transport's `auth` configuration (holding `None`: anonymous with role `anonymous`).
    pub auth: crate::transport::AuthSlot,
    /// The handshake and frame deadlines (the named limits unless a test shortens them).
    pub timeouts: limits::RawSocketTimeouts,
    /// From connecting to WELCOME ([`limits::HANDSHAKE_TIMEOUT`] or the server's replacement).
    pub hello_timeout: Duration,
    /// [`limits::MAX_OUTGOING_QUEUE_BYTES`] or the server's replacement.
    pub max_outgoing_queue_bytes: usize,
}

impl RawSocketService {
    /// `LLLL` of our handshake reply: the largest L with 2^(9+L) <= max_message_size.
    pub(crate) fn max_length_exponent(&self) -> u8 {
        codec::length_exponent(self.max_message_size)
    }
}

/// Accepts connections until `stop` is cancelled, serving each in its own task. With `tls`,
/// each connection first completes a TLS handshake; its deadline is the RawSocket handshake's,
/// counted from the accept (a client that does not speak TLS is closed).
pub(crate) async fn serve<L>(
    mut listener: L,
    router: Arc<Router>,
    service: Arc<RawSocketService>,
    conns: Conns,
    stop: tokio_util::sync::CancellationToken,
    tls: Option<ServerTls>,
) where
    L: Listener<Addr = PeerAddr>,
    L::Io: SplitStream + AsyncRead + AsyncWrite + Unpin,
    <L::Io as SplitStream>::Read: WaitReadable,
{
    loop {
        let (io, peer) = tokio::select! {
            _ = stop.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        let opened = Instant::now();
        let router = router.clone();
        let service = service.clone();
        let closing = conns.closing.clone();
        let tls = tls.clone();
        conns.tracker.spawn(async move {
            let Some(tls) = tls else {
                let (read, write) = io.split_halves();
                let conn = Accepted { peer, opened, secured: None };
                return serve_connection(read, write, conn, router, &service, closing).await;
            };
            let handshake = tokio::select! {
                r = tls.accept(io, opened + service.timeouts.handshake) => r,
                _ = closing.cancelled() => return,
            };
            match handshake {
                Ok((stream, secured)) => {
                    let (read, write) = tokio::io::split(stream);
                    let conn = Accepted { peer, opened, secured: Some(secured) };
                    serve_connection(TlsRead(read), write, conn, router, &service, closing).await;
                }
                Err(why) => debug!(conn = %peer.peer_string(), reason = %why, "rawsocket: tls: connection closed"),
            }
        });
    }
}

/// An accepted connection: who, since when, and over TLS or not.
pub(crate) struct Accepted {
    pub peer: PeerAddr,
    /// When the connection was accepted: the handshake deadlines count from here.
    pub opened: Instant,
    /// The TLS session, on a TLS endpoint.
    pub secured: Option<Secured>,
}

/// The read half of a TLS connection. rustls may hold decrypted input the socket no longer
/// shows, so readiness cannot be asked of the socket: such a connection always has a read
/// buffer ([`limits::RAWSOCKET_READ_BUFFER_SIZE`]) while it waits, besides rustls' own.
pub(crate) struct TlsRead<S>(tokio::io::ReadHalf<tokio_rustls::server::TlsStream<S>>);

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for TlsRead<S> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin + Send> WaitReadable for TlsRead<S> {
    fn readable(&self) -> impl std::future::Future<Output = std::io::Result<()>> + Send + '_ {
        std::future::ready(Ok(()))
    }
}

/// The read half of a connection, which can wait for input before a buffer is given to it: an
/// idle RawSocket connection holds no read buffer.
pub(crate) trait WaitReadable: tokio::io::AsyncRead + Unpin + Send {
    /// Completes when a read is likely to find input (or EOF, or an error). Cancel-safe.
    fn readable(&self) -> impl std::future::Future<Output = std::io::Result<()>> + Send + '_;
}

impl WaitReadable for tokio::net::tcp::OwnedReadHalf {
    fn readable(&self) -> impl std::future::Future<Output = std::io::Result<()>> + Send + '_ {
        tokio::net::tcp::OwnedReadHalf::readable(self)
    }
}

impl WaitReadable for tokio::net::unix::OwnedReadHalf {
    fn readable(&self) -> impl std::future::Future<Output = std::io::Result<()>> + Send + '_ {
        tokio::net::unix::OwnedReadHalf::readable(self)
    }
}

/// An admitted socket (holding its admission slot) waits as the socket inside it does.
impl<S: WaitReadable + Sync> WaitReadable for crate::transport::admission::Admitted<S> {
    fn readable(&self) -> impl std::future::Future<Output = std::io::Result<()>> + Send + '_ {
        self.get_ref().readable()
    }
}

/// Runs one RawSocket connection: handshake, then the WAMP session(s) it carries.
pub(crate) async fn serve_connection<R, W>(
    mut read: R,
    mut write: W,
    accepted: Accepted,
    router: Arc<Router>,
    service: &RawSocketService,
    closing: tokio_util::sync::CancellationToken,
) where
    R: WaitReadable,
    W: AsyncWrite + Unpin + Send,
{
    let Accepted {
        peer,
        opened,
        secured,
    } = accepted;
    let label = peer.peer_string();
    let mut hello = [0u8; 4];
    let handshake_timeout = service.timeouts.handshake;
    let read_hello =
        tokio::time::timeout_at(opened + handshake_timeout, read.read_exact(&mut hello));
    let handshake = tokio::select! {
        r = read_hello => r,
        _ = closing.cancelled() => return,
    };
    match handshake {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => {
            debug!(conn = %label, error = %e, "rawsocket: connection closed during handshake");
            return;
        }
        Err(_) => {
            debug!(conn = %label, "rawsocket: no handshake within {handshake_timeout:?}; closing");
            return;
        }
    }
    let (serializer, client_max_len) = match check_handshake(hello, service) {
        Ok(v) => v,
        Err(Refused::NotRawSocket(e)) => {
            debug!(conn = %label, "rawsocket: {e}; closing");
            linger_close(&mut read, &mut write).await;
            return;
        }
        Err(Refused::Reply(refusal, why)) => {
            debug!(conn = %label, "rawsocket: handshake refused: {why}");
            let reply = HandshakeReply::refuse(refusal);
            let _ = tokio::time::timeout(limits::CLOSE_TIMEOUT, write.write_all(&reply)).await;
            linger_close(&mut read, &mut write).await;
            return;
        }
    };
    let reply = HandshakeReply::accept(service.max_length_exponent(), serializer);
    if let Err(e) = write.write_all(&reply).await {
        debug!(conn = %label, error = %e, "rawsocket: connection lost during handshake");
        return;
    }
    debug!(conn = %label, serializer = serializer.name(), client_max_len, "rawsocket: connection open");

    let info = TransportInfo {
        channel_type: match secured {
            Some(_) => ChannelType::Tls,
            None => peer.channel_type(),
        },
        framing: Framing::RawSocket,
        serializer,
        peer: label.clone(),
        http_headers: None,
        auth: service.auth.current(),
        peer_cert: secured.and_then(|s| s.peer_cert),
    };
    let (conn, rx) = router.connect(info, service.max_outgoing_queue_bytes, service.auth.clone());
    let sock = RawSocket {
        read,
        write,
        read_buf: BytesMut::new(),
        max_len: service.max_message_size.min(codec::MAX_FRAME_LEN),
        frame_timeout: service.timeouts.frame_completion,
        frame_deadline: None,
        write_buf: Vec::new(),
        client_max_len: client_max_len.min(codec::MAX_FRAME_LEN),
        serializer,
        label: label.clone(),
    };
    drive(
        sock,
        conn,
        rx,
        closing,
        (opened, service.hello_timeout),
        format!("rawsocket {label}"),
    )
    .await;
}

/// Why a handshake is not accepted.
enum Refused {
    /// Not a RawSocket client at all: closed without a reply.
    NotRawSocket(HandshakeError),
    /// Refused with this error code; the text is for the log.
    Reply(Refusal, String),
}

/// The serializer and the client's maximum receive length, or why the handshake is refused.
fn check_handshake(
    hello: [u8; 4],
    service: &RawSocketService,
) -> Result<(Serializer, usize), Refused> {
    let request = match HandshakeRequest::decode(hello) {
        Ok(r) => r,
        Err(e @ HandshakeError::ReservedOctets(..)) => {
            return Err(Refused::Reply(Refusal::ReservedBits, e.to_string()))
        }
        Err(e) => return Err(Refused::NotRawSocket(e)),
    };
    let serializer = match request.serializer() {
        Some(s) if service.serializers.contains(&s) => s,
        _ => {
            let offered: Vec<String> = service
                .serializers
                .iter()
                .map(|s| format!("{} ({})", s.rawsocket_id(), s.name()))
                .collect();
            let why = format!(
                "serializer {} unsupported; this endpoint accepts {}",
                request.serializer_id,
                offered.join(", ")
            );
            return Err(Refused::Reply(Refusal::SerializerUnsupported, why));
        }
    };
    let client_max_len = request.max_message_size();
    if client_max_len < limits::RAWSOCKET_MIN_CLIENT_MAX_MESSAGE_SIZE {
        let why = format!(
            "the client accepts messages of at most {client_max_len} bytes; the router needs at \
             least {} (RAWSOCKET_MIN_CLIENT_MAX_MESSAGE_SIZE) to send WELCOME",
            limits::RAWSOCKET_MIN_CLIENT_MAX_MESSAGE_SIZE
        );
        return Err(Refused::Reply(Refusal::MaxLengthUnacceptable, why));
    }
    Ok((serializer, client_max_len))
}

/// A RawSocket connection after the handshake.
struct RawSocket<R, W> {
    read: R,
    write: W,
    /// Received bytes not handed on yet: the start of the next frame, if any. Unallocated
    /// while the connection waits between frames.
    read_buf: BytesMut,
    /// The largest frame payload we accept (the transport's `max_message_size`).
    max_len: usize,
    /// How long a frame may take once its header is in.
    frame_timeout: Duration,
    /// When the frame whose header is in `read_buf` must be complete.
    frame_deadline: Option<Instant>,
    /// Outgoing frames collected until the next flush; no allocation between batches.
    write_buf: Vec<u8>,
    /// What the client said it can receive (capped at what a frame can carry).
    client_max_len: usize,
    serializer: Serializer,
    label: String,
}

impl<R, W> RawSocket<R, W>
where
    R: WaitReadable,
    W: AsyncWrite + Unpin + Send,
{
    /// Queues one frame; a frame that does not fit the write buffer's threshold is written to
    /// the socket directly (after what is queued).
    async fn write_frame(&mut self, frame_type: FrameType, payload: &[u8]) -> Result<(), String> {
        let header = FrameHeader::new(frame_type, payload.len())
            .encode()
            .map_err(|e| format!("cannot frame an outgoing message: {e}"))?;
        let size = HEADER_LEN + payload.len();
        if self.write_buf.len() + size > limits::RAWSOCKET_WRITE_BUFFER_SIZE {
            self.write_out().await?;
            if size > limits::RAWSOCKET_WRITE_BUFFER_SIZE {
                let io = |e: std::io::Error| format!("write failed: {e}");
                self.write.write_all(&header).await.map_err(io)?;
                return self.write.write_all(payload).await.map_err(io);
            }
        }
        self.write_buf.extend_from_slice(&header);
        self.write_buf.extend_from_slice(payload);
        Ok(())
    }

    /// Writes the collected frames to the socket and releases the buffer.
    async fn write_out(&mut self) -> Result<(), String> {
        if self.write_buf.is_empty() {
            return Ok(());
        }
        let buf = std::mem::take(&mut self.write_buf);
        self.write
            .write_all(&buf)
            .await
            .map_err(|e| format!("write failed: {e}"))
    }

    /// An outgoing message larger than the client accepts: queues ABORT
    /// `wamp.error.payload_size_exceeded` if that fits, and says to close.
    fn message_too_large(&mut self, len: usize) -> WriteError {
        let text = format!(
            "outgoing message of {len} bytes exceeds the {} bytes the client accepts (its RawSocket handshake)",
            self.client_max_len
        );
        let abort = Message::abort(uris::PAYLOAD_SIZE_EXCEEDED, &text);
        let sent_abort = match self.serializer.encode(&abort) {
            Ok(bytes) if bytes.len() <= self.client_max_len => {
                let header = FrameHeader::new(FrameType::Message, bytes.len()).encode();
                if let Ok(header) = header {
                    self.write_buf.extend_from_slice(&header);
                    self.write_buf.extend_from_slice(&bytes);
                }
                true
            }
            _ => false,
        };
        warn!(conn = %self.label, sent_abort, "rawsocket: {text}; closing the connection");
        WriteError::Close(CloseReason { code: 1009, text })
    }

    fn frame_error_text(&self, e: FrameError) -> String {
        match e {
            FrameError::TooLong { len, max } => format!(
                "RawSocket frame of {len} bytes exceeds this transport's max_message_size of {max} bytes"
            ),
            FrameError::ReservedBits(b) => {
                format!("RawSocket frame header {b:#04x} uses reserved bits")
            }
            FrameError::UnknownType(t) => format!("RawSocket frame of unknown type {t}"),
        }
    }
}

impl<R, W> WampSocket for RawSocket<R, W>
where
    R: WaitReadable,
    W: AsyncWrite + Unpin + Send,
{
    type Control = Bytes;

    /// Cancel-safe: what was read stays in `read_buf`, the frame deadline in `frame_deadline`.
    /// Between frames no read buffer is held: the socket is read once it has input.
    async fn next(&mut self) -> Incoming<Bytes> {
        loop {
            match codec::check_frame(&self.read_buf, self.max_len) {
                Ok(Check::Frame(header)) => {
                    self.frame_deadline = None;
                    self.read_buf.advance(HEADER_LEN);
                    let payload = self.read_buf.split_to(header.len).freeze();
                    match header.frame_type {
                        FrameType::Message => return Incoming::Message(payload),
                        FrameType::Ping => return Incoming::Control(payload),
                        // A PONG answers a PING we never send; ignore it.
                        FrameType::Pong => continue,
                    }
                }
                Ok(Check::Incomplete { header }) => {
                    if header.is_some() && self.frame_deadline.is_none() {
                        self.frame_deadline = Some(Instant::now() + self.frame_timeout);
                    }
                    if self.read_buf.is_empty() {
                        // Between frames: wait for input without holding a buffer.
                        self.read_buf = BytesMut::new();
                        if let Err(e) = self.read.readable().await {
                            return Incoming::Gone(format!("read failed: {e}"));
                        }
                    }
                    let missing = HEADER_LEN + header.map_or(0, |h| h.len) - self.read_buf.len();
                    // Grow with what arrives (at most doubling), not with what a header
                    // announces: a header alone must not make the router allocate its payload.
                    let chunk = limits::RAWSOCKET_READ_BUFFER_SIZE;
                    self.read_buf
                        .reserve(missing.clamp(chunk, chunk.max(self.read_buf.len())));
                }
                Err(e) => {
                    let text = self.frame_error_text(e);
                    let close = CloseReason::protocol_error(text.clone());
                    return Incoming::Violation { text, close };
                }
            }
            let read = self.read.read_buf(&mut self.read_buf);
            let read = match self.frame_deadline {
                Some(deadline) => match tokio::time::timeout_at(deadline, read).await {
                    Ok(r) => r,
                    Err(_) => {
                        let announced = self
                            .read_buf
                            .first_chunk::<HEADER_LEN>()
                            .map_or(0, |h| FrameHeader::decode(*h).map_or(0, |h| h.len));
                        let text = format!(
                            "RawSocket frame not complete within {:?} of its header ({} of {announced} bytes received)",
                            self.frame_timeout,
                            self.read_buf.len().saturating_sub(HEADER_LEN),
                        );
                        return Incoming::Close(CloseReason::policy(text));
                    }
                },
                None => read.await,
            };
            match read {
                Ok(0) => return Incoming::Gone("closed by the peer".into()),
                Ok(_) => {}
                Err(e) => return Incoming::Gone(format!("read failed: {e}")),
            }
        }
    }

    async fn control(&mut self, ping: Bytes) -> Result<(), WriteError> {
        self.write_frame(FrameType::Pong, &ping)
            .await
            .map_err(WriteError::Gone)?;
        self.flush().await.map_err(WriteError::Gone)
    }

    async fn write(&mut self, msg: Bytes) -> Result<(), WriteError> {
        if msg.len() > self.client_max_len {
            return Err(self.message_too_large(msg.len()));
        }
        self.write_frame(FrameType::Message, &msg)
            .await
            .map_err(WriteError::Gone)
    }

    async fn flush(&mut self) -> Result<(), String> {
        self.write_out().await?;
        self.write
            .flush()
            .await
            .map_err(|e| format!("write failed: {e}"))
    }

    async fn close(&mut self, _reason: &CloseReason) {
        linger_close(&mut self.read, &mut self.write).await;
    }
}

/// Bytes read and discarded, at most, while closing gracefully.
const LINGER_MAX_BYTES: usize = 64 << 10;

/// Closes our side (FIN) and reads, discarding, until the client closes too (bounded in time and
/// bytes). Closing a socket with unread input makes the kernel send a reset, which can destroy
/// our last words (a handshake refusal, an ABORT) before the client reads them.
async fn linger_close<R, W>(read: &mut R, write: &mut W)
where
    R: tokio::io::AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let linger = async {
        if write.shutdown().await.is_err() {
            return;
        }
        let mut buf = [0u8; 4096];
        let mut discarded = 0;
        while discarded < LINGER_MAX_BYTES {
            match read.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => discarded += n,
            }
        }
    };
    let _ = tokio::time::timeout(limits::CLOSE_TIMEOUT, linger).await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{DuplexStream, ReadHalf, WriteHalf};

    type Sock = RawSocket<ReadHalf<DuplexStream>, WriteHalf<DuplexStream>>;

    /// A pipe cannot say; the read itself waits.
    impl WaitReadable for ReadHalf<DuplexStream> {
        async fn readable(&self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// A RawSocket connection over an in-memory pipe, and the client's end of it.
    fn socket(client_max_len: usize, frame_timeout: Duration) -> (Sock, DuplexStream) {
        let (ours, theirs) = tokio::io::duplex(1 << 20);
        let (read, write) = tokio::io::split(ours);
        let sock = RawSocket {
            read,
            write,
            read_buf: BytesMut::new(),
            max_len: 65536,
            frame_timeout,
            frame_deadline: None,
            write_buf: Vec::new(),
            client_max_len,
            serializer: Serializer::Json,
            label: "test".into(),
        };
        (sock, theirs)
    }

    async fn read_frame(s: &mut DuplexStream) -> (u8, Vec<u8>) {
        let mut h = [0u8; 4];
        s.read_exact(&mut h).await.unwrap();
        let len = FrameHeader::decode(h).unwrap().len;
        let mut payload = vec![0; len];
        s.read_exact(&mut payload).await.unwrap();
        (h[0], payload)
    }

    #[tokio::test]
    async fn the_write_buffer_is_released_after_each_flush() {
        let (mut sock, mut client) = socket(65536, limits::FRAME_COMPLETION_TIMEOUT);
        for i in 0..3u8 {
            assert!(sock.write(Bytes::from(vec![b'0' + i; 10])).await.is_ok());
        }
        assert_eq!(sock.write_buf.len(), 3 * 14, "collected until the flush");
        sock.flush().await.unwrap();
        assert_eq!(
            sock.write_buf.capacity(),
            0,
            "no buffer held between batches"
        );
        for i in 0..3u8 {
            assert_eq!(read_frame(&mut client).await, (0, vec![b'0' + i; 10]));
        }
        // A frame over the threshold goes to the socket directly, after what was collected.
        let big = vec![7u8; limits::RAWSOCKET_WRITE_BUFFER_SIZE];
        assert!(sock.write(Bytes::from_static(b"[1]")).await.is_ok());
        assert!(sock.write(Bytes::from(big.clone())).await.is_ok());
        assert_eq!(sock.write_buf.capacity(), 0);
        sock.flush().await.unwrap();
        assert_eq!(read_frame(&mut client).await, (0, b"[1]".to_vec()));
        assert_eq!(read_frame(&mut client).await, (0, big));
    }

    #[tokio::test]
    async fn an_outgoing_message_over_the_client_maximum_queues_abort() {
        let (mut sock, mut client) = socket(2048, limits::FRAME_COMPLETION_TIMEOUT);
        let Err(WriteError::Close(reason)) = sock.write(Bytes::from(vec![b' '; 2049])).await else {
            panic!("the connection must be closed")
        };
        assert_eq!(reason.code, 1009);
        sock.flush().await.unwrap();
        let (t, abort) = read_frame(&mut client).await;
        assert_eq!(t, 0);
        let Ok(Message::Abort {
            reason, details, ..
        }) = Serializer::Json.decode(&abort)
        else {
            panic!("ABORT expected")
        };
        assert_eq!(reason, uris::PAYLOAD_SIZE_EXCEEDED);
        assert!(format!("{details:?}").contains("2049"), "{details:?}");
        // Exactly the maximum is fine.
        assert!(sock.write(Bytes::from(vec![b' '; 2048])).await.is_ok());
    }

    #[tokio::test]
    async fn reads_frames_in_pieces_and_enforces_the_frame_deadline() {
        let timeout = Duration::from_millis(200);
        let (mut sock, mut client) = socket(65536, timeout);
        // A message and a PING in one write, a PONG ignored, a message in two pieces.
        let mut bytes = codec::encode_frame(FrameType::Message, b"[1]").unwrap();
        bytes.extend(codec::encode_frame(FrameType::Ping, b"p").unwrap());
        bytes.extend(codec::encode_frame(FrameType::Pong, b"x").unwrap());
        bytes.extend([0, 0, 0, 3, b'[']);
        client.write_all(&bytes).await.unwrap();
        assert!(matches!(sock.next().await, Incoming::Message(m) if &m[..] == b"[1]"));
        assert!(matches!(sock.next().await, Incoming::Control(p) if &p[..] == b"p"));
        let rest = async {
            tokio::time::sleep(timeout / 2).await;
            client.write_all(b"2]").await.unwrap();
            client
        };
        let (next, mut client) = tokio::join!(sock.next(), rest);
        assert!(matches!(next, Incoming::Message(m) if &m[..] == b"[2]"));
        assert_eq!(sock.frame_deadline, None, "no frame pending");
        // A header and part of the payload, then nothing: closed at the deadline.
        client.write_all(&[0, 0, 0, 10, b'[']).await.unwrap();
        let started = Instant::now();
        let Incoming::Close(reason) = sock.next().await else {
            panic!("closed at the deadline")
        };
        assert!(started.elapsed() >= timeout);
        assert_eq!(reason.code, 1008);
        assert!(reason.text.contains("1 of 10 bytes"), "{}", reason.text);
    }

    #[tokio::test]
    async fn an_idle_connection_holds_no_read_buffer() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut client = tokio::net::TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (read, write) = listener.accept().await.unwrap().0.into_split();
        let (template, _pipe) = socket(65536, limits::FRAME_COMPLETION_TIMEOUT);
        let mut sock = RawSocket {
            read,
            write,
            read_buf: BytesMut::new(),
            max_len: template.max_len,
            frame_timeout: template.frame_timeout,
            frame_deadline: None,
            write_buf: Vec::new(),
            client_max_len: template.client_max_len,
            serializer: template.serializer,
            label: template.label,
        };
        for _ in 0..2 {
            client
                .write_all(&codec::encode_frame(FrameType::Message, b"[1]").unwrap())
                .await
                .unwrap();
            assert!(matches!(sock.next().await, Incoming::Message(m) if &m[..] == b"[1]"));
            // Waiting for the next frame (given up here, as the driver's select may).
            let waiting = tokio::time::timeout(Duration::from_millis(50), sock.next()).await;
            assert!(waiting.is_err(), "nothing to read");
            assert_eq!(sock.read_buf.capacity(), 0, "no read buffer while idle");
        }
        // A partial frame is kept across a cancelled wait.
        client.write_all(&[0, 0, 0, 3, b'[']).await.unwrap();
        let waiting = tokio::time::timeout(Duration::from_millis(50), sock.next()).await;
        assert!(waiting.is_err(), "incomplete");
        client.write_all(b"2]").await.unwrap();
        assert!(matches!(sock.next().await, Incoming::Message(m) if &m[..] == b"[2]"));
    }

    #[tokio::test]
    async fn framing_violations() {
        for (header, expect) in [
            ([0x08u8, 0, 0, 0], "reserved bits"),
            ([0x80, 0, 0, 1], "reserved bits"),
            ([3, 0, 0, 0], "unknown type 3"),
            (
                [0, 1, 0, 1],
                "exceeds this transport's max_message_size of 65536",
            ),
        ] {
            let (mut sock, mut client) = socket(65536, limits::FRAME_COMPLETION_TIMEOUT);
            client.write_all(&header).await.unwrap();
            let Incoming::Violation { text, close } = sock.next().await else {
                panic!("{header:?}: a violation")
            };
            assert!(text.contains(expect), "{text}");
            assert_eq!(close.code, 1002);
        }
    }

    #[test]
    fn handshakes() {
        let service = RawSocketService {
            serializers: vec![Serializer::Json, Serializer::Cbor],
            max_message_size: 65536,
            auth: Default::default(),
            timeouts: limits::RawSocketTimeouts::default(),
            hello_timeout: limits::HANDSHAKE_TIMEOUT,
            max_outgoing_queue_bytes: limits::MAX_OUTGOING_QUEUE_BYTES,
        };
        assert_eq!(service.max_length_exponent(), 7);
        assert!(matches!(
            check_handshake([0x7F, 0xF3, 0, 0], &service),
            Ok((Serializer::Cbor, 16777216))
        ));
        assert!(matches!(
            check_handshake([0x7F, 0x21, 0, 0], &service),
            Ok((Serializer::Json, 2048))
        ));
        let refused = |hello| match check_handshake(hello, &service) {
            Err(Refused::Reply(r, _)) => Some(r),
            _ => None,
        };
        assert_eq!(
            refused([0x7F, 0x11, 0, 0]),
            Some(Refusal::MaxLengthUnacceptable)
        );
        assert_eq!(
            refused([0x7F, 0x01, 0, 0]),
            Some(Refusal::MaxLengthUnacceptable)
        );
        assert_eq!(
            refused([0x7F, 0xF2, 0, 0]),
            Some(Refusal::SerializerUnsupported)
        );
        assert_eq!(
            refused([0x7F, 0xF0, 0, 0]),
            Some(Refusal::SerializerUnsupported)
        );
        assert_eq!(refused([0x7F, 0xF1, 1, 0]), Some(Refusal::ReservedBits));
        assert!(matches!(
            check_handshake(*b"GET ", &service),
            Err(Refused::NotRawSocket(HandshakeError::BadMagic(b'G')))
        ));
    }
}
