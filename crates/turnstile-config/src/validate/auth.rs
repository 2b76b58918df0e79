//! A transport's `auth` section (on `websocket` and `rawsocket` transports and on `websocket`
//! path services of `web` transports), as Crossbar configures it: `anonymous`, `ticket`,
//! `wampcra`, `cryptosign` and `tls`, each `static` or `dynamic`.
//!
//! These sections hold secrets, so their messages never show a ticket or a WAMP-CRA secret: a
//! value that could be one is described by its type or its keys (`{"ticket": ..., "role": ...}`),
//! never by its content.

use std::collections::BTreeMap;

use serde_json::Value;
use wamp_proto::uri::is_valid_uri;
use wamp_proto::{wampcra, UriRules};

use super::Collect;
use crate::cursor::{shorten, Keys, Node, Obj, VResult};
use crate::error::Problem;
use crate::model::{
    AnonymousAuth, AuthConfig, CraSalt, CryptosignAuth, CryptosignPrincipal, DynamicAuth, Secret,
    TicketAuth, TicketPrincipal, TlsAuth, TlsPrincipal, WampCraAuth, WampCraUser,
};

const AUTH: Keys = Keys {
    what: "authentication methods",
    allowed: &["anonymous", "ticket", "wampcra", "cryptosign", "tls"],
    unsupported: &[],
};

/// Crossbar methods Turnstile does not offer; refused with their keys only (they hold secrets).
const AUTH_UNSUPPORTED: &[(&str, &str)] = &[
    ("scram", "WAMP-SCRAM authentication is not supported yet"),
    ("cookie", "cookie authentication is not supported yet"),
    (
        "cryptosign-proxy",
        "proxy authentication methods are not supported",
    ),
    (
        "anonymous-proxy",
        "proxy authentication methods are not supported",
    ),
];

const ANONYMOUS_STATIC: Keys = Keys {
    what: "static anonymous authentication",
    allowed: &["type", "role", "authid"],
    unsupported: &[],
};

/// Crossbar accepts `realm` on static anonymous authentication, and then ignores it: the session
/// joins the realm the client asks for (`crossbar/router/auth/anonymous.py`).
const ANONYMOUS_STATIC_INAPPLICABLE: &[(&str, &str)] = &[(
    "realm",
    "an anonymous session joins the realm the client asks for (Crossbar ignores this key too)",
)];

const DYNAMIC: Keys = Keys {
    what: "a dynamic authenticator",
    allowed: &["type", "authenticator", "authenticator-realm"],
    unsupported: &[],
};

/// Crossbar calls a dynamic authenticator from a service session with the role
/// `authenticator-role`; Turnstile's router calls the procedure itself, with no role to check.
const DYNAMIC_INAPPLICABLE: &[(&str, &str)] = &[(
    "authenticator-role",
    "the router calls the authenticator procedure itself, not from a session with a role, so \
     no role is checked",
)];

const TICKET_STATIC: Keys = Keys {
    what: "static ticket authentication",
    allowed: &["type", "principals"],
    unsupported: &[],
};

const TICKET_PRINCIPAL: Keys = Keys {
    what: "a ticket principal",
    allowed: &["ticket", "role", "realm"],
    unsupported: &[],
};

const WAMPCRA_STATIC: Keys = Keys {
    what: "static WAMP-CRA authentication",
    allowed: &["type", "users"],
    unsupported: &[],
};

const WAMPCRA_USER: Keys = Keys {
    what: "a WAMP-CRA user",
    allowed: &["secret", "role", "realm", "salt", "iterations", "keylen"],
    unsupported: &[],
};

const CRYPTOSIGN_STATIC: Keys = Keys {
    what: "static WAMP-Cryptosign authentication",
    allowed: &["type", "principals"],
    unsupported: &[],
};

const TLS_STATIC: Keys = Keys {
    what: "static TLS client certificate authentication",
    allowed: &["type", "principals"],
    unsupported: &[],
};

const TLS_PRINCIPAL: Keys = Keys {
    what: "a TLS client certificate principal",
    allowed: &["certificate-sha1", "role", "realm"],
    unsupported: &[],
};

