"""What ships: Dockerfile.hf (Docker cannot run here, so its content is checked),
requirements-api.txt, the Space README, the example payload, vendored doc assets, make serve."""

import json
import re

import pytest

from tests.service_helpers import ROOT

TRAINING_ONLY = ("tensorflow", "keras", "mlflow", "tf2onnx", "wfdb", "onnx=", "optuna", "torch")
# not needed to serve: ecg/ is numpy only (ecg/dsp/), and scipy cost each worker ~78 MB
NOT_SERVED = TRAINING_ONLY + ("scipy",)


def _instructions():
    text = (ROOT / "Dockerfile.hf").read_text()
    text = re.sub(r"\\\n\s*", " ", text)  # join continuation lines
    return [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def test_dockerfile_base_user_port_healthcheck_and_command():
    lines = _instructions()
    assert lines[0] == "FROM python:3.11-slim"
    assert any(re.match(r"RUN useradd .*--uid 1000", line) for line in lines)
    assert "USER user" in lines or "USER 1000" in lines
    assert "EXPOSE 7860" in lines
    health = [line for line in lines if line.startswith("HEALTHCHECK")]
    assert len(health) == 1 and "/health" in health[0]
    cmd = [line for line in lines if line.startswith("CMD")]
    assert len(cmd) == 1 and json.loads(cmd[0][3:]) == ["gunicorn", "-c", "gunicorn.conf.py", "wsgi:app"]
    # the user switch comes after every install and copy
    user_at = lines.index("USER user") if "USER user" in lines else lines.index("USER 1000")
    assert all(not line.startswith(("RUN", "COPY")) for line in lines[user_at + 1:])


def test_dockerfile_installs_serving_pins_only_and_copies_only_serving_files():
    lines = _instructions()
    runs = " ".join(line for line in lines if line.startswith("RUN"))
    assert "pip install -r requirements-api.txt" in runs and "requirements-train" not in runs
    copied = []
    for line in lines:
        if line.startswith("COPY"):
            parts = [p for p in line.split()[1:] if not p.startswith("--")]
            copied += parts[:-1]
    assert sorted(p.rstrip("/") for p in copied) == sorted(
        ["requirements-api.txt", "ecg", "service", "models", "wsgi.py", "gunicorn.conf.py"])
    for path in copied:
        assert (ROOT / path).exists(), path


def test_serving_requirements_are_pinned_and_free_of_the_training_stack():
    reqs = [line.split("#")[0].strip() for line in (ROOT / "requirements-api.txt").read_text().splitlines()]
    reqs = [r for r in reqs if r]
    assert all("==" in r for r in reqs), reqs
    names = {r.split("==")[0].lower() for r in reqs}
    assert {"flask", "flask-smorest", "marshmallow", "gunicorn", "onnxruntime", "orjson", "numpy"} <= names
    for banned in NOT_SERVED:
        assert not any(r.lower().startswith(banned) for r in reqs), banned


def test_training_requirements_still_pin_scipy():
    # wfdb needs it, and tests/test_dsp.py compares ecg/dsp/ with it
    reqs = [line.split("#")[0].strip().lower() for line in (ROOT / "requirements-train.txt").read_text().splitlines()]
    assert any(r.startswith("scipy==") for r in reqs)


def test_space_readme_front_matter():
    text = (ROOT / "README_HF.md").read_text()
    assert text.startswith("---\n")
    front = text.split("---\n")[1]
    meta = dict(line.split(":", 1) for line in front.strip().splitlines())
    meta = {k.strip(): v.strip() for k, v in meta.items()}
    assert meta["sdk"] == "docker" and meta["app_port"] == "7860"
    assert meta["title"] and meta["emoji"] and meta["license"]
    assert "/api/v1/predictions" in text and "test_payload_10s.json" in text
    for credit in ("MIT-BIH", "Moody", "Goldberger", "ODC-By"):
        assert credit in text


def test_payload_is_a_valid_request_of_ten_seconds_at_360_hz():
    body = json.loads((ROOT / "test_payload_10s.json").read_text())
    assert set(body) <= {"signal_data", "sampling_rate", "derivation", "patient_id", "apply_ruleguard"}
    assert body["sampling_rate"] == 360 and body["derivation"] == "MLII"
    assert len(body["signal_data"]) == 3600
    assert all(type(v) in (int, float) for v in body["signal_data"])
    assert 0.5 < max(body["signal_data"]) - min(body["signal_data"]) < 10  # millivolts


def test_readme_puts_make_serve_first_and_make_test_second():
    text = (ROOT / "README.md").read_text()
    first_block = text.split("```bash", 1)[1].split("```", 1)[0]
    commands = [line.split("#")[0].strip() for line in first_block.strip().splitlines()]
    assert commands[:2] == ["make serve", "make test"]
    assert "--data @test_payload_10s.json" in text and "## API" in text


def test_make_serve_uses_a_serving_only_venv_and_gunicorn_conf():
    makefile = (ROOT / "Makefile").read_text()
    rule = re.search(r"^serve:.*\n((?:\t.*\n)+)", makefile, re.M)
    assert rule and "gunicorn -c gunicorn.conf.py wsgi:app" in rule.group(1)
    venv_rule = re.search(r"^\.venv-api/\.installed: requirements-api\.txt\n((?:\t.*\n)+)", makefile, re.M)
    assert venv_rule and "-r requirements-api.txt" in venv_rule.group(1)
    assert "requirements-train" not in venv_rule.group(1)


@pytest.mark.parametrize("folder, files", [
    ("swagger-ui", ["swagger-ui-bundle.js", "swagger-ui-standalone-preset.js", "swagger-ui.css", "LICENSE", "NOTICE"]),
    ("redoc", ["redoc.standalone.js", "LICENSE"]),
])
def test_doc_assets_are_vendored_with_their_licences(folder, files):
    for name in files:
        assert (ROOT / "service" / "static" / folder / name).stat().st_size > 0, name


def test_gunicorn_conf_reads_port_and_workers_from_the_environment(monkeypatch):
    import runpy

    monkeypatch.setenv("PORT", "9123")
    monkeypatch.setenv("WEB_CONCURRENCY", "3")
    monkeypatch.setenv("GUNICORN_THREADS", "4")
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", "/tmp/unused-by-this-test")
    conf = runpy.run_path(str(ROOT / "gunicorn.conf.py"))
    assert conf["bind"] == "0.0.0.0:9123"
    assert conf["workers"] == 3 and conf["threads"] == 4
    assert conf["preload_app"] is False and conf["timeout"] >= 60
    monkeypatch.delenv("PORT")
    assert runpy.run_path(str(ROOT / "gunicorn.conf.py"))["bind"].endswith(":7860")
