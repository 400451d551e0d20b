#!/usr/bin/env python3
"""One row per `cluster-fanout` run of tests/bench/cluster.sh: python3 cluster_summary.py results.jsonl"""
import json
import sys


def cell(v, fmt="{:,.0f}"):
    return "" if v is None else fmt.format(v)


def main(paths):
    rows = []
    for path in paths:
        with open(path) as f:
            rows += [json.loads(line) for line in f if line.strip()]
    print("| run | ok | published/s | deliveries/s | p50 ms | p99 ms | nodes' CPU us/delivery "
          "| bus messages received per node (each) | Redis/NATS CPU s | generator busy |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        if r.get("scenario") != "cluster-fanout":
            continue
        f, p = r["figures"], r["params"]
        lat = f.get("latency") or {}
        each = [n.get("bus_received") for n in f.get("per_node", [])]
        bus = cell(f.get("bus_received_per_node"), "{:,.1f}")
        if each and None not in each:
            bus += " (" + ", ".join(f"{x:,}" for x in each) + ")"
        servers = [s.get("cpu_s") for s in f.get("bus_servers", [])]
        server_cpu = cell(sum(servers), "{:.2f}") if servers and None not in servers else ""
        print(f"| {p.get('label', '')} | {'yes' if r['ok'] else 'NO'} | {cell(f.get('publishes_per_s'))} "
              f"| {cell(f.get('deliveries_per_s'))} | {cell(lat.get('p50_ms'), '{:.1f}')} "
              f"| {cell(lat.get('p99_ms'), '{:.1f}')} | {cell(f.get('nodes_cpu_us_per_delivery'), '{:.1f}')} "
              f"| {bus} | {server_cpu} | {cell(f.get('generator_busy'), '{:.2f}')} |")


if __name__ == "__main__":
    main(sys.argv[1:])
