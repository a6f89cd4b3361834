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
  and QRS features, for the decision's RuleGuard;
- the same four for each extra validation view of the run (``--val-views``: the other lead,
  noise), prefixed ``view_<name>_``: the evidence for a decision per lead or per noise.

Its readers choose what the served model does with the ensemble: the cascade's band
(``train/cascade.py``), the pooling by QRS shape (``train/pooling.py``), and the error
report (``train/oof_errors.py``).
"""

import tempfile
from pathlib import Path

import numpy as np

from .evaluate import predict_raw

ARTIFACT = "evaluation/nested_oof.npz"


def nested_out_of_fold(train, val, folds, network, seed, log, stop_set_of=None, views=None):
    """Out-of-fold V probabilities of the inner ensembles' members: ``(p_members, p_views)``,
    ``p_members`` (n_val, len(folds) - 1) and ``p_views`` {name: (n_view, len(folds) - 1)}.

    ``train``/``val``: the DS1 BeatSets (training beats, validation beats); ``views``: {name:
    BeatSet}, the validation records seen otherwise; ``folds``: lists of records;
    ``network(fit_set, stop_set, seed, prefix)`` fits a fresh network and returns
    ``(network, best_epoch)``; ``stop_set_of(records)``: the beats that early-stop a member
    held out on ``records`` (default: those of ``val``). The inner ensemble's probability is
    the mean over axis 1.
    """
    if stop_set_of is None:
        def stop_set_of(records):
            return val.subset(np.isin(val.records, records))
    scored = {"": val, **(views or {})}
    p = {name: np.zeros((len(beats), len(folds) - 1)) for name, beats in scored.items()}
    for k, fold in enumerate(folds):
        outer = train.subset(~np.isin(train.records, fold))
        for j, inner_fold in enumerate(f for i, f in enumerate(folds) if i != k):
            log(f"fold {k + 1}/{len(folds)}: inner member {j + 1}/{len(folds) - 1}")
            net, _ = network(outer.subset(~np.isin(outer.records, inner_fold)), stop_set_of(inner_fold),
                             seed + 1000 * k + 100 * (j + 1), f"fold{k}_inner{j}_")
            for name, beats in scored.items():
                held = np.isin(beats.records, fold)
                p[name][held, j] = predict_raw(net, beats.subset(held))
    p_members = p.pop("")
    return p_members, p


def log_oof(p_members, val, p_views=None, views=None):
    """Log ``p_members`` (n, m) with ``val``'s labels, records and features into the active
    MLflow run as :data:`ARTIFACT`; and each view's ``p_views[name]`` with ``views[name]``'s."""
    import mlflow

    arrays = evidence(p_members, val)
    for name, p in (p_views or {}).items():
        arrays.update({f"view_{name}_{k}": v for k, v in evidence(p, views[name]).items()})
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / Path(ARTIFACT).name
        np.savez_compressed(path, **arrays)
        mlflow.log_artifact(str(path), str(Path(ARTIFACT).parent))


KEYS = ("p_members", "y", "features", "records")


def evidence(p_members, beats):
    """The :data:`KEYS` arrays of ``beats`` scored ``p_members`` (n, m)."""
    return {"p_members": p_members.astype(np.float32), "y": beats.y, "features": beats.features,
            "records": beats.records}


def check_oof_runs(run_ids):
    """Refuse, before any work, a run the MLflow store does not hold or one that logged no
    out-of-fold evidence (:data:`ARTIFACT`: only a ``--nested-oof`` run does)."""
    import mlflow

    from . import tracking
    from .cli import UsageError

    uri = tracking.tracking_uri()
    if missing := tracking.missing_store(uri):
        raise UsageError(f"no MLflow store at {missing} (or set MLFLOW_TRACKING_URI)")
    mlflow.set_tracking_uri(uri)
    client = mlflow.MlflowClient()
    for run_id in run_ids:
        client.get_run(run_id)  # an unknown run: MLflow's own refusal, which names it
        logged = {a.path for a in client.list_artifacts(run_id, str(Path(ARTIFACT).parent))}
        if ARTIFACT not in logged:
            raise UsageError(f"run {run_id} logged no {ARTIFACT}: only a --nested-oof run has out-of-fold evidence")


def load_oof(run_id, dst):
    """A ``--nested-oof`` run's evidence, downloaded into ``dst``: a dict of the arrays
    ``p_members``, ``y``, ``features`` and ``records`` (module docstring), and ``views``:
    {name: the same four of that view} (empty for a run that logged none)."""
    import mlflow

    path = mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=ARTIFACT, dst_path=str(dst))
    with np.load(path) as z:
        names = sorted({f[len("view_"):-len("_p_members")] for f in z.files
                        if f.startswith("view_") and f.endswith("_p_members")})
        return {**{k: z[k] for k in KEYS},
                "views": {name: {k: z[f"view_{name}_{k}"] for k in KEYS} for name in names}}
