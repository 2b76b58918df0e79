//! `pubsub`, `pubsub-ack` and `fanout`: one publisher session and one or more subscriber
//! sessions on one topic.
//!
//! Event `i` carries `[i, "xxxxxxxxxx"]`; each subscriber checks that it receives every event in
//! order ([`SeqChecker`]), continuously over the warm-up and all runs, and the last run ends only
//! when every subscriber has received every event published. A gap, a duplicate, a reorder, a
//! lost connection or an event that never arrives (no progress for `--stall-timeout`) fails the
//! run.
//!
//! Flow control: the publisher stays at most `--backlog` events ahead of its slowest subscriber
//! (and, with acknowledge, at most `--window` publications ahead of the router's PUBLISHED), so
//! the router's outgoing queues stay bounded and the figure is a sustainable rate.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use tokio::sync::{oneshot, Notify};
use tokio::task::JoinHandle;
use wamp_proto::{dict, Dict, Id, Message};

use super::{in_batches, open_session, payload, payload_seq};
use crate::conn::{Conn, Target};
use crate::procfs::Probe;
use crate::stats::SeqChecker;
use crate::{fresh_uri, Budget, Config, Progress, Rig, RunKind, RunOutcome, Scenario};

/// Events encoded per write when nothing else limits the publisher.
const PUBLISH_BATCH: u64 = 256;

/// One subscriber's count of events received in order (= the next sequence number due), on its
/// own cache line.
#[repr(align(64))]
#[derive(Default)]
struct Counter(AtomicU64);

/// What the subscriber tasks share with the publisher.
struct Shared {
    received: Box<[Counter]>,
    /// The publisher is waiting: the next subscriber to progress wakes it.
    waiting: AtomicBool,
    notify: Notify,
    failure: Mutex<Option<String>>,
}

impl Shared {
    fn fail(&self, what: String) {
        let mut f = self.failure.lock().unwrap_or_else(|e| e.into_inner());
        f.get_or_insert(what);
        drop(f);
        self.notify.notify_one();
    }

    fn failure(&self) -> Option<String> {
        self.failure
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The slowest subscriber's count, and which subscriber that is.
    fn min_received(&self) -> (u64, usize) {
        let mut min = (u64::MAX, 0);
        for (i, c) in self.received.iter().enumerate() {
            let n = c.0.load(Ordering::SeqCst);
            if n < min.0 {
                min = (n, i);
            }
        }
        min
    }

    fn total_received(&self) -> u64 {
        self.received
            .iter()
            .map(|c| c.0.load(Ordering::Relaxed))
            .sum()
    }
}

struct Subscriber {
    task: JoinHandle<Result<u64>>,
    stop: oneshot::Sender<()>,
}

pub struct PubSubRig {
    publisher: Conn,
    topic: String,
    shared: Arc<Shared>,
    subscribers: Vec<Subscriber>,
    /// The next sequence number to publish (= events published so far).
    seq: u64,
    /// With acknowledge: publications in flight at most.
    window: Option<usize>,
    backlog: u64,
    stall_timeout: Duration,
}

impl PubSubRig {
    pub async fn setup(cfg: &Config, target: &Target) -> Result<PubSubRig> {
        let n = match cfg.scenario {
            Scenario::Fanout => cfg.subscribers,
            _ => 1,
        };
        if n == 0 {
            bail!("--subscribers must be at least 1");
        }
        let window = match cfg.scenario {
            Scenario::PubsubAck => Some(cfg.window.max(1)),
            _ => None,
        };
        let topic = fresh_uri(cfg, cfg.scenario.name());
        let shared = Arc::new(Shared {
            received: (0..n).map(|_| Counter::default()).collect(),
            waiting: AtomicBool::new(false),
            notify: Notify::new(),
            failure: Mutex::new(None),
        });
        let conns = in_batches(n, cfg.connect_batch, |i| {
            let topic = topic.clone();
            async move {
                let mut conn = open_session(target, cfg)
                    .await
                    .with_context(|| format!("subscriber {i}"))?;
                let sub = conn
                    .subscribe(1, &topic)
                    .await
                    .with_context(|| format!("subscriber {i}"))?;
                Ok((conn, sub))
            }
        })
        .await?;
        let subscribers = conns
            .into_iter()
            .enumerate()
            .map(|(i, (conn, sub))| {
                let (stop, stop_rx) = oneshot::channel();
                let shared = shared.clone();
                let task = tokio::spawn(async move {
                    let r = subscriber(i, conn, sub, &shared, stop_rx).await;
                    if let Err(e) = &r {
                        shared.fail(format!("subscriber {i}: {e:#}"));
                    }
                    r
                });
                Subscriber { task, stop }
            })
            .collect();
        let publisher = open_session(target, cfg).await.context("publisher")?;
        Ok(PubSubRig {
            publisher,
            topic,
            shared,
            subscribers,
            seq: 0,
            window,
            backlog: cfg.backlog.max(1),
            stall_timeout: cfg.stall_timeout,
        })
    }

