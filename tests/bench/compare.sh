#!/usr/bin/env bash
# Side-by-side benchmark of Sinew, soketi and sockudo, optionally with the floor (run on demand; never part of CI).
#
#   tests/bench/compare.sh                 # every scenario, every server
#   SERVERS="sinew" SCENARIOS="fanout-1k" tests/bench/compare.sh
#   SERVERS="sinew soketi sockudo floor" tests/bench/compare.sh   # and the floor (examples/floor.rs):
#                                          # the least a server can do per delivery
#   ROUNDS=3 tests/bench/compare.sh        # everything three times over; the summary shows each
#                                          # figure's median and range
#   VARIANTS="base=/tmp/old/sinew new=target/release/sinew" SERVERS="base new" ROUNDS=3 \
#     tests/bench/compare.sh               # two builds of Sinew in alternating runs (before/after)
#   SERVERS="sinew sinew-history" tests/bench/compare.sh   # history kept on every channel, or not
#   SERVERS="sinew-redis sinew-redis-history" tests/bench/compare.sh
#                                          # a one-node cluster on the machine's Redis (REDIS_URL,
#                                          # a fresh prefix per run), history off or on every channel
#   SERVERS="sinew sinew-postgres sinew-mysql" tests/bench/compare.sh
#                                          # the bench app from the config (sinew), or from an apps
#                                          # table in the machine's PostgreSQL or MariaDB (made and
#                                          # dropped here; POSTGRES_URL, MYSQL_URL name the servers)
#
# Each server runs alone, pinned to core 0 (`taskset -c 0`), on a fresh port, restarted for every
# scenario, with the same app credentials; sinew-bench runs pinned to core 1. Results are appended
# as JSON lines to $OUT/results.jsonl and summarised with the ratios at the end.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT="$PWD"

PEERS="${PEERS:-/work/peers}"
INSTALL_PEERS="${INSTALL_PEERS:-/work/shared/tools/install-peers.sh}"
SERVERS="${SERVERS:-sinew soketi sockudo}"
SCENARIOS="${SCENARIOS:-connect-5k connect-15k connect-15k-own-channel fanout-100 fanout-1k fanout-5k fanout-10k throughput client-events client-events-20 presence-churn}"
ROUNDS="${ROUNDS:-1}"
OUT="${OUT:-$ROOT/target/bench/$(date +%Y%m%d-%H%M%S)}"
SERVER_CORE="${SERVER_CORE:-0}"
BENCH_CORE="${BENCH_CORE:-1}"
APP_ID=bench-app APP_KEY=bench-key APP_SECRET=bench-secret

mkdir -p "$OUT"
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
case " $SERVERS " in *" soketi "*|*" sockudo "*) "$INSTALL_PEERS" "$PEERS" ;; esac
cargo build --release --locked -p sinew -p sinew-bench >/dev/null
case " $SCENARIOS " in *" js-"*) [ -d tests/node/node_modules ] || (cd tests/node && npm ci --no-audit --no-fund >/dev/null) ;; esac
case " $SERVERS " in *" floor "*) cargo build --release --locked --example floor >/dev/null ;; esac
BENCH="$ROOT/target/release/sinew-bench"

scenario_args() {
  case "$1" in
    connect-5k) echo "connect --connections 5000" ;;
    connect-15k) echo "connect --connections 15000" ;;
    # The issue's memory figure; needs an open-files limit above 19,000 for both processes.
    connect-19k) echo "connect --connections 19000" ;;
    # Each connection on a channel of its own (a user's private channel, say).
    connect-15k-own-channel) echo "connect --connections 15000 --channels 15000" ;;
    fanout-100) echo "fanout --subscribers 100 --messages 2000 --rate 200" ;;
    fanout-1k) echo "fanout --subscribers 1000 --messages 200 --rate 20" ;;
    fanout-5k) echo "fanout --subscribers 5000 --messages 40 --rate 4" ;;
    fanout-10k) echo "fanout --subscribers 10000 --messages 40 --rate 2" ;;
    fanout-15k) echo "fanout --subscribers 15000 --messages 30 --rate 1.33" ;;
    throughput) echo "throughput --channels 1000 --per-channel 10 --publishers 8 --duration 10" ;;
    # The same with a new connection per publish, as the official Node SDK publishes by default.
    throughput-new-connections) echo "throughput --channels 1000 --per-channel 10 --publishers 8 --duration 10 --new-connections" ;;
    client-events) echo "client-events --pairs 500 --rate 4 --duration 10" ;;
    # 20 events a second from every connection: above Pusher's default limit of 10, so each server
    # runs with its per-connection client-event limit raised (below).
    client-events-20) echo "client-events --pairs 500 --rate 20 --duration 10" ;;
    presence-churn) echo "presence-churn --watchers 10 --churners 40 --rate 5 --duration 10" ;;
    # Variants of the shapes above, with larger messages or fuller channels (not in the default set).
    fanout-1k-4kb) echo "fanout --subscribers 1000 --messages 200 --rate 20 --payload 4096" ;;
    throughput-1kb) echo "throughput --channels 1000 --per-channel 10 --publishers 8 --duration 10 --payload 1024" ;;
    presence-churn-90) echo "presence-churn --watchers 50 --churners 40 --rate 5 --duration 10" ;;
    # Fan-out with the real clients: pusher-js subscribers and the official Node SDK publishing
    # (tests/node/bench-fanout.mjs). Latency there is mostly the generator's own (one Node thread
    # parses every event); CPU per delivery is the server's.
    js-fanout-1k) echo "--subscribers 1000 --messages 200 --rate 20" ;;
    js-fanout-10k) echo "--subscribers 10000 --messages 40 --rate 2" ;;
    *) echo "unknown scenario $1" >&2; return 1 ;;
  esac
}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# Starts the Sinew binary $1 on port $2, logging to $3.
start_sinew() {
  SINEW_HOST=127.0.0.1 SINEW_PORT="$2" SINEW_LOG=warn SINEW_METRICS_ENABLED=false \
  SINEW_APP_ID="$APP_ID" SINEW_APP_KEY="$APP_KEY" SINEW_APP_SECRET="$APP_SECRET" SINEW_APP_CLIENT_EVENTS=true \
  SINEW_APP_MAX_CLIENT_EVENTS_PER_SECOND=100 \
    taskset -c "$SERVER_CORE" "$1" >>"$3" 2>&1 &
}

