"""The service's settings, all in one place: environment variables with defaults.

| variable | default | what |
|---|---|---|
| `ECG_MODEL_DIR` | `models/ecg_nv_cnn` beside this package | model card `model.json` + ONNX file |
| `ECG_MAX_BODY_MB` | 32 | request body limit in MB (a 30-min record at 360 Hz is ~10-14 MB of JSON) |
| `ECG_MAX_SAMPLES` | 1,800,000 | most samples in one signal (30 min at 1000 Hz): bounds a request's work |
| `ECG_REQUEST_TIMEOUT_S` | 60 | a prediction still running after this many seconds answers 503 |
| `ECG_LOG_LEVEL` | INFO | level of the JSON request log |
| `ECG_CORS_ORIGINS` | `*` | comma-separated origins allowed to call the API from a browser |
| `ECG_ORT_THREADS` | 1 | ONNX Runtime intra-op threads per worker (1: workers, not threads, use the cores) |
| `ECG_API_KEY` | unset | when set, predictions need this value in an `X-API-Key` header (401 otherwise) |
| `ECG_MAX_RECORDING_MB` | 1024 | largest EDF file `POST /api/v1/recordings` takes, in MB (413 past it); a 24-h 3-lead 1000-Hz EDF is 518 MB |
| `ECG_RECORDING_PROCESSES` | 0 | processes analysing one recording; 0: the cores the 1-min load average leaves idle, at least 1 |
| `ECG_RECORDING_CHUNK_S` | 1800 | seconds of signal per detection chunk (bounds a process's memory: docs/HOLTER.md) |
| `ECG_RECORDING_TIMEOUT_S` | 600 | a recording still being analysed after this many seconds answers 503 |
| `ECG_RECORDING_TMP_DIR` | `ecg-recordings` in the system's temporary folder | where uploads are written while analysed (removed after; leftovers of a killed worker at start-up) |

Gunicorn's own settings (`PORT`, `HOST`, `WEB_CONCURRENCY`, `GUNICORN_THREADS`,
`GUNICORN_TIMEOUT`) are read in `gunicorn.conf.py`.
"""

import os
import tempfile
from pathlib import Path

DEFAULT_MODEL_DIR = Path(__file__).resolve().parent.parent / "models" / "ecg_nv_cnn"


def _int(environ, name, default):
    raw = environ.get(name)
    return default if raw in (None, "") else int(raw)


def _float(environ, name, default):
    raw = environ.get(name)
    return default if raw in (None, "") else float(raw)


def from_env(environ=None):
    """Flask config keys from ``environ`` (default ``os.environ``)."""
    env = os.environ if environ is None else environ
    origins = [o.strip() for o in env.get("ECG_CORS_ORIGINS", "*").split(",") if o.strip()]
    return {
        "MODEL_DIR": env.get("ECG_MODEL_DIR") or str(DEFAULT_MODEL_DIR),
        "MAX_CONTENT_LENGTH": int(float(env.get("ECG_MAX_BODY_MB") or 32) * 1024 * 1024),
        "LOG_LEVEL": (env.get("ECG_LOG_LEVEL") or "INFO").upper(),
        "CORS_ORIGINS": origins or ["*"],
        "MAX_SAMPLES": _int(env, "ECG_MAX_SAMPLES", 1_800_000),
        "REQUEST_TIMEOUT_S": _float(env, "ECG_REQUEST_TIMEOUT_S", 60.0),
        "ORT_INTRA_OP_THREADS": _int(env, "ECG_ORT_THREADS", 1),
        "API_KEY": env.get("ECG_API_KEY") or None,
        "MAX_RECORDING_BYTES": int(_float(env, "ECG_MAX_RECORDING_MB", 1024.0) * 1024 * 1024),
        "RECORDING_PROCESSES": _int(env, "ECG_RECORDING_PROCESSES", 0),
        "RECORDING_CHUNK_S": _float(env, "ECG_RECORDING_CHUNK_S", 1800.0),
        "RECORDING_TIMEOUT_S": _float(env, "ECG_RECORDING_TIMEOUT_S", 600.0),
        "RECORDING_TMP_DIR": env.get("ECG_RECORDING_TMP_DIR") or str(Path(tempfile.gettempdir()) / "ecg-recordings"),
    }
