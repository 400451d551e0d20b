#!/usr/bin/env bash
# Sinew's user-space instructions per unit of work, counted by valgrind's callgrind (run on demand;
# never part of CI). The count does not depend on what else the machine is doing; it still varies
# by a few percent from run to run (timing decides how much work each wake-up finds), against tens
# of percent for CPU time on a shared VM, so it can tell apart builds that CPU time cannot.
#
#   tests/bench/instructions.sh "connect --connections 1000 --connect-rate 200" \
#                               "connect --connections 3000 --connect-rate 200"
#   tests/bench/instructions.sh "fanout --subscribers 200 --messages 50 --rate 10" \
#                               "fanout --subscribers 200 --messages 150 --rate 10"
#   SINEW=/tmp/old-sinew tests/bench/instructions.sh ...   # another build of the server
#
# Each of the two runs starts the server under callgrind, resets the counters just before
# sinew-bench starts and reads them when it ends (`callgrind_control -d`), so the count covers the
# scenario only. The two runs differ only in how much work they do: the difference of their counts
# over the difference of their units (connections, deliveries, publishes, client events, presence
# joins, as sinew-bench reports them) is the cost of one more unit, without the setup both share
# (connecting a fan-out's subscribers, say). Keep the rates low: the server runs about 50 times
# slower under valgrind, and a rate it cannot keep up with changes the work (batched writes).
# Also prints the functions with the most instructions of their own in the larger run.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT="$PWD"
[ $# -eq 2 ] || { sed -n '2,9p' "$0" >&2; exit 64; }
command -v valgrind >/dev/null || { echo "valgrind is needed" >&2; exit 69; }
OUT="${OUT:-$ROOT/target/bench/instructions-$(date +%Y%m%d-%H%M%S)}"
TOP="${TOP:-25}"
mkdir -p "$OUT"
cargo build --release --locked -p sinew -p sinew-bench >/dev/null
SINEW="${SINEW:-$ROOT/target/release/sinew}"
BENCH="$ROOT/target/release/sinew-bench"
APP_ID=bench-app APP_KEY=bench-key APP_SECRET=bench-secret

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# Runs scenario $2 (run name $1) against the server under callgrind; leaves $OUT/$1.json and the
# scenario's counts in $OUT/$1.callgrind.2.
run() {
  local name="$1" args="$2" port pid
  port="$(free_port)"
  rm -f "$OUT/$name".callgrind* "$OUT/$name.json"
  SINEW_HOST=127.0.0.1 SINEW_PORT="$port" SINEW_LOG=warn \
  SINEW_APP_ID="$APP_ID" SINEW_APP_KEY="$APP_KEY" SINEW_APP_SECRET="$APP_SECRET" SINEW_APP_CLIENT_EVENTS=true \
  SINEW_APP_MAX_CLIENT_EVENTS_PER_SECOND=100 \
    taskset -c 0 valgrind --tool=callgrind --callgrind-out-file="$OUT/$name.callgrind" "$SINEW" \
    >>"$OUT/$name.log" 2>&1 &
  pid=$!
  for _ in $(seq 1 300); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
    kill -0 "$pid" 2>/dev/null || { echo "the server exited; see $OUT/$name.log" >&2; return 1; }
    sleep 0.1
  done
  callgrind_control -d "$pid" >/dev/null 2>&1
  # shellcheck disable=SC2086
  taskset -c 1 "$BENCH" --port "$port" --server-pid "$pid" --app-id "$APP_ID" --key "$APP_KEY" \
    --secret "$APP_SECRET" --label "$name" --json "$OUT/$name.json" $args >"$OUT/$name.bench.txt" \
    || { echo "sinew-bench reported failures; see $OUT/$name.bench.txt" >&2; kill -INT "$pid"; wait "$pid" || true; return 1; }
  callgrind_control -d "$pid" >/dev/null 2>&1
  kill -INT "$pid"
  wait "$pid" || true
}

run small "$1"
run large "$2"

python3 - "$OUT" "$TOP" <<'PY'
import json, re, subprocess, sys
out, top = sys.argv[1], int(sys.argv[2])

def annotate(name):
    return subprocess.run(["callgrind_annotate", "--auto=no", "--threshold=100", f"{out}/{name}.callgrind.2"],
                          capture_output=True, text=True, check=True).stdout

def total(text):
    m = re.search(r"^\s*([\d,]+) \(100\.0%\)\s+PROGRAM TOTALS", text, re.M)
    return int(m.group(1).replace(",", ""))

def units(name):
    # sinew-bench reports server CPU per unit; the unit counts follow from CPU over CPU per unit.
    figures = json.loads(open(f"{out}/{name}.json").read().splitlines()[-1])["figures"]
    cpu = figures["server_cpu_s"] * 1e6
    return {k[len("server_cpu_us_per_"):]: round(cpu / v) for k, v in figures.items()
            if k.startswith("server_cpu_us_per_") and v}

small, large = annotate("small"), annotate("large")
ts, tl = total(small), total(large)
us, ul = units("small"), units("large")
print(f"instructions in the scenario window: {ts:,} (small run), {tl:,} (large run)")
for unit in ul:
    d = ul[unit] - us.get(unit, 0)
    if d > 0:
        print(f"per {unit}: {(tl - ts) / d:,.0f} instructions (from {us.get(unit, 0):,} and {ul[unit]:,} in the two runs)")
print(f"\nmost instructions of their own, large run (of {tl:,}):")
# (Frames that were on the stack when the counters were reset show the whole window as their own.)
rows = [l for l in large.splitlines()
        if (m := re.match(r"^\s*[\d,]+ \(\s*([\d.]+)%\)\s+\S", l)) and float(m.group(1)) < 99.9]
for l in rows[:top]:
    print(re.sub(r"/rustc/[0-9a-f]+/library/|/root/.cargo/registry/src/[^/]+/", "", l)[:160])
PY
echo "(callgrind files and reports in $OUT)"
