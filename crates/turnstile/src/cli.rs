//! The command line: `turnstile start | check | reload | init | usage | version`, Crossbar-style
//! (`--cbdir`, `--config`, `--loglevel`). Configuration errors exit with code 2, other failures
//! with 1.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use tokio::signal::unix::{signal, SignalKind};
use tracing::{error, info, warn};
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::EnvFilter;
use turnstile::ledger::report;
use turnstile::limits::ConnectionLimits;
use turnstile::server::{ReloadHandle, Server};
use turnstile_config::{ConfigError, NodeConfig};

use crate::pidfile::{self, CreateError, PidFile};
use wamp_proto::Serializer;

/// Exit code of a configuration error.
const EXIT_CONFIG: u8 = 2;
/// Exit code of any other failure.
const EXIT_FAILURE: u8 = 1;

/// The default `--cbdir` (Crossbar's).
const DEFAULT_CBDIR: &str = ".crossbar";

#[derive(Debug, Parser)]
#[command(
    name = "turnstile",
    version,
    about = "A metering WAMP v2 router, a Crossbar.io replacement"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Start the router (with neither --config nor --cbdir: the embedded default configuration).
    Start {
        #[command(flatten)]
        source: ConfigSource,
        /// Log level of Turnstile's own lines: none, critical, error, warn, info, debug or trace.
        /// Below debug, dependencies log warnings and errors only. RUST_LOG, when set, replaces
        /// this filter.
        #[arg(long, value_name = "LEVEL", default_value = "info", value_parser = [
            "none", "critical", "error", "warn", "info", "debug", "trace",
        ])]
        loglevel: String,
        #[command(flatten)]
        limits: LimitArgs,
    },
    /// Validate a configuration without starting (default: the one in .crossbar).
    Check {
        #[command(flatten)]
        source: ConfigSource,
    },
    /// Make a running router re-read its configuration (validated here first). The router is
    /// found by its PID file: DIR/node.pid for --cbdir DIR (default .crossbar), FILE.pid for
    /// --config FILE, as `start` was given.
    Reload {
        #[command(flatten)]
        source: ConfigSource,
    },
    /// Print usage from the node's ledger: per session, authid, authrole, realm or period.
    Usage(UsageArgs),
    /// Write the default configuration, with the SQLite usage ledger on, to DIR/config.json.
    Init {
        /// The node directory to create the configuration in.
        #[arg(long, value_name = "DIR", default_value = DEFAULT_CBDIR)]
        cbdir: PathBuf,
    },
    /// Print the version.
    Version,
}

#[derive(Debug, Args)]
#[group(multiple = false)]
struct ConfigSource {
    /// The configuration file (.json, .yaml or .yml).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// A node directory holding config.json or config.yaml.
    #[arg(long, value_name = "DIR")]
    cbdir: Option<PathBuf>,
}

/// Where `turnstile usage` reads: the ledger of a configuration (default: the one in
/// .crossbar), or a ledger named directly.
#[derive(Debug, Args)]
#[group(multiple = false)]
struct UsageSource {
    /// The configuration file whose ledger to read.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// A node directory whose configuration's ledger to read.
    #[arg(long, value_name = "DIR")]
    cbdir: Option<PathBuf>,
    /// The ledger itself: sqlite:PATH or a postgresql:// URL.
    #[arg(long, value_name = "LEDGER")]
    ledger: Option<String>,
}

