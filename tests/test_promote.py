"""python -m convert.promote end to end, on tiny models trained on the fixtures.

Runs trained on the bundled excerpts are never promoted without --force (tests/test_promotion_gate.py
proves the refusal): the tests here pass it where they promote one, and keep the comparison
with production in view where it matters."""

import hashlib
import json
import os
import shutil
import subprocess

import numpy as np
import pytest

pytest.importorskip("tensorflow")
pytest.importorskip("tf2onnx")

TINY = ["--train-records", "119", "208", "--val-records", "200", "--test-records", "233", "100",
        "--epochs", "1", "--max-train-beats", "300", "--cache", "", "--folds", "1"]


@pytest.fixture(scope="module")
def store(tmp_path_factory, fixture_dir):
    """A temporary MLflow store with two finished runs (different seeds)."""
    tmp = tmp_path_factory.mktemp("promote")
    uri = f"sqlite:///{tmp / 'mlflow.db'}"
    mp = pytest.MonkeyPatch()
    mp.setenv("MLFLOW_TRACKING_URI", uri)
    mp.setenv("ECG_DATA_DIR", str(fixture_dir))
    from train.train import parse_args, run

    runs = [run(parse_args(["--data", str(fixture_dir), *TINY, "--seed", str(s), "--run-name", f"tiny-{s}"]))
            for s in (1, 2)]
    yield {"uri": uri, "tmp": tmp, "runs": runs, "data": str(fixture_dir)}
    mp.undo()


def promote(store, out, *extra):
    from convert.promote import main

    os.environ["MLFLOW_TRACKING_URI"] = store["uri"]
    os.environ["ECG_DATA_DIR"] = store["data"]
    return main(["--output", str(out), "--data", store["data"], *extra])


def snapshot(d):
    return {p.name: p.read_bytes() for p in sorted(d.iterdir())} if d.exists() else {}


@pytest.fixture
def out(store, tmp_path):
    return tmp_path / "models" / "ecg_nv_cnn"


def test_promotes_the_best_validation_run_with_a_complete_card(store, out, capsys):
    import keras
    import mlflow
    import onnxruntime as ort

    assert promote(store, out, "--force") == 0
    best_id, best_metrics = max(store["runs"], key=lambda r: r[1]["val_f1_V"])
    card = json.loads((out / "model.json").read_text())
    assert card["mlflow"]["run_id"] == best_id
    assert card["onnx"]["sha256"] == hashlib.sha256((out / "model.onnx").read_bytes()).hexdigest()
    for key in ("name", "version", "promoted_at", "metrics", "data_split", "preprocessing", "decision",
                "inputs", "outputs", "onnx", "versions", "verification"):
        assert key in card, key
    for pkg in ("tensorflow", "keras", "tf2onnx", "onnx", "onnxruntime"):
        assert pkg in card["versions"], pkg
    assert card["onnx"]["opset"] >= 13
    assert card["verification"]["parity"]["max_abs_diff"] <= 1e-5
    assert card["verification"]["end_to_end"]["e2e_f1_V"]["onnx"] == pytest.approx(best_metrics["e2e_f1_V"], abs=0.002)
    assert card["validation_protocol"]["training_data"] == "bundled-excerpts"
    # the parity check ran on the excerpts, not on >= 2,000 DS2 beats: the card says so
    assert "not the full DS2" in " ".join(card["verification"]["not_verified"])
    printed = capsys.readouterr().out
    assert "candidates by val_f1_V" in printed and "--force: going on although the candidate loses" in printed

    # ONNX Runtime gives the Keras model's outputs, with a dynamic batch
    mlflow.set_tracking_uri(store["uri"])
    local = mlflow.artifacts.download_artifacts(run_id=best_id, artifact_path="model")
    model = keras.saving.load_model(f"{local}/model.keras")
    sess = ort.InferenceSession(str(out / "model.onnx"), providers=["CPUExecutionProvider"])
    assert [i.name for i in sess.get_inputs()] == ["beat", "rr"]
    rng = np.random.default_rng(0)
    for n in (1, 7):
        x = {"beat": rng.standard_normal((n, 360, 2)).astype(np.float32),
             "rr": rng.standard_normal((n, len(card["preprocessing"]["rr_features"]))).astype(np.float32)}
        assert np.abs(sess.run(["p_v"], x)[0] - np.asarray(model(x, training=False))).max() <= 1e-5

    client = mlflow.MlflowClient(store["uri"])
    mv = client.get_model_version_by_alias("ECG_Arritmias_NvsV", "production")
    assert str(mv.version) == card["mlflow"]["registry_version"] and mv.run_id == best_id
    history = json.loads((out.with_name("ecg_nv_cnn.history") / "releases.json").read_text())["releases"]
    assert [e["version"] for e in history] == [card["version"]]


