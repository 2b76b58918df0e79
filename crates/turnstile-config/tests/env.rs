//! Environment variables in a configuration: `"$NAME"` and `"${NAME}"` in every string value and
//! port, read through an injected lookup (the process environment is never touched here).

use std::collections::HashMap;
use std::path::Path;

use serde_json::{json, Value};
use turnstile_config::{
    load_str_with_env, ConfigError, Endpoint, Format, NodeConfig, TicketAuth, TransportConfig,
    WampCraAuth,
};

fn doc() -> Value {
    json!({
        "version": 2,
        "controller": {"id": "$NODE"},
        "workers": [{
            "type": "router",
            "realms": [{"name": "${REALM}", "roles": [{"name": "user", "permissions": []}]}],
            "transports": [
                {"type": "websocket", "endpoint": {"type": "tcp", "port": "$WS_PORT"},
                 "auth": {"ticket": {"type": "static", "principals": {
                     "joe": {"ticket": "${JOE_TICKET}", "role": "user"}}}}},
                {"type": "rawsocket", "endpoint": {"type": "tcp", "port": "${RS_PORT}"},
                 "auth": {"wampcra": {"type": "static", "users": {
                     "ann": {"secret": "$ANN_SECRET", "role": "user"}}}}}
            ]
        }]
    })
}

fn load_with(doc: &Value, vars: &[(&str, &str)]) -> Result<NodeConfig, ConfigError> {
    let vars: HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    load_str_with_env(
        &doc.to_string(),
        Format::Json,
        Path::new("/x/config.json"),
        &|name| vars.get(name).cloned(),
    )
}

const ALL: &[(&str, &str)] = &[
    ("NODE", "node-7"),
    ("REALM", "realm7"),
    ("WS_PORT", "9000"),
    ("RS_PORT", " 9001\n"),
    ("JOE_TICKET", "t0p-s3cret"),
    ("ANN_SECRET", "cra-s3cret"),
];

#[test]
fn both_forms_are_read_for_strings_secrets_and_ports() {
    let config = load_with(&doc(), ALL).unwrap();
    assert_eq!(config.node_id.as_deref(), Some("node-7"));
    let worker = &config.workers[0];
    assert_eq!(worker.realms[0].name, "realm7");
    let TransportConfig::WebSocket {
        endpoint, service, ..
    } = &worker.transports[0]
    else {
        panic!("websocket first")
    };
    assert!(matches!(endpoint, Endpoint::Tcp { port: 9000, .. }));
    let Some(TicketAuth::Static { principals }) = &service.auth.as_ref().unwrap().ticket else {
        panic!("static ticket")
    };
    assert_eq!(principals["joe"].ticket.expose(), "t0p-s3cret");
    let TransportConfig::RawSocket { endpoint, auth, .. } = &worker.transports[1] else {
        panic!("rawsocket second")
    };
    assert!(matches!(endpoint, Endpoint::Tcp { port: 9001, .. }));
    let Some(WampCraAuth::Static { users }) = &auth.as_ref().unwrap().wampcra else {
        panic!("static wampcra")
    };
    assert_eq!(users["ann"].secret().expose(), "cra-s3cret");
}

#[test]
fn every_missing_variable_is_named_with_its_key_path() {
    let set: Vec<(&str, &str)> = ALL
        .iter()
        .copied()
        .filter(|(k, _)| !["WS_PORT", "JOE_TICKET"].contains(k))
        .collect();
    let message = load_with(&doc(), &set).unwrap_err().to_string();
    assert_eq!(
        message,
        "config error in /x/config.json at workers[0].transports[0].auth.ticket.principals.joe.\
         ticket: found \"${JOE_TICKET}\", expected the environment variable JOE_TICKET to be set \
         (it is not)\n\
         config error in /x/config.json at workers[0].transports[0].endpoint.port: found \
         \"$WS_PORT\", expected the environment variable WS_PORT to be set (it is not)"
    );
}

