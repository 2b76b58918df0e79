//! WAMP RawSocket over TCP and Unix sockets: the 4-octet handshake, length-prefixed framing with
//! PING/PONG, and the accept loop of a `rawsocket` transport.

use std::sync::Arc;

use axum::serve::Listener;
use bytes::{Buf, Bytes, BytesMut};
use futures_util::StreamExt;
use tokio::io::{AsyncReadExt, AsyncWrite, AsyncWriteExt, BufWriter};
use tokio_util::codec::{Decoder, FramedRead};
use tracing::debug;
use wamp_proto::Serializer;

use crate::limits;
use crate::runtime::router::Router;
use crate::transport::driver::{drive, Conns, Incoming, WampSocket, WriteError};
use crate::transport::listener::{PeerAddr, SplitStream};
use turnstile_core::peer::{CloseReason, Framing, TransportInfo};

/// The first octet of every RawSocket handshake.
pub const MAGIC: u8 = 0x7F;
/// Handshake error: serializer unsupported.
pub const ERR_SERIALIZER_UNSUPPORTED: u8 = 1;
/// Handshake error: maximum message length unacceptable.
pub const ERR_MAX_LENGTH_UNACCEPTABLE: u8 = 2;
/// Handshake error: use of reserved bits.
pub const ERR_RESERVED_BITS: u8 = 3;

/// Frame types (`TTT` of the frame header).
const FRAME_MESSAGE: u8 = 0;
const FRAME_PING: u8 = 1;
const FRAME_PONG: u8 = 2;

/// What a `rawsocket` transport accepts.
#[derive(Debug, Clone)]
pub struct RawSocketService {
    pub serializers: Vec<Serializer>,
    pub max_message_size: usize,
    /// The transport's `auth` configuration (`None`: anonymous with role `anonymous`).
    pub auth: Option<std::sync::Arc<turnstile_config::AuthConfig>>,
}

impl RawSocketService {
    /// `LLLL` of our handshake reply: the largest L with 2^(9+L) <= max_message_size.
    pub fn max_length_exponent(&self) -> u8 {
        (0..=15u8)
            .rev()
            .find(|l| (1usize << (9 + l)) <= self.max_message_size)
            .unwrap_or(0)
    }
}

/// Accepts connections until `stop` is cancelled, serving each in its own task.
pub async fn serve<L>(
    mut listener: L,
    router: Arc<Router>,
    service: Arc<RawSocketService>,
    conns: Conns,
    stop: tokio_util::sync::CancellationToken,
) where
    L: Listener<Addr = PeerAddr>,
    L::Io: SplitStream,
{
    loop {
        let (io, peer) = tokio::select! {
            _ = stop.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        let router = router.clone();
        let service = service.clone();
        let closing = conns.closing.clone();
        conns.tracker.spawn(async move {
            let (read, write) = io.split_halves();
            serve_connection(read, write, peer, router, &service, closing).await;
        });
    }
}

/// Runs one RawSocket connection: handshake, then the WAMP session(s) it carries.
pub async fn serve_connection<R, W>(
    mut read: R,
    mut write: W,
    peer: PeerAddr,
    router: Arc<Router>,
    service: &RawSocketService,
    closing: tokio_util::sync::CancellationToken,
) where
    R: tokio::io::AsyncRead + Unpin + Send,
    W: AsyncWrite + Unpin + Send,
{
    let opened = tokio::time::Instant::now();
    let label = peer.peer_string();
    let mut hello = [0u8; 4];
    let read_hello = tokio::time::timeout_at(
        opened + limits::HANDSHAKE_TIMEOUT,
        read.read_exact(&mut hello),
    );
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
            debug!(conn = %label, "rawsocket: no handshake within {:?}; dropping", limits::HANDSHAKE_TIMEOUT);
            return;
        }
    }
    let (serializer, client_max_len) = match check_handshake(hello, service) {
        Ok(v) => v,
        Err(HandshakeError::BadMagic) => {
            debug!(conn = %label, first = hello[0], "rawsocket: not a RawSocket handshake; closing");
            linger_close(&mut read, &mut write).await;
            return;
        }
        Err(HandshakeError::Refused(code, why)) => {
            debug!(conn = %label, "rawsocket: handshake refused: {why}");
            let reply = [MAGIC, code << 4, 0, 0];
            let _ = tokio::time::timeout(limits::CLOSE_TIMEOUT, write.write_all(&reply)).await;
            linger_close(&mut read, &mut write).await;
            return;
        }
    };
    let reply = [
        MAGIC,
        (service.max_length_exponent() << 4) | serializer.rawsocket_id(),
        0,
        0,
    ];
    if let Err(e) = write.write_all(&reply).await {
        debug!(conn = %label, error = %e, "rawsocket: connection lost during handshake");
        return;
    }
    debug!(conn = %label, serializer = serializer.name(), client_max_len, "rawsocket: connection open");

    let info = TransportInfo {
        channel_type: peer.channel_type(),
        framing: Framing::RawSocket,
        serializer,
        peer: label.clone(),
        http_headers: None,
        auth: service.auth.clone(),
    };
    let (conn, rx) = router.connect(info);
    let sock = RawSocket {
        reader: FramedRead::new(
            read,
            FrameDecoder {
                max_len: service.max_message_size,
            },
        ),
        writer: BufWriter::with_capacity(limits::RAWSOCKET_WRITE_BUFFER_SIZE, write),
        client_max_len,
    };
    drive(
        sock,
        conn,
        rx,
        closing,
        opened,
        format!("rawsocket {label}"),
    )
    .await;
}

