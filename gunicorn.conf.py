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
import time

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


def on_starting(server):
    # a folder given from outside may hold a previous run's figures: start from zero
    path = os.environ["PROMETHEUS_MULTIPROC_DIR"]
    os.makedirs(path, exist_ok=True)
    for name in os.listdir(path):
        if name.endswith(".db"):
            os.remove(os.path.join(path, name))


class DrainingThreadWorker(ThreadWorker):
    """gthread, but a stopping worker serves every connection it has accepted.

    gunicorn's gthread worker, told to stop (SIGTERM, and so each old worker on a SIGHUP
    reload), leaves its loop at once: requests a thread is handling finish, but connections
    it had accepted and not yet read are dropped (the client sees a reset or a broken pipe;
    a reload under light load lost one or two requests so). This one stops accepting,
    answers what it holds (closing each connection after its answer) and leaves when it
    holds none, or when graceful_timeout is nearly up (tests/test_reliability_gunicorn.py).
    """

    stop_requested_at = None
    accepting = True

    def handle_exit(self, sig, frame):
        # in a signal handler: only note it, the main loop drains (notify runs at its top)
        if self.stop_requested_at is None:
            self.stop_requested_at = time.monotonic()

    def notify(self):
        super().notify()
        if self.stop_requested_at is not None and self.alive:
            self._drain()

    def _drain(self):
        if self.accepting:
            self.accepting = False
            self.max_keepalived = 0  # every answer from now on closes its connection
            with self._lock:
                for sock in self.sockets:  # the other (or the new) workers take new connections
                    try:
                        self.poller.unregister(sock)
                    except (KeyError, ValueError):
                        pass
                    sock.close()  # this worker's copy: on SIGTERM the last one, so new clients are refused
        out_of_time = time.monotonic() - self.stop_requested_at > max(self.cfg.graceful_timeout - 2, 1)
        if (self.nr_conns == 0 and not self.futures) or out_of_time:
            self.alive = False


def post_fork(server, worker):
    # worker_class stays the plain "gthread" string (tools read it); the draining
    # behaviour is set on the forked worker before it starts
    if type(worker) is ThreadWorker:
        worker.__class__ = DrainingThreadWorker


def child_exit(server, worker):
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def on_exit(server):
    if _own_metrics_dir:
        shutil.rmtree(os.environ["PROMETHEUS_MULTIPROC_DIR"], ignore_errors=True)
