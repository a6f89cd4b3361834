"""Nested out-of-fold predictions: honest DS1 evidence for choices made on a whole ensemble.

A cross-fitted run's member k never saw fold k, but the run's ensemble (the mean of all its
members) saw every fold: no DS1 beat is left on which the served ensemble can be judged.
``python -m train --nested-oof`` therefore also cross-fits, inside each outer fold k, an
inner ensemble on the other folds only (one member per inner fold), and scores fold k's
beats with each inner member. None of them has seen fold k's patients, so the inner
ensembles' mean is an out-of-fold prediction of an ensemble made the way the served one is.

The run logs them as ``evaluation/nested_oof.npz``:

- ``p_members`` float32 (n, folds - 1): each inner member's V probability of every DS1
  validation beat (column j: the member held out on the j-th other fold);
- ``y`` (n,): 1 for V; ``records`` (n,): the beat's record; ``features`` (n, k): its RR
  and QRS features, for the decision's RuleGuard.

Its readers choose what the served model does with the ensemble: the cascade's band
(``train/cascade.py``), the pooling by QRS shape (``train/pooling.py``), and the error
report (``train/oof_errors.py``).
"""

import tempfile
from pathlib import Path

import numpy as np

from .evaluate import predict_raw

ARTIFACT = "evaluation/nested_oof.npz"


def nested_out_of_fold(train, val, folds, network, seed, log, stop_set_of=None):
    """Out-of-fold V probabilities of the inner ensembles' members, shape (n_val, len(folds) - 1).

    ``train``/``val``: the DS1 BeatSets (training beats, validation beats); ``folds``: lists
    of records; ``network(fit_set, stop_set, seed, prefix)`` fits a fresh network and returns
    ``(network, best_epoch)``; ``stop_set_of(records)``: the beats that early-stop a member
    held out on ``records`` (default: those of ``val``). The inner ensemble's probability is
    the mean over axis 1.
    """
    if stop_set_of is None:
        def stop_set_of(records):
            return val.subset(np.isin(val.records, records))
    p_members = np.zeros((len(val), len(folds) - 1))
    for k, fold in enumerate(folds):
        held = np.isin(val.records, fold)
        held_out = val.subset(held)
        outer = train.subset(~np.isin(train.records, fold))
        for j, inner_fold in enumerate(f for i, f in enumerate(folds) if i != k):
            log(f"fold {k + 1}/{len(folds)}: inner member {j + 1}/{len(folds) - 1}")
            net, _ = network(outer.subset(~np.isin(outer.records, inner_fold)), stop_set_of(inner_fold),
                             seed + 1000 * k + 100 * (j + 1), f"fold{k}_inner{j}_")
            p_members[held, j] = predict_raw(net, held_out)
    return p_members


def log_oof(p_members, val):
    """Log ``p_members`` (n, m) with ``val``'s labels, records and features into the active
    MLflow run as :data:`ARTIFACT`."""
    import mlflow

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / Path(ARTIFACT).name
        np.savez_compressed(path, p_members=p_members.astype(np.float32), y=val.y, records=val.records,
                            features=val.features)
        mlflow.log_artifact(str(path), str(Path(ARTIFACT).parent))


def load_oof(run_id, dst):
    """A ``--nested-oof`` run's evidence, downloaded into ``dst``: a dict of the arrays
    ``p_members``, ``y``, ``features`` and ``records`` (module docstring)."""
    import mlflow

    path = mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=ARTIFACT, dst_path=str(dst))
    with np.load(path) as z:
        return {k: z[k] for k in ("p_members", "y", "features", "records")}
