//! The `turnstile` binary: `version`, `init`, `check`, configuration errors (exit 2), and a
//! `start` on a Unix socket that stops gracefully on SIGTERM (exit 0).

// This file uses only `TempDir` of the shared harness.
#[allow(dead_code)]
mod common;

use std::io::{Read, Write};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::TempDir;

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
    assert_eq!(written, turnstile_config::DEFAULT_CONFIG_JSON);

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
fn start_serves_until_sigterm_then_exits_cleanly() {
    let dir = TempDir::new(DIR_PREFIX);
    let config = dir.path().join("config.json");
    std::fs::write(
        &config,
        r#"{
            "version": 2,
            "workers": [{
                "type": "router",
                "realms": [{"name": "realm1", "roles": []}],
                "transports": [{
                    "type": "rawsocket",
                    "endpoint": {"type": "unix", "path": "node.sock"},
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
}