/// `turnstile usage`.
#[derive(Debug, Args)]
struct UsageArgs {
    #[command(flatten)]
    source: UsageSource,
    /// Only this realm.
    #[arg(long, value_name = "REALM")]
    realm: Option<String>,
    /// Only sessions of this authid.
    #[arg(long, value_name = "AUTHID")]
    authid: Option<String>,
    /// Only sessions of this authrole.
    #[arg(long, value_name = "AUTHROLE")]
    authrole: Option<String>,
    /// Only cycles that started at or after this time (RFC 3339, or a date: its start, UTC).
    #[arg(long, value_name = "TIME", value_parser = report::parse_time)]
    since: Option<u64>,
    /// Only cycles that started before this time (RFC 3339, or a date: its start, UTC).
    #[arg(long, value_name = "TIME", value_parser = report::parse_time)]
    until: Option<u64>,
    /// One line per session, authid, authrole, realm, or UTC hour, day or month.
    #[arg(long, value_name = "GROUP", value_enum, default_value = "session")]
    group_by: report::GroupBy,
    /// table, csv, or json (one array).
    #[arg(long, value_name = "FORMAT", value_enum, default_value = "table")]
    format: report::Format,
}

/// Connection limits of `start` (see `turnstile::limits::ConnectionLimits`). Each replaces the
/// same key of the configuration's router worker `limits`, which replaces the default.
#[derive(Debug, Args)]
struct LimitArgs {
    /// Connections open at once, node-wide; at the limit, new ones wait in the listen backlog
    /// (overrides the configuration's limits.max_connections; default: the open-file limit
    /// less an eighth, at least 64 less).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    max_connections: Option<u32>,
    /// Connections open at once from one IP address; more are refused (HTTP 503, RawSocket
    /// handshake error 4) (overrides the configuration's limits.max_connections_per_ip;
    /// default: no cap).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    max_connections_per_ip: Option<u32>,
}

impl LimitArgs {
    /// `limits` (the defaults with the configuration's over them) with the values given on the
    /// command line over them.
    fn apply(&self, mut limits: ConnectionLimits) -> ConnectionLimits {
        if let Some(n) = self.max_connections {
            limits.max_connections = n as usize;
        }
        if let Some(n) = self.max_connections_per_ip {
            limits.max_connections_per_ip = Some(n as usize);
        }
        limits
    }
}

impl ConfigSource {
    /// Where the router's PID file is: `node.pid` in `--cbdir` (Crossbar's), `FILE.pid` for
    /// `--config FILE`; `None` for the embedded default configuration.
    fn pid_file(&self) -> Option<PathBuf> {
        match (&self.config, &self.cbdir) {
            (Some(file), _) => Some(pidfile::next_to(file)),
            (None, Some(dir)) => Some(dir.join(pidfile::PID_FILE)),
            (None, None) => None,
        }
    }

    /// The configuration file named by the options, if any.
    fn file(&self) -> Result<Option<PathBuf>, ConfigError> {
        match (&self.config, &self.cbdir) {
            (Some(file), _) => Ok(Some(file.clone())),
            (None, Some(dir)) => turnstile_config::find_in_cbdir(dir).map(Some),
            (None, None) => Ok(None),
        }
    }
}

pub(crate) fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Start {
            source,
            loglevel,
            limits,
        } => start(&source, &loglevel, &limits),
        Command::Check { source } => check(&source),
        Command::Reload { source } => reload(&source),
        Command::Init { cbdir } => init(&cbdir),
        Command::Usage(args) => usage(&args),
        Command::Version => {
            let serializers: Vec<&str> = Serializer::ALL.iter().map(|s| s.name()).collect();
            println!("turnstile {}", env!("CARGO_PKG_VERSION"));
            println!("WAMP v2 router; serializers: {}", serializers.join(", "));
            println!("transports: websocket (wamp.2.json, wamp.2.msgpack, wamp.2.cbor), rawsocket (tcp, unix)");
            ExitCode::SUCCESS
        }
    }
}

