#!/usr/bin/env bash
# Benchmarks Turnstile against Crossbar.io on this machine with the same tool and settings, and
# writes BENCHMARKS.md.
#
#   1. builds turnstile and turnstile-bench (release);
#   2. installs Crossbar.io 26.10.1 from PyPI into target/crossbar-venv (once);
#   3. writes equivalent configurations for both routers: realm1, anonymous allowed everything,
#      the same `stats` section, a WebSocket transport (ws://127.0.0.1:PORT/ws) and a RawSocket
#      transport;
#      (Turnstile with statistics also gets a WebSocket transport over TLS, with a CA and
#      certificate made here with openssl);
#   4. measures the loopback floor (a bare TCP ping-pong, no router);
#   5. starts Crossbar, runs every scenario against it, stops it; then starts Turnstile twice, with
#      statistics on and off (no `stats` section), on different ports, and runs every scenario
#      against each in turn (scenario by scenario, so that both meet the same conditions), and
#      against the first one's TLS port (wss://, the same router process: the cost of TLS);
#   6. writes BENCHMARKS.md (bench/report.py) from the JSON results.
#
# If Crossbar cannot be installed or started, the script says so, benchmarks Turnstile alone,
# and BENCHMARKS.md says why the comparison is missing. A failed scenario is recorded (its error
# goes into the report) and the script goes on.
#
# Environment (defaults in brackets):
#   BENCH_DURATION [2s]   length of each measured run      BENCH_WARMUP [1s]    warm-up
#   BENCH_REPEATS [5]     measured runs per scenario        BENCH_SERIALIZERS ["json msgpack"]
#   BENCH_FANOUT ["100 1000"]  subscriber counts of fanout  BENCH_SESSIONS [10000]
#   BENCH_PLACEMENT [split]  split: each router (all its threads) on core 1 and the tool on core 0
#                         (taskset), so that the scheduler's placement does not add noise; free:
#                         let the scheduler place them
#   BENCH_PINNED [1]      also run `rpc` with the router and the tool both on core 0
#   BENCH_SKIP_CROSSBAR [0]  benchmark Turnstile alone
#   BENCH_TLS [1]         also measure Turnstile over wss:// (needs openssl)
#   BENCH_OUT [target/bench-compare]  configs, logs and JSON results
#   BENCH_REPORT [BENCHMARKS.md]      the report to write
#   BENCH_PORT_BASE [18080]  Crossbar listens on BASE (ws) and BASE+1 (rawsocket), Turnstile on
#                            BASE+10/+11 (statistics on, BASE+12 wss) and BASE+20/+21 (off), the
#                            baseline on BASE+30/+31
#   BENCH_BASELINE_REV []  a git revision (e.g. the commit before a change): it is built (release,
#                         in a worktree under target/) and measured in the same run, statistics on,
#                         scenario by scenario in turn with the current build, so that the report
#                         can say whether the change made any scenario slower
#
# Every load loop is bounded: each tool run lasts warm-up + repeats x duration and fails after
# 20 s without progress; each tool invocation is also killed after 10 minutes.
set -uo pipefail

cd "$(dirname "$0")/.."
ROOT="$(pwd)"

DURATION="${BENCH_DURATION:-2s}"
WARMUP="${BENCH_WARMUP:-1s}"
REPEATS="${BENCH_REPEATS:-5}"
SERIALIZERS="${BENCH_SERIALIZERS:-json msgpack}"
FANOUT="${BENCH_FANOUT:-100 1000}"
SESSIONS="${BENCH_SESSIONS:-10000}"
PINNED="${BENCH_PINNED:-1}"
PLACEMENT="${BENCH_PLACEMENT:-split}"
SKIP_CROSSBAR="${BENCH_SKIP_CROSSBAR:-0}"
TLS="${BENCH_TLS:-1}"
OUT="${BENCH_OUT:-$ROOT/target/bench-compare}"
REPORT="${BENCH_REPORT:-$ROOT/BENCHMARKS.md}"
PORT_BASE="${BENCH_PORT_BASE:-18080}"
CROSSBAR_VERSION="26.10.1"
VENV="$ROOT/target/crossbar-venv"

