"""POST /api/v1/predictions (with or without the trailing slash): N/V for every beat."""

import time
import uuid
from datetime import datetime, timezone

from flask import current_app, g
from flask_smorest import abort

from . import inference, jsonio, model, schemas
from .api import Blueprint

blp = Blueprint("predictions", __name__, url_prefix="/api/v1/predictions",
                description="Beat-by-beat N/V classification of one ECG lead")


@blp.route("/", methods=["POST"])
# an instance, not the class: webargs would build a new schema (deep-copying its fields) per request
@blp.arguments(schemas.PredictionRequestSchema(), example={
    "signal_data": schemas.example_signal(), "sampling_rate": 360, "derivation": "MLII",
    "patient_id": None, "apply_ruleguard": True, "pacemaker": False})
@blp.response(201, schemas.PredictionResponseSchema)
@blp.alt_response(400, schema=schemas.ErrorSchema, description="Malformed JSON")
@blp.alt_response(413, schema=schemas.ErrorSchema, description="Body over the size limit")
@blp.alt_response(415, schema=schemas.ErrorSchema, description="Content-Type is not JSON")
@blp.alt_response(401, schema=schemas.ErrorSchema,
                  description="Missing or wrong X-API-Key (only when ECG_API_KEY is set)")
@blp.alt_response(422, schema=schemas.ErrorSchema,
                  description="Invalid body, or no heartbeat found in the signal")
@blp.alt_response(503, schema=schemas.ErrorSchema,
                  description="No usable model loaded, or the request ran past its time limit")
@blp.doc(security=[{}, {"ApiKey": []}])  # {}: no key needed unless ECG_API_KEY is set
def create_prediction(body):
    """Classify every beat of one ECG lead as N or V

    422 when the body fails validation, and when no beat can be found in the signal
    (a flat line, for instance). 503 when no model is loaded, or when the prediction
    runs past ECG_REQUEST_TIMEOUT_S (60 s by default). Unknown fields are ignored and
    named in `metadata.warnings`.
    """
    state = model.get_state(current_app)
    if not state.loaded:
        abort(503, detail=f"No usable model is loaded: {state.reason}")
    x, fs = body["signal_data"], body["sampling_rate"]
    g.log_fields = {"n_samples": len(x), "sampling_rate": fs}
    budget_s = current_app.config.get("REQUEST_TIMEOUT_S")
    deadline = g.start + budget_s if budget_s else None
    try:
        result = inference.predict(state.model, x, fs, body["derivation"], body["apply_ruleguard"],
                                   deadline=deadline, pacemaker=body["pacemaker"])
    except inference.TooSlow as exc:
        abort(503, detail=f"The prediction ran past the {budget_s:g} s limit "
                          f"(ECG_REQUEST_TIMEOUT_S) and was stopped after {exc}: the service "
                          "is overloaded or the record too long; retry later or send a shorter one.")
    except inference.NoBeatsFound:
        message = inference.no_beats_message(x, fs)
        abort(422, detail=message, errors={"signal_data": [message]})

    result["metadata"]["patient_id"] = body["patient_id"]
    unknown = g.get("unknown_fields")
    if unknown:  # a misspelt field (say "fs") must not pass unnoticed
        names = ", ".join(repr(name[:40]) for name in unknown[:5]) + (", ..." if len(unknown) > 5 else "")
        result["metadata"]["warnings"].append(f"unknown field(s) ignored: {names}")
    n_v = result["ventricular_beats"]
    current_app.extensions["ecg_metrics"].observe_beats(result["normal_beats"], n_v)
    g.log_fields.update(beats=result["total_beats"], ventricular_beats=n_v,
                        model_version=state.model.version)
    payload = {
        "prediction_id": str(uuid.uuid4()),
        "ecg_signal_id": str(uuid.uuid4()),
        **result,
        "processing_time_ms": round((time.perf_counter() - g.start) * 1000.0, 3),
        "created_at": datetime.now(timezone.utc).isoformat(),
    }
    # keep the contract's field order, metadata last
    payload["metadata"] = payload.pop("metadata")
    return current_app.response_class(jsonio.dumps_bytes(payload), status=201,
                                      mimetype="application/json")


def add_no_slash_rule(app):
    """/api/v1/predictions answers the POST itself: old clients' curl (no -L) gets the 201.

    A rule of its own rather than strict_slashes=False, with which werkzeug answers a
    GET on the slash-less path with 404 instead of 405. Not in the OpenAPI document
    (one path is enough there).
    """
    app.add_url_rule("/api/v1/predictions", endpoint="predictions.create_prediction",
                     methods=["POST"])
