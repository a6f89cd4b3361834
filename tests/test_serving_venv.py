"""A fresh venv with requirements-api.txt alone serves predictions (what Dockerfile.hf and
`make serve` install). Takes a minute or two: it downloads the serving wheels."""

import subprocess
import sys

import pytest

from tests.service_helpers import PAYLOAD_PATH, PREDICT, ROOT, http, start_gunicorn, stop

# pip's words when the package index cannot be reached at all
OFFLINE_SIGNS = ("NewConnectionError", "Temporary failure in name resolution", "Network is unreachable",
                 "No route to host", "Failed to establish a new connection", "ConnectTimeoutError")


@pytest.fixture(scope="module")
def api_python(tmp_path_factory):
    venv = tmp_path_factory.mktemp("serving") / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    out = subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                          "-r", str(ROOT / "requirements-api.txt")],
                         capture_output=True, text=True, timeout=900)
    if out.returncode != 0:
        if any(sign in out.stderr for sign in OFFLINE_SIGNS):
            pytest.skip("no network to the package index")
        pytest.fail(f"pip install -r requirements-api.txt failed:\n{out.stderr[-3000:]}")
    return python


def test_serving_venv_has_no_training_stack(api_python):
    # nor scipy: ecg/ is numpy only, so nothing the service installs may pull it in
    probe = ("import importlib.util as u; "
             "print([m for m in ('tensorflow', 'keras', 'mlflow', 'tf2onnx', 'wfdb', 'scipy') if u.find_spec(m)])")
    out = subprocess.run([str(api_python), "-c", probe], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "[]", out.stderr


def test_serving_venv_serves_a_prediction_under_gunicorn(api_python):
    proc, base = start_gunicorn({"WEB_CONCURRENCY": "1"}, python=str(api_python))
    try:
        status, _, body = http("POST", base + PREDICT, PAYLOAD_PATH.read_bytes(),
                               {"Content-Type": "application/json"})
        assert status == 201, body
        assert body["overall_arrhythmia_type"] == "V" and body["total_beats"] > 10
        assert http("GET", base + "/docs")[0] == 200
    finally:
        stop(proc)
