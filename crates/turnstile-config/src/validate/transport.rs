//! Transports: `websocket`, `web` (with `websocket` and `static` path services) and
//! `rawsocket`, with their serializers, options and `auth`.

use std::collections::BTreeMap;

use serde_json::{json, Value};
use wamp_proto::Serializer;

use super::auth::auth;
use super::endpoint::endpoint;
use super::limits::transport_max_connections;
use super::tls::check_tls_auth;
use super::{Collect, Ctx};
use crate::cursor::{one_of, Keys, Node, Obj, VResult};
use crate::error::Problem;
use crate::load::resolve;
use crate::model::{
    Endpoint, TransportConfig, WebPath, WebSocketOptions, WebSocketService,
    DEFAULT_MAX_MESSAGE_SIZE,
};

const SUPPORTED: &[&str] = &["websocket", "web", "rawsocket"];
const UNSUPPORTED: &[&str] = &[
    "universal",
    "mqtt",
    "flashpolicy",
    "websocket.testee",
    "stream.testee",
];

const COOKIE: (&str, &str) = ("cookie", "cookie tracking is not supported yet");

const WEBSOCKET: Keys = Keys {
    what: "a WebSocket transport",
    allowed: &[
        "type",
        "id",
        "endpoint",
        "url",
        "serializers",
        "options",
        "auth",
        "debug",
        "max_connections",
    ],
    unsupported: &[COOKIE],
};

const WEB: Keys = Keys {
    what: "a web transport",
    allowed: &[
        "type",
        "id",
        "endpoint",
        "paths",
        "options",
        "max_connections",
    ],
    unsupported: &[],
};

const WEB_OPTIONS: Keys = Keys {
    what: "web transport options",
    allowed: &["access_log", "hsts", "hsts_max_age", "display_tracebacks"],
    unsupported: &[(
        "client_timeout",
        "this web transport option is not supported yet",
    )],
};

/// Keys of path services that Crossbar accepts and Turnstile has no use for.
const PATH_INAPPLICABLE: &[(&str, &str)] = &[(
    "id",
    "a path service id names it in Crossbar's management API, which Turnstile does not have",
)];

const WEB_WEBSOCKET: Keys = Keys {
    what: "a WebSocket path service",
    allowed: &["type", "serializers", "options", "auth", "debug"],
    unsupported: &[
        COOKIE,
        (
            "url",
            "\"url\" on a WebSocket path service is not supported yet",
        ),
    ],
};

const WEB_STATIC: Keys = Keys {
    what: "a static path service",
    allowed: &["type", "directory", "options"],
    unsupported: &[
        (
            "package",
            "serving files from a Python package is not supported yet (use \"directory\")",
        ),
        (
            "resource",
            "serving files from a Python package is not supported yet (use \"directory\")",
        ),
    ],
};

const STATIC_OPTIONS: Keys = Keys {
    what: "static path service options",
    allowed: &["enable_directory_listing"],
    unsupported: &[
        (
            "mime_types",
            "this static path service option is not supported yet",
        ),
        (
            "cache_timeout",
            "this static path service option is not supported yet",
        ),
        (
            "default_file",
            "this static path service option is not supported yet",
        ),
    ],
};

/// Crossbar path service types other than `websocket` and `static`.
const UNSUPPORTED_PATH_TYPES: &[&str] = &[
    "wsgi",
    "reverseproxy",
    "websocket-reverseproxy",
    "caller",
    "publisher",
    "webhook",
    "json",
    "cgi",
    "redirect",
    "resource",
    "upload",
    "nodeinfo",
    "archive",
    "longpoll",
    "path",
    "schemadoc",
    "none",
    "wap",
    "catalog",
];

/// Path service types of Crossbar.io FX (Fabric) personalities only.
const FABRIC_PATH_TYPES: &[&str] = &["pairme", "registerme"];

const RAWSOCKET: Keys = Keys {
    what: "a RawSocket transport",
    allowed: &[
        "type",
        "id",
        "endpoint",
        "serializers",
        "max_message_size",
        "options",
        "auth",
        "debug",
        "max_connections",
    ],
    unsupported: &[],
};

const RAWSOCKET_OPTIONS: Keys = Keys {
    what: "RawSocket options",
    allowed: &["max_message_size"],
    unsupported: &[],
};

