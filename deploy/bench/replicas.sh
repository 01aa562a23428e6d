#!/usr/bin/env bash
# Throughput through nginx over 1 and 3 gateway replicas, next to one replica reached
# directly, measured side by side in one run (docs/PERFORMANCE.md, "Scale-out").
#
#   cargo build --release -p sealgate-server -p sealgate-load --bins
#   deploy/bench/replicas.sh            # DURATION=10s CONCURRENCY=8 by default
#
# Every case runs the same closed-loop sealgate-load (HTTP/1.1, so pass-through can spread
# the pool's connections) against release builds on this machine: the load tool, nginx,
# Redis and the replicas all share its cores, so the figures say what each hop costs, not
# how far N machines would scale (docs/SCALING.md does that from these numbers).
# Everything listens on 127.0.0.1 and is stopped at the end.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BIN=${BIN:-$ROOT/target/release}
DURATION=${DURATION:-10s}
CONCURRENCY=${CONCURRENCY:-8}
WORK=$(mktemp -d)
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

export ORT_DYLIB_PATH=${ORT_DYLIB_PATH:-$(cd "$ROOT" && cargo xtask ort-path 2>/dev/null)}
for tool in nginx redis-server python3; do
    command -v "$tool" >/dev/null || { echo "$tool is missing: cargo xtask setup installs it" >&2; exit 1; }
done
[[ -x $BIN/sealgate && -x $BIN/sealgate-load ]] || {
    echo "build first: cargo build --release -p sealgate-server -p sealgate-load --bins" >&2
    exit 1
}

port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

wait_for() { # file pattern
    for _ in $(seq 1 300); do grep -q "$2" "$1" 2>/dev/null && return 0; sleep 0.1; done
    echo "timed out waiting for '$2' in $1" >&2; cat "$1" >&2; exit 1
}

REDIS_PORT=$(port)
redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --save "" --appendonly no --dir "$WORK" >"$WORK/redis.log" 2>&1 &
PIDS+=($!)
echo $! >"$WORK/redis.pid"
wait_for "$WORK/redis.log" "Ready to accept connections"

# serve NAME DATA_DIR PORT [ARGS...]
serve() {
    local name=$1 data=$2 port=$3
    shift 3
    "$BIN/sealgate" serve --data-dir "$data" --listen "127.0.0.1:$port" --metrics-listen 127.0.0.1:0 "$@" \
        >"$WORK/$name.out" 2>"$WORK/$name.err" &
    PIDS+=($!)
    echo $! >"$WORK/$name.pid"
    wait_for "$WORK/$name.out" "sealgate listening on"
}

PORTS=()
for i in 0 1 2; do PORTS+=("$(port)"); done
serve replica-0 "$WORK/r0" "${PORTS[0]}" --replay-store "redis://127.0.0.1:$REDIS_PORT"
for i in 1 2; do
    cp -a "$WORK/r0" "$WORK/r$i"
    serve "replica-$i" "$WORK/r$i" "${PORTS[$i]}" --replay-store "redis://127.0.0.1:$REDIS_PORT"
done
MEMORY_PORT=$(port)
cp -a "$WORK/r0" "$WORK/memory"
serve memory "$WORK/memory" "$MEMORY_PORT"

# render TEMPLATE UPSTREAM_PORTS... : fills in the template's variables (sed, like envsubst).
render() {
    local template=$1 listen=$2
    shift 2
    local servers=""
    for p in "$@"; do servers+="server 127.0.0.1:$p max_fails=1 fail_timeout=2s; "; done
    sed -e "/^[[:space:]]*#/!s|\${SEALGATE_UPSTREAM_SERVERS}|$servers|" \
        -e "/^[[:space:]]*#/!s|\${SEALGATE_LISTEN}|127.0.0.1:$listen|" \
        -e "/^[[:space:]]*#/!s|\${SEALGATE_RELAY_CERT}|$WORK/r0/tls/server.pem|" \
        -e "/^[[:space:]]*#/!s|\${SEALGATE_RELAY_KEY}|$WORK/r0/tls/server.key|" \
        -e "/^[[:space:]]*#/!s|\${SEALGATE_GATEWAY_CA}|$WORK/r0/tls/ca.pem|" \
        -e "/^[[:space:]]*#/!s|\${SEALGATE_GATEWAY_NAME}|localhost|" \
        -e "/^[[:space:]]*#/!s|\${SEALGATE_ACCESS_LOG}|/dev/null|" \
        "$ROOT/deploy/nginx/$template"
}

# nginx NAME PORT TEMPLATE UPSTREAM_PORTS...
start_nginx() {
    local name=$1 listen=$2 template=$3
    shift 3
    local dir=$WORK/nginx-$name
    mkdir -p "$dir"
    local site top="" http=""
    site=$(render "$template" "$listen" "$@")
    if [[ $template == passthrough* ]]; then top=$site; else http=$site; fi
    cat >"$dir/nginx.conf" <<CONF
load_module /usr/lib/nginx/modules/ngx_stream_module.so;
worker_processes auto;
pid $dir/nginx.pid;
error_log $dir/error.log warn;
events { worker_connections 4096; }
$top
http {
    access_log off;
    client_body_temp_path $dir/body; proxy_temp_path $dir/proxy;
    fastcgi_temp_path $dir/fastcgi; uwsgi_temp_path $dir/uwsgi; scgi_temp_path $dir/scgi;
    $http
}
CONF
    nginx -p "$dir" -c "$dir/nginx.conf" -e "$dir/error.log" -g "daemon off;" &
    PIDS+=($!)
    echo $! >"$WORK/nginx-$name.pid"
    for _ in $(seq 1 100); do (echo >/dev/tcp/127.0.0.1/"$listen") 2>/dev/null && return 0; sleep 0.1; done
    echo "nginx $name did not start" >&2; cat "$dir/error.log" >&2; exit 1
}

