//! The `turnstile-bench` command: parses the options, raises the open-file limit, runs one
//! scenario, prints the table (and writes the JSON). Exit code 0 on success, 1 when a run fails
//! (a lost event, a refused realm, a router that went away), 2 on a usage error.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use turnstile_bench::stats::parse_duration;
use turnstile_bench::{Budget, Config, Scenario};
use wamp_proto::Serializer;

#[derive(Debug, Parser)]
#[command(
    name = "turnstile-bench",
    version,
    about = "WAMP v2 router benchmark: pub/sub, fan-out, RPC and sessions over WebSocket or \
             RawSocket, with the router's CPU time per message",
    after_help = "The router's CPU time and memory are read from /proc/PID/stat and \
                  /proc/PID/status; the PID is the process listening on the URL's port unless \
                  --router-pid is given. For many sessions, the router needs a large enough \
                  open-file limit too (ulimit -n)."
)]
struct Cli {
    /// The scenario to run.
    #[arg(value_enum)]
    scenario: Scenario,
    /// Router URL: ws://host:port/path, wss://host:port/path (with --ca-file), rs://host:port
    /// (RawSocket over TCP) or unix:///path.
    #[arg(long, default_value = "ws://127.0.0.1:8080/ws")]
    url: String,
    #[arg(long, default_value = "realm1")]
    realm: String,
    #[arg(long, default_value = "json", value_parser = ["json", "msgpack", "cbor"])]
    serializer: String,
    /// Length of each measured run (e.g. 5s, 500ms).
    #[arg(long, value_parser = parse_duration, conflicts_with = "count")]
    duration: Option<Duration>,
    /// Operations per measured run instead of a duration (events published, calls made).
    #[arg(long)]
    count: Option<u64>,
    /// Warm-up before the measured runs (0s for none). `soak`: the first part of the run, after
    /// which the router's RSS is the reference (default: a tenth of the run, 30 s to 5 min).
    #[arg(long, value_parser = parse_duration)]
    warmup: Option<Duration>,
    /// Measured runs.
    #[arg(long, default_value_t = 5)]
    repeats: usize,
    /// Subscribers of `fanout`.
    #[arg(long, default_value_t = 100)]
    subscribers: usize,
    /// Publications (pubsub-ack) or calls (rpc-par) in flight.
    #[arg(long, default_value_t = 100)]
    window: usize,
    /// How far (in events) the publisher may run ahead of its slowest subscriber.
    #[arg(long, default_value_t = 2000)]
    backlog: u64,
    /// Sessions of `sessions` and `idle`.
    #[arg(long, default_value_t = 1000)]
    sessions: usize,
    /// Connections opened concurrently (subscribers of fanout, sessions, idle).
    #[arg(long, default_value_t = 100)]
    connect_batch: usize,
    /// `idle`: loopback source addresses to spread the sessions over, from 127.0.0.2 (default:
    /// one per 10,000 sessions).
    #[arg(long)]
    sources: Option<usize>,
    /// `soak`: churning sessions at a time.
    #[arg(long, default_value_t = 20)]
    churn: usize,
    /// `soak`: events published per second (calls: half as many).
    #[arg(long, default_value_t = 1000)]
    rate: u64,
    /// `soak`: how often a new slow consumer starts.
    #[arg(long, default_value = "20s", value_parser = parse_duration)]
    slow_every: Duration,
    /// How long `sessions` holds its sessions idle before measuring the router's memory.
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    hold: Duration,
    /// The CA certificate (PEM) that issued the router's certificate, for wss:// URLs.
    #[arg(long)]
    ca_file: Option<PathBuf>,
    /// The router's process id (default: the process listening on the URL's port).
    #[arg(long)]
    router_pid: Option<u32>,
    /// A run that makes no progress for this long fails (lost messages).
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    stall_timeout: Duration,
    /// Topic or procedure URI (default: a fresh one).
    #[arg(long)]
    topic: Option<String>,
    /// Threads of the load generator's runtime.
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Write the result as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
    /// No progress output on stderr.
    #[arg(long, short)]
    quiet: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(ca) = &cli.ca_file {
        if let Err(e) = turnstile_bench::conn::set_tls_ca(ca) {
            eprintln!("turnstile-bench: --ca-file: {e:#}");
            return ExitCode::from(2);
        }
    }
    let serializer = Serializer::from_name(&cli.serializer).expect("checked by clap");
    let budget = match (cli.count, cli.duration) {
        (Some(0), _) => {
            eprintln!("turnstile-bench: --count must be at least 1");
            return ExitCode::from(2);
        }
        (Some(n), _) => Budget::Count(n),
        (None, Some(d)) if d.is_zero() => {
            eprintln!("turnstile-bench: --duration must be more than 0");
            return ExitCode::from(2);
        }
        (None, Some(d)) => Budget::Time(d),
        (None, None) => Budget::Time(Duration::from_secs(5)),
    };
    let soak_warmup = match budget {
        Budget::Time(d) => cli
            .warmup
            .unwrap_or((d / 10).clamp(Duration::from_secs(30), Duration::from_secs(300))),
        Budget::Count(_) => Duration::ZERO,
    };
    let cfg = Config {
        scenario: cli.scenario,
        url: cli.url,
        realm: cli.realm,
        serializer,
        budget,
        warmup: cli.warmup.unwrap_or(Duration::from_secs(1)),
        repeats: cli.repeats,
        subscribers: cli.subscribers,
        window: cli.window,
        backlog: cli.backlog,
        sessions: cli.sessions,
        connect_batch: cli.connect_batch,
        hold: cli.hold,
        router_pid: cli.router_pid,
        stall_timeout: cli.stall_timeout,
        topic: cli.topic,
        progress: !cli.quiet,
        churn: cli.churn,
        rate: cli.rate,
        slow_every: cli.slow_every,
    };
    if cfg.scenario == Scenario::Soak {
        let Budget::Time(duration) = cfg.budget else {
            eprintln!("turnstile-bench: soak runs for a --duration, not a --count");
            return ExitCode::from(2);
        };
        if soak_warmup >= duration {
            eprintln!("turnstile-bench: the soak's --warmup must be shorter than its --duration");
            return ExitCode::from(2);
        }
    }
    if let Err(e) = raise_fd_limit(needed_fds(&cfg)) {
        eprintln!("turnstile-bench: warning: {e}");
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(cli.threads.max(1))
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("turnstile-bench: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    if matches!(cfg.scenario, Scenario::Idle | Scenario::Soak) {
        return run_own(
            &runtime,
            &cfg,
            cli.sources,
            soak_warmup,
            cli.json.as_deref(),
        );
    }
    if !cli.quiet {
        eprintln!(
            "turnstile-bench: {} against {} (realm {}, {}), {}, warm-up {:.1} s, {} repeats",
            cfg.scenario.name(),
            cfg.url,
            cfg.realm,
            cfg.serializer.name(),
            match cfg.budget {
                Budget::Count(n) => format!("{n} operations per run"),
                Budget::Time(d) => format!("{:.1} s per run", d.as_secs_f64()),
            },
            cfg.warmup.as_secs_f64(),
            cfg.repeats
        );
    }
    // Everything runs on the runtime's worker threads, none on this one.
    let result = runtime.block_on(async {
        let cfg = cfg.clone();
        tokio::spawn(async move { turnstile_bench::run(&cfg).await })
            .await
            .unwrap_or_else(|e| Err(anyhow::anyhow!("the benchmark task panicked: {e}")))
    });
    runtime.shutdown_timeout(Duration::from_secs(1));
    match result {
        Ok(report) => {
            print!(
                "{}",
                turnstile_bench::report::table(std::slice::from_ref(&report))
            );
            if let Some(path) = &cli.json {
                let text = serde_json::to_string_pretty(&report).expect("serializable");
                if let Err(e) = std::fs::write(path, text + "\n") {
                    eprintln!("turnstile-bench: cannot write {}: {e}", path.display());
                    return ExitCode::FAILURE;
                }
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!(
                "turnstile-bench: FAILED: {} ({}, {}): {e:#}",
                cfg.scenario.name(),
                cfg.url,
                cfg.serializer.name()
            );
            ExitCode::FAILURE
        }
    }
}

/// Runs `idle` or `soak`, which report on their own: the text on stdout, the JSON to `json`.
/// Exit code 1 if the soak failed a check or either could not run.
fn run_own(
    runtime: &tokio::runtime::Runtime,
    cfg: &Config,
    sources: Option<usize>,
    soak_warmup: Duration,
    json: Option<&std::path::Path>,
) -> ExitCode {
    let c = cfg.clone();
    let result = runtime.block_on(async move {
        tokio::spawn(async move {
            match (c.scenario, c.budget) {
                (Scenario::Soak, Budget::Time(d)) => {
                    if c.progress {
                        eprintln!(
                            "turnstile-bench: soak against {} for {:.0} s (warm-up {:.0} s)",
                            c.url,
                            d.as_secs_f64(),
                            soak_warmup.as_secs_f64()
                        );
                    }
                    let r = turnstile_bench::soak::run(&c, d, soak_warmup).await?;
                    Ok((r.text(), serde_json::to_string_pretty(&r)?, r.passed))
                }
                _ => {
                    let r = turnstile_bench::idle::run(&c, sources).await?;
                    let ok = r.active_failures == 0;
                    Ok::<_, anyhow::Error>((r.text(), serde_json::to_string_pretty(&r)?, ok))
                }
            }
        })
        .await
        .unwrap_or_else(|e| Err(anyhow::anyhow!("the benchmark task panicked: {e}")))
    });
    match result {
        Ok((text, report, passed)) => {
            print!("{text}");
            if let Some(path) = json {
                if let Err(e) = std::fs::write(path, report + "\n") {
                    eprintln!("turnstile-bench: cannot write {}: {e}", path.display());
                    return ExitCode::FAILURE;
                }
            }
            if passed {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!(
                "turnstile-bench: FAILED: {} ({}): {e:#}",
                cfg.scenario.name(),
                cfg.url
            );
            ExitCode::FAILURE
        }
    }
}

/// File descriptors the scenario needs, with room to spare.
fn needed_fds(cfg: &Config) -> u64 {
    let conns = match cfg.scenario {
        Scenario::Sessions | Scenario::Idle => cfg.sessions,
        Scenario::Soak => cfg.churn + 64,
        Scenario::Fanout => cfg.subscribers + 1,
        _ => 2,
    };
    conns as u64 + 256
}

/// Raises the soft open-file limit to `needed` (up to the hard limit, or beyond it when we may).
fn raise_fd_limit(needed: u64) -> Result<(), String> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit with a valid pointer to an rlimit.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return Err("cannot read the open-file limit".into());
        }
        if lim.rlim_cur >= needed {
            return Ok(());
        }
        let wanted = libc::rlimit {
            rlim_cur: needed.max(lim.rlim_max),
            rlim_max: needed.max(lim.rlim_max),
        };
        if libc::setrlimit(libc::RLIMIT_NOFILE, &wanted) == 0 {
            return Ok(());
        }
        let capped = libc::rlimit {
            rlim_cur: lim.rlim_max,
            rlim_max: lim.rlim_max,
        };
        libc::setrlimit(libc::RLIMIT_NOFILE, &capped);
    }
    Err(format!(
        "the open-file limit is {} and cannot be raised to {needed}: the run may fail with \
         'too many open files' (raise it with ulimit -n)",
        lim.rlim_max
    ))
}