    fn publish_message(&self, seq: u64, acknowledge: bool) -> Message {
        let options: Dict = if acknowledge {
            dict! {"acknowledge" => true}
        } else {
            Dict::new()
        };
        Message::Publish {
            // Request ids start at 1 and grow by one, also across runs.
            request: seq + 1,
            options,
            topic: self.topic.clone(),
            args: Some(payload(seq)),
            kwargs: None,
        }
    }

    fn check_failure(&self) -> Result<()> {
        match self.shared.failure() {
            Some(f) => Err(anyhow!("{f}")),
            None => Ok(()),
        }
    }

    /// Waits until every subscriber has received at least `target` events; fails if a
    /// subscriber fails or none of them progresses for the stall timeout.
    async fn wait_received(&self, target: u64) -> Result<u64> {
        let mut last = (self.shared.total_received(), Instant::now());
        loop {
            self.check_failure()?;
            let (min, _) = self.shared.min_received();
            if min >= target {
                return Ok(min);
            }
            self.shared.waiting.store(true, Ordering::SeqCst);
            let (min, slowest) = self.shared.min_received();
            if min >= target {
                self.shared.waiting.store(false, Ordering::SeqCst);
                return Ok(min);
            }
            let total = self.shared.total_received();
            if total != last.0 {
                last = (total, Instant::now());
            } else if last.1.elapsed() >= self.stall_timeout {
                bail!(
                    "events lost: subscriber {slowest} received {min} of {target} events and \
                     nothing arrived for {:?}",
                    self.stall_timeout
                );
            }
            let _ = tokio::time::timeout(Duration::from_millis(50), self.shared.notify.notified())
                .await;
        }
    }

    /// Publishes without acknowledge until the budget is spent.
    async fn publish_fire_and_forget(
        &mut self,
        end: u64,
        deadline: Option<Instant>,
        progress: &Progress,
    ) -> Result<()> {
        let n_subs = self.subscribers.len() as u64;
        let mut min = self.shared.min_received().0;
        loop {
            if self.seq >= end || deadline.is_some_and(|d| Instant::now() >= d) {
                break;
            }
            let ahead = self.seq.saturating_sub(min);
            if ahead >= self.backlog {
                self.publisher.flush().await?;
                min = self.wait_received(self.seq - self.backlog / 2).await?;
                continue;
            }
            let n = (self.backlog - ahead)
                .min(PUBLISH_BATCH)
                .min(end - self.seq);
            for _ in 0..n {
                let msg = self.publish_message(self.seq, false);
                self.publisher.send(&msg).await?;
                self.seq += 1;
            }
            self.publisher.flush().await?;
            progress.add(n * n_subs);
            self.check_failure()?;
            min = self.shared.min_received().0;
        }
        self.publisher.flush().await
    }

    /// Publishes with acknowledge, `window` in flight, until the budget is spent; every
    /// PUBLISHED must come, in order.
    async fn publish_acknowledged(
        &mut self,
        window: usize,
        end: u64,
        deadline: Option<Instant>,
        progress: &Progress,
    ) -> Result<()> {
        // Publications sent and not yet acknowledged are seq - acked.
        let mut acked = self.seq;
        let mut min = self.shared.min_received().0;
        let mut stopped = false;
        loop {
            let mut sent = 0;
            while !stopped && ((self.seq - acked) as usize) < window {
                if self.seq >= end || deadline.is_some_and(|d| Instant::now() >= d) {
                    stopped = true;
                    break;
                }
                if self.seq.saturating_sub(min) >= self.backlog {
                    break;
                }
                let msg = self.publish_message(self.seq, true);
                self.publisher.send(&msg).await?;
                self.seq += 1;
                sent += 1;
            }
            if sent > 0 {
                progress.add(sent);
            }
            if self.seq == acked {
                if stopped {
                    break;
                }
                // Held back by the slowest subscriber.
                self.publisher.flush().await?;
                min = self.wait_received(self.seq - self.backlog / 2).await?;
                continue;
            }
            let msg = tokio::time::timeout(self.stall_timeout, self.publisher.recv_msg())
                .await
                .map_err(|_| {
                    anyhow!(
                        "no PUBLISHED for publication #{acked} within {:?} ({} in flight)",
                        self.stall_timeout,
                        self.seq - acked
                    )
                })??;
            match msg {
                Message::Published { request, .. } if request == acked + 1 => acked += 1,
                Message::Published { request, .. } => bail!(
                    "PUBLISHED out of order: expected the reply to request {}, got {request}",
                    acked + 1
                ),
                Message::Error { error, .. } => {
                    bail!("the router refused publication #{acked}: ERROR {error}")
                }
                Message::Goodbye { reason, .. } | Message::Abort { reason, .. } => {
                    bail!("the router closed the publisher's session: {reason}")
                }
                other => bail!("the publisher received an unexpected {}", other.name()),
            }
            self.check_failure()?;
            min = self.shared.min_received().0;
        }
        Ok(())
    }
}

impl Rig for PubSubRig {
    fn op(&self) -> &'static str {
        if self.subscribers.len() > 1 {
            "delivery"
        } else {
            "event"
        }
    }

