//! `endpoint.tls` and `auth.tls`: what loads into the model (paths resolved against the
//! configuration's directory, ciphers read, principals normalized) and every refusal with its
//! key path. The files themselves are read by the router at start (crates/turnstile/tests/tls.rs).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::{json, Value};
use turnstile_config::{
    load_str, AuthConfig, DynamicAuth, Endpoint, Format, NodeConfig, TlsAuth, TlsConfig,
    TlsPrincipal, TlsSuite, TransportConfig, WebPath,
};

/// A node with one transport.
fn node(transport: Value) -> Value {
    json!({
        "version": 2,
        "workers": [{
            "type": "router",
            "realms": [{"name": "realm1", "roles": [{"name": "device", "permissions": []}]}],
            "transports": [transport]
        }]
    })
}

fn load(doc: &Value) -> Result<NodeConfig, String> {
    load_str(
        &doc.to_string(),
        Format::Json,
        Path::new("/node/.crossbar/config.json"),
    )
    .map_err(|e| {
        let m = e.to_string();
        m.strip_prefix("config error in /node/.crossbar/config.json at ")
            .unwrap_or(&m)
            .to_owned()
    })
}

fn tls_of(config: &NodeConfig) -> &TlsConfig {
    match config.workers[0].transports[0].endpoint() {
        Endpoint::Tcp { tls: Some(tls), .. } => tls,
        other => panic!("a TLS endpoint expected, got {other:?}"),
    }
}

fn tcp_tls(tls: Value) -> Value {
    json!({"type": "tcp", "port": 8443, "tls": tls})
}

#[test]
fn crossbar_tls_keys_load_with_paths_relative_to_the_node_directory() {
    let config = load(&node(json!({
        "type": "websocket",
        "url": "wss://example.com:8443/ws",
        "endpoint": tcp_tls(json!({
            "key": "server.key",
            "certificate": "certs/server.crt",
            "chain_certificates": ["intermediate.crt"],
            "ca_certificates": ["/etc/ca/clients.pem"],
            "dhparam": "dhparam.pem",
            "ciphers": "ECDHE-RSA-AES128-GCM-SHA256:DHE-RSA-AES128-GCM-SHA256:ECDHE-RSA-AES256-GCM-SHA384"
        }))
    })))
    .unwrap();
    let tls = tls_of(&config);
    let dir = PathBuf::from("/node/.crossbar");
    assert_eq!(tls.key, dir.join("server.key"));
    assert_eq!(tls.certificate, dir.join("certs/server.crt"));
    assert_eq!(tls.chain_certificates, [dir.join("intermediate.crt")]);
    assert_eq!(tls.ca_certificates, [PathBuf::from("/etc/ca/clients.pem")]);
    assert!(tls.client_certificates());
    assert_eq!(tls.dhparam, Some(dir.join("dhparam.pem")));
    let ciphers = tls.ciphers.as_ref().unwrap();
    assert_eq!(
        ciphers.tls12().collect::<Vec<_>>(),
        [
            TlsSuite::EcdheRsaAes256GcmSha384,
            TlsSuite::EcdheRsaAes128GcmSha256
        ]
    );
    assert_eq!(ciphers.unmatched, ["DHE-RSA-AES128-GCM-SHA256"]);
    let TransportConfig::WebSocket { path, .. } = &config.workers[0].transports[0] else {
        panic!("websocket")
    };
    assert_eq!(path, "/ws");
}

#[test]
fn tls_goes_on_every_transport_type_with_a_tcp_endpoint() {
    let tls = json!({"key": "k.pem", "certificate": "c.pem"});
    for transport in [
        json!({"type": "rawsocket", "endpoint": tcp_tls(tls.clone())}),
        json!({"type": "web", "endpoint": tcp_tls(tls.clone()),
               "paths": {"ws": {"type": "websocket"}}}),
    ] {
        let config = load(&node(transport)).unwrap();
        let tls = tls_of(&config);
        assert!(!tls.client_certificates());
        assert_eq!(tls.ciphers, None);
        assert_eq!(tls.dhparam, None);
    }
}

