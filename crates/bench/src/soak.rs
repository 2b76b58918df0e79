//! `soak`: mixed traffic against one router for a long time, to show that its memory stays
//! flat and that nothing is lost while sessions come and go. All at once, for `--duration`:
//! - a publisher (acknowledged, `--rate` events/s) and [`READERS`] subscribers that read and
//!   check every event by its sequence number;
//! - a caller (`--rate` / 2 calls/s) and an echo callee: every call must get its own result;
//! - `--churn` sessions at a time that join, subscribe to topics and register procedures of
//!   their own, subscribe to the event topic (checking that what they receive has no gap), make
//!   calls, and leave after 0.3–2 s, in turn by GOODBYE, by closing the connection without
//!   GOODBYE, and by a TCP reset;
//! - every `--slow-every`, a slow consumer: a session that subscribes to a firehose topic and
//!   stops reading, which the router must disconnect (its outgoing queue limit); seen through
//!   `wamp.session.on_leave`, the one disconnect that is expected;
//! - the router's resident memory, sampled every second.
//!
//! The run fails if the RSS grew by [`MAX_GROWTH_PERCENT`] or more from the end of the warm-up
//! to the end of the run (each the lowest sample of the last slow-consumer period, see
//! [`rss_floor`]), if any event or call was lost, or on any error other than the slow
//! consumers' disconnects (a refused join, an ERROR, a stable session closed, a slow consumer
//! not disconnected).

use std::collections::HashMap;
use std::fmt::Display;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use serde::Serialize;
use tokio::sync::{oneshot, watch};
use wamp_proto::{dict, Dict, Id, Message, Value};

use crate::conn::{Conn, Target};
use crate::procfs::Probe;
use crate::scenarios::rpc::echo_callee;
use crate::scenarios::{open_session, payload, payload_seq, SETUP_TIMEOUT};
use crate::{fresh_uri, Config};

/// Subscribers that stay for the whole run and must receive every event.
pub const READERS: usize = 3;
/// The RSS growth (end of warm-up to end) at which the run fails.
pub const MAX_GROWTH_PERCENT: f64 = 5.0;
/// The shortest window (seconds) of RSS samples that one RSS figure is taken from, when the
/// run is long enough (see [`rss_floor`]).
const RSS_WINDOW: f64 = 10.0;
/// Topics subscribed to and procedures registered by each churning session.
const OWN_ENTRIES: usize = 5;
/// Bytes of padding in each firehose event.
const FIREHOSE_PAD: usize = 8 << 10;
/// How long a slow consumer may stay connected while the firehose runs before that is an error.
const SLOW_KICK_DEADLINE: Duration = Duration::from_secs(60);

/// What the run counted. Atomic so that every task adds to it directly.
#[derive(Debug, Default)]
struct Tally {
    published: AtomicU64,
    calls: AtomicU64,
    results: AtomicU64,
    joins: AtomicU64,
    left_goodbye: AtomicU64,
    left_close: AtomicU64,
    left_reset: AtomicU64,
    churn_events: AtomicU64,
    churn_calls: AtomicU64,
    lost_events: AtomicU64,
    lost_calls: AtomicU64,
    slow_started: AtomicU64,
    slow_disconnected: AtomicU64,
    errors: AtomicU64,
    first_errors: Mutex<Vec<String>>,
}

impl Tally {
    fn error(&self, e: impl Display) {
        self.errors.fetch_add(1, Relaxed);
        let mut first = self.first_errors.lock().expect("not poisoned");
        if first.len() < 20 {
            first.push(e.to_string());
        }
    }
}

