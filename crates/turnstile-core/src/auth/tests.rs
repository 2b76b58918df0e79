//! Tests of the authentication flow. The reference values come from the real Autobahn|Python
//! 26.10.2 client code (`scripts/auth_vectors.py`), driven with the same deterministic random
//! bytes ([`PatternRng`]) and clock as here.

use std::collections::BTreeMap;

use rand::RngCore;
use turnstile_config::{AnonymousAuth, CryptosignPrincipal, TicketPrincipal, WampCraUser};
use wamp_proto::{dict, uris, Dict, List, Value};

use super::dynamic_authorizer::{self as authorizer, AuthorizerDecision, DecisionCache};
use super::*;
use crate::permissions::{Action, Decision};

// ---- Reference values (scripts/auth_vectors.py) ----

const SESSION: u64 = 1234567890123;
const NOW_UNIX_NS: u64 = 1_700_000_000_123_456_789;
/// The first byte [`PatternRng`] produces.
const RNG_START: u8 = 7;

const CRA_CHALLENGE: &str = r#"{"authid": "joe", "authrole": "frontend", "authmethod": "wampcra", "authprovider": "static", "session": 1234567890123, "nonce": "BwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyAhIiMkJSYnKCkqKywtLi8wMTIzNDU2", "timestamp": "2023-11-14T22:13:20.123Z"}"#;
/// Autobahn's `AuthWampCra(secret="secret123").on_challenge(...)` for [`CRA_CHALLENGE`].
const CRA_SIGNATURE: &str = "poyiOEL7rk41zbzW+OYjcEytNG48UAtq5QYrduix5Vo=";
/// A salted user's password, configured as its `secret` (as in Crossbar).
const CRA_SALTED_PASSWORD: &str = "secret1";
/// Autobahn's `derive_key("secret1", "salt123", 100, 16)`: the key both sides sign with.
const CRA_SALTED_KEY: &str = "prq7+YkJ1/KlW1X0YczMHw==";
const CRA_SALTED_CHALLENGE: &str = r#"{"authid": "peter", "authrole": "frontend", "authmethod": "wampcra", "authprovider": "static", "session": 1234567890123, "nonce": "BwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyAhIiMkJSYnKCkqKywtLi8wMTIzNDU2", "timestamp": "2023-11-14T22:13:20.123Z"}"#;
/// Autobahn's client with password "secret1", deriving the key from CHALLENGE.Extra.
const CRA_SALTED_SIGNATURE: &str = "oTgYXNyGjzme6CdTzlPwygWrHCwYvFIAhE0gkAM8Uow=";
const CRA_UNICODE_CHALLENGE: &str = "{\"authid\": \"jöe \\\"q\\\"\", \"authrole\": \"frontend\", \"authmethod\": \"wampcra\", \"authprovider\": \"dynamic\", \"session\": 1234567890123, \"nonce\": \"BwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyAhIiMkJSYnKCkqKywtLi8wMTIzNDU2\", \"timestamp\": \"2023-11-14T22:13:20.123Z\"}";
/// Secret "s3cr3t".
const CRA_UNICODE_SIGNATURE: &str = "Bu2FEfS8cXOLpgs8r4v5OniHqKHuN1CxDaNNIrEYMNs=";

const CS_CHALLENGE: &str = "0708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f20212223242526";
const CS_KEY_PUB: &str = "0bbc346a57667c380120bd9c7fd7e51d2c5fdfea37cd2f5bf405b2c6bf6f2d78";
/// Autobahn's `CryptosignKey.sign_challenge` of [`CS_CHALLENGE`] (signature || challenge).
const CS_KEY_SIGNATURE: &str = "1dfaef828459294316396653ccd4939f1f479546e6a8196a61ee32b823823a5fc236941e528f74246670e69ee01b8aab173336ed44c17a0030488eae3c3cdf0a0708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f20212223242526";
const CS_OTHER_KEY_PUB: &str = "32b53e882e3daac180d7a5f6224d61b6401b43f901db09f0e4d84ce4e4a2718b";
const CS_OTHER_KEY_SIGNATURE: &str = "78aad2479035b25c5f07985e1110c684a37219874001f66a280ef6d9d18fd73b2083e311239bdead160acb53e9f9b89437f10a036ef447fcf93a2f965ba5ed060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f20212223242526";

// ---- Helpers ----

/// Fills every buffer with `start, start + 1, ...` (mod 256), as the vector script assumes.
struct PatternRng(u8);

impl RngCore for PatternRng {
    fn next_u32(&mut self) -> u32 {
        u32::from(self.0)
    }
    fn next_u64(&mut self) -> u64 {
        u64::from(self.0)
    }
    fn fill_bytes(&mut self, dst: &mut [u8]) {
        for (i, b) in dst.iter_mut().enumerate() {
            *b = self.0.wrapping_add(i as u8);
        }
    }
}

fn hello(methods: &[&str], authid: Option<&str>, authextra: Option<Dict>) -> Dict {
    let mut h = dict! {
        "roles" => Value::Dict(dict! {"caller" => Value::Dict(Dict::new())}),
        "authmethods" => Value::List(methods.iter().map(|m| Value::from(*m)).collect()),
    };
    if let Some(authid) = authid {
        h.insert("authid".into(), Value::from(authid));
    }
    if let Some(extra) = authextra {
        h.insert("authextra".into(), Value::Dict(extra));
    }
    h
}

fn transport() -> Dict {
    dict! {"channel_type" => "tcp", "peer" => "tcp4:127.0.0.1:5000"}
}

fn start(config: Option<&AuthConfig>, hello: &Dict) -> (AuthFlow, AuthAction) {
    let transport = transport();
    let request = AuthRequest {
        realm: "realm1",
        hello,
        session_id: SESSION,
        transport: &transport,
        now_unix_ns: NOW_UNIX_NS,
        peer_cert: None,
    };
    AuthFlow::start(config, &request, &mut PatternRng(RNG_START))
}