const CRYPTOSIGN_PRINCIPAL: Keys = Keys {
    what: "a WAMP-Cryptosign principal",
    allowed: &["authorized_keys", "role", "realm"],
    unsupported: &[],
};

/// `auth`: at least one method.
pub(super) fn auth(node: &Node) -> VResult<AuthConfig> {
    for (key, message) in AUTH_UNSUPPORTED {
        if let Some(method) = node.get(key) {
            return Err(method.fail(Problem::Unsupported {
                found: hidden(method.value()),
                message: (*message).to_owned(),
            }));
        }
    }
    let obj = guarded_object(node, &AUTH)?;
    let mut config = AuthConfig::default();
    // Each method is checked, whatever the others' errors.
    let mut collect = Collect::default();
    if let Some(n) = obj.get("anonymous") {
        collect.keep(anonymous(&n, &mut config));
    }
    if let Some(n) = obj.get("ticket") {
        config.ticket = collect.keep(ticket(&n));
    }
    if let Some(n) = obj.get("wampcra") {
        config.wampcra = collect.keep(wampcra(&n));
    }
    if let Some(n) = obj.get("cryptosign") {
        config.cryptosign = collect.keep(cryptosign(&n));
    }
    if let Some(n) = obj.get("tls") {
        config.tls = collect.keep(tls(&n));
    }
    collect.finish()?;
    if config == AuthConfig::default() {
        return Err(node.invalid(
            "at least one authentication method (\"anonymous\", \"ticket\", \"wampcra\", \
             \"cryptosign\" or \"tls\")",
        ));
    }
    Ok(config)
}

/// `auth.anonymous`, static or dynamic, into `config`.
fn anonymous(n: &Node, config: &mut AuthConfig) -> VResult<()> {
    match method_type(n, "anonymous authentication")? {
        Kind::Static => {
            let a = n.object_noting(&ANONYMOUS_STATIC, ANONYMOUS_STATIC_INAPPLICABLE)?;
            if let Some(realm) = a.get("realm") {
                realm.str("a realm name")?;
            }
            config.anonymous = Some(AnonymousAuth {
                role: match a.get("role") {
                    Some(r) => role_name(&r)?,
                    None => "anonymous".to_owned(),
                },
                authid: a.opt_str("authid", "the authid of anonymous sessions")?,
            });
        }
        Kind::Dynamic => config.anonymous_dynamic = Some(dynamic(n)?),
    }
    Ok(())
}

fn ticket(n: &Node) -> VResult<TicketAuth> {
    Ok(match method_type(n, "ticket authentication")? {
        Kind::Static => TicketAuth::Static {
            principals: principals(
                &guarded_object(n, &TICKET_STATIC)?,
                "principals",
                "ticket principals by authid, such as {\"joe\": {\"ticket\": ..., \"role\": ...}}",
                ticket_principal,
            )?,
        },
        Kind::Dynamic => TicketAuth::Dynamic(dynamic(n)?),
    })
}

fn wampcra(n: &Node) -> VResult<WampCraAuth> {
    Ok(match method_type(n, "WAMP-CRA authentication")? {
        Kind::Static => WampCraAuth::Static {
            users: principals(
                &guarded_object(n, &WAMPCRA_STATIC)?,
                "users",
                "WAMP-CRA users by authid, such as {\"joe\": {\"secret\": ..., \"role\": ...}}",
                wampcra_user,
            )?,
        },
        Kind::Dynamic => WampCraAuth::Dynamic(dynamic(n)?),
    })
}

/// `auth.tls`: client certificate authentication, static (by certificate fingerprint) or
/// dynamic.
fn tls(n: &Node) -> VResult<TlsAuth> {
    Ok(
        match method_type(n, "TLS client certificate authentication")? {
            Kind::Static => {
                let principals = principals(
                    &n.object(&TLS_STATIC)?,
                    "principals",
                    "TLS principals by authid, such as {\"client_0\": {\"certificate-sha1\": \
                     \"B6:E5:...\", \"role\": ...}}",
                    tls_principal,
                )?;
                let mut seen: BTreeMap<&str, &str> = BTreeMap::new();
                for (authid, p) in &principals {
                    if let Some(other) = seen.insert(&p.certificate_sha1, authid) {
                        let at = n
                            .get("principals")
                            .and_then(|ps| ps.get(authid))
                            .and_then(|p| p.get("certificate-sha1"))
                            .unwrap_or(n.clone());
                        return Err(at.conflict(format!(
                            "the principal \"{other}\" has the same certificate; a certificate \
                             identifies one principal"
                        )));
                    }
                }
                TlsAuth::Static { principals }
            }
            Kind::Dynamic => TlsAuth::Dynamic(dynamic(n)?),
        },
    )
}

