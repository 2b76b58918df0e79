//! Listening endpoints (`tcp`, `unix`) and the check that no two transports listen on the
//! same TCP port and address (or the same unix socket path).

use std::net::IpAddr;
use std::path::PathBuf;

use serde_json::Value;

use super::tls::tls;
use super::Ctx;
use crate::cursor::{one_of, Keys, Node, VResult};
use crate::load::resolve;
use crate::model::Endpoint;

const TCP: Keys = Keys {
    what: "a TCP endpoint",
    allowed: &[
        "type",
        "port",
        "interface",
        "version",
        "backlog",
        "shared",
        "tls",
    ],
    unsupported: &[],
};

const UNIX: Keys = Keys {
    what: "a unix socket endpoint",
    allowed: &["type", "path"],
    unsupported: &[
        (
            "backlog",
            "\"backlog\" on unix socket endpoints is not supported yet",
        ),
        (
            "tls",
            "TLS is offered on TCP endpoints only (Crossbar does not allow it on unix sockets \
             either)",
        ),
    ],
};

/// What an endpoint occupies, to find two transports on the same one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Listener {
    /// `ip` is `None` for all interfaces of `version`.
    Tcp {
        port: u16,
        ip: Option<IpAddr>,
        version: u8,
    },
    Unix(PathBuf),
}

impl Listener {
    /// Whether both cannot be bound at once. A wildcard IPv6 listener is taken to be dual-stack
    /// (Linux's default), so it overlaps IPv4 listeners on its port too.
    fn overlaps(&self, other: &Listener) -> bool {
        match (self, other) {
            (Listener::Unix(a), Listener::Unix(b)) => a == b,
            (
                Listener::Tcp {
                    port: pa,
                    ip: ia,
                    version: va,
                },
                Listener::Tcp {
                    port: pb,
                    ip: ib,
                    version: vb,
                },
            ) => {
                pa == pb
                    && match (ia, ib) {
                        (Some(a), Some(b)) => a == b,
                        (None, None) => true,
                        (None, Some(ip)) => *va == 6 || ip.is_ipv4(),
                        (Some(ip), None) => *vb == 6 || ip.is_ipv4(),
                    }
            }
            _ => false,
        }
    }

    fn describe(&self) -> String {
        match self {
            Listener::Tcp {
                port, ip: Some(ip), ..
            } => format!("TCP port {port} on {ip}"),
            Listener::Tcp {
                port,
                ip: None,
                version,
            } => {
                format!("TCP port {port} on all IPv{version} interfaces")
            }
            Listener::Unix(path) => format!("unix socket {}", path.display()),
        }
    }
}

/// `endpoint` of a transport (a required key of `transport`), registered in `ctx` so that a
/// later transport on the same port is refused.
pub(super) fn endpoint(node: &Node, ctx: &mut Ctx) -> VResult<Endpoint> {
    let (type_node, ty) = node.tagged("an endpoint")?;
    let (endpoint, listener, key_node) = match ty {
        "tcp" => tcp(node, ctx)?,
        "unix" => {
            let obj = node.object(&UNIX)?;
            let path_node = obj.required("path", "the path of the unix socket")?;
            let path = resolve(ctx.base_dir, path_node.non_empty_str("a file path")?);
            (
                Endpoint::Unix { path: path.clone() },
                Listener::Unix(path),
                path_node,
            )
        }
        "twisted" | "onion" => {
            return Err(type_node.unsupported(format!(
                "endpoint type \"{ty}\" is not supported yet (use \"tcp\" or \"unix\")"
            )))
        }
        _ => return Err(type_node.invalid(one_of(&["tcp", "unix"]))),
    };
    if let Some((other, at)) = ctx.listeners.iter().find(|(l, _)| l.overlaps(&listener)) {
        return Err(key_node.conflict(format!(
            "{} is already used by the endpoint at {at} ({})",
            listener.describe(),
            other.describe()
        )));
    }
    ctx.listeners.push((listener, node.path()));
    Ok(endpoint)
}

/// A TCP endpoint, what it occupies, and its `port` node (where a conflict is reported).
fn tcp<'v>(node: &Node<'v>, ctx: &Ctx) -> VResult<(Endpoint, Listener, Node<'v>)> {
    let obj = node.object(&TCP)?;

    let port_node = obj.required("port", "the TCP port to listen on, 1 to 65535")?;
    if port_node
        .value()
        .as_str()
        .is_some_and(|s| s.starts_with('$'))
    {
        return Err(port_node
            .unsupported("reading the port from an environment variable is not supported yet"));
    }
    let port = port_node.int_in(1, 65535, "an integer between 1 and 65535 (a TCP port)")? as u16;

    let ip = obj.opt("interface", None, |n| {
        let text = n.str("an IP address")?;
        text.parse::<IpAddr>().map(Some).map_err(|_| {
            n.invalid("an IP address such as \"127.0.0.1\" or \"::1\" (not a host name)")
        })
    })?;
    let ip_version = ip.map(|ip: IpAddr| if ip.is_ipv4() { 4 } else { 6 });

    let version = obj.opt("version", ip_version.unwrap_or(4), |n| {
        let version = match n.value().as_u64() {
            Some(v @ (4 | 6)) => v as u8,
            _ => return Err(n.invalid("4 or 6 (the IP version)")),
        };
        match ip_version {
            Some(iv) if iv != version => Err(n.invalid(format!(
                "{iv} (the version of the address in \"interface\")"
            ))),
            _ => Ok(version),
        }
    })?;

    let backlog = obj.opt("backlog", 1024, |n| {
        n.int_in(1, 65535, "an integer between 1 and 65535")
    })? as u32;
    obj.only_value(
        "shared",
        &Value::Bool(false),
        "sharing a port between workers (\"shared\")",
    )?;

    let tls = obj.opt("tls", None, |n| tls(n, ctx.base_dir).map(Some))?;

    // An unspecified address (0.0.0.0, ::) binds all interfaces, like no address.
    let bound = ip.filter(|ip| !ip.is_unspecified());
    let endpoint = Endpoint::Tcp {
        port,
        interface: ip.map(|ip| ip.to_string()),
        version,
        backlog,
        tls,
    };
    Ok((
        endpoint,
        Listener::Tcp {
            port,
            ip: bound,
            version,
        },
        port_node,
    ))
}
