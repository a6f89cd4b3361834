"""``python -m train.optimize``: Optuna search over the network and its training.

Every trial is a full ``python -m train`` run, logged to MLflow as a child of one
parent run for the study. The objective is F1 of class V on the DS1 validation
split (``val_f1_V``): DS2 is never looked at to choose anything.

Scaling past one machine: give every worker the same ``--storage`` (an Optuna
relational storage such as ``postgresql+psycopg://user:pass@host/optuna``, psycopg 3 being
in requirements-train.txt) and ``--study`` name, and the same ``MLFLOW_TRACKING_URI`` (a
tracking server, ``mlflow server --backend-store-uri postgresql+psycopg://... --artifacts-destination ...``);
each worker then pulls trials from the shared study and logs its runs to the shared server.
Each worker's sampler draws from its own seed (``--sampler-seed``, by default one of its
own), so two workers never propose the same trials; ``--seed`` is the training seed of every
trial. The default storage is a local SQLite file (``optuna.db``).

Every other option goes to ``python -m train`` (``--data``, ``--folds``, ``--max-train-beats``...).
"""

import argparse
import os
import platform
import time

from . import tracking
from .cli import UsageError, at_least, check_data_option, quiet_tensorflow, run_cli

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


def default_sampler_seed():
    """A seed of this worker's own: workers started at the same second differ by pid."""
    return (os.getpid() * 1_000_003 + time.time_ns()) % 2**31


def parse_args(argv):
    ap = argparse.ArgumentParser(
        prog="python -m train.optimize", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Options not listed here pass through to python -m train (python -m train --help lists them),\n"
               "e.g. on the bundled excerpts:\n"
               "  python -m train.optimize --n-trials 2 --epochs 2 --data tests/data/mitdb --train-records 119 208 \\\n"
               "      --val-records 200 --test-records 233 100 --folds 1 --max-train-beats 2000")
    ap.add_argument("--n-trials", type=at_least(int, 1), default=10)
    ap.add_argument("--study", default="ecg_nv_cnn")
    ap.add_argument("--storage", default="sqlite:///optuna.db", help="Optuna storage URL shared by all workers")
    ap.add_argument("--seed", type=int, default=42, help="training seed of every trial")
    ap.add_argument("--sampler-seed", type=int, default=None,
                    help="seed of this worker's sampler (default: drawn from its pid and the time; "
                         "logged with every trial)")
    ap.add_argument("--epochs", type=at_least(int, 1), default=20)
    ap.add_argument("--timeout", type=at_least(float, 1.0), help="stop starting trials after this many seconds")
    ap.add_argument("--no-pruning", action="store_true", help="let every trial run to its early stop")
    args, extra = ap.parse_known_args(argv)
    if args.sampler_seed is None:
        args.sampler_seed = default_sampler_seed()
    return args, extra


def open_storage(url, attempts=4):
    """Optuna's storage at ``url``. A malformed or unreachable URL raises ``UsageError``, its
    password masked. Workers starting together on a fresh database may race to create its
    tables: the loser of such a race tries again."""
    import optuna
    import sqlalchemy.exc

    shown = tracking.mask_url(url)
    for attempt in range(attempts):
        try:
            return optuna.storages.RDBStorage(url)
        except (sqlalchemy.exc.ArgumentError, ValueError) as exc:
            raise UsageError(f"--storage {shown} is not a database URL ({type(exc).__name__})") from None
        except ImportError:
            raise UsageError(f"--storage {shown}: no driver for it in this venv (PostgreSQL: "
                             "postgresql+psycopg://, psycopg is in requirements-train.txt)") from None
        except sqlalchemy.exc.OperationalError as exc:
            reason = str(exc.orig or exc).strip().splitlines()[0]
            raise UsageError(f"--storage {shown}: cannot connect ({tracking.mask_url(reason)})") from None
        except (sqlalchemy.exc.IntegrityError, sqlalchemy.exc.ProgrammingError):
            if attempt == attempts - 1:
                raise
            time.sleep(1 + attempt)


def main(argv):
    args, extra = parse_args(argv)
    check_data_option(extra)  # in a second, before TensorFlow's import
    quiet_tensorflow()
    from .train import parse_args as train_args

    train_args(extra)  # options python -m train does not know stop here, with its usage
    optimize(args, extra, open_storage(args.storage))  # nothing is created before the checks


def optimize(args, extra, storage):
    import mlflow
    import optuna

    from .train import parse_args as train_args
    from .train import run

    shown = tracking.mask_url(args.storage)
    exp_id = tracking.setup()
    study = optuna.create_study(
        study_name=args.study, storage=storage, direction="maximize", load_if_exists=True,
        sampler=optuna.samplers.TPESampler(seed=args.sampler_seed),
        pruner=optuna.pruners.NopPruner() if args.no_pruning else optuna.pruners.MedianPruner(n_warmup_steps=3),
    )
    worker = f"{platform.node()}:{os.getpid()}"
    print(f"worker {worker}: study {args.study!r} ({shown}), sampler seed {args.sampler_seed}, "
          f"training seed {args.seed}", flush=True)
    seeds = {"optuna_sampler_seed": str(args.sampler_seed), "training_seed": str(args.seed), "optuna_worker": worker}

    def objective(trial):
        def report(epoch, f1):
            trial.report(f1, epoch)
            if trial.should_prune():
                raise optuna.TrialPruned()

        trial.set_user_attr("sampler_seed", args.sampler_seed)
        trial.set_user_attr("worker", worker)
        targs = train_args([*extra, *suggest(trial), "--epochs", str(args.epochs), "--seed", str(args.seed),
                            "--run-name", f"{args.study}-trial-{trial.number}"])
        run_id, metrics = run(targs, nested=True, on_epoch=report,
                              tags={"optuna_study": args.study, "optuna_trial": str(trial.number), **seeds})
        trial.set_user_attr("mlflow_run_id", run_id)
        return metrics["val_f1_V"]

    with mlflow.start_run(experiment_id=exp_id, run_name=f"optuna-{args.study}",
                          tags={"optuna_study": args.study, "optuna_storage": shown, **seeds}):
        mlflow.log_params({"n_trials": args.n_trials, "objective": "val_f1_V (DS1 validation split)",
                           "sampler_seed": args.sampler_seed, "seed": args.seed, "epochs_max": args.epochs})
        study.optimize(objective, n_trials=args.n_trials, timeout=args.timeout, catch=(RuntimeError,))
        report_study(study, args.study, shown)


def report_study(study, name, shown):
    import mlflow
    import optuna

    done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    if done:
        best = study.best_trial
        mlflow.log_metric("best_val_f1_V", best.value)
        mlflow.log_params({f"best_{k}": v for k, v in best.params.items()})
        mlflow.set_tag("best_mlflow_run_id", best.user_attrs.get("mlflow_run_id", ""))
        print(f"best trial {best.number}: val_f1_V {best.value:.4f} {best.params} "
              f"(MLflow run {best.user_attrs.get('mlflow_run_id')})")
    pruned = sum(t.state == optuna.trial.TrialState.PRUNED for t in study.trials)
    print(f"{len(done)} complete, {pruned} pruned trials in study {name!r} ({shown})")


if __name__ == "__main__":
    import sys

    sys.exit(run_cli("python -m train.optimize", main))