fn cryptosign(n: &Node) -> VResult<CryptosignAuth> {
    Ok(match method_type(n, "WAMP-Cryptosign authentication")? {
        Kind::Static => CryptosignAuth::Static {
            principals: principals(
                &n.object(&CRYPTOSIGN_STATIC)?,
                "principals",
                "WAMP-Cryptosign principals by authid, such as {\"joe\": {\"authorized_keys\": \
                 [...], \"role\": ...}}",
                cryptosign_principal,
            )?,
        },
        Kind::Dynamic => CryptosignAuth::Dynamic(dynamic(n)?),
    })
}

enum Kind {
    Static,
    Dynamic,
}

/// The `type` of a method section: `static` or `dynamic`.
fn method_type(node: &Node, what: &str) -> VResult<Kind> {
    guard_object(node, what)?;
    let (type_node, _) = node.tagged(what)?;
    Ok(match type_node.choice(&["static", "dynamic"])? {
        "static" => Kind::Static,
        _ => Kind::Dynamic,
    })
}

/// A `"type": "dynamic"` section.
fn dynamic(node: &Node) -> VResult<DynamicAuth> {
    let obj = node.object_noting(&DYNAMIC, DYNAMIC_INAPPLICABLE)?;
    if let Some(role) = obj.get("authenticator-role") {
        role_name(&role)?;
    }
    let authenticator = uri(
        &obj.required(
            "authenticator",
            "the URI of the authenticator procedure, such as \"com.example.authenticate\"",
        )?,
        "the URI of the authenticator procedure",
    )?;
    let authenticator_realm = obj.opt("authenticator-realm", None, |n| {
        uri(n, "the realm the authenticator is registered on").map(Some)
    })?;
    Ok(DynamicAuth {
        authenticator,
        authenticator_realm,
    })
}

/// A non-empty map of principals by authid at `key`, each read with `item`.
fn principals<T>(
    obj: &Obj,
    key: &str,
    expected: &str,
    item: impl Fn(&Node) -> VResult<T>,
) -> VResult<BTreeMap<String, T>> {
    let node = obj.required(key, expected)?;
    guard_object(&node, expected)?;
    let entries = node.entries(expected)?;
    if entries.is_empty() {
        return Err(node.invalid(format!("at least one entry: {expected}")));
    }
    let mut out = BTreeMap::new();
    let mut collect = Collect::default();
    for (authid, value) in entries {
        if authid.is_empty() {
            collect.keep::<()>(Err(value.fail(Problem::Invalid {
                found: "the authid \"\"".to_owned(),
                expected: "a non-empty authid".to_owned(),
            })));
            continue;
        }
        if let Some(principal) = collect.keep(item(&value)) {
            out.insert(authid.to_owned(), principal);
        }
    }
    collect.finish()?;
    Ok(out)
}

fn ticket_principal(node: &Node) -> VResult<TicketPrincipal> {
    let obj = guarded_object(node, &TICKET_PRINCIPAL)?;
    Ok(TicketPrincipal {
        ticket: secret(
            &obj.required("ticket", "the ticket (a string)")?,
            "the ticket",
        )?,
        role: role(&obj)?,
        realm: realm(&obj)?,
    })
}

