"""Prometheus metrics at /metrics: requests by route and status, latency, beats by class,
the model's version.

Under gunicorn each worker is a process: ``gunicorn.conf.py`` sets
``PROMETHEUS_MULTIPROC_DIR`` so that every worker writes its samples there and /metrics
(whichever worker answers) sums them. Without it (tests, ``flask run``) the figures are
this process's own.
"""

import os

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

LATENCY_BUCKETS_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Metrics:
    """The app's metrics, in a registry of its own (tests build many apps in one process)."""

    def __init__(self):
        self.registry = CollectorRegistry(auto_describe=True)
        reg = self.registry
        self.requests = Counter("ecg_http_requests_total", "HTTP requests by route, method and status",
                                ["route", "method", "status"], registry=reg)
        self.latency = Histogram("ecg_http_request_duration_seconds", "Time to answer a request",
                                 ["route"], buckets=LATENCY_BUCKETS_S, registry=reg)
        self.beats = Counter("ecg_beats_total", "Classified beats by class",
                             ["arrhythmia_type"], registry=reg)
        self.model_info = Gauge("ecg_model_info", "The loaded model (value 1)",
                                ["model_name", "model_version", "preprocessing_version", "mlflow_run_id"],
                                registry=reg, multiprocess_mode="max")
        self.model_loaded = Gauge("ecg_model_loaded", "1 when a usable model is loaded, else 0",
                                  registry=reg, multiprocess_mode="min")
        for kind in ("N", "V"):  # present at 0 from the start, so rates work
            self.beats.labels(kind)

    def observe_request(self, route, method, status, seconds):
        self.requests.labels(route, method, str(status)).inc()
        self.latency.labels(route).observe(seconds)

    def observe_beats(self, normal, ventricular):
        self.beats.labels("N").inc(normal)
        self.beats.labels("V").inc(ventricular)

    def set_model(self, state):
        self.model_loaded.set(1 if state.loaded else 0)
        if state.loaded:
            s = state.model.summary()
            self.model_info.labels(s["name"], s["version"], s["preprocessing_version"],
                                   s["mlflow_run_id"] or "").set(1)

    def render(self):
        """(body, content type) of the Prometheus text exposition."""
        path = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
        if path:
            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry, path=path)
            return generate_latest(registry), CONTENT_TYPE_LATEST
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


def init_app(app, state):
    metrics = Metrics()
    metrics.set_model(state)
    app.extensions["ecg_metrics"] = metrics
    return metrics