# An apps table holding the bench app, in a database of its own on the server at $1 (postgres or
# mysql); sets STORE_URL to the database's URL. Dropped at exit.
STORE_DBS=()
prepare_store() {
  local kind="$1" name="sinew_bench_$$_$1" url
  if [ "$kind" = postgres ]; then
    url="${POSTGRES_URL:-postgres://postgres@127.0.0.1:5432}"
    psql -q "$url/postgres" -c "DROP DATABASE IF EXISTS $name" -c "CREATE DATABASE $name" >/dev/null
  else
    url="${MYSQL_URL:-mysql://root@127.0.0.1:3306}"
    mysql -h 127.0.0.1 -u root -e "DROP DATABASE IF EXISTS $name; CREATE DATABASE $name"
  fi
  STORE_DBS+=("$kind=$url/$name")
  SINEW_APP_STORE="$kind" SINEW_DATABASE_URL="$url/$name" "$ROOT/target/release/sinew" db migrate >/dev/null
  local insert="INSERT INTO apps (id, \"key\", secret, enable_client_messages, max_client_events_per_sec) \
    VALUES ('$APP_ID', '$APP_KEY', '$APP_SECRET', true, 100)"
  if [ "$kind" = postgres ]; then psql -q "$url/$name" -c "$insert" >/dev/null
  else mysql -h 127.0.0.1 -u root "$name" -e "SET sql_mode='ANSI_QUOTES'; $insert"; fi
  STORE_URL="$url/$name"
}
drop_stores() {
  for db in "${STORE_DBS[@]:-}"; do
    [ -n "$db" ] || continue
    local kind="${db%%=*}" url="${db#*=}" name="${db##*/}"
    if [ "$kind" = postgres ]; then psql -q "${url%/*}/postgres" -c "DROP DATABASE IF EXISTS $name WITH (FORCE)" >/dev/null 2>&1 || true
    else mysql -h 127.0.0.1 -u root -e "DROP DATABASE IF EXISTS $name" 2>/dev/null || true; fi
  done
}