CB_WS=$PORT_BASE
CB_RS=$((PORT_BASE + 1))
TS_WS=$((PORT_BASE + 10))
TS_RS=$((PORT_BASE + 11))
TS_WSS=$((PORT_BASE + 12))
TS2_WS=$((PORT_BASE + 20))
TS2_RS=$((PORT_BASE + 21))
TS3_WS=$((PORT_BASE + 30))
TS3_RS=$((PORT_BASE + 31))
BASELINE_REV="${BENCH_BASELINE_REV:-}"

TARGET_DIR="${CARGO_TARGET_DIR:-target}"
case "$TARGET_DIR" in /*) ;; *) TARGET_DIR="$ROOT/$TARGET_DIR" ;; esac
BENCH="$TARGET_DIR/release/turnstile-bench"
TURNSTILE="$TARGET_DIR/release/turnstile"
FIRST_SERIALIZER="${SERIALIZERS%% *}"

# Where the routers and the tool run.
ROUTER_CPU=()
TOOL_CPU=()
if [ "$PLACEMENT" = split ] && command -v taskset >/dev/null && [ "$(nproc)" -ge 2 ]; then
    ROUTER_CPU=(taskset -c 1)
    TOOL_CPU=(taskset -c 0)
else
    PLACEMENT=free
fi
STARTED_AT=$(date +%s)

log() { printf '[compare %s] %s\n' "$(date +%H:%M:%S)" "$*"; }

# ----------------------------------------------------------------------------------------------
# Routers we started, stopped on exit whatever happens.

ROUTER_PIDS=()
stop_routers() {
    local pid
    for pid in "${ROUTER_PIDS[@]}"; do
        kill -TERM "$pid" 2>/dev/null
    done
    for pid in "${ROUTER_PIDS[@]}"; do
        for _ in $(seq 1 60); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.5
        done
        if kill -0 "$pid" 2>/dev/null; then
            log "router $pid did not stop in 30 s: killing it"
            kill -KILL "$pid" 2>/dev/null
        fi
        wait "$pid" 2>/dev/null
    done
    ROUTER_PIDS=()
}
trap stop_routers EXIT
trap 'stop_routers; exit 130' INT TERM

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# wait_port PORT SECONDS PID: until something listens on PORT (while process PID lives).
wait_port() {
    local i
    for i in $(seq 1 $(($2 * 4))); do
        port_open "$1" && return 0
        kill -0 "$3" 2>/dev/null || return 1
        sleep 0.25
    done
    return 1
}

# wait_port_closed PORT: until nothing listens on PORT (at most 30 s).
wait_port_closed() {
    local i
    for i in $(seq 1 120); do
        port_open "$1" || return 0
        sleep 0.25
    done
    return 1
}

# The PID of the process listening on a TCP port (the one the tool measures).
listener_pid() {
    ss -Hltnp "sport = :$1" 2>/dev/null | grep -o 'pid=[0-9]*' | head -1 | cut -d= -f2
}

# ----------------------------------------------------------------------------------------------
# One tool run: bench LABEL NAME ARGS... writes $OUT/results/LABEL/NAME.json, or NAME.err with
# the failure.

bench() {
    local label="$1" name="$2"
    shift 2
    local dir="$OUT/results/$label"
    mkdir -p "$dir"
    rm -f "$dir/$name.json" "$dir/$name.err"
    log "$label: $name"
    if timeout 600 "$@" --json "$dir/$name.json" --stall-timeout 20s \
        >>"$OUT/logs/$label.out" 2>"$dir/$name.stderr"; then
        tail -n 1 "$OUT/logs/$label.out" | sed 's/^/    /'
    else
        local rc=$?
        local why
        why=$(grep -E 'FAILED|error|Error' "$dir/$name.stderr" | tail -n 3)
        [ -n "$why" ] || why="exit code $rc: $(tail -n 3 "$dir/$name.stderr")"
        [ "$rc" = 124 ] && why="killed after 600 s: $why"
        printf '%s\n' "$why" >"$dir/$name.err"
        log "$label: $name FAILED: $why"
        rm -f "$dir/$name.json"
    fi
    cat "$dir/$name.stderr" >>"$OUT/logs/$label.err"
    rm -f "$dir/$name.stderr"
}

# The tool's --url (and --ca-file) for a target: wss:// for labels ending in -tls.
target_args() {
    local label="$1" port="$2"
    case "$label" in
        *-tls) printf '%s\n' --url "wss://127.0.0.1:$port/ws" --ca-file "$OUT/tls/ca.pem" ;;
        *) printf '%s\n' --url "ws://127.0.0.1:$port/ws" ;;
    esac
}

# run_suite LABEL:WS_PORT ...: every scenario against each router listening on its port, the
# routers in turn for each scenario (so that Turnstile with and without statistics run under the
# same conditions). `sessions` comes first, while the routers are fresh, so that their memory
# per session is not hidden by memory freed after earlier scenarios.
run_suite() {
    local targets=("$@")
    local common=(--duration "$DURATION" --warmup "$WARMUP" --repeats "$REPEATS")
    local t ser n
    # each LABEL:PORT
    each() {
        local scenario_name="$1"
        shift
        for t in "${targets[@]}"; do
            local label="${t%%:*}" url_args
            mapfile -t url_args < <(target_args "$label" "${t##*:}")
            bench "$label" "$scenario_name" "${TOOL_CPU[@]}" "$BENCH" "$@" "${url_args[@]}"
        done
    }
    each "sessions-$FIRST_SERIALIZER" sessions --serializer "$FIRST_SERIALIZER" \
        --sessions "$SESSIONS" --repeats 3 --hold 2s
    for ser in $SERIALIZERS; do
        each "pubsub-$ser" pubsub --serializer "$ser" "${common[@]}"
        each "pubsub-ack-$ser" pubsub-ack --serializer "$ser" --window 100 "${common[@]}"
        each "rpc-$ser" rpc --serializer "$ser" "${common[@]}"
        each "rpc-par-$ser" rpc-par --serializer "$ser" --window 100 "${common[@]}"
        for n in $FANOUT; do
            each "fanout$n-$ser" fanout --serializer "$ser" --subscribers "$n" --backlog 500 "${common[@]}"
        done
    done
    if [ "$PINNED" = 1 ] && command -v taskset >/dev/null; then
        local all="0-$(($(nproc) - 1))"
        for ser in $SERIALIZERS; do
            for t in "${targets[@]}"; do
                local label="${t%%:*}" port="${t##*:}" pid url_args
                pid=$(listener_pid "$port")
                [ -n "$pid" ] || continue
                mapfile -t url_args < <(target_args "$label" "$port")
                taskset -a -p -c 0 "$pid" >/dev/null
                bench "$label" "rpc-pinned-$ser" taskset -c 0 "$BENCH" rpc "${url_args[@]}" \
                    --serializer "$ser" "${common[@]}"
                if [ "$PLACEMENT" = split ]; then
                    taskset -a -p -c 1 "$pid" >/dev/null
                else
                    taskset -a -p -c "$all" "$pid" >/dev/null
                fi
            done
        done
    fi
}

# ----------------------------------------------------------------------------------------------

mkdir -p "$OUT"
rm -rf "$OUT/results" "$OUT/logs"
mkdir -p "$OUT/results" "$OUT/logs"

log "building turnstile and turnstile-bench (release)"
GIT_REV="$(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
if [ -n "$(git status --porcelain --untracked-files=no 2>/dev/null)" ]; then
    GIT_REV="$GIT_REV with uncommitted changes"
fi
if ! cargo build --release -p turnstile -p turnstile-bench >"$OUT/logs/build.log" 2>&1; then
    tail -n 30 "$OUT/logs/build.log"
    log "build failed"
    exit 1
fi

BASELINE_BIN=""
BASELINE_DESC=""
if [ -n "$BASELINE_REV" ]; then
    BASELINE_TREE="$ROOT/target/bench-baseline-src"
    BASELINE_SHA="$(git rev-parse --short "$BASELINE_REV")" || { log "unknown revision $BASELINE_REV"; exit 1; }
    log "building the baseline $BASELINE_REV ($BASELINE_SHA) in $BASELINE_TREE"
    : >"$OUT/logs/baseline-build.log"
    # A tree already checked out at that commit is reused, so its build stays incremental.
    if [ "$(git -C "$BASELINE_TREE" rev-parse --short HEAD 2>/dev/null)" != "$BASELINE_SHA" ] ||
        [ -n "$(git -C "$BASELINE_TREE" status --porcelain 2>/dev/null)" ]; then
        git worktree remove --force "$BASELINE_TREE" >/dev/null 2>&1 || rm -rf "$BASELINE_TREE"
        git worktree prune
        git worktree add --detach "$BASELINE_TREE" "$BASELINE_SHA" >>"$OUT/logs/baseline-build.log" 2>&1
    fi
    if [ -d "$BASELINE_TREE" ] &&
        (cd "$BASELINE_TREE" && CARGO_TARGET_DIR="$ROOT/target/bench-baseline" \
            cargo build --release -p turnstile) >>"$OUT/logs/baseline-build.log" 2>&1; then
        BASELINE_BIN="$ROOT/target/bench-baseline/release/turnstile"
        BASELINE_DESC="$BASELINE_SHA ($(git log -1 --format=%s "$BASELINE_SHA" | cut -c1-80))"
    else
        tail -n 20 "$OUT/logs/baseline-build.log"
        log "the baseline could not be built"
        exit 1
    fi
fi

# Many sessions need many file descriptors, in the tool and in both routers (inherited).
NEEDED_FDS=$((SESSIONS * 2 + 4096))
if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt "$NEEDED_FDS" ]; then
    ulimit -n "$NEEDED_FDS" 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null
fi
log "open-file limit: $(ulimit -n); placement: $PLACEMENT"

# ---- configurations ----

STATS='{"rated_message_size": 512, "trigger_after_rated_messages": 0, "trigger_after_duration": 0, "trigger_on_join": true, "trigger_on_leave": true}'

# node_config WS_PORT RS_PORT STATS_JSON_OR_EMPTY RAWSOCKET_EXTRA [WSS_PORT]
node_config() {
    local stats_line="" wss=""
    [ -n "$3" ] && stats_line=", \"stats\": $3"
    [ -n "${5:-}" ] && wss=",
            {
                \"type\": \"web\",
                \"endpoint\": {\"type\": \"tcp\", \"interface\": \"127.0.0.1\", \"port\": $5, \"backlog\": 4096,
                             \"tls\": {\"key\": \"$OUT/tls/server.key\", \"certificate\": \"$OUT/tls/server.crt\"}},
                \"paths\": {\"ws\": {\"type\": \"websocket\", \"serializers\": [\"json\", \"msgpack\", \"cbor\"],
                                 \"options\": {\"max_message_size\": 1048576, \"max_frame_size\": 1048576}}}
            }"
    cat <<EOF
{
    "version": 2,
    "controller": {},
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
            }]$stats_line
        }],
        "transports": [
            {
                "type": "web",
                "endpoint": {"type": "tcp", "interface": "127.0.0.1", "port": $1, "backlog": 4096},
                "paths": {
                    "ws": {
                        "type": "websocket",
                        "serializers": ["json", "msgpack", "cbor"],
                        "options": {"max_message_size": 1048576, "max_frame_size": 1048576,
                                    "auto_ping_interval": 0, "auto_ping_timeout": 0}
                    }
                }
            },
            {
                "type": "rawsocket",
                "endpoint": {"type": "tcp", "interface": "127.0.0.1", "port": $2, "backlog": 4096},
                "serializers": ["json", "msgpack", "cbor"]$4
            }$wss
        ]
    }]
}
EOF
}

# A CA and a server certificate for 127.0.0.1, for the wss:// runs.
TLS_PORT=""
if [ "$TLS" = 1 ]; then
    mkdir -p "$OUT/tls"
    if (cd "$OUT/tls" &&
        openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
            -keyout ca.key -out ca.pem -days 2 -subj "/CN=turnstile-bench CA" &&
        openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
            -keyout server.key -out server.csr -subj "/CN=127.0.0.1" &&
        printf 'subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n' >server.ext &&
        openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial \
            -out server.crt -days 2 -extfile server.ext) >"$OUT/logs/tls.log" 2>&1; then
        TLS_PORT=$TS_WSS
    else
        log "no TLS runs: the certificates could not be made (openssl): $(tail -n 2 "$OUT/logs/tls.log")"
    fi
fi

mkdir -p "$OUT/crossbar/.crossbar"
node_config "$CB_WS" "$CB_RS" "$STATS" "" >"$OUT/crossbar/.crossbar/config.json"
node_config "$TS_WS" "$TS_RS" "$STATS" ', "max_message_size": 1048576' "$TLS_PORT" >"$OUT/turnstile-stats.json"
node_config "$TS2_WS" "$TS2_RS" "" ', "max_message_size": 1048576' >"$OUT/turnstile-nostats.json"
node_config "$TS3_WS" "$TS3_RS" "$STATS" ', "max_message_size": 1048576' >"$OUT/turnstile-baseline.json"

# ---- the loopback floor ----

log "loopback floor (no router)"
bench baseline tcp-baseline "$BENCH" tcp-baseline --duration "$DURATION" --warmup "$WARMUP" --repeats "$REPEATS"
if command -v taskset >/dev/null; then
    bench baseline tcp-baseline-pinned taskset -c 0 "$BENCH" tcp-baseline --duration "$DURATION" --warmup "$WARMUP" --repeats "$REPEATS"
fi

# ---- Crossbar.io ----

CROSSBAR_STATUS="ok"
if [ "$SKIP_CROSSBAR" = 1 ]; then
    CROSSBAR_STATUS="skipped (BENCH_SKIP_CROSSBAR=1)"
else
    if [ -x "$VENV/bin/crossbar" ] && "$VENV/bin/pip" show crossbar 2>/dev/null | grep -qx "Version: $CROSSBAR_VERSION"; then
        log "Crossbar.io $CROSSBAR_VERSION already installed in $VENV"
    else
        log "installing Crossbar.io $CROSSBAR_VERSION into $VENV (pip)"
        if ! { python3 -m venv "$VENV" &&
            "$VENV/bin/pip" install --quiet --upgrade pip &&
            "$VENV/bin/pip" install --quiet "crossbar==$CROSSBAR_VERSION"; } >"$OUT/logs/crossbar-install.log" 2>&1; then
            CROSSBAR_STATUS="could not be installed: pip install crossbar==$CROSSBAR_VERSION failed: $(grep -iE 'error' "$OUT/logs/crossbar-install.log" | tail -n 2 | tr '\n' ' ')"
        fi
    fi
fi
if [ "$CROSSBAR_STATUS" = ok ]; then
    log "starting Crossbar.io"
    "${ROUTER_CPU[@]}" "$VENV/bin/crossbar" start --cbdir "$OUT/crossbar/.crossbar" --loglevel warn \
        >"$OUT/logs/crossbar-router.log" 2>&1 &
    ROUTER_PIDS=($!)
    if wait_port "$CB_WS" 120 "${ROUTER_PIDS[0]}" && wait_port "$CB_RS" 30 "${ROUTER_PIDS[0]}"; then
        run_suite "crossbar:$CB_WS"
    else
        CROSSBAR_STATUS="could not be started: $(grep -iE 'error|fatal' "$OUT/logs/crossbar-router.log" | tail -n 3 | tr '\n' ' ')"
    fi
    stop_routers
    wait_port_closed "$CB_WS"
fi
if [ "$CROSSBAR_STATUS" != ok ]; then
    log "Crossbar.io $CROSSBAR_STATUS: benchmarking Turnstile alone"
fi

# ---- Turnstile, statistics on and off ----
# Two routers at once on different ports, idle while the other one is measured, measured in turn
# for each scenario.

log "starting Turnstile with statistics (ports $TS_WS, $TS_RS) and without (ports $TS2_WS, $TS2_RS)"
RUST_LOG=warn "${ROUTER_CPU[@]}" "$TURNSTILE" start --config "$OUT/turnstile-stats.json" \
    >"$OUT/logs/turnstile-router.log" 2>&1 &
ROUTER_PIDS+=($!)
RUST_LOG=warn "${ROUTER_CPU[@]}" "$TURNSTILE" start --config "$OUT/turnstile-nostats.json" \
    >"$OUT/logs/turnstile-nostats-router.log" 2>&1 &
ROUTER_PIDS+=($!)
TARGETS=("turnstile:$TS_WS" "turnstile-nostats:$TS2_WS")
if [ -n "$TLS_PORT" ]; then
    # The same process as "turnstile", over its TLS port.
    TARGETS+=("turnstile-tls:$TLS_PORT")
fi
BASELINE_OK=1
if [ -n "$BASELINE_BIN" ]; then
    log "starting the baseline $BASELINE_DESC (ports $TS3_WS, $TS3_RS)"
    RUST_LOG=warn "${ROUTER_CPU[@]}" "$BASELINE_BIN" start --config "$OUT/turnstile-baseline.json" \
        >"$OUT/logs/turnstile-baseline-router.log" 2>&1 &
    ROUTER_PIDS+=($!)
    if wait_port "$TS3_WS" 30 "${ROUTER_PIDS[2]}" && wait_port "$TS3_RS" 10 "${ROUTER_PIDS[2]}"; then
        TARGETS+=("turnstile-baseline:$TS3_WS")
    else
        BASELINE_OK=0
        log "the baseline did not start: $(tail -n 5 "$OUT/logs/turnstile-baseline-router.log")"
    fi
fi
if wait_port "$TS_WS" 30 "${ROUTER_PIDS[0]}" && wait_port "$TS_RS" 10 "${ROUTER_PIDS[0]}" &&
    wait_port "$TS2_WS" 30 "${ROUTER_PIDS[1]}" && wait_port "$TS2_RS" 10 "${ROUTER_PIDS[1]}" &&
    [ "$BASELINE_OK" = 1 ]; then
    run_suite "${TARGETS[@]}"
else
    log "Turnstile did not start: $(tail -n 5 "$OUT"/logs/turnstile*-router.log)"
fi
stop_routers

# ---- the report ----

FINISHED_AT=$(date +%s)
python3 "$ROOT/bench/report.py" \
    --results "$OUT/results" \
    --out "$REPORT" \
    --crossbar-status "$CROSSBAR_STATUS" \
    --crossbar-version "$CROSSBAR_VERSION" \
    --crossbar-python "$VENV/bin/python" \
    --turnstile "$TURNSTILE" \
    --settings "duration=$DURATION warmup=$WARMUP repeats=$REPEATS sessions=$SESSIONS pinned=$PINNED placement=$PLACEMENT" \
    --elapsed "$((FINISHED_AT - STARTED_AT))" \
    --notes "$ROOT/bench/notes.md" \
    --git "$GIT_REV" \
    --baseline "$BASELINE_DESC"
log "wrote $REPORT ($((FINISHED_AT - STARTED_AT)) s)"
