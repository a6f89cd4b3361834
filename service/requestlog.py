"""Request id, one structured JSON log line per request, and request metrics.

The log line says who asked what and how it went (method, route, status, time, sizes,
beat counts); it never holds the signal or the patient id.
"""

import logging
import re
import sys
import time
import uuid
from datetime import datetime, timezone

from flask import g, request

from . import jsonio

log = logging.getLogger("service.request")

# a client's own X-Request-ID is kept when it is a sane token, else we make one
_CLIENT_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}\Z")


class JsonFormatter(logging.Formatter):
    def format(self, record):
        entry = {
            "time": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update(getattr(record, "fields", None) or {})
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return jsonio.dumps_bytes(entry).decode()


class _StdoutHandler(logging.StreamHandler):
    """Writes to whatever sys.stdout is now (pytest swaps it per test)."""

    @property
    def stream(self):
        return sys.stdout

    @stream.setter
    def stream(self, value):
        pass


def setup_logging(level):
    """The ``service`` loggers write JSON lines to stdout at ``level``; ``create_app`` calls
    it once, before the model loads, so that the model's own log lines are JSON too."""
    logger = logging.getLogger("service")
    logger.setLevel(level)
    if not any(isinstance(h, _StdoutHandler) for h in logger.handlers):
        handler = _StdoutHandler()
        handler.setFormatter(JsonFormatter())
        logger.addHandler(handler)
    logger.propagate = False


def init_app(app, metrics):
    """Request id, log line and request metrics for every request of ``app``."""
    @app.before_request
    def _start():
        g.start = time.perf_counter()
        given = request.headers.get("X-Request-ID", "")
        g.request_id = given if _CLIENT_REQUEST_ID.match(given) else uuid.uuid4().hex

    @app.after_request
    def _finish(response):
        now = time.perf_counter()
        elapsed = now - g.get("start", now)
        request_id = g.get("request_id")
        if not request_id:
            request_id = g.request_id = uuid.uuid4().hex
        response.headers["X-Request-ID"] = request_id
        # the rule, not the path: unknown paths must not grow the label set without bound;
        # /api/v1/predictions and /api/v1/predictions/ count as one route
        rule = request.url_rule
        route = (rule.rule.rstrip("/") or "/") if rule else "<unmatched>"
        status = response.status_code
        metrics.observe_request(route, request.method, status, elapsed)
        if log.isEnabledFor(logging.INFO):
            fields = {
                "request_id": request_id,
                "method": request.method,
                "path": request.path,
                "route": route,
                "status": status,
                "duration_ms": round(elapsed * 1000.0, 3),
                "request_bytes": request.content_length,
                "remote_addr": request.remote_addr,
            }
            extra = g.get("log_fields")
            if extra:
                fields.update(extra)
            log.info("request", extra={"fields": fields})
        return response
