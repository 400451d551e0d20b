#!/usr/bin/env python3
"""Slow-consumer storm: one Sinew node (release build, local adapter) with --slow subscribers that
stop reading and --readers that keep reading, all on one channel, while `sinew-bench storm`
publishes to it. The server's VmRSS is sampled every 0.25 s and its VmHWM (peak) read at the end,
and compared with the bound the outbox limits set: the RSS with every client subscribed plus, per
connection, outbox_max_bytes (or outbox_max_messages frames, whichever is less).
Results: results/storm.json and results/storm.md.

    tests/soak/storm.py                          # 1,000 slow, 20 readers, 200 events/s of 2 KB, 20 s
    tests/soak/storm.py --outbox-max-bytes 262144
"""

import argparse
import os
import time

import common
from common import log


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--slow", type=int, default=1000)
    ap.add_argument("--readers", type=int, default=20)
    ap.add_argument("--rate", type=float, default=200)
    ap.add_argument("--event-bytes", type=int, default=2000)
    ap.add_argument("--duration", type=float, default=20)
    ap.add_argument("--publishers", type=int, default=4)
    ap.add_argument("--slow-recv-buffer", type=int, default=8192, help="SO_RCVBUF of the slow clients (0: kernel default)")
    ap.add_argument("--outbox-max-messages", type=int, default=1000)
    ap.add_argument("--outbox-max-bytes", type=int, default=1048576)
    ap.add_argument("--name", default="storm")
    a = ap.parse_args()
    common.build()
    os.makedirs(common.RESULTS, exist_ok=True)
    server_log = os.path.join(common.RESULTS, f".{a.name}-sinew.log")
    bench_log = os.path.join(common.RESULTS, f".{a.name}-bench.log")
    for p in (server_log, bench_log):
        if os.path.exists(p):
            os.remove(p)
    samples = []
    with common.Procs() as procs:
        port = common.free_port()
        env = common.sinew_env(port, extra={
            "SINEW_OUTBOX_MAX_MESSAGES": str(a.outbox_max_messages),
            "SINEW_OUTBOX_MAX_BYTES": str(a.outbox_max_bytes)})
        server = procs.start("sinew", [common.SINEW], env=env, log_path=server_log)
        if common.wait_http(f"http://127.0.0.1:{port}/ready") is None:
            raise SystemExit("sinew did not become ready")
        idle_kb = common.rss_kb(server.pid)

        def tick(t):
            kb = common.rss_kb(server.pid)
            if kb is not None:
                samples.append([round(t, 2), kb])

        report, rc = common.bench(
            procs,
            ["--port", str(port), "--server-pid", str(server.pid), "storm", "--slow", str(a.slow), "--readers",
             str(a.readers), "--rate", str(a.rate), "--event-bytes", str(a.event_bytes), "--duration", str(a.duration),
             "--publishers", str(a.publishers), "--slow-recv-buffer", str(a.slow_recv_buffer)],
            a.duration + 240, log_path=bench_log, every=0.25, tick=tick)
        hwm_kb = common.rss_kb(server.pid, "VmHWM")
        time.sleep(3)
        after_kb = common.rss_kb(server.pid)
        alive = server.poll() is None
        usage = common.wait_http(f"http://127.0.0.1:{port}/usage", timeout=5)
    f = (report or {}).get("figures", {})
    subscribed_kb = (f.get("server_rss_before_bytes") or 0) // 1024
    # A frame on the wire: the event JSON (data escaped once more) plus a WebSocket header.
    frame_bytes = a.event_bytes + 80
    per_conn = min(a.outbox_max_bytes, a.outbox_max_messages * frame_bytes)
    bound_kb = subscribed_kb + (a.slow + a.readers) * per_conn // 1024
    peak_kb = max([hwm_kb or 0] + [kb for _, kb in samples])
    result = {
        "what": "storm",
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "params": vars(a),
        "server_alive_at_end": alive,
        "bench_exit_code": rc,
        "rss_idle_kib": idle_kb,
        "rss_all_subscribed_kib": subscribed_kb,
        "rss_peak_kib": peak_kb,
        "rss_peak_over_subscribed_kib": peak_kb - subscribed_kb,
        "outbox_bound_per_connection_bytes": per_conn,
        "rss_bound_kib": bound_kb,
        "rss_3s_after_kib": after_kb,
        "usage_after": usage,
        "bench": report,
        "samples_t_s_rss_kib": samples,
    }
    common.write_json(a.name + ".json", result)
    ends = f.get("slow_ends")
    lines = [
        f"# Slow-consumer storm ({result['date']})",
        "",
        f"{a.slow} subscribers that stop reading, {a.readers} that read, one channel, {a.rate:.0f} REST events/s of "
        f"{a.event_bytes} bytes for {a.duration:.0f} s through {a.publishers} REST connections; the slow clients' "
        f"SO_RCVBUF {a.slow_recv_buffer or 'default'}; outbox_max_messages={a.outbox_max_messages}, "
        f"outbox_max_bytes={a.outbox_max_bytes}.",
        "",
        "| figure | value |",
        "|---|---|",
        f"| RSS idle / all subscribed | {idle_kb} / {subscribed_kb} KiB |",
        f"| RSS peak (VmHWM and 0.25 s samples) | {peak_kb} KiB ({peak_kb - subscribed_kb} KiB over all subscribed) |",
        f"| bound: all subscribed + {a.slow + a.readers} x {per_conn} bytes | {bound_kb} KiB |",
        f"| RSS 3 s after the clients left | {after_kb} KiB |",
        f"| events answered 200 / failed | {f.get('published_200')} / {f.get('publish_failed')} ({f.get('publishes_per_s')}/s) |",
        f"| readers: events missing / duplicated | {f.get('reader_events_missing')} / {f.get('reader_events_duplicated')} |",
        f"| slow subscribers: how they ended (close code, dropped, open) | {ends} |",
        f"| slow subscribers: events still readable in their socket buffers (min / median / max) | "
        f"{f.get('slow_events_read_after_the_storm_min')} / {f.get('slow_events_read_after_the_storm_median')} / "
        f"{f.get('slow_events_read_after_the_storm_max')} |",
        f"| server alive, bench exit code | {alive}, {rc} |",
        "",
    ]
    if report and report.get("failures"):
        lines += ["Failures: " + "; ".join(report["failures"]), ""]
    path = os.path.join(common.RESULTS, a.name + ".md")
    with open(path, "w") as fh:
        fh.write("\n".join(lines))
    log(f"wrote {path}; peak {peak_kb} KiB vs bound {bound_kb} KiB")
    raise SystemExit(0 if alive and rc == 0 else 1)


if __name__ == "__main__":
    common.run(main)
