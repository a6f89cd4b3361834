"""A tiny training run on the fixtures into a temporary MLflow store."""

import json

import numpy as np
import pytest

pytest.importorskip("tensorflow")


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory, fixture_dir):
    uri = f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'mlflow.db'}"
    with pytest.MonkeyPatch.context() as mp:  # module scope: the monkeypatch fixture is per test
        mp.setenv("MLFLOW_TRACKING_URI", uri)
        from train.train import parse_args, run

        args = parse_args([
            "--data", str(fixture_dir), "--train-records", "119", "208", "--val-records", "200",
            "--test-records", "233", "100", "--epochs", "1", "--max-train-beats", "300",
            "--cache", "", "--run-name", "pytest-tiny", "--seed", "7", "--folds", "1",
        ])
        run_id, metrics = run(args)
        yield run_id, metrics, uri


def test_run_logs_metrics_params_and_artifacts(tiny_run):
    import mlflow

    run_id, metrics, uri = tiny_run
    client = mlflow.MlflowClient(uri)
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED"
    exp = client.get_experiment(run.info.experiment_id)
    assert exp.name == "deteccion_arritmias_ecg"
    for key in ("val_f1_V", "test_f1_V", "test_accuracy", "test_precision_V", "test_recall_V",
                "e2e_f1_V", "e2e_strict_f1_V", "e2e_strip_f1_V"):
        assert key in run.data.metrics, key
        assert 0.0 <= run.data.metrics[key] <= 1.0
    assert run.data.params["train_records"] == "119 208"
    assert len(client.get_metric_history(run_id, "val_loss")) == 1
    names = {a.path for a in client.list_artifacts(run_id, "model")}
    assert {"model/model.keras", "model/model_card.json"} <= names
    names = {a.path for a in client.list_artifacts(run_id, "evaluation")}
    assert {"evaluation/confusion_matrix.png", "evaluation/precision_recall.png", "evaluation/per_record.csv"} <= names


def test_model_and_card_load_back_and_agree(tiny_run, tmp_path, record_119):
    import keras
    import mlflow

    from ecg.decision import classify
    from ecg.pipeline import PREPROCESSING, extract_beats

    run_id, metrics, uri = tiny_run
    mlflow.set_tracking_uri(uri)
    local = mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path="model", dst_path=str(tmp_path))
    card = json.loads(open(f"{local}/model_card.json").read())
    model = keras.saving.load_model(f"{local}/model.keras")
    assert card["mlflow"]["run_id"] == run_id
    assert card["preprocessing"]["version"] == PREPROCESSING["version"]
    assert 0 < card["decision"]["threshold"] < 1
    assert card["data_split"]["validation"] == ["200"]
    assert card["metrics"]["val_f1_V"] == pytest.approx(metrics["val_f1_V"])
    b = extract_beats(record_119.signal[:3600], 360)
    p = np.asarray(model({"beat": b.windows, "rr": b.features}, training=False)).reshape(-1)
    assert p.shape == (len(b),) and np.all((p >= 0) & (p <= 1))
    is_v, p_v = classify(p, b.features, card["decision"])[:2]
    assert is_v.dtype == bool and np.all((p_v >= 0) & (p_v <= 1))


def test_test_records_never_overlap_training(fixture_dir):
    from train.train import parse_args, run

    args = parse_args(["--data", str(fixture_dir), "--train-records", "119", "--val-records", "200",
                       "--test-records", "200", "--cache", "", "--folds", "1"])
    with pytest.raises(SystemExit, match="both"):
        run(args)


def test_optuna_trials_are_child_runs_ranked_by_validation(tmp_path, fixture_dir, monkeypatch):
    import mlflow
    import optuna

    from train import optimize

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    optimize.main(["--n-trials", "2", "--epochs", "1", "--storage", storage, "--study", "pytest",
                   "--data", str(fixture_dir), "--train-records", "119", "--val-records", "200",
                   "--test-records", "233", "--cache", "", "--max-train-beats", "200", "--skip-e2e",
                   "--folds", "1"])
    study = optuna.load_study(study_name="pytest", storage=storage)
    assert len(study.trials) == 2
    client = mlflow.MlflowClient(uri)
    exp = client.get_experiment_by_name("deteccion_arritmias_ecg")
    runs = client.search_runs([exp.experiment_id])
    parents = [r for r in runs if r.info.run_name == "optuna-pytest"]
    assert len(parents) == 1
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parents[0].info.run_id]
    assert len(children) == 2
    # the tag names a trial with the best validation F1 (two 1-epoch trials on one record can tie)
    best_f1 = max(r.data.metrics["val_f1_V"] for r in children)
    tagged = [r for r in children if r.info.run_id == parents[0].data.tags["best_mlflow_run_id"]]
    assert len(tagged) == 1 and tagged[0].data.metrics["val_f1_V"] == best_f1
    assert study.best_value == pytest.approx(best_f1)


