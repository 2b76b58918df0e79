//! Validation of a parsed document into the [`NodeConfig`] model: the top level, the controller
//! and the workers here; realms, transports, endpoints and transport `auth` sections in their own
//! modules. Each function takes a [`Node`] and returns the model value or the first problem found.
//! Within an object, keys are checked first (sorted), then values in schema order, so the first
//! error is deterministic.
//!
//! Independent parts are validated on past an error, so that a file's mistakes are reported
//! together: each worker, realm, role, permission, transport, path service and authentication
//! method, and the sections of a realm and of a transport ([`Collect`]). An error inside one of
//! them still stops that one.

mod auth;
mod endpoint;
mod ledger;
mod limits;
mod realm;
mod tls;
mod transport;

use std::path::Path;

use serde_json::Value;

use crate::cursor::{Keys, Node, Notes, VResult};
use crate::error::Invalid;
use crate::model::{NodeConfig, RouterWorker};

/// Gathers the errors of independent parts: [`Collect::keep`] takes a part's result and goes on,
/// [`Collect::finish`] fails with all errors found (in the order they were kept).
#[derive(Default)]
pub(super) struct Collect {
    errors: Vec<Invalid>,
}

impl Collect {
    /// The value of `result`, or `None` after keeping its error.
    pub(super) fn keep<T>(&mut self, result: VResult<T>) -> Option<T> {
        match result {
            Ok(value) => Some(value),
            Err(e) => {
                self.errors.push(e);
                None
            }
        }
    }

    /// `f` of each item, all of them: the values if every one succeeded, else all errors.
    pub(super) fn each<I, T>(
        &mut self,
        items: impl IntoIterator<Item = I>,
        mut f: impl FnMut(I) -> VResult<T>,
    ) -> Option<Vec<T>> {
        let mut out = Vec::new();
        let mut ok = true;
        for item in items {
            match self.keep(f(item)) {
                Some(v) => out.push(v),
                None => ok = false,
            }
        }
        ok.then_some(out)
    }

    /// `Ok(())` if no error was kept, else one error carrying them all.
    pub(super) fn finish(self) -> VResult<()> {
        match Invalid::all(self.errors) {
            None => Ok(()),
            Some(e) => Err(e),
        }
    }
}

/// `f` of each item: the values, or every item's error (not only the first).
pub(super) fn all_of<I, T>(
    items: impl IntoIterator<Item = I>,
    f: impl FnMut(I) -> VResult<T>,
) -> VResult<Vec<T>> {
    let mut collect = Collect::default();
    let out = collect.each(items, f);
    collect.finish()?;
    Ok(out.expect("no error was kept"))
}

/// State shared across the whole document: for relative paths and for cross-checks.
pub(super) struct Ctx<'a> {
    /// Relative paths in the configuration resolve against this directory.
    pub base_dir: &'a Path,
    /// Realm names seen so far in the current router worker, with the path of their `name`
    /// (unique per worker: as in Crossbar, each router worker has realms of its own, so two
    /// workers may have a realm of the same name, each reached through its own transports).
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
        ("fabric-center", "Crossbar.io Fabric is not supported"),
        (
            "keyring",
            "the node key ring (Crossbar.io Fabric) is not supported",
        ),
        (
            "blockchain",
            "the XBR blockchain (Crossbar.io Fabric) is not supported",
        ),
        (
            "enable_docker",
            "Docker control (Crossbar.io Fabric) is not supported",
        ),
        ("ipfs", "IPFS (Crossbar.io Fabric) is not supported"),
    ],
};

const CONTROLLER_OPTIONS: Keys = Keys {
    what: "controller options",
    allowed: &["title", "shutdown"],
    unsupported: &[],
};

/// Controller options Turnstile accepts without acting on them.
const CONTROLLER_OPTIONS_INAPPLICABLE: &[(&str, &str)] = &[(
    "enable_parallel_worker_start",
    "Turnstile starts its router workers in one process, all at once",
)];

/// Crossbar's node shutdown modes (`controller.options.shutdown`).
const SHUTDOWN_MODES: &[&str] = &[
    "shutdown_on_shutdown_requested",
    "shutdown_on_worker_exit",
    "shutdown_on_worker_exit_with_error",
    "shutdown_on_last_worker_exit",
];

const WORKER_TYPES_UNSUPPORTED: &[&str] = &[
    "container",
    "guest",
    "proxy",
    "websocket-testee",
    "marketmaker",
    "xbrmm",
    "hub",
    "hostmonitor",
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
    allowed: &["title", "disabled"],
    unsupported: &[],
};

