//! Admission of connections (mini-redis style): a listener takes a permit from a node-wide
//! semaphore *before* it accepts, so at the limit connections wait in the kernel's backlog instead
//! of being accepted and then failing for want of file descriptors. An accepted socket carries its
//! permit (`Admitted`) for as long as it is open, also after an HTTP upgrade to WebSocket.
//!
//! After the accept, two caps that refuse rather than wait (`Gate`): the per-address cap and
//! the transport's own `max_connections`. A refused connection gets a clear answer, an HTTP 503
//! or a RawSocket handshake error 4, written in a task bounded in time that keeps the node-wide
//! permit until it is done, so refusing costs a bounded number of file descriptors for a few
//! seconds at most.
//!
//! `Admitted` is also where two WebSocket protections live, because they need the raw socket,
//! which axum's `WebSocket` does not give out (see `SocketControl`).

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::io;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Sleep;
use tracing::{debug, warn};

use crate::limits::{self, ConnectionLimits};

/// The connection slots of a node, shared by all its listeners.
#[derive(Debug, Clone)]
pub(crate) struct Admission {
    slots: Arc<Semaphore>,
    max: usize,
    per_ip: Option<Arc<PerIp>>,
}

#[derive(Debug)]
struct PerIp {
    max: usize,
    open: Mutex<HashMap<IpAddr, usize>>,
}

impl Admission {
    pub(crate) fn new(limits: &ConnectionLimits) -> Self {
        let max = limits.max_connections.clamp(1, Semaphore::MAX_PERMITS);
        Self {
            slots: Arc::new(Semaphore::new(max)),
            max,
            per_ip: limits.max_connections_per_ip.map(|max| {
                Arc::new(PerIp {
                    max,
                    open: Mutex::new(HashMap::new()),
                })
            }),
        }
    }

    /// No limit (before a server assigns its admission to a bound listener).
    pub(crate) fn unlimited() -> Self {
        Self::new(&ConnectionLimits {
            max_connections: Semaphore::MAX_PERMITS,
            max_connections_per_ip: None,
            ..ConnectionLimits::default()
        })
    }

    /// The node-wide maximum of open connections.
    pub(crate) fn max(&self) -> usize {
        self.max
    }

    /// A free slot, if there is one now.
    pub(crate) fn try_slot(&self) -> Option<OwnedSemaphorePermit> {
        self.slots.clone().try_acquire_owned().ok()
    }

    /// Waits for a free slot. Cancel-safe.
    pub(crate) async fn slot(&self) -> OwnedSemaphorePermit {
        self.slots
            .clone()
            .acquire_owned()
            .await
            .expect("the admission semaphore is never closed")
    }

    /// Counts a connection from `ip` against the per-address cap; `None` if `ip` is at the cap.
    pub(crate) fn admit_ip(&self, ip: Option<IpAddr>) -> Option<IpSlot> {
        let (Some(per_ip), Some(ip)) = (&self.per_ip, ip) else {
            return Some(IpSlot(None));
        };
        let mut open = per_ip.open.lock().unwrap_or_else(|e| e.into_inner());
        let n = open.entry(ip).or_insert(0);
        if *n >= per_ip.max {
            return None;
        }
        *n += 1;
        Some(IpSlot(Some((per_ip.clone(), ip))))
    }
}

/// A connection counted against its address's cap, until dropped.
#[derive(Debug)]
pub(crate) struct IpSlot(Option<(Arc<PerIp>, IpAddr)>);

impl Drop for IpSlot {
    fn drop(&mut self) {
        if let Some((per_ip, ip)) = self.0.take() {
            let mut open = per_ip.open.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(n) = open.get_mut(&ip) {
                *n -= 1;
                if *n == 0 {
                    open.remove(&ip);
                }
            }
        }
    }
}

/// What a connection holds while it is open: its node-wide slot, its per-address count and its
/// transport's slot.
#[derive(Debug)]
#[allow(
    dead_code,
    reason = "held, never read: dropping the slot gives them back"
)]
pub(crate) struct Slot {
    pub permit: OwnedSemaphorePermit,
    pub ip: IpSlot,
    pub transport: Option<OwnedSemaphorePermit>,
}