enum HandshakeError {
    BadMagic,
    Refused(u8, String),
}

/// The serializer and the client's maximum receive length, or why the handshake is refused.
fn check_handshake(
    hello: [u8; 4],
    service: &RawSocketService,
) -> Result<(Serializer, usize), HandshakeError> {
    if hello[0] != MAGIC {
        return Err(HandshakeError::BadMagic);
    }
    if hello[2] != 0 || hello[3] != 0 {
        let why = format!(
            "reserved octets are {:#04x} {:#04x}, must be 0",
            hello[2], hello[3]
        );
        return Err(HandshakeError::Refused(ERR_RESERVED_BITS, why));
    }
    let id = hello[1] & 0x0F;
    let client_max_len = 1usize << (9 + (hello[1] >> 4));
    match Serializer::from_rawsocket_id(id) {
        Some(s) if service.serializers.contains(&s) => Ok((s, client_max_len)),
        _ => {
            let offered: Vec<String> = service
                .serializers
                .iter()
                .map(|s| format!("{} ({})", s.rawsocket_id(), s.name()))
                .collect();
            let why = format!(
                "serializer {id} unsupported; this endpoint accepts {}",
                offered.join(", ")
            );
            Err(HandshakeError::Refused(ERR_SERIALIZER_UNSUPPORTED, why))
        }
    }
}

/// A decoded RawSocket frame.
#[derive(Debug)]
enum Frame {
    Message(Bytes),
    Ping(Bytes),
}

/// A framing violation by the peer.
#[derive(Debug)]
enum FrameError {
    Io(std::io::Error),
    TooLong { len: usize, max: usize },
    ReservedBits(u8),
    UnknownType(u8),
}

impl From<std::io::Error> for FrameError {
    fn from(e: std::io::Error) -> Self {
        FrameError::Io(e)
    }
}

/// Splits the byte stream into frames. Checks a frame's header before buffering its payload, so
/// an oversized frame is refused without reading it.
struct FrameDecoder {
    max_len: usize,
}

