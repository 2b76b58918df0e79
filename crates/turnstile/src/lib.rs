//! Turnstile: a WAMP v2 router that meters every session it carries.
//!
//! # Layout
//! - [`core`]: realms, sessions, broker, dealer, authorization, metering and meta events; no I/O.
//! - [`transport`]: WebSocket (with the HTTP server it shares a port with) and RawSocket.
//! - [`server`]: starts a router worker's realms and transports from a configuration, and stops
//!   them gracefully.
//! - [`limits`]: the named limits of the router.

pub mod core;
pub mod limits;
pub mod server;
pub mod transport;