fn wampcra_user(node: &Node) -> VResult<WampCraUser> {
    let obj = guarded_object(node, &WAMPCRA_USER)?;
    let secret = secret(
        &obj.required("secret", "the secret (a string)")?,
        "the secret",
    )?;
    let role = role(&obj)?;
    let realm = realm(&obj)?;
    let salt = match obj.get("salt") {
        Some(n) => Some((n.non_empty_str("the PBKDF2 salt")?.to_owned(), n.clone())),
        None => None,
    };
    let iterations = obj.opt("iterations", None, |n| {
        let max = u64::from(wampcra::MAX_ITERATIONS);
        let it = n.int_in(
            1,
            max,
            &format!("an integer between 1 and {max} (PBKDF2 iterations)"),
        )?;
        Ok(Some((it as u32, n.clone())))
    })?;
    let keylen = obj.opt("keylen", None, |n| {
        let max = u64::from(wampcra::MAX_KEYLEN);
        let len = n.int_in(
            1,
            max,
            &format!("an integer between 1 and {max} (the PBKDF2 key length in bytes)"),
        )?;
        Ok(Some((len as u32, n.clone())))
    })?;
    // Crossbar salts a secret only when all three are given, and silently uses the secret as is
    // otherwise; a partial set is refused here rather than half applied or silently dropped.
    let salt = match (salt, iterations, keylen) {
        (Some((salt, _)), Some((iterations, _)), Some((keylen, _))) => Some(CraSalt {
            salt,
            iterations,
            keylen,
        }),
        (None, None, None) => None,
        (salt, iterations, keylen) => {
            let given = [
                ("salt", salt.map(|(_, n)| n)),
                ("iterations", iterations.map(|(_, n)| n)),
                ("keylen", keylen.map(|(_, n)| n)),
            ];
            let missing: Vec<String> = given
                .iter()
                .filter(|(_, node)| node.is_none())
                .map(|(key, _)| format!("\"{key}\""))
                .collect();
            // The error points at the first key given (one is, or the first arm had matched).
            let at = given.iter().find_map(|(_, node)| node.as_ref());
            let message = format!(
                "a salted secret needs \"salt\", \"iterations\" and \"keylen\" together \
                 (Crossbar ignores a partial set and uses the secret unsalted): add {} or \
                 remove the others",
                missing.join(" and ")
            );
            return Err(at.unwrap_or(node).conflict(message));
        }
    };
    Ok(WampCraUser::new(secret, role, realm, salt))
}

fn cryptosign_principal(node: &Node) -> VResult<CryptosignPrincipal> {
    let obj = node.object(&CRYPTOSIGN_PRINCIPAL)?;
    let keys_node = obj.required(
        "authorized_keys",
        "a list of Ed25519 public keys (64 hex characters each)",
    )?;
    let items = keys_node.list("Ed25519 public keys, 64 hex characters each")?;
    if items.is_empty() {
        return Err(keys_node.invalid("at least one Ed25519 public key (64 hex characters)"));
    }
    let mut authorized_keys = Vec::with_capacity(items.len());
    for item in &items {
        match item.value().as_str() {
            Some(key) if key.len() == 64 && key.bytes().all(|b| b.is_ascii_hexdigit()) => {
                authorized_keys.push(key.to_ascii_lowercase());
            }
            _ => {
                return Err(
                    item.invalid("an Ed25519 public key: a string of 64 hex characters (32 bytes)")
                )
            }
        }
    }
    Ok(CryptosignPrincipal {
        authorized_keys,
        role: role(&obj)?,
        realm: realm(&obj)?,
    })
}

fn tls_principal(node: &Node) -> VResult<TlsPrincipal> {
    let obj = node.object(&TLS_PRINCIPAL)?;
    let fp = obj.required(
        "certificate-sha1",
        "the SHA-1 fingerprint of the client certificate (40 hex digits, colons optional)",
    )?;
    let certificate_sha1 = fp
        .str("a SHA-1 fingerprint")
        .ok()
        .and_then(normalize_sha1)
        .ok_or_else(|| {
            fp.invalid(
                "a SHA-1 fingerprint: 20 bytes as hex digits, in pairs optionally separated by \
                 colons (such as \"B6:E5:4D:...\", as `openssl x509 -fingerprint -sha1` prints it)",
            )
        })?;
    Ok(TlsPrincipal {
        certificate_sha1,
        role: role(&obj)?,
        realm: realm(&obj)?,
    })
}