/// [`start`] on a TLS connection with client certificate `cert`.
fn start_tls(config: &AuthConfig, hello: &Dict, cert: Option<&PeerCert>) -> (AuthFlow, AuthAction) {
    let transport = transport();
    let request = AuthRequest {
        realm: "realm1",
        hello,
        session_id: SESSION,
        transport: &transport,
        now_unix_ns: NOW_UNIX_NS,
        peer_cert: cert,
    };
    AuthFlow::start(Some(config), &request, &mut PatternRng(RNG_START))
}

const CERT_SHA1: &str = "B6:E5:4D:3A:1F:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE";

fn peer_cert(sha1: &str, cn: Option<&str>) -> PeerCert {
    PeerCert {
        sha1: sha1.into(),
        sha256: "00".into(),
        md5: "00".into(),
        subject: cn
            .map(|cn| BTreeMap::from([("cn".to_owned(), cn.to_owned())]))
            .unwrap_or_default(),
        issuer: BTreeMap::new(),
        serial: "1".into(),
        not_before: "20260101000000Z".into(),
        not_after: "20270101000000Z".into(),
        expired: false,
        version: 2,
        signature_algorithm: "ecdsa-with-SHA256".into(),
    }
}

fn static_tls() -> AuthConfig {
    AuthConfig {
        tls: Some(TlsAuth::Static {
            principals: BTreeMap::from([(
                "client_0".to_owned(),
                turnstile_config::TlsPrincipal {
                    certificate_sha1: CERT_SHA1.into(),
                    role: "backend".into(),
                    realm: None,
                },
            )]),
        }),
        ..AuthConfig::default()
    }
}

#[track_caller]
fn welcome(action: AuthAction) -> Identity {
    match action {
        AuthAction::Welcome(identity) => identity,
        other => panic!("expected Welcome, got {other:?}"),
    }
}

#[track_caller]
fn challenge(action: AuthAction) -> (String, Dict) {
    match action {
        AuthAction::Challenge { authmethod, extra } => (authmethod, extra),
        other => panic!("expected Challenge, got {other:?}"),
    }
}

#[track_caller]
fn refuse(action: AuthAction) -> (&'static str, String) {
    match action {
        AuthAction::Refuse { reason, message } => (reason, message),
        other => panic!("expected Refuse, got {other:?}"),
    }
}

#[track_caller]
fn call(action: AuthAction) -> (String, String, List) {
    match action {
        AuthAction::CallAuthenticator {
            procedure,
            realm,
            args,
        } => (procedure, realm, args),
        other => panic!("expected CallAuthenticator, got {other:?}"),
    }
}

/// The refusal of wrong credentials for `method`: one reason and message for every cause.
#[track_caller]
fn assert_refused(action: AuthAction, method: &str) {
    assert_eq!(
        refuse(action),
        (
            CREDENTIALS_REFUSED,
            format!("{method} authentication failed")
        )
    );
}

#[track_caller]
fn assert_identity(id: &Identity, authid: &str, role: &str, method: &str, provider: &str) {
    assert_eq!(
        (
            id.authid.as_str(),
            id.authrole.as_str(),
            id.authmethod.as_str(),
            id.authprovider.as_str()
        ),
        (authid, role, method, provider)
    );
}

fn dynamic(procedure: &str) -> DynamicAuth {
    DynamicAuth {
        authenticator: procedure.into(),
        authenticator_realm: None,
    }
}

fn ticket_config() -> AuthConfig {
    AuthConfig {
        ticket: Some(TicketAuth::Static {
            principals: BTreeMap::from([
                (
                    "joe".to_owned(),
                    TicketPrincipal {
                        ticket: Secret::new("secret!"),
                        role: "user".into(),
                        realm: None,
                    },
                ),
                (
                    "ann".to_owned(),
                    TicketPrincipal {
                        ticket: Secret::new("ann-ticket"),
                        role: "admin".into(),
                        realm: Some("other".into()),
                    },
                ),
            ]),
        }),
        ..AuthConfig::default()
    }
}

fn cra_config() -> AuthConfig {
    AuthConfig {
        wampcra: Some(WampCraAuth::Static {
            users: BTreeMap::from([
                (
                    "joe".to_owned(),
                    WampCraUser::new(Secret::new("secret123"), "frontend".into(), None, None),
                ),
                (
                    "peter".to_owned(),
                    WampCraUser::new(
                        Secret::new(CRA_SALTED_PASSWORD),
                        "frontend".into(),
                        None,
                        Some(CraSalt {
                            salt: "salt123".into(),
                            iterations: 100,
                            keylen: 16,
                        }),
                    ),
                ),
                (
                    "ann".to_owned(),
                    WampCraUser::new(
                        Secret::new("secret123"),
                        "frontend".into(),
                        Some("other".into()),
                        None,
                    ),
                ),
            ]),
        }),
        ..AuthConfig::default()
    }
}

fn cs_config() -> AuthConfig {
    AuthConfig {
        cryptosign: Some(CryptosignAuth::Static {
            principals: BTreeMap::from([
                (
                    "client1".to_owned(),
                    CryptosignPrincipal {
                        authorized_keys: vec![CS_KEY_PUB.into()],
                        role: "user".into(),
                        realm: Some("realm1".into()),
                    },
                ),
                (
                    "client2".to_owned(),
                    CryptosignPrincipal {
                        authorized_keys: vec!["ab".repeat(32)],
                        role: "user".into(),
                        realm: None,
                    },
                ),
            ]),
        }),
        ..AuthConfig::default()
    }
}

fn pubkey(key: &str) -> Option<Dict> {
    Some(dict! {"pubkey" => key})
}

// ---- Method choice and anonymous ----

