//! `turnstile-bench`: a WAMP v2 load generator that measures any router (Turnstile, Crossbar.io)
//! over WebSocket or RawSocket with JSON, MessagePack or CBOR.
//!
//! Each scenario sets up its sessions, runs a warm-up, then `repeats` measured runs, and reports
//! the median and spread of the rate together with the router's CPU time per operation (from
//! `/proc/PID/stat`, so that a figure means something even when the load generator shares the
//! machine with the router) and its resident memory.
//!
//! Every event carries a sequence number that its subscriber checks, and every call result is
//! matched with its call: a lost, duplicated or reordered message fails the run.
//!
//! # Layout
//! - [`conn`]: the benchmark's thin connection (buffered, batched), HELLO/SUBSCRIBE/REGISTER.
//! - [`scenarios`]: `pubsub`, `pubsub-ack`, `fanout`, `rpc`, `rpc-par`, `sessions`.
//! - [`idle`]: `idle`, many bare idle sessions from several source addresses while an active
//!   client keeps routing (its own report).
//! - [`soak`]: `soak`, a long mixed run that fails on memory growth, loss or errors (its own
//!   report).
//! - [`procfs`]: the router's CPU time, memory and PID from `/proc`.
//! - [`stats`]: sequence checking, percentiles, median and spread, duration parsing.
//! - [`report`]: the result types, the table and the JSON.

pub mod conn;
pub mod idle;
pub mod procfs;
pub mod report;
pub mod scenarios;
pub mod soak;
pub mod stats;

use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use wamp_proto::Serializer;

use crate::conn::Target;
use crate::procfs::Probe;
use crate::report::{RouterInfo, RunReport, ScenarioReport, Summaries};
use crate::stats::{Latency, Summary};

/// The scenarios.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Scenario {
    /// 1 publisher -> 1 subscriber, no acknowledge: events per second received.
    Pubsub,
    /// 1 publisher -> 1 subscriber with acknowledge, `--window` publications in flight.
    PubsubAck,
    /// 1 publisher -> `--subscribers` subscribers: deliveries per second.
    Fanout,
    /// 1 caller -> 1 echo callee, one call at a time: calls per second and round trips.
    Rpc,
    /// 1 caller -> 1 echo callee, `--window` calls in flight.
    RpcPar,
    /// `--sessions` idle sessions opened concurrently: join rate and router memory per session.
    Sessions,
    /// No router: a TCP ping-pong between two threads on loopback, the floor of a round trip.
    TcpBaseline,
    /// `--sessions` bare idle sessions (WebSocket or RawSocket) from several loopback source
    /// addresses, while an active client calls and publishes: joins/s, router memory per
    /// session, the active client's latency.
    Idle,
    /// `--duration` of joining and leaving sessions, pub/sub, RPC, slow consumers and abrupt
    /// disconnects: router RSS growth, lost messages, errors.
    Soak,
}

impl Scenario {
    pub fn name(self) -> &'static str {
        match self {
            Scenario::Pubsub => "pubsub",
            Scenario::PubsubAck => "pubsub-ack",
            Scenario::Fanout => "fanout",
            Scenario::Rpc => "rpc",
            Scenario::RpcPar => "rpc-par",
            Scenario::Sessions => "sessions",
            Scenario::TcpBaseline => "tcp-baseline",
            Scenario::Idle => "idle",
            Scenario::Soak => "soak",
        }
    }
}

/// How long a measured run lasts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Budget {
    /// This many operations (events published, calls made).
    Count(u64),
    /// Load for this long (then wait for everything in flight).
    Time(Duration),
}

impl std::fmt::Display for Budget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Budget::Count(n) => write!(f, "{n} operations"),
            Budget::Time(d) => write!(f, "{:.1} s", d.as_secs_f64()),
        }
    }
}

