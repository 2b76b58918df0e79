//! The link between the router core and one connection's transport: what the core sends to the
//! connection ([`Outbound`]), what it knows of the transport ([`TransportInfo`]), and the
//! [`Outbox`] abstraction of a connection's outgoing queue. The queue itself (with its async
//! wake-up) belongs to the runtime; the core only pushes into it and never waits.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use bytes::Bytes;
use wamp_proto::{dict, Dict, Serializer, Value};

/// A connection's key inside the router: unique for the router's lifetime, never sent on the wire
/// (WAMP session ids are separate, random, and change when a connection re-joins).
pub type ConnId = u64;

/// What the router core asks a connection's transport to do, in order.
#[derive(Debug, Clone)]
pub enum Outbound {
    /// Write one serialized WAMP message (a WebSocket message or a RawSocket frame).
    Message(Bytes),
    /// Close the transport after everything queued before it has been written.
    Close(CloseReason),
}

/// Why the router closes a connection, for the WebSocket close frame and the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloseReason {
    /// A WebSocket close code: 1000 normal, 1001 going away, 1002 protocol error, 1008 policy,
    /// 1009 message too big, 1011 internal error.
    pub code: u16,
    /// The close reason text, and what the log says (at most 123 bytes in a close frame).
    pub text: String,
}

/// A reason text short enough for a WebSocket close frame (at most 123 bytes of UTF-8).
pub(crate) fn close_text(text: &str) -> String {
    let mut end = text.len().min(120);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_owned()
}

impl CloseReason {
    /// Code 1000: a normal close.
    pub(crate) fn normal(text: impl Into<String>) -> Self {
        Self {
            code: 1000,
            text: text.into(),
        }
    }
    /// Code 1001: the router is going away (shutdown).
    pub fn going_away(text: impl Into<String>) -> Self {
        Self {
            code: 1001,
            text: text.into(),
        }
    }
    /// Code 1002: the peer broke the protocol.
    pub fn protocol_error(text: impl Into<String>) -> Self {
        Self {
            code: 1002,
            text: text.into(),
        }
    }
    /// Code 1008: the router refuses the connection by policy (e.g. a refused session).
    pub fn policy(text: impl Into<String>) -> Self {
        Self {
            code: 1008,
            text: text.into(),
        }
    }
}

/// The kind of channel a connection runs on (`transport.channel_type` in session details).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChannelType {
    /// Plain TCP (`"tcp"`).
    Tcp,
    /// A Unix domain socket (`"unix"`).
    Unix,
    /// TLS over TCP (`"tls"`; the session's `transport.is_secure` is true).
    Tls,
}

/// The framing of a connection (`transport.channel_framing`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// WebSocket messages (`"websocket"`).
    WebSocket,
    /// RawSocket frames (`"rawsocket"`).
    RawSocket,
}

/// What a transport knows about its connection, reported in session details.
#[derive(Debug, Clone)]
pub struct TransportInfo {
    /// The channel the connection runs on (`transport.channel_type`).
    pub channel_type: ChannelType,
    /// How messages are framed (`transport.channel_framing`).
    pub framing: Framing,
    /// The serializer negotiated for the connection (`transport.channel_serializer`).
    pub serializer: Serializer,
    /// `tcp4:127.0.0.1:44856`, `tcp6:[::1]:44856` or `unix`.
    pub peer: String,
    /// The HTTP headers of the WebSocket upgrade request (lower-case names).
    pub http_headers: Option<BTreeMap<String, String>>,
    /// The transport's `auth` configuration; `None` is Crossbar's default: anonymous access
    /// with role `anonymous` and a random authid.
    pub auth: Option<Arc<turnstile_config::AuthConfig>>,
    /// The client's TLS certificate, verified in the handshake (TLS endpoints with
    /// `ca_certificates` only): `transport.peer_cert` and the `tls` authentication method.
    pub peer_cert: Option<Arc<PeerCert>>,
}

/// A client's TLS certificate as a session sees it (`transport.peer_cert`), with the fields
/// Crossbar (Autobahn's `peer_certificate_details`) reports. Read by the transport, which has
/// the clock for `expired` and the X.509 parser.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerCert {
    /// SHA-1 fingerprint, upper-case hex pairs joined by colons (what `auth.tls` principals
    /// name in `certificate-sha1`).
    pub sha1: String,
    /// SHA-256 fingerprint, same format.
    pub sha256: String,
    /// MD5 fingerprint, same format (an identifier, as in Crossbar, not for security).
    pub md5: String,
    /// The subject's attributes by OpenSSL short name in lower case (`cn`, `o`, ...).
    pub subject: BTreeMap<String, String>,
    /// The issuer's attributes, as `subject`.
    pub issuer: BTreeMap<String, String>,
    /// The serial number in decimal.
    pub serial: String,
    /// `notBefore` as `YYYYMMDDhhmmssZ`.
    pub not_before: String,
    /// `notAfter` as `YYYYMMDDhhmmssZ`.
    pub not_after: String,
    /// Whether `notAfter` had passed when the connection was opened.
    pub expired: bool,
    /// The X.509 version as Crossbar gives it (0 for v1, 2 for v3).
    pub version: u32,
    /// The signature algorithm's name (e.g. `ecdsa-with-SHA256`), or its OID.
    pub signature_algorithm: String,
}