fn start(source: &ConfigSource, loglevel: &str, limits: &LimitArgs) -> ExitCode {
    init_logging(loglevel);
    let file = match source.file() {
        Ok(file) => file,
        Err(e) => return config_error(&e),
    };
    let config = match &file {
        Some(file) => match turnstile_config::load_file(file) {
            Ok(config) => {
                info!("configuration loaded from {}", file.display());
                config
            }
            Err(e) => return config_error(&e),
        },
        None => {
            info!(
                "no --config or --cbdir given: using the embedded default configuration (realm \
                 realm1, ws://127.0.0.1:8080/ws, rawsocket 127.0.0.1:8081); `turnstile init` \
                 writes it to {DEFAULT_CBDIR}/config.json"
            );
            turnstile_config::default_config()
        }
    };
    // Where `turnstile reload` finds the router; the embedded default cannot change, so it has
    // none.
    let pid_file = match (source.pid_file(), &file) {
        (Some(pid_file), Some(file)) => match PidFile::create(&pid_file, file) {
            Ok(p) => {
                info!(
                    "PID {} written to {}",
                    std::process::id(),
                    p.path().display()
                );
                Some(p)
            }
            Err(e @ CreateError::AlreadyRunning { .. }) => {
                eprintln!("turnstile: {e}");
                return ExitCode::from(EXIT_FAILURE);
            }
            Err(e) => {
                warn!("{e}: `turnstile reload` cannot find this router (SIGHUP still reloads)");
                None
            }
        },
        _ => None,
    };
    let result = run(config, file, limits);
    drop(pid_file);
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("turnstile: {e:#}");
            ExitCode::from(EXIT_FAILURE)
        }
    }
}

/// Runs the router on `config`, loaded from `file` (`None`: the embedded default), until
/// SIGINT or SIGTERM; SIGHUP reloads the configuration from `file`.
fn run(config: NodeConfig, file: Option<PathBuf>, limits: &LimitArgs) -> anyhow::Result<()> {
    raise_open_file_limit();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async {
        // Registered before anything listens, so an early signal still stops gracefully.
        let mut interrupt = signal(SignalKind::interrupt()).context("cannot handle SIGINT")?;
        let mut terminate = signal(SignalKind::terminate()).context("cannot handle SIGTERM")?;
        let shutdown = async move {
            tokio::select! {
                _ = interrupt.recv() => info!("SIGINT received: stopping"),
                _ = terminate.recv() => info!("SIGTERM received: stopping"),
            }
            // A second signal while stopping ends the process at once.
            tokio::spawn(async move {
                tokio::select! {
                    _ = interrupt.recv() => {}
                    _ = terminate.recv() => {}
                }
                warn!("second signal received: exiting without waiting");
                std::process::exit(130);
            });
        };
        let mut hangup = signal(SignalKind::hangup()).context("cannot handle SIGHUP")?;
        let server = Server::bind(config).await?;
        let reloads = server.reload_handle();
        tokio::spawn(async move {
            while hangup.recv().await.is_some() {
                info!("SIGHUP received: reloading the configuration");
                reload_from(file.as_deref(), &reloads).await;
            }
        });
        let limits = limits.apply(server.connection_limits().clone());
        server.with_connection_limits(limits).run(shutdown).await
    })
}

/// Re-reads the configuration from `file` and hands it to the running server; an invalid one
/// is refused (logged with the same report `turnstile check` prints) and the running one stays.
async fn reload_from(file: Option<&Path>, server: &ReloadHandle) {
    let Some(file) = file else {
        warn!(
            "configuration reload: the router runs on the embedded default configuration, which \
             cannot change; nothing to reload (start it with --cbdir or --config to reload)"
        );
        return;
    };
    match turnstile_config::load_file(file) {
        Ok(config) => {
            info!("configuration reload: {} is valid", file.display());
            if server.reload(config).await.is_none() {
                warn!("configuration reload: the router is stopping; not applied");
            }
        }
        Err(e) => error!("configuration reload refused, the running configuration stays: {e}"),
    }
}

/// Raises the soft open-file limit to the hard one: every connection takes a file descriptor,
/// and the usual soft default (1024) is far below what a router serves. Done here rather than in
/// the server so that tests and embedders keep the limits they chose. The server's default
/// connection limit is derived from the result.
fn raise_open_file_limit() {
    match turnstile::transport::admission::raise_nofile_limit() {
        Ok((before, after)) if before != after => {
            info!("open-file limit raised from {before} to {after} (the hard limit)")
        }
        Ok((before, _)) => info!("open-file limit: {before} (the hard limit)"),
        Err(e) => warn!("cannot raise the open-file limit to the hard limit: {e}"),
    }
}

