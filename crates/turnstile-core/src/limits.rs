//! Named limits the routing core enforces, each with its default and what happens when it is
//! reached. The runtime's own limits (queues, buffers, I/O deadlines) are in `turnstile::limits`.

use std::time::Duration;

use turnstile_config::SessionLimitsConfig;

/// How long the router waits for a client's GOODBYE reply after sending GOODBYE (kill, shutdown)
/// before it ends the session anyway.
pub const GOODBYE_REPLY_TIMEOUT: Duration = Duration::from_secs(3);

/// How long a client may take from opening the connection to WELCOME (HELLO, and any
/// authentication round trip). One deadline, counted from the opening and enforced once for each
/// part of the handshake: the transport closes a connection that has sent no HELLO by then;
/// after HELLO the realm refuses a session it has not welcomed by then (ABORT
/// `wamp.error.authentication_failed`). A later session on the same connection (after GOODBYE)
/// gets this long from its HELLO.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Topics whose last `retain` event a realm keeps. Beyond this the topic retained longest ago
/// is forgotten, so retention cannot make memory grow without bound.
pub const MAX_RETAINED_TOPICS: usize = 10_000;

/// Subscriptions one session may hold at once. A SUBSCRIBE that would exceed it is refused with
/// ERROR [`LIMIT_EXCEEDED`] (and a logged warning, see [`LIMIT_LOG_INTERVAL`]); the session goes on, and may subscribe again
/// once it has unsubscribed from something.
pub const MAX_SUBSCRIPTIONS_PER_SESSION: usize = 10_000;

/// Registrations one session may hold at once. A REGISTER that would exceed it is refused with
/// ERROR [`LIMIT_EXCEEDED`] (and a logged warning); the session goes on, and may register again
/// once it has unregistered something.
pub const MAX_REGISTRATIONS_PER_SESSION: usize = 10_000;

/// Calls one caller session may have in flight (sent to a callee, not answered yet). A CALL
/// beyond it is refused with ERROR [`LIMIT_EXCEEDED`] (and a logged warning) without reaching
/// a callee; the session goes on, and may call again once a call has finished.
pub const MAX_CALLS_IN_FLIGHT_PER_SESSION: usize = 10_000;

/// Messages per second a session may send, sustained (a token bucket refilled at this rate,
/// holding [`SessionLimits::message_burst`] tokens); 0, the default: no limit. Every message
/// the session sends after HELLO takes a token (every message is still metered). Without a
/// token, a message that starts something new is refused: CALL (but not a further chunk of a
/// progressive call), SUBSCRIBE, REGISTER and acknowledged PUBLISH get ERROR
/// [`LIMIT_EXCEEDED`]; an unacknowledged PUBLISH is dropped. Answers and endings always pass
/// (YIELD, ERROR, CANCEL, UNSUBSCRIBE, UNREGISTER, GOODBYE, ABORT), so a limited callee still
/// answers its calls. The session goes on; refusals are logged as a warning at most once every
/// [`LIMIT_LOG_INTERVAL`] per session, with the count since the last line.
pub const MAX_MESSAGES_PER_SECOND: u32 = 0;

/// How often, at most, the requests one session had refused at one of its limits (its message
/// rate; or its subscriptions, registrations and calls in flight) are logged; each line has the
/// count since the last, so a client cannot flood the log.
pub const LIMIT_LOG_INTERVAL: Duration = Duration::from_secs(10);

/// Subscriptions and registrations of sessions that left that a realm removes in one step. A
/// leaving session is detached from all of them at once (nothing is routed to it any more); the
/// removal itself, and its `on_unsubscribe`/`on_unregister`/`on_delete` meta events, follow in
/// steps of this many, one when the session leaves and then one per
/// `Realm::handle_timeout`, which the realm asks for at once (`Realm::poll_timeout`) while any
/// are left. Other inputs are handled between the steps, so a session leaving with 100,000
/// subscriptions no longer stalls its realm for the whole removal. A removal costs a few
/// microseconds (measured: 1,024 of them took 5 ms on average on a loaded 2-core VM), so a step
/// of 256 stays well under the 10 ms routing pause allowed.
pub const CLEANUP_BATCH: usize = 256;

/// The error URI of a request refused because its session reached one of its per-session
/// limits. The WAMP spec defines no error for resource limits and reserves the `wamp.`
/// namespace for the URIs it defines, so this one is the router's own.
pub const LIMIT_EXCEEDED: &str = "turnstile.error.limit_exceeded";

/// The per-session limits a realm enforces; [`Default`] gives the constants above, and
/// [`SessionLimits::from_config`] a realm's `limits` (a key not given: its constant).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionLimits {
    /// See [`MAX_SUBSCRIPTIONS_PER_SESSION`].
    pub max_subscriptions: usize,
    /// See [`MAX_REGISTRATIONS_PER_SESSION`].
    pub max_registrations: usize,
    /// See [`MAX_CALLS_IN_FLIGHT_PER_SESSION`].
    pub max_calls_in_flight: usize,
    /// See [`MAX_MESSAGES_PER_SECOND`]; 0: no limit.
    pub max_messages_per_second: u32,
    /// Messages a session may send at once above the rate: the token bucket's size, full when
    /// the session joins. 0 (the default) means one second's worth, `max_messages_per_second`.
    pub message_burst: u32,
}

impl SessionLimits {
    /// The limits of a realm's `limits` section.
    pub fn from_config(config: &SessionLimitsConfig) -> Self {
        let defaults = Self::default();
        Self {
            max_subscriptions: config
                .max_subscriptions
                .unwrap_or(defaults.max_subscriptions),
            max_registrations: config
                .max_registrations
                .unwrap_or(defaults.max_registrations),
            max_calls_in_flight: config
                .max_calls_in_flight
                .unwrap_or(defaults.max_calls_in_flight),
            max_messages_per_second: config
                .max_messages_per_second
                .unwrap_or(defaults.max_messages_per_second),
            message_burst: config.message_burst.unwrap_or(defaults.message_burst),
        }
    }

    /// The token bucket's size: `message_burst`, or one second's worth if that is 0.
    pub fn burst(&self) -> u32 {
        if self.message_burst == 0 {
            self.max_messages_per_second
        } else {
            self.message_burst
        }
    }
}

impl Default for SessionLimits {
    fn default() -> Self {
        Self {
            max_subscriptions: MAX_SUBSCRIPTIONS_PER_SESSION,
            max_registrations: MAX_REGISTRATIONS_PER_SESSION,
            max_calls_in_flight: MAX_CALLS_IN_FLIGHT_PER_SESSION,
            max_messages_per_second: MAX_MESSAGES_PER_SECOND,
            message_burst: 0,
        }
    }
}