/// The outcome of a soak run (printed, and written as JSON with `--json`).
#[derive(Debug, Clone, Serialize)]
pub struct SoakReport {
    pub url: String,
    pub serializer: String,
    pub duration_s: f64,
    pub warmup_s: f64,
    pub router_pid: Option<u32>,
    /// RSS at the end of the warm-up: the lowest sample of the last slow-consumer period
    /// ([`rss_floor`]), KiB.
    pub rss_after_warmup_kib: Option<u64>,
    /// RSS at the end of the run, the same way, KiB.
    pub rss_end_kib: Option<u64>,
    pub rss_growth_percent: Option<f64>,
    /// The window each of the two figures above is the lowest sample of, seconds.
    pub rss_window_s: f64,
    pub rss_min_after_warmup_kib: Option<u64>,
    pub rss_max_after_warmup_kib: Option<u64>,
    /// (seconds since the start, RSS KiB), one per second.
    pub rss_samples: Vec<(f64, u64)>,
    pub events_published: u64,
    /// Events each stable subscriber received.
    pub events_received: Vec<u64>,
    pub calls: u64,
    pub results: u64,
    pub sessions_joined: u64,
    pub left_by_goodbye: u64,
    pub left_by_close: u64,
    pub left_by_reset: u64,
    pub churn_events_received: u64,
    pub churn_calls: u64,
    pub slow_consumers: u64,
    pub slow_consumers_disconnected: u64,
    pub lost_events: u64,
    pub lost_calls: u64,
    pub errors: u64,
    pub first_errors: Vec<String>,
    pub passed: bool,
    pub failures: Vec<String>,
}

