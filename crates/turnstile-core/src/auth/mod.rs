//! Authentication of a joining session, as Crossbar.io does it: `anonymous`, `ticket`, `wampcra`,
//! `cryptosign` and `tls` (the client certificate the transport verified), each `static` (principals from the transport's `auth` configuration) or
//! `dynamic` (a WAMP procedure, the authenticator, decides).
//!
//! This is a pure state machine, one [`AuthFlow`] per HELLO: no I/O, no clock, no logging. The
//! realm feeds it the HELLO ([`AuthFlow::start`]), the client's AUTHENTICATE
//! ([`AuthFlow::handle_authenticate`]) and the authenticator's answer
//! ([`AuthFlow::handle_authenticator_result`]), and carries out each returned [`AuthAction`]:
//! send WELCOME, send CHALLENGE, call the authenticator, or send ABORT. The handshake timeout is
//! the realm's too.
//!
//! Rules:
//! - The method is the first of HELLO's `authmethods` (default `["anonymous"]`) that the
//!   transport offers; names it does not offer are skipped; none left gives
//!   `wamp.error.no_matching_auth_method`. The chosen method's outcome is final (as in Crossbar).
//! - Wrong credentials (unknown authid or public key, wrong ticket, wrong signature, malformed
//!   AUTHENTICATE) are all refused with [`CREDENTIALS_REFUSED`] and the same message for a method,
//!   which does not say what was wrong. A ticket for an unknown authid is still challenged, so
//!   that ticket principals cannot be enumerated. Secrets are compared in constant time.
//! - A principal (static or from an authenticator) with a `realm` other than the HELLO realm is
//!   refused with `wamp.error.not_authorized` (Crossbar would redirect the session instead).
//! - Dynamic authenticators are called with `(realm, authid, details)`, `details` holding
//!   `session`, `transport`, `authmethod`, and HELLO's `authid`, `authrole` and `authextra`
//!   (`ticket` adds `ticket`, the client's ticket). They return a role (a string) or a dict
//!   `{"role", "authid"?, "realm"?, "extra"?}` (`wampcra` adds `secret` and optionally `salt`,
//!   `iterations`, `keylen`; `cryptosign` may add `pubkey`), or raise an error, which refuses the
//!   session with `wamp.error.authentication_failed`. The realm reports a timeout as an error.
//! - The WELCOME identity's `authprovider` is `static` or `dynamic`; `authextra` is the
//!   authenticator's `extra`, else empty.
//!
//! [`wampcra`] and [`cryptosign`] hold the exact wire formats, checked against Autobahn|Python;
//! [`dynamic_authorizer`] builds the calls to dynamic authorizers and reads their answers.

pub(crate) mod cryptosign;
pub(crate) mod dynamic_authorizer;
#[cfg(test)]
mod tests;
pub(crate) mod wampcra;

use std::fmt;

use ed25519_dalek::VerifyingKey;
use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use wamp_proto::{dict, uris, Dict, Id, List, Value};

pub(crate) use turnstile_config::{
    AuthConfig, CraSalt, CryptosignAuth, DynamicAuth, Secret, TicketAuth, TlsAuth, WampCraAuth,
};

use crate::peer::PeerCert;
use crate::session::{random_authid, Identity};

/// The reason of every refusal of wrong credentials.
pub(crate) const CREDENTIALS_REFUSED: &str = uris::AUTHENTICATION_FAILED;
/// No authid could be established (HELLO had none and the authenticator assigned none).
pub(crate) const NO_SUCH_PRINCIPAL: &str = "wamp.error.no_such_principal";

/// An authentication method.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Method {
    Anonymous,
    Ticket,
    WampCra,
    Cryptosign,
    Tls,
}

impl Method {
    pub(crate) const ALL: [Method; 5] = [
        Method::Anonymous,
        Method::Ticket,
        Method::WampCra,
        Method::Cryptosign,
        Method::Tls,
    ];

