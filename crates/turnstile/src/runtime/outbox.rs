//! The runtime's outgoing queue of one connection: the [`Outbox`] the core pushes into, and the
//! [`PeerReceiver`] the connection's writer task awaits. Bounded in bytes, lock-free, and never
//! blocking the realm.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use turnstile_core::peer::{CloseReason, Outbound, Outbox, PeerSender, SendError};

/// State shared by the two ends of one connection's outgoing queue.
#[derive(Debug, Default)]
struct QueueShared {
    /// Bytes queued and not yet taken by the transport.
    queued_bytes: AtomicUsize,
    /// Cancelled when the core drops the connection at once (slow consumer).
    kill: CancellationToken,
    kill_reason: OnceLock<CloseReason>,
}

/// The core's end of a connection's outgoing queue: an unbounded channel whose sender counts the
/// bytes waiting and refuses more once they are over the limit.
#[derive(Debug)]
struct ChannelOutbox {
    tx: mpsc::UnboundedSender<Outbound>,
    shared: Arc<QueueShared>,
    max_queued_bytes: usize,
}

impl Outbox for ChannelOutbox {
    fn push(&self, bytes: Bytes) -> Result<(), SendError> {
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

    fn close(&self, reason: CloseReason) {
        let _ = self.tx.send(Outbound::Close(reason));
    }

    fn kill(&self, reason: CloseReason) {
        let _ = self.shared.kill_reason.set(reason);
        self.shared.kill.cancel();
    }
}

/// The transport's end of a connection's outgoing queue.
#[derive(Debug)]
pub(crate) struct PeerReceiver {
    rx: mpsc::UnboundedReceiver<Outbound>,
    shared: Arc<QueueShared>,
}

impl PeerReceiver {
    /// The next thing to do. `None` when the core will send nothing more (the transport should
    /// close). A kill takes precedence over anything still queued.
    pub(crate) async fn recv(&mut self) -> Option<Outbound> {
        tokio::select! {
            biased;
            _ = self.shared.kill.cancelled() => Some(Outbound::Close(self.kill_reason())),
            item = self.rx.recv() => self.taken(item),
        }
    }

    /// The next item if one is ready now, for writing several messages before one flush.
    pub(crate) fn try_recv(&mut self) -> Option<Outbound> {
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
pub(crate) fn peer_channel(max_queued_bytes: usize) -> (PeerSender, PeerReceiver) {
    let (tx, rx) = mpsc::unbounded_channel();
    let shared = Arc::new(QueueShared::default());
    let outbox = ChannelOutbox {
        tx,
        shared: shared.clone(),
        max_queued_bytes,
    };
    (
        PeerSender::new(Arc::new(outbox)),
        PeerReceiver { rx, shared },
    )
}
