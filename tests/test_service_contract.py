"""The HTTP contract (../shared/CONTRACT.md), success side, through Flask's test client."""

import json
import uuid
from datetime import datetime, timedelta, timezone

import numpy as np
import pytest
from scipy.signal import resample_poly

from service import schemas
from service.model import ModelState
from tests.service_helpers import MODEL_DIR, PAYLOAD, PREDICT, app, client, payload  # noqa: F401

BEAT_FIELDS = {"beat_index", "position_sample", "arrhythmia_type", "confidence",
               "rr_previous", "rr_next", "qrs_width_ms"}
EXTRA_BEAT_FIELDS = {"signal_quality"}  # additive: the contract's fields keep their meaning
TOP_FIELDS = {"prediction_id", "ecg_signal_id", "overall_arrhythmia_type", "overall_confidence",
              "risk_level", "threshold_used", "total_beats", "normal_beats", "ventricular_beats",
              "beat_predictions", "processing_time_ms", "created_at", "metadata"}


def served_card():
    return json.loads((MODEL_DIR / "model.json").read_text())


def _is_number(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool)


@pytest.fixture
def answer(client):
    r = client.post(PREDICT, json=PAYLOAD)
    assert r.status_code == 201, r.get_json()
    return r.get_json()


@pytest.mark.parametrize("path", [PREDICT, PREDICT + "/"])
def test_both_paths_answer_201_directly(client, path):
    r = client.post(path, json=PAYLOAD)  # the test client does not follow redirects
    assert r.status_code == 201
    assert r.headers["Content-Type"] == "application/json"
    assert r.get_json()["total_beats"] > 0


def test_response_has_exactly_the_contract_fields_with_their_types(answer, app):
    assert set(answer) == TOP_FIELDS
    uuid.UUID(answer["prediction_id"]), uuid.UUID(answer["ecg_signal_id"])
    assert answer["prediction_id"] != answer["ecg_signal_id"]
    assert answer["overall_arrhythmia_type"] in ("N", "V")
    assert _is_number(answer["overall_confidence"]) and 0 <= answer["overall_confidence"] <= 1
    assert answer["risk_level"] in ("LOW", "MEDIUM", "HIGH")
    card_threshold = app.extensions["ecg_model"].model.card["decision"]["threshold"]
    assert answer["threshold_used"] == card_threshold and 0 <= card_threshold <= 1
    for key in ("total_beats", "normal_beats", "ventricular_beats"):
        assert type(answer[key]) is int
    assert answer["total_beats"] == answer["normal_beats"] + answer["ventricular_beats"]
    assert answer["total_beats"] == len(answer["beat_predictions"])
    assert _is_number(answer["processing_time_ms"]) and answer["processing_time_ms"] > 0
    created = datetime.fromisoformat(answer["created_at"])
    assert created.utcoffset() == timedelta(0)
    assert abs(datetime.now(timezone.utc) - created) < timedelta(minutes=1)


def test_every_beat_has_the_contract_fields_and_types(answer):
    beats = answer["beat_predictions"]
    assert [b["beat_index"] for b in beats] == list(range(len(beats)))
    positions = [b["position_sample"] for b in beats]
    assert positions == sorted(positions) and len(set(positions)) == len(positions)
    assert 0 <= positions[0] and positions[-1] < len(PAYLOAD["signal_data"])
    for b in beats:
        assert set(b) == BEAT_FIELDS | EXTRA_BEAT_FIELDS
        assert type(b["position_sample"]) is int
        assert b["arrhythmia_type"] in ("N", "V")
        assert _is_number(b["confidence"]) and 0 <= b["confidence"] <= 1
        assert _is_number(b["qrs_width_ms"]) and 20 <= b["qrs_width_ms"] <= 300
    # no invented RR: null exactly at the ends, seconds elsewhere, consistent with positions
    assert beats[0]["rr_previous"] is None and beats[-1]["rr_next"] is None
    for prev, nxt in zip(beats, beats[1:]):
        assert prev["rr_next"] == nxt["rr_previous"]
        assert nxt["rr_previous"] == pytest.approx((nxt["position_sample"] - prev["position_sample"]) / 360, abs=0.01)


