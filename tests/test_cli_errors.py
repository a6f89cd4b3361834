"""Every command line answers bad input with one line on stderr and a non-zero exit, no traceback.

Each case runs the command as a user would, in a subprocess, with a fresh MLflow store and
no ECG_DATA_DIR, from a directory where no MIT-BIH copy is found by default.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parent.parent
FIXTURES = PROJECT / "tests" / "data" / "mitdb"
TINY = ["--train-records", "119", "208", "--val-records", "200", "--test-records", "233", "100", "--folds", "1"]


@pytest.fixture
def cli(tmp_path):
    """Run ``python -m <module> <args>`` from an empty directory; returns the CompletedProcess."""
    env = {**os.environ, "PYTHONPATH": str(PROJECT), "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}",
           "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0"}
    for name in ("ECG_DATA_DIR", "TF_CPP_MIN_LOG_LEVEL"):
        env.pop(name, None)
    cwd = tmp_path / "work" / "here"  # no data/mitdb, no ../shared/data/mitdb from here
    cwd.mkdir(parents=True)

    def run(module, *args, **extra_env):
        return subprocess.run([sys.executable, "-m", module, *map(str, args)], cwd=cwd, env={**env, **extra_env},
                              capture_output=True, text=True, timeout=300)
    return run


def one_clean_line(result, *words, alone=True):
    """Non-zero exit, no traceback, and stderr one clean line: alone, or (``alone=False``) the
    last line after argparse's usage or MLflow's log of the store it created."""
    lines = result.stderr.strip().splitlines()
    assert result.returncode != 0, result.stdout + result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    assert lines and lines[-1].startswith(("python -m ", "promote: refused: ")), result.stderr
    assert len(lines) == 1 or not alone or lines[0].startswith("usage:"), result.stderr
    for word in words:
        assert word in lines[-1], result.stderr
    return lines[-1]


def test_train_refuses_a_wrong_or_missing_data_directory(cli, tmp_path):
    one_clean_line(cli("train", "--data", tmp_path / "nowhere", *TINY), "--data", "nowhere")
    one_clean_line(cli("train", "--data", tmp_path, *TINY), "no MIT-BIH records")  # a directory, no records
    one_clean_line(cli("train", *TINY), "MIT-BIH data not found")
    # an explicit ECG_DATA_DIR that is wrong is not quietly replaced by another copy either
    one_clean_line(cli("train", *TINY, ECG_DATA_DIR=str(tmp_path / "nowhere")), "ECG_DATA_DIR")
    one_clean_line(cli("train", "--data", FIXTURES, *TINY[:-2], "--train-records", "999", "--folds", "1"), "999")
    # a run to resume that the store does not hold: told before any beat is built
    one_clean_line(cli("train", "--data", FIXTURES, *TINY, "--resume", "0123456789abcdef"), "0123456789abcdef",
                   alone=False)


def test_optimize_refuses_bad_storage_without_showing_its_password(cli):
    secret = "pa55word"
    for storage, says in ((f"postgresql+psycopg://u:{secret}@127.0.0.1:1/optuna", "cannot connect"),
                          ("not a url", "not a database URL"), ("nosuchdb://x", "not a database URL")):
        r = cli("train.optimize", "--storage", storage, "--data", FIXTURES, *TINY)
        one_clean_line(r, says)
        assert secret not in r.stdout + r.stderr
    one_clean_line(cli("train.optimize", "--data", "/no/such/dir", *TINY), "--data /no/such/dir")
    # options it does not know go to python -m train, which refuses what it does not know either
    one_clean_line(cli("train.optimize", "--data", FIXTURES, "--no-such-option"), "unrecognized arguments")


def test_optimize_help_says_where_other_options_go(cli):
    r = cli("train.optimize", "--help")
    assert r.returncode == 0 and "pass through to python -m train" in r.stdout and "--sampler-seed" in r.stdout


def test_promote_refuses_unknown_runs_experiments_and_data(cli, tmp_path):
    out = ["--output", tmp_path / "models" / "ecg_nv_cnn"]
    one_clean_line(cli("convert.promote", *out), "no MLflow store")  # before any training
    assert not (tmp_path / "mlflow.db").exists()  # and none created by asking
    store = {"MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}"}
    subprocess.run([sys.executable, "-c", "import mlflow; mlflow.MlflowClient().search_experiments()"],
                   env={**os.environ, **store}, capture_output=True, check=True)
    one_clean_line(cli("convert.promote", *out, "--run-id", "0" * 32), "no run")
    one_clean_line(cli("convert.promote", *out, "--experiment", "no-such-experiment"), "no-such-experiment")
    one_clean_line(cli("convert.promote", *out, "--data", tmp_path / "nowhere"), "--data")
    one_clean_line(cli("convert.promote", *out, "--rollback"), "nothing to roll back")
    assert not (tmp_path / "models").exists()  # nothing half-written


def test_promote_reads_the_cascade_and_pooling_files_before_any_work(cli, tmp_path):
    out = ["--output", tmp_path / "models" / "ecg_nv_cnn"]
    (tmp_path / "garbage.json").write_text("not json")
    (tmp_path / "partial.json").write_text('{"min_corr": 0.95, "chosen_on": {}}')
    for option in ("--pooling", "--cascade"):
        one_clean_line(cli("convert.promote", *out, option, tmp_path / "none.json"), option, "No such file")
        one_clean_line(cli("convert.promote", *out, option, tmp_path / "garbage.json"), option, "not JSON")
        one_clean_line(cli("convert.promote", *out, option, tmp_path / "partial.json"), option, "not the output")
    # the pooling's run is read inside chosen_on
    assert "chosen_on.run" in cli("convert.promote", *out, "--pooling", tmp_path / "partial.json").stderr
    assert not (tmp_path / "models").exists() and not (tmp_path / "mlflow.db").exists()


def test_out_of_fold_studies_refuse_a_missing_store_an_unknown_run_and_a_run_without_evidence(cli, tmp_path):
    studies = ("train.oof_errors", "train.pooling", "train.cascade")
    for module in studies:
        one_clean_line(cli(module, "0" * 32), "no MLflow store")
    assert not (tmp_path / "mlflow.db").exists()  # not created by asking
    plain_run = subprocess.run(
        [sys.executable, "-c", "import mlflow\nwith mlflow.start_run() as run: print(run.info.run_id)"],
        cwd=tmp_path, env={**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}"},
        capture_output=True, text=True, check=True).stdout.split()[-1]
    for module in studies:
        one_clean_line(cli(module, "0" * 32), "0" * 32)
        one_clean_line(cli(module, plain_run), plain_run, "--nested-oof")


def test_counts_and_lengths_out_of_range_are_refused_before_any_run(cli, tmp_path):
    for option, value in (("--epochs", "0"), ("--folds", "0"), ("--members", "0"), ("--batch-size", "-1"),
                          ("--strip-seconds", "2"), ("--augment", "-0.1"), ("--train-offsets", "-5")):
        one_clean_line(cli("train", "--data", FIXTURES, *TINY, option, value), option, "under", alone=False)
    one_clean_line(cli("train.optimize", "--data", FIXTURES, "--n-trials", "0"), "--n-trials", "under", alone=False)
    assert not (tmp_path / "mlflow.db").exists()


def test_noise_studies_refuse_records_the_data_does_not_hold(cli):
    for module in ("bench.robustness", "bench.detector_noise"):
        r = cli(module, "--data", FIXTURES, "--records", "119", "998", "999")
        assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
        assert r.stderr.strip().splitlines() == [r.stderr.strip()] and "998, 999 are not in" in r.stderr, r.stderr


def test_a_download_that_fails_is_one_line_and_leaves_no_half_database(cli, tmp_path):
    # a proxy nothing listens on: refused at once, online or not (tests fetch nothing)
    offline = {"HTTPS_PROXY": "http://127.0.0.1:9", "HTTP_PROXY": "http://127.0.0.1:9", "NO_PROXY": ""}
    target = tmp_path / "data" / "mitdb"
    one_clean_line(cli("train.data", "download", "--data", target, **offline), "cannot download mitdb")
    assert list(target.parent.iterdir()) == []


def test_load_tests_refuse_a_url_where_no_service_answers(cli):
    for module in ("bench.hostile", "bench.soak"):
        r = cli(module, "--url", "http://127.0.0.1:9")
        assert r.returncode == 2 and r.stderr.count("\n") == 1 and "no service answers" in r.stderr, r.stderr


def test_bench_refuses_bad_output_and_missing_data(cli, tmp_path):
    a_file = tmp_path / "file"
    a_file.write_text("")
    one_clean_line(cli("bench", "--out", a_file), "not a directory")
    one_clean_line(cli("bench", "--n10", "-1"), "--n10")
    one_clean_line(cli("bench", "--accuracy", "--out", tmp_path / "b", ECG_DATA_DIR=str(tmp_path / "nowhere")),
                   "ECG_DATA_DIR")


def test_train_without_tensorflow_names_the_venv_to_use(tmp_path):
    """A Python without TensorFlow (the service's venv) is told which one trains, not shown an
    ImportError's traceback."""
    block_tensorflow = (
        "import runpy, sys\n"
        "class NoTensorFlow:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'tensorflow':\n"
        "            raise ModuleNotFoundError(\"No module named 'tensorflow'\", name=name)\n"
        "sys.meta_path.insert(0, NoTensorFlow())\n"
        "sys.argv = ['train', *sys.argv[1:]]\n"
        "runpy.run_module('train', run_name='__main__')\n"
    )
    result = subprocess.run([sys.executable, "-c", block_tensorflow, "--data", str(FIXTURES), *TINY],
                            cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(PROJECT)},
                            capture_output=True, text=True, timeout=300)
    one_clean_line(result, "TensorFlow is not installed", ".venv/bin/python")