const NOT_SUPPORTED: &str = "this WebSocket option is not supported yet";

const WEBSOCKET_OPTIONS: Keys = Keys {
    what: "WebSocket options",
    allowed: &[
        "max_message_size",
        "max_frame_size",
        "auto_ping_interval",
        "auto_ping_timeout",
        "enable_webstatus",
        "compression",
        "allowed_origins",
        "allow_null_origin",
    ],
    unsupported: &[
        ("auto_ping_size", NOT_SUPPORTED),
        ("auto_ping_restart_on_any_traffic", NOT_SUPPORTED),
        ("fail_by_drop", NOT_SUPPORTED),
        ("open_handshake_timeout", NOT_SUPPORTED),
        ("close_handshake_timeout", NOT_SUPPORTED),
        ("auto_fragment_size", NOT_SUPPORTED),
        ("external_port", NOT_SUPPORTED),
        ("enable_hybi10", NOT_SUPPORTED),
        ("enable_rfc6455", NOT_SUPPORTED),
        ("validate_utf8", NOT_SUPPORTED),
        ("mask_server_frames", NOT_SUPPORTED),
        ("require_masked_client_frames", NOT_SUPPORTED),
        ("apply_mask", NOT_SUPPORTED),
        ("echo_close_codereason", NOT_SUPPORTED),
        ("tcp_nodelay", NOT_SUPPORTED),
        ("enable_flash_policy", NOT_SUPPORTED),
        ("flash_policy", NOT_SUPPORTED),
        ("require_websocket_subprotocol", NOT_SUPPORTED),
        ("show_server_version", NOT_SUPPORTED),
        (
            "max_connections",
            "this WebSocket option is not supported; use the transport's own \"max_connections\" \
             (a Turnstile extension)",
        ),
    ],
};

/// `hsts_max_age` when `hsts` is on without it: one year (Crossbar's default).
const DEFAULT_HSTS_MAX_AGE: u64 = 31_536_000;

/// The largest WebSocket message or frame: 64 MiB (as in Crossbar).
const MAX_WEBSOCKET_SIZE: u64 = 64 << 20;
/// RawSocket message lengths are 2^(9+L), L in 0..=15: 512 bytes to 16 MiB.
const MIN_RAWSOCKET_SIZE: u64 = 512;
const MAX_RAWSOCKET_SIZE: u64 = 16 << 20;
/// The largest auto-ping interval or timeout, in milliseconds (about 49 days).
const MAX_PING_MS: u64 = u32::MAX as u64;

pub(super) fn transport(node: &Node, ctx: &mut Ctx) -> VResult<TransportConfig> {
    let (type_node, ty) = node.tagged("a transport")?;
    match ty {
        "websocket" => websocket_transport(node, ctx),
        "web" => web_transport(node, ctx),
        "rawsocket" => rawsocket_transport(node, ctx),
        _ if UNSUPPORTED.contains(&ty) => Err(type_node.unsupported(format!(
            "transport type \"{ty}\" is not supported yet (supported: {})",
            SUPPORTED.join(", ")
        ))),
        _ => Err(type_node.invalid(one_of(SUPPORTED))),
    }
}

fn websocket_transport(node: &Node, ctx: &mut Ctx) -> VResult<TransportConfig> {
    let obj = node.object(&WEBSOCKET)?;
    let id = obj.opt_str("id", "the transport id")?;
    let mut collect = Collect::default();
    let endpoint = collect.keep(
        obj.required("endpoint", "the endpoint to listen on")
            .and_then(|n| endpoint(&n, ctx)),
    );
    let path = collect.keep(obj.opt("url", "/".to_owned(), url_path));
    let service = collect.keep(websocket_service(&obj));
    let max_connections = collect.keep(transport_max_connections(&obj));
    collect.finish()?;
    let (endpoint, service) = (
        endpoint.expect("no error was kept"),
        service.expect("no error was kept"),
    );
    check_tls_auth(service.auth.as_ref(), obj.get("auth"), &endpoint)?;
    Ok(TransportConfig::WebSocket {
        id,
        endpoint,
        max_connections: max_connections.expect("no error was kept"),
        path: path.expect("no error was kept"),
        service,
    })
}