#[test]
fn no_config_means_anonymous_with_role_anonymous() {
    let mut h = hello(&[], None, None);
    h.remove("authmethods");
    let (flow, action) = start(None, &h);
    let id = welcome(action);
    assert_identity(&id, &id.authid, "anonymous", "anonymous", "static");
    assert_eq!(id.authid.len(), 29, "a random authid: {}", id.authid);
    assert!(id.authextra.is_empty());
    assert!(flow.is_finished());
    assert_eq!(flow.method(), Some(Method::Anonymous));

    let (reason, message) = refuse(start(None, &hello(&["ticket"], Some("joe"), None)).1);
    assert_eq!(reason, uris::NO_MATCHING_AUTH_METHOD);
    assert_eq!(
        message,
        "none of the offered authentication methods [\"ticket\"] is available on this transport \
         (available: anonymous)"
    );
}

#[test]
fn static_anonymous_uses_the_configured_role_and_authid() {
    let config = AuthConfig {
        anonymous: Some(AnonymousAuth {
            role: "guest".into(),
            authid: Some("visitor".into()),
        }),
        ..AuthConfig::default()
    };
    let id = welcome(start(Some(&config), &hello(&["anonymous"], Some("x"), None)).1);
    assert_identity(&id, "visitor", "guest", "anonymous", "static");
}

#[test]
fn malformed_hello_details_are_protocol_violations() {
    let mut h = hello(&[], None, None);
    h.insert("authmethods".into(), Value::from("anonymous"));
    assert_eq!(
        refuse(start(None, &h).1),
        (
            uris::PROTOCOL_VIOLATION,
            "HELLO.Details.authmethods must be a list, found string".to_owned()
        )
    );
    let mut h = hello(&["anonymous"], None, None);
    h.insert("authid".into(), Value::from(5u64));
    assert_eq!(refuse(start(None, &h).1).0, uris::PROTOCOL_VIOLATION);
    let mut h = hello(&["anonymous"], None, None);
    h.insert("authextra".into(), Value::from("x"));
    assert_eq!(refuse(start(None, &h).1).0, uris::PROTOCOL_VIOLATION);
}

#[test]
fn methods_are_tried_in_the_clients_order() {
    let mut config = cra_config();
    config.ticket = ticket_config().ticket;
    config.anonymous = Some(AnonymousAuth {
        role: "anonymous".into(),
        authid: None,
    });
    let pick = |methods: &[&str]| {
        let (flow, _) = start(Some(&config), &hello(methods, Some("joe"), None));
        flow.method()
    };
    assert_eq!(pick(&["wampcra", "ticket"]), Some(Method::WampCra));
    assert_eq!(pick(&["ticket", "wampcra"]), Some(Method::Ticket));
    // Unknown and unconfigured names are skipped.
    assert_eq!(
        pick(&["cookie", "cryptosign", "x", "anonymous", "ticket"]),
        Some(Method::Anonymous)
    );
    let (flow, action) = start(Some(&config), &hello(&["scram", "cryptosign"], None, None));
    assert_eq!(flow.method(), None);
    assert_eq!(
        refuse(action),
        (
            uris::NO_MATCHING_AUTH_METHOD,
            "none of the offered authentication methods [\"scram\", \"cryptosign\"] is \
             available on this transport (available: anonymous, ticket, wampcra)"
                .to_owned()
        )
    );
    // Without authmethods, only anonymous is asked for: not configured here.
    let (_, action) = start(Some(&cra_config()), &{
        let mut h = hello(&[], None, None);
        h.remove("authmethods");
        h
    });
    assert_eq!(refuse(action).0, uris::NO_MATCHING_AUTH_METHOD);
}

#[test]
fn dynamic_anonymous_calls_the_authenticator() {
    let config = AuthConfig {
        anonymous_dynamic: Some(DynamicAuth {
            authenticator: "com.example.anon".into(),
            authenticator_realm: Some("auth".into()),
        }),
        ..AuthConfig::default()
    };
    let (mut flow, action) = start(Some(&config), &hello(&["anonymous"], None, None));
    let (procedure, realm, args) = call(action);
    assert_eq!(
        (procedure.as_str(), realm.as_str()),
        ("com.example.anon", "auth")
    );
    assert_eq!(args[0], Value::from("realm1"));
    assert_eq!(args[1], Value::Null);
    let details = args[2].as_dict().unwrap();
    assert_eq!(details["authmethod"], Value::from("anonymous"));
    assert_eq!(details["session"], Value::from(SESSION));
    assert_eq!(details["transport"], Value::Dict(transport()));
    assert!(!flow.is_finished());
    let id = welcome(flow.handle_authenticator_result(Ok(Value::from("guest"))));
    assert_identity(&id, &id.authid, "guest", "anonymous", "dynamic");
    assert_eq!(id.authid.len(), 29);
    assert!(flow.is_finished());
}

// ---- Ticket ----

#[test]
fn static_ticket_success() {
    let (mut flow, action) = start(
        Some(&ticket_config()),
        &hello(&["ticket"], Some("joe"), None),
    );
    assert_eq!(challenge(action), ("ticket".to_owned(), Dict::new()));
    let id = welcome(flow.handle_authenticate("secret!", &Dict::new()));
    assert_identity(&id, "joe", "user", "ticket", "static");
    assert!(id.authextra.is_empty());
    assert!(flow.is_finished());
}

#[test]
fn static_ticket_failures_look_alike() {
    let config = ticket_config();
    // Wrong ticket, a prefix, a longer one, empty.
    for wrong in ["secret", "secret!!", "", "SECRET!", "ann-ticket"] {
        let (mut flow, _) = start(Some(&config), &hello(&["ticket"], Some("joe"), None));
        assert_refused(flow.handle_authenticate(wrong, &Dict::new()), "ticket");
        assert!(flow.is_finished());
    }
    // An unknown authid is challenged all the same, then refused identically.
    let (mut flow, action) = start(Some(&config), &hello(&["ticket"], Some("nobody"), None));
    assert_eq!(challenge(action), ("ticket".to_owned(), Dict::new()));
    assert_refused(flow.handle_authenticate("secret!", &Dict::new()), "ticket");
    // No authid at all.
    let (flow, action) = start(Some(&config), &hello(&["ticket"], None, None));
    assert_eq!(
        refuse(action),
        (
            CREDENTIALS_REFUSED,
            "ticket authentication needs an authid in HELLO.Details".to_owned()
        )
    );
    assert!(flow.is_finished());
}

