"""POST /api/v1/recordings (with or without the trailing slash): an EDF file in, a Holter report out."""

import time
import uuid

from flask import current_app, g, request
from flask_smorest import abort

from . import holter, holter_report, jsonio, model, uploads
from .api import Blueprint
from .edf import EdfError, open_channel
from .model import ModelUnavailable
from .recording_schemas import REQUEST_BODY, RecordingQuerySchema, RecordingReportSchema
from .schemas import ErrorSchema

blp = Blueprint("recordings", __name__, url_prefix="/api/v1/recordings",
                description="Whole recordings (EDF/EDF+): every beat and the Holter report")


def settings(config):
    """``service.holter.Settings`` from the app's config (service/config.py)."""
    return holter.Settings(processes=config["RECORDING_PROCESSES"], chunk_s=config["RECORDING_CHUNK_S"],
                           timeout_s=config["RECORDING_TIMEOUT_S"] or None)


def wants_csv():
    """True when the client prefers the CSV beat table to the JSON report."""
    best = request.accept_mimetypes.best_match(["application/json", "text/csv"])
    return best == "text/csv"


@blp.route("/", methods=["POST"])
@blp.arguments(RecordingQuerySchema(), location="query", as_kwargs=True)
@blp.alt_response(400, schema=ErrorSchema, description="A form without a `file` part, or a malformed form")
@blp.alt_response(401, schema=ErrorSchema,
                  description="Missing or wrong X-API-Key (only when ECG_API_KEY is set)")
@blp.alt_response(413, schema=ErrorSchema, description="File over ECG_MAX_RECORDING_MB")
@blp.alt_response(415, schema=ErrorSchema, description="Neither application/octet-stream nor multipart/form-data")
@blp.alt_response(422, schema=ErrorSchema, description="Not an EDF file, truncated, header not matching the file, no "
                  "such channel, a rate outside 100-4096 Hz, an all-zero or saturated channel, an "
                  "EDF+D whose data records overlap, an empty file, or no heartbeat found")
@blp.alt_response(503, schema=ErrorSchema,
                  description="No usable model loaded, or the analysis ran past ECG_RECORDING_TIMEOUT_S")
# the 201 in full here: flask-smorest's response() documents one content type
@blp.doc(requestBody=REQUEST_BODY, security=[{}, {"ApiKey": []}],
         responses={"201": {"description": "The Holter report, or with `Accept: text/csv` the beat table",
                            "content": {"application/json": {"schema": RecordingReportSchema},
                                        "text/csv": {"schema": {"type": "string"}}}}})
def create_recording(channel, include_beats, apply_ruleguard, pacemaker):
    """Analyse a whole EDF/EDF+ recording: every beat N or V, and the Holter report

    The file is streamed to disk and read a slice at a time. The report counts PVCs,
    couplets, triplets, ventricular runs (NSVT), bigeminy and trigeminy, with hourly
    figures; docs/HOLTER.md defines each. Every beat is the one `POST /api/v1/predictions`
    would give for the same signal.
    """
    state = model.get_state(current_app)
    if not state.loaded:
        abort(503, detail=f"No usable model is loaded: {state.reason}")
    config = current_app.config
    with uploads.received_file(config["RECORDING_TMP_DIR"], config["MAX_RECORDING_BYTES"]) as path:
        g.log_fields = {"recording_bytes": path.stat().st_size}
        result, ch = _analyse(state.model, path, channel, apply_ruleguard, pacemaker)
    g.log_fields.update(beats=len(result["is_v"]), ventricular_beats=int(result["is_v"].sum()),
                        processes=result["processes"], model_version=state.model.version)
    current_app.extensions["ecg_metrics"].observe_beats(len(result["is_v"]) - int(result["is_v"].sum()),
                                                        int(result["is_v"].sum()))
    if wants_csv():
        return current_app.response_class(holter_report.beats_csv(result), status=201, mimetype="text/csv")
    payload = {"recording_id": str(uuid.uuid4()),
               **holter_report.report_fields(ch, result, state.model, include_beats)}
    payload["processing_time_ms"] = round((time.perf_counter() - g.start) * 1000.0, 3)
    return current_app.response_class(jsonio.dumps_bytes(payload), status=201, mimetype="application/json")


def _analyse(loaded, path, channel, apply_ruleguard, pacemaker):
    """``(result, channel)`` of ``service.holter.analyse``; every failure as a 4xx/5xx with a detail."""
    config = current_app.config
    try:
        ch = open_channel(path, channel)
        g.log_fields.update(channel=ch.index, sampling_rate=ch.fs, duration_s=round(ch.duration_s, 1))
        return holter.analyse(loaded, config["MODEL_DIR"], ch, settings(config), apply_ruleguard, pacemaker), ch
    except EdfError as exc:
        abort(422, detail=str(exc))
    except holter.NoBeats:
        abort(422, detail=f"No heartbeat could be detected in channel {ch.index} ({ch.label!r}) "
                          "(flat line, or no QRS complex found).")
    except holter.Overtime as exc:
        abort(503, detail=f"The analysis ran past the {config['RECORDING_TIMEOUT_S']:g} s limit "
                          f"(ECG_RECORDING_TIMEOUT_S) and was stopped in {exc}: retry later.")
    except ModelUnavailable as exc:
        abort(503, detail=str(exc))


def add_no_slash_rule(app):
    """/api/v1/recordings answers the POST itself (no redirect), as /api/v1/predictions does."""
    app.add_url_rule("/api/v1/recordings", endpoint="recordings.create_recording", methods=["POST"])


def init_app(app):
    """Remove uploads a killed worker left behind (service.uploads)."""
    uploads.sweep(app.config["RECORDING_TMP_DIR"])