/// Runs the soak for `cfg.duration` (warm-up included) and reports; `Err` only when it cannot
/// start (no router, a refused join). Whether it passed is in the report.
pub async fn run(cfg: &Config, duration: Duration, warmup: Duration) -> Result<SoakReport> {
    let target = Target::parse(&cfg.url)?;
    let (probe, warning) = crate::find_router(cfg, &target)?;
    if let Some(w) = warning {
        eprintln!("turnstile-bench: warning: {w}");
    }
    let tally = Arc::new(Tally::default());
    let (stop_tx, stop) = watch::channel(false);
    let topic = fresh_uri(cfg, "soak.events");
    let procedure = fresh_uri(cfg, "soak.echo");
    let firehose_topic = fresh_uri(cfg, "soak.firehose");

    // The stable sessions first: readers, callee, the monitor of slow consumers.
    let mut readers = Vec::new();
    let (total_tx, total) = watch::channel(None::<u64>);
    for i in 0..READERS {
        let mut conn = open_session(&target, cfg).await.context("subscriber")?;
        conn.subscribe(1, &topic).await?;
        let received = Arc::new(AtomicU64::new(0));
        let task = tokio::spawn(reader(conn, total.clone(), received.clone(), tally.clone()));
        readers.push((i, received, task));
    }
    let mut callee = open_session(&target, cfg).await.context("callee")?;
    let registration = callee.register(1, &procedure).await?;
    let (callee_stop, callee_stop_rx) = oneshot::channel();
    let callee_task = tokio::spawn(async move {
        let n = AtomicU64::new(0);
        echo_callee(callee, registration, &n, callee_stop_rx).await
    });
    let kicks: Kicks = Arc::default();
    let mut monitor = open_session(&target, cfg).await.context("monitor")?;
    monitor.subscribe(1, "wamp.session.on_leave").await?;
    let monitor_task = tokio::spawn(watch_leaves(monitor, kicks.clone(), stop.clone()));

    let rss: Arc<Mutex<Vec<(f64, u64)>>> = Arc::default();
    let start = Instant::now();
    let sampler = probe.clone().map(|p| {
        let (rss, mut stop) = (rss.clone(), stop.clone());
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            loop {
                tokio::select! {
                    _ = tick.tick() => {
                        if let Ok(s) = p.sample() {
                            rss.lock().expect("not poisoned").push((start.elapsed().as_secs_f64(), s.rss_kib));
                        }
                    }
                    _ = stop.changed() => break,
                }
            }
        })
    });

    let publisher = open_session(&target, cfg).await.context("publisher")?;
    let publisher_task = tokio::spawn(publish(
        publisher,
        topic.clone(),
        cfg.rate,
        stop.clone(),
        tally.clone(),
        cfg.stall_timeout,
    ));
    let caller = open_session(&target, cfg).await.context("caller")?;
    let caller_task = tokio::spawn(call(
        caller,
        procedure.clone(),
        (cfg.rate / 2).max(1),
        stop.clone(),
        tally.clone(),
        cfg.stall_timeout,
    ));
    let leaves = Arc::new(AtomicU64::new(0));
    let mut churners = Vec::new();
    for _ in 0..cfg.churn {
        let (target, cfg) = (target.clone(), cfg.clone());
        let (topic, procedure) = (topic.clone(), procedure.clone());
        let (stop, tally, leaves) = (stop.clone(), tally.clone(), leaves.clone());
        churners.push(tokio::spawn(async move {
            while !*stop.borrow() {
                let n = leaves.fetch_add(1, Relaxed);
                if let Err(e) = churn_once(n, &target, &cfg, &topic, &procedure, &tally).await {
                    tally.error(format!("churning session: {e:#}"));
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }));
    }
    let slow_task = {
        let firehose = open_session(&target, cfg)
            .await
            .context("firehose publisher")?;
        let (target, cfg, kicks) = (target.clone(), cfg.clone(), kicks.clone());
        let (stop, tally) = (stop.clone(), tally.clone());
        tokio::spawn(slow_consumers(
            firehose,
            firehose_topic,
            target,
            cfg,
            kicks,
            stop,
            tally,
        ))
    };

    // The run itself: progress once a minute (every 10 s in short runs).
    let every = if duration >= Duration::from_secs(600) {
        Duration::from_secs(60)
    } else {
        Duration::from_secs(10)
    };
    let mut next = every;
    while start.elapsed() < duration {
        tokio::time::sleep(next.min(duration).saturating_sub(start.elapsed())).await;
        if cfg.progress {
            let last = rss.lock().expect("not poisoned").last().map(|s| s.1);
            eprintln!(
                "  soak {:>5.0} s: RSS {} KiB, {} events, {} calls, {} joins, {} slow consumers \
                 disconnected, {} errors",
                start.elapsed().as_secs_f64(),
                last.map_or("?".into(), |k| k.to_string()),
                tally.published.load(Relaxed),
                tally.results.load(Relaxed),
                tally.joins.load(Relaxed),
                tally.slow_disconnected.load(Relaxed),
                tally.errors.load(Relaxed),
            );
        }
        next += every;
    }
    let samples = rss.lock().expect("not poisoned").clone();

    // Stop: no more load; everything published or called must still arrive.
    let _ = stop_tx.send(true);
    let published = match publisher_task.await {
        Ok(Ok(n)) => n,
        Ok(Err(e)) => {
            tally.error(format!("publisher: {e:#}"));
            tally.published.load(Relaxed)
        }
        Err(e) => bail!("the publisher panicked: {e}"),
    };
    let _ = total_tx.send(Some(published));
    let mut events_received = Vec::new();
    for (i, received, task) in readers {
        match tokio::time::timeout(cfg.stall_timeout, task).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(e))) => tally.error(format!("subscriber {i}: {e:#}")),
            Ok(Err(e)) => bail!("subscriber {i} panicked: {e}"),
            Err(_) => {}
        }
        let got = received.load(Relaxed);
        tally
            .lost_events
            .fetch_add(published.saturating_sub(got), Relaxed);
        events_received.push(got);
    }
    match caller_task.await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tally.error(format!("caller: {e:#}")),
        Err(e) => bail!("the caller panicked: {e}"),
    }
    for c in churners {
        let _ = c.await;
    }
    let _ = slow_task.await;
    let _ = callee_stop.send(());
    match tokio::time::timeout(cfg.stall_timeout, callee_task).await {
        Ok(Ok(Ok(_))) => {}
        Ok(Ok(Err(e))) => tally.error(format!("callee: {e:#}")),
        Ok(Err(e)) => bail!("the callee panicked: {e}"),
        Err(_) => tally.error("the callee did not close in time"),
    }
    let _ = monitor_task.await;
    if let Some(s) = sampler {
        let _ = s.await;
    }

    Ok(report(
        cfg,
        duration,
        warmup,
        probe.as_ref(),
        samples,
        events_received,
        &tally,
    ))
}

