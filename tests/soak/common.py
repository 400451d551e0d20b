"""Shared pieces of the soak and chaos drivers: processes that are always cleaned up, free ports,
the server's resident memory from /proc, and a least-squares slope. Python 3 standard library only."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
RESULTS = os.path.join(HERE, "results")
TARGET = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
SINEW = os.path.join(TARGET, "release", "sinew")
BENCH = os.path.join(TARGET, "release", "sinew-bench")


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def run(main):
    """Runs a driver's main; an interrupt (SIGINT/SIGTERM) ends it with status 130 after the
    `Procs` blocks it was in have stopped everything they started."""
    try:
        main()
    except KeyboardInterrupt as e:
        log(f"interrupted ({e}): every process and namespace started was cleaned up")
        raise SystemExit(130)


def build():
    """Builds the release binaries unless SOAK_NO_BUILD is set."""
    if os.environ.get("SOAK_NO_BUILD"):
        return
    log("cargo build --release (sinew, sinew-bench)")
    subprocess.run(["nice", "cargo", "build", "--release", "-p", "sinew", "-p", "sinew-bench"], cwd=ROOT, check=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Procs:
    """Every process a driver starts, each in its own process group; `stop_all` ends them by pid
    (SIGTERM, then SIGKILL), and runs on exit, on failure and on SIGINT/SIGTERM."""

    def __init__(self):
        self.procs = []
        self.cleanups = []
        signal.signal(signal.SIGTERM, self._signalled)
        signal.signal(signal.SIGINT, self._signalled)

    def _signalled(self, signum, _frame):
        raise KeyboardInterrupt(f"signal {signum}")

    def start(self, name, argv, env=None, log_path=None, wrap=None):
        """Starts argv (prefixed by `wrap`, e.g. ["ip", "netns", "exec", ns]) with its output in log_path."""
        out = open(log_path, "ab") if log_path else subprocess.DEVNULL
        full_env = dict(os.environ)
        full_env.update(env or {})
        p = subprocess.Popen((wrap or []) + argv, env=full_env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        p.name = name
        self.procs.append(p)
        log(f"started {name} pid {p.pid}")
        return p

    def kill(self, p, sig=signal.SIGKILL):
        if p.poll() is None:
            try:
                os.killpg(p.pid, sig)
            except ProcessLookupError:
                pass
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait(timeout=10)

    def on_exit(self, fn):
        self.cleanups.append(fn)

    def stop_all(self):
        for p in reversed(self.procs):
            if p.poll() is None:
                try:
                    os.killpg(p.pid, signal.SIGTERM)
                except ProcessLookupError:
                    continue
        deadline = time.time() + 8
        for p in reversed(self.procs):
            try:
                p.wait(timeout=max(0.1, deadline - time.time()))
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(p.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                p.wait()
        self.procs = []
        for fn in reversed(self.cleanups):
            try:
                fn()
            except Exception as e:  # cleanup must go on
                log(f"cleanup failed: {e}")
        self.cleanups = []

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop_all()
        return False


def sinew_env(port, metrics_port=None, extra=None):
    env = {
        "SINEW_HOST": "127.0.0.1",
        "SINEW_PORT": str(port),
        "SINEW_METRICS_ENABLED": "false" if metrics_port is None else "true",
        "SINEW_METRICS_PORT": str(metrics_port or 0),
        "SINEW_APP_ID": "1",
        "SINEW_APP_KEY": "app-key",
        "SINEW_APP_SECRET": "app-secret",
        "SINEW_LOG": "warn",
    }
    env.update(extra or {})
    return env


def wait_http(url, timeout=30, want=200):
    """Waits until url answers `want`; returns the body (None on timeout)."""
    end = time.time() + timeout
    while time.time() < end:
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == want:
                    return r.read().decode()
        except Exception:
            pass
        time.sleep(0.2)
    return None


def rss_kb(pid, field="VmRSS"):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def slope(points):
    """Least-squares slope of (x, y) points; None with fewer than two."""
    n = len(points)
    if n < 2:
        return None
    mx = sum(x for x, _ in points) / n
    my = sum(y for _, y in points) / n
    sxx = sum((x - mx) ** 2 for x, _ in points)
    if sxx == 0:
        return None
    return sum((x - mx) * (y - my) for x, y in points) / sxx


def bench(procs, args, timeout, log_path=None, every=None, tick=None):
    """Runs sinew-bench with `args` and `--json` to a temporary file, calling `tick(elapsed)` every
    `every` seconds while it runs; killed after `timeout` s. Returns (report or None, exit code)."""
    os.makedirs(RESULTS, exist_ok=True)
    out = os.path.join(RESULTS, f".bench-{os.getpid()}-{time.time_ns()}.json")
    p = procs.start("sinew-bench", [BENCH] + args + ["--json", out], log_path=log_path)
    t0 = time.monotonic()
    next_tick = t0
    while p.poll() is None:
        now = time.monotonic()
        if now - t0 > timeout:
            log(f"sinew-bench still running after {timeout} s: killed")
            procs.kill(p)
            break
        if tick and now >= next_tick:
            tick(now - t0)
            next_tick += every
        time.sleep(min(0.2, max(0.01, next_tick - time.monotonic())) if tick else 0.2)
    report = None
    if os.path.exists(out):
        with open(out) as f:
            lines = f.read().strip().splitlines()
        if lines:
            report = json.loads(lines[-1])
        os.remove(out)
    return report, p.returncode


def write_json(name, data):
    os.makedirs(RESULTS, exist_ok=True)
    path = os.path.join(RESULTS, name)
    with open(path, "w") as f:
        json.dump(data, f, indent=1)
        f.write("\n")
    log(f"wrote {path}")
    return path
