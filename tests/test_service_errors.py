"""Bad input: a clear 4xx JSON with ``detail`` (and per-field ``errors``), never a 5xx,
and the app keeps serving afterwards."""

import numpy as np
import pytest

from tests.service_helpers import PAYLOAD, PREDICT, app, client, payload  # noqa: F401

SIGNAL = PAYLOAD["signal_data"]


def _assert_error(r, status):
    assert r.status_code == status, (r.status_code, r.get_data(as_text=True)[:500])
    assert r.headers["Content-Type"] == "application/json"
    body = r.get_json()
    assert isinstance(body["detail"], str) and body["detail"]
    assert "Traceback" not in r.get_data(as_text=True)
    return body


def _raw(client, text, content_type="application/json"):
    return client.post(PREDICT, data=text, content_type=content_type)


@pytest.mark.parametrize("text", [
    "{not json", '{"signal_data": [1, 2,]}', "[1, 2", '{"signal_data": [1e400]}', "\xff\xfe",
])
def test_malformed_json_is_400(client, text):
    _assert_error(_raw(client, text), 400)


def test_empty_body_is_400(client):
    body = _assert_error(_raw(client, ""), 400)
    assert "empty" in body["detail"]


@pytest.mark.parametrize("token", ["NaN", "Infinity", "-Infinity"])
def test_nan_and_infinity_tokens_are_refused_with_a_clear_detail(client, token):
    text = '{"signal_data": [' + ", ".join(map(str, SIGNAL[:10])) + f", {token}]" + "}"
    body = _assert_error(_raw(client, text), 400)
    assert "NaN" in body["detail"] and "Infinity" in body["detail"]


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", "application/xml"])
def test_wrong_content_type_is_415(client, content_type):
    import json

    body = _assert_error(_raw(client, json.dumps(PAYLOAD), content_type), 415)
    assert "application/json" in body["detail"]


def test_missing_content_type_is_415(client):
    _assert_error(client.post(PREDICT, data=b'{"signal_data": []}'), 415)


def test_json_with_charset_is_fine(client):
    import json

    r = _raw(client, json.dumps(PAYLOAD), "application/json; charset=utf-8")
    assert r.status_code == 201


def _field_error(client, body, field):
    err = _assert_error(client.post(PREDICT, json=body), 422)
    assert field in err["errors"], err
    assert all(isinstance(m, str) for m in err["errors"][field])
    assert field in err["detail"]
    return err


@pytest.mark.parametrize("value", ["360", True, False, 360.5, 360.0, None, [360], {"hz": 360}])
def test_sampling_rate_must_be_a_json_integer(client, value):
    _field_error(client, payload(sampling_rate=value), "sampling_rate")


@pytest.mark.parametrize("value", [99, 1001, 0, -360, 10**6])
def test_sampling_rate_outside_100_to_1000_is_422(client, value):
    signal = SIGNAL * 3  # long enough in seconds at any of these rates
    _field_error(client, payload(signal_data=signal, sampling_rate=value), "sampling_rate")


@pytest.mark.parametrize("fs", [100, 1000])
def test_sampling_rate_bounds_are_inclusive(client, fs):
    x = np.interp(np.arange(int(10 * fs)) / fs, np.arange(3600) / 360, SIGNAL)
    r = client.post(PREDICT, json=payload(signal_data=np.round(x, 4).tolist(), sampling_rate=fs))
    assert r.status_code == 201


@pytest.mark.parametrize("signal, why", [
    (SIGNAL[:10] + ["0.5"] + SIGNAL[10:], "a numeric string"),
    (SIGNAL[:10] + [None] + SIGNAL[10:], "null"),
    (SIGNAL[:10] + [True] + SIGNAL[10:], "a boolean"),
    (SIGNAL[:10] + [[0.1, 0.2]] + SIGNAL[10:], "a nested array"),
    ([[v] for v in SIGNAL], "an array of arrays"),
    (SIGNAL[:10] + [{"v": 1}] + SIGNAL[10:], "an object"),
    (SIGNAL[:10] + [1e300] + SIGNAL[10:], "an absurd magnitude"),
    ("0.1, 0.2, 0.3", "a string"),
    ({"0": 0.1}, "an object"),
    (None, "null"),
    (3.5, "a number"),
])
def test_signal_data_must_be_an_array_of_finite_numbers(client, signal, why):
    err = _field_error(client, payload(signal_data=signal), "signal_data")
    if isinstance(signal, list) and len(signal) > 10 and not isinstance(signal[0], list):
        assert "10" in err["errors"]["signal_data"][0]  # says which element


def test_missing_signal_data_is_422(client):
    _field_error(client, {"sampling_rate": 360}, "signal_data")


@pytest.mark.parametrize("n", [0, 1, 359])
def test_fewer_than_360_samples_is_422(client, n):
    err = _field_error(client, payload(signal_data=SIGNAL[:n], sampling_rate=100), "signal_data")
    assert "360" in err["errors"]["signal_data"][0]