#[test]
fn principal_restricted_to_another_realm_is_refused() {
    let config = ticket_config();
    let (mut flow, _) = start(Some(&config), &hello(&["ticket"], Some("ann"), None));
    assert_eq!(
        refuse(flow.handle_authenticate("ann-ticket", &Dict::new())),
        (
            uris::NOT_AUTHORIZED,
            "this principal may join realm \"other\" only, not \"realm1\"".to_owned()
        )
    );
    // With a wrong ticket the realm is not mentioned.
    let (mut flow, _) = start(Some(&config), &hello(&["ticket"], Some("ann"), None));
    assert_refused(flow.handle_authenticate("nope", &Dict::new()), "ticket");

    let (mut flow, _) = start(Some(&cra_config()), &hello(&["wampcra"], Some("ann"), None));
    assert_eq!(
        refuse(flow.handle_authenticate(CRA_SIGNATURE, &Dict::new())).0,
        CREDENTIALS_REFUSED,
        "different challenge authid: the signature does not match"
    );
}

#[test]
fn dynamic_ticket_calls_the_authenticator_with_the_ticket() {
    let config = AuthConfig {
        ticket: Some(TicketAuth::Dynamic(dynamic("com.example.ticket"))),
        ..AuthConfig::default()
    };
    let extra = dict! {"app" => "x"};
    let h = {
        let mut h = hello(&["ticket"], Some("joe"), Some(extra.clone()));
        h.insert("authrole".into(), Value::from("wanted"));
        h
    };
    let (mut flow, action) = start(Some(&config), &h);
    assert_eq!(challenge(action), ("ticket".to_owned(), Dict::new()));
    let (procedure, realm, args) = call(flow.handle_authenticate("tkt", &Dict::new()));
    assert_eq!(
        (procedure.as_str(), realm.as_str()),
        ("com.example.ticket", "realm1")
    );
    assert_eq!(args[..2], [Value::from("realm1"), Value::from("joe")]);
    assert_eq!(
        args[2],
        Value::Dict(dict! {
            "session" => SESSION,
            "transport" => Value::Dict(transport()),
            "authmethod" => "ticket",
            "authid" => "joe",
            "authrole" => "wanted",
            "authextra" => Value::Dict(extra),
            "ticket" => "tkt",
        })
    );
    // AUTHENTICATE again while waiting: a protocol violation.
    let (mut flow2, _) = start(Some(&config), &h);
    flow2.handle_authenticate("tkt", &Dict::new());
    assert_eq!(
        refuse(flow2.handle_authenticate("tkt", &Dict::new())).0,
        uris::PROTOCOL_VIOLATION
    );

    // A dict result may override the authid and set authextra.
    let result = Value::Dict(dict! {
        "role" => "user",
        "authid" => "joe@example",
        "realm" => "realm1",
        "extra" => Value::Dict(dict! {"k" => 1u64}),
        "unknown" => true,
    });
    let id = welcome(flow.handle_authenticator_result(Ok(result)));
    assert_identity(&id, "joe@example", "user", "ticket", "dynamic");
    assert_eq!(id.authextra, dict! {"k" => 1u64});
    assert!(flow.is_finished());
}

#[test]
fn dynamic_authenticator_errors_and_bad_results_refuse() {
    let config = AuthConfig {
        ticket: Some(TicketAuth::Dynamic(dynamic("com.example.ticket"))),
        ..AuthConfig::default()
    };
    let answer = |authid: Option<&str>, result: Result<Value, (String, Option<List>)>| {
        let (mut flow, _) = start(Some(&config), &hello(&["ticket"], authid, None));
        call(flow.handle_authenticate("tkt", &Dict::new()));
        let action = flow.handle_authenticator_result(result);
        assert!(flow.is_finished());
        refuse(action)
    };
    assert_eq!(
        answer(
            Some("joe"),
            Err((
                "com.example.invalid_ticket".into(),
                Some(vec![Value::from("expired")])
            ))
        ),
        (
            uris::AUTHENTICATION_FAILED,
            "the authenticator refused: com.example.invalid_ticket: expired".to_owned()
        )
    );
    assert_eq!(
        answer(Some("joe"), Err((uris::TIMEOUT.into(), None))),
        (
            uris::AUTHENTICATION_FAILED,
            "the authenticator refused: wamp.error.timeout".to_owned()
        )
    );
    for (result, problem) in [
        (
            Value::from(5u64),
            "expected a role (a string) or a dict with \"role\", found integer",
        ),
        (
            Value::Null,
            "expected a role (a string) or a dict with \"role\", found null",
        ),
        (
            Value::from(""),
            "expected a role (a string) or a dict with \"role\", found an empty string",
        ),
        (Value::Dict(dict! {"authid" => "x"}), "no \"role\""),
        (
            Value::Dict(dict! {"role" => "r", "authid" => 3u64}),
            "\"authid\" must be a non-empty string, found integer",
        ),
        (
            Value::Dict(dict! {"role" => "r", "extra" => "x"}),
            "\"extra\" must be a dict, found string",
        ),
    ] {
        assert_eq!(
            answer(Some("joe"), Ok(result)),
            (
                uris::AUTHENTICATION_FAILED,
                format!("the authenticator returned an invalid result: {problem}")
            )
        );
    }
    assert_eq!(
        answer(
            Some("joe"),
            Ok(Value::Dict(dict! {"role" => "r", "realm" => "elsewhere"}))
        )
        .0,
        uris::NOT_AUTHORIZED
    );
    assert_eq!(answer(None, Ok(Value::from("user"))).0, NO_SUCH_PRINCIPAL);
}

