//! Listening sockets: binds TCP and Unix endpoints, accepts connections, and names the peer.
//!
//! A listener waits until a connection is pending, then for a node-wide slot ([`Gate::slot`]),
//! then accepts: it holds no slot while its transport is idle, so a busy transport is never
//! starved of slots by idle ones, and at the limit connections wait in the kernel's backlog.

use std::fmt;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};

use axum::serve::Listener;
use tokio::io::unix::AsyncFd;
use tokio::net::{TcpSocket, TcpStream, UnixListener, UnixStream};
use tracing::{debug, error, warn};
use turnstile_config::Endpoint;

use crate::limits;
use crate::transport::admission::{Admitted, Gate};
use turnstile_core::peer::{ChannelType, TransportInfo};

/// Where an accepted connection comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PeerAddr {
    Tcp(SocketAddr),
    Unix,
}

impl PeerAddr {
    /// `peer` of the session details: `tcp4:ADDR:PORT`, `tcp6:[ADDR]:PORT` or `unix`.
    pub(crate) fn peer_string(&self) -> String {
        match self {
            PeerAddr::Tcp(addr) => TransportInfo::tcp_peer(*addr),
            PeerAddr::Unix => "unix".to_owned(),
        }
    }

    pub(crate) fn channel_type(&self) -> ChannelType {
        match self {
            PeerAddr::Tcp(_) => ChannelType::Tcp,
            PeerAddr::Unix => ChannelType::Unix,
        }
    }
}

/// The address a transport listens on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LocalAddr {
    /// A TCP listener's bound address (with the actual port when the configuration said 0).
    Tcp(SocketAddr),
    /// A Unix listener's socket file.
    Unix(PathBuf),
}

impl LocalAddr {
    /// The TCP address, for a TCP endpoint.
    pub fn tcp(&self) -> Option<SocketAddr> {
        match self {
            LocalAddr::Tcp(a) => Some(*a),
            LocalAddr::Unix(_) => None,
        }
    }

    /// The socket file, for a Unix endpoint.
    pub fn unix(&self) -> Option<&Path> {
        match self {
            LocalAddr::Tcp(_) => None,
            LocalAddr::Unix(p) => Some(p),
        }
    }
}

impl fmt::Display for LocalAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LocalAddr::Tcp(a) => write!(f, "{a}"),
            LocalAddr::Unix(p) => write!(f, "unix:{}", p.display()),
        }
    }
}

/// A bound, listening socket.
#[derive(Debug)]
pub(crate) enum Bound {
    Tcp(TcpAccept),
    Unix(UnixAccept),
}

impl Bound {
    pub(crate) fn local_addr(&self) -> LocalAddr {
        match self {
            Bound::Tcp(l) => LocalAddr::Tcp(l.local),
            Bound::Unix(l) => LocalAddr::Unix(l.path.clone()),
        }
    }

    /// Makes the listener admit connections through `gate`.
    pub(crate) fn admit_with(&mut self, gate: Gate) {
        match self {
            Bound::Tcp(l) => l.gate = gate,
            Bound::Unix(l) => l.gate = gate,
        }
    }
}

/// Binds `endpoint`. The error says what failed, without naming the transport (the caller does).
pub(crate) async fn bind(endpoint: &Endpoint) -> Result<(Bound, Option<SocketFile>), String> {
    match endpoint {
        Endpoint::Tcp {
            port,
            interface,
            version,
            backlog,
            ..
        } => {
            let addr = resolve(interface.as_deref(), *version, *port).await?;
            let listener =
                listen_tcp(addr, *backlog).map_err(|e| format!("cannot listen on {addr}: {e}"))?;
            let local = listener.local_addr().map_err(|e| format!("{addr}: {e}"))?;
            let listener = listener
                .into_std()
                .and_then(watch)
                .map_err(|e| format!("{addr}: {e}"))?;
            let accept = TcpAccept {
                listener,
                local,
                gate: Gate::unlimited(),
            };
            Ok((Bound::Tcp(accept), None))
        }
        Endpoint::Unix { path, backlog } => {
            remove_stale_socket(path)?;
            let listener = listen_unix(path, *backlog)
                .and_then(|l| l.into_std())
                .and_then(watch)
                .map_err(|e| format!("cannot listen on unix socket {}: {e}", path.display()))?;
            let file = SocketFile(path.clone());
            Ok((
                Bound::Unix(UnixAccept {
                    listener,
                    path: path.clone(),
                    gate: Gate::unlimited(),
                }),
                Some(file),
            ))
        }
    }
}

