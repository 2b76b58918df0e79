//! Errors of decoding and encoding WAMP messages.

use thiserror::Error;

/// Why bytes could not be decoded into a [`crate::Message`]. The text says what was wrong, for
/// the ABORT `wamp.error.protocol_violation` message sent to the peer.
///
/// Examples of the text: `invalid JSON: EOF while parsing a list at line 1 column 9`,
/// `message must be a non-empty list, found dict`, `unknown message type 99`,
/// `SUBSCRIBE: expected 4 elements, found 3`,
/// `PUBLISH: element 3 (Topic) must be a string, found integer`.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum DecodeError {
    /// The bytes are not valid in the serializer's format (or nest deeper than the decoder
    /// allows). `serializer` is `JSON`, `MessagePack` or `CBOR`.
    #[error("invalid {serializer}: {detail}")]
    Syntax {
        /// The serializer's display name: `JSON`, `MessagePack` or `CBOR`.
        serializer: &'static str,
        /// What the parser reported (for JSON, serde_json's text with line and column).
        detail: String,
    },
    /// The message crosses a decode limit ([`crate::limits::DecodeLimits`]): nesting too deep,
    /// too many list items and dict entries, or too much memory for its length. Detected while
    /// decoding, before the memory is taken.
    #[error("{serializer} message exceeds the decode limit {limit}: {detail}")]
    Limit {
        /// The serializer's display name: `JSON`, `MessagePack` or `CBOR`.
        serializer: &'static str,
        /// Which limit was crossed.
        limit: crate::limits::Limit,
        /// The limit's value and what crossed it.
        detail: String,
    },
    /// Well-formed data that is not a valid WAMP message: not a list, unknown type code, wrong
    /// element count, an element of the wrong type, an id out of range, a non-string dict key.
    #[error("{0}")]
    Shape(String),
}

impl DecodeError {
    pub(crate) fn syntax(serializer: &'static str, detail: impl Into<String>) -> Self {
        DecodeError::Syntax {
            serializer,
            detail: detail.into(),
        }
    }
}

/// Why a message could not be encoded (for example a non-finite float in JSON).
///
/// `message` is the message name (`PUBLISH`), `serializer` is `JSON`, `MessagePack` or `CBOR`.
#[derive(Debug, Error, Clone, PartialEq)]
#[error("cannot encode {message} as {serializer}: {detail}")]
pub struct EncodeError {
    /// The name of the message that could not be encoded (`PUBLISH`).
    pub message: &'static str,
    /// The serializer's display name: `JSON`, `MessagePack` or `CBOR`.
    pub serializer: &'static str,
    /// What could not be represented (for example a non-finite float).
    pub detail: String,
}