def test_under_5_seconds_is_422_even_with_enough_samples(client):
    # 4000 samples at 1000 Hz: over 360 samples but 4 s
    x = np.interp(np.arange(4000) / 1000, np.arange(3600) / 360, SIGNAL).round(4).tolist()
    err = _field_error(client, payload(signal_data=x, sampling_rate=1000), "signal_data")
    assert "5 s" in err["errors"]["signal_data"][0]


def test_exactly_5_seconds_is_enough(client):
    r = client.post(PREDICT, json=payload(signal_data=SIGNAL[:1800]))
    assert r.status_code == 201


@pytest.mark.parametrize("field, value", [
    ("apply_ruleguard", "true"), ("apply_ruleguard", 1), ("apply_ruleguard", None),
    ("pacemaker", "yes"), ("pacemaker", 1), ("pacemaker", None),
    ("derivation", 2), ("derivation", None), ("derivation", ""), ("derivation", ["MLII"]),
    ("patient_id", 42), ("patient_id", {"id": 1}), ("patient_id", "p" * 1000),
])
def test_other_fields_are_strictly_typed(client, field, value):
    _field_error(client, payload(**{field: value}), field)


def test_patient_id_may_be_null(client):
    assert client.post(PREDICT, json=payload(patient_id=None)).status_code == 201


@pytest.mark.parametrize("body", [[1, 2, 3], "signal", 42, None])
def test_a_body_that_is_not_an_object_is_422(client, body):
    import json

    err = _assert_error(_raw(client, json.dumps(body)), 422)
    assert "body" in err["detail"]


def test_several_bad_fields_are_all_reported(client):
    err = _assert_error(client.post(PREDICT, json={"signal_data": "x", "sampling_rate": "360",
                                                   "apply_ruleguard": "no"}), 422)
    assert {"signal_data", "sampling_rate", "apply_ruleguard"} <= set(err["errors"])


@pytest.mark.parametrize("name, signal", [
    ("flat zero", [0.0] * 3600),
    ("flat offset", [1.234] * 3600),
    ("tiny noise", (np.random.default_rng(0).standard_normal(3600) * 1e-4).tolist()),
])
def test_no_detectable_beat_is_422_saying_so(client, name, signal):
    err = _assert_error(client.post(PREDICT, json=payload(signal_data=signal)), 422)
    assert "no heartbeat" in err["detail"].lower() and "flat line" in err["detail"]
    assert "signal_data" in err["errors"]
    assert ("millivolts" in err["detail"]) == (name == "tiny noise")


def test_a_lead_sent_in_volts_is_422_saying_the_unit(client, record_119):
    volts = (record_119.signal[:3600] / 1000.0).tolist()
    err = _assert_error(client.post(PREDICT, json=payload(signal_data=volts)), 422)
    assert "millivolts" in err["detail"] and "multiplied by 1000" in err["detail"]


def test_body_over_the_limit_is_413():
    from service import create_app

    small = create_app({"TESTING": True, "MAX_CONTENT_LENGTH": 10_000})
    err = _assert_error(small.test_client().post(PREDICT, json=PAYLOAD), 413)
    assert "limit" in err["detail"]


def test_chunked_body_over_the_limit_is_413_not_a_truncated_400():
    import io
    import json

    from werkzeug.test import EnvironBuilder, run_wsgi_app

    from service import create_app

    small = create_app({"TESTING": True, "MAX_CONTENT_LENGTH": 10_000})
    data = json.dumps(PAYLOAD).encode()
    environ = EnvironBuilder(path=PREDICT, method="POST", input_stream=io.BytesIO(data),
                             content_type="application/json").get_environ()
    # no Content-Length, a server that terminates the stream: what gunicorn gives for chunked
    environ.pop("CONTENT_LENGTH", None)
    environ["wsgi.input_terminated"] = True
    app_iter, status, headers = run_wsgi_app(small, environ, buffered=True)
    assert status.startswith("413")
    assert "limit" in json.loads(b"".join(app_iter))["detail"]


def test_default_limit_fits_a_30_minute_record_at_360_hz(app):
    import json

    body = json.dumps({"signal_data": [-1.2345] * (30 * 60 * 360)})  # ~5 decimals per sample
    assert app.config["MAX_CONTENT_LENGTH"] > len(body) * 1.5


def test_unknown_path_is_json_404(client):
    body = _assert_error(client.get("/api/v2/whatever"), 404)
    assert "/api/v2/whatever" in body["detail"]


@pytest.mark.parametrize("method, path", [("GET", PREDICT), ("GET", PREDICT + "/"), ("PUT", PREDICT),
                                          ("DELETE", PREDICT + "/"), ("POST", "/health")])
def test_wrong_method_is_json_405_with_allow(client, method, path):
    body = _assert_error(client.open(path, method=method), 405)
    assert method in body["detail"]
    assert client.open(path, method=method).headers.get("Allow")


