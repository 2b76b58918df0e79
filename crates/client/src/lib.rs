//! An async WAMP v2 client for Turnstile's tests and benchmarks.
//!
//! It speaks WebSocket (`ws://host:port/path`) and RawSocket over TCP (`rs://host:port`) or a Unix
//! socket (`unix:///path/to.sock`), with the JSON, MessagePack and CBOR serializers, and records
//! every WAMP message it sends and receives with its exact serialized length, so that tests can
//! compare the client's own view of the traffic with the router's metering.
//!
//! # Layout
//! - [`transport`]: [`Transport`]: connect, send and receive single messages (and raw bytes, for
//!   protocol-violation tests), with the [`Traffic`] log.
//! - [`session`]: [`Session`]: join, subscribe, publish, call, register, leave; messages that
//!   arrive while a reply is awaited are kept in an inbox, never lost.
//! - [`traffic`]: [`Traffic`], the log of sent and received messages and their lengths.
//! - [`rawsocket`]: the RawSocket handshake and framing (the codec of `wamp_proto::rawsocket`).
//! - [`error`]: the [`Error`] type.
//!
//! # Example
//! ```no_run
//! # async fn demo() -> turnstile_client::Result<()> {
//! use turnstile_client::{Session, Serializer};
//! let mut s = Session::connect("rs://127.0.0.1:8081", Serializer::MsgPack).await?;
//! let welcome = s.join("realm1").await?;
//! let sub = s.subscribe("com.example.topic", Default::default()).await?;
//! s.publish("com.example.topic", Some(vec![1.into()]), None, Default::default()).await?;
//! s.leave().await?;
//! println!("session {} exchanged {} bytes", welcome.session, s.traffic().bytes());
//! # let _ = sub; Ok(()) }
//! ```

pub mod error;
pub mod rawsocket;
pub mod session;
pub mod traffic;
pub mod transport;

pub use error::{Error, Result};
pub use session::{CallResult, Event, Invocation, Session, Welcome};
pub use traffic::{Direction, Record, Traffic, TrafficMark};
pub use transport::{ConnectOptions, Transport};
pub use wamp_proto::{dict, Dict, Id, List, Message, Serializer, Value};

use std::future::Future;
use std::time::Duration;

/// Runs `fut` for at most `limit`; [`Error::Timeout`] after that.
pub async fn timeout<T>(limit: Duration, fut: impl Future<Output = Result<T>>) -> Result<T> {
    tokio::time::timeout(limit, fut)
        .await
        .map_err(|_| Error::Timeout(limit))?
}