fn check(source: &ConfigSource) -> ExitCode {
    let file = match source.file() {
        Ok(Some(file)) => file,
        Ok(None) => match turnstile_config::find_in_cbdir(Path::new(DEFAULT_CBDIR)) {
            Ok(file) => file,
            Err(e) => return config_error(&e),
        },
        Err(e) => return config_error(&e),
    };
    match turnstile_config::load_file(&file) {
        Ok(config) => {
            if let Err(e) = turnstile::server::check_tls(&config) {
                eprintln!("{e}");
                return ExitCode::from(EXIT_CONFIG);
            }
            let realms: usize = config.workers.iter().map(|w| w.realms.len()).sum();
            let transports: usize = config.workers.iter().map(|w| w.transports.len()).sum();
            println!(
                "configuration OK: {} ({realms} {}, {transports} {})",
                file.display(),
                plural(realms, "realm"),
                plural(transports, "transport")
            );
            // What `start` would warn about: accepted Crossbar keys that do nothing here.
            for key in &config.inapplicable {
                println!("note: {} has no effect: {}", key.at, key.reason);
            }
            ExitCode::SUCCESS
        }
        Err(e) => config_error(&e),
    }
}

/// `turnstile reload`: validates the configuration the router of the node directory loaded,
/// then sends the router SIGHUP. A configuration error is printed as `check` prints it (exit 2)
/// and nothing is signalled; no router running there is an error (exit 1).
fn reload(source: &ConfigSource) -> ExitCode {
    let pid_file = source
        .pid_file()
        .unwrap_or_else(|| Path::new(DEFAULT_CBDIR).join(pidfile::PID_FILE));
    let running = match pidfile::running(&pid_file) {
        Ok(running) => running,
        Err(e) => {
            eprintln!("turnstile: {e}");
            return ExitCode::from(EXIT_FAILURE);
        }
    };
    // The file the router will read: the one it loaded (a PID file written by Crossbar does
    // not say), else the one the options name.
    let file = match (running.config, source.file()) {
        (Some(file), _) | (None, Ok(Some(file))) => file,
        (None, Ok(None)) => match turnstile_config::find_in_cbdir(Path::new(DEFAULT_CBDIR)) {
            Ok(file) => file,
            Err(e) => return config_error(&e),
        },
        (None, Err(e)) => return config_error(&e),
    };
    if let Err(e) = turnstile_config::load_file(&file) {
        eprintln!("{e}");
        eprintln!(
            "turnstile: not reloading: the router (PID {}) keeps its running configuration",
            running.pid
        );
        return ExitCode::from(EXIT_CONFIG);
    }
    match pidfile::send_hangup(running.pid) {
        Ok(()) => {
            println!(
                "configuration OK: {}; asked the router (PID {}) to reload it (its log says what changed)",
                file.display(),
                running.pid
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!(
                "turnstile: cannot signal the router (PID {}): {e}",
                running.pid
            );
            ExitCode::from(EXIT_FAILURE)
        }
    }
}

fn init(cbdir: &Path) -> ExitCode {
    let file = cbdir.join("config.json");
    if let Err(e) = std::fs::create_dir_all(cbdir) {
        eprintln!("turnstile: cannot create {}: {e}", cbdir.display());
        return ExitCode::from(EXIT_FAILURE);
    }
    let written = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&file)
        .and_then(|mut f| {
            std::io::Write::write_all(&mut f, turnstile_config::INIT_CONFIG_JSON.as_bytes())
        });
    match written {
        Ok(()) => {
            println!("wrote the default configuration to {}", file.display());
            ExitCode::SUCCESS
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            eprintln!(
                "turnstile: {} already exists; not overwriting it",
                file.display()
            );
            ExitCode::from(EXIT_FAILURE)
        }
        Err(e) => {
            eprintln!("turnstile: cannot write {}: {e}", file.display());
            ExitCode::from(EXIT_FAILURE)
        }
    }
}

