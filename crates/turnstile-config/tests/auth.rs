//! Transport `auth` sections and dynamic authorizer roles: what loads into the model, and every
//! refusal naming its key path without showing a secret.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::{json, Value};
use turnstile_config::{
    load_str_with_env, AnonymousAuth, AuthConfig, CraSalt, CryptosignAuth, CryptosignPrincipal,
    DynamicAuth, Format, NodeConfig, Secret, TicketAuth, TicketPrincipal, TransportConfig,
    WampCraAuth, WampCraUser, WebPath,
};

const KEY_A: &str = "0bbc346a57667c380120bd9c7fd7e51d2c5fdfea37cd2f5bf405b2c6bf6f2d78";
const KEY_B: &str = "32B53E882E3DAAC180D7A5F6224D61B6401B43F901DB09F0E4D84CE4E4A2718B";

/// A configuration with the same `auth` on a web transport's WebSocket path (transport 0), a
/// websocket transport (1) and a rawsocket transport (2), and a role with `role`.
fn doc(auth: Value, role: Value) -> Value {
    json!({
        "version": 2,
        "workers": [{
            "type": "router",
            "realms": [{"name": "realm1", "roles": [role]}],
            "transports": [
                {"type": "web", "endpoint": {"type": "tcp", "port": 8080},
                 "paths": {"ws": {"type": "websocket", "auth": auth.clone()}}},
                {"type": "websocket", "endpoint": {"type": "tcp", "port": 8081},
                 "auth": auth.clone()},
                {"type": "rawsocket", "endpoint": {"type": "tcp", "port": 8082}, "auth": auth}
            ]
        }]
    })
}

fn static_role() -> Value {
    json!({"name": "user", "permissions": [{"uri": "", "match": "prefix", "allow": {"call": true}}]})
}

/// Loads `doc` with an empty environment.
fn load(doc: &Value) -> Result<NodeConfig, String> {
    load_str_with_env(
        &doc.to_string(),
        Format::Json,
        Path::new("/x/config.json"),
        &|_| None,
    )
    .map_err(|e| {
        let m = e.to_string();
        m.strip_prefix("config error in /x/config.json at ")
            .unwrap_or(&m)
            .to_owned()
    })
}

/// The `auth` of each of the three transports, which must be equal.
fn loaded_auth(auth: Value) -> AuthConfig {
    let config = load(&doc(auth, static_role())).unwrap();
    let t = &config.workers[0].transports;
    let TransportConfig::Web { paths, .. } = &t[0] else {
        panic!("web first")
    };
    let Some(WebPath::WebSocket(ws_path)) = paths.get("ws") else {
        panic!("ws path")
    };
    let TransportConfig::WebSocket { service, .. } = &t[1] else {
        panic!("websocket second")
    };
    let TransportConfig::RawSocket { auth: raw, .. } = &t[2] else {
        panic!("rawsocket third")
    };
    assert_eq!(ws_path.auth, service.auth);
    assert_eq!(raw, &service.auth);
    service.auth.clone().expect("auth present")
}

/// The message of loading `auth` on every transport: each of the three reports its error; the
/// first one's (the web path's) is returned.
fn auth_error(auth: Value) -> String {
    let message = load(&doc(auth, static_role())).expect_err("configuration should be refused");
    let lines: Vec<&str> = message.lines().collect();
    assert_eq!(lines.len(), 3, "one error per transport: {message}");
    lines[0].to_owned()
}

const AT: &str = "workers[0].transports[0].paths.ws.auth";

fn dynamic(authenticator: &str, realm: Option<&str>) -> DynamicAuth {
    DynamicAuth {
        authenticator: authenticator.into(),
        authenticator_realm: realm.map(Into::into),
    }
}

