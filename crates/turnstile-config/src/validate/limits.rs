//! The `limits` sections, a Turnstile extension: a router worker's (connections, deadlines,
//! queues, and per-session defaults under `session`), a realm's (per-session limits over the
//! worker's), and a transport's `max_connections`. Every key is optional; what is absent is the
//! router's default, named in `turnstile::limits`.

use std::time::Duration;

use crate::cursor::{Keys, Node, Obj, VResult};
use crate::model::{SessionLimitsConfig, WorkerLimits};

const WORKER_LIMITS: Keys = Keys {
    what: "router worker limits",
    allowed: &[
        "max_connections",
        "max_connections_per_ip",
        "handshake_timeout",
        "http_request_header_timeout",
        "message_completion_timeout",
        "frame_completion_timeout",
        "max_outgoing_queue_bytes",
        "session",
    ],
    unsupported: &[],
};

const SESSION_LIMITS: Keys = Keys {
    what: "per-session limits",
    allowed: &[
        "max_subscriptions",
        "max_registrations",
        "max_calls_in_flight",
        "max_messages_per_second",
        "message_burst",
    ],
    unsupported: &[],
};

/// The largest connection cap or per-session count: larger values are surely mistakes.
const MAX_COUNT: u64 = u32::MAX as u64;
/// The longest deadline, in seconds (one hour).
const MAX_TIMEOUT_SECS: u64 = 3600;
/// The smallest and largest outgoing queue: 1 KiB and 1 GiB.
const MIN_QUEUE_BYTES: u64 = 1 << 10;
const MAX_QUEUE_BYTES: u64 = 1 << 30;
/// The largest message rate and burst.
const MAX_RATE: u64 = 1_000_000;

/// `workers[i].limits`.
pub(super) fn worker_limits(node: &Node) -> VResult<WorkerLimits> {
    let obj = node.object(&WORKER_LIMITS)?;
    let timeout = |key: &str| {
        obj.opt(key, None, |n| {
            let secs = n.int_in(
                1,
                MAX_TIMEOUT_SECS,
                &format!("an integer between 1 and {MAX_TIMEOUT_SECS} (seconds)"),
            )?;
            Ok(Some(Duration::from_secs(secs)))
        })
    };
    Ok(WorkerLimits {
        max_connections: count(&obj, "max_connections", "connections")?,
        max_connections_per_ip: count(&obj, "max_connections_per_ip", "connections")?,
        handshake_timeout: timeout("handshake_timeout")?,
        http_request_header_timeout: timeout("http_request_header_timeout")?,
        message_completion_timeout: timeout("message_completion_timeout")?,
        frame_completion_timeout: timeout("frame_completion_timeout")?,
        max_outgoing_queue_bytes: obj.opt("max_outgoing_queue_bytes", None, |n| {
            let bytes = n.int_in(
                MIN_QUEUE_BYTES,
                MAX_QUEUE_BYTES,
                &format!("an integer between {MIN_QUEUE_BYTES} and {MAX_QUEUE_BYTES} (bytes)"),
            )?;
            Ok(Some(bytes as usize))
        })?,
        session: obj.opt("session", SessionLimitsConfig::default(), |n| {
            session_limits(n, SessionLimitsConfig::default())
        })?,
    })
}

/// Per-session limits (`workers[i].limits.session` or `realms[j].limits`); keys not given are
/// taken from `inherited` (the worker's, for a realm).
pub(super) fn session_limits(
    node: &Node,
    inherited: SessionLimitsConfig,
) -> VResult<SessionLimitsConfig> {
    let obj = node.object(&SESSION_LIMITS)?;
    let own = SessionLimitsConfig {
        max_subscriptions: count(&obj, "max_subscriptions", "subscriptions")?,
        max_registrations: count(&obj, "max_registrations", "registrations")?,
        max_calls_in_flight: count(&obj, "max_calls_in_flight", "calls")?,
        max_messages_per_second: obj.opt("max_messages_per_second", None, |n| {
            let rule =
                format!("an integer between 0 and {MAX_RATE} (messages per second; 0 = no limit)");
            Ok(Some(n.int_in(0, MAX_RATE, &rule)? as u32))
        })?,
        message_burst: obj.opt("message_burst", None, |n| {
            let rule = format!("an integer between 1 and {MAX_RATE} (messages)");
            Ok(Some(n.int_in(1, MAX_RATE, &rule)? as u32))
        })?,
    };
    let limits = own.or(inherited);
    if let Some(burst) = obj.get("message_burst") {
        if limits.max_messages_per_second.unwrap_or(0) == 0 {
            return Err(burst.conflict(
                "a burst needs a message rate: set \"max_messages_per_second\" (here or, for a \
                 realm, in its worker's \"limits.session\") to a positive value",
            ));
        }
    }
    Ok(limits)
}

/// A transport's `max_connections`.
pub(super) fn transport_max_connections(obj: &Obj) -> VResult<Option<usize>> {
    count(obj, "max_connections", "connections")
}

/// An optional count at `key`, at least 1.
fn count(obj: &Obj, key: &str, what: &str) -> VResult<Option<usize>> {
    obj.opt(key, None, |n| {
        let rule = format!("an integer between 1 and {MAX_COUNT} ({what})");
        Ok(Some(n.int_in(1, MAX_COUNT, &rule)? as usize))
    })
}
