"""Part 1b: the whole 10-s request path in the serving-only venv and in the project's venv.

Same code, same machine, same request, one WSGI call per request as in part 1; what
differs is the interpreter and what is installed beside the service:

- the serving-only venv (``footprint.API_VENV``: requirements-api.txt alone, what the
  Docker image installs), built on ``serving_interpreter()``: a CPython built with
  profile-guided and link-time optimisation, as the Space's ``python:3.11-slim`` is
  (docker-library's Dockerfile configures it ``--enable-optimizations --with-lto``).
  Here that is Debian's ``/usr/bin/python3.11`` (3.11.2, PGO + LTO on amd64 by Debian's
  packaging), unless ``BENCH_SERVING_PYTHON`` names another;
- the project's ``.venv`` (the bench's own interpreter): pyenv's CPython 3.11.7 on this
  machine, configured without ``--enable-optimizations`` or ``--with-lto``.

Each runs in processes of its own (``python -m bench.interpreters --child``), alternated
round by round, so both see the same minutes of this noisy machine.
"""

import argparse
import contextlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from .common import PROJECT_DIR, log

DEBIAN_PYTHON = Path("/usr/bin/python3.11")
DEBIAN_WHY = ("Debian's CPython 3.11 (built with PGO and LTO, as the image's python:3.11-slim, though "
              "linked statically where the image links libpython as a shared library)")


def serving_interpreter():
    """The interpreter to build the serving-only venv on: (path, why).

    ``footprint.build_api_venv`` falls back to the bench's own when this one cannot
    make a venv (Debian's python3.11 needs its python3.11-venv package for that).
    """
    chosen = os.environ.get("BENCH_SERVING_PYTHON")
    if chosen:
        return chosen, "BENCH_SERVING_PYTHON"
    if DEBIAN_PYTHON.exists():
        return str(DEBIAN_PYTHON), DEBIAN_WHY
    return getattr(sys, "_base_executable", sys.executable), "the bench's own interpreter (no Debian python3.11 here)"


def describe(base_executable):
    """What the serving-only venv was built on, from the base interpreter its child reported."""
    chosen = os.environ.get("BENCH_SERVING_PYTHON")
    if chosen and Path(chosen).resolve() == Path(base_executable).resolve():
        return "BENCH_SERVING_PYTHON"
    if Path(base_executable).resolve() == DEBIAN_PYTHON.resolve():
        return DEBIAN_WHY
    return f"{base_executable} (not Debian's python3.11)"


def _child(n, warmup):
    """Time ``n`` whole 10-s requests in this process; print one JSON line."""
    from .common import payload_10s, stats_ms, timed
    from .inprocess import make_app, wsgi_caller

    body, _ = payload_10s()
    with open(os.devnull, "w") as devnull, contextlib.redirect_stdout(devnull):
        stats = stats_ms(timed(wsgi_caller(make_app(), body), n, warmup))
    print(json.dumps({
        "median_ms": stats["median_ms"], "p99_ms": stats["p99_ms"], "n": n,
        "python": sys.version.split()[0], "executable": sys.executable,
        "base_executable": getattr(sys, "_base_executable", sys.executable),
    }))


def _run_child(python, n, warmup):
    env = {**os.environ, "PYTHONPATH": str(PROJECT_DIR)}
    r = subprocess.run([str(python), "-m", "bench.interpreters", "--child", "--n", str(n),
                        "--warmup", str(warmup)], cwd=PROJECT_DIR, env=env, capture_output=True, text=True)
    if r.returncode:
        raise RuntimeError(f"{python}: {r.stderr.strip()[-400:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def measure(serving_venv, rounds=4, n=500, warmup=100):
    """Alternate ``rounds`` child runs in each venv; the median of each side's run medians."""
    pythons = {"serving_venv": Path(serving_venv) / "bin" / "python", "project_venv": Path(sys.executable)}
    runs = {k: [] for k in pythons}
    order = list(pythons)
    for _ in range(rounds):
        for key in order:
            runs[key].append(_run_child(pythons[key], n, warmup))
        order.reverse()  # neither side always first
    out = {}
    for key, rs in runs.items():
        medians = [r["median_ms"] for r in rs]
        out[key] = {"median_ms": float(np.median(medians)), "run_medians_ms": medians,
                    "p99_ms": float(np.median([r["p99_ms"] for r in rs])),
                    "python": rs[0]["python"], "executable": rs[0]["executable"],
                    "base_executable": rs[0]["base_executable"]}
        log(f"  {key} (CPython {rs[0]['python']}): whole 10-s request median "
            f"{out[key]['median_ms']:.3f} ms (runs: {', '.join(f'{m:.3f}' for m in medians)})")
    out["project_over_serving"] = out["project_venv"]["median_ms"] / out["serving_venv"]["median_ms"]
    out["requests_per_run"], out["rounds"] = n, rounds
    out["serving_interpreter"] = describe(out["serving_venv"]["base_executable"])
    return out


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--child", action="store_true")
    ap.add_argument("--n", type=int, default=500)
    ap.add_argument("--warmup", type=int, default=100)
    a = ap.parse_args()
    if a.child:
        _child(a.n, a.warmup)