#[test]
fn every_method_loads() {
    let auth = loaded_auth(json!({
        "anonymous": {"type": "static", "role": "guest"},
        "ticket": {"type": "static", "principals": {
            "joe": {"ticket": "secret!", "role": "user"},
            "ann": {"ticket": "t2", "role": "admin", "realm": "realm1"}
        }},
        "wampcra": {"type": "static", "users": {
            "peter": {"secret": "secret1", "role": "user", "salt": "salt123",
                      "iterations": 100, "keylen": 16},
            "joe": {"secret": "secret2", "role": "user", "realm": "realm1"}
        }},
        "cryptosign": {"type": "static", "principals": {
            "client1": {"authorized_keys": [KEY_A, KEY_B], "role": "user", "realm": "realm1"}
        }}
    }));
    let expected = AuthConfig {
        anonymous: Some(AnonymousAuth {
            role: "guest".into(),
            authid: None,
        }),
        anonymous_dynamic: None,
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
                        ticket: Secret::new("t2"),
                        role: "admin".into(),
                        realm: Some("realm1".into()),
                    },
                ),
            ]),
        }),
        wampcra: Some(WampCraAuth::Static {
            users: BTreeMap::from([
                (
                    "peter".to_owned(),
                    WampCraUser::new(
                        Secret::new("secret1"),
                        "user".into(),
                        None,
                        Some(CraSalt {
                            salt: "salt123".into(),
                            iterations: 100,
                            keylen: 16,
                        }),
                    ),
                ),
                (
                    "joe".to_owned(),
                    WampCraUser::new(
                        Secret::new("secret2"),
                        "user".into(),
                        Some("realm1".into()),
                        None,
                    ),
                ),
            ]),
        }),
        cryptosign: Some(CryptosignAuth::Static {
            principals: BTreeMap::from([(
                "client1".to_owned(),
                CryptosignPrincipal {
                    // Stored in lower case.
                    authorized_keys: vec![KEY_A.into(), KEY_B.to_ascii_lowercase()],
                    role: "user".into(),
                    realm: Some("realm1".into()),
                },
            )]),
        }),
        tls: None,
    };
    assert_eq!(auth, expected);
}

#[test]
fn dynamic_methods_load() {
    let auth = loaded_auth(json!({
        "anonymous": {"type": "dynamic", "authenticator": "com.example.anon"},
        "ticket": {"type": "dynamic", "authenticator": "com.example.ticket",
                   "authenticator-realm": "auth.realm"},
        "wampcra": {"type": "dynamic", "authenticator": "com.example.cra"},
        "cryptosign": {"type": "dynamic", "authenticator": "com.example.cs"}
    }));
    assert_eq!(
        auth,
        AuthConfig {
            anonymous: None,
            anonymous_dynamic: Some(dynamic("com.example.anon", None)),
            ticket: Some(TicketAuth::Dynamic(dynamic(
                "com.example.ticket",
                Some("auth.realm")
            ))),
            wampcra: Some(WampCraAuth::Dynamic(dynamic("com.example.cra", None))),
            cryptosign: Some(CryptosignAuth::Dynamic(dynamic("com.example.cs", None))),
            tls: None,
        }
    );
}

#[test]
fn one_method_alone_loads() {
    let auth = loaded_auth(json!({"ticket": {"type": "dynamic", "authenticator": "a.b"}}));
    assert_eq!(auth.anonymous, None);
    assert!(matches!(auth.ticket, Some(TicketAuth::Dynamic(_))));
}

#[test]
fn secrets_are_redacted_in_debug() {
    let auth = loaded_auth(json!({
        "ticket": {"type": "static", "principals": {"joe": {"ticket": "tkt-123", "role": "u"}}},
        "wampcra": {"type": "static", "users": {"joe": {"secret": "cra-456", "role": "u"}}}
    }));
    let debug = format!("{auth:?}");
    assert!(
        !debug.contains("tkt-123") && !debug.contains("cra-456"),
        "{debug}"
    );
    assert!(debug.contains("Secret(<redacted>)"), "{debug}");
    assert_eq!(Secret::new("x").expose(), "x");
}

