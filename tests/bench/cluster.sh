#!/usr/bin/env bash
# Sinew clusters on one machine: the cluster bus's cost per node and end-to-end deliveries over
# standalone Redis, a Redis Cluster and NATS, with 1, 3 and 6 nodes (run on demand; never in CI).
#
#   tests/bench/cluster.sh                                  # every topology, 1, 3 and 6 nodes
#   BASE=/work/h-bench-base/target/release/sinew tests/bench/cluster.sh
#                                  # also a build without interest routing (2b4f2b0), on standalone Redis
#   TOPOLOGIES="standalone" NODE_COUNTS="3" MODES="paced" tests/bench/cluster.sh
#   ROUNDS=3 BASE=... tests/bench/cluster.sh               # three times over; the table gives medians
#
# Topologies: `standalone` (one Redis), `cluster` (a Redis Cluster), `nats` (NATS for channel
# traffic, Redis for state), each with every channel's subscribers on one node (each node holds
# 1/N of the channels); and `spread`: standalone Redis with each channel's subscribers dealt over
# every node, where interest routing has nothing to leave out (paced only, 2 nodes or more).
#
# For each build, topology and node count it starts the nodes (each with its own port, metrics port
# and a Redis prefix of its own), runs `sinew-bench cluster-fanout` once per mode, and stops them.
# Modes: `paced` publishes at a fixed rate (latency, CPU per delivery, bus messages per node);
# `max` publishes as fast as the answers come (deliveries per second). The nodes share core
# $NODE_CORES, the generator runs on $BENCH_CORE; Redis and NATS are not pinned. The Redis Cluster
# (three primaries) is started here on free ports; standalone Redis and NATS are the machine's
# ($REDIS_URL, $NATS_URL). Results: JSON lines in $OUT/results.jsonl, a table at the end.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT="$PWD"
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"

SINEW="${SINEW:-$TARGET/release/sinew}"
BASE="${BASE:-}"
BENCH="$TARGET/release/sinew-bench"
TOPOLOGIES="${TOPOLOGIES:-standalone spread cluster nats}"
NODE_COUNTS="${NODE_COUNTS:-1 3 6}"
MODES="${MODES:-paced max}"
REDIS_URL="${REDIS_URL:-redis://127.0.0.1:6379}"
NATS_URL="${NATS_URL:-nats://127.0.0.1:4222}"
NODE_CORES="${NODE_CORES:-0}"
BENCH_CORE="${BENCH_CORE:-1}"
OUT="${OUT:-$TARGET/bench/cluster-$(date +%Y%m%d-%H%M%S)}"
# 360 channels (a multiple of 1, 9 and 36: every owning and publishing node paired equally often).
SHAPE="${SHAPE:---channels 360 --per-channel 10}"
PACED="${PACED:---messages 3600 --rate 600 --publishers 4}"
MAX="${MAX:---messages 36000 --rate 0 --publishers 8}"

mkdir -p "$OUT"
WORK="$(mktemp -d)"
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
[ -n "${SKIP_BUILD:-}" ] || cargo build --release --locked -p sinew -p sinew-bench >/dev/null

