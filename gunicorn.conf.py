"""Gunicorn settings for the ECG service: ``gunicorn -c gunicorn.conf.py wsgi:app``.

| variable | default | what |
|---|---|---|
| `PORT` | 7860 | port (Hugging Face Spaces route to 7860) |
| `HOST` | 0.0.0.0 | interface |
| `WEB_CONCURRENCY` | number of cores, at most 4 | worker processes |
| `GUNICORN_THREADS` | 2 | threads per worker (gthread) |
| `GUNICORN_TIMEOUT` | 120 | seconds of silence after which the master kills a stuck worker |
| `GUNICORN_GRACEFUL_TIMEOUT` | 30 | seconds a stopping worker (SIGTERM, SIGHUP) has to finish its requests |
| `PROMETHEUS_MULTIPROC_DIR` | a fresh temporary folder | where workers share their metrics |

preload_app stays off: each worker imports the app itself and so creates its own ONNX
Runtime session after the fork (sessions hold threads and must not cross a fork). It is
also what makes SIGHUP a model release: new workers load the model the folder now holds.

A slow request is bounded by the app, not here: with gthread workers the master's timeout
only fires when a worker's main loop stops answering (say, C code holding the GIL), since
that loop keeps reporting while threads compute. The app stops a prediction past
ECG_REQUEST_TIMEOUT_S (60 s) with a JSON 503 (service/config.py), and ECG_MAX_SAMPLES
bounds the work one request can ask for; a worker the master does kill drops its
connections and is replaced (docs/RELIABILITY.md).
"""

import os
import shutil
import tempfile

from gunicorn.workers.gthread import ThreadWorker

bind = f"{os.environ.get('HOST', '0.0.0.0')}:{int(os.environ.get('PORT', '7860'))}"
workers = int(os.environ.get("WEB_CONCURRENCY") or min(os.cpu_count() or 1, 4))
worker_class = "gthread"
threads = int(os.environ.get("GUNICORN_THREADS") or 2)
timeout = int(os.environ.get("GUNICORN_TIMEOUT") or 120)
graceful_timeout = int(os.environ.get("GUNICORN_GRACEFUL_TIMEOUT") or 30)
keepalive = 5
preload_app = False
# the app writes one JSON line per request itself; gunicorn's access log would double it
accesslog = None
errorlog = "-"
loglevel = os.environ.get("ECG_LOG_LEVEL", "info").lower()

# One thread per worker for numpy's BLAS too (ONNX Runtime is set so in service/model.py):
# workers share the cores, and a BLAS thread pool per worker only makes them wait on
# each other. Set here, before any worker imports numpy.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

# Metrics from all workers: each writes to files in this folder, /metrics sums them.
# Set here, in the master, so that every worker inherits it before importing the app.
_own_metrics_dir = "PROMETHEUS_MULTIPROC_DIR" not in os.environ
if _own_metrics_dir:
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="ecg-metrics-")

# Imported here, after the folder is set (prometheus_client picks its multiprocess mode at
# import), not in child_exit: the master runs child_exit from its SIGCHLD handler, and a
# second worker exiting during the first import re-entered it ("cannot import name 'Gauge'
# from partially initialized module", seen when two workers stopped together).
from prometheus_client import multiprocess  # noqa: E402


def on_starting(server):
    # a folder given from outside may hold a previous run's figures: start from zero
    path = os.environ["PROMETHEUS_MULTIPROC_DIR"]
    os.makedirs(path, exist_ok=True)
    for name in os.listdir(path):
        if name.endswith(".db"):
            os.remove(os.path.join(path, name))


def post_fork(server, worker):
    # worker_class stays the plain "gthread" string (tools read it); the draining and
    # balancing worker takes over the forked worker before it starts. Imported here, in the
    # worker, as the app is: the master loads no service code (nor ONNX Runtime).
    from service.gunicorn_worker import DrainingThreadWorker

    if type(worker) is ThreadWorker:
        worker.__class__ = DrainingThreadWorker


def child_exit(server, worker):
    multiprocess.mark_process_dead(worker.pid)


def on_exit(server):
    if _own_metrics_dir:
        shutil.rmtree(os.environ["PROMETHEUS_MULTIPROC_DIR"], ignore_errors=True)
