//! Starts a node's router workers and their transports from a configuration, and stops them
//! gracefully: bind every transport first (so a port in use stops the start with a clear error),
//! then start the realms and serve until the shutdown signal. While it serves, a new
//! configuration can be handed in through a [`ReloadHandle`] (see [`crate::reload`]).

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;

use std::collections::HashMap;

use anyhow::{anyhow, bail};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};
use turnstile_config::{Endpoint, NodeConfig, TlsConfig, TlsSuite, TransportConfig, WebPath};
use wamp_proto::Serializer;

use crate::ledger::{self, Ledger};
use crate::limits::{self, ConnectionLimits};
use crate::reload::{self, AuthPlace, ReloadReport};
use crate::runtime::router::Router;
use crate::transport::admission::{Admission, Gate, RefusalKind};
use crate::transport::listener::{self, Bound, SocketFile};
use crate::transport::rawsocket::{self, RawSocketService};
use crate::transport::tls::ServerTls;
use crate::transport::{web, AuthSlot, Conns, LocalAddr};

/// A node whose transports are bound (listening), ready to [`Server::run`].
#[derive(Debug)]
pub struct Server {
    config: NodeConfig,
    transports: Vec<BoundTransport>,
    /// Unix socket files to remove at the end.
    socket_files: Vec<SocketFile>,
    /// Admission, deadlines and queues of every transport: the named limits, replaced by the
    /// configuration's, replaced by [`Server::with_connection_limits`].
    limits: ConnectionLimits,
    /// Deadlines of RawSocket connections, when a test shortens them (else from `limits`).
    rawsocket_timeouts: Option<limits::RawSocketTimeouts>,
    /// Configuration reloads handed in through a [`ReloadHandle`].
    reloads: mpsc::Receiver<Reload>,
    reload_tx: mpsc::Sender<Reload>,
}

/// A new configuration and where to answer with the report.
type Reload = (NodeConfig, oneshot::Sender<ReloadReport>);

/// Hands a running [`Server`] a new configuration (see [`crate::reload`] for what applies).
#[derive(Debug, Clone)]
pub struct ReloadHandle(mpsc::Sender<Reload>);

impl ReloadHandle {
    /// Applies `config`, already validated, to the running server and returns what it did;
    /// `None` if the server has stopped.
    pub async fn reload(&self, config: NodeConfig) -> Option<ReloadReport> {
        let (tx, rx) = oneshot::channel();
        self.0.send((config, tx)).await.ok()?;
        rx.await.ok()
    }
}

#[derive(Debug)]
struct BoundTransport {
    worker: usize,
    index: usize,
    bound: Bound,
    local: LocalAddr,
    /// The TLS server of a TLS endpoint.
    tls: Option<ServerTls>,
}

impl Server {
    /// Binds every transport of every router worker. Fails, with nothing left listening, on the
    /// first transport that cannot listen (the error names it, e.g. `workers[0].transports[1]`,
    /// and its address). The TLS files of every TLS endpoint are read first, so that a broken
    /// one stops the start before any port is bound. Must be called inside a Tokio runtime.
    pub async fn bind(config: NodeConfig) -> anyhow::Result<Server> {
        let mut tls = load_tls(&config)?;
        let mut transports = Vec::new();
        let mut socket_files = Vec::new();
        for (w, worker) in config.workers.iter().enumerate() {
            for (t, transport) in worker.transports.iter().enumerate() {
                let (bound, file) = match listener::bind(transport.endpoint()).await {
                    Ok(b) => b,
                    Err(e) => {
                        let at = position(w, t, transport);
                        bail!("{at} ({}): {e}", kind(transport))
                    }
                };
                socket_files.extend(file);
                let local = bound.local_addr();
                transports.push(BoundTransport {
                    worker: w,
                    index: t,
                    bound,
                    local,
                    tls: tls.remove(&(w, t)),
                });
            }
        }
        let limits = ConnectionLimits::default().configured(&config.connection_limits());
        let (reload_tx, reloads) = mpsc::channel(4);
        Ok(Server {
            config,
            transports,
            socket_files,
            limits,
            rawsocket_timeouts: None,
            reloads,
            reload_tx,
        })
    }

