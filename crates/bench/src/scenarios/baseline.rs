//! `tcp-baseline`: no router. A TCP ping-pong on loopback between two threads of this process
//! (32-byte messages, Nagle off), one round trip at a time: the floor of any request/reply over
//! loopback on this machine. When the process may use several CPUs, the two threads are pinned to
//! two different ones (the first and the last allowed), so every message wakes a thread on the
//! other core; under `taskset -c N` both share core N. A sequential WAMP call crosses two such round trips (caller ->
//! router -> callee and back), so `rpc` cannot beat half this rate.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::Instant;

use anyhow::{Context, Result};

use crate::procfs::Probe;
use crate::{Budget, Progress, Rig, RunKind, RunOutcome};

const MESSAGE: usize = 32;

pub struct BaselineRig {
    client: Option<TcpStream>,
    echo: Option<std::thread::JoinHandle<()>>,
    client_cpu: Option<usize>,
}

/// The CPUs this process may run on.
fn allowed_cpus() -> Vec<usize> {
    // SAFETY: a zeroed cpu_set_t is valid; sched_getaffinity writes at most its size.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) != 0 {
            return Vec::new();
        }
        (0..libc::CPU_SETSIZE as usize)
            .filter(|&c| libc::CPU_ISSET(c, &set))
            .collect()
    }
}

/// Pins the calling thread to `cpu` (best effort).
fn pin_current_thread(cpu: usize) {
    // SAFETY: as above; sched_setaffinity(0, ..) applies to the calling thread.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
    }
}

impl BaselineRig {
    pub fn setup() -> Result<BaselineRig> {
        let listener = TcpListener::bind("127.0.0.1:0").context("loopback listener")?;
        let addr = listener.local_addr()?;
        let cpus = allowed_cpus();
        let (client_cpu, echo_cpu) = (cpus.first().copied(), cpus.last().copied());
        let echo = std::thread::spawn(move || {
            if let Some(cpu) = echo_cpu {
                pin_current_thread(cpu);
            }
            let Ok((mut s, _)) = listener.accept() else {
                return;
            };
            let _ = s.set_nodelay(true);
            let mut buf = [0u8; MESSAGE];
            while s.read_exact(&mut buf).is_ok() {
                if s.write_all(&buf).is_err() {
                    break;
                }
            }
        });
        let client = TcpStream::connect(addr)?;
        client.set_nodelay(true)?;
        Ok(BaselineRig {
            client: Some(client),
            echo: Some(echo),
            client_cpu,
        })
    }
}

impl Rig for BaselineRig {
    fn op(&self) -> &'static str {
        "round trip"
    }

    fn messages_per_op(&self) -> f64 {
        2.0
    }

    async fn run_once(
        &mut self,
        kind: RunKind,
        budget: Budget,
        _probe: Option<&Probe>,
        progress: &Progress,
    ) -> Result<RunOutcome> {
        let mut client = self.client.take().context("no connection")?;
        let record = kind == RunKind::Measured;
        let client_cpu = self.client_cpu;
        let (client, outcome) = tokio::task::block_in_place(move || {
            if let Some(cpu) = client_cpu {
                pin_current_thread(cpu);
            }
            let start = Instant::now();
            let (end, deadline) = match budget {
                Budget::Count(n) => (n, None),
                Budget::Time(d) => (u64::MAX, Some(start + d)),
            };
            let mut buf = [0u8; MESSAGE];
            let mut latencies = Vec::new();
            let mut n = 0u64;
            while n < end && !deadline.is_some_and(|d| n % 64 == 0 && Instant::now() >= d) {
                let t = Instant::now();
                buf[..8].copy_from_slice(&n.to_le_bytes());
                client.write_all(&buf)?;
                client.read_exact(&mut buf)?;
                if buf[..8] != n.to_le_bytes() {
                    anyhow::bail!("the echo returned another message");
                }
                if record {
                    latencies.push(t.elapsed().as_nanos() as u64);
                }
                n += 1;
                if n % 1024 == 0 {
                    progress.add(1024);
                }
            }
            Ok((
                client,
                RunOutcome {
                    ops: n,
                    elapsed: start.elapsed(),
                    latencies_ns: latencies,
                    ..Default::default()
                },
            ))
        })?;
        self.client = Some(client);
        Ok(outcome)
    }

    async fn finish(mut self) -> Result<()> {
        drop(self.client.take());
        if let Some(echo) = self.echo.take() {
            let _ = echo.join();
        }
        Ok(())
    }
}
