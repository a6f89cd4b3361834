"""Every error is JSON with a human-readable ``detail`` (what the old clients read).

422 adds ``errors``: messages per request field. A server fault answers 500 with the
request id to quote, never a stack trace (the trace goes to the log).
"""

import logging

from flask import current_app, g, request
from webargs.flaskparser import FlaskParser, abort, is_json_request

from . import jsonio

log = logging.getLogger("service.errors")


def _summary(errors):
    """One line from marshmallow's ``{"field": ["msg", ...]}``."""
    parts = []
    for field, messages in errors.items():
        if isinstance(messages, dict):
            messages = [f"{k}: {v}" for k, v in messages.items()]
        elif not isinstance(messages, list):
            messages = [str(messages)]
        name = "body" if field == "_schema" else field
        parts.append(f"{name}: {' '.join(str(m) for m in messages)}")
    return "; ".join(parts)


def _detail(error, errors):
    status = error.code or 500
    if status == 422 and errors:
        return f"Validation failed. {_summary(errors)}"
    if status == 404:
        return f"No such endpoint: {request.path}. The API is described at /docs."
    if status == 405:
        allowed = ", ".join(sorted(error.valid_methods or []))
        return f"Method {request.method} is not allowed on {request.path} (allowed: {allowed})."
    if status == 413:
        limit = current_app.config.get("MAX_CONTENT_LENGTH") or 0
        return (f"Request body is over the {limit / 1024 / 1024:g} MB limit "
                "(ECG_MAX_BODY_MB).")
    if status == 415:
        return "Content-Type must be application/json."
    if status >= 500:
        return (f"Internal server error. Quote request id {g.get('request_id', '-')} "
                "when reporting it.")
    return error.description or error.name


def http_error(error):
    """Handler for every HTTPException (Flask also routes unhandled exceptions here as 500)."""
    status = error.code or 500
    data = getattr(error, "data", None) or {}
    errors = data.get("errors") or data.get("messages")
    if isinstance(errors, dict) and set(errors) == {"json"}:  # webargs nests under the location
        errors = errors["json"]
    if status >= 500:
        original = getattr(error, "original_exception", None)
        log.error("unhandled error", exc_info=original or error,
                  extra={"fields": {"request_id": g.get("request_id")}})
    body = {"detail": data.get("detail") or _detail(error, errors), "status": status}
    if errors:
        body["errors"] = errors
    if g.get("request_id"):
        body["request_id"] = g.request_id
    response = current_app.response_class(jsonio.dumps_bytes(body), status=status,
                                          mimetype="application/json")
    for name, value in error.get_headers():
        if name.lower() != "content-type":  # e.g. Allow on 405
            response.headers[name] = value
    for name, value in (data.get("headers") or {}).items():
        response.headers[name] = value
    return response


class OrjsonParser(FlaskParser):
    """webargs parser for flask-smorest: orjson for the body, 415 and 400 with a detail."""

    def _raw_load_json(self, req):
        if not is_json_request(req):
            abort(415)
        data = req.get_data(cache=True)  # werkzeug raises 413 past MAX_CONTENT_LENGTH...
        limit = req.max_content_length
        if req.content_length is None and limit is not None and len(data) >= limit:
            # ...but silently cuts a chunked body (no Content-Length) at the limit
            abort(413)
        if not data.strip():
            abort(400, detail="Request body is empty: a JSON object is expected.")
        try:
            return jsonio.loads(data)
        except jsonio.JSONDecodeError as exc:
            if b"NaN" in data or b"Infinity" in data:
                abort(400, detail="Malformed JSON: NaN and Infinity are not JSON numbers; "
                                  "signal_data must hold finite numbers only.")
            abort(400, detail=f"Malformed JSON: {exc}")