# Starts server $1 on port $2 in the background; sets SERVER_PID.
start_server() {
  local name="$1" port="$2" log="$OUT/$1.log"
  case "$name" in
    sinew)
      start_sinew "$ROOT/target/release/sinew" "$port" "$log"
      ;;
    sinew-history)
      # The same build keeping history on every channel (positions, one log entry per publish).
      SINEW_APP_HISTORY_CHANNELS='*' start_sinew "$ROOT/target/release/sinew" "$port" "$log"
      ;;
    sinew-redis|sinew-redis-history)
      # The same build as a node of a cluster on Redis (history in Redis for every channel, or none).
      export SINEW_ADAPTER=redis SINEW_REDIS_URL="${REDIS_URL:-redis://127.0.0.1:6379}"
      export SINEW_REDIS_PREFIX="sinew-bench-$RANDOM$RANDOM"
      [ "$name" = sinew-redis-history ] && export SINEW_APP_HISTORY_CHANNELS='*'
      start_sinew "$ROOT/target/release/sinew" "$port" "$log"
      unset SINEW_ADAPTER SINEW_REDIS_URL SINEW_REDIS_PREFIX SINEW_APP_HISTORY_CHANNELS
      ;;
    sinew-postgres|sinew-mysql)
      # The same build with the bench app read from a database, not from SINEW_APP_* variables.
      prepare_store "${name#sinew-}"
      SINEW_HOST=127.0.0.1 SINEW_PORT="$port" SINEW_LOG=warn SINEW_METRICS_ENABLED=false \
      SINEW_APP_STORE="${name#sinew-}" SINEW_DATABASE_URL="$STORE_URL" \
        taskset -c "$SERVER_CORE" "$ROOT/target/release/sinew" >>"$log" 2>&1 &
      ;;
    soketi)
      SOKETI_HOST=127.0.0.1 SOKETI_PORT="$port" SOKETI_DEBUG=false SOKETI_METRICS_ENABLED=false \
      SOKETI_DEFAULT_APP_ID="$APP_ID" SOKETI_DEFAULT_APP_KEY="$APP_KEY" SOKETI_DEFAULT_APP_SECRET="$APP_SECRET" \
      SOKETI_DEFAULT_APP_ENABLE_CLIENT_MESSAGES=true SOKETI_DEFAULT_APP_MAX_CONNS=-1 \
      SOKETI_DEFAULT_APP_MAX_BACKEND_EVENTS_PER_SEC=-1 SOKETI_DEFAULT_APP_MAX_CLIENT_EVENTS_PER_SEC=-1 \
        taskset -c "$SERVER_CORE" node "$PEERS/soketi/node_modules/@soketi/soketi/dist/cli/index.js" start >>"$log" 2>&1 &
      ;;
    floor)
      taskset -c "$SERVER_CORE" "$ROOT/target/release/examples/floor" "$port" >>"$log" 2>&1 &
      ;;
    sockudo)
      # Run from an empty directory so no config/config.toml is picked up.
      mkdir -p "$OUT/sockudo-cwd"
      (cd "$OUT/sockudo-cwd" && HOST=127.0.0.1 PORT="$port" METRICS_ENABLED=false RATE_LIMITER_ENABLED=false \
        ADAPTER_DRIVER=local CACHE_DRIVER=memory QUEUE_DRIVER=memory APP_MANAGER_DRIVER=memory \
        SOCKUDO_DEFAULT_APP_ID="$APP_ID" SOCKUDO_DEFAULT_APP_KEY="$APP_KEY" SOCKUDO_DEFAULT_APP_SECRET="$APP_SECRET" \
        SOCKUDO_DEFAULT_APP_ENABLE_CLIENT_MESSAGES=true SOCKUDO_DEFAULT_APP_MAX_CONNECTIONS=1000000 \
        SOCKUDO_DEFAULT_APP_MAX_BACKEND_EVENTS_PER_SECOND=1000000 SOCKUDO_DEFAULT_APP_MAX_CLIENT_EVENTS_PER_SECOND=100 \
        SOCKUDO_DEFAULT_APP_MAX_READ_REQUESTS_PER_SECOND=1000000 RUST_LOG=warn \
        exec taskset -c "$SERVER_CORE" "$PEERS/sockudo/bin/sockudo") >>"$log" 2>&1 &
      ;;
    *)
      # A build of Sinew named in VARIANTS ("name=path ...").
      local bin=""
      for v in ${VARIANTS:-}; do [ "${v%%=*}" = "$name" ] && bin="${v#*=}"; done
      [ -n "$bin" ] || { echo "unknown server $name (not in VARIANTS)" >&2; return 1; }
      start_sinew "$bin" "$port" "$log"
      ;;
  esac
  SERVER_PID=$!
  for _ in $(seq 1 100); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then sleep 1; return 0; fi
    kill -0 "$SERVER_PID" 2>/dev/null || { echo "$name exited; see $log" >&2; return 1; }
    sleep 0.1
  done
  echo "$name did not listen on $port; see $log" >&2
  return 1
}

stop_server() {
  kill "$SERVER_PID" 2>/dev/null || true
  for _ in $(seq 1 50); do kill -0 "$SERVER_PID" 2>/dev/null || return 0; sleep 0.1; done
  kill -9 "$SERVER_PID" 2>/dev/null || true
}
trap 'stop_server 2>/dev/null || true; drop_stores' EXIT

# Rounds outermost: on a shared machine, a slow minute then touches one run of every server
# rather than every run of one.
for round in $(seq 1 "$ROUNDS"); do
  for scenario in $SCENARIOS; do
    args="$(scenario_args "$scenario")"
    for server in $SERVERS; do
      # The floor only means something where the work is delivery: its handshake, HTTP and
      # memory handling are plain, not minimal, and it has no presence channels.
      case "$server/$scenario" in floor/fanout-*|floor/js-fanout-*|floor/client-events*) ;; floor/*) continue ;; esac
      port="$(free_port)"
      echo "--- round $round/$ROUNDS, $server: $scenario (port $port)"
      start_server "$server" "$port"
      case "$scenario" in js-*) generator=(node "$ROOT/tests/node/bench-fanout.mjs") ;; *) generator=("$BENCH") ;; esac
      # shellcheck disable=SC2086
      taskset -c "$BENCH_CORE" "${generator[@]}" --port "$port" --server-pid "$SERVER_PID" \
        --app-id "$APP_ID" --key "$APP_KEY" --secret "$APP_SECRET" \
        --label "$server/$scenario" --json "$OUT/results.jsonl" $args || echo "($server $scenario reported failures)"
      stop_server
      sleep 2
    done
  done
done

python3 "$ROOT/tests/bench/summary.py" "$OUT/results.jsonl" | tee "$OUT/summary.md"
