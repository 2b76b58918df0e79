//! Configuration reload of the `turnstile` binary: the PID file in the node directory,
//! `turnstile reload` (validating first, then SIGHUP), SIGHUP itself, an invalid file refused
//! with the running configuration kept, and a transport change logged as needing a restart.
//! The router runs on a free port, with a client session joined throughout.

// This file uses only `TempDir` of the shared harness.
#[allow(dead_code)]
mod common;

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use turnstile_client::{Error, Session};
use wamp_proto::{dict, uris, Serializer};

use common::TempDir;

const BIN: &str = env!("CARGO_BIN_EXE_turnstile");

fn turnstile(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .env_remove("RUST_LOG")
        .output()
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A port nobody listens on (taken from the kernel, then released).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A node configuration: `realms` (names; `anonymous` may do everything), one `web` transport
/// on `port` with WebSocket at `/ws`.
fn config(port: u16, realms: &[&str]) -> Value {
    let realms: Vec<Value> = realms
        .iter()
        .map(|name| {
            json!({"name": name, "roles": [{"name": "anonymous", "permissions": [
                {"uri": "", "match": "prefix",
                 "allow": {"call": true, "register": true, "publish": true, "subscribe": true}}
            ]}]})
        })
        .collect();
    json!({
        "version": 2,
        "workers": [{
            "type": "router",
            "realms": realms,
            "transports": [{
                "type": "web",
                "endpoint": {"type": "tcp", "port": port, "interface": "127.0.0.1"},
                "paths": {"ws": {"type": "websocket"}}
            }]
        }]
    })
}

fn write_config(dir: &Path, config: &Value) {
    std::fs::write(
        dir.join("config.json"),
        serde_json::to_string_pretty(config).unwrap(),
    )
    .unwrap();
}

/// Waits (bounded) until `log` holds `needle`; returns the log.
fn wait_for_log(log: &Path, needle: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        if text.contains(needle) {
            return text;
        }
        assert!(
            Instant::now() < deadline,
            "log never said {needle:?}:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Joins `realm`, retrying while the router has not applied a reload yet (bounded).
async fn join_eventually(url: &str, realm: &str) -> Session {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut s = Session::connect(url, Serializer::Json).await.unwrap();
        match s.join(realm).await {
            Ok(_) => return s,
            Err(e) if Instant::now() < deadline => {
                let _ = e;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("cannot join {realm}: {e}"),
        }
    }
}

fn hangup(pid: u32) {
    let sent = Command::new("kill")
        .args(["-HUP", &pid.to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
}

/// SIGTERM, then the exit status (bounded wait).
fn stop(mut child: Child) -> std::process::ExitStatus {
    let sent = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("router did not stop on SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn reload_without_a_running_router_says_so() {
    let dir = TempDir::new("turnstile-cli-reload");
    write_config(dir.path(), &config(free_port(), &["realm1"]));
    let out = turnstile(&["reload", "--cbdir", dir.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("no router is running from here")
            && stderr.contains(&format!(
                "{} does not exist",
                dir.path().join("node.pid").display()
            )),
        "{stderr}"
    );
    // A PID file left by a router that died is recognised as stale.
    std::fs::write(
        dir.path().join("node.pid"),
        r#"{"pid": 2147483646, "argv": []}"#,
    )
    .unwrap();
    let out = turnstile(&["reload", "--cbdir", dir.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("node.pid is stale (process 2147483646"),
        "{}",
        text(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_and_sighup_against_a_running_router() {
    let dir = TempDir::new("turnstile-cli-reload");
    let cbdir = dir.path().to_str().unwrap().to_owned();
    let port = free_port();
    write_config(dir.path(), &config(port, &["realm1"]));
    let log_path = dir.path().join("router.log");
    let child = Command::new(BIN)
        .args(["start", "--cbdir", &cbdir])
        .env_remove("RUST_LOG")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log_path).unwrap())
        .spawn()
        .unwrap();
    let pid = child.id();
    wait_for_log(&log_path, "listening: web on");
    let url = format!("ws://127.0.0.1:{port}/ws");

    // The PID file, Crossbar's name and format (a JSON object with "pid").
    let pid_file: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("node.pid")).unwrap())
            .unwrap();
    assert_eq!(pid_file["pid"].as_u64(), Some(u64::from(pid)));
    // A second router for the same node directory is refused.
    let out = turnstile(&["start", "--cbdir", &cbdir]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("already running"),
        "{}",
        text(&out.stderr)
    );

    let mut a = Session::connect(&url, Serializer::Json).await.unwrap();
    a.join("realm1").await.unwrap();
    let ack = || dict! {"acknowledge" => true};

    // `turnstile reload`: realm2 added.
    write_config(dir.path(), &config(port, &["realm1", "realm2"]));
    let out = turnstile(&["reload", "--cbdir", &cbdir]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains(&format!("asked the router (PID {pid}) to reload")),
        "{}",
        text(&out.stdout)
    );
    let mut b = join_eventually(&url, "realm2").await;
    wait_for_log(&log_path, "realms added (serving now): workers[0] realm2");
    a.publish("com.t", None, None, ack()).await.unwrap();

    // An invalid file: `turnstile reload` prints the error and signals nothing...
    let mut invalid = config(port, &["realm1"]);
    invalid["workers"][0]["realms"][0]["stats"] = json!({"rated_message_size": 300});
    write_config(dir.path(), &invalid);
    let out = turnstile(&["reload", "--cbdir", &cbdir]);
    assert_eq!(out.status.code(), Some(2));
    let check = turnstile(&["check", "--cbdir", &cbdir]);
    let report = text(&check.stderr);
    assert!(report.contains("rated_message_size"), "{report}");
    assert!(
        text(&out.stderr).contains(report.trim()),
        "{}",
        text(&out.stderr)
    );
    assert!(
        text(&out.stderr).contains("not reloading"),
        "{}",
        text(&out.stderr)
    );
    // ...and SIGHUP has the router refuse it with the same report; the running one stays.
    hangup(pid);
    wait_for_log(
        &log_path,
        &format!(
            "configuration reload refused, the running configuration stays: {}",
            report.trim()
        ),
    );
    b.publish("com.t", None, None, ack()).await.unwrap();
    a.publish("com.t", None, None, ack()).await.unwrap();

    // SIGHUP with realm2 removed and the transport moved: the move needs a restart (the router
    // stays on its port), the removal applies.
    write_config(dir.path(), &config(free_port(), &["realm1"]));
    hangup(pid);
    wait_for_log(
        &log_path,
        "workers[0].transports[0].endpoint changed: this needs a restart; left as it runs",
    );
    let (reason, _) = b.wait_goodbye().await.unwrap();
    assert_eq!(reason, uris::CLOSE_REALM);
    let mut c = Session::connect(&url, Serializer::Json).await.unwrap();
    match c.join("realm2").await {
        Err(Error::Aborted { reason, .. }) => assert_eq!(reason, uris::NO_SUCH_REALM),
        other => panic!("realm2 is gone: {other:?}"),
    }
    a.publish("com.t", None, None, ack()).await.unwrap();

    drop((a, b, c));
    let status = stop(child);
    assert!(status.success(), "exit {status}");
    assert!(
        !dir.path().join("node.pid").exists(),
        "the PID file is removed at stop"
    );
}

/// Routers started with `--config` keep their PID in `FILE.pid`: two configurations in one
/// directory run side by side, and `turnstile reload --config FILE` signals the right one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routers_started_with_config_files_are_told_apart() {
    let dir = TempDir::new("turnstile-cli-reload");
    let (port_a, port_b) = (free_port(), free_port());
    let mut children = Vec::new();
    for (name, port) in [("a", port_a), ("b", port_b)] {
        let file = dir.path().join(format!("{name}.json"));
        std::fs::write(&file, config(port, &["realm1"]).to_string()).unwrap();
        let log = dir.path().join(format!("{name}.log"));
        let child = Command::new(BIN)
            .args(["start", "--config", file.to_str().unwrap()])
            .env_remove("RUST_LOG")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        wait_for_log(&log, "listening: web on");
        let pid: Value = serde_json::from_str(
            &std::fs::read_to_string(dir.path().join(format!("{name}.json.pid"))).unwrap(),
        )
        .unwrap();
        assert_eq!(pid["pid"].as_u64(), Some(u64::from(child.id())));
        children.push(child);
    }
    let a_file = dir.path().join("a.json");
    std::fs::write(&a_file, config(port_a, &["realm1", "realm2"]).to_string()).unwrap();
    let out = turnstile(&["reload", "--config", a_file.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    join_eventually(&format!("ws://127.0.0.1:{port_a}/ws"), "realm2").await;
    let mut b = Session::connect(&format!("ws://127.0.0.1:{port_b}/ws"), Serializer::Json)
        .await
        .unwrap();
    assert!(
        matches!(b.join("realm2").await, Err(Error::Aborted { .. })),
        "b was not reloaded"
    );
    drop(b);
    for child in children {
        assert!(stop(child).success());
    }
    assert!(!dir.path().join("a.json.pid").exists() && !dir.path().join("b.json.pid").exists());
}
