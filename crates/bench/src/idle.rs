//! `idle`: many concurrent idle sessions on one router, joined as fast as the router takes
//! them, while an active client keeps calling and publishing through the same router.
//!
//! Each idle session is a bare connection, not a client: a socket bound to one of several
//! loopback source addresses (127.0.0.2, 127.0.0.3, ...; each address has its own ~28k
//! ephemeral ports), a minimal WebSocket upgrade (or the 4-octet RawSocket handshake), one
//! HELLO, one WELCOME, and then nothing. All of them live in the one runtime of the tool, as
//! sockets kept in a list, so that the client side costs little next to the router.
//!
//! Reported: the join rate (sessions over the time to open them all), the router's CPU time per
//! join, its resident memory per session ((RSS while holding them - RSS before) / sessions),
//! and the round trips of the active client (a call to an echo callee and an event published to
//! itself, 100 a second) while sessions join and while they are held.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use futures_util::StreamExt;
use serde::Serialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::oneshot;
use turnstile_client::rawsocket;
use wamp_proto::{dict, Dict, Message, Serializer, Value};

use crate::conn::Target;
use crate::procfs::Probe;
use crate::scenarios::rpc::echo_callee;
use crate::scenarios::{open_session, payload, payload_seq, SETUP_TIMEOUT};
use crate::stats::Latency;
use crate::{fresh_uri, Config};

/// Idle sessions per loopback source address by default: well below the ~28k ephemeral ports
/// each address has (`net.ipv4.ip_local_port_range`), leaving room for ports still in TIME_WAIT
/// from an earlier run (a run that fails half-way leaves its connections there for a minute).
pub const SESSIONS_PER_SOURCE: usize = 10_000;

/// What an `idle` run measured.
#[derive(Debug, Clone, Serialize)]
pub struct IdleReport {
    pub url: String,
    pub framing: String,
    pub serializer: String,
    pub sessions: usize,
    pub source_addresses: Vec<String>,
    pub concurrency: usize,
    pub join_seconds: f64,
    pub joins_per_second: f64,
    pub router_pid: Option<u32>,
    pub router_cpu_us_per_join: Option<f64>,
    pub router_rss_before_kib: Option<u64>,
    pub router_rss_holding_kib: Option<u64>,
    pub kib_per_session: Option<f64>,
    /// The active client's round trips while the sessions joined.
    pub active_while_joining: Option<Latency>,
    /// ... and while they were held idle.
    pub active_while_holding: Option<Latency>,
    /// Active round trips that failed (no answer within 5 s, an ERROR).
    pub active_failures: u64,
}

impl IdleReport {
    pub fn text(&self) -> String {
        let opt = |v: Option<f64>, unit: &str| v.map_or("?".into(), |v| format!("{v:.1}{unit}"));
        let lat = |l: &Option<Latency>| {
            l.as_ref().map_or("no samples".into(), |l| {
                format!(
                    "{} round trips, p50 {:.0} µs, p90 {:.0} µs, p99 {:.0} µs, max {:.0} µs",
                    l.samples, l.p50_us, l.p90_us, l.p99_us, l.max_us
                )
            })
        };
        format!(
            "idle {} sessions against {} ({} {}), {} at a time from {}:\n  \
             joined in {:.2} s: {:.0} joins/s; router CPU {} per join\n  \
             router RSS {} KiB before, {} KiB holding them: {} per session\n  \
             active client while joining: {}\n  \
             active client while holding: {}\n  \
             active client failures: {}\n",
            self.sessions,
            self.url,
            self.framing,
            self.serializer,
            self.concurrency,
            self.source_addresses.join(", "),
            self.join_seconds,
            self.joins_per_second,
            opt(self.router_cpu_us_per_join, " µs"),
            self.router_rss_before_kib
                .map_or("?".into(), |k| k.to_string()),
            self.router_rss_holding_kib
                .map_or("?".into(), |k| k.to_string()),
            opt(self.kib_per_session, " KiB"),
            lat(&self.active_while_joining),
            lat(&self.active_while_holding),
            self.active_failures,
        )
    }
}