/// How a transport refuses a connection it will not serve.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RefusalKind {
    /// `web` and `websocket` transports: `HTTP/1.1 503 Service Unavailable`, with `Retry-After`
    /// ([`limits::REFUSAL_RETRY_AFTER`]) and a one-line text body naming the limit.
    Http,
    /// `rawsocket` transports: the handshake error reply with code 4, "maximum connection count
    /// reached" (WAMP RawSocket specification).
    RawSocket,
}

/// The cap that refused a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RefusedBy {
    /// [`ConnectionLimits::max_connections_per_ip`].
    PerIp,
    /// The transport's own `max_connections`.
    Transport,
}

impl RefusedBy {
    /// The configuration key of the limit.
    pub(crate) fn key(self) -> &'static str {
        match self {
            RefusedBy::PerIp => "max_connections_per_ip",
            RefusedBy::Transport => "max_connections",
        }
    }

    fn what(self) -> &'static str {
        match self {
            RefusedBy::PerIp => "too many connections from your address",
            RefusedBy::Transport => "this endpoint has reached its maximum connection count",
        }
    }
}

/// The bytes a refused connection is sent.
pub(crate) fn refusal(kind: RefusalKind, by: RefusedBy) -> Vec<u8> {
    match kind {
        RefusalKind::RawSocket => wamp_proto::rawsocket::HandshakeReply::refuse(
            wamp_proto::rawsocket::Refusal::ConnectionLimit,
        )
        .to_vec(),
        RefusalKind::Http => {
            let body = format!(
                "503 Service Unavailable: {} ({}); try again later\n",
                by.what(),
                by.key()
            );
            format!(
                "HTTP/1.1 503 Service Unavailable\r\n\
                 Content-Type: text/plain; charset=utf-8\r\n\
                 Content-Length: {}\r\n\
                 Retry-After: {}\r\n\
                 Connection: close\r\n\
                 \r\n\
                 {body}",
                body.len(),
                limits::REFUSAL_RETRY_AFTER.as_secs()
            )
            .into_bytes()
        }
    }
}

/// Sends `io` its refusal and closes it lingering, in a task, all within
/// [`limits::REFUSAL_TIMEOUT`]. `permit` (the connection's node-wide slot) is held until then.
fn refuse<S>(mut io: S, kind: RefusalKind, by: RefusedBy, permit: OwnedSemaphorePermit)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    tokio::spawn(async move {
        let _permit = permit;
        let bytes = refusal(kind, by);
        let refuse = async {
            if io.write_all(&bytes).await.is_err() || io.shutdown().await.is_err() {
                return;
            }
            let mut buf = [0u8; 4096];
            while let Ok(n) = io.read(&mut buf).await {
                if n == 0 {
                    return;
                }
            }
        };
        let _ = tokio::time::timeout(limits::REFUSAL_TIMEOUT, refuse).await;
    });
}

/// How often, at most, a listener logs that a limit holds it back or refuses connections.
const WARNING_INTERVAL: Duration = Duration::from_secs(10);

/// A listener's admission: the node's slots ([`Admission`]), its transport's own cap, and how it
/// refuses; with its rate-limited warnings.
#[derive(Debug)]
pub(crate) struct Gate {
    admission: Admission,
    /// The transport's `max_connections`: its slots and their number.
    transport: Option<(Arc<Semaphore>, usize)>,
    refusal: RefusalKind,
    warned_full: Option<Instant>,
    warned_refused: Option<Instant>,
    /// Connections refused since the last warning.
    refused: u64,
}

impl Gate {
    /// No limit (before a server assigns its admission to a bound listener).
    pub(crate) fn unlimited() -> Self {
        Self::new(Admission::unlimited(), None, RefusalKind::Http)
    }

    /// The gate of a listener admitting through `admission`, with its transport's own cap.
    pub(crate) fn new(
        admission: Admission,
        transport_max: Option<usize>,
        refusal: RefusalKind,
    ) -> Self {
        Self {
            admission,
            transport: transport_max.map(|max| {
                let max = max.clamp(1, Semaphore::MAX_PERMITS);
                (Arc::new(Semaphore::new(max)), max)
            }),
            refusal,
            warned_full: None,
            warned_refused: None,
            refused: 0,
        }
    }

