#!/usr/bin/env bash
# Scale runs of Turnstile on this machine, each against a freshly started router (release build):
#
#   bench/scale.sh idle [SESSIONS]   idle sessions (default 100000) over WebSocket, then over
#                                    RawSocket, each from several loopback source addresses, while
#                                    an active client calls and publishes (turnstile-bench idle)
#   bench/scale.sh soak [DURATION]   the soak (default 30m): joining/leaving sessions, pub/sub,
#                                    RPC, slow consumers, abrupt disconnects; fails on RSS growth
#                                    >= 5 %, a lost message or an error (turnstile-bench soak)
#
# The router gets the configuration of bench/compare.sh (realm1, anonymous allowed everything,
# the same `stats` section, WebSocket and RawSocket transports) and logs at warn level. Both the
# router and the tool need one file descriptor per session: the script raises the open-file
# limit (soft and hard; raising the hard limit needs root or CAP_SYS_RESOURCE) before starting
# them, and the router raises its soft limit to the hard one itself.
#
# Environment (defaults in brackets):
#   SCALE_OUT [target/bench-scale]   configuration, router logs, JSON results
#   SCALE_PORT_BASE [19080]          WebSocket on BASE, RawSocket on BASE+1
#   SCALE_CONCURRENCY [500]          idle: sessions being opened at once
#   SCALE_TOOL_THREADS [2]           idle: threads of the tool's runtime (one thread held the
#                                    join rate down: 2,255/s against 4,873/s with two, same day)
#   SCALE_HOLD [5s]                  idle: how long the sessions are held before the router's
#                                    memory is read
#   SCALE_SERIALIZER [json]          serializer of every session
#   SOAK_ARGS []                     more turnstile-bench soak options (--churn, --rate, ...)
#   SCALE_BUILD [1]                  0: use the release binaries as they are
set -uo pipefail