impl Decoder for FrameDecoder {
    type Item = Frame;
    type Error = FrameError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Frame>, FrameError> {
        loop {
            if src.len() < 4 {
                return Ok(None);
            }
            let b0 = src[0];
            if b0 & 0xF0 != 0 {
                return Err(FrameError::ReservedBits(b0));
            }
            let kind = b0 & 0x07;
            // X (bit 3) is the 25th length bit, used for exactly 16M.
            let len = (((b0 & 0x08) as usize) << 21)
                | ((src[1] as usize) << 16)
                | ((src[2] as usize) << 8)
                | src[3] as usize;
            if kind > FRAME_PONG {
                return Err(FrameError::UnknownType(kind));
            }
            // PING/PONG payloads are bounded by the same limit as messages.
            if len > self.max_len {
                return Err(FrameError::TooLong {
                    len,
                    max: self.max_len,
                });
            }
            if src.len() < 4 + len {
                src.reserve(4 + len - src.len());
                return Ok(None);
            }
            src.advance(4);
            let payload = src.split_to(len).freeze();
            match kind {
                FRAME_MESSAGE => return Ok(Some(Frame::Message(payload))),
                FRAME_PING => return Ok(Some(Frame::Ping(payload))),
                // A PONG answers a PING we never send; ignore it.
                _ => continue,
            }
        }
    }
}

/// The frame header of a `kind` frame with `len` octets of payload.
fn frame_header(kind: u8, len: usize) -> [u8; 4] {
    debug_assert!(len <= 1 << 24);
    let x = if len >> 24 != 0 { 0x08 } else { 0 };
    [kind | x, (len >> 16) as u8, (len >> 8) as u8, len as u8]
}

/// A RawSocket connection after the handshake.
struct RawSocket<R, W: AsyncWrite> {
    reader: FramedRead<R, FrameDecoder>,
    writer: BufWriter<W>,
    /// What the client said it can receive.
    client_max_len: usize,
}

impl<R, W> RawSocket<R, W>
where
    R: tokio::io::AsyncRead + Unpin + Send,
    W: AsyncWrite + Unpin + Send,
{
    async fn write_frame(&mut self, kind: u8, payload: &[u8]) -> Result<(), WriteError> {
        let io = |e: std::io::Error| WriteError::Gone(format!("write failed: {e}"));
        self.writer
            .write_all(&frame_header(kind, payload.len()))
            .await
            .map_err(io)?;
        self.writer.write_all(payload).await.map_err(io)
    }
}

impl<R, W> WampSocket for RawSocket<R, W>
where
    R: tokio::io::AsyncRead + Unpin + Send,
    W: AsyncWrite + Unpin + Send,
{
    type Control = Bytes;

    async fn next(&mut self) -> Incoming<Bytes> {
        match self.reader.next().await {
            Some(Ok(Frame::Message(payload))) => Incoming::Message(payload),
            Some(Ok(Frame::Ping(payload))) => Incoming::Control(payload),
            None => Incoming::Gone("closed by the peer".into()),
            Some(Err(FrameError::Io(e))) => Incoming::Gone(format!("read failed: {e}")),
            Some(Err(e)) => {
                let text = match e {
                    FrameError::TooLong { len, max } => format!(
                        "RawSocket frame of {len} bytes exceeds this transport's max_message_size of {max} bytes"
                    ),
                    FrameError::ReservedBits(b) => {
                        format!("RawSocket frame header {b:#04x} uses reserved bits")
                    }
                    FrameError::UnknownType(t) => format!("RawSocket frame of unknown type {t}"),
                    FrameError::Io(_) => unreachable!(),
                };
                let close = CloseReason::protocol_error(text.clone());
                Incoming::Violation { text, close }
            }
        }
    }

    async fn control(&mut self, ping: Bytes) -> Result<(), WriteError> {
        self.write_frame(FRAME_PONG, &ping).await?;
        self.flush().await.map_err(WriteError::Gone)
    }

    async fn write(&mut self, msg: Bytes) -> Result<(), WriteError> {
        if msg.len() > self.client_max_len {
            let text = format!(
                "outgoing message of {} bytes exceeds the {} bytes the client accepts (its RawSocket handshake)",
                msg.len(),
                self.client_max_len
            );
            return Err(WriteError::Close(CloseReason { code: 1009, text }));
        }
        self.write_frame(FRAME_MESSAGE, &msg).await
    }

    async fn flush(&mut self) -> Result<(), String> {
        self.writer
            .flush()
            .await
            .map_err(|e| format!("write failed: {e}"))
    }

    async fn close(&mut self, _reason: &CloseReason) {
        linger_close(self.reader.get_mut(), &mut self.writer).await;
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
