//! Well-known WAMP URIs: error reasons and close reasons, as typed constants.

/// A URI in the request is not valid under the realm's URI rules.
pub const INVALID_URI: &str = "wamp.error.invalid_uri";
/// A CALL's procedure has no registration.
pub const NO_SUCH_PROCEDURE: &str = "wamp.error.no_such_procedure";
/// A REGISTER for a procedure (and match policy) that is already registered with `single` invocation.
pub const PROCEDURE_ALREADY_EXISTS: &str = "wamp.error.procedure_already_exists";
/// A shared REGISTER whose `invoke` policy differs from the existing registration's.
pub const PROCEDURE_EXISTS_WITH_DIFFERENT_INVOCATION_POLICY: &str =
    "wamp.error.procedure_exists_with_different_invocation_policy";
/// An UNREGISTER (or meta API call) names a registration that does not exist.
pub const NO_SUCH_REGISTRATION: &str = "wamp.error.no_such_registration";
/// An UNSUBSCRIBE (or meta API call) names a subscription that does not exist.
pub const NO_SUCH_SUBSCRIPTION: &str = "wamp.error.no_such_subscription";
/// A meta API call names a session that does not exist.
pub const NO_SUCH_SESSION: &str = "wamp.error.no_such_session";
/// A call's arguments are wrong (for procedures, including the meta API, that check them).
pub const INVALID_ARGUMENT: &str = "wamp.error.invalid_argument";
/// A CALL (or its INVOCATION) was canceled: the error the caller gets after CANCEL.
pub const CANCELED: &str = "wamp.error.canceled";
/// A message payload is larger than the transport or router allows.
pub const PAYLOAD_SIZE_EXCEEDED: &str = "wamp.error.payload_size_exceeded";
/// ABORT reason: the peer sent a message that breaks the protocol (malformed or out of order).
pub const PROTOCOL_VIOLATION: &str = "wamp.error.protocol_violation";
/// The session's role is not permitted this action (publish, subscribe, call, register).
pub const NOT_AUTHORIZED: &str = "wamp.error.not_authorized";
/// The authorization check itself failed (for example a dynamic authorizer errored).
pub const AUTHORIZATION_FAILED: &str = "wamp.error.authorization_failed";
/// ABORT reason: the client's credentials (ticket, signature, ...) were rejected.
pub const AUTHENTICATION_FAILED: &str = "wamp.error.authentication_failed";
/// ABORT reason: none of the HELLO's `authmethods` is allowed for this realm and transport.
pub const NO_MATCHING_AUTH_METHOD: &str = "wamp.error.no_matching_auth_method";
/// ABORT reason: the HELLO's realm does not exist on this router.
pub const NO_SUCH_REALM: &str = "wamp.error.no_such_realm";
/// ABORT reason: the role the client was authenticated as does not exist in the realm.
pub const NO_SUCH_ROLE: &str = "wamp.error.no_such_role";
/// A request carries an option the router does not allow (for this session or role).
pub const OPTION_NOT_ALLOWED: &str = "wamp.error.option_not_allowed";
/// A request uses a feature the router (or the callee) does not support.
pub const FEATURE_NOT_SUPPORTED: &str = "wamp.error.feature_not_supported";
/// A CALL's `timeout` elapsed before its result arrived.
pub const TIMEOUT: &str = "wamp.error.timeout";

/// GOODBYE reason: the router is shutting down.
pub const CLOSE_SYSTEM_SHUTDOWN: &str = "wamp.close.system_shutdown";
/// GOODBYE reason: the realm is being closed (also a client's usual reason for leaving).
pub const CLOSE_REALM: &str = "wamp.close.close_realm";
/// GOODBYE reason of the reply that acknowledges a peer's GOODBYE.
pub const CLOSE_GOODBYE_AND_OUT: &str = "wamp.close.goodbye_and_out";
/// GOODBYE reason: the session was killed (by the meta API `wamp.session.kill`).
pub const CLOSE_KILLED: &str = "wamp.close.killed";
/// GOODBYE reason: a normal close.
pub const CLOSE_NORMAL: &str = "wamp.close.normal";