/// `turnstile usage`: reads the rows the options select from the ledger and prints them
/// grouped. A configuration that cannot be loaded exits 2; a ledger that cannot be read, 1.
fn usage(args: &UsageArgs) -> ExitCode {
    let ledger = match usage_ledger(&args.source) {
        Ok(ledger) => ledger,
        Err(code) => return code,
    };
    let filter = report::Filter {
        realm: args.realm.clone(),
        authid: args.authid.clone(),
        authrole: args.authrole.clone(),
        since: args.since,
        until: args.until,
    };
    match report::read(&ledger, &filter) {
        Ok(rows) => {
            let grouped = report::group(&rows, args.group_by);
            print!("{}", report::render(&grouped, args.format));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("turnstile: cannot read the usage ledger: {e}");
            ExitCode::from(EXIT_FAILURE)
        }
    }
}

/// The ledger `turnstile usage` reads: named by `--ledger`, else that of the configuration.
fn usage_ledger(source: &UsageSource) -> Result<turnstile_config::LedgerStore, ExitCode> {
    if let Some(ledger) = &source.ledger {
        return report::parse_ledger(ledger).map_err(|e| {
            eprintln!("turnstile: --ledger {e}");
            ExitCode::from(EXIT_FAILURE)
        });
    }
    let file = match (&source.config, &source.cbdir) {
        (Some(file), _) => Ok(file.clone()),
        (None, Some(dir)) => turnstile_config::find_in_cbdir(dir),
        (None, None) => turnstile_config::find_in_cbdir(Path::new(DEFAULT_CBDIR)),
    };
    let config = file
        .and_then(|file| turnstile_config::load_file(&file).map(|c| (file, c)))
        .map_err(|e| config_error(&e))?;
    match config.1.ledger() {
        Some(ledger) => Ok(ledger.store.clone()),
        None => {
            eprintln!(
                "turnstile: {} has no usage ledger (a router worker's \"ledger\" key); name one \
                 with --ledger sqlite:PATH or --ledger postgresql://...",
                config.0.display()
            );
            Err(ExitCode::from(EXIT_FAILURE))
        }
    }
}

fn config_error(e: &ConfigError) -> ExitCode {
    eprintln!("{e}");
    ExitCode::from(EXIT_CONFIG)
}

fn plural(n: usize, word: &str) -> String {
    if n == 1 {
        word.to_owned()
    } else {
        format!("{word}s")
    }
}

/// The crates of Turnstile itself: they log at the chosen `--loglevel`; every other crate (the
/// dependencies: tokio, hyper, axum, tungstenite, ...) at `warn` at most, unless the level is
/// `debug` or `trace`.
const OWN_CRATES: [&str; 4] = [
    "turnstile",
    "turnstile_core",
    "turnstile_config",
    "wamp_proto",
];

/// Crates whose logging is capped at `debug`, whatever the filter says: the WebSocket library
/// logs whole messages at `trace`, which would put the tickets and secrets of the authentication
/// handshake in the log.
const CAPPED_AT_DEBUG: [&str; 2] = ["tungstenite", "tokio_tungstenite"];

/// The filter directives of `--loglevel LEVEL` (Crossbar's names): Turnstile's own crates at the
/// level; below `debug`, the dependencies at `warn` (or at the level when it is quieter still),
/// so that a default log holds what the router does, not its libraries' chatter.
fn level_directives(level: &str) -> String {
    let level = match level {
        "none" => "off",
        "critical" => "error",
        other => other,
    };
    let dependencies = match level {
        "debug" | "trace" => level,
        "info" | "warn" => "warn",
        quieter => quieter,
    };
    let mut directives = dependencies.to_owned();
    for krate in OWN_CRATES {
        directives.push_str(&format!(",{krate}={level}"));
    }
    directives
}

