"""``python -m train.ensemble RUN_ID RUN_ID ...``: one model from several cross-fitted runs.

The runs are draws of one recipe with different seeds, cross-fitted on the same DS1
folds: member k of every run was early-stopped on fold k and never fitted on it.
Averaging fold k's members over the runs therefore gives every DS1 beat an out-of-fold
probability from an ensemble, as honest as one run's. The decision (calibration,
threshold, RuleGuard) is tuned on it and ``val_f1_V`` logged, so promotion ranks the
merged run beside single runs on the same footing. The model averages every member of
every run (runs x folds networks); served as a cascade (train/cascade.py), the extra
members only run on the beats close to the threshold.

Why: the seed moves a single run's DS2 F1 of V by ~0.02 (README, "The production model"),
and averaging draws is the direct cure for that variance. Measured on DS1 before this
module existed: fold members of seeds 42, 43 and 44 averaged, val_f1_V 0.801, against
0.791 for the three runs' mean.
"""

import argparse
import json
import os
import sys
import tempfile
import time
from datetime import datetime, timezone

import numpy as np

from . import dataset, protocol, tracking
from .data import data_dir
from .evaluate import predict_raw, tune_decision
from .train import evaluate_ds2, log, log_model

# run parameters that differ between draws of one recipe, or that describe one run (its
# extra evidence: --nested-oof does not change the served members)
PER_RUN = {"seed", "class_weight_V", "train_beats", "val_beats", "nested_oof"}


def tuned_ruleguard(card):
    """Whether the run tuned a RuleGuard: with --no-ruleguard its card holds a bare
    ``{"enabled": False}``; a tuned one keeps its settings, enabled or not."""
    return "rr_tolerance" in card["decision"]["ruleguard"]


def check_mergeable(runs, cards):
    """Raise ``SystemExit`` unless the finished MLflow ``runs`` are draws of one cross-fitted recipe."""
    params = [r.data.params for r in runs]
    first, p0 = cards[0], params[0]
    for run, card, p in zip(runs, cards, params):
        why = None
        if run.info.status != "FINISHED":
            why = f"is {run.info.status}"
        elif tuned_ruleguard(card) != tuned_ruleguard(first):
            why = "was tuned with another RuleGuard setting"
        elif card["training"].get("merged_from") or card["training"].get("distilled_from"):
            why = "is itself merged or distilled"
        elif card["data_split"] != first["data_split"]:
            why = "was split into other folds or records"
        elif card["preprocessing"] != first["preprocessing"]:
            why = "used other preprocessing"
        elif p.get("ablate_relative") == "True":
            why = "is an ablation"
        elif {k: v for k, v in p.items() if k not in PER_RUN} != {k: v for k, v in p0.items() if k not in PER_RUN}:
            diff = sorted(k for k in set(p) | set(p0) if k not in PER_RUN and p.get(k) != p0.get(k))
            why = f"has other parameters ({', '.join(diff)})"
        if why:
            raise SystemExit(f"run {card['mlflow']['run_id']} {why}: only draws of one recipe can be merged")
    seeds = [p["seed"] for p in params]
    if len(set(seeds)) < len(seeds):
        raise SystemExit(f"runs share a seed ({seeds}): merge different draws")


def out_of_fold(models, folds, val):
    """Mean over runs of each fold's held-out member: (n,) raw V probability of ``val``."""
    from .model import ensemble_members

    p = np.zeros((len(models), len(val)))
    for i, model in enumerate(models):
        members = ensemble_members(model)
        if len(members) != len(folds):
            raise SystemExit(f"a run has {len(members)} members for {len(folds)} folds")
        for k, fold in enumerate(folds):
            held_out = np.isin(val.records, fold)
            p[i, held_out] = predict_raw(members[k], val.subset(held_out))
    return p.mean(axis=0)


