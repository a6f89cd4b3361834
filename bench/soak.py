"""Soak: a steady load of real 10-s DS2 strips for minutes; latency and memory per minute.

    nice -n 19 .venv/bin/python -m bench.soak --minutes 10 --concurrency 32 [--data DIR]

Starts its own gunicorn (gunicorn.conf.py, --workers, default 2) on a free loopback port
(it inherits the nice level), unless --url (and --master-pid, to read the workers'
memory) names a running one. Each of ``--concurrency`` client threads keeps one
connection open and posts strips back to back. The strips are cut from the MIT-BIH DS2
records (lead MLII, 10 s, every 60 s of each record), so the MIT-BIH folder is needed
(--data, $ECG_DATA_DIR, data/mitdb or ../shared/data/mitdb).

Prints, per minute: requests, errors, p50/p90/p99/max latency, each worker's RSS, the load
average; then whether the run was clean (zero errors, same workers from start to end) and
JSON with everything (--json FILE writes it). Exit status 1 on any error.
"""

import argparse
import http.client
import json
import os
import sys
import threading
import time
from pathlib import Path

import numpy as np

from train.cli import at_least
from train.data import DS2

from .common import PROJECT_DIR, mitdb_dir, rss_mb, unreachable, worker_pids

STRIP_S = 10
STRIP_EVERY_S = 60


def find_data(given=None):
    d = Path(given) if given else mitdb_dir()
    if d is None or not (d / "200.hea").exists():
        raise SystemExit("MIT-BIH not found: pass --data DIR (or set ECG_DATA_DIR)")
    return d


def ds2_strips(data_dir):
    """Request bodies: 10 s of lead MLII from every minute of every DS2 record."""
    import wfdb

    bodies = []
    for rec_name in DS2:
        rec = wfdb.rdrecord(str(data_dir / rec_name))
        names = [s.strip() for s in rec.sig_name]
        x = rec.p_signal[:, names.index("MLII") if "MLII" in names else 0]
        fs = int(rec.fs)
        for start in range(0, len(x) - STRIP_S * fs, STRIP_EVERY_S * fs):
            strip = np.round(x[start:start + STRIP_S * fs], 3).tolist()
            bodies.append(json.dumps({"signal_data": strip, "sampling_rate": fs,
                                      "derivation": "MLII", "patient_id": rec_name}).encode())
    return bodies


def worker_rss(master):
    """{worker pid: RSS in MB} of ``master``'s workers; None for one that ended meanwhile."""
    out = {}
    for pid in worker_pids(master) if master else []:
        try:
            out[pid] = rss_mb(pid)
        except OSError:
            out[pid] = None
    return out


class Client(threading.Thread):
    """One connection, requests back to back until ``end``; records (t, latency, status)."""

    def __init__(self, host, port, bodies, offset, end, results):
        super().__init__(daemon=True)
        self.host, self.port, self.bodies, self.i = host, port, bodies, offset
        self.end, self.results = end, results

    def run(self):
        conn = http.client.HTTPConnection(self.host, self.port, timeout=120)
        while time.monotonic() < self.end:
            body = self.bodies[self.i % len(self.bodies)]
            self.i += 7  # threads walk the strips on different paths
            t0 = time.monotonic()
            try:
                conn.request("POST", "/api/v1/predictions", body, {"Content-Type": "application/json"})
                resp = conn.getresponse()
                resp.read()
                status = resp.status
            except (OSError, http.client.HTTPException) as exc:
                status = f"{type(exc).__name__}"
                conn.close()
                conn = http.client.HTTPConnection(self.host, self.port, timeout=120)
            t1 = time.monotonic()
            self.results.append((t1, t1 - t0, status))  # list.append is atomic under the GIL
        conn.close()


def summarise(results, samples, t_start, minutes):
    rows = []
    for m in range(minutes):
        lo, hi = t_start + 60 * m, t_start + 60 * (m + 1)
        lat = np.array([r[1] for r in results if lo <= r[0] < hi]) * 1000.0
        errors = sum(1 for r in results if lo <= r[0] < hi and r[2] != 201)
        in_minute = [s for s in samples if lo <= s["t"] < hi]
        rss = {}
        for s in in_minute:
            for pid, mb in s["rss_mb"].items():
                rss[pid] = mb  # the last reading of the minute
        rows.append({
            "minute": m + 1, "requests": int(len(lat)), "errors": errors,
            "p50_ms": round(float(np.percentile(lat, 50)), 1) if len(lat) else None,
            "p90_ms": round(float(np.percentile(lat, 90)), 1) if len(lat) else None,
            "p99_ms": round(float(np.percentile(lat, 99)), 1) if len(lat) else None,
            "max_ms": round(float(lat.max()), 1) if len(lat) else None,
            "worker_rss_mb": {str(k): round(v, 1) for k, v in sorted(rss.items())},
            "loadavg_1m": in_minute[-1]["loadavg"][0] if in_minute else None,
        })
    return rows


