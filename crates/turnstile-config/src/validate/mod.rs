//! Validation of a parsed document into the [`NodeConfig`] model: the top level, the controller
//! and the workers here; realms, transports, endpoints and transport `auth` sections in their own
//! modules. Each function takes a [`Node`] and returns the model value or the first problem found.
//! Within an object, keys are checked first (sorted), then values in schema order, so the first
//! error is deterministic.

mod auth;
mod endpoint;
mod ledger;
mod limits;
mod realm;
mod transport;

use std::path::Path;

use serde_json::Value;

use crate::cursor::{Keys, Node, VResult};
use crate::model::{NodeConfig, RouterWorker};

/// State shared across the whole document: for relative paths and for cross-checks.
pub(super) struct Ctx<'a> {
    /// Relative paths in the configuration resolve against this directory.
    pub base_dir: &'a Path,
    /// Realm names seen so far, with the path of their `name` (unique per node).
    pub realms: Vec<(String, String)>,
    /// Listening endpoints seen so far, with the path of their `endpoint`.
    pub listeners: Vec<(endpoint::Listener, String)>,
    /// The path of the first worker `limits` with node-wide keys (they may be given once).
    pub node_limits: Option<String>,
    /// The path of the first worker `ledger` (the ledger is node-wide: one per node).
    pub node_ledger: Option<String>,
}

const TOP: Keys = Keys {
    what: "a node configuration",
    allowed: &["$schema", "version", "controller", "workers"],
    unsupported: &[],
};

const CONTROLLER: Keys = Keys {
    what: "the controller section",
    allowed: &["id", "options"],
    unsupported: &[
        ("manhole", "the controller manhole is not supported yet"),
        (
            "connections",
            "controller connections are not supported yet",
        ),
        ("fabric", "Crossbar.io Fabric is not supported"),
    ],
};

const CONTROLLER_OPTIONS: Keys = Keys {
    what: "controller options",
    allowed: &[],
    unsupported: &[
        ("title", "controller options are not supported yet"),
        ("shutdown", "controller options are not supported yet"),
        (
            "enable_parallel_worker_start",
            "controller options are not supported yet",
        ),
    ],
};

const WORKER_TYPES_UNSUPPORTED: &[&str] = &[
    "container",
    "guest",
    "proxy",
    "websocket-testee",
    "marketmaker",
    "xbrmm",
    "hub",
];

const WORKER: Keys = Keys {
    what: "a router worker",
    allowed: &[
        "type",
        "id",
        "options",
        "realms",
        "transports",
        "components",
        "limits",
        "ledger",
    ],
    unsupported: &[
        ("manhole", "worker manholes are not supported yet"),
        ("connections", "database connections are not supported yet"),
    ],
};

const WORKER_OPTIONS: Keys = Keys {
    what: "router worker options",
    allowed: &["title"],
    unsupported: &[
        ("pythonpath", "this worker option is not supported yet"),
        ("cpu_affinity", "this worker option is not supported yet"),
        ("env", "this worker option is not supported yet"),
        ("reactor", "this worker option is not supported yet"),
        ("python", "this worker option is not supported yet"),
        (
            "expose_controller",
            "this worker option is not supported yet",
        ),
        ("expose_shared", "this worker option is not supported yet"),
    ],
};

/// Validates a whole document. `base_dir` resolves relative paths.
pub(crate) fn node_config(doc: &Value, base_dir: &Path) -> VResult<NodeConfig> {
    let root = Node::root(doc);
    let top = root.object(&TOP)?;
    top.opt("$schema", "", |n| {
        n.str("the URL of a JSON schema, for editors")
    })?;

    let version = top.required("version", "2 (the configuration format version)")?;
    if version.value().as_u64() != Some(2) {
        return Err(version.invalid("2 (the only configuration format version supported)"));
    }

    let node_id = top.opt("controller", None, controller)?;

    let workers = top.required("workers", "a list of workers (at least one router worker)")?;
    let items = workers.list("workers")?;
    if items.is_empty() {
        return Err(workers.invalid("a list with at least one router worker"));
    }
    let mut ctx = Ctx {
        base_dir,
        realms: Vec::new(),
        listeners: Vec::new(),
        node_limits: None,
        node_ledger: None,
    };
    let workers = items
        .iter()
        .map(|w| worker(w, &mut ctx))
        .collect::<VResult<Vec<_>>>()?;

    Ok(NodeConfig { node_id, workers })
}

/// `controller`: its `id` (returned) and an empty `options`.
fn controller(node: &Node) -> VResult<Option<String>> {
    let obj = node.object(&CONTROLLER)?;
    let id = obj.opt_str("id", "the node id")?;
    obj.opt("options", (), |n| n.object(&CONTROLLER_OPTIONS).map(drop))?;
    Ok(id)
}

fn worker(node: &Node, ctx: &mut Ctx) -> VResult<RouterWorker> {
    let (type_node, ty) = node.tagged("a worker")?;
    if ty != "router" {
        return Err(if WORKER_TYPES_UNSUPPORTED.contains(&ty) {
            type_node.unsupported(format!(
                "worker type \"{ty}\" is not supported yet (only \"router\")"
            ))
        } else {
            type_node.invalid("\"router\"")
        });
    }
    let obj = node.object(&WORKER)?;
    let id = obj.opt_str("id", "the worker id")?;
    let title = obj.opt("options", None, |n| {
        n.object(&WORKER_OPTIONS)?.opt_str("title", "a title")
    })?;

    // Before the realms, which inherit its per-session limits.
    let limits = obj.opt("limits", Default::default(), |n| {
        let limits = limits::worker_limits(n)?;
        if limits.has_node_wide_keys() {
            if let Some(first) = &ctx.node_limits {
                return Err(n.conflict(format!(
                    "connection limits are node-wide (every worker runs in one process) and may \
                     be given in one router worker only; also given at {first}"
                )));
            }
            ctx.node_limits = Some(n.path());
        }
        Ok(limits)
    })?;
    let ledger = obj.opt("ledger", None, |n| {
        let ledger = ledger::ledger(n, ctx.base_dir)?;
        if let Some(first) = &ctx.node_ledger {
            return Err(n.conflict(format!(
                "the usage ledger is node-wide (it records every realm of the node) and may be \
                 given in one router worker only; also given at {first}"
            )));
        }
        ctx.node_ledger = Some(n.path());
        Ok(Some(ledger))
    })?;
    let realms = obj.opt("realms", Vec::new(), |n| {
        n.list("realms")?
            .iter()
            .map(|r| realm::realm(r, ctx, limits.session))
            .collect()
    })?;
    let transports = obj.opt("transports", Vec::new(), |n| {
        n.list("transports")?
            .iter()
            .map(|t| transport::transport(t, ctx))
            .collect()
    })?;
    if let Some(components) = obj.get("components") {
        if let Some(first) = components.list("components")?.first() {
            return Err(first.unsupported("router components are not supported yet"));
        }
    }
    Ok(RouterWorker {
        id,
        title,
        realms,
        transports,
        limits,
        ledger,
    })
}
