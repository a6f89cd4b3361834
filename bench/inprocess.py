"""Part 1: the whole request path in one process, and its breakdown by stage.

The whole path is one WSGI call of the app, as a gunicorn worker makes it (JSON body -> webargs/marshmallow
validation -> resample/filter -> detect -> features -> ONNX -> decision -> JSON
response, with the request log and metrics hooks). The breakdown calls the same
functions one stage at a time; what the whole path takes beyond the sum of the
stages is Flask/werkzeug/webargs and the request hooks ("framework").
"""

import contextlib
import io
import os
import sys
import time
import uuid
from datetime import datetime, timezone

import numpy as np

from ecg import MODEL_FS
from ecg.decision import classify, in_cascade_band
from ecg.detect import detect_r_peaks, qrs_energy_envelope
from ecg.pipeline import extract_beats, network_rr, preprocess, upright_beat_inputs
from ecg.quality import beat_quality, flat_stretches, lead_on_runs, outside_flat_stretches
from service import create_app, inference, jsonio, schemas
from service import model as service_model

from .common import interleaved, log, stats_ms

STAGES = ("json_parse", "validation", "preprocess", "detect", "quality", "features", "onnx", "decision",
          "response")
STAGE_DOC = {
    "json_parse": "orjson.loads of the body",
    "validation": "marshmallow schema load (strict types, finite numbers -> float64 array)",
    "preprocess": "resample to 360 Hz + 0.5-40 Hz zero-phase band-pass",
    "detect": "R-peak detector (its own 5-20 Hz band-pass, envelope, adaptive threshold)",
    "quality": "each beat's signal quality (its own QRS envelope, local SNRs)",
    "features": "beat windows, amplitude scale, group templates, RR/QRS features",
    "onnx": "one batched ONNX Runtime call",
    "decision": "Platt calibration, threshold, RuleGuard",
    "response": "response dict (per-beat list) + orjson serialisation",
}
PREDICT_PATH = "/api/v1/predictions"


def make_app():
    # the production settings: INFO request log (sent to /dev/null while timing)
    return create_app()


def staged_request(model, body, schema, infer=None, times=None):
    """The view's work on ``body`` (bytes), one stage at a time; returns the response bytes.

    ``infer(windows, features) -> p_raw``: the network (default the ONNX session).
    ``times``: a dict stage -> list, appended the stage durations (s) when given.
    """
    infer = infer or model.p_v
    t0 = time.perf_counter()
    obj = jsonio.loads(body)
    t1 = time.perf_counter()
    req = schema.load(obj)
    t2 = time.perf_counter()
    x, fs = req["signal_data"], req["sampling_rate"]
    x360, filtered = preprocess(x, fs)
    t3 = time.perf_counter()
    envelope = qrs_energy_envelope(x360, MODEL_FS)
    flat = flat_stretches(x360, MODEL_FS)
    peaks = outside_flat_stretches(detect_r_peaks(x360, MODEL_FS, envelope), flat)
    t4 = time.perf_counter()
    quality = beat_quality(x360, peaks, MODEL_FS, env=envelope[2], flat=flat)
    tq = time.perf_counter()
    beats = upright_beat_inputs(filtered, peaks, fs, len(x), quality, model.preprocessing_version,
                                lead_on_runs(peaks, flat, MODEL_FS))
    t5 = time.perf_counter()
    p_raw = infer(beats.windows, beats.features)
    t6 = time.perf_counter()
    calls = classify(p_raw, beats.features, model.decision, req["apply_ruleguard"],
                     windows=beats.windows, groups=beats.groups, signals=beats.runs, quality=beats.quality,
                     qrs_sizes=inference.qrs_sizes(beats))
    t7 = time.perf_counter()
    result = inference.build_result(model, beats, calls, x, fs, req["derivation"], req["apply_ruleguard"])
    result["metadata"]["patient_id"] = req["patient_id"]
    payload = {"prediction_id": str(uuid.uuid4()), "ecg_signal_id": str(uuid.uuid4()), **result,
               "processing_time_ms": round((time.perf_counter() - t0) * 1000.0, 3),
               "created_at": datetime.now(timezone.utc).isoformat()}
    payload["metadata"] = payload.pop("metadata")
    out = jsonio.dumps_bytes(payload)
    t8 = time.perf_counter()
    if times is not None:
        for name, a, b in zip(STAGES, (t0, t1, t2, t3, t4, tq, t5, t6, t7), (t1, t2, t3, t4, tq, t5, t6, t7, t8)):
            times[name].append(b - a)
    return out


def cascade_sent(model, body, schema):
    """With a cascade model: how many of the request's beats the other members also ran on."""
    if model.rest is None:
        return None
    req = schema.load(jsonio.loads(body))
    beats = extract_beats(req["signal_data"], req["sampling_rate"], version=model.preprocessing_version)
    p_first = model._run(model.session, beats.windows, network_rr(beats.features, model.rr_width))
    return {"beats": len(p_first), "sent": int(np.sum(in_cascade_band(p_first, model.decision["cascade"]))),
            "members": model.card["onnx"]["cascade"]["rest"]["members"] + 1}