    fn messages_per_op(&self) -> f64 {
        // PUBLISH in (and PUBLISHED out) per event, one EVENT out per delivery.
        let per_event = if self.window.is_some() { 2.0 } else { 1.0 };
        1.0 + per_event / self.subscribers.len() as f64
    }

    async fn run_once(
        &mut self,
        _kind: RunKind,
        budget: Budget,
        _probe: Option<&Probe>,
        progress: &Progress,
    ) -> Result<RunOutcome> {
        self.check_failure()?;
        let start = Instant::now();
        let seq0 = self.seq;
        let (end, deadline) = match budget {
            Budget::Count(n) => (seq0 + n, None),
            Budget::Time(d) => (u64::MAX, Some(start + d)),
        };
        match self.window {
            None => {
                self.publish_fire_and_forget(end, deadline, progress)
                    .await?
            }
            Some(w) => {
                self.publish_acknowledged(w, end, deadline, progress)
                    .await?
            }
        }
        self.wait_received(self.seq).await?;
        let elapsed = start.elapsed();
        Ok(RunOutcome {
            ops: (self.seq - seq0) * self.subscribers.len() as u64,
            elapsed,
            ..Default::default()
        })
    }

    async fn finish(self) -> Result<()> {
        let PubSubRig {
            publisher,
            shared,
            subscribers,
            seq,
            ..
        } = self;
        let _ = publisher.goodbye_and_close().await;
        let mut first_error = None;
        let mut tasks = Vec::new();
        for s in subscribers {
            let _ = s.stop.send(());
            tasks.push(s.task);
        }
        for (i, task) in tasks.into_iter().enumerate() {
            let r = match tokio::time::timeout(Duration::from_secs(10), task).await {
                Err(_) => Err(anyhow!("subscriber {i} did not close in time")),
                Ok(Err(e)) => Err(anyhow!("subscriber {i} panicked: {e}")),
                Ok(Ok(Err(e))) => Err(e.context(format!("subscriber {i}"))),
                Ok(Ok(Ok(received))) if received != seq => Err(anyhow!(
                    "subscriber {i} received {received} events, {seq} were published"
                )),
                Ok(Ok(Ok(_))) => Ok(()),
            };
            if let Err(e) = r {
                first_error.get_or_insert(e);
            }
        }
        if let Some(f) = shared.failure() {
            return Err(anyhow!("{f}"));
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

/// Receives and checks events until told to stop; then leaves (GOODBYE), still checking what
/// arrives before the router's GOODBYE. Returns the number of events received.
async fn subscriber(
    index: usize,
    mut conn: Conn,
    subscription: Id,
    shared: &Shared,
    mut stop: oneshot::Receiver<()>,
) -> Result<u64> {
    let mut checker = SeqChecker::new();
    let counter = &shared.received[index].0;
    let handle = |checker: &mut SeqChecker, msg: Message| -> Result<bool> {
        match msg {
            Message::Event {
                subscription: s,
                args,
                ..
            } if s == subscription => {
                checker.check(payload_seq(&args)?)?;
                Ok(true)
            }
            Message::Goodbye { reason, details }
            | Message::Abort {
                reason, details, ..
            } => {
                bail!(
                    "the router closed the session after {} events: {reason} {details:?}",
                    checker.received()
                )
            }
            other => bail!("unexpected {} ({other:?})", other.name()),
        }
    };
    loop {
        tokio::select! {
            biased;
            r = conn.recv() => {
                let Some(payload) = r? else {
                    bail!("the router closed the connection after {} events", checker.received());
                };
                handle(&mut checker, conn.decode(&payload)?)?;
                counter.store(checker.received(), Ordering::SeqCst);
                if shared.waiting.load(Ordering::SeqCst) && shared.waiting.swap(false, Ordering::SeqCst) {
                    shared.notify.notify_one();
                }
            }
            _ = &mut stop => break,
        }
    }
    conn.send(&Message::Goodbye {
        details: Dict::new(),
        reason: "wamp.close.close_realm".into(),
    })
    .await?;
    conn.flush().await?;
    let closing = async {
        loop {
            match conn.recv_msg().await? {
                Message::Goodbye { .. } => return Ok::<_, anyhow::Error>(()),
                msg => {
                    handle(&mut checker, msg)?;
                }
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(5), closing)
        .await
        .map_err(|_| anyhow!("no GOODBYE from the router within 5 s"))??;
    let _ = conn.close().await;
    Ok(checker.received())
}
