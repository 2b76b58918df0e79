//! The client's error type.

use std::time::Duration;

use wamp_proto::{DecodeError, Dict, EncodeError, List};

/// A result with the client's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in the client.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The URL is not `ws://host:port/path`, `rs://host:port` or `unix:///path`.
    #[error("invalid URL \"{0}\": expected ws://host:port/path, rs://host:port or unix:///path")]
    InvalidUrl(String),
    /// A socket (TCP or Unix) failed to connect, read or write.
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    /// A WebSocket failure (boxed: tungstenite's error is large).
    #[error("WebSocket error: {0}")]
    WebSocket(Box<tokio_tungstenite::tungstenite::Error>),
    /// The WebSocket upgrade did not select the requested WAMP subprotocol.
    #[error("WebSocket handshake: {0}")]
    Handshake(String),
    /// The router refused the RawSocket handshake with this error code (upper nibble).
    #[error("RawSocket handshake refused by the router: {reason} (error {code})")]
    RawSocketRefused {
        /// The error code: 1 serializer unsupported, 2 maximum length unacceptable, 3 reserved
        /// bits used, 4 maximum connection count reached.
        code: u8,
        /// The code's text.
        reason: &'static str,
    },
    /// Bytes that break the RawSocket handshake or framing rules.
    #[error("RawSocket framing: {0}")]
    Framing(String),
    /// A received payload is not a valid WAMP message.
    #[error("cannot decode a received message: {0}")]
    Decode(#[from] DecodeError),
    /// A message to send cannot be encoded with the connection's serializer.
    #[error(transparent)]
    Encode(#[from] EncodeError),
    /// The connection is closed (by either side).
    #[error("connection closed")]
    ConnectionClosed,
    /// A wait (see [`crate::timeout`] and the session's timeout) lasted longer than this.
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    /// The router answered HELLO (or anything else) with ABORT.
    #[error("session aborted by the router: {reason} {details:?}")]
    Aborted {
        /// ABORT.Reason, such as `wamp.error.no_such_realm`.
        reason: String,
        /// ABORT.Details (usually a `message`).
        details: Dict,
    },
    /// The router closed the session with GOODBYE while a reply was awaited. The GOODBYE is
    /// left in the inbox, so that the test can still see it and answer it.
    #[error("session closed by the router: GOODBYE {reason} {details:?}")]
    Goodbye {
        /// GOODBYE.Reason, such as `wamp.close.system_shutdown`.
        reason: String,
        /// GOODBYE.Details.
        details: Dict,
    },
    /// The router answered a request with ERROR.
    #[error("ERROR {error} {args:?} {kwargs:?}")]
    Wamp {
        /// The error URI, such as `wamp.error.not_authorized`.
        error: String,
        /// The ERROR's positional arguments (empty when absent).
        args: List,
        /// The ERROR's keyword arguments (empty when absent).
        kwargs: Dict,
    },
    /// A session operation needs a joined session.
    #[error("no session is joined")]
    NotJoined,
    /// A message that makes no sense here (for example a second WELCOME).
    #[error("unexpected message: {0}")]
    Unexpected(String),
    /// The operation does not exist on this transport (RawSocket frames on a WebSocket).
    #[error("unsupported: {0}")]
    Unsupported(&'static str),
}

impl From<tokio_tungstenite::tungstenite::Error> for Error {
    fn from(e: tokio_tungstenite::tungstenite::Error) -> Self {
        Error::WebSocket(Box::new(e))
    }
}

impl From<wamp_proto::rawsocket::FrameError> for Error {
    fn from(e: wamp_proto::rawsocket::FrameError) -> Self {
        Error::Framing(e.to_string())
    }
}

impl From<wamp_proto::rawsocket::HandshakeError> for Error {
    fn from(e: wamp_proto::rawsocket::HandshakeError) -> Self {
        Error::Framing(e.to_string())
    }
}

impl Error {
    /// The URI of a WAMP ERROR reply, if this is one.
    pub fn wamp_error(&self) -> Option<&str> {
        match self {
            Error::Wamp { error, .. } => Some(error),
            _ => None,
        }
    }
}
