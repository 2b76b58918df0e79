//! The async runtime around the sans-IO core: one task per realm that drives a
//! [`turnstile_core::realm::Realm`], the router that connections enter through, each connection's
//! front door (decoding on the connection's own task), and the outgoing queue the core writes to.

pub mod connection;
pub mod outbox;
pub mod realm_task;
pub mod router;