/// Where the idle connections go and what they say.
struct Plan {
    router: SocketAddr,
    sources: Vec<Ipv4Addr>,
    /// The bytes that open a session before HELLO: the HTTP upgrade request or the RawSocket
    /// handshake.
    opening: Vec<u8>,
    /// The HELLO, framed (a masked WebSocket text/binary frame or a RawSocket frame).
    hello: Vec<u8>,
    websocket: bool,
    serializer: Serializer,
}

pub async fn run(cfg: &Config, sources: Option<usize>) -> Result<IdleReport> {
    let target = Target::parse(&cfg.url)?;
    let (host, port, path, websocket) = match &target {
        Target::WebSocket { tls: true, url, .. } => {
            bail!("{url}: idle opens bare connections without TLS: use a ws:// or rs:// URL")
        }
        Target::WebSocket {
            url, host, port, ..
        } => {
            let path = url
                .trim_start_matches("ws://")
                .split_once('/')
                .map_or("/".to_owned(), |(_, p)| format!("/{p}"));
            (host.clone(), *port, path, true)
        }
        Target::RawTcp { host, port } => (host.clone(), *port, String::new(), false),
        Target::RawUnix(_) => {
            bail!("idle spreads TCP connections over source addresses: use a ws:// or rs:// URL")
        }
    };
    let router = tokio::net::lookup_host((host.as_str(), port))
        .await?
        .find(SocketAddr::is_ipv4)
        .ok_or_else(|| anyhow!("{host} has no IPv4 address"))?;
    if !router.ip().is_loopback() {
        bail!("idle binds its sockets to loopback source addresses: the router must be on 127.0.0.0/8");
    }
    let n = cfg.sessions;
    let k = sources.unwrap_or_else(|| n.div_ceil(SESSIONS_PER_SOURCE).max(1));
    if !(1..=250).contains(&k) {
        bail!("--sources must be 1 to 250 (127.0.0.2 to 127.0.0.251)");
    }
    let sources: Vec<Ipv4Addr> = (0..k)
        .map(|i| Ipv4Addr::new(127, 0, 0, 2 + i as u8))
        .collect();
    let plan = Arc::new(plan(cfg, router, sources, &host, &path, websocket)?);
    let (probe, warning) = crate::find_router(cfg, &target)?;
    if let Some(w) = warning {
        eprintln!("turnstile-bench: warning: {w}");
    }

    // The active client: an echo callee, and a prober that calls it and publishes to itself.
    let procedure = fresh_uri(cfg, "idle.echo");
    let topic = fresh_uri(cfg, "idle.events");
    let mut callee = open_session(&target, cfg).await.context("callee")?;
    let registration = callee.register(1, &procedure).await?;
    let (callee_stop, callee_stop_rx) = oneshot::channel();
    let callee_task = tokio::spawn(async move {
        let count = AtomicU64::new(0);
        echo_callee(callee, registration, &count, callee_stop_rx).await
    });
    let mut prober = open_session(&target, cfg).await.context("active client")?;
    prober.subscribe(1, &topic).await?;
    let holding = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let samples: Arc<Mutex<(Vec<u64>, Vec<u64>)>> = Arc::default();
    let failures = Arc::new(AtomicU64::new(0));
    let prober_task = {
        let (holding, stop, samples, failures) = (
            holding.clone(),
            stop.clone(),
            samples.clone(),
            failures.clone(),
        );
        tokio::spawn(async move {
            probe_loop(
                &mut prober,
                &procedure,
                &topic,
                &holding,
                &stop,
                &samples,
                &failures,
            )
            .await;
            let _ = prober.goodbye_and_close().await;
        })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;

    let before = probe.as_ref().map(Probe::sample).transpose()?;
    let concurrency = cfg.connect_batch.max(1);
    let done = AtomicU64::new(0);
    let start = Instant::now();
    let mut conns: Vec<TcpStream> = Vec::with_capacity(n);
    {
        let mut opening = futures_util::stream::iter(0..n)
            .map(|i| {
                let plan = plan.clone();
                async move {
                    tokio::time::timeout(SETUP_TIMEOUT, open_idle(&plan, i))
                        .await
                        .map_err(|_| anyhow!("no WELCOME within {SETUP_TIMEOUT:?}"))?
                        .with_context(|| format!("idle session {}", i + 1))
                }
            })
            .buffer_unordered(concurrency);
        let mut last_report = Instant::now();
        while let Some(c) = opening.next().await {
            let c = match c {
                Ok(c) => c,
                Err(e) => {
                    reset_all(conns);
                    return Err(e);
                }
            };
            conns.push(c);
            let d = done.fetch_add(1, Relaxed) + 1;
            if cfg.progress && last_report.elapsed() >= Duration::from_secs(2) {
                last_report = Instant::now();
                eprintln!(
                    "  idle: {d} sessions joined, {:.0}/s",
                    d as f64 / start.elapsed().as_secs_f64()
                );
            }
        }
    }
    let join_time = start.elapsed();
    let after_join = probe.as_ref().map(Probe::sample).transpose()?;
    holding.store(true, Relaxed);
    tokio::time::sleep(cfg.hold).await;
    let held = probe.as_ref().map(Probe::sample).transpose()?;
    stop.store(true, Relaxed);
    let _ = prober_task.await;
    let _ = callee_stop.send(());
    match callee_task.await {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => {
            eprintln!("turnstile-bench: the active client's callee failed: {e:#}");
            failures.fetch_add(1, Relaxed);
        }
        Err(e) => bail!("the callee panicked: {e}"),
    }
    reset_all(conns);

    let (mut joining, mut holding_samples) =
        std::mem::take(&mut *samples.lock().expect("not poisoned"));
    let rss_before = before.map(|s| s.rss_kib);
    let rss_held = held.map(|s| s.rss_kib);
    Ok(IdleReport {
        url: cfg.url.clone(),
        framing: target.framing().to_owned(),
        serializer: cfg.serializer.name().to_owned(),
        sessions: n,
        source_addresses: plan.sources.iter().map(ToString::to_string).collect(),
        concurrency,
        join_seconds: join_time.as_secs_f64(),
        joins_per_second: n as f64 / join_time.as_secs_f64(),
        router_pid: probe.as_ref().map(Probe::pid),
        router_cpu_us_per_join: match (before, after_join) {
            (Some(b), Some(a)) => Some(a.cpu.saturating_sub(b.cpu).as_secs_f64() * 1e6 / n as f64),
            _ => None,
        },
        router_rss_before_kib: rss_before,
        router_rss_holding_kib: rss_held,
        kib_per_session: match (rss_before, rss_held) {
            (Some(b), Some(h)) => Some(h.saturating_sub(b) as f64 / n as f64),
            _ => None,
        },
        active_while_joining: Latency::from_nanos(&mut joining),
        active_while_holding: Latency::from_nanos(&mut holding_samples),
        active_failures: failures.load(Relaxed),
    })
}

/// Closes the idle connections with a reset: no TIME_WAIT is left on the source ports for the
/// next run.
fn reset_all(conns: Vec<TcpStream>) {
    for c in &conns {
        crate::conn::reset_on_close(std::os::fd::AsRawFd::as_raw_fd(c));
    }
}

/// The bytes every idle connection sends, built once.
fn plan(
    cfg: &Config,
    router: SocketAddr,
    sources: Vec<Ipv4Addr>,
    host: &str,
    path: &str,
    websocket: bool,
) -> Result<Plan> {
    let role = || Value::Dict(Dict::new());
    let hello = Message::Hello {
        realm: cfg.realm.clone(),
        details: dict! {"roles" => Value::Dict(dict! {
            "publisher" => role(), "subscriber" => role(), "caller" => role(), "callee" => role(),
        })},
    };
    let payload = cfg
        .serializer
        .encode(&hello)
        .map_err(|e| anyhow!("cannot encode HELLO: {e}"))?;
    let (opening, framed) = if websocket {
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: {host}:{}\r\nUpgrade: websocket\r\nConnection: \
             Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: \
             13\r\nSec-WebSocket-Protocol: {}\r\n\r\n",
            router.port(),
            cfg.serializer.ws_subprotocol()
        );
        let text = cfg.serializer == Serializer::Json;
        (request.into_bytes(), ws_client_frame(text, &payload))
    } else {
        let opening = rawsocket::handshake_request(rawsocket::MAX_LENGTH_EXPONENT, cfg.serializer);
        let mut framed = rawsocket::frame_header(0, payload.len())?.to_vec();
        framed.extend_from_slice(&payload);
        (opening.to_vec(), framed)
    };
    Ok(Plan {
        router,
        sources,
        opening: opening.to_vec(),
        hello: framed,
        websocket,
        serializer: cfg.serializer,
    })
}