fn report(
    cfg: &Config,
    duration: Duration,
    warmup: Duration,
    probe: Option<&Probe>,
    samples: Vec<(f64, u64)>,
    events_received: Vec<u64>,
    tally: &Tally,
) -> SoakReport {
    let (w, d) = (warmup.as_secs_f64(), duration.as_secs_f64());
    // A whole slow-consumer period, but within the warm-up and within the rest of the run (the
    // first samples are from before the load started).
    let window = cfg
        .slow_every
        .as_secs_f64()
        .max(RSS_WINDOW)
        .min(w / 2.0)
        .min((d - w) / 2.0);
    let after: Vec<u64> = samples
        .iter()
        .filter(|(s, _)| *s > w)
        .map(|s| s.1)
        .collect();
    let rss_warm = rss_floor(&samples, w, window);
    let rss_end = rss_floor(&samples, d, window);
    let growth = match (rss_warm, rss_end) {
        (Some(a), Some(b)) if a > 0 => Some((b as f64 - a as f64) * 100.0 / a as f64),
        _ => None,
    };
    let get = |a: &AtomicU64| a.load(Relaxed);
    let mut failures = Vec::new();
    match growth {
        Some(g) if g >= MAX_GROWTH_PERCENT => failures.push(format!(
            "router RSS grew {g:.1} % after the warm-up (limit {MAX_GROWTH_PERCENT} %)"
        )),
        Some(_) => {}
        None => failures.push("the router's RSS was not measured".into()),
    }
    if get(&tally.lost_events) > 0 {
        failures.push(format!("{} events lost", get(&tally.lost_events)));
    }
    if get(&tally.lost_calls) > 0 {
        failures.push(format!("{} calls lost", get(&tally.lost_calls)));
    }
    if get(&tally.errors) > 0 {
        failures.push(format!("{} errors", get(&tally.errors)));
    }
    if get(&tally.slow_started) > 0 && get(&tally.slow_disconnected) == 0 {
        failures.push("no slow consumer was disconnected".into());
    }
    SoakReport {
        url: cfg.url.clone(),
        serializer: cfg.serializer.name().to_owned(),
        duration_s: duration.as_secs_f64(),
        warmup_s: w,
        router_pid: probe.map(Probe::pid),
        rss_after_warmup_kib: rss_warm,
        rss_end_kib: rss_end,
        rss_growth_percent: growth,
        rss_window_s: window,
        rss_min_after_warmup_kib: after.iter().min().copied(),
        rss_max_after_warmup_kib: after.iter().max().copied(),
        rss_samples: samples,
        events_published: get(&tally.published),
        events_received,
        calls: get(&tally.calls),
        results: get(&tally.results),
        sessions_joined: get(&tally.joins),
        left_by_goodbye: get(&tally.left_goodbye),
        left_by_close: get(&tally.left_close),
        left_by_reset: get(&tally.left_reset),
        churn_events_received: get(&tally.churn_events),
        churn_calls: get(&tally.churn_calls),
        slow_consumers: get(&tally.slow_started),
        slow_consumers_disconnected: get(&tally.slow_disconnected),
        lost_events: get(&tally.lost_events),
        lost_calls: get(&tally.lost_calls),
        errors: get(&tally.errors),
        first_errors: tally.first_errors.lock().expect("not poisoned").clone(),
        passed: failures.is_empty(),
        failures,
    }
}

