//! The HTTP side of `web` and `websocket` transports: one axum app per transport, mounting
//! WebSocket services and static directories on their paths, served on the transport's socket.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use std::time::Duration;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::serve::Listener;
use hyper::body::Incoming;
use hyper::Request;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;
use tower_http::services::ServeDir;
use tracing::{debug, trace};
use turnstile_config::{WebPath, WebSocketService};

use crate::limits::ConnectionLimits;
use crate::runtime::router::Router;
use crate::transport::admission::Admitted;
use crate::transport::driver::Conns;
use crate::transport::listener::PeerAddr;
use crate::transport::websocket::WsEndpoint;
use crate::transport::AuthSlot;

/// `/` for the root key, `/<key>` otherwise.
pub(crate) fn mount_point(key: &str) -> String {
    format!("/{}", key.trim_matches('/'))
}

/// The app of a `web` transport, and the `auth` slot of each of its WebSocket paths (by key),
/// which a configuration reload replaces.
pub(crate) fn web_app(
    paths: &BTreeMap<String, WebPath>,
    router: &Arc<Router>,
    conns: &Conns,
    limits: &ConnectionLimits,
) -> (axum::Router, BTreeMap<String, AuthSlot>) {
    let mut app = axum::Router::new();
    let mut slots = BTreeMap::new();
    for (key, path) in paths {
        let at = mount_point(key);
        app = match path {
            WebPath::WebSocket(service) => {
                let auth = AuthSlot::new(service.auth.as_ref());
                slots.insert(key.clone(), auth.clone());
                app.route(&at, ws_endpoint(service, auth, router, conns, limits))
            }
            WebPath::Static { directory } if at == "/" => {
                app.fallback_service(static_dir(directory))
            }
            WebPath::Static { directory } => app.nest_service(&at, static_dir(directory)),
        };
    }
    (app, slots)
}

/// The app of a `websocket` transport: the service at `path`, 404 elsewhere, with `auth` as
/// its (reloadable) `auth` section.
pub(crate) fn websocket_app(
    path: &str,
    service: &WebSocketService,
    auth: AuthSlot,
    router: &Arc<Router>,
    conns: &Conns,
    limits: &ConnectionLimits,
) -> axum::Router {
    let at = if path.starts_with('/') {
        path.to_owned()
    } else {
        format!("/{path}")
    };
    axum::Router::new().route(&at, ws_endpoint(service, auth, router, conns, limits))
}

fn ws_endpoint(
    service: &WebSocketService,
    auth: AuthSlot,
    router: &Arc<Router>,
    conns: &Conns,
    limits: &ConnectionLimits,
) -> axum::routing::MethodRouter {
    Arc::new(WsEndpoint {
        router: router.clone(),
        service: service.clone(),
        auth,
        conns: conns.clone(),
        message_timeout: limits.message_completion_timeout,
        hello_timeout: limits.handshake_timeout,
        max_outgoing_queue_bytes: limits.max_outgoing_queue_bytes,
    })
    .route()
}

fn static_dir(directory: &Path) -> ServeDir {
    ServeDir::new(directory).append_index_html_on_directories(true)
}

/// Serves `app` on `listener` until `stop` is cancelled, then lets open HTTP requests finish.
/// Upgraded WebSocket connections are not waited for here (they are in `Conns`).
///
/// Connections are served with hyper's HTTP/1 server directly rather than `axum::serve`, which
/// gives hyper no timer and so no request-head deadline
/// ([`crate::limits::HTTP_REQUEST_HEADER_TIMEOUT`]). HTTP/1 only, as before (axum's `http2`
/// feature is not enabled).
pub(crate) async fn serve<L, S>(
    mut listener: L,
    app: axum::Router,
    stop: CancellationToken,
    header_timeout: Duration,
) where
    L: Listener<Io = Admitted<S>, Addr = PeerAddr>,
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let connections = TaskTracker::new();
    loop {
        let (io, peer) = tokio::select! {
            _ = stop.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        // As axum::serve logged it before this loop replaced it.
        trace!(peer = %peer.peer_string(), "http connection accepted");
        let control = io.control();
        let app = app.clone();
        // What the handlers learn about the connection: the peer (axum's `ConnectInfo`
        // extractor reads it from here) and the socket's switches.
        let service = hyper::service::service_fn(move |mut req: Request<Incoming>| {
            req.extensions_mut().insert(ConnectInfo(peer));
            req.extensions_mut().insert(control.clone());
            app.clone().oneshot(req.map(Body::new))
        });
        let stop = stop.clone();
        connections.spawn(async move {
            let mut http = hyper::server::conn::http1::Builder::new();
            http.timer(TokioTimer::new())
                .header_read_timeout(header_timeout);
            let conn = http
                .serve_connection(TokioIo::new(io), service)
                .with_upgrades();
            tokio::pin!(conn);
            let result = tokio::select! {
                r = conn.as_mut() => r,
                _ = stop.cancelled() => {
                    conn.as_mut().graceful_shutdown();
                    conn.await
                }
            };
            if let Err(e) = result {
                // Also how a connection past its request-head deadline ends.
                debug!(peer = %peer.peer_string(), error = %e, "http connection ended with an error");
            }
        });
    }
    drop(listener);
    connections.close();
    connections.wait().await;
}