    /// The name in HELLO `authmethods`, CHALLENGE and WELCOME.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Method::Anonymous => "anonymous",
            Method::Ticket => "ticket",
            Method::WampCra => "wampcra",
            Method::Cryptosign => "cryptosign",
            Method::Tls => "tls",
        }
    }

    fn parse(name: &str) -> Option<Method> {
        Method::ALL.into_iter().find(|m| m.as_str() == name)
    }

    fn offered_by(self, config: &AuthConfig) -> bool {
        match self {
            Method::Anonymous => config.anonymous.is_some() || config.anonymous_dynamic.is_some(),
            Method::Ticket => config.ticket.is_some(),
            Method::WampCra => config.wampcra.is_some(),
            Method::Cryptosign => config.cryptosign.is_some(),
            Method::Tls => config.tls.is_some(),
        }
    }
}

/// What the realm knows about a HELLO.
#[derive(Debug, Clone, Copy)]
pub(crate) struct AuthRequest<'a> {
    /// The realm the client asks to join.
    pub realm: &'a str,
    /// HELLO.Details.
    pub hello: &'a Dict,
    /// The session id the session will get (it appears in the WAMP-CRA challenge).
    pub session_id: Id,
    /// The transport details, as in the session details' `transport`; passed to authenticators.
    pub transport: &'a Dict,
    /// The current time (the WAMP-CRA challenge's timestamp).
    pub now_unix_ns: u64,
    /// The client's TLS certificate, verified by the transport (for the `tls` method).
    pub peer_cert: Option<&'a PeerCert>,
}

/// What the realm does next.
#[derive(Debug, Clone)]
pub(crate) enum AuthAction {
    /// Authenticated: join with this identity (the realm still checks that the role exists).
    Welcome(Identity),
    /// Send CHALLENGE and wait for AUTHENTICATE.
    Challenge { authmethod: String, extra: Dict },
    /// Call `procedure` on `realm` with positional `args` (`[realm, authid, details]`) as the
    /// router, then pass its answer to [`AuthFlow::handle_authenticator_result`].
    CallAuthenticator {
        procedure: String,
        realm: String,
        args: List,
    },
    /// Send ABORT with this reason and `{"message": message}`, then close.
    Refuse {
        reason: &'static str,
        message: String,
    },
}

/// The authentication of one session being established (see the module docs).
pub(crate) struct AuthFlow {
    method: Option<Method>,
    realm: String,
    session_id: Id,
    hello_authid: Option<String>,
    hello_authrole: Option<String>,
    hello_authextra: Option<Dict>,
    transport: Dict,
    now_unix_ns: u64,
    /// Random bytes drawn at start for the method: the WAMP-CRA nonce.
    nonce: [u8; wampcra::NONCE_BYTES],
    /// Random bytes drawn at start for the method: the WAMP-Cryptosign challenge.
    challenge: [u8; cryptosign::CHALLENGE_BYTES],
    /// HELLO.Details.authextra.pubkey, when it is a valid key.
    hello_pubkey: Option<VerifyingKey>,
    /// The client's TLS certificate, if the connection has one.
    peer_cert: Option<PeerCert>,
    state: State,
}

/// Where a flow is.
enum State {
    /// WELCOME or ABORT was decided; nothing more is expected.
    Finished,
    /// A static ticket CHALLENGE was sent. `None`: the authid is unknown (AUTHENTICATE fails).
    Ticket(Option<(Secret, Grant)>),
    /// A dynamic ticket CHALLENGE was sent: the ticket goes to this authenticator.
    TicketDynamic(DynamicAuth),
    /// A WAMP-CRA CHALLENGE was sent; the signature must decode to this MAC.
    WampCra([u8; 32], Grant),
    /// A WAMP-Cryptosign CHALLENGE was sent; the signature must verify with this key.
    Cryptosign(VerifyingKey, Grant),
    /// The authenticator was called for this method.
    Authenticator(Method),
}

impl State {
    fn name(&self) -> &'static str {
        match self {
            State::Finished => "finished",
            State::Ticket(_)
            | State::TicketDynamic(_)
            | State::WampCra(..)
            | State::Cryptosign(..) => "awaiting AUTHENTICATE",
            State::Authenticator(_) => "awaiting the authenticator",
        }
    }
}

/// Who a session becomes once its credentials are verified.
struct Grant {
    authid: String,
    authrole: String,
    provider: &'static str,
    authextra: Dict,
    /// The only realm the principal may join, if restricted.
    realm: Option<String>,
}

/// A principal as a dynamic authenticator returned it.
#[derive(Default)]
struct Principal {
    role: String,
    authid: Option<String>,
    realm: Option<String>,
    extra: Dict,
    secret: Option<String>,
    salt: Option<CraSalt>,
    pubkey: Option<String>,
}

