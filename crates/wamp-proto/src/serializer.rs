//! Serializers: encode and decode [`Message`]s as JSON, MessagePack or CBOR.
//!
//! Encoding writes the message's elements straight into the output buffer (no intermediate
//! [`crate::Value`] tree). Decoding reads the bytes in one pass into a [`crate::Value`] list and
//! moves its parts into the [`Message`], checking the shape strictly: a non-empty list, a known
//! integer type code, the element count of that type, ids in [1, 2^53], dicts, strings and the
//! optional Args list and KwArgs dict. URI syntax is not checked here (realm-specific rules).
//! Decoding is bounded by a budget ([`DecodeLimits`]: nesting depth, element count, and
//! estimated memory relative to the message length), checked as the bytes are read so that a
//! message that would cost too much is refused before the memory is taken.
//!
//! Binary is a MessagePack `bin`, a CBOR byte string, or in JSON a string `"\0" + base64`.

use crate::{cbor, json, msgpack, wire, DecodeError, DecodeLimits, EncodeError, Message};

/// The deepest nesting of lists and dicts [`Serializer::decode`] accepts (as JSON's, whose limit
/// is serde_json's: 128), so that hostile input cannot exhaust the stack: the default
/// [`DecodeLimits::max_depth`].
pub const MAX_DEPTH: usize = crate::limits::DEFAULT_MAX_DEPTH;

/// A WAMP serializer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Serializer {
    /// JSON (`wamp.2.json`, RawSocket id 1), binary as `"\0" + base64` strings.
    Json,
    /// MessagePack (`wamp.2.msgpack`, RawSocket id 2).
    MsgPack,
    /// CBOR (`wamp.2.cbor`, RawSocket id 3).
    Cbor,
}

impl Serializer {
    /// All serializers, in the order JSON, MessagePack, CBOR; `index()` is the position here.
    pub const ALL: [Serializer; 3] = [Serializer::Json, Serializer::MsgPack, Serializer::Cbor];

    /// 0, 1, 2: for arrays indexed by serializer (encode-once caches).
    pub fn index(self) -> usize {
        self as usize
    }
    /// `json`, `msgpack`, `cbor`: the name used in configuration and session details.
    pub fn name(self) -> &'static str {
        match self {
            Serializer::Json => "json",
            Serializer::MsgPack => "msgpack",
            Serializer::Cbor => "cbor",
        }
    }
    /// The serializer named `name` (`json`, `msgpack`, `cbor`), the inverse of [`Serializer::name`].
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.name() == name)
    }
    /// `wamp.2.json` etc.
    pub fn ws_subprotocol(self) -> &'static str {
        match self {
            Serializer::Json => "wamp.2.json",
            Serializer::MsgPack => "wamp.2.msgpack",
            Serializer::Cbor => "wamp.2.cbor",
        }
    }
    /// The serializer of a WebSocket subprotocol (`wamp.2.json`, ...), if it is one of ours.
    pub fn from_ws_subprotocol(p: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.ws_subprotocol() == p)
    }
    /// RawSocket serializer id: 1 JSON, 2 MessagePack, 3 CBOR.
    pub fn rawsocket_id(self) -> u8 {
        match self {
            Serializer::Json => 1,
            Serializer::MsgPack => 2,
            Serializer::Cbor => 3,
        }
    }
    /// The serializer of a RawSocket handshake serializer id (1, 2 or 3), if it is one of ours.
    pub fn from_rawsocket_id(id: u8) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.rawsocket_id() == id)
    }
    /// Whether a WebSocket carrying this serializer uses binary (not text) frames.
    pub fn is_binary(self) -> bool {
        !matches!(self, Serializer::Json)
    }

    /// The serializer's name in error texts: `JSON`, `MessagePack`, `CBOR`.
    pub fn display_name(self) -> &'static str {
        match self {
            Serializer::Json => "JSON",
            Serializer::MsgPack => "MessagePack",
            Serializer::Cbor => "CBOR",
        }
    }

    /// Encodes one message.
    ///
    /// Fails only for what the format cannot represent: a non-finite float in JSON, or a
    /// string, binary, list or dict longer than 2^32-1 in MessagePack.
    pub fn encode(self, msg: &Message) -> Result<Vec<u8>, EncodeError> {
        let mut out = Vec::with_capacity(128);
        self.encode_into(msg, &mut out)?;
        Ok(out)
    }

    /// Encodes one message, appending it to `out` (which is left as it was on error), so that a
    /// buffer can be reused or a frame header written before the message.
    pub fn encode_into(self, msg: &Message, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        let elems = wire::elems(msg);
        let start = out.len();
        let r = match self {
            Serializer::Json => json::encode_into(&elems, out),
            Serializer::MsgPack => msgpack::encode_into(&elems, out),
            Serializer::Cbor => {
                cbor::encode_into(&elems, out);
                Ok(())
            }
        };
        r.map_err(|detail| {
            out.truncate(start);
            EncodeError {
                message: msg.name(),
                serializer: self.display_name(),
                detail,
            }
        })
    }

    /// Decodes one message, checking its shape strictly (see the module documentation), within
    /// the default decode limits ([`DecodeLimits::DEFAULT`]).
    pub fn decode(self, bytes: &[u8]) -> Result<Message, DecodeError> {
        self.decode_with_limits(bytes, &DecodeLimits::DEFAULT)
    }

    /// Decodes one message as [`Serializer::decode`] does, within `limits`: a message that
    /// crosses one fails with [`DecodeError::Limit`] as soon as it does.
    pub fn decode_with_limits(
        self,
        bytes: &[u8],
        limits: &DecodeLimits,
    ) -> Result<Message, DecodeError> {
        wire::message_from_value(self.decode_value_with_limits(bytes, limits)?)
    }

    /// Decodes any one value (not necessarily a message) in this format, with the same rules for
    /// binary, integers and dict keys as [`Serializer::decode`], within the default limits.
    pub fn decode_value(self, bytes: &[u8]) -> Result<crate::Value, DecodeError> {
        self.decode_value_with_limits(bytes, &DecodeLimits::DEFAULT)
    }

    /// Decodes any one value as [`Serializer::decode_value`] does, within `limits`.
    pub fn decode_value_with_limits(
        self,
        bytes: &[u8],
        limits: &DecodeLimits,
    ) -> Result<crate::Value, DecodeError> {
        match self {
            Serializer::Json => json::decode(bytes, limits),
            Serializer::MsgPack => msgpack::decode(bytes, limits),
            Serializer::Cbor => cbor::decode(bytes, limits),
        }
    }
}

#[cfg(test)]
mod tests;
