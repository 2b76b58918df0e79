//! The `turnstile` binary: `version`, `init`, `check`, configuration errors (exit 2), a
//! `start` on a Unix socket that stops gracefully on SIGTERM (exit 0), and what `--loglevel`
//! lets into the log (no dependency chatter below `debug`).

// This file uses only `TempDir` of the shared harness.
#[allow(dead_code)]
mod common;

use std::io::{Read, Write};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::TempDir;
use turnstile_client::Session;
use wamp_proto::Serializer;

const BIN: &str = env!("CARGO_BIN_EXE_turnstile");

/// The name of this file's temporary directories.
const DIR_PREFIX: &str = "turnstile-cli-test";

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

#[test]
fn version_prints_name_and_version() {
    let out = turnstile(&["version"]);
    assert!(out.status.success());
    let stdout = text(&out.stdout);
    assert!(
        stdout.starts_with(&format!("turnstile {}", env!("CARGO_PKG_VERSION"))),
        "{stdout}"
    );
    assert!(stdout.contains("json, msgpack, cbor"), "{stdout}");
}

#[test]
fn init_writes_the_default_config_once_and_check_accepts_it() {
    let dir = TempDir::new(DIR_PREFIX);
    let cbdir = dir.path().join(".crossbar");
    let cbdir_s = cbdir.to_str().unwrap();

    let out = turnstile(&["init", "--cbdir", cbdir_s]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let written = std::fs::read_to_string(cbdir.join("config.json")).unwrap();
    assert_eq!(written, turnstile_config::INIT_CONFIG_JSON);
    // The embedded default with the usage ledger on, in the node directory.
    let loaded = turnstile_config::load_file(&cbdir.join("config.json")).unwrap();
    let ledger = loaded.ledger().expect("init turns the ledger on");
    assert_eq!(
        ledger.store,
        turnstile_config::LedgerStore::Sqlite {
            path: std::path::absolute(&cbdir).unwrap().join("usage.sqlite")
        }
    );
    let mut without = loaded.clone();
    without.workers[0].ledger = None;
    assert_eq!(without, turnstile_config::default_config());

    let out = turnstile(&["init", "--cbdir", cbdir_s]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("already exists"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(
        std::fs::read_to_string(cbdir.join("config.json")).unwrap(),
        written
    );

    let out = turnstile(&["check", "--cbdir", cbdir_s]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let expected = format!(
        "configuration OK: {} (1 realm, 2 transports)\n",
        cbdir.join("config.json").display()
    );
    assert_eq!(text(&out.stdout), expected);
}

#[test]
fn config_errors_exit_with_code_2() {
    let dir = TempDir::new(DIR_PREFIX);
    let bad = dir.path().join("bad.json");
    std::fs::write(
        &bad,
        r#"{"version": 2, "workers": [{"type": "router", "realms": 5}]}"#,
    )
    .unwrap();
    let bad_s = bad.to_str().unwrap();

    for args in [
        &["check", "--config", bad_s][..],
        &["start", "--config", bad_s],
    ] {
        let out = turnstile(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let stderr = text(&out.stderr);
        assert!(stderr.contains(bad_s), "{args:?}: {stderr}");
    }

    // A directory without a configuration.
    let out = turnstile(&["check", "--cbdir", dir.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("no config file"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn check_and_start_read_the_tls_files() {
    let dir = TempDir::new(DIR_PREFIX);
    let config = dir.path().join("config.json");
    std::fs::write(
        &config,
        r#"{"version": 2, "workers": [{"type": "router", "realms": [],
            "transports": [{"type": "rawsocket", "endpoint": {"type": "tcp", "port": 1,
                "interface": "127.0.0.1",
                "tls": {"key": "missing.key", "certificate": "missing.crt"}}}]}]}"#,
    )
    .unwrap();
    let config_s = config.to_str().unwrap();
    let missing = dir.path().join("missing.key");
    let expected = format!(
        "workers[0].transports[0] (rawsocket): endpoint.tls.key: cannot read {}: ",
        missing.display()
    );
    // `check` exits as for any configuration error; `start` fails before listening.
    for (args, code) in [
        (["check", "--config", config_s], 2),
        (["start", "--config", config_s], 1),
    ] {
        let out = turnstile(&args);
        assert_eq!(out.status.code(), Some(code), "{args:?}");
        let stderr = text(&out.stderr);
        assert!(stderr.contains(&expected), "{args:?}: {stderr}");
        assert!(!stderr.contains("listening"), "{args:?}: {stderr}");
    }
}

#[test]
fn start_serves_until_sigterm_then_exits_cleanly() {
    let dir = TempDir::new(DIR_PREFIX);
    let config = dir.path().join("config.json");
    std::fs::write(
        &config,
        // The socket's name comes from the environment; `reactor` and `trace` are Crossbar keys
        // without effect here, which the router names once at start.
        r#"{
            "version": 2,
            "workers": [{
                "type": "router",
                "options": {"reactor": {"type": "epoll"}},
                "realms": [{"name": "realm1", "roles": [], "trace": true}],
                "transports": [{
                    "type": "rawsocket",
                    "endpoint": {"type": "unix", "path": "${TURNSTILE_TEST_SOCKET}", "backlog": 64},
                    "serializers": ["json"]
                }]
            }]
        }"#,
    )
    .unwrap();
    let sock = dir.path().join("node.sock");
    let mut child = Command::new(BIN)
        .args(["start", "--config", config.to_str().unwrap()])
        .args(["--max-connections", "50", "--max-connections-per-ip", "4"])
        .env_remove("RUST_LOG")
        .env("TURNSTILE_TEST_SOCKET", "node.sock")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();

    let started = Instant::now();
    let mut stream = loop {
        if let Ok(s) = std::os::unix::net::UnixStream::connect(&sock) {
            break s;
        }
        if started.elapsed() > Duration::from_secs(10) || child.try_wait().unwrap().is_some() {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!("router did not listen: {}", text(&out.stderr));
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream.write_all(&[0x7F, 0xF1, 0, 0]).unwrap();
    let mut reply = [0u8; 4];
    stream.read_exact(&mut reply).unwrap();
    assert_eq!(reply[0], 0x7F);
    assert_eq!(reply[1] & 0x0F, 1);
    drop(stream);

    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let deadline = Instant::now() + Duration::from_secs(15);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("router did not stop on SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert!(status.success(), "exit {status}: {stderr}");
    assert!(stderr.contains("listening: rawsocket on unix:"), "{stderr}");
    assert!(stderr.contains("open-file limit"), "{stderr}");
    assert!(
        stderr.contains("max_connections=50 max_connections_per_ip=4"),
        "{stderr}"
    );
    assert!(stderr.contains("SIGTERM"), "{stderr}");
    assert!(!sock.exists(), "socket file removed");
    for key in ["workers[0].options.reactor", "workers[0].realms[0].trace"] {
        assert_eq!(
            stderr.matches(&format!("{key} has no effect: ")).count(),
            1,
            "{stderr}"
        );
    }
}

/// `check` reports every error of the file at once, and names the keys without effect.
#[test]
fn check_reports_every_error_and_the_keys_without_effect() {
    let dir = TempDir::new(DIR_PREFIX);
    let bad = dir.path().join("bad.json");
    std::fs::write(
        &bad,
        r#"{"version": 2, "workers": [{"type": "router",
            "realms": [{"name": "realm1", "roles": [{"name": "a", "permisions": []}]}],
            "transports": [{"type": "websocket", "endpoint": {"type": "tcp", "port": "$TURNSTILE_TEST_UNSET_PORT"}}]}]}"#,
    )
    .unwrap();
    let out = Command::new(BIN)
        .args(["check", "--config", bad.to_str().unwrap()])
        .env_remove("TURNSTILE_TEST_UNSET_PORT")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 2, "{stderr}");
    assert!(
        lines[0].ends_with(
            "at workers[0].transports[0].endpoint.port: found \"$TURNSTILE_TEST_UNSET_PORT\", \
             expected the environment variable TURNSTILE_TEST_UNSET_PORT to be set (it is not)"
        ),
        "{stderr}"
    );
    assert!(
        lines[1].ends_with("did you mean `permissions`? allowed keys here: name, permissions, authorizer, allow-by-default"),
        "{stderr}"
    );

    let good = dir.path().join("good.json");
    std::fs::write(
        &good,
        r#"{"version": 2, "controller": {"options": {"title": "n", "shutdown": "shutdown_on_shutdown_requested"}},
            "workers": [{"type": "router", "options": {"cpu_affinity": [0]}, "realms": [{"name": "realm1"}]}]}"#,
    )
    .unwrap();
    let out = turnstile(&["check", "--config", good.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("note: controller.options.shutdown has no effect: ")
            && stdout.contains("note: workers[0].options.cpu_affinity has no effect: "),
        "{stdout}"
    );
}

/// Sends SIGTERM and waits (bounded) for the router to exit; returns its exit status and
/// everything it wrote to stdout and stderr.
fn stop(mut child: std::process::Child) -> (std::process::ExitStatus, String) {
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let deadline = Instant::now() + Duration::from_secs(15);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    let mut log = text(&out.stdout);
    log.push_str(&text(&out.stderr));
    (out.status, log)
}

/// Starts the router on a WebSocket endpoint with `loglevel` (None: the default), lets a real
/// client (tokio-tungstenite, through `turnstile-client`) join, leave and close the WebSocket,
/// stops the router and returns its whole output.
fn log_of_one_websocket_session(loglevel: Option<&str>) -> String {
    log_of_one_websocket_session_with(loglevel, None)
}

/// [`log_of_one_websocket_session`] with `RUST_LOG` set to `rust_log` (None: unset).
fn log_of_one_websocket_session_with(loglevel: Option<&str>, rust_log: Option<&str>) -> String {
    let dir = TempDir::new(DIR_PREFIX);
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = dir.path().join("config.json");
    let json = format!(
        r#"{{
            "version": 2,
            "workers": [{{
                "type": "router",
                "realms": [{{
                    "name": "realm1",
                    "roles": [{{"name": "anonymous", "permissions": [{{"uri": "", "match": "prefix",
                        "allow": {{"call": true, "register": true, "publish": true, "subscribe": true}}}}]}}],
                    "stats": {{}}
                }}],
                "transports": [{{
                    "type": "websocket",
                    "endpoint": {{"type": "tcp", "interface": "127.0.0.1", "port": {port}}},
                    "serializers": ["json", "msgpack", "cbor"]
                }}]
            }}]
        }}"#
    );
    std::fs::write(&config, json).unwrap();
    let mut args = vec!["start", "--config", config.to_str().unwrap()];
    if let Some(level) = loglevel {
        args.extend(["--loglevel", level]);
    }
    let mut command = Command::new(BIN);
    command.args(&args).env_remove("RUST_LOG");
    if let Some(filter) = rust_log {
        command.env("RUST_LOG", filter);
    }
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();

    let started = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if started.elapsed() > Duration::from_secs(10) || child.try_wait().unwrap().is_some() {
            let (_, log) = stop(child);
            panic!("router did not listen on port {port}: {log}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let url = format!("ws://127.0.0.1:{port}/");
    let session = runtime.block_on(async {
        let mut session = Session::connect(&url, Serializer::Json).await?;
        session.join("realm1").await?;
        session.leave().await?;
        session.close().await
    });
    // Give the router time to log the end of the connection before it is stopped.
    std::thread::sleep(Duration::from_millis(300));
    let (status, log) = stop(child);
    session.unwrap_or_else(|e| panic!("the WebSocket session failed: {e}; router log:\n{log}"));
    assert!(status.success(), "exit {status}: {log}");
    log
}

/// Lines of `log` at DEBUG or TRACE level (tracing's format: `TIME LEVEL target: message`).
fn debug_lines(log: &str) -> Vec<&str> {
    log.lines()
        .filter(|l| {
            l.split_whitespace()
                .nth(1)
                .is_some_and(|level| level == "DEBUG" || level == "TRACE")
        })
        .collect()
}

/// At the default level and at `--loglevel info`, the log holds Turnstile's own lines (the
/// session joined and left) and no DEBUG line of a dependency: the WebSocket library's lines
/// about the close in particular stay out.
#[test]
fn default_and_info_logs_hold_no_dependency_debug_lines() {
    for level in [None, Some("info")] {
        let log = log_of_one_websocket_session(level);
        assert!(
            log.contains("session joined") && log.contains("session left"),
            "{level:?}: Turnstile's info lines are missing:\n{log}"
        );
        let debug = debug_lines(&log);
        assert!(
            debug.is_empty(),
            "{level:?}: DEBUG lines:\n{}",
            debug.join("\n")
        );
        assert!(!log.contains("tungstenite"), "{level:?}:\n{log}");
    }
}

/// `--loglevel warn` writes nothing for a normal session, and `--loglevel none` nothing at all.
#[test]
fn warn_and_none_logs_stay_quiet() {
    let log = log_of_one_websocket_session(Some("warn"));
    let noisy: Vec<&str> = log
        .lines()
        .filter(|l| {
            let level = l.split_whitespace().nth(1).unwrap_or("");
            !(level == "WARN" || level == "ERROR")
        })
        .collect();
    assert!(
        noisy.is_empty(),
        "warn: lines below WARN:\n{}",
        noisy.join("\n")
    );
    let log = log_of_one_websocket_session(Some("none"));
    assert!(log.is_empty(), "none: the log is not empty:\n{log}");
}

/// At `--loglevel trace` and with `RUST_LOG=trace` the dependencies log too, but the WebSocket
/// library stays capped at DEBUG: at TRACE it would write whole messages, secrets included.
#[test]
fn trace_logs_keep_the_websocket_library_at_debug() {
    for (loglevel, rust_log) in [(Some("trace"), None), (None, Some("trace"))] {
        let log = log_of_one_websocket_session_with(loglevel, rust_log);
        let trace = debug_lines(&log);
        assert!(
            trace.iter().any(|l| l.contains(" TRACE ")),
            "{loglevel:?} {rust_log:?}: trace logging is not on:\n{log}"
        );
        let leaked: Vec<&&str> = trace
            .iter()
            .filter(|l| l.contains(" TRACE ") && l.contains("tungstenite"))
            .collect();
        assert!(leaked.is_empty(), "{loglevel:?} {rust_log:?}: {leaked:?}");
    }
}