def test_dry_run_writes_nothing_and_says_what_it_could_not_verify(store, out, capsys):
    assert promote(store, out, "--dry-run") == 2  # the gate applies to a dry run too
    assert "bundled excerpts" in capsys.readouterr().err
    assert promote(store, out, "--dry-run", "--force") == 0
    printed = capsys.readouterr().out
    assert "not verified: ONNX was checked against Keras on" in printed and " verified;" not in printed
    assert not out.exists() or snapshot(out) == {}
    assert not out.with_name("ecg_nv_cnn.history").exists()


def test_a_worse_candidate_loses_on_the_same_protocol_and_rollback_goes_down_the_history(store, out, capsys):
    worse_id = min(store["runs"], key=lambda r: r[1]["val_f1_V"])[0]
    best_id = max(store["runs"], key=lambda r: r[1]["val_f1_V"])[0]
    if worse_id == best_id:
        pytest.skip("both tiny runs scored the same")
    assert promote(store, out, "--force") == 0
    before = snapshot(out)
    capsys.readouterr()
    assert promote(store, out, "--run-id", worse_id) == 2
    err, printed = capsys.readouterr()[::-1]
    # both tiny runs were measured the same way: the comparison is made, and both figures printed
    assert "below production's" in err and "bundled excerpts" in err and "nothing written" in err
    for run_id, metrics in store["runs"]:
        assert f"run {run_id[:8]}" in printed and f"val_f1_V {metrics['val_f1_V']:.4f}" in printed
    assert snapshot(out) == before
    assert promote(store, out, "--run-id", worse_id, "--force") == 0
    assert json.loads((out / "model.json").read_text())["mlflow"]["run_id"] == worse_id
    assert promote(store, out, "--rollback") == 0
    assert snapshot(out) == before
    # a second rollback goes further back, never up again to the release just withdrawn
    assert promote(store, out, "--rollback") == 2
    assert "no release before version" in capsys.readouterr().err
    assert snapshot(out) == before


def test_refusals_say_why(store, out, tmp_path, capsys, monkeypatch):
    # no experiment at all
    empty = {**store, "uri": f"sqlite:///{tmp_path / 'empty.db'}"}
    assert promote(empty, out) == 2
    assert "train first" in capsys.readouterr().err
    # nothing to roll back to
    assert promote(store, tmp_path / "fresh" / "m", "--rollback") == 2
    assert "nothing to roll back" in capsys.readouterr().err
    # an unknown run
    assert promote(store, out, "--run-id", "0" * 32) == 2
    assert f"no run {'0' * 32}" in capsys.readouterr().err
    # a DS2 figure may not rank
    assert promote(store, out, "--metric", "test_f1_V") == 2
    assert "DS2 is the test set" in capsys.readouterr().err
    # a run without a model artifact
    import mlflow

    mlflow.set_tracking_uri(store["uri"])
    exp = mlflow.get_experiment_by_name("deteccion_arritmias_ecg")
    with mlflow.start_run(experiment_id=exp.experiment_id, run_name="no-model") as r:
        mlflow.log_metric("val_f1_V", 0.99)
    assert promote(store, out) == 2
    assert "no model artifact" in capsys.readouterr().err
    mlflow.MlflowClient(store["uri"]).delete_run(r.info.run_id)
    # an output directory that cannot be written
    if os.geteuid() != 0:  # root writes anywhere
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(0o500)
        assert promote(store, ro / "m", "--force") == 2
    # a conversion failure and a parity failure: nothing written
    from convert import promote as mod

    monkeypatch.setattr(mod, "PARITY_MAX_ABS", -1.0)
    assert promote(store, out, "--force") == 2
    assert "disagree" in capsys.readouterr().err and not (out / "model.onnx").exists()
    monkeypatch.undo()

    import convert.onnx_export as ex

    def broken(*a, **k):
        raise ValueError("unsupported op")

    monkeypatch.setattr(ex, "export_onnx", broken)
    assert promote(store, out, "--force") == 2
    assert "conversion failed" in capsys.readouterr().err and not (out / "model.onnx").exists()
    monkeypatch.undo()
    # served DS2 figures that differ from the run's: nothing written
    monkeypatch.setattr(mod, "E2E_TOLERANCE", -1.0)
    assert promote(store, out, "--force") == 2
    err = capsys.readouterr().err
    assert "through the serving path" in err and "preprocessing changed" in err and not (out / "model.onnx").exists()