def merge(run_ids, data=None, cache="cache", run_name=None, skip_e2e=False):
    """Merge finished runs into a new MLflow run; returns ``(run_id, metrics)``."""
    import mlflow
    from mlflow.tracking import MlflowClient

    from .model import average_models, ensemble_members

    t_start = time.time()
    exp_id = tracking.setup()
    client = MlflowClient()
    runs = [client.get_run(r) for r in run_ids]
    with tempfile.TemporaryDirectory() as tmp:
        loaded = [tracking.load_run_model(r, os.path.join(tmp, r), cross_fitted=True) for r in run_ids]
    models, cards = [m for m, _ in loaded], [c for _, c in loaded]
    check_mergeable(runs, cards)
    split, p0 = cards[0]["data_split"], runs[0].data.params
    ddir = data_dir(data)
    strip = float(p0["strip_seconds"]) if p0.get("strip_seconds") not in (None, "", "None") else None

    def beats(records, strip_s, offsets=(0.0,), reference=False, progress=log):
        return dataset.build(records, ddir, strip_s, offsets, use_reference=reference, cache_dir=cache or None,
                             progress=progress)

    log(f"out-of-fold probabilities of {len(run_ids)} runs on {len(split['validation'])} DS1 records")
    val = beats(split["validation"], strip)
    p_val = out_of_fold(models, split["folds"], val)
    decision, metrics = tune_decision(p_val, val.y, val.features, use_ruleguard=tuned_ruleguard(cards[0]))
    log(f"merged val_f1_V {metrics['val_f1_V']:.4f} (runs: "
        + ", ".join(f"{r.data.metrics.get('val_f1_V', float('nan')):.4f}" for r in runs) + ")")

    members = [m for model in models for m in ensemble_members(model)]
    for i, m in enumerate(members):  # names must be unique in one graph
        m.name = f"ecg_nv_cnn_{i}"
    model = average_models(members)
    seeds = [int(r.data.params["seed"]) for r in runs]
    name = run_name or f"{runs[0].info.run_name.rsplit('-seed', 1)[0]}-merged-seeds{'-'.join(map(str, seeds))}"
    with mlflow.start_run(experiment_id=exp_id, run_name=name) as active:
        mlflow.log_params({**{k: v for k, v in p0.items() if k not in PER_RUN}, "members": len(members),
                           "seeds": " ".join(map(str, seeds)), "merged_from": " ".join(run_ids)})
        mlflow.set_tags({"split": runs[0].data.tags.get("split", ""), "merged_from": " ".join(run_ids),
                         **protocol.tags(protocol.from_card(cards[0]))})  # the runs' own folds and data
        m, rows, reference = evaluate_ds2(model, decision, beats, split["test"], strip, ddir, skip_e2e)
        metrics.update(m)
        metrics["train_minutes"] = sum(r.data.metrics.get("train_minutes", 0.0) for r in runs)
        metrics["merge_minutes"] = (time.time() - t_start) / 60
        mlflow.log_metrics({k: float(v) for k, v in metrics.items()})
        card = {
            **cards[0],
            "created_at": datetime.now(timezone.utc).isoformat(),
            "mlflow": {"run_id": active.info.run_id, "experiment": tracking.EXPERIMENT, "run_name": name},
            "decision": decision,
            "training": {**cards[0]["training"], "seed": None, "seeds": seeds, "members": len(members),
                         "best_epochs": [e for c in cards for e in c["training"]["best_epochs"]],
                         "merged_from": list(run_ids)},
            "metrics": {k: float(v) for k, v in metrics.items()},
        }
        log_model(model, card, reference, rows)
        summary = {k: round(float(v), 4) for k, v in metrics.items() if "f1" in k}
        log(f"run {active.info.run_id} ({name}): {json.dumps(summary)}")
        return active.info.run_id, metrics


def main(argv=None):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    ap = argparse.ArgumentParser(prog="python -m train.ensemble", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", nargs="+", help="MLflow run ids of finished cross-fitted runs, different seeds")
    ap.add_argument("--data", help="MIT-BIH directory (default: $ECG_DATA_DIR, data/mitdb, ../shared/data/mitdb)")
    ap.add_argument("--cache", default="cache", help="directory for cached beat sets ('' for none)")
    ap.add_argument("--run-name", help="MLflow run name (default: the recipe's name, merged, and the seeds)")
    ap.add_argument("--skip-e2e", action="store_true", help="only the reference-beat DS2 evaluation")
    args = ap.parse_args(argv)
    if len(args.runs) < 2:
        raise SystemExit("merge at least two runs")
    merge(args.runs, args.data, args.cache, args.run_name, args.skip_e2e)
    return 0


if __name__ == "__main__":
    sys.exit(main())
