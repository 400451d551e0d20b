#!/usr/bin/env python3
"""Soak: one Sinew node (release build, local adapter) under connection churn, subscribe and
unsubscribe, presence join and leave and REST publishes (`sinew-bench soak`) for --duration
seconds, its VmRSS sampled every --every seconds. The result: the least-squares slope of RSS
after --warmup seconds, in KiB per minute, and whether every listener got every event.

    tests/soak/soak.py --duration 1800        # the full run (results/soak-1800s.json and .md)
    tests/soak/soak.py --duration 60          # a quick one
"""

import argparse
import json
import os
import time

import common
from common import log


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--duration", type=float, default=1800)
    ap.add_argument("--warmup", type=float, default=None, help="seconds left out of the slope (default: 10%% of the run, at least 30)")
    ap.add_argument("--every", type=float, default=10, help="seconds between RSS samples")
    ap.add_argument("--churners", type=int, default=50)
    ap.add_argument("--listeners", type=int, default=20)
    ap.add_argument("--publish-rate", type=float, default=50)
    ap.add_argument("--name", default=None, help="result file name without extension")
    a = ap.parse_args()
    warmup = a.warmup if a.warmup is not None else max(30.0, a.duration * 0.1)
    name = a.name or f"soak-{int(a.duration)}s"
    common.build()
    os.makedirs(common.RESULTS, exist_ok=True)
    server_log = os.path.join(common.RESULTS, f".{name}-sinew.log")
    bench_log = os.path.join(common.RESULTS, f".{name}-bench.log")
    for p in (server_log, bench_log):
        if os.path.exists(p):
            os.remove(p)
    samples = []
    with common.Procs() as procs:
        port = common.free_port()
        server = procs.start("sinew", [common.SINEW], env=common.sinew_env(port), log_path=server_log)
        if common.wait_http(f"http://127.0.0.1:{port}/ready") is None:
            raise SystemExit("sinew did not become ready")
        idle_kb = common.rss_kb(server.pid)
        log(f"sinew ready on {port}, RSS {idle_kb} KiB")

        def tick(t):
            kb = common.rss_kb(server.pid)
            if kb is not None:
                samples.append([round(t, 1), kb])

        timeout = a.duration + 180
        report, rc = common.bench(
            procs,
            ["--port", str(port), "--server-pid", str(server.pid), "soak", "--duration", str(a.duration),
             "--churners", str(a.churners), "--listeners", str(a.listeners), "--publish-rate", str(a.publish_rate)],
            timeout, log_path=bench_log, every=a.every, tick=tick)
        time.sleep(5)
        after_kb = common.rss_kb(server.pid)
        alive = server.poll() is None
        usage = common.wait_http(f"http://127.0.0.1:{port}/usage", timeout=5)
    after_warmup = [(t / 60.0, kb) for t, kb in samples if warmup <= t <= a.duration]
    s = common.slope(after_warmup)
    kbs = [kb for _, kb in after_warmup]
    result = {
        "what": "soak",
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "duration_s": a.duration,
        "warmup_s": warmup,
        "sample_every_s": a.every,
        "server_alive_at_end": alive,
        "bench_exit_code": rc,
        "rss_idle_kib": idle_kb,
        "rss_after_warmup_first_kib": kbs[0] if kbs else None,
        "rss_after_warmup_min_kib": min(kbs) if kbs else None,
        "rss_after_warmup_max_kib": max(kbs) if kbs else None,
        "rss_last_under_load_kib": kbs[-1] if kbs else None,
        "rss_5s_after_clients_left_kib": after_kb,
        "slope_kib_per_min": round(s, 2) if s is not None else None,
        "samples_in_slope": len(after_warmup),
        "usage_after": json.loads(usage) if usage else None,
        "bench": report,
        "samples_t_s_rss_kib": samples,
    }
    common.write_json(name + ".json", result)
    write_md(name, result)
    ok = alive and rc == 0 and report is not None and report.get("ok")
    log(f"slope {result['slope_kib_per_min']} KiB/min over {len(after_warmup)} samples; bench ok: {ok}")
    raise SystemExit(0 if ok else 1)


def write_md(name, r):
    f = (r["bench"] or {}).get("figures", {})
    lines = [
        f"# Soak: {r['duration_s']:.0f} s ({r['date']})",
        "",
        "| figure | value |",
        "|---|---|",
        f"| RSS slope after {r['warmup_s']:.0f} s warm-up (least squares, {r['samples_in_slope']} samples) | {r['slope_kib_per_min']} KiB/min |",
        f"| RSS idle / first after warm-up / min / max / last | {r['rss_idle_kib']} / {r['rss_after_warmup_first_kib']} / {r['rss_after_warmup_min_kib']} / {r['rss_after_warmup_max_kib']} / {r['rss_last_under_load_kib']} KiB |",
        f"| RSS 5 s after every client left | {r['rss_5s_after_clients_left_kib']} KiB |",
        f"| connections opened and closed | {f.get('connections_opened')} ({f.get('cycles_per_s')} cycles/s, {f.get('sockets_dropped_without_close')} dropped without a close frame) |",
        f"| subscribes / unsubscribes | {f.get('subscribes')} / {f.get('unsubscribes')} |",
        f"| REST publishes answered 200 / failed | {f.get('published_ok')} / {f.get('publish_failed')} |",
        f"| listener events expected / received / missing / duplicated | {f.get('listener_events_expected')} / {f.get('listener_events_received')} / {f.get('listener_events_missing')} / {f.get('listener_events_duplicated')} |",
        f"| presence member_added / member_removed seen by listeners | {f.get('listener_member_added')} / {f.get('listener_member_removed')} |",
        f"| churn cycle errors | {f.get('churn_errors')} |",
        f"| server alive at the end, bench exit code | {r['server_alive_at_end']}, {r['bench_exit_code']} |",
        "",
    ]
    if r["bench"] and r["bench"].get("failures"):
        lines += ["Failures: " + "; ".join(r["bench"]["failures"]), ""]
    if r["bench"] and r["bench"].get("notes"):
        lines += ["Notes: " + "; ".join(r["bench"]["notes"]), ""]
    path = os.path.join(common.RESULTS, name + ".md")
    with open(path, "w") as fh:
        fh.write("\n".join(lines))
    log(f"wrote {path}")


if __name__ == "__main__":
    common.run(main)
