//! Transports: WebSocket (sharing its port with an HTTP server for static files) and RawSocket,
//! over TCP or Unix sockets. Each connection runs in its own task and talks to the router core
//! through a [`crate::core::connection::Connection`].

mod driver;
pub mod listener;
pub mod rawsocket;
pub mod web;
pub mod websocket;

pub use driver::Conns;
pub use listener::{LocalAddr, PeerAddr};

use crate::core::peer::AnonymousAuth;

/// The core's view of a transport's `auth` section.
///
/// Note: the core's `None` means Crossbar's default (anonymous allowed), so a configuration
/// that would not offer anonymous authentication (`auth` without `anonymous`, which the loader
/// does not accept yet) maps to the default too.
pub fn anonymous_auth(auth: Option<&turnstile_config::AuthConfig>) -> Option<AnonymousAuth> {
    let anonymous = auth?.anonymous.as_ref()?;
    Some(AnonymousAuth {
        role: anonymous.role.clone(),
        authid: anonymous.authid.clone(),
    })
}