/// Each refused section: (auth, expected message after the transport path).
#[test]
fn wrong_sections_name_their_path() {
    let cases: Vec<(Value, String)> = vec![
        (json!({}), format!("{AT}: found {{}}, expected at least one authentication method (\"anonymous\", \"ticket\", \"wampcra\", \"cryptosign\" or \"tls\")")),
        (json!("x"), format!("{AT}: found a string (not shown), expected an object (authentication methods)")),
        (json!({"password": {}}), format!("{AT}.password: unknown key, allowed keys here: anonymous, ticket, wampcra, cryptosign, tls")),
        (json!({"ticket": {"principals": {}}}), format!("{AT}.ticket.type: missing required key, expected the type of ticket authentication")),
        (json!({"ticket": {"type": "ldap"}}), format!("{AT}.ticket.type: found \"ldap\", expected one of \"static\" or \"dynamic\"")),
        (json!({"ticket": "secret"}), format!("{AT}.ticket: found a string (not shown), expected an object (ticket authentication)")),
        (json!({"ticket": {"type": "static"}}), format!("{AT}.ticket.principals: missing required key, expected ticket principals by authid, such as {{\"joe\": {{\"ticket\": ..., \"role\": ...}}}}")),
        (json!({"ticket": {"type": "static", "principals": {}}}), format!("{AT}.ticket.principals: found {{}}, expected at least one entry: ticket principals by authid, such as {{\"joe\": {{\"ticket\": ..., \"role\": ...}}}}")),
        (json!({"ticket": {"type": "static", "principals": []}}), format!("{AT}.ticket.principals: found a list (not shown), expected an object (ticket principals by authid, such as {{\"joe\": {{\"ticket\": ..., \"role\": ...}}}})")),
        (json!({"ticket": {"type": "static", "principals": {"": {"ticket": "t", "role": "r"}}}}), format!("{AT}.ticket.principals[\"\"]: found the authid \"\", expected a non-empty authid")),
        (json!({"ticket": {"type": "static", "principals": {"joe": "secret"}}}), format!("{AT}.ticket.principals.joe: found a string (not shown), expected an object (a ticket principal)")),
        (json!({"ticket": {"type": "static", "principals": {"joe": {"role": "r"}}}}), format!("{AT}.ticket.principals.joe.ticket: missing required key, expected the ticket (a string)")),
        (json!({"ticket": {"type": "static", "principals": {"joe": {"ticket": 12345, "role": "r"}}}}), format!("{AT}.ticket.principals.joe.ticket: found a number (not shown), expected a non-empty string (the ticket)")),
        (json!({"ticket": {"type": "static", "principals": {"joe": {"ticket": "", "role": "r"}}}}), format!("{AT}.ticket.principals.joe.ticket: found a string (not shown), expected a non-empty string (the ticket)")),
        (json!({"ticket": {"type": "static", "principals": {"joe": {"ticket": "${TICKET}", "role": "r"}}}}), format!("{AT}.ticket.principals.joe.ticket: found \"${{TICKET}}\", expected the environment variable TICKET to be set (it is not)")),
        (json!({"ticket": {"type": "static", "principals": {"joe": {"ticket": "t"}}}}), format!("{AT}.ticket.principals.joe.role: missing required key, expected the role of the principal's sessions")),
        (json!({"ticket": {"type": "static", "principals": {"joe": {"ticket": "t", "role": ""}}}}), format!("{AT}.ticket.principals.joe.role: found \"\", expected a non-empty string (a role name)")),
        (json!({"ticket": {"type": "static", "principals": {"joe": {"ticket": "t", "role": "r", "realm": "a b"}}}}), format!("{AT}.ticket.principals.joe.realm: found \"a b\", expected a valid URI (the only realm the principal may join)")),
        (json!({"ticket": {"type": "static", "principals": {"joe": {"ticket": "t", "role": "r", "authid": "x"}}}}), format!("{AT}.ticket.principals.joe.authid: unknown key, allowed keys here: ticket, role, realm")),
        (json!({"ticket": {"type": "dynamic", "principals": {}}}), format!("{AT}.ticket.principals: unknown key, allowed keys here: type, authenticator, authenticator-realm, authenticator-role")),
        (json!({"ticket": {"type": "dynamic"}}), format!("{AT}.ticket.authenticator: missing required key, expected the URI of the authenticator procedure, such as \"com.example.authenticate\"")),
        (json!({"ticket": {"type": "dynamic", "authenticator": "com..x"}}), format!("{AT}.ticket.authenticator: found \"com..x\", expected a valid URI (the URI of the authenticator procedure)")),
        (json!({"ticket": {"type": "dynamic", "authenticator": "a.b", "authenticator-realm": 7}}), format!("{AT}.ticket.authenticator-realm: found 7, expected a string (the realm the authenticator is registered on)")),
        (json!({"wampcra": {"type": "static", "principals": {}}}), format!("{AT}.wampcra.principals: unknown key, allowed keys here: type, users")),
        (json!({"wampcra": {"type": "static", "users": {"joe": {"secret": ["s"], "role": "r"}}}}), format!("{AT}.wampcra.users.joe.secret: found a list (not shown), expected a non-empty string (the secret)")),
        (json!({"wampcra": {"type": "static", "users": {"joe": {"secret": "s", "role": "r", "salt": "x", "iterations": 0, "keylen": 16}}}}), format!("{AT}.wampcra.users.joe.iterations: found 0, expected an integer between 1 and 1000000 (PBKDF2 iterations)")),
        (json!({"wampcra": {"type": "static", "users": {"joe": {"secret": "s", "role": "r", "salt": "x", "iterations": 1000001, "keylen": 16}}}}), format!("{AT}.wampcra.users.joe.iterations: found 1000001, expected an integer between 1 and 1000000 (PBKDF2 iterations)")),
        (json!({"wampcra": {"type": "static", "users": {"joe": {"secret": "s", "role": "r", "salt": "x", "iterations": 10, "keylen": -1}}}}), format!("{AT}.wampcra.users.joe.keylen: found -1, expected an integer between 1 and 1024 (the PBKDF2 key length in bytes)")),
        (json!({"wampcra": {"type": "static", "users": {"joe": {"secret": "s", "role": "r", "salt": ""}}}}), format!("{AT}.wampcra.users.joe.salt: found \"\", expected a non-empty string (the PBKDF2 salt)")),
        (json!({"wampcra": {"type": "static", "users": {"joe": {"secret": "s", "role": "r", "keylen": 16}}}}), format!("{AT}.wampcra.users.joe.keylen: found 16: a salted secret needs \"salt\", \"iterations\" and \"keylen\" together (Crossbar ignores a partial set and uses the secret unsalted): add \"salt\" and \"iterations\" or remove the others")),
        (json!({"wampcra": {"type": "static", "users": {"joe": {"secret": "s", "role": "r", "salt": "pepper"}}}}), format!("{AT}.wampcra.users.joe.salt: found \"pepper\": a salted secret needs \"salt\", \"iterations\" and \"keylen\" together (Crossbar ignores a partial set and uses the secret unsalted): add \"iterations\" and \"keylen\" or remove the others")),
        (json!({"cryptosign": {"type": "static", "principals": {"c": {"role": "r"}}}}), format!("{AT}.cryptosign.principals.c.authorized_keys: missing required key, expected a list of Ed25519 public keys (64 hex characters each)")),
        (json!({"cryptosign": {"type": "static", "principals": {"c": {"authorized_keys": [], "role": "r"}}}}), format!("{AT}.cryptosign.principals.c.authorized_keys: found [], expected at least one Ed25519 public key (64 hex characters)")),
        (json!({"cryptosign": {"type": "static", "principals": {"c": {"authorized_keys": KEY_A, "role": "r"}}}}), format!("{AT}.cryptosign.principals.c.authorized_keys: found \"0bbc346a57667c380120bd9c7fd7e51d2c5fdfea37cd2f5bf405b2c6..., expected a list (Ed25519 public keys, 64 hex characters each)")),
        (json!({"cryptosign": {"type": "static", "principals": {"c": {"authorized_keys": [KEY_A, "abc"], "role": "r"}}}}), format!("{AT}.cryptosign.principals.c.authorized_keys[1]: found \"abc\", expected an Ed25519 public key: a string of 64 hex characters (32 bytes)")),
        (json!({"cryptosign": {"type": "static", "principals": {"c": {"authorized_keys": [KEY_A.replace('0', "g")], "role": "r"}}}}), format!("{AT}.cryptosign.principals.c.authorized_keys[0]: found \"gbbc346a57667c38g12gbd9c7fd7e51d2c5fdfea37cd2f5bf4g5b2c6..., expected an Ed25519 public key: a string of 64 hex characters (32 bytes)")),
        (json!({"cryptosign": {"type": "static", "principals": {"c": {"authorized_keys": [KEY_A]}}}}), format!("{AT}.cryptosign.principals.c.role: missing required key, expected the role of the principal's sessions")),
        (json!({"anonymous": {"type": "static", "role": "r", "ticket": "x"}}), format!("{AT}.anonymous.ticket: unknown key, allowed keys here: type, role, authid, realm")),
        (json!({"anonymous": {"type": "dynamic", "role": "r"}}), format!("{AT}.anonymous.role: unknown key, allowed keys here: type, authenticator, authenticator-realm, authenticator-role")),
        (json!({"cookie": {}}), format!("{AT}.cookie: found {{}}: cookie authentication is not supported yet")),
        (json!({"cryptosign-proxy": {"type": "static"}}), format!("{AT}.cryptosign-proxy: found {{\"type\": ...}}: proxy authentication methods are not supported")),
    ];
    for (auth, expected) in cases {
        assert_eq!(auth_error(auth.clone()), expected, "auth: {auth}");
    }
}