/// The address to bind for `interface` (an IP address or a host name), default all interfaces.
async fn resolve(interface: Option<&str>, version: u8, port: u16) -> Result<SocketAddr, String> {
    let Some(interface) = interface else {
        let ip: IpAddr = if version == 6 {
            Ipv6Addr::UNSPECIFIED.into()
        } else {
            Ipv4Addr::UNSPECIFIED.into()
        };
        return Ok(SocketAddr::new(ip, port));
    };
    if let Ok(ip) = interface
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<IpAddr>()
    {
        return Ok(SocketAddr::new(ip, port));
    }
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((interface, port))
        .await
        .map_err(|e| format!("cannot resolve interface \"{interface}\": {e}"))?
        .collect();
    addrs
        .iter()
        .find(|a| {
            if version == 6 {
                a.is_ipv6()
            } else {
                a.is_ipv4()
            }
        })
        .or(addrs.first())
        .copied()
        .ok_or_else(|| format!("interface \"{interface}\" has no address"))
}

/// Registers a non-blocking listener with the runtime, to wait for pending connections.
fn watch<T: std::os::fd::AsRawFd>(listener: T) -> io::Result<AsyncFd<T>> {
    // SAFETY: the listener owns a valid file descriptor, which is neither closed nor replaced
    // while the `AsyncFd` owns the listener (it closes with it).
    unsafe { AsyncFd::register(listener) }.map_err(|e| e.into_parts().1)
}

fn listen_tcp(addr: SocketAddr, backlog: u32) -> io::Result<tokio::net::TcpListener> {
    let socket = if addr.is_ipv6() {
        TcpSocket::new_v6()?
    } else {
        TcpSocket::new_v4()?
    };
    // As std's TcpListener::bind does: a restarted router can bind while old connections linger
    // in TIME_WAIT. (It does not allow two listeners on one port.)
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(backlog)
}

/// Binds a unix socket with the listen queue length `backlog`: bound as tokio does it (with the
/// system's default queue), then `listen` again with `backlog`, which on Linux sets the queue
/// length of a listening socket.
fn listen_unix(path: &Path, backlog: u32) -> io::Result<UnixListener> {
    use std::os::fd::AsRawFd;
    let listener = UnixListener::bind(path)?;
    let backlog = i32::try_from(backlog).unwrap_or(i32::MAX);
    // SAFETY: `listen` on the file descriptor the listener owns, which stays open for the call.
    if unsafe { libc::listen(listener.as_raw_fd(), backlog) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(listener)
}

/// Removes a socket file left behind by a router that did not stop cleanly. A file that is not a
/// socket, or a socket some process still accepts on, is an error.
fn remove_stale_socket(path: &Path) -> Result<(), String> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(format!("{}: {e}", path.display())),
    };
    if !meta.file_type().is_socket() {
        return Err(format!(
            "{} exists and is not a socket; not removing it",
            path.display()
        ));
    }
    if std::os::unix::net::UnixStream::connect(path).is_ok() {
        return Err(format!(
            "unix socket {} is in use by another process",
            path.display()
        ));
    }
    debug!(path = %path.display(), "removing stale unix socket file");
    std::fs::remove_file(path).map_err(|e| format!("cannot remove {}: {e}", path.display()))
}

/// A Unix socket file this server created; removed when dropped (if it is still a socket).
#[derive(Debug)]
pub(crate) struct SocketFile(PathBuf);

impl Drop for SocketFile {
    fn drop(&mut self) {
        let is_socket = std::fs::symlink_metadata(&self.0)
            .map(|m| m.file_type().is_socket())
            .unwrap_or(false);
        if is_socket {
            if let Err(e) = std::fs::remove_file(&self.0) {
                warn!(path = %self.0.display(), error = %e, "cannot remove unix socket file");
            }
        }
    }
}

/// A TCP listener that admits connections ([`Gate`]) and sets TCP_NODELAY on each.
#[derive(Debug)]
pub(crate) struct TcpAccept {
    /// Non-blocking, watched for readiness (a pending connection) by the runtime.
    listener: AsyncFd<std::net::TcpListener>,
    local: SocketAddr,
    gate: Gate,
}

/// A Unix socket listener that admits connections ([`Gate`]).
#[derive(Debug)]
pub(crate) struct UnixAccept {
    /// Non-blocking, watched for readiness (a pending connection) by the runtime.
    listener: AsyncFd<std::os::unix::net::UnixListener>,
    path: PathBuf,
    gate: Gate,
}