#[test]
fn tls_refusals_name_the_key() {
    let ws = |tls: Value| node(json!({"type": "websocket", "endpoint": tcp_tls(tls)}));
    assert_eq!(
        load(&ws(json!({"certificate": "c.pem"}))).unwrap_err(),
        "workers[0].transports[0].endpoint.tls.key: missing required key, expected the \
         server's private key file (PEM)"
    );
    assert_eq!(
        load(&ws(
            json!({"key": "k.pem", "certificate": "c.pem", "verify": true})
        ))
        .unwrap_err(),
        "workers[0].transports[0].endpoint.tls.verify: unknown key, allowed keys here: key, \
         certificate, chain_certificates, ca_certificates, ciphers, dhparam"
    );
    assert_eq!(
        load(&ws(
            json!({"key": "k.pem", "certificate": "c.pem", "ca_certificates": []})
        ))
        .unwrap_err(),
        "workers[0].transports[0].endpoint.tls.ca_certificates: found [], expected at least \
         one CA certificate file (clients must present a certificate issued by one of them); \
         leave the key out to not ask for client certificates"
    );
    let err = load(&ws(json!({"key": "k.pem", "certificate": "c.pem",
                              "ciphers": "DHE-RSA-AES256-SHA:RC4-MD5"})))
    .unwrap_err();
    assert!(
        err.starts_with(
            "workers[0].transports[0].endpoint.tls.ciphers: found \"DHE-RSA-AES256-SHA:RC4-MD5\": \
             the cipher string selects none of the cipher suites"
        ),
        "{err}"
    );
    assert!(err.contains("ECDHE-ECDSA-AES128-GCM-SHA256"), "{err}");
    let unix = node(json!({"type": "rawsocket",
        "endpoint": {"type": "unix", "path": "s.sock", "tls": {"key": "k", "certificate": "c"}}}));
    let err = load(&unix).unwrap_err();
    assert!(
        err.starts_with("workers[0].transports[0].endpoint.tls: found ")
            && err.ends_with("TLS is offered on TCP endpoints only (Crossbar does not allow it on unix sockets either)"),
        "{err}"
    );
}

fn tls_auth_node(auth: Value, ca: bool) -> Value {
    let mut tls = json!({"key": "k.pem", "certificate": "c.pem"});
    if ca {
        tls["ca_certificates"] = json!(["ca.pem"]);
    }
    node(json!({"type": "rawsocket", "endpoint": tcp_tls(tls), "auth": auth}))
}

#[test]
fn tls_auth_loads_static_and_dynamic() {
    let config = load(&tls_auth_node(
        json!({"tls": {"type": "static", "principals": {
            "client_0": {"certificate-sha1": "b6e54d3a1f00112233445566778899aabbccddee",
                         "role": "device", "realm": "realm1"}
        }}}),
        true,
    ))
    .unwrap();
    let TransportConfig::RawSocket { auth, .. } = &config.workers[0].transports[0] else {
        panic!("rawsocket")
    };
    assert_eq!(
        auth.as_ref().unwrap(),
        &AuthConfig {
            tls: Some(TlsAuth::Static {
                principals: BTreeMap::from([(
                    "client_0".to_owned(),
                    TlsPrincipal {
                        certificate_sha1:
                            "B6:E5:4D:3A:1F:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE".into(),
                        role: "device".into(),
                        realm: Some("realm1".into()),
                    }
                )])
            }),
            ..AuthConfig::default()
        }
    );

    let config = load(&tls_auth_node(
        json!({"tls": {"type": "dynamic", "authenticator": "com.example.auth"}}),
        true,
    ))
    .unwrap();
    let TransportConfig::RawSocket { auth, .. } = &config.workers[0].transports[0] else {
        panic!("rawsocket")
    };
    assert_eq!(
        auth.as_ref().unwrap().tls,
        Some(TlsAuth::Dynamic(DynamicAuth {
            authenticator: "com.example.auth".into(),
            authenticator_realm: None
        }))
    );
}

