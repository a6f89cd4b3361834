"""Parts 3 and 4 (cold start, worker RSS): gunicorn as configured for the Space, on loopback.

The server is ``gunicorn -c gunicorn.conf.py wsgi:app`` (its workers, threads and
timeouts as the Space runs them) on 127.0.0.1 and a free port, in the serving-only
venv when there is one. Load: wrk (closed loop: each connection sends its next request
when the previous answer is in), one level after another, each for a bounded time.
The generator's own CPU time is measured (its rusage) beside the server's, and a
trivial endpoint (GET /health) shows the rate the generator and HTTP stack reach when
the application does almost nothing.
"""

import http.client
import json
import os
import resource
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np

from .common import PROJECT_DIR, log, rss_mb, worker_pids

PREDICT_PATH = "/api/v1/predictions"
WRK_SCRIPT = """
wrk.method = os.getenv("BENCH_METHOD") or "POST"
local path = os.getenv("BENCH_BODY")
if path and path ~= "" then
  local f = assert(io.open(path, "rb"))
  wrk.body = f:read("*a")
  f:close()
  wrk.headers["Content-Type"] = "application/json"
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('BENCH_JSON {"requests":%d,"duration_us":%d,"bytes":%d,' ..
    '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},' ..
    '"p50_us":%d,"p90_us":%d,"p99_us":%d,"max_us":%d,"mean_us":%.1f}\\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status,
    e.timeout, latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency.max, latency.mean))
end
"""


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serving_python(prefer=None):
    """The venv whose gunicorn serves: the serving-only one when built, else this one."""
    candidates = [prefer, "/tmp/bench-venv-api", PROJECT_DIR / ".venv-api", PROJECT_DIR / ".venv"]
    for c in candidates:
        if c and (Path(c) / "bin" / "gunicorn").exists() and (Path(c) / "bin" / "python").exists():
            return Path(c)
    raise FileNotFoundError("no venv with gunicorn found")