    /// A node-wide slot, waiting for one if there is none now (logged at most every
    /// [`WARNING_INTERVAL`]). Cancel-safe.
    pub(crate) async fn slot(
        &mut self,
        listener: &(dyn fmt::Display + Sync),
    ) -> OwnedSemaphorePermit {
        if let Some(permit) = self.admission.try_slot() {
            return permit;
        }
        if self
            .warned_full
            .is_none_or(|at| at.elapsed() >= WARNING_INTERVAL)
        {
            self.warned_full = Some(Instant::now());
            warn!(
                listener = %listener,
                max_connections = self.admission.max(),
                "connection limit reached: not accepting until a connection closes"
            );
        }
        self.admission.slot().await
    }

    /// The [`Slot`] of a connection accepted from `ip` with `permit`, or `None` when a cap
    /// refuses it: then `io` is being sent its refusal (in a task holding `permit`).
    pub(crate) fn admit<S>(
        &mut self,
        io: S,
        ip: Option<IpAddr>,
        permit: OwnedSemaphorePermit,
        listener: &(dyn fmt::Display + Sync),
    ) -> Option<(S, Slot)>
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let Some(ip_slot) = self.admission.admit_ip(ip) else {
            self.refuse(io, RefusedBy::PerIp, permit, ip, listener);
            return None;
        };
        let transport = match &self.transport {
            None => None,
            Some((slots, _)) => match slots.clone().try_acquire_owned() {
                Ok(slot) => Some(slot),
                Err(_) => {
                    drop(ip_slot);
                    self.refuse(io, RefusedBy::Transport, permit, ip, listener);
                    return None;
                }
            },
        };
        Some((
            io,
            Slot {
                permit,
                ip: ip_slot,
                transport,
            },
        ))
    }

    fn refuse<S>(
        &mut self,
        io: S,
        by: RefusedBy,
        permit: OwnedSemaphorePermit,
        ip: Option<IpAddr>,
        listener: &(dyn fmt::Display + Sync),
    ) where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        self.refused += 1;
        debug!(listener = %listener, peer = ?ip, limit = by.key(), "connection refused");
        if self
            .warned_refused
            .is_none_or(|at| at.elapsed() >= WARNING_INTERVAL)
        {
            self.warned_refused = Some(Instant::now());
            let max = match by {
                RefusedBy::PerIp => self.admission.per_ip.as_ref().map_or(0, |p| p.max),
                RefusedBy::Transport => self.transport.as_ref().map_or(0, |(_, max)| *max),
            };
            warn!(
                listener = %listener,
                limit = by.key(),
                max,
                refused = self.refused,
                "refusing connections over a connection limit"
            );
            self.refused = 0;
        }
        refuse(io, self.refusal, by, permit);
    }
}

/// Switches of an [`Admitted`] socket, shared with whoever serves it (the WebSocket code reaches
/// them through a request extension, as the socket itself disappears into hyper's upgrade).
#[derive(Debug, Default)]
pub(crate) struct SocketControl {
    /// Close lingering when dropped (see [`Admitted`]).
    linger: AtomicBool,
    /// The message completion deadline in milliseconds, 0 = not armed (see [`Admitted`]).
    message_timeout_ms: AtomicU64,
    /// Bumped each time a complete message (or control frame) was taken from the socket.
    completed: AtomicU64,
}

impl SocketControl {
    /// From now on, fail reads with [`io::ErrorKind::TimedOut`] when data of an unfinished
    /// message has waited `timeout` for its completion ([`SocketControl::message_completed`]).
    pub(crate) fn arm_message_timeout(&self, timeout: Duration) {
        let ms = u64::try_from(timeout.as_millis())
            .unwrap_or(u64::MAX)
            .max(1);
        self.message_timeout_ms.store(ms, Ordering::Relaxed);
    }

    /// Everything read so far was a complete message: the completion clock stops.
    pub(crate) fn message_completed(&self) {
        self.completed.fetch_add(1, Ordering::Relaxed);
    }