STARTED=()      # every process this script started, stopped on exit
NODE_PIDS=() NODE_PORTS=() METRIC_PORTS=()
cleanup() {
  for p in "${STARTED[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${STARTED[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# A free port P at most 55535 with P + 10000 free too (a Redis Cluster node's bus port).
cluster_port() {
  python3 -c '
import random, socket
while True:
    p = random.randint(20000, 55535)
    try:
        for q in (p, p + 10000):
            socket.socket().bind(("127.0.0.1", q))
        print(p)
        break
    except OSError:
        pass'
}

# Waits up to 10 s for the Redis on port $1 to answer.
wait_redis() {
  for _ in $(seq 1 100); do redis-cli -p "$1" ping >/dev/null 2>&1 && return 0; sleep 0.1; done
  echo "Redis on port $1 did not start (log: $WORK/redis-$1.log)" >&2
  return 1
}

# The pid of the process listening on 127.0.0.1:$1 (empty when ss cannot tell): its CPU is reported.
listener_pid() { ss -ltnpH "sport = :$1" 2>/dev/null | grep -o 'pid=[0-9]*' | head -1 | cut -d= -f2; }

# A Redis Cluster of three primaries on free ports; sets CLUSTER_URL and CLUSTER_PIDS.
start_redis_cluster() {
  local ports=() p
  CLUSTER_PIDS=()
  for _ in 1 2 3; do
    p="$(cluster_port)"
    ports+=("$p")
    redis-server --port "$p" --bind 127.0.0.1 --cluster-enabled yes --cluster-config-file "$WORK/nodes-$p.conf" \
      --dir "$WORK" --save '' --appendonly no >"$WORK/redis-$p.log" 2>&1 &
    STARTED+=("$!")
    CLUSTER_PIDS+=("$!")
  done
  for p in "${ports[@]}"; do wait_redis "$p"; done
  redis-cli --cluster create "${ports[@]/#/127.0.0.1:}" --cluster-yes >"$WORK/cluster-create.log"
  for _ in $(seq 1 100); do
    redis-cli -p "${ports[0]}" cluster info | grep -q 'cluster_state:ok' && break
    sleep 0.2
  done
  CLUSTER_URL="redis://127.0.0.1:${ports[0]},redis://127.0.0.1:${ports[1]},redis://127.0.0.1:${ports[2]}"
}

# Starts $3 nodes of binary $1 on topology $2 with Redis prefix $4.
start_nodes() {
  local bin="$1" topo="$2" count="$3" prefix="$4" i port mport
  local env=(SINEW_HOST=127.0.0.1 SINEW_LOG=warn SINEW_APP_ID=1 SINEW_APP_KEY=app-key SINEW_APP_SECRET=app-secret
    SINEW_SHUTDOWN_GRACE_SECONDS=1 SINEW_REDIS_PREFIX="$prefix")
  case "$topo" in
    standalone | spread) env+=(SINEW_ADAPTER=redis SINEW_REDIS_URL="$REDIS_URL") ;;
    cluster) env+=(SINEW_ADAPTER=redis SINEW_REDIS_CLUSTER=true SINEW_REDIS_URL="$CLUSTER_URL") ;;
    nats) env+=(SINEW_ADAPTER=nats SINEW_NATS_URL="$NATS_URL" SINEW_REDIS_URL="$REDIS_URL") ;;
  esac
  NODE_PIDS=() NODE_PORTS=() METRIC_PORTS=()
  for i in $(seq 1 "$count"); do
    port="$(free_port)" mport="$(free_port)"
    env "${env[@]}" SINEW_PORT="$port" SINEW_METRICS_PORT="$mport" \
      taskset -c "$NODE_CORES" "$bin" >>"$OUT/node-$prefix-$i.log" 2>&1 &
    STARTED+=("$!")
    NODE_PIDS+=("$!") NODE_PORTS+=("$port") METRIC_PORTS+=("$mport")
  done
  for port in "${NODE_PORTS[@]}"; do
    for _ in $(seq 1 100); do
      curl -sf "http://127.0.0.1:$port/ready" >/dev/null && continue 2
      sleep 0.1
    done
    echo "node on port $port never became ready (log: $OUT/node-$prefix-*.log)" >&2
    return 1
  done
}

stop_nodes() {
  for p in "${NODE_PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${NODE_PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
}

join() { local IFS=,; echo "$*"; }

# Starts the nodes of build $1 (binary $2) on topology $3, $4 of them, and runs mode $5 against them.
run_one() {
  local name="$1" bin="$2" topo="$3" count="$4" mode="$5" layout="" load="$MAX" nodes=() p prefix
  [ "$topo" = spread ] && layout="--spread"
  [ "$mode" = paced ] && load="$PACED"
  prefix="bench-$$-$round-$name-$topo-$count-$mode"
  start_nodes "$bin" "$topo" "$count" "$prefix"
  for p in "${NODE_PORTS[@]}"; do nodes+=("127.0.0.1:$p"); done
  echo "== round $round: $name $topo $count node(s) $mode" >&2
  # shellcheck disable=SC2086
  taskset -c "$BENCH_CORE" "$BENCH" cluster-fanout --nodes "$(join "${nodes[@]}")" \
    --metrics-ports "$(join "${METRIC_PORTS[@]}")" --server-pids "$(join "${NODE_PIDS[@]}")" \
    ${BUS_PIDS:+--bus-pids "$BUS_PIDS"} $SHAPE $layout $load --connect-rate 2000 \
    --label "$name/$topo/$count/$mode" --json "$OUT/results.jsonl" || STATUS=$?
  stop_nodes
}

STATUS=0
BUILDS="new=$SINEW"
[ -n "$BASE" ] && BUILDS="$BUILDS base=$BASE"
# Rounds outermost and the builds alternating innermost, so a slow minute touches both alike.
for round in $(seq 1 "${ROUNDS:-1}"); do
  for topo in $TOPOLOGIES; do
    if [ "$topo" = cluster ] && [ -z "${CLUSTER_URL:-}" ]; then start_redis_cluster; fi
    case "$topo" in
      cluster) BUS_PIDS="$(join "${CLUSTER_PIDS[@]}")" ;;
      nats) BUS_PIDS="$(join $(listener_pid "${NATS_URL##*:}") $(listener_pid "${REDIS_URL##*:}"))" ;;
      *) BUS_PIDS="$(listener_pid "${REDIS_URL##*:}")" ;;
    esac
    for count in $NODE_COUNTS; do
      for mode in $MODES; do
        [ "$topo" = spread ] && { [ "$count" -gt 1 ] && [ "$mode" = paced ] || continue; }
        for build in $BUILDS; do
          # The build before interest routing has neither the cluster engine nor NATS.
          case "${build%%=*}/$topo" in base/cluster | base/nats) continue ;; esac
          run_one "${build%%=*}" "${build#*=}" "$topo" "$count" "$mode"
        done
      done
    done
  done
done
python3 "$ROOT/tests/bench/cluster_summary.py" "$OUT/results.jsonl"
echo "results: $OUT/results.jsonl" >&2
exit "$STATUS"
