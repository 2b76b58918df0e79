//! Listening sockets: binds TCP and Unix endpoints, accepts connections, and names the peer.

use std::fmt;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};

use std::time::{Duration, Instant};

use axum::serve::Listener;
use tokio::net::{TcpListener, TcpSocket, TcpStream, UnixListener, UnixStream};
use tracing::{debug, error, warn};
use turnstile_config::Endpoint;

use crate::limits;
use crate::transport::admission::{Admission, Admitted, Slot};
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

    /// Makes the listener take a slot of `admission` for each connection.
    pub(crate) fn admit_with(&mut self, admission: Admission) {
        match self {
            Bound::Tcp(l) => l.admission = admission,
            Bound::Unix(l) => l.admission = admission,
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
            let accept = TcpAccept {
                listener,
                local,
                admission: Admission::unlimited(),
                warned_full: None,
            };
            Ok((Bound::Tcp(accept), None))
        }
        Endpoint::Unix { path } => {
            remove_stale_socket(path)?;
            let listener = UnixListener::bind(path)
                .map_err(|e| format!("cannot listen on unix socket {}: {e}", path.display()))?;
            let file = SocketFile(path.clone());
            Ok((
                Bound::Unix(UnixAccept {
                    listener,
                    path: path.clone(),
                    admission: Admission::unlimited(),
                    warned_full: None,
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

fn listen_tcp(addr: SocketAddr, backlog: u32) -> io::Result<TcpListener> {
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

/// A TCP listener that admits connections ([`Admission`]) and sets TCP_NODELAY on each.
#[derive(Debug)]
pub(crate) struct TcpAccept {
    listener: TcpListener,
    local: SocketAddr,
    admission: Admission,
    warned_full: Option<Instant>,
}

/// A Unix socket listener that admits connections ([`Admission`]).
#[derive(Debug)]
pub(crate) struct UnixAccept {
    listener: UnixListener,
    path: PathBuf,
    admission: Admission,
    warned_full: Option<Instant>,
}

/// How often, at most, a listener logs that the connection limit holds it back.
const FULL_WARNING_INTERVAL: Duration = Duration::from_secs(10);

/// Logs (at most every [`FULL_WARNING_INTERVAL`]) that the connection limit holds `local` back.
fn warn_full(admission: &Admission, warned: &mut Option<Instant>, local: &dyn fmt::Display) {
    if warned.is_none_or(|at| at.elapsed() >= FULL_WARNING_INTERVAL) {
        *warned = Some(Instant::now());
        warn!(
            listener = %local,
            max_connections = admission.max(),
            "connection limit reached: not accepting until a connection closes"
        );
    }
}

impl Listener for TcpAccept {
    type Io = Admitted<TcpStream>;
    type Addr = PeerAddr;

    async fn accept(&mut self) -> (Admitted<TcpStream>, PeerAddr) {
        loop {
            // The slot first (mini-redis): at the limit, connections wait in the backlog.
            let permit = match self.admission.try_slot() {
                Some(permit) => permit,
                None => {
                    warn_full(&self.admission, &mut self.warned_full, &self.local);
                    self.admission.slot().await
                }
            };
            match self.listener.accept().await {
                Ok((stream, addr)) => {
                    let Some(ip) = self.admission.admit_ip(Some(addr.ip())) else {
                        debug!(peer = %addr, "too many connections from this address; closing");
                        continue;
                    };
                    if let Err(e) = stream.set_nodelay(true) {
                        debug!(peer = %addr, error = %e, "cannot set TCP_NODELAY");
                    }
                    let slot = Slot { permit, ip };
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
            let permit = match self.admission.try_slot() {
                Some(permit) => permit,
                None => {
                    let at = self.path.display();
                    warn_full(&self.admission, &mut self.warned_full, &at);
                    self.admission.slot().await
                }
            };
            match self.listener.accept().await {
                Ok((stream, _)) => {
                    let ip = self
                        .admission
                        .admit_ip(None)
                        .expect("no cap without address");
                    let slot = Slot { permit, ip };
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