def test_a_failure_mid_write_leaves_the_old_files_identical(store, out, monkeypatch):
    assert promote(store, out, "--force") == 0
    worse_id = min(store["runs"], key=lambda r: r[1]["val_f1_V"])[0]
    before = snapshot(out)
    from convert import promote as mod

    real = mod.os.replace
    calls = []

    def failing_replace(src, dst):
        calls.append(dst)
        if len(calls) == 2:  # the ONNX file is in place; the card is not
            raise OSError("disk full")
        return real(src, dst)

    monkeypatch.setattr(mod.os, "replace", failing_replace)
    with pytest.raises(OSError):
        promote(store, out, "--run-id", worse_id, "--force", "--no-registry")
    monkeypatch.undo()
    assert snapshot(out) == before  # both files byte-identical, no temporaries left


def test_commit_records_the_deployment(store, tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-C", str(repo)]
    subprocess.run([*git[:-2], "init", "-q", str(repo)], check=True)
    subprocess.run([*git, "commit", "-q", "--allow-empty", "-m", "init"], check=True)
    os.environ["GIT_AUTHOR_NAME"] = os.environ["GIT_COMMITTER_NAME"] = "t"
    os.environ["GIT_AUTHOR_EMAIL"] = os.environ["GIT_COMMITTER_EMAIL"] = "t@t"
    out = repo / "models" / "ecg_nv_cnn"
    assert promote(store, out, "--commit", "--force") == 0
    log = subprocess.run([*git, "log", "--grep", "Deploy: MLflow", "--format=%s%n%b"],
                         capture_output=True, text=True, check=True).stdout
    card = json.loads((out / "model.json").read_text())
    m = card["metrics"]
    assert f"Deploy: MLflow model (F1-V: {m['test_f1_V']:.4f}, Acc: {m['test_accuracy']:.4f})" in log
    assert card["mlflow"]["run_id"] in log
    files = subprocess.run([*git, "show", "--name-only", "--format=", "HEAD"], capture_output=True, text=True).stdout
    assert "models/ecg_nv_cnn/model.onnx" in files and "models/ecg_nv_cnn/model.json" in files
    assert "models/ecg_nv_cnn.history/releases.json" in files
    assert f"models/ecg_nv_cnn.history/{card['version']}/model.onnx" in files
    status = subprocess.run([*git, "status", "--porcelain"], capture_output=True, text=True).stdout
    assert status == ""  # nothing of the release left uncommitted
    shutil.rmtree(repo)


def test_cascade_serves_the_first_member_outside_the_band_and_the_ensemble_inside(store, tmp_path, record_119):
    """A cross-fitted run promoted with --cascade: two checked graphs, and the service's p_v is
    the first member's outside the card's band and the mean of all members inside it."""
    import onnxruntime as ort

    from ecg.pipeline import extract_beats
    from service.model import load_model
    from train.train import parse_args, run

    os.environ["MLFLOW_TRACKING_URI"] = store["uri"]
    run_id, _ = run(parse_args(["--data", store["data"], "--train-records", "119", "208", "200",
                                "--val-records", "119", "--test-records", "233", "--epochs", "1",
                                "--cache", "", "--folds", "3", "--skip-e2e", "--seed", "3"]))
    chosen = tmp_path / "cascade.json"
    chosen.write_text(json.dumps({"below_logit": 2.0, "above_logit": 2.0, "study_runs": ["r1"], "rule": {},
                                  "ds1_nested_oof": {}, "beats": 0}))
    out = tmp_path / "m" / "ecg_nv_cnn"
    assert promote(store, out, "--run-id", run_id, "--force", "--cascade", str(chosen), "--no-registry") == 0
    card = json.loads((out / "model.json").read_text())
    band, graphs = card["decision"]["cascade"], card["onnx"]["cascade"]
    assert graphs["first"]["members"] == 1 and graphs["rest"]["members"] == 2
    for role in ("first", "rest"):
        assert graphs[role]["sha256"] == hashlib.sha256((out / f"{role}.onnx").read_bytes()).hexdigest()
        assert card["verification"]["parity_cascade"][role]["max_abs_diff"] <= 1e-5
    assert 0 < band["low"] < band["high"] < 1
    # served figures that drift from the run's name the cascade among the causes
    from convert.promote import PromotionError, check_end_to_end

    with pytest.raises(PromotionError, match="cascade's band changes calls"):
        check_end_to_end(out, {**card, "metrics": {"e2e_f1_V": 2.0}}, store["data"])

    b = extract_beats(record_119.signal, record_119.fs)
    x = {"beat": b.windows, "rr": b.features}
    full = ort.InferenceSession(str(out / "model.onnx")).run(["p_v"], x)[0][:, 0]
    first = ort.InferenceSession(str(out / "first.onnx")).run(["p_v"], x)[0][:, 0]
    model = load_model(out)
    assert model.rest is not None
    # a one-epoch network's probabilities bunch near 0.5: a band over their middle half
    # makes both paths run (the card's own band is checked above)
    band = {**band, "low": float(np.quantile(first, 0.25)), "high": float(np.quantile(first, 0.75))}
    model.card["decision"]["cascade"] = band
    p = model.p_v(b.windows, b.features)
    sent = (first > band["low"]) & (first < band["high"])
    assert np.allclose(p[sent], full[sent], atol=1e-6)  # the ensemble's own mean
    assert np.array_equal(p[~sent], first[~sent])
    assert 0 < sent.sum() < len(p), sent.sum()  # both paths taken

    # /health says how the model is served; a replaced graph is refused by name
    from service import create_app

    health = create_app({"MODEL_DIR": str(out)}).test_client().get("/health").get_json()
    assert health["model_loaded"] and health["model"]["cascade"]["members"] == 3
    assert health["model"]["cascade"]["low"] == card["decision"]["cascade"]["low"]
    broken = tmp_path / "broken"
    shutil.copytree(out, broken)
    (broken / "rest.onnx").write_bytes((out / "first.onnx").read_bytes())
    with pytest.raises(Exception, match="sha256 of rest.onnx"):
        load_model(broken)
    (broken / "rest.onnx").unlink()
    with pytest.raises(Exception, match=r"missing \(rest.onnx\)"):  # after reading the card again
        load_model(broken)

    # a rollback restores the previous version with its graphs; a second one the cascade again
    before = snapshot(out)
    assert promote(store, out, "--run-id", store["runs"][0][0], "--force", "--no-registry") == 0
    assert "cascade" not in json.loads((out / "model.json").read_text())["decision"]
    assert load_model(out).rest is None
    # the cascade's graphs left with the card that named them; the history keeps them
    assert sorted(f.name for f in out.iterdir()) == ["model.json", "model.onnx"]
    assert (out.with_name(out.name + ".history") / card["version"] / "rest.onnx").exists()
    assert promote(store, out, "--rollback") == 0
    assert snapshot(out) == before and load_model(out).rest is not None