/// Everything a benchmark run needs.
#[derive(Debug, Clone)]
pub struct Config {
    pub scenario: Scenario,
    pub url: String,
    pub realm: String,
    pub serializer: Serializer,
    pub budget: Budget,
    pub warmup: Duration,
    pub repeats: usize,
    /// Subscribers of `fanout`.
    pub subscribers: usize,
    /// In-flight window of `pubsub-ack` and `rpc-par`.
    pub window: usize,
    /// Events a publisher may be ahead of its slowest subscriber (flow control, so that the
    /// router's outgoing queues stay bounded; it never drops events).
    pub backlog: u64,
    /// Sessions of `sessions`.
    pub sessions: usize,
    /// Connections opened concurrently.
    pub connect_batch: usize,
    /// How long `sessions` holds its sessions idle before measuring memory.
    pub hold: Duration,
    pub router_pid: Option<u32>,
    /// A run that makes no progress for this long fails.
    pub stall_timeout: Duration,
    /// The topic or procedure to use (default: a fresh one per run).
    pub topic: Option<String>,
    /// Per-run lines (and a live counter on a terminal) on stderr.
    pub progress: bool,
    /// `soak`: churning sessions at a time.
    pub churn: usize,
    /// `soak`: events published per second (and half as many calls).
    pub rate: u64,
    /// `soak`: a new slow consumer this often.
    pub slow_every: Duration,
}

impl Config {
    /// The defaults of the command line, for `scenario` against `url`.
    pub fn new(scenario: Scenario, url: &str) -> Config {
        Config {
            scenario,
            url: url.to_owned(),
            realm: "realm1".into(),
            serializer: Serializer::Json,
            budget: Budget::Time(Duration::from_secs(5)),
            warmup: Duration::from_secs(1),
            repeats: 5,
            subscribers: 100,
            window: 100,
            backlog: 2000,
            sessions: 1000,
            connect_batch: 100,
            hold: Duration::from_secs(2),
            router_pid: None,
            stall_timeout: Duration::from_secs(10),
            topic: None,
            progress: false,
            churn: 20,
            rate: 1000,
            slow_every: Duration::from_secs(20),
        }
    }
}

/// A counter of operations done in the current run, for the live display.
#[derive(Debug, Default)]
pub struct Progress {
    done: AtomicU64,
}

impl Progress {
    pub fn add(&self, n: u64) {
        self.done.fetch_add(n, Ordering::Relaxed);
    }
    pub fn get(&self) -> u64 {
        self.done.load(Ordering::Relaxed)
    }
    fn reset(&self) {
        self.done.store(0, Ordering::Relaxed);
    }
}

/// Whether a run is the warm-up or a measured one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunKind {
    Warmup,
    Measured,
}

/// What one run of a scenario measured itself.
#[derive(Debug, Default)]
pub struct RunOutcome {
    /// Operations completed (events delivered, calls answered, sessions joined).
    pub ops: u64,
    pub elapsed: Duration,
    /// Round trips, nanoseconds (RPC).
    pub latencies_ns: Vec<u64>,
    /// The router's CPU time over the part of the run that counts, when the scenario measures
    /// it itself (`sessions`: the opening phase).
    pub router_cpu: Option<Duration>,
    /// The router's resident memory, when the scenario measures it itself.
    pub router_rss_kib: Option<u64>,
    /// `sessions`: router memory per session held, KiB.
    pub kib_per_session: Option<f64>,
}

/// A scenario's sessions, set up once and run several times.
pub(crate) trait Rig {
    /// What one operation is: "event", "delivery", "call", "session".
    fn op(&self) -> &'static str;
    /// WAMP messages the router receives and sends per operation.
    fn messages_per_op(&self) -> f64;
    async fn run_once(
        &mut self,
        kind: RunKind,
        budget: Budget,
        probe: Option<&Probe>,
        progress: &Progress,
    ) -> Result<RunOutcome>;
    /// Closes every session, checking that nothing was lost or left over.
    async fn finish(self) -> Result<()>;
}

