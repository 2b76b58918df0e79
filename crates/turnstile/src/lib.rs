//! Turnstile: a WAMP v2 router that meters every session it carries.
//!
//! # Layout
//! - `turnstile_core` (its own crate): realms, sessions, broker, dealer, authorization,
//!   authentication, metering and meta events, as a state machine without I/O.
//! - `runtime` (crate-private): the async shell around the core: one task per realm, the router
//!   connections enter through, each connection's decoding front door and its outgoing queue.
//! - [`transport`]: WebSocket (with the HTTP server it shares a port with) and RawSocket, plain
//!   or over TLS.
//! - [`server`]: starts a router worker's realms and transports from a configuration, applies a
//!   reloaded one, and stops them gracefully.
//! - [`reload`]: what a configuration reload changes, what needs a restart, and its report.
//! - [`ledger`]: the usage ledger (every statistics cycle in SQLite or PostgreSQL) and the
//!   reports of `turnstile usage`.
//! - [`limits`]: the named limits of the router.

pub mod ledger;
pub mod limits;
pub mod reload;
pub(crate) mod runtime;
pub mod server;
pub mod transport;
