"""The service never imports the training stack (TensorFlow, MLflow, tf2onnx, wfdb), nor scipy."""

import subprocess
import sys

import pytest

from tests.service_helpers import ROOT

# scipy too: ecg/ is numpy only (ecg/dsp/) and requirements-api.txt does not have it
NOT_FOR_SERVING = ("tensorflow", "keras", "mlflow", "tf2onnx", "wfdb", "onnx", "torch", "scipy")

SCRIPT = """
import json, sys
import service{extra}
app = service.create_app({{"TESTING": True}})
body = json.load(open("test_payload_10s.json"))
r = app.test_client().post("/api/v1/predictions", json=body)
assert r.status_code == 201, r.get_json()
import wsgi  # the gunicorn entry point too
print(" ".join(sorted(m for m in sys.modules if m.split(".")[0] in {names!r})))
"""


def loaded_after_a_prediction(extra_import=""):
    """Modules of NOT_FOR_SERVING that a fresh interpreter holds after serving one prediction."""
    # a fresh interpreter: this test process has imported the training stack already
    script = SCRIPT.format(extra=extra_import, names=NOT_FOR_SERVING)
    out = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True,
                         env={"PATH": "/usr/bin:/bin", "ECG_LOG_LEVEL": "WARNING"}, timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    return set(out.stdout.strip().splitlines()[-1].split()) if out.stdout.strip() else set()


def test_import_and_prediction_leave_the_training_stack_and_scipy_unloaded():
    assert loaded_after_a_prediction() == set()


@pytest.mark.parametrize("module", ["wfdb", "scipy.signal"])
def test_the_check_would_see_such_a_module(module):
    # the same probe, after importing one of them on purpose, must name it
    assert module in loaded_after_a_prediction(f", {module}")
