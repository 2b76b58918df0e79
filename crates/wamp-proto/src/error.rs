//! Errors of decoding and encoding WAMP messages.
//! (stub: replaced by the serializer work)

use thiserror::Error;

/// Why bytes could not be decoded into a [`crate::Message`]. The text says what was wrong, for
/// the ABORT `wamp.error.protocol_violation` message sent to the peer.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum DecodeError {
    /// The bytes are not valid in the serializer's format.
    #[error("invalid {serializer}: {detail}")]
    Syntax { serializer: &'static str, detail: String },
    /// Well-formed data that is not a valid WAMP message.
    #[error("{0}")]
    Shape(String),
}

/// Why a message could not be encoded (for example a non-finite float in JSON).
#[derive(Debug, Error, Clone, PartialEq)]
#[error("cannot encode {message} as {serializer}: {detail}")]
pub struct EncodeError {
    pub message: &'static str,
    pub serializer: &'static str,
    pub detail: String,
}