impl SoakReport {
    /// The report as text.
    pub fn text(&self) -> String {
        let kib = |k: Option<u64>| k.map_or("?".into(), |k| format!("{k} KiB"));
        let mut s = format!(
            "soak against {} ({}): {:.0} s, warm-up {:.0} s\n",
            self.url, self.serializer, self.duration_s, self.warmup_s
        );
        s += &format!(
            "  router RSS (lowest sample of the last {:.0} s): {} after the warm-up, {} at the end: \
             growth {}; min {} / max {} of all samples after the warm-up\n",
            self.rss_window_s,
            kib(self.rss_after_warmup_kib),
            kib(self.rss_end_kib),
            self.rss_growth_percent
                .map_or("?".into(), |g| format!("{g:+.2} %")),
            kib(self.rss_min_after_warmup_kib),
            kib(self.rss_max_after_warmup_kib),
        );
        s += &format!(
            "  events: {} published (acknowledged), received by the {} stable subscribers: {:?}; \
             {} received by churning sessions\n",
            self.events_published,
            self.events_received.len(),
            self.events_received,
            self.churn_events_received
        );
        s += &format!(
            "  calls: {} made, {} results; {} more by churning sessions\n",
            self.calls, self.results, self.churn_calls
        );
        s += &format!(
            "  sessions: {} joined and left ({} by GOODBYE, {} closed without GOODBYE, {} by TCP \
             reset)\n",
            self.sessions_joined, self.left_by_goodbye, self.left_by_close, self.left_by_reset
        );
        s += &format!(
            "  slow consumers: {} started, {} disconnected by the router\n",
            self.slow_consumers, self.slow_consumers_disconnected
        );
        s += &format!(
            "  lost: {} events, {} calls; errors: {}\n",
            self.lost_events, self.lost_calls, self.errors
        );
        for e in &self.first_errors {
            s += &format!("    error: {e}\n");
        }
        if self.passed {
            s += "  PASSED\n";
        } else {
            s += &format!("  FAILED: {}\n", self.failures.join("; "));
        }
        s
    }
}

/// The router's RSS at second `at` of the run: the lowest sample of the `window` seconds before
/// it, the window being one slow-consumer period (at least [`RSS_WINDOW`], at most half the
/// warm-up and half the rest of the run). Each slow consumer makes the router
/// hold up to its outgoing queue limit (16 MiB) for a few seconds, and the allocator keeps some
/// of it a little longer; a figure read at one second would depend on where that second falls in
/// the cycle. The floor of a whole cycle does not, and a leak raises it.
fn rss_floor(samples: &[(f64, u64)], at: f64, window: f64) -> Option<u64> {
    samples
        .iter()
        .filter(|(t, _)| *t <= at && *t > at - window)
        .map(|(_, k)| *k)
        .min()
}

/// Publishes `rate` events/s to `topic` with `acknowledge` until told to stop, then waits for
/// the outstanding acknowledgements. Returns the number of events published.
async fn publish(
    mut conn: Conn,
    topic: String,
    rate: u64,
    mut stop: watch::Receiver<bool>,
    tally: Arc<Tally>,
    stall: Duration,
) -> Result<u64> {
    let per_tick = (rate / 100).max(1);
    let mut tick = tokio::time::interval(Duration::from_millis(10));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let (mut seq, mut acked, mut stopping) = (0u64, 0u64, false);
    let options = dict! {"acknowledge" => true};
    while !(stopping && acked == seq) {
        tokio::select! {
            _ = tick.tick(), if !stopping => {
                for _ in 0..per_tick {
                    conn.send(&Message::Publish {
                        request: seq + 1,
                        options: options.clone(),
                        topic: topic.clone(),
                        args: Some(payload(seq)),
                        kwargs: None,
                    })
                    .await?;
                    seq += 1;
                }
                conn.flush().await?;
            }
            _ = stop.changed(), if !stopping => stopping = true,
            m = tokio::time::timeout(stall, conn.recv_msg()) => {
                match m.map_err(|_| anyhow!("no PUBLISHED within {stall:?} ({} of {seq} acknowledged)", acked))?? {
                    Message::Published { request, .. } if request == acked + 1 => {
                        acked += 1;
                        tally.published.store(acked, Relaxed);
                    }
                    Message::Published { request, .. } => {
                        bail!("PUBLISHED for request {request} while {} was due", acked + 1)
                    }
                    other => bail!("the publisher received {}", describe(&other)),
                }
            }
        }
    }
    Ok(seq)
}