#[test]
fn tls_auth_refusals() {
    let principal = |fp: &str| json!({"certificate-sha1": fp, "role": "device"});
    let fp = "B6:E5:4D:3A:1F:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE";

    // No client certificates asked for: nobody could authenticate.
    let auth = json!({"tls": {"type": "static", "principals": {"a": principal(fp)}}});
    let err = load(&tls_auth_node(auth.clone(), false)).unwrap_err();
    assert!(
        err.starts_with("workers[0].transports[0].auth.tls: found ")
            && err.contains("needs a TLS endpoint with \"ca_certificates\""),
        "{err}"
    );
    let plain = node(
        json!({"type": "websocket", "endpoint": {"type": "tcp", "port": 80},
                            "auth": auth}),
    );
    assert!(load(&plain).unwrap_err().contains("needs a TLS endpoint"));
    let web = node(
        json!({"type": "web", "endpoint": {"type": "tcp", "port": 80},
        "paths": {"ws": {"type": "websocket",
                         "auth": {"tls": {"type": "dynamic", "authenticator": "a.b"}}}}}),
    );
    assert!(load(&web)
        .unwrap_err()
        .starts_with("workers[0].transports[0].paths.ws.auth.tls: "));

    let err = load(&tls_auth_node(
        json!({"tls": {"type": "static", "principals": {"a": principal("b6:e5")}}}),
        true,
    ))
    .unwrap_err();
    assert!(
        err.starts_with(
            "workers[0].transports[0].auth.tls.principals.a.certificate-sha1: found \"b6:e5\", \
             expected a SHA-1 fingerprint"
        ),
        "{err}"
    );
    let lower = fp.to_lowercase().replace(':', "");
    let err = load(&tls_auth_node(
        json!({"tls": {"type": "static",
                       "principals": {"a": principal(fp), "b": principal(&lower)}}}),
        true,
    ))
    .unwrap_err();
    assert!(
        err.starts_with("workers[0].transports[0].auth.tls.principals.b.certificate-sha1: ")
            && err.contains("the principal \"a\" has the same certificate"),
        "{err}"
    );
    let err = load(&tls_auth_node(
        json!({"tls": {"type": "function", "create": "x"}}),
        true,
    ))
    .unwrap_err();
    assert!(
        err.starts_with("workers[0].transports[0].auth.tls.type: "),
        "{err}"
    );
}

#[test]
fn web_paths_keep_their_tls_endpoint() {
    let config = load(&node(json!({"type": "web",
        "endpoint": tcp_tls(json!({"key": "k.pem", "certificate": "c.pem",
                                   "ca_certificates": ["ca.pem"]})),
        "paths": {"ws": {"type": "websocket",
                         "auth": {"tls": {"type": "dynamic", "authenticator": "a.b"}}}}})))
    .unwrap();
    let TransportConfig::Web { paths, .. } = &config.workers[0].transports[0] else {
        panic!("web")
    };
    let Some(WebPath::WebSocket(ws)) = paths.get("ws") else {
        panic!("ws")
    };
    assert!(ws.auth.as_ref().unwrap().tls.is_some());
}

#[test]
fn hsts_on_web_transports() {
    let web = |options: Value| {
        node(
            json!({"type": "web", "endpoint": tcp_tls(json!({"key": "k", "certificate": "c"})),
                    "paths": {"ws": {"type": "websocket"}}, "options": options}),
        )
    };
    let hsts = |config: NodeConfig| match &config.workers[0].transports[0] {
        TransportConfig::Web { hsts_max_age, .. } => *hsts_max_age,
        _ => panic!("web"),
    };
    assert_eq!(
        hsts(load(&web(json!({"hsts": true}))).unwrap()),
        Some(31_536_000)
    );
    assert_eq!(
        hsts(load(&web(json!({"hsts": true, "hsts_max_age": 600}))).unwrap()),
        Some(600)
    );
    assert_eq!(hsts(load(&web(json!({"hsts": false}))).unwrap()), None);
    assert_eq!(
        load(&web(json!({"hsts_max_age": 600}))).unwrap_err(),
        "workers[0].transports[0].options.hsts_max_age: found 600: has no effect without \
         \"hsts\": true"
    );
}
