//! The link between the router core and one connection's transport: what the core sends to the
//! connection ([`Outbound`]) and the bounded, lock-free queue that carries it.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use wamp_proto::Serializer;

/// What the router core asks a connection's transport to do, in order.
#[derive(Debug, Clone)]
pub enum Outbound {
    /// Write one serialized WAMP message (a WebSocket message or a RawSocket frame).
    Message(Bytes),
    /// Close the transport after everything queued before it has been written.
    Close(CloseReason),
}

/// Why the router closes a connection, for the WebSocket close frame and the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloseReason {
    /// A WebSocket close code: 1000 normal, 1001 going away, 1002 protocol error, 1008 policy,
    /// 1009 message too big, 1011 internal error.
    pub code: u16,
    pub text: String,
}

/// A reason text short enough for a WebSocket close frame (at most 123 bytes of UTF-8).
pub fn close_text(text: &str) -> String {
    let mut end = text.len().min(120);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_owned()
}

impl CloseReason {
    pub fn normal(text: impl Into<String>) -> Self {
        Self {
            code: 1000,
            text: text.into(),
        }
    }
    pub fn going_away(text: impl Into<String>) -> Self {
        Self {
            code: 1001,
            text: text.into(),
        }
    }
    pub fn protocol_error(text: impl Into<String>) -> Self {
        Self {
            code: 1002,
            text: text.into(),
        }
    }
    pub fn policy(text: impl Into<String>) -> Self {
        Self {
            code: 1008,
            text: text.into(),
        }
    }
}

/// The kind of channel a connection runs on (`transport.channel_type` in session details).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChannelType {
    Tcp,
    Unix,
    Tls,
}

/// The framing of a connection (`transport.channel_framing`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    WebSocket,
    RawSocket,
}

/// What a transport knows about its connection, reported in session details.
#[derive(Debug, Clone)]
pub struct TransportInfo {
    pub channel_type: ChannelType,
    pub framing: Framing,
    pub serializer: Serializer,
    /// `tcp4:127.0.0.1:44856`, `tcp6:[::1]:44856` or `unix`.
    pub peer: String,
    /// The HTTP headers of the WebSocket upgrade request (lower-case names).
    pub http_headers: Option<BTreeMap<String, String>>,
    /// The transport's `auth` configuration; `None` is Crossbar's default: anonymous access
    /// with role `anonymous` and a random authid.
    pub auth: Option<Arc<turnstile_config::AuthConfig>>,
}

impl TransportInfo {
    /// `peer` formatted the way Crossbar does for a TCP peer.
    pub fn tcp_peer(addr: std::net::SocketAddr) -> String {
        match addr {
            std::net::SocketAddr::V4(a) => format!("tcp4:{}:{}", a.ip(), a.port()),
            std::net::SocketAddr::V6(a) => format!("tcp6:[{}]:{}", a.ip(), a.port()),
        }
    }
}

/// State shared by the two ends of one connection's outgoing queue.
#[derive(Debug, Default)]
struct QueueShared {
    /// Bytes queued and not yet taken by the transport.
    queued_bytes: AtomicUsize,
    /// Cancelled when the core drops the connection at once (slow consumer).
    kill: CancellationToken,
    kill_reason: OnceLock<CloseReason>,
}

/// The core's end of a connection's outgoing queue. Cheap to clone; never blocks.
#[derive(Debug, Clone)]
pub struct PeerSender {
    tx: mpsc::UnboundedSender<Outbound>,
    shared: Arc<QueueShared>,
    max_queued_bytes: usize,
}

/// Why a message could not be queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// The client reads too slowly: its queue holds more than the limit.
    #[error("outgoing queue over {0} bytes (slow consumer)")]
    QueueFull(usize),
    /// The transport is gone.
    #[error("connection closed")]
    Closed,
}

impl PeerSender {
    /// Queues one serialized message. Fails, without queueing, when the queue is over its byte
    /// limit; the caller then drops the connection with [`PeerSender::kill`].
    pub fn send(&self, bytes: Bytes) -> Result<(), SendError> {
        let len = bytes.len();
        let before = self.shared.queued_bytes.fetch_add(len, Ordering::Relaxed);
        if before > self.max_queued_bytes {
            self.shared.queued_bytes.fetch_sub(len, Ordering::Relaxed);
            return Err(SendError::QueueFull(self.max_queued_bytes));
        }
        self.tx.send(Outbound::Message(bytes)).map_err(|_| {
            self.shared.queued_bytes.fetch_sub(len, Ordering::Relaxed);
            SendError::Closed
        })
    }

    /// ABORTs a connection that has no session to account it to (a refused HELLO, a violation
    /// before HELLO), then closes it. `close_code` is the WebSocket close code.
    pub fn abort_and_close(
        &self,
        serializer: Serializer,
        reason: &str,
        text: &str,
        close_code: u16,
    ) {
        if let Ok(bytes) = serializer.encode(&wamp_proto::Message::abort(reason, text)) {
            let _ = self.send(Bytes::from(bytes));
        }
        self.close(CloseReason {
            code: close_code,
            text: close_text(text),
        });
    }

    /// Asks the transport to close after writing what is queued.
    pub fn close(&self, reason: CloseReason) {
        let _ = self.tx.send(Outbound::Close(reason));
    }

    /// Closes the connection at once, discarding what is queued.
    pub fn kill(&self, reason: CloseReason) {
        let _ = self.shared.kill_reason.set(reason);
        self.shared.kill.cancel();
    }

    /// Whether the transport end has gone away.
    pub fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }
}

/// The transport's end of a connection's outgoing queue.
#[derive(Debug)]
pub struct PeerReceiver {
    rx: mpsc::UnboundedReceiver<Outbound>,
    shared: Arc<QueueShared>,
}

impl PeerReceiver {
    /// The next thing to do. `None` when the core will send nothing more (the transport should
    /// close). A kill takes precedence over anything still queued.
    pub async fn recv(&mut self) -> Option<Outbound> {
        tokio::select! {
            biased;
            _ = self.shared.kill.cancelled() => Some(Outbound::Close(self.kill_reason())),
            item = self.rx.recv() => self.taken(item),
        }
    }

    /// The next item if one is ready now, for writing several messages before one flush.
    pub fn try_recv(&mut self) -> Option<Outbound> {
        if self.shared.kill.is_cancelled() {
            return Some(Outbound::Close(self.kill_reason()));
        }
        let item = self.rx.try_recv().ok();
        self.taken(item)
    }

    fn taken(&self, item: Option<Outbound>) -> Option<Outbound> {
        if let Some(Outbound::Message(b)) = &item {
            self.shared
                .queued_bytes
                .fetch_sub(b.len(), Ordering::Relaxed);
        }
        item
    }

    fn kill_reason(&self) -> CloseReason {
        self.shared
            .kill_reason
            .get()
            .cloned()
            .unwrap_or_else(|| CloseReason::policy("connection dropped by the router"))
    }
}

/// A new outgoing queue whose sender refuses messages once `max_queued_bytes` are waiting.
pub fn peer_channel(max_queued_bytes: usize) -> (PeerSender, PeerReceiver) {
    let (tx, rx) = mpsc::unbounded_channel();
    let shared = Arc::new(QueueShared::default());
    (
        PeerSender {
            tx,
            shared: shared.clone(),
            max_queued_bytes,
        },
        PeerReceiver { rx, shared },
    )
}
