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
    unsupported: &[
        (
            "portrange",
            "listening on a range of ports is not supported yet (give \"port\")",
        ),
        (
            "user_timeout",
            "TCP_USER_TIMEOUT (\"user_timeout\") is not supported yet",
        ),
    ],
};

const UNIX: Keys = Keys {
    what: "a unix socket endpoint",
    allowed: &["type", "path", "backlog"],
    unsupported: &[(
        "tls",
        "TLS is offered on TCP endpoints only (Crossbar does not allow it on unix sockets \
         either)",
    )],
};

/// The listen backlog of an endpoint without `backlog`.
const DEFAULT_BACKLOG: u64 = 1024;

/// What an endpoint occupies, to find two transports on the same one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Listener {
    /// `ip` is `None` for all interfaces of `version`.
    Tcp {
        port: u16,
        ip: Option<IpAddr>,
        version: u8,
    },
    /// An interface given by host name, resolved only when the router starts.
    TcpHost {
        port: u16,
        host: String,
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
            // A host name clashes with the same name, and with all interfaces of its family (or
            // a dual-stack IPv6 wildcard); against an address it is found when binding, which
            // the router does for every transport before any listens.
            (
                Listener::TcpHost {
                    port: pa, host: ha, ..
                },
                Listener::TcpHost {
                    port: pb, host: hb, ..
                },
            ) => pa == pb && ha.eq_ignore_ascii_case(hb),
            (
                Listener::TcpHost { port, version, .. },
                Listener::Tcp {
                    port: wildcard_port,
                    ip: None,
                    version: wildcard_version,
                },
            )
            | (
                Listener::Tcp {
                    port: wildcard_port,
                    ip: None,
                    version: wildcard_version,
                },
                Listener::TcpHost { port, version, .. },
            ) => port == wildcard_port && (*wildcard_version == 6 || version == wildcard_version),
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
            Listener::TcpHost { port, host, .. } => format!("TCP port {port} on {host}"),
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
            let backlog = obj.opt("backlog", DEFAULT_BACKLOG, backlog)? as u32;
            (
                Endpoint::Unix {
                    path: path.clone(),
                    backlog,
                },
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
    let port = port_node.int_in(1, 65535, "an integer between 1 and 65535 (a TCP port)")? as u16;

    // An IP address, or (as Crossbar, whose listener resolves it) a host name.
    let interface = obj.opt("interface", None, |n| {
        let text = n.str("an IP address or a host name")?;
        if let Ok(ip) = text.parse::<IpAddr>() {
            return Ok(Some(Interface::Ip(ip)));
        }
        if is_host_name(text) {
            return Ok(Some(Interface::Host(text.to_owned())));
        }
        Err(n.invalid(
            "an IP address such as \"127.0.0.1\" or \"::1\", or a host name such as \"localhost\"",
        ))
    })?;
    let ip = match &interface {
        Some(Interface::Ip(ip)) => Some(*ip),
        _ => None,
    };
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

    let backlog = obj.opt("backlog", DEFAULT_BACKLOG, backlog)? as u32;
    obj.only_value(
        "shared",
        &Value::Bool(false),
        "sharing a port between workers (\"shared\")",
    )?;

    let tls = obj.opt("tls", None, |n| tls(n, ctx.base_dir).map(Some))?;

    // An unspecified address (0.0.0.0, ::) binds all interfaces, like no address.
    let bound = ip.filter(|ip| !ip.is_unspecified());
    let listener = match &interface {
        Some(Interface::Host(host)) => Listener::TcpHost {
            port,
            host: host.clone(),
            version,
        },
        _ => Listener::Tcp {
            port,
            ip: bound,
            version,
        },
    };
    let endpoint = Endpoint::Tcp {
        port,
        interface: interface.map(|i| match i {
            Interface::Ip(ip) => ip.to_string(),
            Interface::Host(host) => host,
        }),
        version,
        backlog,
        tls,
    };
    Ok((endpoint, listener, port_node))
}

/// The `interface` of a TCP endpoint.
enum Interface {
    Ip(IpAddr),
    Host(String),
}

/// A DNS host name (RFC 1123): dot-separated labels of 1 to 63 letters, digits and `-`, not
/// starting or ending with `-`, 253 characters at most, and not all digits in the last label (so
/// that a mistyped address such as `127.0.0.300` is not taken for a name).
fn is_host_name(text: &str) -> bool {
    let text = text.strip_suffix('.').unwrap_or(text);
    if text.is_empty() || text.len() > 253 {
        return false;
    }
    let labels: Vec<&str> = text.split('.').collect();
    let valid_label = |l: &&str| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    };
    labels.iter().all(valid_label)
        && !labels
            .last()
            .is_some_and(|l| l.bytes().all(|b| b.is_ascii_digit()))
}

/// `backlog`: the length of the listen queue, 1 to 65535 (as Crossbar's
/// `check_endpoint_backlog`).
fn backlog(node: &Node) -> VResult<u64> {
    node.int_in(1, 65535, "an integer between 1 and 65535")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_names() {
        for ok in ["localhost", "router.example.com", "a-b.c1", "node7.", "x"] {
            assert!(is_host_name(ok), "{ok}");
        }
        for bad in [
            "",
            "local host",
            "-a.b",
            "a-.b",
            "a..b",
            "127.0.0.300",
            "a_b",
            "[::1]",
        ] {
            assert!(!is_host_name(bad), "{bad}");
        }
    }
}
