#!/usr/bin/env python3
"""Chaos: a two-node Sinew cluster (SINEW_ADAPTER=redis, both nodes on one redis-server started
here on a free port) under load from `sinew-bench chaos-count` (subscribers on both nodes, numbered
REST publishes through both), while one thing breaks:

  redis-kill   redis-server is SIGKILLed, and started again (empty) on the same port
  node-kill    node B is SIGKILLed, and started again on the same port
  partition    node B runs in its own network namespace, reaching Redis over a veth pair of its
               own; that link is set down (both ends stop passing packets, no reset is sent), then up

Each phase starts a fresh cluster. Every event published (REST answered 200) is counted against
every event each subscriber received. Results: results/chaos.json and results/chaos.md.

    tests/soak/chaos.py                         # every phase, 40 s each
    tests/soak/chaos.py --phases redis-kill --duration 30
"""

import argparse
import json
import os
import signal
import socket
import subprocess
import time
import urllib.request

import common
from common import log

PHASES = ["redis-kill", "node-kill", "partition"]


def redis_ping(host, port):
    try:
        with socket.create_connection((host, port), timeout=1) as s:
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def wait_for(pred, timeout):
    end = time.time() + timeout
    while time.time() < end:
        if pred():
            return True
        time.sleep(0.1)
    return False