def drive(url, master, bodies, concurrency, minutes):
    """``concurrency`` clients POST ``bodies`` to ``url`` for ``minutes``; the load and the
    workers' RSS are sampled every 5 s. Returns ``(results, samples, start time, (worker pids
    at start, at end))``."""
    host, port = url.split("//")[1].split(":")
    workers_at_start = worker_pids(master) if master else []
    results, samples = [], []
    t_start = time.monotonic()
    end = t_start + 60 * minutes
    clients = [Client(host, int(port), bodies, i, end, results) for i in range(concurrency)]
    for c in clients:
        c.start()
    while time.monotonic() < end:
        samples.append({"t": time.monotonic(), "loadavg": os.getloadavg(), "rss_mb": worker_rss(master)})
        time.sleep(5)
    for c in clients:
        c.join(timeout=180)
    samples.append({"t": time.monotonic() - 1e-6, "loadavg": os.getloadavg(), "rss_mb": worker_rss(master)})
    return results, samples, t_start, (workers_at_start, worker_pids(master) if master else [])


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=at_least(int, 1), default=10)
    ap.add_argument("--concurrency", type=at_least(int, 1), default=32)
    ap.add_argument("--workers", type=at_least(int, 1), default=2, help="gunicorn workers when started here")
    ap.add_argument("--data", help="MIT-BIH folder")
    ap.add_argument("--url", help="a running service, e.g. http://127.0.0.1:7860")
    ap.add_argument("--master-pid", type=int, help="with --url: its gunicorn master, for RSS")
    ap.add_argument("--json", help="write the full results here")
    args = ap.parse_args(argv)
    why = args.url and unreachable(args.url)
    if why:
        print(f"soak: {why}", file=sys.stderr)
        return 2

    bodies = ds2_strips(find_data(args.data))
    print(f"{len(bodies)} strips of {STRIP_S} s from {len(DS2)} DS2 records", flush=True)
    proc = None
    if args.url:
        url, master = args.url, args.master_pid
    else:
        sys.path.insert(0, str(PROJECT_DIR))
        from tests.service_helpers import start_gunicorn

        # run under nice -n 19 and the server inherits it: a shared machine's other jobs go first
        proc, url = start_gunicorn({"WEB_CONCURRENCY": str(args.workers)})
        master = proc.pid
    try:
        results, samples, t_start, workers = drive(url, master, bodies, args.concurrency, args.minutes)
    finally:
        if proc is not None:
            from tests.service_helpers import stop

            stop(proc)
    workers_at_start, workers_at_end = workers

    rows = summarise(results, samples, t_start, args.minutes)
    errors = sum(r["errors"] for r in rows)
    print(f"{'min':>3} {'req':>6} {'err':>4} {'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8} "
          f"{'max ms':>8} {'load':>5}  worker RSS MB")
    for r in rows:
        print(f"{r['minute']:>3} {r['requests']:>6} {r['errors']:>4} {r['p50_ms']:>8} "
              f"{r['p90_ms']:>8} {r['p99_ms']:>8} {r['max_ms']:>8} {r['loadavg_1m']:>5.2f}  "
              f"{' '.join(f'{v:.1f}' for v in r['worker_rss_mb'].values())}")
    statuses = {}
    for r in results:
        statuses[str(r[2])] = statuses.get(str(r[2]), 0) + 1
    report = {"minutes": args.minutes, "concurrency": args.concurrency, "strips": len(bodies),
              "requests": len(results), "statuses": statuses, "errors": errors,
              "workers_at_start": workers_at_start, "workers_at_end": workers_at_end,
              "per_minute": rows}
    print(f"requests {len(results)}, errors {errors}, statuses {statuses}, workers "
          f"{'unchanged' if workers_at_start == workers_at_end else 'CHANGED'} "
          f"({workers_at_start} -> {workers_at_end})")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1))
    return 1 if errors or workers_at_start != workers_at_end else 0


if __name__ == "__main__":
    sys.exit(main())