def test_a_seed_ensemble_is_one_model_averaging_its_members(tmp_path, fixture_dir, monkeypatch):
    import keras
    import mlflow

    from ecg.pipeline import PREPROCESSING
    from train.train import parse_args, run

    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    run_id, metrics = run(parse_args([
        "--data", str(fixture_dir), "--train-records", "119", "--val-records", "200", "--test-records", "233",
        "--epochs", "1", "--max-train-beats", "200", "--cache", "", "--members", "2", "--augment", "0.1",
        "--skip-e2e", "--folds", "1"]))
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    local = mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path="model", dst_path=str(tmp_path))
    model = keras.saving.load_model(f"{local}/model.keras")
    members = [layer for layer in model.layers if isinstance(layer, keras.Model)]
    assert len(members) == 2
    rng = np.random.default_rng(1)
    x = {"beat": rng.standard_normal((5, 360, 2)).astype(np.float32),
         "rr": rng.standard_normal((5, len(PREPROCESSING["rr_features"]))).astype(np.float32)}
    each = [np.asarray(m(x, training=False)) for m in members]
    assert not np.allclose(each[0], each[1])  # different seeds, different networks
    assert np.allclose(np.asarray(model(x, training=False)), (each[0] + each[1]) / 2, atol=1e-6)
    history = mlflow.MlflowClient().get_metric_history(run_id, "member1_val_loss")
    assert len(history) == 1


CV3 = ["--train-records", "119", "208", "200", "--val-records", "119", "--test-records", "233",
       "--epochs", "1", "--cache", "", "--folds", "3", "--skip-e2e"]


@pytest.fixture(scope="module")
def cv3_run(tmp_path_factory, fixture_dir):
    """A cross-fitted run over the three fixture records: (run_id, metrics, store dir)."""
    tmp = tmp_path_factory.mktemp("mlflow_cv3")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp / 'mlflow.db'}")
        from train.train import parse_args, run

        run_id, metrics = run(parse_args(["--data", str(fixture_dir), *CV3]))
        yield run_id, metrics, tmp


def run_card(run_id, tmp_path):
    import mlflow

    path = mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path="model/model_card.json",
                                               dst_path=str(tmp_path))
    return json.loads(open(path).read())


def test_cross_fitting_holds_every_record_out_once(cv3_run, tmp_path, fixture_dir, monkeypatch):
    import mlflow

    from train.train import parse_args, run

    run_id, metrics, store = cv3_run
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{store / 'mlflow.db'}")
    mlflow.set_tracking_uri(f"sqlite:///{store / 'mlflow.db'}")
    card = run_card(run_id, tmp_path)
    folds = card["data_split"]["folds"]
    assert sorted(r for f in folds for r in f) == ["119", "200", "208"]  # each record in one fold
    assert card["training"]["members"] == 3 and len(card["training"]["best_epochs"]) == 3
    client = mlflow.MlflowClient()
    for k in range(3):
        assert len(client.get_metric_history(run_id, f"member{k}_val_loss")) == 1
    assert 0 <= metrics["val_f1_V"] <= 1
    with pytest.raises(SystemExit, match="folds"):
        run(parse_args(["--data", str(fixture_dir), "--train-records", "119", "--val-records", "200",
                        "--test-records", "233", "--cache", "", "--folds", "5"]))