def test_payload_strip_finds_its_three_reference_v_beats(answer):
    # MIT-BIH 200 from 130 s: reference V beats at samples 227, 744 and 1243 of the strip
    v_positions = [b["position_sample"] for b in answer["beat_predictions"] if b["arrhythmia_type"] == "V"]
    assert answer["overall_arrhythmia_type"] == "V"
    for ref in (227, 744, 1243):
        assert any(abs(p - ref) <= 18 for p in v_positions), (ref, v_positions)  # 50 ms
    assert 12 <= answer["total_beats"] <= 16


def test_overall_call_follows_the_documented_definitions(answer):
    beats = answer["beat_predictions"]
    v_conf = [b["confidence"] for b in beats if b["arrhythmia_type"] == "V"]
    assert answer["ventricular_beats"] == len(v_conf)
    if v_conf:
        assert answer["overall_arrhythmia_type"] == "V"
        assert answer["overall_confidence"] == pytest.approx(max(v_conf), abs=1e-6)
    else:
        assert answer["overall_arrhythmia_type"] == "N"


def test_metadata_keeps_the_old_keys_and_adds_the_useful_ones(answer):
    meta = answer["metadata"]
    for key in ("total_beats", "normal_beats", "ventricular_beats"):
        assert meta[key] == answer[key]
    assert isinstance(meta["ruleguard_applied"], bool)
    readable = answer["total_beats"] - meta["signal_quality"]["unreadable"]
    burden = 100 * answer["ventricular_beats"] / readable
    assert meta["pvc_burden_percent"] == pytest.approx(burden, abs=0.01)
    assert 40 <= meta["heart_rate_bpm"] <= 120
    assert meta["sampling_rate"] == 360 and meta["resampled"] is False
    assert meta["model_version"] and meta["preprocessing_version"] == served_card()["preprocessing"]["version"]
    assert meta["patient_id"] == PAYLOAD["patient_id"]
    assert meta["derivation"] == "MLII" and meta["warnings"] == []


def test_a_lead_the_model_was_not_trained_on_is_accepted_and_flagged(client):
    trained = served_card()["training"].get("leads", ["MLII"])
    r = client.post(PREDICT, json=payload(derivation="aVR"))
    assert r.status_code == 201
    warnings = r.get_json()["metadata"]["warnings"]
    assert any("aVR" in w and "MLII" in w for w in warnings)
    # MIT-BIH's second leads are trained leads when the card says the network saw them
    r = client.post(PREDICT, json=payload(derivation="V1"))
    flagged = any("V1" in w for w in r.get_json()["metadata"]["warnings"])
    assert flagged == ("other" not in trained)


def test_defaults_apply_when_only_signal_data_is_sent(client):
    r = client.post(PREDICT, json={"signal_data": PAYLOAD["signal_data"]})
    assert r.status_code == 201
    meta = r.get_json()["metadata"]
    assert meta["sampling_rate"] == 360 and meta["derivation"] == "MLII"
    assert meta["patient_id"] is None and meta["ruleguard_requested"] is True


def test_unknown_fields_are_ignored_like_the_old_service(client):
    r = client.post(PREDICT, json=payload(client_version="1.2", lead_count=1))
    assert r.status_code == 201


@pytest.mark.parametrize("fs", [250, 500, 1000, 128])
def test_resampled_requests_give_positions_in_the_callers_index(client, fs):
    x360 = np.asarray(PAYLOAD["signal_data"])
    x = resample_poly(x360, fs, 360)
    base = client.post(PREDICT, json=PAYLOAD).get_json()["beat_predictions"]
    r = client.post(PREDICT, json=payload(signal_data=np.round(x, 4).tolist(), sampling_rate=fs))
    assert r.status_code == 201
    body = r.get_json()
    assert body["metadata"]["sampling_rate"] == fs and body["metadata"]["resampled"] is True
    got = [b["position_sample"] for b in body["beat_predictions"]]
    want = [b["position_sample"] * fs / 360 for b in base]
    assert len(got) == len(want)
    assert np.max(np.abs(np.array(got) - np.array(want))) <= 0.02 * fs  # 20 ms
    assert got[-1] < len(x)
    # RR stays in seconds whatever the rate
    assert body["beat_predictions"][1]["rr_previous"] == pytest.approx(base[1]["rr_previous"], abs=0.02)