    /// When dropped, the socket closes lingering (see [`Admitted`]).
    pub(crate) fn linger_on_close(&self) {
        self.linger.store(true, Ordering::Relaxed);
    }
}

/// The error of a read that ran past the message completion deadline.
#[derive(Debug, thiserror::Error)]
#[error("message not completed within {0:?}")]
pub(crate) struct MessageTimeout(pub Duration);

/// An accepted socket with its admission [`Slot`], released when the socket is dropped.
///
/// Two things the WebSocket code asks of it through its [`SocketControl`]:
/// - *Message completion deadline*: tungstenite does not tell whether it holds part of a frame,
///   but the socket sees data arrive. The clock starts at the first read that returns data after
///   the last complete message and stops when the next one is complete; past the deadline the
///   read fails with [`MessageTimeout`]. Data read together with the end of the previous message
///   (at most one read buffer, [`crate::limits::WS_READ_BUFFER_SIZE`]) does not start it; more
///   data does.
/// - *Lingering close* (nginx's `lingering_close`): closing a socket that has unread input makes
///   the kernel send a reset, which can destroy the close frame before the client reads it (and
///   a client still sending an oversized message reads nothing until its write completes). When
///   asked, dropping the socket hands it to a task that shuts down our side (FIN), then reads and
///   discards until the client closes too, at most [`crate::limits::CLOSE_TIMEOUT`]; the
///   connection keeps its admission slot meanwhile. Needed because, after a read error,
///   tungstenite reads nothing more.
#[derive(Debug)]
pub(crate) struct Admitted<S> {
    /// `None` only once dropped.
    io: Option<S>,
    /// Lingers the socket closed in the background; `None` for sockets that cannot.
    lingerer: Option<fn(S, Option<Slot>)>,
    slot: Option<Slot>,
    control: Arc<SocketControl>,
    seen_completed: u64,
    /// Data of an unfinished message has been read (since the last complete one).
    partial: Partial,
    /// The completion deadline's timer, kept for reuse once allocated.
    deadline: Option<Pin<Box<Sleep>>>,
}

impl<S> Admitted<S> {
    /// A socket that closes at once when dropped.
    pub(crate) fn new(io: S, slot: Option<Slot>) -> Self {
        Self {
            io: Some(io),
            lingerer: None,
            slot,
            control: Arc::default(),
            seen_completed: 0,
            partial: Partial::None,
            deadline: None,
        }
    }

    pub(crate) fn control(&self) -> Arc<SocketControl> {
        self.control.clone()
    }

    /// The socket and its slot, without the controls.
    pub(crate) fn into_parts(mut self) -> (S, Option<Slot>) {
        (self.io.take().expect("not dropped"), self.slot.take())
    }

    /// The socket itself.
    pub(crate) fn get_ref(&self) -> &S {
        self.io.as_ref().expect("not dropped")
    }

    fn io(&mut self) -> Pin<&mut S>
    where
        S: Unpin,
    {
        Pin::new(self.io.as_mut().expect("not dropped"))
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin + Send + 'static> Admitted<S> {
    /// A socket that can close lingering ([`SocketControl::linger_on_close`]).
    pub(crate) fn lingering(io: S, slot: Option<Slot>) -> Self {
        let mut socket = Self::new(io, slot);
        socket.lingerer = Some(linger::<S>);
        socket
    }
}

impl<S> Drop for Admitted<S> {
    fn drop(&mut self) {
        if !self.control.linger.load(Ordering::Relaxed) {
            return;
        }
        if let (Some(io), Some(lingerer)) = (self.io.take(), self.lingerer) {
            lingerer(io, self.slot.take());
        }
    }
}

/// Shuts down our side of `io`, then reads and discards until the peer closes, in a task.
fn linger<S: AsyncRead + AsyncWrite + Unpin + Send + 'static>(mut io: S, slot: Option<Slot>) {
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        return;
    };
    runtime.spawn(async move {
        let _slot = slot;
        let drain = async {
            if io.shutdown().await.is_err() {
                return;
            }
            let mut buf = [0u8; 4096];
            while let Ok(n) = io.read(&mut buf).await {
                if n == 0 {
                    return;
                }
            }
        };
        let _ = tokio::time::timeout(limits::CLOSE_TIMEOUT, drain).await;
    });
}

