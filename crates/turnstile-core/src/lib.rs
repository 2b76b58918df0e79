//! The routing core of Turnstile: each realm (its sessions, broker, dealer, authorization,
//! authentication flows, metering and meta API) as a state machine without I/O.
//!
//! The crate has no networking code, no async runtime and reads no clock: every time-aware input
//! takes `now`, so a test drives it with a fake clock and gets the same result every time. Cargo
//! keeps the boundary: this crate does not depend on tokio or any socket library.
//!
//! A [`realm::Realm`] takes `handle_*(…, now)` inputs (a HELLO, a decoded message, a lost
//! connection, a timeout, the answer of a call it asked for) and produces:
//! - serialized messages, pushed as shared `Bytes` into each connection's [`peer::Outbox`] (the
//!   runtime's queue; the core never waits on it);
//! - one deadline, [`realm::Realm::poll_timeout`], at which the runtime calls `handle_timeout`;
//! - effects, [`realm::Realm::poll_effect`]: calls into other realms and answers to calls the
//!   runtime made, which the runtime carries out.
//! - closed statistics cycles for the usage ledger, [`realm::Realm::poll_usage`]: the figures
//!   of each `wamp.session.on_stats` event with the session's identity and transport
//!   ([`realm::UsageRow`]), which the runtime writes to its database.
//!
//! # Layout
//! Public: what the runtime (the `turnstile` crate) uses. The other modules are crate-private.
//! - [`realm`]: the realm state machine (life cycle, pub/sub, RPC, meta procedures, and its
//!   authorization step in `realm/authorize.rs`, which applies `permissions` or a dynamic
//!   authorizer).
//! - [`dealer`]: registrations, and the outcome of a call the router makes
//!   ([`dealer::InternalCallOutcome`]).
//! - [`peer`]: what the core knows of a connection and the queue it writes to.
//! - [`limits`]: the limits the core enforces.
//! - [`calendar`]: Gregorian dates of day counts (for time-stamps here and the usage ledger's
//!   periods in the runtime).
//!
//! Crate-private:
//! - `session`: a session as the realm keeps it.
//! - `calls`: the calls in flight, by invocation, by caller and by callee, and each callee's
//!   INVOCATION request ids.
//! - `broker`: subscriptions; it and the dealer keep theirs in a `uri_table::UriTable` (exact,
//!   prefix and wildcard URIs with WAMP's matching rules), and remove those of sessions that
//!   left in bounded batches (`departures`).
//! - `permissions`: static roles and their permissions (which role may do what on which URI).
//! - `auth`: authentication methods and flows; `auth::dynamic_authorizer`: the arguments,
//!   answers and per-session cache of dynamic authorizers (procedures deciding for a role).
//! - `meter`: per-session usage metering (`wamp.session.on_stats`).
//! - `rate`: the token bucket of the per-session message rate limit.
//! - `timer`: the realm's table of deadlines; `clock`: wall-clock time from instants and its
//!   one ISO-8601 formatter.

// Library code turns malformed input into an error, never a panic.
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

pub(crate) mod auth;
pub(crate) mod broker;
pub mod calendar;
pub(crate) mod calls;
pub(crate) mod clock;
pub mod dealer;
pub(crate) mod departures;
pub mod limits;
pub(crate) mod meter;
pub mod peer;
pub(crate) mod permissions;
pub(crate) mod rate;
pub mod realm;
pub(crate) mod session;
pub(crate) mod timer;
pub(crate) mod uri_table;

#[cfg(test)]
mod tests;