#[test]
fn a_port_variable_must_hold_an_integer() {
    let mut vars = ALL.to_vec();
    vars[2] = ("WS_PORT", "http");
    assert_eq!(
        load_with(&doc(), &vars).unwrap_err().to_string(),
        "config error in /x/config.json at workers[0].transports[0].endpoint.port: found \
         \"$WS_PORT\" (the environment variable WS_PORT is \"http\"), expected an integer (a TCP \
         port) in the environment variable"
    );
    // In range is the validator's rule, as for a port written in the file.
    vars[2] = ("WS_PORT", "70000");
    assert_eq!(
        load_with(&doc(), &vars).unwrap_err().to_string(),
        "config error in /x/config.json at workers[0].transports[0].endpoint.port: found \
         \"$WS_PORT\" (from the environment), expected an integer between 1 and 65535 (a TCP port)"
    );
}

/// A value read from the environment is never shown: messages show what the file says.
#[test]
fn values_read_from_the_environment_are_never_shown() {
    let mut vars = ALL.to_vec();
    // A realm name that is not a URI, and a secret that is the whole problem of its section.
    vars[1] = ("REALM", "not a realm SECRET-REALM");
    let message = load_with(&doc(), &vars).unwrap_err().to_string();
    assert_eq!(
        message,
        "config error in /x/config.json at workers[0].realms[0].name: found \"${REALM}\" (from \
         the environment), expected a realm name that is a valid WAMP URI, such as \"realm1\""
    );

    let mut d = doc();
    d["workers"][0]["transports"][0]["auth"]["ticket"]["principals"]["joe"]["role"] = json!(5);
    let message = load_with(&d, ALL).unwrap_err().to_string();
    assert!(
        message.contains("principals.joe.role: found 5"),
        "{message}"
    );
    for (_, value) in ALL {
        assert!(!message.contains(value.trim()), "{message}");
    }
    // Debug of the loaded configuration hides the secrets too.
    let shown = format!("{:?}", load_with(&doc(), ALL).unwrap());
    assert!(!shown.contains("t0p-s3cret") && !shown.contains("cra-s3cret"));
}

/// Strings that only look like variables are kept as they are.
#[test]
fn other_dollar_signs_are_literal() {
    let mut d = doc();
    d["workers"][0]["transports"][0]["auth"]["ticket"]["principals"]["joe"]["ticket"] =
        json!("pa$$word");
    d["workers"][0]["realms"][0]["name"] = json!("realm1");
    let config = load_with(&d, ALL).unwrap();
    let TransportConfig::WebSocket { service, .. } = &config.workers[0].transports[0] else {
        panic!("websocket first")
    };
    let Some(TicketAuth::Static { principals }) = &service.auth.as_ref().unwrap().ticket else {
        panic!("static ticket")
    };
    assert_eq!(principals["joe"].ticket.expose(), "pa$$word");
}

/// The usage ledger's DSN (it may hold a password) is read from the environment like any
/// string, as the ledger issue asks (`"dsn": "$USAGE_DSN"`); a missing variable names the key
/// and the variable, never a value.
#[test]
fn the_ledger_dsn_comes_from_the_environment() {
    let doc = json!({
        "version": 2,
        "workers": [{"type": "router", "realms": [{"name": "realm1"}],
                     "ledger": {"type": "postgresql", "dsn": "$USAGE_DSN"}}]
    });
    let dsn = "postgresql://billing:pw-9f3a@db.example:5432/usage";
    let config = load_with(&doc, &[("USAGE_DSN", dsn)]).unwrap();
    let Some(turnstile_config::LedgerConfig {
        store: turnstile_config::LedgerStore::Postgresql { dsn: read },
        ..
    }) = config.ledger()
    else {
        panic!("a PostgreSQL ledger")
    };
    assert_eq!(read.expose(), dsn);

    let error = load_with(&doc, &[]).unwrap_err().to_string();
    assert!(error.contains("workers[0].ledger.dsn"), "{error}");
    assert!(error.contains("USAGE_DSN"), "{error}");
}