#[test]
fn errors_never_show_secrets() {
    for auth in [
        json!({"ticket": {"type": "static", "principals": {"joe": {"ticket": "SECRET-1"}}}}),
        json!({"ticket": {"type": "static", "principals": {"joe": "SECRET-1"}}}),
        json!({"ticket": {"type": "static", "principals": {"joe": {"ticket": "SECRET-1", "role": 1}}}}),
        json!({"ticket": "SECRET-1"}),
        json!({"wampcra": {"type": "static", "users": {"joe": {"secret": "SECRET-1", "x": 1}}}}),
        json!({"wampcra": {"type": "static", "users": {"joe": {"secret": "SECRET-1", "role": "r", "iterations": 5}}}}),
        json!({"wampcra": {"type": "static", "users": ["SECRET-1"]}}),
        json!({"scram": {"type": "static", "principals": {"joe": {"salt": "SECRET-1"}}}}),
        json!("SECRET-1"),
    ] {
        let message = auth_error(auth.clone());
        assert!(!message.contains("SECRET-1"), "{auth} gave {message}");
    }
}

/// The error is reported on the websocket and rawsocket transports too.
#[test]
fn errors_on_other_transports() {
    let bad = json!({"ticket": {"type": "dynamic"}});
    let mut d = doc(json!({"anonymous": {"type": "static"}}), static_role());
    d["workers"][0]["transports"][1]["auth"] = bad.clone();
    assert_eq!(
        load(&d).unwrap_err(),
        "workers[0].transports[1].auth.ticket.authenticator: missing required key, expected the \
         URI of the authenticator procedure, such as \"com.example.authenticate\""
    );
    let mut d = doc(json!({"anonymous": {"type": "static"}}), static_role());
    d["workers"][0]["transports"][2]["auth"] = bad;
    assert!(load(&d)
        .unwrap_err()
        .starts_with("workers[0].transports[2].auth.ticket.authenticator:"));
}

