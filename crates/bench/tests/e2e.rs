//! End-to-end runs of the benchmark against an in-process Turnstile router on ephemeral ports:
//! the counts must be exact, a foreign event on the topic must fail the run, and a refused realm
//! or serializer must fail with a clear message. Nothing here asserts anything about speed.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use turnstile::server::Server;
use turnstile_bench::{Budget, Config, Scenario};
use turnstile_config::{Format, NodeConfig};
use wamp_proto::Serializer;

/// A node with realm `realm1` (anonymous may do everything, statistics on), a web transport with
/// WebSocket at /ws, and a RawSocket transport, each accepting `serializers`.
fn node_config(serializers: &[&str]) -> NodeConfig {
    let node = json!({
        "version": 2,
        "workers": [{
            "type": "router",
            "realms": [{
                "name": "realm1",
                "roles": [{
                    "name": "anonymous",
                    "permissions": [{
                        "uri": "", "match": "prefix",
                        "allow": {"call": true, "register": true, "publish": true, "subscribe": true},
                        "disclose": {"caller": false, "publisher": false},
                        "cache": true
                    }]
                }],
                "stats": {}
            }],
            "transports": [
                {
                    "type": "web",
                    "endpoint": {"type": "tcp", "port": 1},
                    "paths": {"ws": {"type": "websocket", "serializers": serializers}}
                },
                {
                    "type": "rawsocket",
                    "endpoint": {"type": "tcp", "port": 2},
                    "serializers": serializers
                }
            ]
        }]
    });
    let text = serde_json::to_string(&node).unwrap();
    let path = std::env::temp_dir().join("turnstile-bench-test.json");
    let mut config = turnstile_config::load_str(&text, Format::Json, &path).expect("valid config");
    config.on_ephemeral_loopback_ports();
    config
}

struct Router {
    ws: String,
    rs: String,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<anyhow::Result<()>>,
}

impl Router {
    async fn start(serializers: &[&str]) -> Router {
        let server = Server::bind(node_config(serializers)).await.expect("bind");
        let addrs = server.local_addrs();
        let ws = format!("ws://{}/ws", addrs[0].tcp().unwrap());
        let rs = format!("rs://{}", addrs[1].tcp().unwrap());
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(server.run(async move {
            let _ = rx.await;
        }));
        Router {
            ws,
            rs,
            stop: Some(tx),
            task,
        }
    }

    async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        tokio::time::timeout(Duration::from_secs(10), &mut self.task)
            .await
            .expect("router stops")
            .unwrap()
            .unwrap();
    }
}