def test_a_server_fault_is_json_500_without_a_trace(app, monkeypatch):
    from service import inference

    def boom(*args, **kwargs):
        raise RuntimeError("secret internals")

    monkeypatch.setattr(inference, "predict", boom)
    app.config["PROPAGATE_EXCEPTIONS"] = False  # as in production
    r = app.test_client().post(PREDICT, json=PAYLOAD)
    body = _assert_error(r, 500)
    assert "secret" not in r.get_data(as_text=True)
    assert body["request_id"] == r.headers["X-Request-ID"]


def test_the_app_keeps_serving_after_a_run_of_bad_requests(client):
    for text in ["{", '{"signal_data": [NaN]}', "[]", '{"signal_data": "x"}']:
        assert 400 <= _raw(client, text).status_code < 500
    assert client.post(PREDICT, json=[0.0] * 3600).status_code == 422
    assert client.post(PREDICT, json=payload(signal_data=[0.0] * 3600)).status_code == 422
    assert client.post(PREDICT, json=PAYLOAD).status_code == 201
    assert client.get("/health").get_json()["status"] == "healthy"


@pytest.mark.parametrize("signal", [
    [0.0] * 200 + [False] + [0.0] * 200,  # a boolean among equal numbers (0 and 1 are where they hide)
    [1] * 200 + [True] + [1] * 200,
    SIGNAL[:300] + [1.0, True, 0.0, False] + SIGNAL[300:],
])
def test_a_boolean_hidden_among_zeros_and_ones_is_422(client, signal):
    err = _field_error(client, payload(signal_data=signal, sampling_rate=100), "signal_data")
    assert "a boolean" in err["errors"]["signal_data"][0]


def test_integer_and_float_samples_load_as_numpy_would():
    from service.schemas import _numbers_only
    value = [1, 0, -3, 2.5, 0.0, 1.0, -0.0, 2**53 + 1, 1e-300, 2**70]
    x = _numbers_only(value)
    assert x.dtype == np.float64 and np.array_equal(x, np.array(value, dtype=np.float64))
    for bad in ([1.0, None], [1.0, "2"], [[1.0], [2.0]], [1.0, [2.0]], [1, True], [10**400, 1.0]):
        assert _numbers_only(bad) is None  # the field's slow path then names the element


def test_a_long_string_among_numbers_costs_no_memory(client):
    # np.array(value) would make it a string array: the string's size for every element
    signal = SIGNAL[:1000] + ["x" * 100_000]
    r = client.post(PREDICT, json=payload(signal_data=signal))
    assert r.status_code == 422 and "a string" in r.get_json()["errors"]["signal_data"][0]
    import tracemalloc

    from service.schemas import _numbers_only
    tracemalloc.start()
    try:
        assert _numbers_only(signal) is None
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1_000_000, peak  # np.array(signal) allocates 400 MB here


def test_an_integer_too_large_for_a_float_is_named():
    # orjson refuses such a number in a body (400); a caller of the schema can still pass one
    from marshmallow import ValidationError

    from service.schemas import PredictionRequestSchema
    with pytest.raises(ValidationError) as err:
        PredictionRequestSchema().load({"signal_data": [10**400] + [0.1] * 600, "sampling_rate": 100})
    assert err.value.messages["signal_data"] == ["Contains a number too large for a float."]


def _samples_blueprint(blueprint_class):
    """A new JSON endpoint, POST /api/v1/samples, built as health.py and predictions.py are
    (not /api/v1/recordings: that one exists, and takes EDF files)."""
    from marshmallow import Schema, fields

    class Recording(Schema):
        samples = fields.List(fields.Raw(), required=True)  # Raw: the schema alone lets NaN through

    blp = blueprint_class("samples", __name__, url_prefix="/api/v1/samples")

    @blp.route("/", methods=["POST"])
    @blp.arguments(Recording())
    @blp.response(201, Recording)
    def create_recording(body):
        return body

    return blp


@pytest.mark.parametrize("token", ["NaN", "Infinity", "-Infinity"])
def test_a_new_json_endpoint_built_as_the_others_refuses_nan_and_infinity(app, token):
    from service.api import Blueprint

    app.extensions["ecg_api"].register_blueprint(_samples_blueprint(Blueprint))
    client = app.test_client()
    ok = client.post("/api/v1/samples/", data=b'{"samples": [1.5, 2]}', content_type="application/json")
    assert ok.status_code == 201 and ok.get_json() == {"samples": [1.5, 2]}
    body = _assert_error(client.post("/api/v1/samples/", data=b'{"samples": [1.5, %s]}' % token.encode(),
                                     content_type="application/json"), 400)
    assert "NaN" in body["detail"] and "Infinity" in body["detail"]


def test_the_api_refuses_an_endpoint_whose_parser_would_accept_nan(app):
    import flask_smorest

    with pytest.raises(TypeError, match="service.api.Blueprint"):
        app.extensions["ecg_api"].register_blueprint(_samples_blueprint(flask_smorest.Blueprint))
