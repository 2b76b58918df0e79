//! Sans-IO WAMP v2 protocol: message types and codes, ids, URI rules, the dynamic value type
//! (with binary) and the serializers (JSON, MessagePack, CBOR).
//!
//! This crate has no sockets, no async runtime and reads no clock: routers and clients drive it.
//!
//! # Layout
//! - [`value`]: [`Value`], the dynamic value type, with binary.
//! - [`message`]: [`Message`], one variant per WAMP message, and the type codes.
//! - [`serializer`]: [`Serializer`]: encode and decode messages as JSON, MessagePack or CBOR,
//!   with strict shape checks whose error texts can be sent to the peer.
//! - [`rawsocket`]: the RawSocket handshake and framing codec (check/encode on byte buffers).
//! - [`websocket`]: what a router reads from a WebSocket upgrade request (subprotocol
//!   negotiation, header fields for the session details).
//! - [`uri`]: URI syntax rules and match policies.
//! - [`id`]: WAMP ids and their generators.
//! - [`error`]: the error types of decoding and validation.
//! - [`limits`]: [`DecodeLimits`], the decode budget: depth, element and memory bounds.
//! - [`uris`]: well-known error and close reason URIs as constants.
//! - [`wampcra`]: the PBKDF2 key derivation of salted WAMP-CRA secrets.

// Library code turns malformed input into an error, never a panic.
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

pub mod error;
pub mod id;
pub mod limits;
pub mod message;
pub mod rawsocket;
pub mod serializer;
pub mod uri;
pub mod uris;
pub mod value;
pub mod wampcra;
pub mod websocket;

mod cbor;
mod json;
mod msgpack;
mod wire;

pub use error::{DecodeError, EncodeError};
pub use id::{random_id, Id, IdSequence, MAX_ID};
pub use limits::DecodeLimits;
pub use message::Message;
pub use serializer::Serializer;
pub use uri::{MatchPolicy, UriRules};
pub use value::{Dict, List, Value};