/// Secrets stay out of logs: only the method and the state are shown.
impl fmt::Debug for AuthFlow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthFlow")
            .field("method", &self.method.map(Method::as_str))
            .field("realm", &self.realm)
            .field("state", &self.state.name())
            .finish_non_exhaustive()
    }
}

impl AuthFlow {
    /// Starts authenticating a HELLO on a transport with `config` (`None`: Crossbar's default,
    /// anonymous with role `anonymous`). `rng` supplies the challenge's random bytes.
    pub(crate) fn start(
        config: Option<&AuthConfig>,
        request: &AuthRequest,
        rng: &mut dyn RngCore,
    ) -> (AuthFlow, AuthAction) {
        let mut flow = AuthFlow {
            method: None,
            realm: request.realm.to_owned(),
            session_id: request.session_id,
            hello_authid: None,
            hello_authrole: None,
            hello_authextra: None,
            transport: request.transport.clone(),
            now_unix_ns: request.now_unix_ns,
            nonce: [0; wampcra::NONCE_BYTES],
            challenge: [0; cryptosign::CHALLENGE_BYTES],
            hello_pubkey: None,
            peer_cert: request.peer_cert.cloned(),
            state: State::Finished,
        };
        let action = match flow.begin(config, request.hello, rng) {
            Ok(action) | Err(action) => action,
        };
        if matches!(action, AuthAction::Welcome(_) | AuthAction::Refuse { .. }) {
            flow.state = State::Finished;
        }
        (flow, action)
    }

    /// The method being used, once chosen.
    pub(crate) fn method(&self) -> Option<Method> {
        self.method
    }

    /// Whether the flow has decided (WELCOME or ABORT) and expects nothing more.
    #[cfg(test)]
    pub(crate) fn is_finished(&self) -> bool {
        matches!(self.state, State::Finished)
    }

    /// The client's AUTHENTICATE (`extra` is not used by these methods).
    pub(crate) fn handle_authenticate(&mut self, signature: &str, _extra: &Dict) -> AuthAction {
        let state = std::mem::replace(&mut self.state, State::Finished);
        let method = self.method.map_or("", Method::as_str);
        match state {
            State::Ticket(expected) => match expected {
                Some((ticket, grant)) if secrets_equal(ticket.expose(), signature) => {
                    self.grant(grant)
                }
                Some(_) => refused(method),
                None => {
                    // Same work as for a known authid, so timing does not tell them apart.
                    std::hint::black_box(secrets_equal("", signature));
                    refused(method)
                }
            },
            State::TicketDynamic(dynamic) => {
                let mut details = self.authenticator_details(Method::Ticket);
                details.insert("ticket".into(), Value::from(signature));
                self.state = State::Authenticator(Method::Ticket);
                self.call(&dynamic, details)
            }
            State::WampCra(expected, grant) => {
                if wampcra::verify(&expected, signature) {
                    self.grant(grant)
                } else {
                    refused(method)
                }
            }
            State::Cryptosign(key, grant) => {
                if cryptosign::verify(&key, &self.challenge, signature) {
                    self.grant(grant)
                } else {
                    refused(method)
                }
            }
            State::Finished | State::Authenticator(_) => AuthAction::Refuse {
                reason: uris::PROTOCOL_VIOLATION,
                message: "AUTHENTICATE was not expected now".into(),
            },
        }
    }

    /// The authenticator's answer: `Ok(first positional argument of its RESULT, or Null)`, or
    /// `Err((error URI, args))` for its ERROR, a timeout or a failed call.
    pub(crate) fn handle_authenticator_result(
        &mut self,
        result: Result<Value, (String, Option<List>)>,
    ) -> AuthAction {
        let state = std::mem::replace(&mut self.state, State::Finished);
        let State::Authenticator(method) = state else {
            return AuthAction::Refuse {
                reason: CREDENTIALS_REFUSED,
                message: "internal error: no authenticator call is pending".into(),
            };
        };
        let action = match self.authenticated(method, result) {
            Ok(action) | Err(action) => action,
        };
        if matches!(action, AuthAction::Welcome(_) | AuthAction::Refuse { .. }) {
            self.state = State::Finished;
        }
        action
    }

