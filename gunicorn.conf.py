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


class DrainingThreadWorker(ThreadWorker):
    """gthread, but a stopping worker serves every connection it has accepted, and a busy
    one leaves new connections to the others.

    gunicorn's gthread worker, told to stop (SIGTERM, and so each old worker on a SIGHUP
    reload), leaves its loop at once: requests a thread is handling finish, but connections
    it had accepted and not yet read are dropped (the client sees a reset or a broken pipe;
    a reload under light load lost one or two requests so). This one stops accepting,
    answers what it holds (closing each connection after its answer) and leaves when it
    holds none, or when graceful_timeout is nearly up (tests/test_reliability_gunicorn.py).

    It also takes new connections only while it has a thread to serve them. Workers share
    one listening socket, and keep-alive clients stay on the worker that accepted them: in
    a burst of connections (a load balancer or a benchmark opening 16 at once), the worker
    that woke first took all or most of them, and the other sat idle. Concurrency-16
    throughput was ~300 or ~620 req/s depending only on that split (issue 5). So when
    the connections it is reading or serving reach its thread count, a worker stops
    listening, and listens again when one of its requests finishes: a busy worker takes
    new connections one per finished request, as fast as it serves, so a burst spreads
    over the workers by their pace, and a waiting client waits about one request.
    """

    stop_requested_at = None
    accepting = True
    listening = True

    def handle_exit(self, sig, frame):
        # in a signal handler: only note it, the main loop drains (notify runs at its top)
        if self.stop_requested_at is None:
            self.stop_requested_at = time.monotonic()

    def busy(self):
        # connections being read or served (the rest idle in keep-alive, waiting for their client)
        return self.nr_conns - len(self._keep)

    def accept(self, server, listener):
        super().accept(server, listener)
        with self._lock:
            if self.listening and self.busy() >= self.cfg.threads:
                self.listening = False
                self.listeners = [self.poller.unregister(sock) for sock in self.sockets]

    def finish_request(self, fs):
        super().finish_request(fs)
        with self._lock:
            if not self.listening and self.accepting:
                self.listening = True
                for key in self.listeners:  # as run() registered them
                    self.poller.register(key.fileobj, key.events, key.data)

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
                    if self.listening:
                        self.poller.unregister(sock)
                    sock.close()  # this worker's copy: on SIGTERM the last one, so new clients are refused
                self.listening = False
        out_of_time = time.monotonic() - self.stop_requested_at > max(self.cfg.graceful_timeout - 2, 1)
        if (self.nr_conns == 0 and not self.futures) or out_of_time:
            self.alive = False


def post_fork(server, worker):
    # worker_class stays the plain "gthread" string (tools read it); the draining and
    # balancing behaviour is set on the forked worker before it starts
    if type(worker) is ThreadWorker:
        worker.__class__ = DrainingThreadWorker


def child_exit(server, worker):
    multiprocess.mark_process_dead(worker.pid)


def on_exit(server):
    if _own_metrics_dir:
        shutil.rmtree(os.environ["PROMETHEUS_MULTIPROC_DIR"], ignore_errors=True)