    /// The handle that hands this server a new configuration once it runs.
    pub fn reload_handle(&self) -> ReloadHandle {
        ReloadHandle(self.reload_tx.clone())
    }

    /// Replaces the connection limits (default: [`ConnectionLimits::default`], sized by the
    /// open-file limit when the server was bound, with the configuration's router worker
    /// `limits` over it).
    pub fn with_connection_limits(mut self, limits: ConnectionLimits) -> Self {
        self.limits = limits;
        self
    }

    /// The connection limits this server will run with.
    pub fn connection_limits(&self) -> &ConnectionLimits {
        &self.limits
    }

    /// Replaces the RawSocket handshake and frame completion deadlines of every `rawsocket`
    /// transport (otherwise those of the connection limits): for tests, which cannot wait for
    /// the real ones.
    pub fn set_rawsocket_timeouts(&mut self, timeouts: limits::RawSocketTimeouts) {
        self.rawsocket_timeouts = Some(timeouts);
    }

    /// The addresses of all transports: workers in order, each worker's transports in order.
    pub fn local_addrs(&self) -> Vec<LocalAddr> {
        self.transports.iter().map(|t| t.local.clone()).collect()
    }

    /// Starts the realms and serves every transport until `shutdown` completes. Then stops
    /// accepting, has the realms say GOODBYE (`wamp.close.system_shutdown`) to every session and
    /// wait for the replies, gives the connections a bounded moment to write and close, and
    /// returns.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
        let Server {
            mut config,
            transports,
            socket_files,
            limits,
            rawsocket_timeouts,
            mut reloads,
            reload_tx,
        } = self;
        // Only the handles given out keep the channel open.
        drop(reload_tx);
        match (&config.node_id, &config.node_title) {
            (Some(node), Some(title)) => info!("node {node} ({title})"),
            (Some(name), None) | (None, Some(name)) => info!("node {name}"),
            (None, None) => {}
        }
        info!(
            max_connections = limits.max_connections,
            max_connections_per_ip = limits.max_connections_per_ip,
            "connection limits"
        );
        let rawsocket_timeouts = rawsocket_timeouts.unwrap_or_else(|| limits.rawsocket_timeouts());
        let admission = Admission::new(&limits);
        // Before the realms, which record into it.
        let ledger = match config.ledger() {
            Some(ledger_config) => {
                let node = ledger::node_id(config.node_id.as_deref());
                let started = Ledger::start(ledger_config, node.clone())
                    .map_err(|e| anyhow::anyhow!("usage ledger: {e}"))?;
                info!(
                    "usage ledger: {} (node {node}, flush interval {:?})",
                    describe_ledger(&ledger_config.store),
                    ledger_config.flush_interval
                );
                Some(started)
            }
            None => None,
        };
        let sink = ledger.as_ref().map(Ledger::sink);
        let routers: Vec<Arc<Router>> = config
            .workers
            .iter()
            .map(|w| Router::start(w, sink.clone()))
            .collect();
        drop(sink);
        if config.workers.is_empty() {
            // Crossbar runs such a node too (its controller only).
            warn!("the configuration has no router workers: nothing to serve");
        }
        for (w, worker) in config.workers.iter().enumerate() {
            let names: Vec<&str> = worker.realms.iter().map(|r| r.name.as_str()).collect();
            // The configuration's names for the node and worker, so logs can be matched to it.
            let label = match (&worker.id, &worker.title) {
                (Some(id), Some(title)) => format!(" ({id}: {title})"),
                (Some(name), None) | (None, Some(name)) => format!(" ({name})"),
                (None, None) => String::new(),
            };
            info!("router worker {w}{label}: realms {}", names.join(", "));
        }
        // Keys accepted so that Crossbar configurations load unchanged, but said aloud, once
        // each: they do nothing here (the reason names why). No values are logged.
        for key in &config.inapplicable {
            warn!("{} has no effect: {}", key.at, key.reason);
        }