/// Where a connection is in receiving a message, as its socket sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Partial {
    /// Nothing read since the last complete message.
    None,
    /// Data read; the deadline is set at the first read that has to wait for more. (A message
    /// that arrives whole in one read costs no clock read and no timer.)
    Started,
    /// Waiting for the rest, the deadline set.
    Timed,
}

impl<S: AsyncRead + Unpin> AsyncRead for Admitted<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let timeout_ms = this.control.message_timeout_ms.load(Ordering::Relaxed);
        if timeout_ms == 0 {
            return this.io().poll_read(cx, buf);
        }
        let completed = this.control.completed.load(Ordering::Relaxed);
        if completed != this.seen_completed {
            this.seen_completed = completed;
            this.partial = Partial::None;
        }
        let before = buf.filled().len();
        match this.io().poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before && this.partial == Partial::None {
                    this.partial = Partial::Started;
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => {
                let timeout = Duration::from_millis(timeout_ms);
                if this.partial == Partial::Started {
                    this.partial = Partial::Timed;
                    let at = tokio::time::Instant::now() + timeout;
                    match &mut this.deadline {
                        Some(deadline) => deadline.as_mut().reset(at),
                        None => this.deadline = Some(Box::pin(tokio::time::sleep_until(at))),
                    }
                }
                if this.partial == Partial::Timed {
                    let deadline = this.deadline.as_mut().expect("set when timed");
                    if deadline.as_mut().poll(cx).is_ready() {
                        this.partial = Partial::None;
                        return Poll::Ready(Err(io::Error::new(
                            io::ErrorKind::TimedOut,
                            MessageTimeout(timeout),
                        )));
                    }
                }
                Poll::Pending
            }
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Admitted<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.get_mut().io().poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.get_mut().io().poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.as_ref().is_some_and(|io| io.is_write_vectored())
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut().io().poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut().io().poll_shutdown(cx)
    }
}

/// The soft and hard `RLIMIT_NOFILE` of this process.
// `rlim_t` is not `u64` on every platform.
#[allow(clippy::unnecessary_cast)]
pub(crate) fn nofile_limit() -> io::Result<(u64, u64)> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit only writes the struct it is given.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok((lim.rlim_cur as u64, lim.rlim_max as u64))
}

/// Raises the soft `RLIMIT_NOFILE` to the hard limit (idempotent). Returns (before, after).
pub fn raise_nofile_limit() -> io::Result<(u64, u64)> {
    let (soft, hard) = nofile_limit()?;
    if soft >= hard {
        return Ok((soft, soft));
    }
    let lim = libc::rlimit {
        rlim_cur: hard as libc::rlim_t,
        rlim_max: hard as libc::rlim_t,
    };
    // SAFETY: setrlimit only reads the struct it is given.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok((soft, hard))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_ip_cap_counts_open_connections_per_address() {
        let admission = Admission::new(&ConnectionLimits {
            max_connections: 10,
            max_connections_per_ip: Some(2),
            ..ConnectionLimits::default()
        });
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        let first = admission.admit_ip(Some(a)).expect("first");
        let _second = admission.admit_ip(Some(a)).expect("second");
        assert!(admission.admit_ip(Some(a)).is_none(), "third from a");
        assert!(admission.admit_ip(Some(b)).is_some(), "another address");
        assert!(
            admission.admit_ip(None).is_some(),
            "unix sockets are not capped"
        );
        drop(first);
        assert!(admission.admit_ip(Some(a)).is_some(), "room again");
    }

    #[test]
    fn slots_run_out_at_the_maximum() {
        let admission = Admission::new(&ConnectionLimits {
            max_connections: 2,
            ..ConnectionLimits::default()
        });
        let one = admission.try_slot().expect("one");
        let _two = admission.try_slot().expect("two");
        assert!(admission.try_slot().is_none());
        drop(one);
        assert!(admission.try_slot().is_some());
    }
}