def test_nested_oof_logs_each_inner_members_out_of_fold_probabilities(tmp_path, fixture_dir, monkeypatch):
    import mlflow

    from train.nested import load_oof
    from train.train import parse_args, run

    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    run_id, metrics = run(parse_args(["--data", str(fixture_dir), *CV3, "--nested-oof", "--val-views", "em6"]))
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    oof = load_oof(run_id, tmp_path / "a")  # as train.cascade, train.pooling and train.oof_errors read it
    n = len(oof["y"])
    assert oof["p_members"].shape == (n, 2)  # 3 folds: an inner ensemble of 2 per outer fold
    assert ((oof["p_members"] > 0) & (oof["p_members"] < 1)).all()  # every beat predicted, none left at 0
    assert sorted(set(oof["records"])) == ["119", "200", "208"] and oof["features"].shape[0] == n
    noisy = oof["views"]["em6"]  # the same records under electrode motion, scored by the same inner members
    assert noisy["p_members"].shape == (len(noisy["y"]), 2)
    assert ((noisy["p_members"] > 0) & (noisy["p_members"] < 1)).all()
    assert sorted(set(noisy["records"])) == ["119", "200", "208"]
    assert 0 <= metrics["val_f1_V_nested_ensemble"] <= 1
    card = run_card(run_id, tmp_path)
    assert card["training"]["members"] == 3  # the served ensemble is trained as without the flag
    with pytest.raises(SystemExit, match="nested-oof"):
        run(parse_args(["--data", str(fixture_dir), *CV3[:-3], "--folds", "1", "--nested-oof"]))


def test_cascade_ds2_figures_reproduce_the_runs_own_for_the_whole_ensemble(cv3_run, fixture_dir, monkeypatch):
    import mlflow

    from train.cascade import ds2_figures

    run_id, metrics, store = cv3_run
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{store / 'mlflow.db'}")
    mlflow.set_tracking_uri(f"sqlite:///{store / 'mlflow.db'}")
    wide = ds2_figures(run_id, {"below_logit": 50.0, "above_logit": 50.0}, str(fixture_dir), cache="",
                       records=["233"])
    assert wide["test"]["full"] == pytest.approx(metrics["test_f1_V"], abs=1e-9)
    assert wide["test"]["sent"] == 1.0 and wide["test"]["cascade"] == pytest.approx(wide["test"]["full"], abs=1e-9)
    for tag in ("e2e", "e2e_strip"):
        assert 0 <= wide[tag]["full"] <= 1


def test_average_precision_ranks_positives():
    from train.train import average_precision

    # positives at ranks 1 and 3 of 4: (1/1 + 2/3) / 2
    assert average_precision(np.array([0.9, 0.8, 0.7, 0.1]), np.array([1, 0, 1, 0])) == pytest.approx(5 / 6)
    assert average_precision(np.array([0.1, 0.2]), np.array([1, 1])) == 1.0
    assert average_precision(np.array([0.9, 0.1]), np.array([0, 1])) == 0.5
    assert average_precision(np.array([0.5, 0.4]), np.array([0, 0])) == 0.0


def test_stop_on_average_precision_is_logged(tmp_path, fixture_dir, monkeypatch):
    import mlflow

    from train.train import parse_args, run

    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    run_id, _ = run(parse_args([
        "--data", str(fixture_dir), "--train-records", "119", "208", "--val-records", "200",
        "--test-records", "233", "--epochs", "2", "--patience", "5", "--max-train-beats", "300",
        "--cache", "", "--folds", "1", "--skip-e2e", "--stop-on", "ap"]))
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    client = mlflow.MlflowClient()
    assert client.get_run(run_id).data.params["stop_on"] == "ap"
    history = client.get_metric_history(run_id, "val_ap_V")
    assert len(history) == 2 and all(0 < h.value <= 1 for h in history)


def test_jobs_building_one_cache_at_once_do_not_trip_each_other(tmp_path, fixture_dir, monkeypatch):
    # seeds started together build the same records: a second job writes and renames its
    # file while the first has written its own and not renamed it yet
    from train import dataset

    write = dataset.np.savez
    inner = []

    def savez(path, **arrays):
        write(path, **arrays)
        if not inner:  # the first job's write: the second job runs now, whole
            inner.append(None)
            inner[0] = dataset.build(["119"], fixture_dir, cache_dir=tmp_path, progress=None)

    monkeypatch.setattr(dataset.np, "savez", savez)
    outer = dataset.build(["119"], fixture_dir, cache_dir=tmp_path, progress=None)
    assert len(outer) == len(inner[0]) > 0
    version = dataset.pipeline.PREPROCESSING["version"]
    assert [p.name for p in tmp_path.iterdir()] == [f"119_s10.0_o0.0_det_{version}_{dataset.code_fingerprint()}.npz"]


