//! The log of WAMP messages a [`crate::Transport`] sent and received, with their exact
//! serialized lengths: the WebSocket message payload or the RawSocket frame payload, without
//! any framing header. This is what the router meters, so the two can be compared exactly.
//!
//! Raw bytes sent with `send_raw`, control frames (WebSocket ping/pong/close, RawSocket
//! ping/pong) and the handshakes are not recorded.

/// Which way a message went, seen from the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// Sent by the client to the router.
    Sent,
    /// Received by the client from the router.
    Received,
}

/// One recorded message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Record {
    /// Whether the client sent or received the message.
    pub direction: Direction,
    /// The WAMP message type code (`wamp_proto::message::code`).
    pub code: u64,
    /// Serialized length in bytes.
    pub len: usize,
}

impl Record {
    /// `ceil(len / rated_message_size)`: the message's rated messages.
    pub fn rated(&self, rated_message_size: u64) -> u64 {
        (self.len as u64).div_ceil(rated_message_size)
    }
}

/// A position in the log, from [`crate::Transport::mark`]; the default is the start.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct TrafficMark(pub(crate) usize);

/// Totals and the per-message log.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Traffic {
    /// Messages the client sent.
    pub sent_messages: u64,
    /// Serialized bytes of the messages the client sent (no framing).
    pub sent_bytes: u64,
    /// Messages the client received.
    pub received_messages: u64,
    /// Serialized bytes of the messages the client received (no framing).
    pub received_bytes: u64,
    /// Every message, in the order the client sent or received it.
    pub per_message: Vec<Record>,
}

impl Traffic {
    /// Adds one message.
    pub fn record(&mut self, direction: Direction, code: u64, len: usize) {
        match direction {
            Direction::Sent => {
                self.sent_messages += 1;
                self.sent_bytes += len as u64;
            }
            Direction::Received => {
                self.received_messages += 1;
                self.received_bytes += len as u64;
            }
        }
        self.per_message.push(Record {
            direction,
            code,
            len,
        });
    }

    /// The traffic of `records` alone.
    pub fn from_records<'a>(records: impl IntoIterator<Item = &'a Record>) -> Self {
        let mut t = Traffic::default();
        for r in records {
            t.record(r.direction, r.code, r.len);
        }
        t
    }

    /// Messages in both directions.
    pub fn messages(&self) -> u64 {
        self.sent_messages + self.received_messages
    }

    /// Bytes in both directions.
    pub fn bytes(&self) -> u64 {
        self.sent_bytes + self.received_bytes
    }

    /// Rated messages in both directions: the sum of `ceil(len / rated_message_size)`.
    pub fn rated_messages(&self, rated_message_size: u64) -> u64 {
        self.per_message
            .iter()
            .map(|r| r.rated(rated_message_size))
            .sum()
    }

    /// The traffic after `mark` (a position taken earlier from the same log).
    pub fn since(&self, mark: TrafficMark) -> Traffic {
        Traffic::from_records(self.per_message.get(mark.0..).unwrap_or_default())
    }

    /// The traffic between two marks.
    pub fn between(&self, from: TrafficMark, to: TrafficMark) -> Traffic {
        Traffic::from_records(self.per_message.get(from.0..to.0).unwrap_or_default())
    }

    /// The current end of the log.
    pub fn mark(&self) -> TrafficMark {
        TrafficMark(self.per_message.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn totals_rating_and_marks() {
        let mut t = Traffic::default();
        t.record(Direction::Sent, 1, 16);
        t.record(Direction::Received, 2, 17);
        let m = t.mark();
        t.record(Direction::Sent, 6, 1);
        assert_eq!((t.sent_messages, t.sent_bytes), (2, 17));
        assert_eq!((t.received_messages, t.received_bytes), (1, 17));
        assert_eq!((t.messages(), t.bytes()), (3, 34));
        assert_eq!(t.rated_messages(16), 1 + 2 + 1);
        assert_eq!(t.rated_messages(1), 34);
        let after = t.since(m);
        assert_eq!((after.messages(), after.bytes()), (1, 1));
        let before = t.between(TrafficMark(0), m);
        assert_eq!((before.messages(), before.bytes()), (2, 33));
    }
}