    fn begin(
        &mut self,
        config: Option<&AuthConfig>,
        hello: &Dict,
        rng: &mut dyn RngCore,
    ) -> Result<AuthAction, AuthAction> {
        let default_config;
        let config = match config {
            Some(c) => c,
            None => {
                default_config = AuthConfig {
                    anonymous: Some(turnstile_config::AnonymousAuth {
                        role: "anonymous".into(),
                        authid: None,
                    }),
                    ..AuthConfig::default()
                };
                &default_config
            }
        };
        let offered: Vec<String> = match hello.get("authmethods") {
            // No list, or an empty one, means anonymous (as in Crossbar).
            None | Some(Value::Null) => vec!["anonymous".into()],
            Some(Value::List(l)) if l.is_empty() => vec!["anonymous".into()],
            Some(Value::List(l)) => l
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect(),
            Some(other) => {
                return Err(protocol_violation(format!(
                    "HELLO.Details.authmethods must be a list, found {}",
                    other.type_name()
                )))
            }
        };
        self.hello_authid = optional_string(hello, "authid")?;
        self.hello_authrole = optional_string(hello, "authrole")?;
        self.hello_authextra = match hello.get("authextra") {
            None | Some(Value::Null) => None,
            Some(Value::Dict(d)) => Some(d.clone()),
            Some(other) => {
                return Err(protocol_violation(format!(
                    "HELLO.Details.authextra must be a dict, found {}",
                    other.type_name()
                )))
            }
        };

        let Some(method) = offered
            .iter()
            .filter_map(|name| Method::parse(name))
            .find(|m| m.offered_by(config))
        else {
            let available: Vec<&str> = Method::ALL
                .into_iter()
                .filter(|m| m.offered_by(config))
                .map(Method::as_str)
                .collect();
            return Err(AuthAction::Refuse {
                reason: uris::NO_MATCHING_AUTH_METHOD,
                message: format!(
                    "none of the offered authentication methods {offered:?} is available on \
                     this transport (available: {})",
                    available.join(", ")
                ),
            });
        };
        self.method = Some(method);

        match method {
            Method::Anonymous => match (&config.anonymous, &config.anonymous_dynamic) {
                (_, Some(dynamic)) => {
                    self.state = State::Authenticator(Method::Anonymous);
                    Ok(self.call(dynamic, self.authenticator_details(Method::Anonymous)))
                }
                (Some(anon), None) => Ok(AuthAction::Welcome(Identity {
                    authid: anon.authid.clone().unwrap_or_else(random_authid),
                    authrole: anon.role.clone(),
                    authmethod: Method::Anonymous.as_str().into(),
                    authprovider: "static".into(),
                    authextra: Dict::new(),
                })),
                (None, None) => unreachable!("anonymous is offered"),
            },
            Method::Ticket => self.begin_ticket(config.ticket.as_ref().expect("offered")),
            Method::WampCra => {
                rng.fill_bytes(&mut self.nonce);
                // Also the secret of the decoy challenge for an unknown authid.
                rng.fill_bytes(&mut self.challenge);
                self.begin_wampcra(config.wampcra.as_ref().expect("offered"))
            }
            Method::Cryptosign => {
                rng.fill_bytes(&mut self.challenge);
                self.begin_cryptosign(config.cryptosign.as_ref().expect("offered"))
            }
            Method::Tls => self.begin_tls(config.tls.as_ref().expect("offered")),
        }
    }

    /// WAMP-TLS (Crossbar's `PendingAuthTLS`): the certificate was verified in the TLS
    /// handshake; a static principal is found by its SHA-1 fingerprint (its authid is the
    /// principal's key, whatever HELLO said), a dynamic authenticator gets the certificate in
    /// `details.transport.peer_cert`. No CHALLENGE is sent.
    fn begin_tls(&mut self, config: &TlsAuth) -> Result<AuthAction, AuthAction> {
        let Some(cert) = &self.peer_cert else {
            return Err(AuthAction::Refuse {
                reason: CREDENTIALS_REFUSED,
                message: "client did not send a TLS client certificate".into(),
            });
        };
        match config {
            TlsAuth::Static { principals } => {
                let Some((authid, principal)) = principals
                    .iter()
                    .find(|(_, p)| p.certificate_sha1 == cert.sha1)
                else {
                    return Err(AuthAction::Refuse {
                        reason: CREDENTIALS_REFUSED,
                        message: format!(
                            "no principal with the certificate SHA-1 fingerprint {}",
                            cert.sha1
                        ),
                    });
                };
                Ok(self.grant(Grant {
                    authid: authid.clone(),
                    authrole: principal.role.clone(),
                    provider: "static",
                    authextra: Dict::new(),
                    realm: principal.realm.clone(),
                }))
            }
            TlsAuth::Dynamic(dynamic) => {
                self.state = State::Authenticator(Method::Tls);
                Ok(self.call(dynamic, self.authenticator_details(Method::Tls)))
            }
        }
    }

