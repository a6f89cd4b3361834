"""The service never imports the training stack (TensorFlow, MLflow, tf2onnx, wfdb), nor scipy."""

import subprocess
import sys

from tests.service_helpers import ROOT

TRAINING_ONLY = ("tensorflow", "keras", "mlflow", "tf2onnx", "wfdb", "onnx", "torch")

SCRIPT = """
import json, sys
import service
app = service.create_app({"TESTING": True})
body = json.load(open("test_payload_10s.json"))
r = app.test_client().post("/api/v1/predictions", json=body)
assert r.status_code == 201, r.get_json()
import wsgi  # the gunicorn entry point too
print(" ".join(sorted(m for m in sys.modules if m.split(".")[0] in %r)) or "none")
""" % (TRAINING_ONLY,)


def test_import_and_prediction_leave_the_training_stack_unloaded():
    # a fresh interpreter: this test process has imported the training stack already
    out = subprocess.run([sys.executable, "-c", SCRIPT], cwd=ROOT, capture_output=True, text=True,
                         env={"PATH": "/usr/bin:/bin", "ECG_LOG_LEVEL": "WARNING"}, timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip().splitlines()[-1] == "none"


def test_the_check_would_see_a_training_module():
    # the same probe, after importing one of them on purpose, must name it
    script = SCRIPT.replace("import service\n", "import service, wfdb\n", 1)
    out = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True,
                         env={"PATH": "/usr/bin:/bin", "ECG_LOG_LEVEL": "WARNING"}, timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "wfdb" in out.stdout.strip().splitlines()[-1]


# scipy: ecg/ is numpy only (ecg/dsp.py) and requirements-api.txt no longer has it
SCIPY_SCRIPT = SCRIPT.replace(
    'print(" ".join(sorted(m for m in sys.modules if m.split(".")[0] in %r)) or "none")' % (TRAINING_ONLY,),
    'print(" ".join(sorted(m for m in sys.modules if m.startswith("scipy"))) or "none")')


def test_import_and_prediction_leave_scipy_unloaded():
    assert SCIPY_SCRIPT != SCRIPT
    out = subprocess.run([sys.executable, "-c", SCIPY_SCRIPT], cwd=ROOT, capture_output=True, text=True,
                         env={"PATH": "/usr/bin:/bin", "ECG_LOG_LEVEL": "WARNING"}, timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip().splitlines()[-1] == "none"


def test_the_scipy_check_would_see_scipy():
    script = SCIPY_SCRIPT.replace("import service\n", "import service, scipy.signal\n", 1)
    out = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True,
                         env={"PATH": "/usr/bin:/bin", "ECG_LOG_LEVEL": "WARNING"}, timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "scipy.signal" in out.stdout.strip().splitlines()[-1].split()
