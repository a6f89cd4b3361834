"""``python -m train.optimize``: Optuna search over the network and its training.

Every trial is a full ``python -m train`` run, logged to MLflow as a child of one
parent run for the study. The objective is F1 of class V on the DS1 validation
split (``val_f1_V``): DS2 is never looked at to choose anything.

Scaling past one machine: give every worker the same ``--storage`` (an Optuna
relational storage such as ``postgresql://user:pass@host/optuna``) and ``--study``
name, and the same ``MLFLOW_TRACKING_URI`` (a tracking server,
``mlflow server --backend-store-uri postgresql://... --artifacts-destination ...``);
each worker then pulls trials from the shared study and logs its runs to the
shared server. The default storage is a local SQLite file (``optuna.db``).
"""

import argparse
import os

from . import tracking
from .train import parse_args as train_args
from .train import run

SEARCH_SPACE_DOC = {
    "filters": [16, 32, 48],
    "kernel": [5, 7, 9],
    "dense": [32, 64, 128],
    "rr_dense": [8, 16, 32],
    "dropout": "0.1 .. 0.5",
    "learning_rate": "3e-4 .. 3e-3 (log)",
    "imbalance": ["none", "sqrt", "balanced"],
    "batch_size": [128, 256, 512],
}


def suggest(trial):
    """Training arguments for one trial."""
    return [
        "--filters", str(trial.suggest_categorical("filters", SEARCH_SPACE_DOC["filters"])),
        "--kernel", str(trial.suggest_categorical("kernel", SEARCH_SPACE_DOC["kernel"])),
        "--dense", str(trial.suggest_categorical("dense", SEARCH_SPACE_DOC["dense"])),
        "--rr-dense", str(trial.suggest_categorical("rr_dense", SEARCH_SPACE_DOC["rr_dense"])),
        "--dropout", f"{trial.suggest_float('dropout', 0.1, 0.5):.3f}",
        "--learning-rate", f"{trial.suggest_float('learning_rate', 3e-4, 3e-3, log=True):.6f}",
        "--imbalance", trial.suggest_categorical("imbalance", SEARCH_SPACE_DOC["imbalance"]),
        "--batch-size", str(trial.suggest_categorical("batch_size", SEARCH_SPACE_DOC["batch_size"])),
    ]


def main(argv=None):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    ap = argparse.ArgumentParser(prog="python -m train.optimize", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n-trials", type=int, default=10)
    ap.add_argument("--study", default="ecg_nv_cnn")
    ap.add_argument("--storage", default="sqlite:///optuna.db", help="Optuna storage URL shared by all workers")
    ap.add_argument("--seed", type=int, default=42, help="sampler seed; every trial trains with this seed too")
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--timeout", type=float, help="stop starting trials after this many seconds")
    ap.add_argument("--no-pruning", action="store_true", help="let every trial run to its early stop")
    args, extra = ap.parse_known_args(argv)  # anything else goes to python -m train (e.g. --data)

    import mlflow
    import optuna

    exp_id = tracking.setup()
    study = optuna.create_study(
        study_name=args.study, storage=args.storage, direction="maximize", load_if_exists=True,
        sampler=optuna.samplers.TPESampler(seed=args.seed),
        pruner=optuna.pruners.NopPruner() if args.no_pruning else optuna.pruners.MedianPruner(n_warmup_steps=3),
    )

    def objective(trial):
        def report(epoch, f1):
            trial.report(f1, epoch)
            if trial.should_prune():
                raise optuna.TrialPruned()

        targs = train_args([*extra, *suggest(trial), "--epochs", str(args.epochs), "--seed", str(args.seed),
                            "--run-name", f"{args.study}-trial-{trial.number}"])
        run_id, metrics = run(targs, nested=True, on_epoch=report,
                              tags={"optuna_study": args.study, "optuna_trial": str(trial.number)})
        trial.set_user_attr("mlflow_run_id", run_id)
        return metrics["val_f1_V"]

    with mlflow.start_run(experiment_id=exp_id, run_name=f"optuna-{args.study}",
                          tags={"optuna_study": args.study, "optuna_storage": args.storage.split("@")[-1]}):
        mlflow.log_params({"n_trials": args.n_trials, "objective": "val_f1_V (DS1 validation split)",
                           "sampler_seed": args.seed, "epochs_max": args.epochs})
        study.optimize(objective, n_trials=args.n_trials, timeout=args.timeout, catch=(RuntimeError,))
        done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
        if done:
            best = study.best_trial
            mlflow.log_metric("best_val_f1_V", best.value)
            mlflow.log_params({f"best_{k}": v for k, v in best.params.items()})
            mlflow.set_tag("best_mlflow_run_id", best.user_attrs.get("mlflow_run_id", ""))
            print(f"best trial {best.number}: val_f1_V {best.value:.4f} {best.params} "
                  f"(MLflow run {best.user_attrs.get('mlflow_run_id')})")
        pruned = sum(t.state == optuna.trial.TrialState.PRUNED for t in study.trials)
        print(f"{len(done)} complete, {pruned} pruned trials in study {args.study!r} ({args.storage})")


if __name__ == "__main__":
    main()
