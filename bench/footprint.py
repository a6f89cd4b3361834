"""Part 4 (sizes): installed size of a serving-only venv against one with TensorFlow.

Both are fresh venvs, built once and reused: ``/tmp/bench-venv-api`` from
requirements-api.txt alone (what the Docker image installs), ``/tmp/bench-venv-tf`` with
tensorflow-cpu alone (at the pin of requirements-train.txt: TensorFlow's own weight,
without the service's or training's other packages). The project's full ``.venv``
(TensorFlow + MLflow + the rest) is reported beside them.
"""

import os
import re
import subprocess
import sys
from pathlib import Path

from .common import PROJECT_DIR, log
from .interpreters import serving_interpreter

API_VENV = Path("/tmp/bench-venv-api")
TF_VENV = Path("/tmp/bench-venv-tf")


def dir_size_mb(path):
    total = 0
    for root, _, files in os.walk(path):
        for f in files:
            p = os.path.join(root, f)
            if not os.path.islink(p):
                total += os.path.getsize(p)
    return total / 1e6


def tf_pin():
    text = (PROJECT_DIR / "requirements-train.txt").read_text()
    m = re.search(r"^tensorflow-cpu==(\S+)", text, re.M)
    return f"tensorflow-cpu=={m.group(1)}" if m else "tensorflow-cpu"


def _requirements_key(requirements, python):
    """What the venv was built from: the interpreter, the pip arguments and the text of each ``-r`` file."""
    parts = [str(python), *requirements]
    for flag, arg in zip(requirements, requirements[1:]):
        if flag == "-r":
            parts.append(Path(arg).read_text())
    return "\n".join(parts)


def build_venv(path, requirements, python=None):
    """A fresh venv at ``path`` with ``requirements`` (pip arguments); skipped when built before.

    Rebuilt when the requirements or the interpreter changed since (a venv built before
    scipy left requirements-api.txt would otherwise still be measured with it).
    ``python``: the interpreter to build it on (default: the bench's own base interpreter).
    """
    # the base interpreter, not this venv's: a venv made from a venv is still a plain venv
    base = python or getattr(sys, "_base_executable", sys.executable)
    marker = path / ".bench-installed"
    key = _requirements_key(requirements, base)
    if marker.exists() and marker.read_text() == key:
        return True, "reused"
    log(f"  building {path} on {base} ({' '.join(requirements)}) ...")
    for cmd in ([base, "-m", "venv", "--clear", str(path)],
                [str(path / "bin" / "python"), "-m", "pip", "install", "--quiet", "--upgrade", "pip"],
                [str(path / "bin" / "python"), "-m", "pip", "install", "--quiet", *requirements]):
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode:
            return False, f"{' '.join(cmd[:4])}... failed: {r.stderr.strip()[-300:]}"
    marker.write_text(key)
    return True, "built"


def build_api_venv():
    """The serving-only venv, on the interpreter the bench serves with (see bench.interpreters),
    or on the bench's own when that one cannot make a venv."""
    requirements = ["-r", str(PROJECT_DIR / "requirements-api.txt")]
    python = serving_interpreter()[0]
    ok, how = build_venv(API_VENV, requirements, python)
    own = getattr(sys, "_base_executable", sys.executable)
    if not ok and python != own:
        log(f"  {python} could not build it ({how[-160:]}); building on {own}")
        ok, how = build_venv(API_VENV, requirements, own)
    return ok, how


def measure(build=True):
    out = {}
    specs = {"api": (API_VENV, build_api_venv, "fresh venv, requirements-api.txt only"),
             "tensorflow": (TF_VENV, lambda: build_venv(TF_VENV, [tf_pin()]), f"fresh venv, {tf_pin()} only")}
    for key, (path, build_it, what) in specs.items():
        ok, how = build_it() if build else ((path / ".bench-installed").exists(), "not built (--no-build)")
        if ok:
            out[key] = {"path": str(path), "what": what, "size_mb": dir_size_mb(path), "how": how}
        else:
            out[key] = {"path": str(path), "what": what, "skipped": how}
    full = PROJECT_DIR / ".venv"
    if full.is_dir():
        out["project_full_venv"] = {"path": str(full), "what": "the project's .venv (TensorFlow, MLflow, "
                                    "tf2onnx, optuna, pytest...)", "size_mb": dir_size_mb(full)}
    if "size_mb" in out.get("api", {}) and "size_mb" in out.get("tensorflow", {}):
        out["api_over_tensorflow"] = out["api"]["size_mb"] / out["tensorflow"]["size_mb"]
    for k, v in out.items():
        if isinstance(v, dict) and "size_mb" in v:
            log(f"  venv {k}: {v['size_mb']:.0f} MB ({v['what']})")
    return out