#[test]
fn unexpected_inputs_are_refused() {
    let (mut flow, action) = start(None, &hello(&["anonymous"], None, None));
    welcome(action);
    assert_eq!(
        refuse(flow.handle_authenticate("x", &Dict::new())).0,
        uris::PROTOCOL_VIOLATION
    );
    let (mut flow, _) = start(
        Some(&ticket_config()),
        &hello(&["ticket"], Some("joe"), None),
    );
    assert_eq!(
        refuse(flow.handle_authenticator_result(Ok(Value::from("user")))).0,
        CREDENTIALS_REFUSED
    );
    assert!(flow.is_finished());
}

// ---- WAMP-CRA ----

#[test]
fn wampcra_challenge_matches_crossbar_and_autobahn_signature_is_accepted() {
    let (mut flow, action) = start(Some(&cra_config()), &hello(&["wampcra"], Some("joe"), None));
    let (method, extra) = challenge(action);
    assert_eq!(method, "wampcra");
    assert_eq!(extra, dict! {"challenge" => CRA_CHALLENGE});
    let id = welcome(flow.handle_authenticate(CRA_SIGNATURE, &Dict::new()));
    assert_identity(&id, "joe", "frontend", "wampcra", "static");
}

#[test]
fn wampcra_salted_user() {
    let (mut flow, action) = start(
        Some(&cra_config()),
        &hello(&["wampcra"], Some("peter"), None),
    );
    let (_, extra) = challenge(action);
    assert_eq!(
        extra,
        dict! {
            "challenge" => CRA_SALTED_CHALLENGE,
            "salt" => "salt123",
            "iterations" => 100u64,
            "keylen" => 16u64,
        }
    );
    let id = welcome(flow.handle_authenticate(CRA_SALTED_SIGNATURE, &Dict::new()));
    assert_identity(&id, "peter", "frontend", "wampcra", "static");
}

#[test]
fn wampcra_failures_look_alike() {
    let config = cra_config();
    let wrong_signatures = [
        // HMAC with the right secret over another challenge; with a wrong secret.
        CRA_SALTED_SIGNATURE.to_owned(),
        base64::Engine::encode(
            &base64::engine::general_purpose::STANDARD,
            wampcra::expected_signature("secret124", CRA_CHALLENGE),
        ),
        // Malformed: not base64, truncated, empty, the secret itself.
        "not base64!".to_owned(),
        CRA_SIGNATURE[..20].to_owned(),
        String::new(),
        "secret123".to_owned(),
    ];
    for wrong in &wrong_signatures {
        let (mut flow, _) = start(Some(&config), &hello(&["wampcra"], Some("joe"), None));
        assert_refused(flow.handle_authenticate(wrong, &Dict::new()), "wampcra");
    }
    // An unknown authid is challenged too (no enumeration), and no signature passes.
    let (mut flow, action) = start(Some(&config), &hello(&["wampcra"], Some("nobody"), None));
    let (_, extra) = challenge(action);
    let challenge_text = extra["challenge"].as_str().unwrap().to_owned();
    for secret in ["", "secret123", "nobody"] {
        let guess = base64::Engine::encode(
            &base64::engine::general_purpose::STANDARD,
            wampcra::expected_signature(secret, &challenge_text),
        );
        assert_refused(flow.handle_authenticate(&guess, &Dict::new()), "wampcra");
        let (f, _) = start(Some(&config), &hello(&["wampcra"], Some("nobody"), None));
        flow = f;
    }
    let (_, action) = start(Some(&config), &hello(&["wampcra"], None, None));
    assert_eq!(refuse(action).0, CREDENTIALS_REFUSED);
}

#[test]
fn dynamic_wampcra_gets_the_secret_from_the_authenticator() {
    let config = AuthConfig {
        wampcra: Some(WampCraAuth::Dynamic(dynamic("com.example.cra"))),
        ..AuthConfig::default()
    };
    let (mut flow, action) = start(Some(&config), &hello(&["wampcra"], Some("jöe"), None));
    let (procedure, _, args) = call(action);
    assert_eq!(procedure, "com.example.cra");
    assert_eq!(args[1], Value::from("jöe"));
    assert_eq!(
        args[2].as_dict().unwrap()["authmethod"],
        Value::from("wampcra")
    );
    // The authenticator renames the principal (the challenge carries the new authid).
    let result = Value::Dict(dict! {
        "secret" => "s3cr3t", "role" => "frontend", "authid" => "jöe \"q\"",
    });
    let (_, extra) = challenge(flow.handle_authenticator_result(Ok(result)));
    assert_eq!(extra, dict! {"challenge" => CRA_UNICODE_CHALLENGE});
    let id = welcome(flow.handle_authenticate(CRA_UNICODE_SIGNATURE, &Dict::new()));
    assert_identity(&id, "jöe \"q\"", "frontend", "wampcra", "dynamic");

    // A salted secret from the authenticator is the password, as in Crossbar: the parameters
    // go to the client, and the signature is checked with the key derived from the password.
    let (mut flow, _) = start(Some(&config), &hello(&["wampcra"], Some("peter"), None));
    let result = Value::Dict(dict! {
        "secret" => CRA_SALTED_PASSWORD, "role" => "frontend",
        "salt" => "salt123", "iterations" => 100u64, "keylen" => 16u64,
    });
    let (_, extra) = challenge(flow.handle_authenticator_result(Ok(result)));
    assert_eq!(
        (&extra["salt"], &extra["iterations"], &extra["keylen"]),
        (
            &Value::from("salt123"),
            &Value::from(100u64),
            &Value::from(16u64)
        )
    );
    let challenge_text = extra["challenge"].as_str().unwrap().to_owned();
    let sign = |key: &str| {
        base64::Engine::encode(
            &base64::engine::general_purpose::STANDARD,
            wampcra::expected_signature(key, &challenge_text),
        )
    };
    // Signed with the password itself (the key of a plain secret): refused.
    assert_refused(
        flow.handle_authenticate(&sign(CRA_SALTED_PASSWORD), &Dict::new()),
        "wampcra",
    );
    let (mut flow, _) = start(Some(&config), &hello(&["wampcra"], Some("peter"), None));
    let result = Value::Dict(dict! {
        "secret" => CRA_SALTED_PASSWORD, "role" => "frontend",
        "salt" => "salt123", "iterations" => 100u64, "keylen" => 16u64,
    });
    let (_, extra) = challenge(flow.handle_authenticator_result(Ok(result)));
    let challenge_text = extra["challenge"].as_str().unwrap().to_owned();
    let signature = base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        wampcra::expected_signature(CRA_SALTED_KEY, &challenge_text),
    );
    let id = welcome(flow.handle_authenticate(&signature, &Dict::new()));
    assert_identity(&id, "peter", "frontend", "wampcra", "dynamic");

    // A partial salt (Crossbar would silently sign with the plain secret): refused as invalid.
    let (mut flow, _) = start(Some(&config), &hello(&["wampcra"], Some("peter"), None));
    let result = Value::Dict(dict! {"secret" => "k", "role" => "r", "salt" => "s"});
    let (reason, message) = refuse(flow.handle_authenticator_result(Ok(result)));
    assert_eq!(reason, uris::AUTHENTICATION_FAILED);
    assert!(
        message.contains("\"salt\", \"iterations\" and \"keylen\""),
        "{message}"
    );

    // No secret: refused.
    let (mut flow, _) = start(Some(&config), &hello(&["wampcra"], Some("peter"), None));
    assert_eq!(
        refuse(flow.handle_authenticator_result(Ok(Value::from("frontend")))),
        (
            uris::AUTHENTICATION_FAILED,
            "the authenticator returned an invalid result: no \"secret\"".to_owned()
        )
    );
}

