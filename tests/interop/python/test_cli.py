"""The command line: `turnstile check --config FILE` validates a node configuration (exit 0, or
exit 2 with a message on stderr naming the file, the path to the key and the value), and
`turnstile start` refuses an invalid configuration before listening
(docs/session-statistics.md section 5)."""

from __future__ import annotations

import json
import os
import socket
import subprocess

import pytest

from interop import free_ports, node_config, realm, router_binary


def _write(tmp_path, cfg) -> str:
    p = tmp_path / "node.json"
    p.write_text(json.dumps(cfg, indent=2))
    return str(p)


def _config(tmp_path, stats=None):
    ws, rs = free_ports(2)
    return node_config(ws_port=ws, rs_port=rs, unix_path=str(tmp_path / "r.sock"),
                       realms=[realm("realm1", stats=stats)])


def _run(*args, timeout=10):
    binary = router_binary()
    if not os.path.exists(binary):
        pytest.fail(f"router binary {binary} does not exist", pytrace=False)
    return subprocess.run([binary, *args], capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)


def test_check_accepts_valid_config(tmp_path):
    """`check` exits 0 for the configuration the interop tests run with (stats included)."""
    cfg = _config(tmp_path, stats={"rated_message_size": 512, "trigger_after_rated_messages": 5,
                                   "trigger_after_duration": 0, "trigger_on_join": True,
                                   "trigger_on_leave": True})
    r = _run("check", "--config", _write(tmp_path, cfg))
    assert r.returncode == 0, f"exit {r.returncode}; stderr:\n{r.stderr}"


@pytest.mark.parametrize("key,value", [
    ("rated_message_size", 100),        # not a power of two
    ("rated_message_size", 0),          # less than 1
    ("trigger_after_rated_messages", -1),
    ("trigger_after_duration", "10"),   # wrong type
    ("trigger_on_join", 1),             # wrong type
    ("no_such_option", True),           # unknown key
])
def test_check_rejects_bad_stats(tmp_path, key, value):
    """`check` exits 2 for an invalid `stats` value, with a message on stderr that names the file
    and the path to the key."""
    cfg = _config(tmp_path, stats={key: value})
    path = _write(tmp_path, cfg)
    r = _run("check", "--config", path)
    assert r.returncode == 2, f"exit {r.returncode}; stderr:\n{r.stderr}"
    assert "node.json" in r.stderr, f"file not named:\n{r.stderr}"
    assert f"workers[0].realms[0].stats.{key}" in r.stderr, f"key path not named:\n{r.stderr}"


def test_start_refuses_invalid_config(tmp_path):
    """`start` with an invalid configuration exits non-zero without listening."""
    cfg = _config(tmp_path, stats={"rated_message_size": 3})
    port = cfg["workers"][0]["transports"][1]["endpoint"]["port"]
    r = _run("start", "--config", _write(tmp_path, cfg))
    assert r.returncode != 0
    assert "rated_message_size" in r.stderr, r.stderr
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