    fn begin_ticket(&mut self, config: &TicketAuth) -> Result<AuthAction, AuthAction> {
        match config {
            TicketAuth::Static { principals } => {
                let authid = self.required_authid(Method::Ticket)?;
                // An unknown authid is challenged too, and fails at AUTHENTICATE.
                let expected = principals.get(&authid).map(|p| {
                    (
                        p.ticket.clone(),
                        Grant {
                            authid: authid.clone(),
                            authrole: p.role.clone(),
                            provider: "static",
                            authextra: Dict::new(),
                            realm: p.realm.clone(),
                        },
                    )
                });
                self.state = State::Ticket(expected);
            }
            TicketAuth::Dynamic(dynamic) => self.state = State::TicketDynamic(dynamic.clone()),
        }
        Ok(AuthAction::Challenge {
            authmethod: Method::Ticket.as_str().into(),
            extra: Dict::new(),
        })
    }

    fn begin_wampcra(&mut self, config: &WampCraAuth) -> Result<AuthAction, AuthAction> {
        match config {
            WampCraAuth::Static { users } => {
                let authid = self.required_authid(Method::WampCra)?;
                let Some(user) = users.get(&authid) else {
                    // An unknown authid is challenged like a known one, with a secret nobody
                    // has, so that the CHALLENGE does not tell which authids exist.
                    let unguessable = hex::encode(self.challenge);
                    let grant = Grant {
                        authid,
                        authrole: "anonymous".into(),
                        provider: "static",
                        authextra: Dict::new(),
                        realm: None,
                    };
                    return Ok(self.challenge_wampcra(&unguessable, None, grant));
                };
                let grant = Grant {
                    authid,
                    authrole: user.role.clone(),
                    provider: "static",
                    authextra: Dict::new(),
                    realm: user.realm.clone(),
                };
                Ok(self.challenge_wampcra(user.key().expose(), user.salt(), grant))
            }
            WampCraAuth::Dynamic(dynamic) => {
                self.state = State::Authenticator(Method::WampCra);
                Ok(self.call(dynamic, self.authenticator_details(Method::WampCra)))
            }
        }
    }