        let conns = Conns::default();
        let stop = CancellationToken::new();
        let listeners = TaskTracker::new();
        let mut auth_slots: BTreeMap<AuthPlace, AuthSlot> = BTreeMap::new();
        for mut t in transports {
            let transport = &config.workers[t.worker].transports[t.index];
            let refusal = match transport {
                TransportConfig::RawSocket { .. } => RefusalKind::RawSocket,
                TransportConfig::Web { .. } | TransportConfig::WebSocket { .. } => {
                    RefusalKind::Http
                }
            };
            t.bound.admit_with(Gate::new(
                admission.clone(),
                transport.max_connections(),
                refusal,
            ));
            let at = position(t.worker, t.index, transport);
            info!("listening: {} [{at}]", describe(transport, &t.local));
            if let Endpoint::Tcp { tls: Some(tls), .. } = transport.endpoint() {
                log_tls(&at, tls);
            }
            let router = &routers[t.worker];
            let tls = t.tls;
            match transport {
                TransportConfig::Web {
                    paths,
                    hsts_max_age,
                    endpoint,
                    ..
                } => {
                    if hsts_max_age.is_some()
                        && !matches!(endpoint, Endpoint::Tcp { tls: Some(_), .. })
                    {
                        warn!(
                            "{at}: options.hsts is on, but browsers ignore Strict-Transport-Security \
                             received over plain HTTP (RFC 6797): give the endpoint \"tls\""
                        );
                    }
                    let (app, slots) = web::web_app(paths, *hsts_max_age, router, &conns, &limits);
                    for (key, slot) in slots {
                        auth_slots.insert((t.worker, t.index, Some(key)), slot);
                    }
                    spawn_web(&listeners, t.bound, app, stop.clone(), &limits, tls);
                }
                TransportConfig::WebSocket { path, service, .. } => {
                    let auth = AuthSlot::new(service.auth.as_ref());
                    auth_slots.insert((t.worker, t.index, None), auth.clone());
                    let app = web::websocket_app(path, service, auth, router, &conns, &limits);
                    spawn_web(&listeners, t.bound, app, stop.clone(), &limits, tls);
                }
                TransportConfig::RawSocket {
                    serializers,
                    max_message_size,
                    auth,
                    ..
                } => {
                    let auth = AuthSlot::new(auth.as_ref());
                    auth_slots.insert((t.worker, t.index, None), auth.clone());
                    let service = Arc::new(RawSocketService {
                        serializers: serializers.clone(),
                        max_message_size: *max_message_size,
                        auth,
                        timeouts: rawsocket_timeouts,
                        hello_timeout: limits.handshake_timeout,
                        max_outgoing_queue_bytes: limits.max_outgoing_queue_bytes,
                    });
                    let (router, conns, stop) = (router.clone(), conns.clone(), stop.clone());
                    match t.bound {
                        Bound::Tcp(l) => {
                            listeners.spawn(rawsocket::serve(l, router, service, conns, stop, tls))
                        }
                        Bound::Unix(l) => {
                            listeners.spawn(rawsocket::serve(l, router, service, conns, stop, tls))
                        }
                    };
                }
            }
        }

        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                _ = &mut shutdown => break,
                Some((new, reply)) = reloads.recv() => {
                    let report = apply_reload(&config, &new, &routers, &auth_slots).await;
                    config = reload::running_after(&config, &new);
                    let _ = reply.send(report);
                }
            }
        }
        info!("shutting down");
        stop.cancel();
        futures_util::future::join_all(routers.iter().map(|r| r.shutdown())).await;
        if let Some(ledger) = ledger {
            // Every realm is done: their final cycles are in the ledger's queue.
            ledger.stop().await;
        }
        conns.closing.cancel();
        conns.tracker.close();
        listeners.close();
        let all_done = async {
            conns.tracker.wait().await;
            listeners.wait().await;
        };
        if tokio::time::timeout(limits::SHUTDOWN_FLUSH_TIMEOUT, all_done)
            .await
            .is_err()
        {
            warn!(
                connections = conns.tracker.len(),
                "shutdown: connections still open after {:?}; leaving them",
                limits::SHUTDOWN_FLUSH_TIMEOUT
            );
        }
        drop(socket_files);
        info!("stopped");
        Ok(())
    }
}

