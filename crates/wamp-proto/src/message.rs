//! Every WAMP v2 message of the Basic and Advanced profiles as a typed value, with its code.

use crate::value::{Dict, List};
use crate::Id;

/// Message type codes, as on the wire.
pub mod code {
    pub const HELLO: u64 = 1;
    pub const WELCOME: u64 = 2;
    pub const ABORT: u64 = 3;
    pub const CHALLENGE: u64 = 4;
    pub const AUTHENTICATE: u64 = 5;
    pub const GOODBYE: u64 = 6;
    pub const ERROR: u64 = 8;
    pub const PUBLISH: u64 = 16;
    pub const PUBLISHED: u64 = 17;
    pub const SUBSCRIBE: u64 = 32;
    pub const SUBSCRIBED: u64 = 33;
    pub const UNSUBSCRIBE: u64 = 34;
    pub const UNSUBSCRIBED: u64 = 35;
    pub const EVENT: u64 = 36;
    pub const CALL: u64 = 48;
    pub const CANCEL: u64 = 49;
    pub const RESULT: u64 = 50;
    pub const REGISTER: u64 = 64;
    pub const REGISTERED: u64 = 65;
    pub const UNREGISTER: u64 = 66;
    pub const UNREGISTERED: u64 = 67;
    pub const INVOCATION: u64 = 68;
    pub const INTERRUPT: u64 = 69;
    pub const YIELD: u64 = 70;
}

/// One WAMP message.
///
/// `args`/`kwargs` are kept exactly as received: `None` when the element was absent, so that a
/// decoded message encodes back to the same shape. When encoding, `kwargs: Some(_)` with
/// `args: None` writes an empty `args` list before the kwargs, as the wire format requires.
///
/// # Payload passthru mode
///
/// In payload passthru mode (PPT, and Autobahn's older end-to-end encryption) the Args/KwArgs
/// positions of PUBLISH, EVENT, CALL, INVOCATION, YIELD, RESULT and ERROR hold one opaque
/// `Payload` (binary; Autobahn also accepts a string) instead of a list. Such a message is held
/// as `args: Some(vec![payload])`, `kwargs: None`, and its Options/Details carry
/// `ppt_scheme` or `enc_algo` (see [`is_passthru`]). Encoding writes that single binary or string
/// argument as the bare payload exactly when the Options/Details declare passthru, so decoded
/// messages encode back to the same shape, and a router that copies `ppt_*` options into
/// EVENT/INVOCATION details and forwards `args` forwards the payload unchanged.
#[derive(Debug, Clone, PartialEq)]
pub enum Message {
    Hello {
        realm: String,
        details: Dict,
    },
    Welcome {
        session: Id,
        details: Dict,
    },
    Abort {
        details: Dict,
        reason: String,
        args: Option<List>,
        kwargs: Option<Dict>,
    },
    Challenge {
        authmethod: String,
        extra: Dict,
    },
    Authenticate {
        signature: String,
        extra: Dict,
    },
    Goodbye {
        details: Dict,
        reason: String,
    },
    Error {
        request_type: u64,
        request: Id,
        details: Dict,
        error: String,
        args: Option<List>,
        kwargs: Option<Dict>,
    },
    Publish {
        request: Id,
        options: Dict,
        topic: String,
        args: Option<List>,
        kwargs: Option<Dict>,
    },
    Published {
        request: Id,
        publication: Id,
    },
    Subscribe {
        request: Id,
        options: Dict,
        topic: String,
    },
    Subscribed {
        request: Id,
        subscription: Id,
    },
    Unsubscribe {
        request: Id,
        subscription: Id,
    },
    /// `details` is present only for subscription revocation (`[35, Request, Details]`).
    Unsubscribed {
        request: Id,
        details: Option<Dict>,
    },
    Event {
        subscription: Id,
        publication: Id,
        details: Dict,
        args: Option<List>,
        kwargs: Option<Dict>,
    },
    Call {
        request: Id,
        options: Dict,
        procedure: String,
        args: Option<List>,
        kwargs: Option<Dict>,
    },
    Cancel {
        request: Id,
        options: Dict,
    },
    Result {
        request: Id,
        details: Dict,
        args: Option<List>,
        kwargs: Option<Dict>,
    },
    Register {
        request: Id,
        options: Dict,
        procedure: String,
    },
    Registered {
        request: Id,
        registration: Id,
    },
    Unregister {
        request: Id,
        registration: Id,
    },
    /// `details` is present only for registration revocation (`[67, Request, Details]`).
    Unregistered {
        request: Id,
        details: Option<Dict>,
    },
    Invocation {
        request: Id,
        registration: Id,
        details: Dict,
        args: Option<List>,
        kwargs: Option<Dict>,
    },
    Interrupt {
        request: Id,
        options: Dict,
    },
    Yield {
        request: Id,
        options: Dict,
        args: Option<List>,
        kwargs: Option<Dict>,
    },
}