#[test]
fn timestamps_are_iso8601_utc_milliseconds() {
    assert_eq!(
        crate::clock::iso8601_from_unix_ns(0),
        "1970-01-01T00:00:00.000Z"
    );
    assert_eq!(
        crate::clock::iso8601_from_unix_ns(NOW_UNIX_NS),
        "2023-11-14T22:13:20.123Z"
    );
    // 2024-02-29T23:59:59.999Z and the next day.
    let leap = 1_709_251_199_999_000_000;
    assert_eq!(
        crate::clock::iso8601_from_unix_ns(leap),
        "2024-02-29T23:59:59.999Z"
    );
    assert_eq!(
        crate::clock::iso8601_from_unix_ns(leap + 1_000_000),
        "2024-03-01T00:00:00.000Z"
    );
    assert_eq!(
        crate::clock::iso8601_from_unix_ns(951_782_400_000_000_000),
        "2000-02-29T00:00:00.000Z"
    );
}

// ---- WAMP-Cryptosign ----

#[test]
fn cryptosign_autobahn_signature_is_accepted() {
    // Without an authid the principal is found by its key; upper-case hex works too.
    for (authid, key) in [
        (None, CS_KEY_PUB.to_owned()),
        (Some("client1"), CS_KEY_PUB.to_ascii_uppercase()),
    ] {
        let (mut flow, action) = start(
            Some(&cs_config()),
            &hello(&["cryptosign"], authid, pubkey(&key)),
        );
        assert_eq!(
            challenge(action),
            (
                "cryptosign".to_owned(),
                dict! {"challenge" => CS_CHALLENGE, "channel_binding" => Value::Null}
            )
        );
        let id = welcome(flow.handle_authenticate(CS_KEY_SIGNATURE, &Dict::new()));
        assert_identity(&id, "client1", "user", "cryptosign", "static");
    }
}

#[test]
fn cryptosign_failures_look_alike() {
    let config = cs_config();
    let flip = |s: &str, at: usize| {
        let mut b = s.as_bytes().to_vec();
        b[at] = if b[at] == b'0' { b'1' } else { b'0' };
        String::from_utf8(b).unwrap()
    };
    let wrong_signatures = [
        // Another key's valid signature of the same challenge.
        CS_OTHER_KEY_SIGNATURE.to_owned(),
        // A bit flipped in the signature; in the echoed challenge.
        flip(CS_KEY_SIGNATURE, 10),
        flip(CS_KEY_SIGNATURE, 150),
        // Malformed: the signature without the challenge, not hex, empty, too long.
        CS_KEY_SIGNATURE[..128].to_owned(),
        "zz".repeat(96),
        String::new(),
        format!("{CS_KEY_SIGNATURE}00"),
    ];
    for wrong in &wrong_signatures {
        let (mut flow, _) = start(
            Some(&config),
            &hello(&["cryptosign"], None, pubkey(CS_KEY_PUB)),
        );
        assert_refused(flow.handle_authenticate(wrong, &Dict::new()), "cryptosign");
    }
    // An unknown key; a known key under another authid; an unknown authid.
    for (authid, key) in [
        (None, CS_OTHER_KEY_PUB),
        (Some("client2"), CS_KEY_PUB),
        (Some("nobody"), CS_KEY_PUB),
    ] {
        let (_, action) = start(Some(&config), &hello(&["cryptosign"], authid, pubkey(key)));
        assert_refused(action, "cryptosign");
    }
}

