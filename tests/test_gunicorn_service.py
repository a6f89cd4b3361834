"""The service under a real gunicorn (gunicorn.conf.py) on a loopback port: what the
Space runs, not only Flask's test client."""

import json
import re
import socket

import pytest

from tests.service_helpers import PAYLOAD_PATH, PREDICT, http, start_gunicorn, stop

BODY = PAYLOAD_PATH.read_bytes()
JSON = {"Content-Type": "application/json"}
LIMIT_MB = 1


@pytest.fixture(scope="module")
def server():
    # two workers, so that /metrics must add up what each of them counted
    proc, base = start_gunicorn({"WEB_CONCURRENCY": "2", "GUNICORN_THREADS": "2",
                                 "ECG_MAX_BODY_MB": str(LIMIT_MB)})
    yield base
    stop(proc)


@pytest.mark.parametrize("path", [PREDICT, PREDICT + "/"])
def test_prediction_is_201_on_both_paths_without_redirect(server, path):
    status, headers, body = http("POST", server + path, BODY, JSON)
    assert status == 201
    assert headers["Content-Type"] == "application/json" and headers["X-Request-ID"]
    assert body["overall_arrhythmia_type"] == "V" and body["ventricular_beats"] >= 3
    assert body["beat_predictions"][0]["rr_previous"] is None


def test_health_root_and_docs(server):
    status, _, body = http("GET", server + "/health")
    assert status == 200 and body["status"] == "healthy" and body["model_loaded"] is True
    assert http("GET", server + "/")[2]["docs"] == "/docs"
    for page in ("/docs", "/redoc", "/openapi.json", "/static/redoc/redoc.standalone.js"):
        assert http("GET", server + page)[0] == 200, page


def test_bad_requests_get_json_4xx_and_the_workers_stay_up(server):
    cases = [(b"{oops", JSON, 400), (b'{"signal_data": [NaN]}', JSON, 400),
             (BODY, {"Content-Type": "text/plain"}, 415), (b'{"signal_data": [1, 2]}', JSON, 422),
             (json.dumps({"signal_data": [0.0] * 3600}).encode(), JSON, 422)]
    for data, headers, want in cases:
        status, _, body = http("POST", server + PREDICT, data, headers)
        assert status == want and isinstance(body["detail"], str)
    assert http("GET", server + PREDICT)[0] == 405
    assert http("GET", server + "/missing")[2]["detail"]
    assert http("POST", server + PREDICT, BODY, JSON)[0] == 201


def _raw_post(base, head, parts):
    """POST over a raw socket: ``head`` headers, then the byte ``parts``; (status, body).

    Keep-alive, as curl and browsers do: gunicorn then reads past the unread rest of an
    over-limit body instead of closing on it (urllib's Connection: close makes gunicorn
    close at once, and the client's upload breaks before it reads the 413).
    """
    host, port = base.rsplit("/", 1)[1].split(":")
    with socket.create_connection((host, int(port)), timeout=30) as s:
        s.sendall(f"POST {PREDICT} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  f"{head}\r\n".encode())
        for part in parts:
            s.sendall(part)
        answer = b""
        while b"\r\n\r\n" not in answer:
            answer += s.recv(65536)
        header, _, payload = answer.partition(b"\r\n\r\n")
        length = int(re.search(rb"(?i)content-length: (\d+)", header).group(1))
        while len(payload) < length:
            payload += s.recv(65536)
    return int(header.split()[1]), payload


def _chunked(chunk, count):
    return [b"%x\r\n%s\r\n" % (len(chunk), chunk)] * count + [b"0\r\n\r\n"]


def test_body_over_the_limit_is_413_with_content_length(server):
    big = json.dumps({"signal_data": [0.123456] * 200_000}).encode()
    assert len(big) > LIMIT_MB * 1024 * 1024
    status, payload = _raw_post(server, f"Content-Length: {len(big)}\r\n", [big])
    assert status == 413 and b"limit" in payload


def test_chunked_upload_over_the_limit_is_413(server):
    chunks = _chunked(b"[" + b"0.5," * 50_000, 8)  # ~1.6 MB, no length given
    status, payload = _raw_post(server, "Transfer-Encoding: chunked\r\n", chunks)
    assert status == 413
    assert b"limit" in payload


def test_chunked_upload_under_the_limit_is_served(server):
    status, payload = _raw_post(server, "Transfer-Encoding: chunked\r\n", _chunked(BODY, 1))
    assert status == 201 and b'"overall_arrhythmia_type":"V"' in payload


def test_metrics_add_up_across_workers(server):
    before = _count_201(server)
    for _ in range(6):  # new connection each time: either worker may answer
        assert http("POST", server + PREDICT, BODY, JSON)[0] == 201
    assert _count_201(server) == before + 6
    text = http("GET", server + "/metrics")[2].decode()
    assert 'ecg_beats_total{arrhythmia_type="V"}' in text and "ecg_model_info{" in text


def _count_201(base):
    text = http("GET", base + "/metrics")[2].decode()
    m = re.search(r'ecg_http_requests_total\{method="POST",route="/api/v1/predictions",status="201"\} (\S+)', text)
    return float(m.group(1)) if m else 0.0


def test_a_broken_model_still_starts_degraded_under_gunicorn(tmp_path):
    proc, base = start_gunicorn({"WEB_CONCURRENCY": "1", "ECG_MODEL_DIR": str(tmp_path / "none")})
    try:
        status, _, body = http("GET", base + "/health")
        assert status == 200 and body["status"] == "degraded" and body["model_loaded"] is False
        status, _, body = http("POST", base + PREDICT, BODY, JSON)
        assert status == 503 and "no model card" in body["detail"]
    finally:
        stop(proc)



@pytest.mark.parametrize("given, expected", [(None, "1"), ("2", "2")])
def test_the_config_gives_workers_single_threaded_blas_unless_told(given, expected, tmp_path):
    # workers fork from the master after it read gunicorn.conf.py, and import numpy
    # (which sizes OpenBLAS' thread pool from this variable) only then
    import os
    import subprocess
    import sys

    from tests.service_helpers import ROOT

    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_NUM_THREADS"}
    env["PROMETHEUS_MULTIPROC_DIR"] = str(tmp_path)  # else the config makes a temporary folder
    if given:
        env["OPENBLAS_NUM_THREADS"] = given
    script = "import os, runpy; runpy.run_path('gunicorn.conf.py'); print(os.environ['OPENBLAS_NUM_THREADS'])"
    out = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split()[-1] == expected