/// A stable subscriber: every event in order, until it has all `total` (once known).
async fn reader(
    mut conn: Conn,
    mut total: watch::Receiver<Option<u64>>,
    received: Arc<AtomicU64>,
    tally: Arc<Tally>,
) -> Result<()> {
    let mut next = 0u64;
    loop {
        if total.borrow().is_some_and(|t| next >= t) {
            break;
        }
        tokio::select! {
            _ = total.changed() => {}
            m = conn.recv_msg() => match m? {
                Message::Event { args, .. } => {
                    let seq = payload_seq(&args)?;
                    check_seq(&mut next, seq, &tally)?;
                    received.store(next, Relaxed);
                }
                other => bail!("a subscriber received {}", describe(&other)),
            }
        }
    }
    let _ = conn.goodbye_and_close().await;
    Ok(())
}

/// Checks that `seq` is the event due next (`next`); a gap is counted as lost events.
fn check_seq(next: &mut u64, seq: u64, tally: &Tally) -> Result<()> {
    if seq < *next {
        bail!(
            "event #{seq} arrived again or out of order (#{} was due)",
            *next
        );
    }
    if seq > *next {
        tally.lost_events.fetch_add(seq - *next, Relaxed);
        tally.error(format!("events #{}..#{} lost", *next, seq - 1));
    }
    *next = seq + 1;
    Ok(())
}

/// Calls `procedure` `rate` times a second until told to stop, checking that each RESULT
/// echoes its call; then waits for the calls in flight. Unanswered ones are lost.
async fn call(
    mut conn: Conn,
    procedure: String,
    rate: u64,
    mut stop: watch::Receiver<bool>,
    tally: Arc<Tally>,
    stall: Duration,
) -> Result<()> {
    let per_tick = (rate / 100).max(1);
    let mut tick = tokio::time::interval(Duration::from_millis(10));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut in_flight: HashMap<Id, u64> = HashMap::new();
    let (mut seq, mut stopping) = (0u64, false);
    while !(stopping && in_flight.is_empty()) {
        tokio::select! {
            _ = tick.tick(), if !stopping => {
                for _ in 0..per_tick {
                    conn.send(&Message::Call {
                        request: seq + 1,
                        options: Dict::new(),
                        procedure: procedure.clone(),
                        args: Some(payload(seq)),
                        kwargs: None,
                    })
                    .await?;
                    in_flight.insert(seq + 1, seq);
                    seq += 1;
                    tally.calls.fetch_add(1, Relaxed);
                }
                conn.flush().await?;
            }
            _ = stop.changed(), if !stopping => stopping = true,
            m = tokio::time::timeout(stall, conn.recv_msg()) => {
                let Ok(m) = m else {
                    tally.lost_calls.fetch_add(in_flight.len() as u64, Relaxed);
                    bail!("{} calls got no answer within {stall:?}", in_flight.len());
                };
                match m? {
                    Message::Result { request, args, .. } => {
                        let Some(sent) = in_flight.remove(&request) else {
                            bail!("RESULT for request {request}, which is not in flight");
                        };
                        if payload_seq(&args)? != sent {
                            bail!("the RESULT of call #{sent} carries other arguments");
                        }
                        tally.results.fetch_add(1, Relaxed);
                    }
                    Message::Error { request, error, .. } => {
                        in_flight.remove(&request);
                        tally.error(format!("call #{request}: ERROR {error}"));
                    }
                    other => bail!("the caller received {}", describe(&other)),
                }
            }
        }
    }
    let _ = conn.goodbye_and_close().await;
    Ok(())
}