impl Listener for TcpAccept {
    type Io = Admitted<TcpStream>;
    type Addr = PeerAddr;

    async fn accept(&mut self) -> (Admitted<TcpStream>, PeerAddr) {
        loop {
            // A pending connection, then the slot (mini-redis), then the accept: at the limit,
            // connections wait in the backlog.
            let mut ready = match self.listener.readable().await {
                Ok(ready) => ready,
                Err(e) => {
                    accept_error(e).await;
                    continue;
                }
            };
            let permit = self.gate.slot(&self.local).await;
            let accepted = match ready.try_io(|l| l.get_ref().accept()) {
                // The readiness was stale (the client gave up meanwhile): wait again.
                Err(_would_block) => continue,
                Ok(accepted) => accepted.and_then(|(stream, addr)| {
                    stream.set_nonblocking(true)?;
                    Ok((TcpStream::from_std(stream)?, addr))
                }),
            };
            match accepted {
                Ok((stream, addr)) => {
                    let Some((stream, slot)) =
                        self.gate
                            .admit(stream, Some(addr.ip()), permit, &self.local)
                    else {
                        continue;
                    };
                    if let Err(e) = stream.set_nodelay(true) {
                        debug!(peer = %addr, error = %e, "cannot set TCP_NODELAY");
                    }
                    return (Admitted::lingering(stream, Some(slot)), PeerAddr::Tcp(addr));
                }
                Err(e) => {
                    drop(permit);
                    accept_error(e).await
                }
            }
        }
    }

    fn local_addr(&self) -> io::Result<PeerAddr> {
        Ok(PeerAddr::Tcp(self.local))
    }
}

impl Listener for UnixAccept {
    type Io = Admitted<UnixStream>;
    type Addr = PeerAddr;

    async fn accept(&mut self) -> (Admitted<UnixStream>, PeerAddr) {
        loop {
            let mut ready = match self.listener.readable().await {
                Ok(ready) => ready,
                Err(e) => {
                    accept_error(e).await;
                    continue;
                }
            };
            let at = self.path.display();
            let permit = self.gate.slot(&at).await;
            let accepted = match ready.try_io(|l| l.get_ref().accept()) {
                Err(_would_block) => continue,
                Ok(accepted) => accepted.and_then(|(stream, _)| {
                    stream.set_nonblocking(true)?;
                    UnixStream::from_std(stream)
                }),
            };
            match accepted {
                Ok(stream) => {
                    let Some((stream, slot)) = self.gate.admit(stream, None, permit, &at) else {
                        continue;
                    };
                    return (Admitted::lingering(stream, Some(slot)), PeerAddr::Unix);
                }
                Err(e) => {
                    drop(permit);
                    accept_error(e).await
                }
            }
        }
    }

    fn local_addr(&self) -> io::Result<PeerAddr> {
        Ok(PeerAddr::Unix)
    }
}

async fn accept_error(e: io::Error) {
    if matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    ) {
        debug!(error = %e, "accept failed for one connection");
        return;
    }
    error!(error = %e, "accept failed; pausing before accepting again");
    tokio::time::sleep(limits::ACCEPT_ERROR_BACKOFF).await;
}

/// A stream that splits into halves that can be used from one task without a lock.
pub(crate) trait SplitStream: Send + 'static {
    type Read: tokio::io::AsyncRead + Unpin + Send + 'static;
    type Write: tokio::io::AsyncWrite + Unpin + Send + 'static;
    fn split_halves(self) -> (Self::Read, Self::Write);
}

impl SplitStream for TcpStream {
    type Read = tokio::net::tcp::OwnedReadHalf;
    type Write = tokio::net::tcp::OwnedWriteHalf;
    fn split_halves(self) -> (Self::Read, Self::Write) {
        self.into_split()
    }
}

/// The read half keeps the connection's admission slot.
impl<S: SplitStream> SplitStream for Admitted<S> {
    type Read = Admitted<S::Read>;
    type Write = S::Write;
    fn split_halves(self) -> (Self::Read, Self::Write) {
        let (io, slot) = self.into_parts();
        let (read, write) = io.split_halves();
        (Admitted::new(read, slot), write)
    }
}

impl SplitStream for UnixStream {
    type Read = tokio::net::unix::OwnedReadHalf;
    type Write = tokio::net::unix::OwnedWriteHalf;
    fn split_halves(self) -> (Self::Read, Self::Write) {
        self.into_split()
    }
}