#[test]
fn cryptosign_hello_problems() {
    let config = cs_config();
    let message = |authextra: Option<Dict>| {
        let (_, action) = start(Some(&config), &hello(&["cryptosign"], None, authextra));
        let (reason, message) = refuse(action);
        assert_eq!(reason, CREDENTIALS_REFUSED);
        message
    };
    assert_eq!(
        message(None),
        "WAMP-Cryptosign needs the client's public key in HELLO.Details.authextra.pubkey"
    );
    assert_eq!(
        message(pubkey("abcd")),
        "HELLO.Details.authextra.pubkey must be an Ed25519 public key of 64 hex characters"
    );
    assert_eq!(
        message(Some(
            dict! {"pubkey" => CS_KEY_PUB, "channel_binding" => "tls-unique"}
        )),
        "channel binding \"tls-unique\" requires TLS, which this router does not offer yet"
    );
    assert_eq!(
        message(Some(
            dict! {"pubkey" => CS_KEY_PUB, "channel_binding" => "tls-exporter"}
        )),
        "unknown channel binding \"tls-exporter\" (only \"tls-unique\" exists)"
    );
    // A key listed for two principals needs the authid.
    let mut twice = cs_config();
    if let Some(CryptosignAuth::Static { principals }) = &mut twice.cryptosign {
        principals.get_mut("client2").unwrap().authorized_keys = vec![CS_KEY_PUB.into()];
    }
    let (_, action) = start(
        Some(&twice),
        &hello(&["cryptosign"], None, pubkey(CS_KEY_PUB)),
    );
    assert_eq!(
        refuse(action).1,
        "this public key belongs to several principals: give the authid in HELLO"
    );
    let (mut flow, action) = start(
        Some(&twice),
        &hello(&["cryptosign"], Some("client2"), pubkey(CS_KEY_PUB)),
    );
    challenge(action);
    let id = welcome(flow.handle_authenticate(CS_KEY_SIGNATURE, &Dict::new()));
    assert_identity(&id, "client2", "user", "cryptosign", "static");
}

#[test]
fn dynamic_cryptosign() {
    let config = AuthConfig {
        cryptosign: Some(CryptosignAuth::Dynamic(dynamic("com.example.cs"))),
        ..AuthConfig::default()
    };
    let (mut flow, action) = start(
        Some(&config),
        &hello(&["cryptosign"], None, pubkey(CS_KEY_PUB)),
    );
    let (_, _, args) = call(action);
    assert_eq!(
        args[2].as_dict().unwrap()["authextra"],
        Value::Dict(dict! {"pubkey" => CS_KEY_PUB})
    );
    let result = Value::Dict(dict! {"role" => "user", "authid" => "device-7"});
    let (_, extra) = challenge(flow.handle_authenticator_result(Ok(result)));
    assert_eq!(extra["challenge"], Value::from(CS_CHALLENGE));
    let id = welcome(flow.handle_authenticate(CS_KEY_SIGNATURE, &Dict::new()));
    assert_identity(&id, "device-7", "user", "cryptosign", "dynamic");

    // The authenticator's pubkey is the one verified.
    let (mut flow, _) = start(
        Some(&config),
        &hello(&["cryptosign"], Some("d"), pubkey(CS_KEY_PUB)),
    );
    let result = Value::Dict(dict! {"role" => "user", "pubkey" => CS_OTHER_KEY_PUB});
    challenge(flow.handle_authenticator_result(Ok(result)));
    assert_refused(
        flow.handle_authenticate(CS_KEY_SIGNATURE, &Dict::new()),
        "cryptosign",
    );
    let (mut flow, _) = start(Some(&config), &hello(&["cryptosign"], Some("d"), None));
    let result = Value::Dict(dict! {"role" => "user", "pubkey" => CS_OTHER_KEY_PUB});
    challenge(flow.handle_authenticator_result(Ok(result)));
    welcome(flow.handle_authenticate(CS_OTHER_KEY_SIGNATURE, &Dict::new()));

    // No key anywhere.
    let (mut flow, _) = start(Some(&config), &hello(&["cryptosign"], Some("d"), None));
    assert_eq!(
        refuse(flow.handle_authenticator_result(Ok(Value::from("user")))).0,
        CREDENTIALS_REFUSED
    );
}

// ---- Secrets ----

#[test]
fn secrets_are_compared_in_constant_time_by_digest() {
    assert!(secrets_equal("secret!", "secret!"));
    assert!(secrets_equal("", ""));
    assert!(!secrets_equal("secret!", "secret"));
    assert!(!secrets_equal("secret", "secret!"));
    assert!(!secrets_equal("secret!", "Secret!"));
    assert!(!secrets_equal("a", ""));
}

#[test]
fn debug_output_shows_no_secret() {
    let (flow, _) = start(
        Some(&ticket_config()),
        &hello(&["ticket"], Some("joe"), None),
    );
    let debug = format!("{flow:?}");
    assert!(!debug.contains("secret!"), "{debug}");
    assert!(
        debug.contains("ticket") && debug.contains("awaiting AUTHENTICATE"),
        "{debug}"
    );
    let (flow, _) = start(Some(&cra_config()), &hello(&["wampcra"], Some("joe"), None));
    assert!(!format!("{flow:?}").contains("secret123"));
}

// ---- Dynamic authorizers ----

#[test]
fn authorizer_results() {
    let parse = |v: Value| authorizer::parse_result(&v);
    let decision = |allow, disclose, cache| AuthorizerDecision {
        allow,
        disclose,
        cache,
    };
    assert_eq!(parse(Value::Bool(true)), Ok(decision(true, false, false)));
    assert_eq!(parse(Value::Bool(false)), Ok(decision(false, false, false)));
    assert_eq!(
        parse(Value::Dict(
            dict! {"allow" => true, "disclose" => true, "cache" => true}
        )),
        Ok(decision(true, true, true))
    );
    assert_eq!(
        parse(Value::Dict(
            dict! {"allow" => false, "cache" => true, "validate" => Value::Null, "meta" => Value::Dict(Dict::new())}
        )),
        Ok(decision(false, false, true))
    );
    assert_eq!(
        parse(Value::Dict(dict! {"cache" => true})),
        Err("the authorizer's answer has no \"allow\"".into())
    );
    assert_eq!(
        parse(Value::Dict(dict! {"allow" => "yes"})),
        Err("the authorizer's \"allow\" must be true or false, found string".into())
    );
    assert_eq!(
        parse(Value::Dict(dict! {"allow" => true, "x" => 1u64})),
        Err("the authorizer returned an unknown key \"x\"".into())
    );
    assert_eq!(
        parse(Value::Dict(dict! {"allow" => true, "meta" => 1u64})),
        Err("the authorizer's \"meta\" must be a dict or null, found integer".into())
    );
    assert_eq!(
        parse(Value::Null),
        Err("the authorizer must return a bool or a dict, found null".into())
    );
    assert_eq!(
        decision(true, true, false).decision(),
        Decision {
            allow: true,
            disclose: true
        }
    );
}

