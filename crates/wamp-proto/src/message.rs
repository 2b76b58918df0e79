//! Every WAMP v2 message of the Basic and Advanced profiles as a typed value, with its code.

use crate::value::{Dict, List};
use crate::Id;

/// Message type codes, as on the wire.
pub mod code {
    /// `[HELLO, Realm|uri, Details|dict]`: a client asks to join a realm.
    pub const HELLO: u64 = 1;
    /// `[WELCOME, Session|id, Details|dict]`: the router accepts the session.
    pub const WELCOME: u64 = 2;
    /// `[ABORT, Details|dict, Reason|uri]`: a session is refused or ended before it was established.
    pub const ABORT: u64 = 3;
    /// `[CHALLENGE, AuthMethod|string, Extra|dict]`: the router asks the client to authenticate.
    pub const CHALLENGE: u64 = 4;
    /// `[AUTHENTICATE, Signature|string, Extra|dict]`: the client's answer to a CHALLENGE.
    pub const AUTHENTICATE: u64 = 5;
    /// `[GOODBYE, Details|dict, Reason|uri]`: either peer closes an established session.
    pub const GOODBYE: u64 = 6;
    /// `[ERROR, REQUEST.Type|int, REQUEST.Request|id, Details|dict, Error|uri, Args, KwArgs]`: a request failed.
    pub const ERROR: u64 = 8;
    /// `[PUBLISH, Request|id, Options|dict, Topic|uri, Args, KwArgs]`: a publisher sends an event.
    pub const PUBLISH: u64 = 16;
    /// `[PUBLISHED, PUBLISH.Request|id, Publication|id]`: acknowledges a PUBLISH with `acknowledge: true`.
    pub const PUBLISHED: u64 = 17;
    /// `[SUBSCRIBE, Request|id, Options|dict, Topic|uri]`: a subscriber asks for events on a topic.
    pub const SUBSCRIBE: u64 = 32;
    /// `[SUBSCRIBED, SUBSCRIBE.Request|id, Subscription|id]`: the subscription was made.
    pub const SUBSCRIBED: u64 = 33;
    /// `[UNSUBSCRIBE, Request|id, SUBSCRIBED.Subscription|id]`: a subscriber drops a subscription.
    pub const UNSUBSCRIBE: u64 = 34;
    /// `[UNSUBSCRIBED, UNSUBSCRIBE.Request|id]`: the subscription was dropped (or revoked, with Details).
    pub const UNSUBSCRIBED: u64 = 35;
    /// `[EVENT, Subscription|id, Publication|id, Details|dict, Args, KwArgs]`: an event delivered to a subscriber.
    pub const EVENT: u64 = 36;
    /// `[CALL, Request|id, Options|dict, Procedure|uri, Args, KwArgs]`: a caller calls a procedure.
    pub const CALL: u64 = 48;
    /// `[CANCEL, CALL.Request|id, Options|dict]`: a caller cancels a pending CALL.
    pub const CANCEL: u64 = 49;
    /// `[RESULT, CALL.Request|id, Details|dict, Args, KwArgs]`: the (final or progressive) result of a CALL.
    pub const RESULT: u64 = 50;
    /// `[REGISTER, Request|id, Options|dict, Procedure|uri]`: a callee offers a procedure.
    pub const REGISTER: u64 = 64;
    /// `[REGISTERED, REGISTER.Request|id, Registration|id]`: the registration was made.
    pub const REGISTERED: u64 = 65;
    /// `[UNREGISTER, Request|id, REGISTERED.Registration|id]`: a callee withdraws a registration.
    pub const UNREGISTER: u64 = 66;
    /// `[UNREGISTERED, UNREGISTER.Request|id]`: the registration was withdrawn (or revoked, with Details).
    pub const UNREGISTERED: u64 = 67;
    /// `[INVOCATION, Request|id, Registration|id, Details|dict, Args, KwArgs]`: the router asks a callee to run a CALL.
    pub const INVOCATION: u64 = 68;
    /// `[INTERRUPT, INVOCATION.Request|id, Options|dict]`: the router asks a callee to stop a canceled INVOCATION.
    pub const INTERRUPT: u64 = 69;
    /// `[YIELD, INVOCATION.Request|id, Options|dict, Args, KwArgs]`: a callee's (final or progressive) result of an INVOCATION.
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
    /// HELLO: a client asks to join a realm, announcing its roles and features.
    Hello {
        /// The realm the client wants to join.
        realm: String,
        /// The client's roles and features (`roles`), auth methods and `authid`, `agent`, ...
        details: Dict,
    },
    /// WELCOME: the router accepted the client into the realm.
    Welcome {
        /// The new session's id (global scope).
        session: Id,
        /// The router's roles and features and the session's `authid`, `authrole`, `realm`, ...
        details: Dict,
    },
    /// ABORT: the session is refused or ended before it was established.
    Abort {
        /// Details, usually a human-readable `message`.
        details: Dict,
        /// Why, as a URI (`wamp.error.no_such_realm`).
        reason: String,
        /// Optional positional arguments (a newer spec extension), `None` when absent.
        args: Option<List>,
        /// Optional keyword arguments (a newer spec extension), `None` when absent.
        kwargs: Option<Dict>,
    },
    /// CHALLENGE: the router asks the client to authenticate.
    Challenge {
        /// The auth method the router chose from the HELLO's `authmethods` (`wampcra`, `ticket`, ...).
        authmethod: String,
        /// The method's challenge data (for example WAMP-CRA's `challenge`, `salt`, `iterations`).
        extra: Dict,
    },
    /// AUTHENTICATE: the client's answer to a CHALLENGE.
    Authenticate {
        /// The signature or ticket proving the client's identity.
        signature: String,
        /// Extra data of the auth method (empty for most methods).
        extra: Dict,
    },
    /// GOODBYE: either peer closes an established session; the other answers with GOODBYE too.
    Goodbye {
        /// Details, optionally a human-readable `message`.
        details: Dict,
        /// Why, as a URI (`wamp.close.close_realm`, or `wamp.close.goodbye_and_out` in the reply).
        reason: String,
    },
    /// ERROR: a request (SUBSCRIBE, CALL, INVOCATION, ...) failed.
    Error {
        /// The type code of the failed request (for example [`code::CALL`]).
        request_type: u64,
        /// The failed request's id.
        request: Id,
        /// Error details.
        details: Dict,
        /// The error URI (`wamp.error.no_such_procedure` or an application error).
        error: String,
        /// The error's positional arguments, `None` when absent.
        args: Option<List>,
        /// The error's keyword arguments, `None` when absent.
        kwargs: Option<Dict>,
    },
    /// PUBLISH: a publisher sends an event to a topic.
    Publish {
        /// The PUBLISH's request id, echoed in its PUBLISHED or ERROR.
        request: Id,
        /// Publish options (`acknowledge`, `exclude_me`, `eligible`, `exclude`, ...).
        options: Dict,
        /// The topic URI published to.
        topic: String,
        /// The event's positional arguments, `None` when absent.
        args: Option<List>,
        /// The event's keyword arguments, `None` when absent.
        kwargs: Option<Dict>,
    },
    /// PUBLISHED: the router acknowledges a PUBLISH sent with `acknowledge: true`.
    Published {
        /// The acknowledged PUBLISH's request id.
        request: Id,
        /// The publication's id, as its EVENTs carry it (global scope).
        publication: Id,
    },
    /// SUBSCRIBE: a client asks for the events of a topic.
    Subscribe {
        /// The SUBSCRIBE's request id, echoed in its SUBSCRIBED or ERROR.
        request: Id,
        /// Subscribe options (`match`: `exact`, `prefix` or `wildcard`, ...).
        options: Dict,
        /// The topic URI, or pattern under the `match` policy.
        topic: String,
    },
    /// SUBSCRIBED: the router made the subscription.
    Subscribed {
        /// The SUBSCRIBE's request id.
        request: Id,
        /// The subscription's id, used by EVENT and UNSUBSCRIBE (router scope).
        subscription: Id,
    },
    /// UNSUBSCRIBE: a subscriber drops a subscription.
    Unsubscribe {
        /// The UNSUBSCRIBE's request id, echoed in its UNSUBSCRIBED or ERROR.
        request: Id,
        /// The subscription to drop, as SUBSCRIBED gave it.
        subscription: Id,
    },
    /// UNSUBSCRIBED: the subscription was dropped.
    ///
    /// `details` is present only for subscription revocation (`[35, Request, Details]`).
    Unsubscribed {
        /// The UNSUBSCRIBE's request id (0 for a revocation).
        request: Id,
        /// For a revocation, the revoked `subscription` and an optional `reason`; else `None`.
        details: Option<Dict>,
    },
    /// EVENT: the router delivers a publication to a subscriber.
    Event {
        /// The subscription the event is delivered for.
        subscription: Id,
        /// The publication's id (the same for every receiver of one PUBLISH).
        publication: Id,
        /// Event details (`topic` for pattern subscriptions, `publisher`, ...).
        details: Dict,
        /// The PUBLISH's positional arguments, `None` when absent.
        args: Option<List>,
        /// The PUBLISH's keyword arguments, `None` when absent.
        kwargs: Option<Dict>,
    },
    /// CALL: a caller calls a procedure.
    Call {
        /// The CALL's request id, echoed in its RESULT or ERROR.
        request: Id,
        /// Call options (`timeout`, `receive_progress`, `disclose_me`, ...).
        options: Dict,
        /// The procedure URI called.
        procedure: String,
        /// The call's positional arguments, `None` when absent.
        args: Option<List>,
        /// The call's keyword arguments, `None` when absent.
        kwargs: Option<Dict>,
    },
    /// CANCEL: a caller cancels a pending CALL.
    Cancel {
        /// The request id of the CALL to cancel.
        request: Id,
        /// Cancel options (`mode`: `skip`, `kill` or `killnowait`).
        options: Dict,
    },
    /// RESULT: the router returns a CALL's result (final, or progressive with `progress: true`).
    Result {
        /// The CALL's request id.
        request: Id,
        /// Result details (`progress`, ...).
        details: Dict,
        /// The YIELD's positional arguments, `None` when absent.
        args: Option<List>,
        /// The YIELD's keyword arguments, `None` when absent.
        kwargs: Option<Dict>,
    },
    /// REGISTER: a callee offers a procedure.
    Register {
        /// The REGISTER's request id, echoed in its REGISTERED or ERROR.
        request: Id,
        /// Register options (`match`, `invoke`, `disclose_caller`, ...).
        options: Dict,
        /// The procedure URI, or pattern under the `match` policy.
        procedure: String,
    },
    /// REGISTERED: the router made the registration.
    Registered {
        /// The REGISTER's request id.
        request: Id,
        /// The registration's id, used by INVOCATION and UNREGISTER (router scope).
        registration: Id,
    },
    /// UNREGISTER: a callee withdraws a registration.
    Unregister {
        /// The UNREGISTER's request id, echoed in its UNREGISTERED or ERROR.
        request: Id,
        /// The registration to withdraw, as REGISTERED gave it.
        registration: Id,
    },
    /// UNREGISTERED: the registration was withdrawn.
    ///
    /// `details` is present only for registration revocation (`[67, Request, Details]`).
    Unregistered {
        /// The UNREGISTER's request id (0 for a revocation).
        request: Id,
        /// For a revocation, the revoked `registration` and an optional `reason`; else `None`.
        details: Option<Dict>,
    },
    /// INVOCATION: the router asks a callee to run a CALL.
    Invocation {
        /// The INVOCATION's request id (session scope), echoed in the callee's YIELD or ERROR.
        request: Id,
        /// The registration the call is routed to.
        registration: Id,
        /// Invocation details (`procedure` for pattern registrations, `caller`, `receive_progress`, ...).
        details: Dict,
        /// The CALL's positional arguments, `None` when absent.
        args: Option<List>,
        /// The CALL's keyword arguments, `None` when absent.
        kwargs: Option<Dict>,
    },
    /// INTERRUPT: the router asks a callee to stop an INVOCATION whose CALL was canceled.
    Interrupt {
        /// The INVOCATION's request id.
        request: Id,
        /// Interrupt options (`mode`, `reason`).
        options: Dict,
    },
    /// YIELD: a callee returns an INVOCATION's result (final, or progressive with `progress: true`).
    Yield {
        /// The INVOCATION's request id.
        request: Id,
        /// Yield options (`progress`, ...).
        options: Dict,
        /// The result's positional arguments, `None` when absent.
        args: Option<List>,
        /// The result's keyword arguments, `None` when absent.
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
