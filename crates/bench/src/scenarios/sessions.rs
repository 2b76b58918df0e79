//! `sessions`: opens `--sessions` sessions (connect, HELLO, WELCOME), `--connect-batch` at a
//! time, holds them idle for `--hold`, measures the router's resident memory, and closes them.
//!
//! The join rate is sessions over the time to open them all; the router CPU per session is its
//! CPU time over that opening phase; the memory per session is (the router's resident memory
//! while holding them - its resident memory before the scenario started) / sessions. The warm-up
//! opens a tenth of the sessions (at most 100).

use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use super::{in_batches, open_session};
use crate::conn::Target;
use crate::procfs::Probe;
use crate::{Budget, Config, Progress, Rig, RunKind, RunOutcome};

pub struct SessionsRig {
    target: Target,
    cfg: Config,
    /// The router's resident memory before any session of the scenario.
    baseline_rss_kib: Option<u64>,
}

impl SessionsRig {
    pub async fn setup(
        cfg: &Config,
        target: &Target,
        probe: Option<&Probe>,
    ) -> Result<SessionsRig> {
        if cfg.sessions == 0 {
            anyhow::bail!("--sessions must be at least 1");
        }
        // One session first, so that a refused realm or serializer fails clearly and at once.
        let probe_session = open_session(target, cfg).await?;
        probe_session.goodbye_and_close().await?;
        tokio::time::sleep(Duration::from_millis(200)).await;
        Ok(SessionsRig {
            target: target.clone(),
            cfg: cfg.clone(),
            baseline_rss_kib: probe.map(|p| p.sample()).transpose()?.map(|s| s.rss_kib),
        })
    }
}

impl Rig for SessionsRig {
    fn op(&self) -> &'static str {
        "session"
    }

    fn messages_per_op(&self) -> f64 {
        // HELLO in, WELCOME out.
        2.0
    }

    async fn run_once(
        &mut self,
        kind: RunKind,
        _budget: Budget,
        probe: Option<&Probe>,
        progress: &Progress,
    ) -> Result<RunOutcome> {
        let n = match kind {
            RunKind::Warmup => (self.cfg.sessions / 10).clamp(1, 100),
            RunKind::Measured => self.cfg.sessions,
        };
        let before = probe.map(Probe::sample).transpose()?;
        let start = Instant::now();
        let (target, cfg) = (&self.target, &self.cfg);
        let conns = in_batches(n, cfg.connect_batch, |i| async move {
            let c = open_session(target, cfg)
                .await
                .with_context(|| format!("session {} of {n}", i + 1))?;
            progress.add(1);
            Ok(c)
        })
        .await?;
        let elapsed = start.elapsed();
        let after_open = probe.map(Probe::sample).transpose()?;
        tokio::time::sleep(cfg.hold).await;
        let held = probe.map(Probe::sample).transpose()?;
        // Close them all, a batch at a time.
        let mut conns = conns.into_iter().map(Some).collect::<Vec<_>>();
        let total = conns.len();
        let mut i = 0;
        while i < total {
            let end = (i + cfg.connect_batch.max(1)).min(total);
            let closing = conns[i..end]
                .iter_mut()
                .filter_map(Option::take)
                .map(|c| async move {
                    let _ = c.goodbye_and_close().await;
                });
            futures_util::future::join_all(closing).await;
            i = end;
        }
        // Let the router take the sessions down before the next run.
        tokio::time::sleep(Duration::from_millis(500)).await;
        let rss = held.map(|s| s.rss_kib);
        Ok(RunOutcome {
            ops: n as u64,
            elapsed,
            latencies_ns: Vec::new(),
            router_cpu: match (before, after_open) {
                (Some(b), Some(a)) => Some(a.cpu.saturating_sub(b.cpu)),
                _ => None,
            },
            router_rss_kib: rss,
            kib_per_session: match (rss, self.baseline_rss_kib) {
                (Some(r), Some(b)) => Some(r.saturating_sub(b) as f64 / n as f64),
                _ => None,
            },
        })
    }

    async fn finish(self) -> Result<()> {
        Ok(())
    }
}