/// Native worker options (Crossbar's `check_native_worker_options`) that mean nothing for a router
/// worker that runs inside Turnstile's one process; each is checked for Crossbar's type first.
/// `reactor` is not in Crossbar 26.10's list (it takes the reactor from `CROSSBAR_REACTOR`), but
/// is accepted too, as issue 10 asks: its meaning (a Twisted reactor) is plain.
const WORKER_OPTIONS_INAPPLICABLE: &[(&str, &str)] = &[
    (
        "pythonpath",
        "a router worker runs no Python (router components, which would use it, are not \
         supported yet)",
    ),
    (
        "python",
        "a router worker runs no Python: it is part of the Turnstile process",
    ),
    (
        "cpu_affinity",
        "a router worker is not a process of its own in Turnstile: its tasks run on the \
         runtime's threads, which may use every CPU (restrict the whole process with taskset)",
    ),
    (
        "env",
        "a router worker is not a process of its own in Turnstile: it shares the environment \
         of the turnstile process",
    ),
    (
        "reactor",
        "Turnstile has no Twisted reactor to choose (it runs on tokio)",
    ),
    (
        "expose_controller",
        "Turnstile has no node controller whose API could be exposed",
    ),
    (
        "expose_shared",
        "Turnstile has no node controller whose shared objects could be exposed",
    ),
    (
        "extra",
        "it is passed to worker code, and a router worker runs none in Turnstile",
    ),
];

/// Validates a whole document (`doc`, with environment variables read; `written`, as in the file,
/// for messages). `base_dir` resolves relative paths.
pub(crate) fn node_config(doc: &Value, written: &Value, base_dir: &Path) -> VResult<NodeConfig> {
    let notes = Notes::default();
    let root = Node::document(doc, written, &notes);
    let top = root.object(&TOP)?;
    top.opt("$schema", "", |n| {
        n.str("the URL of a JSON schema, for editors")
    })?;

    let version = top.required("version", "2 (the configuration format version)")?;
    if version.value().as_u64() != Some(2) {
        return Err(version.invalid("2 (the only configuration format version supported)"));
    }

    let mut collect = Collect::default();
    let (node_id, node_title) = collect
        .keep(top.opt("controller", (None, None), controller))
        .unwrap_or_default();

    // As in Crossbar, a node may have no workers (it then serves nothing).
    let items = match top.get("workers") {
        Some(workers) => workers.list("workers")?,
        None => Vec::new(),
    };
    let mut ctx = Ctx {
        base_dir,
        realms: Vec::new(),
        listeners: Vec::new(),
        node_limits: None,
        node_ledger: None,
    };
    let workers = collect.each(items.iter(), |w| worker(w, &mut ctx));
    collect.finish()?;

    let workers = workers
        .expect("no error was kept")
        .into_iter()
        .filter_map(|(worker, disabled)| (!disabled).then_some(worker))
        .collect();
    Ok(NodeConfig {
        node_id,
        node_title,
        workers,
        inapplicable: notes.into_inner(),
    })
}

/// `controller`: its `id` and its `options.title` (returned), and the other options.
fn controller(node: &Node) -> VResult<(Option<String>, Option<String>)> {
    let obj = node.object(&CONTROLLER)?;
    let id = obj.opt_str("id", "the node id")?;
    let title = obj.opt("options", None, |n| {
        let options = n.object_noting(&CONTROLLER_OPTIONS, CONTROLLER_OPTIONS_INAPPLICABLE)?;
        let title = options.opt_str("title", "the node title")?;
        options.opt("shutdown", (), |n| {
            let modes = match n.value() {
                Value::String(_) => vec![n.clone()],
                _ => n.list("node shutdown modes")?,
            };
            for mode in &modes {
                mode.choice(SHUTDOWN_MODES)?;
            }
            n.note_inapplicable(
                "Turnstile has no worker processes whose exit could end the node: it stops on \
                 SIGINT or SIGTERM",
            );
            Ok(())
        })?;
        options.opt("enable_parallel_worker_start", (), |n| n.bool().map(drop))?;
        Ok(title)
    })?;
    Ok((id, title))
}