    fn begin_cryptosign(&mut self, config: &CryptosignAuth) -> Result<AuthAction, AuthAction> {
        let extra = self.hello_authextra.as_ref();
        match extra.and_then(|e| e.get("channel_binding")) {
            None | Some(Value::Null) => {}
            Some(Value::Str(binding)) if binding == "tls-unique" => {
                return Err(AuthAction::Refuse {
                    reason: CREDENTIALS_REFUSED,
                    message: "channel binding \"tls-unique\" requires TLS, which this router does \
                              not offer yet"
                        .into(),
                })
            }
            Some(other) => {
                return Err(AuthAction::Refuse {
                    reason: CREDENTIALS_REFUSED,
                    message: format!(
                        "unknown channel binding {} (only \"tls-unique\" exists)",
                        short(other)
                    ),
                })
            }
        }
        let pubkey_hex = match extra.and_then(|e| e.get("pubkey")) {
            None | Some(Value::Null) => None,
            Some(Value::Str(hex_key)) => {
                let Some(key) = cryptosign::parse_public_key(hex_key) else {
                    return Err(bad_pubkey("HELLO.Details.authextra.pubkey"));
                };
                self.hello_pubkey = Some(key);
                Some(hex_key.to_ascii_lowercase())
            }
            Some(_) => return Err(bad_pubkey("HELLO.Details.authextra.pubkey")),
        };
        let principals = match config {
            CryptosignAuth::Static { principals } => principals,
            CryptosignAuth::Dynamic(dynamic) => {
                self.state = State::Authenticator(Method::Cryptosign);
                return Ok(self.call(dynamic, self.authenticator_details(Method::Cryptosign)));
            }
        };
        let (Some(pubkey_hex), Some(key)) = (pubkey_hex, self.hello_pubkey) else {
            return Err(AuthAction::Refuse {
                reason: CREDENTIALS_REFUSED,
                message: "WAMP-Cryptosign needs the client's public key in \
                          HELLO.Details.authextra.pubkey"
                    .into(),
            });
        };
        let has_key =
            |p: &turnstile_config::CryptosignPrincipal| p.authorized_keys.contains(&pubkey_hex);
        let (authid, principal) = match &self.hello_authid {
            Some(authid) => match principals.get(authid) {
                Some(p) if has_key(p) => (authid.clone(), p),
                _ => return Err(refused(Method::Cryptosign.as_str())),
            },
            None => {
                let mut found = principals.iter().filter(|(_, p)| has_key(p));
                match (found.next(), found.next()) {
                    (Some((authid, p)), None) => (authid.clone(), p),
                    (None, _) => return Err(refused(Method::Cryptosign.as_str())),
                    (Some(_), Some(_)) => {
                        return Err(AuthAction::Refuse {
                            reason: CREDENTIALS_REFUSED,
                            message: "this public key belongs to several principals: give the \
                                      authid in HELLO"
                                .into(),
                        })
                    }
                }
            }
        };
        let grant = Grant {
            authid,
            authrole: principal.role.clone(),
            provider: "static",
            authextra: Dict::new(),
            realm: principal.realm.clone(),
        };
        Ok(self.challenge_cryptosign(key, grant))
    }

    /// Turns an authenticator's answer into the next action.
    fn authenticated(
        &mut self,
        method: Method,
        result: Result<Value, (String, Option<List>)>,
    ) -> Result<AuthAction, AuthAction> {
        let value = result.map_err(|(error, args)| {
            let detail = args
                .as_ref()
                .and_then(|a| a.first())
                .and_then(Value::as_str)
                .map(|s| format!(": {s}"))
                .unwrap_or_default();
            AuthAction::Refuse {
                reason: uris::AUTHENTICATION_FAILED,
                message: format!("the authenticator refused: {error}{detail}"),
            }
        })?;
        let principal = parse_principal(value).map_err(|problem| AuthAction::Refuse {
            reason: uris::AUTHENTICATION_FAILED,
            message: format!("the authenticator returned an invalid result: {problem}"),
        })?;
        self.check_realm(principal.realm.as_deref())?;
        let authid = principal
            .authid
            .clone()
            .or_else(|| self.hello_authid.clone());
        let authid = match (method, authid) {
            (_, Some(authid)) => authid,
            (Method::Anonymous, None) => random_authid(),
            // A certificate names its holder: its common name is the authid when neither the
            // authenticator nor HELLO gave one (Crossbar refuses with no_such_principal).
            (Method::Tls, None) if self.cert_cn().is_some() => {
                self.cert_cn().expect("checked").to_owned()
            }
            (_, None) => {
                return Err(AuthAction::Refuse {
                    reason: NO_SUCH_PRINCIPAL,
                    message: "no authid: HELLO has none and the authenticator assigned none".into(),
                })
            }
        };
        let grant = Grant {
            authid,
            authrole: principal.role,
            provider: "dynamic",
            authextra: principal.extra,
            realm: principal.realm,
        };
        match method {
            Method::Anonymous | Method::Ticket | Method::Tls => Ok(self.grant(grant)),
            Method::WampCra => {
                let Some(secret) = principal.secret else {
                    return Err(AuthAction::Refuse {
                        reason: uris::AUTHENTICATION_FAILED,
                        message: "the authenticator returned an invalid result: no \"secret\""
                            .into(),
                    });
                };
                // Crossbar's authenticator returns the password; the key is derived from it.
                let key = match &principal.salt {
                    Some(params) => wamp_proto::wampcra::derive_key(&secret, params),
                    None => secret,
                };
                Ok(self.challenge_wampcra(&key, principal.salt.as_ref(), grant))
            }
            Method::Cryptosign => {
                let key = match &principal.pubkey {
                    Some(hex_key) => match cryptosign::parse_public_key(hex_key) {
                        Some(key) => key,
                        None => return Err(bad_pubkey("the authenticator's \"pubkey\"")),
                    },
                    None => self.hello_pubkey.ok_or_else(|| AuthAction::Refuse {
                        reason: CREDENTIALS_REFUSED,
                        message: "WAMP-Cryptosign needs a public key: HELLO.Details.authextra \
                                  has no \"pubkey\" and the authenticator returned none"
                            .into(),
                    })?,
                };
                Ok(self.challenge_cryptosign(key, grant))
            }
        }
    }