/// Logs to stderr at `level`, unless `RUST_LOG` says otherwise (a filter such as
/// `info,turnstile_core=debug`, taken as it is). Either way the WebSocket library is capped at
/// `debug` ([`CAPPED_AT_DEBUG`]) so that secrets never reach the log.
fn init_logging(level: &str) {
    let from_env = std::env::var("RUST_LOG")
        .ok()
        .filter(|v| !v.trim().is_empty());
    let (filter, bad_env) = match from_env.as_deref().map(EnvFilter::try_new) {
        Some(Ok(filter)) => (filter, None),
        Some(Err(e)) => (EnvFilter::new(level_directives(level)), Some(e)),
        None => (EnvFilter::new(level_directives(level)), None),
    };
    // A second filter that every event must pass too: a true cap (adding `tungstenite=debug` to
    // the first filter would instead turn the library's debug lines on at every level). Its
    // default is the first filter's own ceiling, never more: the subscriber's level hint is the
    // larger of the two, and it also sets the `log` crate's maximum level, so a TRACE default here
    // sent every `log::trace!` of the WebSocket library on the message path through the
    // dispatcher and both filters (measured: about 10 % of the router's CPU per event).
    let ceiling = filter.max_level_hint().unwrap_or(LevelFilter::TRACE);
    let cap = CAPPED_AT_DEBUG
        .into_iter()
        .fold(Targets::new().with_default(ceiling), |t, krate| {
            t.with_target(krate, ceiling.min(LevelFilter::DEBUG))
        });
    // Colours only on a terminal: logs written to files and journals stay plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    tracing_subscriber::registry()
        .with(filter)
        .with(cap)
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_ansi(ansi),
        )
        .init();
    if let Some(e) = bad_env {
        warn!("ignoring RUST_LOG: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::level_directives;

    #[test]
    fn dependencies_log_at_warn_below_debug() {
        assert_eq!(
            level_directives("info"),
            "warn,turnstile=info,turnstile_core=info,turnstile_config=info,wamp_proto=info"
        );
        assert!(level_directives("warn").starts_with("warn,turnstile=warn,"));
        assert!(level_directives("critical").starts_with("error,turnstile=error,"));
        assert!(level_directives("none").starts_with("off,turnstile=off,"));
        assert!(level_directives("debug").starts_with("debug,turnstile=debug,"));
        assert!(level_directives("trace").starts_with("trace,turnstile=trace,"));
    }

    /// Precedence of the connection caps: an option given on the command line replaces the
    /// configuration's value (already over the default); one not given leaves it.
    #[test]
    fn command_line_caps_override_the_configuration() {
        let config = turnstile_config::WorkerLimits {
            max_connections: Some(100),
            max_connections_per_ip: Some(10),
            ..Default::default()
        };
        let configured = super::ConnectionLimits::default().configured(&config);
        let none = super::LimitArgs {
            max_connections: None,
            max_connections_per_ip: None,
        };
        assert_eq!(none.apply(configured.clone()), configured);
        let both = super::LimitArgs {
            max_connections: Some(5),
            max_connections_per_ip: Some(2),
        };
        let applied = both.apply(configured);
        assert_eq!(
            (applied.max_connections, applied.max_connections_per_ip),
            (5, Some(2))
        );
    }

    /// The subscriber's maximum level (which also bounds the `log` crate's) is the filter's
    /// ceiling, not TRACE: otherwise every `log::trace!` of the WebSocket library on the message
    /// path goes through the dispatcher and both filters. The only test here that installs the
    /// global subscriber.
    #[test]
    fn logging_at_info_enables_nothing_below_info() {
        std::env::remove_var("RUST_LOG");
        super::init_logging("info");
        assert_eq!(
            tracing::level_filters::LevelFilter::current(),
            tracing::level_filters::LevelFilter::INFO
        );
    }
}