impl Message {
    /// The message's type code.
    pub fn code(&self) -> u64 {
        use code::*;
        match self {
            Message::Hello { .. } => HELLO,
            Message::Welcome { .. } => WELCOME,
            Message::Abort { .. } => ABORT,
            Message::Challenge { .. } => CHALLENGE,
            Message::Authenticate { .. } => AUTHENTICATE,
            Message::Goodbye { .. } => GOODBYE,
            Message::Error { .. } => ERROR,
            Message::Publish { .. } => PUBLISH,
            Message::Published { .. } => PUBLISHED,
            Message::Subscribe { .. } => SUBSCRIBE,
            Message::Subscribed { .. } => SUBSCRIBED,
            Message::Unsubscribe { .. } => UNSUBSCRIBE,
            Message::Unsubscribed { .. } => UNSUBSCRIBED,
            Message::Event { .. } => EVENT,
            Message::Call { .. } => CALL,
            Message::Cancel { .. } => CANCEL,
            Message::Result { .. } => RESULT,
            Message::Register { .. } => REGISTER,
            Message::Registered { .. } => REGISTERED,
            Message::Unregister { .. } => UNREGISTER,
            Message::Unregistered { .. } => UNREGISTERED,
            Message::Invocation { .. } => INVOCATION,
            Message::Interrupt { .. } => INTERRUPT,
            Message::Yield { .. } => YIELD,
        }
    }

    /// ABORT with `reason` and a human-readable `message` in its details (the convention every
    /// WAMP peer shows to its user).
    pub fn abort(reason: &str, message: &str) -> Message {
        Message::Abort {
            details: crate::dict! {"message" => message},
            reason: reason.to_owned(),
            args: None,
            kwargs: None,
        }
    }

    /// ERROR answering request `request` of type `request_type`, with `error` and a
    /// human-readable `text` as its one positional argument.
    pub fn error(request_type: u64, request: Id, error: &str, text: &str) -> Message {
        Message::Error {
            request_type,
            request,
            details: Dict::new(),
            error: error.to_owned(),
            args: Some(vec![crate::Value::from(text)]),
            kwargs: None,
        }
    }

    /// The message's name in upper case, as the WAMP spec writes it (`"PUBLISH"`).
    pub fn name(&self) -> &'static str {
        code_name(self.code()).unwrap_or("UNKNOWN")
    }
}

/// The Options/Details keys that declare payload passthru mode: `ppt_scheme` (WAMP spec) and
/// `enc_algo` (Autobahn's end-to-end encryption, the older form).
pub const PASSTHRU_KEYS: [&str; 2] = ["ppt_scheme", "enc_algo"];

/// Whether these Options/Details declare payload passthru mode (a key of [`PASSTHRU_KEYS`]).
pub fn is_passthru(options_or_details: &Dict) -> bool {
    PASSTHRU_KEYS
        .iter()
        .any(|k| options_or_details.contains_key(*k))
}

/// The name of a message type code, if it is one this crate knows.
pub fn code_name(code: u64) -> Option<&'static str> {
    use code::*;
    Some(match code {
        HELLO => "HELLO",
        WELCOME => "WELCOME",
        ABORT => "ABORT",
        CHALLENGE => "CHALLENGE",
        AUTHENTICATE => "AUTHENTICATE",
        GOODBYE => "GOODBYE",
        ERROR => "ERROR",
        PUBLISH => "PUBLISH",
        PUBLISHED => "PUBLISHED",
        SUBSCRIBE => "SUBSCRIBE",
        SUBSCRIBED => "SUBSCRIBED",
        UNSUBSCRIBE => "UNSUBSCRIBE",
        UNSUBSCRIBED => "UNSUBSCRIBED",
        EVENT => "EVENT",
        CALL => "CALL",
        CANCEL => "CANCEL",
        RESULT => "RESULT",
        REGISTER => "REGISTER",
        REGISTERED => "REGISTERED",
        UNREGISTER => "UNREGISTER",
        UNREGISTERED => "UNREGISTERED",
        INVOCATION => "INVOCATION",
        INTERRUPT => "INTERRUPT",
        YIELD => "YIELD",
        _ => return None,
    })
}
