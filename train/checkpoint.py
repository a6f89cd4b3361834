"""Checkpoints: a training run cut short goes on where it stopped.

A ``--nested-oof`` run fits 25 networks, about 3 h on 2 cores: longer than a session or a
machine may stay up. Each network is saved into its MLflow run as soon as it is fitted
(``checkpoints/<key>.npz``: its weights and best epoch; ``<key>`` is the network's metric
prefix, ``member2`` or ``fold1_inner3``). ``python -m train --resume RUN_ID`` with the run's
own arguments opens the run again, loads the networks it holds and fits only the others.

Every network is seeded by its place in the run (``train.train.fit_models``,
``train.nested``), so a resumed run ends with the networks an uninterrupted one would have.
The arguments, the data's beat counts and the code that made the beats (``beat_code``, the
beat cache's fingerprint of ``ecg`` and ``train.augment``) must be those the run logged: a
resume with others is refused before the run is touched, and so is a resume of a run that a
live process of this host is still training (the run's ``process`` tag).
"""

import os
import platform
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from .cli import UsageError

ARTIFACT_DIR = "checkpoints"
# metric: minutes of work the run's checkpoints hold, carried into ``train_minutes`` on resume
MINUTES = "checkpoint_minutes"


# tag: the process that has the run open, "host:pid", so that a resume does not open it twice
PROCESS_TAG = "process"


def this_process():
    return f"{platform.node()}:{os.getpid()}"


def resumable_run(run_id, experiment_id):
    """The MLflow run ``run_id`` if it can go on; ``UsageError`` if it is finished, in another
    experiment, or still running in a live process of this host. An unknown run is MLflow's own
    error."""
    import mlflow

    run = mlflow.MlflowClient().get_run(run_id)
    if run.info.experiment_id != experiment_id:
        raise UsageError(f"--resume {run_id}: the run is not in this experiment ({experiment_id})")
    if run.info.status == "FINISHED":
        raise UsageError(f"--resume {run_id}: the run is finished, nothing to resume")
    host, _, pid = run.data.tags.get(PROCESS_TAG, "").rpartition(":")
    if run.info.status == "RUNNING" and host == platform.node() and pid.isdigit() and alive(int(pid)):
        raise UsageError(f"--resume {run_id}: the run is still being trained by process {pid}: stop it first")
    return run


def alive(pid):
    """Whether process ``pid`` exists on this host (one of ours or another user's)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        pass
    return True


def check_same_params(run, params):
    """``UsageError`` unless ``params`` (the new process's run parameters) are those ``run`` logged."""
    logged = run.data.params
    changed = [k for k, v in params.items() if logged.get(k) != str(v)]
    if changed:
        k = changed[0]
        raise UsageError(f"--resume {run.info.run_id}: the run was started with other arguments or data "
                         f"({len(changed)} differ; {k}: {logged.get(k)!r} then, {str(params[k])!r} now): "
                         "give the run's own arguments")


class Checkpoints:
    """The networks saved in the active run ``run_id``: none for a new run; for a resumed one,
    ``resumed`` (the run as :func:`resumable_run` read it), those its earlier processes fitted."""

    def __init__(self, run_id, resumed=None):
        import mlflow

        self.run_id = run_id
        self.saved, self.loaded = set(), 0
        self.minutes_before = 0.0
        if resumed is not None:
            listed = mlflow.MlflowClient().list_artifacts(run_id, ARTIFACT_DIR)
            self.saved = {Path(f.path).stem for f in listed}
            self.minutes_before = float(resumed.data.metrics.get(MINUTES, 0.0))

    def load(self, key, network):
        """Set ``network``'s weights from checkpoint ``key``; its best epoch (1-based), or None
        when there is none (or it cannot be read: a process killed while writing it)."""
        import mlflow

        if key not in self.saved:
            return None
        with tempfile.TemporaryDirectory() as tmp:
            try:
                path = mlflow.artifacts.download_artifacts(
                    run_id=self.run_id, artifact_path=f"{ARTIFACT_DIR}/{key}.npz", dst_path=tmp)
                with np.load(path) as z:
                    network.set_weights([z[f"w{i}"] for i in range(int(z["n_weights"]))])
                    best_epoch = int(z["best_epoch"])
            except (OSError, ValueError, KeyError, zipfile.BadZipFile):
                return None
        self.loaded += 1
        return best_epoch

    def save(self, key, network, best_epoch, minutes):
        """Save ``network`` under ``key``; ``minutes``: this process's minutes so far."""
        import mlflow

        weights = network.get_weights()
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / f"{key}.npz"
            np.savez(path, best_epoch=best_epoch, n_weights=len(weights), **{f"w{i}": w for i, w in enumerate(weights)})
            mlflow.log_artifact(str(path), ARTIFACT_DIR)
        mlflow.log_metric(MINUTES, self.minutes_before + minutes)
        self.saved.add(key)