/// Applies the new configuration `new` to a node running `old`: each worker's realms (added,
/// removed, changed) and the transports' `auth` sections; whatever else changed is logged as
/// needing a restart and left as it runs.
async fn apply_reload(
    old: &NodeConfig,
    new: &NodeConfig,
    routers: &[Arc<Router>],
    auth_slots: &BTreeMap<AuthPlace, AuthSlot>,
) -> ReloadReport {
    let mut report = ReloadReport {
        needs_restart: reload::needs_restart(old, new),
        ..ReloadReport::default()
    };
    for (w, router) in routers.iter().enumerate() {
        let (Some(before), Some(after)) = (old.workers.get(w), new.workers.get(w)) else {
            continue;
        };
        let done = router.reload(before, after).await;
        let named =
            |names: Vec<String>| names.into_iter().map(move |n| format!("workers[{w}] {n}"));
        report.realms_added.extend(named(done.added));
        report.realms_removed.extend(named(done.removed));
        report.realms_changed.extend(named(done.changed));
    }
    for (place, auth) in reload::auth_changes(old, new) {
        if let Some(slot) = auth_slots.get(&place) {
            slot.replace(auth);
            report.auth_replaced.push(reload::auth_place_name(&place));
        }
    }
    for path in &report.needs_restart {
        warn!("configuration reload: {path} changed: this needs a restart; left as it runs");
    }
    let list = |v: &[String]| v.join(", ");
    if !report.realms_added.is_empty() {
        info!(
            "configuration reload: realms added (serving now): {}",
            list(&report.realms_added)
        );
    }
    if !report.realms_removed.is_empty() {
        info!(
            "configuration reload: realms removed (their sessions are closed with \
             wamp.close.close_realm): {}",
            list(&report.realms_removed)
        );
    }
    if !report.realms_changed.is_empty() {
        info!(
            "configuration reload: realms changed: {}",
            list(&report.realms_changed)
        );
    }
    if !report.auth_replaced.is_empty() {
        info!(
            "configuration reload: authentication replaced for new sessions: {}",
            list(&report.auth_replaced)
        );
    }
    if report.is_empty() {
        info!("configuration reload: nothing changed");
    }
    report
}

fn spawn_web(
    listeners: &TaskTracker,
    bound: Bound,
    app: axum::Router,
    stop: CancellationToken,
    limits: &ConnectionLimits,
    tls: Option<ServerTls>,
) {
    let timeout = limits.http_request_header_timeout;
    match bound {
        Bound::Tcp(l) => listeners.spawn(web::serve(l, app, stop, timeout, tls)),
        Bound::Unix(l) => listeners.spawn(web::serve(l, app, stop, timeout, tls)),
    };
}

/// Reads the TLS files of every TLS endpoint of `config` (what [`Server::bind`] does first), for
/// `turnstile check`: the error names the transport, the key and the file.
pub fn check_tls(config: &NodeConfig) -> anyhow::Result<()> {
    load_tls(config).map(drop)
}

/// The TLS servers of every TLS endpoint, by (worker, transport): all files read, or the first
/// error, naming the transport, the key and the file.
fn load_tls(config: &NodeConfig) -> anyhow::Result<HashMap<(usize, usize), ServerTls>> {
    let mut servers = HashMap::new();
    for (w, worker) in config.workers.iter().enumerate() {
        for (t, transport) in worker.transports.iter().enumerate() {
            if let Endpoint::Tcp { tls: Some(tls), .. } = transport.endpoint() {
                let http = !matches!(transport, TransportConfig::RawSocket { .. });
                let server = ServerTls::load(tls, http).map_err(|e| {
                    anyhow!("{} ({}): {e}", position(w, t, transport), kind(transport))
                })?;
                servers.insert((w, t), server);
            }
        }
    }
    Ok(servers)
}

