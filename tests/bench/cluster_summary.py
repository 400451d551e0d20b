#!/usr/bin/env python3
"""The `cluster-fanout` runs of tests/bench/cluster.sh, one row per label (build/topology/nodes/mode):
medians over rounds, with the range in brackets when there was more than one.

    python3 tests/bench/cluster_summary.py results.jsonl [more.jsonl ...]
"""
import json
import statistics
import sys


def figures(r):
    f = r["figures"]
    lat = f.get("latency") or {}
    servers = [s.get("cpu_s") for s in f.get("bus_servers", [])]
    return {
        "published/s": f.get("publishes_per_s"),
        "deliveries/s": f.get("deliveries_per_s"),
        "p50 ms": lat.get("p50_ms"),
        "p99 ms": lat.get("p99_ms"),
        "nodes' CPU us/delivery": f.get("nodes_cpu_us_per_delivery"),
        "nodes' CPU s per s": f.get("nodes_cpu_per_wall_s"),
        "bus messages received per node": f.get("bus_received_per_node"),
        "Redis/NATS CPU s": sum(servers) if servers and None not in servers else None,
        "generator busy": f.get("generator_busy"),
    }


FORMATS = {"p50 ms": "{:.1f}", "p99 ms": "{:.1f}", "nodes' CPU us/delivery": "{:.1f}",
           "Redis/NATS CPU s": "{:.2f}", "nodes' CPU s per s": "{:.2f}", "generator busy": "{:.2f}"}
RANGED = {"deliveries/s", "p99 ms", "nodes' CPU us/delivery"}


def cell(name, values):
    values = [v for v in values if v is not None]
    if not values:
        return ""
    fmt = FORMATS.get(name, "{:,.0f}")
    out = fmt.format(statistics.median(values))
    if name in RANGED and len(values) > 1:
        out += f" ({fmt.format(min(values))}-{fmt.format(max(values))})"
    return out


def main(paths):
    runs = {}
    for path in paths:
        with open(path) as f:
            for line in f:
                if line.strip():
                    r = json.loads(line)
                    if r.get("scenario") == "cluster-fanout":
                        runs.setdefault(r["params"].get("label", ""), []).append(r)
    names = list(figures({"figures": {}}))
    print("| run | runs | all ok | " + " | ".join(names) + " |")
    print("|---" * (len(names) + 3) + "|")
    for label, rs in runs.items():
        rows = [figures(r) for r in rs]
        cells = [cell(n, [row[n] for row in rows]) for n in names]
        ok = "yes" if all(r["ok"] for r in rs) else "NO"
        print(f"| {label} | {len(rs)} | {ok} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main(sys.argv[1:])
