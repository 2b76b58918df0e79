//! The HTTP side of `web` and `websocket` transports: one axum app per transport, mounting
//! WebSocket services and static directories on their paths, served on the transport's socket.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use axum::extract::connect_info::Connected;
use axum::serve::{IncomingStream, Listener};
use tokio_util::sync::CancellationToken;
use tower_http::services::ServeDir;
use tracing::debug;
use turnstile_config::{WebPath, WebSocketService};

use crate::runtime::router::Router;
use crate::transport::driver::Conns;
use crate::transport::listener::PeerAddr;
use crate::transport::websocket::WsEndpoint;

/// `/` for the root key, `/<key>` otherwise.
pub fn mount_point(key: &str) -> String {
    format!("/{}", key.trim_matches('/'))
}

/// The app of a `web` transport.
pub fn web_app(
    paths: &BTreeMap<String, WebPath>,
    router: &Arc<Router>,
    conns: &Conns,
) -> axum::Router {
    let mut app = axum::Router::new();
    for (key, path) in paths {
        let at = mount_point(key);
        app = match path {
            WebPath::WebSocket(service) => app.route(&at, ws_endpoint(service, router, conns)),
            WebPath::Static { directory } if at == "/" => {
                app.fallback_service(static_dir(directory))
            }
            WebPath::Static { directory } => app.nest_service(&at, static_dir(directory)),
        };
    }
    app
}

/// The app of a `websocket` transport: the service at `path`, 404 elsewhere.
pub fn websocket_app(
    path: &str,
    service: &WebSocketService,
    router: &Arc<Router>,
    conns: &Conns,
) -> axum::Router {
    let at = if path.starts_with('/') {
        path.to_owned()
    } else {
        format!("/{path}")
    };
    axum::Router::new().route(&at, ws_endpoint(service, router, conns))
}

fn ws_endpoint(
    service: &WebSocketService,
    router: &Arc<Router>,
    conns: &Conns,
) -> axum::routing::MethodRouter {
    Arc::new(WsEndpoint {
        router: router.clone(),
        service: service.clone(),
        conns: conns.clone(),
    })
    .route()
}

fn static_dir(directory: &Path) -> ServeDir {
    ServeDir::new(directory).append_index_html_on_directories(true)
}

/// Serves `app` on `listener` until `stop` is cancelled, then lets open HTTP requests finish.
/// Upgraded WebSocket connections are not waited for here (they are in `Conns`).
pub async fn serve<L>(listener: L, app: axum::Router, stop: CancellationToken)
where
    L: Listener<Addr = PeerAddr>,
    PeerAddr: for<'a> Connected<IncomingStream<'a, L>>,
{
    let service = app.into_make_service_with_connect_info::<PeerAddr>();
    let result = axum::serve(listener, service)
        .with_graceful_shutdown(stop.cancelled_owned())
        .await;
    if let Err(e) = result {
        debug!(error = %e, "http server ended with an error");
    }
}