/// Says at start what a TLS endpoint's settings amount to, and which of them have no effect.
fn log_tls(at: &str, tls: &TlsConfig) {
    let suites: Vec<String> = match &tls.ciphers {
        Some(c) => c
            .suites
            .iter()
            .map(|s| s.openssl_name().to_owned())
            .collect(),
        None => TlsSuite::ALL
            .iter()
            .map(|s| s.openssl_name().to_owned())
            .collect(),
    };
    info!(
        "{at}: TLS with cipher suites {}; client certificates {}",
        suites.join(", "),
        if tls.client_certificates() {
            "required (ca_certificates)"
        } else {
            "not requested"
        }
    );
    if let Some(ciphers) = &tls.ciphers {
        if !ciphers.unmatched.is_empty() {
            warn!(
                "{at}: endpoint.tls.ciphers: left out, as they match no cipher suite rustls \
                 implements (it has ECDHE with AES-GCM or ChaCha20-Poly1305 only): {}",
                ciphers.unmatched.join(", ")
            );
        }
    }
    if let Some(dhparam) = &tls.dhparam {
        info!(
            "{at}: endpoint.tls.dhparam ({}) has no effect: rustls offers only elliptic-curve \
             Diffie-Hellman key exchange (ECDHE), which takes no DH parameters",
            dhparam.display()
        );
    }
}

/// `workers[0].transports[1]`, with the transport's `id` if it has one: how a transport is
/// named in messages.
fn position(worker: usize, index: usize, transport: &TransportConfig) -> String {
    match transport.id() {
        Some(id) => format!("workers[{worker}].transports[{index}] \"{id}\""),
        None => format!("workers[{worker}].transports[{index}]"),
    }
}

/// The ledger's database for the log; a PostgreSQL DSN without its password.
fn describe_ledger(store: &turnstile_config::LedgerStore) -> String {
    match store {
        turnstile_config::LedgerStore::Sqlite { path } => format!("SQLite {}", path.display()),
        turnstile_config::LedgerStore::Postgresql { dsn } => {
            let dsn = dsn.expose();
            // postgresql://user:password@host/db: keep what follows the last '@'.
            match dsn.rsplit_once('@') {
                Some((_, host)) => format!("PostgreSQL {host}"),
                None => format!("PostgreSQL {dsn}"),
            }
        }
    }
}

fn kind(transport: &TransportConfig) -> &'static str {
    match transport {
        TransportConfig::WebSocket { .. } => "websocket",
        TransportConfig::Web { .. } => "web",
        TransportConfig::RawSocket { .. } => "rawsocket",
    }
}

fn serializer_names(serializers: &[Serializer]) -> String {
    serializers
        .iter()
        .map(|s| s.name())
        .collect::<Vec<_>>()
        .join(", ")
}

/// `web on 127.0.0.1:8080 (ws at /ws: json, msgpack, cbor)` and the like.
fn describe(transport: &TransportConfig, local: &LocalAddr) -> String {
    let secure = matches!(transport.endpoint(), Endpoint::Tcp { tls: Some(_), .. });
    let local = if secure {
        format!("{local} (TLS)")
    } else {
        local.to_string()
    };
    match transport {
        TransportConfig::Web { paths, .. } => {
            let services: Vec<String> = paths
                .iter()
                .map(|(key, path)| {
                    let at = web::mount_point(key);
                    match path {
                        WebPath::WebSocket(s) => {
                            format!("ws at {at}: {}", serializer_names(&s.serializers))
                        }
                        WebPath::Static { directory } => {
                            format!("static at {at}: {}", directory.display())
                        }
                    }
                })
                .collect();
            format!("web on {local} ({})", services.join("; "))
        }
        TransportConfig::WebSocket { path, service, .. } => {
            format!(
                "websocket on {local} at {path} ({})",
                serializer_names(&service.serializers)
            )
        }
        TransportConfig::RawSocket {
            serializers,
            max_message_size,
            ..
        } => format!(
            "rawsocket on {local} ({}; max message {max_message_size} bytes)",
            serializer_names(serializers)
        ),
    }
}