/// A router worker, and whether it is disabled (`options.disabled`: validated, not started).
fn worker(node: &Node, ctx: &mut Ctx) -> VResult<(RouterWorker, bool)> {
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
    ctx.realms.clear();
    let mut collect = Collect::default();
    let id = collect.keep(obj.opt_str("id", "the worker id")).flatten();
    let mut disabled = false;
    let title = collect
        .keep(obj.opt("options", None, |n| worker_options(n, &mut disabled)))
        .flatten();

    // Before the realms, which inherit its per-session limits.
    let limits = collect
        .keep(obj.opt("limits", Default::default(), |n| {
            let limits = limits::worker_limits(n)?;
            if limits.has_node_wide_keys() {
                if let Some(first) = &ctx.node_limits {
                    return Err(n.conflict(format!(
                        "connection limits are node-wide (every worker runs in one process) and \
                         may be given in one router worker only; also given at {first}"
                    )));
                }
                ctx.node_limits = Some(n.path());
            }
            Ok(limits)
        }))
        .unwrap_or_default();
    let ledger = collect
        .keep(obj.opt("ledger", None, |n| {
            let ledger = ledger::ledger(n, ctx.base_dir)?;
            if let Some(first) = &ctx.node_ledger {
                return Err(n.conflict(format!(
                    "the usage ledger is node-wide (it records every realm of the node) and may \
                     be given in one router worker only; also given at {first}"
                )));
            }
            ctx.node_ledger = Some(n.path());
            Ok(Some(ledger))
        }))
        .flatten();
    let realms = collect.keep(obj.opt("realms", Vec::new(), |n| {
        all_of(n.list("realms")?.iter(), |r| {
            realm::realm(r, ctx, limits.session)
        })
    }));
    let transports = collect.keep(obj.opt("transports", Vec::new(), |n| {
        all_of(n.list("transports")?.iter(), |t| {
            transport::transport(t, ctx)
        })
    }));
    if let Some(components) = obj.get("components") {
        collect.keep(components.list("components").and_then(|items| {
            all_of(items.iter(), |c| {
                Err::<(), _>(c.unsupported("router components are not supported yet"))
            })
        }));
    }
    collect.finish()?;
    Ok((
        RouterWorker {
            id,
            title,
            realms: realms.expect("no error was kept"),
            transports: transports.expect("no error was kept"),
            limits,
            ledger,
        },
        disabled,
    ))
}

/// A router worker's `options`: its `title` (returned); the native worker options Crossbar
/// accepts are checked for Crossbar's types and noted as inapplicable.
fn worker_options(node: &Node, disabled_out: &mut bool) -> VResult<Option<String>> {
    let obj = node.object_noting(&WORKER_OPTIONS, WORKER_OPTIONS_INAPPLICABLE)?;
    let title = obj.opt_str("title", "a title")?;
    // `disabled` (a boolean, or a string read from the environment: set and not empty means
    // true, as in Crossbar).
    obj.opt("disabled", (), |n| {
        let disabled = match n.value() {
            Value::Bool(b) => *b,
            Value::String(s) => !s.is_empty(),
            _ => return Err(n.invalid("true or false (or a string from the environment)")),
        };
        if disabled {
            n.note_inapplicable(
                "the worker is disabled: it is validated, and not started (its realms and \
                 transports are left out)",
            );
        }
        *disabled_out = disabled;
        Ok(())
    })?;
    let strings = |n: &Node, what: &str| -> VResult<()> {
        for item in n.list(what)? {
            item.str(what)?;
        }
        Ok(())
    };
    obj.opt("pythonpath", (), |n| strings(n, "directories"))?;
    obj.opt("python", (), |n| n.str("a Python executable").map(drop))?;
    obj.opt("cpu_affinity", (), |n| {
        for item in n.list("CPU numbers")? {
            item.int_in(0, 65535, "a CPU number")?;
        }
        Ok(())
    })?;
    obj.opt("env", (), |n| {
        let env = n.object(&WORKER_ENV)?;
        env.opt("inherit", (), |n| match n.value() {
            Value::Bool(_) => Ok(()),
            _ => strings(n, "names of environment variables to inherit"),
        })?;
        env.opt("vars", (), |n| {
            for (_, value) in n.entries("environment variables by name")? {
                value.str("the value of an environment variable")?;
            }
            Ok(())
        })
    })?;
    obj.opt("expose_controller", (), |n| n.bool().map(drop))?;
    obj.opt("expose_shared", (), |n| n.bool().map(drop))?;
    Ok(title)
}

const WORKER_ENV: Keys = Keys {
    what: "a worker process environment",
    allowed: &["inherit", "vars"],
    unsupported: &[],
};