fn config(scenario: Scenario, url: &str, serializer: Serializer, count: u64) -> Config {
    let mut cfg = Config::new(scenario, url);
    cfg.serializer = serializer;
    cfg.budget = Budget::Count(count);
    cfg.warmup = Duration::ZERO;
    cfg.repeats = 2;
    cfg.stall_timeout = Duration::from_secs(5);
    cfg.hold = Duration::from_millis(50);
    cfg
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pubsub_counts_every_event_exactly() {
    let router = Router::start(&["json", "msgpack", "cbor"]).await;
    // A small backlog makes the flow control block and resume many times.
    let mut cfg = config(Scenario::Pubsub, &router.ws, Serializer::Json, 3000);
    cfg.backlog = 50;
    cfg.warmup = Duration::from_millis(100);
    let report = turnstile_bench::run(&cfg).await.expect("pubsub runs");
    assert_eq!(report.runs.len(), 2);
    for run in &report.runs {
        assert_eq!(run.ops, 3000);
        assert!(run.rate > 0.0);
    }
    assert_eq!(report.op, "event");
    assert_eq!(report.transport, "websocket");
    // The router runs in this process, which listens on the port: it is found and measured.
    assert_eq!(report.router.pid, Some(std::process::id()));
    assert!(report.runs[0].router_cpu_s.is_some());
    assert!(report.runs[0].router_rss_kib.unwrap() > 0);

    let cfg = config(Scenario::PubsubAck, &router.rs, Serializer::Cbor, 1000);
    let report = turnstile_bench::run(&cfg).await.expect("pubsub-ack runs");
    assert!(report.runs.iter().all(|r| r.ops == 1000));
    assert_eq!(report.transport, "rawsocket");

    let mut cfg = config(Scenario::Fanout, &router.rs, Serializer::MsgPack, 200);
    cfg.subscribers = 7;
    cfg.connect_batch = 3;
    let report = turnstile_bench::run(&cfg).await.expect("fanout runs");
    assert!(report.runs.iter().all(|r| r.ops == 200 * 7));
    assert_eq!(report.op, "delivery");
    router.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rpc_matches_every_call_and_times_each() {
    let router = Router::start(&["json", "msgpack", "cbor"]).await;
    let cfg = config(Scenario::Rpc, &router.rs, Serializer::MsgPack, 500);
    let report = turnstile_bench::run(&cfg).await.expect("rpc runs");
    for run in &report.runs {
        assert_eq!(run.ops, 500);
        assert_eq!(run.latency.unwrap().samples, 500);
    }
    let latency = report.summary.latency.unwrap();
    assert_eq!(latency.samples, 1000);
    assert!(latency.p50_us <= latency.p90_us && latency.p90_us <= latency.p99_us);

    let mut cfg = config(Scenario::RpcPar, &router.ws, Serializer::Cbor, 1000);
    cfg.window = 10;
    let report = turnstile_bench::run(&cfg).await.expect("rpc-par runs");
    assert!(report.runs.iter().all(|r| r.ops == 1000));
    router.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_baseline_needs_no_router() {
    let cfg = config(
        Scenario::TcpBaseline,
        "ws://127.0.0.1:1/ws",
        Serializer::Json,
        200,
    );
    let report = turnstile_bench::run(&cfg).await.expect("baseline runs");
    assert!(report.runs.iter().all(|r| r.ops == 200));
    assert_eq!(report.summary.latency.unwrap().samples, 400);
    assert!(report.router.pid.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_opens_and_measures() {
    let router = Router::start(&["json", "msgpack", "cbor"]).await;
    let mut cfg = config(Scenario::Sessions, &router.rs, Serializer::Json, 1);
    cfg.sessions = 40;
    cfg.connect_batch = 16;
    let report = turnstile_bench::run(&cfg).await.expect("sessions runs");
    assert!(report.runs.iter().all(|r| r.ops == 40));
    assert!(report.runs[0].kib_per_session.is_some());
    router.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_foreign_event_fails_the_run() {
    let router = Router::start(&["json"]).await;
    let topic = "bench.test.injected";
    // Another publisher sends event #0 again and again on the benchmark's topic: the subscriber
    // must see a duplicate (or an event out of order) and fail the run.
    let done = Arc::new(AtomicBool::new(false));
    let url = router.rs.clone();
    let flag = done.clone();
    let injector = tokio::spawn(async move {
        let mut s = turnstile_client::Session::connect(&url, Serializer::Json)
            .await
            .unwrap();
        s.join("realm1").await.unwrap();
        let payload = vec![0u64.into(), "xxxxxxxxxx".into()];
        for _ in 0..1000 {
            if flag.load(Ordering::Relaxed) {
                break;
            }
            s.publish(topic, Some(payload.clone()), None, Default::default())
                .await
                .unwrap();
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    });
    let mut cfg = config(Scenario::Pubsub, &router.ws, Serializer::Json, 1_000_000);
    cfg.topic = Some(topic.into());
    cfg.repeats = 1;
    let err = turnstile_bench::run(&cfg)
        .await
        .expect_err("a duplicate event must fail the run");
    done.store(true, Ordering::Relaxed);
    let text = format!("{err:#}");
    assert!(
        text.contains("reordered or duplicate event") || text.contains("event loss"),
        "{text}"
    );
    injector.await.unwrap();
    router.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_realm_and_serializer_fail_clearly() {
    let router = Router::start(&["json"]).await;
    let mut cfg = config(Scenario::Rpc, &router.ws, Serializer::Json, 10);
    cfg.realm = "nope".into();
    let err = format!("{:#}", turnstile_bench::run(&cfg).await.unwrap_err());
    assert!(err.contains("refused to join realm \"nope\""), "{err}");
    assert!(err.contains("wamp.error.no_such_realm"), "{err}");

    let cfg = config(Scenario::Pubsub, &router.rs, Serializer::MsgPack, 10);
    let err = format!("{:#}", turnstile_bench::run(&cfg).await.unwrap_err());
    assert!(
        err.contains("refused the RawSocket handshake for the msgpack serializer"),
        "{err}"
    );

    let cfg = config(Scenario::Sessions, &router.ws, Serializer::Cbor, 10);
    let err = format!("{:#}", turnstile_bench::run(&cfg).await.unwrap_err());
    assert!(err.contains("cbor") && err.contains("wamp.2.cbor"), "{err}");
    router.stop().await;
}

/// `wss://`: the same run over TLS, trusting the CA given with `--ca-file`
/// (`conn::set_tls_ca`); the router's certificate is made here (rcgen).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rpc_runs_over_wss() {
    let dir = std::env::temp_dir().join(format!("turnstile-bench-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = rcgen::CertifiedIssuer::self_signed(ca_params, rcgen::KeyPair::generate().unwrap())
        .unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned()])
        .unwrap()
        .signed_by(&key, &ca)
        .unwrap();
    std::fs::write(dir.join("ca.pem"), ca.pem()).unwrap();
    std::fs::write(dir.join("server.crt"), cert.pem()).unwrap();
    std::fs::write(dir.join("server.key"), key.serialize_pem()).unwrap();

    let mut node = node_config(&["json"]);
    let turnstile_config::TransportConfig::Web { endpoint, .. } =
        &mut node.workers[0].transports[0]
    else {
        panic!("web first")
    };
    let turnstile_config::Endpoint::Tcp { tls, .. } = endpoint else {
        panic!("tcp")
    };
    *tls = Some(turnstile_config::TlsConfig {
        key: dir.join("server.key"),
        certificate: dir.join("server.crt"),
        chain_certificates: Vec::new(),
        ca_certificates: Vec::new(),
        ciphers: None,
        dhparam: None,
    });
    let server = Server::bind(node).await.expect("bind");
    let url = format!("wss://{}/ws", server.local_addrs()[0].tcp().unwrap());
    let (tx, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(server.run(async move {
        let _ = rx.await;
    }));

    turnstile_bench::conn::set_tls_ca(&dir.join("ca.pem")).expect("CA loads");
    let report = turnstile_bench::run(&config(Scenario::Rpc, &url, Serializer::Json, 200))
        .await
        .expect("rpc runs over wss");
    for run in &report.runs {
        assert_eq!(run.ops, 200);
    }
    assert_eq!(report.transport, "websocket");
    let _ = tx.send(());
    task.await.unwrap().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}