def test_a_run_cut_short_resumes_with_the_networks_it_saved(tmp_path, fixture_dir, monkeypatch):
    import mlflow

    import train.train as training
    from train.cli import UsageError
    from train.nested import load_oof
    from train.tracking import EXPERIMENT

    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    argv = ["--data", str(fixture_dir), *CV3, "--nested-oof", "--seed", "5"]
    whole_id, whole = training.run(training.parse_args([*argv, "--run-name", "whole"]))

    fit, fitted, cut_at = training.fit_member, [], [4]

    def fit_until_the_fourth(*args, **kwargs):
        fitted.append(args[6])  # the network's prefix
        if len(fitted) == cut_at[0]:
            raise KeyboardInterrupt  # the session ends in the middle of the fourth network
        return fit(*args, **kwargs)

    monkeypatch.setattr(training, "fit_member", fit_until_the_fourth)
    with pytest.raises(KeyboardInterrupt):
        training.run(training.parse_args([*argv, "--run-name", "cut"]))
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    cut_id = mlflow.search_runs(experiment_names=[EXPERIMENT], filter_string="attributes.run_name = 'cut'",
                                output_format="list")[0].info.run_id
    before = fitted[:3]

    with pytest.raises(UsageError, match="other arguments"):  # refused before the run is touched
        training.run(training.parse_args([*argv, "--seed", "6", "--resume", cut_id]))
    with monkeypatch.context() as changed:  # the detector or the features changed since
        changed.setattr(training.dataset, "code_fingerprint", lambda: "0" * 16)
        with pytest.raises(UsageError, match="beat_code"):
            training.run(training.parse_args([*argv, "--resume", cut_id]))
    assert len(fitted) == 4  # nothing fitted by the refused resumes
    fitted.clear()
    cut_at[0] = None
    run_id, resumed = training.run(training.parse_args([*argv, "--resume", cut_id]))
    assert run_id == cut_id
    assert len(fitted) == 3 * 2 + 3 - 3 and not set(fitted) & set(before)  # 9 networks, 3 loaded
    run = mlflow.MlflowClient().get_run(cut_id)
    assert run.info.status == "FINISHED" and run.data.tags["resumed"].startswith("3 networks")
    # the same networks as the uninterrupted run: the same out-of-fold evidence and decision
    np.testing.assert_allclose(load_oof(cut_id, tmp_path / "a")["p_members"],
                               load_oof(whole_id, tmp_path / "b")["p_members"], atol=1e-5)
    assert resumed["val_f1_V"] == pytest.approx(whole["val_f1_V"], abs=1e-6)
    with pytest.raises(UsageError, match="finished"):
        training.run(training.parse_args([*argv, "--resume", cut_id]))


def test_a_run_still_being_trained_is_not_resumed_twice(tmp_path, monkeypatch):
    import subprocess
    import sys

    import mlflow

    from train import tracking
    from train.checkpoint import PROCESS_TAG, resumable_run, this_process
    from train.cli import UsageError

    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    exp_id = tracking.setup()
    with mlflow.start_run(experiment_id=exp_id, tags={PROCESS_TAG: this_process()}) as live:
        with pytest.raises(UsageError, match="still being trained"):
            resumable_run(live.info.run_id, exp_id)
        done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
        host = this_process().rpartition(":")[0]
        mlflow.set_tag(PROCESS_TAG, f"{host}:{done.stdout.strip()}")  # its process has ended: a kill, a reboot
        assert resumable_run(live.info.run_id, exp_id).info.run_id == live.info.run_id


def test_commands_draw_no_mlflow_download_bars(monkeypatch):
    # a resumed run downloads every checkpoint: MLflow's bars on stderr would bury its log,
    # and a refusal must be the only line there
    import os

    from train.cli import run_cli

    monkeypatch.delenv("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", raising=False)
    seen = []
    assert run_cli("python -m x", lambda argv: seen.append(os.environ.get("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR")),
                   []) == 0
    assert seen == ["false"]
