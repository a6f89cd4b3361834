"""Service status for clients, health checks and Prometheus: /, /health, /metrics."""

from datetime import datetime, timezone

from flask import current_app

from . import __version__, demo, model, schemas
from .api import Blueprint

blp = Blueprint("health", __name__, description="Service status")


@blp.route("/", methods=["GET"])
@blp.response(200, schemas.RootSchema)
def root():
    """What this API is and where its documentation lives

    Browsers (`Accept: text/html` preferred to JSON) get the demo page instead, also at
    /demo; `*/*` or no Accept header gets this JSON.
    """
    if demo.wants_page():
        return demo.page_response()
    # the answer depends on Accept: caches must not give a browser's page to curl
    return ({"name": "ECG arrhythmia detection API (N / V beats)", "version": __version__,
             "docs": "/docs", "health": "/health", "redoc": "/redoc", "openapi": "/openapi.json"},
            200, {"Vary": "Accept"})


@blp.route("/health", methods=["GET"])
@blp.response(200, schemas.HealthSchema)
def health():
    """Healthy with a usable model; degraded (still 200) without one, with the reason"""
    state = model.get_state(current_app)
    return {
        "status": "healthy" if state.loaded else "degraded",
        "version": __version__,
        "model_loaded": state.loaded,
        "timestamp": datetime.now(timezone.utc),
        "reason": state.reason,
        "model": state.model.summary() if state.loaded else None,
    }


@blp.route("/metrics", methods=["GET"])
@blp.doc(responses={"200": {"description": "Prometheus text exposition format",
                            "content": {"text/plain": {"schema": {"type": "string"}}}}})
def prometheus_metrics():
    """Prometheus metrics: requests by route and status, latency, beats by class, model"""
    body, content_type = current_app.extensions["ecg_metrics"].render()
    return current_app.response_class(body, mimetype=None, content_type=content_type)
