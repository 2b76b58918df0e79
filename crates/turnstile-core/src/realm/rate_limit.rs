//! The per-session message rate limit ([`limits::MAX_MESSAGES_PER_SECOND`]): every message a
//! session sends takes a token from its bucket; without one, a message that starts something new
//! is refused (ERROR) or, for an unacknowledged PUBLISH, dropped, and the refusals are logged at
//! most once every [`limits::LIMIT_LOG_INTERVAL`] per session.

use tracing::warn;
use wamp_proto::message::code;
use wamp_proto::{Id, Message, Value};

use super::Realm;
use crate::limits;
use crate::peer::ConnId;
use crate::rate::{TokenBucket, WarnThrottle};

/// A session's rate limit state (present while its realm has a rate).
#[derive(Debug)]
pub(crate) struct SessionRate {
    bucket: TokenBucket,
    /// Messages refused or dropped since the session joined (or the rate changed).
    total: u64,
    warnings: WarnThrottle,
}

impl Realm {
    /// Whether `msg` from the session of `conn` is within the session's message rate. When it is
    /// not, it has been answered with ERROR [`limits::LIMIT_EXCEEDED`] (or dropped) here.
    pub(super) fn within_rate(&mut self, conn: ConnId, msg: &Message) -> bool {
        let (per_second, burst) = (
            self.session_limits.max_messages_per_second,
            self.session_limits.burst(),
        );
        let now = self.now;
        let rpc = &self.rpc;
        let Some(s) = self.sessions.get_mut(&conn) else {
            return true;
        };
        if per_second == 0 {
            s.rate = None;
            return true;
        }
        let rate = match &mut s.rate {
            Some(rate) if rate.bucket.is_for(per_second, burst) => rate,
            // New, or the limit changed: a full bucket at the new rate.
            slot => slot.insert(Box::new(SessionRate {
                bucket: TokenBucket::new(per_second, burst, now),
                total: 0,
                warnings: WarnThrottle::default(),
            })),
        };
        if rate.bucket.try_take(now) {
            return true;
        }
        // Over the rate: only what starts something new is refused.
        let refused: Option<(u64, Id)> = match msg {
            Message::Publish {
                request, options, ..
            } => match options.get("acknowledge") {
                Some(Value::Bool(true)) => Some((code::PUBLISH, *request)),
                _ => None,
            },
            Message::Subscribe { request, .. } => Some((code::SUBSCRIBE, *request)),
            Message::Register { request, .. } => Some((code::REGISTER, *request)),
            Message::Call { request, .. } if rpc.calls.of_call(conn, *request).is_none() => {
                Some((code::CALL, *request))
            }
            _ => return true,
        };
        rate.total += 1;
        if let Some(refused) = rate.warnings.due(now) {
            warn!(
                session = s.id,
                authid = %s.identity.authid,
                limit = "max_messages_per_second",
                max_messages_per_second = per_second,
                burst,
                refused,
                refused_total = rate.total,
                "session exceeds its message rate; requests refused, unacknowledged publications dropped"
            );
        }
        if let Some((request_type, request)) = refused {
            let text = format!(
                "session exceeds its limit of {per_second} messages per second (burst {burst}): \
                 slow down and retry later"
            );
            self.send_error(conn, request_type, request, limits::LIMIT_EXCEEDED, &text);
        }
        false
    }
}
