"""The gunicorn worker the service runs: gthread that drains on stop and balances a burst.

``gunicorn.conf.py`` keeps ``worker_class = "gthread"`` and turns each forked worker into a
:class:`DrainingThreadWorker` in its ``post_fork`` hook. The subclass works on gthread's
own state (``nr_conns``, ``_keep``, ``_lock``, ``poller``, ``sockets``, ``futures``), which
gunicorn does not document: gunicorn is pinned in requirements-api.txt, and
tests/test_reliability_gunicorn.py checks the behaviour under a real gunicorn.
"""

import time

from gunicorn.workers.gthread import ThreadWorker


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
    that woke first took all or most of them, and the other sat idle: throughput at
    concurrency 16 depended on that split alone (docs/PERFORMANCE.md). So when
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