def test_synthetic_strip_at_500_hz_puts_beats_where_they_are(client):
    x = schemas.example_signal(fs=500)
    r = client.post(PREDICT, json={"signal_data": x, "sampling_rate": 500})
    beats = r.get_json()["beat_predictions"]
    normal_r_s = (0.4, 1.2, 2.0, 2.8, 3.6, 5.2, 6.0, 6.8, 7.6, 8.4, 9.2)
    for t in normal_r_s:
        # the detector marks the QRS energy centre, within ~15 ms of the synthetic R top;
        # an index left at 360 Hz would be off by hundreds of samples
        assert min(abs(b["position_sample"] - t * 500) for b in beats) <= 12  # 24 ms


class _FixedModel:
    """A stand-in model whose calibrated V probabilities are chosen by the test."""

    name, version, preprocessing_version, threshold = "fixed", "test", "nv-pre-1", 0.5
    trained_leads = frozenset({"MLII"})
    decision = {"calibration": {"method": "platt", "a": 1.0, "b": 0.0}, "threshold": 0.5,
                "ruleguard": {"enabled": False}}

    def __init__(self, p_v_of_first, rest=0.01):
        self.first, self.rest = p_v_of_first, rest

    def p_v(self, windows, features):
        p = np.full(len(windows), self.rest, np.float32)
        p[0] = self.first
        return p

    def summary(self):
        return {"name": self.name, "version": self.version, "preprocessing_version": "nv-pre-1",
                "mlflow_run_id": None, "threshold": 0.5, "created_at": None, "metrics": {}}


@pytest.mark.parametrize("p_first, overall, risk, conf", [
    (0.95, "V", "HIGH", 0.95),
    (0.85, "V", "HIGH", 0.85),
    (0.75, "V", "MEDIUM", 0.75),
    (0.70, "V", "MEDIUM", 0.70),
    (0.60, "V", "LOW", 0.60),
    (0.30, "N", "LOW", 0.70),  # N: 1 - the highest p_v
])
def test_risk_level_and_overall_confidence_rules(app, p_first, overall, risk, conf):
    app.extensions["ecg_model"] = ModelState(model=_FixedModel(p_first))
    body = app.test_client().post(PREDICT, json=PAYLOAD).get_json()
    assert body["overall_arrhythmia_type"] == overall
    assert body["risk_level"] == risk
    assert body["overall_confidence"] == pytest.approx(conf, abs=1e-5)
    first = body["beat_predictions"][0]
    # confidence is the probability of the predicted class
    assert first["confidence"] == pytest.approx(p_first if overall == "V" else 1 - p_first, abs=1e-5)
    assert body["beat_predictions"][1]["confidence"] == pytest.approx(0.99, abs=1e-5)


def test_ruleguard_flag_follows_request_and_card(app):
    model = _FixedModel(0.95)
    model.decision = dict(model.decision, ruleguard={"enabled": True, "rr_tolerance": 10.0,
                                                     "max_qrs_width_s": 1.0})
    app.extensions["ecg_model"] = ModelState(model=model)
    c = app.test_client()
    on = c.post(PREDICT, json=payload(apply_ruleguard=True)).get_json()
    off = c.post(PREDICT, json=payload(apply_ruleguard=False)).get_json()
    # a guard this loose turns every V back to N; asked not to apply it, the V stays
    assert on["metadata"]["ruleguard_applied"] is True and on["ventricular_beats"] == 0
    assert on["metadata"]["ruleguard_flipped_beats"] == 1
    assert off["metadata"]["ruleguard_applied"] is False and off["ventricular_beats"] == 1


def test_root_answers_the_contract_shape(client):
    r = client.get("/")
    body = r.get_json()
    assert r.status_code == 200
    assert body["docs"] == "/docs" and body["health"] == "/health"
    assert isinstance(body["name"], str) and isinstance(body["version"], str)


def test_health_is_healthy_with_the_model(client):
    body = client.get("/health").get_json()
    assert body["status"] == "healthy" and body["model_loaded"] is True
    assert isinstance(body["version"], str)
    assert datetime.fromisoformat(body["timestamp"]).utcoffset() == timedelta(0)
    assert body["model"]["preprocessing_version"] == served_card()["preprocessing"]["version"]
    # the pooling, when the card has one, with the DS2 figures promotion measured with it
    # ("metrics" are the training run's, made without it)
    pooling = served_card()["decision"].get("pooling")
    if pooling:
        assert body["model"]["pooling"]["min_corr"] == pooling["min_corr"]
        assert body["model"]["pooling"]["ds2_figures"]["test_f1_V"] > 0
    else:
        assert body["model"]["pooling"] is None


