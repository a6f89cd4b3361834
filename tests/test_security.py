"""Security basics: no traces or server paths in answers, the optional API key, CORS,
and a container that runs as a non-root user."""

import re

import pytest

from service import create_app, inference
from tests.service_helpers import MODEL_DIR, PAYLOAD, PREDICT, ROOT, model_copy

KEY = "s3cret-key-for-tests"


def _app(**config):
    return create_app({"TESTING": False, "MODEL_DIR": str(MODEL_DIR), **config})


def _no_internals(text):
    assert "Traceback" not in text and 'File "' not in text
    assert str(ROOT) not in text and "/site-packages/" not in text and "/tmp/" not in text


def test_an_internal_error_answers_500_json_without_trace_or_paths(monkeypatch):
    def explode(*args, **kwargs):
        raise RuntimeError(f"boom in {ROOT}/service/inference.py with a secret")

    monkeypatch.setattr(inference, "predict", explode)
    r = _app().test_client().post(PREDICT, json=PAYLOAD)
    text = r.get_data(as_text=True)
    assert r.status_code == 500 and r.headers["Content-Type"] == "application/json"
    body = r.get_json()
    assert "request id" in body["detail"] and body["request_id"]
    _no_internals(text)
    assert "secret" not in text and "RuntimeError" not in text


def test_a_broken_model_reason_names_no_server_path(tmp_path):
    broken = model_copy(tmp_path)
    (broken / "model.onnx").write_bytes(b"corrupt")
    client = _app(MODEL_DIR=str(broken)).test_client()
    health = client.get("/health").get_data(as_text=True)
    predict = client.post(PREDICT, json=PAYLOAD).get_data(as_text=True)
    for text in (health, predict):
        assert "sha256 of model.onnx" in text
        assert str(tmp_path) not in text
        _no_internals(text)


@pytest.mark.parametrize("method, path", [("GET", "/nowhere"), ("DELETE", PREDICT), ("GET", "/%2e%2e/etc/passwd")])
def test_error_answers_name_no_server_path(method, path):
    r = _app().test_client().open(path, method=method)
    assert 400 <= r.status_code < 500 and r.get_json()["detail"]
    _no_internals(r.get_data(as_text=True))


def test_without_ecg_api_key_predictions_need_no_key():
    assert _app().test_client().post(PREDICT, json=PAYLOAD).status_code == 201


@pytest.fixture
def keyed():
    return _app(API_KEY=KEY).test_client()


@pytest.mark.parametrize("headers, what", [({}, "needs an API key"),
                                           ({"X-API-Key": "wrong"}, "not hold a valid key")])
def test_with_a_key_predictions_without_it_get_401_json(keyed, headers, what):
    for path in (PREDICT, PREDICT + "/"):
        r = keyed.post(path, json=PAYLOAD, headers=headers)
        assert r.status_code == 401 and r.headers["Content-Type"] == "application/json"
        assert what in r.get_json()["detail"] and KEY not in r.get_data(as_text=True)


def test_with_a_key_the_right_key_gets_the_prediction(keyed):
    assert keyed.post(PREDICT, json=PAYLOAD, headers={"X-API-Key": KEY}).status_code == 201


@pytest.mark.parametrize("path", ["/health", "/", "/docs", "/redoc", "/openapi.json", "/metrics", "/demo"])
def test_with_a_key_health_docs_and_page_stay_open(keyed, path):
    assert keyed.get(path).status_code == 200


def test_with_a_key_the_cors_preflight_still_passes():
    client = _app(API_KEY=KEY, CORS_ORIGINS=["https://space.example"]).test_client()
    r = client.options(PREDICT, headers={"Origin": "https://space.example",
                                         "Access-Control-Request-Method": "POST",
                                         "Access-Control-Request-Headers": "content-type, x-api-key"})
    assert r.status_code == 200
    assert r.headers["Access-Control-Allow-Origin"] == "https://space.example"
    assert "x-api-key" in r.headers["Access-Control-Allow-Headers"].lower()


def test_the_api_key_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv("ECG_API_KEY", KEY)
    client = create_app({"TESTING": True, "MODEL_DIR": str(MODEL_DIR)}).test_client()
    assert client.post(PREDICT, json=PAYLOAD).status_code == 401
    assert client.post(PREDICT, json=PAYLOAD, headers={"X-API-Key": KEY}).status_code == 201


def test_cors_origins_are_configurable():
    client = _app(CORS_ORIGINS=["https://a.example"]).test_client()
    allowed = client.get("/health", headers={"Origin": "https://a.example"})
    other = client.get("/health", headers={"Origin": "https://evil.example"})
    assert allowed.headers["Access-Control-Allow-Origin"] == "https://a.example"
    assert "Access-Control-Allow-Origin" not in other.headers


def test_cors_headers_only_answer_an_origin():
    # devices and scripts send no Origin: CORS is out of their scope (and off their hot path)
    client = _app().test_client()
    assert "Access-Control-Allow-Origin" not in client.post(PREDICT, json=PAYLOAD).headers
    browser = client.post(PREDICT, json=PAYLOAD, headers={"Origin": "https://b.example"})
    assert browser.headers["Access-Control-Allow-Origin"] in ("*", "https://b.example")
    assert "X-Request-ID" in browser.headers["Access-Control-Expose-Headers"]
    # so a shared cache must keep the two apart
    def varies_on_origin(r):
        return [v.strip().lower() for line in r.headers.getlist("Vary") for v in line.split(",")].count("origin")

    for r in (client.get("/health"), browser, client.get("/health", headers={"Origin": "https://b.example"})):
        assert varies_on_origin(r) == 1
    several = _app(CORS_ORIGINS=["https://a.example", "https://b.example"]).test_client()
    assert varies_on_origin(several.get("/health", headers={"Origin": "https://a.example"})) == 1  # not twice


def test_the_container_runs_as_a_non_root_user():
    # no Docker daemon here: read the Dockerfile as the builder would
    lines = [ln.strip() for ln in (ROOT / "Dockerfile.hf").read_text().splitlines()
             if ln.strip() and not ln.strip().startswith("#")]
    users = [(i, ln.split()[1]) for i, ln in enumerate(lines) if ln.startswith("USER ")]
    cmd = next(i for i, ln in enumerate(lines) if ln.startswith("CMD "))
    assert users and users[-1][0] < cmd, "CMD must run after a USER line"
    user = users[-1][1]
    assert user not in ("root", "0")
    assert any(re.search(rf"useradd .*--uid 1000 .*\b{user}\b", ln) for ln in lines)
    # everything the app reads belongs to that user; it writes only to a temporary folder
    copies = [ln for ln in lines if ln.startswith("COPY ")]
    assert copies and all(f"--chown={user}" in ln for ln in copies)
