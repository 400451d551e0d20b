#!/usr/bin/env python3
"""Summarises sinew-bench JSON lines (labels "server/scenario") as a Markdown table with ratios.

A server/scenario run more than once (compare.sh with ROUNDS) is shown as the median of its runs
with their range; the ratios use the medians.
"""
import json
import statistics
import sys

# (scenario, figure path, unit, better) -- better: "low" for costs, "high" for rates.
FIGURES = [
    ("connect-5k", "server_bytes_per_connection", "B/conn", "low"),
    ("connect-15k", "server_bytes_per_connection", "B/conn", "low"),
    ("connect-19k", "server_bytes_per_connection", "B/conn", "low"),
    ("connect-15k-own-channel", "server_bytes_per_connection", "B/conn", "low"),
    ("connect-5k", "server_cpu_us_per_connection", "us/conn", "low"),
    ("connect-15k", "server_cpu_us_per_connection", "us/conn", "low"),
    ("connect-19k", "server_cpu_us_per_connection", "us/conn", "low"),
    ("connect-15k-own-channel", "server_cpu_us_per_connection", "us/conn", "low"),
    ("fanout-100", "server_cpu_us_per_delivery", "us/msg", "low"),
    ("fanout-1k", "server_cpu_us_per_delivery", "us/msg", "low"),
    ("fanout-5k", "server_cpu_us_per_delivery", "us/msg", "low"),
    ("fanout-10k", "server_cpu_us_per_delivery", "us/msg", "low"),
    ("fanout-15k", "server_cpu_us_per_delivery", "us/msg", "low"),
    ("fanout-1k", "latency.p99_ms", "ms p99", "low"),
    ("fanout-10k", "latency.p50_ms", "ms p50", "low"),
    ("fanout-10k", "latency.p99_ms", "ms p99", "low"),
    ("throughput", "publishes_per_s", "pub/s", "high"),
    ("throughput", "server_cpu_us_per_publish", "us/pub", "low"),
    ("throughput-new-connections", "publishes_per_s", "pub/s", "high"),
    ("throughput-new-connections", "server_cpu_us_per_publish", "us/pub", "low"),
    ("client-events", "server_cpu_us_per_client_event", "us/event", "low"),
    ("client-events", "round_trip.p99_ms", "ms p99", "low"),
    ("client-events-20", "server_cpu_us_per_client_event", "us/event", "low"),
    ("client-events-20", "relayed_per_s", "events/s", "high"),
    ("client-events-20", "round_trip.p99_ms", "ms p99", "low"),
    ("presence-churn", "server_cpu_us_per_join_leave", "us/cycle", "low"),
    ("presence-churn", "joins_per_s", "joins/s", "high"),
    ("fanout-1k-4kb", "server_cpu_us_per_delivery", "us/msg", "low"),
    ("fanout-1k-4kb", "latency.p99_ms", "ms p99", "low"),
    ("throughput-1kb", "publishes_per_s", "pub/s", "high"),
    ("throughput-1kb", "server_cpu_us_per_publish", "us/pub", "low"),
    ("presence-churn-90", "server_cpu_us_per_join_leave", "us/cycle", "low"),
    ("js-fanout-1k", "server_cpu_us_per_delivery", "us/msg", "low"),
    ("js-fanout-10k", "server_cpu_us_per_delivery", "us/msg", "low"),
]


def get(d, path):
    for part in path.split("."):
        if not isinstance(d, dict) or part not in d:
            return None
        d = d[part]
    return d


def cell(runs):
    """One server's figure: the value, or the median of several runs and their range."""
    if not runs:
        return "-"
    if len(runs) == 1:
        return f"{runs[0]:g}"
    return f"{statistics.median(runs):g} ({min(runs):g}-{max(runs):g})"


def main(path):
    results, failed = {}, []
    for line in open(path):
        r = json.loads(line)
        server, scenario = r["params"].get("label", "?/?").split("/", 1)
        results.setdefault((server, scenario), []).append(r["figures"])
        if not r["ok"]:
            failed.append(f"{server}/{scenario}: {'; '.join(r['failures'])}")
    known = ("sinew", "soketi", "sockudo", "floor")
    servers = [s for s in known if any(k[0] == s for k in results)]
    # Builds named in compare.sh's VARIANTS, in the order first run.
    servers += list(dict.fromkeys(k[0] for k in results if k[0] not in known))
    peers = [s for s in servers if s in ("soketi", "sockudo")]
    ratio_col = bool(peers) and "sinew" in servers
    floor_cols = "floor" in servers and "sinew" in servers
    head = ["scenario", "figure"] + servers + (["best peer / sinew"] if ratio_col else [])
    head += (["floor ahead of sinew"] + (["floor ahead of best peer"] if peers else [])) if floor_cols else []
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for scenario, fig, unit, better in FIGURES:
        runs = {s: [v for v in (get(f, fig) for f in results.get((s, scenario), [])) if v is not None] for s in servers}
        if not any(runs.values()):
            continue
        vals = {s: statistics.median(v) if v else None for s, v in runs.items()}
        row = [scenario, f"{fig} ({unit})"] + [cell(runs[s]) for s in servers]
        pv = [vals[p] for p in peers if vals[p] is not None]
        best = (min(pv) if better == "low" else max(pv)) if pv else None
        sv, fv = vals.get("sinew"), vals.get("floor")
        # Each ratio: how many times the first is ahead of (cheaper or faster than) the second.
        ahead = lambda a, b: "-" if not a or not b else f"{(b / a if better == 'low' else a / b):.2f}x"
        if ratio_col:
            row.append(ahead(sv, best))
        if floor_cols:
            row.append(ahead(fv, sv))
            if peers:
                row.append(ahead(fv, best))
        print("| " + " | ".join(row) + " |")
    print()
    print("Ratios above 1 mean Sinew is ahead (cheaper or faster) of the best peer by that factor.")
    if floor_cols:
        print("The floor is examples/floor.rs, the least a server can do per delivery; 'floor ahead of best")
        print("peer' is about the most a server that sends once per delivery could be ahead of the best peer.")
    # A rate measured while the load generator's core was full is the generator's limit, not the
    # server's; CPU per unit of work stays a fair comparison. The threshold is sinew-bench's
    # NEARLY_FULL (bench/src/report.rs).
    busy = []
    for (server, scenario), figs in results.items():
        seen = [f["generator_busy"] for f in figs if f.get("generator_busy") is not None]
        if seen and max(seen) >= 0.9:
            busy.append((scenario, server, max(seen)))
    if busy:
        print()
        print("Load generator nearly full (its rates there are a lower bound of what the server can take):")
        for scenario, server, b in sorted(busy):
            print(f"- {scenario}, {server}: generator core {b * 100:.0f}% busy")
    for f in failed:
        print(f"FAILED {f}")


if __name__ == "__main__":
    main(sys.argv[1])
