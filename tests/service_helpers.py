"""Shared pieces of the service tests: the app/client fixtures, the payload, model copies.

Test modules import the fixtures by name (``from tests.service_helpers import app, client``).
They work with whatever valid model is in models/ecg_nv_cnn; broken models are made by
copying it to a temporary folder and damaging the copy.
"""

import json
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from bench.edf_files import write_edf
from ecg.ec57 import MATCH_WINDOW_S, match_beats
from service import create_app

ROOT = Path(__file__).resolve().parent.parent
MODEL_DIR = ROOT / "models" / "ecg_nv_cnn"
PAYLOAD_PATH = ROOT / "test_payload_10s.json"
PAYLOAD = json.loads(PAYLOAD_PATH.read_text())
PREDICT = "/api/v1/predictions"


@pytest.fixture
def app():
    return create_app({"TESTING": True, "MODEL_DIR": str(MODEL_DIR)})


@pytest.fixture
def client(app):
    return app.test_client()


def payload(**changes):
    body = dict(PAYLOAD)
    body.update(changes)
    return body


def v_positions(body):
    """A prediction's V calls: their ``position_sample``, sorted (int64)."""
    return np.array(sorted(b["position_sample"] for b in body["beat_predictions"] if b["arrhythmia_type"] == "V"),
                    dtype=np.int64)


def matched(reference, positions, fs):
    """How many of ``positions`` lie within EC57's window of a beat of ``reference`` (samples at ``fs``)."""
    return len(match_beats(reference, np.asarray(positions, dtype=np.int64), int(MATCH_WINDOW_S * fs))[0])


def recording_report(x, fs, label, tmp_path):
    """``x`` (mV at ``fs``) written as a one-channel EDF file labelled ``label`` and posted to
    ``/api/v1/recordings`` of an app that keeps its uploads under ``tmp_path``: (the report, that
    app's test client, to ask the predictions endpoint the same signal)."""
    path = tmp_path / "recording.edf"
    write_edf(path, [x], fs, [label])
    client = create_app({"TESTING": True, "MODEL_DIR": str(MODEL_DIR), "LOG_LEVEL": "WARNING",
                         "RECORDING_TMP_DIR": str(tmp_path / "uploads")}).test_client()
    r = client.post("/api/v1/recordings", data=path.read_bytes(), content_type="application/octet-stream")
    assert r.status_code == 201, r.get_json()
    return r.get_json(), client


def model_copy(tmp_path, name="model"):
    """A writable copy of the real model folder, to damage."""
    target = tmp_path / name
    shutil.copytree(MODEL_DIR, target)
    return target


def edit_card(model_dir, change):
    card_path = Path(model_dir) / "model.json"
    card = json.loads(card_path.read_text())
    change(card)
    card_path.write_text(json.dumps(card))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http(method, url, body=None, headers=None, timeout=30):
    """(status, headers, parsed JSON or raw bytes) without following redirects."""
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    opener = urllib.request.build_opener(_NoRedirect)
    try:
        with opener.open(req, timeout=timeout) as resp:
            status, hdrs, raw = resp.status, resp.headers, resp.read()
    except urllib.error.HTTPError as err:
        status, hdrs, raw = err.code, err.headers, err.read()
    try:
        return status, hdrs, json.loads(raw)
    except ValueError:
        return status, hdrs, raw


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def start_gunicorn(env_extra, python=sys.executable, wait_s=90):
    """A gunicorn running gunicorn.conf.py on a free loopback port; returns (process, base url)."""
    import os

    port = free_port()
    env = dict(os.environ)
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    env.update({"HOST": "127.0.0.1", "PORT": str(port), "ECG_LOG_LEVEL": "WARNING"})
    env.update(env_extra)
    proc = subprocess.Popen(
        [python, "-m", "gunicorn", "-c", "gunicorn.conf.py", "wsgi:app"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"gunicorn exited: {proc.stdout.read().decode()[-3000:]}")
        try:
            if http("GET", base + "/health", timeout=2)[0] == 200:
                return proc, base
        except OSError:
            pass
        time.sleep(0.3)
    stop(proc)
    raise RuntimeError("gunicorn did not answer /health in time")


def stop(proc):
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
