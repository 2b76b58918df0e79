//! The shared harness of the integration tests: temporary directories, node configurations on
//! ephemeral ports, and a router running in process.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::{json, Value};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use turnstile::limits::{ConnectionLimits, RawSocketTimeouts};
use turnstile::server::Server;
use turnstile::transport::LocalAddr;
use turnstile_config::{Format, NodeConfig};

/// A directory under the system temp dir, removed when dropped.
pub(crate) struct TempDir(PathBuf);

impl TempDir {
    /// A fresh directory named `{prefix}-{pid}-{n}`.
    pub(crate) fn new(prefix: &str) -> TempDir {
        static N: AtomicUsize = AtomicUsize::new(0);
        let name = format!(
            "{prefix}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        let dir = std::env::temp_dir().join(name);
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    pub(crate) fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Realm `realm1`, where `anonymous` may do everything.
pub(crate) fn realm1() -> Value {
    json!({
        "name": "realm1",
        "roles": [{
            "name": "anonymous",
            "permissions": [{
                "uri": "", "match": "prefix",
                "allow": {"call": true, "register": true, "publish": true, "subscribe": true},
                "disclose": {"caller": false, "publisher": false},
                "cache": true
            }]
        }]
    })
}

/// Validates a JSON configuration (as if it were `dir/config.json`) and moves every TCP
/// endpoint to 127.0.0.1 port 0 ([`NodeConfig::on_ephemeral_loopback_ports`]), so tests never
/// use fixed ports.
pub(crate) fn load_config(json: &Value, dir: &Path) -> NodeConfig {
    let text = serde_json::to_string_pretty(json).unwrap();
    let mut config = turnstile_config::load_str(&text, Format::Json, &dir.join("config.json"))
        .unwrap_or_else(|e| panic!("test config invalid: {e}"));
    config.on_ephemeral_loopback_ports();
    config
}

/// A router running in the background on a JSON node configuration (through [`load_config`]).
/// It holds the configuration's directory until dropped, and aborts the router if dropped while
/// still running. Each test file adds its own `start` for the configurations it uses.
pub(crate) struct Router {
    /// The bound address of each transport of worker 0, in order.
    pub addrs: Vec<LocalAddr>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<anyhow::Result<()>>>,
    _dir: TempDir,
}

impl Router {
    /// Binds the router for `json` (relative paths in `dir`) and runs it in the background.
    pub(crate) async fn start_in(json: Value, dir: TempDir) -> Router {
        Router::start_configured(json, dir, None, RawSocketTimeouts::default()).await
    }

    /// As [`Router::start_in`], with these connection limits instead of the defaults.
    #[allow(dead_code)] // each test binary compiles this module; only some use every helper
    pub(crate) async fn start_in_with(
        json: Value,
        dir: TempDir,
        limits: Option<ConnectionLimits>,
    ) -> Router {
        Router::start_configured(json, dir, limits, RawSocketTimeouts::default()).await
    }

    /// [`Router::start_in`] with RawSocket deadlines shorter than the real ones.
    #[allow(dead_code)] // each test binary compiles this module; only some use every helper
    pub(crate) async fn start_with_timeouts(
        json: Value,
        dir: TempDir,
        timeouts: RawSocketTimeouts,
    ) -> Router {
        Router::start_configured(json, dir, None, timeouts).await
    }

    /// The router for `json`, with optional connection limits and the given RawSocket deadlines.
    pub(crate) async fn start_configured(
        json: Value,
        dir: TempDir,
        limits: Option<ConnectionLimits>,
        timeouts: RawSocketTimeouts,
    ) -> Router {
        let mut server = Server::bind(load_config(&json, dir.path()))
            .await
            .expect("bind");
        if let Some(limits) = limits {
            server = server.with_connection_limits(limits);
        }
        // The defaults are the configuration's (its `limits`, else the named limits).
        if timeouts != RawSocketTimeouts::default() {
            server.set_rawsocket_timeouts(timeouts);
        }
        let addrs = server.local_addrs();
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(server.run(async move {
            let _ = rx.await;
        }));
        Router {
            addrs,
            stop: Some(tx),
            task: Some(task),
            _dir: dir,
        }
    }

    /// The TCP address of transport `i` of worker 0.
    pub(crate) fn tcp(&self, i: usize) -> std::net::SocketAddr {
        self.addrs[i].tcp().expect("a TCP transport")
    }

    /// Starts the router's shutdown; [`Router::stopped`] waits for its end.
    pub(crate) fn begin_shutdown(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
    }

    /// Waits for the router to stop, at most `within`, and checks that it stopped cleanly.
    pub(crate) async fn stopped(&mut self, within: Duration) {
        let task = self.task.take().expect("running");
        tokio::time::timeout(within, task)
            .await
            .expect("router stops in time")
            .unwrap()
            .unwrap();
    }
}

impl Drop for Router {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

/// How long the socket helpers below wait for the router before the test fails.
pub(crate) const IO_WAIT: Duration = Duration::from_secs(10);

/// Reads exactly `n` bytes; the test fails if they do not come within [`IO_WAIT`].
#[allow(dead_code)] // each test binary compiles this module; only some use every helper
pub(crate) async fn read_exact<R: tokio::io::AsyncRead + Unpin>(r: &mut R, n: usize) -> Vec<u8> {
    use tokio::io::AsyncReadExt;
    let mut buf = vec![0u8; n];
    tokio::time::timeout(IO_WAIT, r.read_exact(&mut buf))
        .await
        .expect("reply in time")
        .expect("read");
    buf
}

/// Reads until the peer closes and returns what came; the test fails if it does not close
/// within [`IO_WAIT`].
#[allow(dead_code)] // each test binary compiles this module; only some use every helper
pub(crate) async fn read_to_eof<R: tokio::io::AsyncRead + Unpin>(r: &mut R) -> Vec<u8> {
    use tokio::io::AsyncReadExt;
    let mut buf = Vec::new();
    tokio::time::timeout(IO_WAIT, r.read_to_end(&mut buf))
        .await
        .expect("connection closed in time")
        .expect("read");
    buf
}
