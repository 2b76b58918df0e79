//! The usage ledger (`docs/ledger.md`) with real parts: the `turnstile` binary killed with
//! SIGKILL and started again over its SQLite ledger, and a throwaway PostgreSQL server (Debian's
//! `postgresql` package: `initdb` and `pg_ctl` into a temporary directory, on a free port)
//! stopped for a few seconds under traffic. The oracle is what a monitor subscribed to
//! `wamp.session.on_stats` received: the ledger must hold exactly those cycles, none twice.

#[allow(dead_code)]
mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value as Json};
use turnstile::ledger::report::{self, Filter, GroupBy};
use turnstile::ledger::LedgerRow;
use turnstile_client::{dict, Dict, Id, Serializer, Session, Value};
use turnstile_config::{LedgerStore, Secret};

use common::{realm1, Router, TempDir};

const BIN: &str = env!("CARGO_BIN_EXE_turnstile");
const ON_STATS: &str = "wamp.session.on_stats";
const WAIT: Duration = Duration::from_secs(10);

/// The figures of one cycle, as an event or a row carries them: (session, cycle) →
/// (started, duration, messages, bytes, rated_messages, first, last).
type Cycles = BTreeMap<(Id, u64), (u64, u64, u64, u64, u64, bool, bool)>;

fn cycles_of_rows(rows: &[LedgerRow]) -> Cycles {
    rows.iter()
        .map(|r| {
            (
                (r.session, r.cycle),
                (
                    r.started,
                    r.duration,
                    r.messages,
                    r.bytes,
                    r.rated_messages,
                    r.first,
                    r.last,
                ),
            )
        })
        .collect()
}

/// A session subscribed to `on_stats`, keeping every cycle it is told of.
struct Monitor {
    s: Session,
    id: Id,
    cycles: Cycles,
}

impl Monitor {
    async fn start(url: &str) -> Monitor {
        let mut s = Session::connect(url, Serializer::Json).await.unwrap();
        let id = s.join("realm1").await.unwrap().session;
        s.subscribe(ON_STATS, Dict::new()).await.unwrap();
        Monitor {
            s,
            id,
            cycles: Cycles::new(),
        }
    }

    /// Reads events until none comes for `quiet`.
    async fn drain(&mut self, quiet: Duration) {
        while let Some(ev) = self.s.try_next_event(quiet).await.unwrap() {
            let info = ev.args[0].as_dict().unwrap();
            let st = ev.args[1].as_dict().unwrap();
            let n = |d: &Dict, k: &str| d[k].as_u64().unwrap();
            let b = |k: &str| st[k].as_bool().unwrap();
            let key = (n(info, "session"), n(st, "cycle"));
            let figures = (
                n(st, "timestamp"),
                n(st, "duration"),
                n(st, "messages"),
                n(st, "bytes"),
                n(st, "rated_messages"),
                b("first"),
                b("last"),
            );
            assert!(
                self.cycles.insert(key, figures).is_none(),
                "one event per cycle"
            );
        }
    }

    /// The cycles of every session but the monitor's own (it is not told of its own final one).
    fn others(&self) -> Cycles {
        self.cycles
            .iter()
            .filter(|((s, _), _)| *s != self.id)
            .map(|(k, v)| (*k, *v))
            .collect()
    }
}

/// Acknowledged publications (nobody subscribes): traffic that closes cycles under a rated
/// trigger.
async fn chatter(s: &mut Session, n: usize) {
    for i in 0..n {
        let args = vec![Value::Str("x".repeat(40 + i % 7))];
        s.publish(
            "com.test.chatter",
            Some(args),
            None,
            dict! {"acknowledge" => true},
        )
        .await
        .unwrap();
    }
}

fn stats() -> Json {
    json!({"rated_message_size": 32, "trigger_after_rated_messages": 10})
}

/// No two rows share a key, and the rows of each session hold cycles 1..n.
fn assert_no_duplicates(rows: &[LedgerRow]) {
    let keys: BTreeSet<_> = rows
        .iter()
        .map(|r| (&r.node, &r.realm, r.session, r.cycle))
        .collect();
    assert_eq!(keys.len(), rows.len(), "no row twice");
}

// =============================================================================================
// SIGKILL and restart of the binary

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts `turnstile start --cbdir dir`, logging to `dir/router-N.log`.
fn start_binary(dir: &Path, n: usize) -> Child {
    let log = std::fs::File::create(dir.join(format!("router-{n}.log"))).unwrap();
    Command::new(BIN)
        .args(["start", "--cbdir", dir.to_str().unwrap()])
        .env_remove("RUST_LOG")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap()
}