/// Finds the router's process: `--router-pid`, else the process listening on the URL's port.
/// Returns `None` (with a warning in the report) when it cannot be found.
pub fn find_router(cfg: &Config, target: &Target) -> Result<(Option<Probe>, Option<String>)> {
    if let Some(pid) = cfg.router_pid {
        let probe = Probe::new(pid).with_context(|| format!("--router-pid {pid}"))?;
        return Ok((Some(probe), None));
    }
    let Some(port) = target.port() else {
        return Ok((
            None,
            Some(
                "a Unix socket URL: pass --router-pid to measure the router's CPU and memory"
                    .into(),
            ),
        ));
    };
    let pids = procfs::pids_listening_on(port);
    match pids.as_slice() {
        [] => Ok((
            None,
            Some(format!(
                "no process found listening on port {port}: the router's CPU and memory are not \
                 measured (pass --router-pid)"
            )),
        )),
        [pid] => Ok((Some(Probe::new(*pid)?), None)),
        [pid, ..] => Ok((
            Some(Probe::new(*pid)?),
            Some(format!(
                "several processes listen on port {port} ({pids:?}); measuring {pid} (pass \
                 --router-pid to choose)"
            )),
        )),
    }
}

/// Runs the configured scenario: setup, warm-up, measured runs, teardown.
pub async fn run(cfg: &Config) -> Result<ScenarioReport> {
    if cfg.repeats == 0 {
        anyhow::bail!("--repeats must be at least 1");
    }
    let target = Target::parse(&cfg.url)?;
    let (probe, warning) = if cfg.scenario == Scenario::TcpBaseline {
        (None, None)
    } else {
        find_router(cfg, &target)?
    };
    if let (Some(w), true) = (&warning, cfg.progress) {
        eprintln!("turnstile-bench: warning: {w}");
    }
    let router = RouterInfo {
        pid: probe.as_ref().map(Probe::pid),
        name: probe.as_ref().map(Probe::name),
        found_by: match (&probe, cfg.router_pid) {
            (None, _) => None,
            (Some(_), Some(_)) => Some("--router-pid".into()),
            (Some(_), None) => Some("listening port".into()),
        },
        warning,
    };
    use scenarios::*;
    let runs = match cfg.scenario {
        Scenario::Pubsub | Scenario::PubsubAck | Scenario::Fanout => {
            let rig = pubsub::PubSubRig::setup(cfg, &target).await?;
            drive(cfg, rig, probe.as_ref()).await?
        }
        Scenario::Rpc | Scenario::RpcPar => {
            let rig = rpc::RpcRig::setup(cfg, &target).await?;
            drive(cfg, rig, probe.as_ref()).await?
        }
        Scenario::Sessions => {
            let rig = sessions::SessionsRig::setup(cfg, &target, probe.as_ref()).await?;
            drive(cfg, rig, probe.as_ref()).await?
        }
        Scenario::TcpBaseline => drive(cfg, baseline::BaselineRig::setup()?, None).await?,
        Scenario::Idle | Scenario::Soak => {
            anyhow::bail!("{} has its own runner and report", cfg.scenario.name())
        }
    };
    Ok(report::build(cfg, &target, router, runs))
}

/// Measured runs of a rig, with what the driver measured around each.
pub(crate) struct DrivenRuns {
    pub op: &'static str,
    pub messages_per_op: f64,
    pub runs: Vec<RunReport>,
    pub latencies_ns: Vec<u64>,
}