def post(port, body, path=PREDICT_PATH, timeout=120):
    """(status, seconds, response bytes) of one POST on a fresh connection."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    t = time.perf_counter()
    try:
        conn.request("POST", path, body=body, headers={"Content-Type": "application/json"})
        r = conn.getresponse()
        data = r.read()
        return r.status, time.perf_counter() - t, data
    finally:
        conn.close()


class Server:
    """gunicorn -c gunicorn.conf.py wsgi:app on 127.0.0.1:<free port>; a context manager."""

    def __init__(self, venv=None, env=None, log_path=None):
        self.venv = serving_python(venv)
        self.port = free_port()
        self.env = {**os.environ, "HOST": "127.0.0.1", "PORT": str(self.port), **(env or {})}
        for k in ("PROMETHEUS_MULTIPROC_DIR",):  # gunicorn.conf.py makes its own
            self.env.pop(k, None)
        self.log_path = log_path or Path(tempfile.mkstemp(prefix="bench-gunicorn-", suffix=".log")[1])
        self.proc = None
        self.started = None

    def __enter__(self):
        self.log = open(self.log_path, "wb")
        self.started = time.perf_counter()
        self.proc = subprocess.Popen([str(self.venv / "bin" / "gunicorn"), "-c", "gunicorn.conf.py", "wsgi:app"],
                                     cwd=PROJECT_DIR, env=self.env, stdout=self.log, stderr=subprocess.STDOUT)
        return self

    def wait_first_201(self, body, timeout=60):
        """Seconds from process start to the first 201 answer to ``body``."""
        deadline = time.perf_counter() + timeout
        while time.perf_counter() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"gunicorn exited ({self.proc.returncode}); see {self.log_path}")
            try:
                status, _, _ = post(self.port, body, timeout=10)
                if status == 201:
                    return time.perf_counter() - self.started
            except OSError:
                pass
            time.sleep(0.01)
        raise TimeoutError(f"no 201 within {timeout} s; see {self.log_path}")

    def worker_pids(self):
        return worker_pids(self.proc.pid)

    def cpu_seconds(self):
        """User + system CPU seconds of the master and its workers so far."""
        total = 0.0
        tick = os.sysconf("SC_CLK_TCK")
        for pid in [self.proc.pid, *self.worker_pids()]:
            try:
                with open(f"/proc/{pid}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
                total += (int(fields[11]) + int(fields[12])) / tick
            except OSError:
                pass
        return total

    def __exit__(self, *exc):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


def wrk_available():
    return shutil.which("wrk")


def run_wrk(port, connections, seconds, body_path=None, method="POST", path=PREDICT_PATH, server=None):
    """One closed-loop wrk run; req/s, latency percentiles (ms), errors, wrk's and the server's CPU."""
    script = Path(tempfile.mkstemp(prefix="bench-wrk-", suffix=".lua")[1])
    script.write_text(WRK_SCRIPT)
    env = {**os.environ, "BENCH_METHOD": method, "BENCH_BODY": str(body_path or "")}
    cmd = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--timeout", "10s", "-s", str(script),
           f"http://127.0.0.1:{port}{path}"]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    server_cpu0 = server.cpu_seconds() if server else None
    t = time.perf_counter()
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=seconds + 60)
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    script.unlink()
    line = next((ln for ln in out.stdout.splitlines() if ln.startswith("BENCH_JSON ")), None)
    if line is None:
        raise RuntimeError(f"wrk gave no summary: {out.stdout[-500:]} {out.stderr[-500:]}")
    r = json.loads(line[len("BENCH_JSON "):])
    secs = r["duration_us"] / 1e6
    errors = sum(r["errors"].values())
    wrk_cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    res = {
        "connections": connections, "seconds": round(secs, 2), "requests": r["requests"],
        "req_per_s": r["requests"] / secs, "p50_ms": r["p50_us"] / 1000, "p90_ms": r["p90_us"] / 1000,
        "p99_ms": r["p99_us"] / 1000, "max_ms": r["max_us"] / 1000, "mean_ms": r["mean_us"] / 1000,
        "errors": errors, "error_detail": r["errors"],
        "generator_cpu_s": wrk_cpu, "generator_cpu_share_of_one_core": wrk_cpu / wall,
        "generator_cpu_us_per_request": 1e6 * wrk_cpu / max(r["requests"], 1),
    }
    if server:
        srv = server.cpu_seconds() - server_cpu0
        res["server_cpu_s"] = srv
        res["server_cpu_ms_per_request"] = 1000 * srv / max(r["requests"], 1)
    log(f"  c={connections:3d} {method} {path}: {res['req_per_s']:.1f} req/s, p50 {res['p50_ms']:.2f} ms, "
        f"p99 {res['p99_ms']:.2f} ms, errors {errors}; wrk CPU {100 * res['generator_cpu_share_of_one_core']:.0f}% "
        "of a core")
    return res


def run_level(port, connections, seconds, body_path, server, repeats):
    """``repeats`` wrk runs at one concurrency, each on fresh connections: their medians.

    How wrk's keep-alive connections fall on the gunicorn workers is decided anew by each
    run (at concurrency 16, splits from even to 16/0 were seen) and moves req/s and p99
    by up to 2x, so one run is one draw of it. Errors are summed over the runs; ``runs``
    keeps each run's figures.
    """
    runs = [run_wrk(port, connections, seconds, body_path, server=server) for _ in range(repeats)]
    med = {k: float(np.median([r[k] for r in runs])) for k in
           ("req_per_s", "p50_ms", "p90_ms", "p99_ms", "mean_ms", "generator_cpu_share_of_one_core",
            "generator_cpu_us_per_request", "server_cpu_ms_per_request") if all(k in r for r in runs)}
    return {**runs[len(runs) // 2], **med, "connections": connections, "repeats": repeats,
            "errors": sum(r["errors"] for r in runs), "max_ms": max(r["max_ms"] for r in runs),
            "requests": sum(r["requests"] for r in runs),
            "runs": [{k: r[k] for k in ("req_per_s", "p99_ms", "errors")} for r in runs]}


def measure(body10, body30, levels=(1, 16, 64), seconds=10, venv=None, n30=3, warm_s=3, repeats=3):
    """Cold start, load levels, the 30-min record, worker RSS: one gunicorn for all of it."""
    out = {"generator": "wrk (Debian package), 1 thread, closed loop, keep-alive"}
    body_file = Path(tempfile.mkstemp(prefix="bench-body-", suffix=".json")[1])
    body_file.write_bytes(body10)
    try:
        with Server(venv=venv) as srv:
            out["server"] = {"venv": str(srv.venv), "command": "gunicorn -c gunicorn.conf.py wsgi:app",
                             "bind": f"127.0.0.1:{srv.port}"}
            out["cold_start_to_first_201_s"] = srv.wait_first_201(body10)
            time.sleep(1.0)  # let the second worker finish booting too
            workers = srv.worker_pids()
            out["server"]["workers"] = len(workers)
            out["server"]["gunicorn_conf"] = _conf_settings(srv.venv)
            out["rss_workers_after_boot_mb"] = [rss_mb(p) for p in workers]
            if wrk_available():
                run_wrk(srv.port, 16, warm_s, body_file, server=srv)  # warm-up, not reported
                out["levels"] = [run_level(srv.port, c, seconds, body_file, srv, repeats) for c in levels]
                out["trivial_endpoint"] = run_wrk(srv.port, 16, max(3, seconds // 2), None, "GET", "/health",
                                                  server=srv)
            else:
                out["levels"] = {"skipped": "wrk not installed (apt-get install -y wrk)"}
            out["rss_workers_after_load_mb"] = [rss_mb(p) for p in srv.worker_pids()]
            if body30 is not None:
                runs = []
                for _ in range(n30 + 1):  # the first one warms the worker's code paths for this size
                    status, secs, data = post(srv.port, body30)
                    runs.append((status, secs, len(data)))
                runs = runs[1:]
                out["record_30min"] = {"statuses": [r[0] for r in runs], "seconds": [r[1] for r in runs],
                                       "median_s": sorted(r[1] for r in runs)[len(runs) // 2],
                                       "request_mb": len(body30) / 1e6, "response_mb": runs[0][2] / 1e6}
                out["rss_workers_after_30min_mb"] = [rss_mb(p) for p in srv.worker_pids()]
    finally:
        body_file.unlink()
    return out


def _conf_settings(venv):
    """workers / threads / worker class as gunicorn.conf.py computes them here."""
    code = ("import runpy, json; c = runpy.run_path('gunicorn.conf.py'); "
            "print(json.dumps({k: c[k] for k in ('workers', 'threads', 'worker_class', 'timeout', 'keepalive')}))")
    env = {**os.environ, "HOST": "127.0.0.1", "PORT": "0", "PROMETHEUS_MULTIPROC_DIR": tempfile.gettempdir()}
    r = subprocess.run([str(venv / "bin" / "python"), "-c", code], cwd=PROJECT_DIR, env=env,
                       capture_output=True, text=True)
    try:
        return json.loads(r.stdout)
    except ValueError:
        return {"error": r.stderr[-300:]}