#[test]
fn authorizer_call_args_follow_crossbar() {
    let details = dict! {
        "session" => 5u64, "authid" => "a", "authrole" => "r", "authmethod" => "ticket",
        "authprovider" => "static", "authextra" => Value::Dict(Dict::new()),
        "transport" => Value::Dict(transport()), "realm" => "realm1", "serializer" => "json",
    };
    let options = dict! {"match" => "prefix"};
    let args = authorizer::call_args(&details, "com.x", Action::Subscribe, &options);
    let mut expected = details.clone();
    expected.remove("realm");
    expected.remove("serializer");
    assert_eq!(
        args,
        vec![
            Value::Dict(expected),
            Value::from("com.x"),
            Value::from("subscribe"),
            Value::Dict(options)
        ]
    );
}

#[test]
fn decision_cache_keeps_cacheable_decisions_per_uri_and_action() {
    let mut cache = DecisionCache::default();
    let allow = |cache| AuthorizerDecision {
        allow: true,
        disclose: false,
        cache,
    };
    cache.insert("com.a", Action::Call, allow(false));
    assert!(cache.is_empty());
    cache.insert("com.a", Action::Call, allow(true));
    assert_eq!(
        cache.get("com.a", Action::Call),
        Some(Decision {
            allow: true,
            disclose: false
        })
    );
    assert_eq!(cache.get("com.a", Action::Register), None);
    assert_eq!(cache.get("com.b", Action::Call), None);
    for i in 0..DecisionCache::CAPACITY + 1 {
        cache.insert(&format!("u{i}"), Action::Publish, allow(true));
    }
    assert!(cache.len() <= DecisionCache::CAPACITY);
    cache.clear();
    assert!(cache.is_empty());
}

#[test]
fn static_tls_finds_the_principal_by_certificate_fingerprint() {
    let config = static_tls();
    // HELLO's authid does not matter: the certificate names the principal (as in Crossbar).
    let cert = peer_cert(CERT_SHA1, Some("someone"));
    let (flow, action) = start_tls(
        &config,
        &hello(&["tls"], Some("mallory"), None),
        Some(&cert),
    );
    let id = welcome(action);
    assert_eq!(
        (
            id.authid.as_str(),
            id.authrole.as_str(),
            id.authmethod.as_str()
        ),
        ("client_0", "backend", "tls")
    );
    assert_eq!(id.authprovider, "static");
    assert!(flow.is_finished());

    let other = peer_cert(&CERT_SHA1.replace("EE", "EF"), Some("client_0"));
    let (reason, message) =
        refuse(start_tls(&config, &hello(&["tls"], None, None), Some(&other)).1);
    assert_eq!(reason, CREDENTIALS_REFUSED);
    assert!(message.contains("no principal"), "{message}");

    let (reason, message) = refuse(start_tls(&config, &hello(&["tls"], None, None), None).1);
    assert_eq!(reason, CREDENTIALS_REFUSED);
    assert_eq!(message, "client did not send a TLS client certificate");
}

#[test]
fn tls_is_chosen_only_when_offered_by_both() {
    let config = static_tls();
    let cert = peer_cert(CERT_SHA1, None);
    let (reason, _) = refuse(start_tls(&config, &hello(&["anonymous"], None, None), Some(&cert)).1);
    assert_eq!(reason, uris::NO_MATCHING_AUTH_METHOD);
    let (_, action) = start_tls(&config, &hello(&["ticket", "tls"], None, None), Some(&cert));
    assert_eq!(welcome(action).authmethod, "tls");
}

#[test]
fn dynamic_tls_calls_the_authenticator_and_falls_back_to_the_common_name() {
    let config = AuthConfig {
        tls: Some(TlsAuth::Dynamic(dynamic("com.example.auth"))),
        ..AuthConfig::default()
    };
    let cert = peer_cert(CERT_SHA1, Some("device-7"));
    let (mut flow, action) = start_tls(&config, &hello(&["tls"], None, None), Some(&cert));
    let (procedure, realm, args) = call(action);
    assert_eq!(
        (procedure.as_str(), realm.as_str()),
        ("com.example.auth", "realm1")
    );
    assert_eq!(args[1], Value::Null);
    let details = args[2].as_dict().expect("details");
    assert_eq!(details.get("authmethod"), Some(&Value::from("tls")));
    // The authenticator gave a role only, HELLO no authid: the certificate's CN is the authid.
    let id = welcome(flow.handle_authenticator_result(Ok(Value::from("device"))));
    assert_eq!(
        (id.authid.as_str(), id.authrole.as_str()),
        ("device-7", "device")
    );
    assert_eq!(id.authprovider, "dynamic");

    // An authid from the authenticator wins.
    let (mut flow, _) = start_tls(&config, &hello(&["tls"], None, None), Some(&cert));
    let answer = Value::Dict(dict! {"role" => "device", "authid" => "d7"});
    assert_eq!(
        welcome(flow.handle_authenticator_result(Ok(answer))).authid,
        "d7"
    );

    // Without a CN and without an authid from anywhere: refused.
    let nameless = peer_cert(CERT_SHA1, None);
    let (mut flow, _) = start_tls(&config, &hello(&["tls"], None, None), Some(&nameless));
    let (reason, _) = refuse(flow.handle_authenticator_result(Ok(Value::from("device"))));
    assert_eq!(reason, NO_SUCH_PRINCIPAL);
}
