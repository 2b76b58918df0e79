//! The async runtime around the sans-IO core: one task per realm that drives a
//! [`turnstile_core::realm::Realm`], the router that connections enter through, each connection's
//! front door (decoding on the connection's own task), and the outgoing queue the core writes to.

pub(crate) mod connection;
pub(crate) mod outbox;
pub(crate) mod realm_task;
pub(crate) mod router;