/// One churning session: join, subscribe and register its own URIs, subscribe to the event
/// topic, call `procedure` every 100 ms while reading events for 0.3–2 s, then leave: `n % 3`
/// picks GOODBYE, a close without GOODBYE, or a TCP reset.
async fn churn_once(
    n: u64,
    target: &Target,
    cfg: &Config,
    topic: &str,
    procedure: &str,
    tally: &Tally,
) -> Result<()> {
    let mut conn = open_session(target, cfg).await?;
    tally.joins.fetch_add(1, Relaxed);
    let mut request = 1;
    let prefix = format!("{topic}.own{n}");
    for j in 0..OWN_ENTRIES {
        conn.subscribe(request, &format!("{prefix}.t{j}")).await?;
        conn.register(request + 1, &format!("{prefix}.p{j}"))
            .await?;
        request += 2;
    }
    conn.subscribe(request, topic).await?;
    request += 1;
    let life = Duration::from_millis(300 + (n * 7919) % 1700);
    let end = Instant::now() + life;
    let mut next_event: Option<u64> = None;
    let mut pending: Option<Id> = None;
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    loop {
        let done = Instant::now() >= end;
        if done && pending.is_none() {
            break;
        }
        tokio::select! {
            _ = tick.tick(), if pending.is_none() && !done => {
                conn.send(&Message::Call {
                    request,
                    options: Dict::new(),
                    procedure: procedure.to_owned(),
                    args: Some(payload(request)),
                    kwargs: None,
                })
                .await?;
                conn.flush().await?;
                pending = Some(request);
                request += 1;
            }
            m = tokio::time::timeout(cfg.stall_timeout, conn.recv_msg()) => {
                let Ok(m) = m else {
                    if pending.is_some() {
                        tally.lost_calls.fetch_add(1, Relaxed);
                    }
                    bail!("nothing received for {:?}", cfg.stall_timeout);
                };
                handle_churn_message(m?, &mut next_event, &mut pending, tally)?;
            }
        }
    }
    match n % 3 {
        0 => {
            conn.send(&Message::Goodbye {
                details: Dict::new(),
                reason: "wamp.close.close_realm".into(),
            })
            .await?;
            conn.flush().await?;
            loop {
                let m = tokio::time::timeout(SETUP_TIMEOUT, conn.recv_msg())
                    .await
                    .map_err(|_| anyhow!("no GOODBYE reply within {SETUP_TIMEOUT:?}"))??;
                if let Message::Goodbye { .. } = m {
                    break;
                }
                handle_churn_message(m, &mut next_event, &mut pending, tally)?;
            }
            let _ = conn.close().await;
            tally.left_goodbye.fetch_add(1, Relaxed);
        }
        1 => {
            let _ = conn.close().await;
            tally.left_close.fetch_add(1, Relaxed);
        }
        _ => {
            conn.reset();
            tally.left_reset.fetch_add(1, Relaxed);
        }
    }
    Ok(())
}

/// An event (checked for gaps from the first one this session received) or a call's result.
fn handle_churn_message(
    m: Message,
    next_event: &mut Option<u64>,
    pending: &mut Option<Id>,
    tally: &Tally,
) -> Result<()> {
    match m {
        Message::Event { args, .. } => {
            let seq = payload_seq(&args)?;
            let next = next_event.get_or_insert(seq);
            check_seq(next, seq, tally)?;
            tally.churn_events.fetch_add(1, Relaxed);
        }
        Message::Result { request, args, .. } if Some(request) == *pending => {
            if payload_seq(&args)? != request {
                bail!("the RESULT of call {request} carries other arguments");
            }
            *pending = None;
            tally.churn_calls.fetch_add(1, Relaxed);
        }
        other => bail!("a churning session received {}", describe(&other)),
    }
    Ok(())
}

/// Slow consumers waiting to be disconnected: session id to the waiter told when its
/// `wamp.session.on_leave` arrives.
type Kicks = Arc<Mutex<HashMap<Id, oneshot::Sender<()>>>>;

