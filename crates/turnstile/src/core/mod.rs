//! The router core: realms, sessions, broker, dealer, authorization, metering and meta events.
//!
//! The routing logic ([`realm::Realm`] and its parts) does no I/O: it takes `handle_*` inputs with
//! the current time and queues serialized messages on each connection's [`peer::PeerSender`].
//! [`realm_task`] is the async shell that drives it; [`connection`] decodes on the connection's
//! own task.

pub mod auth;
pub mod authorization;
pub mod broker;
pub mod clock;
pub mod connection;
pub mod dealer;
pub mod meter;
pub mod peer;
pub mod realm;
pub mod realm_task;
pub mod router;
pub mod session;
pub mod timer;

#[cfg(test)]
mod tests;