/// A masked client frame (RFC 6455 §5.2) holding `payload`. The mask is fixed: it only has to be
/// there.
fn ws_client_frame(text: bool, payload: &[u8]) -> Vec<u8> {
    const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];
    let mut f = vec![if text { 0x81 } else { 0x82 }];
    match payload.len() {
        n if n < 126 => f.push(0x80 | n as u8),
        n if n <= 0xffff => {
            f.push(0x80 | 126);
            f.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            f.push(0x80 | 127);
            f.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    f.extend_from_slice(&MASK);
    f.extend(payload.iter().enumerate().map(|(i, b)| b ^ MASK[i % 4]));
    f
}

/// Opens idle session `i`: connect from its source address, upgrade or handshake, HELLO, and
/// read the WELCOME.
async fn open_idle(plan: &Plan, i: usize) -> Result<TcpStream> {
    let source = plan.sources[i % plan.sources.len()];
    let socket = TcpSocket::new_v4()?;
    // The port is picked at connect time, for the whole 4-tuple: without this, bind() picks it
    // alone and, from about half of the ephemeral range on (the kernel keeps the other half for
    // connect()), each bind searches long and the joins stall.
    let no_port: libc::c_int = 1;
    // SAFETY: setsockopt reads an int of the size given from a valid pointer; the socket is
    // open (owned by `socket`).
    unsafe {
        libc::setsockopt(
            std::os::fd::AsRawFd::as_raw_fd(&socket),
            libc::IPPROTO_IP,
            libc::IP_BIND_ADDRESS_NO_PORT,
            (&no_port as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
    socket
        .bind(SocketAddr::new(IpAddr::V4(source), 0))
        .with_context(|| format!("cannot bind to {source}"))?;
    let mut stream = socket
        .connect(plan.router)
        .await
        .with_context(|| format!("cannot connect from {source} to {}", plan.router))?;
    stream.set_nodelay(true)?;
    stream.write_all(&plan.opening).await?;
    let mut buf = [0u8; 1024];
    if plan.websocket {
        // The 101 response: read up to the end of its head (the router sends nothing after it
        // before WELCOME).
        let mut len = 0;
        loop {
            let n = stream.read(&mut buf[len..]).await?;
            if n == 0 {
                bail!("the router closed the connection during the upgrade");
            }
            len += n;
            if buf[..len].windows(4).any(|w| w == b"\r\n\r\n") {
                break;
            }
            if len == buf.len() {
                bail!(
                    "the upgrade response head is larger than {} bytes",
                    buf.len()
                );
            }
        }
        if !buf.starts_with(b"HTTP/1.1 101") {
            let head = String::from_utf8_lossy(&buf[..len.min(80)]).into_owned();
            bail!("the upgrade was refused: {head}");
        }
    } else {
        let mut reply = [0u8; 4];
        stream.read_exact(&mut reply).await?;
        if let rawsocket::HandshakeReply::Refused { code } =
            rawsocket::parse_handshake_reply(reply)?
        {
            bail!("RawSocket handshake refused: error {code}");
        }
    }
    stream.write_all(&plan.hello).await?;
    let payload = if plan.websocket {
        read_ws_frame(&mut stream).await?
    } else {
        let mut header = [0u8; 4];
        stream.read_exact(&mut header).await?;
        let len = u32::from_be_bytes([0, header[1], header[2], header[3]]) as usize;
        let mut payload = vec![0; len];
        stream.read_exact(&mut payload).await?;
        payload
    };
    match plan.serializer.decode(&payload) {
        Ok(Message::Welcome { .. }) => Ok(stream),
        Ok(other) => bail!("expected WELCOME, the router sent {}", other.name()),
        Err(e) => bail!("cannot decode the router's reply to HELLO: {e}"),
    }
}

/// One unmasked server frame's payload (no fragmentation: WELCOME is one frame).
async fn read_ws_frame(stream: &mut TcpStream) -> Result<Vec<u8>> {
    let mut head = [0u8; 2];
    stream.read_exact(&mut head).await?;
    let len = match head[1] & 0x7f {
        126 => {
            let mut b = [0u8; 2];
            stream.read_exact(&mut b).await?;
            u16::from_be_bytes(b) as usize
        }
        127 => {
            let mut b = [0u8; 8];
            stream.read_exact(&mut b).await?;
            usize::try_from(u64::from_be_bytes(b))?
        }
        n => n as usize,
    };
    if len > 1 << 20 {
        bail!("a {len}-byte frame in reply to HELLO");
    }
    let mut payload = vec![0; len];
    stream.read_exact(&mut payload).await?;
    if head[0] & 0x0f == 0x8 {
        bail!("the router closed the WebSocket instead of answering HELLO");
    }
    Ok(payload)
}

/// 100 times a second: a call to the echo procedure and an event to the prober's own
/// subscription, each timed from sending to its answer; into the joining or holding samples.
async fn probe_loop(
    conn: &mut crate::conn::Conn,
    procedure: &str,
    topic: &str,
    holding: &AtomicBool,
    stop: &AtomicBool,
    samples: &Mutex<(Vec<u64>, Vec<u64>)>,
    failures: &AtomicU64,
) {
    let mut tick = tokio::time::interval(Duration::from_millis(10));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let publish_options = dict! {"exclude_me" => false};
    let mut seq = 0u64;
    while !stop.load(Relaxed) {
        tick.tick().await;
        seq += 1;
        let result: Result<()> = async {
            let sent = Instant::now();
            conn.send(&Message::Call {
                request: seq * 2,
                options: Dict::new(),
                procedure: procedure.to_owned(),
                args: Some(payload(seq)),
                kwargs: None,
            })
            .await?;
            conn.send(&Message::Publish {
                request: seq * 2 + 1,
                options: publish_options.clone(),
                topic: topic.to_owned(),
                args: Some(payload(seq)),
                kwargs: None,
            })
            .await?;
            conn.flush().await?;
            let (mut result, mut event) = (false, false);
            while !(result && event) {
                let m = tokio::time::timeout(Duration::from_secs(5), conn.recv_msg())
                    .await
                    .map_err(|_| anyhow!("no answer within 5 s"))??;
                let rtt = sent.elapsed().as_nanos() as u64;
                let ok = match m {
                    Message::Result { args, .. } => {
                        result = true;
                        payload_seq(&args)? == seq
                    }
                    Message::Event { args, .. } => {
                        event = true;
                        payload_seq(&args)? == seq
                    }
                    other => bail!("the active client received {}", other.name()),
                };
                if !ok {
                    bail!("an answer to an earlier probe");
                }
                let mut s = samples.lock().expect("not poisoned");
                if holding.load(Relaxed) {
                    s.1.push(rtt);
                } else {
                    s.0.push(rtt);
                }
            }
            Ok(())
        }
        .await;
        if let Err(e) = result {
            failures.fetch_add(1, Relaxed);
            eprintln!("turnstile-bench: active client: {e:#}");
            return;
        }
    }
}