    /// CHALLENGE for `grant`, whose signatures are checked with `key` (the secret, or the key
    /// derived from it with `salt`, whose parameters the client gets in CHALLENGE.Extra).
    fn challenge_wampcra(&mut self, key: &str, salt: Option<&CraSalt>, grant: Grant) -> AuthAction {
        let challenge = wampcra::challenge(
            &grant.authid,
            &grant.authrole,
            grant.provider,
            self.session_id,
            &self.nonce,
            self.now_unix_ns,
        );
        let expected = wampcra::expected_signature(key, &challenge);
        let mut extra = dict! {"challenge" => challenge};
        if let Some(salt) = salt {
            extra.insert("salt".into(), Value::from(salt.salt.as_str()));
            extra.insert("iterations".into(), Value::from(salt.iterations));
            extra.insert("keylen".into(), Value::from(salt.keylen));
        }
        self.state = State::WampCra(expected, grant);
        AuthAction::Challenge {
            authmethod: Method::WampCra.as_str().into(),
            extra,
        }
    }

    fn challenge_cryptosign(&mut self, key: VerifyingKey, grant: Grant) -> AuthAction {
        self.state = State::Cryptosign(key, grant);
        AuthAction::Challenge {
            authmethod: Method::Cryptosign.as_str().into(),
            extra: dict! {
                "challenge" => hex::encode(self.challenge),
                "channel_binding" => Value::Null,
            },
        }
    }

    /// WELCOME for `grant`, unless its principal is restricted to another realm.
    fn grant(&mut self, grant: Grant) -> AuthAction {
        if let Err(refusal) = self.check_realm(grant.realm.as_deref()) {
            return refusal;
        }
        AuthAction::Welcome(Identity {
            authid: grant.authid,
            authrole: grant.authrole,
            authmethod: self.method.map_or("", Method::as_str).into(),
            authprovider: grant.provider.into(),
            authextra: grant.authextra,
        })
    }

    fn check_realm(&self, realm: Option<&str>) -> Result<(), AuthAction> {
        match realm {
            Some(realm) if realm != self.realm => Err(AuthAction::Refuse {
                reason: uris::NOT_AUTHORIZED,
                message: format!(
                    "this principal may join realm \"{realm}\" only, not \"{}\"",
                    self.realm
                ),
            }),
            _ => Ok(()),
        }
    }

    fn required_authid(&self, method: Method) -> Result<String, AuthAction> {
        self.hello_authid.clone().ok_or_else(|| AuthAction::Refuse {
            reason: CREDENTIALS_REFUSED,
            message: format!(
                "{} authentication needs an authid in HELLO.Details",
                method.as_str()
            ),
        })
    }

    /// The common name of the client certificate's subject, if any.
    fn cert_cn(&self) -> Option<&str> {
        self.peer_cert.as_ref().and_then(PeerCert::common_name)
    }

    /// The `details` argument of an authenticator call.
    fn authenticator_details(&self, method: Method) -> Dict {
        let opt = |s: &Option<String>| s.as_deref().map_or(Value::Null, Value::from);
        dict! {
            "session" => self.session_id,
            "transport" => Value::Dict(self.transport.clone()),
            "authmethod" => method.as_str(),
            "authid" => opt(&self.hello_authid),
            "authrole" => opt(&self.hello_authrole),
            "authextra" => self.hello_authextra.clone().map_or(Value::Null, Value::Dict),
        }
    }

    fn call(&self, dynamic: &DynamicAuth, details: Dict) -> AuthAction {
        let authid = self
            .hello_authid
            .as_deref()
            .map_or(Value::Null, Value::from);
        AuthAction::CallAuthenticator {
            procedure: dynamic.authenticator.clone(),
            realm: dynamic
                .authenticator_realm
                .clone()
                .unwrap_or_else(|| self.realm.clone()),
            args: vec![
                Value::from(self.realm.as_str()),
                authid,
                Value::Dict(details),
            ],
        }
    }
}

