"""Where MLflow runs go: ``$MLFLOW_TRACKING_URI``, else an embedded SQLite store here.

The default keeps ``mlflow.db`` and its artifacts (``mlruns/``) in the project
directory, so ``mlflow ui --backend-store-uri sqlite:///mlflow.db`` shows them.
"""

import json
import os
import re
from pathlib import Path

EXPERIMENT = "deteccion_arritmias_ecg"
PROJECT_DIR = Path(__file__).resolve().parent.parent


# the password of a URL: from the ':' after the user name to the last '@' before the host
_PASSWORD = re.compile(r"(?P<start>[A-Za-z][\w+.-]*://[^:/@\s]*):[^/\s]*@")


def tracking_uri():
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{PROJECT_DIR / 'mlflow.db'}"


def missing_store(uri):
    """The file an SQLite tracking ``uri`` names when it does not exist, else None: a command
    that only reads runs must say so rather than ask MLflow, which would create it."""
    path = uri[len("sqlite:///"):] if uri.startswith("sqlite:///") else None
    return path if path and not Path(path).exists() else None


def mask_url(text):
    """``text`` with the password of every URL in it replaced by ``***``: what logs, tags and
    parameters may show of a storage or tracking URL."""
    return _PASSWORD.sub(r"\g<start>:***@", text)


def setup(experiment=EXPERIMENT):
    """Point MLflow at the tracking store and return the experiment id (created if new).

    Workers started together against a fresh server may all find no experiment and all
    create it: the ones that lose that race read the winner's.
    """
    import mlflow
    from mlflow.exceptions import MlflowException

    uri = tracking_uri()
    mlflow.set_tracking_uri(uri)
    exp = mlflow.get_experiment_by_name(experiment)
    if exp is not None:
        return exp.experiment_id
    artifacts = None
    if uri.startswith("sqlite:///"):  # artifacts beside the database file
        artifacts = (Path(uri[len("sqlite:///"):]).resolve().parent / "mlruns").as_uri()
    try:
        return mlflow.create_experiment(experiment, artifact_location=artifacts)
    except MlflowException as exc:
        if exc.error_code != "RESOURCE_ALREADY_EXISTS":
            raise
        return mlflow.get_experiment_by_name(experiment).experiment_id


def load_run_card(run_id, dst):
    """A run's training card (its ``model/model_card.json`` artifact, into ``dst``), without the model."""
    import mlflow

    path = mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path="model/model_card.json",
                                               dst_path=str(dst))
    return json.loads(Path(path).read_text())


def load_run_model(run_id, dst):
    """A run's Keras model and its training card, from its MLflow artifacts (into ``dst``)."""
    import keras
    import mlflow

    local = Path(mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path="model", dst_path=str(dst)))
    card = json.loads((local / "model_card.json").read_text())
    return keras.saving.load_model(local / "model.keras"), card