def test_every_response_carries_a_request_id_and_keeps_a_sane_client_one(client):
    for r in (client.get("/health"), client.get("/nowhere"), client.post(PREDICT, json={})):
        assert len(r.headers["X-Request-ID"]) >= 16
    assert client.get("/health", headers={"X-Request-ID": "abc-123"}).headers["X-Request-ID"] == "abc-123"
    odd = client.get("/health", headers={"X-Request-ID": "x" * 500}).headers["X-Request-ID"]
    assert odd != "x" * 500


def test_cors_allows_browser_clients(client):
    r = client.post(PREDICT, json=PAYLOAD, headers={"Origin": "https://example.org"})
    assert r.headers["Access-Control-Allow-Origin"] in ("*", "https://example.org")


def test_one_json_log_line_per_request_without_the_signal(client, capsys):
    capsys.readouterr()
    r = client.post(PREDICT, json=PAYLOAD)
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.strip()]
    request_lines = [e for e in lines if e.get("logger") == "service.request"]
    assert len(request_lines) == 1
    entry = request_lines[0]
    assert entry["request_id"] == r.headers["X-Request-ID"]
    assert entry["status"] == 201 and entry["beats"] == r.get_json()["total_beats"]
    text = json.dumps(entry)
    assert PAYLOAD["patient_id"] not in text and "signal_data" not in text
    assert len(text) < 1000  # the strip alone is 22 kB of JSON


def test_metrics_count_requests_beats_and_name_the_model(client):
    body = client.post(PREDICT, json=PAYLOAD).get_json()
    client.get("/nowhere")
    text = client.get("/metrics").get_data(as_text=True)
    assert 'ecg_http_requests_total{method="POST",route="/api/v1/predictions",status="201"} 1.0' in text
    assert 'route="<unmatched>",status="404"' in text
    assert f'ecg_beats_total{{arrhythmia_type="V"}} {float(body["ventricular_beats"])}' in text
    assert f'ecg_beats_total{{arrhythmia_type="N"}} {float(body["normal_beats"])}' in text
    assert "ecg_http_request_duration_seconds_bucket" in text
    assert f'model_version="{body["metadata"]["model_version"]}"' in text
    assert "ecg_model_loaded 1.0" in text


def test_openapi_is_generated_from_the_request_schema(client):
    spec = client.get("/openapi.json").get_json()
    assert spec["openapi"].startswith("3.")
    op = spec["paths"]["/api/v1/predictions/"]["post"]
    assert "201" in op["responses"] and "422" in op["responses"]
    assert op["security"] == [{}, {"ApiKey": []}]  # from blp.doc, which keeps only its document
    req = spec["components"]["schemas"]["PredictionRequest"]
    assert req["required"] == ["signal_data"]
    props = req["properties"]
    assert props["sampling_rate"]["type"] == "integer"
    assert props["sampling_rate"]["minimum"] == 100 and props["sampling_rate"]["maximum"] == 1000
    assert props["signal_data"]["type"] == "array" and props["signal_data"]["items"]["type"] == "number"
    assert props["apply_ruleguard"]["type"] == "boolean"
    assert props["pacemaker"]["type"] == "boolean" and props["pacemaker"]["default"] is False
    beat = spec["components"]["schemas"]["BeatPrediction"]["properties"]
    assert "predicted class is right" in beat["confidence"]["description"]


def test_openapi_example_is_a_request_that_succeeds(client):
    spec = client.get("/openapi.json").get_json()
    example = spec["paths"]["/api/v1/predictions/"]["post"]["requestBody"]["content"]["application/json"]["example"]
    r = client.post(PREDICT, json=example)
    assert r.status_code == 201 and r.get_json()["ventricular_beats"] >= 1


@pytest.mark.parametrize("page, asset", [("/docs", "/static/swagger-ui/swagger-ui-bundle.js"),
                                         ("/redoc", "/static/redoc/redoc.standalone.js")])
def test_doc_pages_load_their_assets_from_this_server(client, page, asset):
    html = client.get(page).get_data(as_text=True)
    assert asset in html and "/openapi.json" in html
    assert "http://" not in html and "https://" not in html  # no CDN
    r = client.get(asset)
    assert r.status_code == 200 and len(r.data) > 100_000


def test_processing_time_covers_the_work(client):
    body = client.post(PREDICT, json=PAYLOAD).get_json()
    assert 0 < body["processing_time_ms"] < 5000