cd "$(dirname "$0")/.."
ROOT="$(pwd)"
MODE="${1:-}"
OUT="${SCALE_OUT:-$ROOT/target/bench-scale}"
PORT_BASE="${SCALE_PORT_BASE:-19080}"
WS_PORT=$PORT_BASE
RS_PORT=$((PORT_BASE + 1))
CONCURRENCY="${SCALE_CONCURRENCY:-500}"
HOLD="${SCALE_HOLD:-5s}"
SERIALIZER="${SCALE_SERIALIZER:-json}"
TARGET_DIR="${CARGO_TARGET_DIR:-target}"
case "$TARGET_DIR" in /*) ;; *) TARGET_DIR="$ROOT/$TARGET_DIR" ;; esac
BENCH="$TARGET_DIR/release/turnstile-bench"
TURNSTILE="$TARGET_DIR/release/turnstile"

log() { printf '[scale %s] %s\n' "$(date -u +%H:%M:%S)" "$*"; }

case "$MODE" in
idle) SESSIONS="${2:-100000}" ;;
soak) DURATION="${2:-30m}" ;;
*)
    sed -n '2,/^set -uo/p' "$0" | sed '$d; s/^# \{0,1\}//'
    exit 2
    ;;
esac

ROUTER_PID=""
stop_router() {
    [ -n "$ROUTER_PID" ] || return 0
    kill -TERM "$ROUTER_PID" 2>/dev/null
    for _ in $(seq 1 60); do
        kill -0 "$ROUTER_PID" 2>/dev/null || break
        sleep 0.5
    done
    kill -KILL "$ROUTER_PID" 2>/dev/null
    wait "$ROUTER_PID" 2>/dev/null
    ROUTER_PID=""
}
trap stop_router EXIT
trap 'stop_router; exit 130' INT TERM

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

mkdir -p "$OUT"
if [ "${SCALE_BUILD:-1}" = 1 ]; then
    log "building turnstile and turnstile-bench (release)"
    if ! cargo build --release -p turnstile -p turnstile-bench >"$OUT/build.log" 2>&1; then
        tail -n 30 "$OUT/build.log"
        exit 1
    fi
fi

# One descriptor per session in the router and in the tool, and room for the rest.
NEEDED_FDS=$(( ${SESSIONS:-10000} + 65536 ))
if [ "$(ulimit -Hn)" != unlimited ] && [ "$(ulimit -Hn)" -lt "$NEEDED_FDS" ]; then
    ulimit -Hn "$NEEDED_FDS" 2>/dev/null || log "cannot raise the hard open-file limit above $(ulimit -Hn) (raising it needs CAP_SYS_RESOURCE)"
fi
ulimit -n "$(ulimit -Hn)"
log "open-file limit: soft $(ulimit -n), hard $(ulimit -Hn)"
ROUTER_ARGS=()
if [ "$MODE" = idle ] && [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt $((SESSIONS + 1000)) ]; then
    # Every session is a descriptor in the router: no more than the limit can be held. Run as
    # many as fit, and let the router admit that many (its default keeps an eighth in reserve).
    SESSIONS=$(( $(ulimit -n) - 1000 ))
    ROUTER_ARGS=(--max-connections $(( SESSIONS + 100 )))
    log "the open-file limit holds only $SESSIONS sessions: running that many"
fi

cat >"$OUT/turnstile.json" <<EOF
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
            }],
            "stats": {"rated_message_size": 512, "trigger_after_rated_messages": 0,
                      "trigger_after_duration": 0, "trigger_on_join": true,
                      "trigger_on_leave": true}
        }],
        "transports": [
            {
                "type": "web",
                "endpoint": {"type": "tcp", "interface": "127.0.0.1", "port": $WS_PORT, "backlog": 4096},
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
                "endpoint": {"type": "tcp", "interface": "127.0.0.1", "port": $RS_PORT, "backlog": 4096},
                "serializers": ["json", "msgpack", "cbor"],
                "max_message_size": 1048576
            }
        ]
    }]
}
EOF

# start_router NAME: a fresh router, logging to $OUT/NAME-router.log.
start_router() {
    stop_router
    RUST_LOG=warn "$TURNSTILE" start --config "$OUT/turnstile.json" "${ROUTER_ARGS[@]}" >"$OUT/$1-router.log" 2>&1 &
    ROUTER_PID=$!
    for _ in $(seq 1 80); do
        port_open "$WS_PORT" && port_open "$RS_PORT" && break
        kill -0 "$ROUTER_PID" 2>/dev/null || { log "the router exited: $(tail -n 5 "$OUT/$1-router.log")"; exit 1; }
        sleep 0.25
    done
    log "router $ROUTER_PID started; its open-file limit: $(grep 'Max open files' "/proc/$ROUTER_PID/limits" | awk '{print $4 " soft, " $5 " hard"}')"
}

# Router log lines at warn or error level, other than slow consumers being disconnected.
unexpected_router_lines() {
    grep -E 'WARN|ERROR' "$OUT/$1-router.log" | grep -v 'disconnecting: ' || true
}

STATUS=0
case "$MODE" in
idle)
    for url in "ws://127.0.0.1:$WS_PORT/ws" "rs://127.0.0.1:$RS_PORT"; do
        name="idle-${url%%:*}"
        start_router "$name"
        log "$name: $SESSIONS sessions against $url"
        if ! "$BENCH" idle --url "$url" --router-pid "$ROUTER_PID" --serializer "$SERIALIZER" \
            --sessions "$SESSIONS" --connect-batch "$CONCURRENCY" --hold "$HOLD" \
            --threads "${SCALE_TOOL_THREADS:-2}" \
            --json "$OUT/$name.json" | tee "$OUT/$name.txt"; then
            STATUS=1
        fi
        unexpected_router_lines "$name" | head -n 5
    done
    ;;
soak)
    start_router soak
    log "soak for $DURATION"
    # shellcheck disable=SC2086
    "$BENCH" soak --url "ws://127.0.0.1:$WS_PORT/ws" --router-pid "$ROUTER_PID" \
        --serializer "$SERIALIZER" --duration "$DURATION" ${SOAK_ARGS:-} \
        --json "$OUT/soak.json" | tee "$OUT/soak.txt"
    STATUS=${PIPESTATUS[0]}
    unexpected=$(unexpected_router_lines soak | wc -l)
    slow=$(grep -c 'disconnecting: ' "$OUT/soak-router.log")
    log "router log: $slow slow-consumer disconnects, $unexpected other warnings or errors"
    unexpected_router_lines soak | head -n 10
    [ "$unexpected" = 0 ] || STATUS=1
    ;;
esac
log "results in $OUT"
exit "$STATUS"