def check_same_answer(client, model, body, schema):
    """The staged path must answer what the service answers (ids and times aside)."""
    r = client.post(PREDICT_PATH, data=body, content_type="application/json")
    assert r.status_code == 201, (r.status_code, r.data[:300])
    a = jsonio.loads(r.data)
    b = jsonio.loads(staged_request(model, body, schema))
    for d in (a, b):
        for k in ("prediction_id", "ecg_signal_id", "processing_time_ms", "created_at"):
            d.pop(k)
    assert a == b, "the staged request path differs from the service's answer"
    return a


def wsgi_caller(app, body):
    """A callable that sends ``body`` through the app as gunicorn does: one WSGI call.

    The environ is what a gunicorn worker hands the app for this POST (no test-client
    machinery around it); returns the response bytes, asserting a 201.
    """
    base = {
        "REQUEST_METHOD": "POST", "PATH_INFO": PREDICT_PATH, "SCRIPT_NAME": "", "QUERY_STRING": "",
        "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "7860", "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1", "REMOTE_PORT": "50000", "HTTP_HOST": "127.0.0.1:7860",
        "CONTENT_TYPE": "application/json", "CONTENT_LENGTH": str(len(body)),
        "HTTP_USER_AGENT": "bench", "HTTP_ACCEPT": "*/*",
        "wsgi.version": (1, 0), "wsgi.url_scheme": "http", "wsgi.errors": sys.stderr,
        "wsgi.multithread": True, "wsgi.multiprocess": True, "wsgi.run_once": False,
    }
    status = []

    def start_response(s, headers, exc_info=None):
        status.append(s)

    def call():
        env = dict(base)
        env["wsgi.input"] = io.BytesIO(body)
        out = b"".join(app(env, start_response))
        assert status.pop().startswith("201"), out[:300]
        return out

    return call


def measure(body, n, label, app=None):
    """Whole path (one WSGI call) and staged path, alternated ``n`` times; stats per stage."""
    app = app or make_app()
    client = app.test_client()
    model = service_model.get_state(app).model
    schema = schemas.PredictionRequestSchema()
    with open(os.devnull, "w") as devnull, contextlib.redirect_stdout(devnull):
        answer = check_same_answer(client, model, body, schema)
        stage_times = {k: [] for k in STAGES}
        whole = wsgi_caller(app, body)

        runs = interleaved({"whole": whole,
                            "staged": lambda: staged_request(model, body, schema, times=stage_times)},
                           n, warmup=2)
    for k in STAGES:  # drop the warm-up calls' stage times
        stage_times[k] = stage_times[k][-n:]
    stages = {k: stats_ms(v) for k, v in stage_times.items()}
    whole_stats = stats_ms(runs["whole"])
    staged_sum = sum(s["median_ms"] for s in stages.values())
    slowest = max(stages, key=lambda k: stages[k]["median_ms"])
    out = {
        "label": label,
        "n_samples": answer["metadata"]["n_samples"],
        "beats": answer["total_beats"],
        "whole": whole_stats,
        "staged_total": stats_ms(runs["staged"]),
        "stages": stages,
        "stage_doc": STAGE_DOC,
        "framework_ms": whole_stats["median_ms"] - staged_sum,
        "slowest_stage": slowest,
        "cascade": cascade_sent(model, body, schema),
    }
    log(f"  {label}: whole median {whole_stats['median_ms']:.3f} ms p99 {whole_stats['p99_ms']:.3f} ms"
        f" ({answer['total_beats']} beats); slowest stage {slowest} "
        f"{stages[slowest]['median_ms']:.3f} ms")
    return out


def profile(body, n, path, top=25):
    """cProfile of ``n`` whole requests; writes the summary to ``path``, returns the top rows by own time."""
    import cProfile
    import io
    import pstats

    app = make_app()
    call = wsgi_caller(app, body)
    with open(os.devnull, "w") as devnull, contextlib.redirect_stdout(devnull):
        for _ in range(3):
            call()
        prof = cProfile.Profile()
        prof.enable()
        for _ in range(n):
            call()
        prof.disable()
    s = io.StringIO()
    st = pstats.Stats(prof, stream=s)
    st.sort_stats("tottime").print_stats(top)
    st.sort_stats("cumulative").print_stats(top)
    path.write_text(s.getvalue())
    rows = []
    for (file, line, func), (_, nc, tt, ct, _) in sorted(st.stats.items(), key=lambda kv: -kv[1][2])[:top]:
        rows.append({"function": f"{os.path.relpath(file) if file.startswith('/') else file}:{line}({func})",
                     "calls_per_request": nc / n, "tottime_ms_per_request": 1000.0 * tt / n,
                     "cumtime_ms_per_request": 1000.0 * ct / n})
    return rows


def stage_table(res):
    return {k: round(v["median_ms"], 4) for k, v in res["stages"].items()}


if __name__ == "__main__":  # quick look: python -m bench.inprocess
    from .common import payload_10s

    body, _ = payload_10s()
    r = measure(body, 200, "10 s")
    print(stage_table(r), r["whole"], r["framework_ms"])
    np.set_printoptions(precision=3)
