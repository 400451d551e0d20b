#!/usr/bin/env python3
"""The `cluster-fanout` runs of tests/bench/cluster.sh, one row per label (build/topology/nodes/mode):
medians over rounds, with the range in brackets when there was more than one. "flat out, own core"
counts only the flat-out runs in which the nodes kept their core busy (OWN_CORE): on a shared
machine the others measured whatever else was running.

    python3 tests/bench/cluster_summary.py results.jsonl [more.jsonl ...]
"""
import json
import statistics
import sys


# A flat-out run (rate 0) whose nodes used at least this many CPU seconds per second had their
# core to themselves (one core for all nodes, as cluster.sh pins them): its rate is that core's.
OWN_CORE = 0.9


def busy(f):
    """The nodes' CPU seconds per wall second (older reports lack the figure: worked out)."""
    if "nodes_cpu_per_wall_s" in f:
        return f["nodes_cpu_per_wall_s"]
    if f.get("nodes_cpu_s") is None or not f.get("deliveries_per_s"):
        return None
    return f["nodes_cpu_s"] / (f["delivered"] / f["deliveries_per_s"])


def figures(r):
    f = r["figures"]
    lat = f.get("latency") or {}
    servers = [s.get("cpu_s") for s in f.get("bus_servers", [])]
    flat_out = r["params"].get("rate") == 0
    return {
        "published/s": f.get("publishes_per_s"),
        "deliveries/s": f.get("deliveries_per_s"),
        "flat out, own core: deliveries/s": f.get("deliveries_per_s")
        if flat_out and (busy(f) or 0) >= OWN_CORE
        else None,
        "p50 ms": lat.get("p50_ms"),
        "p99 ms": lat.get("p99_ms"),
        "nodes' CPU us/delivery": f.get("nodes_cpu_us_per_delivery"),
        "nodes' CPU s per s": busy(f),
        "bus messages received per node": f.get("bus_received_per_node"),
        "Redis/NATS CPU s": sum(servers) if servers and None not in servers else None,
        "generator busy": f.get("generator_busy"),
    }


FORMATS = {"p50 ms": "{:.1f}", "p99 ms": "{:.1f}", "nodes' CPU us/delivery": "{:.1f}",
           "Redis/NATS CPU s": "{:.2f}", "nodes' CPU s per s": "{:.2f}", "generator busy": "{:.2f}"}
RANGED = {"deliveries/s", "flat out, own core: deliveries/s", "p99 ms", "nodes' CPU us/delivery"}
COUNTED = {"flat out, own core: deliveries/s"}


def cell(name, values):
    values = [v for v in values if v is not None]
    if not values:
        return ""
    fmt = FORMATS.get(name, "{:,.0f}")
    out = fmt.format(statistics.median(values))
    if name in RANGED and len(values) > 1:
        out += f" ({fmt.format(min(values))}-{fmt.format(max(values))})"
    if name in COUNTED:
        out += f" [{len(values)} runs]"
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
    names = list(figures({"figures": {}, "params": {}}))
    print("| run | runs | all ok | " + " | ".join(names) + " |")
    print("|---" * (len(names) + 3) + "|")
    for label, rs in runs.items():
        rows = [figures(r) for r in rs]
        cells = [cell(n, [row[n] for row in rows]) for n in names]
        ok = "yes" if all(r["ok"] for r in rs) else "NO"
        print(f"| {label} | {len(rs)} | {ok} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main(sys.argv[1:])
