//! Serializers: encode and decode [`Message`]s as JSON, MessagePack or CBOR.
//! (stub: replaced by the serializer work)

use crate::{DecodeError, EncodeError, Message};

/// A WAMP serializer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Serializer {
    Json,
    MsgPack,
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
    pub fn from_rawsocket_id(id: u8) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.rawsocket_id() == id)
    }
    /// Whether a WebSocket carrying this serializer uses binary (not text) frames.
    pub fn is_binary(self) -> bool {
        !matches!(self, Serializer::Json)
    }

    /// Encodes one message.
    pub fn encode(self, msg: &Message) -> Result<Vec<u8>, EncodeError> {
        let _ = msg;
        todo!("serializer work")
    }

    /// Decodes one message, checking its shape strictly.
    pub fn decode(self, bytes: &[u8]) -> Result<Message, DecodeError> {
        let _ = bytes;
        todo!("serializer work")
    }
}