/// The refusal of wrong credentials: the same for every cause.
fn refused(method: &str) -> AuthAction {
    AuthAction::Refuse {
        reason: CREDENTIALS_REFUSED,
        message: format!("{method} authentication failed"),
    }
}

fn protocol_violation(message: String) -> AuthAction {
    AuthAction::Refuse {
        reason: uris::PROTOCOL_VIOLATION,
        message,
    }
}

fn bad_pubkey(what: &str) -> AuthAction {
    AuthAction::Refuse {
        reason: CREDENTIALS_REFUSED,
        message: format!("{what} must be an Ed25519 public key of 64 hex characters"),
    }
}

/// A HELLO.Details string that may be absent or null.
fn optional_string(hello: &Dict, key: &str) -> Result<Option<String>, AuthAction> {
    match hello.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Str(s)) => Ok(Some(s.clone())),
        Some(other) => Err(protocol_violation(format!(
            "HELLO.Details.{key} must be a string, found {}",
            other.type_name()
        ))),
    }
}

/// Whether two secrets are equal, in time independent of their content and length (both are
/// hashed first, so neither a prefix nor the length leaks).
pub(crate) fn secrets_equal(a: &str, b: &str) -> bool {
    let (ha, hb) = (Sha256::digest(a.as_bytes()), Sha256::digest(b.as_bytes()));
    bool::from(ha.as_slice().ct_eq(hb.as_slice()))
}

/// A value for a message, shortened.
fn short(value: &Value) -> String {
    let text = match value {
        Value::Str(s) => format!("\"{s}\""),
        other => other.type_name().to_owned(),
    };
    text.chars().take(64).collect()
}

/// Reads an authenticator's answer: a role, or a dict.
fn parse_principal(value: Value) -> Result<Principal, String> {
    let dict = match value {
        Value::Str(role) if !role.is_empty() => {
            return Ok(Principal {
                role,
                ..Principal::default()
            })
        }
        Value::Dict(d) => d,
        Value::Str(_) => {
            return Err(
                "expected a role (a string) or a dict with \"role\", found an empty string".into(),
            )
        }
        other => {
            return Err(format!(
                "expected a role (a string) or a dict with \"role\", found {}",
                other.type_name()
            ))
        }
    };
    let string = |key: &str| -> Result<Option<String>, String> {
        match dict.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Str(s)) if !s.is_empty() => Ok(Some(s.clone())),
            Some(other) => Err(format!(
                "\"{key}\" must be a non-empty string, found {}",
                match other {
                    Value::Str(_) => "an empty string",
                    other => other.type_name(),
                }
            )),
        }
    };
    let int = |key: &str, max: u64| -> Result<Option<u32>, String> {
        match dict.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => match v.as_u64() {
                Some(n) if (1..=max).contains(&n) => Ok(Some(n as u32)),
                _ => Err(format!("\"{key}\" must be an integer between 1 and {max}")),
            },
        }
    };
    let role = string("role")?.ok_or_else(|| "no \"role\"".to_owned())?;
    let extra = match dict.get("extra") {
        None | Some(Value::Null) => Dict::new(),
        Some(Value::Dict(d)) => d.clone(),
        Some(other) => {
            return Err(format!(
                "\"extra\" must be a dict, found {}",
                other.type_name()
            ))
        }
    };
    let iterations = int("iterations", u64::from(wamp_proto::wampcra::MAX_ITERATIONS))?;
    let keylen = int("keylen", u64::from(wamp_proto::wampcra::MAX_KEYLEN))?;
    // As for static users: a salted secret has all three, as Crossbar uses them.
    let salt = match (string("salt")?, iterations, keylen) {
        (Some(salt), Some(iterations), Some(keylen)) => Some(CraSalt {
            salt,
            iterations,
            keylen,
        }),
        (None, None, None) => None,
        _ => {
            return Err(
                "a salted secret needs \"salt\", \"iterations\" and \"keylen\" \
                        together"
                    .into(),
            )
        }
    };
    Ok(Principal {
        role,
        authid: string("authid")?,
        realm: string("realm")?,
        extra,
        secret: string("secret")?,
        salt,
        pubkey: string("pubkey")?,
    })
}
