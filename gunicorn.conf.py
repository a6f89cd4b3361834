"""Gunicorn settings for the ECG service: ``gunicorn -c gunicorn.conf.py wsgi:app``.

| variable | default | what |
|---|---|---|
| `PORT` | 7860 | port (Hugging Face Spaces route to 7860) |
| `HOST` | 0.0.0.0 | interface |
| `WEB_CONCURRENCY` | number of cores, at most 4 | worker processes |
| `GUNICORN_THREADS` | 2 | threads per worker (gthread) |
| `GUNICORN_TIMEOUT` | 120 | seconds a request may take (a 30-min record takes ~1 s) |
| `PROMETHEUS_MULTIPROC_DIR` | a fresh temporary folder | where workers share their metrics |

preload_app stays off: each worker imports the app itself and so creates its own ONNX
Runtime session after the fork (sessions hold threads and must not cross a fork).
"""

import os
import shutil
import tempfile

bind = f"{os.environ.get('HOST', '0.0.0.0')}:{int(os.environ.get('PORT', '7860'))}"
workers = int(os.environ.get("WEB_CONCURRENCY") or min(os.cpu_count() or 1, 4))
worker_class = "gthread"
threads = int(os.environ.get("GUNICORN_THREADS") or 2)
timeout = int(os.environ.get("GUNICORN_TIMEOUT") or 120)
graceful_timeout = 30
keepalive = 5
preload_app = False
# the app writes one JSON line per request itself; gunicorn's access log would double it
accesslog = None
errorlog = "-"
loglevel = os.environ.get("ECG_LOG_LEVEL", "info").lower()

# Metrics from all workers: each writes to files in this folder, /metrics sums them.
# Set here, in the master, so that every worker inherits it before importing the app.
_own_metrics_dir = "PROMETHEUS_MULTIPROC_DIR" not in os.environ
if _own_metrics_dir:
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="ecg-metrics-")


def on_starting(server):
    # a folder given from outside may hold a previous run's figures: start from zero
    path = os.environ["PROMETHEUS_MULTIPROC_DIR"]
    os.makedirs(path, exist_ok=True)
    for name in os.listdir(path):
        if name.endswith(".db"):
            os.remove(os.path.join(path, name))


def child_exit(server, worker):
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def on_exit(server):
    if _own_metrics_dir:
        shutil.rmtree(os.environ["PROMETHEUS_MULTIPROC_DIR"], ignore_errors=True)
