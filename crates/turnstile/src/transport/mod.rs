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

use std::sync::{Arc, RwLock};

use turnstile_config::AuthConfig;

/// A transport's (or a WebSocket path's) `auth` section as the configuration has it now: a
/// connection reads it when it opens and again at each HELLO, so a configuration reload that
/// replaces it applies to every session established afterwards.
#[derive(Debug, Clone, Default)]
pub(crate) struct AuthSlot(Arc<RwLock<Option<Arc<AuthConfig>>>>);

impl AuthSlot {
    /// A slot holding `auth` (`None`: anonymous with role `anonymous`).
    pub(crate) fn new(auth: Option<&AuthConfig>) -> Self {
        AuthSlot(Arc::new(RwLock::new(auth.cloned().map(Arc::new))))
    }

    /// The section sessions authenticate with now.
    pub(crate) fn current(&self) -> Option<Arc<AuthConfig>> {
        self.0.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Replaces the section for the sessions established from now on.
    pub(crate) fn replace(&self, auth: Option<&AuthConfig>) {
        *self.0.write().unwrap_or_else(|e| e.into_inner()) = auth.cloned().map(Arc::new);
    }
}