/// A SHA-1 fingerprint as Crossbar reports one (`AB:CD:...`, upper case), from hex digits with
/// or without colons between the pairs.
fn normalize_sha1(text: &str) -> Option<String> {
    let hex: String = text.chars().filter(|c| *c != ':').collect();
    let pairs_ok = !text.contains(':') || text.split(':').all(|pair| pair.len() == 2);
    if hex.len() != 40 || !pairs_ok || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let upper = hex.to_ascii_uppercase();
    let pairs: Vec<&str> = (0..20).map(|i| &upper[2 * i..2 * i + 2]).collect();
    Some(pairs.join(":"))
}

/// The required `role` of a principal.
fn role(obj: &Obj) -> VResult<String> {
    role_name(&obj.required("role", "the role of the principal's sessions")?)
}

fn role_name(node: &Node) -> VResult<String> {
    Ok(node.non_empty_str("a role name")?.to_owned())
}

/// The optional `realm` of a principal.
fn realm(obj: &Obj) -> VResult<Option<String>> {
    obj.opt("realm", None, |n| {
        uri(n, "the only realm the principal may join").map(Some)
    })
}

/// A URI (loose rules, no empty components).
fn uri(node: &Node, what: &str) -> VResult<String> {
    let text = node.str(what)?;
    if !is_valid_uri(text, UriRules::Loose, false) {
        return Err(node.invalid(format!("a valid URI ({what})")));
    }
    Ok(text.to_owned())
}

/// A ticket or WAMP-CRA secret: a non-empty string, never shown in messages.
fn secret(node: &Node, what: &str) -> VResult<Secret> {
    match node.value() {
        Value::String(s) if !s.is_empty() => Ok(Secret::new(s.clone())),
        other => Err(node.fail(Problem::Invalid {
            found: hidden(other),
            expected: format!("a non-empty string ({what})"),
        })),
    }
}

/// Fails unless `node` is an object, describing a wrong value without showing its content.
fn guard_object(node: &Node, what: &str) -> VResult<()> {
    if node.value().is_object() {
        return Ok(());
    }
    Err(node.fail(Problem::Invalid {
        found: hidden(node.value()),
        expected: format!("an object ({what})"),
    }))
}

/// [`Node::object`] for values that may hold secrets.
fn guarded_object<'v>(node: &Node<'v>, keys: &Keys) -> VResult<Obj<'v>> {
    guard_object(node, keys.what)?;
    node.object(keys)
}

/// A value that may be or hold a secret, for messages: objects by their keys, other values by
/// their type (`true`, `false` and `null` as they are).
fn hidden(value: &Value) -> String {
    match value {
        Value::Object(map) => {
            let keys: Vec<String> = map
                .keys()
                .map(|k| format!("{}: ...", Value::String(k.clone())))
                .collect();
            format!("{{{}}}", keys.join(", "))
        }
        Value::Array(_) => "a list (not shown)".to_owned(),
        Value::String(_) => "a string (not shown)".to_owned(),
        Value::Number(_) => "a number (not shown)".to_owned(),
        Value::Bool(_) | Value::Null => shorten(value),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn sha1_fingerprints_are_normalized_as_crossbar_prints_them() {
        let colons = "b6:e5:4d:3a:1f:00:11:22:33:44:55:66:77:88:99:aa:bb:cc:dd:ee";
        let want = "B6:E5:4D:3A:1F:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE";
        assert_eq!(normalize_sha1(colons).as_deref(), Some(want));
        assert_eq!(
            normalize_sha1(&colons.replace(':', "")).as_deref(),
            Some(want)
        );
        assert_eq!(normalize_sha1("b6:e5"), None);
        assert_eq!(normalize_sha1(&colons.replace("ee", "eg")), None);
        assert_eq!(normalize_sha1(&format!("{}:", &colons[..58])), None);
    }

    #[test]
    fn hidden_shows_no_content() {
        assert_eq!(
            hidden(&json!({"ticket": "t0p", "role": "r"})),
            "{\"role\": ..., \"ticket\": ...}"
        );
        assert_eq!(hidden(&json!("t0p")), "a string (not shown)");
        assert_eq!(hidden(&json!(1234)), "a number (not shown)");
        assert_eq!(hidden(&json!(["t0p"])), "a list (not shown)");
        assert_eq!(hidden(&json!(null)), "null");
    }
}