/// The path of a WebSocket transport's `url` (`ws://host[:port][/path]`, or `wss://` for a TLS
/// endpoint), default `/`. As in Crossbar, the scheme is not checked against the endpoint: the
/// URL is what clients are told, the endpoint's `tls` what is served.
fn url_path(node: &Node) -> VResult<String> {
    let url = node.str("a WebSocket URL")?;
    let expected = "a WebSocket URL such as \"ws://127.0.0.1:8080/ws\"";
    let Some(rest) = url
        .strip_prefix("ws://")
        .or_else(|| url.strip_prefix("wss://"))
    else {
        return Err(node.invalid(expected));
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    if authority.is_empty() || path.contains(['?', '#']) || path.contains(char::is_whitespace) {
        return Err(node.invalid(format!("{expected}, without query or fragment")));
    }
    Ok(path.to_owned())
}

/// The service keys shared by a `websocket` transport and a `websocket` web path.
fn websocket_service(obj: &Obj) -> VResult<WebSocketService> {
    let mut collect = Collect::default();
    let serializers = collect.keep(obj.opt("serializers", Serializer::ALL.to_vec(), serializers));
    let options = collect.keep(obj.opt("options", WebSocketOptions::default(), websocket_options));
    let auth = collect.keep(obj.opt("auth", None, |n| auth(n).map(Some)));
    collect.keep(debug(obj));
    collect.finish()?;
    Ok(WebSocketService {
        serializers: serializers.expect("no error was kept"),
        options: options.expect("no error was kept"),
        auth: auth.expect("no error was kept"),
    })
}

fn debug(obj: &Obj) -> VResult<()> {
    obj.only_value(
        "debug",
        &Value::Bool(false),
        "per-transport debug logging is not supported yet; use the log level",
    )
}

fn serializers(node: &Node) -> VResult<Vec<Serializer>> {
    let items = node.list("serializers: \"json\", \"msgpack\", \"cbor\"")?;
    if items.is_empty() {
        return Err(
            node.invalid("a non-empty list of serializers: \"json\", \"msgpack\", \"cbor\"")
        );
    }
    let mut out: Vec<Serializer> = Vec::new();
    for item in &items {
        let name = item.str("a serializer name")?;
        let Some(serializer) = Serializer::from_name(name) else {
            return Err(if ["ubjson", "flatbuffers"].contains(&name) {
                item.unsupported(format!("the \"{name}\" serializer is not supported yet"))
            } else {
                item.invalid(one_of(&["json", "msgpack", "cbor"]))
            });
        };
        if let Some(first) = out.iter().position(|s| *s == serializer) {
            return Err(item.conflict(format!(
                "each serializer may be listed once, \"{name}\" is also at index {first}"
            )));
        }
        out.push(serializer);
    }
    Ok(out)
}

fn websocket_options(node: &Node) -> VResult<WebSocketOptions> {
    let obj = node.object(&WEBSOCKET_OPTIONS)?;
    let size = |n: &Node| {
        n.int_in(
            1,
            MAX_WEBSOCKET_SIZE,
            &format!("an integer between 1 and {MAX_WEBSOCKET_SIZE} (bytes)"),
        )
        .map(|v| v as usize)
    };
    let ms = |n: &Node| {
        n.int_in(
            0,
            MAX_PING_MS,
            &format!("an integer between 0 and {MAX_PING_MS} (milliseconds; 0 = off)"),
        )
    };
    let max_message_size = obj.opt("max_message_size", DEFAULT_MAX_MESSAGE_SIZE, size)?;
    let max_frame_size = obj.opt("max_frame_size", max_message_size, size)?;
    let auto_ping_interval_ms = obj.opt("auto_ping_interval", 0, ms)?;
    let auto_ping_timeout_ms = obj.opt("auto_ping_timeout", 0, |n| {
        let timeout = ms(n)?;
        if timeout > 0 && auto_ping_interval_ms == 0 {
            return Err(n.invalid(
                "0 while \"auto_ping_interval\" is 0 or absent (a ping timeout needs pings)",
            ));
        }
        Ok(timeout)
    })?;

    obj.only_value(
        "enable_webstatus",
        &Value::Bool(false),
        "the WebSocket status page is not supported yet",
    )?;
    obj.only_value(
        "compression",
        &json!({}),
        "WebSocket compression (permessage-deflate) is not supported yet",
    )?;
    obj.only_value(
        "allowed_origins",
        &json!(["*"]),
        "checking the Origin header is not supported yet (every origin is allowed)",
    )?;
    obj.only_value(
        "allow_null_origin",
        &Value::Bool(true),
        "checking the Origin header is not supported yet (every origin is allowed)",
    )?;

    Ok(WebSocketOptions {
        max_message_size,
        max_frame_size,
        auto_ping_interval_ms,
        auto_ping_timeout_ms,
    })
}

fn web_transport(node: &Node, ctx: &mut Ctx) -> VResult<TransportConfig> {
    let obj = node.object(&WEB)?;
    let id = obj.opt_str("id", "the transport id")?;
    let mut collect = Collect::default();
    let endpoint = collect.keep(
        obj.required("endpoint", "the endpoint to listen on")
            .and_then(|n| endpoint(&n, ctx)),
    );
    let paths = collect.keep(web_paths(&obj, ctx, endpoint.as_ref()));
    let hsts_max_age = collect.keep(obj.opt("options", None, web_options));
    let max_connections = collect.keep(transport_max_connections(&obj));
    collect.finish()?;

    Ok(TransportConfig::Web {
        id,
        endpoint: endpoint.expect("no error was kept"),
        max_connections: max_connections.expect("no error was kept"),
        paths: paths.expect("no error was kept"),
        hsts_max_age: hsts_max_age.expect("no error was kept"),
    })
}

/// The `paths` of a web transport: every path service, each one's errors reported. A
/// WebSocket path's `tls` authentication is checked against `endpoint` (when it is valid).
fn web_paths(
    obj: &Obj,
    ctx: &Ctx,
    endpoint: Option<&Endpoint>,
) -> VResult<BTreeMap<String, WebPath>> {
    let paths_node = obj.required(
        "paths",
        "an object of path services, such as {\"ws\": {...}}",
    )?;
    let entries = paths_node.entries("path services, such as {\"ws\": {...}}")?;
    if entries.is_empty() {
        return Err(paths_node.invalid("at least one path service"));
    }
    let mut paths = BTreeMap::new();
    let mut collect = Collect::default();
    for (key, service) in entries {
        let valid_key = key == "/"
            || (!key.is_empty()
                && key
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-'));
        if !valid_key {
            collect.keep::<()>(Err(service.fail(Problem::Invalid {
                found: format!("the path {}", Value::String(key.to_owned())),
                expected:
                    "\"/\" or one path segment of letters, digits, \"_\" and \"-\" (such as \"ws\")"
                        .to_owned(),
            })));
            continue;
        }
        let path = web_path(key, &service, ctx).and_then(|path| {
            if let (WebPath::WebSocket(ws), Some(endpoint)) = (&path, endpoint) {
                check_tls_auth(ws.auth.as_ref(), service.get("auth"), endpoint)?;
            }
            Ok(path)
        });
        if let Some(path) = collect.keep(path) {
            paths.insert(key.to_owned(), path);
        }
    }
    collect.finish()?;
    Ok(paths)
}

/// A web transport's `options`: the HSTS max-age to send, if HSTS is on.
fn web_options(n: &Node) -> VResult<Option<u64>> {
    let o = n.object(&WEB_OPTIONS)?;
    let no = Value::Bool(false);
    o.only_value(
        "access_log",
        &no,
        "HTTP access logging is not supported yet",
    )?;
    o.only_value(
        "display_tracebacks",
        &no,
        "showing tracebacks is not supported",
    )?;
    let hsts = o.bool_or("hsts", false)?;
    let max_age = o.opt("hsts_max_age", None, |n| {
        let age = n.int_in(0, u64::from(u32::MAX), "a number of seconds (HSTS max-age)")?;
        if !hsts {
            // Crossbar ignores it then; said here instead of ignored.
            return Err(n.conflict("has no effect without \"hsts\": true"));
        }
        Ok(Some(age))
    })?;
    Ok(hsts.then_some(max_age.unwrap_or(DEFAULT_HSTS_MAX_AGE)))
}

fn web_path(key: &str, node: &Node, ctx: &Ctx) -> VResult<WebPath> {
    let (type_node, ty) = node.tagged("a path service")?;
    match ty {
        "websocket" if key == "/" => Err(type_node.invalid(
            "\"static\" at the root path \"/\" (mount WebSocket at a segment such as \"ws\", \
             or use a \"websocket\" transport)",
        )),
        "websocket" => Ok(WebPath::WebSocket(websocket_service(
            &node.object_noting(&WEB_WEBSOCKET, PATH_INAPPLICABLE)?,
        )?)),
        "static" => {
            let obj = node.object_noting(&WEB_STATIC, PATH_INAPPLICABLE)?;
            let dir = obj.required("directory", "the directory to serve")?;
            let directory = resolve(ctx.base_dir, dir.non_empty_str("a directory path")?);
            obj.opt("options", (), |n| {
                n.object(&STATIC_OPTIONS)?.only_value(
                    "enable_directory_listing",
                    &Value::Bool(false),
                    "directory listings are not supported yet",
                )
            })?;
            Ok(WebPath::Static { directory })
        }
        _ if UNSUPPORTED_PATH_TYPES.contains(&ty) => Err(type_node.unsupported(format!(
            "path service type \"{ty}\" is not supported yet (supported: static, websocket)"
        ))),
        _ if FABRIC_PATH_TYPES.contains(&ty) => Err(type_node.unsupported(format!(
            "path service type \"{ty}\" belongs to Crossbar.io Fabric, which is not supported"
        ))),
        _ => Err(type_node.invalid(one_of(&["static", "websocket"]))),
    }
}

fn rawsocket_transport(node: &Node, ctx: &mut Ctx) -> VResult<TransportConfig> {
    let obj = node.object(&RAWSOCKET)?;
    let id = obj.opt_str("id", "the transport id")?;
    let mut collect = Collect::default();
    let endpoint = collect.keep(
        obj.required("endpoint", "the endpoint to listen on")
            .and_then(|n| endpoint(&n, ctx)),
    );
    let serializers = collect.keep(obj.opt("serializers", Serializer::ALL.to_vec(), serializers));
    let max_message_size = collect.keep(rawsocket_max_message_size(&obj));
    let auth = collect.keep(obj.opt("auth", None, |n| auth(n).map(Some)));
    collect.keep(debug(&obj));
    let max_connections = collect.keep(transport_max_connections(&obj));
    collect.finish()?;
    let (endpoint, auth) = (
        endpoint.expect("no error was kept"),
        auth.expect("no error was kept"),
    );
    check_tls_auth(auth.as_ref(), obj.get("auth"), &endpoint)?;
    Ok(TransportConfig::RawSocket {
        id,
        endpoint,
        max_connections: max_connections.expect("no error was kept"),
        serializers: serializers.expect("no error was kept"),
        max_message_size: max_message_size.expect("no error was kept"),
        auth,
    })
}

/// `max_message_size` of a RawSocket transport, or its `options.max_message_size`.
fn rawsocket_max_message_size(obj: &Obj) -> VResult<usize> {
    let size = |n: &Node| {
        n.int_in(
            MIN_RAWSOCKET_SIZE,
            MAX_RAWSOCKET_SIZE,
            &format!(
                "an integer between {MIN_RAWSOCKET_SIZE} and {MAX_RAWSOCKET_SIZE} (bytes; RawSocket \
                 lengths are 2^(9+L) up to 2^24)"
            ),
        )
        .map(|v| v as usize)
    };
    // Crossbar has `max_message_size` at the transport level; `options.max_message_size` is
    // accepted too, but not both.
    let top = obj.get("max_message_size");
    let max_message_size = obj.opt("options", None, |n| {
        let options = n.object(&RAWSOCKET_OPTIONS)?;
        match (options.get("max_message_size"), &top) {
            (Some(inner), Some(outer)) => Err(inner.conflict(format!(
                "max_message_size is also given at {}; give it once",
                outer.path()
            ))),
            (Some(inner), None) => size(&inner).map(Some),
            (None, _) => Ok(None),
        }
    })?;
    Ok(match (max_message_size, top) {
        (Some(size), _) => size,
        (None, Some(outer)) => size(&outer)?,
        (None, None) => DEFAULT_MAX_MESSAGE_SIZE,
    })
}