async fn drive<R: Rig>(cfg: &Config, mut rig: R, probe: Option<&Probe>) -> Result<DrivenRuns> {
    let progress = Arc::new(Progress::default());
    let label = format!("{} {}", cfg.scenario.name(), cfg.serializer.name());
    let op = rig.op();
    let messages_per_op = rig.messages_per_op();
    let mut runs = Vec::new();
    let mut latencies = Vec::new();
    let result: Result<()> = async {
        if !cfg.warmup.is_zero() {
            progress.reset();
            let ticker = Ticker::start(cfg, &format!("{label} warm-up"), op, &progress);
            let r = rig
                .run_once(RunKind::Warmup, Budget::Time(cfg.warmup), probe, &progress)
                .await;
            ticker.stop();
            r.context("warm-up")?;
        }
        for i in 0..cfg.repeats {
            progress.reset();
            let ticker = Ticker::start(
                cfg,
                &format!("{label} run {}/{}", i + 1, cfg.repeats),
                op,
                &progress,
            );
            let before = probe.map(Probe::sample).transpose()?;
            let r = rig
                .run_once(RunKind::Measured, cfg.budget, probe, &progress)
                .await;
            let after = probe.map(Probe::sample).transpose()?;
            ticker.stop();
            let mut outcome = r.with_context(|| format!("run {}/{}", i + 1, cfg.repeats))?;
            let cpu = outcome.router_cpu.or(match (before, after) {
                (Some(b), Some(a)) => Some(a.cpu.saturating_sub(b.cpu)),
                _ => None,
            });
            let rss = outcome.router_rss_kib.or(after.map(|a| a.rss_kib));
            let run = RunReport::new(&outcome, cpu, rss, messages_per_op);
            if cfg.progress {
                eprintln!(
                    "  {label} run {}/{}: {}",
                    i + 1,
                    cfg.repeats,
                    run.describe(op)
                );
            }
            latencies.append(&mut outcome.latencies_ns);
            runs.push(run);
        }
        Ok(())
    }
    .await;
    let finished = rig.finish().await;
    result?;
    finished.context("closing the sessions")?;
    Ok(DrivenRuns {
        op,
        messages_per_op,
        runs,
        latencies_ns: latencies,
    })
}

/// A live counter on stderr while a run lasts, when stderr is a terminal.
struct Ticker {
    stop: Arc<AtomicBool>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Ticker {
    fn start(cfg: &Config, label: &str, op: &'static str, progress: &Arc<Progress>) -> Ticker {
        let stop = Arc::new(AtomicBool::new(false));
        if !cfg.progress || !std::io::stderr().is_terminal() {
            return Ticker { stop, task: None };
        }
        let (label, progress, flag) = (label.to_owned(), progress.clone(), stop.clone());
        let task = tokio::spawn(async move {
            let start = Instant::now();
            let mut tick = tokio::time::interval(Duration::from_millis(500));
            tick.tick().await;
            loop {
                tick.tick().await;
                if flag.load(Ordering::Relaxed) {
                    break;
                }
                let done = progress.get();
                let rate = done as f64 / start.elapsed().as_secs_f64();
                let mut err = std::io::stderr().lock();
                let _ = write!(
                    err,
                    "\r\x1b[K  {label}: {} {}, {}/s",
                    report::thousands(done as f64),
                    report::plural(op),
                    report::thousands(rate)
                );
                let _ = err.flush();
            }
        });
        Ticker {
            stop,
            task: Some(task),
        }
    }

    fn stop(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.task.take() {
            t.abort();
            let mut err = std::io::stderr().lock();
            let _ = write!(err, "\r\x1b[K");
            let _ = err.flush();
        }
    }
}

/// Summaries of the measured runs.
pub(crate) fn summarize(runs: &[RunReport], latencies_ns: &mut [u64]) -> Summaries {
    let pick = |f: &dyn Fn(&RunReport) -> Option<f64>| {
        let v: Vec<f64> = runs.iter().filter_map(f).collect();
        Summary::of(&v)
    };
    Summaries {
        rate: pick(&|r| Some(r.rate)),
        router_cpu_us_per_op: pick(&|r| r.router_cpu_us_per_op),
        router_cpu_us_per_message: pick(&|r| r.router_cpu_us_per_message),
        router_cpu_cores: pick(&|r| r.router_cpu_cores),
        router_rss_kib: pick(&|r| r.router_rss_kib.map(|k| k as f64)),
        kib_per_session: pick(&|r| r.kib_per_session),
        latency: Latency::from_nanos(latencies_ns),
    }
}

/// A fresh topic or procedure name for this process and run.
pub(crate) fn fresh_uri(cfg: &Config, kind: &str) -> String {
    if let Some(t) = &cfg.topic {
        return t.clone();
    }
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("bench.{kind}.p{}.n{nanos}", std::process::id())
}