impl PeerCert {
    /// The subject's common name, if it has one.
    pub fn common_name(&self) -> Option<&str> {
        self.subject.get("cn").map(String::as_str)
    }

    /// As a session details value.
    pub(crate) fn to_dict(&self) -> Dict {
        let names = |m: &BTreeMap<String, String>| -> Dict {
            m.iter()
                .map(|(k, v)| (k.clone(), Value::from(v.as_str())))
                .collect()
        };
        // An integer where it fits, as Crossbar's; else the decimal digits.
        let serial = self
            .serial
            .parse::<u64>()
            .map_or_else(|_| Value::from(self.serial.as_str()), Value::from);
        dict! {
            "md5" => self.md5.as_str(),
            "sha1" => self.sha1.as_str(),
            "sha256" => self.sha256.as_str(),
            "expired" => self.expired,
            "serial" => serial,
            "signature_algorithm" => self.signature_algorithm.as_str(),
            "version" => u64::from(self.version),
            "not_before" => self.not_before.as_str(),
            "not_after" => self.not_after.as_str(),
            "subject" => Value::Dict(names(&self.subject)),
            "issuer" => Value::Dict(names(&self.issuer)),
        }
    }
}

impl TransportInfo {
    /// `peer` formatted the way Crossbar does for a TCP peer.
    pub fn tcp_peer(addr: std::net::SocketAddr) -> String {
        match addr {
            std::net::SocketAddr::V4(a) => format!("tcp4:{}:{}", a.ip(), a.port()),
            std::net::SocketAddr::V6(a) => format!("tcp6:[{}]:{}", a.ip(), a.port()),
        }
    }
}

/// Why a message could not be queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// The client reads too slowly: its queue holds more than the limit.
    #[error("outgoing queue over {0} bytes (slow consumer)")]
    QueueFull(usize),
    /// The transport is gone.
    #[error("connection closed")]
    Closed,
}

/// A connection's outgoing queue as the core sees it: it takes messages and close requests in
/// order and never blocks. The runtime implements it (with a bounded queue that wakes the
/// connection's writer); tests implement it with a plain buffer.
pub trait Outbox: Send + Sync + fmt::Debug {
    /// Queues one serialized message. Fails, without queueing, when the queue is over its byte
    /// limit ([`SendError::QueueFull`]) or the transport is gone.
    fn push(&self, message: Bytes) -> Result<(), SendError>;
    /// Asks the transport to close after writing what is queued.
    fn close(&self, reason: CloseReason);
    /// Closes the connection at once, discarding what is queued (a slow consumer).
    fn kill(&self, reason: CloseReason);
}

/// The core's handle on one connection's [`Outbox`]. Cheap to clone; never blocks.
#[derive(Debug, Clone)]
pub struct PeerSender(Arc<dyn Outbox>);

impl PeerSender {
    /// A handle on `outbox`.
    pub fn new(outbox: Arc<dyn Outbox>) -> Self {
        Self(outbox)
    }

    /// Queues one serialized message. Fails, without queueing, when the queue is over its byte
    /// limit; the caller then drops the connection with [`PeerSender::kill`].
    pub(crate) fn send(&self, bytes: Bytes) -> Result<(), SendError> {
        self.0.push(bytes)
    }

    /// ABORTs a connection that has no session to account it to (a refused HELLO, a violation
    /// before HELLO), then closes it. `close_code` is the WebSocket close code.
    pub fn abort_and_close(
        &self,
        serializer: Serializer,
        reason: &str,
        text: &str,
        close_code: u16,
    ) {
        if let Ok(bytes) = serializer.encode(&wamp_proto::Message::abort(reason, text)) {
            let _ = self.send(Bytes::from(bytes));
        }
        self.close(CloseReason {
            code: close_code,
            text: close_text(text),
        });
    }

    /// Asks the transport to close after writing what is queued.
    pub(crate) fn close(&self, reason: CloseReason) {
        self.0.close(reason);
    }

    /// Closes the connection at once, discarding what is queued.
    pub(crate) fn kill(&self, reason: CloseReason) {
        self.0.kill(reason);
    }
}
