"""Hostile and odd inputs, in-process: each gets its documented answer, never a 5xx.

The cases and their answers live in bench/hostile.py (docs/RELIABILITY.md has the table);
the same cases go to a real gunicorn in tests/test_reliability_gunicorn.py.
"""

import json

import pytest

from bench.hostile import STRIP, hostile_cases
from service import create_app
from tests.service_helpers import MODEL_DIR, PAYLOAD, PREDICT

CASES = hostile_cases()


@pytest.fixture(scope="module")
def client():
    return create_app({"TESTING": True, "MODEL_DIR": str(MODEL_DIR)}).test_client()


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_each_hostile_input_gets_its_documented_answer(client, case):
    r = client.post(PREDICT, data=case.body, content_type=case.content_type)
    body = r.get_json()
    assert r.status_code == case.status, body
    if case.status >= 400:
        assert isinstance(body["detail"], str) and body["detail"]
        assert case.warning in body["detail"]
    else:
        warnings = body["metadata"]["warnings"]
        if case.warning:
            assert any(case.warning in w for w in warnings), warnings
        assert body["total_beats"] == len(body["beat_predictions"]) >= 1


def test_a_clean_strip_gets_no_quality_warning(client):
    # the warnings above must come from the odd inputs, not from any signal
    r = client.post(PREDICT, json=PAYLOAD)
    assert r.status_code == 201 and r.get_json()["metadata"]["warnings"] == []


def test_unknown_field_warning_is_bounded(client):
    # 50 long unknown names: the warning names a few, truncated, not the whole body back
    body = dict(PAYLOAD, **{f"field_{i}_" + "x" * 1000: i for i in range(50)})
    r = client.post(PREDICT, json=body)
    warning = next(w for w in r.get_json()["metadata"]["warnings"] if "unknown" in w)
    assert r.status_code == 201 and len(warning) < 400 and warning.endswith("...")


def test_more_samples_than_the_limit_is_422_before_any_work():
    app = create_app({"TESTING": True, "MODEL_DIR": str(MODEL_DIR), "MAX_SAMPLES": 3000})
    r = app.test_client().post(PREDICT, json=PAYLOAD)  # 3,600 samples
    assert r.status_code == 422
    assert "At most 3000 samples" in r.get_json()["errors"]["signal_data"][0]


def test_a_prediction_past_its_time_limit_is_a_clear_503():
    # a budget no prediction can meet: the answer is a JSON 503 saying why, not a hang
    app = create_app({"TESTING": True, "MODEL_DIR": str(MODEL_DIR), "REQUEST_TIMEOUT_S": 1e-9})
    r = app.test_client().post(PREDICT, json=PAYLOAD)
    body = r.get_json()
    assert r.status_code == 503 and "ECG_REQUEST_TIMEOUT_S" in body["detail"]
    assert "stopped after beat detection" in body["detail"]


def test_thirty_minutes_at_1000_hz_is_within_the_limits(client):
    # the largest record the defaults take: 1.8 M samples, ~14 MB of JSON, under 32 MB
    x = [round(v, 3) for v in STRIP.tolist()] * 500  # 3,600 x 500 = 1.8 M samples
    data = json.dumps({"signal_data": x, "sampling_rate": 1000}).encode()
    assert len(data) < 32 * 1024 * 1024
    r = client.post(PREDICT, data=data, content_type="application/json")
    assert r.status_code == 201 and r.get_json()["metadata"]["n_samples"] == 1_800_000
