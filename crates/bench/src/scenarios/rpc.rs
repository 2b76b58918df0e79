//! `rpc` and `rpc-par`: one caller session calls an echo procedure registered by one callee
//! session, one call at a time (`rpc`) or `--window` calls in flight (`rpc-par`).
//!
//! Call `i` carries `[i, "xxxxxxxxxx"]` and its RESULT must carry the same (the callee echoes
//! the arguments): every call is matched with its own result, and a missing result (no progress
//! for `--stall-timeout`), an ERROR or a result for the wrong call fails the run. Round trips
//! are timed from queuing the CALL to receiving its RESULT.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use wamp_proto::{Dict, Message};

use super::{open_session, payload, payload_seq};
use crate::conn::{Conn, Target};
use crate::procfs::Probe;
use crate::{fresh_uri, Budget, Config, Progress, Rig, RunKind, RunOutcome, Scenario};

/// Round trips kept per run at most (beyond, the first ones stand for the run).
const MAX_LATENCY_SAMPLES: usize = 10_000_000;

pub struct RpcRig {
    caller: Conn,
    procedure: String,
    window: usize,
    /// Calls made so far (= the next call's sequence number); request id = seq + 1.
    seq: u64,
    callee: JoinHandle<Result<u64>>,
    callee_stop: oneshot::Sender<()>,
    invocations: Arc<AtomicU64>,
    stall_timeout: Duration,
}

impl RpcRig {
    pub async fn setup(cfg: &Config, target: &Target) -> Result<RpcRig> {
        let window = match cfg.scenario {
            Scenario::RpcPar => cfg.window.max(1),
            _ => 1,
        };
        let procedure = fresh_uri(cfg, "echo");
        let mut callee = open_session(target, cfg).await.context("callee")?;
        let registration = callee.register(1, &procedure).await.context("callee")?;
        let caller = open_session(target, cfg).await.context("caller")?;
        let invocations = Arc::new(AtomicU64::new(0));
        let (callee_stop, stop_rx) = oneshot::channel();
        let count = invocations.clone();
        let callee = tokio::spawn(async move {
            echo_callee(callee, registration, &count, stop_rx)
                .await
                .context("callee")
        });
        Ok(RpcRig {
            caller,
            procedure,
            window,
            seq: 0,
            callee,
            callee_stop,
            invocations,
            stall_timeout: cfg.stall_timeout,
        })
    }

    fn call_message(&self, seq: u64) -> Message {
        Message::Call {
            request: seq + 1,
            options: Dict::new(),
            procedure: self.procedure.clone(),
            args: Some(payload(seq)),
            kwargs: None,
        }
    }
}

