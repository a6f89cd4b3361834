"""Training past one machine, for real: a PostgreSQL server, an MLflow server on it, and two
``python -m train.optimize`` workers started at once on one study, as the README says.

PostgreSQL 15's own binaries run it in a temporary directory (``initdb`` refuses root, so it
runs as the ``postgres`` user when the test runs as root); the test is skipped when they are
not there. Workers train tiny networks on the bundled excerpts.
"""

import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # ~2-4 min: two workers, each importing TensorFlow and training

PROJECT = Path(__file__).resolve().parent.parent
FIXTURES = PROJECT / "tests" / "data" / "mitdb"
PG_BIN = Path(os.environ.get("ECG_PG_BIN", "/usr/lib/postgresql/15/bin"))
SECRET = "s3cret-pw"  # in every URL; trust authentication ignores it, the logs must never show it
STUDY = "scale-out"
TINY = ["--data", str(FIXTURES), "--train-records", "119", "208", "--val-records", "200", "--test-records", "233",
        "100", "--folds", "1", "--max-train-beats", "300", "--cache", ""]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def as_postgres_user():
    """The command prefix that runs PostgreSQL's tools: ourselves, or the postgres user for root."""
    if os.geteuid() != 0:
        return [], None
    try:
        user = pwd.getpwnam("postgres")
    except KeyError:
        pytest.skip("running as root and there is no postgres user for initdb")
    if shutil.which("runuser") is None:
        pytest.skip("running as root and runuser is missing")
    return ["runuser", "-u", "postgres", "--"], user


@pytest.fixture(scope="module")
def postgres():
    """A PostgreSQL server on a free port of 127.0.0.1 with the databases mlflow and optuna."""
    if not (PG_BIN / "initdb").exists() or not (PG_BIN / "pg_ctl").exists():
        pytest.skip(f"PostgreSQL binaries not found in {PG_BIN}")
    psycopg = pytest.importorskip("psycopg")
    prefix, user = as_postgres_user()
    root = Path(tempfile.mkdtemp(prefix="ecg-pg-"))
    if user is not None:
        os.chown(root, user.pw_uid, user.pw_gid)
    data, port = root / "data", free_port()
    subprocess.run([*prefix, str(PG_BIN / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust",
                    "--no-sync", "-E", "UTF8", "--locale=C"], check=True, capture_output=True, timeout=120)
    options = f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off"
    subprocess.run([*prefix, str(PG_BIN / "pg_ctl"), "-D", str(data), "-l", str(root / "log"), "-w", "-t", "60",
                    "-o", options, "start"], check=True, capture_output=True, timeout=120)
    try:
        with psycopg.connect(f"postgresql://postgres@127.0.0.1:{port}/postgres", autocommit=True) as conn:
            conn.execute("CREATE DATABASE mlflow")
            conn.execute("CREATE DATABASE optuna")
        yield lambda db: f"postgresql+psycopg://postgres:{SECRET}@127.0.0.1:{port}/{db}"
    finally:
        subprocess.run([*prefix, str(PG_BIN / "pg_ctl"), "-D", str(data), "-m", "fast", "stop"],
                       capture_output=True, timeout=120)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def mlflow_server(postgres, tmp_path_factory):
    """``mlflow server`` with its store in PostgreSQL and its artifacts in a temporary directory."""
    tmp = tmp_path_factory.mktemp("mlflow-server")
    port, log = free_port(), open(tmp / "server.log", "w")
    server = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", postgres("mlflow"),
         "--artifacts-destination", str(tmp / "artifacts"), "--host", "127.0.0.1", "--port", str(port),
         "--workers", "1"], stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        env={**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"})  # no job runners: not needed here
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 180
        while True:
            assert server.poll() is None, (tmp / "server.log").read_text()[-3000:]
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=2):
                    break
            except OSError:
                assert time.time() < deadline, "mlflow server did not answer in 180 s"
                time.sleep(1)
        yield {"url": url, "log": tmp / "server.log"}
    finally:
        os.killpg(server.pid, signal.SIGTERM)  # the server and the workers it started
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait(timeout=30)
        log.close()


def test_two_workers_share_one_study_and_one_tracking_server(postgres, mlflow_server, tmp_path):
    import mlflow
    import optuna

    env = {**os.environ, "MLFLOW_TRACKING_URI": mlflow_server["url"], "PYTHONPATH": str(PROJECT),
           "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false"}
    env.pop("ECG_DATA_DIR", None)
    storage = postgres("optuna")
    command = [sys.executable, "-m", "train.optimize", "--n-trials", "1", "--epochs", "1", "--storage", storage,
               "--study", STUDY, *TINY]
    workers = [subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True) for _ in range(2)]  # at once: both create the experiment and the study
    outputs = [w.communicate(timeout=1200) for w in workers]
    for worker, (out, err) in zip(workers, outputs):
        assert worker.returncode == 0, err[-3000:]
        assert SECRET not in out + err and "postgres:***@" in out

    # distinct trials: each worker's sampler had its own seed
    study = optuna.load_study(study_name=STUDY, storage=storage)
    trials = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(trials) == 2
    assert trials[0].params != trials[1].params
    assert trials[0].user_attrs["sampler_seed"] != trials[1].user_attrs["sampler_seed"]

    # every trial is a finished MLflow run on the server, with both seeds, and no password anywhere
    client = mlflow.MlflowClient(mlflow_server["url"])
    experiment = client.get_experiment_by_name("deteccion_arritmias_ecg")
    runs = client.search_runs([experiment.experiment_id])
    for trial in trials:
        run = client.get_run(trial.user_attrs["mlflow_run_id"])
        assert run.info.status == "FINISHED" and run.data.tags["optuna_trial"] == str(trial.number)
        assert run.data.tags["optuna_sampler_seed"] == str(trial.user_attrs["sampler_seed"])
        assert run.data.params["seed"] == "42" and run.data.params["filters"] == str(trial.params["filters"])
        assert run.data.tags["training_data"] == "bundled-excerpts"
    parents = [r for r in runs if r.info.run_name == f"optuna-{STUDY}"]
    assert len(parents) == 2  # one per worker
    for run in runs:
        assert SECRET not in repr(run.data.params) + repr(run.data.tags)
    assert all("postgres:***@" in p.data.tags["optuna_storage"] for p in parents)

    # a promotion dry run through the server: refused as trained on the excerpts, then forced
    # one epoch of a tiny model: both trials can score the same F1, and promote's tie-breakers choose
    best = {t.user_attrs["mlflow_run_id"] for t in trials if t.value == max(t.value for t in trials)}
    output = tmp_path / "models" / "ecg_nv_cnn"
    promote = [sys.executable, "-m", "convert.promote", "--dry-run", "--output", str(output), "--data", str(FIXTURES)]
    refused = subprocess.run(promote, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert refused.returncode == 2 and "bundled excerpts" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1, refused.stderr
    forced = subprocess.run([*promote, "--force"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert forced.returncode == 0, forced.stderr[-3000:]
    assert f"candidates by val_f1_V ({mlflow_server['url']})" in forced.stdout
    chosen = re.search(r"dry run: (\w+) not verified: ONNX was checked against Keras on", forced.stdout)
    assert chosen and chosen.group(1) in best, forced.stdout
    assert not output.exists()
    assert SECRET not in mlflow_server["log"].read_text()
