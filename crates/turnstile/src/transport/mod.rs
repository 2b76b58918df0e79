//! Transports: WebSocket (sharing its port with an HTTP server for static files) and RawSocket,
//! over TCP (plain or TLS) or Unix sockets. Each connection runs in its own task and talks to the router core
//! through a `runtime::connection::Connection`.

pub mod admission;
mod driver;
pub(crate) mod listener;
pub(crate) mod rawsocket;
pub(crate) mod tls;
pub(crate) mod web;
pub(crate) mod websocket;

pub(crate) use driver::Conns;
pub use listener::LocalAddr;
pub use tls::TlsError;

use std::sync::Arc;

/// The core's view of a transport's `auth` section, shared by its connections.
pub(crate) fn transport_auth(
    auth: Option<&turnstile_config::AuthConfig>,
) -> Option<Arc<turnstile_config::AuthConfig>> {
    auth.cloned().map(Arc::new)
}