impl Rig for RpcRig {
    fn op(&self) -> &'static str {
        "call"
    }

    fn messages_per_op(&self) -> f64 {
        // CALL in, INVOCATION out, YIELD in, RESULT out.
        4.0
    }

    async fn run_once(
        &mut self,
        kind: RunKind,
        budget: Budget,
        _probe: Option<&Probe>,
        progress: &Progress,
    ) -> Result<RunOutcome> {
        if self.callee.is_finished() {
            bail!("the callee stopped");
        }
        let start = Instant::now();
        let seq0 = self.seq;
        let (end, deadline) = match budget {
            Budget::Count(n) => (seq0 + n, None),
            Budget::Time(d) => (u64::MAX, Some(start + d)),
        };
        let record = kind == RunKind::Measured;
        let mut latencies = Vec::new();
        // Calls in flight, oldest first: (sequence number, sent at).
        let mut in_flight: VecDeque<(u64, Instant)> = VecDeque::with_capacity(self.window);
        let mut stopped = false;
        loop {
            while !stopped && in_flight.len() < self.window {
                if self.seq >= end || deadline.is_some_and(|d| Instant::now() >= d) {
                    stopped = true;
                    break;
                }
                let msg = self.call_message(self.seq);
                in_flight.push_back((self.seq, Instant::now()));
                self.caller.send(&msg).await?;
                self.seq += 1;
            }
            if in_flight.is_empty() {
                break;
            }
            let msg = match tokio::time::timeout(self.stall_timeout, self.caller.recv_msg()).await {
                Ok(r) => r?,
                Err(_) => bail!(
                    "calls lost: no RESULT within {:?} for call #{} ({} in flight, the callee \
                     saw {} invocations)",
                    self.stall_timeout,
                    in_flight[0].0,
                    in_flight.len(),
                    self.invocations.load(Ordering::Relaxed)
                ),
            };
            let now = Instant::now();
            match msg {
                Message::Result { request, args, .. } => {
                    let seq = request
                        .checked_sub(1)
                        .ok_or_else(|| anyhow!("RESULT for request 0"))?;
                    let at = match in_flight.front() {
                        Some((s, _)) if *s == seq => 0,
                        _ => in_flight
                            .iter()
                            .position(|(s, _)| *s == seq)
                            .ok_or_else(|| {
                                anyhow!("RESULT for request {request}, which is not in flight")
                            })?,
                    };
                    let (_, sent) = in_flight.remove(at).expect("found");
                    let echoed = payload_seq(&args)?;
                    if echoed != seq {
                        bail!("the RESULT of call #{seq} carries the arguments of call #{echoed}");
                    }
                    if record && latencies.len() < MAX_LATENCY_SAMPLES {
                        latencies.push(now.duration_since(sent).as_nanos() as u64);
                    }
                    progress.add(1);
                }
                Message::Error { error, request, .. } => {
                    bail!("call #{} failed: ERROR {error}", request.saturating_sub(1))
                }
                Message::Goodbye { reason, .. } | Message::Abort { reason, .. } => {
                    bail!("the router closed the caller's session: {reason}")
                }
                other => bail!("the caller received an unexpected {}", other.name()),
            }
        }
        Ok(RunOutcome {
            ops: self.seq - seq0,
            elapsed: start.elapsed(),
            latencies_ns: latencies,
            ..Default::default()
        })
    }

    async fn finish(self) -> Result<()> {
        let RpcRig {
            caller,
            callee,
            callee_stop,
            seq,
            ..
        } = self;
        let _ = caller.goodbye_and_close().await;
        let _ = callee_stop.send(());
        let invoked = tokio::time::timeout(Duration::from_secs(10), callee)
            .await
            .map_err(|_| anyhow!("the callee did not close in time"))?
            .map_err(|e| anyhow!("the callee panicked: {e}"))??;
        if invoked != seq {
            bail!("the callee was invoked {invoked} times for {seq} calls");
        }
        Ok(())
    }
}

/// Answers every INVOCATION with a YIELD of its arguments until told to stop; then leaves.
/// Returns the number of invocations.
pub(crate) async fn echo_callee(
    mut conn: Conn,
    registration: u64,
    count: &AtomicU64,
    mut stop: oneshot::Receiver<()>,
) -> Result<u64> {
    let mut n = 0u64;
    loop {
        tokio::select! {
            biased;
            r = conn.recv() => {
                let Some(payload) = r? else {
                    bail!("the router closed the connection after {n} invocations");
                };
                match conn.decode(&payload)? {
                    Message::Invocation { request, registration: r, args, kwargs, .. }
                        if r == registration =>
                    {
                        conn.send(&Message::Yield { request, options: Dict::new(), args, kwargs })
                            .await?;
                        n += 1;
                        count.store(n, Ordering::Relaxed);
                    }
                    Message::Goodbye { reason, .. } | Message::Abort { reason, .. } => {
                        bail!("the router closed the session after {n} invocations: {reason}")
                    }
                    other => bail!("unexpected {}", other.name()),
                }
            }
            _ = &mut stop => break,
        }
    }
    conn.flush().await?;
    let _ = conn.goodbye_and_close().await;
    Ok(n)
}
