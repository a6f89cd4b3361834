"""What every part of the bench shares: inputs, timing statistics, the machine's state."""

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

PROJECT_DIR = Path(__file__).resolve().parent.parent
PAYLOAD_10S = PROJECT_DIR / "test_payload_10s.json"
RECORD_30MIN = "200"  # a DS2 record, lead MLII: the record test_payload_10s.json is cut from
MITDB_DIRS = (os.environ.get("ECG_DATA_DIR"), PROJECT_DIR / "data" / "mitdb",
              PROJECT_DIR.parent / "shared" / "data" / "mitdb")


def log(*args):
    print(*args, file=sys.stderr, flush=True)


def served_model_parser(prog, doc):
    """The argument parser of a bench module that scores the served model on MIT-BIH records:
    ``--data`` and ``--model``, the module's docstring as its help."""
    import argparse

    ap = argparse.ArgumentParser(prog=prog, description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", help="MIT-BIH directory (default: $ECG_DATA_DIR, ...)")
    ap.add_argument("--model", default=str(PROJECT_DIR / "models" / "ecg_nv_cnn"))
    return ap


def unreachable(url):
    """Why nothing answers HTTP at ``url`` (a service's base URL), or None when something does
    (any status: a degraded service is still one to measure)."""
    import urllib.error
    import urllib.request

    try:
        urllib.request.urlopen(url.rstrip("/") + "/health", timeout=10).close()
    except urllib.error.HTTPError:
        return None
    except (OSError, ValueError) as exc:  # refused, no such host, timed out, not a URL
        return f"--url {url}: no service answers there ({getattr(exc, 'reason', exc)})"
    return None


def mitdb_dir():
    """The MIT-BIH folder, or None when it is not on this machine."""
    for d in MITDB_DIRS:
        if d and Path(d).is_dir() and (Path(d) / f"{RECORD_30MIN}.hea").exists():
            return Path(d)
    return None


def payload_10s():
    """The body of a real 10-s strip request (bytes) and its decoded object."""
    import orjson

    body = PAYLOAD_10S.read_bytes()
    return body, orjson.loads(body)


def payload_30min():
    """(body bytes, None) for the whole of record 200 lead MLII, or (None, reason)."""
    import orjson

    d = mitdb_dir()
    if d is None:
        return None, "MIT-BIH not found (ECG_DATA_DIR, data/mitdb, ../shared/data/mitdb)"
    try:
        import wfdb
    except ImportError:
        return None, "wfdb is not installed in this venv"
    rec = wfdb.rdrecord(str(d / RECORD_30MIN))
    names = [s.strip() for s in rec.sig_name]
    x = rec.p_signal[:, names.index("MLII") if "MLII" in names else 0]
    body = orjson.dumps({"signal_data": np.round(x, 3).tolist(), "sampling_rate": int(rec.fs),
                         "derivation": "MLII"})
    return body, None


def stats_ms(seconds):
    """Median, p99, min, mean (ms) and count of a list of durations in seconds."""
    a = np.asarray(seconds, dtype=np.float64) * 1000.0
    if not len(a):
        return {"n": 0}
    return {"n": int(len(a)), "median_ms": float(np.median(a)), "p99_ms": float(np.percentile(a, 99)),
            "min_ms": float(a.min()), "mean_ms": float(a.mean())}


def timed(fn, n, warmup=3):
    """Durations (s) of ``n`` calls of ``fn`` after ``warmup`` untimed ones."""
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return out


def interleaved(fns, n, warmup=3):
    """Durations (s) of each of ``fns`` (name -> callable), run in alternation ``n`` times.

    Alternating keeps a noisy shared machine from favouring whichever ran first.
    """
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    out = {k: [] for k in fns}
    for _ in range(n):
        for k, fn in fns.items():
            t = time.perf_counter()
            fn()
            out[k].append(time.perf_counter() - t)
    return out


def blocked(fns, n, block=25, settle=5):
    """Durations (s) of each of ``fns`` (name -> callable): ``n`` calls each, kept from
    blocks of ``block`` calls per callable in turn; the first ``settle`` calls of each
    block run but are not kept.

    For paths that never share a process in production (ONNX Runtime and TensorFlow):
    a call right after another path's finds that path's data in the CPU caches. Measured
    on the 10-s strip's request path: 2.93 ms right after a ``model.predict`` call (5 ms
    of sleep in between did not help), 2.07 ms from the sixth call of a block on, 2.05 ms
    with no TensorFlow call in the loop. Alternating blocks still spreads a noisy
    machine's slow spells over every path.
    """
    block = min(block, n + settle)
    out = {k: [] for k in fns}
    while any(len(v) < n for v in out.values()):
        for k, fn in fns.items():
            for i in range(block):
                t = time.perf_counter()
                fn()
                d = time.perf_counter() - t
                if i >= settle and len(out[k]) < n:
                    out[k].append(d)
    return out


def training_running():
    """Command lines of training jobs now running on this machine (they share the cores)."""
    try:
        out = subprocess.run(["pgrep", "-af", "python -m train"], capture_output=True, text=True).stdout
    except FileNotFoundError:
        return []
    return [line for line in out.splitlines() if "pgrep" not in line]


def machine():
    info = {"cpus": os.cpu_count(), "python": sys.version.split()[0]}
    try:
        info["loadavg_1min"] = os.getloadavg()[0]
    except OSError:
        pass
    info["training_jobs_running"] = training_running()
    info["OPENBLAS_CORETYPE"] = os.environ.get("OPENBLAS_CORETYPE")
    return info


def rss_kb(pid="self"):
    """Resident set size of a process in kB (VmRSS from /proc), None when it has none.

    Raises OSError when the process is gone.
    """
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return None


def rss_mb(pid="self"):
    """Resident set size of a process in MB (VmRSS from /proc); NaN when it has none."""
    kb = rss_kb(pid)
    return float("nan") if kb is None else kb / 1024.0


def worker_pids(master_pid):
    """The gunicorn master's child processes (its workers), sorted; [] once it is gone."""
    try:
        children = Path(f"/proc/{master_pid}/task/{master_pid}/children").read_text().split()
    except OSError:
        return []
    return sorted(int(p) for p in children)