/// Reads `wamp.session.on_leave` and tells the waiting slow consumer, if it is one.
async fn watch_leaves(mut conn: Conn, kicks: Kicks, mut stop: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            _ = stop.changed() => break,
            m = conn.recv_msg() => match m {
                Ok(Message::Event { args, .. }) => {
                    let id = args.as_deref().and_then(|a| a.first()).and_then(Value::as_u64);
                    if let Some(waiter) = id.and_then(|id| kicks.lock().expect("not poisoned").remove(&id)) {
                        let _ = waiter.send(());
                    }
                }
                _ => break,
            }
        }
    }
    let _ = conn.goodbye_and_close().await;
}

/// Every `cfg.slow_every`: a session subscribes to the firehose topic and stops reading, and
/// the firehose runs until the router has disconnected it (seen as its `on_leave`).
async fn slow_consumers(
    mut firehose: Conn,
    topic: String,
    target: Target,
    cfg: Config,
    kicks: Kicks,
    mut stop: watch::Receiver<bool>,
    tally: Arc<Tally>,
) {
    let pad = "x".repeat(FIREHOSE_PAD);
    let mut seq = 0u64;
    let mut period = tokio::time::interval(cfg.slow_every);
    loop {
        tokio::select! {
            _ = period.tick() => {}
            _ = stop.changed() => break,
        }
        let result: Result<()> = async {
            let mut slow = Conn::connect(&target, cfg.serializer, SETUP_TIMEOUT).await?;
            let id = tokio::time::timeout(SETUP_TIMEOUT, slow.join(&cfg.realm))
                .await
                .map_err(|_| anyhow!("no WELCOME within {SETUP_TIMEOUT:?}"))??;
            let (tx, mut kicked) = oneshot::channel();
            kicks.lock().expect("not poisoned").insert(id, tx);
            slow.subscribe(1, &topic).await?;
            tally.slow_started.fetch_add(1, Relaxed);
            // From here on it reads nothing.
            let deadline = Instant::now() + SLOW_KICK_DEADLINE;
            let mut tick = tokio::time::interval(Duration::from_millis(10));
            loop {
                tokio::select! {
                    _ = &mut kicked => break,
                    _ = tick.tick() => {
                        if Instant::now() >= deadline {
                            bail!("a slow consumer was still connected after {SLOW_KICK_DEADLINE:?} of firehose");
                        }
                        for _ in 0..10 {
                            firehose.send(&Message::Publish {
                                request: seq + 1,
                                options: Dict::new(),
                                topic: topic.clone(),
                                args: Some(vec![Value::UInt(seq), Value::from(pad.as_str())]),
                                kwargs: None,
                            }).await?;
                            seq += 1;
                        }
                        firehose.flush().await?;
                    }
                }
            }
            tally.slow_disconnected.fetch_add(1, Relaxed);
            slow.reset();
            Ok(())
        }
        .await;
        if let Err(e) = result {
            tally.error(format!("slow consumer: {e:#}"));
        }
    }
    let _ = firehose.goodbye_and_close().await;
}

/// A message's name, and the error URI or close reason when it has one.
fn describe(m: &Message) -> String {
    match m {
        Message::Error { error, args, .. } => format!("ERROR {error} {args:?}"),
        Message::Goodbye { reason, .. } | Message::Abort { reason, .. } => {
            format!("{} {reason}", m.name())
        }
        other => other.name().to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rss_floor_is_the_lowest_sample_of_the_window_before() {
        let samples: Vec<(f64, u64)> = [10, 30, 12, 11, 40, 13]
            .iter()
            .enumerate()
            .map(|(i, k)| (i as f64 + 1.0, *k))
            .collect();
        assert_eq!(rss_floor(&samples, 3.0, 10.0), Some(10));
        assert_eq!(rss_floor(&samples, 6.0, 3.0), Some(11));
        assert_eq!(rss_floor(&samples, 6.0, 1.0), Some(13));
        assert_eq!(rss_floor(&samples, 0.5, 10.0), None);
    }
}