/// Connects until the router listens (bounded).
async fn connect_eventually(url: &str) -> Session {
    let deadline = Instant::now() + WAIT;
    loop {
        match Session::connect(url, Serializer::MsgPack).await {
            Ok(s) => return s,
            Err(e) if Instant::now() < deadline => {
                let _ = e;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("router does not listen: {e}"),
        }
    }
}

fn signal(child: &Child, sig: &str) {
    let sent = Command::new("kill")
        .args([sig, &child.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
}

fn wait_exit(child: &mut Child) -> std::process::ExitStatus {
    let deadline = Instant::now() + WAIT + WAIT;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(Instant::now() < deadline, "router did not exit");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn sqlite_rows(db: &Path) -> Vec<LedgerRow> {
    report::read(&LedgerStore::Sqlite { path: db.into() }, &Filter::default()).unwrap()
}

/// Crash semantics: after SIGKILL, the SQLite ledger holds every cycle published more than the
/// flush interval before the kill (here: all of them, the traffic having stopped 3 s before),
/// none twice; at the next start the sessions open at the crash are closed as ended
/// uncleanly, with the totals recorded so far, and `turnstile usage` reports them so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_then_restart_keeps_every_flushed_cycle_once_and_closes_open_sessions() {
    let dir = TempDir::new("turnstile-ledger-kill");
    let port = free_port();
    let mut realm = realm1();
    realm["stats"] = stats();
    let config = json!({
        "version": 2,
        "controller": {"id": "node-under-test"},
        "workers": [{
            "type": "router",
            "ledger": {"type": "sqlite", "path": "usage.sqlite", "flush_interval": 1},
            "realms": [realm],
            "transports": [{
                "type": "web",
                "endpoint": {"type": "tcp", "port": port, "interface": "127.0.0.1"},
                "paths": {"ws": {"type": "websocket"}}
            }]
        }]
    });
    std::fs::write(
        dir.path().join("config.json"),
        serde_json::to_string_pretty(&config).unwrap(),
    )
    .unwrap();
    let url = format!("ws://127.0.0.1:{port}/ws");
    let db = dir.path().join("usage.sqlite");

    let mut router = start_binary(dir.path(), 1);
    drop(connect_eventually(&url).await);
    let mut monitor = Monitor::start(&url).await;
    let mut finished = Vec::new();
    for _ in 0..2 {
        let mut s = Session::connect(&url, Serializer::Cbor).await.unwrap();
        finished.push(s.join("realm1").await.unwrap().session);
        chatter(&mut s, 30).await;
        s.leave().await.unwrap();
    }
    let mut open = Vec::new();
    let mut open_ids = Vec::new();
    for ser in [Serializer::Json, Serializer::MsgPack] {
        let mut s = Session::connect(&url, ser).await.unwrap();
        open_ids.push(s.join("realm1").await.unwrap().session);
        chatter(&mut s, 25).await;
        open.push(s);
    }
    monitor.drain(Duration::from_millis(500)).await;
    // More than the flush interval (1 s) after the last cycle was published.
    tokio::time::sleep(Duration::from_secs(3)).await;
    signal(&router, "-KILL");
    wait_exit(&mut router);
    drop(open);

    let published = monitor.others();
    assert!(published.len() > 20, "many cycles: {}", published.len());
    let rows = sqlite_rows(&db);
    assert_no_duplicates(&rows);
    let stored: Cycles = cycles_of_rows(&rows)
        .into_iter()
        .filter(|((s, _), _)| *s != monitor.id)
        .collect();
    assert_eq!(stored, published, "every published cycle, as published");
    assert!(rows.iter().all(|r| r.node == "node-under-test"));
    assert!(rows.iter().all(|r| r.ended.is_none() || r.last));

    // The next start closes the sessions that were open at the crash (the two clients and the
    // monitor), and adds no row.
    let mut again = start_binary(dir.path(), 2);
    drop(connect_eventually(&url).await);
    let deadline = Instant::now() + WAIT;
    let closed = loop {
        let rows = sqlite_rows(&db);
        let unclean: BTreeSet<Id> = rows
            .iter()
            .filter(|r| r.ended.as_deref() == Some("unclean"))
            .map(|r| r.session)
            .collect();
        if unclean.len() == 3 || Instant::now() > deadline {
            break unclean;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let expected: BTreeSet<Id> = open_ids.iter().copied().chain([monitor.id]).collect();
    assert_eq!(
        closed, expected,
        "the sessions open at the crash, and only them"
    );
    signal(&again, "-TERM");
    assert!(wait_exit(&mut again).success());

    let after = sqlite_rows(&db);
    assert_eq!(after.len(), rows.len(), "no row added, none twice");
    assert_no_duplicates(&after);
    let out = Command::new(BIN)
        .args([
            "usage",
            "--cbdir",
            dir.path().to_str().unwrap(),
            "--format",
            "json",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<Json> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(lines.len(), 5);
    for line in &lines {
        let id = line["session"].as_u64().unwrap();
        let mine: Vec<&LedgerRow> = after.iter().filter(|r| r.session == id).collect();
        let sum = |f: fn(&LedgerRow) -> u64| mine.iter().map(|r| f(r)).sum::<u64>();
        assert_eq!(line["bytes"], json!(sum(|r| r.bytes)));
        assert_eq!(line["messages"], json!(sum(|r| r.messages)));
        let end = mine.iter().map(|r| r.started + r.duration).max().unwrap();
        assert_eq!(line["ended"], json!(end), "{line}");
        if finished.contains(&id) {
            assert_eq!(line["complete"], json!(true), "{line}");
            assert_eq!(line["ended_by"], json!("goodbye"), "{line}");
        } else {
            assert_eq!(line["complete"], json!(false), "{line}");
            assert_eq!(line["ended_by"], json!("unclean"), "{line}");
        }
    }
}

// =============================================================================================
// PostgreSQL

/// A PostgreSQL server of its own in a temporary directory, stopped (fast) when dropped.
struct Postgres {
    bin: PathBuf,
    data: PathBuf,
    port: u16,
    /// Run as the `postgres` user when the test runs as root (initdb refuses root).
    as_postgres: bool,
    _dir: TempDir,
}

impl Postgres {
    /// The server binaries of Debian's `postgresql` package, if installed.
    fn binaries() -> Option<PathBuf> {
        let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
            .ok()?
            .filter_map(|e| e.ok())
            .map(|e| e.path().join("bin"))
            .filter(|b| b.join("initdb").is_file() && b.join("pg_ctl").is_file())
            .collect();
        found.sort();
        found.pop()
    }

    fn command(&self, program: &str) -> Command {
        let path = self.bin.join(program);
        if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(path);
            c
        } else {
            Command::new(path)
        }
    }

    fn start_new(bin: PathBuf) -> Postgres {
        let dir = TempDir::new("turnstile-ledger-pg");
        let as_postgres = geteuid() == 0;
        if as_postgres {
            let ok = Command::new("chown")
                .args(["-R", "postgres:postgres", dir.path().to_str().unwrap()])
                .status()
                .unwrap();
            assert!(ok.success());
        }
        let pg = Postgres {
            bin,
            data: dir.path().join("data"),
            port: free_port(),
            as_postgres,
            _dir: dir,
        };
        let out = pg
            .command("initdb")
            .args(["-A", "trust", "-U", "postgres", "-E", "UTF8", "-D"])
            .arg(&pg.data)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "initdb: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        pg.start();
        pg
    }

    fn start(&self) {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
            self.port,
            self._dir.path().display()
        );
        let out = self
            .command("pg_ctl")
            .args(["-w", "-t", "30", "-D"])
            .arg(&self.data)
            .args(["-l"])
            .arg(self._dir.path().join("postgres.log"))
            .args(["-o", &options, "start"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "pg_ctl start: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn stop(&self) {
        let out = self
            .command("pg_ctl")
            .args(["-w", "-m", "fast", "-D"])
            .arg(&self.data)
            .arg("stop")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "pg_ctl stop: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn dsn(&self) -> String {
        format!("postgresql://postgres@127.0.0.1:{}/postgres", self.port)
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let _ = self
            .command("pg_ctl")
            .args(["-w", "-m", "immediate", "-D"])
            .arg(&self.data)
            .arg("stop")
            .output();
    }
}

fn geteuid() -> u32 {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() }
}

/// PostgreSQL stopped for several seconds under traffic: the rows wait (in memory, then in
/// the spill file: `buffer` is 5 rows here), the writer catches up when the server is back,
/// and after a clean stop every published cycle is in the ledger exactly once, and the spill
/// file is gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgresql_down_under_traffic_loses_nothing_and_stores_nothing_twice() {
    let Some(bin) = Postgres::binaries() else {
        eprintln!(
            "\n\n!!!!! SKIPPED postgresql_down_under_traffic: no PostgreSQL server binaries in \
             /usr/lib/postgresql/*/bin (apt-get install postgresql) !!!!!\n"
        );
        return;
    };
    let pg = Postgres::start_new(bin);
    let dir = TempDir::new("turnstile-ledger-pg-node");
    let spill = dir.path().join("usage.spill");
    let mut realm = realm1();
    realm["stats"] = stats();
    let config = json!({
        "version": 2,
        "controller": {"id": "pg-node"},
        "workers": [{
            "type": "router",
            "ledger": {"type": "postgresql", "dsn": pg.dsn(), "flush_interval": 1, "buffer": 5},
            "realms": [realm],
            "transports": [{
                "type": "web",
                "endpoint": {"type": "tcp", "port": 1},
                "paths": {"ws": {"type": "websocket"}}
            }]
        }]
    });
    let mut router = Router::start_in(config, dir).await;
    let url = format!("ws://{}/ws", router.tcp(0));
    let mut monitor = Monitor::start(&url).await;
    let mut clients = Vec::new();
    for ser in Serializer::ALL {
        let mut s = Session::connect(&url, ser).await.unwrap();
        s.join("realm1").await.unwrap();
        clients.push(s);
    }
    for s in &mut clients {
        chatter(s, 20).await;
    }
    pg.stop();
    let down = Instant::now();
    while down.elapsed() < Duration::from_secs(4) {
        for s in &mut clients {
            chatter(s, 5).await;
        }
        monitor.drain(Duration::from_millis(50)).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        std::fs::metadata(&spill).is_ok_and(|m| m.len() > 0),
        "rows wait in the spill file while the database is down"
    );
    pg.start();
    for s in &mut clients {
        chatter(s, 20).await;
        s.leave().await.unwrap();
    }
    monitor.drain(Duration::from_millis(500)).await;
    monitor.s.leave().await.unwrap();
    router.begin_shutdown();
    router.stopped(WAIT + WAIT).await;

    let ledger = LedgerStore::Postgresql {
        dsn: Secret::new(pg.dsn()),
    };
    let rows = tokio::task::spawn_blocking(move || report::read(&ledger, &Filter::default()))
        .await
        .unwrap()
        .unwrap();
    assert_no_duplicates(&rows);
    let stored: Cycles = cycles_of_rows(&rows)
        .into_iter()
        .filter(|((s, _), _)| *s != monitor.id)
        .collect();
    let published = monitor.others();
    assert!(published.len() > 50, "many cycles: {}", published.len());
    assert_eq!(stored, published, "every published cycle, once");
    let sessions = report::group(&rows, GroupBy::Session);
    assert_eq!(sessions.lines.len(), 4);
    assert!(sessions.lines.iter().all(|l| l["complete"] == json!(true)));
    assert!(!spill.exists(), "the spill file is replayed and removed");
}

// =============================================================================================
// SQLite unavailable

/// The SQLite ledger cannot be used at first (its file is not a database): the router serves
/// anyway, the rows wait in the spill file, and once the file is gone (the writer then creates
/// the database) the writer catches up; after a clean stop every published cycle is stored
/// once, and the spill file is gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_unusable_at_start_catches_up_from_the_spill_file() {
    let dir = TempDir::new("turnstile-ledger-sqlite-away");
    let db = dir.path().join("usage.sqlite");
    let spill = dir.path().join("usage.sqlite.spill");
    std::fs::write(&db, vec![b'x'; 4096]).unwrap();
    let mut realm = realm1();
    realm["stats"] = stats();
    let config = json!({
        "version": 2,
        "workers": [{
            "type": "router",
            "ledger": {"type": "sqlite", "path": "usage.sqlite", "flush_interval": 0},
            "realms": [realm],
            "transports": [{
                "type": "web",
                "endpoint": {"type": "tcp", "port": 1},
                "paths": {"ws": {"type": "websocket"}}
            }]
        }]
    });
    let mut router = Router::start_in(config, dir).await;
    let url = format!("ws://{}/ws", router.tcp(0));
    let mut monitor = Monitor::start(&url).await;
    let mut c = Session::connect(&url, Serializer::MsgPack).await.unwrap();
    c.join("realm1").await.unwrap();
    chatter(&mut c, 30).await;
    monitor.drain(Duration::from_millis(300)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        std::fs::metadata(&spill).is_ok_and(|m| m.len() > 0),
        "rows wait in the spill file while the database is unusable"
    );
    std::fs::remove_file(&db).unwrap();
    chatter(&mut c, 30).await;
    c.leave().await.unwrap();
    monitor.drain(Duration::from_millis(300)).await;
    monitor.s.leave().await.unwrap();
    router.begin_shutdown();
    router.stopped(WAIT + WAIT).await;

    let rows = sqlite_rows(&db);
    assert_no_duplicates(&rows);
    let stored: Cycles = cycles_of_rows(&rows)
        .into_iter()
        .filter(|((s, _), _)| *s != monitor.id)
        .collect();
    let published = monitor.others();
    assert!(published.len() > 10, "many cycles: {}", published.len());
    assert_eq!(stored, published, "every published cycle, once");
    assert!(!spill.exists(), "nothing left to replay");
}