def get_json(url, timeout=1.0):
    """(status, body as JSON or None); status None when nothing answered."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        try:
            return e.code, json.loads(e.read() or b"null")
        except ValueError:
            return e.code, None
    except Exception:
        return None, None


def ip(*args, check=True):
    r = subprocess.run(["ip", *args], capture_output=True, text=True)
    if check and r.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {r.stderr.strip()}")
    return r


class Netns:
    """Node B's namespace: a data link to the host (the load generator's traffic) and a separate
    link to Redis, which the partition sets down. Removed on exit."""

    def __init__(self, procs):
        tag = os.getpid() % 100000
        self.name = f"sinew-chaos-{tag}"
        self.data_host, self.data_ns = f"sk{tag}d", f"sk{tag}dn"
        self.redis_host, self.redis_ns = f"sk{tag}r", f"sk{tag}rn"
        self.host_ip, self.node_ip = "10.232.1.1", "10.232.1.2"
        self.redis_ip, self.node_redis_ip = "10.232.2.1", "10.232.2.2"
        procs.on_exit(self.remove)
        ip("netns", "add", self.name)
        ip("-n", self.name, "link", "set", "lo", "up")
        for host, ns, hip, nip in ((self.data_host, self.data_ns, self.host_ip, self.node_ip),
                                   (self.redis_host, self.redis_ns, self.redis_ip, self.node_redis_ip)):
            ip("link", "add", host, "type", "veth", "peer", "name", ns)
            ip("link", "set", ns, "netns", self.name)
            ip("addr", "add", f"{hip}/30", "dev", host)
            ip("link", "set", host, "up")
            ip("-n", self.name, "addr", "add", f"{nip}/30", "dev", ns)
            ip("-n", self.name, "link", "set", ns, "up")
        log(f"netns {self.name}: node at {self.node_ip}, Redis reached at {self.redis_ip}")

    def cut(self):
        ip("-n", self.name, "link", "set", self.redis_ns, "down")

    def heal(self):
        ip("-n", self.name, "link", "set", self.redis_ns, "up")

    def wrap(self):
        return ["ip", "netns", "exec", self.name]

    def remove(self):
        ip("netns", "del", self.name, check=False)
        for dev in (self.data_host, self.redis_host):
            ip("link", "del", dev, check=False)
        log(f"netns {self.name} removed")


def run_phase(phase, a):
    events = []  # (epoch ms, what)

    def mark(what):
        events.append((int(time.time() * 1000), what))
        log(f"{phase}: {what}")

    logs = os.path.join(common.RESULTS, f".chaos-{phase}")
    with common.Procs() as procs:
        ns = Netns(procs) if phase == "partition" else None
        rport = common.free_port()
        redis_bind = ["127.0.0.1"] + ([ns.redis_ip] if ns else [])
        redis_argv = ["redis-server", "--port", str(rport), "--bind", *redis_bind, "--save", "", "--appendonly", "no",
                      "--protected-mode", "no", "--daemonize", "no"]

        def start_redis():
            p = procs.start("redis-server", redis_argv, log_path=logs + "-redis.log")
            if not wait_for(lambda: redis_ping("127.0.0.1", rport), 10):
                raise RuntimeError("redis-server did not answer PING")
            return p

        redis = start_redis()
        prefix = f"chaos{os.getpid()}{phase.replace('-', '')}"
        pa, pb = common.free_port(), common.free_port()
        host_b = ns.node_ip if ns else "127.0.0.1"
        redis_b = ns.redis_ip if ns else "127.0.0.1"

        def node_env(port, host, redis_host):
            return common.sinew_env(port, extra={
                "SINEW_HOST": host, "SINEW_ADAPTER": "redis", "SINEW_REDIS_URL": f"redis://{redis_host}:{rport}",
                "SINEW_REDIS_PREFIX": prefix, "SINEW_LOG": "info", "SINEW_LOG_FORMAT": "json"})

        def start_b():
            return procs.start("sinew B", [common.SINEW], env=node_env(pb, host_b, redis_b), log_path=logs + "-B.log",
                               wrap=ns.wrap() if ns else None)

        node_a = procs.start("sinew A", [common.SINEW], env=node_env(pa, "127.0.0.1", "127.0.0.1"), log_path=logs + "-A.log")
        node_b = start_b()
        urls = {"A": f"http://127.0.0.1:{pa}", "B": f"http://{host_b}:{pb}"}
        for n, u in urls.items():
            if common.wait_http(u + "/ready", timeout=30) is None:
                raise RuntimeError(f"node {n} did not become ready")
        mark("both nodes ready")
        state = {"redis": redis, "b": node_b}
        ready_log = {"A": [], "B": []}
        last_ready = {}
        cut_at, back_at = a.break_at, a.break_at + a.outage

        def do_break():
            if phase == "redis-kill":
                procs.kill(state["redis"], signal.SIGKILL)
                mark("redis-server SIGKILLed")
            elif phase == "node-kill":
                procs.kill(state["b"], signal.SIGKILL)
                mark("node B SIGKILLed")
            else:
                ns.cut()
                mark("node B's link to Redis cut")

        def do_heal():
            if phase == "redis-kill":
                state["redis"] = start_redis()
                mark("redis-server started again (empty)")
            elif phase == "node-kill":
                state["b"] = start_b()
                mark("node B started again")
            else:
                ns.heal()
                mark("node B's link to Redis restored")

        pending = [(cut_at, do_break), (back_at, do_heal)]

        def tick(t):
            # The bench publishes from about 1.5 s after it starts.
            while pending and t >= pending[0][0] + 1.5:
                pending.pop(0)[1]()
            for n, u in urls.items():
                status, body = get_json(u + "/ready", timeout=0.4)
                adapter = (body or {}).get("adapter") if isinstance(body, dict) else None
                now = (status, adapter)
                if last_ready.get(n) != now:
                    last_ready[n] = now
                    ready_log[n].append([int(time.time() * 1000), status, adapter])

        nodes = f"127.0.0.1:{pa},{host_b}:{pb}"
        report, rc = common.bench(
            procs,
            ["chaos-count", "--nodes", nodes, "--subscribers-per-node", str(a.subscribers), "--rate", str(a.rate),
             "--duration", str(a.duration), "--drain", str(a.drain), "--channel", f"chaos-{phase}"],
            a.duration + a.drain + 60, log_path=logs + "-bench.log", every=0.5, tick=tick)
        usage = {n: get_json(u + "/usage", timeout=2)[1] for n, u in urls.items()}
        alive = {"A": node_a.poll() is None, "B": state["b"].poll() is None, "redis": state["redis"].poll() is None}
    t0 = (report or {}).get("figures", {}).get("start_epoch_ms") or (events[0][0] if events else 0)
    rel = lambda ms: round((ms - t0) / 1000.0, 2)
    return {
        "phase": phase,
        "bench_exit_code": rc,
        "actions_at_s": [[rel(ms), what] for ms, what in events],
        "ready_changes_at_s": {n: [[rel(ms), s, ad] for ms, s, ad in v] for n, v in ready_log.items()},
        "alive_at_end": alive,
        "usage_at_end": usage,
        "count": report,
    }


def summary_rows(r):
    f = (r["count"] or {}).get("figures", {})
    rows = []
    for p in f.get("publishers", []):
        rows.append(f"| {r['phase']} | publish via {p['node']} | {p['published']} sent, {p['answered_200']} answered 200, "
                    f"{p['answered_other']} other status, {p['failed_exchange']} failed (at s: {p['not_200_at_s']}) |")
    by_node = {}
    for s in f.get("subscribers", []):
        by_node.setdefault(s["node"], []).append(s)
    for node, subs in by_node.items():
        k = lambda key: [s[key] for s in subs]
        rows.append(
            f"| {r['phase']} | {len(subs)} subscribers on {node} | received of 200: {k('received_of_200')}; "
            f"lost while not subscribed: {k('lost_while_not_subscribed')}; lost while subscribed, published on the same node: "
            f"{k('lost_while_subscribed_published_on_same_node')}, on the other: {k('lost_while_subscribed_published_on_other_node')} "
            f"(at s: {subs[0]['lost_while_subscribed_at_s']}); duplicated: {k('duplicated')}; "
            f"received though not 200: {k('received_not_200')}; subscriptions: {k('subscriptions')}; "
            f"arrived over 1 s after the answer: {k('late_over_1s')} (at s: {subs[0]['late_over_1s_at_s']}); "
            f"longest delay: {k('max_delay_ms')} ms |")
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--phases", default=",".join(PHASES))
    ap.add_argument("--duration", type=float, default=40, help="seconds of publishing per phase")
    ap.add_argument("--break-at", type=float, default=10, help="seconds into the publishing")
    ap.add_argument("--outage", type=float, default=10, help="seconds until Redis/the node/the link is back")
    ap.add_argument("--drain", type=float, default=5)
    ap.add_argument("--rate", type=float, default=40)
    ap.add_argument("--subscribers", type=int, default=3, help="per node")
    ap.add_argument("--name", default="chaos")
    a = ap.parse_args()
    if "partition" in a.phases.split(",") and os.geteuid() != 0:
        raise SystemExit("the partition phase makes a network namespace: run as root, or leave it out with --phases")
    common.build()
    os.makedirs(common.RESULTS, exist_ok=True)
    results = []
    for phase in a.phases.split(","):
        if phase not in PHASES:
            raise SystemExit(f"unknown phase {phase}")
        for suffix in ("-redis.log", "-A.log", "-B.log", "-bench.log"):
            path = os.path.join(common.RESULTS, f".chaos-{phase}{suffix}")
            if os.path.exists(path):
                os.remove(path)
        try:
            results.append(run_phase(phase, a))
        except Exception as e:
            log(f"{phase} failed: {e}")
            results.append({"phase": phase, "error": str(e)})
    out = {"what": "chaos", "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
           "duration_s": a.duration, "break_at_s": a.break_at, "outage_s": a.outage, "rate": a.rate,
           "subscribers_per_node": a.subscribers, "phases": results}
    common.write_json(a.name + ".json", out)
    lines = [f"# Chaos ({out['date']}): {a.duration:.0f} s of publishing at {a.rate:.0f}/s per phase, "
             f"break at {a.break_at:.0f} s, back at {a.break_at + a.outage:.0f} s", "",
             "| phase | what | figures |", "|---|---|---|"]
    for r in results:
        if "error" in r:
            lines.append(f"| {r['phase']} | error | {r['error']} |")
            continue
        lines.append(f"| {r['phase']} | actions (s after the first publish) | {r['actions_at_s']} |")
        lines.extend(summary_rows(r))
        lines.append(f"| {r['phase']} | /ready changes (s, status, adapter) | {r['ready_changes_at_s']} |")
        ad = {n: (u or {}).get("adapter") for n, u in r["usage_at_end"].items()}
        lines.append(f"| {r['phase']} | adapter counters at the end | {ad} |")
        lines.append(f"| {r['phase']} | alive at the end | {r['alive_at_end']} |")
    path = os.path.join(common.RESULTS, a.name + ".md")
    with open(path, "w") as fh:
        fh.write("\n".join(lines) + "\n")
    log(f"wrote {path}")


if __name__ == "__main__":
    common.run(main)
