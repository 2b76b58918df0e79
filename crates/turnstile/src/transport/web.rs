//! The HTTP side of `web` and `websocket` transports: one axum app per transport, mounting
//! WebSocket services and static directories on their paths, served on the transport's socket
//! (plain, or over TLS after the handshake).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use std::time::Duration;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::serve::Listener;
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
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
use crate::transport::admission::{Admitted, SocketControl};
use crate::transport::driver::Conns;
use crate::transport::listener::PeerAddr;
use crate::transport::tls::{Secured, ServerTls};
use crate::transport::websocket::WsEndpoint;
use crate::transport::AuthSlot;

/// `/` for the root key, `/<key>` otherwise.
pub(crate) fn mount_point(key: &str) -> String {
    format!("/{}", key.trim_matches('/'))
}

/// The app of a `web` transport, and the `auth` slot of each of its WebSocket paths (by key),
/// which a configuration reload replaces. With `hsts_max_age`, every response says
/// `Strict-Transport-Security: max-age=N` (as Crossbar's `hsts` option does).
pub(crate) fn web_app(
    paths: &BTreeMap<String, WebPath>,
    hsts_max_age: Option<u64>,
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
    let app = match hsts_max_age {
        Some(age) => {
            let value = HeaderValue::from_str(&format!("max-age={age}")).expect("ASCII digits");
            app.layer(axum::middleware::map_response(
                move |mut response: axum::response::Response| {
                    let value = value.clone();
                    async move {
                        response
                            .headers_mut()
                            .insert(header::STRICT_TRANSPORT_SECURITY, value);
                        response
                    }
                },
            ))
        }
        None => app,
    };
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
/// Upgraded WebSocket connections are not waited for here (they are in `Conns`). With `tls`,
/// each connection first completes a TLS handshake, within `header_timeout` of the accept (the
/// same deadline as the request head); a client that does not speak TLS is closed.
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
    tls: Option<ServerTls>,
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
        let accepted_at = tokio::time::Instant::now();
        let app = app.clone();
        let stop = stop.clone();
        let tls = tls.clone();
        connections.spawn(async move {
            let control = io.control();
            let Some(tls) = tls else {
                let service = http_service(app, peer, control, None);
                return serve_http(io, service, &stop, header_timeout, peer).await;
            };
            let handshake = tokio::select! {
                r = tls.accept(io, accepted_at + header_timeout) => r,
                _ = stop.cancelled() => return,
            };
            match handshake {
                Ok((stream, secured)) => {
                    let service = http_service(app, peer, control, Some(Arc::new(secured)));
                    serve_http(stream, service, &stop, header_timeout, peer).await;
                }
                Err(why) => {
                    debug!(peer = %peer.peer_string(), reason = %why, "tls: connection closed")
                }
            }
        });
    }
    drop(listener);
    connections.close();
    connections.wait().await;
}

/// What the handlers learn about the connection: the peer (axum's `ConnectInfo` extractor reads
/// it from here), the socket's switches and, on a TLS endpoint, the TLS session.
fn http_service(
    app: axum::Router,
    peer: PeerAddr,
    control: Arc<SocketControl>,
    secured: Option<Arc<Secured>>,
) -> impl hyper::service::Service<
    Request<Incoming>,
    Response = axum::response::Response,
    Error = std::convert::Infallible,
    Future = impl Send,
> + Clone {
    hyper::service::service_fn(move |mut req: Request<Incoming>| {
        req.extensions_mut().insert(ConnectInfo(peer));
        req.extensions_mut().insert(control.clone());
        if let Some(secured) = &secured {
            req.extensions_mut().insert(secured.clone());
        }
        app.clone().oneshot(req.map(Body::new))
    })
}

/// Serves one HTTP/1 connection (with upgrades) until it ends or `stop` asks it to finish.
async fn serve_http<I, Svc>(
    io: I,
    service: Svc,
    stop: &CancellationToken,
    header_timeout: Duration,
    peer: PeerAddr,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    Svc: hyper::service::Service<
            Request<Incoming>,
            Response = axum::response::Response,
            Error = std::convert::Infallible,
        > + Send
        + 'static,
    Svc::Future: Send + 'static,
{
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
}