#[test]
fn roles_with_a_dynamic_authorizer() {
    let anon = json!({"anonymous": {"type": "static", "role": "user"}});
    let config = load(&doc(
        anon.clone(),
        json!({"name": "user", "authorizer": "com.example.authorize"}),
    ))
    .unwrap();
    let role = &config.workers[0].realms[0].roles[0];
    assert_eq!(role.authorizer.as_deref(), Some("com.example.authorize"));
    assert!(role.permissions.is_empty());
    // A static role has no authorizer.
    let config = load(&doc(anon.clone(), static_role())).unwrap();
    assert_eq!(config.workers[0].realms[0].roles[0].authorizer, None);

    let role_error = |role: Value| load(&doc(anon.clone(), role)).unwrap_err();
    assert_eq!(
        role_error(json!({"name": "user", "authorizer": "com.x", "permissions": []})),
        "workers[0].realms[0].roles[0].authorizer: found \"com.x\": a role has either \
         \"permissions\" or a dynamic \"authorizer\", not both"
    );
    assert_eq!(
        role_error(json!({"name": "user", "authorizer": "com..x"})),
        "workers[0].realms[0].roles[0].authorizer: found \"com..x\", expected a valid URI (loose \
         rules) of the authorizer procedure, such as \"com.example.authorize\""
    );
    assert_eq!(
        role_error(json!({"name": "user", "authorizer": {"uri": "a"}})),
        "workers[0].realms[0].roles[0].authorizer: found {\"uri\":\"a\"}, expected a string (the \
         URI of the authorizer procedure)"
    );
    // Strict realms check the authorizer URI strictly.
    let mut d = doc(
        anon,
        json!({"name": "user", "authorizer": "com.Example.auth"}),
    );
    d["workers"][0]["realms"][0]["options"] = json!({"uri_check": "strict"});
    assert_eq!(
        load(&d).unwrap_err(),
        "workers[0].realms[0].roles[0].authorizer: found \"com.Example.auth\", expected a valid \
         URI (strict rules) of the authorizer procedure, such as \"com.example.authorize\""
    );
}