PASS_1=$(port); PASS_3=$(port); RELAY_1=$(port); RELAY_3=$(port)
start_nginx pass-1 "$PASS_1" passthrough.conf.template "${PORTS[0]}"
start_nginx pass-3 "$PASS_3" passthrough.conf.template "${PORTS[@]}"
start_nginx relay-1 "$RELAY_1" relay.conf.template "${PORTS[0]}"
start_nginx relay-3 "$RELAY_3" relay.conf.template "${PORTS[@]}"

# CPU seconds (user + system) of the named processes and their children (nginx's workers).
cpu() {
    local total=0 pid
    for name in "$@"; do
        [[ -f $WORK/$name.pid ]] || continue
        for pid in $(cat "$WORK/$name.pid") $(pgrep -P "$(cat "$WORK/$name.pid")" || true); do
            total=$((total + $(awk '{print $14 + $15}' "/proc/$pid/stat")))
        done
    done
    echo "$total"
}

run() { # NAME URL GATEWAYS NGINX
    local before_gw before_redis before_nginx
    before_gw=$(cpu $3); before_redis=$(cpu redis); before_nginx=$(cpu $4)
    /usr/bin/time -f "%U %S" -o "$WORK/$1.load-cpu" \
        "$BIN/sealgate-load" --url "$2" --ca "$WORK/r0/tls/ca.pem" --token-file "$WORK/r0/dev.token" \
        --model credit-risk --concurrency "$CONCURRENCY" --duration "$DURATION" --warmup 2s --http1 \
        --json "$WORK/$1.json" --quiet >/dev/null
    echo "$(($(cpu $3) - before_gw)) $(($(cpu redis) - before_redis)) $(($(cpu $4) - before_nginx))" >"$WORK/$1.cpu"
}

CASES=(
    "direct-memory|https://127.0.0.1:$MEMORY_PORT|memory||1 replica, direct, in-memory replay window"
    "direct-redis|https://127.0.0.1:${PORTS[0]}|replica-0||1 replica, direct, replay window in Redis"
    "passthrough-1|https://127.0.0.1:$PASS_1|replica-0|nginx-pass-1|nginx TLS pass-through, 1 replica"
    "passthrough-3|https://127.0.0.1:$PASS_3|replica-0 replica-1 replica-2|nginx-pass-3|nginx TLS pass-through, 3 replicas"
    "relay-1|https://127.0.0.1:$RELAY_1|replica-0|nginx-relay-1|nginx OHTTP relay (TLS terminated), 1 replica"
    "relay-3|https://127.0.0.1:$RELAY_3|replica-0 replica-1 replica-2|nginx-relay-3|nginx OHTTP relay (TLS terminated), 3 replicas"
)
for case in "${CASES[@]}"; do
    IFS='|' read -r name url gateways balancer _ <<<"$case"
    run "$name" "$url" "$gateways" "$balancer"
done

echo "date: $(date -u +%Y-%m-%dT%H:%MZ)  machine: $(nproc) vCPU, $(uname -sr)  load: concurrency $CONCURRENCY, $DURATION, HTTP/1.1, credit-risk"
python3 - "$WORK" "${CASES[@]}" <<'PY'
import json, os, sys
work, cases = sys.argv[1], sys.argv[2:]
tick = os.sysconf("SC_CLK_TCK")
print(f"{'case':<50} {'req/s':>6} {'ratio':>6} {'p50 ms':>6} {'p99 ms':>6} {'fail':>4}"
      f" | CPU us/request: {'gateway':>7} {'redis':>5} {'nginx':>5} {'client':>6}")
base = None
for case in cases:
    name, _, _, _, title = case.split("|", 4)
    run = json.load(open(f"{work}/{name}.json"))["runs"][0]
    rps, lat = run["throughput_rps"], run["latency_us"]
    base = base or rps
    # CPU over the whole process lifetime of the run, warm-up included: divide by every
    # request sent then (measured ones plus the warm-up's, estimated at the same rate).
    requests = rps * (run["elapsed_s"] + 2.0)
    gw, redis, nginx = (int(x) / tick * 1e6 / requests for x in open(f"{work}/{name}.cpu").read().split())
    user, system = (float(x) for x in open(f"{work}/{name}.load-cpu").read().split()[-2:])
    client = (user + system) * 1e6 / requests
    print(f"{title:<50} {rps:>6.0f} {rps / base:>5.2f}x {lat['p50'] / 1000:>6.2f} {lat['p99'] / 1000:>6.2f}"
          f" {run['failed']:>4} | {'':>15} {gw:>7.1f} {redis:>5.1f} {nginx:>5.1f} {client:>6.1f}")
PY
